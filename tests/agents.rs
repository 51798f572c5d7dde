//! Agents working from their own mail client, end to end: a customer's mail → a notification to
//! the queue's agents at the sink → the agent's reply (as real clients write it) to the signed
//! Reply-To → the customer's reply from the support address. Spoofed and replayed agent mail,
//! commands by mail, the comment address and collisions between two agents.

mod common;
use common::*;
use mail_parser::{MessageParser, MimeHeaders};
use regex::Regex;
use serde_json::Value;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const COMMENT: &str = "support-comment@example.test";

fn start() -> (Sink, Daemon) {
    start_with(|_| {})
}

fn start_with(tweak: impl FnOnce(&mut DaemonConfig)) -> (Sink, Daemon) {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("agents", "notify", "true");
        c.set("agents", "comment_address", &q(COMMENT));
        c.set("agents", "trusted_authserv_id", &q("mx.example.test"));
        tweak(c);
    });
    (sink, d)
}

fn mid(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Messages to `addr` whose subject contains `needle`.
fn to_with_subject(sink: &Sink, addr: &str, needle: &str) -> Vec<Vec<u8>> {
    sink.messages_to(addr)
        .into_iter()
        .filter(|m| header(m, "Subject").is_some_and(|s| s.contains(needle)))
        .collect()
}

fn wait_subject(sink: &Sink, addr: &str, needle: &str, n: usize) -> Vec<u8> {
    wait_until(
        SECS_30,
        &format!("mail {n} to {addr} with {needle:?} in the subject"),
        || to_with_subject(sink, addr, needle).into_iter().nth(n - 1),
    )
}

struct Opened {
    id: String,
    customer_msgid: String,
    /// The notification each agent got, by address.
    notes: Vec<(String, Vec<u8>)>,
}

impl Opened {
    fn to(&self, agent: &str) -> &[u8] {
        &self
            .notes
            .iter()
            .find(|(a, _)| a == agent)
            .unwrap_or_else(|| panic!("no notification for {agent}"))
            .1
    }

    /// The signed address `agent` replies to.
    fn token(&self, agent: &str) -> String {
        bare_address(&header(self.to(agent), "Reply-To").expect("notification has Reply-To"))
    }
}

/// A customer opens a ticket in the general queue; waits for the acknowledgement and for the
/// notifications to alice and bob (the general queue's agents).
fn open(d: &Daemon, sink: &Sink, customer: &str, tag: &str) -> Opened {
    let alice_before = sink.messages_to(ALICE).len();
    let bob_before = sink.messages_to(BOB).len();
    let msgid = format!("<{tag}@customer.example>");
    let raw = mail(
        &format!("Carla Customer <{customer}>"),
        &format!("Cannot log in ({tag})"),
        &msgid,
        &[],
        "Hello,\nI cannot log in since this morning.\nCarla\n",
    );
    let seq = d.send_ok(customer, &[SUPPORT], &raw);
    let id = d.ticket_of(seq);
    sink.nth_to(customer, sink.messages_to(customer).len().max(1));
    let a = sink.nth_to(ALICE, alice_before + 1);
    let b = sink.nth_to(BOB, bob_before + 1);
    Opened {
        id,
        customer_msgid: mid(&msgid),
        notes: vec![(ALICE.into(), a), (BOB.into(), b)],
    }
}

/// An agent's reply as a mail client writes it: to the notification's Reply-To, In-Reply-To the
/// notification, with the notification quoted below.
fn agent_reply(from: &str, to: &str, notification: &[u8], msgid: &str, body: &str) -> Vec<u8> {
    let subject = header(notification, "Subject").unwrap_or_default();
    let parent = header(notification, "Message-ID").unwrap_or_default();
    let quoted: String = body_text(notification)
        .lines()
        .map(|l| format!("> {l}\n"))
        .collect();
    let raw = mail(
        &format!("Agent <{from}>"),
        &format!("Re: {subject}"),
        msgid,
        &[
            &format!("In-Reply-To: {parent}"),
            &format!("References: {parent}"),
        ],
        &format!(
            "{body}\n\nOn Thu, 26 Nov 2026 at 10:00, Support wrote:\n{quoted}\n-- \nAlice Agent\n{from}\n"
        ),
    );
    set_to(&raw, to)
}

/// Replaces the To header of a CRLF message.
fn set_to(raw: &[u8], to: &str) -> Vec<u8> {
    rewrite_headers(raw, &["to"], &[&format!("To: {to}")])
}

/// Drops the named headers (with their continuation lines) and puts `add` on top.
fn rewrite_headers(raw: &[u8], drop: &[&str], add: &[&str]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut out = String::new();
    for a in add {
        out.push_str(a);
        out.push('\n');
    }
    let mut skipping = false;
    for line in head.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        skipping = drop.contains(&name.as_str());
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(body);
    to_crlf(out.as_bytes())
}

fn event_with<'a>(ticket: &'a Value, kind: &str) -> Vec<&'a Value> {
    ticket["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

fn quarantine(d: &Daemon) -> Vec<Value> {
    d.api_ok("/api/v1/quarantine")["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn agent_messages(t: &Value) -> Vec<Value> {
    messages_dir(t, "outbound")
        .into_iter()
        .filter(|m| m["kind"] == "agent")
        .collect()
}

#[test]
fn round_trip_notification_reply_relayed_to_the_customer() {
    let (sink, d) = start();
    let customer = "carla@customer.example";
    let o = open(&d, &sink, customer, "rt-1");

    // Notifications: alice and bob (general), not carol (billing).
    let n = o.to(ALICE);
    let n_text = String::from_utf8_lossy(n).into_owned();
    let from = header(n, "From").unwrap();
    assert!(
        from.contains("Carla Customer via Example Support")
            && from.contains("<support@example.test>"),
        "From: {from}"
    );
    assert!(
        header(n, "Subject")
            .unwrap()
            .contains(&format!("[#{}]", o.id)),
        "{n_text}"
    );
    assert_eq!(
        header(n, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(header(n, "X-Postdesk-Loop").as_deref(), Some(HOSTNAME));
    let re = Regex::new(&format!(
        r"^support\+a{}\.alice\.0\.[0-9]+\.[a-z2-7]+@example\.test$",
        o.id
    ))
    .unwrap();
    assert!(re.is_match(&o.token(ALICE)), "Reply-To {}", o.token(ALICE));
    assert!(o.token(BOB).contains(".bob.0."), "{}", o.token(BOB));
    let text = body_text(n);
    for want in [
        "I cannot log in since this morning",
        "status new",
        "queue general",
        "#close",
    ] {
        assert!(text.contains(want), "notification lacks {want:?}:\n{text}");
    }
    assert!(
        mid(&header(n, "Message-ID").unwrap()).ends_with(&format!("@{HOSTNAME}")),
        "{n_text}"
    );
    d.wait_idle(SECS_60);
    assert!(
        sink.messages_to("carol@example.test").is_empty(),
        "carol serves billing only"
    );

    // alice presses Reply.
    let reply = agent_reply(
        ALICE,
        &o.token(ALICE),
        n,
        "<alice-1@example.test>",
        "Hi Carla,\n\nplease try resetting your password at https://example.test/reset.\n\nAlice",
    );
    d.send_ok(ALICE, &[&o.token(ALICE)], &reply);
    let got = sink.nth_to(customer, 2);
    let got_text = String::from_utf8_lossy(&got).into_owned();
    let from = header(&got, "From").unwrap();
    assert!(
        from.contains("Alice Example (Example Support)"),
        "agent's display name (rules/agents.toml) in From: {from}"
    );
    assert_eq!(bare_address(&from), SUPPORT, "{got_text}");
    assert_eq!(bare_address(&header(&got, "To").unwrap()), customer);
    assert!(
        header(&got, "Subject")
            .unwrap()
            .contains(&format!("[#{}]", o.id)),
        "{got_text}"
    );
    assert_eq!(mid(&header(&got, "In-Reply-To").unwrap()), o.customer_msgid);
    assert!(
        header(&got, "References")
            .unwrap()
            .contains(&o.customer_msgid),
        "{got_text}"
    );
    assert!(
        bare_address(&header(&got, "Reply-To").unwrap())
            .starts_with(&format!("support+t{}.", o.id)),
        "{got_text}"
    );
    assert!(
        header(&got, "Auto-Submitted").is_none(),
        "a person wrote it"
    );
    let body = body_text(&got);
    assert!(
        body.contains("please try resetting your password"),
        "{body}"
    );
    assert!(!body.contains("wrote:"), "quoted text stripped:\n{body}");
    assert!(
        !body.contains("I cannot log in"),
        "quoted text stripped:\n{body}"
    );
    assert!(
        !got_text.to_ascii_lowercase().contains(ALICE),
        "the agent's address reached the customer:\n{got_text}"
    );
    let envelope = header(&got, "X-MailFrom").unwrap();
    assert!(
        envelope.starts_with(&format!("support+b{}.", o.id)),
        "{envelope}"
    );

    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    let replies = agent_messages(&t);
    assert_eq!(replies.len(), 1, "{t}");
    assert!(
        replies[0]["text"]
            .as_str()
            .unwrap()
            .contains("resetting your password"),
        "{t}"
    );
    assert_eq!(t["status"], "open", "a reply opens a new ticket: {t}");
    let ev = event_with(&t, "replied");
    assert_eq!(ev.len(), 1, "{t}");
    assert_eq!(ev[0]["actor"], "alice");
    assert_eq!(event_with(&t, "notified").len(), 1, "{t}");
    // The agent's own mail is kept (raw, byte-exact) but not listed as a ticket message.
    assert!(
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["from"].as_str().unwrap_or("").contains(ALICE)),
        "{t}"
    );

    // The customer answers the agent's reply: it threads, and the agents hear about it.
    let alice_before = sink.messages_to(ALICE).len();
    let answer = mail(
        &format!("Carla Customer <{customer}>"),
        &header(&got, "Subject").unwrap(),
        "<rt-2@customer.example>",
        &[&format!(
            "In-Reply-To: {}",
            header(&got, "Message-ID").unwrap()
        )],
        "That worked, thanks!\n",
    );
    let seq = d.send_ok(customer, &[SUPPORT], &answer);
    assert_eq!(d.ticket_of(seq), o.id);
    let n2 = sink.nth_to(ALICE, alice_before + 1);
    assert!(body_text(&n2).contains("That worked, thanks!"));
    assert!(
        o.token(ALICE) != bare_address(&header(&n2, "Reply-To").unwrap()),
        "the new notification carries the new ticket version"
    );
    assert!(bare_address(&header(&n2, "Reply-To").unwrap()).contains(".alice.1."));
}

#[test]
fn reply_without_reply_to_is_recognised_by_in_reply_to() {
    let (sink, d) = start();
    let customer = "dora@customer.example";
    let o = open(&d, &sink, customer, "irt-1");
    // Sent to the plain support address: only In-Reply-To names the notification.
    let reply = agent_reply(
        ALICE,
        SUPPORT,
        o.to(ALICE),
        "<alice-irt@example.test>",
        "Fixed it for you.",
    );
    d.send_ok(ALICE, &[SUPPORT], &reply);
    let got = sink.nth_to(customer, 2);
    assert!(body_text(&got).contains("Fixed it for you."));
    d.wait_idle(SECS_60);
    assert_eq!(d.tickets_total(), 1, "no new ticket for the agent's mail");
}

/// The reply fixtures of real mail clients (fixtures/reply-stripping/talon/standard_replies, see
/// its MANIFEST.md), addressed at test time from the agent to the notification's Reply-To.
#[test]
fn replies_composed_by_real_mail_clients() {
    let (sink, d) = start();
    let customer = "erin@customer.example";
    let o = open(&d, &sink, customer, "clients-1");
    let dir = repo_root().join("fixtures/reply-stripping/talon/standard_replies");
    let clients = [
        "gmail.eml",
        "outlook.eml",
        "apple_mail.eml",
        "thunderbird.eml",
    ];
    for (i, file) in clients.iter().enumerate() {
        let raw = std::fs::read(dir.join(file)).unwrap();
        let raw = rewrite_headers(
            &raw,
            &["from", "to", "cc", "sender", "reply-to", "message-id"],
            &[
                "From: Alice Agent <alice@example.test>",
                &format!("To: {}", o.token(ALICE)),
                &format!("Message-ID: <client-{i}@example.test>"),
            ],
        );
        d.send_ok(ALICE, &[&o.token(ALICE)], &raw);
        let got = sink.nth_to(customer, 2 + i);
        let body = body_text(&got);
        assert_eq!(body.trim(), "Hello", "{file}: relayed text:\n{body}");
        let all = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(!all.contains(ALICE), "{file}: agent address leaked:\n{all}");
        assert!(
            !all.contains("wrote:") && !all.contains("> hi"),
            "{file}:\n{all}"
        );
    }
    d.wait_idle(SECS_60);
    assert_eq!(agent_messages(&d.ticket(&o.id)).len(), clients.len());
}

#[test]
fn attachments_are_carried_to_the_customer() {
    let (sink, d) = start();
    let customer = "fay@customer.example";
    let o = open(&d, &sink, customer, "att-1");
    let token = o.token(ALICE);
    let raw = format!(
        "From: Alice <alice@example.test>\r\nTo: {token}\r\nSubject: Re: manual\r\nMessage-ID: <att-reply@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe manual is attached.\r\n--XX\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-ID: <logo@example.test>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--XX\r\nContent-Type: application/pdf; name=\"manual.pdf\"\r\nContent-Disposition: attachment; filename=\"manual.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKMSAwIG9iago=\r\n--XX--\r\n"
    );
    d.send_ok(ALICE, &[&token], raw.as_bytes());
    let got = sink.nth_to(customer, 2);
    let msg = MessageParser::default().parse(&got).unwrap();
    assert!(
        msg.body_text(0)
            .unwrap()
            .contains("The manual is attached.")
    );
    let att: Vec<_> = msg.attachments().collect();
    assert_eq!(
        att.len(),
        1,
        "the PDF, not the inline signature logo: {}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(att[0].attachment_name(), Some("manual.pdf"));
    assert!(att[0].contents().starts_with(b"%PDF-1.4"));

    // An attachment without any text is a reply too.
    let raw = format!(
        "From: Alice <alice@example.test>\r\nTo: {token}\r\nSubject: Re: manual\r\nMessage-ID: <att-only@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"YY\"\r\n\r\n--YY\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\r\n--YY\r\nContent-Type: text/csv; name=\"log.csv\"\r\nContent-Disposition: attachment; filename=\"log.csv\"\r\n\r\na,b\r\n1,2\r\n--YY--\r\n"
    );
    d.send_ok(ALICE, &[&token], raw.as_bytes());
    let got = sink.nth_to(customer, 3);
    let msg = MessageParser::default().parse(&got).unwrap();
    let att: Vec<_> = msg.attachments().collect();
    assert_eq!(att.len(), 1, "{}", String::from_utf8_lossy(&got));
    assert_eq!(att[0].attachment_name(), Some("log.csv"));
}

#[test]
fn spoofed_forged_and_replayed_agent_mail_is_quarantined_with_a_notice() {
    let (sink, d) = start();
    let c1 = "gail@customer.example";
    let c2 = "hank@customer.example";
    let o1 = open(&d, &sink, c1, "spoof-1");
    let o2 = open(&d, &sink, c2, "spoof-2");
    let t1 = o1.token(ALICE);
    let sig = t1
        .split('.')
        .nth(3)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let forged_sig = t1.replace(&sig, &"a".repeat(sig.len()));
    // alice's token of ticket 1, with ticket 2's number: the signature no longer fits.
    let replayed = t1.replacen(&format!("+a{}.", o1.id), &format!("+a{}.", o2.id), 1);
    let note = o1.to(ALICE);
    let cases: Vec<(&str, String, Vec<&str>, &str, &str)> = vec![
        // (From, To, extra headers, who gets the notice, reason fragment)
        (
            "mallory@evil.example",
            t1.clone(),
            vec![],
            ALICE,
            "not an address of agent alice",
        ),
        (
            BOB,
            t1.clone(),
            vec![],
            ALICE,
            "not an address of agent alice",
        ),
        (ALICE, forged_sig, vec![], ALICE, "no valid signature"),
        (ALICE, replayed, vec![], ALICE, "no valid signature"),
        (
            ALICE,
            o1.token(BOB),
            vec![],
            BOB,
            "not an address of agent bob",
        ),
        (
            ALICE,
            t1.clone(),
            vec![
                "Authentication-Results: mx.example.test; dkim=fail header.d=example.test; dmarc=fail",
            ],
            ALICE,
            "dmarc=fail",
        ),
    ];
    for (i, (from, to, extra, _, _)) in cases.iter().enumerate() {
        let mut raw = agent_reply(
            from,
            to,
            note,
            &format!("<spoof-{i}@example.test>"),
            "Please send me your password.",
        );
        if !extra.is_empty() {
            raw = rewrite_headers(&raw, &[], extra);
        }
        d.send_ok(from, &[to], &raw);
    }
    d.wait_idle(SECS_60);
    // Nothing posted, nothing sent to the customers beyond their acknowledgements.
    assert_eq!(sink.messages_to(c1).len(), 1);
    assert_eq!(sink.messages_to(c2).len(), 1);
    for id in [&o1.id, &o2.id] {
        let t = d.ticket(id);
        assert!(agent_messages(&t).is_empty(), "{t}");
    }
    let q = quarantine(&d);
    assert_eq!(q.len(), cases.len(), "{q:?}");
    for (i, (from, _, _, _, why)) in cases.iter().enumerate() {
        let e = q
            .iter()
            .find(|e| {
                e["subject"].as_str().is_some()
                    && e["from"] == *from
                    && e["reason"].as_str().unwrap().contains(why)
            })
            .unwrap_or_else(|| {
                panic!("case {i}: no quarantine entry from {from} with {why:?}: {q:?}")
            });
        assert!(e["reason"].as_str().unwrap().contains("not posted"), "{e}");
    }
    // Each rejected mail gave its claimed agent a notice at their configured address.
    let alice_notices = to_with_subject(&sink, ALICE, "Not posted");
    let bob_notices = to_with_subject(&sink, BOB, "Not posted");
    assert_eq!(alice_notices.len(), 5, "notices to alice");
    assert_eq!(bob_notices.len(), 1, "notices to bob");
    let reasons: String = alice_notices.iter().map(|m| body_text(m)).collect();
    for (_, _, _, who, why) in &cases {
        if *who == ALICE {
            assert!(reasons.contains(why), "no notice says {why:?}:\n{reasons}");
        }
    }
    assert!(body_text(&bob_notices[0]).contains("not an address of agent bob"));
    // The rejection is on the ticket's record where the ticket is known.
    let t1v = d.ticket(&o1.id);
    assert!(event_with(&t1v, "agent_mail_rejected").len() >= 4, "{t1v}");
}

fn commands_mail(from: &str, token: &str, note: &[u8], msgid: &str, body: &str) -> Vec<u8> {
    agent_reply(from, token, note, msgid, body)
}

#[test]
fn commands_by_mail_with_transcripts() {
    let (sink, d) = start();
    let customer = "ivy@customer.example";
    let o = open(&d, &sink, customer, "cmd-1");
    let token = o.token(ALICE);
    let note = o.to(ALICE).to_vec();
    let send = |n: usize, body: &str| {
        let raw = commands_mail(
            ALICE,
            &token,
            &note,
            &format!("<cmd-{n}@example.test>"),
            body,
        );
        d.send_ok(ALICE, &[&token], &raw);
        wait_subject(&sink, ALICE, "Commands", n)
    };

    // Commands only: the ticket changes, the customer gets nothing.
    let tr = send(
        1,
        "#pending\n#priority high\n#tag +vip -spam\n#assign bob\n#queue billing\n",
    );
    let tr_text = body_text(&tr);
    assert!(
        header(&tr, "Subject").unwrap().contains("Commands done"),
        "{tr_text}"
    );
    assert_eq!(tr_text.matches("done: ").count(), 5, "{tr_text}");
    assert!(tr_text.contains("> #priority high"), "{tr_text}");
    assert!(
        tr_text.contains("Nothing was sent to the customer"),
        "{tr_text}"
    );
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(t["status"], "pending", "{t}");
    assert_eq!(t["priority"], "high", "{t}");
    assert_eq!(t["assignee"], "bob", "{t}");
    assert_eq!(t["queue"], "billing", "{t}");
    let tags = t["tags"].as_array().unwrap();
    assert!(
        tags.contains(&Value::from("vip")) && !tags.contains(&Value::from("spam")),
        "{t}"
    );
    for kind in ["status", "priority", "assigned", "queue", "tags"] {
        let ev = event_with(&t, kind);
        assert_eq!(ev.last().unwrap()["actor"], "alice", "{kind}: {t}");
    }
    assert_eq!(
        sink.messages_to(customer).len(),
        1,
        "only the acknowledgement"
    );

    // #open, #assign me, then #close.
    send(2, "#open\n#assign me\n");
    let t = d.ticket(&o.id);
    assert_eq!(
        (t["status"].as_str(), t["assignee"].as_str()),
        (Some("open"), Some("alice"))
    );
    send(3, "#close\n");
    assert_eq!(d.ticket(&o.id)["status"], "closed");

    // One unknown command: nothing applied, nothing sent, the transcript says why.
    let tr = send(
        4,
        "#priority low\n#frobnicate\nThis text must not reach the customer.\n",
    );
    let tr_text = body_text(&tr);
    assert!(
        header(&tr, "Subject").unwrap().contains("NOT applied"),
        "{tr_text}"
    );
    assert!(tr_text.contains("unknown command #frobnicate"), "{tr_text}");
    assert!(tr_text.contains("Nothing was applied"), "{tr_text}");
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(t["priority"], "high", "nothing applied: {t}");
    assert_eq!(event_with(&t, "commands_failed").len(), 1, "{t}");
    // An invalid argument is a failure too.
    let tr = send(5, "#assign nobody-here\n");
    assert!(body_text(&tr).contains("no agent \"nobody-here\""));
    assert_eq!(d.ticket(&o.id)["assignee"], "alice");

    // #note: the whole message is an internal note.
    send(6, "#note\nCustomer called, she is a VIP.\n");
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    let notes: Vec<_> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "note")
        .collect();
    assert_eq!(notes.len(), 1, "{t}");
    assert!(notes[0]["text"].as_str().unwrap().contains("she is a VIP"));
    assert!(!notes[0]["text"].as_str().unwrap().contains("#note"));
    assert_eq!(sink.messages_to(customer).len(), 1, "a note is never sent");

    // #canned: rules/canned/thanks.txt with its placeholders filled in.
    send(7, "#canned thanks\n");
    let got = sink.nth_to(customer, 2);
    let body = body_text(&got);
    assert!(body.contains("Hello Carla Customer"), "{body}");
    assert!(body.contains(&format!("ticket #{}", o.id)), "{body}");
    assert!(body.contains("Alice Example"), "agent name: {body}");
    assert!(!body.contains("{{"), "{body}");
    let tr = send(8, "#canned no-such-thing\n");
    assert!(body_text(&tr).contains("no canned response"));
    d.wait_idle(SECS_60);
    assert_eq!(sink.messages_to(customer).len(), 2);
}

/// The agent's own signed comment address, as a notification names it.
fn comment_address_in(notification: &[u8]) -> String {
    let text = body_text(notification);
    let re = Regex::new(r"support-comment\+c[a-z0-9.]+@example\.test").unwrap();
    re.find(&text)
        .unwrap_or_else(|| panic!("no comment address in the notification:\n{text}"))
        .as_str()
        .to_string()
}

#[test]
fn comment_address_makes_internal_notes() {
    let (sink, d) = start();
    let customer = "jo@customer.example";
    let o = open(&d, &sink, customer, "comment-1");
    // Alice's own comment address is in her notification.
    let own = comment_address_in(o.to(ALICE));
    let raw = mail(
        "Alice <alice@example.test>",
        &format!("[#{}] internal", o.id),
        "<comment-1@example.test>",
        &[],
        "Looks like the SSO outage again.\n",
    );
    let seq = d.send_ok(ALICE, &[&own], &raw);
    assert_eq!(d.ticket_of(seq), o.id);
    // From someone who is not an agent: quarantined.
    let raw = mail(
        "Jo <jo@customer.example>",
        &format!("[#{}] let me in", o.id),
        "<comment-2@customer.example>",
        &[],
        "I am an agent, honestly.\n",
    );
    d.send_ok(customer, &[COMMENT], &raw);
    // A customer who writes to support and copies the comment address is a customer.
    let raw = mail(
        "Jo <jo@customer.example>",
        &format!("Re: [#{}] more details", o.id),
        "<comment-3@customer.example>",
        &[
            &format!("Cc: {COMMENT}"),
            &format!("In-Reply-To: <{}>", o.customer_msgid),
        ],
        "Here are more details.\n",
    );
    let seq = d.send_ok(customer, &[SUPPORT, COMMENT], &raw);
    assert_eq!(d.ticket_of(seq), o.id);
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    let notes: Vec<_> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "note")
        .collect();
    assert_eq!(notes.len(), 1, "{t}");
    assert!(notes[0]["text"].as_str().unwrap().contains("SSO outage"));
    let customer_mail: Vec<_> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "customer")
        .collect();
    assert_eq!(customer_mail.len(), 2, "{t}");
    assert_eq!(sink.messages_to(customer).len(), 1, "notes are not sent");
    let q = quarantine(&d);
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(
        q[0]["reason"].as_str().unwrap().contains("comment address"),
        "{q:?}"
    );
    assert_eq!(d.tickets_total(), 1);
}

#[test]
fn second_agent_reply_is_held_and_send_releases_it() {
    let (sink, d) = start();
    let customer = "kim@customer.example";
    let o = open(&d, &sink, customer, "collide-1");
    // bob answers first.
    let raw = agent_reply(
        BOB,
        &o.token(BOB),
        o.to(BOB),
        "<bob-1@example.test>",
        "Bob here: restart the app.",
    );
    d.send_ok(BOB, &[&o.token(BOB)], &raw);
    let first = sink.nth_to(customer, 2);
    assert!(body_text(&first).contains("Bob here"));
    // alice answers the same notification: held.
    let raw = agent_reply(
        ALICE,
        &o.token(ALICE),
        o.to(ALICE),
        "<alice-2@example.test>",
        "Alice here: clear your cookies.",
    );
    d.send_ok(ALICE, &[&o.token(ALICE)], &raw);
    let held = wait_subject(&sink, ALICE, "Reply held", 1);
    let held_text = body_text(&held);
    assert!(
        held_text.contains("Bob here: restart the app."),
        "quotes bob's reply:\n{held_text}"
    );
    assert!(
        held_text.contains("Alice here: clear your cookies."),
        "{held_text}"
    );
    assert!(held_text.contains("#send"), "{held_text}");
    d.wait_idle(SECS_60);
    assert_eq!(sink.messages_to(customer).len(), 2, "alice's reply is held");
    let t = d.ticket(&o.id);
    assert_eq!(event_with(&t, "reply_held").len(), 1, "{t}");
    assert_eq!(agent_messages(&t).len(), 1, "{t}");
    let held_list = t["held"].as_array().unwrap();
    assert_eq!(held_list.len(), 1, "{t}");
    assert_eq!(held_list[0]["agent"], "alice", "{t}");
    let held_seq = held_list[0]["seq"].as_str().unwrap();
    assert_eq!(
        d.api_ok(&format!("/api/v1/messages/{held_seq}"))["kind"],
        "held"
    );

    // alice replies to the notice with #send: her reply goes out after all.
    let token = bare_address(&header(&held, "Reply-To").unwrap());
    assert!(token.contains(".alice.1."), "{token}");
    let raw = agent_reply(ALICE, &token, &held, "<alice-3@example.test>", "#send");
    d.send_ok(ALICE, &[&token], &raw);
    let second = sink.nth_to(customer, 3);
    let body = body_text(&second);
    assert!(body.contains("Alice here: clear your cookies."), "{body}");
    assert!(!body.contains("#send"), "{body}");
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(agent_messages(&t).len(), 2, "{t}");
    assert_eq!(event_with(&t, "held_released").len(), 1, "{t}");
    assert!(t["held"].as_array().unwrap().is_empty(), "{t}");
    // Nothing is held any more: a second #send fails.
    let raw = agent_reply(ALICE, &token, &held, "<alice-4@example.test>", "#send");
    d.send_ok(ALICE, &[&token], &raw);
    let tr = wait_subject(&sink, ALICE, "NOT applied", 1);
    assert!(body_text(&tr).contains("no reply of yours is held"));
}

#[test]
fn held_reply_expires() {
    let (sink, d) = start_with(|c| {
        c.set("agents", "hold_expiry", &q("2s"));
    });
    let customer = "lee@customer.example";
    let o = open(&d, &sink, customer, "expire-1");
    let raw = agent_reply(
        BOB,
        &o.token(BOB),
        o.to(BOB),
        "<bob-x@example.test>",
        "Bob was first.",
    );
    d.send_ok(BOB, &[&o.token(BOB)], &raw);
    sink.nth_to(customer, 2);
    let raw = agent_reply(
        ALICE,
        &o.token(ALICE),
        o.to(ALICE),
        "<alice-x@example.test>",
        "Alice was late.",
    );
    d.send_ok(ALICE, &[&o.token(ALICE)], &raw);
    wait_subject(&sink, ALICE, "Reply held", 1);
    let expired = wait_subject(&sink, ALICE, "Held reply expired", 1);
    assert!(body_text(&expired).contains("Alice was late."));
    let t = d.ticket(&o.id);
    assert_eq!(event_with(&t, "held_expired").len(), 1, "{t}");
    assert_eq!(sink.messages_to(customer).len(), 2, "never sent");
}

#[test]
fn agent_auto_reply_to_a_notification_is_not_posted() {
    let (sink, d) = start();
    let customer = "max@customer.example";
    let o = open(&d, &sink, customer, "ooo-1");
    let raw = rewrite_headers(
        &agent_reply(
            ALICE,
            &o.token(ALICE),
            o.to(ALICE),
            "<ooo@example.test>",
            "I am out of the office.",
        ),
        &[],
        &["Auto-Submitted: auto-replied"],
    );
    d.send_ok(ALICE, &[&o.token(ALICE)], &raw);
    d.wait_idle(SECS_60);
    assert_eq!(sink.messages_to(customer).len(), 1);
    assert!(
        to_with_subject(&sink, ALICE, "Not posted").is_empty(),
        "no notice answers automatic mail"
    );
    assert_eq!(quarantine(&d).len(), 1);
}

/// A reply written by real mutt (Debian's): `r` on the notification, the typed text above
/// mutt's own attribution and quote, sent over SMTP to the notification's Reply-To.
#[test]
fn reply_written_by_mutt() {
    for tool in ["mutt", "tmux"] {
        assert!(
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .status()
                .is_ok_and(|s| s.success()),
            "{tool} is missing: run scripts/test-deps.sh"
        );
    }
    let (sink, d) = start();
    let customer = "nia@customer.example";
    let o = open(&d, &sink, customer, "mutt-1");
    let scratch = TempDir::new("mutt");
    let maildir = scratch.path.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(maildir.join("new/1.notification"), o.to(ALICE)).unwrap();
    let body = scratch.path.join("body.txt");
    std::fs::write(&body, "Hi Carla, your account is unlocked again.\n").unwrap();
    let out = std::process::Command::new("bash")
        .arg(peer_script("mutt-reply.sh"))
        .arg(&maildir)
        .arg(d.smtp_port.to_string())
        .arg(ALICE)
        .arg(&body)
        .arg(scratch.path.join("mutt"))
        .output()
        .expect("run mutt-reply.sh");
    assert!(
        out.status.success(),
        "mutt-reply.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sink.nth_to(customer, 2);
    let text = body_text(&got);
    assert_eq!(
        text.trim(),
        "Hi Carla, your account is unlocked again.",
        "{text}"
    );
    assert!(
        !String::from_utf8_lossy(&got)
            .to_ascii_lowercase()
            .contains(ALICE)
    );
    assert_eq!(mid(&header(&got, "In-Reply-To").unwrap()), o.customer_msgid);
    // What mutt sent is kept byte-exact: to the Reply-To, In-Reply-To the notification, with
    // mutt's attribution and quote below the text (which the relayed reply left out).
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(agent_messages(&t).len(), 1, "{t}");
    let sent = (1..50)
        .find_map(|seq| {
            let (st, m) = d.api_get(&format!("/api/v1/messages/{seq}"));
            (st == 200 && m["from"] == ALICE && m["direction"] == "inbound")
                .then(|| d.api_get_raw(&format!("/api/v1/messages/{seq}/raw")).1)
        })
        .expect("mutt's mail is stored");
    let sent_text = String::from_utf8_lossy(&sent).into_owned();
    assert_eq!(
        bare_address(&header(&sent, "To").unwrap()),
        o.token(ALICE),
        "{sent_text}"
    );
    assert_eq!(
        header(&sent, "In-Reply-To"),
        header(o.to(ALICE), "Message-ID"),
        "{sent_text}"
    );
    assert!(
        sent_text.contains("wrote:") && sent_text.contains("\n> "),
        "mutt quoted the notification:\n{sent_text}"
    );
}

#[test]
fn check_reports_agents_and_canned_problems_with_positions() {
    let (dir, path) = write_config(&DaemonConfig::new(free_port()));
    let run = || {
        let out = std::process::Command::new(daemon_bin())
            .args(["check", "-c", path.to_str().unwrap()])
            .output()
            .expect("run postdesk check");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run();
    assert!(ok, "{out}");
    assert!(out.contains("3 agent(s)"), "{out}");
    let rules = dir.path.join("rules");
    std::fs::write(
        rules.join("agents.toml"),
        "[[agent]]\nname = \"alice\"\naddress = \"alice@example.test\"\nqueues = [\"general\"]\n\n[[agent]]\nname = \"al ice\"\naddress = \"nope\"\n",
    )
    .unwrap();
    std::fs::write(rules.join("canned/bad.txt"), "Hello {{customer}}\n").unwrap();
    let (ok, out) = run();
    assert!(!ok, "{out}");
    for want in [
        "agents.toml:7:8: agent name",
        "agents.toml:8:11: \"nope\" is not an address",
        "bad.txt:1:7: unknown placeholder {{customer}}",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let mut cfg = DaemonConfig::new(free_port());
    cfg.set("agents", "comment_address", &q(SUPPORT));
    let (_d2, p2) = write_config(&cfg);
    let out = std::process::Command::new(daemon_bin())
        .args(["check", "-c", p2.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        regex::Regex::new(r"config\.toml:\d+:\d+: agents.comment_address")
            .unwrap()
            .is_match(&text),
        "{text}"
    );
}

/// The SLA clock follows the ticket through the mail path: started when the ticket opens,
/// first response met by the agent's public reply, paused by `#pending`, resumed by the
/// customer's answer, stopped by `#resolve`, and a fresh cycle when the customer reopens it.
#[test]
fn sla_clock_follows_the_ticket_by_mail() {
    let (sink, d) = start();
    let customer = "sam@customer.example";
    let o = open(&d, &sink, customer, "sla-1");
    let t = d.ticket(&o.id);
    let sla = &t["sla"];
    assert_eq!(sla["policy"], "standard", "{t}");
    assert!(sla["first_response_due"].is_string(), "{t}");
    assert!(sla["resolution_due"].is_string(), "{t}");
    assert!(sla["first_response_at"].is_null(), "{t}");
    assert_eq!(sla["state"], "ok", "{t}");
    assert_eq!(event_with(&t, "sla_started").len(), 1, "{t}");

    // The agent's public reply meets the first-response target.
    let token = o.token(ALICE);
    let reply = agent_reply(
        ALICE,
        &token,
        o.to(ALICE),
        "<sla-reply-1@example.test>",
        "We are on it.",
    );
    d.send_ok(ALICE, &[&token], &reply);
    sink.nth_to(customer, 2);
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert!(t["sla"]["first_response_at"].is_string(), "{t}");

    // #pending pauses the clock; the customer's answer resumes it.
    let note = o.to(ALICE).to_vec();
    let raw = commands_mail(
        ALICE,
        &token,
        &note,
        "<sla-cmd-1@example.test>",
        "#pending\n",
    );
    d.send_ok(ALICE, &[&token], &raw);
    wait_subject(&sink, ALICE, "Commands", 1);
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(t["status"], "pending", "{t}");
    assert_eq!(t["sla"]["state"], "paused", "{t}");
    let due_before = t["sla"]["resolution_due"].as_str().unwrap().to_string();

    let answer = |n: usize| {
        mail(
            &format!("Sam <{customer}>"),
            "Re: Cannot log in",
            &format!("<sla-answer-{n}@customer.example>"),
            &[&format!("In-Reply-To: <{}>", o.customer_msgid)],
            "Here is the screenshot you asked for.\n",
        )
    };
    let seq = d.send_ok(customer, &[SUPPORT], &answer(1));
    assert_eq!(d.ticket_of(seq), o.id, "the answer threads into the ticket");
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(t["status"], "open", "{t}");
    assert_eq!(t["sla"]["state"], "ok", "{t}");
    assert!(
        t["sla"]["resolution_due"].as_str().unwrap() >= due_before.as_str(),
        "a pause never brings the deadline closer: {t}"
    );
    assert_eq!(event_with(&t, "sla_paused").len(), 1, "{t}");
    assert_eq!(event_with(&t, "sla_resumed").len(), 1, "{t}");

    // Raising the priority selects the urgent policy, said in the transcript and the events.
    let raw = commands_mail(
        ALICE,
        &token,
        &note,
        "<sla-cmd-3@example.test>",
        "#priority urgent\n",
    );
    d.send_ok(ALICE, &[&token], &raw);
    let tr = body_text(&wait_subject(&sink, ALICE, "Commands", 2));
    assert!(tr.contains("SLA policy \"standard\" → \"urgent\""), "{tr}");
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(t["sla"]["policy"], "urgent", "{t}");
    assert_eq!(event_with(&t, "sla_policy").len(), 1, "{t}");

    // #resolve stops it: the targets are met.
    let raw = commands_mail(
        ALICE,
        &token,
        &note,
        "<sla-cmd-2@example.test>",
        "#resolve\n",
    );
    d.send_ok(ALICE, &[&token], &raw);
    wait_subject(&sink, ALICE, "Commands", 3);
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(t["status"], "resolved", "{t}");
    assert_eq!(t["sla"]["state"], "met", "{t}");

    // The customer writes again: reopened, and owed an answer again.
    let seq = d.send_ok(customer, &[SUPPORT], &answer(2));
    assert_eq!(d.ticket_of(seq), o.id);
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(t["status"], "open", "{t}");
    assert_eq!(t["sla"]["state"], "ok", "{t}");
    assert!(t["sla"]["first_response_at"].is_null(), "a new cycle: {t}");
    assert_eq!(event_with(&t, "sla_started").len(), 2, "{t}");
}

/// An agent's mail that threads into a ticket only by its headers (here: an answer to the
/// customer's acknowledgement, without the agent token) is not posted as if the customer wrote
/// it: it is quarantined and the agent is told how to answer.
#[test]
fn agent_mail_threaded_without_a_token_is_not_a_customer_message() {
    let (sink, d) = start();
    let customer = "noa@customer.example";
    let o = open(&d, &sink, customer, "untokened-1");
    let ack = sink.nth_to(customer, 1);
    let ack_id = header(&ack, "Message-ID").expect("ack has a Message-ID");
    let raw = mail(
        &format!("Alice Agent <{ALICE}>"),
        "Re: your request",
        "<alice-untokened@example.test>",
        &[&format!("In-Reply-To: {ack_id}")],
        "I will look into it.\n",
    );
    d.send_ok(ALICE, &[SUPPORT], &raw);
    let notice = wait_subject(&sink, ALICE, "Not posted", 1);
    let text = body_text(&notice);
    assert!(text.contains("reply to a notification"), "{text}");
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    let messages = t["messages"].as_array().unwrap();
    assert!(
        messages.iter().all(|m| m["from"] != ALICE),
        "not in the conversation: {t}"
    );
    assert_eq!(event_with(&t, "agent_mail_rejected").len(), 1, "{t}");
    assert!(
        quarantine(&d).iter().any(|q| q["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not an answer to a notification")),
        "{:?}",
        quarantine(&d)
    );
    assert_eq!(
        sink.messages_to(customer).len(),
        1,
        "the customer got only the acknowledgement"
    );
}

/// Resolving by command without a word to the customer sends the resolved notice (when the help
/// desk has one); resolving together with a reply sends only the reply.
#[test]
fn resolving_by_command_tells_the_customer() {
    let (sink, d) = start_with(|c| {
        c.set(
            "acknowledgement",
            "resolved_template",
            &q("templates/resolved.txt"),
        );
    });
    let customer = "oli@customer.example";
    let o = open(&d, &sink, customer, "resolve-notice-1");
    let token = o.token(ALICE);
    let note = o.to(ALICE).to_vec();
    let raw = commands_mail(
        ALICE,
        &token,
        &note,
        "<res-cmd-1@example.test>",
        "#resolve\n",
    );
    d.send_ok(ALICE, &[&token], &raw);
    let tr = body_text(&wait_subject(&sink, ALICE, "Commands", 1));
    assert!(
        tr.contains("The customer was told that the ticket is resolved"),
        "{tr}"
    );
    let notice = sink.nth_to(customer, 2);
    let subject = header(&notice, "Subject").unwrap_or_default();
    assert!(
        subject.contains(&format!("[#{}] Your request is resolved", o.id)),
        "{subject}"
    );
    assert_eq!(
        header(&notice, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        header(&notice, "In-Reply-To").map(|v| mid(&v)).as_deref(),
        Some(o.customer_msgid.as_str())
    );
    assert!(
        !String::from_utf8_lossy(&notice).contains(ALICE),
        "no agent address"
    );
    d.wait_idle(SECS_60);
    let t = d.ticket(&o.id);
    assert_eq!(event_with(&t, "customer_notified").len(), 1, "{t}");

    // The customer answers: reopened. Alice replies and resolves in one mail: only her reply goes out.
    let answer = mail(
        &format!("Oli <{customer}>"),
        "Re: still broken",
        "<oli-answer@customer.example>",
        &[&format!("In-Reply-To: <{}>", o.customer_msgid)],
        "It is still broken.\n",
    );
    d.send_ok(customer, &[SUPPORT], &answer);
    d.wait_idle(SECS_60);
    assert_eq!(d.ticket(&o.id)["status"], "open");
    let raw = commands_mail(
        ALICE,
        &token,
        &note,
        "<res-cmd-2@example.test>",
        "#resolve\nFixed now, sorry for the trouble.\n",
    );
    d.send_ok(ALICE, &[&token], &raw);
    wait_subject(&sink, ALICE, "Commands", 2);
    let reply = sink.nth_to(customer, 3);
    assert!(
        body_text(&reply).contains("Fixed now"),
        "{}",
        body_text(&reply)
    );
    d.wait_idle(SECS_60);
    assert_eq!(sink.messages_to(customer).len(), 3, "no second notice");
    let t = d.ticket(&o.id);
    assert_eq!(t["status"], "resolved", "{t}");
    assert_eq!(event_with(&t, "customer_notified").len(), 1, "{t}");
}

/// A customer mail without a Message-ID still gets a threaded reply: it answers our
/// acknowledgement, the message the customer holds.
#[test]
fn reply_to_a_mail_without_message_id_threads_on_the_acknowledgement() {
    let (sink, d) = start();
    let customer = "pat@customer.example";
    let raw = mail(
        &format!("Pat <{customer}>"),
        "No id here",
        "<dropped@customer.example>",
        &[],
        "My mail client sets no Message-ID.\n",
    );
    let raw = rewrite_headers(&raw, &["message-id"], &[]);
    assert!(header(&raw, "Message-ID").is_none());
    let seq = d.send_ok(customer, &[SUPPORT], &raw);
    let id = d.ticket_of(seq);
    let ack = sink.nth_to(customer, 1);
    let ack_id = header(&ack, "Message-ID").expect("ack Message-ID");
    let note = sink.nth_to(ALICE, 1);
    let token = bare_address(&header(&note, "Reply-To").expect("Reply-To"));
    let reply = agent_reply(
        ALICE,
        &token,
        &note,
        "<alice-noid@example.test>",
        "Got it, Pat.",
    );
    d.send_ok(ALICE, &[&token], &reply);
    let out = sink.nth_to(customer, 2);
    assert!(
        body_text(&out).contains("Got it, Pat."),
        "{}",
        body_text(&out)
    );
    assert_eq!(
        header(&out, "In-Reply-To").map(|v| mid(&v)),
        Some(mid(&ack_id)),
        "ticket {id}"
    );
    assert!(
        header(&out, "References").is_some_and(|r| r.contains(&mid(&ack_id))),
        "{:?}",
        header(&out, "References")
    );
}

/// The customer's server refuses the agent's reply for good (550 at RCPT): the agent is told by
/// mail, the ticket says so, and the first response is not met by a reply that never arrived, so
/// its breach still fires.
#[test]
fn permanently_refused_reply_is_reported_and_does_not_meet_the_first_response() {
    let sink = Sink::start_refusing();
    let d = Daemon::start_with(&sink, |c| {
        c.set("agents", "notify", "true");
        c.set("agents", "trusted_authserv_id", &q("mx.example.test"));
    });
    // A policy short enough to see its first-response breach.
    std::fs::write(
        d.dir.path.join("rules/sla.toml"),
        "[[policy]]\nname = \"quick\"\nfirst_response = \"15s\"\nresolution = \"1h\"\ncalendar = \"always\"\n",
    )
    .unwrap();
    wait_until(SECS_30, "the quick SLA policy to be loaded", || {
        d.log().contains("rules reloaded").then_some(())
    });
    let customer = "gone@customer.example";
    let o = open(&d, &sink, customer, "refused-1");
    assert_eq!(d.ticket(&o.id)["sla"]["policy"], "quick");

    sink.refuse(customer);
    let token = o.token(ALICE);
    let reply = agent_reply(
        ALICE,
        &token,
        o.to(ALICE),
        "<refused-reply-1@example.test>",
        "We reset your password.",
    );
    d.send_ok(ALICE, &[&token], &reply);

    let notice = wait_subject(&sink, ALICE, "not delivered", 1);
    let text = body_text(&notice);
    assert!(text.contains(customer), "{text}");
    assert!(text.contains("550 5.1.1"), "the notice says why: {text}");
    assert!(
        text.contains("We reset your password."),
        "the notice quotes the reply: {text}"
    );
    assert_eq!(
        sink.messages_to(customer).len(),
        1,
        "only the acknowledgement"
    );

    let t = d.ticket(&o.id);
    assert_eq!(event_with(&t, "reply_refused").len(), 1, "{t}");
    assert!(
        t["sla"]["first_response_at"].is_null(),
        "a refused reply is no first response: {t}"
    );
    // No reply arrives: the first-response breach fires.
    wait_until(SECS_60, "the first-response breach", || {
        let t = d.ticket(&o.id);
        event_with(&t, "sla_breach")
            .iter()
            .any(|e| {
                e["detail"]
                    .as_str()
                    .is_some_and(|s| s.contains("first response"))
            })
            .then_some(())
    });
}
