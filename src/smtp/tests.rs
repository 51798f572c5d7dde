//! End-to-end tests: the real `SmtpServer` on 127.0.0.1, a real store and
//! spool, and a raw TCP (or TLS) client speaking protocol bytes.

use super::SmtpServer;
use crate::config::Config;
use crate::model::{Envelope, MessageSeq, Source};
use crate::spool::Spool;
use crate::store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const HOST: &str = "mx.example.test";
/// Upper bound for any single wait; tests never rely on it for timing.
const WAIT: Duration = Duration::from_secs(15);

const CONFIG: &str = r#"
[server]
hostname = "mx.example.test"

[[mailbox]]
address = "support@example.test"

[outbound]
relay = "maildir:data/outbox"
from = "Example Support <support@example.test>"

[web]
api_token = "t"
"#;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

struct Harness {
    addr: SocketAddr,
    store: Store,
    dir: PathBuf,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Harness {
        let mut cfg = Config::from_str(CONFIG, Path::new("/nonexistent/config.toml")).unwrap();
        cfg.smtp.listen = vec!["127.0.0.1:0".into()];
        // These tests store bytes exactly as sent; sender verification would add our
        // Authentication-Results and ask the system's DNS (off this machine).
        cfg.auth.verify = false;
        tweak(&mut cfg);
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        let spool = Spool::start(store.clone(), Arc::new(tokio::sync::Notify::new()));
        let server = SmtpServer::bind(Arc::new(cfg)).await.unwrap();
        let addr = server.local_addrs()[0];
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(server.run(spool, rx));
        Harness {
            addr,
            store,
            dir,
            shutdown,
            server,
        }
    }

    /// Connects and checks the greeting.
    async fn connect(&self) -> Client<TcpStream> {
        let mut c = self.connect_raw().await;
        assert_eq!(c.reply().await, format!("220 {HOST} ESMTP postdesk"));
        c
    }

    async fn connect_raw(&self) -> Client<TcpStream> {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(self.addr))
            .await
            .unwrap()
            .unwrap();
        Client {
            io: BufReader::new(tcp),
        }
    }

    fn stored(&self) -> Vec<(MessageSeq, Envelope)> {
        self.store.pending_spool(1000).unwrap()
    }

    fn raw(&self, seq: MessageSeq) -> Vec<u8> {
        self.store.raw(seq).unwrap().unwrap()
    }

    /// Signals shutdown and waits until a new connection is no longer served:
    /// it is told 421 (while sessions finish) or refused (once they are done).
    async fn begin_shutdown(&self) {
        self.shutdown.send(true).unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Ok(tcp) = TcpStream::connect(self.addr).await {
            // A connection the kernel queued before the listener closed may
            // just be reset or closed: that counts as refused.
            let mut greeting = String::new();
            let _ = tokio::time::timeout(WAIT, BufReader::new(tcp).read_line(&mut greeting)).await;
            let greeting = greeting.trim_end().to_string();
            if greeting.is_empty() || greeting == format!("421 4.3.2 {HOST} Service shutting down")
            {
                break;
            }
            assert!(
                greeting.starts_with("220") && tokio::time::Instant::now() < deadline,
                "new connections still served after shutdown: {greeting:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stopped(self) {
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("run() did not return")
            .unwrap()
            .unwrap();
        std::fs::remove_dir_all(self.dir).ok();
    }
}

struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.io.get_mut().write_all(bytes.as_ref()).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// One (possibly multi-line) reply, lines joined with '\n', without CRLF.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.io.read_line(&mut line))
                .await
                .expect("no reply in time")
                .unwrap();
            assert!(n > 0, "connection closed; got so far: {lines:?}");
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end_matches("\r\n").to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Sends a command and asserts the reply code.
    async fn ok(&mut self, line: &str, code: &str) -> String {
        let r = self.cmd(line).await;
        assert!(r.starts_with(code), "{line:?} -> {r:?}, expected {code}");
        r
    }

    async fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.io.read_to_end(&mut rest))
            .await
            .expect("connection not closed")
            .ok();
        assert!(
            rest.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// EHLO, MAIL, RCPT, DATA up to the 354.
    async fn open_data(&mut self) {
        self.ok("EHLO client.example.org", "250").await;
        self.ok("MAIL FROM:<alice@example.org>", "250 2.1.0").await;
        self.ok("RCPT TO:<support@example.test>", "250 2.1.5").await;
        self.ok("DATA", "354").await;
    }
}

fn queued_seq(reply: &str) -> MessageSeq {
    reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply:?}"))
        .parse()
        .unwrap()
}

fn tempdir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "postdesk-smtp-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn full_transaction_is_stored_byte_exact() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    let ehlo = c.ok("EHLO client.example.org", "250").await;
    assert_eq!(
        ehlo,
        format!(
            "250-{HOST}\n250-SIZE 26214400\n250-PIPELINING\n250-8BITMIME\n250-SMTPUTF8\n250 ENHANCEDSTATUSCODES"
        ),
        "STARTTLS must not be offered without a certificate"
    );
    c.ok("MAIL FROM:<alice@example.org> BODY=8BITMIME", "250 2.1.0")
        .await;
    c.ok("RCPT TO:<Support+T12.abc@Example.TEST>", "250 2.1.5")
        .await;
    c.ok("DATA", "354").await;
    let mut wire =
        b"Subject: caf\xc3\xa9\r\n\r\n..leading dot\r\n..\r\n\xff\xfe 8-bit\r\nend".to_vec();
    wire.extend_from_slice(b"\r\n.\r\n");
    c.send(&wire).await;
    let seq = queued_seq(&c.reply().await);
    c.ok("QUIT", "221").await;
    c.expect_eof().await;

    assert_eq!(
        h.raw(seq),
        b"Subject: caf\xc3\xa9\r\n\r\n.leading dot\r\n.\r\n\xff\xfe 8-bit\r\nend\r\n"
    );
    let stored = h.stored();
    assert_eq!(stored.len(), 1);
    let (s, env) = &stored[0];
    assert_eq!(*s, seq);
    assert_eq!(env.mail_from, "alice@example.org");
    assert_eq!(
        env.rcpt_to,
        vec!["Support+T12.abc@Example.TEST".to_string()]
    );
    assert_eq!(env.helo, "client.example.org");
    assert_eq!(env.source, Source::Smtp);
    assert!(env.peer.starts_with("127.0.0.1:"), "peer {:?}", env.peer);
    assert!(env.received_at > 1_600_000_000);
    h.stopped_after_shutdown().await;
}

impl Harness {
    /// Shuts down and waits for `run` to return. Sessions still inside a
    /// transaction would keep it waiting for the grace period, so tests drop
    /// (or QUIT) such clients first.
    async fn stopped_after_shutdown(self) {
        self.shutdown.send(true).unwrap();
        self.stopped().await;
    }
}

#[tokio::test]
async fn null_reverse_path_is_accepted_and_helo_works() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    assert_eq!(c.cmd("HELO old.example.org").await, format!("250 {HOST}"));
    c.ok("MAIL FROM:<>", "250 2.1.0").await;
    c.ok("RCPT TO:<support@example.test>", "250 2.1.5").await;
    c.ok("DATA", "354").await;
    c.send("Subject: bounce\r\n\r\nx\r\n.\r\n").await;
    let seq = queued_seq(&c.reply().await);
    let stored = h.stored();
    assert_eq!(stored[0].1.mail_from, "");
    assert_eq!(stored[0].1.helo, "old.example.org");
    assert_eq!(h.raw(seq), b"Subject: bounce\r\n\r\nx\r\n");
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn pipelined_commands_in_one_write() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    c.ok("EHLO client.example.org", "250").await;
    c.send(concat!(
        "MAIL FROM:<alice@example.org>\r\n",
        "RCPT TO:<support@example.test>\r\n",
        "RCPT TO:<support+2@example.test>\r\n",
        "DATA\r\n",
    ))
    .await;
    assert_eq!(c.reply().await, "250 2.1.0 Ok");
    assert_eq!(c.reply().await, "250 2.1.5 Ok");
    assert_eq!(c.reply().await, "250 2.1.5 Ok");
    assert!(c.reply().await.starts_with("354 "));
    // Body, a second transaction and QUIT, all in one write too.
    c.send(concat!(
        "one\r\n.\r\n",
        "MAIL FROM:<bob@example.org>\r\n",
        "RCPT TO:<support@example.test>\r\n",
        "DATA\r\n",
        "two\r\n.\r\n",
        "QUIT\r\n",
    ))
    .await;
    let first = queued_seq(&c.reply().await);
    assert_eq!(c.reply().await, "250 2.1.0 Ok");
    assert_eq!(c.reply().await, "250 2.1.5 Ok");
    assert!(c.reply().await.starts_with("354 "));
    let second = queued_seq(&c.reply().await);
    assert_eq!(c.reply().await, "221 2.0.0 Bye");
    c.expect_eof().await;

    assert_eq!(h.raw(first), b"one\r\n");
    assert_eq!(h.raw(second), b"two\r\n");
    let stored = h.stored();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0].1.rcpt_to,
        vec!["support@example.test", "support+2@example.test"]
    );
    assert_eq!(stored[1].1.mail_from, "bob@example.org");
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn unknown_recipient_is_rejected_at_rcpt() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    c.ok("EHLO client.example.org", "250").await;
    c.ok("MAIL FROM:<alice@example.org>", "250").await;
    assert_eq!(
        c.cmd("RCPT TO:<sales@example.test>").await,
        "550 5.1.1 <sales@example.test>: Recipient address rejected: no such mailbox here"
    );
    assert_eq!(
        c.cmd("RCPT TO:<support@other.test>").await,
        "550 5.1.1 <support@other.test>: Recipient address rejected: no such mailbox here"
    );
    // No accepted recipient: DATA is out of sequence.
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Error: need RCPT command");
    assert!(h.stored().is_empty());
    drop(c);
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let h = Harness::start(|c| c.smtp.max_recipients = 2).await;
    let mut c = h.connect().await;
    c.ok("EHLO client.example.org", "250").await;
    c.ok("MAIL FROM:<alice@example.org>", "250").await;
    c.ok("RCPT TO:<support+a@example.test>", "250 2.1.5").await;
    c.ok("RCPT TO:<support+b@example.test>", "250 2.1.5").await;
    // A repeated recipient is not counted (or stored) twice.
    c.ok("RCPT TO:<support+a@example.test>", "250 2.1.5").await;
    assert_eq!(
        c.cmd("RCPT TO:<support+c@example.test>").await,
        "452 4.5.3 Too many recipients"
    );
    c.ok("DATA", "354").await;
    c.send("x\r\n.\r\n").await;
    let seq = queued_seq(&c.reply().await);
    assert_eq!(
        h.stored()[0].1.rcpt_to,
        vec!["support+a@example.test", "support+b@example.test"]
    );
    assert_eq!(h.raw(seq), b"x\r\n");
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn declared_size_too_big_is_refused_at_mail() {
    let h = Harness::start(|c| c.smtp.max_message_size = 1000).await;
    let mut c = h.connect().await;
    let ehlo = c.ok("EHLO client.example.org", "250").await;
    assert!(ehlo.contains("\n250-SIZE 1000\n"), "{ehlo}");
    assert_eq!(
        c.cmd("MAIL FROM:<alice@example.org> SIZE=1001").await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    // Refused MAIL opened no transaction; a fitting one is fine.
    c.ok("MAIL FROM:<alice@example.org> SIZE=1000", "250 2.1.0")
        .await;
    drop(c);
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn oversized_data_is_refused_and_nothing_stored() {
    let h = Harness::start(|c| c.smtp.max_message_size = 1000).await;
    let mut c = h.connect().await;
    c.open_data().await;
    let mut body = Vec::new();
    for _ in 0..200 {
        body.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    body.extend_from_slice(b".\r\n");
    c.send(&body).await;
    assert_eq!(
        c.reply().await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    assert!(h.stored().is_empty());
    // The session is back to a clean state and still usable.
    assert_eq!(
        c.cmd("RCPT TO:<support@example.test>").await,
        "503 5.5.1 Error: need MAIL command"
    );
    c.ok("MAIL FROM:<alice@example.org>", "250").await;
    c.ok("RCPT TO:<support@example.test>", "250").await;
    c.ok("DATA", "354").await;
    c.send("small\r\n.\r\n").await;
    let seq = queued_seq(&c.reply().await);
    assert_eq!(h.raw(seq), b"small\r\n");
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn empty_message_ends_at_first_dot_line() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    c.open_data().await;
    c.send(".\r\n").await;
    let seq = queued_seq(&c.reply().await);
    assert_eq!(h.raw(seq), b"");
    c.ok("NOOP", "250 2.0.0").await;
    h.stopped_after_shutdown().await;
}

/// Sends a message containing `variant` followed by a would-be second
/// transaction; only CRLF.CRLF may end DATA, so exactly one message must be
/// stored (holding the smuggled text), and the next reply must be NOOP's.
async fn smuggling_attempt(variant: &[u8], stored_variant: &[u8]) {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    c.open_data().await;
    let smuggled: &[u8] = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<support@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond";
    let mut wire = b"Subject: first\r\n\r\nfirst".to_vec();
    wire.extend_from_slice(variant);
    wire.extend_from_slice(smuggled);
    wire.extend_from_slice(b"\r\n.\r\n");
    c.send(&wire).await;
    let seq = queued_seq(&c.reply().await);
    // Had the smuggled commands run, their replies (250, 250, 354) would come first.
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok", "variant {variant:?}");
    let stored = h.stored();
    assert_eq!(
        stored.len(),
        1,
        "variant {variant:?} produced a second message"
    );
    assert_eq!(stored[0].1.mail_from, "alice@example.org");
    let mut expected = b"Subject: first\r\n\r\nfirst".to_vec();
    expected.extend_from_slice(stored_variant);
    expected.extend_from_slice(smuggled);
    expected.extend_from_slice(b"\r\n");
    assert_eq!(
        String::from_utf8_lossy(&h.raw(seq)),
        String::from_utf8_lossy(&expected),
        "variant {variant:?}"
    );
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn smuggling_lf_dot_lf() {
    smuggling_attempt(b"\n.\n", b"\n.\n").await;
}

#[tokio::test]
async fn smuggling_lf_dot_crlf() {
    smuggling_attempt(b"\n.\r\n", b"\n.\r\n").await;
}

#[tokio::test]
async fn smuggling_cr_dot_crlf() {
    smuggling_attempt(b"\r.\r\n", b"\r.\r\n").await;
}

#[tokio::test]
async fn smuggling_crlf_dot_lf() {
    // The dot starts a CRLF line, so it is a transparency dot and is removed.
    smuggling_attempt(b"\r\n.\n", b"\r\n\n").await;
}

#[tokio::test]
async fn smuggling_cr_dot_cr() {
    smuggling_attempt(b"\r.\r", b"\r.\r").await;
}

#[tokio::test]
async fn smuggling_crlf_dot_cr() {
    smuggling_attempt(b"\r\n.\r", b"\r\n\r").await;
}

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    assert_eq!(
        c.cmd("MAIL FROM:<alice@example.org>").await,
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    c.ok("EHLO client.example.org", "250").await;
    assert_eq!(
        c.cmd("RCPT TO:<support@example.test>").await,
        "503 5.5.1 Error: need MAIL command"
    );
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Error: need MAIL command");
    c.ok("MAIL FROM:<alice@example.org>", "250").await;
    assert_eq!(
        c.cmd("MAIL FROM:<alice@example.org>").await,
        "503 5.5.1 Error: nested MAIL command"
    );
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Error: need RCPT command");
    c.ok("RSET", "250 2.0.0").await;
    assert_eq!(
        c.cmd("RCPT TO:<support@example.test>").await,
        "503 5.5.1 Error: need MAIL command"
    );
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn other_commands() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    assert_eq!(c.cmd("EHLO").await, "501 5.5.4 Syntax: EHLO domain");
    c.ok("EHLO client.example.org", "250").await;
    c.ok("VRFY support", "252 2.5.0").await;
    c.ok("EXPN staff", "502 5.5.1").await;
    c.ok("HELP", "214 2.0.0").await;
    c.ok("NOOP", "250 2.0.0").await;
    assert_eq!(
        c.cmd("AUTH PLAIN AGZvbwBiYXI=").await,
        "502 5.5.1 Authentication not offered"
    );
    assert_eq!(
        c.cmd("FROB nicate").await,
        "500 5.5.1 Error: command not recognized"
    );
    assert_eq!(c.cmd("STARTTLS").await, "454 4.7.0 TLS not available");
    c.ok("MAIL FROM:<alice@example.org> FROB=1", "555 5.5.4")
        .await;
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");
    c.expect_eof().await;
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn too_many_errors_close_the_session() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    for _ in 0..19 {
        c.ok("FROB", "500 5.5.1").await;
    }
    assert_eq!(
        c.cmd("FROB").await,
        "500 5.5.1 Error: command not recognized"
    );
    assert_eq!(
        c.reply().await,
        format!("421 4.7.0 {HOST} Too many errors, closing connection")
    );
    c.expect_eof().await;
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn overlong_command_line_gets_500_and_session_continues() {
    let h = Harness::start(|c| c.smtp.max_line_length = 512).await;
    let mut c = h.connect().await;
    c.ok("EHLO client.example.org", "250").await;
    // Just over the limit (the CRLF counts) and far over it (spans many reads).
    let just_over = format!("NOOP {}", "x".repeat(512 - 6));
    assert_eq!(c.cmd(&just_over).await, "500 5.5.2 Line too long");
    let huge = format!("MAIL FROM:<{}@example.org>", "x".repeat(100_000));
    assert_eq!(c.cmd(&huge).await, "500 5.5.2 Line too long");
    // The tail of the long line was discarded, not run as a command.
    let fits = format!("NOOP {}", "x".repeat(512 - 7));
    c.ok(&fits, "250 2.0.0").await;
    c.ok("MAIL FROM:<alice@example.org>", "250 2.1.0").await;
    drop(c);
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn idle_client_times_out_with_421() {
    let h = Harness::start(|c| c.smtp.command_timeout = Duration::from_secs(1)).await;
    let mut c = h.connect().await;
    c.ok("EHLO client.example.org", "250").await;
    assert_eq!(
        c.reply().await,
        format!("421 4.4.2 {HOST} Timeout, closing connection")
    );
    c.expect_eof().await;
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn stalled_data_times_out_with_421_and_nothing_stored() {
    let h = Harness::start(|c| c.smtp.data_timeout = Duration::from_secs(1)).await;
    let mut c = h.connect().await;
    c.open_data().await;
    c.send("Subject: half\r\n").await;
    assert_eq!(
        c.reply().await,
        format!("421 4.4.2 {HOST} Timeout, closing connection")
    );
    c.expect_eof().await;
    assert!(h.stored().is_empty());
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn connection_over_limit_gets_421() {
    let h = Harness::start(|c| c.smtp.max_connections = 1).await;
    let mut first = h.connect().await;
    let mut second = h.connect_raw().await;
    assert_eq!(
        second.reply().await,
        format!("421 4.7.0 {HOST} Too many connections, try again later")
    );
    second.expect_eof().await;
    // The first session is unaffected; once it ends, its slot is free again.
    first.ok("QUIT", "221").await;
    first.expect_eof().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut third = h.connect_raw().await;
        let greeting = third.reply().await;
        if greeting.starts_with("220 ") {
            break;
        }
        // The first session's task may not have released its slot yet.
        assert!(greeting.starts_with("421 4.7.0"), "{greeting}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stopped_after_shutdown().await;
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls::{
        self, RootCertStore, pki_types::CertificateDer, pki_types::pem::PemObject,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("cert.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn starttls_round_trip_discards_pipelined_commands() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let h = Harness::start(|c| {
        c.smtp.tls_cert = Some(fixture("cert.pem"));
        c.smtp.tls_key = Some(fixture("key.pem"));
    })
    .await;
    let mut c = h.connect().await;
    let ehlo = c.ok("EHLO client.example.org", "250").await;
    assert!(ehlo.ends_with("\n250 STARTTLS"), "{ehlo}");
    // Commands injected behind STARTTLS in clear text must not run inside TLS.
    c.send("STARTTLS\r\nEHLO injected.example\r\nMAIL FROM:<evil@example.org>\r\n")
        .await;
    assert_eq!(c.reply().await, "220 2.0.0 Ready to start TLS");
    let tcp = c.io.into_inner();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(WAIT, tls_connector().connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let mut c = Client {
        io: BufReader::new(tls),
    };
    // State was reset and the injected EHLO/MAIL never ran.
    assert_eq!(
        c.cmd("MAIL FROM:<alice@example.org>").await,
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    let ehlo = c.ok("EHLO secure.example.org", "250").await;
    assert!(
        !ehlo.contains("STARTTLS"),
        "STARTTLS offered inside TLS: {ehlo}"
    );
    assert_eq!(
        c.cmd("STARTTLS").await,
        "503 5.5.1 Error: TLS already active"
    );
    c.ok("MAIL FROM:<alice@example.org>", "250 2.1.0").await;
    c.ok("RCPT TO:<support@example.test>", "250 2.1.5").await;
    c.ok("DATA", "354").await;
    c.send("Subject: tls\r\n\r\nsecret\r\n.\r\n").await;
    let seq = queued_seq(&c.reply().await);
    c.ok("QUIT", "221").await;
    assert_eq!(h.raw(seq), b"Subject: tls\r\n\r\nsecret\r\n");
    let stored = h.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.helo, "secure.example.org");
    h.stopped_after_shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_with_421() {
    let h = Harness::start(|_| {}).await;
    let mut c = h.connect().await;
    c.ok("EHLO client.example.org", "250").await;
    let mut fresh = h.connect().await;
    h.begin_shutdown().await;
    assert_eq!(
        c.reply().await,
        format!("421 4.3.2 {HOST} Service shutting down")
    );
    c.expect_eof().await;
    assert_eq!(
        fresh.reply().await,
        format!("421 4.3.2 {HOST} Service shutting down")
    );
    fresh.expect_eof().await;
    h.stopped().await;
}

#[tokio::test]
async fn shutdown_lets_a_transaction_in_data_finish() {
    let h = Harness::start(|c| c.smtp.shutdown_grace = Duration::from_secs(60)).await;
    let mut c = h.connect().await;
    c.open_data().await;
    c.send("Subject: late\r\n\r\nfirst half\r\n").await;
    h.begin_shutdown().await;
    c.send("second half\r\n.\r\n").await;
    let seq = queued_seq(&c.reply().await);
    // Transaction done: now the session is idle and is closed.
    assert_eq!(
        c.reply().await,
        format!("421 4.3.2 {HOST} Service shutting down")
    );
    c.expect_eof().await;
    assert_eq!(
        h.raw(seq),
        b"Subject: late\r\n\r\nfirst half\r\nsecond half\r\n"
    );
    h.stopped().await;
}

#[tokio::test]
async fn shutdown_grace_expiry_closes_open_transactions() {
    let h = Harness::start(|c| c.smtp.shutdown_grace = Duration::from_secs(1)).await;
    let mut c = h.connect().await;
    c.ok("EHLO client.example.org", "250").await;
    c.ok("MAIL FROM:<alice@example.org>", "250").await;
    let mut in_data = h.connect().await;
    in_data.open_data().await;
    in_data.send("Subject: never finished\r\n").await;
    h.begin_shutdown().await;
    assert_eq!(
        c.reply().await,
        format!("421 4.3.2 {HOST} Service shutting down")
    );
    c.expect_eof().await;
    assert_eq!(
        in_data.reply().await,
        format!("421 4.3.2 {HOST} Service shutting down")
    );
    in_data.expect_eof().await;
    assert!(h.stored().is_empty());
    h.stopped().await;
}
