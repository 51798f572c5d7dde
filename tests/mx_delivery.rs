//! Direct delivery (`outbound.relay = "mx"`) end to end: the real daemon asks a private
//! dnsmasq on loopback for the customers' MX records and delivers to aiosmtpd MX hosts on
//! 127.0.0.2 and 127.0.0.3 (tests/peers/mx_sink.py; `outbound.mx_port` points both at one
//! port). STARTTLS certificates come from a private CA made here with openssl, trusted (or
//! not) through `outbound.tls_ca_file`; the MTA-STS policy host is HTTPS on loopback
//! (tests/peers/https_policy.py, `outbound.mta_sts_port`). What the receiving server said
//! is checked in the ticket's JSON (`messages[].delivery`) and on the ticket page; the
//! smarthost mode keeps its evidence too, and an SLA policy with `first_response_on =
//! "delivered"` counts the first response from the MX host's acceptance.

mod common;
use common::dns::{Dns, Zone};
use common::*;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free on both 127.0.0.2 and 127.0.0.3 (the two MX hosts listen on one port, the
/// daemon's `outbound.mx_port`).
fn port_on_both() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if TcpListener::bind(("127.0.0.2", port)).is_ok()
            && TcpListener::bind(("127.0.0.3", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no port free on 127.0.0.2 and 127.0.0.3");
}

fn listening(ip: &str, port: u16) -> bool {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A child process killed (and reaped) on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_peer(script: &str, args: &[String], log: &Path, ip: &str, port: u16) -> Peer {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(python())
        .arg(peer_script(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {script}: {e}"));
    let mut peer = Peer(child);
    let start = Instant::now();
    while !listening(ip, port) {
        if let Ok(Some(status)) = peer.0.try_wait() {
            panic!(
                "{script} exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{script} did not listen on {ip}:{port}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    peer
}

/// One MX host (tests/peers/mx_sink.py).
struct MxHost {
    ip: &'static str,
    dir: TempDir,
    peer: Option<Peer>,
}

#[derive(Default)]
struct HostOpts {
    /// Certificate and key: STARTTLS offered.
    tls: Option<(PathBuf, PathBuf)>,
    reject: Vec<&'static str>,
    /// MAIL FROM answered 451 this many times first.
    tempfail: u32,
    /// MAIL FROM answered 451 while this file exists.
    hold_file: Option<PathBuf>,
}

impl MxHost {
    fn start(ip: &'static str, port: u16, opts: HostOpts) -> MxHost {
        let dir = TempDir::new("mxhost");
        let mut args = vec![
            "--listen".to_string(),
            ip.to_string(),
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            dir.path.to_string_lossy().into_owned(),
            "--tempfail".into(),
            opts.tempfail.to_string(),
        ];
        if let Some((cert, key)) = &opts.tls {
            args.extend([
                "--cert".into(),
                cert.to_string_lossy().into_owned(),
                "--key".into(),
                key.to_string_lossy().into_owned(),
            ]);
        }
        if let Some(f) = &opts.hold_file {
            args.extend(["--hold-file".into(), f.to_string_lossy().into_owned()]);
        }
        for r in &opts.reject {
            args.extend(["--reject".into(), r.to_string()]);
        }
        let peer = spawn_peer("mx_sink.py", &args, &dir.path.join("stderr"), ip, port);
        MxHost {
            ip,
            dir,
            peer: Some(peer),
        }
    }

    /// Stops the host: its port refuses connections.
    fn stop(&mut self) {
        self.peer.take();
    }

    /// The messages it accepted, oldest first (by queue id).
    fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .collect()
    }

    fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        wait_until(SECS_30, &format!("{n} message(s) at {}", self.ip), || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    /// Its SMTP log: one line per EHLO, MAIL, RCPT, DATA.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("log")).unwrap_or_default()
    }
}

/// A private CA and server certificates it signed, made with openssl.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki");
        let p = |f: &str| dir.path.join(f).to_string_lossy().into_owned();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=postdesk test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        Pki { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path.join("ca.pem")
    }

    /// A certificate for `names` (DNS SANs): (cert, key).
    fn server(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let p = |f: &str| self.dir.path.join(f).to_string_lossy().into_owned();
        let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            p(&format!("{file}.ext")),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
                sans.join(",")
            ),
        )
        .unwrap();
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p(&format!("{file}.key")),
            "-out",
            &p(&format!("{file}.csr")),
            "-subj",
            &format!("/CN={}", names[0]),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(&format!("{file}.csr")),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p(&format!("{file}.pem")),
            "-days",
            "2",
            "-extfile",
            &p(&format!("{file}.ext")),
        ]);
        (
            self.dir.path.join(format!("{file}.pem")),
            self.dir.path.join(format!("{file}.key")),
        )
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A daemon delivering directly, asking `dns`, connecting to MX hosts on `port`.
fn mx_daemon(dns: &Dns, port: u16, tweak: impl FnOnce(&mut DaemonConfig)) -> Daemon {
    let mut cfg = DaemonConfig::new(port);
    cfg.set("outbound", "relay", &q("mx"));
    cfg.set("outbound", "dns_server", &q(&dns.addr.to_string()));
    cfg.set("outbound", "mx_port", &port.to_string());
    cfg.set("outbound", "timeout", &q("10s"));
    tweak(&mut cfg);
    Daemon::with_config(cfg)
}

/// The ticket page in Debian's chromium (tests/peers/web_evidence.py): the evidence items as
/// shown, script errors, overflow; screenshots under target/web-screenshots/mx/.
fn browse_evidence(d: &Daemon, id: &str) -> Value {
    let out_dir = repo_root().join("target/web-screenshots/mx");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(python())
        .arg(peer_script("web_evidence.py"))
        .args([&common::web::origin(d), common::web::PASSWORD, id])
        .arg(&out_dir)
        .output()
        .expect("run tests/peers/web_evidence.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .unwrap_or_else(|| {
            panic!(
                "web_evidence.py: no report: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

/// `customer` writes a new ticket (with `cc` in Cc); returns its id.
fn customer_writes(d: &Daemon, customer: &str, cc: &[&str], tag: &str) -> String {
    let cc_header = format!("Cc: {}", cc.join(", "));
    let extra: Vec<&str> = if cc.is_empty() {
        Vec::new()
    } else {
        vec![cc_header.as_str()]
    };
    let raw = mail(
        &format!("Customer <{customer}>"),
        "Where is my order?",
        &format!("<{tag}@customer.example>"),
        &extra,
        "It has not arrived.\n",
    );
    d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw))
}

/// Every delivery evidence entry of the ticket's messages.
fn evidence(d: &Daemon, id: &str) -> Vec<Value> {
    d.ticket(id)["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|m| m["delivery"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn wait_evidence(d: &Daemon, id: &str, n: usize) -> Vec<Value> {
    wait_until(
        SECS_30,
        &format!("{n} delivery evidence of ticket {id}"),
        || {
            let e = evidence(d, id);
            (e.len() >= n).then_some(e)
        },
    )
}

fn events_of(d: &Daemon, id: &str, kind: &str) -> Vec<String> {
    d.ticket(id)["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["kind"] == kind)
        .filter_map(|e| e["detail"].as_str().map(str::to_string))
        .collect()
}

fn wait_event(d: &Daemon, id: &str, kind: &str) -> String {
    wait_until(SECS_30, &format!("a {kind} event on ticket {id}"), || {
        events_of(d, id, kind).into_iter().next()
    })
}

#[test]
fn mx_hosts_are_tried_by_preference_and_the_acceptance_is_evidence() {
    let port = port_on_both();
    // The better MX (lower preference) is on .3; .2 is the backup.
    let dns = Dns::start(
        &Zone::new()
            .mx("pref.test", "mx2.pref.test", 20)
            .mx("pref.test", "mx1.pref.test", 10)
            .host("mx1.pref.test", "127.0.0.3")
            .host("mx2.pref.test", "127.0.0.2"),
    );
    let mut primary = MxHost::start("127.0.0.3", port, HostOpts::default());
    let backup = MxHost::start("127.0.0.2", port, HostOpts::default());
    let d = mx_daemon(&dns, port, |_| {});

    let id = customer_writes(&d, "alice@pref.test", &[], "pref-1");
    let got = primary.wait_for(1);
    let ack = &got[0];
    assert_eq!(
        header(ack, "X-RcptTo").as_deref(),
        Some("alice@pref.test"),
        "the acknowledgement went to the preferred MX"
    );
    let ev = wait_evidence(&d, &id, 1);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = &ev[0];
    assert_eq!(e["route"], "mx", "{e}");
    assert_eq!(e["host"], "mx1.pref.test", "{e}");
    assert_eq!(e["ip"], "127.0.0.3", "{e}");
    assert_eq!(e["rcpts"], json!(["alice@pref.test"]), "{e}");
    let qid = header(ack, "X-Queue-Id").unwrap();
    assert_eq!(e["queue_id"], qid.as_str(), "{e}");
    assert_eq!(e["reply"], format!("250 2.0.0 Ok: queued as {qid}"), "{e}");
    assert_eq!(e["tls"], Value::Null, "the host offers no STARTTLS: {e}");
    assert_eq!(e["policy"], "opportunistic", "{e}");
    assert!(backup.messages().is_empty(), "nothing at the backup MX");
    let delivered = wait_event(&d, &id, "delivered");
    assert!(
        delivered.contains("mx1.pref.test [127.0.0.3] (no TLS)"),
        "{delivered}"
    );

    // The preferred MX is down: the next one by preference takes the mail.
    primary.stop();
    let id2 = customer_writes(&d, "bob@pref.test", &[], "pref-2");
    let got = backup.wait_for(1);
    assert_eq!(
        header(&got[0], "X-RcptTo").as_deref(),
        Some("bob@pref.test")
    );
    let ev = wait_evidence(&d, &id2, 1);
    assert_eq!(ev[0]["host"], "mx2.pref.test", "{ev:?}");
    assert_eq!(ev[0]["ip"], "127.0.0.2", "{ev:?}");
}

#[test]
fn a_host_answering_4xx_is_retried_and_the_message_delivered_once() {
    let port = port_on_both();
    let dns = Dns::start(
        &Zone::new()
            .mx("grey.test", "mx.grey.test", 10)
            .host("mx.grey.test", "127.0.0.2"),
    );
    let host = MxHost::start(
        "127.0.0.2",
        port,
        HostOpts {
            tempfail: 1,
            ..HostOpts::default()
        },
    );
    // Signed mail: the evidence names the selector.
    let keys = TempDir::new("mxkeys");
    let key = keys.path.join("mx1.pem");
    let out = Command::new(daemon_bin())
        .args([
            "dkim-keygen",
            "--selector",
            "mx1",
            "--domain",
            "example.test",
        ])
        .args(["--algorithm", "ed25519", "--key-file"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = mx_daemon(&dns, port, |c| {
        c.extra.push_str(&format!(
            "\n[dkim]\n[[dkim.selector]]\nname = \"mx1\"\nkey_file = {}\n",
            q(&key.to_string_lossy())
        ));
    });
    let id = customer_writes(&d, "carol@grey.test", &[], "grey-1");
    host.wait_for(1);
    wait_evidence(&d, &id, 1);
    d.wait_idle(SECS_30);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(host.messages().len(), 1, "delivered once");
    let log = host.log();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("MAIL ")).count(),
        2,
        "refused with 451 once, then accepted: {log}"
    );
    assert_eq!(events_of(&d, &id, "delivered").len(), 1);
    assert!(events_of(&d, &id, "delivery_failed").is_empty());
    let ev = evidence(&d, &id);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["dkim_selector"], "mx1", "{ev:?}");
    assert!(
        header(&host.messages()[0], "DKIM-Signature").is_some_and(|h| h.contains("s=mx1")),
        "the delivered message carries the signature"
    );
}

#[test]
fn a_5xx_for_one_recipient_is_final_for_it_and_the_others_get_the_message() {
    let port = port_on_both();
    let dns = Dns::start(
        &Zone::new()
            .mx("multi.test", "mx.multi.test", 10)
            .host("mx.multi.test", "127.0.0.2"),
    );
    let host = MxHost::start(
        "127.0.0.2",
        port,
        HostOpts {
            reject: vec!["bob@multi.test"],
            ..HostOpts::default()
        },
    );
    // One delivery at a time to the domain: the copies follow one another over one
    // connection instead of opening one each.
    let d = mx_daemon(&dns, port, |c| {
        c.set("outbound", "domain_concurrency", "1");
    });
    let id = customer_writes(
        &d,
        "alice@multi.test",
        &["bob@multi.test", "carol@multi.test"],
        "multi-1",
    );
    host.wait_for(1); // the acknowledgement
    d.wait_idle(SECS_30);
    let (status, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{id}/reply"),
        Some(API_TOKEN),
        Some(&json!({"agent": "alice", "body": "It ships today."}).to_string()),
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Each participant's copy is its own job: alice's and carol's arrive, bob's is refused.
    let replies = wait_until(SECS_30, "the replies at the MX host", || {
        let got: Vec<String> = host
            .messages()
            .into_iter()
            .filter(|m| body_text(m).contains("It ships today"))
            .filter_map(|m| header(&m, "X-RcptTo"))
            .collect();
        (got.len() >= 2).then_some(got)
    });
    let mut replies = replies;
    replies.sort();
    assert_eq!(replies, ["alice@multi.test", "carol@multi.test"]);
    let failed = wait_event(&d, &id, "delivery_failed");
    assert!(
        failed.starts_with("bob@multi.test: ") && failed.contains("550 5.1.1"),
        "{failed}"
    );
    assert!(!failed.contains("gave up after"), "final at once: {failed}");
    // Not tried again: one RCPT for bob (the reply; the acknowledgement went to alice only).
    d.wait_idle(SECS_30);
    std::thread::sleep(Duration::from_millis(2500));
    let log = host.log();
    assert_eq!(
        log.lines().filter(|l| *l == "RCPT bob@multi.test").count(),
        1,
        "the 550 is final, not retried: {log}"
    );
    assert_eq!(events_of(&d, &id, "delivery_failed").len(), 1);
    // Four transactions (the acknowledgement, three copies); the connection is reused,
    // and replaced only after the one whose every recipient was refused.
    let connections = log.lines().filter(|l| l.starts_with("EHLO ")).count();
    let transactions = log.lines().filter(|l| l.starts_with("MAIL ")).count();
    assert_eq!(transactions, 4, "{log}");
    assert!(connections <= 2, "{connections} connections: {log}");
    let ev = evidence(&d, &id);
    let mut rcpts: Vec<&str> = ev
        .iter()
        .flat_map(|e| e["rcpts"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    rcpts.sort();
    // The ticket's messages are the acknowledgement and the reply's record, which is the
    // requester's copy (the Cc copies are stored apart, under their own sequence numbers).
    assert_eq!(
        rcpts,
        ["alice@multi.test", "alice@multi.test"],
        "the acknowledgement and the reply: {ev:?}"
    );
}

#[test]
fn starttls_evidence_says_whether_the_certificate_verified() {
    let port = port_on_both();
    let pki = Pki::new();
    let (cert, key) = pki.server("mx", &["mx.tls.test"]);
    let dns = Dns::start(
        &Zone::new()
            .mx("tls.test", "mx.tls.test", 10)
            .host("mx.tls.test", "127.0.0.2"),
    );
    let host = MxHost::start(
        "127.0.0.2",
        port,
        HostOpts {
            tls: Some((cert, key)),
            ..HostOpts::default()
        },
    );

    // The private CA is trusted: verified.
    let ca = pki.ca().to_string_lossy().into_owned();
    let d = mx_daemon(&dns, port, |c| {
        c.set("outbound", "tls_ca_file", &q(&ca));
    });
    let id = customer_writes(&d, "dora@tls.test", &[], "tls-1");
    let ev = wait_evidence(&d, &id, 1);
    let tls = &ev[0]["tls"];
    assert!(
        tls["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{ev:?}"
    );
    assert!(
        tls["cipher"].as_str().is_some_and(|c| c.starts_with("TLS")),
        "{ev:?}"
    );
    assert_eq!(tls["verified"], true, "{ev:?}");
    // The ticket page says the same under the message.
    common::web::set_passwords(&d);
    let cookie = common::web::login_as(&d, "alice");
    let page = common::web::http(
        d.web_port,
        "GET",
        &format!("/tickets/{id}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(page.status, 200);
    let qid = ev[0]["queue_id"].as_str().unwrap();
    assert!(
        page.body
            .contains(r#"<ul class="evidence" aria-label="Delivery evidence">"#)
            && page
                .body
                .contains("accepted by <span class=\"host\">mx.tls.test</span> [127.0.0.2]")
            && page.body.contains(&format!("queue id <code>{qid}</code>"))
            && page.body.contains("certificate verified"),
        "{}",
        page.body
    );
    // In the browser: shown, wrapped inside its message, no script or CSP error.
    let report = browse_evidence(&d, &id);
    assert_eq!(report["script_errors"], json!([]), "{report}");
    let shown = report["items"].as_array().unwrap();
    assert!(
        shown.iter().any(|i| {
            i.as_str().is_some_and(|t| {
                t.contains("accepted by mx.tls.test [127.0.0.2]")
                    && t.contains("certificate verified")
            })
        }),
        "{report}"
    );
    assert_eq!(report["overflow"], json!([]), "{report}");
    drop(d);
    assert!(
        host.log()
            .lines()
            .any(|l| l.starts_with("DATA ") && l.contains(" tls ")),
        "the message went over TLS: {}",
        host.log()
    );

    // Not trusted (the system's roots do not know this CA): still delivered over TLS
    // (opportunistic), recorded as not verified, with why.
    let d = mx_daemon(&dns, port, |_| {});
    let id = customer_writes(&d, "dora@tls.test", &[], "tls-2");
    let ev = wait_evidence(&d, &id, 1);
    let tls = &ev[0]["tls"];
    assert!(
        tls["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{ev:?}"
    );
    assert_eq!(tls["verified"], false, "{ev:?}");
    assert!(
        tls["verify_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{ev:?}"
    );
    host.wait_for(2);
}

#[test]
fn require_policy_keeps_mail_from_a_host_without_starttls() {
    let port = port_on_both();
    let dns = Dns::start(
        &Zone::new()
            .mx("strict.test", "mx.strict.test", 10)
            .host("mx.strict.test", "127.0.0.2"),
    );
    let host = MxHost::start("127.0.0.2", port, HostOpts::default());
    let d = mx_daemon(&dns, port, |c| {
        c.set("outbound", "tls_policy", r#"{ "strict.test" = "require" }"#);
        c.set("outbound", "lifetime", &q("3s"));
    });
    let id = customer_writes(&d, "erin@strict.test", &[], "strict-1");
    let failed = wait_event(&d, &id, "delivery_failed");
    assert!(
        failed.contains("gave up after")
            && failed.contains("offers no STARTTLS and the domain's TLS policy requires it"),
        "{failed}"
    );
    assert!(host.messages().is_empty());
    let log = host.log();
    assert!(log.contains("EHLO"), "the host was asked: {log}");
    assert!(!log.contains("MAIL "), "nothing sent in clear text: {log}");
    assert!(evidence(&d, &id).is_empty());
}

#[test]
fn a_domain_without_mx_is_its_own_mail_host() {
    let port = port_on_both();
    let dns = Dns::start(
        &Zone::new()
            .authoritative("bare.test")
            .host("bare.test", "127.0.0.3"),
    );
    let host = MxHost::start("127.0.0.3", port, HostOpts::default());
    let d = mx_daemon(&dns, port, |_| {});
    let id = customer_writes(&d, "ivan@bare.test", &[], "bare-1");
    host.wait_for(1);
    let ev = wait_evidence(&d, &id, 1);
    assert_eq!(ev[0]["route"], "implicit-mx", "{ev:?}");
    assert_eq!(ev[0]["host"], "bare.test", "{ev:?}");
    assert_eq!(ev[0]["ip"], "127.0.0.3", "{ev:?}");
}

#[test]
fn a_null_mx_is_a_permanent_failure() {
    let port = port_on_both();
    let dns = Dns::start(&Zone::new().mx("nomail.test", ".", 0));
    let d = mx_daemon(&dns, port, |_| {});
    let id = customer_writes(&d, "frank@nomail.test", &[], "null-1");
    let failed = wait_event(&d, &id, "delivery_failed");
    assert!(
        failed.contains("nomail.test publishes a null MX (RFC 7505)"),
        "{failed}"
    );
    assert!(
        !failed.contains("gave up after"),
        "final at the first attempt, not retried: {failed}"
    );
}

#[test]
fn mta_sts_enforce_delivers_only_to_matching_hosts_over_verified_tls() {
    let port = port_on_both();
    let sts_port = port_on_both();
    let pki = Pki::new();
    let (mx_cert, mx_key) = pki.server("mx", &["mx.sts.test", "mx.sts2.test"]);
    let (web_cert, web_key) = pki.server("web", &["mta-sts.sts.test", "mta-sts.sts2.test"]);
    let dns = Dns::start(
        &Zone::new()
            .mx("sts.test", "mx.sts.test", 10)
            .host("mx.sts.test", "127.0.0.2")
            .txt("_mta-sts.sts.test", "v=STSv1; id=20261203")
            .host("mta-sts.sts.test", "127.0.0.3")
            // sts2.test's policy names another host than its MX.
            .mx("sts2.test", "mx.sts2.test", 10)
            .host("mx.sts2.test", "127.0.0.2")
            .txt("_mta-sts.sts2.test", "v=STSv1; id=1")
            .host("mta-sts.sts2.test", "127.0.0.3"),
    );
    let host = MxHost::start(
        "127.0.0.2",
        port,
        HostOpts {
            tls: Some((mx_cert, mx_key)),
            ..HostOpts::default()
        },
    );
    // One policy host serves both domains' policies; the Host header tells them apart
    // only in the log, so the policy names both MX patterns the test expects to match.
    let policy_dir = TempDir::new("sts");
    let policy = policy_dir.path.join("policy.txt");
    std::fs::write(
        &policy,
        "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmx: *.elsewhere.test\r\nmax_age: 86400\r\n",
    )
    .unwrap();
    let _web = spawn_peer(
        "https_policy.py",
        &[
            "--listen".into(),
            "127.0.0.3".into(),
            "--port".into(),
            sts_port.to_string(),
            "--cert".into(),
            web_cert.to_string_lossy().into_owned(),
            "--key".into(),
            web_key.to_string_lossy().into_owned(),
            "--policy".into(),
            policy.to_string_lossy().into_owned(),
        ],
        &policy_dir.path.join("stderr"),
        "127.0.0.3",
        sts_port,
    );
    let ca = pki.ca().to_string_lossy().into_owned();
    let d = mx_daemon(&dns, port, |c| {
        c.set("outbound", "tls_ca_file", &q(&ca));
        c.set("outbound", "mta_sts_port", &sts_port.to_string());
        c.set("outbound", "lifetime", &q("4s"));
    });

    let id = customer_writes(&d, "gina@sts.test", &[], "sts-1");
    let ev = wait_evidence(&d, &id, 1);
    assert_eq!(ev[0]["policy"], "mta-sts enforce", "{ev:?}");
    assert_eq!(ev[0]["tls"]["verified"], true, "{ev:?}");
    let fetched = std::fs::read_to_string(policy.with_extension("txt.log")).unwrap_or_default();
    assert!(
        fetched.contains("GET /.well-known/mta-sts.txt Host=mta-sts.sts.test"),
        "{fetched}"
    );

    // mx.sts2.test is not in the policy: the message does not go there.
    let id2 = customer_writes(&d, "hugo@sts2.test", &[], "sts-2");
    let failed = wait_event(&d, &id2, "delivery_failed");
    assert!(
        failed.contains("no MX host (mx.sts2.test) matches its MTA-STS policy"),
        "{failed}"
    );
    assert!(
        !host
            .messages()
            .iter()
            .any(|m| header(m, "X-RcptTo").is_some_and(|r| r.contains("sts2.test"))),
        "nothing delivered to a host the policy does not name"
    );
}

#[test]
fn first_response_counts_from_delivery_where_the_sla_policy_says_so() {
    let port = port_on_both();
    let dns = Dns::start(
        &Zone::new()
            .mx("slow.test", "mx.slow.test", 10)
            .host("mx.slow.test", "127.0.0.2"),
    );
    let hold_dir = TempDir::new("hold");
    let hold = hold_dir.path.join("hold");
    let host = MxHost::start(
        "127.0.0.2",
        port,
        HostOpts {
            hold_file: Some(hold.clone()),
            ..HostOpts::default()
        },
    );
    let d = mx_daemon(&dns, port, |_| {});
    // The shipped "standard" policy (the file's last table) counts from delivery.
    let sla = d.dir.path.join("rules/sla.toml");
    let mut text = std::fs::read_to_string(&sla).unwrap();
    text.push_str("first_response_on = \"delivered\"\n");
    std::fs::write(&sla, text).unwrap();
    wait_until(SECS_30, "rules reloaded", || {
        d.log().contains("rules reloaded").then_some(())
    });

    let id = customer_writes(&d, "jane@slow.test", &[], "slow-1");
    wait_evidence(&d, &id, 1); // the acknowledgement
    assert_eq!(d.ticket(&id)["sla"]["policy"], "standard");

    // The customer's server defers the reply: answered, but not yet a first response.
    std::fs::write(&hold, b"").unwrap();
    let (status, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{id}/reply"),
        Some(API_TOKEN),
        Some(&json!({"agent": "alice", "body": "On its way."}).to_string()),
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    wait_until(SECS_30, "the reply deferred by the MX host", || {
        host.log().contains("MAIL ").then_some(()).filter(|_| {
            host.log()
                .lines()
                .filter(|l| l.starts_with("MAIL "))
                .count()
                >= 2
        })
    });
    let t = d.ticket(&id);
    assert_eq!(t["sla"]["first_response_at"], Value::Null, "{}", t["sla"]);

    // Accepted: the first response is the moment the server took it.
    std::fs::remove_file(&hold).unwrap();
    let ev = wait_evidence(&d, &id, 2);
    let t = d.ticket(&id);
    assert_eq!(
        t["sla"]["first_response_at"], ev[1]["at"],
        "{} {ev:?}",
        t["sla"]
    );
}

#[test]
fn smarthost_deliveries_keep_their_evidence_too() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let id = customer_writes(&d, "kim@customer.example", &[], "relay-1");
    sink.nth_to("kim@customer.example", 1);
    let ev = wait_evidence(&d, &id, 1);
    let e = &ev[0];
    assert_eq!(e["route"], "smarthost", "{e}");
    assert_eq!(e["host"], "127.0.0.1", "{e}");
    assert_eq!(e["rcpts"], json!(["kim@customer.example"]), "{e}");
    assert!(
        e["reply"].as_str().is_some_and(|r| r.starts_with("250")),
        "aiosmtpd's own reply: {e}"
    );
    assert_eq!(e["tls"], Value::Null, "{e}");
    assert_eq!(e["policy"], Value::Null, "{e}");
}
