//! `postdesk deliver -f SENDER RECIPIENT…`: hands one message from standard
//! input to the running daemon, for an MTA's pipe(8) transport or an alias
//! (like RT's rt-mailgate). It speaks SMTP to the daemon's own listener, so
//! the message takes exactly the intake path of any other: the daemon answers
//! 250 only after its durable commit, and only then does this exit 0.
//!
//! Exit codes are sysexits(3), which MTAs act on: 75 (EX_TEMPFAIL: the
//! daemon is down, busy or failing; the MTA keeps the message and retries),
//! 67 (EX_NOUSER: every recipient was refused), 65 (EX_DATAERR: the message
//! was refused, e.g. too large), 66 (EX_NOINPUT: standard input unreadable).

use crate::config::Config;
use mail_send::SmtpClient;
use mail_send::smtp::AssertReply;
use mail_send::smtp::message::Parameters;
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a message was not handed over, as an MTA must act on it.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("temporary failure: {0}")]
    Temporary(String),
    #[error("no such recipient: {0}")]
    NoUser(String),
    #[error("message refused: {0}")]
    Refused(String),
    #[error("cannot read the message: {0}")]
    NoInput(String),
}

impl DeliverError {
    /// The sysexits(3) code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            DeliverError::Temporary(_) => 75,
            DeliverError::NoUser(_) => 67,
            DeliverError::Refused(_) => 65,
            DeliverError::NoInput(_) => 66,
        }
    }
}

/// How long the whole hand-over may take before it counts as temporary.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Reads the message from `input` and hands it to the daemon that `cfg`
/// describes; returns the daemon's final reply ("250 2.0.0 Ok: queued as N").
pub fn deliver(
    cfg: &Config,
    mail_from: &str,
    rcpts: &[String],
    input: &mut impl Read,
) -> Result<String, DeliverError> {
    let limit = cfg.smtp.max_message_size;
    let mut raw = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|e| DeliverError::NoInput(e.to_string()))?;
    if raw.len() as u64 > limit {
        return Err(DeliverError::Refused(format!(
            "larger than smtp.max_message_size ({limit} bytes)"
        )));
    }
    if rcpts.is_empty() {
        return Err(DeliverError::NoUser("no recipient given".into()));
    }
    let addr = daemon_address(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DeliverError::Temporary(format!("no runtime: {e}")))?;
    rt.block_on(async {
        tokio::time::timeout(
            TIMEOUT,
            hand_over(addr, &cfg.server.hostname, mail_from, rcpts, &raw),
        )
        .await
        .map_err(|_| DeliverError::Temporary(format!("no answer from {addr} within {TIMEOUT:?}")))?
    })
}

/// The daemon's first SMTP listener, as a client reaches it (a wildcard
/// address means this machine).
fn daemon_address(cfg: &Config) -> Result<SocketAddr, DeliverError> {
    let listen = cfg
        .smtp
        .listen
        .first()
        .ok_or_else(|| DeliverError::Temporary("smtp.listen names no address".into()))?;
    super::api_client::reachable(listen)
        .map_err(|e| DeliverError::Temporary(format!("smtp.listen {e}")))
}

/// A 5xx reply is final for what it answered; anything else is temporary.
fn permanent(e: &mail_send::Error) -> bool {
    matches!(e, mail_send::Error::UnexpectedReply(r) if r.code() >= 500)
}

async fn hand_over(
    addr: SocketAddr,
    helo: &str,
    mail_from: &str,
    rcpts: &[String],
    raw: &[u8],
) -> Result<String, DeliverError> {
    let temporary =
        |stage: &str, e: mail_send::Error| DeliverError::Temporary(format!("{stage}: {e}"));
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| DeliverError::Temporary(format!("cannot reach postdesk at {addr}: {e}")))?;
    let mut client = SmtpClient {
        stream,
        timeout: TIMEOUT,
    };
    client
        .read()
        .await
        .and_then(|r| r.assert_positive_completion())
        .map_err(|e| temporary("greeting", e))?;
    client.ehlo(helo).await.map_err(|e| temporary("EHLO", e))?;
    let none = Parameters::default();
    client.mail_from(mail_from, &none).await.map_err(|e| {
        if permanent(&e) {
            DeliverError::Refused(format!("MAIL FROM:<{mail_from}>: {e}"))
        } else {
            temporary("MAIL FROM", e)
        }
    })?;
    let mut accepted = 0;
    let mut refused = Vec::new();
    for rcpt in rcpts {
        match client.rcpt_to(rcpt, &none).await {
            Ok(()) => accepted += 1,
            Err(e) if permanent(&e) => refused.push(format!("{rcpt}: {e}")),
            Err(e) => return Err(temporary(&format!("RCPT TO:<{rcpt}>"), e)),
        }
    }
    if accepted == 0 {
        return Err(DeliverError::NoUser(refused.join("; ")));
    }
    // mail-send appends CRLF.CRLF itself: drop the message's own last line end.
    let body = raw
        .strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(raw);
    let reply = client.data(body).await.map_err(|e| {
        if permanent(&e) {
            DeliverError::Refused(format!("DATA: {e}"))
        } else {
            temporary("DATA", e)
        }
    })?;
    let _ = client.quit().await;
    Ok(format!("{} {}", reply.code(), reply.message()))
}
