//! Test helpers: a scripted SMTP server on 127.0.0.1 and temp directories.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The replies the server gives; each must include its code and text, no CRLF.
#[derive(Clone)]
pub struct Script {
    pub greeting: &'static str,
    /// EHLO keyword lines after the first (e.g. "AUTH PLAIN"); never STARTTLS
    /// unless a test wants it.
    pub extensions: Vec<&'static str>,
    pub auth: &'static str,
    /// Reply to STARTTLS; after a 2xx the connection is closed (no TLS here).
    pub starttls: &'static str,
    pub mail: &'static str,
    pub rcpt: &'static str,
    pub data_end: &'static str,
    /// Answer nothing after the greeting (to test timeouts).
    pub mute: bool,
    /// RCPT replies for particular addresses (others get `rcpt`).
    pub rcpt_for: Vec<(&'static str, &'static str)>,
    /// Hang up right after accepting a message (a relay ending idle sessions).
    pub close_after_message: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: "220 sink.test ESMTP",
            extensions: vec!["PIPELINING", "8BITMIME"],
            auth: "235 2.7.0 Authentication successful",
            starttls: "454 4.7.0 TLS not available",
            mail: "250 2.1.0 Ok",
            rcpt: "250 2.1.5 Ok",
            data_end: "250 2.0.0 Ok: queued as ABC123",
            mute: false,
            close_after_message: false,
            rcpt_for: Vec::new(),
        }
    }
}

/// What one client session sent.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub commands: Vec<String>,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    /// The message after dot-unstuffing, without the terminating `.` line.
    pub data: Option<Vec<u8>>,
}

/// A server accepting connections until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub sessions: Arc<Mutex<Vec<Session>>>,
    /// Connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(script: Script) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let s = sessions.clone();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let a = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let mut session = Session::default();
                    let _ = serve(conn, &script, &mut session).await;
                    s.lock().unwrap().push(session);
                });
            }
        });
        Server {
            addr,
            sessions,
            accepted,
            task,
        }
    }

    /// The `i`-th finished session, waiting (up to 5 s) for it to end.
    pub async fn session(&self, i: usize) -> Session {
        for _ in 0..500 {
            if let Some(s) = self.sessions.lock().unwrap().get(i) {
                return s.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no session {i} on the test SMTP server")
    }
}

async fn serve(
    conn: tokio::net::TcpStream,
    script: &Script,
    session: &mut Session,
) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut r = BufReader::new(r);
    w.write_all(format!("{}\r\n", script.greeting).as_bytes())
        .await?;
    if !script.greeting.starts_with('2') {
        return Ok(());
    }
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if script.mute {
            continue;
        }
        let cmd = line.trim_end().to_string();
        session.commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            let mut lines = vec!["sink.test".to_string()];
            lines.extend(script.extensions.iter().map(|e| e.to_string()));
            let n = lines.len();
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| format!("250{}{l}\r\n", if i + 1 < n { '-' } else { ' ' }))
                .collect::<String>()
        } else if upper.starts_with("AUTH") {
            format!("{}\r\n", script.auth)
        } else if upper.starts_with("MAIL FROM:") {
            session.mail_from = Some(cmd[10..].to_string());
            format!("{}\r\n", script.mail)
        } else if upper.starts_with("RCPT TO:") {
            session.rcpt_to.push(cmd[8..].to_string());
            let reply = script
                .rcpt_for
                .iter()
                .find(|(addr, _)| cmd.contains(addr))
                .map_or(script.rcpt, |(_, r)| r);
            format!("{reply}\r\n")
        } else if upper == "DATA" {
            w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            session.data = Some(data);
            if script.close_after_message {
                w.write_all(format!("{}\r\n", script.data_end).as_bytes())
                    .await?;
                return Ok(());
            }
            format!("{}\r\n", script.data_end)
        } else if upper == "STARTTLS" {
            w.write_all(format!("{}\r\n", script.starttls).as_bytes())
                .await?;
            if script.starttls.starts_with('2') {
                return Ok(());
            }
            continue;
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 Ok\r\n".to_string()
        } else {
            "502 5.5.2 Command not implemented\r\n".to_string()
        };
        w.write_all(reply.as_bytes()).await?;
    }
}

/// A fresh, empty directory under the system temp dir.
pub fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "postdesk-{tag}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        crate::clock::Clock::system().now()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port on 127.0.0.1 with nobody listening.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}
