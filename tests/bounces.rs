//! Bounces as ticket facts, end to end with real bounce samples (sisimai's set-of-emails and
//! the Ruby mail gem, fixtures/corpus/autoreply-bounce, sources and licences in its
//! MANIFEST.md): the customer writes from the address the sample reports on, postdesk
//! acknowledges, and the unchanged sample comes back to the acknowledgement's VERP address
//! with a null sender, as an MTA would send it. A permanent failure is an event with the
//! report's status, text and remote server, and marks the address as bouncing: no
//! acknowledgement to it until it writes again; a delay is noted, not a failure.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn sample(path: &str) -> Vec<u8> {
    to_crlf(
        &std::fs::read(
            repo_root()
                .join("fixtures/corpus/autoreply-bounce")
                .join(path),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}")),
    )
}

/// `customer` writes (vouched: the envelope sender is theirs); returns the ticket id and the
/// VERP address of its acknowledgement.
fn ticket_from(d: &Daemon, sink: &Sink, customer: &str, n: usize, tag: &str) -> (String, String) {
    let raw = mail(
        &format!("Customer <{customer}>"),
        "Where is my order?",
        &format!("<{tag}@customer.example>"),
        &[],
        "It has not arrived.\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    let ack = sink.nth_to(customer, n);
    let verp = header(&ack, "X-MailFrom").expect("X-MailFrom");
    assert!(verp.starts_with(&format!("support+b{id}.")), "{verp}");
    (id, verp)
}

fn events(d: &Daemon, id: &str) -> Vec<Value> {
    d.ticket(id)["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn event_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .filter_map(|e| e["detail"].as_str())
        .collect()
}

/// Sends a delivery report to `verp` from the null sender; waits until it is processed.
fn bounce(d: &Daemon, verp: &str, raw: &[u8]) -> String {
    let seq = d.send_ok("", &[verp], raw);
    d.wait_processed(SECS_30);
    d.ticket_of(seq)
}

#[test]
fn a_permanent_failure_is_an_event_and_stops_acknowledgements_until_the_address_writes_again() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set(
            "acknowledgement",
            "resolved_template",
            &q("templates/resolved.txt"),
        );
    });
    let customer = "userunknown@bouncehammer.jp";
    let (id, verp) = ticket_from(&d, &sink, customer, 1, "b1");

    assert_eq!(bounce(&d, &verp, &sample("sisimai/bsd/rfc3464-01.eml")), id);
    let ev = events(&d, &id);
    let failed = event_of(&ev, "delivery_failed");
    assert_eq!(failed.len(), 1, "{ev:?}");
    for part in [
        "delivery to userunknown@bouncehammer.jp failed for good",
        "550 5.1.1 <userunknown@bouncehammer.jp>... User Unknown",
        "remote server mx.bouncehammer.jp",
        "reported by smtpgw.example.jp",
        "now marked as bouncing",
    ] {
        assert!(
            failed[0].contains(part),
            "{part:?} missing in {}",
            failed[0]
        );
    }

    // An agent resolves the ticket without a word: no resolved notice goes to the address.
    let resolve = json!({"agent": "alice", "commands": ["#resolve"]});
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{id}/commands"),
        Some(API_TOKEN),
        Some(&resolve.to_string()),
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let suppressed = event_of(&events(&d, &id), "ack_suppressed").join("\n");
    assert!(
        suppressed.contains("no resolved notice") && suppressed.contains("marked as bouncing"),
        "{suppressed:?}"
    );

    // An agent opens a phone ticket for that address: no acknowledgement goes there.
    let call = json!({"agent": "alice", "customer": customer, "subject": "Called about the order",
                      "body": "They called."});
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        "/api/v1/tickets",
        Some(API_TOKEN),
        Some(&call.to_string()),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 201, "{v}");
    let phone = v["ticket"].as_str().unwrap().to_string();
    d.wait_processed(SECS_30);
    let suppressed = event_of(&events(&d, &phone), "ack_suppressed").join("\n");
    assert!(
        suppressed.contains("marked as bouncing"),
        "no ack_suppressed naming the bounce: {suppressed:?}"
    );
    d.wait_idle(SECS_30);
    assert_eq!(
        sink.messages_to(customer).len(),
        1,
        "an acknowledgement went to a bouncing address"
    );

    // The customer writes again: the mark is gone and they are acknowledged.
    let raw = mail(
        &format!("Customer <{customer}>"),
        "New address works again",
        "<b1-again@customer.example>",
        &[],
        "My mailbox is fixed.\n",
    );
    let again = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    sink.nth_to(customer, 2);
    let cleared = event_of(&events(&d, &again), "bounce_cleared").join("\n");
    assert!(
        cleared.contains("no longer marked as bouncing"),
        "{cleared:?}"
    );
}

#[test]
fn a_delay_is_noted_not_a_failure() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let customer = "fraser@oooooooo.com.au";
    let (id, verp) = ticket_from(&d, &sink, customer, 1, "d1");
    assert_eq!(bounce(&d, &verp, &sample("mail-gem/report_422.eml")), id);
    let ev = events(&d, &id);
    assert!(event_of(&ev, "delivery_failed").is_empty(), "{ev:?}");
    let delayed = event_of(&ev, "delivery_delayed");
    assert_eq!(delayed.len(), 1, "{ev:?}");
    assert!(delayed[0].contains("452 4.2.2"), "{}", delayed[0]);
    assert!(delayed[0].contains("Mailbox full"), "{}", delayed[0]);
    assert!(
        delayed[0].contains("mail.oooooooo.com.au"),
        "{}",
        delayed[0]
    );

    // Not marked: an agent's phone ticket for them is acknowledged.
    let call = json!({"agent": "alice", "customer": customer, "subject": "Called", "body": "x"});
    let (code, _, _) = http_request(
        d.web_port,
        "POST",
        "/api/v1/tickets",
        Some(API_TOKEN),
        Some(&call.to_string()),
    )
    .unwrap();
    assert_eq!(code, 201);
    sink.nth_to(customer, 2);
}

#[test]
fn plain_text_bounces_qmail_and_exim() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (id, verp) = ticket_from(&d, &sink, "kijitora@example.ne.jp", 1, "q1");
    assert_eq!(
        bounce(&d, &verp, &sample("sisimai/bsd/lhost-qmail-01.eml")),
        id
    );
    let failed = event_of(&events(&d, &id), "delivery_failed").join("\n");
    assert!(failed.contains("5.5.0"), "{failed}");
    assert!(
        failed.contains("550 Unknown user kijitora@example.ne.jp"),
        "{failed}"
    );
    assert!(failed.contains("remote server 192.0.2.32"), "{failed}");
    assert!(failed.contains("reported by mx4.example.jp"), "{failed}");

    // Exim's report names two addresses; only the one our mail went to is marked.
    let (id, verp) = ticket_from(&d, &sink, "kijitora@example.jp", 1, "e1");
    assert_eq!(
        bounce(&d, &verp, &sample("sisimai/bsd/lhost-exim-02.eml")),
        id
    );
    let ev = events(&d, &id);
    let failed = event_of(&ev, "delivery_failed");
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0].contains("kijitora@example.jp failed for good")
            && failed[0].contains("550 5.1.1 <kijitora@example.jp>... User Unknown"),
        "{}",
        failed[0]
    );
    assert!(
        failed[0].contains("now marked as bouncing"),
        "{}",
        failed[0]
    );
    assert!(
        failed[1].contains("sabatora@example.jp failed for good")
            && failed[1].contains("550 5.2.1"),
        "{}",
        failed[1]
    );
    assert!(
        failed[1].contains("did not receive that message: not marked"),
        "a stranger named in a report must not be marked: {}",
        failed[1]
    );
    // sabatora is not marked: their own mail is acknowledged as always.
    ticket_from(&d, &sink, "sabatora@example.jp", 1, "e2");
    d.wait_idle(Duration::from_secs(30));
}
