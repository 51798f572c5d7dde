//! What kind of mail is this, and may we answer it? (RFC 3834, RFC 3464)
//!
//! Pure functions over [`Parsed`] and the envelope: no store, no clock.

use super::parse::Parsed;
use crate::config::split_address;
use crate::model::{Envelope, MessageKind};
use regex::Regex;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A person writing to us.
    Customer,
    /// Vacation notices, out-of-office, other auto-responders, feedback reports.
    AutoReply,
    /// A delivery status notification (bounce or delay).
    Bounce,
    /// Mailing-list or bulk mail.
    List,
    /// Our own mail come back to us.
    OwnLoop,
}

impl Class {
    pub fn message_kind(self) -> MessageKind {
        match self {
            Class::Customer => MessageKind::Customer,
            Class::AutoReply | Class::List => MessageKind::Auto,
            Class::Bounce | Class::OwnLoop => MessageKind::System,
        }
    }

    /// A short stable name, for scripts (`rules test --format json`).
    pub fn name(self) -> &'static str {
        match self {
            Class::Customer => "customer",
            Class::AutoReply => "auto_reply",
            Class::Bounce => "bounce",
            Class::List => "list",
            Class::OwnLoop => "own_loop",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Customer => "customer mail",
            Class::AutoReply => "auto-reply",
            Class::Bounce => "delivery status notification",
            Class::List => "list or bulk mail",
            Class::OwnLoop => "our own mail looping back",
        }
    }
}

/// Local parts of system senders (RFC 3834 §3.1.5 lists some of them).
const SYSTEM_LOCALS: &[&str] = &[
    "mailer-daemon",
    "mailerdaemon",
    "mail-daemon",
    "postmaster",
    "post_master",
    "mail.daemon",
];

static BOUNCE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)undeliver|delivery (status|failure|failed|notification|has failed|problem)|failure notice|returned mail|mail delivery (failed|system|subsystem)|non-?delivery|could not be delivered|delivery report|nicht zustellbar|unzustellbar|message not delivered|bounce",
    )
    .unwrap_or_else(|e| panic!("built-in regex: {e}"))
});

static AUTO_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(auto(matic)?[ -]?(reply|response|answer)|autorespons\w*|auto:|out of (the )?office|abwesenheitsnotiz|r[ée]ponse automatique|away from (the )?office|vacation (reply|notice)|on vacation)",
    )
    .unwrap_or_else(|e| panic!("built-in regex: {e}"))
});

fn local_part(addr: &str) -> String {
    split_address(addr)
        .map(|(l, _)| l.to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_system_sender(addr: &str) -> bool {
    SYSTEM_LOCALS.contains(&local_part(addr).as_str())
}

/// Envelope null reverse path, or a `Return-Path: <>` header (mail fetched by IMAP).
pub fn null_sender(p: &Parsed, env: &Envelope) -> bool {
    env.mail_from.trim().is_empty() || p.header("return-path").is_some_and(|v| v.trim() == "<>")
}

pub fn classify(p: &Parsed, env: &Envelope, hostname: &str) -> Class {
    if p.header("x-postdesk-loop")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(hostname))
    {
        return Class::OwnLoop;
    }
    let report = p.report_type.as_deref();
    let system = is_system_sender(&p.from) || is_system_sender(&env.mail_from);
    let null = null_sender(p, env);
    if report == Some("delivery-status")
        || p.has_header("x-failed-recipients")
        || ((system || null) && BOUNCE_SUBJECT.is_match(&p.subject))
        || (system && !p.embedded_message_ids.is_empty())
    {
        return Class::Bounce;
    }
    let auto_submitted = p
        .header("auto-submitted")
        .is_some_and(|v| !v.trim().to_ascii_lowercase().starts_with("no"));
    let precedence = p
        .header("precedence")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if auto_submitted
        || report.is_some()
        || p.has_header("x-autoreply")
        || p.has_header("x-autorespond")
        || p.has_header("x-auto-response-suppress") && AUTO_SUBJECT.is_match(&p.subject)
        || precedence == "auto_reply"
        || AUTO_SUBJECT.is_match(&p.subject)
        || system
        || super::autoreply::unmarked(p).is_some()
    {
        return Class::AutoReply;
    }
    let list_local = {
        let l = local_part(&p.from);
        ["-request", "-bounces", "-owner", "-admin"]
            .iter()
            .any(|s| l.ends_with(s))
            || l.starts_with("owner-")
    };
    if p.has_header("list-id")
        || p.has_header("list-unsubscribe")
        || p.has_header("list-post")
        || matches!(precedence.as_str(), "bulk" | "junk" | "list")
        || list_local
    {
        return Class::List;
    }
    Class::Customer
}

/// Why no acknowledgement may be sent to this message's sender, if any.
/// (`class` is what [`classify`] said; the ack rate limit is checked by the caller.)
pub fn ack_suppressed(
    p: &Parsed,
    env: &Envelope,
    class: Class,
    our_addresses: &[String],
) -> Option<String> {
    if class != Class::Customer {
        return Some(format!("{} is never acknowledged", class.as_str()));
    }
    if env.source == crate::model::Source::Import {
        return Some("imported history is never acknowledged".into());
    }
    if null_sender(p, env) {
        return Some("null reverse path".into());
    }
    if matches!(env.source, crate::model::Source::Chat { .. }) {
        return Some("a chat line is answered in the chat".into());
    }
    if p.from.is_empty() || split_address(&p.from).is_none() {
        return Some("no usable From address".into());
    }
    let l = local_part(&p.from);
    let compact: String = l.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if compact.starts_with("noreply")
        || compact.starts_with("donotreply")
        || is_system_sender(&p.from)
    {
        return Some(format!("sender {} does not take replies", p.from));
    }
    if p.has_header("x-auto-response-suppress") {
        return Some("sender asked for no automatic replies (X-Auto-Response-Suppress)".into());
    }
    if our_addresses
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&p.from))
    {
        return Some("mail from our own address".into());
    }
    if dated_before_mailbox_added(p, env) {
        return Some(
            "mail dated before its IMAP mailbox was added (history is never acknowledged)".into(),
        );
    }
    None
}

/// Whether IMAP mail is the mailbox's history: its Date header and its
/// INTERNALDATE (whichever are known, at least one) are both before the
/// folder was first seen. Both must agree, so a sender's wrong clock alone
/// never silences a new customer's acknowledgement.
pub fn dated_before_mailbox_added(p: &Parsed, env: &Envelope) -> bool {
    let Some(dates) = env.imap else {
        return false;
    };
    if dates.folder_first_seen <= 0 {
        return false;
    }
    let mut known = [p.date, dates.internal_date]
        .into_iter()
        .flatten()
        .peekable();
    known.peek().is_some() && known.all(|t| t < dates.folder_first_seen)
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;
    use crate::model::Source;

    fn env(from: &str) -> Envelope {
        Envelope {
            mail_from: from.into(),
            rcpt_to: vec!["support@example.test".into()],
            received_at: 0,
            source: Source::Smtp,
            peer: String::new(),
            helo: String::new(),
            imap: None,
            sender_auth: None,
            imported_as: None,
        }
    }

    fn class_of(headers: &str, from: &str) -> Class {
        let raw = format!("{headers}\r\n\r\nbody\r\n");
        classify(&parse(raw.as_bytes()), &env(from), "support.example.test")
    }

    #[test]
    fn classes() {
        let base = "From: a@example.org\r\nSubject: Help";
        assert_eq!(class_of(base, "a@example.org"), Class::Customer);
        assert_eq!(
            class_of(&format!("{base}\r\nAuto-Submitted: no"), "a@example.org"),
            Class::Customer
        );
        assert_eq!(
            class_of(
                &format!("{base}\r\nAuto-Submitted: auto-replied"),
                "a@example.org"
            ),
            Class::AutoReply
        );
        assert_eq!(
            class_of(&format!("{base}\r\nPrecedence: bulk"), "a@example.org"),
            Class::List
        );
        assert_eq!(
            class_of(
                &format!("{base}\r\nList-Id: <x.example.org>"),
                "a@example.org"
            ),
            Class::List
        );
        assert_eq!(
            class_of(
                "From: a@example.org\r\nSubject: Out of Office: Help",
                "a@example.org"
            ),
            Class::AutoReply
        );
        assert_eq!(
            class_of(
                "From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail Returned to Sender",
                ""
            ),
            Class::Bounce
        );
        assert_eq!(
            class_of(
                &format!("{base}\r\nX-Postdesk-Loop: support.example.test"),
                "a@example.org"
            ),
            Class::OwnLoop
        );
    }

    #[test]
    fn suppression() {
        let p = parse(b"From: no-reply@shop.example\r\nSubject: x\r\n\r\nb\r\n");
        assert!(ack_suppressed(&p, &env("no-reply@shop.example"), Class::Customer, &[]).is_some());
        let p = parse(b"From: ann@example.org\r\nSubject: x\r\n\r\nb\r\n");
        assert!(ack_suppressed(&p, &env(""), Class::Customer, &[]).is_some());
        assert!(ack_suppressed(&p, &env("ann@example.org"), Class::Customer, &[]).is_none());
    }

    #[test]
    fn imap_history_is_never_acknowledged() {
        use crate::model::ImapDates;
        // Mailbox added 2026-12-01; the mail is from January 2018.
        let added = 1_796_083_200;
        let old = parse(
            b"From: ann@example.org\r\nDate: Mon, 15 Jan 2018 10:00:00 +0000\r\nSubject: x\r\n\r\nb\r\n",
        );
        let imap = |internal_date: Option<i64>| Envelope {
            source: Source::Imap,
            imap: Some(ImapDates {
                folder_first_seen: added,
                internal_date,
            }),
            ..env("ann@example.org")
        };
        let suppressed = |p, e: &Envelope| ack_suppressed(p, e, Class::Customer, &[]);
        let reason = suppressed(&old, &imap(Some(1_516_010_400)));
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("before its IMAP mailbox")),
            "{reason:?}"
        );
        assert!(
            suppressed(&old, &imap(None)).is_some(),
            "the Date alone, when the server gave no INTERNALDATE"
        );
        assert!(
            suppressed(&old, &imap(Some(added + 60))).is_none(),
            "arrived after the mailbox was added: a wrong Date alone does not silence it"
        );
        assert!(
            suppressed(&old, &env("ann@example.org")).is_none(),
            "SMTP mail carries no IMAP dates"
        );
        let unknown = Envelope {
            imap: Some(ImapDates {
                folder_first_seen: 0,
                internal_date: Some(1_516_010_400),
            }),
            ..env("ann@example.org")
        };
        assert!(
            suppressed(&old, &unknown).is_none(),
            "first sighting unknown"
        );
        let undated = parse(b"From: ann@example.org\r\nSubject: x\r\n\r\nb\r\n");
        assert!(suppressed(&undated, &imap(None)).is_none(), "nothing known");
        assert!(suppressed(&undated, &imap(Some(1_516_010_400))).is_some());
    }
}
