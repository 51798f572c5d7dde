//! Sender authentication on SMTP intake: SPF (HELO and MAIL FROM against the
//! client's address), DKIM (every signature), DMARC (alignment and the From
//! domain's policy) and ARC where a chain is present, checked by mail-auth
//! before the message is committed to the spool. The only module naming
//! mail-auth's verifier and hickory's resolver configuration.
//!
//! What it produces is evidence, never a refusal: the message is stored
//! either way, with our own `Authentication-Results` (authserv-id
//! `server.hostname`) prepended, and every incoming one that claims our
//! authserv-id renamed to `X-Forged-Authentication-Results`, so the topmost
//! header of our id is always ours (RFC 8601 §5). The processor believes it
//! only for mail whose envelope carries our [`SenderVerdict`], i.e. mail that
//! went through [`Verifier::check`].
//!
//! Time is bounded: all lookups of one message share `auth.timeout`. A
//! lookup that has not answered by then makes its method `temperror` and the
//! message goes on to the spool; a slow or dead DNS server delays each
//! message by at most that long and never blocks intake.

use crate::address::related;
use crate::model::{SenderVerdict, Verdict};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::Signature;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult,
    MessageAuthenticator, SpfOutput, SpfResult,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// The header name a forged `Authentication-Results` of our id is renamed to.
const FORGED: &str = "X-Forged-Authentication-Results";

/// Why no verifier could be made (the resolver configuration).
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// Verifies senders with one shared resolver (its cache serves every session).
pub struct Verifier {
    auth: MessageAuthenticator,
    /// Our authserv-id (`server.hostname`).
    authserv_id: String,
    timeout: Duration,
}

/// A message after verification: the bytes to store and the verdict.
pub struct Checked {
    /// Our `Authentication-Results` on top, forged ones of our id renamed.
    pub raw: Vec<u8>,
    pub verdict: SenderVerdict,
}

impl Verifier {
    /// A verifier asking `dns_server` (else the system's resolvers), naming
    /// itself `authserv_id`, spending at most `timeout` per message.
    pub fn new(
        authserv_id: &str,
        dns_server: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<Verifier, VerifierError> {
        let auth = match dns_server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let mut opts = ResolverOpts::default();
                // One attempt per lookup, well inside the message's budget.
                opts.timeout = timeout.min(Duration::from_secs(2));
                opts.attempts = 1;
                MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![server]), opts)
            }
            None => MessageAuthenticator::new_system_conf(),
        }
        .map_err(|e| VerifierError::Resolver(e.to_string()))?;
        Ok(Verifier {
            auth,
            authserv_id: authserv_id.to_string(),
            timeout,
        })
    }

    /// Verifies `raw`, received from `ip` after `HELO helo` and
    /// `MAIL FROM:<mail_from>`, and returns the bytes to store and the verdict.
    #[tracing::instrument(name = "sender_auth", skip_all, fields(%ip))]
    pub async fn check(&self, raw: &[u8], ip: IpAddr, helo: &str, mail_from: &str) -> Checked {
        let started = std::time::Instant::now();
        let deadline = Instant::now() + self.timeout;
        let helo_domain = helo_domain(helo);
        let (header, verdict) = match AuthenticatedMessage::parse(raw) {
            Some(msg) => {
                self.verify(&msg, deadline, ip, helo_domain, mail_from)
                    .await
            }
            None => (
                format!("Authentication-Results: {}; none\r\n", self.authserv_id),
                SenderVerdict {
                    verdict: Verdict::None,
                    mechanism: String::new(),
                    domain: String::new(),
                    spf: "none".into(),
                    dkim: "none".into(),
                    dmarc: "none".into(),
                    arc: None,
                    dmarc_policy: None,
                },
            ),
        };
        tracing::debug!(
            verdict = verdict.verdict.as_str(),
            mechanism = %verdict.mechanism,
            spf = %verdict.spf,
            dkim = %verdict.dkim,
            dmarc = %verdict.dmarc,
            micros = started.elapsed().as_micros() as u64,
            "sender verified"
        );
        let mut out = Vec::with_capacity(raw.len() + header.len() + 64);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&rename_forged(raw, &self.authserv_id));
        Checked { raw: out, verdict }
    }

    async fn verify(
        &self,
        msg: &AuthenticatedMessage<'_>,
        deadline: Instant,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> (String, SenderVerdict) {
        let host = self.authserv_id.as_str();
        let from_domain = msg
            .from
            .first()
            .and_then(|f| f.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        // RFC 7208 §2.4: a null reverse path is checked as postmaster@HELO.
        let envelope_domain = mail_from
            .rsplit_once('@')
            .map_or(helo, |(_, d)| d)
            .to_ascii_lowercase();

        let spf_helo = async {
            if helo.is_empty() {
                return SpfOutput::new(String::new());
            }
            let params = SpfParameters::verify_ehlo(ip, helo, host);
            timeout_at(deadline, self.auth.verify_spf(params))
                .await
                .unwrap_or_else(|_| {
                    SpfOutput::new(helo.to_string()).with_result(SpfResult::TempError)
                })
        };
        let spf_mail = async {
            if mail_from.is_empty() {
                return None;
            }
            let params = SpfParameters::verify_mail_from(ip, helo, host, mail_from);
            Some(
                timeout_at(deadline, self.auth.verify_spf(params))
                    .await
                    .unwrap_or_else(|_| {
                        SpfOutput::new(envelope_domain.clone()).with_result(SpfResult::TempError)
                    }),
            )
        };
        let dkim = async {
            timeout_at(deadline, self.auth.verify_dkim(msg))
                .await
                .unwrap_or_else(|_| vec![DkimOutput::temp_err(timed_out())])
        };
        let arc = async {
            if msg.as_headers.is_empty() && msg.ams_headers.is_empty() {
                return None;
            }
            Some(
                timeout_at(deadline, self.auth.verify_arc(msg))
                    .await
                    .map_or_else(|_| "temperror", |out| dkim_word(out.result())),
            )
        };
        let (spf_helo, spf_mail, dkim, arc) = tokio::join!(spf_helo, spf_mail, dkim, arc);
        // The MAIL FROM identity when there is one, else HELO's (DMARC's SPF input).
        let spf = spf_mail.as_ref().unwrap_or(&spf_helo);
        let dmarc = if from_domain.is_empty() {
            DmarcOutput::new(String::new())
        } else {
            let params = DmarcParameters::new(msg, &dkim, &envelope_domain, spf);
            timeout_at(deadline, self.auth.verify_dmarc(params))
                .await
                .unwrap_or_else(|_| {
                    DmarcOutput::new(from_domain.clone())
                        .with_dkim_result(DmarcResult::TempError(timed_out()))
                        .with_spf_result(DmarcResult::TempError(timed_out()))
                })
        };

        let from_header = msg.from.first().map(String::as_str).unwrap_or_default();
        let mut results = AuthenticationResults::new(host).with_dkim_results(&dkim, from_header);
        if !helo.is_empty() {
            results = results.with_spf_ehlo_result(&spf_helo, ip, helo);
        }
        if let Some(spf_mail) = &spf_mail {
            results = results.with_spf_mailfrom_result(spf_mail, ip, mail_from, helo);
        }
        if !from_domain.is_empty() {
            results = results.with_dmarc_result(&dmarc);
        }
        let mut header = results.to_header();
        if let Some(arc) = arc {
            // mail-auth writes arc= only from a full ArcOutput; ours may be a timeout.
            let at = header.len() - 2;
            header.insert_str(at, &format!(";\r\n\tarc={arc} smtp.remote-ip={ip}"));
        }
        let verdict = weigh(&from_domain, &envelope_domain, spf, &dkim, &dmarc, arc);
        (header, verdict)
    }
}

/// The verdict about the From's domain from the methods' results.
fn weigh(
    from_domain: &str,
    envelope_domain: &str,
    spf: &SpfOutput,
    dkim: &[DkimOutput<'_>],
    dmarc: &DmarcOutput,
    arc: Option<&'static str>,
) -> SenderVerdict {
    let published = dmarc.dmarc_record().is_some();
    let dmarc_word = dmarc_word(&dmarc.result());
    let signer = |o: &DkimOutput<'_>| o.signature().map(Signature::domain_lower);
    let dkim_word = if dkim.iter().any(|o| o.result() == &DkimResult::Pass) {
        "pass"
    } else {
        dkim.first().map_or("none", |o| self::dkim_word(o.result()))
    };
    let mut v = SenderVerdict {
        verdict: Verdict::None,
        mechanism: String::new(),
        domain: from_domain.to_string(),
        spf: spf_word(spf.result()).into(),
        dkim: dkim_word.into(),
        dmarc: dmarc_word.into(),
        arc: arc.map(String::from),
        dmarc_policy: published.then(|| policy_word(dmarc.policy()).to_string()),
    };
    if from_domain.is_empty() {
        return v;
    }
    let mut decide = |verdict: Verdict, mechanism: &str, domain: &str| {
        v.verdict = verdict;
        v.mechanism = mechanism.into();
        v.domain = domain.into();
    };
    let ours = |d: &str| !d.is_empty() && related(d, from_domain);
    let dkim_pass = dkim
        .iter()
        .filter(|o| o.result() == &DkimResult::Pass)
        .find_map(|o| signer(o).filter(|d| ours(d)));
    let dkim_fail = dkim
        .iter()
        // mail-auth calls a body hash mismatch neutral: the signature is there but the
        // body is not what was signed, which is a failure for the verdict.
        .filter(|o| matches!(o.result(), DkimResult::Fail(_) | DkimResult::Neutral(_)))
        .find_map(|o| signer(o).filter(|d| ours(d)));
    if dmarc_word == "pass" {
        decide(Verdict::Pass, "dmarc", from_domain);
    } else if published && dmarc_word == "fail" {
        decide(Verdict::Fail, "dmarc", from_domain);
    } else if let Some(d) = dkim_pass {
        decide(Verdict::Pass, "dkim", &d);
    } else if spf.result() == SpfResult::Pass && ours(envelope_domain) {
        decide(Verdict::Pass, "spf", envelope_domain);
    } else if let Some(d) = dkim_fail {
        decide(Verdict::Fail, "dkim", &d);
    } else if spf.result() == SpfResult::Fail && ours(envelope_domain) {
        decide(Verdict::Fail, "spf", envelope_domain);
    }
    v
}

/// A signature's `d=`, lower case.
trait DomainLower {
    fn domain_lower(&self) -> String;
}

impl DomainLower for Signature {
    fn domain_lower(&self) -> String {
        self.d.to_ascii_lowercase()
    }
}

fn timed_out() -> mail_auth::Error {
    mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
        "no answer within auth.timeout".into(),
    ))
}

/// The HELO argument when it can be an SPF identity (a domain, not an
/// address literal); empty otherwise.
fn helo_domain(helo: &str) -> &str {
    let h = helo.trim().trim_end_matches('.');
    let domain_like = h.contains('.')
        && !h.starts_with('[')
        && h.parse::<IpAddr>().is_err()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if domain_like { h } else { "" }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

/// `raw` with every `Authentication-Results` header that claims
/// `authserv_id` renamed to [`FORGED`] (only in the header section; the
/// value, folding and everything else stay as received).
pub fn rename_forged(raw: &[u8], authserv_id: &str) -> Vec<u8> {
    const NAME: &[u8] = b"authentication-results:";
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        if line == b"\r\n" || line == b"\n" {
            break; // end of the header section
        }
        if line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            // The value runs on over continuation lines; the authserv-id is its first word.
            let mut value_end = end;
            while value_end < raw.len() && matches!(raw[value_end], b' ' | b'\t') {
                value_end = raw[value_end..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(raw.len(), |i| value_end + i + 1);
            }
            if claims(&raw[pos + NAME.len()..value_end], authserv_id) {
                out.extend_from_slice(FORGED.as_bytes());
                out.push(b':');
                out.extend_from_slice(&raw[pos + NAME.len()..value_end]);
                pos = value_end;
                continue;
            }
        }
        out.extend_from_slice(line);
        pos = end;
    }
    out.extend_from_slice(&raw[pos..]);
    out
}

/// Whether an `Authentication-Results` value names `authserv_id` (RFC 8601:
/// optional CFWS, the id, optional version, then `;`).
fn claims(value: &[u8], authserv_id: &str) -> bool {
    let text = String::from_utf8_lossy(value);
    let mut rest = text.trim_start();
    // Skip leading comments: `(…)`.
    while let Some(after) = rest.strip_prefix('(') {
        rest = after.split_once(')').map_or("", |(_, r)| r).trim_start();
    }
    let id: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ';' && *c != '(')
        .collect();
    id.eq_ignore_ascii_case(authserv_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_only_headers_claiming_our_id() {
        let raw = b"Received: x\r\nAuthentication-Results: mx.other.example; dkim=pass\r\n\
authentication-results:  Support.Example.Test;\r\n\tdmarc=pass header.from=example.org\r\n\
Authentication-Results: (comment) support.example.test 1; spf=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: support.example.test; body\r\n";
        let out = String::from_utf8(rename_forged(raw, "support.example.test")).unwrap();
        assert_eq!(
            out,
            "Received: x\r\nAuthentication-Results: mx.other.example; dkim=pass\r\n\
X-Forged-Authentication-Results:  Support.Example.Test;\r\n\tdmarc=pass header.from=example.org\r\n\
X-Forged-Authentication-Results: (comment) support.example.test 1; spf=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: support.example.test; body\r\n"
        );
    }

    #[test]
    fn helo_identities() {
        assert_eq!(helo_domain("mail.example.org"), "mail.example.org");
        assert_eq!(helo_domain("[127.0.0.1]"), "");
        assert_eq!(helo_domain("localhost"), "");
        assert_eq!(helo_domain("127.0.0.1"), "");
    }
}
