//! The SMTP command reader and session state machine (src/smtp/session.rs)
//! over a real loopback socket: the library's own `SmtpServer` runs in this
//! process with a real store and spool (in /dev/shm when there is one), and
//! each input is what one client sends on one connection before it
//! half-closes. Line framing, the line-length limit, `smtp_proto`'s parser,
//! PIPELINING, the command sequence, DATA and the error limit all run as in
//! the daemon.
//!
//! Invariants checked:
//! - nothing panics, and every session ends once the client has sent
//!   everything (the read below would time out otherwise);
//! - the reply stream is well-formed: the `220` greeting first, then lines of
//!   a 3-digit code and ` ` or `-`, each ending in CRLF, printable ASCII only
//!   (nothing a client sends can inject a line or a control byte);
//! - at most one final reply per command line, plus greeting and 421;
//! - **250 means committed**: every `queued as N` names a spooled message
//!   with at least one recipient, all of them our mailboxes, no more than
//!   `max_recipients`; and there are no more of them than `CRLF . CRLF`
//!   terminators in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postdesk::config::Config;
use postdesk::smtp::SmtpServer;
use postdesk::spool::Spool;
use postdesk::store::Store;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

const MAX_RECIPIENTS: usize = 5;

struct Harness {
    addr: SocketAddr,
    store: Store,
    cfg: Arc<Config>,
    /// Keeps the server's runtime and its shutdown channel alive.
    _rt: tokio::runtime::Runtime,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("postdesk-fuzz-smtp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let text = format!(
        r#"[server]
hostname = "fuzz.example.test"
data_dir = "{dir}/data"
rules_dir = "{dir}/rules"

[smtp]
listen = ["127.0.0.1:0"]
max_message_size = 4096
max_recipients = {MAX_RECIPIENTS}
max_line_length = 512
max_connections = 8
command_timeout = "30s"
data_timeout = "30s"

[[mailbox]]
address = "support@example.test"
queue = "general"

[[mailbox]]
address = "billing@example.test"
queue = "billing"

[outbound]
relay = "maildir:{dir}/outbox"
from = "Support <support@example.test>"

[web]
listen = "127.0.0.1:0"
api_token = "fuzz"
"#,
        dir = dir.display()
    );
    let cfg = Arc::new(
        Config::from_str(&text, &dir.join("config.toml"))
            .unwrap_or_else(|e| panic!("fuzz config: {e:?}")),
    );
    let store = Store::open(&cfg.data_dir()).expect("store");
    let spool = Spool::start(store.clone(), Arc::new(tokio::sync::Notify::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(SmtpServer::bind(cfg.clone()))
        .expect("bind 127.0.0.1:0");
    let addr = server.local_addrs()[0];
    let (tx, rx) = tokio::sync::watch::channel(false);
    rt.spawn(server.run(spool, rx));
    Harness {
        addr,
        store,
        cfg,
        _rt: rt,
        _shutdown: tx,
    }
});

/// Sends `input`, half-closes, and returns everything the server answered.
fn converse(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect to the SMTP listener");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    // The server may close first (QUIT, too many errors): a failed write is fine.
    let _ = s.write_all(input);
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("session did not end after the client finished: {e}"),
    }
    out
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fuzz_target!(|input: &[u8]| {
    let h = &*HARNESS;
    let out = converse(h.addr, input);

    assert!(
        out.starts_with(b"220 "),
        "no greeting: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(out.ends_with(b"\r\n"), "unterminated reply");
    let text = std::str::from_utf8(&out).expect("replies are ASCII");
    let mut finals = 0;
    let mut queued = Vec::new();
    for line in text.strip_suffix("\r\n").unwrap_or(text).split("\r\n") {
        let b = line.as_bytes();
        assert!(
            b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b' ' || b[3] == b'-'),
            "malformed reply line {line:?}"
        );
        assert!(
            b.iter().all(|c| (0x20..0x7f).contains(c)),
            "control byte in reply {line:?}"
        );
        if b[3] == b' ' {
            finals += 1;
        }
        if let Some(n) = line.strip_prefix("250 2.0.0 Ok: queued as ") {
            queued.push(n.parse::<u64>().expect("queued as a number"));
        }
    }
    let lines = count(input, b"\n");
    assert!(finals <= lines + 2, "{finals} replies to {lines} lines");
    let mut framed = b"\r\n".to_vec();
    framed.extend_from_slice(input);
    assert!(
        queued.len() <= count(&framed, b"\r\n.\r\n"),
        "{} messages accepted without as many terminators",
        queued.len()
    );

    if queued.is_empty() {
        return;
    }
    // 250 means committed. Then drop the rows so the store stays small.
    h.store
        .write(|tx| {
            for &seq in &queued {
                let env = tx
                    .spool_entry(seq)?
                    .unwrap_or_else(|| panic!("250 for {seq} but nothing spooled"));
                assert!(tx.raw(seq)?.is_some(), "250 for {seq} without its bytes");
                assert!(!env.rcpt_to.is_empty(), "message {seq} without recipients");
                assert!(env.rcpt_to.len() <= MAX_RECIPIENTS, "{:?}", env.rcpt_to);
                for r in &env.rcpt_to {
                    assert!(h.cfg.accepts(r), "accepted mail for {r:?}");
                }
                tx.remove_spool(seq)?;
                tx.remove_raw(seq)?;
            }
            Ok(())
        })
        .expect("store");
});
