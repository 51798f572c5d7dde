//! Helpers for tests/imap.rs: a private Dovecot (scripts/dovecot-up.sh), the
//! real postdesk binary with a temporary config, and a tiny HTTP client for
//! its JSON API. Self-contained on purpose (tests/common belongs to the SMTP
//! and outbound tests).

#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "tester";
pub const PASS: &str = "secret";
pub const TOKEN: &str = "t";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A scratch directory, removed when the test passes and kept (for its logs)
/// when it fails.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh scratch directory (readable by Dovecot's unprivileged processes).
pub fn scratch(name: &str) -> Scratch {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "postdesk-imap-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let _ = Command::new("chmod").arg("755").arg(&dir).status();
    Scratch(dir)
}

/// True when Dovecot can be started; prints a loud notice when it cannot
/// (or panics when `POSTDESK_REQUIRE_DOVECOT` is set).
pub fn dovecot_available(test: &str) -> bool {
    let bin = std::env::var("DOVECOT").unwrap_or_else(|_| "/usr/sbin/dovecot".into());
    if Path::new(&bin).exists() {
        return true;
    }
    // CI sets this so a missing peer fails loudly instead of passing by skipping.
    if std::env::var_os("POSTDESK_REQUIRE_DOVECOT").is_some() {
        panic!("{test}: Dovecot is required (POSTDESK_REQUIRE_DOVECOT) but {bin} is missing");
    }
    eprintln!(
        "\n!!!!!!!!!! SKIPPED {test}: Dovecot is not installed ({bin} missing).\n\
         !!!!!!!!!! apt-get install -y --no-install-recommends dovecot-imapd dovecot-core\n"
    );
    false
}

/// Blocks until `cond` holds; panics with `what` (and the postdesk log) after `timeout`.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    pd: Option<&Postdesk>,
    mut cond: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = pd.map(|p| p.log_tail(40)).unwrap_or_default();
    panic!("timed out after {timeout:?} waiting for: {what}\n--- postdesk log ---\n{log}");
}

fn alive(pid: &str) -> bool {
    Command::new("ps")
        .args(["-o", "stat=", "-p", pid])
        .output()
        .map(|o| {
            let st = String::from_utf8_lossy(&o.stdout).trim().to_string();
            o.status.success() && !st.is_empty() && !st.starts_with('Z')
        })
        .unwrap_or(false)
}

/// A private Dovecot on a loopback port; stopped on drop.
pub struct Dovecot {
    pub dir: PathBuf,
    pub port: u16,
    env: Vec<(String, String)>,
}

impl Dovecot {
    pub fn start(dir: &Path) -> Dovecot {
        Self::start_with(dir, Vec::new())
    }

    pub fn start_with(dir: &Path, env: Vec<(String, String)>) -> Dovecot {
        let d = Dovecot {
            dir: dir.join("dovecot"),
            port: free_port(),
            env,
        };
        d.up();
        d
    }

    fn up(&self) {
        // Output goes to a file, not a pipe: the daemon inherits the script's
        // stdout, so a pipe would never reach end-of-file.
        std::fs::create_dir_all(&self.dir).expect("dovecot dir");
        let log = self.dir.with_extension("up.log");
        let file = std::fs::File::create(&log).expect("dovecot-up log");
        let status = Command::new("bash")
            .arg(repo().join("scripts/dovecot-up.sh"))
            .arg(&self.dir)
            .arg(self.port.to_string())
            .arg(USER)
            .arg(PASS)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .status()
            .expect("run scripts/dovecot-up.sh");
        assert!(
            status.success(),
            "dovecot-up.sh failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("run/master.pid"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Stops the server (TERM to its master) and waits until it is gone.
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let start = Instant::now();
            while alive(&pid) && start.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(&pid) {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            let _ = std::fs::remove_file(self.dir.join("run/master.pid"));
        }
    }

    /// Starts it again on the same port with the same mail.
    pub fn restart(&self) {
        self.up();
    }

    pub fn maildir(&self, folder: &str) -> PathBuf {
        let base = self.dir.join("mail").join(USER).join("Maildir");
        if folder.eq_ignore_ascii_case("INBOX") {
            base
        } else {
            base.join(format!(".{folder}"))
        }
    }

    /// Delivers a message the way an MTA would: a file in `tmp/` renamed into `new/`.
    pub fn drop_message(&self, folder: &str, name: &str, raw: &[u8]) {
        let md = self.maildir(folder);
        for sub in ["cur", "new", "tmp"] {
            let p = md.join(sub);
            if !p.exists() {
                std::fs::create_dir_all(&p).expect("create maildir");
                let _ = std::os::unix::fs::chown(&p, Some(65534), Some(65534));
            }
        }
        let tmp = md.join("tmp").join(name);
        std::fs::write(&tmp, raw).expect("write maildir file");
        // As root, Dovecot handles mail as nobody (65534); elsewhere this fails harmlessly.
        let _ = std::os::unix::fs::chown(&tmp, Some(65534), Some(65534));
        std::fs::rename(&tmp, md.join("new").join(name)).expect("deliver maildir file");
    }

    pub fn tool(&self, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(repo().join("tests/imap_support/imap_tool.py"))
            .arg(self.port.to_string())
            .arg(USER)
            .arg(PASS)
            .args(args)
            .output()
            .expect("run imap_tool.py");
        assert!(
            out.status.success(),
            "imap_tool.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// APPENDs messages over IMAP (creating the folder when needed).
    pub fn append(&self, folder: &str, raws: &[Vec<u8>]) {
        let dir = self.dir.join("append");
        std::fs::create_dir_all(&dir).expect("append dir");
        let mut files = Vec::new();
        for (i, raw) in raws.iter().enumerate() {
            let p = dir.join(format!("{i}.eml"));
            std::fs::write(&p, raw).expect("write message");
            files.push(p.to_string_lossy().into_owned());
        }
        let mut args = vec!["append", folder];
        args.extend(files.iter().map(String::as_str));
        self.tool(&args);
    }

    /// APPENDs messages with an old INTERNALDATE (`"15-Jan-2018 10:00:00 +0000"`),
    /// the way a folder's history looks after it was imported or recreated.
    pub fn append_dated(&self, folder: &str, internal_date: &str, raws: &[Vec<u8>]) {
        let dir = self.dir.join("append-dated");
        std::fs::create_dir_all(&dir).expect("append dir");
        let mut files = Vec::new();
        for (i, raw) in raws.iter().enumerate() {
            let p = dir.join(format!("{i}.eml"));
            std::fs::write(&p, raw).expect("write message");
            files.push(p.to_string_lossy().into_owned());
        }
        let mut args = vec!["append-dated", folder, internal_date];
        args.extend(files.iter().map(String::as_str));
        self.tool(&args);
    }

    /// (uid, flags) of every message in `folder` (empty when it does not exist).
    pub fn list(&self, folder: &str) -> Vec<(u64, Vec<String>)> {
        let v: Value = serde_json::from_str(&self.tool(&["list", folder])).expect("list JSON");
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        let flags = m["flags"]
                            .as_array()
                            .map(|f| {
                                f.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (m["uid"].as_u64().unwrap_or(0), flags)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn seen_count(&self, folder: &str) -> usize {
        self.list(folder)
            .iter()
            .filter(|(_, f)| f.iter().any(|x| x == "\\Seen"))
            .count()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The real postdesk binary on a temporary config; killed on drop.
pub struct Postdesk {
    pub dir: PathBuf,
    pub web: u16,
    pub smtp: u16,
    child: Option<Child>,
}

impl Postdesk {
    /// Writes `config.toml` with `imap` appended (the `[[imap]]` tables) and starts it.
    pub fn start(dir: &Path, imap: &str) -> Postdesk {
        Self::start_with_env(dir, imap, &[])
    }

    /// [`Postdesk::start`] with acknowledgements on (they go to the outbox
    /// with everything else postdesk sends).
    pub fn start_acknowledging(dir: &Path, imap: &str) -> Postdesk {
        Self::start_full(dir, imap, &[], true)
    }

    /// [`Postdesk::start`] with extra environment variables (failpoints).
    pub fn start_with_env(dir: &Path, imap: &str, env: &[(&str, &str)]) -> Postdesk {
        Self::start_full(dir, imap, env, false)
    }

    fn start_full(dir: &Path, imap: &str, env: &[(&str, &str)], acknowledge: bool) -> Postdesk {
        let web = free_port();
        let smtp = free_port();
        let config = format!(
            r#"[server]
hostname = "support.example.test"
data_dir = "data"
rules_dir = "{rules}"
admin_address = "postmaster@example.test"

[smtp]
listen = ["127.0.0.1:{smtp}"]

[[mailbox]]
address = "support@example.test"

[outbound]
relay = "maildir:outbox"
from = "Example Support <support@example.test>"

[web]
listen = "127.0.0.1:{web}"
api_token = "{TOKEN}"

[acknowledgement]
enabled = {acknowledge}

{imap}
"#,
            rules = repo().join("rules").display()
        );
        let dir = dir.join("postdesk");
        std::fs::create_dir_all(&dir).expect("postdesk dir");
        std::fs::write(dir.join("config.toml"), config).expect("write config");
        let mut pd = Postdesk {
            dir,
            web,
            smtp,
            child: None,
        };
        pd.spawn_with(env);
        pd
    }

    pub fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    /// Starts the binary (again) with extra environment variables.
    pub fn spawn_with(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postdesk.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_postdesk"))
            .arg("serve")
            .arg("-c")
            .arg(self.dir.join("config.toml"))
            .env("POSTDESK_LOG", "info,postdesk=debug")
            .env("RUST_BACKTRACE", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postdesk");
        let pid = child.id();
        self.child = Some(child);
        let me: &Postdesk = self;
        // Ready, or already gone: a failpoint may abort the daemon moments
        // after start-up, before a poll of the health endpoint sees it up
        // (the caller then waits for that exit).
        let exited = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
        };
        wait_until(
            Duration::from_secs(20),
            "postdesk health endpoint",
            Some(me),
            || exited() || me.try_get("/api/v1/health").is_some_and(|(s, _)| s == 200),
        );
    }

    /// Waits for the process to exit by itself (e.g. at a failpoint).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: no shutdown, no flush — a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("postdesk.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().filter(|l| !l.starts_with("  ")).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postdesk.log")).unwrap_or_default()
    }

    /// GET with the bearer token; None when the daemon does not answer.
    pub fn try_get(&self, path: &str) -> Option<(u16, Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.web)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    pub fn get(&self, path: &str) -> Value {
        match self.try_get(path) {
            Some((200, v)) => v,
            other => panic!("GET {path}: {other:?}\n{}", self.log_tail(30)),
        }
    }

    pub fn health(&self) -> Value {
        self.get("/api/v1/health")
    }

    pub fn ticket_total(&self) -> u64 {
        self.try_get("/api/v1/tickets?limit=1")
            .and_then(|(_, v)| v["total"].as_u64())
            .unwrap_or(0)
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.get("/api/v1/tickets?limit=10000")["tickets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Stored messages the processor dropped as duplicates (scans message
    /// sequences until 50 in a row are unknown).
    pub fn duplicates(&self) -> usize {
        let mut dups = 0;
        let mut misses = 0;
        let mut seq = 1;
        while misses < 50 {
            match self.try_get(&format!("/api/v1/messages/{seq}")) {
                Some((200, v)) => {
                    misses = 0;
                    if v.get("duplicate_of").is_some() {
                        dups += 1;
                    }
                }
                _ => misses += 1,
            }
            seq += 1;
        }
        dups
    }
}

impl Postdesk {
    /// The messages postdesk has written to its outbox (`maildir:outbox`).
    pub fn outbox(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join("outbox").join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    out.push(text);
                }
            }
        }
        out
    }
}

impl Drop for Postdesk {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A plain customer message with a unique Message-ID.
pub fn mail(tag: &str, i: usize, extra_headers: &str) -> Vec<u8> {
    format!(
        "From: Customer {i} <c{i}@example.org>\r\n\
         To: support@example.test\r\n\
         Subject: {tag} question {i}\r\n\
         Message-ID: <{tag}-{i}@example.org>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
         {extra_headers}\
         \r\n\
         Hello, this is {tag} message {i}.\r\n"
    )
    .into_bytes()
}

/// An `[[imap]]` table for the test Dovecot (plain, loopback).
pub fn imap_table(port: u16, extra: &str) -> String {
    format!(
        "[[imap]]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nusername = \"{USER}\"\npassword = \"{PASS}\"\nmailbox = \"support@example.test\"\npoll_interval = \"300s\"\n{extra}\n"
    )
}
