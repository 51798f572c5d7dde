//! The customers' web form (`/new`) and signed status page (`/status/…`) on
//! the public listener, through the real binary over HTTP: a form request
//! becomes a new, unverified ticket with an acknowledgement carrying the
//! status link; the status page shows the public conversation and nothing
//! internal, takes a message (which threads and verifies), closes and
//! reopens; tampered, expired and foreign links show nothing; the honeypot,
//! the rate limits and cross-site posts take nothing. The browser parts are
//! in `public_form_in_chromium`.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "form-test-link-secret-0123456789abcdef";

/// A `multipart/form-data` body of `fields` and `files` (field, filename, bytes).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----postdesk-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, data) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One POST of a multipart body with `headers` (e.g. Origin); (status, head, body).
fn post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    (content_type, body): &(String, Vec<u8>),
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = find(&buf, b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        head,
        String::from_utf8_lossy(&buf[split + 4..]).into_owned(),
    )
}

fn get(port: u16, path: &str) -> (u16, String) {
    let (status, body) = http_get(port, path, None).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the hidden `token` input of a page.
fn form_token(page: &str) -> String {
    let at = page
        .find(r#"name="token" value=""#)
        .unwrap_or_else(|| panic!("no form token in {page}"));
    let rest = &page[at + r#"name="token" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn origin(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A form request as a browser on our page sends it (Origin, token).
fn send_form(port: u16, email: &str, subject: &str, body: &str) -> (u16, String, String) {
    let (_, page) = get(port, "/new");
    let token = form_token(&page);
    let o = origin(port);
    post(
        port,
        "/new",
        &[("Origin", &o)],
        &multipart(
            &[
                ("token", &token),
                ("name", "Erin Web"),
                ("email", email),
                ("subject", subject),
                ("body", body),
            ],
            &[],
        ),
    )
}

/// The ticket number a thank-you page names.
fn ticket_on(page: &str) -> String {
    let at = page
        .find("number is #")
        .unwrap_or_else(|| panic!("no ticket number on {page}"));
    page[at + "number is #".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// The path of the status link in an acknowledgement or reply.
fn status_path(mail: &[u8]) -> String {
    let text = body_text(mail);
    let at = text
        .find("/status/")
        .unwrap_or_else(|| panic!("no status link in {text}"));
    text[at..].split_whitespace().next().unwrap().to_string()
}

fn api_post(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) =
        http_request(port, "POST", path, Some(API_TOKEN), Some(&body.to_string())).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn with_key(c: &mut DaemonConfig, dir: &std::path::Path) -> u16 {
    let key = dir.join("link.key");
    std::fs::write(&key, KEY).unwrap();
    c.set("web", "link_secret_file", &q(&key.to_string_lossy()));
    c.with_public()
}

#[test]
fn form_request_opens_an_unverified_ticket_acknowledged_with_a_status_link_that_shows_and_takes_the_conversation()
 {
    let sink = Sink::start();
    let keys = TempDir::new("postdesk-form-key");
    let mut public = 0;
    let d = Daemon::start_with(&sink, |c| public = with_key(c, &keys.path));
    let customer = "erin@customer.example";

    // The form, with its stable field names.
    let (status, page) = get(public, "/new");
    assert_eq!(status, 200, "{page}");
    for field in ["name", "email", "subject", "body", "attachment"] {
        assert!(
            page.contains(&format!(r#"name="{field}""#)),
            "{field}: {page}"
        );
    }
    let o = origin(public);
    let (status, head, thanks) = post(
        public,
        "/new",
        &[("Origin", &o)],
        &multipart(
            &[
                ("token", &form_token(&page)),
                ("name", "Erin Web"),
                ("email", customer),
                ("subject", "Scanner shows E42"),
                (
                    "body",
                    "Since Monday the scanner shows E42.\nWhat can I do?",
                ),
            ],
            &[("attachment", "e42.txt", b"error log: E42 E42")],
        ),
    );
    assert_eq!(status, 200, "{head}\n{thanks}");
    let id = ticket_on(&thanks);

    let t = d.ticket(&id);
    assert_eq!(t["subject"], "Scanner shows E42", "{t}");
    assert_eq!(t["requester"], customer, "{t}");
    assert_eq!(t["unverified"], true, "a typed address is unverified: {t}");
    let first = &t["messages"][0];
    assert!(first["text"].as_str().unwrap().contains("shows E42"), "{t}");
    let seq = first["seq"].as_str().unwrap();
    let (_, raw) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    assert!(
        contains(&raw, b"e42.txt"),
        "the attachment is in the message"
    );
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "created"
                && e["detail"].as_str().unwrap_or("").contains("web form")),
        "{t}"
    );

    // The acknowledgement goes to the typed address, with the status link.
    let ack = sink.nth_to(customer, 1);
    assert!(
        header(&ack, "Subject")
            .unwrap()
            .contains(&format!("[#{id}]")),
        "{}",
        String::from_utf8_lossy(&ack)
    );
    let link = status_path(&ack);
    assert!(link.starts_with(&format!("/status/{id}.")), "{link}");
    assert!(!link.contains('@'), "no address in the link: {link}");

    // An agent's public reply and an internal note.
    let path = |a: &str| format!("/api/v1/tickets/{id}/{a}");
    let (code, v) = api_post(
        d.web_port,
        &path("reply"),
        &json!({"agent": "alice", "body": "Please restart the scanner, then try again."}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = api_post(
        d.web_port,
        &path("note"),
        &json!({"agent": "alice", "body": "Internal: E42 is a known firmware bug."}),
    );
    assert_eq!(code, 200, "{v}");
    let reply = sink.nth_to(customer, 2);
    assert!(
        body_text(&reply).contains("/status/"),
        "agent replies carry the recipient's status link: {}",
        body_text(&reply)
    );

    let (status, page) = get(public, &link);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Scanner shows E42"), "{page}");
    assert!(
        page.contains("Since Monday the scanner shows E42."),
        "{page}"
    );
    assert!(page.contains("Please restart the scanner"), "{page}");
    assert!(
        page.contains("Alice Example"),
        "the agent's display name: {page}"
    );
    assert!(
        !page.contains("firmware bug"),
        "never an internal note: {page}"
    );
    assert!(
        !page.contains("alice@example.test"),
        "never an agent's address: {page}"
    );
    assert!(
        page.find("Since Monday").unwrap() < page.find("Please restart").unwrap(),
        "newest last"
    );

    // A message from the status page threads into the ticket and verifies it.
    let token = form_token(&page);
    let (status, head, _) = post(
        public,
        &format!("{link}/message"),
        &[("Origin", &o)],
        &multipart(
            &[
                ("token", &token),
                ("body", "Restarted it; E42 is still there."),
            ],
            &[("attachment", "photo.jpg", b"\xff\xd8\xff fake jpeg")],
        ),
    );
    assert_eq!(status, 303, "{head}");
    d.wait_processed(SECS_30);
    let t = d.ticket(&id);
    let added = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"].as_str().unwrap_or("").contains("still there"))
        .unwrap_or_else(|| panic!("the status-page message joined #{id}: {t}"));
    assert_eq!(added["from"], customer, "{added}");
    assert!(added["non_participant"].is_null(), "{added}");
    assert_eq!(t["unverified"], false, "the status link verifies: {t}");
    assert_eq!(d.tickets_total(), 1, "no other ticket");
    let (_, page) = get(public, &link);
    assert!(page.contains("still there"), "{page}");

    // Close, then reopen, as the customer.
    let token = form_token(&page);
    let (status, head, _) = post(
        public,
        &format!("{link}/close"),
        &[("Origin", &o)],
        &multipart(&[("token", &token)], &[]),
    );
    assert_eq!(status, 303, "{head}");
    let t = d.ticket(&id);
    assert_eq!(t["status"], "closed", "{t}");
    let (_, page) = get(public, &link);
    assert!(page.contains("/reopen"), "reopen offered: {page}");
    assert!(
        !page.contains("/message"),
        "a closed ticket takes no message: {page}"
    );
    let token = form_token(&page);
    let (status, head, _) = post(
        public,
        &format!("{link}/reopen"),
        &[("Origin", &o)],
        &multipart(&[("token", &token)], &[]),
    );
    assert_eq!(status, 303, "{head}");
    let t = d.ticket(&id);
    assert_eq!(t["status"], "open", "{t}");
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "reopened" && e["actor"] == customer),
        "{t}"
    );

    // A status-page form from another site, or without the link's token, does nothing.
    let (status, _, _) = post(
        public,
        &format!("{link}/close"),
        &[("Origin", "http://evil.example")],
        &multipart(&[("token", &token)], &[]),
    );
    assert_eq!(status, 403);
    let (status, _, _) = post(
        public,
        &format!("{link}/close"),
        &[("Origin", &o)],
        &multipart(&[("token", "1.AAAA")], &[]),
    );
    assert_eq!(status, 403);
    assert_eq!(d.ticket(&id)["status"], "open");

    // Tampered, expired and foreign links show nothing of the ticket: the
    // same 404 as an unknown page.
    let (unknown_status, unknown) = get(public, "/status/no-such-link");
    assert_eq!(unknown_status, 404);
    let (tid, rest) = link["/status/".len()..].split_once('.').unwrap();
    let (expiry, sig) = rest.split_once('.').unwrap();
    let flipped: String = sig
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    let links = postdesk::public::links::Links::new(KEY.as_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let id_n: u64 = id.parse().unwrap();
    use postdesk::public::links::Purpose;
    let bad = [
        format!("/status/{tid}.{expiry}.{flipped}"),
        format!(
            "/status/{tid}.{}.{sig}",
            expiry.parse::<i64>().unwrap() + 400
        ),
        // Expired yesterday, properly signed for the customer.
        format!(
            "/status/{}",
            links.sign(Purpose::Status, id_n, customer, now - 3 * 86_400, 86_400)
        ),
        // Properly signed, but for someone who takes no part in the ticket.
        format!(
            "/status/{}",
            links.sign(Purpose::Status, id_n, "mallory@evil.example", now, 86_400)
        ),
        // Properly signed for the customer, but for the survey.
        format!(
            "/status/{}",
            links.sign(Purpose::Survey, id_n, customer, now, 86_400)
        ),
    ];
    // The test's own signing agrees with the daemon's: a fresh link opens.
    let fresh = format!(
        "/status/{}",
        links.sign(Purpose::Status, id_n, customer, now, 86_400)
    );
    assert_eq!(get(public, &fresh).0, 200);
    for path in &bad {
        let (status, body) = get(public, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body, unknown, "{path}: the same page as an unknown one");
        assert!(!body.contains("Scanner"), "{path}: {body}");
        let (status, _, _) = post(
            public,
            &format!("{path}/close"),
            &[("Origin", &o)],
            &multipart(&[("token", &token)], &[]),
        );
        assert_eq!(status, 404, "{path}/close");
    }
    assert_eq!(d.ticket(&id)["status"], "open");
}

#[test]
fn a_form_request_never_threads_and_the_german_form_speaks_german() {
    let sink = Sink::start();
    let mut public = 0;
    let d = Daemon::start_with(&sink, |c| public = c.with_public());
    let customer = "frank@customer.example";
    let raw = mail(
        &format!("Frank <{customer}>"),
        "Invoice question",
        "<form-1@customer.example>",
        &[],
        "Where is my invoice?\n",
    );
    let first = d.ticket_of(d.send_ok(customer, &[SUPPORT], &raw));
    let ack = sink.nth_to(customer, 1);
    assert!(
        body_text(&ack).contains("/status/"),
        "mail tickets get the link too"
    );

    // Anyone can type Frank's address and his ticket's tag: a new ticket.
    let (status, head, thanks) = send_form(
        public,
        customer,
        &format!("Re: [#{first}] Invoice question"),
        "Please send the invoice to attacker@evil.example instead.",
    );
    assert_eq!(status, 200, "{head}\n{thanks}");
    let second = ticket_on(&thanks);
    assert_ne!(second, first, "the form never threads by subject tag");
    let t = d.ticket(&first);
    assert_eq!(t["message_count"].as_u64(), Some(2), "untouched: {t}");
    let t = d.ticket(&second);
    assert_eq!(t["unverified"], true, "{t}");
    assert!(
        t["events"].as_array().unwrap().iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("always a new ticket")),
        "{t}"
    );

    // An answer through the reply address of our acknowledgement verifies it.
    let ack = sink.nth_to(customer, 2);
    let reply_to = header(&ack, "Reply-To").unwrap();
    let reply_to = match reply_to.split_once('<') {
        Some((_, rest)) => rest.trim_end_matches('>').to_string(),
        None => reply_to.trim().to_string(),
    };
    let answer = mail(
        &format!("Frank <{customer}>"),
        &format!("Re: [#{second}] Invoice question"),
        "<form-2@customer.example>",
        &[],
        "That was not me.\n",
    );
    let seq = d.send_ok(customer, &[&reply_to], &answer);
    assert_eq!(d.ticket_of(seq), second);
    let t = d.ticket(&second);
    assert_eq!(t["unverified"], false, "{t}");

    // German through Accept-Language and ?lang=.
    let (status, head, body) = http_request(public, "GET", "/new?lang=de", None, None).unwrap();
    assert_eq!(status, 200, "{head}");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(r#"<html lang="de">"#), "{body}");
    assert!(body.contains("Ihre Nachricht"), "{body}");
}

#[test]
fn honeypot_cross_site_posts_and_rate_limits_take_nothing() {
    let sink = Sink::start();
    let mut public = 0;
    let d = Daemon::start_with(&sink, |c| {
        public = c.with_public();
        c.set("web", "form_per_ip_per_hour", "5");
        c.set("web", "form_per_address_per_hour", "2");
    });
    let o = origin(public);
    let (_, page) = get(public, "/new");
    let token = form_token(&page);
    let fields = |email: &'static str, website: &'static str| {
        vec![
            ("token", token.clone()),
            ("name", "Bot".to_string()),
            ("email", email.to_string()),
            ("website", website.to_string()),
            ("subject", "Cheap pills".to_string()),
            ("body", "Buy now".to_string()),
        ]
    };
    let body = |f: &[(&'static str, String)]| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        multipart(&f, &[])
    };

    // From another site: refused before anything else (and counts nothing).
    for headers in [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", o.as_str()), ("Sec-Fetch-Site", "cross-site")],
    ] {
        let (status, _, text) = post(public, "/new", &headers, &body(&fields("v@x.example", "")));
        assert_eq!(status, 403, "{headers:?}: {text}");
    }
    // Without the form's token, or with a forged one.
    let mut no_token = fields("v@x.example", "");
    no_token[0].1 = "1700000000.AAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let (status, _, _) = post(public, "/new", &[("Origin", &o)], &body(&no_token));
    assert_eq!(status, 403);

    // The honeypot filled in: a thank-you page, nothing taken.
    let (status, _, thanks) = post(
        public,
        "/new",
        &[("Origin", &o)],
        &body(&fields("bot@spam.example", "http://spam.example")),
    );
    assert_eq!(status, 200, "{thanks}");
    assert!(
        thanks.contains("We have received your request."),
        "{thanks}"
    );
    d.wait_idle(SECS_30);
    assert_eq!(d.tickets_total(), 0, "nothing spooled");
    assert!(sink.messages_to("bot@spam.example").is_empty());

    // Per address: two an hour, the third refused with when to retry.
    for _ in 0..2 {
        let (status, _, t) = post(
            public,
            "/new",
            &[("Origin", &o)],
            &body(&fields("a@x.example", "")),
        );
        assert_eq!(status, 200, "{t}");
    }
    let (status, head, text) = post(
        public,
        "/new",
        &[("Origin", &o)],
        &body(&fields("a@x.example", "")),
    );
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("try again in"), "{text}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    // Per client: five posts an hour (the forged, the honeypot's and the
    // refused one count; the cross-site ones did not get that far).
    let (status, _, text) = post(
        public,
        "/new",
        &[("Origin", &o)],
        &body(&fields("b@x.example", "")),
    );
    assert_eq!(status, 429, "the sixth post from this client: {text}");
    d.wait_idle(SECS_30);
    assert_eq!(d.tickets_total(), 2, "only the two allowed requests");
}

/// Runs tests/peers/public_form.py with `args`; screenshots go to
/// target/web-screenshots/public/. Returns its JSON report.
fn chromium(d: &Daemon, args: &[&str]) -> Value {
    let out_dir = repo_root().join("target/web-screenshots/public");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut cmd = std::process::Command::new(python());
    cmd.arg(peer_script("public_form.py")).arg(args[0]);
    cmd.args(&args[1..2]).arg(&out_dir).args(&args[2..]);
    let out = cmd.output().expect("run tests/peers/public_form.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "public_form.py failed:\n{}\n{}\n--- daemon log ---\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr),
        d.log_tail(40)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

#[test]
fn public_form_in_chromium_with_and_without_javascript() {
    let sink = Sink::start();
    let mut public = 0;
    let d = Daemon::start_with(&sink, |c| public = c.with_public());
    let with_js = "gina@customer.example";
    let without_js = "hugo@customer.example";
    let base = origin(public);

    let r = chromium(&d, &["form", &base, with_js, without_js]);
    for name in ["desktop", "phone"] {
        let seen = &r["widths"][name];
        assert_eq!(seen["h1"], "Contact support", "{name}: {seen}");
        assert_eq!(seen["honeypot_on_screen"], false, "{name}: {seen}");
        assert_eq!(seen["thanks_h1"], "Thank you", "{name}: {seen}");
        assert!(
            seen["thanks_text"]
                .as_str()
                .unwrap()
                .contains("ticket number is #"),
            "{name}: {seen}"
        );
        assert_eq!(seen["new_overflows"], false, "{name}: {seen}");
        assert_eq!(seen["thanks_overflows"], false, "{name}: {seen}");
    }
    assert_eq!(r["widths"]["phone"]["javascript"], false);
    assert_eq!(r["foreign_requests"], json!([]), "{r}");
    assert_eq!(r["console"], json!([]), "no script or CSP error: {r}");
    assert_eq!(r["failed"], json!([]), "no failed load: {r}");
    assert_eq!(d.tickets_total(), 2);

    // Each got an acknowledgement with a status link; the file came along.
    let mut link = String::new();
    for who in [with_js, without_js] {
        let ack = sink.nth_to(who, 1);
        link = status_path(&ack);
    }
    let t = d
        .all_tickets()
        .into_iter()
        .find(|t| t["requester"] == without_js)
        .unwrap();
    let id = t["id"].as_str().unwrap().to_string();
    let t = d.ticket(&id);
    let seq = t["messages"][0]["seq"].as_str().unwrap();
    let (_, raw) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    assert!(
        contains(&raw, b"printer-log.txt"),
        "attachment sent without JavaScript"
    );

    // The status page of the second ticket, and a message through it.
    let r = chromium(&d, &["status", &format!("{base}{link}")]);
    let desktop = &r["widths"]["desktop"];
    assert_eq!(desktop["h1"], "Printer offline (phone)", "{desktop}");
    assert!(
        desktop["after_notice"]
            .as_str()
            .unwrap_or("")
            .contains("Your message has been"),
        "{desktop}"
    );
    assert_eq!(r["widths"]["phone"]["overflows"], false, "{r}");
    assert_eq!(r["console"], json!([]), "{r}");
    assert_eq!(r["failed"], json!([]), "{r}");
    d.wait_processed(SECS_30);
    let t = d.ticket(&id);
    assert!(
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").contains("in the browser")),
        "{t}"
    );
    assert_eq!(t["unverified"], false, "{t}");
}

/// Many large posts at once cannot take more memory than SMTP sessions may: a form body is
/// reserved from the shared `smtp.max_inflight_bytes` budget before it is read, and a post
/// over budget gets 503 with Retry-After, nothing read (not the 413 of the body limit).
#[test]
fn uploads_share_the_inflight_budget_with_smtp() {
    use std::io::Write;
    let sink = Sink::start();
    let mut port = 0;
    let _d = Daemon::start_with(&sink, |c| {
        port = c.with_public();
        c.set("smtp", "max_message_size", "100000");
        c.set("smtp", "max_inflight_bytes", "100000");
    });
    let post = |len: usize, body: &[u8]| -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(
            s,
            "POST /new HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut out);
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    };
    // More than the whole budget: refused before a byte of the body is read.
    let (status, text) = post(200_000, b"");
    assert_eq!(status, 503, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 60"),
        "{text}"
    );
}
