//! Delivery of one message through the configured relay: SMTP(S) via
//! mail-send, or an outbox Maildir folder. Direct delivery to MX hosts
//! (`relay = "mx"`, see [`super::mx`]) uses the same SMTP dialogue here.
//!
//! The SMTP dialogue is driven step by step with mail-send's client rather
//! than through `SmtpClientBuilder::connect`, for two reasons:
//! - `connect()` with `implicit_tls(false)` *requires* STARTTLS and fails with
//!   `Error::MissingStartTls` when the server does not offer it; we want
//!   opportunistic STARTTLS (local sinks and loopback relays offer no TLS).
//! - each reply can be attributed to the command that drew it (greeting,
//!   `RCPT TO:<x>`, end of DATA), which makes the ticket event readable.
//!
//! After a successful delivery the SMTP connection goes back to a
//! [`ConnectionPool`] instead of QUIT: connecting, greeting, EHLO, STARTTLS
//! and AUTH cost more than a small message, so reuse is what lets the queue
//! keep up with intake. A reused connection is checked with RSET first; if
//! that fails (the relay closed it meanwhile) a fresh one is made, so a stale
//! connection never fails a delivery. Pooled connections are keyed by the
//! server (name, address, port), so an MX connection only carries mail for
//! the host it was opened to.
//!
//! Every accepted message yields a [`DeliveryEvidence`]: the server's reply
//! and queue id, and the connection's TLS version, cipher and whether the
//! certificate verified.

use crate::clock::Clock;
use crate::config::Relay;
use crate::outbound::tls_policy::{TlsCheck, tls_evidence};
use crate::store::{DeliveryEvidence, TlsEvidence};
use mail_send::smtp::AssertReply;
use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient};
use smtp_proto::{EXT_START_TLS, EhloResponse, Response};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long an idle relay connection is kept. Well below the 5 minutes
/// RFC 5321 (4.5.3.2.7) lets a server wait for the next command.
const IDLE_KEEP: Duration = Duration::from_secs(30);

/// Idle, authenticated SMTP connections, ready for the next transaction.
/// Cloning shares the pool.
#[derive(Clone, Default)]
pub struct ConnectionPool {
    idle: Arc<Mutex<Vec<Idle>>>,
    /// Most connections kept idle (the sender's concurrency).
    capacity: usize,
}

struct Idle {
    /// The server it is connected to (see [`SmtpAttempt::key`]).
    key: String,
    conn: Conn,
    since: Instant,
}

enum Client {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

/// A connection and what is known of it for the evidence.
struct Conn {
    client: Client,
    /// The peer's address.
    ip: Option<String>,
    tls: Option<TlsEvidence>,
}

impl ConnectionPool {
    pub fn new(capacity: usize) -> ConnectionPool {
        ConnectionPool {
            idle: Arc::default(),
            capacity,
        }
    }

    /// The most recently used idle connection to `key` that is not too old.
    fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|c| c.since.elapsed() < IDLE_KEEP);
        let i = idle.iter().rposition(|c| c.key == key)?;
        Some(idle.remove(i).conn)
    }

    fn put(&self, key: String, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.capacity {
            // The oldest makes room: the newest is the likeliest to be wanted.
            if idle.is_empty() {
                return;
            }
            idle.remove(0);
        }
        idle.push(Idle {
            key,
            conn,
            since: Instant::now(),
        });
    }

    /// Idle connections right now (for tests).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// How a delivery attempt ended, as the queue needs to know it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: 4xx, connection refused, timeout, local I/O trouble.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Will never succeed: 5xx.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl DeliveryError {
    /// The human-readable reason, without the temporary/permanent prefix.
    pub fn text(&self) -> &str {
        match self {
            DeliveryError::Transient(t) | DeliveryError::Permanent(t) => t,
        }
    }
}

/// The relay took the message; these recipients it refused at RCPT, each
/// with a temporary or permanent reason.
#[derive(Debug, Default)]
pub struct Accepted {
    pub refused: Vec<(String, DeliveryError)>,
    /// Who took it and how: one per accepting server (direct delivery to
    /// several domains has several).
    pub evidence: Vec<DeliveryEvidence>,
}

/// Delivers `raw` from `mail_from` to `rcpt_to` through `relay`.
///
/// Recipients the relay refuses at RCPT are reported in [`Accepted`] while
/// the others get the message: one bad Cc address must not keep a reply from
/// the customer. If every recipient is refused nothing is sent, and the
/// attempt fails (permanently only if every refusal is permanent).
pub async fn deliver(
    relay: &Relay,
    pool: &ConnectionPool,
    helo: &str,
    timeout: Duration,
    mail_from: &str,
    rcpt_to: &[String],
    raw: &[u8],
) -> Result<Accepted, DeliveryError> {
    if rcpt_to.is_empty() {
        return Err(DeliveryError::Permanent("no recipients".into()));
    }
    match relay {
        Relay::Smtp {
            host,
            port,
            implicit_tls,
            credentials,
        } => {
            let attempt = SmtpAttempt {
                pool,
                host,
                addr: None,
                port: *port,
                implicit_tls: *implicit_tls,
                credentials: credentials.as_ref(),
                helo,
                timeout,
                tls: TlsMode::Relay,
            };
            // mail-send bounds each command by `timeout`; this bounds the whole
            // dialogue, so a peer trickling replies cannot hold a slot forever.
            match tokio::time::timeout(timeout, attempt.send(mail_from, rcpt_to, raw)).await {
                Ok(result) => result.map(|mut a| {
                    for e in &mut a.evidence {
                        e.route = "smarthost".into();
                    }
                    a
                }),
                Err(_) => Err(DeliveryError::Transient(format!(
                    "{host}:{port} did not complete the delivery within {}s",
                    timeout.as_secs_f64()
                ))),
            }
        }
        Relay::Maildir(dir) => {
            let dir = dir.clone();
            let helo = helo.to_string();
            let mail_from = mail_from.to_string();
            let rcpt_to = rcpt_to.to_vec();
            let raw = raw.to_vec();
            // The Maildir name's time part is only a sorting hint; take it from
            // the (system) clock like every other "now".
            let now = Clock::system().now();
            tokio::task::spawn_blocking(move || {
                maildir_deliver(&dir, &helo, now, &mail_from, &rcpt_to, &raw).map(|path| Accepted {
                    refused: Vec::new(),
                    evidence: vec![DeliveryEvidence {
                        at: now,
                        rcpts: rcpt_to,
                        route: "maildir".into(),
                        host: path.display().to_string(),
                        ip: None,
                        reply: "written to the outbox folder".into(),
                        queue_id: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                        tls: None,
                        policy: None,
                        dkim_selector: None,
                    }],
                })
            })
            .await
            .map_err(|e| DeliveryError::Transient(format!("maildir writer failed: {e}")))?
        }
        // The sender hands direct delivery to `mx::deliver`, which holds the
        // resolver and the policies; reaching here is a wiring mistake.
        Relay::Mx => Err(DeliveryError::Transient(
            "direct delivery needs the MX router".into(),
        )),
    }
}

/// A short description of a relay for events and logs; never shows credentials.
pub fn describe(relay: &Relay) -> String {
    match relay {
        Relay::Smtp {
            host,
            port,
            implicit_tls,
            ..
        } => {
            let scheme = if *implicit_tls { "smtps" } else { "smtp" };
            if host.contains(':') {
                format!("{scheme}://[{host}]:{port}")
            } else {
                format!("{scheme}://{host}:{port}")
            }
        }
        Relay::Maildir(dir) => format!("maildir:{}", dir.display()),
        Relay::Mx => "mx".into(),
    }
}

/// How the connection's TLS is chosen and checked.
pub(super) enum TlsMode {
    /// The smarthost: STARTTLS when offered (implicit TLS for smtps), the
    /// certificate verified by the platform's trust store, else no delivery.
    Relay,
    /// An MX host: STARTTLS when offered, its certificate checked by `check`
    /// (which records the verdict and, when the policy requires, refuses a
    /// certificate that does not verify); `require` refuses a host without
    /// STARTTLS.
    Mx { check: TlsCheck, require: bool },
}

/// One delivery over SMTP to one server.
pub(super) struct SmtpAttempt<'a> {
    pub pool: &'a ConnectionPool,
    /// The server's name: TLS server name, and the address to resolve when
    /// `addr` is None.
    pub host: &'a str,
    /// The address to connect to (an MX host's, resolved by the caller).
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub implicit_tls: bool,
    pub credentials: Option<&'a (String, String)>,
    pub helo: &'a str,
    pub timeout: Duration,
    pub tls: TlsMode,
}

impl SmtpAttempt<'_> {
    /// Which pooled connections this attempt may reuse.
    fn key(&self) -> String {
        let policy = match &self.tls {
            TlsMode::Relay => "relay",
            TlsMode::Mx { require: true, .. } => "mx-require",
            TlsMode::Mx { .. } => "mx",
        };
        format!("{policy} {} {:?} {}", self.host, self.addr, self.port)
    }

    pub(super) async fn send(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> Result<Accepted, DeliveryError> {
        let key = self.key();
        while let Some(conn) = self.pool.take(&key) {
            // RSET proves the connection still works before it carries a message;
            // a failure only means the relay closed it while it was idle.
            let Conn { client, ip, tls } = conn;
            let reused = match client {
                Client::Plain(mut c) => match c.rset().await {
                    Ok(()) => Some(
                        self.transaction(c, mail_from, rcpt_to, raw)
                            .await
                            .map(|(c, r)| (Client::Plain(c), r)),
                    ),
                    Err(_) => None,
                },
                Client::Tls(mut c) => match c.rset().await {
                    Ok(()) => Some(
                        self.transaction(*c, mail_from, rcpt_to, raw)
                            .await
                            .map(|(c, r)| (Client::Tls(Box::new(c)), r)),
                    ),
                    Err(_) => None,
                },
            };
            if let Some(result) = reused {
                let (client, (refused, reply)) = result?;
                let accepted = self.accepted(rcpt_to, refused, reply, ip.clone(), tls.clone());
                self.pool.put(key, Conn { client, ip, tls });
                return Ok(accepted);
            }
        }
        let Conn { client, ip, tls } = self.connect().await?;
        let (client, (refused, reply)) = match client {
            Client::Plain(c) => self
                .transaction(c, mail_from, rcpt_to, raw)
                .await
                .map(|(c, r)| (Client::Plain(c), r))?,
            Client::Tls(c) => self
                .transaction(*c, mail_from, rcpt_to, raw)
                .await
                .map(|(c, r)| (Client::Tls(Box::new(c)), r))?,
        };
        let accepted = self.accepted(rcpt_to, refused, reply, ip.clone(), tls.clone());
        self.pool.put(key, Conn { client, ip, tls });
        Ok(accepted)
    }

    /// The result of a transaction the server took, with its evidence.
    fn accepted(
        &self,
        rcpt_to: &[String],
        refused: Vec<(String, DeliveryError)>,
        reply: String,
        ip: Option<String>,
        tls: Option<TlsEvidence>,
    ) -> Accepted {
        let rcpts = rcpt_to
            .iter()
            .filter(|r| !refused.iter().any(|(f, _)| f == *r))
            .cloned()
            .collect();
        Accepted {
            evidence: vec![DeliveryEvidence {
                at: Clock::system().now(),
                rcpts,
                route: String::new(),
                host: self.host.to_string(),
                ip,
                queue_id: queue_id(&reply),
                reply,
                tls,
                policy: None,
                dkim_selector: None,
            }],
            refused,
        }
    }

    /// A new connection, greeted, upgraded to TLS where possible and
    /// authenticated: ready for MAIL FROM.
    async fn connect(&self) -> Result<Conn, DeliveryError> {
        let stream = match self.addr {
            // An MX address that drops SYNs would otherwise take the whole
            // budget (the kernel retries for minutes): a third of it, so the
            // next host is still tried.
            Some(ip) => tokio::time::timeout(self.timeout / 3, TcpStream::connect((ip, self.port)))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer to the connection attempt",
                    ))
                }),
            None => TcpStream::connect((self.host, self.port)).await,
        };
        let addr = match self.addr {
            Some(IpAddr::V6(ip)) => format!("{} [{ip}]:{}", self.host, self.port),
            Some(ip) => format!("{} [{ip}]:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        };
        let stream = stream
            .map_err(|e| DeliveryError::Transient(format!("cannot connect to {addr}: {e}")))?;
        let ip = stream.peer_addr().ok().map(|a| a.ip().to_string());
        // Each SMTP step is a small write waiting for a reply: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let mut client = SmtpClient {
            stream,
            timeout: self.timeout,
        };
        if self.implicit_tls {
            let mut client = client
                .into_tls(&tls_connector()?, self.host)
                .await
                .map_err(|e| classify(&format!("TLS handshake with {addr}"), e))?;
            let tls = Some(tls_evidence(client.stream.get_ref().1, true, None));
            let caps = self.greet(&mut client).await?;
            self.login(&mut client, &caps, true).await?;
            return Ok(Conn {
                client: Client::Tls(Box::new(client)),
                ip,
                tls,
            });
        }
        let caps = self.greet(&mut client).await?;
        if caps.has_capability(EXT_START_TLS) {
            let (connector, check) = match &self.tls {
                TlsMode::Relay => (tls_connector()?, None),
                TlsMode::Mx { check, .. } => (
                    check.connector().map_err(DeliveryError::Transient)?,
                    Some(check),
                ),
            };
            let mut client = client
                .start_tls(&connector, self.host)
                .await
                // Whatever the reply code, TLS trouble is about the relay, not
                // the message: retry rather than give the message up.
                .map_err(|e| {
                    DeliveryError::Transient(
                        classify(&format!("STARTTLS with {addr}"), e)
                            .text()
                            .to_string(),
                    )
                })?;
            let tls = Some(match check {
                None => tls_evidence(client.stream.get_ref().1, true, None),
                Some(check) => {
                    let failure = check.failure();
                    tls_evidence(client.stream.get_ref().1, failure.is_none(), failure)
                }
            });
            // RFC 3207: forget what was learnt before TLS and ask again.
            let caps = client
                .ehlo(self.helo)
                .await
                .map_err(|e| classify("EHLO after STARTTLS", e))?;
            self.login(&mut client, &caps, true).await?;
            Ok(Conn {
                client: Client::Tls(Box::new(client)),
                ip,
                tls,
            })
        } else {
            if let TlsMode::Mx { require: true, .. } = self.tls {
                let _ = client.quit().await;
                return Err(DeliveryError::Transient(format!(
                    "{addr} offers no STARTTLS and the domain's TLS policy requires it; \
                     nothing sent"
                )));
            }
            self.login(&mut client, &caps, false).await?;
            Ok(Conn {
                client: Client::Plain(client),
                ip,
                tls: None,
            })
        }
    }

    /// Reads the greeting and says EHLO.
    async fn greet<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<EhloResponse<String>, DeliveryError> {
        client
            .read()
            .await
            .and_then(|r| r.assert_positive_completion())
            .map_err(|e| classify("greeting", e))?;
        client
            .ehlo(self.helo)
            .await
            .map_err(|e| classify("EHLO", e))
    }

    /// AUTH with the relay's credentials, if it has any (never in clear
    /// text to a relay that is not on this host).
    async fn login<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
        caps: &EhloResponse<String>,
        encrypted: bool,
    ) -> Result<(), DeliveryError> {
        if let Some((user, pass)) = self.credentials {
            if !encrypted && !is_loopback(self.host) {
                return Err(DeliveryError::Transient(format!(
                    "{} offers no STARTTLS; refusing to send the relay password unencrypted \
                     (use smtps:// or a relay with STARTTLS)",
                    self.host
                )));
            }
            client
                .authenticate(Credentials::new(user.as_str(), pass.as_str()), caps)
                .await
                .map_err(|e| classify("AUTH", e))?;
        }
        Ok(())
    }

    /// One mail transaction; the connection comes back for reuse when the
    /// relay accepted the message, with the refused recipients and the
    /// reply to the end of DATA.
    async fn transaction<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut client: SmtpClient<T>,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> Result<(SmtpClient<T>, (Vec<(String, DeliveryError)>, String)), DeliveryError> {
        let no_params = Parameters::default();
        client
            .mail_from(mail_from, &no_params)
            .await
            .map_err(|e| classify(&format!("MAIL FROM:<{mail_from}>"), e))?;
        let mut refused = Vec::new();
        for rcpt in rcpt_to {
            match client.rcpt_to(rcpt, &no_params).await {
                Ok(()) => {}
                // A reply about this recipient; anything else is about the connection.
                Err(e @ mail_send::Error::UnexpectedReply(_)) => {
                    refused.push((rcpt.clone(), classify(&format!("RCPT TO:<{rcpt}>"), e)));
                }
                Err(e) => return Err(classify(&format!("RCPT TO:<{rcpt}>"), e)),
            }
        }
        if refused.len() == rcpt_to.len() {
            return Err(all_refused(refused));
        }
        // mail-send always appends CRLF.CRLF; drop the message's own final
        // line break so the receiver gets the bytes unchanged (RFC 5321 4.1.1.4).
        let body = raw
            .strip_suffix(b"\r\n")
            .or_else(|| raw.strip_suffix(b"\n"))
            .unwrap_or(raw);
        let reply = client.data(body).await.map_err(|e| classify("DATA", e))?;
        let reply = reply_text(&reply);
        tracing::debug!(%reply, "relay accepted the message");
        Ok((client, (refused, reply)))
    }
}

/// The queue id in a reply to DATA, in the forms common MTAs use:
/// Postfix `queued as 4Xk2pL1abc`, Exim `id=1rAbCd-000Efg-Hi`, Sendmail
/// `4B1Ab2Cd012345 Message accepted`, Microsoft `<…@…> [InternalId=…]`.
pub fn queue_id(reply: &str) -> Option<String> {
    let clean = |s: &str| {
        let s = s.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.');
        (!s.is_empty()).then(|| s.to_string())
    };
    let lower = reply.to_ascii_lowercase();
    for marker in ["queued as ", "id=", "internalid="] {
        if let Some(i) = lower.find(marker) {
            let rest = &reply[i + marker.len()..];
            return rest.split_whitespace().next().and_then(clean);
        }
    }
    // Sendmail: "250 2.0.0 <id> Message accepted for delivery".
    let words: Vec<&str> = reply.split_whitespace().collect();
    if let Some(pos) = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("message"))
        .filter(|&p| p >= 1)
        && words
            .get(pos + 1)
            .is_some_and(|w| w.eq_ignore_ascii_case("accepted"))
    {
        let w = words[pos - 1];
        if w.len() >= 8
            && w.chars().all(|c| c.is_ascii_alphanumeric())
            && w.chars().any(|c| c.is_ascii_digit())
        {
            return Some(w.to_string());
        }
    }
    None
}

/// Every recipient was refused: the attempt fails, permanently only when
/// every refusal is (a temporary one may still succeed).
fn all_refused(refused: Vec<(String, DeliveryError)>) -> DeliveryError {
    let permanent = refused
        .iter()
        .all(|(_, e)| matches!(e, DeliveryError::Permanent(_)));
    let text = refused
        .iter()
        .map(|(_, e)| e.text())
        .collect::<Vec<_>>()
        .join("; ");
    if permanent {
        DeliveryError::Permanent(text)
    } else {
        DeliveryError::Transient(text)
    }
}

/// One TLS client configuration (platform certificate verifier) for all deliveries.
fn tls_connector() -> Result<TlsConnector, DeliveryError> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| mail_send::smtp::tls::build_tls_connector(false))
        .clone()
        .map_err(|e| DeliveryError::Transient(format!("TLS setup: {e}")))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `550 5.1.1 No such user`, on one line.
fn reply_text(r: &Response<String>) -> String {
    let mut out = r.code.to_string();
    if r.esc[0] != 0 {
        out.push_str(&format!(" {}.{}.{}", r.esc[0], r.esc[1], r.esc[2]));
    }
    let msg = r.message.split_whitespace().collect::<Vec<_>>().join(" ");
    if !msg.is_empty() {
        out.push(' ');
        out.push_str(&msg);
    }
    out
}

/// Sorts a mail-send error into retry-or-give-up, keeping the server's reply.
///
/// Only a 5xx reply to the message itself is permanent. A failed AUTH (even
/// 535) is a relay configuration problem, not the message's: it is retried so
/// queued mail goes out once the operator fixes the credentials.
fn classify(stage: &str, e: mail_send::Error) -> DeliveryError {
    use mail_send::Error as E;
    match e {
        E::UnexpectedReply(r) => {
            let text = format!("{stage}: {}", reply_text(&r));
            if (500..600).contains(&r.code) {
                DeliveryError::Permanent(text)
            } else {
                DeliveryError::Transient(text)
            }
        }
        E::AuthenticationFailed(r) => DeliveryError::Transient(format!(
            "{stage}: relay rejected our credentials: {}",
            reply_text(&r)
        )),
        E::UnsupportedAuthMechanism => DeliveryError::Transient(format!(
            "{stage}: relay offers no authentication method we support"
        )),
        E::Timeout => DeliveryError::Transient(format!("{stage}: timed out")),
        E::UnparseableReply => {
            DeliveryError::Transient(format!("{stage}: connection closed or unparseable reply"))
        }
        other => DeliveryError::Transient(format!("{stage}: {other}")),
    }
}

/// Distinguishes Maildir names made in the same second by this process.
static MAILDIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes the message into `dir/new` the Maildir way (tmp, fsync, rename,
/// fsync the directory) with `Return-Path` and `X-Original-To` prepended;
/// returns the final path.
fn maildir_deliver(
    dir: &Path,
    hostname: &str,
    now: i64,
    mail_from: &str,
    rcpt_to: &[String],
    raw: &[u8],
) -> Result<PathBuf, DeliveryError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        DeliveryError::Transient(format!("{what} {}: {e}", p.display()))
    };
    let tmp = dir.join("tmp");
    let new = dir.join("new");
    for d in [&tmp, &new, &dir.join("cur")] {
        std::fs::create_dir_all(d).map_err(|e| io("cannot create", d, e))?;
    }

    // Match the message's line endings (it should be CRLF, but be faithful).
    let eol = match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i == 0 || raw[i - 1] != b'\r' => "\n",
        _ => "\r\n",
    };
    let mut data = Vec::with_capacity(raw.len() + 128);
    data.extend_from_slice(format!("Return-Path: <{}>{eol}", header_safe(mail_from)).as_bytes());
    let rcpts: Vec<String> = rcpt_to
        .iter()
        .map(|r| format!("<{}>", header_safe(r)))
        .collect();
    data.extend_from_slice(format!("X-Original-To: {}{eol}", rcpts.join(", ")).as_bytes());
    data.extend_from_slice(raw);

    // Maildir names must not contain '/' or ':' (the info separator).
    let host = hostname.replace('/', "\\057").replace(':', "\\072");
    let pid = std::process::id();
    let (name, mut file) = loop {
        let n = MAILDIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{now}.P{pid}Q{n}.{host}");
        if new.join(&name).exists() {
            continue;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp.join(&name))
        {
            Ok(f) => break (name, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("cannot create", &tmp.join(&name), e)),
        }
    };
    let tmp_path = tmp.join(&name);
    let new_path = new.join(&name);
    let written = file.write_all(&data).and_then(|_| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(io("cannot write", &tmp_path, e));
    }
    if let Err(e) = std::fs::rename(&tmp_path, &new_path) {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(io("cannot move into", &new, e));
    }
    // The rename is only durable once the directory entry is.
    std::fs::File::open(&new)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync", &new, e))?;
    Ok(new_path)
}

/// Addresses go into header lines; a CR or LF in one must not start a new header.
fn header_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testutil::{Script, Server, closed_port, tempdir};

    const RAW: &[u8] = b"From: Support <support@example.test>\r\n\
To: alice@example.net\r\n\
Subject: Re: [#7] printer\r\n\
Message-ID: <t7.abc@support.example.test>\r\n\
\r\n\
Hello Alice,\r\n\
.this line starts with a dot\r\n\
bye\r\n";

    fn rcpts() -> Vec<String> {
        vec!["alice@example.net".into(), "bob@example.net".into()]
    }

    fn smtp(addr: std::net::SocketAddr) -> Relay {
        Relay::Smtp {
            host: addr.ip().to_string(),
            port: addr.port(),
            implicit_tls: false,
            credentials: None,
        }
    }

    async fn send(relay: &Relay) -> Result<Accepted, DeliveryError> {
        send_with(relay, &ConnectionPool::new(4)).await
    }

    async fn send_with(relay: &Relay, pool: &ConnectionPool) -> Result<Accepted, DeliveryError> {
        let from = "support+b7.x@example.test";
        deliver(
            relay,
            pool,
            "support.example.test",
            Duration::from_secs(5),
            from,
            &rcpts(),
            RAW,
        )
        .await
    }

    #[tokio::test]
    async fn maildir_delivery_is_byte_exact() {
        let dir = tempdir("maildir").join("outbox");
        let relay = Relay::Maildir(dir.clone());
        send(&relay).await.unwrap();
        send(&relay).await.unwrap();

        let mut files: Vec<_> = std::fs::read_dir(dir.join("new"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2, "two distinct names: {files:?}");
        files.sort();
        let got = std::fs::read(&files[0]).unwrap();
        let mut want = b"Return-Path: <support+b7.x@example.test>\r\n\
X-Original-To: <alice@example.net>, <bob@example.net>\r\n"
            .to_vec();
        want.extend_from_slice(RAW);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(got, want);

        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".support.example.test"), "{name}");
        assert!(!name.contains(':') && !name.contains('/'), "{name}");
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        assert!(dir.join("cur").is_dir());
    }

    #[tokio::test]
    async fn maildir_headers_follow_lf_messages_and_cannot_be_injected() {
        let dir = tempdir("maildir-lf");
        let relay = Relay::Maildir(dir.clone());
        let rcpt = vec!["a@x.test\r\nBcc: evil@x.test".to_string()];
        deliver(
            &relay,
            &ConnectionPool::new(1),
            "h",
            Duration::from_secs(5),
            "",
            &rcpt,
            b"Subject: x\n\nbody\n",
        )
        .await
        .unwrap();
        let f = std::fs::read_dir(dir.join("new"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(
            std::fs::read_to_string(f).unwrap(),
            "Return-Path: <>\nX-Original-To: <a@x.testBcc: evil@x.test>\nSubject: x\n\nbody\n"
        );
    }

    #[tokio::test]
    async fn maildir_io_error_is_transient() {
        let dir = tempdir("maildir-err");
        let file = dir.join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = send(&Relay::Maildir(file)).await.unwrap_err();
        assert!(matches!(err, DeliveryError::Transient(_)), "{err}");
    }

    #[tokio::test]
    async fn smtp_without_starttls_delivers_byte_exact() {
        let server = Server::start(Script::default()).await;
        send(&smtp(server.addr)).await.unwrap();
        let s = &server.session(0).await;
        assert_eq!(s.mail_from.as_deref(), Some("<support+b7.x@example.test>"));
        assert_eq!(s.rcpt_to, ["<alice@example.net>", "<bob@example.net>"]);
        assert_eq!(s.data.as_deref(), Some(RAW));
        assert_eq!(s.commands[0], "EHLO support.example.test");
        assert!(!s.commands.iter().any(|c| c.starts_with("STARTTLS")));
    }

    #[tokio::test]
    async fn smtp_acceptance_is_recorded_as_evidence() {
        let server = Server::start(Script::default()).await;
        let accepted = send(&smtp(server.addr)).await.unwrap();
        assert_eq!(accepted.evidence.len(), 1, "{accepted:?}");
        let e = &accepted.evidence[0];
        assert_eq!(e.route, "smarthost");
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.reply, "250 2.0.0 Ok: queued as ABC123");
        assert_eq!(e.queue_id.as_deref(), Some("ABC123"));
        assert_eq!(e.rcpts, rcpts());
        assert!(e.tls.is_none(), "the scripted server offers no STARTTLS");
    }

    #[test]
    fn queue_ids_in_common_replies() {
        for (reply, want) in [
            ("250 2.0.0 Ok: queued as 4Xk2pL1abcz8", Some("4Xk2pL1abcz8")),
            ("250 OK id=1rAbCd-000Efg-Hi", Some("1rAbCd-000Efg-Hi")),
            (
                "250 2.0.0 4B1Ab2Cd012345 Message accepted for delivery",
                Some("4B1Ab2Cd012345"),
            ),
            (
                "250 2.6.0 <a@b> [InternalId=123456789, Hostname=X] Queued mail for delivery",
                Some("123456789"),
            ),
            ("250 OK", None),
            ("250 Message accepted for delivery", None),
        ] {
            assert_eq!(queue_id(reply).as_deref(), want, "{reply}");
        }
    }

    #[tokio::test]
    async fn smtp_connection_is_reused_after_rset() {
        let server = Server::start(Script::default()).await;
        let relay = smtp(server.addr);
        let pool = ConnectionPool::new(2);
        for _ in 0..3 {
            send_with(&relay, &pool).await.unwrap();
        }
        assert_eq!(
            pool.idle_count(),
            1,
            "the connection waits for the next message"
        );
        drop(pool);
        let s = server.session(0).await;
        assert_eq!(
            server.accepted.load(Ordering::SeqCst),
            1,
            "one connection for three messages"
        );
        let verbs: Vec<&str> = s
            .commands
            .iter()
            .map(|c| c.split([' ', ':']).next().unwrap_or(""))
            .collect();
        assert_eq!(
            verbs,
            [
                "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "RCPT", "DATA",
                "RSET", "MAIL", "RCPT", "RCPT", "DATA"
            ]
        );
        assert_eq!(s.data.as_deref(), Some(RAW));
    }

    #[tokio::test]
    async fn a_pooled_connection_the_relay_closed_is_replaced() {
        let server = Server::start(Script {
            close_after_message: true,
            ..Script::default()
        })
        .await;
        let relay = smtp(server.addr);
        let pool = ConnectionPool::new(2);
        for _ in 0..2 {
            send_with(&relay, &pool).await.unwrap();
        }
        assert_eq!(
            server.accepted.load(Ordering::SeqCst),
            2,
            "the closed connection failed RSET and a new one carried the message"
        );
        assert_eq!(server.session(1).await.data.as_deref(), Some(RAW));
    }

    #[tokio::test]
    async fn smtp_rcpt_451_is_transient_with_reply() {
        let server = Server::start(Script {
            rcpt: "451 4.3.0 Mailbox temporarily unavailable",
            ..Script::default()
        })
        .await;
        let err = send(&smtp(server.addr)).await.unwrap_err();
        match err {
            DeliveryError::Transient(t) => assert_eq!(
                t,
                "RCPT TO:<alice@example.net>: 451 4.3.0 Mailbox temporarily unavailable; \
                 RCPT TO:<bob@example.net>: 451 4.3.0 Mailbox temporarily unavailable"
            ),
            other => panic!("{other:?}"),
        }
        // Nothing was sent: with every recipient refused there is no DATA.
        assert!(server.session(0).await.data.is_none());
    }

    #[tokio::test]
    async fn smtp_rcpt_550_is_permanent_with_reply() {
        let server = Server::start(Script {
            rcpt: "550 5.1.1 <alice@example.net>: Recipient address rejected",
            ..Script::default()
        })
        .await;
        match send(&smtp(server.addr)).await.unwrap_err() {
            DeliveryError::Permanent(t) => assert_eq!(
                t,
                "RCPT TO:<alice@example.net>: 550 5.1.1 <alice@example.net>: Recipient address rejected; \
                 RCPT TO:<bob@example.net>: 550 5.1.1 <alice@example.net>: Recipient address rejected"
            ),
            other => panic!("{other:?}"),
        }
        assert!(server.session(0).await.data.is_none());
    }

    #[tokio::test]
    async fn refused_recipients_are_reported_and_the_others_get_the_message() {
        let server = Server::start(Script {
            rcpt_for: vec![("bob@example.net", "550 5.1.1 No such user")],
            ..Script::default()
        })
        .await;
        let accepted = send(&smtp(server.addr)).await.unwrap();
        assert_eq!(accepted.refused.len(), 1, "{accepted:?}");
        let (rcpt, why) = &accepted.refused[0];
        assert_eq!(rcpt, "bob@example.net");
        assert!(
            matches!(why, DeliveryError::Permanent(t) if t == "RCPT TO:<bob@example.net>: 550 5.1.1 No such user"),
            "{why:?}"
        );
        let s = server.session(0).await;
        assert_eq!(s.data.as_deref(), Some(RAW), "alice got the message");
    }

    #[tokio::test]
    async fn mixed_refusals_of_every_recipient_are_temporary() {
        let server = Server::start(Script {
            rcpt_for: vec![
                ("alice@example.net", "550 5.1.1 No such user"),
                ("bob@example.net", "452 4.2.2 Mailbox full"),
            ],
            ..Script::default()
        })
        .await;
        match send(&smtp(server.addr)).await.unwrap_err() {
            DeliveryError::Transient(t) => assert!(t.contains("452 4.2.2"), "{t}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn smtp_data_554_is_permanent() {
        let server = Server::start(Script {
            data_end: "554 5.7.1 Message rejected as spam",
            ..Script::default()
        })
        .await;
        match send(&smtp(server.addr)).await.unwrap_err() {
            DeliveryError::Permanent(t) => {
                assert_eq!(t, "DATA: 554 5.7.1 Message rejected as spam")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn smtp_greeting_421_is_transient() {
        let server = Server::start(Script {
            greeting: "421 4.3.2 Service not available, closing channel",
            ..Script::default()
        })
        .await;
        match send(&smtp(server.addr)).await.unwrap_err() {
            DeliveryError::Transient(t) => {
                assert_eq!(
                    t,
                    "greeting: 421 4.3.2 Service not available, closing channel"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn smtp_starttls_is_used_when_offered_and_its_failure_is_transient() {
        for (reply, want) in [
            (
                "502 5.5.1 Not today",
                "STARTTLS with 127.0.0.1:{port}: 502 5.5.1 Not today",
            ),
            // Agrees, then closes instead of doing the handshake.
            (
                "220 2.0.0 Ready to start TLS",
                "STARTTLS with 127.0.0.1:{port}: ",
            ),
        ] {
            let server = Server::start(Script {
                extensions: vec!["STARTTLS", "AUTH PLAIN"],
                starttls: reply,
                ..Script::default()
            })
            .await;
            let want = want.replace("{port}", &server.addr.port().to_string());
            match send(&smtp(server.addr)).await.unwrap_err() {
                DeliveryError::Transient(t) => assert!(t.starts_with(&want), "{t}"),
                other => panic!("{other:?}"),
            }
            let s = server.session(0).await;
            assert_eq!(s.commands.last().map(String::as_str), Some("STARTTLS"));
            assert!(
                s.mail_from.is_none(),
                "nothing sent in clear once TLS was offered"
            );
        }
    }

    #[tokio::test]
    async fn smtp_connection_refused_is_transient() {
        let port = closed_port().await;
        let relay = Relay::Smtp {
            host: "127.0.0.1".into(),
            port,
            implicit_tls: false,
            credentials: None,
        };
        match send(&relay).await.unwrap_err() {
            DeliveryError::Transient(t) => {
                assert!(
                    t.starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
                    "{t}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn smtp_silent_server_times_out_as_transient() {
        let server = Server::start(Script {
            mute: true,
            ..Script::default()
        })
        .await;
        let err = deliver(
            &smtp(server.addr),
            &ConnectionPool::new(1),
            "h",
            Duration::from_millis(300),
            "a@x.test",
            &rcpts(),
            RAW,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Transient(t) if t.contains("timed out") || t.contains("within")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn smtp_auth_on_loopback_and_rejected_credentials_are_transient() {
        let ok = Server::start(Script {
            extensions: vec!["AUTH PLAIN LOGIN"],
            ..Script::default()
        })
        .await;
        let mut relay = smtp(ok.addr);
        if let Relay::Smtp { credentials, .. } = &mut relay {
            *credentials = Some(("user".into(), "secret".into()));
        }
        send(&relay).await.unwrap();
        assert!(
            ok.session(0)
                .await
                .commands
                .iter()
                .any(|c| c.starts_with("AUTH PLAIN"))
        );

        let bad = Server::start(Script {
            extensions: vec!["AUTH PLAIN"],
            auth: "535 5.7.8 Authentication credentials invalid",
            ..Script::default()
        })
        .await;
        if let Relay::Smtp { port, .. } = &mut relay {
            *port = bad.addr.port();
        }
        match send(&relay).await.unwrap_err() {
            DeliveryError::Transient(t) => assert!(t.contains("535 5.7.8"), "{t}"),
            other => panic!("{other:?}"),
        }
    }

    /// Manual check against a real server, e.g.
    /// `python3 -m aiosmtpd -n -l 127.0.0.1:2626` then
    /// `POSTDESK_TEST_RELAY=127.0.0.1:2626 cargo test --lib real_smtp_sink -- --ignored`.
    #[tokio::test]
    #[ignore = "needs an SMTP sink named by POSTDESK_TEST_RELAY"]
    async fn real_smtp_sink() {
        let addr = std::env::var("POSTDESK_TEST_RELAY")
            .unwrap()
            .parse()
            .unwrap();
        send(&smtp(addr)).await.unwrap();
    }

    #[tokio::test]
    async fn no_recipients_is_permanent() {
        let dir = tempdir("norcpt");
        let err = deliver(
            &Relay::Maildir(dir),
            &ConnectionPool::new(1),
            "h",
            Duration::from_secs(1),
            "a@x",
            &[],
            RAW,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DeliveryError::Permanent(_)));
    }

    #[test]
    fn describes_relays_without_credentials() {
        let r = Relay::Smtp {
            host: "mail.example.test".into(),
            port: 465,
            implicit_tls: true,
            credentials: Some(("u".into(), "p".into())),
        };
        assert_eq!(describe(&r), "smtps://mail.example.test:465");
    }
}
