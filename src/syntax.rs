//! Syntax checks for the identifiers peers hand us: mailbox addresses and
//! Message-IDs (RFC 5321 §4.1.2 and §4.5.3.1, RFC 5322 §3.4.1 and §3.6.4,
//! RFC 6531 for UTF-8 addresses), and bounds for header text we copy.
//!
//! Everything a peer writes in a header may end up in mail we send: a Cc
//! becomes an RCPT TO, a Message-ID our In-Reply-To, a subject our Subject.
//! A bare CR or LF there would let a peer write SMTP commands or headers of
//! its own, and an unbounded value a line no relay accepts. So nothing from a
//! peer is stored as a participant or copied into outgoing mail unless it
//! passed these checks; what fails is dropped (and the caller records that).

/// Longest address we accept (RFC 5321 §4.5.3.1.3: a path is at most 256
/// octets including the angle brackets).
pub const MAX_ADDRESS: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2) and label (RFC 1035).
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;
/// Longest Message-ID we keep. RFC 5322 sets no limit of its own, but a
/// header line must stay under 998 octets; real ids are well under 100.
pub const MAX_MESSAGE_ID: usize = 250;
/// Longest subject we keep and copy into our own mail, in characters.
pub const MAX_SUBJECT: usize = 250;
/// Longest display name we keep, in characters.
pub const MAX_NAME: usize = 100;

/// `addr` lower-cased when it is a valid mailbox `local@domain`: a dot-atom
/// local part (quoted local parts are refused: no help desk customer needs
/// one, and they are how spaces and quotes get into addresses) and a domain
/// of LDH or UTF-8 labels; no control characters, no whitespace anywhere.
pub fn mailbox(addr: &str) -> Option<String> {
    if addr.is_empty() || addr.len() > MAX_ADDRESS {
        return None;
    }
    let (local, domain) = addr.rsplit_once('@')?;
    (local_part_ok(local) && domain_ok(domain)).then(|| addr.to_ascii_lowercase())
}

/// Whether `c` is `atext` (RFC 5322 §3.2.3), widened to UTF-8 by RFC 6531.
fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

fn local_part_ok(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

fn domain_ok(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= MAX_DOMAIN
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !c.is_control())
                })
        })
}

/// `id` (without angle brackets) when it is a usable Message-ID: printable
/// ASCII without spaces or angle brackets, `left@right` with both sides
/// non-empty, at most [`MAX_MESSAGE_ID`] long. Ids such as `<yes>` or
/// `<12345>` identify nothing and would join unrelated conversations.
pub fn message_id(id: &str) -> Option<&str> {
    let ok = !id.is_empty()
        && id.len() <= MAX_MESSAGE_ID
        && id
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'<' && b != b'>')
        && id
            .rsplit_once('@')
            .is_some_and(|(l, r)| !l.is_empty() && !r.is_empty());
    ok.then_some(id)
}

/// Header text from a peer (a subject, a display name) made safe to store
/// and to write into our own headers: control characters (CR, LF, TAB …)
/// become spaces, runs of whitespace one space, and the result is cut to
/// `max` characters.
pub fn header_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut chars = 0;
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if chars >= max {
            break;
        }
        if pending_space {
            if chars + 1 >= max {
                break;
            }
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes() {
        assert_eq!(
            mailbox("Ann@Example.ORG").as_deref(),
            Some("ann@example.org")
        );
        assert!(mailbox("first.last+tag@sub.example.co.uk").is_some());
        assert!(mailbox("o'brien@example.ie").is_some());
        assert!(mailbox("jörg@bücher.example").is_some());
        for bad in [
            "",
            "no-at-sign",
            "@example.org",
            "ann@",
            "ann@localhost",
            "ann@example..org",
            "ann@-example.org",
            ".ann@example.org",
            "a..b@example.org",
            "ann smith@example.org",
            "spy@evil.example\rRCPT TO:<x@y.example>",
            "spy@evil.example\n",
            "\"quoted\"@example.org",
            "a<b@example.org",
            "ann@[127.0.0.1]",
        ] {
            assert_eq!(mailbox(bad), None, "{bad:?}");
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert_eq!(mailbox(&long_local), None);
        let long = format!("a@{}.org", "b.".repeat(130));
        assert_eq!(mailbox(&long), None);
    }

    #[test]
    fn message_ids() {
        assert_eq!(
            message_id("abc.123@host.example"),
            Some("abc.123@host.example")
        );
        assert_eq!(
            message_id("CAF=x+y/z@mail.gmail.com"),
            Some("CAF=x+y/z@mail.gmail.com")
        );
        for bad in [
            "",
            "yes",
            "12345",
            "@host",
            "abc@",
            "abc@host\rBcc: spy@evil.example",
            "abc def@host",
            "abc>@host",
        ] {
            assert_eq!(message_id(bad), None, "{bad:?}");
        }
        assert_eq!(message_id(&format!("{}@h", "x".repeat(300))), None);
    }

    #[test]
    fn header_texts() {
        assert_eq!(
            header_text("  Re:\r\n\tPrinter  on fire ", 100),
            "Re: Printer on fire"
        );
        assert_eq!(
            header_text("a\rBcc: spy@evil.example", 100),
            "a Bcc: spy@evil.example"
        );
        assert_eq!(header_text(&"x".repeat(1000), 250).chars().count(), 250);
        assert_eq!(header_text("ab cd", 3), "ab");
        assert_eq!(header_text("äöü", 2), "äö");
    }
}
