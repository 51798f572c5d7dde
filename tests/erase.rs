//! `postdesk erase --customer ADDRESS`: a person's messages and personal data leave every
//! ticket, raw bytes and search index included; what stays (the ticket, its times, an
//! `erased` event naming no one) keeps the reports true; a dry run changes nothing; other
//! customers' tickets are untouched.

mod common;
use common::*;
use serde_json::{Value, json};
use std::process::Command;

fn postdesk(d: &Daemon, args: &[&str]) -> (bool, String) {
    postdesk_cli(args, &d.config_path)
}

fn raw_of(d: &Daemon, seq: &Value) -> String {
    let seq = id_string(seq).unwrap();
    let (code, body) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    assert_eq!(code, 200);
    String::from_utf8_lossy(&body).into_owned()
}

fn search_total(d: &Daemon, q: &str) -> u64 {
    let v = d.api_ok(&format!("/api/v1/search?q={}", q.replace(' ', "%20")));
    v["total"].as_u64().unwrap_or(0)
}

#[test]
fn erasing_a_customer_removes_their_data_and_keeps_the_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let ann = "ann.example@customer.example";
    let raw = mail(
        &format!("Annabel Example <{ann}>"),
        "Invoice for Annabel Example",
        "<erase-1@customer.example>",
        &[],
        "My phone is 555-0123 and my account is AX-99812.\n",
    );
    let id = d.ticket_of(d.send_ok(ann, &[SUPPORT], &raw));
    sink.nth_to(ann, 1); // the acknowledgement
    let reply =
        json!({"agent": "alice", "body": "Dear Annabel Example, we fixed account AX-99812."});
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{id}/reply"),
        Some(API_TOKEN),
        Some(&reply.to_string()),
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    sink.nth_to(ann, 2);
    // Someone else's ticket.
    let bob = "bob@other.example";
    let other = d.ticket_of(d.send_ok(
        bob,
        &[SUPPORT],
        &mail(
            &format!("Bob <{bob}>"),
            "Router broken",
            "<erase-2@other.example>",
            &[],
            "The router at 555-7777 is broken.\n",
        ),
    ));
    d.wait_idle(SECS_30);
    assert_eq!(search_total(&d, "555-0123"), 1);

    // Dry run: counts, changes nothing.
    let (ok, out) = postdesk(&d, &["erase", "--customer", ann, "--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert!(out.contains(&format!("#{id}")), "{out}");
    assert!(out.contains("1 messages erased"), "{out}");
    assert_eq!(
        d.ticket(&id)["requester"],
        ann,
        "a dry run changed the ticket"
    );

    let (ok, out) = postdesk(&d, &["erase", "--customer", &ann.to_uppercase()]);
    assert!(ok, "{out}");
    assert!(out.starts_with("erased: 1 tickets"), "{out}");

    let t = d.ticket(&id);
    let dump = t.to_string();
    for secret in [ann, "Annabel", "555-0123"] {
        assert!(
            !dump.to_lowercase().contains(&secret.to_lowercase()),
            "{secret} still in {t:#}"
        );
    }
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "erased"),
        "{t:#}"
    );
    assert_ne!(t["status"], Value::Null, "the ticket stays");
    // The raw bytes of every message of the ticket: no address, no name, no phone; the
    // agent's reply keeps its words.
    let messages = t["messages"].as_array().expect("messages");
    assert!(messages.len() >= 2, "{t:#}");
    let mut reply_seen = false;
    for m in messages {
        let raw = raw_of(&d, &m["seq"]);
        let lower = raw.to_lowercase();
        for secret in [ann, "annabel", "555-0123"] {
            assert!(!lower.contains(secret), "{secret} in raw message:\n{raw}");
        }
        reply_seen |= raw.contains("we fixed account AX-99812");
    }
    assert!(reply_seen, "the agent's reply keeps its text");
    // Search forgets them.
    assert_eq!(
        search_total(&d, "555-0123"),
        0,
        "{:#}",
        d.api_ok("/api/v1/search?q=555-0123")
    );
    assert_eq!(
        search_total(&d, "Annabel"),
        0,
        "{:#}",
        d.api_ok("/api/v1/search?q=Annabel")
    );
    // Bob's ticket is untouched.
    let b = d.ticket(&other);
    assert_eq!(b["requester"], bob);
    assert_eq!(search_total(&d, "555-7777"), 1);
    // Erasing again finds nothing more.
    let (ok, out) = postdesk(&d, &["erase", "--customer", ann]);
    assert!(ok, "{out}");
    assert!(out.contains("0 tickets"), "{out}");
}

#[test]
fn erase_refuses_what_is_not_an_address_and_needs_the_token() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (code, _, _) = http_request(
        d.web_port,
        "POST",
        "/api/v1/erase?customer=a%40b.example",
        None,
        None,
    )
    .unwrap();
    assert_eq!(code, 401);
    let (ok, out) = postdesk(&d, &["erase", "--customer", "not an address"]);
    assert!(!ok, "{out}");
    assert!(out.contains("not an email address"), "{out}");
}

/// Retention: a closed ticket older than a rule's age loses its content (stubs, requester
/// erased, event text gone), keeps its number, status and times; an open ticket and a recent
/// closed one keep everything; a dry run lists without changing; a second pass finds nothing.
#[test]
fn retention_rules_remove_old_closed_tickets_content() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    std::fs::write(
        d.dir.path.join("rules/retention.toml"),
        "[[rule]]\nname = \"closed after 30 days\"\nstatuses = [\"closed\"]\nolder_than = \"30d\"\n",
    )
    .unwrap();
    d.restart();
    let carl = "carl@customer.example";
    let closed = d.ticket_of(d.send_ok(
        carl,
        &[SUPPORT],
        &mail(
            &format!("Carl Kunde <{carl}>"),
            "Old question",
            "<ret-1@customer.example>",
            &[],
            "Card number 4111-0000 please delete later.\n",
        ),
    ));
    let open = d.ticket_of(d.send_ok(
        "dora@customer.example",
        &[SUPPORT],
        &mail(
            "Dora <dora@customer.example>",
            "Still open",
            "<ret-2@customer.example>",
            &[],
            "Keep me.\n",
        ),
    ));
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{closed}/commands"),
        Some(API_TOKEN),
        Some(&json!({"agent": "alice", "commands": ["#close"]}).to_string()),
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    d.wait_idle(SECS_30);

    // Today nothing is due; in 31 days the closed ticket is.
    let (ok, out) = postdesk(&d, &["retention", "--dry-run"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("would remove the content of 0 tickets"),
        "{out}"
    );
    let later = (std::time::SystemTime::now() + std::time::Duration::from_secs(31 * 86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let (ok, out) = postdesk(&d, &["retention", "--dry-run", "--as-of", &later]);
    assert!(ok, "{out}");
    assert!(
        out.contains("would remove the content of 1 tickets"),
        "{out}"
    );
    assert!(
        out.contains(&format!("#{closed}")) && out.contains("closed after 30 days"),
        "{out}"
    );
    assert_eq!(
        d.ticket(&closed)["requester"],
        carl,
        "a dry run changed the ticket"
    );

    let (ok, out) = postdesk(&d, &["retention", "--as-of", &later]);
    assert!(ok, "{out}");
    assert!(out.contains("removed the content of 1 tickets"), "{out}");
    let t = d.ticket(&closed);
    assert_eq!(t["status"], "closed");
    assert_eq!(t["id"].as_str(), Some(closed.as_str()));
    let dump = t.to_string().to_lowercase();
    for secret in [carl, "kunde", "4111-0000", "old question"] {
        assert!(!dump.contains(secret), "{secret} still in {t:#}");
    }
    for m in t["messages"].as_array().unwrap() {
        let raw = raw_of(&d, &m["seq"]).to_lowercase();
        assert!(!raw.contains("4111-0000") && !raw.contains(carl), "{raw}");
    }
    assert_eq!(search_total(&d, "4111-0000"), 0);
    // The open ticket keeps everything.
    assert_eq!(d.ticket(&open)["requester"], "dora@customer.example");
    assert_eq!(search_total(&d, "Keep"), 1);
    // Nothing left to do.
    let (ok, out) = postdesk(&d, &["retention", "--as-of", &later]);
    assert!(ok, "{out}");
    assert!(out.contains("removed the content of 0 tickets"), "{out}");
}

#[test]
fn check_reports_a_bad_retention_rule_with_its_position() {
    let cfg = DaemonConfig::new(free_port());
    let (dir, path) = write_config(&cfg);
    std::fs::write(
        dir.path.join("rules/retention.toml"),
        "[[rule]]\nname = \"oops\"\nstatuses = [\"open\"]\nolder_than = \"30d\"\n",
    )
    .unwrap();
    let out = Command::new(daemon_bin())
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("retention.toml:3:"), "{text}");
    assert!(text.contains("resolved or closed tickets only"), "{text}");
}
