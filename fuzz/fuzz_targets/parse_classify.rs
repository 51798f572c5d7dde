//! Message parsing and classification as the processor runs them on every
//! committed message: `parse` → `classify` → `ack_suppressed`, the subject
//! tag used for threading, and the visible text stored for agents.
//!
//! Input: a raw message (any bytes; intake stores whatever it was sent).
//!
//! Invariants checked:
//! - nothing panics (parsing never fails: garbage still yields a `Parsed`);
//! - kept headers are bounded (at most 256, each at most 8 KiB, names lower-cased);
//! - addresses are lower-cased and trimmed;
//! - classification is a pure function (same answer twice) and a message
//!   carrying our loop header is always our own loop, whatever else it says;
//! - only customer mail may be acknowledged;
//! - a subject tag found reads back the same from a fresh `[#N]` subject;
//! - the visible text is never longer than the text it was cut from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postdesk::model::{Envelope, Source};
use postdesk::process::classify::{Class, ack_suppressed, classify};
use postdesk::process::parse::{parse, visible_text};
use postdesk::process::thread::subject_tag;

const HOSTNAME: &str = "support.example.test";

fuzz_target!(|raw: &[u8]| {
    let p = parse(raw);

    assert!(p.headers.len() <= 256, "{} headers kept", p.headers.len());
    for (name, value) in &p.headers {
        assert!(
            value.len() <= 8192,
            "header {name} kept {} bytes",
            value.len()
        );
        assert_eq!(
            name,
            &name.to_ascii_lowercase(),
            "header name not lower-cased"
        );
    }
    for a in std::iter::once(&p.from).chain(&p.to).chain(&p.cc) {
        assert_eq!(a, &a.to_ascii_lowercase(), "address not lower-cased");
        assert_eq!(a, a.trim(), "address not trimmed");
    }

    // Both an SMTP envelope with the header's sender and a null reverse path.
    for mail_from in [p.from.clone(), String::new()] {
        let env = Envelope {
            mail_from,
            rcpt_to: vec!["support@example.test".into()],
            received_at: 1_700_000_000,
            source: Source::Smtp,
            peer: "127.0.0.1:1".into(),
            helo: "fuzz".into(),
            imap: None,
            sender_auth: None,
            imported_as: None,
        };
        let class = classify(&p, &env, HOSTNAME);
        assert_eq!(class, classify(&p, &env, HOSTNAME), "classify is not pure");
        let _ = class.as_str();
        let _ = class.message_kind();
        if p.header("x-postdesk-loop")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(HOSTNAME))
        {
            assert_eq!(class, Class::OwnLoop, "our loop header not recognised");
        }
        let ours = ["support@example.test".to_string()];
        let suppressed = ack_suppressed(&p, &env, class, &ours);
        if class != Class::Customer {
            assert!(suppressed.is_some(), "{class:?} would be acknowledged");
        }
        if env.mail_from.is_empty() {
            assert!(suppressed.is_some(), "null sender would be acknowledged");
        }
    }

    if let Some(n) = subject_tag(&p.subject) {
        assert_eq!(
            subject_tag(&format!("Re: [#{n}] x")),
            Some(n),
            "tag does not round-trip"
        );
    }

    let visible = visible_text(&p.text);
    assert!(
        visible.len() <= p.text.len(),
        "visible text ({}) longer than the text ({})",
        visible.len(),
        p.text.len()
    );
});
