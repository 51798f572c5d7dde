//! SMTP resource limits through the real binary: the memory budget of messages in flight,
//! connections per client address, and the whole-session time limit.

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

/// Runs `tests/peers/limits.py` (Python smtplib); one JSON value per output line.
fn limits_py(args: &[&str]) -> Vec<Value> {
    let out = Command::new(python())
        .arg(peer_script("limits.py"))
        .args(args)
        .output()
        .expect("run limits.py");
    assert!(
        out.status.success(),
        "limits.py {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("limits.py line {l:?}: {e}")))
        .collect()
}

/// A kibibyte figure from /proc/PID/status (`VmHWM`: peak resident memory).
fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// Reads one reply line (up to CRLF) from a raw connection.
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(1) => line.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_string()
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect SMTP");
    s.set_read_timeout(Some(SECS_30)).unwrap();
    s
}

const MIB: u64 = 1024 * 1024;

#[test]
fn concurrent_large_messages_beyond_the_memory_budget_get_452_and_nothing_acknowledged_is_lost() {
    const SESSIONS: usize = 24;
    const SIZE: u64 = 6 * MIB;
    const BUDGET: u64 = 16 * MIB;
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("smtp", "max_message_size", &(8 * MIB).to_string());
        c.set("smtp", "max_inflight_bytes", &BUDGET.to_string());
    });
    let pid = d.pid().expect("daemon pid");
    let before = proc_status_kib(pid, "VmHWM");
    let port = d.smtp_port.to_string();

    // 24 sessions hold a 6 MiB message each at the same moment (144 MiB), under a 16 MiB budget.
    let first = limits_py(&[
        "concurrent",
        "127.0.0.1",
        &port,
        &SESSIONS.to_string(),
        &SIZE.to_string(),
    ]);
    assert_eq!(first.len(), SESSIONS);
    let peak_kib = proc_status_kib(pid, "VmHWM");
    eprintln!(
        "VmHWM {} MiB before the burst, {} MiB after",
        before / 1024,
        peak_kib / 1024
    );
    let mut accepted = Vec::new();
    let mut deferred = Vec::new();
    for r in &first {
        let code = r["code"].as_u64();
        let text = r["text"].as_str().unwrap_or_default();
        match code {
            Some(250) => accepted.push(queued_as(text).unwrap_or_else(|| panic!("{r}"))),
            Some(452) => {
                assert!(text.starts_with("4.3.1"), "452 without 4.3.1: {r}");
                assert!(
                    !r["closed"].as_bool().unwrap_or(true),
                    "452 closed the session: {r}"
                );
                deferred.push(r["i"].as_u64().unwrap().to_string());
            }
            _ => panic!("a session got neither 250 nor 452: {r}\n{}", d.log_tail(30)),
        }
    }
    assert!(
        !deferred.is_empty(),
        "all {SESSIONS} sessions were accepted at once: no memory budget ({} accepted)",
        accepted.len()
    );
    assert!(
        !accepted.is_empty(),
        "the budget admitted no message at all"
    );
    // The daemon's peak memory stays near the budget, not near 24 × 8 MiB of buffers (about
    // 220 MiB measured without the budget, 70 MiB with it). Generous margin: the spool
    // commit, redb and the processor hold copies of the accepted messages, and the
    // allocator keeps freed memory per thread.
    let grown = (peak_kib.saturating_sub(before)) * 1024;
    assert!(
        grown < BUDGET + 112 * MIB,
        "peak RSS grew by {} MiB during the burst (budget {} MiB)",
        grown / MIB,
        BUDGET / MIB
    );

    // A retrying MTA sends the deferred messages again, one after the other: all accepted.
    let mut args = vec!["retry", "127.0.0.1", &port];
    let size = SIZE.to_string();
    args.push(&size);
    args.extend(deferred.iter().map(String::as_str));
    for r in limits_py(&args) {
        assert_eq!(r["code"].as_u64(), Some(250), "retry not accepted: {r}");
        accepted.push(queued_as(r["text"].as_str().unwrap()).unwrap());
    }
    assert_eq!(accepted.len(), SESSIONS);
    // Every acknowledged message became a ticket, and the daemon is still up.
    for seq in &accepted {
        let m = d.wait_message(*seq, SECS_60);
        assert!(m["ticket"].is_string(), "message {seq} has no ticket: {m}");
    }
    assert_eq!(d.tickets_total(), SESSIONS as u64);
    let (st, raw) = d.api_get_raw(&format!("/api/v1/messages/{}/raw", accepted[0]));
    assert_eq!(st, 200);
    assert!(raw.len() as u64 > SIZE - 1024 && (raw.len() as u64) <= SIZE);
}

#[test]
fn connections_beyond_the_per_address_limit_get_421_while_other_addresses_are_served() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("smtp", "max_connections_per_ip", "3");
    });
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = connect(d.smtp_port);
            let greeting = read_line(&mut s);
            assert!(greeting.starts_with("220 "), "{greeting}");
            s
        })
        .collect();

    let mut fourth = connect(d.smtp_port);
    let line = read_line(&mut fourth);
    assert!(line.starts_with("421 4.7.0 "), "4th connection: {line:?}");
    let mut rest = Vec::new();
    let _ = fourth.read_to_end(&mut rest);
    assert!(rest.is_empty(), "more after 421: {rest:?}");

    // Another client address (127.0.0.2) is still served in full.
    let (ok, out) = swaks(
        d.smtp_port,
        &[
            "--local-interface",
            "127.0.0.2",
            "--from",
            "other@customer.example",
            "--to",
            SUPPORT,
            "--header",
            "Subject: from another address",
            "--body",
            "Hello.",
        ],
    );
    assert!(ok, "127.0.0.2 was not served:\n{out}");
    let seq = queued_as(&out).unwrap_or_else(|| panic!("no 'queued as':\n{out}"));
    assert!(d.wait_message(seq, SECS_30)["ticket"].is_string());

    // Once one of 127.0.0.1's sessions ends, 127.0.0.1 gets a slot again.
    let mut s = held.pop().unwrap();
    s.write_all(b"QUIT\r\n").unwrap();
    assert!(read_line(&mut s).starts_with("221 "));
    wait_until(SECS_30, "a slot for 127.0.0.1 again", || {
        let mut s = connect(d.smtp_port);
        let greeting = read_line(&mut s);
        if greeting.starts_with("220 ") {
            return Some(());
        }
        assert!(greeting.starts_with("421 4.7.0 "), "{greeting}");
        None
    });
}

#[test]
fn noop_keepalives_are_cut_off_at_the_session_time_limit() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("smtp", "session_timeout", &q("2s"));
    });
    // A NOOP every 0.2 s stays well inside the 5 minute command timeout; without a
    // session limit the client would be served for all 300 of them (a minute).
    let r = &limits_py(&["noop", "127.0.0.1", &d.smtp_port.to_string(), "0.2", "300"])[0];
    assert_eq!(r["code"].as_u64(), Some(421), "never cut off: {r}");
    assert!(
        r["text"].as_str().unwrap_or_default().starts_with("4.4.2"),
        "{r}"
    );
    assert!(r["closed"].as_bool().unwrap_or(false), "not closed: {r}");
    let noops = r["noops"].as_u64().unwrap();
    assert!(
        (1..300).contains(&noops),
        "{noops} NOOPs answered before the cut"
    );
    // The daemon goes on serving new sessions.
    let seq = d.send_ok(
        "ann@customer.example",
        &[SUPPORT],
        &mail(
            "Ann <ann@customer.example>",
            "after the cut",
            "<after-cut@customer.example>",
            &[],
            "Hello.\n",
        ),
    );
    assert!(d.wait_message(seq, SECS_30)["ticket"].is_string());
}
