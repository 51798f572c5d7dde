//! The agent web view through the real binary: login, sessions, CSRF and
//! security headers over plain HTTP from here; the pages in a real browser
//! (Debian's chromium driven by Playwright, tests/peers/web_browse.py).

mod common;
use common::web::*;
use common::*;
use std::process::Command;

/// What a refused POST shows, its headers and its body.
type RefusedPost<'a> = (&'a str, Vec<(&'a str, &'a str)>, String);

#[test]
fn login_sessions_headers_and_csrf_over_http() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |_| {});
    let port = d.web_port;

    // Security headers on pages and on the API alike.
    for path in ["/login", "/api/v1/health"] {
        let a = http(port, "GET", path, &[], "");
        assert_eq!(a.status, 200, "{path}");
        let csp = a.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: CSP {csp:?}"
        );
        assert_eq!(
            a.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{path}");
    }
    let a = http(port, "GET", "/login", &[], "");
    assert!(a.body.contains(r#"name="username""#) && a.body.contains(r#"name="password""#));
    let a = http(port, "GET", "/", &[], "");
    assert_eq!((a.status, a.header("location")), (303, Some("/login")));

    // Unknown account and wrong password: the same answer.
    let wrong = http(
        port,
        "POST",
        "/login",
        &[],
        &form(&[("username", "alice"), ("password", "nope")]),
    );
    let unknown = http(
        port,
        "POST",
        "/login",
        &[],
        &form(&[("username", "mallory"), ("password", "nope")]),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
    assert!(wrong.header("set-cookie").is_none());

    // A foreign page cannot log the browser in.
    let a = http(
        port,
        "POST",
        "/login",
        &[("Origin", "http://evil.test")],
        &form(&[("username", "alice"), ("password", PASSWORD)]),
    );
    assert_eq!(a.status, 403, "cross-origin login accepted");

    let a = http(
        port,
        "POST",
        "/login",
        &[("Origin", &origin(&d))],
        &form(&[("username", "alice@example.test"), ("password", PASSWORD)]),
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let set = a.header("set-cookie").unwrap();
    assert!(set.starts_with("postdesk_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    let first = set.split(';').next().unwrap().to_string();
    let cookie = login_as(&d, "alice");
    assert_ne!(cookie, first, "a login must make a new session id");

    let seq = d.send_ok(
        "carol@customer.test",
        &[SUPPORT],
        &mail(
            "Carol <carol@customer.test>",
            "Printer on fire",
            "<csrf-1@customer.test>",
            &[],
            "It smokes.\n",
        ),
    );
    let id = d.ticket_of(seq);
    let page = http(
        port,
        "GET",
        &format!("/tickets/{id}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Printer on fire"));
    assert!(page.header("content-security-policy").is_some());
    let token = csrf_token(&page.body);

    // Every refused variant of a state-changing POST: 403.
    let reply = format!("/tickets/{id}/reply");
    let ours = origin(&d);
    let refused: [RefusedPost; 4] = [
        (
            "foreign Origin, no token",
            vec![("Cookie", &cookie), ("Origin", "http://evil.test")],
            form(&[("body", "hi")]),
        ),
        (
            "same origin, no token",
            vec![("Cookie", &cookie), ("Origin", &ours)],
            form(&[("body", "hi")]),
        ),
        (
            "same origin, wrong token",
            vec![("Cookie", &cookie), ("Origin", &ours)],
            form(&[("csrf", &"0".repeat(64)), ("body", "hi")]),
        ),
        (
            "cross-site fetch with the right token",
            vec![("Cookie", &cookie), ("Sec-Fetch-Site", "cross-site")],
            form(&[("csrf", &token), ("body", "hi")]),
        ),
    ];
    for (what, headers, body) in &refused {
        let a = http(port, "POST", &reply, headers, body);
        assert_eq!(a.status, 403, "{what}: {}", a.body);
    }
    let logout_without = http(
        port,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Origin", "http://evil.test")],
        "",
    );
    assert_eq!(logout_without.status, 403);
    assert_eq!(
        http(port, "GET", "/", &[("Cookie", &cookie)], "").status,
        200
    );

    // The same form with its token from our origin passes the check, and the
    // reply goes to the customer through the durable outbound queue.
    assert!(
        sink.messages_to("carol@customer.test")
            .iter()
            .all(|m| !String::from_utf8_lossy(m).contains("Tray two is jammed")),
        "refused posts sent nothing"
    );
    let a = http(
        port,
        "POST",
        &reply,
        &[
            ("Cookie", &cookie),
            ("Origin", &origin(&d)),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &form(&[
            ("csrf", &token),
            ("body", "Tray two is jammed; we send a technician."),
        ]),
    );
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(
        a.header("location"),
        Some(format!("/tickets/{id}").as_str())
    );
    wait_until(SECS_30, "the web reply at the customer", || {
        sink.messages_to("carol@customer.test")
            .into_iter()
            .find(|m| body_text(m).contains("Tray two is jammed"))
    });
    let t = d.ticket(&id);
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "replied" && e["actor"] == "alice"),
        "{t}"
    );

    let a = http(
        port,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Origin", &origin(&d))],
        &form(&[("csrf", &token)]),
    );
    assert_eq!(a.status, 303);
    // The old cookie is dead on the server, not only in the browser.
    let a = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!((a.status, a.header("location")), (303, Some("/login")));

    // Ten failures for one account (the wrong password above and nine
    // more) lock it for a while, even with the right password.
    for _ in 0..9 {
        let a = http(
            port,
            "POST",
            "/login",
            &[],
            &form(&[("username", "alice"), ("password", "guess")]),
        );
        assert_eq!(a.status, 401);
    }
    let a = http(
        port,
        "POST",
        "/login",
        &[],
        &form(&[("username", "alice"), ("password", PASSWORD)]),
    );
    assert_eq!(a.status, 429, "{}", a.body);
}

/// Runs tests/peers/web_browse.py against the daemon for ticket `id`;
/// screenshots go to target/web-screenshots/NAME/. Returns its JSON report.
fn browse(d: &Daemon, id: &str, name: &str) -> serde_json::Value {
    let out_dir = repo_root().join("target/web-screenshots").join(name);
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(python())
        .arg(peer_script("web_browse.py"))
        .args([&origin(d), "alice", PASSWORD, id])
        .arg(&out_dir)
        .output()
        .expect("run tests/peers/web_browse.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "web_browse.py failed:\n{}\n{}\n--- daemon log ---\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr),
        d.log_tail(40)
    );
    for shot in [
        "queue-desktop",
        "queue-phone",
        "ticket-desktop",
        "ticket-phone",
    ] {
        let png = out_dir.join(format!("{shot}.png"));
        let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "no screenshot {}", png.display());
    }
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

#[test]
fn browser_logs_in_opens_the_queue_and_the_ticket_at_desktop_and_phone_width() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |_| {});
    let seq = d.send_ok(
        "carol@customer.test",
        &[SUPPORT],
        &mail(
            "Carol Customer <carol@customer.test>",
            "Invoice 2026-118 is wrong",
            "<browse-1@customer.test>",
            &[],
            "Hello,\n\nthe invoice lists 12 seats; we have 10.\n\n  Carol\n",
        ),
    );
    let id = d.ticket_of(seq);
    let report = browse(&d, &id, "browse");
    for width in ["desktop", "phone"] {
        let w = &report["widths"][width];
        assert_eq!(w["redirected_to_login"], true, "{width}: {w}");
        assert!(
            w["after_login_url"].as_str().unwrap().ends_with('/'),
            "{width}: {w}"
        );
        assert_eq!(w["queue_lists_ticket"], true, "{width}: {w}");
        let folders = w["folders"].to_string();
        for f in ["Unassigned", "Mine", "All open", "Pending", "Resolved"] {
            assert!(folders.contains(f), "{width}: no folder {f}: {folders}");
        }
        assert!(
            w["ticket_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/tickets/{id}")),
            "{width}: {w}"
        );
        assert!(
            w["h1"]
                .as_str()
                .unwrap()
                .contains("Invoice 2026-118 is wrong"),
            "{width}: {w}"
        );
        let texts = w["messages"].to_string();
        assert!(
            texts.contains("the invoice lists 12 seats"),
            "{width}: {texts}"
        );
        assert_eq!(w["message_kinds"][0], "Customer", "{width}: {w}");
        assert_eq!(
            (w["reply_form"].as_u64(), w["note_form"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(
            w["queue_overflows"], false,
            "{width}: the queue page scrolls sideways"
        );
        assert_eq!(
            w["ticket_overflows"], false,
            "{width}: the ticket page scrolls sideways"
        );
    }
    assert_eq!(report["dialogs"], serde_json::json!([]));
    assert_eq!(report["foreign_requests"], serde_json::json!([]));
    let console = report["console"].to_string();
    assert!(
        !console.contains("Content Security Policy"),
        "our own page violates its CSP: {console}"
    );
}

#[test]
fn xss_corpus_in_customer_mail_is_shown_as_text_and_never_runs() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |_| {});
    let subject = r#"<script>alert('subject')</script><img src=x onerror=alert('subj-img')>"#;
    let corpus = [
        r#"<script>alert('body-script')</script>"#,
        r#"<img src=x onerror="alert('onerror')">"#,
        r#"<a href="javascript:alert('js-link')">click</a>"#,
        r#"<svg onload=alert('svg')><circle r=5 /></svg>"#,
        r#"<meta http-equiv="refresh" content="0;url=http://evil.test/">"#,
        r#"<div style="background:url(javascript:alert('css'));width:expression(alert('expr'))">x</div>"#,
        r#"<math><mtext><table><mglyph><style><img src=x onerror=alert('mathml')>"#,
        r#""><script>alert('attr-break')</script><b x=""#,
        r#"<iframe src="http://evil.test/"></iframe><form action=http://evil.test/><button>go"#,
        r#"</textarea><script>alert('textarea')</script>"#,
    ];
    let body = corpus.join("\n") + "\n";
    let seq = d.send_ok(
        "eve@customer.test",
        &[SUPPORT],
        &mail(
            "Eve <eve@customer.test>",
            subject,
            "<xss-1@customer.test>",
            &[],
            &body,
        ),
    );
    let id = d.ticket_of(seq);
    // The same again as HTML-only mail, threaded into the ticket: its
    // sanitised HTML is framed on the ticket page.
    let html = format!(
        "<table width=\"500\" style=\"color: #224488\"><tr><td>HTML-MARKER in a layout table</td></tr></table>\n\
         <img src=\"http://evil.test/pixel.png\">\n\
         <p style=\"background-image: url(http://evil.test/bg.png)\">styled</p>\n{}",
        corpus.join("\n")
    );
    let raw = format!(
        "From: Eve <eve@customer.test>\r\nTo: Support <support@example.test>\r\nSubject: Re: more\r\n\
         Message-ID: <xss-2@customer.test>\r\nIn-Reply-To: <xss-1@customer.test>\r\n\
         References: <xss-1@customer.test>\r\nDate: Thu, 26 Nov 2026 10:05:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{}\r\n",
        html.replace('\n', "\r\n")
    );
    let seq2 = d.send_ok("eve@customer.test", &[SUPPORT], raw.as_bytes());
    assert_eq!(d.ticket_of(seq2), id, "the HTML mail did not thread");
    let cookie = login_as(&d, "alice");
    let frame_path = format!("/tickets/{id}/messages/{seq2}/html");
    let a = http(d.web_port, "GET", &frame_path, &[], "");
    assert_eq!(a.status, 403, "the HTML version without a session");
    let a = http(d.web_port, "GET", &frame_path, &[("Cookie", &cookie)], "");
    assert_eq!(a.status, 200, "{}", a.body);
    let csp = a.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(a.body.contains("HTML-MARKER"), "{}", a.body);
    for gone in [
        "<script",
        "onerror",
        "javascript:",
        "<svg",
        "<math",
        "http-equiv",
        "evil.test",
    ] {
        assert!(
            !a.body.contains(gone),
            "{gone} survived sanitising: {}",
            a.body
        );
    }
    // Remote images only when the agent asks: then the image, and still
    // nothing that runs or loads otherwise.
    let a = http(
        d.web_port,
        "GET",
        &format!("{frame_path}?images=remote"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let csp = a.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("img-src data: https: http:") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(
        a.body.contains(r#"src="http://evil.test/pixel.png""#),
        "{}",
        a.body
    );
    for gone in ["<script", "onerror", "javascript:", "bg.png", "http-equiv"] {
        assert!(!a.body.contains(gone), "{gone} survived: {}", a.body);
    }
    let page = http(
        d.web_port,
        "GET",
        &format!("/tickets/{id}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert!(page.body.contains(r#"sandbox="""#), "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "{frame_path}?images=remote\" target=\"mail-{seq2}\""
        )),
        "{}",
        page.body
    );
    let report = browse(&d, &id, "xss");
    assert_eq!(report["dialogs"], serde_json::json!([]), "a payload ran");
    assert_eq!(
        report["foreign_requests"],
        serde_json::json!([]),
        "the page reached another origin"
    );
    for width in ["desktop", "phone"] {
        let w = &report["widths"][width];
        assert_eq!(w["queue_lists_ticket"], true, "{width}: {w}");
        assert_eq!(w["script_elements"], 0, "{width}: {w}");
        assert_eq!(w["svg_elements"], 0, "{width}: {w}");
        assert_eq!(w["meta_refresh"], 0, "{width}: {w}");
        assert_eq!(w["elements_with_on_attrs"], 0, "{width}: {w}");
        assert_eq!(w["javascript_links"], 0, "{width}: {w}");
        assert!(
            w["url_after_wait"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/tickets/{id}")),
            "{width}: navigated away: {w}"
        );
        assert!(w["h1"].as_str().unwrap().contains(subject), "{width}: {w}");
        let frames = w["frames"].as_array().cloned().unwrap_or_default();
        assert_eq!(frames.len(), 1, "{width}: one HTML version framed: {w}");
        assert!(
            frames[0]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("HTML-MARKER"),
            "{width}: the framed HTML is not shown: {w}"
        );
        assert_eq!(frames[0]["scripts"], 0, "{width}: {w}");
        let shown = w["messages"][0].as_str().unwrap_or_default();
        for payload in corpus {
            assert!(
                shown.contains(payload),
                "{width}: {payload:?} not shown as text in {shown:?}"
            );
        }
    }
}

#[test]
fn behind_https_the_cookie_is_host_prefixed_and_secure_and_the_origin_must_be_https() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |c| {
        c.set("web", "https", "true");
    });
    let creds = form(&[("username", "alice"), ("password", PASSWORD)]);
    let a = http(
        d.web_port,
        "POST",
        "/login",
        &[("Origin", &origin(&d))],
        &creds,
    );
    assert_eq!(a.status, 403, "an http:// Origin passed behind https");
    let https_origin = format!("https://127.0.0.1:{}", d.web_port);
    let a = http(
        d.web_port,
        "POST",
        "/login",
        &[("Origin", &https_origin)],
        &creds,
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let set = a.header("set-cookie").unwrap();
    assert!(set.starts_with("__Host-postdesk="), "{set}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains("Domain="), "{set}");
    let cookie = set.split(';').next().unwrap();
    assert_eq!(
        http(d.web_port, "GET", "/", &[("Cookie", cookie)], "").status,
        200
    );
}
