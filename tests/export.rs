//! `postdesk export` round trip: every ticket comes out as one JSON line with
//! its messages and events, and every message byte for byte in an mboxrd
//! file that Python's `mailbox` reads back (tests/peers/read_mbox.py),
//! `From ` lines in bodies quoted and restored.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

fn export(d: &Daemon, format: &str, out: &std::path::Path, extra: &[&str]) -> String {
    let o = Command::new(daemon_bin())
        .args(["export", "-c"])
        .arg(&d.config_path)
        .args(["--format", format, "-o"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "export failed: {err}");
    err
}

#[test]
fn export_json_and_mbox_round_trip_every_ticket_and_message() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let bodies = [
        "Plain question.\n",
        "From the start of a line\n>From already quoted\n\nFrom again.\n",
        "Last one, with a trailing blank line.\n\n",
    ];
    let mut seqs = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        let from = format!("x{n}@customer.example");
        seqs.push(d.send_ok(
            &from,
            &[SUPPORT],
            &mail(
                &format!("X {n} <{from}>"),
                &format!("Export {n}"),
                &format!("<export-{n}@customer.example>"),
                &[],
                body,
            ),
        ));
    }
    d.wait_processed(std::time::Duration::from_secs(30));
    let dir = TempDir::new("export");

    // JSON lines: one per ticket, each with its messages and events.
    let json = dir.path.join("tickets.jsonl");
    export(&d, "json", &json, &[]);
    let lines: Vec<Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len() as u64, d.tickets_total());
    for (n, seq) in seqs.iter().enumerate() {
        let id = d.ticket_of(*seq);
        let t = lines
            .iter()
            .find(|t| t["id"] == id.as_str())
            .unwrap_or_else(|| panic!("ticket {id} not exported"));
        assert_eq!(t["subject"], format!("Export {n}"));
        assert!(!t["events"].as_array().unwrap().is_empty());
        assert_eq!(t["messages"][0]["seq"], seq.to_string());
    }

    // mbox: Python's mailbox reads back every message, bytes intact.
    let mbox = dir.path.join("all.mbox");
    export(&d, "mbox", &mbox, &[]);
    let out = Command::new(python())
        .arg(peer_script("read_mbox.py"))
        .arg(&mbox)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // In ticket order, every message of each ticket: the customers' and our acknowledgements.
    let mut tickets = lines.clone();
    tickets.sort_by_key(|t| t["id"].as_str().unwrap().parse::<u64>().unwrap());
    let expected: Vec<(String, String)> = tickets
        .iter()
        .flat_map(|t| t["messages"].as_array().unwrap().clone())
        .map(|m| {
            (
                m["seq"].as_str().unwrap().to_string(),
                m["from"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        expected.len() > seqs.len(),
        "acknowledgements are exported too"
    );
    assert_eq!(
        read.len(),
        expected.len(),
        "one mbox message per ticket message"
    );
    for ((seq, from), got) in expected.iter().zip(&read) {
        let (st, raw) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
        assert_eq!(st, 200);
        let want = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
        let hex = got["raw"].as_str().unwrap();
        let got_raw = String::from_utf8(
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect(),
        )
        .unwrap();
        assert_eq!(
            got_raw.trim_end_matches('\n'),
            want.trim_end_matches('\n'),
            "message {seq}"
        );
        let sender = bare_address(from);
        assert!(
            got["from_"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{sender} ")),
            "From_ line {} for {from}",
            got["from_"]
        );
    }
    for seq in &seqs {
        assert!(expected.iter().any(|(s, _)| *s == seq.to_string()));
    }
    // The quoting is really there in the file.
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert!(text.contains("\n>From the start of a line\n>>From already quoted\n"));

    // One ticket only.
    let one = dir.path.join("one.mbox");
    let id = d.ticket_of(seqs[1]);
    let err = export(&d, "mbox", &one, &["--ticket", &id]);
    assert!(err.contains("exported 1 tickets, 2 messages"), "{err}");
}
