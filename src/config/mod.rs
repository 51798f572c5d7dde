//! config.toml: typed, validated, with `file:line:column` diagnostics.
//!
//! Relative paths are resolved against the directory of the config file, so
//! the daemon behaves the same whatever directory it is started from.

use crate::address::same_mailbox;
pub use crate::address::{bare_address, split_address};
use crate::diagnostic::locate;
pub use crate::diagnostic::{ConfigError, Diagnostic, line_col};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod imap;
pub use imap::{ImapAfter, ImapAuth, ImapConfig, ImapExisting, ImapTls};
mod dkim;
pub use dkim::{DkimConfig, DkimSelector};
mod mx;
pub use mx::TlsPolicy;
mod auth;
pub use auth::{AuthConfig, RequireDmarc};
pub mod trusted_proxies;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default, rename = "mailbox")]
    pub mailboxes: Vec<MailboxConfig>,
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub acknowledgement: AckConfig,
    /// Agents working by mail: notifications, authentication, comments, holds.
    #[serde(default)]
    pub agents: AgentsConfig,
    /// Mailboxes polled over IMAP (`[[imap]]` tables); see [`ImapConfig`].
    #[serde(default, rename = "imap")]
    pub imap: Vec<ImapConfig>,
    /// Who takes part in a ticket's conversation; see [`TicketsConfig`].
    #[serde(default)]
    pub tickets: TicketsConfig,
    /// How long our signed reply and agent addresses stay valid.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// DKIM signing of what we send; see [`DkimConfig`].
    #[serde(default)]
    pub dkim: DkimConfig,
    /// Verifying the senders of SMTP mail; see [`AuthConfig`].
    #[serde(default)]
    pub auth: AuthConfig,
    /// How the store writes values; see [`StoreConfig`].
    #[serde(default)]
    pub store: StoreConfig,
    /// Directory holding the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// HELO name and the domain of our Message-IDs.
    pub hostname: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_rules_dir")]
    pub rules_dir: PathBuf,
    /// The postmaster's address: told about mail postdesk had to set aside
    /// (IMAP messages above the size limit). None: only the log and the
    /// quarantine list say so.
    #[serde(default)]
    pub admin_address: Option<String>,
    /// The knowledge base's articles (`crate::kb`), relative to the config
    /// like rules_dir; a missing directory means no articles.
    #[serde(default = "default_kb_dir")]
    pub kb_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_rules_dir() -> PathBuf {
    "rules".into()
}
fn default_kb_dir() -> PathBuf {
    "kb".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub listen: Vec<String>,
    /// Largest message accepted, in bytes (advertised with SIZE; 552 5.3.4 above it).
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Longest command line accepted, in bytes including CRLF (RFC 5321 minimum: 512).
    pub max_line_length: usize,
    /// Concurrent SMTP sessions; above it new connections get 421 4.7.0.
    pub max_connections: usize,
    #[serde(deserialize_with = "de_duration")]
    pub command_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub data_timeout: Duration,
    /// How long transactions in progress may run after SIGTERM before they get 421.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// PEM certificate chain and key; STARTTLS is offered when both are set.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Message bytes all sessions together may hold in memory while receiving
    /// DATA; a message that finds the budget spent gets 452 4.3.1 (try later).
    pub max_inflight_bytes: u64,
    /// Concurrent sessions from one client address (an IPv6 client: its /64);
    /// above it new connections get 421 4.7.0.
    pub max_connections_per_ip: usize,
    /// Longest a session may last, however busy (NOOP keep-alives included);
    /// then it gets 421 4.4.2 and is closed.
    #[serde(deserialize_with = "de_duration")]
    pub session_timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: vec!["127.0.0.1:2525".into()],
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 2048,
            max_connections: 200,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            tls_cert: None,
            tls_key: None,
            max_inflight_bytes: 256 * 1024 * 1024,
            max_connections_per_ip: 50,
            session_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    pub address: String,
    #[serde(default = "default_queue")]
    pub queue: String,
}

fn default_queue() -> String {
    "general".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// `smtp://[user:pass@]host:port`, `smtps://…`, or `maildir:PATH` (an outbox folder).
    pub relay: String,
    /// From header of our mail, e.g. `Example Support <support@example.test>`.
    pub from: String,
    /// How long a message is retried before it is given up as failed.
    #[serde(default = "default_lifetime", deserialize_with = "de_duration")]
    pub lifetime: Duration,
    /// First retry delay; doubles per attempt up to `retry_max`.
    #[serde(default = "default_retry_initial", deserialize_with = "de_duration")]
    pub retry_initial: Duration,
    #[serde(default = "default_retry_max", deserialize_with = "de_duration")]
    pub retry_max: Duration,
    /// Deliveries in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Give up on one connection attempt / SMTP exchange after this long.
    #[serde(default = "default_send_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// `relay = "mx"`: the DNS server to ask instead of /etc/resolv.conf
    /// (`"127.0.0.1:5353"`; for tests and split-horizon set-ups).
    #[serde(default)]
    pub dns_server: Option<String>,
    /// `relay = "mx"`: the port receiving servers listen on (25; tests use another).
    #[serde(default = "mx::default_mx_port")]
    pub mx_port: u16,
    /// `relay = "mx"`: PEM trust anchors for MX certificates and MTA-STS
    /// policy hosts, *instead of* the system's (tests, private networks).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// `relay = "mx"`: per-domain TLS policy, `"require"` or `"opportunistic"`.
    #[serde(default)]
    pub tls_policy: std::collections::BTreeMap<String, TlsPolicy>,
    /// `relay = "mx"`: deliveries in flight to one recipient domain at once.
    #[serde(default = "mx::default_domain_concurrency")]
    pub domain_concurrency: usize,
    /// `relay = "mx"`: the HTTPS port of MTA-STS policy hosts (443; tests use another).
    #[serde(default = "mx::default_mta_sts_port")]
    pub mta_sts_port: u16,
}

fn default_lifetime() -> Duration {
    Duration::from_secs(5 * 86400)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(60)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(3600)
}
fn default_concurrency() -> usize {
    16
}
fn default_send_timeout() -> Duration {
    Duration::from_secs(60)
}

/// The API token of the shipped config.toml: allowed on a loopback API (the
/// quick start), refused when the API is reachable from other hosts.
pub const SHIPPED_API_TOKEN: &str = "change-me";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub listen: String,
    pub api_token: Option<String>,
    pub api_token_file: Option<PathBuf>,
    /// A web view session ends after this long without a request.
    #[serde(deserialize_with = "de_duration")]
    pub session_idle: Duration,
    /// Browsers reach the web view over HTTPS (a TLS reverse proxy in
    /// front): the session cookie becomes `__Host-postdesk` with `Secure`,
    /// and the expected Origin is `https://`.
    pub https: bool,
    /// How often an open ticket page tells the server its agent is still
    /// viewing (or replying); presence expires after three intervals.
    #[serde(deserialize_with = "de_duration")]
    pub presence_interval: Duration,
    /// PEM certificate chain and key: the web view and the API are served
    /// over TLS on `web.listen` (and `https` follows). Set both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The customers' pages (web form, status page, survey, chat): their
    /// own listener, so an admin can expose them and not the agents' view.
    /// None: not served.
    pub public_listen: Option<String>,
    /// Where customers reach `public_listen` (behind a TLS proxy, say
    /// `https://help.example.com`); links in customer mail start with it.
    /// Default: `http://` + `public_listen`.
    pub public_url: Option<String>,
    /// The key that signs customer links (status, survey, chat), from a
    /// file (e.g. `credential:link-secret`); None: the store's own key.
    /// Changing it revokes every link sent.
    pub link_secret_file: Option<PathBuf>,
    /// How long a customer link stays valid.
    #[serde(deserialize_with = "de_duration")]
    pub link_lifetime: Duration,
    /// Web form submissions taken from one client address per hour.
    pub form_per_ip_per_hour: u32,
    /// Web form submissions taken for one typed email address per hour.
    pub form_per_address_per_hour: u32,
    /// How long after a ticket was resolved or closed its customer may
    /// reopen it from the status page.
    #[serde(deserialize_with = "de_duration")]
    pub reopen_window: Duration,
    /// Reverse proxies in front of `public_listen` (addresses or CIDR
    /// networks): only from these peers is `X-Forwarded-For` believed for
    /// the per-client limits. Empty (the default): nobody is trusted, and
    /// the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8080".into(),
            api_token: None,
            api_token_file: None,
            session_idle: Duration::from_secs(8 * 3600),
            https: false,
            presence_interval: Duration::from_secs(10),
            tls_cert: None,
            tls_key: None,
            public_listen: None,
            public_url: None,
            link_secret_file: None,
            link_lifetime: Duration::from_secs(180 * 86_400),
            form_per_ip_per_hour: 10,
            form_per_address_per_hour: 3,
            reopen_window: Duration::from_secs(30 * 86_400),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AckConfig {
    pub enabled: bool,
    /// At most this many acknowledgements to one address per hour (mail loops, floods).
    pub max_per_address_per_hour: u32,
    /// At most this many acknowledgements in all per hour: forged senders
    /// spread over many addresses must not make postdesk a spam cannon.
    pub max_per_hour: u32,
    /// Template file, relative to rules_dir.
    pub template: PathBuf,
    /// Template of the customer's notice when an agent resolves or closes
    /// the ticket without writing to the customer; None: no notice.
    pub resolved_template: Option<PathBuf>,
}

impl Default for AckConfig {
    fn default() -> Self {
        AckConfig {
            enabled: true,
            max_per_address_per_hour: 5,
            max_per_hour: 600,
            template: "templates/acknowledgement.txt".into(),
            resolved_template: None,
        }
    }
}

/// `[agents]`: how agents work by mail (agents themselves are in rules/agents.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Mail agents about new tickets and customer replies.
    pub notify: bool,
    /// Trust `Authentication-Results` headers only from this authserv-id (the
    /// receiving MTA that verified DKIM/DMARC); a dkim or dmarc failure
    /// reported by it rejects an agent's mail. Unset: the headers are ignored.
    pub trusted_authserv_id: Option<String>,
    /// Mail from an agent to this address is an internal note on the ticket
    /// named by the subject tag `[#N]` (or by the message it replies to).
    pub comment_address: Option<String>,
    /// How long a reply held by collision detection waits for `#send`.
    #[serde(deserialize_with = "de_duration")]
    pub hold_expiry: Duration,
    /// Agent mail from a domain publishing DMARC needs our aligned pass.
    pub require_dmarc: RequireDmarc,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            notify: true,
            trusted_authserv_id: None,
            comment_address: None,
            hold_expiry: Duration::from_secs(24 * 3600),
            require_dmarc: RequireDmarc::default(),
        }
    }
}

/// `[tickets]`: bounds on a ticket's participants (the customers who get
/// the agents' public replies). Caps keep one message with thousands of Cc
/// addresses from stalling intake or turning every reply into a mass mailing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// Addresses one message may bring in (its sender and Cc together).
    pub max_participants_per_message: usize,
    /// Participants of one ticket in all.
    pub max_participants_per_ticket: usize,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            max_participants_per_message: 20,
            max_participants_per_ticket: 50,
        }
    }
}

/// `[tokens]`: lifetimes of the signed plus-addresses in our mail. An
/// expired reply address still threads by Message-ID and subject tag (from
/// participants); an expired agent address is quarantined with a notice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// Reply-To addresses made for customers.
    #[serde(deserialize_with = "de_duration")]
    pub reply_lifetime: Duration,
    /// Reply-To addresses made for agents (notifications) and comment addresses.
    #[serde(deserialize_with = "de_duration")]
    pub agent_lifetime: Duration,
    /// The HMAC key of those addresses from a file (e.g. `credential:token-secret`)
    /// instead of the one the store made; at least 32 bytes.
    pub secret_file: Option<PathBuf>,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            reply_lifetime: Duration::from_secs(365 * 86400),
            agent_lifetime: Duration::from_secs(180 * 86400),
            secret_file: None,
        }
    }
}

/// `[store]`: how new values are written. Whatever is chosen, every value
/// already stored reads as before.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Compress raw mail and records (zstd with the store's own
    /// dictionaries). Off trades disk for a little CPU.
    pub compress: bool,
    /// Values of a kind written before its dictionary is trained from the
    /// newest of them.
    pub dictionary_after: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compress: true,
            dictionary_after: 1000,
        }
    }
}

/// Accepts `300`, `"300s"`, `"5m"`, `"2h"`, `"5d"`.
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 5m, 2h, 5d"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => return Err(format!("invalid duration unit {other:?} in {text:?}")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}

/// A parsed relay URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    Smtp {
        host: String,
        port: u16,
        implicit_tls: bool,
        credentials: Option<(String, String)>,
    },
    Maildir(PathBuf),
    /// Straight to each recipient domain's MX hosts (`relay = "mx"`).
    Mx,
}

impl Relay {
    pub fn parse(url: &str, base_dir: &Path) -> Result<Relay, String> {
        if url == "mx" {
            return Ok(Relay::Mx);
        }
        if let Some(path) = url.strip_prefix("maildir:") {
            if path.is_empty() {
                return Err("maildir: relay needs a folder, e.g. maildir:data/outbox".into());
            }
            return Ok(Relay::Maildir(base_dir.join(path)));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!(
                "relay {url:?}: expected smtp://host:port, smtps://host:port, maildir:PATH or mx"
            )
        })?;
        let implicit_tls = match scheme {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "relay scheme {other:?} not supported (smtp, smtps, maildir)"
                ));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            (percent_decode(user), percent_decode(pass))
        });
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("relay {url:?}: invalid port {p:?}"))?;
                (h.trim_matches(|c| c == '[' || c == ']').to_string(), port)
            }
            _ => (hostport.to_string(), if implicit_tls { 465 } else { 25 }),
        };
        if host.is_empty() {
            return Err(format!("relay {url:?}: missing host"));
        }
        Ok(Relay::Smtp {
            host,
            port,
            implicit_tls,
            credentials,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Config {
    /// Reads and validates a config file, reporting every problem with its position.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read config: {e}"),
            }])
        })?;
        Self::from_str(&text, path)
    }

    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError(vec![Diagnostic {
                file: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }])
        })?;
        cfg.path = path.to_path_buf();
        cfg.base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let diags = cfg.validate(text);
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError(diags))
        }
    }

    fn validate(&self, text: &str) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut err = |needle: &str, message: String| {
            let (line, column) = locate(text, needle);
            out.push(Diagnostic {
                file: self.path.clone(),
                line,
                column,
                message,
            });
        };
        if self.server.hostname.trim().is_empty()
            || self.server.hostname.contains(char::is_whitespace)
        {
            err("hostname", "server.hostname must be a domain name".into());
        }
        if let Some(admin) = &self.server.admin_address
            && split_address(admin).is_none()
        {
            err(
                admin,
                format!("server.admin_address {admin:?} is not a mail address"),
            );
        }
        if self.mailboxes.is_empty() {
            err("[server]", "at least one [[mailbox]] is needed: postdesk accepts mail only for configured addresses".into());
        }
        for m in &self.mailboxes {
            if split_address(&m.address).is_none() {
                err(
                    &m.address,
                    format!("mailbox address {:?} is not local@domain", m.address),
                );
            }
        }
        if self.smtp.listen.is_empty() {
            err("[smtp]", "smtp.listen needs at least one address".into());
        }
        for l in &self.smtp.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                err(l, format!("smtp.listen {l:?} is not an IP:port address"));
            }
        }
        if self.web.listen.parse::<std::net::SocketAddr>().is_err() {
            err(
                &self.web.listen,
                format!("web.listen {:?} is not an IP:port address", self.web.listen),
            );
        }
        if let Some(public) = &self.web.public_listen {
            match public.parse::<std::net::SocketAddr>() {
                Err(_) => err(
                    public,
                    format!("web.public_listen {public:?} is not an IP:port address"),
                ),
                Ok(addr) if Some(addr) == self.web.listen.parse().ok() => err(
                    public,
                    "web.public_listen must differ from web.listen: the customers' pages have a listener of their own".into(),
                ),
                Ok(_) => {}
            }
        }
        if let Some(url) = &self.web.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            err(
                url,
                format!("web.public_url {url:?} must start with https:// or http://"),
            );
        }
        if self.web.link_lifetime < Duration::from_secs(86_400) {
            err(
                "link_lifetime",
                "web.link_lifetime must be at least 1d".into(),
            );
        }
        for (key, n) in [
            ("form_per_ip_per_hour", self.web.form_per_ip_per_hour),
            (
                "form_per_address_per_hour",
                self.web.form_per_address_per_hour,
            ),
        ] {
            if n == 0 {
                err(
                    key,
                    format!("web.{key} must be at least 1 (0 would refuse every form)"),
                );
            }
        }
        for entry in &self.web.trusted_proxies {
            if let Err(e) = entry.parse::<trusted_proxies::ProxyNet>() {
                err(entry, format!("web.trusted_proxies: {e}"));
            }
        }
        // Below a minute every page view would outlive its own session.
        if self.web.session_idle < Duration::from_secs(60) {
            err(
                "session_idle",
                "web.session_idle must be at least 1m".into(),
            );
        }
        // Whole seconds: the page's script counts in them; a heartbeat
        // slower than a few minutes would show agents long gone.
        let presence = self.web.presence_interval;
        if presence < Duration::from_secs(1)
            || presence > Duration::from_secs(300)
            || presence.subsec_nanos() != 0
        {
            err(
                "presence_interval",
                "web.presence_interval must be whole seconds between 1s and 5m".into(),
            );
        }
        if self.smtp.max_line_length < 512 {
            err(
                "max_line_length",
                "smtp.max_line_length must be at least 512 (RFC 5321)".into(),
            );
        }
        if self.smtp.max_connections == 0 || self.smtp.max_recipients == 0 {
            err(
                "[smtp]",
                "smtp.max_connections and max_recipients must be at least 1".into(),
            );
        }
        if self.smtp.max_inflight_bytes < self.smtp.max_message_size {
            err(
                "max_inflight_bytes",
                format!(
                    "smtp.max_inflight_bytes ({}) must be at least smtp.max_message_size ({}): a message of the largest size could never be accepted",
                    self.smtp.max_inflight_bytes, self.smtp.max_message_size
                ),
            );
        }
        if self.smtp.max_connections_per_ip == 0 {
            err(
                "max_connections_per_ip",
                "smtp.max_connections_per_ip must be at least 1".into(),
            );
        }
        if self.smtp.session_timeout < Duration::from_secs(1) {
            err(
                "session_timeout",
                "smtp.session_timeout must be at least 1s".into(),
            );
        }
        match (&self.web.tls_cert, &self.web.tls_key) {
            (Some(cert), Some(key)) => match (self.resolve_file(cert), self.resolve_file(key)) {
                (Ok(c), Ok(k)) => {
                    // Credentials exist only under systemd; check warns.
                    let away =
                        |p: &Path, f: &Path| crate::credentials::is_credential(p) && !f.exists();
                    if !away(cert, &c)
                        && !away(key, &k)
                        && let Err(e) = crate::tls::server_config(&c, &k, "web")
                    {
                        err("tls_cert", format!("{e:#}"));
                    }
                }
                (Err(e), _) | (_, Err(e)) => err("tls_", e),
            },
            (None, None) => {}
            _ => err(
                "tls_",
                "web.tls_cert and web.tls_key must be set together".into(),
            ),
        }
        if self.smtp.tls_cert.is_some() != self.smtp.tls_key.is_some() {
            err(
                "tls_",
                "smtp.tls_cert and smtp.tls_key must be set together".into(),
            );
        }
        if let Err(e) = Relay::parse(&self.outbound.relay, &self.base_dir) {
            err("relay", e);
        }
        if split_address(self.from_address()).is_none() {
            err(
                "from",
                format!(
                    "outbound.from {:?} has no local@domain address",
                    self.outbound.from
                ),
            );
        }
        if self.outbound.concurrency == 0 {
            err(
                "concurrency",
                "outbound.concurrency must be at least 1".into(),
            );
        }
        if self.web.api_token.is_none() && self.web.api_token_file.is_none() {
            err(
                "[web]",
                "web.api_token or web.api_token_file is required".into(),
            );
        }
        if self.uses_shipped_api_token() && self.api_reachable_beyond_loopback() {
            err(
                "api_token",
                format!(
                    "web.api_token is the shipped example token {SHIPPED_API_TOKEN:?} and web.listen {:?} is reachable from other hosts: set your own token (e.g. `openssl rand -hex 32`)",
                    self.web.listen
                ),
            );
        }
        if let Some(c) = &self.agents.comment_address {
            if split_address(c).is_none() || c.contains(['<', '>', ' ']) {
                err(
                    "comment_address",
                    format!("agents.comment_address {c:?} is not local@domain"),
                );
            } else if self.mailbox_for(c).is_some() {
                err(
                    "comment_address",
                    format!(
                        "agents.comment_address {c:?} is also a [[mailbox]]: use its own address, e.g. support-comment@"
                    ),
                );
            }
        }
        if self
            .agents
            .trusted_authserv_id
            .as_ref()
            .is_some_and(|a| a.trim().is_empty() || a.contains(char::is_whitespace))
        {
            err(
                "trusted_authserv_id",
                "agents.trusted_authserv_id must be one word (the authserv-id your MTA writes)"
                    .into(),
            );
        }
        if self.agents.hold_expiry < Duration::from_secs(1) {
            err(
                "hold_expiry",
                "agents.hold_expiry must be at least 1s".into(),
            );
        }
        if self.tickets.max_participants_per_message == 0
            || self.tickets.max_participants_per_ticket == 0
        {
            err(
                "max_participants_per",
                "tickets.max_participants_per_message and max_participants_per_ticket must be at least 1 (the requester)"
                    .into(),
            );
        }
        for (key, d) in [
            ("reply_lifetime", self.tokens.reply_lifetime),
            ("agent_lifetime", self.tokens.agent_lifetime),
        ] {
            if d < Duration::from_secs(86_400) {
                err(key, format!("tokens.{key} must be at least 1d"));
            }
        }
        self.validate_imap(text, &mut out);
        self.validate_dkim(text, &mut out);
        self.validate_mx(text, &mut out);
        self.validate_auth(text, &mut out);
        out
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// A file a key names, which may be a systemd credential
    /// (`credential:NAME`, see [`crate::credentials`]).
    pub fn resolve_file(&self, p: &Path) -> Result<PathBuf, String> {
        crate::credentials::resolve(&self.base_dir, p)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.server.data_dir)
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.resolve(&self.server.rules_dir)
    }

    pub fn kb_dir(&self) -> PathBuf {
        self.resolve(&self.server.kb_dir)
    }

    pub fn relay(&self) -> Relay {
        // validated in `load`
        Relay::parse(&self.outbound.relay, &self.base_dir)
            .unwrap_or_else(|_| Relay::Maildir(self.data_dir().join("outbox")))
    }

    /// The bare address of `outbound.from`.
    pub fn from_address(&self) -> &str {
        bare_address(&self.outbound.from)
    }

    /// Whether the API bearer token (inline or from its file) is the example
    /// token of the shipped config.toml, which anyone who read it knows.
    pub fn uses_shipped_api_token(&self) -> bool {
        self.api_token().is_ok_and(|t| t == SHIPPED_API_TOKEN)
    }

    /// Whether browsers reach the web view over HTTPS: through a TLS proxy
    /// (`web.https`) or our own TLS (`web.tls_cert`).
    pub fn web_https(&self) -> bool {
        self.web.https || self.web.tls_cert.is_some()
    }

    /// Whether `web.listen` accepts connections from other hosts.
    pub fn api_reachable_beyond_loopback(&self) -> bool {
        self.web
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback())
    }

    /// Problems that do not stop the daemon but must be fixed before going
    /// live; `postdesk check` prints them and the daemon logs them at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.uses_shipped_api_token() {
            out.push(format!(
                "web.api_token is the shipped example token {SHIPPED_API_TOKEN:?}: anyone who read the README can use the API; set your own (e.g. `openssl rand -hex 32`)"
            ));
        }
        out
    }

    /// The signing key of our plus-addresses from `tokens.secret_file`, if
    /// set (None: the store's own key is used).
    pub fn token_secret(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(file) = &self.tokens.secret_file else {
            return Ok(None);
        };
        let path = self
            .resolve_file(file)
            .map_err(|e| anyhow::anyhow!("tokens.secret_file: {e}"))?;
        let mut key = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!("cannot read tokens.secret_file {}: {e}", path.display())
        })?;
        while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
            key.pop();
        }
        if key.len() < 32 {
            anyhow::bail!(
                "tokens.secret_file {} holds {} bytes; at least 32 are needed (e.g. `openssl rand -hex 32`)",
                path.display(),
                key.len()
            );
        }
        Ok(Some(key))
    }

    /// The signing key of customer links from `web.link_secret_file`, if
    /// set (None: the store's own key is used).
    pub fn link_secret(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(file) = &self.web.link_secret_file else {
            return Ok(None);
        };
        let path = self
            .resolve_file(file)
            .map_err(|e| anyhow::anyhow!("web.link_secret_file: {e}"))?;
        let mut key = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!("cannot read web.link_secret_file {}: {e}", path.display())
        })?;
        while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
            key.pop();
        }
        if key.len() < 32 {
            anyhow::bail!(
                "web.link_secret_file {} holds {} bytes; at least 32 are needed (e.g. `openssl rand -hex 32`)",
                path.display(),
                key.len()
            );
        }
        Ok(Some(key))
    }

    /// Where customers reach the public pages, without a trailing slash;
    /// None when they are not served.
    pub fn public_base_url(&self) -> Option<String> {
        let listen = self.web.public_listen.as_ref()?;
        Some(match &self.web.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{listen}"),
        })
    }

    /// The API bearer token, read from api_token_file when that is used.
    pub fn api_token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.web.api_token {
            return Ok(t.clone());
        }
        let path = self
            .web
            .api_token_file
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no web.api_token configured"))?;
        let path = self
            .resolve_file(path)
            .map_err(|e| anyhow::anyhow!("web.api_token_file: {e}"))?;
        let t = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!("cannot read web.api_token_file {}: {e}", path.display())
        })?;
        Ok(t.trim().to_string())
    }

    /// Whether mail for `rcpt` is accepted at RCPT: a mailbox (with or without
    /// a `+tag`) or the agents' comment address.
    pub fn accepts(&self, rcpt: &str) -> bool {
        self.mailbox_for(rcpt).is_some() || self.is_comment_address(rcpt)
    }

    /// Whether `addr` is `agents.comment_address` (ignoring a `+tag` and case).
    pub fn is_comment_address(&self, addr: &str) -> bool {
        self.agents
            .comment_address
            .as_ref()
            .is_some_and(|comment| same_mailbox(addr, comment))
    }

    /// The support address mail about a ticket in `queue` comes from: the
    /// `[[mailbox]]` feeding that queue, else the first mailbox, else outbound.from.
    pub fn support_address(&self, queue: &str) -> &str {
        self.mailboxes
            .iter()
            .find(|m| m.queue == queue)
            .or(self.mailboxes.first())
            .map_or(self.from_address(), |m| m.address.as_str())
    }

    /// The display name of `outbound.from` ("Example Support"), or "Support".
    pub fn from_display_name(&self) -> String {
        let from = &self.outbound.from;
        let name: String = from
            .find('<')
            .map_or("", |i| &from[..i])
            .trim()
            .trim_matches('"')
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        if name.is_empty() {
            "Support".into()
        } else {
            name
        }
    }

    /// The mailbox an RCPT address belongs to, ignoring a `+tag` in the local part
    /// (tokenised reply and bounce addresses), case-insensitively.
    pub fn mailbox_for(&self, rcpt: &str) -> Option<&MailboxConfig> {
        self.mailboxes
            .iter()
            .find(|m| same_mailbox(rcpt, &m.address))
    }

    /// The queues mailboxes feed; routing rules may only name these (or agents' queues).
    pub fn mailbox_queues(&self) -> Vec<String> {
        self.mailboxes.iter().map(|m| m.queue.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const MINIMAL: &str = r#"
[server]
hostname = "support.example.test"

[[mailbox]]
address = "support@example.test"

[outbound]
relay = "maildir:data/outbox"
from = "Example Support <support@example.test>"

[web]
api_token = "t"
"#;

    #[test]
    fn loads_minimal_with_defaults() {
        let c = Config::from_str(MINIMAL, Path::new("/etc/postdesk/config.toml")).unwrap();
        assert_eq!(c.data_dir(), Path::new("/etc/postdesk/data"));
        assert_eq!(c.smtp.max_message_size, 25 * 1024 * 1024);
        assert_eq!(c.outbound.lifetime, Duration::from_secs(5 * 86400));
        assert_eq!(c.web.session_idle, Duration::from_secs(8 * 3600));
        assert_eq!(
            c.relay(),
            Relay::Maildir("/etc/postdesk/data/outbox".into())
        );
    }

    #[test]
    fn session_idle_below_a_minute_is_refused_with_position() {
        let text = MINIMAL.replace("[web]\n", "[web]\nsession_idle = \"10s\"\n");
        let e = Config::from_str(&text, Path::new("config.toml")).unwrap_err();
        let d = e.0.iter().find(|d| d.message.contains("session_idle"));
        assert!(d.is_some_and(|d| d.line > 1), "{e}");
    }

    #[test]
    fn presence_interval_defaults_to_10s_and_is_bounded() {
        let c = Config::from_str(MINIMAL, Path::new("config.toml")).unwrap();
        assert_eq!(c.web.presence_interval, Duration::from_secs(10));
        let ok = MINIMAL.replace("[web]\n", "[web]\npresence_interval = \"1s\"\n");
        assert!(Config::from_str(&ok, Path::new("config.toml")).is_ok());
        for bad in ["0s", "10m"] {
            let text = MINIMAL.replace(
                "[web]\n",
                &format!("[web]\npresence_interval = \"{bad}\"\n"),
            );
            let e = Config::from_str(&text, Path::new("config.toml")).unwrap_err();
            let d = e.0.iter().find(|d| d.message.contains("presence_interval"));
            assert!(d.is_some_and(|d| d.line > 1), "{bad}: {e}");
        }
    }

    #[test]
    fn web_form_allowances_and_reopen_window_default_and_zero_is_refused() {
        let c = Config::from_str(MINIMAL, Path::new("config.toml")).unwrap();
        assert_eq!(c.web.form_per_ip_per_hour, 10);
        assert_eq!(c.web.form_per_address_per_hour, 3);
        assert_eq!(c.web.reopen_window, Duration::from_secs(30 * 86_400));
        for key in ["form_per_ip_per_hour", "form_per_address_per_hour"] {
            let text = MINIMAL.replace("[web]\n", &format!("[web]\n{key} = 0\n"));
            let e = Config::from_str(&text, Path::new("config.toml")).unwrap_err();
            let d = e.0.iter().find(|d| d.message.contains(key));
            assert!(d.is_some_and(|d| d.line > 1), "{key}: {e}");
        }
    }

    #[test]
    fn trusted_proxies_default_to_none_and_a_bad_entry_is_refused_with_its_key() {
        let c = Config::from_str(MINIMAL, Path::new("config.toml")).unwrap();
        assert!(c.web.trusted_proxies.is_empty());
        let good = MINIMAL.replace(
            "[web]\n",
            "[web]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n",
        );
        let c = Config::from_str(&good, Path::new("config.toml")).unwrap();
        assert_eq!(c.web.trusted_proxies.len(), 3);
        for bad in ["10.0.0.0/33", "10.0.0/8", "proxy.example"] {
            let text = MINIMAL.replace(
                "[web]\n",
                &format!("[web]\ntrusted_proxies = [\"127.0.0.1\", \"{bad}\"]\n"),
            );
            let e = Config::from_str(&text, Path::new("config.toml")).unwrap_err();
            let d =
                e.0.iter()
                    .find(|d| d.message.contains("web.trusted_proxies"));
            assert!(
                d.is_some_and(|d| d.line > 1 && d.message.contains(bad)),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn syntax_error_has_position() {
        let text = "[server]\nhostname = \"x\"\nbogus = \n";
        let e = Config::from_str(text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.0[0].line, 3, "{e}");
        assert!(e.to_string().starts_with("c.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_key_is_reported_where_it_is() {
        let text = MINIMAL.replace("[web]\n", "[web]\nlisen = \"x\"\n");
        let e = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
        let line = text.lines().position(|l| l.starts_with("lisen")).unwrap() + 1;
        assert_eq!(e.0[0].line, line, "{e}");
        assert!(e.0[0].message.contains("lisen"), "{e}");
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let text = MINIMAL.replace("maildir:data/outbox", "ftp://x").replace(
            "support@example.test\"\n\n[outbound]",
            "nobody\"\n\n[outbound]",
        );
        let e = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(e.to_string().contains("ftp"), "{e}");
    }

    #[test]
    fn relay_urls() {
        let b = Path::new("/x");
        assert_eq!(
            Relay::parse("smtp://127.0.0.1:2626", b).unwrap(),
            Relay::Smtp {
                host: "127.0.0.1".into(),
                port: 2626,
                implicit_tls: false,
                credentials: None
            }
        );
        assert_eq!(
            Relay::parse("smtps://u%40x:p%3Aw@mail.example.test", b).unwrap(),
            Relay::Smtp {
                host: "mail.example.test".into(),
                port: 465,
                implicit_tls: true,
                credentials: Some(("u@x".into(), "p:w".into()))
            }
        );
        assert!(Relay::parse("smtp://host:notaport", b).is_err());
    }

    #[test]
    fn mailbox_lookup_ignores_plus_tag_and_case() {
        let c = Config::from_str(MINIMAL, Path::new("c.toml")).unwrap();
        assert!(c.mailbox_for("Support+T12.abc@Example.TEST").is_some());
        assert!(c.mailbox_for("sales@example.test").is_none());
        assert!(c.mailbox_for("support@other.test").is_none());
    }

    #[test]
    fn agents_section() {
        let c = Config::from_str(MINIMAL, Path::new("c.toml")).unwrap();
        assert!(c.agents.notify);
        assert_eq!(c.agents.hold_expiry, Duration::from_secs(86400));
        assert!(!c.accepts("support-comment@example.test"));
        let text = format!(
            "{MINIMAL}[agents]\nnotify = false\ncomment_address = \"support-comment@example.test\"\nhold_expiry = \"2h\"\ntrusted_authserv_id = \"mx.example.test\"\n"
        );
        let c = Config::from_str(&text, Path::new("c.toml")).unwrap();
        assert!(!c.agents.notify);
        assert!(c.accepts("Support-Comment@example.test"));
        assert!(c.is_comment_address("support-comment+x@example.test"));
        assert!(!c.is_comment_address("support@example.test"));
        let bad = format!("{MINIMAL}[agents]\ncomment_address = \"support@example.test\"\n");
        let e = Config::from_str(&bad, Path::new("c.toml")).unwrap_err();
        let line = bad
            .lines()
            .position(|l| l.starts_with("comment_address"))
            .unwrap()
            + 1;
        assert_eq!(e.0[0].line, line, "{e}");
    }

    #[test]
    fn participant_caps_and_token_lifetimes_are_checked() {
        let bad = format!(
            "{MINIMAL}[tickets]\nmax_participants_per_message = 0\n[tokens]\nreply_lifetime = \"2h\"\n"
        );
        let e = Config::from_str(&bad, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_participants_per_message"), "{e}");
        assert!(
            e.contains("tokens.reply_lifetime must be at least 1d"),
            "{e}"
        );
        let c = Config::from_str(MINIMAL, Path::new("c.toml")).unwrap();
        assert_eq!(c.tickets.max_participants_per_ticket, 50);
        assert_eq!(c.acknowledgement.max_per_hour, 600);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432000));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5 weeks").is_err());
        // Too long for a u64 of seconds: an error, not an overflow.
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn smtp_limits_default_and_are_checked() {
        let c = Config::from_str(MINIMAL, Path::new("c.toml")).unwrap();
        assert_eq!(c.smtp.max_inflight_bytes, 256 * 1024 * 1024);
        assert_eq!(c.smtp.max_connections_per_ip, 50);
        assert_eq!(c.smtp.session_timeout, Duration::from_secs(600));
        let text = format!(
            "{MINIMAL}[smtp]\nmax_message_size = 2000\nmax_inflight_bytes = 1000\nmax_connections_per_ip = 0\nsession_timeout = \"0s\"\n"
        );
        let e = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
        let msgs = e.to_string();
        assert_eq!(e.0.len(), 3, "{msgs}");
        let line = text
            .lines()
            .position(|l| l.starts_with("max_inflight_bytes"))
            .unwrap()
            + 1;
        assert_eq!(e.0[0].line, line, "{msgs}");
        assert!(msgs.contains("max_connections_per_ip"), "{msgs}");
        assert!(msgs.contains("session_timeout"), "{msgs}");
    }

    #[test]
    fn the_shipped_api_token_warns_on_loopback_and_fails_beyond_it() {
        let shipped = MINIMAL.replace("api_token = \"t\"", "api_token = \"change-me\"");
        let c = Config::from_str(&shipped, Path::new("c.toml")).unwrap();
        assert_eq!(c.warnings().len(), 1);
        let own = Config::from_str(MINIMAL, Path::new("c.toml")).unwrap();
        assert!(own.warnings().is_empty());
        for listen in ["0.0.0.0:8080", "[::]:8080", "192.0.2.1:8080"] {
            let text = format!("{shipped}listen = \"{listen}\"\n");
            let e = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
            assert!(e.to_string().contains("change-me"), "{listen}: {e}");
        }
        let text = format!("{shipped}listen = \"[::1]:8080\"\n");
        Config::from_str(&text, Path::new("c.toml")).unwrap();
    }
}
