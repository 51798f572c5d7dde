//! The `[auth]` table: postdesk verifying the senders of the mail it
//! receives over SMTP (SPF, DKIM, DMARC, ARC; see `crate::sender_auth`).
//!
//! ```toml
//! [auth]
//! verify = true                  # SMTP intake only; IMAP and `deliver` are not verified
//! verify_loopback = false        # clients on 127.0.0.0/8 and ::1 (local tools, an MTA in front)
//! dns_server = "127.0.0.1:53"    # default: the system's resolvers (/etc/resolv.conf)
//! timeout = "5s"                 # all lookups of one message; then temperror
//! ```
//!
//! And in `[agents]`, `require_dmarc` ([`RequireDmarc`]).

use super::{Config, Diagnostic, de_duration, line_col};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// `[auth]`: whether and how SMTP intake verifies senders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Verify SPF, DKIM, DMARC and ARC on SMTP intake and prepend our own
    /// Authentication-Results. Off: as before, only
    /// `agents.trusted_authserv_id` is believed.
    pub verify: bool,
    /// Verify clients on loopback too. Off by default: a loopback client is
    /// local submission or an MTA in front of postdesk that did its own
    /// checks (its Authentication-Results count through
    /// `agents.trusted_authserv_id`), and its address proves nothing.
    pub verify_loopback: bool,
    /// The DNS server to ask (`ip:port`); None: the system's configuration.
    pub dns_server: Option<String>,
    /// What all the lookups of one message may take together; what is not
    /// answered by then is a temperror, and the message is accepted anyway.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            verify: true,
            verify_loopback: false,
            dns_server: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// `agents.require_dmarc`: whether agent mail from a domain that publishes
/// DMARC must pass it (aligned) in our own verification to be acted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequireDmarc {
    /// When the agent's domain publishes a DMARC record, anything but an
    /// aligned pass quarantines the mail with a notice to the agent.
    #[default]
    WhenPublished,
    /// Our DMARC result is not asked (the agent token and From still are).
    Never,
}

impl AuthConfig {
    /// `dns_server` as a socket address (validated by `postdesk check`).
    pub fn dns_server_addr(&self) -> Option<SocketAddr> {
        self.dns_server.as_deref().and_then(|s| s.parse().ok())
    }
}

impl Config {
    pub(super) fn validate_auth(&self, text: &str, out: &mut Vec<Diagnostic>) {
        let from = text.find("[auth]").unwrap_or(0);
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
        if let Some(s) = &self.auth.dns_server
            && s.parse::<SocketAddr>().is_err()
        {
            err(
                "dns_server",
                format!("auth.dns_server {s:?} is not ip:port (e.g. \"127.0.0.1:53\")"),
            );
        }
        if self.auth.timeout < Duration::from_millis(100)
            || self.auth.timeout > Duration::from_secs(60)
        {
            err(
                "timeout",
                "auth.timeout must be between 100ms and 60s (the SMTP client waits for it)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::MINIMAL;
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_verify_with_the_system_resolver() {
        let c = Config::from_str(MINIMAL, Path::new("c.toml")).unwrap();
        assert!(c.auth.verify);
        assert_eq!(c.auth.dns_server_addr(), None);
        assert_eq!(c.auth.timeout, Duration::from_secs(5));
        assert_eq!(c.agents.require_dmarc, RequireDmarc::WhenPublished);
    }

    #[test]
    fn keys_parse_and_bad_values_are_located() {
        let text = format!(
            "{MINIMAL}[agents]\nrequire_dmarc = \"never\"\n\n[auth]\nverify = false\ndns_server = \"127.0.0.1:5353\"\ntimeout = \"2s\"\n"
        );
        let c = Config::from_str(&text, Path::new("c.toml")).unwrap();
        assert!(!c.auth.verify);
        assert_eq!(c.auth.dns_server_addr(), "127.0.0.1:5353".parse().ok());
        assert_eq!(c.agents.require_dmarc, RequireDmarc::Never);

        let text = format!("{MINIMAL}[auth]\ndns_server = \"dns.example\"\ntimeout = \"10ms\"\n");
        let err = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("auth.dns_server \"dns.example\" is not ip:port"),
            "{shown}"
        );
        assert!(shown.contains("auth.timeout must be between"), "{shown}");
        let line = text
            .lines()
            .position(|l| l.starts_with("dns_server"))
            .unwrap()
            + 1;
        assert!(shown.contains(&format!("c.toml:{line}:")), "{shown}");

        let text = format!("{MINIMAL}[agents]\nrequire_dmarc = \"sometimes\"\n");
        assert!(Config::from_str(&text, Path::new("c.toml")).is_err());
    }
}
