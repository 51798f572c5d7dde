//! The `[outbound]` keys of direct delivery (`relay = "mx"`): where to ask
//! DNS, which port the receiving servers listen on, extra trust anchors,
//! the per-domain TLS policy and concurrency.
//!
//! ```toml
//! [outbound]
//! relay = "mx"
//! domain_concurrency = 4
//! tls_policy = { "bank.example" = "require" }
//! # for tests and private networks only:
//! dns_server = "127.0.0.1:5353"
//! mx_port = 2525
//! tls_ca_file = "private-ca.pem"
//! mta_sts_port = 8443
//! ```

use super::{Config, Diagnostic, line_col};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What a domain's receiving servers must offer before a message goes to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// STARTTLS when offered (a certificate that does not verify is still
    /// used, and recorded as not verified); plain text otherwise.
    Opportunistic,
    /// STARTTLS with a certificate that verifies for the MX host name; a host
    /// without it does not get the message (tried again, then given up).
    Require,
}

impl TlsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsPolicy::Opportunistic => "opportunistic",
            TlsPolicy::Require => "require",
        }
    }
}

pub(super) fn default_mx_port() -> u16 {
    25
}
pub(super) fn default_domain_concurrency() -> usize {
    2
}
pub(super) fn default_mta_sts_port() -> u16 {
    443
}

impl Config {
    /// Whether mail goes straight to the recipients' MX hosts.
    pub fn direct_delivery(&self) -> bool {
        self.outbound.relay == "mx"
    }

    /// `outbound.dns_server` as an address (port 53 when none is given).
    pub fn dns_server(&self) -> Result<Option<SocketAddr>, String> {
        let Some(s) = &self.outbound.dns_server else {
            return Ok(None);
        };
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Some(a));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Some(SocketAddr::new(ip, 53)))
            .map_err(|_| {
                format!("outbound.dns_server {s:?} is not an IP address (with optional :port)")
            })
    }

    /// The configured TLS policy of `domain` (case-insensitive), opportunistic by default.
    pub fn tls_policy(&self, domain: &str) -> TlsPolicy {
        self.outbound
            .tls_policy
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map_or(TlsPolicy::Opportunistic, |(_, p)| *p)
    }

    /// `outbound.tls_ca_file` resolved against the config's directory.
    pub fn outbound_ca_file(&self) -> Option<PathBuf> {
        self.outbound
            .tls_ca_file
            .as_deref()
            .map(|p| self.resolve(p))
    }

    pub(super) fn validate_mx(&self, text: &str, out: &mut Vec<Diagnostic>) {
        let from = text.find("[outbound]").unwrap_or(0);
        let mut err = |needle: &str, message: String| {
            let (line, column) = text[from..]
                .find(needle)
                .map_or_else(|| line_col(text, from), |o| line_col(text, from + o));
            out.push(Diagnostic {
                file: self.path.clone(),
                line,
                column,
                message,
            });
        };
        if let Err(e) = self.dns_server() {
            err("dns_server", e);
        }
        if self.outbound.domain_concurrency == 0 {
            err(
                "domain_concurrency",
                "outbound.domain_concurrency must be at least 1".into(),
            );
        }
        if self.outbound.mx_port == 0 || self.outbound.mta_sts_port == 0 {
            err(
                "port",
                "outbound.mx_port and mta_sts_port must not be 0".into(),
            );
        }
        if let Some(ca) = self.outbound_ca_file()
            && let Err(e) = crate::tls::load_ca_file(&ca)
        {
            err("tls_ca_file", format!("outbound.tls_ca_file: {e}"));
        }
        for domain in self.outbound.tls_policy.keys() {
            if domain.is_empty() || domain.contains('@') || domain.contains(char::is_whitespace) {
                err(
                    "tls_policy",
                    format!("outbound.tls_policy: {domain:?} is not a domain"),
                );
            }
        }
        if !self.direct_delivery()
            && (self.outbound.dns_server.is_some() || !self.outbound.tls_policy.is_empty())
        {
            err(
                "relay",
                "outbound.dns_server and tls_policy apply only to relay = \"mx\" (the smarthost decides for itself)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::MINIMAL;
    use super::*;
    use std::path::Path;

    fn with(outbound: &str) -> Result<Config, super::super::ConfigError> {
        let text = MINIMAL
            .replace("relay = \"maildir:data/outbox\"\n", "")
            .replace("[outbound]\n", &format!("[outbound]\n{outbound}"));
        Config::from_str(&text, Path::new("/etc/postdesk/config.toml"))
    }

    #[test]
    fn mx_mode_defaults_and_policies() {
        let c = with("relay = \"mx\"\ntls_policy = { \"Bank.example\" = \"require\" }\n").unwrap();
        assert!(c.direct_delivery());
        assert_eq!(c.relay(), crate::config::Relay::Mx);
        assert_eq!(c.outbound.mx_port, 25);
        assert_eq!(c.outbound.mta_sts_port, 443);
        assert_eq!(c.outbound.domain_concurrency, 2);
        assert_eq!(c.dns_server(), Ok(None));
        assert_eq!(c.tls_policy("bank.example"), TlsPolicy::Require);
        assert_eq!(c.tls_policy("other.example"), TlsPolicy::Opportunistic);
        let c = with("relay = \"mx\"\ndns_server = \"127.0.0.1\"\n").unwrap();
        assert_eq!(c.dns_server(), Ok(Some("127.0.0.1:53".parse().unwrap())));
    }

    #[test]
    fn check_refuses_bad_mx_keys_with_positions() {
        for (keys, want) in [
            (
                "relay = \"mx\"\ndns_server = \"resolver.local\"\n",
                "dns_server",
            ),
            (
                "relay = \"mx\"\ndomain_concurrency = 0\n",
                "domain_concurrency",
            ),
            (
                "relay = \"mx\"\ntls_ca_file = \"/nonexistent/ca.pem\"\n",
                "tls_ca_file",
            ),
            (
                "relay = \"smtp://127.0.0.1:25\"\ntls_policy = { \"a.example\" = \"require\" }\n",
                "apply only to relay = \"mx\"",
            ),
        ] {
            let e = with(keys).unwrap_err();
            assert!(
                e.0.iter().any(|d| d.message.contains(want) && d.line > 1),
                "{keys}: {e}"
            );
        }
        // An unknown policy is a parse error naming the choices.
        let e = with("relay = \"mx\"\ntls_policy = { \"a.example\" = \"always\" }\n").unwrap_err();
        assert!(e.to_string().contains("opportunistic"), "{e}");
    }
}
