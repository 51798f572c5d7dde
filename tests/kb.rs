//! The knowledge base through the real binary: `postdesk check` on broken
//! articles, the public `/kb` pages (public articles only, Markdown
//! escaped), suggestions in the acknowledgement at the SMTP sink, `#kb` in
//! an agent's mail reply, and "this solved my problem" on the status page.

mod common;
use common::web::{form, http, login_as, origin, set_passwords};
use common::*;
use serde_json::Value;
use std::time::Duration;

const ALICE: &str = "alice@example.test";

const PRINTER: &str = r#"+++
title = "Printer paper jam"
tags = ["printer", "hardware"]
visibility = "public"
+++
When the printer reports a **paper jam**:

1. Open the front tray and remove the jammed paper.
2. Close the tray; the printer resumes by itself.

Still jammed? See [escalation](kb:script-demo).
"#;

const SCRIPT: &str = "---\ntitle: Escaping demo\nvisibility: public\n---\nA tag in the text: <script>alert('kb')</script> and [a link](javascript:alert(1)).\n";

const INTERNAL: &str = "---\ntitle: Vendor hotline for printers\ntags: [printer]\nvisibility: internal\n---\nCall the vendor hotline at 555-0100 for printer escalations.\n";

/// A directory of articles: two public, one internal.
fn articles() -> TempDir {
    let dir = TempDir::new("kb");
    std::fs::write(dir.path.join("printer-jam.md"), PRINTER).unwrap();
    std::fs::write(dir.path.join("script-demo.md"), SCRIPT).unwrap();
    std::fs::write(dir.path.join("vendor-hotline.md"), INTERNAL).unwrap();
    dir
}

/// A daemon with the public pages and the articles of `kb`; the public port.
fn start(sink: &Sink, kb: &TempDir) -> (Daemon, u16) {
    let mut public = 0;
    let d = Daemon::start_with(sink, |c| {
        public = c.with_public();
        c.set("server", "kb_dir", &q(&kb.path.to_string_lossy()));
        c.set("agents", "notify", "true");
    });
    (d, public)
}

fn get(port: u16, path: &str) -> (u16, String) {
    let (status, body) = http_get(port, path, None).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn check_refuses_a_broken_article_with_its_position() {
    let kb = articles();
    std::fs::write(
        kb.path.join("broken.md"),
        "+++\ntitle = \"Broken\"\nvisibility = \"public\"\n+++\nFirst line.\nSee [this](kb:no-such-article).\n",
    )
    .unwrap();
    std::fs::write(
        kb.path.join("bad-front.md"),
        "---\ntitle: Bad\nvisibility: everyone\n---\nText.\n",
    )
    .unwrap();
    let mut cfg = DaemonConfig::new(free_port());
    cfg.set("server", "kb_dir", &q(&kb.path.to_string_lossy()));
    let (_dir, path) = write_config(&cfg);
    let out = std::process::Command::new(daemon_bin())
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("broken.md:6:") && text.contains("no-such-article"),
        "{text}"
    );
    assert!(
        text.contains("bad-front.md:3:") && text.contains("visibility"),
        "{text}"
    );

    // The same articles without the broken ones pass.
    std::fs::remove_file(kb.path.join("broken.md")).unwrap();
    std::fs::remove_file(kb.path.join("bad-front.md")).unwrap();
    let out = std::process::Command::new(daemon_bin())
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn public_kb_shows_public_articles_only_and_escapes_their_markdown() {
    let sink = Sink::start();
    let kb = articles();
    let (_d, public) = start(&sink, &kb);

    let (status, page) = get(public, "/kb");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Printer paper jam"), "{page}");
    assert!(page.contains(r#"name="q""#), "a search box: {page}");
    assert!(
        !page.contains("Vendor hotline"),
        "no internal article: {page}"
    );
    let (status, page) = get(public, "/kb?q=printer");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("/kb/printer-jam"), "{page}");
    assert!(!page.contains("vendor-hotline"), "{page}");

    let (status, page) = get(public, "/kb/printer-jam");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<strong>paper jam</strong>"), "{page}");
    assert!(page.contains(r#"<a href="/kb/script-demo">"#), "{page}");
    let (status, page) = get(public, "/kb/vendor-hotline");
    assert_eq!(status, 404, "an internal article is not there: {page}");
    assert!(!page.contains("555-0100"), "{page}");

    let (status, page) = get(public, "/kb/script-demo");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(&#39;kb&#39;)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("href=\"javascript"), "{page}");
}

/// `customer` writes; the acknowledgement they get.
fn ack_for(d: &Daemon, sink: &Sink, customer: &str, subject: &str, text: &str) -> String {
    let raw = mail(
        &format!("Customer <{customer}>"),
        subject,
        &format!("<{}@customer.example>", customer.replace('@', ".")),
        &[],
        text,
    );
    d.send_ok(customer, &[SUPPORT], &raw);
    body_text(&sink.nth_to(customer, 1))
}

#[test]
fn acknowledgement_suggests_a_matching_article_and_none_for_an_unrelated_request() {
    let sink = Sink::start();
    let kb = articles();
    let (d, public) = start(&sink, &kb);

    let ack = ack_for(
        &d,
        &sink,
        "pat@customer.example",
        "Printer says paper jam",
        "Hello, since this morning our printer reports a paper jam on every page.\n",
    );
    assert!(
        ack.contains(&format!(
            "Printer paper jam: http://127.0.0.1:{public}/kb/printer-jam"
        )),
        "{ack}"
    );
    assert!(ack.contains("may already answer"), "{ack}");
    assert!(
        !ack.contains("vendor-hotline"),
        "never an internal article: {ack}"
    );

    let ack = ack_for(
        &d,
        &sink,
        "lou@customer.example",
        "Where is my parcel?",
        "Hello, I ordered a lamp two weeks ago and the parcel has not arrived. The tracking page says it is at the front desk.\n",
    );
    assert!(!ack.contains("/kb/"), "{ack}");
    assert!(
        !ack.contains("may already answer"),
        "the line is left out: {ack}"
    );
    assert!(!ack.contains("{{"), "{ack}");
}

/// An agent's mail reply to the notification `note`, with `body` on top.
fn agent_reply(note: &[u8], msgid: &str, body: &str) -> (String, Vec<u8>) {
    let to = bare_address(&header(note, "Reply-To").expect("notification has Reply-To"));
    let subject = header(note, "Subject").unwrap_or_default();
    let parent = header(note, "Message-ID").unwrap_or_default();
    let raw = format!(
        "From: Alice Agent <{ALICE}>\r\nTo: {to}\r\nSubject: Re: {subject}\r\nMessage-ID: {msgid}\r\nIn-Reply-To: {parent}\r\nReferences: {parent}\r\nDate: Thu, 26 Nov 2026 10:05:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    );
    (to, raw.into_bytes())
}

#[test]
fn kb_command_in_an_agent_reply_inserts_the_article() {
    let sink = Sink::start();
    let kb = articles();
    let (d, public) = start(&sink, &kb);
    let customer = "kim@customer.example";
    ack_for(&d, &sink, customer, "Question", "Something is wrong.\n");
    let note = sink.nth_to(ALICE, 1);

    let (to, raw) = agent_reply(&note, "<kb-1@example.test>", "#kb printer-jam\n");
    d.send_ok(ALICE, &[&to], &raw);
    let reply = body_text(&sink.nth_to(customer, 2));
    assert!(reply.contains("Printer paper jam"), "{reply}");
    assert!(reply.contains("remove the jammed paper"), "{reply}");
    assert!(
        reply.contains(&format!("http://127.0.0.1:{public}/kb/printer-jam")),
        "{reply}"
    );

    let (to, raw) = agent_reply(&note, "<kb-2@example.test>", "#kb no-such-article\n");
    d.send_ok(ALICE, &[&to], &raw);
    let transcript = wait_until(SECS_30, "the refusal to alice", || {
        sink.messages_to(ALICE)
            .into_iter()
            .map(|m| body_text(&m))
            .find(|t| t.contains("no-such-article"))
    });
    assert!(
        transcript.contains("no knowledge base article \"no-such-article\""),
        "{transcript}"
    );
    let (to, raw) = agent_reply(&note, "<kb-3@example.test>", "#kb vendor-hotline\n");
    d.send_ok(ALICE, &[&to], &raw);
    let transcript = wait_until(SECS_30, "the internal article refused", || {
        sink.messages_to(ALICE)
            .into_iter()
            .map(|m| body_text(&m))
            .find(|t| t.contains("\"vendor-hotline\" is internal"))
    });
    assert!(!transcript.contains("done: knowledge base"), "{transcript}");
    d.wait_idle(SECS_60);
    assert_eq!(sink.messages_to(customer).len(), 2, "nothing more sent");
    assert!(
        sink.messages_to(customer)
            .iter()
            .all(|m| !body_text(m).contains("555-0100")),
        "an internal article never reaches the customer"
    );
}

/// A `multipart/form-data` body of `fields`.
fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----postdesk-kb-test-boundary";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// One POST with an Origin header; the status code.
fn post(port: u16, path: &str, (content_type, body): &(String, Vec<u8>)) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn solved_on_the_status_page_resolves_the_ticket_as_a_deflection() {
    let sink = Sink::start();
    let kb = articles();
    let (d, public) = start(&sink, &kb);
    let customer = "max@customer.example";
    let ack = ack_for(
        &d,
        &sink,
        customer,
        "Paper jam",
        "The printer has a paper jam.\n",
    );
    let at = ack.find("/status/").expect("a status link");
    let link = ack[at..].split_whitespace().next().unwrap().to_string();
    let id = link
        .trim_start_matches("/status/")
        .split('.')
        .next()
        .unwrap()
        .to_string();

    let (status, page) = get(public, &link);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("This solved my problem"), "{page}");
    let at = page.find(r#"name="token" value=""#).expect("a form token");
    let rest = &page[at + r#"name="token" value=""#.len()..];
    let token = rest[..rest.find('"').unwrap()].to_string();

    // Without the page's token: refused, nothing changes.
    let code = post(
        public,
        &format!("{link}/solved"),
        &multipart(&[("token", "1.AAAA")]),
    );
    assert_eq!(code, 403);
    assert_ne!(d.ticket(&id)["status"], "resolved");

    let code = post(
        public,
        &format!("{link}/solved"),
        &multipart(&[("token", &token)]),
    );
    assert_eq!(code, 303);
    let t: Value = d.ticket(&id);
    assert_eq!(t["status"], "resolved", "{t}");
    let deflected: Vec<&Value> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deflected")
        .collect();
    assert_eq!(deflected.len(), 1, "{t}");
    assert_eq!(deflected[0]["actor"], customer, "{t}");
    let (_, page) = get(public, &link);
    assert!(!page.contains("/solved"), "offered only while open: {page}");

    // The volume report counts it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let report = wait_until(SECS_30, "the deflection in the volume report", || {
        let r = d.api_ok(&format!(
            "/api/v1/reports/volume?since={}&until={}",
            now - 86_400,
            now + 3600
        ));
        let t = r["tables"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == "deflected")?
            .clone();
        let n: u64 = t["rows"]
            .as_array()?
            .iter()
            .filter_map(|row| row[1].as_u64())
            .sum();
        (n == 1).then_some(t)
    });
    assert_eq!(report["rows"].as_array().unwrap().len(), 1, "{report}");
}

#[test]
fn agents_see_every_article_and_send_one_from_the_ticket_page() {
    let sink = Sink::start();
    let kb = articles();
    let (d, public) = start(&sink, &kb);
    set_passwords(&d);
    let cookie = login_as(&d, "alice");
    let get = |path: &str| http(d.web_port, "GET", path, &[("Cookie", &cookie)], "");

    let list = get("/kb").text();
    assert!(list.contains(r#"href="/kb">Knowledge base</a>"#), "{list}");
    assert!(list.contains("Vendor hotline for printers"), "{list}");
    assert!(list.contains("Printer paper jam"), "{list}");
    let page = get("/kb/vendor-hotline");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("555-0100"), "{}", page.text());
    let found = get("/kb?q=hotline").text();
    assert!(found.contains("/kb/vendor-hotline"), "{found}");
    // Without a session: the login page, no article.
    let anon = http(d.web_port, "GET", "/kb/vendor-hotline", &[], "");
    assert_eq!(anon.status, 303);

    let customer = "ada@customer.example";
    ack_for(&d, &sink, customer, "Question", "Something is wrong.\n");
    let id = d.all_tickets()[0]["id"].as_str().unwrap().to_string();
    let page = get(&format!("/tickets/{id}")).text();
    assert!(page.contains(r#"name="kb""#), "the article picker: {page}");
    assert!(page.contains(r#"value="printer-jam""#), "{page}");
    assert!(
        !page.contains(r#"value="vendor-hotline""#),
        "the picker offers public articles only: {page}"
    );
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let version = page
        .split(r#"name="version" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let o = origin(&d);
    let a = http(
        d.web_port,
        "POST",
        &format!("/tickets/{id}/act"),
        &[
            ("Cookie", &cookie),
            ("Origin", &o),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &form(&[
            ("csrf", &csrf),
            ("version", &version),
            ("kb", "printer-jam"),
        ]),
    );
    assert_eq!(a.status, 303, "{}", a.text());
    let reply = body_text(&sink.nth_to(customer, 2));
    assert!(reply.contains("remove the jammed paper"), "{reply}");
    assert!(
        reply.contains(&format!("http://127.0.0.1:{public}/kb/printer-jam")),
        "{reply}"
    );
}

#[test]
fn an_edited_article_is_served_after_the_reload_and_a_broken_one_is_not() {
    let sink = Sink::start();
    let kb = articles();
    let (d, public) = start(&sink, &kb);
    std::fs::write(
        kb.path.join("printer-jam.md"),
        PRINTER.replace("Printer paper jam", "Clearing a paper jam"),
    )
    .unwrap();
    wait_until(SECS_30, "the edited title on /kb", || {
        get(public, "/kb")
            .1
            .contains("Clearing a paper jam")
            .then_some(())
    });
    // A broken article is refused whole: the working set stays.
    std::fs::write(kb.path.join("broken.md"), "no front matter\n").unwrap();
    wait_until(SECS_30, "the reload refused", || {
        d.log().contains("broken.md").then_some(())
    });
    let (status, page) = get(public, "/kb/printer-jam");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Clearing a paper jam"), "{page}");
}
