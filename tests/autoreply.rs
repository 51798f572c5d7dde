//! Mail that must never be acknowledged (auto-replies, lists, bounces, loops, floods) is still
//! stored; bounces of our own mail attach to their ticket; stray bounces are quarantined.
//! "No ack" is always checked after the daemon is idle, and next to a control message that does
//! get its acknowledgement (so a broken outbound path cannot make these tests pass).

mod common;
use common::*;
use serde_json::Value;

fn mid(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The inbound message of `ticket` with Message-ID `message_id`.
fn inbound_message(ticket: &Value, message_id: &str) -> Option<Value> {
    messages_dir(ticket, "inbound")
        .into_iter()
        .find(|m| mid(m["message_id"].as_str().unwrap_or("")) == mid(message_id))
}

/// Sends a normal mail from `control@customer.example` and waits for its acknowledgement, then
/// for idleness: afterwards the sink holds everything the daemon will ever send for what came
/// before.
fn control_ack(d: &Daemon, sink: &Sink) {
    let raw = mail(
        "Control <control@customer.example>",
        "control",
        "<control-1@customer.example>",
        &[],
        "Ordinary question.\n",
    );
    d.send_ok("control@customer.example", &[SUPPORT], &raw);
    wait_until(SECS_60, "the control message's acknowledgement", || {
        (!sink.messages_to("control@customer.example").is_empty()).then_some(())
    });
    d.wait_idle(SECS_60);
}

fn dsn(to: &str, original_headers: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n\
To: {to}\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <{id}@mx.customer.example>\r\n\
Date: Thu, 26 Nov 2026 10:05:00 +0000\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"BOUNDARY-{id}\"\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--BOUNDARY-{id}\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
<dana@customer.example>: host mx.customer.example said: 552 5.2.2 Mailbox full\r\n\
\r\n\
--BOUNDARY-{id}\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.customer.example\r\n\
Arrival-Date: Thu, 26 Nov 2026 10:04:59 +0000\r\n\
\r\n\
Final-Recipient: rfc822; dana@customer.example\r\n\
Original-Recipient: rfc822;dana@customer.example\r\n\
Action: failed\r\n\
Status: 5.2.2\r\n\
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\
\r\n\
--BOUNDARY-{id}\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
{original_headers}\
--BOUNDARY-{id}--\r\n"
    )
    .into_bytes()
}

/// The header block of `raw` (up to and including the blank line), minus the sink's own headers.
fn header_block(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let end = text
        .find("\r\n\r\n")
        .or_else(|| text.find("\n\n"))
        .unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| {
            !l.starts_with("X-MailFrom") && !l.starts_with("X-RcptTo") && !l.starts_with("X-Peer")
        })
        .map(|l| format!("{}\r\n", l.trim_end_matches('\r')))
        .collect::<String>()
        + "\r\n"
}

/// Opens a ticket for dana@customer.example; returns (ticket id, the acknowledgement).
fn dana_ticket(d: &Daemon, sink: &Sink) -> (String, Vec<u8>) {
    let raw = mail(
        "Dana <dana@customer.example>",
        "Order missing",
        "<order-1@customer.example>",
        &[],
        "Where is my order?\n",
    );
    let seq = d.send_ok("dana@customer.example", &[SUPPORT], &raw);
    let id = d.ticket_of(seq);
    let ack = sink.wait_for(1, SECS_60).remove(0);
    d.wait_idle(SECS_60);
    (id, ack)
}

#[test]
fn auto_replies_and_list_mail_are_stored_but_never_acknowledged() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    // (envelope sender = From address, extra headers, the inbound kind we expect if specified)
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        (
            "ooo@customer.example",
            &["Auto-Submitted: auto-replied"],
            Some("auto"),
        ),
        (
            "robot@customer.example",
            &["Auto-Submitted: auto-generated"],
            Some("auto"),
        ),
        ("bulk@customer.example", &["Precedence: bulk"], Some("auto")),
        ("junk@customer.example", &["Precedence: junk"], Some("auto")),
        (
            "listp@customer.example",
            &["Precedence: list"],
            Some("auto"),
        ),
        (
            "member@lists.example",
            &["List-Id: Users list <users.lists.example>"],
            Some("auto"),
        ),
        (
            "news@lists.example",
            &["List-Unsubscribe: <mailto:unsubscribe@lists.example>"],
            Some("auto"),
        ),
        ("mailer-daemon@mx.customer.example", &[], None),
        ("postmaster@customer.example", &[], None),
        ("noreply@shop.example", &[], None),
        ("no-reply@shop.example", &[], None),
    ];
    let mut sent = Vec::new();
    for (i, (addr, extra, kind)) in cases.iter().enumerate() {
        let msgid = format!("<auto-{i}@{}>", addr.split('@').nth(1).unwrap());
        let raw = mail(
            &format!("Sender {i} <{addr}>"),
            &format!("Automatic message {i}"),
            &msgid,
            extra,
            "Automatic text.\n",
        );
        let seq = d.send_ok(addr, &[SUPPORT], &raw);
        sent.push((seq, *addr, msgid, *kind, *extra));
    }
    for (seq, addr, msgid, kind, extra) in &sent {
        let id = d.ticket_of(*seq);
        if let Some(kind) = kind {
            let t = d.ticket(&id);
            let m = inbound_message(&t, msgid)
                .unwrap_or_else(|| panic!("{msgid} not in ticket {id}: {t}"));
            assert_eq!(m["kind"].as_str(), Some(*kind), "{addr} {extra:?}: {m}");
        }
    }
    control_ack(&d, &sink);
    for (_, addr, _, _, extra) in &sent {
        let got = sink.messages_to(addr);
        assert!(
            got.is_empty(),
            "{addr} with {extra:?} was acknowledged:\n{}",
            String::from_utf8_lossy(&got[0])
        );
    }
    assert_eq!(sink.count(), 1, "only the control message is acknowledged");
}

/// Mail carrying our loop marker (X-Postdesk-Loop) is never acknowledged; by the contract it is
/// still stored in a ticket (only a DSN matching no ticket goes to the quarantine).
#[test]
fn mail_with_our_loop_marker_is_stored_in_a_ticket_not_acknowledged() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let addr = "looper@customer.example";
    let raw = mail(
        &format!("Looper <{addr}>"),
        "Fwd: your ticket",
        "<loop-1@customer.example>",
        &["X-Postdesk-Loop: support.example.test"],
        "Forwarded back to you.\n",
    );
    let seq = d.send_ok(addr, &[SUPPORT], &raw);
    let m = d.wait_message(seq, SECS_30);
    control_ack(&d, &sink);
    assert!(
        sink.messages_to(addr).is_empty(),
        "mail with X-Postdesk-Loop was acknowledged"
    );
    assert_eq!(sink.count(), 1, "only the control message is acknowledged");
    assert!(
        m["ticket"].is_string(),
        "mail with X-Postdesk-Loop must still make or join a ticket: {m}"
    );
}

#[test]
fn null_sender_gets_no_acknowledgement() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let raw = mail(
        "Nobody <nobody@customer.example>",
        "A plain message with MAIL FROM:<>",
        "<null-1@customer.example>",
        &[],
        "Hello.\n",
    );
    let seq = d.send_ok("", &[SUPPORT], &raw);
    // Stored somewhere (a ticket or the quarantine), processed.
    d.wait_message(seq, SECS_30);
    control_ack(&d, &sink);
    assert!(
        sink.messages_to("nobody@customer.example").is_empty(),
        "null sender was acknowledged"
    );
    assert_eq!(sink.count(), 1);
    let (st, raw_back) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    assert_eq!((st, raw_back), (200, raw), "stored byte-exact");
}

#[test]
fn acknowledgements_are_rate_limited_per_address() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let addr = "eager@customer.example";
    for i in 0..6 {
        let raw = mail(
            &format!("Eager <{addr}>"),
            &format!("Question number {i}"),
            &format!("<eager-{i}@customer.example>"),
            &[],
            "Another question.\n",
        );
        let seq = d.send_ok(addr, &[SUPPORT], &raw);
        d.ticket_of(seq);
    }
    control_ack(&d, &sink);
    assert_eq!(
        d.tickets_total(),
        7,
        "six tickets from {addr} plus the control"
    );
    assert_eq!(
        sink.messages_to(addr).len(),
        5,
        "at most 5 acknowledgements per address per hour"
    );
    let suppressed = d
        .all_tickets()
        .iter()
        .filter_map(|t| id_string(&t["id"]))
        .any(|id| {
            event_kinds(&d.ticket(&id))
                .iter()
                .any(|k| k == "ack_suppressed")
        });
    assert!(
        suppressed,
        "the sixth ticket should record an ack_suppressed event"
    );
}

#[test]
fn bounce_to_verp_address_attaches_delivery_failed_to_the_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (id, ack) = dana_ticket(&d, &sink);
    let verp = header(&ack, "X-MailFrom").expect("X-MailFrom");
    assert!(
        verp.starts_with(&format!("support+b{id}.")),
        "envelope sender {verp}"
    );
    let bounce = dsn(&verp, &header_block(&ack), "dsn-verp");
    let seq = d.send_ok("", &[&verp], &bounce);
    assert_eq!(
        d.ticket_of(seq),
        id,
        "the bounce must attach to ticket {id}"
    );
    control_ack(&d, &sink);
    assert_eq!(
        d.tickets_total(),
        2,
        "ticket + control; the bounce made no ticket"
    );
    let t = d.ticket(&id);
    let kinds = event_kinds(&t);
    assert!(
        kinds.iter().any(|k| k == "delivery_failed"),
        "no delivery_failed event: {kinds:?}"
    );
    if let Some(m) = inbound_message(&t, "<dsn-verp@mx.customer.example>") {
        assert_eq!(m["kind"], "system", "a bounce is a system message: {m}");
    }
    assert_eq!(
        sink.messages_to("dana@customer.example").len(),
        1,
        "no second mail to the customer"
    );
    assert!(
        sink.messages_to("mailer-daemon@mx.customer.example")
            .is_empty()
    );
    assert_eq!(sink.count(), 2, "ack for dana + control ack only");
}

#[test]
fn bounce_quoting_our_message_id_attaches_to_the_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (id, ack) = dana_ticket(&d, &sink);
    // Sent to the plain address (a relay rewrote the envelope); only the quoted headers match.
    let bounce = dsn(SUPPORT, &header_block(&ack), "dsn-quoted");
    let seq = d.send_ok("", &[SUPPORT], &bounce);
    assert_eq!(
        d.ticket_of(seq),
        id,
        "the bounce quoting our Message-ID must attach to ticket {id}"
    );
    control_ack(&d, &sink);
    assert_eq!(d.tickets_total(), 2);
    assert!(
        event_kinds(&d.ticket(&id))
            .iter()
            .any(|k| k == "delivery_failed")
    );
    assert_eq!(sink.count(), 2);
}

#[test]
fn bounce_matching_no_ticket_is_quarantined() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let foreign = "From: Someone <someone@elsewhere.example>\r\nTo: dana@customer.example\r\nSubject: not ours\r\nMessage-ID: <foreign-1@elsewhere.example>\r\n\r\n";
    let bounce = dsn(SUPPORT, foreign, "dsn-stray");
    let seq = d.send_ok("", &[SUPPORT], &bounce);
    d.wait_message(seq, SECS_30);
    control_ack(&d, &sink);
    assert_eq!(
        d.tickets_total(),
        1,
        "only the control ticket; the stray bounce made none"
    );
    let q = d.api_ok("/api/v1/quarantine");
    assert_eq!(q["total"].as_u64(), Some(1), "{q}");
    let e = &q["entries"][0];
    assert_eq!(
        id_string(&e["seq"]).as_deref(),
        Some(seq.to_string().as_str()),
        "{q}"
    );
    for k in ["at", "reason", "from", "subject"] {
        assert!(e.get(k).is_some(), "quarantine entry lacks {k}: {e}");
    }
    let m = d.api_ok(&format!("/api/v1/messages/{seq}"));
    assert!(
        m["ticket"].is_null(),
        "quarantined message has no ticket: {m}"
    );
    assert_eq!(sink.count(), 1, "no mail to anyone about the stray bounce");
}
