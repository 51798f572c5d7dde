//! Durability: what got 250 survives SIGTERM and kill -9; outbound mail waits for a relay that
//! is down; the crash test kills the daemon under load from 20 concurrent smtplib clients.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mid(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn customer_mail(i: usize, tag: &str) -> (String, Vec<u8>) {
    let addr = format!("c{i}@{tag}.example");
    let raw = mail(
        &format!("Customer {i} <{addr}>"),
        &format!("{tag} question {i}"),
        &format!("<{tag}-{i}@customer.example>"),
        &[],
        &format!("Question {i} about {tag}.\n"),
    );
    (addr, raw)
}

#[test]
fn data_survives_sigterm_restart() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let mut seqs = Vec::new();
    for i in 0..5 {
        let (addr, raw) = customer_mail(i, "term");
        seqs.push((d.send_ok(&addr, &[SUPPORT], &raw), raw));
    }
    let status = d.stop();
    assert!(
        status.success(),
        "SIGTERM should exit cleanly, got {status}; log:\n{}",
        d.log_tail(30)
    );
    d.restart();
    d.wait_idle(SECS_60);
    let mut tickets = BTreeSet::new();
    for (seq, raw) in &seqs {
        tickets.insert(d.ticket_of(*seq));
        let (st, back) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
        assert_eq!(st, 200);
        assert!(back == *raw, "message {seq} not byte-exact after restart");
    }
    assert_eq!(tickets.len(), 5);
    assert_eq!(d.tickets_total(), 5);
    // Still takes mail, with a seq after the old ones.
    let (addr, raw) = customer_mail(99, "term");
    let seq = d.send_ok(&addr, &[SUPPORT], &raw);
    assert!(
        seq > seqs.iter().map(|s| s.0).max().unwrap(),
        "seq {seq} reused after restart"
    );
    d.ticket_of(seq);
    d.wait_idle(SECS_60);
    assert_eq!(
        sink.count(),
        6,
        "one acknowledgement per ticket, none twice"
    );
}

#[test]
fn data_survives_kill_9() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let mut seqs = Vec::new();
    for i in 0..10 {
        let (addr, raw) = customer_mail(i, "kill");
        seqs.push(d.send_ok(&addr, &[SUPPORT], &raw));
    }
    // No waiting for processing: whatever got 250 must be in the spool.
    d.kill9();
    d.restart();
    d.wait_idle(SECS_60);
    let tickets: BTreeSet<String> = seqs.iter().map(|s| d.ticket_of(*s)).collect();
    assert_eq!(
        tickets.len(),
        10,
        "every accepted message made its own ticket"
    );
    assert_eq!(d.tickets_total(), 10);
    // Outbound delivery is at-least-once: an ack the relay took just before the kill may be
    // delivered again after the restart, but only as the same message (same Message-ID),
    // never as a second acknowledgement.
    for i in 0..10 {
        let addr = format!("c{i}@kill.example");
        let acks = sink.messages_to(&addr);
        assert!(!acks.is_empty(), "{addr} was never acknowledged");
        let ids: BTreeSet<String> = acks
            .iter()
            .map(|m| header(m, "Message-ID").unwrap_or_default())
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "{addr} got {} different acknowledgements: {ids:?}",
            ids.len()
        );
    }
}

#[test]
fn acknowledgement_waits_for_relay_and_is_delivered_later() {
    let mut sink = Sink::start();
    let d = Daemon::start(&sink);
    sink.stop();
    let (addr, raw) = customer_mail(1, "relay");
    let seq = d.send_ok(&addr, &[SUPPORT], &raw);
    let id = d.ticket_of(seq);
    // The ack is queued and cannot be delivered while the relay is down.
    wait_until(SECS_30, "the acknowledgement to be queued", || {
        (d.health()["outbound_queued"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3)); // a few retries (retry_initial 1s, retry_max 2s) fail
    assert_eq!(
        d.health()["outbound_queued"].as_u64(),
        Some(1),
        "still queued while the relay is down"
    );
    sink.start_again();
    let acks = sink.wait_for(1, SECS_60);
    assert_eq!(header(&acks[0], "X-RcptTo").as_deref(), Some(addr.as_str()));
    assert!(
        header(&acks[0], "Subject")
            .unwrap_or_default()
            .contains(&format!("[#{id}]"))
    );
    d.wait_idle(SECS_60);
    assert_eq!(sink.count(), 1, "delivered exactly once");
    assert!(event_kinds(&d.ticket(&id)).iter().any(|k| k == "delivered"));
}

/// The crash test: 20 connections, 2,000 distinct messages, kill -9 part-way, restart.
#[test]
fn crash_under_load_loses_nothing_that_got_250() {
    const TOTAL: usize = 2000;
    const KILL_AFTER: usize = 700;
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let out = d.dir.path.join("flood.jsonl");
    let mut flood = Command::new(python())
        .arg(peer_script("flood.py"))
        .args([
            "127.0.0.1",
            &d.smtp_port.to_string(),
            &TOTAL.to_string(),
            "20",
        ])
        .arg(&out)
        .arg("crash")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn flood.py");
    let count_ok = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"code\": 250"))
            .count()
    };
    let start = Instant::now();
    while count_ok() < KILL_AFTER {
        if let Ok(Some(st)) = flood.try_wait() {
            panic!(
                "flood.py ended ({st}) before {KILL_AFTER} messages were accepted; {} were",
                count_ok()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "only {} accepted after 600 s",
            count_ok()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    let st = flood.wait().unwrap();
    assert!(st.success(), "flood.py failed: {st}");

    let mut accepted: BTreeMap<u64, String> = BTreeMap::new();
    let mut failed = 0;
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["code"].as_u64() == Some(250) {
            let seq = v["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("250 without seq: {line}"));
            let prev = accepted.insert(seq, mid(v["message_id"].as_str().unwrap()));
            assert!(prev.is_none(), "seq {seq} given to two messages");
        } else {
            failed += 1;
        }
    }
    eprintln!(
        "crash test: {} accepted before/while kill -9, {failed} failed",
        accepted.len()
    );
    assert!(accepted.len() >= KILL_AFTER);
    assert_eq!(accepted.len() + failed, TOTAL);

    d.restart();
    d.wait_idle(Duration::from_secs(600));
    // Every seq that got 250 is a processed message in a ticket, with its own Message-ID.
    for (seq, message_id) in &accepted {
        let m = d.wait_message(*seq, SECS_30);
        assert!(m["ticket"].is_string(), "message {seq} has no ticket: {m}");
        assert_eq!(
            mid(m["message_id"].as_str().unwrap_or("")),
            *message_id,
            "seq {seq}: {m}"
        );
    }
    // Across all tickets: each accepted Message-ID in exactly one ticket, no Message-ID twice.
    let tickets = d.all_tickets();
    let mut seen: Vec<String> = Vec::new();
    let mut where_: BTreeMap<String, String> = BTreeMap::new();
    for t in &tickets {
        let id = id_string(&t["id"]).unwrap();
        let full = d.ticket(&id);
        for m in full["messages"].as_array().unwrap() {
            let m_id = mid(m["message_id"].as_str().unwrap_or(""));
            if !m_id.is_empty() {
                where_.insert(m_id.clone(), id.clone());
                seen.push(m_id);
            }
        }
    }
    let dups: Vec<(String, usize)> = counts(seen).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        dups.is_empty(),
        "Message-IDs stored more than once: {:?}",
        &dups[..dups.len().min(20)]
    );
    let missing: Vec<&String> = accepted
        .values()
        .filter(|m| !where_.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "{} accepted messages in no ticket, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(d.health()["status"] == "ok");
}
