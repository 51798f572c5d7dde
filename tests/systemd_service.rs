//! The sd_notify(3) protocol as systemd sees it from `Type=notify` with
//! `WatchdogSec`: the real binary, NOTIFY_SOCKET pointing at a datagram
//! socket this test binds, WATCHDOG_USEC set. READY=1 comes once the
//! listeners are bound (SMTP answers then), WATCHDOG=1 keeps coming while the
//! stages are healthy, SIGHUP is bracketed by RELOADING=1 and READY=1, and
//! SIGTERM sends STOPPING=1, after which the pings end.

mod common;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

/// The next notification (one datagram, its lines), or None after `timeout`.
fn next(sock: &UnixDatagram, timeout: Duration) -> Option<Vec<String>> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

/// Reads notifications until one has the line `want`; returns everything read before it.
fn until(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<Vec<String>> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < timeout {
        if let Some(msg) = next(sock, Duration::from_millis(200)) {
            if msg.iter().any(|l| l == want) {
                return seen;
            }
            seen.push(msg);
        }
    }
    panic!("no {want} within {timeout:?}; got {seen:?}");
}

fn kill(sig: &str, pid: u32) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn ready_after_binding_watchdog_pings_reload_and_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.path.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let sink = Sink::start();
    let mut d = Daemon::start_with(&sink, |c| {
        c.env
            .push(("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned()));
        // 600 ms: a ping every 300 ms.
        c.env.push(("WATCHDOG_USEC".into(), "600000".into()));
    });
    let pid = d.pid().unwrap();

    // READY=1 is the first thing said, and by then SMTP answers.
    let first = next(&sock, Duration::from_secs(30)).expect("a first notification");
    assert!(first.iter().any(|l| l == "READY=1"), "{first:?}");
    assert!(port_open(d.smtp_port));

    // WATCHDOG=1 keeps coming while the daemon works.
    let start = Instant::now();
    let mut pings = 0;
    while pings < 5 {
        let msg = next(&sock, Duration::from_secs(5)).expect("watchdog pings keep coming");
        pings += msg.iter().filter(|l| *l == "WATCHDOG=1").count();
        if pings == 2 {
            // Mail flowing through the spool and processor does not stop the pings.
            d.send_ok(
                "ann@customer.example",
                &[SUPPORT],
                &mail(
                    "ann@customer.example",
                    "Hello",
                    "<n1@c.example>",
                    &[],
                    "Hi\n",
                ),
            );
        }
    }
    assert!(start.elapsed() < Duration::from_secs(20));

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC for systemd ≥ 253), then READY=1.
    kill("HUP", pid);
    let start = Instant::now();
    let reloading = loop {
        let msg = next(&sock, Duration::from_secs(10)).expect("RELOADING=1 after SIGHUP");
        if msg.iter().any(|l| l == "RELOADING=1") {
            break msg;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no RELOADING=1");
    };
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    until(&sock, "READY=1", Duration::from_secs(10));
    assert!(d.health()["ok"] != false, "still serving after the reload");

    // SIGTERM: STOPPING=1, then no more pings.
    let st = d.stop();
    assert!(st.success(), "clean exit: {st:?}");
    until(&sock, "STOPPING=1", Duration::from_secs(10));
    while let Some(msg) = next(&sock, Duration::from_millis(100)) {
        assert!(
            !msg.iter().any(|l| l == "WATCHDOG=1"),
            "a ping after STOPPING=1: {msg:?}"
        );
    }
}

/// `LoadCredential=api-token:…` puts the token in $CREDENTIALS_DIRECTORY/api-token;
/// `web.api_token_file = "credential:api-token"` reads it there.
#[test]
fn the_api_token_comes_from_a_systemd_credential() {
    let creds = TempDir::new("credentials");
    std::fs::write(creds.path.join("api-token"), format!("{API_TOKEN}\n")).unwrap();
    let sink = Sink::start();
    let mut d = Daemon::start_with(&sink, |c| {
        c.unset("web", "api_token");
        c.set("web", "api_token_file", &q("credential:api-token"));
        c.env.push((
            "CREDENTIALS_DIRECTORY".into(),
            creds.path.to_string_lossy().into_owned(),
        ));
    });
    // The harness only calls the daemon ready once the health check passes with API_TOKEN.
    let (status, _) = d.api_get_as("/api/v1/tickets", Some("wrong-token"));
    assert_eq!(status, 401);
    assert_eq!(d.api_get("/api/v1/tickets").0, 200);

    // Without $CREDENTIALS_DIRECTORY `postdesk serve` refuses to start and says why.
    d.stop();
    let out = Command::new(daemon_bin())
        .args(["serve", "-c"])
        .arg(&d.config_path)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CREDENTIALS_DIRECTORY") && err.contains("LoadCredential=api-token:"),
        "{err}"
    );
}

/// `postdesk check` by hand (outside the unit) warns about a credential it
/// cannot see, and under systemd's environment finds it.
#[test]
fn check_warns_about_a_credential_outside_systemd() {
    let mut cfg = DaemonConfig::new(free_port());
    cfg.unset("web", "api_token");
    cfg.set("web", "api_token_file", &q("credential:api-token"));
    let (dir, config) = write_config(&cfg);
    let run = |creds: Option<&std::path::Path>| {
        let mut c = Command::new(daemon_bin());
        c.args(["check", "-c"]).arg(&config);
        match creds {
            Some(p) => c.env("CREDENTIALS_DIRECTORY", p),
            None => c.env_remove("CREDENTIALS_DIRECTORY"),
        };
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = run(None);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "warning: web.api_token_file: credential:api-token needs $CREDENTIALS_DIRECTORY"
        ),
        "{out}"
    );
    let creds = dir.path.join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let (_, out) = run(Some(&creds));
    assert!(
        out.contains("credential file") && out.contains("does not exist"),
        "{out}"
    );
    std::fs::write(creds.join("api-token"), "secret\n").unwrap();
    let (ok, out) = run(Some(&creds));
    assert!(ok && !out.contains("warning: web.api_token_file"), "{out}");
}

/// `tokens.secret_file = "credential:token-secret"`: the plus-addresses are
/// signed with the credential's key, not one the store made, so two
/// installations given the same key sign the same address alike (and one
/// without it does not).
#[test]
fn reply_addresses_are_signed_with_the_credential_key() {
    let creds = TempDir::new("credentials");
    std::fs::write(
        creds.path.join("token-secret"),
        "0123456789abcdef0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let reply_to = |with_secret: bool| {
        let sink = Sink::start();
        let d = Daemon::start_with(&sink, |c| {
            if with_secret {
                c.set("tokens", "secret_file", &q("credential:token-secret"));
                c.env.push((
                    "CREDENTIALS_DIRECTORY".into(),
                    creds.path.to_string_lossy().into_owned(),
                ));
            }
        });
        d.send_ok(
            "ivy@customer.example",
            &[SUPPORT],
            &mail(
                "ivy@customer.example",
                "Sign me",
                "<sign-1@customer.example>",
                &[],
                "Hi\n",
            ),
        );
        let ack = sink.nth_to("ivy@customer.example", 1);
        header(&ack, "Reply-To").expect("the acknowledgement has a Reply-To")
    };
    let a = reply_to(true);
    let b = reply_to(true);
    let c = reply_to(false);
    assert!(a.contains("support+t1."), "{a}");
    assert_eq!(a, b, "same key, same ticket, same day: same signature");
    assert_ne!(a, c, "the store's own key signs differently");

    // A key too short to sign with stops start-up with the reason.
    std::fs::write(creds.path.join("token-secret"), "short\n").unwrap();
    let mut cfg = DaemonConfig::new(free_port());
    cfg.set("tokens", "secret_file", &q("credential:token-secret"));
    let (_dir, config) = write_config(&cfg);
    let out = Command::new(daemon_bin())
        .args(["serve", "-c"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", &creds.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 32 are needed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Socket activation (postdesk.socket): the service manager binds the SMTP port and passes
/// the socket; postdesk serves on it instead of binding `smtp.listen`. systemd-socket-activate
/// is systemd's own tool for running a daemon exactly that way.
#[test]
fn serves_smtp_on_the_socket_systemd_passes() {
    let sink = Sink::start();
    let cfg = DaemonConfig::new(sink.port);
    // smtp.listen names a port nobody binds: the passed socket replaces it.
    let configured = cfg.smtp_port;
    let web_port = cfg.web_port;
    let (dir, config_path) = write_config(&cfg);
    let activated = free_port();
    let log = std::fs::File::create(dir.path.join("daemon.log")).unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{activated}"))
        .arg("--fdname=smtp")
        .arg(daemon_bin())
        .args(["serve", "-c", config_path.to_str().unwrap()])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("systemd-socket-activate");
    // Before the first connection the tool holds the socket; the first one starts postdesk,
    // which answers it from the socket's queue.
    let raw = mail(
        "Ida <ida@customer.example>",
        "Activated",
        "<activated-1@customer.example>",
        &[],
        "Hello\n",
    );
    let sent = send_smtp(activated, "ida@customer.example", &[SUPPORT], &raw);
    let log_text = || std::fs::read_to_string(dir.path.join("daemon.log")).unwrap_or_default();
    assert_eq!(sent.code, Some(250), "{sent:?}\n{}", log_text());
    // The ticket exists, and the configured smtp.listen port was never bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, body)) = http_get(web_port, "/api/v1/tickets", Some(API_TOKEN)) {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if v["total"].as_u64() == Some(1) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no ticket:\n{}", log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", configured)).is_err(),
        "smtp.listen was bound too:\n{}",
        log_text()
    );
    assert!(
        log_text().contains("SMTP socket from the service manager"),
        "{}",
        log_text()
    );
    kill("TERM", child.id());
    let _ = child.wait();
}
