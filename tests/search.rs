//! Full-text search through the real binary: mail comes in over SMTP, the
//! JSON API (`/api/v1/search`), `postdesk search` and the web view's
//! `/search` page find it by word, phrase, prefix, sender, status and tag;
//! the index survives a restart, is rebuilt when its directory is gone, and
//! `postdesk reindex` rebuilds it to the same answers. A search sees every
//! change committed before it: new mail, a status, tags, a merge.

mod common;
use common::web::{login_as, set_passwords};
use common::*;
use serde_json::{Value, json};
use std::io::Write;
use std::process::Command;

/// `GET /api/v1/search?q=…` (percent-encoded here): the JSON answer.
fn search(d: &Daemon, q: &str) -> Value {
    let (code, v) = d.api_get(&format!("/api/v1/search?q={}&limit=50", enc(q)));
    assert_eq!(code, 200, "{q}: {v}");
    v
}

/// The ids `q` finds, best first.
fn ids(d: &Daemon, q: &str) -> Vec<String> {
    search(d, q)["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| id_string(&t["id"]).unwrap())
        .collect()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A message with one attachment named `file`.
fn with_attachment(from: &str, subject: &str, id: &str, body: &str, file: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: Support <{SUPPORT}>\r\nSubject: {subject}\r\nMessage-ID: {id}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"{file}\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    )
    .into_bytes()
}

/// The queries of the test with what each must find (by ticket number: 1 paper jam, 2 invoice, 3 umlauts).
const EXPECTED: &[(&str, &[usize])] = &[
    ("jam", &[0]),
    ("\"paper jam\"", &[0]),
    ("\"jam paper\"", &[]),
    ("print*", &[0]),
    ("from:carla@customer.example", &[0]),
    ("from:weiß", &[2]),
    ("hauptstraße", &[2]),
    ("grüße", &[2]),
    ("quarterly", &[1]),
    ("invoice from:bob@customer.example", &[1]),
    ("invoice from:carla@customer.example", &[]),
    ("nonexistentword", &[]),
];

fn check(d: &Daemon, tickets: &[String]) -> Vec<Vec<String>> {
    let mut answers = Vec::new();
    for (q, want) in EXPECTED {
        let mut got = ids(d, q);
        got.sort();
        let mut want: Vec<String> = want.iter().map(|&i| tickets[i].clone()).collect();
        want.sort();
        assert_eq!(got, want, "query {q:?}");
        answers.push(got);
    }
    // status: finds exactly the tickets with that status, as the API shows them.
    for status in ["new", "open", "pending", "resolved"] {
        let mut want: Vec<String> = tickets
            .iter()
            .filter(|id| d.ticket(id)["status"] == status)
            .cloned()
            .collect();
        want.sort();
        let mut got = ids(d, &format!("status:{status}"));
        got.sort();
        assert_eq!(got, want, "status:{status}");
        answers.push(got);
    }
    answers
}

#[test]
fn search_finds_mail_by_every_field_and_survives_restart_and_reindex() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let jam = mail(
        "Carla <carla@customer.example>",
        "Printer trouble",
        "<s-1@customer.example>",
        &[],
        "Our printer has a paper jam in tray 2 <script>alert(1)</script>.\n",
    );
    let invoice = with_attachment(
        "Bob <bob@customer.example>",
        "Invoice question",
        "<s-2@customer.example>",
        "The invoice total looks wrong.",
        "quarterly-report.pdf",
    );
    let umlauts = mail(
        "Jürgen Weiß <jw@kunde.example>",
        "Lieferadresse",
        "<s-3@kunde.example>",
        &[],
        "Bitte an die Hauptstraße 5 liefern. Grüße\n",
    );
    let mut tickets = Vec::new();
    for (from, raw) in [
        ("carla@customer.example", &jam),
        ("bob@customer.example", &invoice),
        ("jw@kunde.example", &umlauts),
    ] {
        tickets.push(d.ticket_of(d.send_ok(from, &[SUPPORT], raw)));
    }
    d.wait_idle(SECS_30);

    // No token, no search; a bad query is a 400 saying why.
    let (code, _) = d.api_get_as("/api/v1/search?q=jam", None);
    assert_eq!(code, 401);
    let (code, v) = d.api_get(&format!("/api/v1/search?q={}", enc("\"open")));
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("quote"), "{v}");

    check(&d, &tickets);

    // Score and an escaped, highlighted snippet.
    let v = search(&d, "jam");
    let hit = &v["tickets"][0];
    assert!(hit["score"].as_f64().unwrap() > 0.0, "{v}");
    let snippet = hit["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>jam</mark>"), "{snippet}");
    assert!(
        snippet.contains("&lt;script&gt;") && !snippet.contains("<script>"),
        "{snippet}"
    );

    // A tag set by an agent through the API is found at once, with status.
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{}/commands", tickets[1]),
        Some(API_TOKEN),
        Some(
            &json!({"agent": "alice", "commands": ["#tag +billing-dispute", "#pending"]})
                .to_string(),
        ),
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    // What postdesk wrote itself is not searched: every ticket has its
    // acknowledgement, and its boilerplate would match them all.
    let first = d.ticket(&tickets[0]);
    assert!(
        first["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["kind"] == "auto")),
        "no acknowledgement on the ticket: {first}"
    );
    assert!(ids(&d, "\"we received your request\"").is_empty());
    assert_eq!(ids(&d, "tag:billing-dispute"), vec![tickets[1].clone()]);
    assert_eq!(
        ids(&d, "tag:billing-dispute status:pending invoice"),
        vec![tickets[1].clone()]
    );
    assert!(ids(&d, "tag:billing-dispute status:new").is_empty());
    assert_eq!(
        ids(&d, "dispute"),
        vec![tickets[1].clone()],
        "tags are words too"
    );
    // The agent's reply by API is searchable as the ticket's text.
    let (code, _, _) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{}/reply", tickets[0]),
        Some(API_TOKEN),
        Some(&json!({"agent": "alice", "body": "Please open the rear flap."}).to_string()),
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(ids(&d, "flap"), vec![tickets[0].clone()]);

    // `postdesk search` asks the running daemon.
    let out = Command::new(daemon_bin())
        .args(["search", "-c"])
        .arg(&d.config_path)
        .arg("\"paper jam\"")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("1 tickets") && text.contains(&format!("#{}", tickets[0])),
        "{text}"
    );
    assert!(text.contains("Printer trouble"), "{text}");

    // The index survives a restart (and a kill -9).
    let answers = check(&d, &tickets);
    let statuses = |d: &Daemon| ids(d, "status:open");
    let before_restart = statuses(&d);
    d.restart();
    assert_eq!(check(&d, &tickets), answers);
    d.kill9();
    d.restart();
    assert_eq!(statuses(&d), before_restart);
    let flap = ids(&d, "flap");

    // Without its directory (deleted while the daemon was stopped) the
    // index is rebuilt from the store on start, to the same answers.
    d.stop();
    let index_dir = d.dir.path.join("data").join(postdesk::store::SEARCH_DIR);
    assert!(
        index_dir.join("meta.json").exists(),
        "{}",
        index_dir.display()
    );
    std::fs::remove_dir_all(&index_dir).unwrap();
    d.restart();
    assert_eq!(check(&d, &tickets), answers);
    assert_eq!(ids(&d, "flap"), flap);
    assert!(d.log().contains("search index built"), "rebuilt on start");

    // `postdesk reindex` rebuilds the running daemon's index: same answers.
    let out = Command::new(daemon_bin())
        .args(["reindex", "-c"])
        .arg(&d.config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rebuilt: 3 tickets"), "{text}");
    assert_eq!(check(&d, &tickets), answers);
    assert_eq!(ids(&d, "tag:billing-dispute"), vec![tickets[1].clone()]);
}

/// Gives alice a web password in the daemon's rules and logs her in:
/// returns the session cookie (`name=value`).
fn web_login(d: &Daemon) -> String {
    set_passwords(d);
    login_as(d, "alice")
}

/// GET a page with the session cookie: (status, body).
fn page(d: &Daemon, path: &str, cookie: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.web_port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        d.web_port
    )
    .unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (status, answer)
}

#[test]
fn web_search_page_escapes_customer_text_and_needs_a_session() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let evil = mail(
        "Mallory <mallory@customer.example>",
        "Toner <img src=x onerror=alert(1)>",
        "<w-1@customer.example>",
        &[],
        "The toner <script>alert('xss')</script> is empty.\n",
    );
    let id = d.ticket_of(d.send_ok("mallory@customer.example", &[SUPPORT], &evil));
    d.wait_idle(SECS_30);

    // No session: to the login page, nothing shown.
    let (status, answer) = page(&d, "/search?q=toner", "postdesk=nothing");
    assert_eq!(status, 303, "{answer}");
    assert!(!answer.contains("toner is empty"));

    let cookie = web_login(&d);
    // The search box is on every page.
    let (status, home) = page(&d, "/", &cookie);
    assert_eq!(status, 200);
    assert!(home.contains(r#"action="/search""#), "{home}");

    let (status, body) = page(&d, "/search?q=toner+script", &cookie);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!(r#"href="/tickets/{id}""#)), "{body}");
    assert!(body.contains("<mark>toner</mark>"), "{body}");
    assert!(body.contains("&lt;<mark>script</mark>&gt;"), "{body}");
    assert!(
        !body.contains("<script>"),
        "customer markup reached the page: {body}"
    );
    assert!(!body.contains("<img"), "{body}");
    assert!(
        body.contains("Results <span class=\"count\">1</span>"),
        "{body}"
    );

    // The query is shown back escaped; a bad one says why.
    let (_, body) = page(&d, &format!("/search?q={}", enc("\"<b>x")), &cookie);
    assert!(body.contains("unbalanced quote"), "{body}");
    assert!(!body.contains("<b>x"), "{body}");
    let (status, body) = page(&d, "/search?q=nomatchword", &cookie);
    assert_eq!(status, 200);
    assert!(body.contains("No ticket matches"), "{body}");
}

#[test]
fn every_stored_message_is_found_after_kill_9_during_intake() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let port = d.smtp_port;
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..3)
        .map(|k| {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..40 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let word = format!("kw{k}x{i}");
                    let from = format!("c{k}@customer.example");
                    let raw = mail(
                        &from,
                        &format!("Case {word}"),
                        &format!("<{word}@customer.example>"),
                        &[],
                        &format!("Text with marker{word} inside.\n"),
                    );
                    let r = send_smtp(port, &from, &[SUPPORT], &raw);
                    if r.code == Some(250) {
                        accepted.lock().unwrap().push(word);
                    }
                }
            })
        })
        .collect();
    wait_until(SECS_60, "some messages accepted", || {
        (accepted.lock().unwrap().len() >= 15).then_some(())
    });
    d.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    d.restart();
    d.wait_idle(SECS_60);
    // Every message that got its 250 is found by a word of its text…
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 15);
    for word in &accepted {
        let found = ids(&d, &format!("marker{word}"));
        assert_eq!(found.len(), 1, "marker{word}: {found:?}");
    }
    // …and every stored ticket by the word of its subject, none other.
    let tickets = d.all_tickets();
    assert!(tickets.len() >= accepted.len());
    for t in &tickets {
        let subject = t["subject"].as_str().unwrap();
        let word = subject.trim_start_matches("Case ");
        let id = id_string(&t["id"]).unwrap();
        assert_eq!(ids(&d, word), vec![id.clone()], "{subject}");
        assert_eq!(ids(&d, &format!("marker{word}")), vec![id], "{subject}");
    }
}

/// POSTs agent commands to a ticket through the API.
fn commands(d: &Daemon, ticket: &str, cmds: &[&str]) {
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{ticket}/commands"),
        Some(API_TOKEN),
        Some(&json!({"agent": "alice", "commands": cmds}).to_string()),
    )
    .unwrap();
    assert_eq!(code, 200, "{cmds:?}: {}", String::from_utf8_lossy(&body));
}

/// The index follows a ticket as it changes, and a search right after a
/// change (no waiting for the daemon to be idle) already sees it: the
/// status: filter, tags added and removed, and a merge that moves the
/// text to another ticket (the old ticket no longer found by it).
#[test]
fn a_search_sees_each_change_committed_before_it() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let airship = mail(
        "Dora <dora@customer.example>",
        "Airship order",
        "<c-1@customer.example>",
        &[],
        "The zeppelin arrived with a dent in the gondola.\n",
    );
    let balloon = mail(
        "Dora <dora@customer.example>",
        "Balloon order",
        "<c-2@customer.example>",
        &[],
        "The balloon is fine.\n",
    );
    // Found as soon as the API shows the message, without waiting for idle.
    let a = d.ticket_of(d.send_ok("dora@customer.example", &[SUPPORT], &airship));
    assert_eq!(ids(&d, "zeppelin"), vec![a.clone()]);
    let b = d.ticket_of(d.send_ok("dora@customer.example", &[SUPPORT], &balloon));
    assert_eq!(ids(&d, "balloon"), vec![b.clone()]);
    let status = d.ticket(&a)["status"].as_str().unwrap().to_string();
    assert_eq!(
        ids(&d, &format!("status:{status} zeppelin")),
        vec![a.clone()]
    );

    // A status change moves the ticket between status: filters at once.
    commands(&d, &a, &["#pending", "#tag +fragile"]);
    assert!(ids(&d, &format!("status:{status} zeppelin")).is_empty());
    assert_eq!(ids(&d, "status:pending zeppelin"), vec![a.clone()]);
    assert_eq!(ids(&d, "tag:fragile"), vec![a.clone()]);
    assert_eq!(ids(&d, "fragile gondola"), vec![a.clone()]);
    commands(&d, &a, &["#tag -fragile", "#open"]);
    assert!(ids(&d, "tag:fragile").is_empty());
    assert!(
        ids(&d, "fragile").is_empty(),
        "a removed tag is no word any more"
    );
    assert!(ids(&d, "status:pending").is_empty());
    assert_eq!(ids(&d, "status:open zeppelin"), vec![a.clone()]);

    // Merged into the balloon ticket, the airship's text is found there,
    // and no longer in the ticket it left.
    commands(&d, &a, &[&format!("#merge {b}")]);
    assert_eq!(ids(&d, "zeppelin"), vec![b.clone()]);
    assert_eq!(ids(&d, "zeppelin balloon"), vec![b.clone()]);
    assert_eq!(ids(&d, "\"dent in the gondola\""), vec![b.clone()]);
    // The merged ticket keeps its own subject, nothing of the conversation
    // (the survivor has the moved message, subject and all).
    let mut both = ids(&d, "airship");
    both.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(both, want);
    assert_eq!(ids(&d, "airship gondola"), vec![b.clone()]);
}
