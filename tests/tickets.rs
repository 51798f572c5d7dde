//! New tickets, acknowledgements and threading, end to end: smtplib → postdesk → aiosmtpd sink,
//! checked through the JSON API and the mail that reaches the sink.

mod common;
use common::*;
use regex::Regex;
use serde_json::Value;

const CUSTOMER: &str = "alice@customer.example";

/// Message-IDs compared without angle brackets (the API may keep or drop them).
fn mid(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn message_ids(ticket: &Value) -> Vec<String> {
    ticket["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("ticket without messages: {ticket}"))
        .iter()
        .map(|m| mid(m["message_id"].as_str().unwrap_or("")))
        .collect()
}

/// Sends a new customer mail, waits for its ticket and its acknowledgement at the sink.
/// Returns (seq, ticket id, the acknowledgement's raw bytes).
fn open_ticket(
    d: &Daemon,
    sink: &Sink,
    from_addr: &str,
    msgid: &str,
    subject: &str,
) -> (u64, String, Vec<u8>) {
    let before = sink.messages_to(from_addr).len();
    let raw = mail(
        &format!("Alice Customer <{from_addr}>"),
        subject,
        msgid,
        &[],
        "My printer is on fire.\nPlease help.\n",
    );
    let seq = d.send_ok(from_addr, &[SUPPORT], &raw);
    let id = d.ticket_of(seq);
    let ack = wait_until(SECS_30, "the acknowledgement at the sink", || {
        sink.messages_to(from_addr).into_iter().nth(before)
    });
    (seq, id, ack)
}

#[test]
fn new_ticket_gets_acknowledgement_with_all_headers() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (seq, id, ack) = open_ticket(
        &d,
        &sink,
        CUSTOMER,
        "<printer-1@customer.example>",
        "Printer on fire",
    );
    let ack_text = String::from_utf8_lossy(&ack).into_owned();
    let h =
        |name: &str| header(&ack, name).unwrap_or_else(|| panic!("ack lacks {name}:\n{ack_text}"));

    assert_eq!(bare_address(&h("To")), CUSTOMER, "To:\n{ack_text}");
    let from = h("From");
    assert!(
        from.contains("Example Support") && from.contains("<support@example.test>"),
        "From: {from}"
    );
    assert!(
        h("Subject").contains(&format!("[#{id}]")),
        "Subject lacks [#{id}]: {}",
        h("Subject")
    );
    assert_eq!(h("Auto-Submitted"), "auto-replied");
    assert_eq!(h("X-Auto-Response-Suppress"), "All");
    assert_eq!(h("X-Postdesk-Loop"), HOSTNAME);
    assert_eq!(mid(&h("In-Reply-To")), "printer-1@customer.example");
    let ack_mid = h("Message-ID");
    assert!(
        ack_mid.starts_with('<') && ack_mid.ends_with("@support.example.test>"),
        "Message-ID: {ack_mid}"
    );
    let reply_to = bare_address(&h("Reply-To"));
    let re_reply = Regex::new(&format!(r"^support\+t{id}\.[^@\s<>]+@example\.test$")).unwrap();
    assert!(
        re_reply.is_match(&reply_to),
        "Reply-To {reply_to:?} is not support+t{id}.<sig>@example.test"
    );
    let envelope = h("X-MailFrom");
    let re_verp = Regex::new(&format!(r"^support\+b{id}\.\d+\.[^@\s<>]+@example\.test$")).unwrap();
    assert!(
        re_verp.is_match(&envelope),
        "envelope sender {envelope:?} is not support+b{id}.<seq>.<sig>@example.test"
    );
    assert_eq!(h("X-RcptTo"), CUSTOMER);

    d.wait_idle(SECS_60);
    assert_eq!(sink.count(), 1, "exactly one acknowledgement");
    let m = d.api_ok(&format!("/api/v1/messages/{seq}"));
    assert_eq!(
        id_string(&m["seq"]).as_deref(),
        Some(seq.to_string().as_str()),
        "{m}"
    );
    assert_eq!(
        mid(m["message_id"].as_str().unwrap_or("")),
        "printer-1@customer.example",
        "{m}"
    );

    let t = d.ticket(&id);
    assert_eq!(id_string(&t["id"]).as_deref(), Some(id.as_str()));
    assert!(t["id"].is_string(), "ids are strings: {t}");
    assert_eq!(t["subject"].as_str(), Some("Printer on fire"), "{t}");
    assert_eq!(t["queue"].as_str(), Some("general"), "{t}");
    assert!(
        t["requester"].as_str().unwrap_or("").contains(CUSTOMER),
        "requester: {t}"
    );
    for field in [
        "status",
        "priority",
        "created_at",
        "updated_at",
        "assignee",
        "message_count",
    ] {
        assert!(t.get(field).is_some(), "ticket lacks {field}: {t}");
    }
    let msgs = t["messages"].as_array().unwrap();
    assert_eq!(
        t["message_count"].as_u64(),
        Some(msgs.len() as u64),
        "message_count vs messages: {t}"
    );
    assert_eq!(msgs[0]["direction"], "inbound", "{t}");
    assert_eq!(msgs[0]["kind"], "customer", "{t}");
    assert!(
        msgs[0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("printer is on fire"),
        "{t}"
    );
    let out = messages_dir(&t, "outbound");
    assert_eq!(
        out.len(),
        1,
        "the acknowledgement is an outbound message of the ticket: {t}"
    );
    assert_eq!(out[0]["kind"], "auto", "{t}");
    assert_eq!(
        mid(out[0]["message_id"].as_str().unwrap_or("")),
        mid(&ack_mid),
        "{t}"
    );
    let kinds = event_kinds(&t);
    for k in ["created", "acknowledged", "delivered"] {
        assert!(kinds.iter().any(|x| x == k), "no {k:?} event: {kinds:?}");
    }

    let list = d.api_ok("/api/v1/tickets");
    assert_eq!(list["total"].as_u64(), Some(1), "{list}");
    assert_eq!(
        id_string(&list["tickets"][0]["id"]).as_deref(),
        Some(id.as_str())
    );
    let h = d.health();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["tickets"].as_u64(), Some(1), "{h}");
}

#[test]
fn reply_with_in_reply_to_joins_the_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (_, id, ack) = open_ticket(
        &d,
        &sink,
        CUSTOMER,
        "<orig-1@customer.example>",
        "VPN broken",
    );
    let ack_mid = header(&ack, "Message-ID").unwrap();

    // A reply naming the customer's own original.
    let r1 = mail(
        "Alice Customer <alice@customer.example>",
        "Re: VPN broken",
        "<reply-1@customer.example>",
        &[
            "In-Reply-To: <orig-1@customer.example>",
            "References: <orig-1@customer.example>",
        ],
        "Also, it is still broken.\n",
    );
    let s1 = d.send_ok(CUSTOMER, &[SUPPORT], &r1);
    assert_eq!(
        d.ticket_of(s1),
        id,
        "reply by In-Reply-To (customer's Message-ID) must join ticket {id}"
    );

    // A reply to our acknowledgement (subject changed, no tag): threads by our Message-ID.
    let r2 = mail(
        "Alice Customer <alice@customer.example>",
        "something else entirely",
        "<reply-2@customer.example>",
        &[
            &format!("In-Reply-To: {ack_mid}"),
            &format!("References: <orig-1@customer.example>\r\n {ack_mid}"),
        ],
        "Thanks for the ticket number.\n",
    );
    let s2 = d.send_ok(CUSTOMER, &[SUPPORT], &r2);
    assert_eq!(
        d.ticket_of(s2),
        id,
        "reply to the ack's Message-ID must join ticket {id}"
    );

    d.wait_idle(SECS_60);
    assert_eq!(d.tickets_total(), 1);
    let t = d.ticket(&id);
    let inbound = messages_dir(&t, "inbound");
    assert_eq!(inbound.len(), 3, "3 inbound messages in the ticket: {t}");
    assert_eq!(
        t["message_count"].as_u64(),
        Some(t["messages"].as_array().unwrap().len() as u64),
        "{t}"
    );
    let ids = message_ids(&t);
    for m in [
        "orig-1@customer.example",
        "reply-1@customer.example",
        "reply-2@customer.example",
    ] {
        assert!(ids.contains(&m.to_string()), "{m} missing from {ids:?}");
    }
    // An event records why the reply joined: a message_added event naming the header match.
    let why = t["events"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "message_added" && {
            let d = e["detail"].to_string().to_ascii_lowercase();
            d.contains("in-reply-to") || d.contains("references")
        }
    });
    assert!(
        why,
        "no message_added event whose detail mentions In-Reply-To/References: {}",
        t["events"]
    );
    // Replies to a ticket are not acknowledged again.
    assert_eq!(
        sink.messages_to(CUSTOMER).len(),
        1,
        "only the first mail is acknowledged"
    );
}

#[test]
fn subject_tag_from_participant_joins_the_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (_, id, _) = open_ticket(
        &d,
        &sink,
        CUSTOMER,
        "<tag-1@customer.example>",
        "Invoice wrong",
    );
    let raw = mail(
        "Alice Customer <alice@customer.example>",
        &format!("Re: [#{id}] Invoice wrong"),
        "<tag-2@customer.example>",
        &[],
        "Forgot the attachment, sorry (no In-Reply-To here).\n",
    );
    let seq = d.send_ok(CUSTOMER, &[SUPPORT], &raw);
    assert_eq!(
        d.ticket_of(seq),
        id,
        "subject tag [#{id}] from a participant must join the ticket"
    );
    d.wait_idle(SECS_60);
    assert_eq!(d.tickets_total(), 1);
    assert_eq!(messages_dir(&d.ticket(&id), "inbound").len(), 2);
}

#[test]
fn subject_tag_from_stranger_makes_a_new_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (_, id, _) = open_ticket(
        &d,
        &sink,
        CUSTOMER,
        "<s-1@customer.example>",
        "Account locked",
    );
    let stranger = "mallory@evil.example";
    let raw = mail(
        &format!("Mallory <{stranger}>"),
        &format!("Re: [#{id}] Account locked"),
        "<s-2@evil.example>",
        &[],
        "Please send me the details of this ticket.\n",
    );
    let seq = d.send_ok(stranger, &[SUPPORT], &raw);
    let other = d.ticket_of(seq);
    assert_ne!(
        other, id,
        "a stranger's [#{id}] tag must not join the ticket"
    );
    d.wait_idle(SECS_60);
    assert_eq!(d.tickets_total(), 2);
    assert_eq!(
        messages_dir(&d.ticket(&id), "inbound").len(),
        1,
        "original ticket untouched"
    );
    let ids = message_ids(&d.ticket(&id));
    assert!(!ids.contains(&"s-2@evil.example".to_string()), "{ids:?}");
}

#[test]
fn reply_to_token_address_joins_the_ticket() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (_, id, ack) = open_ticket(
        &d,
        &sink,
        CUSTOMER,
        "<tok-1@customer.example>",
        "Password reset",
    );
    let token_addr = bare_address(&header(&ack, "Reply-To").expect("ack has Reply-To"));
    // No In-Reply-To, no tag: only the address threads it.
    let raw = format!(
        "From: Alice Customer <alice@customer.example>\r\nTo: {token_addr}\r\nSubject: one more thing\r\nMessage-ID: <tok-2@customer.example>\r\nDate: Thu, 26 Nov 2026 11:00:00 +0000\r\n\r\nIt worked after all.\r\n"
    );
    let seq = d.send_ok(CUSTOMER, &[&token_addr], raw.as_bytes());
    assert_eq!(
        d.ticket_of(seq),
        id,
        "mail to the token address {token_addr} must join ticket {id}"
    );
    d.wait_idle(SECS_60);
    assert_eq!(d.tickets_total(), 1);
    assert_eq!(messages_dir(&d.ticket(&id), "inbound").len(), 2);
}

#[test]
fn duplicate_message_id_is_stored_once() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let raw = mail(
        "Bob <bob@customer.example>",
        "Twice",
        "<dup-1@customer.example>",
        &[],
        "Sent twice by a confused MTA.\n",
    );
    let s1 = d.send_ok("bob@customer.example", &[SUPPORT], &raw);
    let id = d.ticket_of(s1);
    let s2 = d.send_ok("bob@customer.example", &[SUPPORT], &raw);
    assert_ne!(s1, s2, "each accepted message gets its own seq");
    let m2 = d.wait_message(s2, SECS_30);
    assert_eq!(
        id_string(&m2["duplicate_of"]).as_deref(),
        Some(s1.to_string().as_str()),
        "second copy must be reported as duplicate_of {s1}: {m2}"
    );
    d.wait_idle(SECS_60);
    assert_eq!(d.tickets_total(), 1);
    let t = d.ticket(&id);
    let inbound = messages_dir(&t, "inbound");
    assert_eq!(
        inbound.len(),
        1,
        "duplicate must not be a second message: {t}"
    );
    assert_eq!(
        sink.messages_to("bob@customer.example").len(),
        1,
        "one acknowledgement only"
    );
}

#[test]
fn ticket_list_is_newest_first_with_filters_and_pages() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let mut ids = Vec::new();
    for i in 0..3 {
        let addr = format!("lister{i}@customer.example");
        let raw = mail(
            &format!("Lister {i} <{addr}>"),
            &format!("List test {i}"),
            &format!("<list-{i}@customer.example>"),
            &[],
            "Hello.\n",
        );
        let seq = d.send_ok(&addr, &[SUPPORT], &raw);
        ids.push(d.ticket_of(seq));
    }
    d.wait_idle(SECS_60);
    let all = d.api_ok("/api/v1/tickets");
    assert_eq!(all["total"].as_u64(), Some(3), "{all}");
    let listed: Vec<String> = all["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| id_string(&t["id"]))
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first, "newest first");
    for t in all["tickets"].as_array().unwrap() {
        for f in [
            "id",
            "subject",
            "status",
            "priority",
            "queue",
            "assignee",
            "requester",
            "created_at",
            "updated_at",
            "message_count",
        ] {
            assert!(t.get(f).is_some(), "list entry lacks {f}: {t}");
        }
        assert!(t["id"].is_string(), "ids are strings: {t}");
    }
    let p1 = d.api_ok("/api/v1/tickets?limit=2&offset=0");
    let p2 = d.api_ok("/api/v1/tickets?limit=2&offset=2");
    assert_eq!(p1["total"].as_u64(), Some(3));
    assert_eq!(p1["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(p2["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(
        id_string(&p2["tickets"][0]["id"]).as_deref(),
        Some(ids[0].as_str())
    );
    let general = d.api_ok("/api/v1/tickets?queue=general");
    assert_eq!(general["total"].as_u64(), Some(3), "{general}");
    let other = d.api_ok("/api/v1/tickets?queue=no-such-queue");
    assert_eq!(other["total"].as_u64(), Some(0), "{other}");
    let status = all["tickets"][0]["status"].as_str().unwrap().to_string();
    assert!(
        ["new", "open", "pending", "resolved", "closed"].contains(&status.as_str()),
        "status {status}"
    );
    let same = d.api_ok(&format!("/api/v1/tickets?status={status}"));
    assert_eq!(same["total"].as_u64(), Some(3), "{same}");
    let big = d.api_ok("/api/v1/tickets?limit=1000");
    assert_eq!(big["tickets"].as_array().unwrap().len(), 3);
    // Keyset paging: the page after the newest one, by its id.
    let after_newest = d.api_ok(&format!(
        "/api/v1/tickets?status={status}&limit=1&before={}",
        newest_first[0]
    ));
    assert_eq!(
        id_string(&after_newest["tickets"][0]["id"]).as_deref(),
        Some(newest_first[1].as_str()),
        "{after_newest}"
    );
    assert_eq!(after_newest["total"].as_u64(), Some(3), "{after_newest}");
    let nobody = d.api_ok("/api/v1/tickets?assignee=nobody-at-all&tag=none");
    assert_eq!(nobody["total"].as_u64(), Some(0), "{nobody}");
    let (code, _) = d.api_get("/api/v1/tickets?before=yesterday");
    assert_eq!(code, 400);
}
