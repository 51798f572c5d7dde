//! End-to-end test harness: a real daemon (`postdesk serve`), a real SMTP sink (aiosmtpd in
//! Maildir mode) for its outbound mail, real SMTP clients (Python smtplib, swaks) and a tiny
//! HTTP/1.1 client for the JSON API.
//!
//! Needs `scripts/test-deps.sh` to have run (swaks, `.venv-test/` with aiosmtpd).
#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const API_TOKEN: &str = "test-token";
pub const HOSTNAME: &str = "support.example.test";
pub const SUPPORT: &str = "support@example.test";

// ---------------------------------------------------------------------------------------------
// Paths, ports, temp dirs

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn daemon_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postdesk"))
}

/// The test venv's Python (with aiosmtpd).
pub fn python() -> PathBuf {
    let p = repo_root().join(".venv-test/bin/python3");
    if !p.exists() {
        panic!(
            "{} is missing: run scripts/test-deps.sh first (it creates .venv-test/ with aiosmtpd \
             and installs swaks)",
            p.display()
        );
    }
    p
}

pub fn peer_script(name: &str) -> PathBuf {
    repo_root().join("tests/peers").join(name)
}

/// A free loopback port for a server. Chosen at random *below* the kernel's ephemeral range
/// (so that the many outgoing connections the tests make cannot grab it between now and the
/// server's bind), never handed out twice by this process, and checked by binding it.
/// Falls back to "bind port 0, read it, let it go".
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let low_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (lo, hi) = (12000u32, low_ephemeral.saturating_sub(1));
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    if hi > lo + 1000 {
        let mut x = (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64)
            ^ ((std::process::id() as u64) << 32)
            ^ (COUNTER.fetch_add(1, Ordering::SeqCst) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = (lo + (x % u64::from(hi - lo)) as u32) as u16;
            if given.contains(&port) {
                continue;
            }
            // Bindable on 127.0.0.1, and nobody (e.g. a dual-stack [::] listener) answers there.
            if TcpListener::bind(("127.0.0.1", port)).is_ok() && !port_open(port) {
                given.insert(port);
                return port;
            }
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().unwrap().port();
    given.insert(port);
    port
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir; removed on drop unless the test failed.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join("postdesk-tests").join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Sink: aiosmtpd in Maildir mode

/// An SMTP server capturing the daemon's outbound mail: aiosmtpd with its Mailbox handler, one
/// file per message, with `X-MailFrom` / `X-RcptTo` headers added for the envelope.
pub struct Sink {
    pub port: u16,
    pub dir: TempDir,
    child: Option<Child>,
    /// Runs `peers/refusing_sink.py` (see [`Sink::start_refusing`]).
    refusing: bool,
}

impl Sink {
    pub fn start() -> Sink {
        let mut sink = Sink {
            port: free_port(),
            dir: TempDir::new("sink"),
            child: None,
            refusing: false,
        };
        sink.start_again();
        sink
    }

    /// A sink that can refuse recipients at RCPT with 550 ([`Sink::refuse`]).
    pub fn start_refusing() -> Sink {
        let mut sink = Sink {
            port: free_port(),
            dir: TempDir::new("sink"),
            child: None,
            refusing: true,
        };
        sink.start_again();
        sink
    }

    /// From now on RCPT TO:<addr> gets 550 (a sink from [`Sink::start_refusing`]).
    pub fn refuse(&self, addr: &str) {
        assert!(self.refusing, "Sink::refuse needs Sink::start_refusing");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path.join("refuse"))
            .unwrap();
        writeln!(f, "{addr}").unwrap();
    }

    /// From now on the answer to DATA waits for [`Sink::release`] (a sink from
    /// [`Sink::start_refusing`]); returns when a message is waiting so.
    pub fn hold(&self) {
        assert!(self.refusing, "Sink::hold needs Sink::start_refusing");
        std::fs::write(self.dir.path.join("refuse.hold"), b"").unwrap();
    }

    /// Waits until a message's DATA is held by [`Sink::hold`].
    pub fn wait_holding(&self, timeout: Duration) {
        let holding = self.dir.path.join("refuse.holding");
        wait_until(timeout, "a message held at the sink's DATA", || {
            holding.exists().then_some(())
        });
    }

    /// Answers held and later DATA again.
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.dir.path.join("refuse.hold"));
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path.join("Maildir")
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// (Re)starts aiosmtpd on the same port; a no-op when it is running.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(self.maildir().join(sub)).unwrap();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path.join("aiosmtpd.log"))
            .unwrap();
        let start = Instant::now();
        // After a stop the port may briefly be unavailable; retry the spawn.
        loop {
            let mut cmd = Command::new(python());
            cmd.args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{}", self.port));
            if self.refusing {
                cmd.env("PYTHONPATH", repo_root().join("tests/peers"))
                    .args(["-c", "refusing_sink.RefusingMailbox"])
                    .arg(self.maildir())
                    .arg(self.dir.path.join("refuse"));
            } else {
                cmd.args(["-c", "aiosmtpd.handlers.Mailbox"])
                    .arg(self.maildir());
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .expect("spawn aiosmtpd");
            loop {
                if port_open(self.port) {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "aiosmtpd did not come up on port {}: {}",
                        self.port,
                        self.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!(
                    "aiosmtpd keeps exiting on port {}: {}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops aiosmtpd (SIGKILL; the port is then closed: "relay down").
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_until(Duration::from_secs(10), "sink port to close", || {
            (!port_open(self.port)).then_some(())
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("aiosmtpd.log")).unwrap_or_default()
    }

    /// Every message received so far (raw bytes), in arrival order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<((u64, u64, u64), PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(self.maildir().join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                files.push((maildir_order(&name), e.path()));
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read(p).ok())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.messages().len()
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let msgs = self.messages();
            if msgs.len() >= n {
                return msgs;
            }
            if start.elapsed() > timeout {
                panic!(
                    "sink: expected {n} message(s) within {timeout:?}, got {}:\n{}",
                    msgs.len(),
                    msgs.iter()
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .collect::<Vec<_>>()
                        .join("\n-----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `addr` has received `n` messages; returns the n-th (1-based).
    pub fn nth_to(&self, addr: &str, n: usize) -> Vec<u8> {
        wait_until(
            SECS_30,
            &format!("message {n} to {addr} at the sink"),
            || self.messages_to(addr).into_iter().nth(n - 1),
        )
    }

    /// Messages whose envelope recipient (X-RcptTo) is `addr`.
    pub fn messages_to(&self, addr: &str) -> Vec<Vec<u8>> {
        self.messages()
            .into_iter()
            .filter(|m| {
                header(m, "X-RcptTo")
                    .map(|r| r.to_ascii_lowercase().contains(&addr.to_ascii_lowercase()))
                    .unwrap_or(false)
            })
            .collect()
    }
}

/// Python's mailbox.Maildir names files `SECS.M<usec>P<pid>Q<n>.host`: sort key (secs, usec, n).
fn maildir_order(name: &str) -> (u64, u64, u64) {
    let mut parts = name.splitn(3, '.');
    let secs = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let uniq = parts.next().unwrap_or("");
    let num = |after: char, before: char| -> u64 {
        uniq.split_once(after)
            .map(|(_, r)| r.split(before).next().unwrap_or(""))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    (secs, num('M', 'P'), num('Q', '.'))
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Daemon

/// Config of a test daemon: sections of `key = value` lines (values are raw TOML).
pub struct DaemonConfig {
    sections: Vec<(String, Vec<(String, String)>)>,
    /// Extra TOML appended verbatim (more [[mailbox]] blocks, new sections…).
    pub extra: String,
    pub smtp_port: u16,
    pub web_port: u16,
    /// Extra environment variables for `postdesk serve` (e.g. NOTIFY_SOCKET).
    pub env: Vec<(String, String)>,
    /// Files written into the daemon's copy of rules/ before it starts
    /// (name relative to rules/, content), over the repository's.
    pub rules_files: Vec<(String, String)>,
}

impl DaemonConfig {
    /// Whether the web listener serves TLS (`web.tls_cert` set).
    pub fn web_tls(&self) -> bool {
        self.sections
            .iter()
            .any(|(s, keys)| s == "web" && keys.iter().any(|(k, _)| k == "tls_cert"))
    }

    /// The standard test config; outbound mail goes to `relay_port` (a Sink's port).
    pub fn new(relay_port: u16) -> DaemonConfig {
        let smtp_port = free_port();
        let web_port = free_port();
        let mut c = DaemonConfig {
            sections: Vec::new(),
            extra: String::new(),
            smtp_port,
            web_port,
            env: Vec::new(),
            rules_files: Vec::new(),
        };
        c.set("server", "hostname", &q(HOSTNAME));
        c.set(
            "smtp",
            "listen",
            &format!("[{}]", q(&format!("127.0.0.1:{smtp_port}"))),
        );
        c.set(
            "outbound",
            "relay",
            &q(&format!("smtp://127.0.0.1:{relay_port}")),
        );
        c.set(
            "outbound",
            "from",
            &q("Example Support <support@example.test>"),
        );
        c.set("outbound", "retry_initial", &q("1s"));
        c.set("outbound", "retry_max", &q("2s"));
        c.set("web", "listen", &q(&format!("127.0.0.1:{web_port}")));
        c.set("web", "api_token", &q(API_TOKEN));
        // rules/ names agents; tests that want their notifications turn this on
        // (tests/agents.rs), the others expect only the customer's mail at the sink.
        c.set("agents", "notify", "false");
        // No sender verification (it would ask the system's DNS, which is off this
        // machine): tests/inbound_auth.rs turns it on with its own dnsmasq.
        c.set("auth", "verify", "false");
        c
    }

    /// Serves the customers' pages on a port of their own (`web.public_listen`); returns it.
    pub fn with_public(&mut self) -> u16 {
        let port = free_port();
        self.set("web", "public_listen", &q(&format!("127.0.0.1:{port}")));
        port
    }

    /// Picks new SMTP and web ports (after a port clash at start-up).
    pub fn repick_ports(&mut self) {
        self.smtp_port = free_port();
        self.web_port = free_port();
        let smtp = format!("[{}]", q(&format!("127.0.0.1:{}", self.smtp_port)));
        let web = q(&format!("127.0.0.1:{}", self.web_port));
        self.set("smtp", "listen", &smtp);
        self.set("web", "listen", &web);
    }

    /// Removes `key` from `[section]` (back to the daemon's default).
    pub fn unset(&mut self, section: &str, key: &str) -> &mut Self {
        if let Some((_, keys)) = self.sections.iter_mut().find(|(s, _)| s == section) {
            keys.retain(|(k, _)| k != key);
        }
        self
    }

    /// Sets (or overrides) `key = value` in `[section]`; `value` is raw TOML (quote strings
    /// with [`q`]).
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> &mut Self {
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[idx].1;
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => keys.push((key.to_string(), value.to_string())),
        }
        self
    }

    fn render(&self, data_dir: &Path, rules_dir: &Path) -> String {
        let mut out = String::new();
        for (section, keys) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            if section == "server" {
                if !keys.iter().any(|(k, _)| k == "data_dir") {
                    out.push_str(&format!("data_dir = {}\n", q(&data_dir.to_string_lossy())));
                }
                if !keys.iter().any(|(k, _)| k == "rules_dir") {
                    out.push_str(&format!(
                        "rules_dir = {}\n",
                        q(&rules_dir.to_string_lossy())
                    ));
                }
            }
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
            if section == "smtp" {
                out.push_str(
                    "[[mailbox]]\naddress = \"support@example.test\"\nqueue = \"general\"\n\n",
                );
            }
        }
        out.push_str(&self.extra);
        out
    }
}

/// Writes `cfg` into a fresh temp dir (with a copy of the repo's rules/ and a data/ path);
/// returns the dir and the config file's path. Used by [`Daemon`] and by CLI tests.
pub fn write_config(cfg: &DaemonConfig) -> (TempDir, PathBuf) {
    let dir = TempDir::new("daemon");
    let rules = dir.path.join("rules");
    copy_dir(&repo_root().join("rules"), &rules);
    // Test daemons keep office hours around the clock: the shipped calendar closes at 16:00
    // UTC in winter, at weekends and on holidays, and routing tags and acknowledges tickets
    // differently then, so a test would pass or fail by the time of day it runs at.
    // A test about business hours gives its own calendar.toml in `rules_files`.
    std::fs::write(rules.join("calendar.toml"), ALWAYS_OPEN_CALENDAR).unwrap();
    for (name, text) in &cfg.rules_files {
        std::fs::write(rules.join(name), text).unwrap();
    }
    let data = dir.path.join("data");
    let config_path = dir.path.join("config.toml");
    std::fs::write(&config_path, cfg.render(&data, &rules)).unwrap();
    (dir, config_path)
}

/// The calendar test daemons get (see [`write_config`]).
pub const ALWAYS_OPEN_CALENDAR: &str = "[default]\ntimezone = \"UTC\"\nhours = { mon = \"00:00-24:00\", tue = \"00:00-24:00\", wed = \"00:00-24:00\", thu = \"00:00-24:00\", fri = \"00:00-24:00\", sat = \"00:00-24:00\", sun = \"00:00-24:00\" }\n";

/// A TOML basic string.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A running `postdesk serve` with its own temp dir (config, data, rules copy, log).
pub struct Daemon {
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub smtp_port: u16,
    pub web_port: u16,
    child: Option<Child>,
    starts: usize,
    cfg: DaemonConfig,
}

impl Daemon {
    /// The standard test daemon relaying to `sink`.
    pub fn start(sink: &Sink) -> Daemon {
        Daemon::with_config(DaemonConfig::new(sink.port))
    }

    /// Like [`Daemon::start`], after `tweak` changed the config.
    pub fn start_with(sink: &Sink, tweak: impl FnOnce(&mut DaemonConfig)) -> Daemon {
        let mut cfg = DaemonConfig::new(sink.port);
        tweak(&mut cfg);
        Daemon::with_config(cfg)
    }

    pub fn with_config(cfg: DaemonConfig) -> Daemon {
        let (dir, config_path) = write_config(&cfg);
        let mut d = Daemon {
            dir,
            config_path,
            smtp_port: cfg.smtp_port,
            web_port: cfg.web_port,
            child: None,
            starts: 0,
            cfg,
        };
        // A port taken between choosing and binding it: choose new ones (first start only).
        for attempt in 1.. {
            match d.try_spawn() {
                Ok(()) => break,
                Err(e) if attempt < 5 && e.contains("Address already in use") => {
                    eprintln!("harness: port clash at start-up, choosing new ports: {e}");
                    d.cfg.repick_ports();
                    d.smtp_port = d.cfg.smtp_port;
                    d.web_port = d.cfg.web_port;
                    let rules = d.dir.path.join("rules");
                    let data = d.dir.path.join("data");
                    std::fs::write(&d.config_path, d.cfg.render(&data, &rules)).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        d
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path.join("postdesk.log")
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.smtp_port))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "daemon already running");
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut header = log.try_clone().unwrap();
        let _ = writeln!(header, "===== harness: start #{} =====", self.starts);
        let child = Command::new(daemon_bin())
            .arg("serve")
            .arg("-c")
            .arg(&self.config_path)
            .current_dir(&self.dir.path)
            .env(
                "POSTDESK_LOG",
                std::env::var("POSTDESK_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .envs(self.cfg.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn postdesk");
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(60))
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "postdesk exited during start-up ({st}); log:\n{}",
                    self.log_tail(60)
                ));
            }
            if let Ok((200, _)) = self.try_get("/api/v1/health", Some(API_TOKEN)) {
                return Ok(());
            }
            if self.cfg.web_tls() && tls_health_ok(self.web_port) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(format!(
                    "postdesk did not answer GET /api/v1/health with 200 within {timeout:?}; log:\n{}",
                    self.log_tail(60)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait for the exit (panics after 60 s).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon not running");
        signal(child.id(), "TERM");
        match wait_child(&mut child, Duration::from_secs(60)) {
            Some(st) => st,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "postdesk did not exit within 60 s of SIGTERM; log:\n{}",
                    self.log_tail(40)
                );
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("daemon not running");
        signal(child.id(), "KILL");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts again with the same config and data (stop or kill9 first).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        // The old process is gone; wait until its ports are free again.
        wait_until(Duration::from_secs(20), "old ports to be released", || {
            let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
            (free(self.smtp_port) && free(self.web_port)).then_some(())
        });
        self.spawn();
    }

    // ----- HTTP

    fn try_get(&self, path: &str, token: Option<&str>) -> std::io::Result<(u16, Vec<u8>)> {
        http_get(self.web_port, path, token)
    }

    /// GET with the bearer token; body as JSON (Null when empty or not JSON).
    pub fn api_get(&self, path: &str) -> (u16, Value) {
        let (st, body) = self.api_get_raw(path);
        (st, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub fn api_get_raw(&self, path: &str) -> (u16, Vec<u8>) {
        self.api_get_as(path, Some(API_TOKEN))
    }

    /// GET with the given bearer token (None: no Authorization header).
    pub fn api_get_as(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        self.try_get(path, token)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; daemon log:\n{}", self.log_tail(40)))
    }

    /// GET that must answer 200; returns the JSON.
    pub fn api_ok(&self, path: &str) -> Value {
        let (st, v) = self.api_get(path);
        assert_eq!(st, 200, "GET {path} -> {st}: {v}");
        v
    }

    pub fn health(&self) -> Value {
        self.api_ok("/api/v1/health")
    }

    /// Waits until the spool and the outbound queue are empty (everything processed and sent).
    pub fn wait_idle(&self, timeout: Duration) {
        let start = Instant::now();
        let mut last = Value::Null;
        loop {
            let (st, h) = self.api_get("/api/v1/health");
            if st == 200
                && h["spool_pending"].as_u64() == Some(0)
                && h["outbound_queued"].as_u64() == Some(0)
            {
                return;
            }
            last = if st == 200 { h } else { last };
            if start.elapsed() > timeout {
                panic!("daemon not idle within {timeout:?}; last health: {last}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the spool is empty (every accepted message processed), whatever the
    /// outbound queue holds.
    pub fn wait_processed(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            let (st, h) = self.api_get("/api/v1/health");
            if st == 200 && h["spool_pending"].as_u64() == Some(0) {
                return;
            }
            if start.elapsed() > timeout {
                panic!("spool not empty within {timeout:?}; last health ({st}): {h}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until message `seq` is processed; returns its `/api/v1/messages/{seq}` JSON.
    pub fn wait_message(&self, seq: u64, timeout: Duration) -> Value {
        let path = format!("/api/v1/messages/{seq}");
        let start = Instant::now();
        loop {
            let (st, v) = self.api_get(&path);
            if st == 200 {
                return v;
            }
            if start.elapsed() > timeout {
                panic!("GET {path} still {st} after {timeout:?}: {v}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ticket id (string) message `seq` landed in, once processed.
    pub fn ticket_of(&self, seq: u64) -> String {
        let m = self.wait_message(seq, Duration::from_secs(30));
        id_string(&m["ticket"]).unwrap_or_else(|| panic!("message {seq} has no ticket: {m}"))
    }

    pub fn ticket(&self, id: &str) -> Value {
        self.api_ok(&format!("/api/v1/tickets/{id}"))
    }

    pub fn tickets_total(&self) -> u64 {
        let v = self.api_ok("/api/v1/tickets?limit=1000");
        v["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total: {v}"))
    }

    /// Every ticket summary, following limit/offset pages.
    pub fn all_tickets(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self.api_ok(&format!("/api/v1/tickets?limit=1000&offset={}", out.len()));
            let page = v["tickets"].as_array().cloned().unwrap_or_default();
            let total = v["total"].as_u64().unwrap_or(0) as usize;
            if page.is_empty() {
                break;
            }
            out.extend(page);
            if out.len() >= total {
                break;
            }
        }
        out
    }

    // ----- SMTP

    /// Sends `raw` through Python smtplib (`tests/peers/send.py`).
    pub fn send(&self, mail_from: &str, rcpts: &[&str], raw: &[u8]) -> SendResult {
        send_smtp(self.smtp_port, mail_from, rcpts, raw)
    }

    /// Sends and asserts 250; returns the seq from "queued as <seq>".
    pub fn send_ok(&self, mail_from: &str, rcpts: &[&str], raw: &[u8]) -> u64 {
        let r = self.send(mail_from, rcpts, raw);
        assert_eq!(
            r.code,
            Some(250),
            "expected 250 for message from {mail_from:?}, got {r:?}; daemon log:\n{}",
            self.log_tail(30)
        );
        r.seq
            .unwrap_or_else(|| panic!("250 without 'queued as <seq>': {r:?}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- postdesk log tail ({}) -----\n{}\n----- end of log -----",
                self.log_path().display(),
                self.log_tail(80)
            );
        }
    }
}

/// Ids are strings in the API; accept numbers too when comparing.
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Minimal HTTP/1.1 GET over std TcpStream (`Connection: close`, chunked understood).
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, Vec<u8>)> {
    http_request(port, "GET", path, token, None).map(|(status, _, body)| (status, body))
}

/// One HTTP/1.1 request on a fresh connection: `json`, if any, is sent as
/// the body with its length. Returns (status, response head, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = match json {
        Some(j) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{j}",
            j.len()
        ),
        None => "\r\n".to_string(),
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Accept: */*\r\nConnection: close\r\n{body}"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = find(&buf, b"\r\n\r\n").ok_or_else(|| {
        std::io::Error::other(format!(
            "bad HTTP response: {:?}",
            String::from_utf8_lossy(&buf)
        ))
    })?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut body = buf[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Ok((status, head, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = find(b, b"\r\n") {
        let size_hex = String::from_utf8_lossy(&b[..nl]);
        let size =
            usize::from_str_radix(size_hex.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

// ---------------------------------------------------------------------------------------------
// SMTP clients

#[derive(Debug, Clone)]
pub struct SendResult {
    /// Final reply code (DATA's on success), or the code at the stage that failed.
    pub code: Option<u16>,
    pub text: String,
    /// connect / ehlo / mail / rcpt / data
    pub stage: String,
    /// The stored message number from "queued as <seq>".
    pub seq: Option<u64>,
    pub raw_json: Value,
}

impl SendResult {
    fn from_json(v: Value) -> SendResult {
        let text = v["text"].as_str().unwrap_or("").to_string();
        SendResult {
            code: v["code"].as_u64().map(|c| c as u16),
            seq: queued_as(&text),
            text,
            stage: v["stage"].as_str().unwrap_or("").to_string(),
            raw_json: v,
        }
    }
}

/// The number in "queued as <seq>".
pub fn queued_as(text: &str) -> Option<u64> {
    let i = text.find("queued as ")?;
    text[i + 10..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// One message through Python smtplib (`sendmail(from, rcpts, raw)`; "" is the null sender).
pub fn send_smtp(port: u16, mail_from: &str, rcpts: &[&str], raw: &[u8]) -> SendResult {
    let mut child = Command::new(python())
        .arg(peer_script("send.py"))
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg(mail_from)
        .args(rcpts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn send.py");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "send.py printed no JSON: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    SendResult::from_json(v)
}

/// A batch job for [`send_batch`].
pub struct Job {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub file: PathBuf,
}

/// Many messages (files) through one smtplib process, one connection each.
pub fn send_batch(port: u16, jobs: &[Job]) -> Vec<SendResult> {
    let mut child = Command::new(python())
        .arg(peer_script("send.py"))
        .args(["--batch", "127.0.0.1"])
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn send.py --batch");
    let mut input = String::new();
    for j in jobs {
        input.push_str(
            &serde_json::json!({"from": j.mail_from, "rcpts": j.rcpts, "file": j.file}).to_string(),
        );
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let results: Vec<SendResult> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| SendResult::from_json(serde_json::from_str(l).expect("send.py JSON line")))
        .collect();
    assert_eq!(
        results.len(),
        jobs.len(),
        "send.py --batch answered fewer jobs"
    );
    results
}

/// Sends with swaks; returns (exit status success, full transcript).
pub fn swaks(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("swaks not found: run scripts/test-deps.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A raw SMTP session for protocol-level tests: writes `script` as-is after the greeting,
/// then reads every reply until the server closes (send QUIT at the end of `script`).
pub fn raw_smtp(port: u16, script: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect SMTP");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut greeting = [0u8; 512];
    let n = s.read(&mut greeting).unwrap();
    let mut out = String::from_utf8_lossy(&greeting[..n]).into_owned();
    s.write_all(script).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    out.push_str(&String::from_utf8_lossy(&rest));
    out
}

// ---------------------------------------------------------------------------------------------
// Messages

/// A simple CRLF message.
pub fn mail(
    from: &str,
    subject: &str,
    message_id: &str,
    extra_headers: &[&str],
    body: &str,
) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: Support <support@example.test>\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    );
    for h in extra_headers {
        m.push_str(h);
        m.push_str("\r\n");
    }
    m.push_str("\r\n");
    m.push_str(&body.replace("\r\n", "\n").replace('\n', "\r\n"));
    if !m.ends_with("\r\n") {
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// Normalises bare LF and bare CR to CRLF and makes sure the message ends with CRLF (what
/// smtplib sends anyway).
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            c => out.push(c),
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The unfolded value of the first header `name` in the header block of `raw`.
/// The decoded text body of a raw message.
pub fn body_text(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

pub fn header(raw: &[u8], name: &str) -> Option<String> {
    headers(raw, name).into_iter().next()
}

/// Every value of header `name` (unfolded, trimmed), in order.
pub fn headers(raw: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut fields: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields
        .into_iter()
        .filter_map(|f| {
            let (k, v) = f.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .collect()
}

/// The bare address in `Name <addr>` or `addr`.
pub fn bare_address(v: &str) -> String {
    match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].trim().to_string(),
        _ => v.trim().to_string(),
    }
}

/// Kinds of the ticket's events.
pub fn event_kinds(ticket: &Value) -> Vec<String> {
    ticket["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["kind"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The ticket's messages with the given direction.
pub fn messages_dir(ticket: &Value, direction: &str) -> Vec<Value> {
    ticket["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["direction"].as_str() == Some(direction))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Counts per key, for duplicate checks.
pub fn counts<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

pub const SECS_30: Duration = Duration::from_secs(30);
pub const SECS_60: Duration = Duration::from_secs(60);

/// `GET /api/v1/health` over TLS answers 200 (curl, trusting the test CA
/// fixtures/tls/cert.pem): the start-up probe of a daemon with `web.tls_cert`.
pub fn tls_health_ok(port: u16) -> bool {
    Command::new("curl")
        .args(["-sf", "--max-time", "5", "--cacert"])
        .arg(repo_root().join("fixtures/tls/cert.pem"))
        .arg(format!("https://127.0.0.1:{port}/api/v1/health"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
pub mod dns;
pub mod web;

/// Runs a `postdesk` command (`args`, then `-c config`) to its end:
/// whether it succeeded, and what it printed (stdout, then stderr).
pub fn postdesk_cli(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(daemon_bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run postdesk");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
