//! Does anything vouch that a message comes from the address in its From?
//!
//! A From header is whatever the sender typed, so postdesk weighs the
//! evidence it has:
//! - `Authentication-Results` of a trusted authserv-id ([`trusted_id`]): our
//!   own (`server.hostname`) for mail our SMTP intake verified
//!   (`crate::sender_auth`), else the receiving MTA's
//!   (`agents.trusted_authserv_id`): a DMARC pass, or a DKIM pass for the
//!   From's domain, vouches; a DMARC or DKIM failure condemns;
//! - the envelope sender (for IMAP mail, the receiving MTA's Return-Path):
//!   the same organisational domain as the From, directly or through an SRS
//!   forwarding address, vouches. A forger who writes a victim's From rarely
//!   also uses the victim's domain in the envelope, since SPF would then
//!   fail on any receiving MTA that checks it.
//!
//! Measured on real mail (bench/alignment.py over the fixture corpora): every
//! person-to-person message carried an envelope sender of its From's
//! organisational domain; the unrelated ones were mailing lists, newsletters,
//! bounces, auto-replies, spam, synthetic test messages and a ticket system
//! sending from a sibling domain. Mail relayed by mailing services (an ESP's
//! bounce domain, DKIM-signed for the From) is vouched for only where the
//! trusted MTA reports the DKIM pass: an unverified DKIM-Signature header
//! proves nothing.
//!
//! Pure functions over [`Parsed`] and the envelope.

use super::parse::Parsed;
pub use crate::address::{organisational, related};
use crate::config::split_address;
use crate::model::Envelope;

/// What the evidence says about a message's From.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vouch {
    /// The trusted MTA reports a DMARC pass or an aligned DKIM pass.
    Authenticated(String),
    /// The envelope sender is of the From's organisational domain.
    Aligned,
    /// Nothing vouches (unrelated or null envelope sender), in words.
    Unverified(String),
    /// The trusted MTA reports a DMARC or DKIM failure, in words.
    Failed(String),
}

impl Vouch {
    /// Whether the message may be taken as coming from its From.
    pub fn vouched(&self) -> bool {
        matches!(self, Vouch::Authenticated(_) | Vouch::Aligned)
    }

    /// Why not, when it is not vouched for.
    pub fn doubt(&self) -> Option<&str> {
        match self {
            Vouch::Unverified(why) | Vouch::Failed(why) => Some(why),
            Vouch::Authenticated(_) | Vouch::Aligned => None,
        }
    }
}

/// What the door a message came through says of its From, where that
/// settles it: the web form vouches for nothing (anyone types any address),
/// a signed status link vouches for exactly the participant it was made
/// for. None for mail, whose evidence [`vouch`] weighs.
pub fn by_source(env: &Envelope, from: &str) -> Option<Vouch> {
    use crate::model::Source;
    match &env.source {
        Source::WebForm => Some(Vouch::Unverified(
            "typed into the web form (anyone can type any address)".into(),
        )),
        Source::StatusLink { ticket, recipient } if recipient.eq_ignore_ascii_case(from) => Some(
            Vouch::Authenticated(format!("signed status link of #{ticket} for {recipient}")),
        ),
        Source::StatusLink { recipient, .. } => Some(Vouch::Failed(format!(
            "a status-link message from {from} for {recipient}"
        ))),
        // A chat line comes from the visitor holding the conversation's
        // token, who started its ticket: weighed like mail (its envelope
        // sender is the typed address). `verified` says whether that
        // address was proven; the lines of an unproven one still belong to
        // their own conversation's ticket.
        Source::Chat { .. } | Source::Smtp | Source::Imap | Source::Api | Source::Import => None,
    }
}

/// Whose `Authentication-Results` are believed for a message: our own
/// (`ours`, `server.hostname`) when our SMTP intake verified it (it renamed
/// every incoming header claiming our id, so the topmost one is ours), else
/// the configured MTA's (`agents.trusted_authserv_id`), as for IMAP and
/// `deliver` mail, whose headers of our id nobody checked.
pub fn trusted_id<'a>(
    env: &Envelope,
    ours: &'a str,
    configured: Option<&'a str>,
) -> Option<&'a str> {
    if env.sender_auth.is_some() {
        Some(ours)
    } else {
        configured
    }
}

/// Weighs the evidence that `parsed` comes from `from` (its From address).
pub fn vouch(parsed: &Parsed, env: &Envelope, from: &str, trusted: Option<&str>) -> Vouch {
    let from_domain = split_address(from).map(|(_, d)| d.to_ascii_lowercase());
    if let Some(results) = trusted.and_then(|id| auth_results(parsed, id)) {
        if let Some(why) = results.failure() {
            return Vouch::Failed(why);
        }
        if let Some(d) = &from_domain
            && let Some(how) = results.pass_for(d)
        {
            return Vouch::Authenticated(how);
        }
    }
    let Some(from_domain) = from_domain else {
        return Vouch::Unverified("the mail has no usable From address".into());
    };
    let envelope = env.mail_from.trim();
    if envelope.is_empty() {
        return Vouch::Unverified("its envelope sender is null".into());
    }
    let Some((local, domain)) = split_address(envelope) else {
        return Vouch::Unverified(format!(
            "its envelope sender {envelope:?} is not an address"
        ));
    };
    let domain = srs_original_domain(local).unwrap_or(domain);
    if related(domain, &from_domain) {
        Vouch::Aligned
    } else {
        Vouch::Unverified(format!(
            "its envelope sender {envelope} is of another domain than its From {from}"
        ))
    }
}

/// The original sender's domain inside an SRS address (`SRS0=hash=tt=domain=local@forwarder`,
/// `SRS1=hash=forwarder==hash=tt=domain=local@…`), which forwarders use as envelope sender.
fn srs_original_domain(local: &str) -> Option<&str> {
    let upper = local.get(..5)?.to_ascii_uppercase();
    let fields = match upper.as_str() {
        "SRS0=" | "SRS0+" | "SRS0-" => &local[5..],
        "SRS1=" | "SRS1+" | "SRS1-" => local.split_once("==")?.1,
        _ => return None,
    };
    // hash = tt = domain = local
    let domain = fields.split('=').nth(2)?;
    (!domain.is_empty()).then_some(domain)
}

/// The verdicts of the first `Authentication-Results` header of one authserv-id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuthResults {
    pub id: String,
    /// `dmarc=…` result and its `header.from`.
    pub dmarc: Option<(String, String)>,
    /// `dkim=…` results with their `header.d` (or the domain of `header.i`).
    pub dkim: Vec<(String, String)>,
}

impl AuthResults {
    /// A DMARC failure, or a DKIM failure with no DKIM pass, in words.
    pub fn failure(&self) -> Option<String> {
        if self.dmarc.as_ref().is_some_and(|(r, _)| r == "fail") {
            return Some(format!("{} reports dmarc=fail", self.id));
        }
        let failed = self.dkim.iter().any(|(r, _)| r == "fail");
        let passed = self.dkim.iter().any(|(r, _)| r == "pass");
        (failed && !passed).then(|| format!("{} reports dkim=fail", self.id))
    }

    /// How this vouches for mail from `domain`: a DMARC pass for it, or a
    /// DKIM pass by a signer of the same organisation.
    pub fn pass_for(&self, domain: &str) -> Option<String> {
        if let Some((r, from)) = &self.dmarc
            && r == "pass"
            && (from.is_empty() || from.eq_ignore_ascii_case(domain))
        {
            return Some(format!("{} reports dmarc=pass", self.id));
        }
        self.dkim
            .iter()
            .find(|(r, d)| r == "pass" && !d.is_empty() && related(d, domain))
            .map(|(_, d)| format!("{} reports dkim=pass for {d}", self.id))
    }
}

/// The first `Authentication-Results` header written by `trusted` (RFC 8601).
/// The receiving MTA prepends its own, above any a sender wrote, and removes
/// forged ones carrying its authserv-id.
pub fn auth_results(parsed: &Parsed, trusted: &str) -> Option<AuthResults> {
    let value = parsed.headers.iter().find_map(|(name, value)| {
        if name != "authentication-results" {
            return None;
        }
        let id = value.split(';').next()?.split_whitespace().next()?;
        id.eq_ignore_ascii_case(trusted).then_some(value)
    })?;
    let mut out = AuthResults {
        id: trusted.to_string(),
        ..AuthResults::default()
    };
    for resinfo in value.split(';').skip(1) {
        let mut words = resinfo.split_whitespace();
        let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
            continue;
        };
        let result = result.to_ascii_lowercase();
        let prop = |key: &str| -> String {
            resinfo
                .split_whitespace()
                .find_map(|w| {
                    let (k, v) = w.split_once('=')?;
                    k.eq_ignore_ascii_case(key)
                        .then(|| v.trim_matches('"').to_ascii_lowercase())
                })
                .unwrap_or_default()
        };
        match method.to_ascii_lowercase().as_str() {
            "dmarc" => out.dmarc = Some((result, prop("header.from"))),
            "dkim" => {
                let mut d = prop("header.d");
                if d.is_empty() {
                    d = prop("header.i")
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_string())
                        .unwrap_or_default();
                }
                out.dkim.push((result, d));
            }
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    fn env(mail_from: &str) -> Envelope {
        Envelope {
            mail_from: mail_from.into(),
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

    fn parsed(headers: &[(&str, &str)]) -> Parsed {
        Parsed {
            from: "ann@example.org".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Parsed::default()
        }
    }

    #[test]
    fn envelope_alignment() {
        let p = parsed(&[]);
        let v = |e: &str| vouch(&p, &env(e), "ann@example.org", None);
        assert_eq!(v("ann@example.org"), Vouch::Aligned);
        assert_eq!(v("bounces@mail.example.org"), Vouch::Aligned);
        assert_eq!(
            v("SRS0=HHH=TT=example.org=ann@forwarder.example"),
            Vouch::Aligned
        );
        assert_eq!(
            v("SRS1=HHH=fwd1.example==HHH=TT=example.org=ann@fwd2.example"),
            Vouch::Aligned
        );
        assert!(matches!(v("mallory@evil.example"), Vouch::Unverified(_)));
        assert!(matches!(
            v("SRS0=HHH=TT=evil.example=x@forwarder.example"),
            Vouch::Unverified(_)
        ));
        assert!(matches!(v(""), Vouch::Unverified(_)));
        assert!(!v("mallory@evil.example").vouched());
    }

    #[test]
    fn organisational_domains() {
        assert_eq!(organisational("mail.example.co.uk"), "example.co.uk");
        assert_eq!(organisational("a.b.example.com"), "example.com");
        assert_eq!(organisational("example.com."), "example.com");
        assert!(!related("example.co.uk", "other.co.uk"));
    }

    #[test]
    fn trusted_results() {
        let ar = |v: &str| parsed(&[("authentication-results", v)]);
        let t = Some("mx.example.test");
        let forged = env("mallory@evil.example");
        let p = ar("mx.example.test; dkim=pass header.d=example.org header.s=s1; spf=fail");
        assert!(matches!(
            vouch(&p, &forged, "ann@example.org", t),
            Vouch::Authenticated(_)
        ));
        let p = ar("mx.example.test; dmarc=pass header.from=example.org");
        assert!(matches!(
            vouch(&p, &forged, "ann@example.org", t),
            Vouch::Authenticated(_)
        ));
        // A DKIM pass by someone else's domain vouches for nothing.
        let p = ar("mx.example.test; dkim=pass header.d=evil.example");
        assert!(matches!(
            vouch(&p, &forged, "ann@example.org", t),
            Vouch::Unverified(_)
        ));
        let p = ar("mx.example.test; dmarc=fail header.from=example.org");
        let aligned = env("ann@example.org");
        assert!(matches!(
            vouch(&p, &aligned, "ann@example.org", t),
            Vouch::Failed(_)
        ));
        // Another authserv-id's header is not read at all.
        let p = ar("mx.evil.example; dmarc=pass header.from=example.org");
        assert!(matches!(
            vouch(&p, &forged, "ann@example.org", t),
            Vouch::Unverified(_)
        ));
        // Only the first header of the trusted id counts (the MTA's own, prepended).
        let p = parsed(&[
            ("authentication-results", "mx.example.test; dkim=none"),
            (
                "authentication-results",
                "mx.example.test; dmarc=pass header.from=example.org",
            ),
        ]);
        assert!(matches!(
            vouch(&p, &forged, "ann@example.org", t),
            Vouch::Unverified(_)
        ));
    }
}
