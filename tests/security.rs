//! Attacks on who gets into a ticket, reproduced through the real binary: a stranger who knows
//! a Message-ID, a forged requester's From, a VERP bounce address, a forged agent's From at the
//! comment address, a flood of Cc addresses, bare CRs in addresses and Message-IDs, and
//! acknowledgements as backscatter. Each test failed before its fix.

mod common;
use common::*;
use serde_json::Value;

const ALICE: &str = "alice@example.test";
const ANN: &str = "ann@customer.example";
const MALLORY: &str = "mallory@evil.example";
const SPY: &str = "spy@evil.example";
const COMMENT: &str = "support-comment@example.test";

fn start() -> (Sink, Daemon) {
    start_with(|_| {})
}

fn start_with(tweak: impl FnOnce(&mut DaemonConfig)) -> (Sink, Daemon) {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("agents", "notify", "true");
        c.set("agents", "comment_address", &q(COMMENT));
        tweak(c);
    });
    (sink, d)
}

/// Every envelope recipient of the mail at the sink whose body contains `needle`.
fn recipients_of(sink: &Sink, needle: &str) -> Vec<String> {
    let mut out: Vec<String> = sink
        .messages()
        .iter()
        .filter(|m| body_text(m).contains(needle))
        .filter_map(|m| header(m, "X-RcptTo"))
        .flat_map(|r| {
            r.split(',')
                .map(|a| bare_address(a).to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

struct Opened {
    id: String,
    /// Ann's Message-ID, without brackets.
    msgid: String,
    /// Alice's notification about the new ticket.
    note: Vec<u8>,
}

/// Ann opens a ticket (Cc `cc`, if any); waits for the acknowledgement and alice's notification.
fn open(d: &Daemon, sink: &Sink, tag: &str, cc: &[&str]) -> Opened {
    let alice_before = sink.messages_to(ALICE).len();
    let ann_before = sink.messages_to(ANN).len();
    let msgid = format!("{tag}@customer.example");
    let cc_header = format!("Cc: {}", cc.join(", "));
    let extra: Vec<&str> = if cc.is_empty() {
        vec![]
    } else {
        vec![&cc_header]
    };
    let raw = mail(
        &format!("Ann Customer <{ANN}>"),
        &format!("Account locked ({tag})"),
        &format!("<{msgid}>"),
        &extra,
        "My account is locked. Please reset my PIN.\n",
    );
    let seq = d.send_ok(ANN, &[SUPPORT], &raw);
    let id = d.ticket_of(seq);
    sink.nth_to(ANN, ann_before + 1);
    let note = sink.nth_to(ALICE, alice_before + 1);
    Opened { id, msgid, note }
}

/// Alice answers `note` (a notification) by mail with `body`; returns the seq of her mail.
fn alice_answers(d: &Daemon, note: &[u8], tag: &str, body: &str) -> u64 {
    let reply_to = bare_address(&header(note, "Reply-To").expect("notification has Reply-To"));
    let parent = header(note, "Message-ID").unwrap_or_default();
    let subject = header(note, "Subject").unwrap_or_default();
    let raw = mail(
        &format!("Alice Agent <{ALICE}>"),
        &format!("Re: {subject}"),
        &format!("<{tag}@example.test>"),
        &[&format!("In-Reply-To: {parent}")],
        body,
    );
    let raw = String::from_utf8(raw).unwrap().replace(
        "To: Support <support@example.test>",
        &format!("To: {reply_to}"),
    );
    d.send_ok(ALICE, &[&reply_to], raw.as_bytes())
}

fn participants(t: &Value) -> Vec<String> {
    t["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("no participants: {t}"))
        .iter()
        .map(|p| p.as_str().unwrap_or("").to_string())
        .collect()
}

fn events<'a>(t: &'a Value, kind: &str) -> Vec<&'a Value> {
    t["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

fn message_by_id<'a>(t: &'a Value, msgid: &str) -> &'a Value {
    t["messages"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["message_id"].as_str().unwrap_or("").contains(msgid))
        })
        .unwrap_or_else(|| panic!("no message {msgid} in {t}"))
}

/// Alice's answer reaches Ann and, once the queue is empty, nobody else.
fn reply_reaches_only(d: &Daemon, sink: &Sink, secret: &str, want: &[&str]) {
    wait_until(SECS_30, "the agent's reply at the sink", || {
        (!recipients_of(sink, secret).is_empty()).then_some(())
    });
    d.wait_idle(SECS_60);
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(recipients_of(sink, secret), want, "who got {secret:?}");
}

#[test]
fn a_stranger_who_knows_a_message_id_joins_the_conversation_but_gets_no_replies() {
    let (sink, d) = start();
    let o = open(&d, &sink, "mid-1", &[]);
    let alice_before = sink.messages_to(ALICE).len();
    // Mallory read Ann's Message-ID somewhere and answers it, copying a friend.
    let raw = mail(
        &format!("Mallory <{MALLORY}>"),
        "Re: Account locked",
        "<mallory-1@evil.example>",
        &[
            &format!("In-Reply-To: <{}>", o.msgid),
            &format!("References: <{}>", o.msgid),
            &format!("Cc: {SPY}"),
        ],
        "I work with Ann; please send the reset code to me too.\n",
    );
    let seq = d.send_ok(MALLORY, &[SUPPORT], &raw);
    assert_eq!(d.ticket_of(seq), o.id, "the message joins the conversation");
    // Alice is told, and told how to let Mallory in.
    let note = sink.nth_to(ALICE, alice_before + 1);
    let text = body_text(&note);
    assert!(text.contains("NOT A PARTICIPANT"), "{text}");
    assert!(
        text.contains(&format!("#participant add {MALLORY}")),
        "{text}"
    );
    let t = d.ticket(&o.id);
    assert_eq!(participants(&t), vec![ANN.to_string()], "{t}");
    let m = message_by_id(&t, "mallory-1@evil.example");
    assert!(
        m["non_participant"]
            .as_str()
            .is_some_and(|r| r.contains("not a participant")),
        "{m}"
    );
    assert_eq!(events(&t, "non_participant").len(), 1, "{t}");

    alice_answers(&d, &o.note, "a-1", "Your PIN reset code is 4711.\n");
    reply_reaches_only(&d, &sink, "4711", &[ANN]);

    // One command lets Mallory in; the next reply reaches Mallory too (Spy still not).
    alice_answers(
        &d,
        &o.note,
        "a-2",
        "#participant add mallory@evil.example\n",
    );
    wait_until(SECS_30, "mallory added", || {
        participants(&d.ticket(&o.id))
            .contains(&MALLORY.to_string())
            .then_some(())
    });
    alice_answers(&d, &o.note, "a-3", "Mallory, your code is 9000.\n");
    reply_reaches_only(&d, &sink, "9000", &[ANN, MALLORY]);
}

#[test]
fn a_forged_requester_from_brings_nobody_in() {
    let (sink, d) = start();
    let o = open(&d, &sink, "forged-1", &[]);
    // Ann's From with the ticket's tag and a Cc, from Mallory's server.
    let raw = mail(
        &format!("Ann Customer <{ANN}>"),
        &format!("Re: [#{}] Account locked", o.id),
        "<forged-2@evil.example>",
        &[&format!("Cc: {SPY}")],
        "Please also send everything to my colleague.\n",
    );
    let seq = d.send_ok(MALLORY, &[SUPPORT], &raw);
    assert_eq!(d.ticket_of(seq), o.id);
    let t = d.ticket(&o.id);
    assert_eq!(participants(&t), vec![ANN.to_string()], "{t}");
    let m = message_by_id(&t, "forged-2@evil.example");
    assert!(
        m["non_participant"]
            .as_str()
            .is_some_and(|r| r.contains("claims to be from participant")),
        "{m}"
    );
    alice_answers(&d, &o.note, "f-1", "Your PIN reset code is 8150.\n");
    reply_reaches_only(&d, &sink, "8150", &[ANN]);
}

#[test]
fn the_bounce_address_threads_only_delivery_reports() {
    let (sink, d) = start();
    let o = open(&d, &sink, "verp-1", &[]);
    let ack = sink.nth_to(ANN, 1);
    // Every recipient sees our VERP address as the envelope sender of the acknowledgement.
    let verp = bare_address(&header(&ack, "X-MailFrom").expect("sink records MAIL FROM"));
    assert!(verp.starts_with("support+b"), "{verp}");
    let raw = mail(
        &format!("Mallory <{MALLORY}>"),
        "Hello",
        "<verp-2@evil.example>",
        &[&format!("Cc: {SPY}")],
        "Add me to the ticket please.\n",
    );
    let seq = d.send_ok(MALLORY, &[&verp], &raw);
    assert_ne!(
        d.ticket_of(seq),
        o.id,
        "an ordinary mail to the bounce address"
    );
    let t = d.ticket(&o.id);
    assert_eq!(participants(&t), vec![ANN.to_string()], "{t}");
    // A real delivery report to the same address still finds the ticket.
    let ack_id = header(&ack, "Message-ID").unwrap();
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n\
         To: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <dsn-1@mx.customer.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.customer.example\r\n\r\n\
         Final-Recipient: rfc822; {ANN}\r\nAction: failed\r\nStatus: 5.2.2\r\n\
         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ack_id}\r\n\
         --b--\r\n"
    );
    let seq = d.send_ok("", &[&verp], dsn.as_bytes());
    assert_eq!(d.ticket_of(seq), o.id, "the DSN joins its ticket");
}

#[test]
fn the_comment_address_needs_more_than_an_agents_from() {
    let (sink, d) = start();
    let o = open(&d, &sink, "comment-1", &[]);
    let alice_before = sink.messages_to(ALICE).len();
    // A stranger writes as Alice to the comment address with commands.
    let raw = mail(
        &format!("Alice Agent <{ALICE}>"),
        &format!("[#{}] housekeeping", o.id),
        "<forged-comment@evil.example>",
        &[],
        "#close\n#assign bob\n#priority urgent\n#tag +owned\n",
    );
    d.send_ok(MALLORY, &[COMMENT], &raw);
    d.wait_processed(SECS_30);
    let t = d.ticket(&o.id);
    assert_eq!(t["status"], "new", "{t}");
    assert_eq!(t["priority"], "normal", "{t}");
    assert!(t["assignee"].is_null(), "{t}");
    assert!(events(&t, "tags").is_empty(), "{t}");
    let q = d.api_ok("/api/v1/quarantine")["entries"].clone();
    assert!(
        q.as_array().is_some_and(|q| q
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("needs proof"))),
        "{q}"
    );
    // The real Alice hears of it, with her own comment address.
    let notice = sink.nth_to(ALICE, alice_before + 1);
    let text = body_text(&notice);
    assert!(text.contains("not posted"), "{text}");
    let own = text
        .split_whitespace()
        .find(|w| w.starts_with("support-comment+c"))
        .unwrap_or_else(|| panic!("no comment address in the notice: {text}"))
        .to_string();
    // With it, her command applies.
    let raw = mail(
        &format!("Alice Agent <{ALICE}>"),
        &format!("[#{}] housekeeping", o.id),
        "<real-comment@example.test>",
        &[],
        "#priority high\nChecked the logs.\n",
    );
    d.send_ok(ALICE, &[&own], &raw);
    wait_until(SECS_30, "priority high", || {
        (d.ticket(&o.id)["priority"] == "high").then_some(())
    });
}

#[test]
fn a_flood_of_cc_addresses_is_capped() {
    let (sink, d) = start_with(|c| {
        c.set("tickets", "max_participants_per_message", "5");
        c.set("tickets", "max_participants_per_ticket", "8");
    });
    let cc: Vec<String> = (0..45_000)
        .map(|i| format!("cc{i}@customer.example"))
        .collect();
    let cc_refs: Vec<&str> = cc.iter().map(String::as_str).collect();
    let o = open(&d, &sink, "flood-1", &cc_refs);
    let t = d.ticket(&o.id);
    assert_eq!(participants(&t).len(), 6, "Ann and five Cc");
    let capped = events(&t, "participants_capped");
    assert_eq!(capped.len(), 1, "{capped:?}");
    alice_answers(&d, &o.note, "flood-a", "Reset code 2718.\n");
    wait_until(SECS_30, "the reply", || {
        (recipients_of(&sink, "2718").len() == 6).then_some(())
    });
    d.wait_idle(SECS_60);
    assert_eq!(recipients_of(&sink, "2718").len(), 6);
}

#[test]
fn bare_cr_in_addresses_and_message_ids_reaches_nothing_we_send() {
    let (sink, d) = start();
    let script = format!(
        "EHLO customer.example\r\nMAIL FROM:<{ANN}>\r\nRCPT TO:<{SUPPORT}>\r\nDATA\r\n\
         From: Ann <{ANN}>\r\nTo: {SUPPORT}\r\n\
         Cc: friend@customer.example\rRCPT TO:<victim@elsewhere.example>\r\n\
         Message-ID: <cr-1@customer.example\rBcc: victim@elsewhere.example>\r\n\
         Subject: Help\rBcc: victim@elsewhere.example\r\n\r\nPlease help.\r\n.\r\nQUIT\r\n"
    );
    let transcript = raw_smtp(d.smtp_port, script.as_bytes());
    assert!(transcript.contains("250 2.0.0"), "{transcript}");
    let ack = sink.nth_to(ANN, 1);
    d.wait_idle(SECS_60);
    assert!(sink.messages_to("victim@elsewhere.example").is_empty());
    let ack_text = String::from_utf8_lossy(&ack);
    let head = ack_text.split("\r\n\r\n").next().unwrap_or("");
    for line in head.lines() {
        let l = line.to_ascii_lowercase();
        assert!(
            !l.starts_with("bcc:") && !l.starts_with("in-reply-to:"),
            "{ack_text}"
        );
    }
    assert!(
        !head.replace("\r\n", "\n").contains('\r'),
        "bare CR in our headers:\n{ack_text}"
    );
    let sink_log = sink.log();
    assert!(!sink_log.contains("victim"), "{sink_log}");
    let id = d.all_tickets()[0]["id"].clone();
    let t = d.ticket(&id_string(&id).unwrap());
    assert!(!events(&t, "invalid_input").is_empty(), "{t}");
    assert!(!participants(&t).iter().any(|p| p.contains('\r')), "{t}");
}

#[test]
fn acknowledgements_are_no_backscatter_and_stay_bounded() {
    let (sink, d) = start_with(|c| {
        c.set("acknowledgement", "max_per_hour", "4");
    });
    // A forged From, sent from an unrelated domain: no acknowledgement to the victim.
    let victim = "victim@elsewhere.example";
    let raw = mail(
        &format!("Victim <{victim}>"),
        "Buy now",
        "<bs-1@evil.example>",
        &[],
        "spam\n",
    );
    let seq = d.send_ok(MALLORY, &[SUPPORT], &raw);
    let t = d.ticket(&d.ticket_of(seq));
    let why = events(&t, "ack_suppressed");
    assert!(
        why.iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("nothing vouches")),
        "{t}"
    );
    // Forwarded through SRS: the original domain is Ann's, so she is answered.
    let raw = mail(
        &format!("Ann <{ANN}>"),
        "Forwarded to you",
        "<srs-1@customer.example>",
        &[],
        "Hi.\n",
    );
    d.send_ok(
        "SRS0=abcd=T3=customer.example=ann@forwarder.example",
        &[SUPPORT],
        &raw,
    );
    sink.nth_to(ANN, 1);
    // A 1 MiB subject, Message-ID and References: the acknowledgement stays small, every line short.
    let big_id = format!("<{}@customer.example>", "x".repeat(700_000));
    let refs: String = (0..20_000)
        .map(|i| format!(" <ref{i}.{}@customer.example>", "r".repeat(30)))
        .collect();
    let raw = mail(
        "Bob <bob@customer.example>",
        &"S".repeat(1 << 20),
        &big_id,
        &[&format!("References:{refs}")],
        "Big headers.\n",
    );
    d.send_ok("bob@customer.example", &[SUPPORT], &raw);
    let ack = sink.nth_to("bob@customer.example", 1);
    assert!(
        ack.len() < 64 * 1024,
        "acknowledgement of {} bytes",
        ack.len()
    );
    let longest = ack
        .split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    assert!(longest <= 998, "a line of {longest} bytes");
    // The global cap: two acknowledgements so far; two more pass, the fifth does not.
    for i in 0..3 {
        let from = format!("c{i}@customer.example");
        let raw = mail(
            &from,
            "Hello",
            &format!("<cap-{i}@customer.example>"),
            &[],
            "Hi\n",
        );
        d.send_ok(&from, &[SUPPORT], &raw);
    }
    d.wait_idle(SECS_60);
    let acked = (0..3)
        .filter(|i| {
            !sink
                .messages_to(&format!("c{i}@customer.example"))
                .is_empty()
        })
        .count();
    assert_eq!(acked, 2, "at most 4 acknowledgements an hour in all");
    let capped = d
        .all_tickets()
        .iter()
        .filter_map(|t| id_string(&t["id"]))
        .map(|id| d.ticket(&id))
        .filter(|t| {
            events(t, "ack_suppressed")
                .iter()
                .any(|e| e["detail"].as_str().unwrap_or("").contains("in all"))
        })
        .count();
    assert_eq!(capped, 1);
}

#[test]
fn every_recipient_of_a_reply_gets_a_reply_address_of_their_own() {
    let (sink, d) = start();
    let colleague = "colleague@customer.example";
    let o = open(&d, &sink, "cc-1", &[colleague]);
    let t = d.ticket(&o.id);
    assert_eq!(
        participants(&t),
        vec![ANN.to_string(), colleague.to_string()]
    );
    alice_answers(&d, &o.note, "cc-a", "Try the code 3141.\n");
    reply_reaches_only(&d, &sink, "3141", &[ANN, colleague]);
    let copy = |to: &str| {
        sink.messages_to(to)
            .into_iter()
            .find(|m| body_text(m).contains("3141"))
            .unwrap()
    };
    let (for_ann, for_colleague) = (copy(ANN), copy(colleague));
    let reply_to = |m: &[u8]| bare_address(&header(m, "Reply-To").unwrap());
    assert_ne!(reply_to(&for_ann), reply_to(&for_colleague));
    assert_eq!(
        header(&for_ann, "Message-ID"),
        header(&for_colleague, "Message-ID")
    );
    // The colleague answers to their own reply address, with nothing else to thread by.
    let raw = mail(
        &format!("Colleague <{colleague}>"),
        "it works",
        "<cc-2@customer.example>",
        &[],
        "Thanks, it works now.\n",
    );
    let seq = d.send_ok(colleague, &[&reply_to(&for_colleague)], &raw);
    assert_eq!(d.ticket_of(seq), o.id);
    let t = d.ticket(&o.id);
    let added = events(&t, "message_added");
    assert!(
        added
            .iter()
            .any(|e| e["detail"].as_str().unwrap_or("").contains("reply address")),
        "{t}"
    );
}

/// The response head of `GET path` (with the bearer token when `token`), lower-cased.
fn response_head(port: u16, path: &str, token: bool) -> String {
    let token = token.then_some(API_TOKEN);
    let (_, head, _) = http_request(port, "GET", path, token, None).expect("HTTP GET");
    head.to_ascii_lowercase()
}

#[test]
fn every_http_response_carries_the_security_headers() {
    let (sink, d) = start();
    open(&d, &sink, "headers-1", &[]);
    for (path, token, status) in [
        ("/api/v1/health", false, "200"),
        ("/api/v1/tickets", false, "401"),
        ("/api/v1/tickets/1", true, "200"),
        ("/api/v1/messages/1/raw", true, "200"),
        ("/no/such/page", false, "404"),
    ] {
        let head = response_head(d.web_port, path, token);
        assert!(
            head.starts_with(&format!("http/1.1 {status}")),
            "{path}: {head}"
        );
        for want in [
            "content-security-policy: default-src 'none'; frame-ancestors 'none'",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
        ] {
            assert!(head.contains(want), "{path} lacks {want:?}:\n{head}");
        }
    }
}
