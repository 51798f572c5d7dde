//! The customer told at each stage (rules/customer.toml), through the real binary and an
//! aiosmtpd sink: the pending notice when an agent sets a ticket pending, the reminder when
//! it waits too long and the automatic close after it (timed work read from the store, so a
//! restart in between loses nothing), the reopened notice, and none of it to an address that
//! bounces.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const STAGES: &str = r#"
[default]
pending = true
reopened = true
remind_after = "2s"
close_after = "3s"
"#;

fn start(sink: &Sink, rules: &str) -> Daemon {
    Daemon::start_with(sink, |c| {
        c.rules_files
            .push(("customer.toml".into(), rules.to_string()));
    })
}

/// `customer` writes; returns the ticket id once its acknowledgement is at the sink.
fn ticket_from(d: &Daemon, sink: &Sink, customer: &str, tag: &str) -> String {
    let raw = mail(
        &format!("Customer <{customer}>"),
        "The printer jams",
        &format!("<{tag}@customer.example>"),
        &[],
        "Every second page jams.\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    sink.nth_to(customer, 1);
    id
}

fn command(d: &Daemon, id: &str, commands: &[&str]) {
    let body = json!({"agent": "alice", "commands": commands});
    let (code, _, resp) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{id}/commands"),
        Some(API_TOKEN),
        Some(&body.to_string()),
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&resp));
}

fn events_of(t: &Value, kind: &str) -> Vec<Value> {
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn pending_notice_then_reminder_then_auto_close_across_a_restart() {
    let sink = Sink::start();
    let mut d = start(&sink, STAGES);
    let customer = "ann@customer.example";
    let id = ticket_from(&d, &sink, customer, "p1");

    command(&d, &id, &["#pending"]);
    let pending = sink.nth_to(customer, 2);
    let subject = header(&pending, "Subject").unwrap();
    assert!(
        subject.contains(&format!("[#{id}]")) && subject.contains("waiting for your answer"),
        "{subject}"
    );
    let reply_to = header(&pending, "Reply-To").unwrap();
    assert!(
        reply_to.contains(&format!("support+t{id}.")),
        "an answer threads to the ticket: {reply_to}"
    );
    assert_eq!(
        header(&pending, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );

    // The reminder is computed from the store: a restart before it is due loses nothing.
    d.stop();
    d.restart();
    let reminder = sink.nth_to(customer, 3);
    assert!(
        header(&reminder, "Subject")
            .unwrap()
            .contains("still waiting for you"),
        "{}",
        body_text(&reminder)
    );
    let t = d.ticket(&id);
    assert_eq!(t["status"], "pending", "{t}");
    assert_eq!(events_of(&t, "reminded").len(), 1, "{t}");

    // No answer after the reminder: closed through the one decision path, as postdesk.
    let closed = sink.nth_to(customer, 4);
    assert!(
        header(&closed, "Subject")
            .unwrap()
            .contains("request is closed"),
        "{}",
        body_text(&closed)
    );
    let t = wait_until(SECS_30, "the ticket closed", || {
        let t = d.ticket(&id);
        (t["status"] == "closed").then_some(t)
    });
    let status = events_of(&t, "status");
    let last = status.last().unwrap();
    assert_eq!(last["actor"], "postdesk", "{t}");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("pending → closed"),
        "{t}"
    );
    // Once each: no second reminder, no resolved notice besides the closed one.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.messages_to(customer).len(), 4);
    assert_eq!(events_of(&d.ticket(&id), "reminded").len(), 1);
}

#[test]
fn an_answer_stops_the_reminder_and_a_reply_to_a_resolved_ticket_gets_the_reopened_notice() {
    let sink = Sink::start();
    let d = start(
        &sink,
        "[default]\npending = true\nreopened = true\nremind_after = \"4s\"\nclose_after = \"2s\"\n",
    );
    let customer = "bob@customer.example";
    let id = ticket_from(&d, &sink, customer, "r1");
    command(&d, &id, &["#pending"]);
    let pending = sink.nth_to(customer, 2);

    // The customer answers the pending notice: open again, no reminder follows.
    let answer = mail(
        &format!("Bob <{customer}>"),
        &format!("Re: [#{id}] The printer jams"),
        "<r2@customer.example>",
        &[&format!(
            "In-Reply-To: <{}>",
            header(&pending, "Message-ID")
                .unwrap()
                .trim_matches(['<', '>'])
        )],
        "It is model LX-200.\n",
    );
    let to = bare_address(&header(&pending, "Reply-To").unwrap());
    d.send_ok(customer, &[&to], &answer);
    d.wait_processed(SECS_30);
    assert_eq!(d.ticket(&id)["status"], "open");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        sink.messages_to(customer).len(),
        2,
        "no reminder for an answered ticket"
    );

    // Resolved (the resolved notice is off by default), then the customer writes again.
    command(&d, &id, &["#resolve"]);
    let again = mail(
        &format!("Bob <{customer}>"),
        &format!("Re: [#{id}] The printer jams"),
        "<r3@customer.example>",
        &[],
        "It jams again.\n",
    );
    d.send_ok(customer, &[&to], &again);
    let reopened = sink.nth_to(customer, 3);
    assert!(
        header(&reopened, "Subject").unwrap().contains("open again"),
        "{}",
        body_text(&reopened)
    );
    assert_eq!(d.ticket(&id)["status"], "open");
}

#[test]
fn nothing_automatic_to_a_bouncing_address_and_nothing_where_the_queue_switches_it_off() {
    let sink = Sink::start();
    let d = start(
        &sink,
        &format!("{STAGES}\n[queue.billing]\npending = false\nacknowledgement = false\n"),
    );
    // A permanent failure marks the address as bouncing (a real RFC 3464 sample).
    let customer = "userunknown@bouncehammer.jp";
    let raw = mail(
        &format!("Customer <{customer}>"),
        "Where is my order?",
        "<b1@customer.example>",
        &[],
        "It has not arrived.\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    let ack = sink.nth_to(customer, 1);
    let verp = header(&ack, "X-MailFrom").unwrap();
    let report = to_crlf(
        &std::fs::read(
            repo_root().join("fixtures/corpus/autoreply-bounce/sisimai/bsd/rfc3464-01.eml"),
        )
        .unwrap(),
    );
    d.send_ok("", &[&verp], &report);
    d.wait_processed(SECS_30);

    command(&d, &id, &["#pending"]);
    let t = d.ticket(&id);
    let suppressed: Vec<String> = events_of(&t, "ack_suppressed")
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect();
    assert!(
        suppressed
            .iter()
            .any(|s| s.contains("no pending notice") && s.contains("bouncing")),
        "{suppressed:?}"
    );
    // The reminder is due and recorded, but no mail goes there.
    wait_until(SECS_30, "the reminder event", || {
        (!events_of(&d.ticket(&id), "reminded").is_empty()).then_some(())
    });
    assert_eq!(
        sink.messages_to(customer).len(),
        1,
        "only the acknowledgement"
    );

    // A queue with the pending notice off: no mail when its ticket is set pending.
    let other = "carol@customer.example";
    let id2 = ticket_from(&d, &sink, other, "q1");
    command(&d, &id2, &["#queue billing", "#pending"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sink.messages_to(other).len(), 1, "only the acknowledgement");

    // A new ticket routed to billing (the shipped routing rule): no acknowledgement there.
    let dave = "dave@customer.example";
    let raw = mail(
        &format!("Dave <{dave}>"),
        "Invoice 4711 charged twice",
        "<q2@customer.example>",
        &[],
        "Please refund one.\n",
    );
    let id3 = d.ticket_of(d.send_ok(dave, &[SUPPORT], &raw));
    d.wait_idle(SECS_30);
    let t = d.ticket(&id3);
    assert_eq!(t["queue"], "billing", "{t}");
    assert!(
        events_of(&t, "ack_suppressed").iter().any(|e| e["detail"]
            .as_str()
            .unwrap()
            .contains("off for queue billing")),
        "{t}"
    );
    assert!(sink.messages_to(dave).is_empty());
}

#[test]
fn check_reports_a_broken_customer_toml_with_its_position() {
    let mut cfg = DaemonConfig::new(free_port());
    cfg.rules_files.push((
        "customer.toml".into(),
        "[default]\nsurvey = true\nsurvey_scale = \"ten\"\n".into(),
    ));
    let (_dir, path) = write_config(&cfg);
    let out = std::process::Command::new(daemon_bin())
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("customer.toml:3:"), "{text}");
    assert!(text.contains("unknown scale"), "{text}");
}
