//! MTA-STS (RFC 8461): a domain's published promise that its MX hosts speak
//! TLS with certificates that verify. The `_mta-sts` TXT record says a policy
//! exists (and its id); the policy itself comes over HTTPS from
//! `mta-sts.<domain>`, with a certificate that must verify. Policies are
//! cached for their `max_age`, refetched when the TXT id changes, and kept
//! (until they expire) when DNS or the policy host fail: an attacker who
//! blocks those must not switch the protection off (§5.1).

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// Largest policy body read (RFC 8461 §3.3 suggests 64 KiB).
const MAX_POLICY: usize = 64 * 1024;
/// Longest cache life a policy may ask for (RFC 8461 §3.2: one year).
const MAX_AGE_CAP: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// MX hosts must match and TLS must verify, or no delivery.
    Enforce,
    /// Failures are to be reported, not acted on: delivery as without policy.
    Testing,
    /// The domain withdrew its policy.
    None,
}

/// A fetched policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// `mx:` patterns: a host name, or `*.` and a domain (one label).
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// Whether MX host `host` is one the policy allows (RFC 8461 §4.1).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| {
            let p = p.trim_end_matches('.').to_ascii_lowercase();
            match p.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => host == p,
            }
        })
    }

    pub fn label(&self) -> &'static str {
        match self.mode {
            Mode::Enforce => "mta-sts enforce",
            Mode::Testing => "mta-sts testing",
            Mode::None => "mta-sts none",
        }
    }
}

/// The id of an MTA-STS TXT record (`v=STSv1; id=20260101T000000;`).
pub fn txt_id(record: &str) -> Option<String> {
    let mut fields = record.split(';').map(str::trim);
    if fields.next()? != "v=STSv1" {
        return None;
    }
    fields
        .filter_map(|f| f.strip_prefix("id="))
        .map(str::trim)
        .find(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(str::to_string)
}

/// Parses a policy body (RFC 8461 §3.2).
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {other:?}")),
                })
            }
            "max_age" => {
                max_age = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("max_age {value:?} is not a number"))?
                        .min(MAX_AGE_CAP),
                )
            }
            "mx" => mx.push(value.to_string()),
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("no \"version: STSv1\"".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mode != Mode::None && mx.is_empty() {
        return Err("no mx patterns".into());
    }
    Ok(Policy { mode, mx, max_age })
}

struct Cached {
    id: String,
    policy: Policy,
    expires: Instant,
}

/// Policies by domain, as long as their `max_age`.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Cached>>,
}

/// How to reach policy hosts.
pub struct Fetcher<'a> {
    pub resolver: &'a TokioResolver,
    pub tls: &'a TlsConnector,
    /// 443; tests use another port (`outbound.mta_sts_port`).
    pub port: u16,
    pub timeout: Duration,
}

impl Cache {
    fn cached(&self, domain: &str) -> Option<(String, Policy)> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, c| c.expires > Instant::now());
        entries
            .get(domain)
            .map(|c| (c.id.clone(), c.policy.clone()))
    }

    /// The policy `domain` publishes, if any (see the module's comment for
    /// when the cache answers).
    pub async fn policy_for(&self, domain: &str, fetcher: &Fetcher<'_>) -> Option<Policy> {
        let cached = self.cached(domain);
        let id = match fetcher
            .resolver
            .txt_lookup(format!("_mta-sts.{domain}."))
            .await
        {
            Ok(lookup) => {
                let ids: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => {
                            let text: String = txt
                                .txt_data
                                .iter()
                                .map(|b| String::from_utf8_lossy(b).into_owned())
                                .collect();
                            text.starts_with("v=STSv1").then_some(text)
                        }
                        _ => None,
                    })
                    .filter_map(|t| txt_id(&t))
                    .collect();
                // Several records are as good as none (§3.1).
                (ids.len() == 1).then(|| ids[0].clone())
            }
            Err(e) => {
                tracing::debug!(domain, error = %e, "no MTA-STS record");
                None
            }
        };
        let Some(id) = id else {
            return cached.map(|(_, p)| p);
        };
        if let Some((cached_id, policy)) = &cached
            && *cached_id == id
        {
            return Some(policy.clone());
        }
        match fetch(domain, fetcher).await {
            Ok(policy) => {
                tracing::info!(
                    domain,
                    mode = policy.label(),
                    max_age = policy.max_age,
                    "MTA-STS policy fetched"
                );
                self.entries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        domain.to_string(),
                        Cached {
                            id,
                            policy: policy.clone(),
                            expires: Instant::now() + Duration::from_secs(policy.max_age),
                        },
                    );
                Some(policy)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "MTA-STS policy could not be fetched");
                cached.map(|(_, p)| p)
            }
        }
    }
}

/// GET https://mta-sts.<domain>/.well-known/mta-sts.txt (no redirects, §3.3).
async fn fetch(domain: &str, f: &Fetcher<'_>) -> Result<Policy, String> {
    let host = format!("mta-sts.{domain}");
    let ips = f
        .resolver
        .lookup_ip(format!("{host}."))
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let ip: IpAddr = ips
        .iter()
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let body = tokio::time::timeout(f.timeout, async {
        let tcp = TcpStream::connect((ip, f.port))
            .await
            .map_err(|e| format!("{host} [{ip}]:{}: {e}", f.port))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let mut tls = f
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        let request = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\nUser-Agent: postdesk\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let mut buf = Vec::new();
        let mut limited = (&mut tls).take(MAX_POLICY as u64 + 8192);
        // A server that closes without close_notify still sent what it sent.
        let _ = limited.read_to_end(&mut buf).await;
        Ok::<_, String>(buf)
    })
    .await
    .map_err(|_| format!("{host}: no answer within {}s", f.timeout.as_secs()))??;
    let text = String::from_utf8_lossy(&body);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{host}: not an HTTP response"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{host}: {status}"));
    }
    parse_policy(body).map_err(|e| format!("{host}: policy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_records_and_policies_parse() {
        assert_eq!(
            txt_id("v=STSv1; id=20260101T0000;"),
            Some("20260101T0000".into())
        );
        assert_eq!(txt_id("v=STSv2; id=1"), None);
        assert_eq!(txt_id("v=STSv1;"), None);
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: *.backup.example.test\r\nmax_age: 86400\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.matches("mail.example.test."));
        assert!(p.matches("MX1.backup.example.test"));
        assert!(
            !p.matches("a.b.backup.example.test"),
            "a wildcard is one label"
        );
        assert!(!p.matches("backup.example.test"));
        assert!(!p.matches("evil.example.test"));
        assert!(parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert_eq!(
            parse_policy("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            MAX_AGE_CAP
        );
    }
}
