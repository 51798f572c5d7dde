//! Direct delivery (`outbound.relay = "mx"`): each recipient domain's mail
//! goes to its MX hosts (RFC 5321 §5.1).
//!
//! - Hosts are tried by MX preference, in random order among equal ones;
//!   a domain without MX records is its own mail host (implicit MX, its
//!   A/AAAA); a null MX (`0 .`, RFC 7505) means it takes no mail at all,
//!   a permanent failure. Each host's IPv4 and IPv6 addresses are tried.
//! - TLS: STARTTLS whenever offered, the certificate's verdict recorded.
//!   `outbound.tls_policy` may `require` TLS with a verified certificate
//!   for a domain; a domain's MTA-STS policy in `enforce` mode requires the
//!   same and limits the hosts to its `mx:` patterns.
//! - A 4xx or a connection failure moves on to the next host; the host is
//!   then tried after the others for a while (its own backoff), and the job
//!   is retried by the queue's backoff if no host took the message. A 5xx
//!   is final, per recipient at RCPT or for the message at MAIL/DATA.
//! - At most `outbound.domain_concurrency` deliveries to one domain run at
//!   once; connections are reused per host through the shared pool.

use crate::config::{Config, TlsPolicy};
use crate::outbound::mta_sts::{self, Mode};
use crate::outbound::relay::{Accepted, ConnectionPool, DeliveryError, SmtpAttempt, TlsMode};
use crate::outbound::tls_policy::{self, TlsCheck};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::ServerCertVerifier;
use tracing::Instrument;

/// What direct delivery keeps between messages: the resolver, the MTA-STS
/// cache, the per-domain limits and the hosts in backoff.
pub struct MxRouter {
    cfg: Arc<Config>,
    resolver: TokioResolver,
    verifier: Arc<dyn ServerCertVerifier>,
    sts_tls: TlsConnector,
    sts: mta_sts::Cache,
    domains: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// MX host name or address → (consecutive failures, tried last until).
    backoff: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Why the router could not be built (a config the check should have caught).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("DNS resolver: {0}")]
    Resolver(String),
    #[error("TLS trust anchors: {0}")]
    Trust(String),
}

impl MxRouter {
    pub fn new(cfg: Arc<Config>) -> Result<MxRouter, RouterError> {
        let builder = match cfg.dns_server().map_err(RouterError::Resolver)? {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => {
                TokioResolver::builder_tokio().map_err(|e| RouterError::Resolver(e.to_string()))?
            }
        };
        let mut builder = builder;
        // Both address families of every host: an MX reachable only over one
        // of them still gets its mail (RFC 5321 §5.1, "IPv4 and IPv6").
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let resolver = builder
            .build()
            .map_err(|e| RouterError::Resolver(e.to_string()))?;
        let verifier = tls_policy::base_verifier(cfg.outbound_ca_file().as_deref())
            .map_err(RouterError::Trust)?;
        let sts_tls = tls_policy::strict_connector(&verifier).map_err(RouterError::Trust)?;
        Ok(MxRouter {
            cfg,
            resolver,
            verifier,
            sts_tls,
            sts: mta_sts::Cache::default(),
            domains: Mutex::default(),
            backoff: Mutex::default(),
        })
    }

    /// Delivers `raw` to each recipient's domain. Like the smarthost's
    /// [`crate::outbound::relay::deliver`]: recipients that could not get it
    /// are in [`Accepted::refused`]; if none got it, the attempt fails
    /// (permanently only if every failure is permanent).
    pub async fn deliver(
        &self,
        pool: &ConnectionPool,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> Result<Accepted, DeliveryError> {
        if rcpt_to.is_empty() {
            return Err(DeliveryError::Permanent("no recipients".into()));
        }
        let mut by_domain: Vec<(String, Vec<String>)> = Vec::new();
        let mut out = Accepted::default();
        for rcpt in rcpt_to {
            let Some((_, domain)) = rcpt.rsplit_once('@').filter(|(_, d)| !d.is_empty()) else {
                out.refused.push((
                    rcpt.clone(),
                    DeliveryError::Permanent(format!("{rcpt}: no domain to deliver to")),
                ));
                continue;
            };
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            match by_domain.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, list)) => list.push(rcpt.clone()),
                None => by_domain.push((domain, vec![rcpt.clone()])),
            }
        }
        for (domain, rcpts) in by_domain {
            let slot = self.domain_slot(&domain);
            let result = async {
                let _permit = slot.acquire_owned().await;
                tracing::debug!(rcpts = rcpts.len(), "direct delivery");
                // The whole domain within the attempt's budget, as with the
                // smarthost, so shutdown waits no longer than `outbound.timeout`.
                tokio::time::timeout(
                    self.cfg.outbound.timeout,
                    self.deliver_domain(pool, &domain, mail_from, &rcpts, raw),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(DeliveryError::Transient(format!(
                        "{domain}: delivery not complete within {}s",
                        self.cfg.outbound.timeout.as_secs_f64()
                    )))
                })
            }
            .instrument(tracing::info_span!("domain", %domain))
            .await;
            match result {
                Ok(accepted) => {
                    out.refused.extend(accepted.refused);
                    out.evidence.extend(accepted.evidence);
                }
                Err(e) => {
                    tracing::warn!(%domain, error = %e, "domain not delivered");
                    out.refused
                        .extend(rcpts.into_iter().map(|r| (r, e.clone())));
                }
            }
        }
        if out.evidence.is_empty() {
            return Err(all_failed(&out.refused));
        }
        Ok(out)
    }

    fn domain_slot(&self, domain: &str) -> Arc<Semaphore> {
        let mut domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        // Idle limits are dropped so the map does not grow with every domain
        // ever written to.
        let limit = self.cfg.outbound.domain_concurrency.max(1);
        domains.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < limit);
        domains
            .entry(domain.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone()
    }

    async fn deliver_domain(
        &self,
        pool: &ConnectionPool,
        domain: &str,
        mail_from: &str,
        rcpts: &[String],
        raw: &[u8],
    ) -> Result<Accepted, DeliveryError> {
        let (route, mut hosts) = self.mx_hosts(domain).await?;
        let sts = self
            .sts
            .policy_for(
                domain,
                &mta_sts::Fetcher {
                    resolver: &self.resolver,
                    tls: &self.sts_tls,
                    port: self.cfg.outbound.mta_sts_port,
                    timeout: self.cfg.outbound.timeout,
                },
            )
            .await;
        let configured = self.cfg.tls_policy(domain);
        let enforce = sts.as_ref().is_some_and(|p| p.mode == Mode::Enforce);
        let require = configured == TlsPolicy::Require || enforce;
        let policy = match (&sts, configured) {
            (Some(p), _) if p.mode == Mode::Enforce => p.label().to_string(),
            (_, TlsPolicy::Require) => "require".to_string(),
            (Some(p), _) if p.mode == Mode::Testing => p.label().to_string(),
            _ => "opportunistic".to_string(),
        };
        if enforce && let Some(p) = &sts {
            let before = hosts.clone();
            hosts.retain(|h| p.matches(h));
            if hosts.is_empty() {
                return Err(DeliveryError::Transient(format!(
                    "{domain}: no MX host ({}) matches its MTA-STS policy (mx: {})",
                    before.join(", "),
                    p.mx.join(", ")
                )));
            }
        }
        let hosts = self.by_backoff(hosts, |h| h.clone());
        let mut errors = Vec::new();
        for host in &hosts {
            let ips = match self.resolver.lookup_ip(format!("{host}.")).await {
                Ok(l) => self.by_backoff(l.iter().collect(), |ip| ip.to_string()),
                Err(e) => {
                    errors.push(format!("{host}: no address: {e}"));
                    continue;
                }
            };
            for ip in ips {
                let attempt = SmtpAttempt {
                    pool,
                    host,
                    addr: Some(ip),
                    port: self.cfg.outbound.mx_port,
                    implicit_tls: false,
                    credentials: None,
                    helo: &self.cfg.server.hostname,
                    timeout: self.cfg.outbound.timeout,
                    tls: TlsMode::Mx {
                        check: TlsCheck::new(&self.verifier, require),
                        require,
                    },
                };
                match attempt.send(mail_from, rcpts, raw).await {
                    Ok(mut accepted) => {
                        self.succeeded(host, ip);
                        for e in &mut accepted.evidence {
                            e.route = route.into();
                            e.policy = Some(policy.clone());
                        }
                        tracing::info!(%host, %ip, policy, "accepted by the MX host");
                        return Ok(accepted);
                    }
                    Err(DeliveryError::Permanent(e)) => {
                        return Err(DeliveryError::Permanent(format!("{host} [{ip}]: {e}")));
                    }
                    Err(DeliveryError::Transient(e)) => {
                        tracing::info!(%host, %ip, error = %e, "MX host failed; trying the next");
                        self.failed(host, ip);
                        errors.push(if e.contains(host) {
                            e
                        } else {
                            format!("{host} [{ip}]: {e}")
                        });
                    }
                }
            }
        }
        Err(DeliveryError::Transient(errors.join("; ")))
    }

    /// The domain's mail hosts, best first, and how they were found.
    async fn mx_hosts(&self, domain: &str) -> Result<(&'static str, Vec<String>), DeliveryError> {
        match self.resolver.mx_lookup(format!("{domain}.")).await {
            Ok(lookup) => {
                let mut mx: Vec<(u16, u32, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            random_u32(),
                            mx.exchange
                                .to_ascii()
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                        )),
                        _ => None,
                    })
                    .collect();
                if mx.is_empty() {
                    return Ok(("implicit-mx", vec![domain.to_string()]));
                }
                // RFC 7505: a single MX with an empty exchange ("."): no mail.
                if mx.iter().any(|(_, _, host)| host.is_empty()) {
                    return Err(DeliveryError::Permanent(format!(
                        "{domain} publishes a null MX (RFC 7505): it accepts no mail"
                    )));
                }
                mx.sort();
                Ok(("mx", mx.into_iter().map(|(_, _, h)| h).collect()))
            }
            Err(e) if e.is_nx_domain() => Err(DeliveryError::Permanent(format!(
                "{domain}: no such domain"
            ))),
            // No MX record (but the name exists): the domain is its own host.
            Err(e) if e.is_no_records_found() => Ok(("implicit-mx", vec![domain.to_string()])),
            Err(e) => Err(DeliveryError::Transient(format!(
                "{domain}: MX lookup failed: {e}"
            ))),
        }
    }

    /// `items` (hosts in preference order, or a host's addresses) with those
    /// in backoff moved to the end, in the same order otherwise. They are
    /// still tried: a host that failed a minute ago may be the only one up.
    fn by_backoff<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> Vec<T> {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        items.sort_by_key(|i| backoff.get(&key(i)).is_some_and(|(_, until)| *until > now));
        items
    }

    /// `host` at `ip` failed for now: both are tried last for
    /// `retry_initial`, doubling with each failure in a row up to `retry_max`.
    fn failed(&self, host: &str, ip: IpAddr) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Forget hosts long past their backoff, so the map stays small.
        let forget = self.cfg.outbound.retry_max;
        backoff.retain(|_, (_, until)| now.saturating_duration_since(*until) < forget);
        for key in [host.to_string(), ip.to_string()] {
            let (n, until) = backoff.entry(key).or_insert((0, now));
            *n = n.saturating_add(1);
            let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
            let delay: Duration = self
                .cfg
                .outbound
                .retry_initial
                .saturating_mul(factor)
                .min(self.cfg.outbound.retry_max);
            *until = now + delay;
        }
    }

    fn succeeded(&self, host: &str, ip: IpAddr) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        backoff.remove(host);
        backoff.remove(&ip.to_string());
    }
}

/// Random order among MX hosts of equal preference (RFC 5321 §5.1).
fn random_u32() -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u32::from_le_bytes(b)
}

/// Nobody got the message: permanent only if every failure is.
fn all_failed(refused: &[(String, DeliveryError)]) -> DeliveryError {
    let permanent = refused
        .iter()
        .all(|(_, e)| matches!(e, DeliveryError::Permanent(_)));
    let mut texts: Vec<&str> = Vec::new();
    for (_, e) in refused {
        if !texts.contains(&e.text()) {
            texts.push(e.text());
        }
    }
    let text = texts.join("; ");
    if permanent {
        DeliveryError::Permanent(text)
    } else {
        DeliveryError::Transient(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router() -> MxRouter {
        let text = r#"
[server]
hostname = "support.example.test"

[[mailbox]]
address = "support@example.test"

[outbound]
relay = "mx"
from = "Example Support <support@example.test>"
dns_server = "127.0.0.1:9"
retry_initial = "60s"

[web]
api_token = "t"
"#;
        let cfg = Config::from_str(text, Path::new("/tmp/x/config.toml")).unwrap();
        MxRouter::new(Arc::new(cfg)).unwrap()
    }

    #[tokio::test]
    async fn a_failed_host_is_tried_after_the_others_until_it_works_again() {
        let r = router();
        let hosts = || {
            vec![
                "mx1.x.test".to_string(),
                "mx2.x.test".to_string(),
                "mx3.x.test".to_string(),
            ]
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        r.failed("mx1.x.test", ip);
        assert_eq!(
            r.by_backoff(hosts(), |h| h.clone()),
            ["mx2.x.test", "mx3.x.test", "mx1.x.test"],
            "preference order otherwise kept"
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            r.by_backoff(vec![ip, other], |i| i.to_string()),
            [other, ip]
        );
        r.succeeded("mx1.x.test", ip);
        assert_eq!(
            r.by_backoff(hosts(), |h| h.clone()),
            ["mx1.x.test", "mx2.x.test", "mx3.x.test"]
        );
    }

    #[test]
    fn nobody_got_it_is_permanent_only_if_every_failure_is() {
        let p = |t: &str| DeliveryError::Permanent(t.into());
        let t = |t: &str| DeliveryError::Transient(t.into());
        let both = [
            ("a@x".to_string(), p("550 a")),
            ("b@y".to_string(), t("451 b")),
        ];
        assert!(matches!(all_failed(&both), DeliveryError::Transient(s) if s == "550 a; 451 b"));
        let same = [
            ("a@x".to_string(), p("null MX")),
            ("b@x".to_string(), p("null MX")),
        ];
        assert!(matches!(all_failed(&same), DeliveryError::Permanent(s) if s == "null MX"));
    }
}
