//! Live chat over real sockets (issue 14): the real daemon, its public
//! listener, plain HTTP clients sending the Origin a browser would, an SSE
//! reader, and the SMTP sink for what is mailed. The browser side (widget
//! embedded on another origin, the agent in the web view) is
//! `tests/peers/web_chat.py`, run from `chat_in_the_browser`.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "site-secret-0123456789abcdef";
/// The page that embeds the widget, on another loopback address.
const PAGE_ORIGIN_HOST: &str = "127.0.0.2";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A chat test: the daemon with a site for `page_origin`, its public port.
struct Chat {
    d: Daemon,
    sink: Sink,
    public: u16,
    page_origin: String,
    _rules: TempDir,
}

fn start_chat(limits: &str, page_port: u16) -> Chat {
    start_chat_with(limits, page_port, false)
}

/// [`start_chat`]; with `passwords`, alice and bob can log in to the web view.
fn start_chat_with(limits: &str, page_port: u16, passwords: bool) -> Chat {
    let sink = Sink::start();
    let rules = TempDir::new("chat-rules");
    copy_dir(&repo_root().join("rules"), &rules.path);
    if passwords {
        let agents = rules.path.join("agents.toml");
        let mut text = std::fs::read_to_string(&agents).unwrap();
        let phc = common::web::hash_password(common::web::PASSWORD);
        for anchor in ["skills = [\"printers\"]\n", "skills = [\"networking\"]\n"] {
            assert!(text.contains(anchor), "rules/agents.toml changed");
            text = text.replacen(anchor, &format!("{anchor}password_hash = \"{phc}\"\n"), 1);
        }
        std::fs::write(&agents, text).unwrap();
    }
    let page_origin = format!("http://{PAGE_ORIGIN_HOST}:{page_port}");
    std::fs::write(
        rules.path.join("chat.toml"),
        format!(
            "[limits]\n{limits}\n[[site]]\nid = \"www\"\norigins = [\"{page_origin}\"]\nqueue = \"general\"\ngreeting = \"Hi, how can we help?\"\nsecret = \"{SECRET}\"\n\n\
             [[site]]\nid = \"night\"\norigins = [\"{page_origin}\"]\nqueue = \"general\"\ncalendar = \"never\"\noutside_hours = \"/new\"\n"
        ),
    )
    .unwrap();
    // A calendar with no opening hours: the "night" site is always closed.
    let calendar = rules.path.join("calendar.toml");
    let mut text = std::fs::read_to_string(&calendar).unwrap();
    text.push_str("\n[never]\ntimezone = \"UTC\"\n");
    std::fs::write(&calendar, text).unwrap();
    let mut public = 0;
    let rules_dir = rules.path.clone();
    let d = Daemon::start_with(&sink, |c| {
        public = c.with_public();
        c.set("server", "rules_dir", &q(&rules_dir.to_string_lossy()));
    });
    Chat {
        d,
        sink,
        public,
        page_origin,
        _rules: rules,
    }
}

/// One HTTP/1.1 request with the given headers; (status, head, body).
fn req(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Chat {
    fn own_origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.public)
    }

    /// A POST from the frame (the browser sends the frame's origin).
    fn post(&self, path: &str, body: Value) -> (u16, String) {
        let origin = self.own_origin();
        let (status, _, body) = req(
            self.public,
            "POST",
            path,
            &[("Origin", &origin)],
            Some(&body),
        );
        (status, body)
    }

    fn start(&self, address: &str) -> String {
        let (status, body) = self.post(
            "/chat/start",
            json!({"site": "www", "address": address, "name": "Ann Visitor"}),
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["visitor"].as_str().unwrap().to_string()
    }

    /// Starts (or resumes) as an existing visitor token; the reply's JSON.
    fn start_as(&self, visitor: &str, address: &str) -> Value {
        let (status, body) = self.post(
            "/chat/start",
            json!({"site": "www", "visitor": visitor, "address": address}),
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn say(&self, visitor: &str, text: &str) {
        let (status, body) = self.post(
            "/chat/send",
            json!({"site": "www", "visitor": visitor, "text": text}),
        );
        assert_eq!(status, 202, "{body}");
    }

    /// The ticket whose messages include `text`.
    fn ticket_with(&self, text: &str) -> (String, Value) {
        wait_until(
            Duration::from_secs(30),
            &format!("a ticket with {text:?}"),
            || {
                self.d.all_tickets().into_iter().find_map(|t| {
                    let id = id_string(&t["id"])?;
                    let full = self.d.ticket(&id);
                    full.to_string().contains(text).then_some((id, full))
                })
            },
        )
    }
}

/// An SSE connection, read event by event.
struct Sse {
    s: TcpStream,
    buf: String,
}

#[derive(Debug)]
struct Event {
    id: Option<u64>,
    data: Value,
}

impl Sse {
    fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Sse, (u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut sse = Sse {
            s,
            buf: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sse.buf.contains("\r\n\r\n") && Instant::now() < deadline {
            sse.fill();
        }
        let (head, rest) = sse.buf.split_once("\r\n\r\n").expect("a response head");
        let (head, rest) = (head.to_string(), rest.to_string());
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        if status != 200 {
            return Err((status, rest));
        }
        assert!(
            header(&head, "content-type").is_some_and(|c| c.starts_with("text/event-stream")),
            "{head}"
        );
        sse.buf = rest;
        Ok(sse)
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        if let Ok(n) = self.s.read(&mut chunk) {
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    /// The next `line` event within `timeout` (chunk framing of the body is skipped:
    /// events are found by their `event: line` and `data:` lines).
    fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(start) = self.buf.find("id: ")
                && let Some(end) = self.buf[start..].find("\n\n")
            {
                let block = self.buf[start..start + end].to_string();
                self.buf = self.buf[start + end + 2..].to_string();
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .and_then(|v| v.trim().parse().ok());
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null);
                return Some(Event { id, data });
            }
            if Instant::now() > deadline {
                return None;
            }
            self.fill();
        }
    }

    fn saw_keepalive(&self) -> bool {
        self.buf.contains(": keep-alive")
    }
}

fn stream_path(visitor: &str) -> String {
    format!("/chat/stream?site=www&v={visitor}")
}

fn agent_reply(d: &Daemon, ticket: &str, text: &str) {
    let body = json!({"agent": "alice", "body": text});
    let (status, head, resp) = req(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{ticket}/reply"),
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        Some(&body),
    );
    assert_eq!(status, 200, "{head}\n{resp}");
}

fn sign_identity(secret: &str, address: &str, expires: i64, nonce: &str) -> Value {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{address}\n{expires}\n{nonce}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    json!({"address": address, "expires": expires, "nonce": nonce, "signature": hex})
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_chat_is_the_tickets_thread_both_ways_and_continues_by_mail() {
    let chat = start_chat("idle_seconds = 600", free_port());
    let visitor = chat.start("ann@example.org");
    let mut sse = Sse::open(chat.public, &stream_path(&visitor), &[]).expect("a stream");
    chat.say(&visitor, "Hello, my printer prints only blank pages.");
    let first = sse
        .next(Duration::from_secs(20))
        .expect("my own line comes back");
    assert_eq!(first.data["who"], "visitor", "{first:?}");
    assert!(first.data["text"].as_str().unwrap().contains("blank pages"));

    // The line opened a ticket of the chat channel, with a Message-ID of its own.
    let (ticket, t) = chat.ticket_with("blank pages");
    assert!(t.to_string().contains("ann@example.org"), "{t}");
    assert_eq!(
        t["unverified"], true,
        "an address typed into the chat is not proven: {t}"
    );
    chat.say(&visitor, "It is a LaserJet 4.");
    let second = sse.next(Duration::from_secs(20)).expect("second line");
    assert!(second.id > first.id);
    let (same, _) = chat.ticket_with("LaserJet 4");
    assert_eq!(same, ticket, "every line is a message of the one ticket");

    // The agent answers (API: the same act as the web view): pushed to the
    // connected visitor, not mailed.
    agent_reply(&chat.d, &ticket, "Please check the toner cartridge.");
    let reply = sse
        .next(Duration::from_secs(20))
        .expect("the agent's reply is pushed");
    assert_eq!(reply.data["who"], "agent", "{reply:?}");
    assert!(reply.data["text"].as_str().unwrap().contains("toner"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        chat.sink
            .messages_to("ann@example.org")
            .iter()
            .all(|m| !contains(m, b"toner cartridge")),
        "a reply shown in the chat is not mailed as well"
    );

    // The ticket counts as a chat, answered, in the reports' chat wait.
    let report = chat.d.api_ok("/api/v1/reports/times?since=1d");
    let table = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "chat_wait")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(table["rows"][0][1], 1, "{table}");
    assert_eq!(table["rows"][0][2], 1, "{table}");

    // The visitor leaves: the transcript reaches the sink, Reply-To the ticket's address.
    drop(sse);
    let (status, body) = chat.post("/chat/leave", json!({"site": "www", "visitor": visitor}));
    assert!(status == 204 || status == 202, "{status} {body}");
    let transcript = wait_until(Duration::from_secs(30), "the transcript", || {
        chat.sink
            .messages_to("ann@example.org")
            .into_iter()
            .find(|m| contains(m, b"toner cartridge"))
    });
    let text = String::from_utf8_lossy(&transcript).to_string();
    assert!(
        text.contains("blank pages") && text.contains("LaserJet 4"),
        "{text}"
    );
    let reply_to = text
        .lines()
        .find_map(|l| l.strip_prefix("Reply-To: "))
        .expect("a Reply-To")
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    assert!(reply_to.starts_with("support+t"), "{reply_to}");
    let message_id = text
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap()
        .trim()
        .to_string();

    // The address was typed, not verified: its owner was mailed the link
    // that continues the chat.
    let link_mail = wait_until(Duration::from_secs(30), "the continue link", || {
        chat.sink
            .messages_to("ann@example.org")
            .into_iter()
            .find(|m| contains(m, b"/chat/continue/"))
    });
    assert!(
        !contains(&link_mail, b"blank pages"),
        "the link mail quotes nothing"
    );

    // Replying to the transcript continues the same ticket.
    let mail = format!(
        "From: Ann Visitor <ann@example.org>\r\nTo: {reply_to}\r\nSubject: Re: chat\r\nMessage-ID: <later.1@example.org>\r\nIn-Reply-To: {message_id}\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\nThe new toner fixed it, thanks!\r\n"
    );
    let seq = chat
        .d
        .send_ok("ann@example.org", &[&reply_to], mail.as_bytes());
    assert_eq!(
        chat.d.ticket_of(seq),
        ticket,
        "the mail reply joined the chat's ticket"
    );
    assert_eq!(
        chat.d.ticket(&ticket)["unverified"],
        false,
        "answering our mail proves the address"
    );
}

#[test]
fn a_page_from_an_origin_not_allowed_gets_nothing() {
    let chat = start_chat("", free_port());
    let evil = "http://127.0.0.3:8080";
    // The frame may be framed only by the site's origins.
    let (status, head, _) = req(chat.public, "GET", "/chat/frame?site=www", &[], None);
    assert_eq!(status, 200);
    let csp = header(&head, "content-security-policy").unwrap();
    assert!(
        csp.contains(&format!("frame-ancestors {}", chat.page_origin)),
        "{csp}"
    );
    assert!(!csp.contains("127.0.0.3"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // Unknown site: no loader, no frame.
    for path in ["/chat/loader.js?site=nope", "/chat/frame?site=nope"] {
        assert_eq!(req(chat.public, "GET", path, &[], None).0, 404, "{path}");
    }
    // Every API call from the other origin is refused.
    let start = json!({"site": "www", "address": "mallory@example.org"});
    let (status, _, body) = req(
        chat.public,
        "POST",
        "/chat/start",
        &[("Origin", evil)],
        Some(&start),
    );
    assert_eq!(status, 403, "{body}");
    let visitor = chat.start("ann@example.org");
    let send = json!({"site": "www", "visitor": visitor, "text": "hi"});
    let (status, _, _) = req(
        chat.public,
        "POST",
        "/chat/send",
        &[("Origin", evil)],
        Some(&send),
    );
    assert_eq!(status, 403);
    let leave = json!({"site": "www", "visitor": visitor});
    let (status, _, _) = req(
        chat.public,
        "POST",
        "/chat/leave",
        &[("Origin", evil)],
        Some(&leave),
    );
    assert_eq!(status, 403);
    match Sse::open(chat.public, &stream_path(&visitor), &[("Origin", evil)]) {
        Err((403, _)) => {}
        Err(other) => panic!("stream from another origin: {other:?}"),
        Ok(_) => panic!("stream from another origin was served"),
    }
    // A cross-site GET without Origin (what a browser's no-cors request looks like).
    let (status, _, _) = req(
        chat.public,
        "GET",
        &format!("/chat/poll?site=www&v={visitor}&after=0"),
        &[("Sec-Fetch-Site", "cross-site")],
        None,
    );
    assert_eq!(status, 403);
    // The site's own pages are allowed.
    let (status, _, body) = req(
        chat.public,
        "POST",
        "/chat/start",
        &[("Origin", &chat.page_origin)],
        Some(&json!({"site": "www", "address": "bob@example.org"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        chat.d.tickets_total(),
        0,
        "nothing was opened from the other origin"
    );
}

#[test]
fn forged_and_replayed_identities_are_refused() {
    let mut chat = start_chat("", free_port());
    let expires = unix_now() + 600;
    let good = sign_identity(SECRET, "carol@example.org", expires, "nonce-0001-abcdefgh");
    let (status, body) = chat.post("/chat/start", json!({"site": "www", "identity": good}));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    // The site vouched for the address: its ticket is not marked unproven.
    let visitor = v["visitor"].as_str().expect("a visitor token").to_string();
    chat.say(&visitor, "Signed in and my invoice total is wrong.");
    let (_, t) = chat.ticket_with("invoice total is wrong");
    assert_eq!(t["unverified"], false, "{t}");

    // The same identity again: a replay.
    let (status, body) = chat.post("/chat/start", json!({"site": "www", "identity": good}));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("already used"), "{body}");

    // Forged: another address under the same signature, or another secret.
    let mut forged = sign_identity(SECRET, "carol@example.org", expires, "nonce-0002-abcdefgh");
    forged["address"] = json!("dave@example.org");
    let (status, body) = chat.post("/chat/start", json!({"site": "www", "identity": forged}));
    assert_eq!(status, 403, "{body}");
    let wrong_key = sign_identity(
        "not-the-site-secret-at-all",
        "dave@example.org",
        expires,
        "nonce-0003-abcdefgh",
    );
    let (status, _) = chat.post("/chat/start", json!({"site": "www", "identity": wrong_key}));
    assert_eq!(status, 403);
    // Expired.
    let old = sign_identity(
        SECRET,
        "dave@example.org",
        unix_now() - 1,
        "nonce-0004-abcdefgh",
    );
    let (status, _) = chat.post("/chat/start", json!({"site": "www", "identity": old}));
    assert_eq!(status, 403);

    // The nonce is remembered across a restart.
    chat.d.restart();
    let (status, body) = chat.post("/chat/start", json!({"site": "www", "identity": good}));
    assert_eq!(status, 403, "replayed after a restart: {body}");
    let _ = &mut chat;
}

#[test]
fn rate_limits_hold_under_a_scripted_flood() {
    let chat = start_chat(
        "conversations_per_ip_per_day = 5\nconversations_per_visitor_per_day = 2\nmessages_per_minute = 4\nmax_message_bytes = 200\nstreams_per_ip = 2",
        free_port(),
    );
    // Conversations per visitor: the same token, other addresses.
    let visitor = chat.start("v1@example.org");
    let (status, _) = chat.post(
        "/chat/start",
        json!({"site": "www", "visitor": visitor, "address": "v2@example.org"}),
    );
    assert_eq!(status, 200);
    let (status, body) = chat.post(
        "/chat/start",
        json!({"site": "www", "visitor": visitor, "address": "v3@example.org"}),
    );
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("Too many conversations"), "{body}");
    // Conversations per address: fresh tokens each time.
    let mut refused = 0;
    for i in 0..20 {
        let (status, body) = chat.post(
            "/chat/start",
            json!({"site": "www", "address": format!("flood{i}@example.org")}),
        );
        match status {
            200 => {}
            429 => {
                assert!(body.contains("from your address"), "{body}");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(
        refused, 17,
        "5 a day per address: 2 before the flood, 3 in it"
    );

    // Messages per minute, and size.
    let (status, body) = chat.post(
        "/chat/send",
        json!({"site": "www", "visitor": visitor, "text": "x".repeat(201)}),
    );
    assert_eq!(status, 400, "{body}");
    let mut codes = Vec::new();
    for i in 0..10 {
        let (status, _) = chat.post(
            "/chat/send",
            json!({"site": "www", "visitor": visitor, "text": format!("line {i}")}),
        );
        codes.push(status);
    }
    let accepted = codes.iter().filter(|c| **c == 202).count();
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(accepted, 4, "{codes:?}");
    assert_eq!(accepted + limited, 10, "{codes:?}");

    // Streams per address.
    let a = Sse::open(chat.public, &stream_path(&visitor), &[]).expect("first stream");
    let b = Sse::open(chat.public, &stream_path(&visitor), &[]).expect("second stream");
    match Sse::open(chat.public, &stream_path(&visitor), &[]) {
        Err((429, body)) => assert!(body.contains("Too many open chats"), "{body}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a third stream from one address"),
    }
    drop(a);
    drop(b);
    // Slots are given back when streams close.
    let again = wait_until(Duration::from_secs(10), "a stream slot back", || {
        Sse::open(chat.public, &stream_path(&visitor), &[]).ok()
    });
    drop(again);
    assert!(chat.d.log().contains("chat started"));
}

#[test]
fn a_restart_in_the_middle_of_a_chat_loses_nothing_and_the_stream_resumes() {
    let mut chat = start_chat("", free_port());
    let visitor = chat.start("erin@example.org");
    let mut sse = Sse::open(chat.public, &stream_path(&visitor), &[]).expect("a stream");
    chat.say(&visitor, "First line before the restart.");
    let first = sse.next(Duration::from_secs(20)).expect("first line");
    let (ticket, _) = chat.ticket_with("First line before the restart");
    chat.say(&visitor, "Second line, just before the restart.");
    let second = sse.next(Duration::from_secs(20)).expect("second line");
    drop(sse);

    chat.d.kill9();
    chat.d.restart();

    // A line sent right after the restart, and an agent reply meanwhile
    // (nobody connected: it is mailed, not lost).
    chat.say(&visitor, "Third line, after the restart.");
    agent_reply(&chat.d, &ticket, "We are still here after the restart.");
    // The widget reconnects with Last-Event-ID: only what it has not seen.
    let last = second.id.unwrap().to_string();
    let mut sse = Sse::open(
        chat.public,
        &stream_path(&visitor),
        &[("Last-Event-ID", &last)],
    )
    .expect("the stream resumes");
    let mut seen = Vec::new();
    while let Some(e) = sse.next(Duration::from_secs(10)) {
        seen.push(e);
        if seen.len() == 2 {
            break;
        }
    }
    let texts: Vec<String> = seen
        .iter()
        .map(|e| e.data["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(seen.len(), 2, "{texts:?}");
    assert!(
        texts[0].contains("Third line") || texts[1].contains("Third line"),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("still here")), "{texts:?}");
    assert!(
        seen.iter().all(|e| e.id > second.id),
        "nothing already seen is sent again"
    );
    assert!(first.id < second.id);
    let (same, t) = chat.ticket_with("Third line");
    assert_eq!(same, ticket, "{t}");
    // The reply written while no widget was connected went out by mail.
    wait_until(Duration::from_secs(30), "the reply by mail", || {
        chat.sink
            .messages_to("erin@example.org")
            .into_iter()
            .find(|m| contains(m, b"still here after the restart"))
    });
    // The long-polling fallback answers the same lines after the same id.
    let (status, _, body) = req(
        chat.public,
        "GET",
        &format!("/chat/poll?site=www&v={visitor}&after={last}"),
        &[],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let polled: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<u64> = polled["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    let streamed: Vec<u64> = seen.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, streamed, "{polled}");
    // Keep-alives keep an idle stream open.
    std::thread::sleep(Duration::from_secs(16));
    sse.fill();
    assert!(sse.saw_keepalive(), "{}", sse.buf);
}

/// A port free on `host` (another loopback address) just now.
fn free_port_on(host: &str) -> u16 {
    let l = std::net::TcpListener::bind((host, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// A page server (python's http.server) on another loopback address.
struct PageServer {
    child: std::process::Child,
    port: u16,
    _dir: TempDir,
}

impl PageServer {
    /// Serves a page that embeds the widget of the daemon on `public_port`.
    fn start(host: &str, port: u16, public_port: u16) -> PageServer {
        let dir = TempDir::new("chat-page");
        std::fs::write(
            dir.path.join("index.html"),
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Example shop</title></head>\
                 <body><h1>Example shop</h1><p>Welcome.</p>\
                 <script src=\"http://127.0.0.1:{public_port}/chat/loader.js?site=www\" async></script></body></html>\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                host,
                "--directory",
            ])
            .arg(&dir.path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(10), "the page server", || {
            TcpStream::connect((host, port)).ok()
        });
        PageServer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn chat_in_the_browser_visitor_on_another_origin_and_agent_in_the_web_view() {
    // The site's page lives on 127.0.0.2, the other one on 127.0.0.3.
    let page_port = free_port_on(PAGE_ORIGIN_HOST);
    let chat = start_chat_with("", page_port, true);
    let page = PageServer::start(PAGE_ORIGIN_HOST, page_port, chat.public);
    let evil = PageServer::start("127.0.0.3", free_port_on("127.0.0.3"), chat.public);

    let out_dir = repo_root().join("target/web-screenshots/chat");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = std::process::Command::new(python())
        .arg(peer_script("web_chat.py"))
        .arg(format!("http://{PAGE_ORIGIN_HOST}:{}/", page.port))
        .arg(format!("http://127.0.0.3:{}/", evil.port))
        .arg(common::web::origin(&chat.d))
        .args(["alice", common::web::PASSWORD])
        .arg(&out_dir)
        .arg(chat.own_origin())
        .output()
        .expect("run tests/peers/web_chat.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "web_chat.py failed:\n{stdout}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        chat.d.log_tail(40)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("{seen:#}");
    assert_eq!(seen["greeting"], "Hi, how can we help?", "{seen}");
    assert_eq!(seen["lines_aria_live"], "polite", "{seen}");
    assert!(
        seen["agent_messages"].to_string().contains("blank pages"),
        "the agent sees the chat line in the web view: {seen}"
    );
    assert!(
        seen["visitor_sees_agent_line"]
            .as_str()
            .unwrap()
            .contains("toner"),
        "{seen}"
    );
    // The page on the other origin got no chat: the frame was refused.
    assert_eq!(seen["evil_frame_has_chat"], false, "{seen}");
    assert!(
        seen["evil_console"].to_string().contains("frame-ancestors"),
        "chromium names the refusal: {seen}"
    );
    assert!(
        !seen["evil_fetch"].as_str().unwrap().contains("status 200"),
        "{seen}"
    );
    for who in ["visitor_console", "agent_console"] {
        assert!(
            !seen[who].to_string().contains("Content Security Policy"),
            "no CSP complaint on {who}: {seen}"
        );
    }

    // The transcript reached the visitor; a reply by mail lands in the ticket
    // and shows in the web view.
    let ticket = seen["ticket_href"]
        .as_str()
        .unwrap()
        .trim_start_matches("/tickets/")
        .to_string();
    let transcript = wait_until(Duration::from_secs(30), "the transcript", || {
        chat.sink
            .messages_to("ann@example.org")
            .into_iter()
            .find(|m| contains(m, b"toner cartridge") && contains(m, b"Reply-To"))
    });
    let text = String::from_utf8_lossy(&transcript).to_string();
    let reply_to = text
        .lines()
        .find_map(|l| l.strip_prefix("Reply-To: "))
        .unwrap()
        .trim()
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let mail = format!(
        "From: Ann Visitor <ann@example.org>\r\nTo: {reply_to}\r\nSubject: Re: chat\r\nMessage-ID: <browser.1@example.org>\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\nNew toner, all good now.\r\n"
    );
    let seq = chat
        .d
        .send_ok("ann@example.org", &[&reply_to], mail.as_bytes());
    assert_eq!(chat.d.ticket_of(seq), ticket);
    let cookie = common::web::login_as(&chat.d, "alice");
    let page_html = common::web::http(
        chat.d.web_port,
        "GET",
        &format!("/tickets/{ticket}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert!(
        page_html.text().contains("New toner, all good now."),
        "{}",
        page_html.text()
    );
    drop(evil);
    drop(page);
}

fn commands(d: &Daemon, ticket: &str, commands: &str) {
    commands_as(d, "alice", ticket, commands);
}

fn commands_as(d: &Daemon, agent: &str, ticket: &str, commands: &str) {
    let body = json!({"agent": agent, "commands": [commands]});
    let (status, head, resp) = req(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{ticket}/commands"),
        &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        Some(&body),
    );
    assert_eq!(status, 200, "{head}\n{resp}");
}

#[test]
fn an_idle_visitor_gets_the_transcript_and_a_chat_after_the_ticket_closed_opens_a_new_one() {
    let chat = start_chat("idle_seconds = 10", free_port());
    let visitor = chat.start("fred@example.org");
    chat.say(&visitor, "Is my order 4711 on its way?");
    let (ticket, _) = chat.ticket_with("order 4711");
    agent_reply(&chat.d, &ticket, "It left the warehouse today.");
    // Nobody connected: the reply is mailed; then, idle, the transcript.
    let transcript = wait_until(
        Duration::from_secs(60),
        "the transcript after idling",
        || {
            chat.sink
                .messages_to("fred@example.org")
                .into_iter()
                .find(|m| contains(m, b"Here is our chat"))
        },
    );
    let text = String::from_utf8_lossy(&transcript);
    assert!(
        text.contains("order 4711") && text.contains("warehouse"),
        "{text}"
    );
    assert!(text.contains("Reply-To: <support+t"), "{text}");

    // The same visitor while the ticket is open continues it ...
    let again = chat.start_as(&visitor, "fred@example.org");
    assert_eq!(
        again["ticket"],
        json!(ticket.parse::<u64>().unwrap()),
        "{again}"
    );
    // ... and after it was closed opens a new one.
    commands(&chat.d, &ticket, "#close");
    let after = chat.start_as(&visitor, "fred@example.org");
    assert_eq!(after["ticket"], Value::Null, "{after}");
    chat.say(&visitor, "One more question about order 4712.");
    let (new_ticket, _) = chat.ticket_with("order 4712");
    assert_ne!(new_ticket, ticket);
}

#[test]
fn only_the_mailed_link_continues_an_unverified_chat_as_that_customer() {
    let chat = start_chat("", free_port());
    let visitor = chat.start("gina@example.org");
    assert!(
        !chat.start_as(&visitor, "gina@example.org")["verified"]
            .as_bool()
            .unwrap()
    );
    chat.say(&visitor, "My invoice 99 is wrong.");
    let (ticket, _) = chat.ticket_with("invoice 99");
    let mail = wait_until(Duration::from_secs(30), "the continue link", || {
        chat.sink
            .messages_to("gina@example.org")
            .into_iter()
            .find(|m| contains(m, b"/chat/continue/"))
    });
    let text = String::from_utf8_lossy(&mail).to_string();
    let at = text.find("/chat/continue/").unwrap();
    let path: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    // Opening it shows a button (a link scanner takes nothing over).
    let (status, _, body) = req(chat.public, "GET", &path, &[], None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<form method=\"post\""), "{body}");
    let forged = format!("/chat/continue/{ticket}.99999.aaaaaaaaaaaaaaaa");
    let (status, _, _) = req(
        chat.public,
        "POST",
        &forged,
        &[("Origin", &chat.own_origin())],
        None,
    );
    assert_eq!(status, 404);
    // Pressing it: the chat frame with a verified visitor of that ticket.
    let (status, head, body) = req(
        chat.public,
        "POST",
        &path,
        &[("Origin", &chat.own_origin())],
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        header(&head, "content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'"),
        "{head}"
    );
    let at = body.find("data-visitor=\"").unwrap() + "data-visitor=\"".len();
    let linked: String = body[at..].chars().take(32).collect();
    let v = chat.start_as(&linked, "gina@example.org");
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["ticket"], json!(ticket.parse::<u64>().unwrap()), "{v}");
    chat.say(&linked, "Continuing from the link.");
    let (same, _) = chat.ticket_with("Continuing from the link");
    assert_eq!(same, ticket);
}

#[test]
fn outside_opening_hours_the_widget_points_to_the_web_form() {
    let chat = start_chat("", free_port());
    let (status, _, body) = req(chat.public, "GET", "/chat/frame?site=night", &[], None);
    assert_eq!(status, 200);
    assert!(body.contains("data-open=\"0\""), "{body}");
    assert!(body.contains("href=\"/new\""), "{body}");
    let (status, body) = chat.post(
        "/chat/start",
        json!({"site": "night", "address": "hank@example.org"}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("/new"), "{body}");
    let (_, _, body) = req(chat.public, "GET", "/chat/frame?site=www", &[], None);
    assert!(body.contains("data-open=\"1\""), "{body}");
}

#[test]
fn the_chat_opens_only_while_an_agent_of_its_queue_is_available() {
    let chat = start_chat_with("", free_port(), true);
    let visitor = chat.start("ivy@example.org");
    chat.say(&visitor, "A question about opening times.");
    let (ticket, _) = chat.ticket_with("opening times");
    let frame_open = || {
        let (_, _, body) = req(chat.public, "GET", "/chat/frame?site=www", &[], None);
        body.contains("data-open=\"1\"")
    };
    assert!(frame_open());
    // alice and bob serve "general": both #away (the same command as by mail).
    commands_as(&chat.d, "alice", &ticket, "#away");
    assert!(frame_open(), "bob is still there");
    commands_as(&chat.d, "bob", &ticket, "#away");
    assert!(!frame_open(), "nobody is available");
    let (status, body) = chat.post(
        "/chat/start",
        json!({"site": "www", "address": "jack@example.org"}),
    );
    assert_eq!(status, 409, "{body}");
    // A conversation already going goes on.
    chat.say(&visitor, "Still there?");
    commands_as(&chat.d, "bob", &ticket, "#available");
    assert!(frame_open());
    let (status, body) = chat.post(
        "/chat/start",
        json!({"site": "www", "address": "jack@example.org"}),
    );
    assert_eq!(status, 200, "{body}");

    // The web view's toggle: bob goes away there, alice is away already.
    use common::web::{csrf_token, form, http, login_as, origin};
    let cookie = login_as(&chat.d, "bob");
    let page = http(
        chat.d.web_port,
        "GET",
        "/availability",
        &[("Cookie", &cookie)],
        "",
    );
    assert!(
        page.text().contains("available for live chats"),
        "{}",
        page.text()
    );
    let token = csrf_token(&page.text());
    let o = origin(&chat.d);
    let posted = http(
        chat.d.web_port,
        "POST",
        "/availability",
        &[("Cookie", &cookie), ("Origin", &o)],
        &form(&[("csrf", &token), ("to", "away")]),
    );
    assert_eq!(posted.status, 303, "{}", posted.text());
    let page = http(
        chat.d.web_port,
        "GET",
        "/availability",
        &[("Cookie", &cookie)],
        "",
    );
    assert!(page.text().contains("You are away"), "{}", page.text());
    assert!(!frame_open(), "bob went away in the web view");
    // Without the form token nothing changes.
    let forged = http(
        chat.d.web_port,
        "POST",
        "/availability",
        &[("Cookie", &cookie), ("Origin", &o)],
        &form(&[("to", "available")]),
    );
    assert_ne!(forged.status, 303);
    assert!(!frame_open());
}

/// Looks at the store by chat streams and long polls so far (`/metrics`).
fn stream_reads(d: &Daemon) -> u64 {
    let (code, body) = d.api_get_raw("/metrics");
    assert_eq!(code, 200);
    let text = String::from_utf8_lossy(&body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("postdesk_chat_stream_reads_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no postdesk_chat_stream_reads_total in\n{text}"))
}

#[test]
fn open_streams_read_the_store_when_their_ticket_changes_not_on_a_timer() {
    let chat = start_chat("idle_seconds = 600", free_port());
    let visitor = chat.start("gus@example.org");
    let mut sse = Sse::open(chat.public, &stream_path(&visitor), &[]).expect("a stream");
    chat.say(&visitor, "My scanner jams on every page.");
    let first = sse
        .next(Duration::from_secs(20))
        .expect("my line comes back");
    let (ticket, _) = chat.ticket_with("scanner jams");
    // Another visitor has the widget open and has not written yet.
    let quiet = chat.start("hal@example.org");
    let mut quiet_sse = Sse::open(chat.public, &stream_path(&quiet), &[]).expect("a stream");
    // Everything the first line set off (the continue link mailed, its
    // delivery recorded) is done before counting.
    wait_until(Duration::from_secs(30), "the continue link", || {
        chat.sink
            .messages_to("gus@example.org")
            .into_iter()
            .find(|m| contains(m, b"/chat/continue/"))
    });
    chat.d.wait_idle(Duration::from_secs(30));
    let before = stream_reads(&chat.d);

    // Other customers' mail makes and changes other tickets; neither
    // stream's ticket changes, so neither looks at the store again (a
    // timer would have read every few hundred milliseconds).
    for i in 0..3 {
        let raw = mail(
            "Ivy <ivy@example.org>",
            &format!("Unrelated request {i}"),
            &format!("<unrelated.{i}@example.org>"),
            &[],
            "Not a chat.\n",
        );
        chat.d
            .ticket_of(chat.d.send_ok("ivy@example.org", &[SUPPORT], &raw));
    }
    chat.d.wait_idle(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    quiet_sse.fill();
    let idle = stream_reads(&chat.d) - before;
    assert_eq!(idle, 0, "idle streams looked at the store {idle} times");

    // The agent's reply changes the ticket: that wakes its stream.
    agent_reply(&chat.d, &ticket, "Please clean the rollers.");
    let reply = sse
        .next(Duration::from_secs(20))
        .expect("the reply is pushed");
    assert!(reply.id > first.id);
    assert!(reply.data["text"].as_str().unwrap().contains("rollers"));
    assert!(stream_reads(&chat.d) > before);
    chat.d.wait_idle(Duration::from_secs(30));
    let settled = stream_reads(&chat.d);

    // A long poll waits the same way, and the next reply ends it.
    let poller = {
        let (port, path) = (
            chat.public,
            format!(
                "/chat/poll?site=www&v={visitor}&after={}",
                reply.id.unwrap()
            ),
        );
        std::thread::spawn(move || req(port, "GET", &path, &[], None))
    };
    wait_until(Duration::from_secs(10), "the poll waiting", || {
        (stream_reads(&chat.d) > settled).then_some(())
    });
    agent_reply(&chat.d, &ticket, "Or replace them: part 42.");
    let (status, _, body) = poller.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let polled: Value = serde_json::from_str(&body).unwrap();
    assert!(polled.to_string().contains("part 42"), "{polled}");
    let pushed = sse.next(Duration::from_secs(20)).expect("the stream too");
    assert!(pushed.data["text"].as_str().unwrap().contains("part 42"));
    assert!(
        quiet_sse.next(Duration::from_millis(500)).is_none(),
        "the other visitor sees nothing of it"
    );
}

/// The kinds of the events of ticket `id`.
fn event_kinds(d: &Daemon, id: &str) -> Vec<String> {
    d.ticket(id)["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_chat_line_does_not_clear_a_bouncing_mark() {
    let chat = start_chat("", free_port());
    // The customer writes by mail, and our acknowledgement bounces for good
    // (a real report about this address, from sisimai's samples).
    let customer = "userunknown@bouncehammer.jp";
    let raw = mail(
        &format!("Customer <{customer}>"),
        "Where is my order?",
        "<chat-bounce-1@customer.example>",
        &[],
        "It has not arrived.\n",
    );
    let first = chat.d.ticket_of(chat.d.send_ok(customer, &[SUPPORT], &raw));
    let ack = String::from_utf8_lossy(&chat.sink.nth_to(customer, 1)).to_string();
    let verp = ack
        .lines()
        .find_map(|l| l.strip_prefix("X-MailFrom: "))
        .expect("the sink records the envelope sender")
        .trim()
        .to_string();
    let report = to_crlf(
        &std::fs::read(
            repo_root().join("fixtures/corpus/autoreply-bounce/sisimai/bsd/rfc3464-01.eml"),
        )
        .unwrap(),
    );
    chat.d.send_ok("", &[&verp], &report);
    chat.d.wait_processed(SECS_30);
    assert!(
        event_kinds(&chat.d, &first).contains(&"delivery_failed".to_string()),
        "the address is marked as bouncing"
    );

    // Anyone can type that address into the chat: the line proves a browser,
    // not that mail to the address arrives, so the mark stays.
    let visitor = chat.start(customer);
    chat.say(&visitor, "Hello, about my order once more.");
    let (by_chat, _) = chat.ticket_with("about my order once more");
    chat.d.wait_processed(SECS_30);
    let kinds = event_kinds(&chat.d, &by_chat);
    assert!(
        !kinds.contains(&"bounce_cleared".to_string()),
        "a chat line cleared the bouncing mark: {kinds:?}"
    );

    // The mark was still there: the customer's own mail clears it.
    let again = mail(
        &format!("Customer <{customer}>"),
        "My mailbox works again",
        "<chat-bounce-2@customer.example>",
        &[],
        "Fixed now.\n",
    );
    let by_mail = chat
        .d
        .ticket_of(chat.d.send_ok(customer, &[SUPPORT], &again));
    assert!(
        event_kinds(&chat.d, &by_mail).contains(&"bounce_cleared".to_string()),
        "mail from the address clears the mark"
    );
}
