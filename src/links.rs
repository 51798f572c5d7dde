//! Signed customer links, and the URLs made of them: the status page, the satisfaction survey, the
//! chat's "continue here" link. A link is the customer's only key (there
//! are no customer accounts), so it is signed for one purpose, one ticket
//! and one recipient, and it expires.
//!
//! The URL carries no address: `{ticket}.{expiry}.{sig}` where `sig` is an
//! HMAC over purpose, ticket, expiry and the recipient's address. Checking
//! tries the ticket's participants (at most `tickets.max_participants_per_ticket`),
//! so a link names its recipient without putting an address in logs or
//! Referer headers. Rotating the secret (`web.link_secret_file`) revokes
//! every link at once.

use crate::model::TicketId;
use ring::hmac;

/// Where customers reach the public pages and how links to them are made.
#[derive(Clone)]
pub struct Urls {
    /// `web.public_url` without a trailing slash, e.g. `https://help.example.com`.
    pub base: String,
    pub links: Links,
    /// `web.link_lifetime`, in seconds.
    pub lifetime: i64,
}

impl Urls {
    /// The status page of `ticket` for `recipient`.
    pub fn status(&self, ticket: crate::model::TicketId, recipient: &str, now: i64) -> String {
        let token = self
            .links
            .sign(Purpose::Status, ticket, recipient, now, self.lifetime);
        format!("{}/status/{token}", self.base)
    }
}

/// Days since 1970-01-01 (UTC) of a Unix time.
fn day(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

/// What a link may be used for; part of the signature, so a survey link
/// does not open the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Status,
    Survey,
    Chat,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Status => "status",
            Purpose::Survey => "survey",
            Purpose::Chat => "chat",
        }
    }
}

/// A verified link: which ticket, for whom, valid until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub ticket: TicketId,
    pub recipient: String,
    /// Last valid day (days since 1970-01-01, UTC).
    pub expiry_day: i64,
}

/// Signs and checks customer links with the installation's link secret.
#[derive(Clone)]
pub struct Links {
    key: hmac::Key,
}

const SIG_LEN: usize = 16;

impl Links {
    pub fn new(secret: &[u8]) -> Links {
        Links {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn sig(&self, purpose: Purpose, ticket: TicketId, expiry_day: i64, recipient: &str) -> String {
        let msg = format!(
            "{}\n{ticket}\n{expiry_day}\n{}",
            purpose.label(),
            recipient.to_ascii_lowercase()
        );
        let tag = hmac::sign(&self.key, msg.as_bytes());
        let mut s = crate::token::base32(tag.as_ref());
        s.truncate(SIG_LEN);
        s
    }

    /// The path token of a link for `recipient`, valid for `lifetime_secs`
    /// from `now`.
    pub fn sign(
        &self,
        purpose: Purpose,
        ticket: TicketId,
        recipient: &str,
        now: i64,
        lifetime_secs: i64,
    ) -> String {
        let expiry_day = day(now.saturating_add(lifetime_secs));
        format!(
            "{ticket}.{expiry_day}.{}",
            self.sig(purpose, ticket, expiry_day, recipient)
        )
    }

    /// Checks `token` against the addresses that may hold it (the ticket's
    /// participants); None when malformed, forged, for another purpose or
    /// expired. Compares in constant time per candidate.
    pub fn verify<'a>(
        &self,
        purpose: Purpose,
        token: &str,
        candidates: impl IntoIterator<Item = &'a str>,
        now: i64,
    ) -> Option<Verified> {
        let (ticket, expiry_day, sig) = Self::parse(token)?;
        if day(now) > expiry_day {
            return None;
        }
        candidates.into_iter().find_map(|recipient| {
            let want = self.sig(purpose, ticket, expiry_day, recipient);
            crate::token::constant_eq(&want, sig).then(|| Verified {
                ticket,
                recipient: recipient.to_ascii_lowercase(),
                expiry_day,
            })
        })
    }

    /// An HMAC of `msg` under the link key for tokens that are not links
    /// (the public forms' anti-forgery tokens), kept apart from links by
    /// `label`; rotating the secret revokes them too.
    pub fn mac(&self, label: &str, msg: &str) -> String {
        let tag = hmac::sign(&self.key, format!("{label}\n{msg}").as_bytes());
        let mut s = crate::token::base32(tag.as_ref());
        s.truncate(26);
        s
    }

    /// The token a page's form carries for the link it was opened by
    /// (CSRF): bound to that link token, so another page's form, or a
    /// forged post without the page, does not pass.
    pub fn form_token(&self, link_token: &str) -> String {
        self.mac("form", link_token)
    }

    /// Whether `given` is the form token of `link_token` (constant time).
    pub fn form_token_ok(&self, link_token: &str, given: &str) -> bool {
        crate::token::constant_eq(&self.form_token(link_token), given)
    }

    /// The ticket a token claims, before any check: to load its
    /// participants. Claims nothing by itself.
    pub fn claimed_ticket(token: &str) -> Option<TicketId> {
        Self::parse(token).map(|(t, _, _)| t)
    }

    fn parse(token: &str) -> Option<(TicketId, i64, &str)> {
        if token.len() > 64 {
            return None;
        }
        let mut parts = token.split('.');
        let ticket = parts.next()?.parse::<TicketId>().ok()?;
        let expiry_day = parts.next()?.parse::<i64>().ok()?;
        let sig = parts.next()?;
        if parts.next().is_some() || sig.len() != SIG_LEN {
            return None;
        }
        Some((ticket, expiry_day, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;
    const DAY: i64 = 86_400;

    fn links() -> Links {
        Links::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_link_verifies_for_its_recipient_only() {
        let l = links();
        let t = l.sign(Purpose::Status, 42, "Ann@Example.org", NOW, 30 * DAY);
        let v = l
            .verify(
                Purpose::Status,
                &t,
                ["bob@example.org", "ann@example.org"],
                NOW,
            )
            .expect("valid for ann");
        assert_eq!(v.ticket, 42);
        assert_eq!(v.recipient, "ann@example.org");
        assert!(
            l.verify(Purpose::Status, &t, ["bob@example.org"], NOW)
                .is_none()
        );
        assert!(!t.contains('@'), "no address in the URL: {t}");
    }

    #[test]
    fn tampered_expired_foreign_or_other_purpose_links_fail() {
        let l = links();
        let t = l.sign(Purpose::Status, 42, "ann@example.org", NOW, 30 * DAY);
        let who = ["ann@example.org"];
        // Another ticket number with the same signature.
        let other = t.replacen("42.", "43.", 1);
        assert!(l.verify(Purpose::Status, &other, who, NOW).is_none());
        // A later expiry with the same signature.
        let (_, rest) = t.split_once('.').unwrap();
        let (exp, sig) = rest.split_once('.').unwrap();
        let later = format!("42.{}.{sig}", exp.parse::<i64>().unwrap() + 100);
        assert!(l.verify(Purpose::Status, &later, who, NOW).is_none());
        // Expired.
        assert!(l.verify(Purpose::Status, &t, who, NOW + 31 * DAY).is_none());
        // Valid through its last day.
        assert!(l.verify(Purpose::Status, &t, who, NOW + 30 * DAY).is_some());
        // Another purpose.
        assert!(l.verify(Purpose::Survey, &t, who, NOW).is_none());
        // Another secret (rotation revokes).
        let rotated = Links::new(b"another secret, 32 bytes long!!!");
        assert!(rotated.verify(Purpose::Status, &t, who, NOW).is_none());
        // Garbage.
        for bad in ["", "42", "42.1.x", "a.b.c", &"9".repeat(100)] {
            assert!(l.verify(Purpose::Status, bad, who, NOW).is_none(), "{bad}");
        }
    }
}
