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

/// Customer stages that mail on status changes (the reopened notice, the
/// survey after a resolution), so that history imported as finished shows
/// it triggers none of them.
const STAGES_ON: &str = r#"
[default]
reopened = true
survey = true
survey_delay = "1s"
survey_scale = "five"
"#;

/// An mbox (LF line ends) of `(sender, headers and body)` entries.
fn small_mbox(path: &Path, messages: &[(&str, String)]) {
    let mut out = String::new();
    for (sender, text) in messages {
        out.push_str(&format!("From {sender} Mon Mar  2 09:00:00 2020\n"));
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// One message of history, dated in 2020.
fn history(from: &str, subject: &str, id: &str, parent: Option<&str>, body: &str) -> String {
    let thread = parent
        .map(|p| format!("In-Reply-To: <{p}>\nReferences: <{p}>\n"))
        .unwrap_or_default();
    format!(
        "From: {from}\nTo: Support <{SUPPORT}>\nSubject: {subject}\nMessage-ID: <{id}>\n\
         {thread}Date: Mon, 02 Mar 2020 09:00:00 +0000\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
}

fn import_with(config: &Path, mbox: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(daemon_bin())
        .args(["import", "mbox"])
        .arg(mbox)
        .args(extra)
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

/// The ticket (full, from the API) holding the message `msgid`.
fn ticket_holding(d: &Daemon, msgid: &str) -> serde_json::Value {
    for t in d.all_tickets() {
        let full = d.ticket(t["id"].as_str().unwrap());
        let holds = full["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["message_id"] == msgid);
        if holds {
            return full;
        }
    }
    panic!("no ticket holds {msgid}");
}

fn kinds(t: &serde_json::Value, kind: &str) -> Vec<serde_json::Value> {
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

fn post_json(d: &Daemon, path: &str, body: serde_json::Value) {
    let (code, _, resp) = http_request(
        d.web_port,
        "POST",
        path,
        Some(API_TOKEN),
        Some(&body.to_string()),
    )
    .unwrap();
    assert!(
        code == 200 || code == 201,
        "{path}: {code} {}",
        String::from_utf8_lossy(&resp)
    );
}

/// Waits until the outbound queue is empty and the sink holds `n` messages,
/// then a little longer, so that mail queued late would be seen.
fn settled(d: &Daemon, sink: &Sink, n: usize) {
    d.wait_idle(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    d.wait_idle(Duration::from_secs(60));
    assert_eq!(sink.count(), n, "mail went out: {}", sink.log());
}

/// A live ticket of `customer` (Message-ID `<live-d1@customer.test>`),
/// answered and resolved by alice; returns its id once the customer has the
/// acknowledgement, the reply and the survey.
fn resolved_live_ticket(d: &Daemon, sink: &Sink, customer: &str) -> String {
    let live = mail(
        &format!("Dave <{customer}>"),
        "Scanner offline",
        "<live-d1@customer.test>",
        &[],
        "The scanner is offline.\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &live));
    sink.nth_to(customer, 1);
    post_json(
        d,
        &format!("/api/v1/tickets/{id}/reply"),
        serde_json::json!({"agent": "alice", "body": "Restarted it.", "commands": ["#resolve"]}),
    );
    sink.nth_to(customer, 3);
    id
}

/// Imported as new (the default), history that threads into a resolved
/// ticket reopens it as it always did, but mails nobody: the reopened
/// notice is for a customer writing now.
#[test]
fn history_imported_as_new_into_a_resolved_ticket_mails_nobody() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.with_public();
        c.rules_files
            .push(("customer.toml".into(), STAGES_ON.to_string()));
    });
    let dave = "dave@customer.test";
    let id = resolved_live_ticket(&d, &sink, dave);
    let before = sink.count();
    settled(&d, &sink, before);
    let dir = TempDir::new("import-new");
    let mbox = dir.path.join("history.mbox");
    small_mbox(
        &mbox,
        &[(
            dave,
            history(
                &format!("Dave <{dave}>"),
                "Re: Scanner offline",
                "h-d2@customer.test",
                Some("live-d1@customer.test"),
                "It is offline again.",
            ),
        )],
    );
    let (ok, out, err) = import_with(&d.config_path, &mbox, &[]);
    assert!(ok, "import failed: {out}{err}\n{}", d.log_tail(20));
    assert_eq!(summary(&out), (1, 1, 0, 0), "{out}{err}");
    d.wait_processed(Duration::from_secs(60));
    let t = d.ticket(&id);
    assert_eq!(t["status"], "open", "{t}");
    assert_eq!(kinds(&t, "reopened").len(), 1, "{t}");
    settled(&d, &sink, before);
}

#[test]
fn history_imported_as_resolved_stays_out_of_the_queue_sends_nothing_and_reopens_on_a_reply() {
    use common::web::*;
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |c| {
        c.set("agents", "notify", "true");
        c.with_public();
        c.rules_files
            .push(("customer.toml".into(), STAGES_ON.to_string()));
    });
    let dave = "dave@customer.test";
    let live_id = resolved_live_ticket(&d, &sink, dave);
    let before = sink.count();
    settled(&d, &sink, before);

    let dir = TempDir::new("import-resolved");
    let mbox = dir.path.join("history.mbox");
    small_mbox(
        &mbox,
        &[
            (
                "ann@customer.test",
                history(
                    "Ann <ann@customer.test>",
                    "Printer jams",
                    "h-a1@customer.test",
                    None,
                    "The printer jams.",
                ),
            ),
            (
                "alice@example.test",
                history(
                    "Alice <alice@example.test>",
                    "Re: Printer jams",
                    "h-a2@example.test",
                    Some("h-a1@customer.test"),
                    "Clean the rollers.",
                ),
            ),
            (
                "ann@customer.test",
                history(
                    "Ann <ann@customer.test>",
                    "Re: Printer jams",
                    "h-a3@customer.test",
                    Some("h-a2@example.test"),
                    "That did it, thanks.",
                ),
            ),
            (
                "bob@customer.test",
                history(
                    "Bob <bob@customer.test>",
                    "Invoice question",
                    "h-b1@customer.test",
                    None,
                    "Is VAT included?",
                ),
            ),
            // Dave's copy of his own mail, threading into his resolved live ticket.
            (
                dave,
                history(
                    &format!("Dave <{dave}>"),
                    "Re: Scanner offline",
                    "h-d2@customer.test",
                    Some("live-d1@customer.test"),
                    "Thanks, it works.",
                ),
            ),
        ],
    );
    let (ok, out, err) = import_with(&d.config_path, &mbox, &["--status", "resolved"]);
    assert!(ok, "import failed: {out}{err}\n{}", d.log_tail(20));
    assert_eq!(summary(&out), (5, 5, 0, 0), "{out}{err}");
    d.wait_processed(Duration::from_secs(60));

    let ann = ticket_holding(&d, "h-a1@customer.test");
    let ann_id = ann["id"].as_str().unwrap().to_string();
    assert_eq!(ann["messages"].as_array().unwrap().len(), 3, "{ann}");
    let bob = ticket_holding(&d, "h-b1@customer.test");
    let bob_id = bob["id"].as_str().unwrap().to_string();
    for t in [&ann, &bob] {
        assert_eq!(t["status"], "resolved", "{t}");
        let created = kinds(t, "created");
        assert!(
            created[0]["detail"]
                .as_str()
                .unwrap()
                .contains("imported as resolved"),
            "{created:?}"
        );
        assert!(kinds(t, "reopened").is_empty(), "{t}");
        assert!(t["surveys"].as_array().is_none_or(|s| s.is_empty()), "{t}");
    }
    // History joined the resolved live ticket without reopening it.
    let dave_t = d.ticket(&live_id);
    assert_eq!(ticket_holding(&d, "h-d2@customer.test")["id"], dave_t["id"]);
    assert_eq!(dave_t["status"], "resolved", "{dave_t}");
    assert!(kinds(&dave_t, "reopened").is_empty(), "{dave_t}");

    // The API's status filter and the queue page agree: nothing to do.
    let new = d.api_ok("/api/v1/tickets?status=new");
    assert!(
        !new.to_string().contains(&format!("\"id\":\"{ann_id}\"")),
        "{new}"
    );
    let resolved = d.api_ok("/api/v1/tickets?status=resolved");
    for id in [&ann_id, &bob_id] {
        assert!(
            resolved.to_string().contains(&format!("\"id\":\"{id}\"")),
            "{resolved}"
        );
    }
    let cookie = login_as(&d, "alice");
    let page = |path: &str| {
        let a = http(d.web_port, "GET", path, &[("Cookie", &cookie)], "");
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.body
    };
    let row = |id: &str| format!("name=\"ticket\" value=\"{id}\"");
    let open = page("/?folder=open");
    let done = page("/?folder=resolved");
    for id in [&ann_id, &bob_id] {
        assert!(!open.contains(&row(id)), "#{id} in the open folder");
        assert!(done.contains(&row(id)), "#{id} not in the resolved folder");
    }

    // Nothing was mailed: no acknowledgement, notification, survey, notice.
    settled(&d, &sink, before);

    // A real customer reply later reopens the ticket as usual (the
    // reopened notice goes out, the SLA clock starts).
    let ann_addr = "ann@customer.test";
    let reply = mail(
        &format!("Ann <{ann_addr}>"),
        "Re: Printer jams",
        "<later-a4@customer.test>",
        &[
            "In-Reply-To: <h-a3@customer.test>",
            "References: <h-a1@customer.test> <h-a3@customer.test>",
        ],
        "It jams again.\n",
    );
    let seq = d.send_ok(ann_addr, &[SUPPORT], &reply);
    assert_eq!(d.ticket_of(seq), ann_id);
    let ann = d.ticket(&ann_id);
    assert_eq!(ann["status"], "open", "{ann}");
    assert_eq!(kinds(&ann, "reopened").len(), 1, "{ann}");
    sink.nth_to(ann_addr, 1);
}

#[test]
fn history_imported_as_closed_keeps_its_threads_and_a_reply_opens_a_follow_up() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("agents", "notify", "true");
        c.with_public();
        c.rules_files
            .push(("customer.toml".into(), STAGES_ON.to_string()));
    });
    let dir = TempDir::new("import-closed");
    let mbox = dir.path.join("history.mbox");
    small_mbox(
        &mbox,
        &[
            (
                "carol@customer.test",
                history(
                    "Carol <carol@customer.test>",
                    "VPN drops",
                    "h-c1@customer.test",
                    None,
                    "The VPN drops every hour.",
                ),
            ),
            (
                "carol@customer.test",
                history(
                    "Carol <carol@customer.test>",
                    "Re: VPN drops",
                    "h-c2@customer.test",
                    Some("h-c1@customer.test"),
                    "And now it drops every ten minutes.",
                ),
            ),
        ],
    );

    // Invalid values: a clear error and nothing taken.
    let (ok, out, err) = import_with(&d.config_path, &mbox, &["--status", "open"]);
    assert!(!ok, "--status open was accepted: {out}{err}");
    assert!(err.contains("open") && err.contains("resolved"), "{err}");
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        "/api/v1/import?from=carol%40customer.test&status=pending",
        Some(API_TOKEN),
        Some(&history(
            "Carol <carol@customer.test>",
            "x",
            "h-x@customer.test",
            None,
            "x",
        )),
    )
    .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("status"), "{body}");
    assert_eq!(d.tickets_total(), 0);

    let (ok, out, err) = import_with(&d.config_path, &mbox, &["--status", "closed"]);
    assert!(ok, "import failed: {out}{err}\n{}", d.log_tail(20));
    assert_eq!(summary(&out), (2, 2, 0, 0), "{out}{err}");
    d.wait_processed(Duration::from_secs(60));
    // One ticket, closed: the second message joined it (a customer's mail to
    // a closed ticket would otherwise open a follow-up).
    assert_eq!(d.tickets_total(), 1);
    let t = ticket_holding(&d, "h-c2@customer.test");
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["messages"].as_array().unwrap().len(), 2, "{t}");
    assert_eq!(t["status"], "closed", "{t}");
    settled(&d, &sink, 0);

    // A real reply to a closed ticket opens a follow-up, as for any closed ticket.
    let carol = "carol@customer.test";
    let reply = mail(
        &format!("Carol <{carol}>"),
        "Re: VPN drops",
        "<later-c3@customer.test>",
        &["In-Reply-To: <h-c2@customer.test>"],
        "It is back.\n",
    );
    let follow_up = d.ticket_of(d.send_ok(carol, &[SUPPORT], &reply));
    assert_ne!(follow_up, id);
    let f = d.ticket(&follow_up);
    assert!(
        kinds(&f, "created")[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("follow-up to closed ticket #{id}")),
        "{f}"
    );
    assert_eq!(d.ticket(&id)["status"], "closed");
    // Its acknowledgement is the first mail carol gets.
    sink.nth_to(carol, 1);
}
