//! `postdesk import mbox FILE` through the real binary and a running
//! daemon: a shared mailbox's history (the notmuch default corpus in
//! fixtures/threading, real threaded list mail; attribution in its
//! MANIFEST.md) becomes threaded tickets dated by the messages, nothing is
//! mailed to anyone (acknowledgements and agent notifications both on), a
//! malformed entry is reported and skipped, and a second import adds nothing.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// (file name, notmuch thread group) of every notmuch-default message, in
/// the manifest's order.
fn corpus() -> Vec<(String, String)> {
    let root = repo_root().join("fixtures/threading");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.md")).unwrap();
    manifest
        .lines()
        .filter(|l| l.starts_with("| notmuch-default/"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            let group = cols[4]
                .strip_prefix("thread group ")?
                .split_whitespace()
                .next()?;
            Some((cols[1].to_string(), group.to_string()))
        })
        .collect()
}

/// An mboxrd file of `files` (LF line ends, `From ` lines with the
/// sender, `>From ` escaping), written here independently of the reader
/// under test, with a malformed entry after the first `malformed_after`.
fn write_mbox(path: &Path, files: &[(String, String)], malformed_after: usize) -> usize {
    let root = repo_root().join("fixtures/threading");
    let mut out = String::new();
    let mut malformed_line = 0;
    for (i, (file, _)) in files.iter().enumerate() {
        if i == malformed_after {
            malformed_line = out.lines().count() + 1;
            out.push_str("From nobody@example.org Thu Nov 26 10:00:00 2026\n");
            out.push_str("this line is no header and the entry is no message\n\n");
        }
        let raw = std::fs::read(root.join(file)).unwrap();
        let text = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
        let sender = text
            .lines()
            .find_map(|l| l.strip_prefix("From: "))
            .and_then(|f| f.rsplit_once('<').map(|(_, a)| a.trim_end_matches('>')))
            .unwrap_or("unknown@example.org")
            .to_string();
        out.push_str(&format!("From {sender} Thu Nov 26 10:00:00 2026\n"));
        for line in text.lines() {
            if line.trim_start_matches('>').starts_with("From ") {
                out.push('>');
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
    malformed_line
}

fn import(config: &Path, mbox: &Path) -> (bool, String, String) {
    let out = Command::new(daemon_bin())
        .args(["import", "mbox"])
        .arg(mbox)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run postdesk import");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (read, new, already stored, skipped) from the summary line.
fn summary(out: &str) -> (usize, usize, usize, usize) {
    let line = out
        .lines()
        .find(|l| l.starts_with("imported: "))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1], n[2], n[3])
}

#[test]
fn an_mbox_becomes_threaded_tickets_silently_and_only_once() {
    let sink = Sink::start();
    // Everything that could mail someone is on: acknowledgements (the
    // default rules) and agent notifications.
    let d = Daemon::start_with(&sink, |c| {
        c.set("agents", "notify", "true");
    });
    let files = corpus();
    assert!(files.len() >= 40, "fixtures missing: {}", files.len());
    let dir = TempDir::new("import");
    let mbox = dir.path.join("shared.mbox");
    let bad_line = write_mbox(&mbox, &files, 5);

    let (ok, out, err) = import(&d.config_path, &mbox);
    assert!(ok, "import failed: {out}{err}\n{}", d.log_tail(20));
    let n = files.len();
    // The corpus holds one message twice (bar/18 and cur/51, byte for
    // byte): its second copy is new or already stored, depending on whether
    // the first was processed when it arrived.
    let copies = {
        let root = repo_root().join("fixtures/threading");
        let bodies: BTreeSet<Vec<u8>> = files
            .iter()
            .map(|(f, _)| std::fs::read(root.join(f)).unwrap())
            .collect();
        n - bodies.len()
    };
    assert_eq!(copies, 1);
    let counts = summary(&out);
    assert_eq!(counts.0, n + 1, "{out}{err}");
    assert!(counts.1 + counts.2 == n && counts.2 <= copies, "{out}{err}");
    assert_eq!(counts.3, 1, "{out}{err}");
    assert!(
        err.contains(&format!("line {bad_line}: skipped: malformed")),
        "the malformed entry is not reported with its line: {err}"
    );
    d.wait_processed(Duration::from_secs(60));

    // Which ticket each message went to, by its Message-ID.
    let tickets = d.all_tickets();
    let mut ticket_of_msgid: BTreeMap<String, String> = BTreeMap::new();
    for t in &tickets {
        let id = t["id"].as_str().unwrap().to_string();
        let full = d.ticket(&id);
        for m in full["messages"].as_array().unwrap() {
            assert_ne!(m["direction"], "outbound", "something was composed: {m}");
            ticket_of_msgid.insert(m["message_id"].as_str().unwrap().to_string(), id.clone());
        }
        // No SLA clock for history, and nothing acknowledged.
        let events = full["events"].to_string();
        assert!(
            !events.contains("\"sla"),
            "SLA clock started on {id}: {events}"
        );
    }
    let root = repo_root().join("fixtures/threading");
    let msgid = |file: &str| {
        let text = String::from_utf8_lossy(&std::fs::read(root.join(file)).unwrap()).into_owned();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("Message-ID: ")
                    .or_else(|| l.strip_prefix("Message-Id: "))
            })
            .map(|v| v.trim().trim_matches(['<', '>']).to_string())
            .unwrap()
    };
    let placed: Vec<(String, String, String)> = files
        .iter()
        .filter_map(|(f, g)| {
            Some((
                f.clone(),
                g.clone(),
                ticket_of_msgid.get(&msgid(f))?.clone(),
            ))
        })
        .collect();
    assert_eq!(placed.len(), n, "every message is in a ticket");
    // Threading as notmuch sees it: different threads never share a ticket,
    // and replies join their thread's ticket.
    for (i, a) in placed.iter().enumerate() {
        for b in &placed[i + 1..] {
            if a.1 != b.1 {
                assert_ne!(a.2, b.2, "{} and {} joined", a.0, b.0);
            }
        }
    }
    let ticket = |file: &str| placed.iter().find(|p| p.0 == file).unwrap().2.clone();
    for (root_msg, reply) in [
        ("notmuch-default/01.eml", "notmuch-default/02.eml"),
        (
            "notmuch-default/bar__baz__23.eml",
            "notmuch-default/bar__baz__24.eml",
        ),
        (
            "notmuch-default/bar__17.eml",
            "notmuch-default/bar__baz__new__27.eml",
        ),
    ] {
        assert_eq!(ticket(root_msg), ticket(reply), "{reply} not threaded");
    }
    let groups: BTreeSet<&str> = placed.iter().map(|p| p.1.as_str()).collect();
    let distinct: BTreeSet<&str> = placed.iter().map(|p| p.2.as_str()).collect();
    assert!(distinct.len() < n, "nothing was threaded");
    assert!(distinct.len() >= groups.len());
    // Dated by the messages (2009 list mail), not by the import.
    let first = d.ticket(&ticket("notmuch-default/01.eml"));
    assert!(
        first["created_at"].as_str().unwrap().starts_with("2009-"),
        "{}",
        first["created_at"]
    );

    // Nothing was mailed: no acknowledgement, no notification.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.count(), 0, "mail went out: {:?}", sink.log());

    // A second import of the same file adds nothing.
    let before: Vec<(String, u64)> = tickets
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap().to_string();
            let count = d.ticket(&id)["messages"].as_array().unwrap().len() as u64;
            (id, count)
        })
        .collect();
    let (ok, out, err) = import(&d.config_path, &mbox);
    assert!(ok, "second import failed: {out}{err}");
    assert_eq!(summary(&out), (n + 1, 0, n, 1), "{out}{err}");
    d.wait_processed(Duration::from_secs(60));
    let after: Vec<(String, u64)> = d
        .all_tickets()
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap().to_string();
            let count = d.ticket(&id)["messages"].as_array().unwrap().len() as u64;
            (id, count)
        })
        .collect();
    assert_eq!(after, before);
    assert_eq!(sink.count(), 0);
}
