//! Connecting and logging in: TCP, implicit TLS or STARTTLS (rustls with the
//! ring provider and the operating system's trust store), then LOGIN,
//! AUTHENTICATE PLAIN or AUTHENTICATE XOAUTH2.

use super::ImapError;
use crate::config::{ImapAuth, ImapConfig, ImapTls};
use async_imap::{Client, Session};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// The byte stream under an IMAP session: one type for plain and TLS
/// connections, so the rest of the poller is written once.
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub type ImapSession = Session<ImapStream>;

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How long a token command may run before it is killed.
const TOKEN_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects, secures and authenticates one session.
///
/// # Errors
/// [`ImapError::Connect`] / [`ImapError::Tls`] for transport trouble,
/// [`ImapError::Auth`] when the server refuses the credentials,
/// [`ImapError::Credentials`] when the password file or token command fails.
pub async fn connect(a: &ImapConfig, base_dir: &Path) -> Result<ImapSession, ImapError> {
    let addr = (a.host.trim_matches(|c| c == '[' || c == ']'), a.port());
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| ImapError::Connect(format!("{}:{}: {e}", a.host, a.port())))?;
    let _ = tcp.set_nodelay(true);
    let mut client = match a.tls {
        ImapTls::Implicit => Client::new(ImapStream::Tls(Box::new(tls(a, base_dir, tcp).await?))),
        ImapTls::None | ImapTls::Starttls => Client::new(ImapStream::Plain(tcp)),
    };
    // Client::new does not read the greeting; it must be consumed before any command.
    read_greeting(&mut client).await?;
    if a.tls == ImapTls::Starttls {
        client
            .run_command_and_check_ok("STARTTLS", None)
            .await
            .map_err(|e| ImapError::Tls(format!("STARTTLS refused: {e}")))?;
        let ImapStream::Plain(tcp) = client.into_inner() else {
            return Err(ImapError::Tls("STARTTLS on a TLS stream".into()));
        };
        // No new greeting after STARTTLS (RFC 3501 6.2.1).
        client = Client::new(ImapStream::Tls(Box::new(tls(a, base_dir, tcp).await?)));
    }
    login(a, base_dir, client).await
}

async fn read_greeting(client: &mut Client<ImapStream>) -> Result<(), ImapError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Connect(
            "connection closed before the greeting".into(),
        )),
        Err(e) => Err(ImapError::Connect(format!("reading the greeting: {e}"))),
    }
}

async fn tls(
    a: &ImapConfig,
    base_dir: &Path,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, ImapError> {
    use rustls_platform_verifier::ConfigVerifierExt;
    let host = &a.host;
    let config = match &a.ca_file {
        Some(file) => {
            let roots = crate::tls::load_ca_file(&base_dir.join(file)).map_err(ImapError::Tls)?;
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        None => ClientConfig::with_platform_verifier()
            .map_err(|e| ImapError::Tls(format!("TLS setup: {e}")))?,
    };
    let name = ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_string())
        .map_err(|e| ImapError::Tls(format!("{host:?} is not a valid TLS server name: {e}")))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Tls(format!("TLS handshake with {host}: {e}")))
}

async fn login(
    a: &ImapConfig,
    base_dir: &Path,
    client: Client<ImapStream>,
) -> Result<ImapSession, ImapError> {
    let refused = |(e, _client): (async_imap::error::Error, Client<ImapStream>)| {
        ImapError::Auth(format!(
            "{} refused the login of {}: {e}",
            a.host, a.username
        ))
    };
    match a.auth {
        ImapAuth::Login => {
            let password = password(a, base_dir).await?;
            client.login(&a.username, &password).await.map_err(refused)
        }
        ImapAuth::Plain => {
            let password = password(a, base_dir).await?;
            let initial = format!("\0{}\0{}", a.username, password).into_bytes();
            client
                .authenticate("PLAIN", OneShot::new(initial))
                .await
                .map_err(refused)
        }
        ImapAuth::Xoauth2 => {
            let token = token(a, base_dir).await?;
            client
                .authenticate("XOAUTH2", OneShot::new(xoauth2(&a.username, &token)))
                .await
                .map_err(refused)
        }
    }
}

/// The XOAUTH2 initial response (before base64, which async-imap applies).
pub fn xoauth2(user: &str, token: &str) -> Vec<u8> {
    format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

/// Answers the first SASL challenge with `initial` and any later one with an
/// empty response: that is how a client acknowledges an XOAUTH2 error
/// challenge, after which the server sends the tagged NO.
pub struct OneShot {
    initial: Option<Vec<u8>>,
}

impl OneShot {
    pub fn new(initial: Vec<u8>) -> Self {
        OneShot {
            initial: Some(initial),
        }
    }
}

impl async_imap::Authenticator for OneShot {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.initial.take().unwrap_or_default()
    }
}

/// The password, read from `password_file` at every connect so a rotated
/// secret is picked up without a restart.
async fn password(a: &ImapConfig, base_dir: &Path) -> Result<String, ImapError> {
    if let Some(p) = &a.password {
        return Ok(p.clone());
    }
    let Some(file) = &a.password_file else {
        return Err(ImapError::Credentials("no password configured".into()));
    };
    let path = crate::credentials::resolve(base_dir, file)
        .map_err(|e| ImapError::Credentials(format!("password_file: {e}")))?;
    let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
        ImapError::Credentials(format!("cannot read password_file {}: {e}", path.display()))
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs `token_command` (in the config file's directory) and returns the first
/// line it prints: the OAuth2 access token. A fresh token per connect, because
/// access tokens typically live an hour.
pub async fn token(a: &ImapConfig, base_dir: &Path) -> Result<String, ImapError> {
    let argv = a.token_command.clone().unwrap_or_default();
    let Some((program, args)) = argv.split_first() else {
        return Err(ImapError::Credentials("no token_command configured".into()));
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .current_dir(base_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let program = program.clone();
    let run = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run token_command {program:?}: {e}"))?;
        let deadline = std::time::Instant::now() + TOKEN_COMMAND_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "token_command {program:?} ran longer than {}s; killed",
                        TOKEN_COMMAND_TIMEOUT.as_secs()
                    ));
                }
                Err(e) => return Err(format!("waiting for token_command {program:?}: {e}")),
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("reading token_command {program:?} output: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "token_command {program:?} failed ({}): {}",
                out.status,
                err.trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(format!("token_command {program:?} printed no token"));
        }
        Ok(token)
    });
    match run.await {
        Ok(r) => r.map_err(ImapError::Credentials),
        Err(e) => Err(ImapError::Credentials(format!("token_command task: {e}"))),
    }
}
