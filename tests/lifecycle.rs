//! The daemon's lifecycle signals through the real binary, as systemd sends
//! them: SIGTERM lets an SMTP transaction in progress finish (250) while a
//! new connection is told 421; SIGHUP reloads the rules and the STARTTLS
//! certificate while an open SMTP session stays usable.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A plain SMTP client over a real socket, one reply at a time.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    fn connect(port: u16) -> Smtp {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to SMTP");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Smtp {
            reader: BufReader::new(tcp.try_clone().unwrap()),
            writer: tcp,
        }
    }

    /// The next reply (all its lines joined by '\n'); "" at EOF.
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end().to_string();
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            lines.push(line);
            if last {
                break;
            }
        }
        lines.join("\n")
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// Sends a command; asserts the reply starts with `code`; returns it.
    fn ok(&mut self, cmd: &str, code: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes());
        let r = self.reply();
        assert!(r.starts_with(code), "{cmd} -> {r:?}, expected {code}");
        r
    }

    /// EHLO, MAIL, RCPT, DATA up to the 354.
    fn open_data(&mut self, from: &str) {
        self.ok("EHLO client.example.org", "250");
        self.ok(&format!("MAIL FROM:<{from}>"), "250");
        self.ok(&format!("RCPT TO:<{SUPPORT}>"), "250");
        self.ok("DATA", "354");
    }
}

fn kill(sig: &str, pid: u32) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// Waits until the daemon's log has `needle` `n` times.
fn wait_log(d: &Daemon, needle: &str, n: usize) {
    wait_until(Duration::from_secs(30), needle, || {
        (d.log().matches(needle).count() >= n).then_some(())
    });
}

#[test]
fn sigterm_lets_a_transaction_in_data_finish_and_tells_new_connections_421() {
    let sink = Sink::start();
    let mut d = Daemon::start_with(&sink, |c| {
        c.set("smtp", "shutdown_grace", &q("30s"));
    });
    let pid = d.pid().unwrap();
    let mut c = Smtp::connect(d.smtp_port);
    assert!(c.reply().starts_with("220"));
    c.open_data("dora@customer.example");
    c.send(
        b"From: dora@customer.example\r\nTo: support@example.test\r\n\
          Subject: Sent across a shutdown\r\nMessage-ID: <term-1@customer.example>\r\n\r\nfirst half\r\n",
    );

    kill("TERM", pid);
    wait_log(&d, "SMTP shutting down", 1);

    // A client arriving now is told to come back later, not left to guess.
    let mut late = Smtp::connect(d.smtp_port);
    let greeting = late.reply();
    assert!(
        greeting.starts_with("421 4.3.2"),
        "a new connection during shutdown: {greeting:?}"
    );

    // The transaction in progress finishes and is committed.
    c.send(b"second half\r\n.\r\n");
    let reply = c.reply();
    assert!(
        reply.starts_with("250"),
        "end of DATA after SIGTERM: {reply:?}"
    );
    let seq = queued_as(&reply).unwrap_or_else(|| panic!("no queued-as in {reply:?}"));
    // Then the idle session is closed with 421, and the daemon exits cleanly.
    assert!(c.reply().starts_with("421 4.3.2"));
    let st = d.stop();
    assert!(st.success(), "exit status {st:?}");

    // Nothing was lost: after a restart the message is a ticket, whole.
    d.restart();
    let id = d.ticket_of(seq);
    let t = d.ticket(&id);
    assert_eq!(t["subject"], "Sent across a shutdown");
    assert!(t.to_string().contains("second half"), "{t}");
}

#[test]
fn sighup_applies_a_changed_rule_to_the_next_message_while_an_open_session_stays_usable() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let pid = d.pid().unwrap();
    // A session opened before the reload.
    let mut c = Smtp::connect(d.smtp_port);
    assert!(c.reply().starts_with("220"));
    c.ok("EHLO client.example.org", "250");

    let routing = d.dir.path.join("rules/routing.toml");
    let tmp = d.dir.path.join("rules/.routing.toml.tmp");
    std::fs::write(
        &tmp,
        "[[rule]]\nname = \"gnu\"\nwhen = { subject = \"gnu\" }\nqueue = \"billing\"\ntags = [\"after-hup\"]\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &routing).unwrap();
    kill("HUP", pid);
    wait_log(&d, "rules reloaded", 1);

    // The open session goes on; its next message meets the new rule.
    c.ok("MAIL FROM:<gus@customer.example>", "250");
    c.ok(&format!("RCPT TO:<{SUPPORT}>"), "250");
    c.ok("DATA", "354");
    c.send(
        b"From: gus@customer.example\r\nTo: support@example.test\r\n\
          Subject: A gnu at the door\r\nMessage-ID: <hup-1@customer.example>\r\n\r\nHello\r\n.\r\n",
    );
    let reply = c.reply();
    assert!(reply.starts_with("250"), "{reply:?}");
    c.ok("QUIT", "221");
    let seq = queued_as(&reply).unwrap();
    let t = d.ticket(&d.ticket_of(seq));
    assert_eq!(t["queue"], "billing", "{t}");
    assert_eq!(t["tags"], serde_json::json!(["after-hup"]), "{t}");
    assert!(d.health()["ok"] != false);
}

/// A self-signed certificate for `cn` (openssl, EC P-256) at DIR/{cert,key}.pem.
fn make_cert(dir: &Path, cn: &str) {
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl req");
    assert!(st.success(), "openssl req failed");
}

/// The subject of the certificate the server presents after STARTTLS.
fn presented_subject(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| {
            panic!(
                "no subject from s_client:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string()
}

#[test]
fn sighup_reloads_the_starttls_certificate_and_open_sessions_carry_on() {
    let tls = TempDir::new("tls");
    make_cert(&tls.path, "first.example.test");
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set(
            "smtp",
            "tls_cert",
            &q(&tls.path.join("cert.pem").to_string_lossy()),
        );
        c.set(
            "smtp",
            "tls_key",
            &q(&tls.path.join("key.pem").to_string_lossy()),
        );
    });
    let pid = d.pid().unwrap();
    assert!(presented_subject(d.smtp_port).contains("first.example.test"));
    let mut open = Smtp::connect(d.smtp_port);
    assert!(open.reply().starts_with("220"));
    open.ok("EHLO client.example.org", "250");

    // The renewed certificate replaces the files; SIGHUP picks it up.
    let renewed = TempDir::new("tls-renewed");
    make_cert(&renewed.path, "renewed.example.test");
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.path.join(f), tls.path.join(f)).unwrap();
    }
    kill("HUP", pid);
    wait_log(&d, "STARTTLS certificate reloaded", 1);
    assert!(presented_subject(d.smtp_port).contains("renewed.example.test"));
    open.ok("NOOP", "250");
    open.ok("QUIT", "221");

    // A broken certificate is refused and the renewed one stays in force.
    std::fs::write(tls.path.join("cert.pem"), "not a certificate\n").unwrap();
    kill("HUP", pid);
    wait_log(&d, "STARTTLS certificate not reloaded", 1);
    assert!(presented_subject(d.smtp_port).contains("renewed.example.test"));
}

#[test]
fn sigterm_waits_for_a_delivery_in_flight_and_records_it() {
    let sink = Sink::start_refusing();
    let mut d = Daemon::start(&sink);
    let pid = d.pid().unwrap();
    // The acknowledgement's DATA hangs at the relay while SIGTERM arrives.
    sink.hold();
    let raw = mail(
        "hal@customer.example",
        "Acknowledge me once",
        "<inflight-1@customer.example>",
        &[],
        "Hi\n",
    );
    d.send_ok("hal@customer.example", &[SUPPORT], &raw);
    sink.wait_holding(Duration::from_secs(30));
    kill("TERM", pid);
    wait_log(&d, "shutting down", 1);
    std::thread::sleep(Duration::from_millis(500));
    sink.release();
    let st = d.stop();
    assert!(st.success(), "exit status {st:?}");
    assert_eq!(sink.messages_to("hal@customer.example").len(), 1);

    // The attempt that finished during shutdown was recorded: a restarted
    // daemon does not send the acknowledgement again.
    d.restart();
    d.wait_idle(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sink.messages_to("hal@customer.example").len(),
        1,
        "the acknowledgement was sent again after the restart"
    );
}
