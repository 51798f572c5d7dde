//! Merging two tickets and splitting a message out, through the real binary:
//! tickets opened by mail over SMTP, merged or split through the JSON API
//! and by an agent's `#merge` mail; later customer mail (an answer to the
//! merged ticket's acknowledgement, its `[#N]` tag alone, its reply token
//! alone) lands in the survivor; refusals change nothing.

mod common;
use common::web::*;
use common::*;
use serde_json::{Value, json};

const ALICE: &str = "alice@example.test";

fn start() -> (Sink, Daemon) {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("agents", "notify", "true");
        c.set("agents", "trusted_authserv_id", &q("mx.example.test"));
    });
    (sink, d)
}

/// `POST path` with a JSON body and the bearer token (or none): (status, JSON).
fn post(d: &Daemon, path: &str, body: &Value, token: bool) -> (u16, Value) {
    let token = token.then_some(API_TOKEN);
    let (status, _, body) =
        http_request(d.web_port, "POST", path, token, Some(&body.to_string())).expect("HTTP POST");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A customer opens a ticket; returns its id and the acknowledgement.
fn open(d: &Daemon, sink: &Sink, customer: &str, tag: &str) -> (String, Vec<u8>) {
    let before = sink.messages_to(customer).len();
    let raw = mail(
        &format!("Customer <{customer}>"),
        &format!("Printer broken ({tag})"),
        &format!("<{tag}@customer.example>"),
        &[],
        "The printer is broken.\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    let ack = sink.nth_to(customer, before + 1);
    (id, ack)
}

/// The customer's later mail; returns the ticket it joined.
fn customer_mail(d: &Daemon, customer: &str, to: &str, subject: &str, extra: &[&str]) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let raw = mail(
        &format!("Customer <{customer}>"),
        subject,
        &format!("<later-{n}@customer.example>"),
        extra,
        "Any news?\n",
    );
    let raw = String::from_utf8(raw)
        .unwrap()
        .replace("To: Support <support@example.test>", &format!("To: {to}"));
    d.ticket_of(d.send_ok(customer, &[to], raw.as_bytes()))
}

fn events<'a>(t: &'a Value, kind: &str) -> Vec<&'a Value> {
    t["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}

#[test]
fn later_mail_to_a_merged_ticket_lands_in_the_survivor() {
    let (sink, d) = start();
    let ann = "ann@customer.example";
    let (old, ack) = open(&d, &sink, ann, "m-old");
    let (survivor, _) = open(&d, &sink, "ben@customer.example", "m-new");
    let merge = json!({"into": survivor.parse::<u64>().unwrap(), "agent": "alice", "version": 0, "reason": "same printer"});
    let path = format!("/api/v1/tickets/{old}/merge");
    let (code, _) = post(&d, &path, &merge, false);
    assert_eq!(code, 401, "no token, no merge");
    let (code, v) = post(&d, &path, &merge, true);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(v["into_version"], 1, "{v}");
    assert_eq!(v["merged_into"], survivor.as_str(), "{v}");

    let t = d.ticket(&old);
    assert_eq!(t["status"], "closed", "{t}");
    assert_eq!(t["merged_into"], survivor.as_str(), "{t}");
    assert_eq!(t["messages"].as_array().map(Vec::len), Some(0), "{t}");
    let e = events(&t, "merged");
    assert!(
        e.len() == 1
            && e[0]["actor"] == "alice"
            && e[0]["detail"].as_str().unwrap().contains("same printer"),
        "{t}"
    );
    let s = d.ticket(&survivor);
    assert_eq!(s["merged_from"], json!([old]), "{s}");
    assert!(
        s["participants"].as_array().unwrap().contains(&json!(ann)),
        "{s}"
    );
    assert!(!events(&s, "merged").is_empty(), "{s}");
    d.wait_idle(SECS_30);
    assert_eq!(
        sink.messages_to(ann).len(),
        1,
        "the merge sends the customer nothing"
    );

    // 1. An answer to the merged ticket's acknowledgement (In-Reply-To).
    let ack_id = header(&ack, "Message-ID").expect("ack Message-ID");
    let subject = header(&ack, "Subject").unwrap_or_default();
    let got = customer_mail(
        &d,
        ann,
        SUPPORT,
        &format!("Re: {subject}"),
        &[
            &format!("In-Reply-To: {ack_id}"),
            &format!("References: {ack_id}"),
        ],
    );
    assert_eq!(got, survivor, "In-Reply-To the merged ticket's ack");
    // 2. Only the old subject tag, from a participant.
    let got = customer_mail(&d, ann, SUPPORT, &format!("[#{old}] still broken"), &[]);
    assert_eq!(got, survivor, "the [#old] subject tag");
    // 3. Only the merged ticket's reply token (the acknowledgement's Reply-To).
    let token = bare_address(&header(&ack, "Reply-To").expect("ack Reply-To"));
    assert!(token.starts_with("support+t"), "{token}");
    let got = customer_mail(&d, ann, &token, "no tag, no references", &[]);
    assert_eq!(got, survivor, "the merged ticket's reply token {token}");
    let s = d.ticket(&survivor);
    let customer_msgs = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "customer")
        .count();
    assert!(customer_msgs >= 4, "{s}");
    assert_eq!(
        d.ticket(&old)["status"],
        "closed",
        "the merged ticket stays closed"
    );
}

#[test]
fn an_agent_merges_by_mail_with_merge_n() {
    let (sink, d) = start();
    let (old, _) = open(&d, &sink, "cy@customer.example", "mm-old");
    let (survivor, _) = open(&d, &sink, "cy@customer.example", "mm-new");
    // The notification about the old ticket, and its signed Reply-To.
    let note = wait_until(SECS_30, "notification for the old ticket", || {
        sink.messages_to(ALICE)
            .into_iter()
            .find(|m| header(m, "Subject").is_some_and(|s| s.contains(&format!("[#{old}]"))))
    });
    let token = bare_address(&header(&note, "Reply-To").expect("Reply-To"));
    let parent = header(&note, "Message-ID").unwrap_or_default();
    let raw = mail(
        &format!("Alice <{ALICE}>"),
        &format!("Re: {}", header(&note, "Subject").unwrap_or_default()),
        "<merge-by-mail@example.test>",
        &[&format!("In-Reply-To: {parent}")],
        &format!("#merge {survivor} asked twice\n"),
    );
    let raw = String::from_utf8(raw).unwrap().replace(
        "To: Support <support@example.test>",
        &format!("To: {token}"),
    );
    d.send_ok(ALICE, &[&token], raw.as_bytes());
    let transcript = wait_until(SECS_30, "the commands transcript", || {
        sink.messages_to(ALICE)
            .into_iter()
            .find(|m| header(m, "Subject").is_some_and(|s| s.contains("Commands")))
    });
    let text = body_text(&transcript);
    assert!(text.contains(&format!("merged into #{survivor}")), "{text}");
    let t = d.ticket(&old);
    assert_eq!(t["merged_into"], survivor.as_str(), "{t}");
    assert_eq!(t["status"], "closed", "{t}");
    let e = events(&t, "merged");
    assert!(
        e.len() == 1
            && e[0]["actor"] == "alice"
            && e[0]["detail"].as_str().unwrap().contains("asked twice"),
        "{t}"
    );
    assert!(!events(&d.ticket(&survivor), "merged").is_empty());
}

#[test]
fn merges_into_itself_a_descendant_or_nowhere_are_refused() {
    let (sink, d) = start();
    let (a, _) = open(&d, &sink, "dee@customer.example", "r-a");
    let (b, _) = open(&d, &sink, "dee@customer.example", "r-b");
    let merge = |from: &str, into: &str| {
        post(
            &d,
            &format!("/api/v1/tickets/{from}/merge"),
            &json!({"into": into, "agent": "alice"}),
            true,
        )
    };
    let (code, v) = merge(&a, &a);
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("itself"), "{v}");
    let (code, v) = merge(&a, "99999");
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no ticket #99999"),
        "{v}"
    );
    let (code, v) = merge("99999", &a);
    assert_eq!(code, 404, "{v}");
    // A stale version is refused too.
    let (code, v) = post(
        &d,
        &format!("/api/v1/tickets/{a}/merge"),
        &json!({"into": b, "agent": "alice", "version": 7}),
        true,
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("changed since"),
        "{v}"
    );
    let t = d.ticket(&a);
    assert_eq!(t["merged_into"], Value::Null, "nothing applied: {t}");
    assert_ne!(t["status"], "closed", "{t}");
    assert!(events(&t, "merged").is_empty(), "{t}");

    // a → b; then b → a would be a cycle.
    let (code, v) = merge(&a, &b);
    assert_eq!(code, 200, "{v}");
    let (code, v) = merge(&b, &a);
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("cycle"), "{v}");
    let t = d.ticket(&b);
    assert_eq!(t["merged_into"], Value::Null, "{t}");
    assert_ne!(t["status"], "closed", "{t}");
}

#[test]
fn a_split_message_and_its_later_reply_go_to_a_new_ticket() {
    let (sink, d) = start();
    let eve = "eve@customer.example";
    let (id, ack) = open(&d, &sink, eve, "s-1");
    let ack_id = header(&ack, "Message-ID").expect("ack Message-ID");
    // A second question in the same thread.
    let raw = mail(
        &format!("Eve <{eve}>"),
        "Re: Printer broken (s-1), and the scanner",
        "<s-2@customer.example>",
        &[&format!("In-Reply-To: {ack_id}")],
        "Also, the scanner does not scan.\n",
    );
    let seq = d.send_ok(eve, &[SUPPORT], &raw);
    assert_eq!(d.ticket_of(seq), id);
    let path = format!("/api/v1/tickets/{id}/messages/{seq}/split");
    let (code, _) = post(&d, &path, &json!({"agent": "alice"}), false);
    assert_eq!(code, 401, "no token, no split");
    let (code, v) = post(
        &d,
        &path,
        &json!({"agent": "alice", "reason": "scanner is its own problem"}),
        true,
    );
    assert_eq!(code, 200, "{v}");
    let new = v["new_ticket"].as_str().expect("new ticket").to_string();
    assert_ne!(new, id);
    assert_eq!(v["version"], 1, "{v}");

    let t = d.ticket(&new);
    assert_eq!(t["requester"], eve, "{t}");
    let msgs = t["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{t}");
    assert_eq!(msgs[0]["seq"], seq.to_string(), "{t}");
    assert!(t["sla"].is_object() || t["sla"].is_null());
    let old = d.ticket(&id);
    assert!(
        old["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["seq"].as_str() != Some(seq.to_string().as_str())),
        "{old}"
    );
    let e = events(&old, "split");
    assert!(
        e.len() == 1
            && e[0]["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("#{new}")),
        "{old}"
    );
    // The customer answers the split message: it follows it.
    let raw = mail(
        &format!("Eve <{eve}>"),
        "Re: the scanner",
        "<s-3@customer.example>",
        &["In-Reply-To: <s-2@customer.example>"],
        "It still does not scan.\n",
    );
    assert_eq!(d.ticket_of(d.send_ok(eve, &[SUPPORT], &raw)), new);
    // Splitting the only customer message left is refused.
    let first = old["messages"].as_array().unwrap()[0]["seq"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, v) = post(
        &d,
        &format!("/api/v1/tickets/{id}/messages/{first}/split"),
        &json!({"agent": "alice"}),
        true,
    );
    assert_eq!(code, 400, "{v}");
}

// ---- the web view's merge and split forms, over HTTP ----

/// One request through the harness's client: status, head (lower-cased
/// `name: value` lines), body.
fn web(
    d: &Daemon,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let a = http(d.web_port, method, path, headers, body);
    let head = a
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("\r\n");
    (a.status, head, a.body)
}

fn location(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("location:"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn the_web_merge_and_split_forms_pass_csrf_and_act() {
    let (sink, d) = start();
    set_passwords(&d);
    let fay = "fay@customer.example";
    let (old, _) = open(&d, &sink, fay, "w-old");
    let (survivor, _) = open(&d, &sink, fay, "w-new");
    let origin = format!("http://127.0.0.1:{}", d.web_port);
    let cookie = login_as(&d, "alice");
    let (status, _, page) = web(
        &d,
        "GET",
        &format!("/tickets/{old}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(status, 200, "{page}");
    let action = format!(r#"action="/tickets/{old}/merge""#);
    assert!(
        page.contains(&action) && page.contains(r#"name="into""#),
        "{page}"
    );
    let token = csrf_token(&page);
    let path = format!("/tickets/{old}/merge");
    let into = format!("#{survivor}");

    // Without the form token, or from another site: refused, nothing merged.
    for (what, headers, body) in [
        (
            "no token",
            vec![("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
            form(&[("into", &into)]),
        ),
        (
            "wrong token",
            vec![("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
            form(&[("csrf", &"0".repeat(64)), ("into", &into)]),
        ),
        (
            "foreign origin",
            vec![("Cookie", cookie.as_str()), ("Origin", "http://evil.test")],
            form(&[("csrf", &token), ("into", &into)]),
        ),
    ] {
        let (status, _, body) = web(&d, "POST", &path, &headers, &body);
        assert_eq!(status, 403, "{what}: {body}");
    }
    assert_eq!(
        d.ticket(&old)["merged_into"],
        Value::Null,
        "refused posts merged nothing"
    );

    // A refusal by the command path is shown in words.
    let same_origin = [
        ("Cookie", cookie.as_str()),
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let (status, _, body) = web(
        &d,
        "POST",
        &path,
        &same_origin,
        &form(&[("csrf", &token), ("into", &old), ("version", "0")]),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("into itself"), "{body}");

    let (status, head, body) = web(
        &d,
        "POST",
        &path,
        &same_origin,
        &form(&[
            ("csrf", &token),
            ("into", &into),
            ("reason", "asked twice"),
            ("version", "0"),
        ]),
    );
    assert_eq!(status, 303, "{body}");
    assert_eq!(location(&head), format!("/tickets/{survivor}"));
    let t = d.ticket(&old);
    assert_eq!(t["merged_into"], survivor.as_str(), "{t}");
    let e = events(&t, "merged");
    assert!(
        e.len() == 1
            && e[0]["actor"] == "alice"
            && e[0]["detail"].as_str().unwrap().contains("asked twice"),
        "{t}"
    );
    let (_, _, page) = web(
        &d,
        "GET",
        &format!("/tickets/{old}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert!(
        page.contains(&format!(r#"Merged into <a href="/tickets/{survivor}">"#)),
        "{page}"
    );

    // The survivor now has two customer messages: each can be split out.
    let (_, _, page) = web(
        &d,
        "GET",
        &format!("/tickets/{survivor}"),
        &[("Cookie", &cookie)],
        "",
    );
    let s = d.ticket(&survivor);
    let moved = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == "w-old@customer.example")
        .expect("moved message");
    let seq = moved["seq"].as_str().unwrap().to_string();
    let split = format!("/tickets/{survivor}/messages/{seq}/split");
    assert!(page.contains(&format!(r#"action="{split}""#)), "{page}");
    let version = regex::Regex::new(r#"name="version" value="([0-9]+)""#)
        .unwrap()
        .captures(&page)
        .expect("the version in the page")[1]
        .to_string();
    let (status, _, _) = web(
        &d,
        "POST",
        &split,
        &[("Cookie", &cookie), ("Origin", "http://evil.test")],
        &form(&[("csrf", &token), ("version", &version)]),
    );
    assert_eq!(status, 403);
    let (status, head, body) = web(
        &d,
        "POST",
        &split,
        &same_origin,
        &form(&[("csrf", &token), ("version", &version)]),
    );
    assert_eq!(status, 303, "{body}");
    let new = location(&head).trim_start_matches("/tickets/").to_string();
    assert!(!new.is_empty() && new != survivor && new != old, "{head}");
    let n = d.ticket(&new);
    assert_eq!(n["messages"][0]["seq"], seq.as_str(), "{n}");
}

#[test]
fn a_merge_by_clicking_in_chromium() {
    let (sink, d) = start();
    set_passwords(&d);
    let (old, _) = open(&d, &sink, "gus@customer.example", "b-old");
    let (survivor, _) = open(&d, &sink, "gus@customer.example", "b-new");
    let out_dir = repo_root().join("target/web-screenshots/merge");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = std::process::Command::new(python())
        .arg(peer_script("web_merge.py"))
        .arg(format!("http://127.0.0.1:{}", d.web_port))
        .args(["alice", PASSWORD, &old, &survivor])
        .arg(&out_dir)
        .output()
        .expect("run tests/peers/web_merge.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "web_merge.py failed:\n{stdout}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_tail(40)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert!(
        seen["landed"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("/tickets/{survivor}")),
        "{seen}"
    );
    assert!(
        seen["merged_page"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("Merged into #{survivor}")),
        "{seen}"
    );
    let t = d.ticket(&old);
    assert_eq!(t["merged_into"], survivor.as_str(), "{t}");
    let e = events(&t, "merged");
    assert!(
        e.len() == 1 && e[0]["detail"].as_str().unwrap().contains("asked twice"),
        "{t}"
    );
}
