//! HMAC-signed plus-addresses.
//!
//! Reply address: `support+t{ticket}.{sig}@domain`, signed for one ticket and
//! one recipient, so a guessed ticket number gets nobody into a ticket.
//! Bounce (VERP) address: `support+b{ticket}.{message}.{sig}@domain`, the
//! envelope sender of our mail, so a delivery failure finds its ticket.
//! Agent address: `support+a{ticket}.{agent}.{version}.{sig}@domain`, the
//! Reply-To of a notification to one agent, signed for the ticket, the agent
//! and the ticket version the agent saw (collision detection). It only says
//! which ticket and agent the mail claims; the From must still be that agent's.

use crate::config::split_address;
use crate::model::{MessageSeq, TicketId};
use ring::hmac;

const SIG_LEN: usize = 12;

/// Signs and checks tokens with the installation's secret.
#[derive(Clone)]
pub struct Tokens {
    key: hmac::Key,
}

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
}

/// An agent tag that did not verify: what it claims, for the notice to that agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAgent {
    pub ticket: Option<TicketId>,
    pub agent: String,
}

impl Tokens {
    pub fn new(secret: &[u8]) -> Tokens {
        Tokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn sig(&self, data: &str) -> String {
        let tag = hmac::sign(&self.key, data.as_bytes());
        base32(&tag.as_ref()[..8])[..SIG_LEN].to_string()
    }

    /// The address `recipient` should reply to for `ticket`.
    pub fn reply_address(&self, mailbox: &str, ticket: TicketId, recipient: &str) -> String {
        let sig = self.sig(&format!(
            "reply:{ticket}:{}",
            recipient.to_ascii_lowercase()
        ));
        plus(mailbox, &format!("t{ticket}.{sig}"))
    }

    /// Envelope sender for message `message` of `ticket`.
    pub fn bounce_address(&self, mailbox: &str, ticket: TicketId, message: MessageSeq) -> String {
        let sig = self.sig(&format!("bounce:{ticket}:{message}"));
        plus(mailbox, &format!("b{ticket}.{message}.{sig}"))
    }

    /// The plus-tag naming `ticket`, `agent` and the ticket `version` the agent saw.
    pub fn agent_tag(&self, ticket: TicketId, agent: &str, version: u64) -> String {
        let agent = agent.to_ascii_lowercase();
        let sig = self.sig(&format!("agent:{ticket}:{agent}:{version}"));
        format!("a{ticket}.{agent}.{version}.{sig}")
    }

    /// The address `agent` replies to about `ticket` (at `version`).
    pub fn agent_address(
        &self,
        mailbox: &str,
        ticket: TicketId,
        agent: &str,
        version: u64,
    ) -> String {
        plus(mailbox, &self.agent_tag(ticket, agent, version))
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

    /// Verifies the plus-tag of `rcpt`; `sender` is who the mail is from (reply
    /// tokens are only valid from the recipient they were made for).
    pub fn verify(&self, rcpt: &str, sender: &str) -> Option<Token> {
        self.verify_tag(&plus_tag(rcpt)?, sender)
    }

    /// Verifies a bare tag (`t…`, `b…` or `a…`, as after the `+`).
    pub fn verify_tag(&self, tag: &str, sender: &str) -> Option<Token> {
        let tag = tag.to_ascii_lowercase();
        if let Some(rest) = tag.strip_prefix('a') {
            let (ticket, rest) = rest.split_once('.')?;
            let (rest, sig) = rest.rsplit_once('.')?;
            let (agent, version) = rest.rsplit_once('.')?;
            let ticket: TicketId = ticket.parse().ok()?;
            let version: u64 = version.parse().ok()?;
            if agent.is_empty() {
                return None;
            }
            let want = self.sig(&format!("agent:{ticket}:{agent}:{version}"));
            return constant_eq(&want, sig).then(|| Token::Agent {
                ticket,
                agent: agent.to_string(),
                version,
            });
        }
        if let Some(rest) = tag.strip_prefix('t') {
            let (ticket, sig) = rest.split_once('.')?;
            let ticket: TicketId = ticket.parse().ok()?;
            let want = self.sig(&format!("reply:{ticket}:{}", sender.to_ascii_lowercase()));
            return constant_eq(&want, sig).then_some(Token::Reply { ticket });
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

fn constant_eq(a: &str, b: &str) -> bool {
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

    #[test]
    fn reply_token_round_trip_and_forgery() {
        let t = Tokens::new(b"secret");
        let addr = t.reply_address("support@example.test", 42, "Ann@Example.org");
        assert!(addr.starts_with("support+t42."), "{addr}");
        assert_eq!(
            t.verify(&addr, "ann@example.org"),
            Some(Token::Reply { ticket: 42 })
        );
        // another sender, another ticket number, another key: all refused
        assert_eq!(t.verify(&addr, "mallory@example.org"), None);
        assert_eq!(
            t.verify(&addr.replace("t42", "t43"), "ann@example.org"),
            None
        );
        assert_eq!(Tokens::new(b"other").verify(&addr, "ann@example.org"), None);
        // mail clients may change the case of the local part
        assert_eq!(
            t.verify(&addr.to_ascii_uppercase(), "ann@example.org"),
            Some(Token::Reply { ticket: 42 })
        );
    }

    #[test]
    fn bounce_token_round_trip() {
        let t = Tokens::new(b"secret");
        let addr = t.bounce_address("support@example.test", 7, 99);
        assert_eq!(
            t.verify(&addr, ""),
            Some(Token::Bounce {
                ticket: 7,
                message: 99
            })
        );
        assert_eq!(t.verify(&addr.replace(".99.", ".98."), ""), None);
    }

    #[test]
    fn agent_token_round_trip_and_forgery() {
        let t = Tokens::new(b"secret");
        let addr = t.agent_address("support@example.test", 42, "Alice", 3);
        assert!(addr.starts_with("support+a42.alice.3."), "{addr}");
        let local = addr.split('@').next().unwrap();
        assert!(local.len() <= 64, "{addr}");
        let want = Some(Token::Agent {
            ticket: 42,
            agent: "alice".into(),
            version: 3,
        });
        // the sender does not matter to the token (the From check is separate)
        assert_eq!(t.verify(&addr, "anyone@example.org"), want);
        assert_eq!(t.verify(&addr.to_ascii_uppercase(), ""), want);
        assert!(Tokens::is_agent_address(&addr));
        // another ticket, agent or version, or another key: refused
        for forged in [
            addr.replace("a42.", "a43."),
            addr.replace(".alice.", ".bob."),
            addr.replace(".3.", ".4."),
        ] {
            assert_eq!(t.verify(&forged, ""), None, "{forged}");
            assert!(Tokens::is_agent_address(&forged));
        }
        assert_eq!(Tokens::new(b"other").verify(&addr, ""), None);
        assert_eq!(
            Tokens::claimed_agent(&addr.replace(".3.", ".4.")),
            Some(ClaimedAgent {
                ticket: Some(42),
                agent: "alice".into()
            })
        );
        // the tag alone (as carried in our notification Message-IDs)
        let tag = t.agent_tag(7, "bob", 0);
        assert_eq!(
            t.verify_tag(&tag, ""),
            Some(Token::Agent {
                ticket: 7,
                agent: "bob".into(),
                version: 0
            })
        );
        // malformed tags never panic and never verify
        for bad in ["a", "a1", "a1.", "a1..0.x", "ax.bob.0.sig", "a1.bob.x.sig"] {
            assert_eq!(t.verify_tag(bad, ""), None, "{bad}");
        }
        assert!(!Tokens::is_agent_address("support+t1.abc@example.test"));
        assert!(!Tokens::is_agent_address("support@example.test"));
    }

    #[test]
    fn base32_known_vector() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }
}
