//! HMAC-signed plus-addresses.
//!
//! Reply address: `support+t{ticket}.{sig}@domain`, signed for one ticket and
//! one recipient, so a guessed ticket number gets nobody into a ticket.
//! Bounce (VERP) address: `support+b{ticket}.{message}.{sig}@domain`, the
//! envelope sender of our mail, so a delivery failure finds its ticket.

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

    /// Verifies the plus-tag of `rcpt`; `sender` is who the mail is from (reply
    /// tokens are only valid from the recipient they were made for).
    pub fn verify(&self, rcpt: &str, sender: &str) -> Option<Token> {
        let (local, _) = split_address(rcpt)?;
        let (_, tag) = local.split_once('+')?;
        let tag = tag.to_ascii_lowercase();
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
    fn base32_known_vector() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }
}
