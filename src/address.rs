//! Taking mail addresses apart: the bare `local@domain` of a header value,
//! its two halves, and whether an address is one of ours once its `+tag` is
//! ignored. These helpers only split; they never decide whether a peer's
//! address is acceptable. That gate is [`crate::syntax::mailbox`], applied
//! where peer headers become fields; keeping the two apart keeps the strict
//! check in one place and lets config, rules, tokens and the processor share
//! these lenient ones without depending on each other.

/// `"Name" <a@b>` or `a@b` → `a@b`.
pub fn bare_address(s: &str) -> &str {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].trim(),
        _ => s.trim(),
    }
}

/// Splits `local@domain`; None unless both parts are present.
pub fn split_address(addr: &str) -> Option<(&str, &str)> {
    let addr = bare_address(addr);
    let (l, d) = addr.rsplit_once('@')?;
    (!l.is_empty() && !d.is_empty() && !d.contains(char::is_whitespace)).then_some((l, d))
}

/// Whether `addr` is the mailbox `ours`, ignoring a `+tag` in `addr`'s local
/// part (our tokenised reply, agent and bounce addresses) and case.
pub fn same_mailbox(addr: &str, ours: &str) -> bool {
    match (split_address(addr), split_address(ours)) {
        (Some((l, d)), Some((ol, od))) => {
            l.split('+').next().unwrap_or(l).eq_ignore_ascii_case(ol) && d.eq_ignore_ascii_case(od)
        }
        _ => false,
    }
}

/// The organisational domain of `domain`, approximated without the public
/// suffix list: the last two labels, or three under a two-letter country
/// code whose second level is a generic one (`example.co.uk`).
pub fn organisational(domain: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3
        && labels[n - 1].len() == 2
        && [
            "co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "ltd", "plc",
        ]
        .contains(&labels[n - 2])
    {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// Whether two domains belong to the same organisation.
pub fn related(a: &str, b: &str) -> bool {
    organisational(a) == organisational(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses() {
        assert_eq!(
            bare_address("\"Ann, Support\" <ann@example.test>"),
            "ann@example.test"
        );
        assert_eq!(bare_address("  ann@example.test "), "ann@example.test");
        assert_eq!(bare_address("broken> <"), "broken> <");
    }

    #[test]
    fn split_addresses() {
        assert_eq!(
            split_address("Ann <a+b@c@example.test>"),
            Some(("a+b@c", "example.test"))
        );
        assert_eq!(split_address("@example.test"), None);
        assert_eq!(split_address("ann@"), None);
        assert_eq!(split_address("ann@exa mple.test"), None);
    }

    #[test]
    fn same_mailbox_ignores_the_tag_and_case() {
        assert!(same_mailbox(
            "Support+T12.abc@Example.TEST",
            "support@example.test"
        ));
        assert!(!same_mailbox(
            "support@example.test",
            "support+x@example.test"
        ));
        assert!(!same_mailbox("sales@example.test", "support@example.test"));
        assert!(!same_mailbox("support@other.test", "support@example.test"));
        assert!(!same_mailbox("nobody", "nobody"));
    }
}
