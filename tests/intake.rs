//! SMTP intake at the protocol level and the API's access control.

mod common;
use common::*;

#[test]
fn swaks_message_is_queued_with_its_seq() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (ok, out) = swaks(
        d.smtp_port,
        &[
            "--from",
            "carol@customer.example",
            "--to",
            SUPPORT,
            "--header",
            "Subject: sent with swaks",
            "--header",
            "Message-Id: <swaks-1@customer.example>",
            "--body",
            "Hello from swaks.",
        ],
    );
    assert!(ok, "swaks failed:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains("queued as"))
        .unwrap_or_else(|| panic!("no 'queued as' in swaks transcript:\n{out}"));
    assert!(
        line.contains("250 2.0.0 Ok: queued as "),
        "final reply: {line}"
    );
    let seq = queued_as(line).expect("seq");
    let m = d.wait_message(seq, SECS_30);
    assert!(m["ticket"].is_string(), "{m}");
    sink.wait_for(1, SECS_30);
    d.wait_idle(SECS_60);
    let acks = sink.messages_to("carol@customer.example");
    assert_eq!(acks.len(), 1);
}

#[test]
fn unknown_recipient_is_refused_at_rcpt() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let raw = mail(
        "Eve <eve@customer.example>",
        "hi",
        "<u-1@customer.example>",
        &[],
        "hello\n",
    );
    for rcpt in [
        "sales@example.test",
        "support@other.example",
        "supportx@example.test",
    ] {
        let r = d.send("eve@customer.example", &[rcpt], &raw);
        assert_eq!(
            (r.code, r.stage.as_str()),
            (Some(550), "rcpt"),
            "RCPT TO:<{rcpt}>: {r:?}"
        );
        assert!(
            r.text.contains("5.1.1"),
            "enhanced status 5.1.1 expected: {r:?}"
        );
    }
    // support+anything@ is ours.
    let seq = d.send_ok(
        "eve@customer.example",
        &["support+billing@example.test"],
        &raw,
    );
    d.wait_message(seq, SECS_30);
    d.wait_idle(SECS_60);
    assert_eq!(
        d.tickets_total(),
        1,
        "only the accepted message made a ticket"
    );
}

#[test]
fn oversized_message_gets_552() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("smtp", "max_message_size", "2000");
    });
    let big = mail(
        "Big <big@customer.example>",
        "huge",
        "<big-1@customer.example>",
        &[],
        &format!("{}\n", "x".repeat(70)).repeat(80),
    );
    assert!(big.len() > 5000);
    let r = d.send("big@customer.example", &[SUPPORT], &big);
    assert_eq!(r.code, Some(552), "over max_message_size: {r:?}");
    assert!(
        r.text.contains("5.3.4"),
        "enhanced status 5.3.4 expected: {r:?}"
    );

    // Declared size too (SIZE= at MAIL FROM, raw session).
    let transcript = raw_smtp(
        d.smtp_port,
        b"EHLO client.example\r\nMAIL FROM:<big@customer.example> SIZE=100000\r\nQUIT\r\n",
    );
    assert!(
        transcript.contains("\r\n552"),
        "SIZE=100000 at MAIL FROM should get 552:\n{transcript}"
    );

    // The daemon still takes normal mail.
    let small = mail(
        "Small <small@customer.example>",
        "small",
        "<small-1@customer.example>",
        &[],
        "ok\n",
    );
    let seq = d.send_ok("small@customer.example", &[SUPPORT], &small);
    d.wait_message(seq, SECS_30);
    d.wait_idle(SECS_60);
    assert_eq!(d.tickets_total(), 1);
}

#[test]
fn smtp_smuggling_is_not_split_into_two_messages() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    // Bare-LF and mixed end-of-data lookalikes followed by a second, smuggled transaction.
    let mut s: Vec<u8> = Vec::new();
    s.extend_from_slice(b"EHLO attacker.example\r\nMAIL FROM:<attacker@evil.example>\r\nRCPT TO:<support@example.test>\r\nDATA\r\n");
    s.extend_from_slice(b"From: Attacker <attacker@evil.example>\r\nTo: support@example.test\r\nSubject: smuggling carrier\r\nMessage-ID: <carrier-1@evil.example>\r\n\r\nfirst part\r\n");
    for (i, eod) in [&b"\n.\n"[..], b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"]
        .iter()
        .enumerate()
    {
        s.extend_from_slice(eod);
        s.extend_from_slice(format!(
            "MAIL FROM:<ceo@example.test>\r\nRCPT TO:<support@example.test>\r\nDATA\r\nFrom: CEO <ceo@example.test>\r\nSubject: smuggled {i}\r\nMessage-ID: <smuggled-{i}@evil.example>\r\n\r\nSMUGGLED-TEXT-{i}\r\n"
        ).as_bytes());
    }
    s.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    let transcript = raw_smtp(d.smtp_port, &s);
    let queued: Vec<&str> = transcript
        .lines()
        .filter(|l| l.contains("queued as"))
        .collect();
    assert_eq!(
        queued.len(),
        1,
        "exactly one message accepted:\n{transcript}"
    );
    let seq = queued_as(queued[0]).unwrap();
    d.wait_message(seq, SECS_30);
    d.wait_idle(SECS_60);
    assert_eq!(
        d.tickets_total(),
        1,
        "the smuggled mail must not become a ticket"
    );
    let (st, raw) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    assert_eq!(st, 200);
    for i in 0..4 {
        let marker = format!("SMUGGLED-TEXT-{i}");
        assert!(
            contains(&raw, marker.as_bytes()),
            "{marker} must stay inside the one stored message"
        );
    }
}

#[test]
fn api_requires_the_bearer_token() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    for path in [
        "/api/v1/tickets",
        "/api/v1/tickets/1",
        "/api/v1/messages/1",
        "/api/v1/messages/1/raw",
        "/api/v1/quarantine",
    ] {
        let (st, _) = d.api_get_as(path, None);
        assert_eq!(st, 401, "GET {path} without token");
        let (st, _) = d.api_get_as(path, Some("wrong-token"));
        assert_eq!(st, 401, "GET {path} with a wrong token");
    }
    let (st, v) = d.api_get("/api/v1/tickets");
    assert_eq!(st, 200);
    assert_eq!(v["total"].as_u64(), Some(0), "{v}");
    assert!(v["tickets"].as_array().is_some_and(|a| a.is_empty()), "{v}");
    let (st, _) = d.api_get("/api/v1/tickets/999");
    assert_eq!(st, 404, "unknown ticket");
    let (st, _) = d.api_get("/api/v1/messages/999");
    assert_eq!(st, 404, "unknown message");
    let q = d.api_ok("/api/v1/quarantine");
    assert_eq!(q["total"].as_u64(), Some(0), "{q}");
    let h = d.health();
    assert_eq!(h["status"], "ok");
    for k in ["spool_pending", "outbound_queued", "tickets"] {
        assert!(h[k].is_u64(), "health lacks {k}: {h}");
    }
    // Without the token, health is a bare liveness answer: nothing about queues or mailboxes.
    for token in [None, Some("wrong-token")] {
        let (st, h) = d.api_get_as("/api/v1/health", token);
        assert_eq!(st, 200, "liveness needs no token");
        let h: serde_json::Value = serde_json::from_slice(&h).expect("health is JSON");
        assert_eq!(h, serde_json::json!({"status": "ok"}), "{token:?}");
    }
}

/// Found by fuzzing (fuzz/ `smtp_command`): a `DATA` line ending in a bare LF
/// made a dot right after it end an empty message, although no `CRLF . CRLF`
/// was sent. Only `CRLF . CRLF` ends a message: that dot is content.
#[test]
fn data_line_with_bare_lf_does_not_end_the_message_at_the_next_dot() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let script = b"EHLO client.example\r\nMAIL FROM:<ann@example.org>\r\nRCPT TO:<support@example.test>\r\nDATA\n.\r\nFrom: Ann <ann@example.org>\r\nSubject: after the dot\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let transcript = raw_smtp(d.smtp_port, script);
    let queued: Vec<&str> = transcript
        .lines()
        .filter(|l| l.contains("queued as"))
        .collect();
    assert_eq!(queued.len(), 1, "one message:\n{transcript}");
    let seq = queued_as(queued[0]).unwrap();
    d.wait_message(seq, SECS_30);
    let (st, raw) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    assert_eq!(st, 200);
    assert!(
        contains(&raw, b"Subject: after the dot"),
        "the lines after the dot are the message, not commands:\n{transcript}"
    );
}
