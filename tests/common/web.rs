//! The web view's side of the harness: a small HTTP/1.1 client for pages
//! and forms, agents with web passwords, login and the form token. Shared
//! by the web, queue, ticket-page tests.

use super::{Daemon, DaemonConfig, Sink, daemon_bin, find, wait_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The web password the test agents get.
pub const PASSWORD: &str = "correct horse battery";

/// An HTTP answer: status, header lines (lower-cased names), body (dechunked,
/// as text).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        self.body.clone()
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`); a
/// POST body is sent as a form.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the web listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = find(&buf, b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The body of a `Transfer-Encoding: chunked` answer.
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = find(b, b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// Percent-encoding of everything but ASCII letters and digits.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `postdesk hash-password` of `password`.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(daemon_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run postdesk hash-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A daemon (after `tweak` changed its config) whose agents alice and bob
/// have the web password [`PASSWORD`], set in its copy of
/// rules/agents.toml and picked up by the rules reload.
pub fn daemon_with_passwords(sink: &Sink, tweak: impl FnOnce(&mut DaemonConfig)) -> Daemon {
    let d = Daemon::start_with(sink, tweak);
    set_passwords(&d);
    d
}

/// Gives alice and bob the web password [`PASSWORD`] in the running
/// daemon's rules/agents.toml and waits for the rules reload.
pub fn set_passwords(d: &Daemon) {
    let agents = d.dir.path.join("rules/agents.toml");
    let mut text = std::fs::read_to_string(&agents).unwrap();
    let phc = hash_password(PASSWORD);
    // alice's and bob's entries end with these lines in the shipped file.
    for anchor in ["skills = [\"printers\"]\n", "skills = [\"networking\"]\n"] {
        assert!(text.contains(anchor), "rules/agents.toml changed");
        text = text.replacen(anchor, &format!("{anchor}password_hash = \"{phc}\"\n"), 1);
    }
    std::fs::write(&agents, text).unwrap();
    wait_until(
        Duration::from_secs(30),
        "rules reloaded with the passwords",
        || d.log().contains("rules reloaded").then_some(()),
    );
}

/// The Origin a browser on the daemon's web listener sends.
pub fn origin(d: &Daemon) -> String {
    format!("http://127.0.0.1:{}", d.web_port)
}

/// Logs `agent` in; returns the `name=value` session cookie.
pub fn login_as(d: &Daemon, agent: &str) -> String {
    let a = http(
        d.web_port,
        "POST",
        "/login",
        &[("Origin", &origin(d))],
        &form(&[("username", agent), ("password", PASSWORD)]),
    );
    assert_eq!(a.status, 303, "login failed: {}", a.body);
    let cookie = a.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

/// The form token in a page.
pub fn csrf_token(page: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#).unwrap();
    re.captures(page).expect("a csrf input in the page")[1].to_string()
}
