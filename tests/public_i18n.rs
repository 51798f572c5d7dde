//! The customer's language beyond the form and status page, through the
//! real binary: the line naming the status link under an agent's reply is
//! German at the SMTP sink for a customer who writes German (the language
//! the routing rules' `language` condition sees) and English otherwise;
//! the survey page speaks German to a browser that asks for it
//! (Accept-Language, or `?lang=de`), in chromium too, and its thank-you
//! page after the post as well.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

const SURVEY_ON: &str = r#"
[default]
survey = true
survey_delay = "1s"
survey_scale = "five"
"#;

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

/// One raw HTTP/1.1 request with extra header lines; (status, whole response).
fn raw_http(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
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

/// `customer` writes `subject` and `body`; alice answers (and resolves
/// when `resolve`). Returns the ticket id and the reply as the sink got it.
fn answered(
    d: &Daemon,
    sink: &Sink,
    customer: &str,
    subject: &str,
    body: &str,
    resolve: bool,
) -> (String, Vec<u8>) {
    let raw = mail(
        &format!("Kunde <{customer}>"),
        subject,
        &format!("<{}@customer.example>", customer.replace('@', ".")),
        &[],
        body,
    );
    let id = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    sink.nth_to(customer, 1);
    let commands = if resolve {
        json!(["#resolve"])
    } else {
        json!([])
    };
    post_json(
        d,
        &format!("/api/v1/tickets/{id}/reply"),
        json!({"agent": "alice", "body": "Reinigen Sie bitte die Walzen.", "commands": commands}),
    );
    (id, sink.nth_to(customer, 2))
}

#[test]
fn the_status_line_under_a_reply_is_in_the_customers_language() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.with_public();
    });
    let (_, german) = answered(
        &d,
        &sink,
        "kunde@example.de",
        "Drucker druckt nicht",
        "Guten Tag, der Drucker ist kaputt und ich kann nicht drucken. Bitte helfen Sie mir.\n",
        false,
    );
    let text = body_text(&german);
    assert!(
        text.contains("\n-- \nIhre Anfrage online: http://"),
        "German customer: {text}"
    );
    assert!(!text.contains("Your request online"), "{text}");
    let (_, english) = answered(
        &d,
        &sink,
        "customer@example.com",
        "Printer does not print",
        "Hello, the printer is broken and I cannot print. Please help me with this.\n",
        false,
    );
    let text = body_text(&english);
    assert!(
        text.contains("\n-- \nYour request online: http://"),
        "English customer: {text}"
    );
    assert!(!text.contains("Ihre Anfrage"), "{text}");
}

#[test]
fn the_survey_page_speaks_german_to_a_german_browser() {
    let sink = Sink::start();
    let mut public = 0;
    let d = Daemon::start_with(&sink, |c| {
        public = c.with_public();
        c.rules_files
            .push(("customer.toml".into(), SURVEY_ON.to_string()));
    });
    let customer = "kundin@example.de";
    let (id, _) = answered(
        &d,
        &sink,
        customer,
        "Drucker druckt nicht",
        "Der Drucker ist kaputt und ich kann nicht drucken. Bitte helfen Sie mir.\n",
        true,
    );
    let survey = sink.nth_to(customer, 3);
    let links: Vec<String> = body_text(&survey)
        .split_whitespace()
        .filter(|w| w.starts_with("http://") && w.contains("/survey/"))
        .map(|l| {
            format!(
                "/{}",
                l.split_once("://").unwrap().1.split_once('/').unwrap().1
            )
        })
        .collect();
    let four = links.iter().find(|l| l.ends_with("r=4")).unwrap().clone();
    let five = links.iter().find(|l| l.ends_with("r=5")).unwrap().clone();

    // Accept-Language: German, the clicked answer chosen.
    let (status, page) = raw_http(
        public,
        "GET",
        &four,
        &["Accept-Language: de-DE,de;q=0.9,en;q=0.5"],
        "",
    );
    assert_eq!(status, 200, "{page}");
    for want in [
        r#"<html lang="de">"#,
        "<title>Wie zufrieden waren Sie?</title>",
        &format!("Ihre Anfrage #{id} wurde gelöst. Wie zufrieden sind Sie mit unserer Antwort?"),
        "<legend>Ihre Bewertung</legend>",
        r#"value="4" checked required><label for="r-4">4 – gut</label>"#,
        "5 – sehr gut",
        "Kommentar (optional)",
        "Bewertung senden",
        "Erst wenn Sie dieses Formular senden, wird etwas gespeichert.",
        "?lang=de\" id=\"survey\"",
        ">English</a>",
    ] {
        assert!(page.contains(want), "missing {want:?} in\n{page}");
    }
    assert!(!page.contains("How did we do"), "{page}");
    // No header: English; ?lang=de over an English browser: German.
    let (_, english) = raw_http(public, "GET", &four, &[], "");
    assert!(english.contains("How did we do?"), "{english}");
    assert!(english.contains(">Deutsch</a>"), "{english}");
    let (_, asked) = raw_http(
        public,
        "GET",
        &format!("{four}&lang=de"),
        &["Accept-Language: en-US"],
        "",
    );
    assert!(asked.contains("Wie zufrieden waren Sie?"), "{asked}");

    // The post from the German page: a German thank-you.
    let csrf = {
        let at = page.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
        page[at..at + page[at..].find('"').unwrap()].to_string()
    };
    let token = four.split('?').next().unwrap();
    let origin = format!("Origin: http://127.0.0.1:{public}");
    let (status, thanks) = raw_http(
        public,
        "POST",
        &format!("{token}?lang=de"),
        &[&origin, "Accept-Language: en"],
        &format!("r=4&comment=Schnell+und+freundlich&csrf={csrf}"),
    );
    assert_eq!(status, 200, "{thanks}");
    assert!(
        thanks.contains(r#"<p id="thanks">Ihre Bewertung wurde gespeichert: 4 von 5.</p>"#),
        "{thanks}"
    );
    assert!(thanks.contains("<h1>Vielen Dank</h1>"), "{thanks}");
    assert_eq!(d.ticket(&id)["surveys"][0]["rating"]["score"], 4);

    // In chromium with a German locale: the page, the choice and the change.
    let out_dir = repo_root().join("target/web-screenshots/survey-de");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(python())
        .arg(peer_script("survey_browse.py"))
        .arg(&out_dir)
        .args([
            format!("http://127.0.0.1:{public}{five}").as_str(),
            "Jetzt läuft alles.",
        ])
        .env("SURVEY_LOCALE", "de-DE")
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
    let answer = &report["answers"][0];
    assert_eq!(answer["chosen"], json!(["5"]), "{report}");
    assert_eq!(
        answer["thanks"], "Ihre Bewertung wurde geändert: 5 von 5.",
        "{report}"
    );
    assert_eq!(d.ticket(&id)["surveys"][0]["rating"]["score"], 5);
}
