//! HMAC-signed plus-addresses.
//!
//! Reply address: `support+t{ticket}.{expiry}.{sig}@domain`, signed for one
//! ticket and one recipient, so a guessed ticket number gets nobody into a
//! ticket.
//! Bounce (VERP) address: `support+b{ticket}.{message}.{sig}@domain`, the
//! envelope sender of our mail, so a delivery failure finds its ticket.
//! Agent address: `support+a{ticket}.{agent}.{version}.{expiry}.{sig}@domain`,
//! the Reply-To of a notification to one agent, signed for the ticket, the
//! agent and the ticket version the agent saw (collision detection). It only
//! says which ticket and agent the mail claims; the From must still be that
//! agent's.
//! Comment address: `comment+c{agent}.{expiry}.{sig}@domain`, one agent's
//! own address for internal notes by mail: the proof a forged From lacks.
//!
//! Reply, agent and comment tags expire: `expiry` is the last valid day
//! (days since 1970-01-01, UTC), covered by the signature; the lifetimes are
//! `[tokens]` in config.toml.

use crate::address::split_address;
use crate::model::{MessageSeq, TicketId};
use ring::hmac;
use std::time::Duration;

const SIG_LEN: usize = 12;

/// Signs and checks tokens with the installation's secret.
#[derive(Clone)]
pub struct Tokens {
    key: hmac::Key,
    /// Lifetime of reply tags, in days.
    reply_days: i64,
    /// Lifetime of agent and comment tags, in days.
    agent_days: i64,
}

const DAY: i64 = 86_400;

/// What a verified plus-address names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Reply {
        ticket: TicketId,
    },
    Bounce {
        ticket: TicketId,
        message: MessageSeq,
    },
    Agent {
        ticket: TicketId,
        /// Agent name, lower-cased.
        agent: String,
        /// The ticket version the agent saw.
        version: u64,
    },
    /// An agent's own comment address.
    Comment {
        /// Agent name, lower-cased.
        agent: String,
    },
}

/// An agent tag that did not verify: what it claims, for the notice to that agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAgent {
    pub ticket: Option<TicketId>,
    pub agent: String,
}

impl Tokens {
    /// Tokens signed with `secret`, with the default lifetimes of `[tokens]`.
    pub fn new(secret: &[u8]) -> Tokens {
        let defaults = crate::config::TokensConfig::default();
        Tokens::with_lifetimes(secret, defaults.reply_lifetime, defaults.agent_lifetime)
    }

    /// Tokens signed with `secret`: reply tags valid for `reply`, agent and
    /// comment tags for `agent` (each at least a day).
    pub fn with_lifetimes(secret: &[u8], reply: Duration, agent: Duration) -> Tokens {
        let days = |d: Duration| (d.as_secs().div_ceil(DAY as u64) as i64).max(1);
        Tokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            reply_days: days(reply),
            agent_days: days(agent),
        }
    }

    /// The last valid day of a tag made at `now` that lives `days`.
    fn expiry(now: i64, days: i64) -> i64 {
        now.div_euclid(DAY) + days
    }

    /// Whether a tag that expires on `day` is still valid at `now`.
    fn valid_on(day: i64, now: i64) -> bool {
        now.div_euclid(DAY) <= day
    }

    fn sig(&self, data: &str) -> String {
        let tag = hmac::sign(&self.key, data.as_bytes());
        base32(&tag.as_ref()[..8])[..SIG_LEN].to_string()
    }

    /// The address `recipient` should reply to for `ticket` (made at `now`).
    pub fn reply_address(
        &self,
        mailbox: &str,
        ticket: TicketId,
        recipient: &str,
        now: i64,
    ) -> String {
        let exp = Self::expiry(now, self.reply_days);
        let sig = self.sig(&format!(
            "reply:{ticket}:{exp}:{}",
            recipient.to_ascii_lowercase()
        ));
        plus(mailbox, &format!("t{ticket}.{exp}.{sig}"))
    }

    /// `agent`'s own comment address (made at `now`): mail from the agent to
    /// it is an internal note on the ticket its subject names.
    pub fn comment_address(&self, comment: &str, agent: &str, now: i64) -> String {
        let agent = agent.to_ascii_lowercase();
        let exp = Self::expiry(now, self.agent_days);
        let sig = self.sig(&format!("comment:{agent}:{exp}"));
        plus(comment, &format!("c{agent}.{exp}.{sig}"))
    }

    /// Envelope sender for message `message` of `ticket`.
    pub fn bounce_address(&self, mailbox: &str, ticket: TicketId, message: MessageSeq) -> String {
        let sig = self.sig(&format!("bounce:{ticket}:{message}"));
        plus(mailbox, &format!("b{ticket}.{message}.{sig}"))
    }

    /// The plus-tag naming `ticket`, `agent` and the ticket `version` the
    /// agent saw (made at `now`).
    pub fn agent_tag(&self, ticket: TicketId, agent: &str, version: u64, now: i64) -> String {
        let agent = agent.to_ascii_lowercase();
        let exp = Self::expiry(now, self.agent_days);
        let sig = self.sig(&format!("agent:{ticket}:{agent}:{version}:{exp}"));
        format!("a{ticket}.{agent}.{version}.{exp}.{sig}")
    }

    /// The address `agent` replies to about `ticket` (at `version`, made at `now`).
    pub fn agent_address(
        &self,
        mailbox: &str,
        ticket: TicketId,
        agent: &str,
        version: u64,
        now: i64,
    ) -> String {
        plus(mailbox, &self.agent_tag(ticket, agent, version, now))
    }

    /// Whether `rcpt` carries an agent tag at all (signed or not).
    pub fn is_agent_address(rcpt: &str) -> bool {
        plus_tag(rcpt).is_some_and(|t| is_agent_tag(&t))
    }

    /// What an agent tag that failed verification claims (ticket and agent name).
    pub fn claimed_agent(rcpt: &str) -> Option<ClaimedAgent> {
        let tag = plus_tag(rcpt)?;
        if !is_agent_tag(&tag) {
            return None;
        }
        let rest = &tag[1..];
        let (ticket, rest) = rest.split_once('.')?;
        let agent = rest.split('.').next()?.to_string();
        Some(ClaimedAgent {
            ticket: ticket.parse().ok(),
            agent,
        })
    }

    /// Verifies the plus-tag of `rcpt` at `now`; `sender` is who the mail is
    /// from (reply tokens are only valid from the recipient they were made for).
    pub fn verify(&self, rcpt: &str, sender: &str, now: i64) -> Option<Token> {
        self.verify_tag(&plus_tag(rcpt)?, sender, now)
    }

    /// Verifies a bare tag (`t…`, `b…`, `a…` or `c…`, as after the `+`) at `now`.
    pub fn verify_tag(&self, tag: &str, sender: &str, now: i64) -> Option<Token> {
        let tag = tag.to_ascii_lowercase();
        if let Some(rest) = tag.strip_prefix('a') {
            let (ticket, rest) = rest.split_once('.')?;
            let (rest, sig) = rest.rsplit_once('.')?;
            let (rest, exp) = rest.rsplit_once('.')?;
            let (agent, version) = rest.rsplit_once('.')?;
            let ticket: TicketId = ticket.parse().ok()?;
            let version: u64 = version.parse().ok()?;
            let exp: i64 = exp.parse().ok()?;
            if agent.is_empty() {
                return None;
            }
            let want = self.sig(&format!("agent:{ticket}:{agent}:{version}:{exp}"));
            return (constant_eq(&want, sig) && Self::valid_on(exp, now)).then(|| Token::Agent {
                ticket,
                agent: agent.to_string(),
                version,
            });
        }
        if let Some(rest) = tag.strip_prefix('c') {
            let (rest, sig) = rest.rsplit_once('.')?;
            let (agent, exp) = rest.rsplit_once('.')?;
            let exp: i64 = exp.parse().ok()?;
            if agent.is_empty() {
                return None;
            }
            let want = self.sig(&format!("comment:{agent}:{exp}"));
            return (constant_eq(&want, sig) && Self::valid_on(exp, now)).then(|| Token::Comment {
                agent: agent.to_string(),
            });
        }
        if let Some(rest) = tag.strip_prefix('t') {
            let (ticket, rest) = rest.split_once('.')?;
            let (exp, sig) = rest.split_once('.')?;
            let ticket: TicketId = ticket.parse().ok()?;
            let exp: i64 = exp.parse().ok()?;
            let want = self.sig(&format!(
                "reply:{ticket}:{exp}:{}",
                sender.to_ascii_lowercase()
            ));
            return (constant_eq(&want, sig) && Self::valid_on(exp, now))
                .then_some(Token::Reply { ticket });
        }
        if let Some(rest) = tag.strip_prefix('b') {
            let mut parts = rest.splitn(3, '.');
            let ticket: TicketId = parts.next()?.parse().ok()?;
            let message: MessageSeq = parts.next()?.parse().ok()?;
            let sig = parts.next()?;
            let want = self.sig(&format!("bounce:{ticket}:{message}"));
            return constant_eq(&want, sig).then_some(Token::Bounce { ticket, message });
        }
        None
    }
}

/// The lower-cased plus-tag of an address, if it has one.
fn plus_tag(addr: &str) -> Option<String> {
    let (local, _) = split_address(addr)?;
    let (_, tag) = local.split_once('+')?;
    Some(tag.to_ascii_lowercase())
}

/// `a` followed by a digit: an agent tag (whether or not it verifies).
fn is_agent_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    b.len() > 1 && (b[0] == b'a' || b[0] == b'A') && b[1].is_ascii_digit()
}

fn plus(mailbox: &str, tag: &str) -> String {
    match split_address(mailbox) {
        Some((l, d)) => format!("{}+{tag}@{d}", l.split('+').next().unwrap_or(l)),
        None => mailbox.to_string(),
    }
}

pub(crate) fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// RFC 4648 base32, lower case, no padding (case-insensitive in addresses).
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03, an arbitrary "now".
    const NOW: i64 = 1_796_256_000;

    #[test]
    fn reply_token_round_trip_and_forgery() {
        let t = Tokens::new(b"secret");
        let addr = t.reply_address("support@example.test", 42, "Ann@Example.org", NOW);
        assert!(addr.starts_with("support+t42."), "{addr}");
        assert_eq!(
            t.verify(&addr, "ann@example.org", NOW),
            Some(Token::Reply { ticket: 42 })
        );
        // another sender, another ticket number, another key: all refused
        assert_eq!(t.verify(&addr, "mallory@example.org", NOW), None);
        assert_eq!(
            t.verify(&addr.replace("t42", "t43"), "ann@example.org", NOW),
            None
        );
        assert_eq!(
            Tokens::new(b"other").verify(&addr, "ann@example.org", NOW),
            None
        );
        // mail clients may change the case of the local part
        assert_eq!(
            t.verify(&addr.to_ascii_uppercase(), "ann@example.org", NOW),
            Some(Token::Reply { ticket: 42 })
        );
    }

    #[test]
    fn tokens_expire_and_the_expiry_is_signed() {
        let t = Tokens::with_lifetimes(
            b"secret",
            Duration::from_secs(10 * 86400),
            Duration::from_secs(2 * 86400),
        );
        let reply = t.reply_address("support@example.test", 42, "ann@example.org", NOW);
        let agent = t.agent_address("support@example.test", 42, "alice", 0, NOW);
        let comment = t.comment_address("comment@example.test", "Alice", NOW);
        let later = |days: i64| NOW + days * 86400;
        assert!(t.verify(&reply, "ann@example.org", later(10)).is_some());
        assert_eq!(t.verify(&reply, "ann@example.org", later(11)), None);
        assert!(t.verify(&agent, "", later(2)).is_some());
        assert_eq!(t.verify(&agent, "", later(3)), None);
        assert_eq!(
            t.verify(&comment, "", later(1)),
            Some(Token::Comment {
                agent: "alice".into()
            })
        );
        assert_eq!(t.verify(&comment, "", later(3)), None);
        // Moving the expiry breaks the signature.
        let day = (NOW / 86400 + 10).to_string();
        let extended = reply.replace(&day, &(NOW / 86400 + 500).to_string());
        assert_ne!(extended, reply);
        assert_eq!(t.verify(&extended, "ann@example.org", NOW), None);
        for bad in [
            "c",
            "c.1.x",
            "calice.x.sig",
            "calice..sig",
            "t1.x.sig",
            "t1..sig",
        ] {
            assert_eq!(t.verify_tag(bad, "", NOW), None, "{bad}");
        }
    }

    #[test]
    fn bounce_token_round_trip() {
        let t = Tokens::new(b"secret");
        let addr = t.bounce_address("support@example.test", 7, 99);
        assert_eq!(
            t.verify(&addr, "", NOW),
            Some(Token::Bounce {
                ticket: 7,
                message: 99
            })
        );
        assert_eq!(t.verify(&addr.replace(".99.", ".98."), "", NOW), None);
    }

    #[test]
    fn agent_token_round_trip_and_forgery() {
        let t = Tokens::new(b"secret");
        let addr = t.agent_address("support@example.test", 42, "Alice", 3, NOW);
        assert!(addr.starts_with("support+a42.alice.3."), "{addr}");
        let local = addr.split('@').next().unwrap();
        assert!(local.len() <= 64, "{addr}");
        let want = Some(Token::Agent {
            ticket: 42,
            agent: "alice".into(),
            version: 3,
        });
        // the sender does not matter to the token (the From check is separate)
        assert_eq!(t.verify(&addr, "anyone@example.org", NOW), want);
        assert_eq!(t.verify(&addr.to_ascii_uppercase(), "", NOW), want);
        assert!(Tokens::is_agent_address(&addr));
        // another ticket, agent or version, or another key: refused
        for forged in [
            addr.replace("a42.", "a43."),
            addr.replace(".alice.", ".bob."),
            addr.replace(".3.", ".4."),
        ] {
            assert_eq!(t.verify(&forged, "", NOW), None, "{forged}");
            assert!(Tokens::is_agent_address(&forged));
        }
        assert_eq!(Tokens::new(b"other").verify(&addr, "", NOW), None);
        assert_eq!(
            Tokens::claimed_agent(&addr.replace(".3.", ".4.")),
            Some(ClaimedAgent {
                ticket: Some(42),
                agent: "alice".into()
            })
        );
        // the tag alone (as carried in our notification Message-IDs)
        let tag = t.agent_tag(7, "bob", 0, NOW);
        assert_eq!(
            t.verify_tag(&tag, "", NOW),
            Some(Token::Agent {
                ticket: 7,
                agent: "bob".into(),
                version: 0
            })
        );
        // malformed tags never panic and never verify
        for bad in [
            "a",
            "a1",
            "a1.",
            "a1..0.x",
            "ax.bob.0.sig",
            "a1.bob.x.sig",
            "a1.bob.0.x.sig",
        ] {
            assert_eq!(t.verify_tag(bad, "", NOW), None, "{bad}");
        }
        assert!(!Tokens::is_agent_address("support+t1.abc@example.test"));
        assert!(!Tokens::is_agent_address("support@example.test"));
    }

    #[test]
    fn base32_known_vector() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }
}
