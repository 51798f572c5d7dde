//! The satisfaction survey end to end: the real binary, an aiosmtpd sink, the survey page on
//! the public listener, Debian's chromium through Playwright (tests/peers/survey_browse.py).
//!
//! The attack this guards against: corporate link scanners and Microsoft SafeLinks open
//! (GET, HEAD, replay) every link of a message, so a survey that counts clicks lets them
//! vote. Here a "scanner" opens every link of the survey mail and no rating is recorded;
//! only a person submitting the page counts (once per resolution, changeable), and a reply
//! with a single rating counts too, without reopening the ticket.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const SURVEY_ON: &str = r#"
[default]
survey = true
survey_delay = "1s"
survey_scale = "five"
"#;

fn start(sink: &Sink, rules: &str) -> (Daemon, u16) {
    let mut public = 0;
    let d = Daemon::start_with(sink, |c| {
        public = c.with_public();
        c.rules_files
            .push(("customer.toml".into(), rules.to_string()));
    });
    (d, public)
}

/// `customer` writes, alice answers and resolves; returns the ticket id. The customer has
/// the acknowledgement and the reply at the sink.
fn resolved_ticket(d: &Daemon, sink: &Sink, customer: &str, tag: &str) -> String {
    let raw = mail(
        &format!("Customer <{customer}>"),
        "The printer jams",
        &format!("<{tag}@customer.example>"),
        &[],
        "Every second page jams.\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    sink.nth_to(customer, 1);
    post_json(
        d,
        &format!("/api/v1/tickets/{id}/reply"),
        json!({"agent": "alice", "body": "Clean the rollers; fixed.", "commands": ["#resolve"]}),
    );
    sink.nth_to(customer, 2);
    id
}

fn post_json(d: &Daemon, path: &str, body: Value) {
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

/// The survey links of a survey mail (path and query, on the public listener).
fn survey_links(mail: &[u8]) -> Vec<String> {
    body_text(mail)
        .split_whitespace()
        .filter(|w| w.starts_with("http://") && w.contains("/survey/"))
        .map(String::from)
        .collect()
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("/{}", rest.split_once('/').unwrap().1)
}

/// One raw HTTP/1.1 request with the given extra header lines; (status, body).
fn raw_http(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn surveys(d: &Daemon, id: &str) -> Vec<Value> {
    d.ticket(id)["surveys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn rated_events(d: &Daemon, id: &str) -> Vec<Value> {
    d.ticket(id)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "rated")
        .cloned()
        .collect()
}

#[test]
fn scanners_opening_every_link_cast_no_vote_and_a_person_submitting_the_page_does() {
    let sink = Sink::start();
    let (d, public) = start(&sink, SURVEY_ON);
    let customer = "ann@customer.example";
    let id = resolved_ticket(&d, &sink, customer, "s1");

    // After the delay, the survey at the sink.
    let survey = sink.nth_to(customer, 3);
    let subject = header(&survey, "Subject").unwrap();
    assert!(subject.contains("How did we do"), "{subject}");
    let reply_to = header(&survey, "Reply-To").unwrap();
    assert!(
        reply_to.contains(&format!("support+t{id}.")),
        "a reply threads to the ticket: {reply_to}"
    );
    let raw = String::from_utf8_lossy(&survey).to_string();
    assert!(
        !raw.contains("<img") && !raw.to_ascii_lowercase().contains("text/html"),
        "no tracking pixel, no remote images: {raw}"
    );
    let links = survey_links(&survey);
    assert_eq!(links.len(), 5, "one link per answer: {raw}");
    assert!(!links.iter().any(|l| l.contains('@')), "{links:?}");
    let s = surveys(&d, &id);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["agents"], json!(["alice"]));
    assert!(s[0]["sent_at"].is_string(), "{s:?}");

    // The scanner: GET and HEAD every link, several times, as SafeLinks and prefetchers do.
    for link in &links {
        let path = path_of(link);
        for _ in 0..2 {
            let (status, page) = raw_http(public, "GET", &path, &["User-Agent: SafeLinks"], "");
            assert_eq!(status, 200, "{page}");
            assert!(page.contains("<form method=\"post\""), "{page}");
            let (status, _) = raw_http(public, "HEAD", &path, &[], "");
            assert_eq!(status, 200);
        }
    }
    // A post from another site, and one without the page's token, count neither.
    let path = path_of(&links[0]);
    let (status, _) = raw_http(
        public,
        "POST",
        &path,
        &["Origin: http://evil.example"],
        "r=1&comment=x&csrf=whatever",
    );
    assert_eq!(status, 403);
    let (status, _) = raw_http(public, "POST", &path, &[], "r=1&comment=x&csrf=");
    assert_eq!(status, 403);
    assert!(rated_events(&d, &id).is_empty(), "{}", d.ticket(&id));
    assert!(surveys(&d, &id)[0]["rating"].is_null());

    // A person clicks "4", sees it chosen, adds a comment and submits; then changes to "2".
    let four = links.iter().find(|l| l.ends_with("r=4")).unwrap();
    let two = links.iter().find(|l| l.ends_with("r=2")).unwrap();
    let out_dir = repo_root().join("target/web-screenshots/survey");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(python())
        .arg(peer_script("survey_browse.py"))
        .arg(&out_dir)
        .args([
            four.as_str(),
            "Quick and friendly.",
            two.as_str(),
            "It jams again.",
        ])
        .output()
        .expect("run tests/peers/survey_browse.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "survey_browse.py failed:\n{stdout}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_tail(40)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    let answers = report["answers"].as_array().unwrap();
    assert_eq!(answers[0]["chosen"], json!(["4"]), "{report}");
    assert_eq!(answers[0]["images"], 0, "{report}");
    assert!(
        answers[0]["thanks"]
            .as_str()
            .unwrap_or("")
            .contains("recorded"),
        "{report}"
    );
    // The second link preselects its own answer, not the recorded one.
    assert_eq!(answers[1]["chosen"], json!(["2"]), "{report}");
    assert!(
        answers[1]["thanks"]
            .as_str()
            .unwrap_or("")
            .contains("changed"),
        "{report}"
    );
    assert!(
        report["foreign_requests"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(report["dialogs"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        !report["console"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap_or("").contains("Content Security Policy")),
        "{report}"
    );

    // Exactly one rating for this resolution, now 2 with the later comment.
    let s = surveys(&d, &id);
    assert_eq!(s.len(), 1);
    let rating = &s[0]["rating"];
    assert_eq!(rating["score"], 2, "{s:?}");
    assert_eq!(rating["comment"], "It jams again.");
    assert_eq!(rating["via"], "web");
    assert_eq!(rating["by"], customer);
    let rated = rated_events(&d, &id);
    assert_eq!(rated.len(), 2, "one recorded, one changed: {rated:?}");
    assert!(rated[1]["detail"].as_str().unwrap().contains("changed"));
    assert_eq!(d.ticket(&id)["status"], "resolved");

    // The scanner again, after the vote: the rating stays what the person chose.
    for link in &links {
        raw_http(public, "GET", &path_of(link), &[], "");
    }
    assert_eq!(surveys(&d, &id)[0]["rating"]["score"], 2);
    assert_eq!(rated_events(&d, &id).len(), 2);

    // The report: one survey sent, one rating (2 of 5: not satisfied), per agent who replied.
    let report = d.api_ok("/api/v1/reports/satisfaction?since=1d");
    let tables = report["tables"].as_array().unwrap();
    let five = tables[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "five")
        .cloned()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(five, json!(["five", 1, 1, 1.0, 0.0, 2.0]), "{report}");
    assert_eq!(
        tables[1]["rows"],
        json!([["alice", 1, 1, 1.0, 0.0, 2.0]]),
        "{report}"
    );

    // The agents' ticket page shows it.
    common::web::set_passwords(&d);
    let cookie = common::web::login_as(&d, "alice");
    let page = common::web::http(
        d.web_port,
        "GET",
        &format!("/tickets/{id}"),
        &[("Cookie", &cookie)],
        "",
    )
    .body;
    assert!(page.contains("<h2>Satisfaction</h2>"), "{page}");
    assert!(
        page.contains("2/5") && page.contains("It jams again."),
        "{page}"
    );
}

#[test]
fn a_reply_with_a_single_rating_counts_and_does_not_reopen() {
    let sink = Sink::start();
    let (d, _public) = start(&sink, SURVEY_ON);
    let customer = "bob@customer.example";
    let id = resolved_ticket(&d, &sink, customer, "m1");
    let survey = sink.nth_to(customer, 3);
    let to = bare_address(&header(&survey, "Reply-To").unwrap());
    let parent = header(&survey, "Message-ID").unwrap();

    let reply = mail(
        &format!("Bob <{customer}>"),
        &format!("Re: {}", header(&survey, "Subject").unwrap()),
        "<m2@customer.example>",
        &[
            &format!("In-Reply-To: {parent}"),
            &format!("References: {parent}"),
        ],
        "\"4\"\n\nOn Thu, Example Support wrote:\n> How did we do?\n",
    );
    d.send_ok(customer, &[&to], &reply);
    d.wait_processed(SECS_30);
    let t = d.ticket(&id);
    assert_eq!(t["status"], "resolved", "a vote is not a new request: {t}");
    let s = surveys(&d, &id);
    assert_eq!(s[0]["rating"]["score"], 4, "{s:?}");
    assert_eq!(s[0]["rating"]["via"], "mail");
    assert_eq!(d.tickets_total(), 1, "no new ticket");
    assert!(
        !t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "reopened"),
        "{t}"
    );

    // A real message reopens as always; resolving again asks again (resolution 2).
    let again = mail(
        &format!("Bob <{customer}>"),
        &format!("Re: [#{id}] The printer jams"),
        "<m3@customer.example>",
        &[&format!("In-Reply-To: {parent}")],
        "4 days later it jams again.\n",
    );
    d.send_ok(customer, &[&to], &again);
    d.wait_processed(SECS_30);
    assert_eq!(d.ticket(&id)["status"], "open");
    post_json(
        &d,
        &format!("/api/v1/tickets/{id}/commands"),
        json!({"agent": "alice", "commands": ["#resolve"]}),
    );
    let second = sink.nth_to(customer, 4);
    assert!(
        header(&second, "Subject")
            .unwrap()
            .contains("How did we do")
    );
    let s = surveys(&d, &id);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[1]["resolution"], 2);
    assert!(s[1]["rating"].is_null());
    assert_eq!(
        s[0]["rating"]["score"], 4,
        "the first resolution keeps its rating"
    );
}

#[test]
fn no_survey_where_the_queue_has_none_nor_to_a_bouncing_address() {
    let sink = Sink::start();
    let (d, _public) = start(
        &sink,
        &format!("{SURVEY_ON}\n[queue.billing]\nsurvey = false\n"),
    );

    // Survey off for billing.
    let customer = "carol@customer.example";
    let raw = mail(
        &format!("Carol <{customer}>"),
        "Invoice question",
        "<o1@customer.example>",
        &[],
        "Why two invoices?\n",
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    sink.nth_to(customer, 1);
    post_json(
        &d,
        &format!("/api/v1/tickets/{id}/commands"),
        json!({"agent": "alice", "commands": ["#queue billing", "#resolve"]}),
    );

    // A bouncing address (a real RFC 3464 report marks it).
    let bouncing = "userunknown@bouncehammer.jp";
    let raw = mail(
        &format!("Customer <{bouncing}>"),
        "Where is my order?",
        "<o2@customer.example>",
        &[],
        "It has not arrived.\n",
    );
    let id2 = d.ticket_of(d.send_ok(bouncing, &[SUPPORT], &raw));
    let ack = sink.nth_to(bouncing, 1);
    let verp = header(&ack, "X-MailFrom").unwrap();
    let report = to_crlf(
        &std::fs::read(
            repo_root().join("fixtures/corpus/autoreply-bounce/sisimai/bsd/rfc3464-01.eml"),
        )
        .unwrap(),
    );
    d.send_ok("", &[&verp], &report);
    d.wait_processed(SECS_30);
    post_json(
        &d,
        &format!("/api/v1/tickets/{id2}/commands"),
        json!({"agent": "alice", "commands": ["#resolve"]}),
    );
    let s = wait_until(SECS_30, "the survey skipped", || {
        let s = surveys(&d, &id2);
        s.first().filter(|s| s["skipped"].is_string()).cloned()
    });
    assert!(s["skipped"].as_str().unwrap().contains("bouncing"), "{s}");

    std::thread::sleep(Duration::from_secs(3));
    assert!(surveys(&d, &id).is_empty(), "{}", d.ticket(&id));
    assert_eq!(
        sink.messages_to(customer).len(),
        1,
        "only the acknowledgement"
    );
    assert_eq!(
        sink.messages_to(bouncing).len(),
        1,
        "only the acknowledgement"
    );
}
