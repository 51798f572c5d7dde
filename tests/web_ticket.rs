//! The ticket page's acting, downloads, presence and stale-submit check
//! through the real binary: forms and downloads over plain HTTP from here;
//! presence and the stale-submit check in Debian's chromium with two
//! browser contexts (tests/peers/web_ticket.py), and with one agent in the
//! browser while another replies by mail.

mod common;
use common::web::*;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::str::FromStr;

fn capture(page: &str, re: &str) -> String {
    let re = regex::Regex::new(re).unwrap();
    re.captures(page)
        .unwrap_or_else(|| panic!("{re} not in the page"))[1]
        .to_string()
}

/// A logged-in agent's view of one ticket page.
struct Agent<'a> {
    d: &'a Daemon,
    cookie: String,
}

impl Agent<'_> {
    fn get(&self, path: &str) -> Answer {
        http(
            self.d.web_port,
            "GET",
            path,
            &[("Cookie", &self.cookie)],
            "",
        )
    }

    /// Posts `pairs` plus the page's form token and version to `path`.
    fn post(&self, page: &str, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let csrf = capture(page, r#"name="csrf" value="([0-9a-f]+)""#);
        let version = capture(page, r#"name="version" value="([0-9]+)""#);
        let mut all = vec![("csrf", csrf.as_str()), ("version", version.as_str())];
        all.extend_from_slice(pairs);
        let o = origin(self.d);
        http(
            self.d.web_port,
            "POST",
            path,
            &[
                ("Cookie", &self.cookie),
                ("Origin", &o),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            &form(&all),
        )
    }
}

/// A customer mail with an HTML file, a PNG and a text attachment whose
/// name needs RFC 2231 encoding.
fn mail_with_attachments(msgid: &str) -> Vec<u8> {
    format!(
        "From: Carol <carol@customer.test>\r\nTo: Support <support@example.test>\r\nSubject: Screenshots attached\r\nMessage-ID: {msgid}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe printer shows this.\r\n--XX\r\nContent-Type: text/html; name=\"page.html\"\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n<script>document.title='pwned'</script><p>hello</p>\r\n--XX\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"screen.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%22%3B.txt\r\n\r\nnotes\r\n--XX--\r\n"
    )
    .into_bytes()
}

#[test]
fn forms_act_downloads_are_attachments_and_sent_mail_shows_its_delivery() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |_| {});
    let port = d.web_port;
    let seq = d.send_ok(
        "carol@customer.test",
        &[SUPPORT],
        &mail_with_attachments("<att-1@customer.test>"),
    );
    let id = d.ticket_of(seq);
    let other_seq = d.send_ok(
        "dave@customer.test",
        &[SUPPORT],
        &mail(
            "Dave <dave@customer.test>",
            "Another matter",
            "<other-1@customer.test>",
            &[],
            "Unrelated.\n",
        ),
    );
    let other = d.ticket_of(other_seq);
    assert_ne!(id, other);
    let alice = Agent {
        d: &d,
        cookie: login_as(&d, "alice"),
    };
    let page = alice.get(&format!("/tickets/{id}"));
    assert_eq!(page.status, 200);
    let page = page.text();
    for name in ["page.html", "screen.png", "résumé&quot;;.txt"] {
        assert!(page.contains(name), "{name} not listed: {page}");
    }
    // Why the message is here: its created event, linked to the log row.
    assert!(page.contains(r##"<a href="#e0">created</a>"##), "{page}");
    assert!(
        page.contains(&format!(r##"<a href="#m{seq}">message {seq}</a>"##)),
        "{page}"
    );

    // Downloads: attachment disposition with filename*, nosniff, never HTML.
    let base = format!("/tickets/{id}/messages/{seq}");
    let html = alice.get(&format!("{base}/attachments/0"));
    assert_eq!(html.status, 200);
    assert_eq!(
        html.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        html.header("content-disposition"),
        Some("attachment; filename=\"page.html\"; filename*=UTF-8''page.html")
    );
    assert_eq!(html.header("x-content-type-options"), Some("nosniff"));
    assert!(
        html.header("content-security-policy")
            .is_some_and(|c| c.contains("sandbox") && c.contains("default-src 'none'")),
        "{:?}",
        html.headers
    );
    assert!(html.text().contains("<script>document.title"));
    let png = alice.get(&format!("{base}/attachments/1"));
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert!(
        png.header("content-disposition")
            .is_some_and(|c| c.starts_with("attachment;"))
    );
    let txt = alice.get(&format!("{base}/attachments/2"));
    assert_eq!(
        txt.header("content-disposition"),
        Some("attachment; filename=\"r_sum___.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%22%3B.txt")
    );
    assert_eq!(alice.get(&format!("{base}/attachments/3")).status, 404);
    // Another ticket's message through this ticket's path, and the other way.
    assert_eq!(
        alice
            .get(&format!("/tickets/{other}/messages/{seq}/attachments/0"))
            .status,
        404
    );
    assert_eq!(
        alice
            .get(&format!("/tickets/{other}/messages/{seq}/raw"))
            .status,
        404
    );
    // No session: to the login page, nothing of the file.
    for path in [format!("{base}/attachments/0"), format!("{base}/raw")] {
        let a = http(port, "GET", &path, &[], "");
        assert_eq!((a.status, a.header("location")), (303, Some("/login")));
        assert!(!a.text().contains("document.title"));
    }
    let raw = alice.get(&format!("{base}/raw"));
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        raw.header("content-disposition")
            .is_some_and(|c| c.starts_with("attachment;") && c.contains(".eml")),
        "{:?}",
        raw.headers
    );
    assert!(raw.text().contains("Message-ID: <att-1@customer.test>"));

    // The acting forms, each through Processor::act; the API sees the change.
    let page_url = format!("/tickets/{id}");
    let act = format!("/tickets/{id}/act");
    for (field, value) in [
        ("status", "pending"),
        ("priority", "urgent"),
        ("assignee", "bob"),
        ("tag_add", "vip printers"),
    ] {
        let page = alice.get(&page_url).text();
        let a = alice.post(&page, &act, &[(field, value)]);
        assert_eq!(a.status, 303, "{field}: {}", a.text());
    }
    let page = alice.get(&page_url).text();
    let a = alice.post(&page, &act, &[("tag_remove", "printers")]);
    assert_eq!(a.status, 303, "{}", a.text());
    let t = d.ticket(&id);
    assert_eq!(t["status"], "pending", "{t}");
    assert_eq!(t["priority"], "urgent", "{t}");
    assert_eq!(t["assignee"], "bob", "{t}");
    assert_eq!(t["tags"], serde_json::json!(["vip"]), "{t}");
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "assigned" && e["actor"] == "alice"),
        "{t}"
    );
    // A refusal is a page that says why, and changes nothing.
    let page = alice.get(&page_url).text();
    let a = alice.post(&page, &act, &[("assignee", "mallory")]);
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().contains("no agent"), "{}", a.text());
    assert_eq!(d.ticket(&id)["assignee"], "bob");
    let a = alice.post(&page, &act, &[("queue", "nowhere")]);
    assert_eq!(a.status, 400);
    assert!(a.text().contains("unknown queue"), "{}", a.text());
    // Without the form token: refused before anything happens.
    let a = http(
        port,
        "POST",
        &act,
        &[("Cookie", &alice.cookie), ("Origin", &origin(&d))],
        &form(&[("status", "closed")]),
    );
    assert_eq!(a.status, 403);
    assert_eq!(d.ticket(&id)["status"], "pending");

    // The canned-response picker sends rules/canned/thanks.txt to the customer.
    let page = alice.get(&page_url).text();
    assert!(page.contains(r#"<option value="thanks">"#), "{page}");
    let a = alice.post(&page, &act, &[("canned", "thanks")]);
    assert_eq!(a.status, 303, "{}", a.text());
    wait_until(SECS_30, "the canned response at the customer", || {
        sink.messages_to("carol@customer.test")
            .into_iter()
            .find(|m| body_text(m).contains("thank you for your patience"))
    });
    // Its delivery state on the page once the relay took it.
    let delivered = wait_until(SECS_30, "the reply shown as delivered", || {
        let page = alice.get(&page_url).text();
        page.contains(r#"class="delivery delivery-delivered""#)
            .then_some(page)
    });
    assert!(delivered.contains("thank you for your patience"));
}

/// A message to the sink as a CRLF string.
fn texts_to(sink: &Sink, addr: &str) -> Vec<String> {
    sink.messages_to(addr)
        .iter()
        .map(|m| body_text(m))
        .collect()
}

/// Runs tests/peers/web_ticket.py in `mode` against ticket `id`; `step` is
/// called with each line the script prints before its report (the script
/// waits for our answer on its stdin). Returns its JSON report.
fn browse(
    d: &Daemon,
    mode: &str,
    id: &str,
    mut step: impl FnMut(&str) -> String,
) -> serde_json::Value {
    let out_dir = repo_root().join("target/web-screenshots/ticket");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut child = Command::new(python())
        .arg(peer_script("web_ticket.py"))
        .args([mode, &origin(d), PASSWORD, id])
        .arg(&out_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tests/peers/web_ticket.py");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut report = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(json) = line.strip_prefix("REPORT ") {
            report = Some(json.to_string());
            break;
        }
        let answer = step(&line);
        writeln!(stdin, "{answer}").unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && report.is_some(),
        "web_ticket.py {mode} failed:\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_tail(40)
    );
    let report = report.unwrap();
    serde_json::from_str(&report).unwrap_or_else(|e| panic!("bad JSON ({e}): {report}"))
}

fn open_ticket(d: &Daemon, sink: &Sink, tag: &str) -> String {
    let customer = format!("{tag}@customer.test");
    let seq = d.send_ok(
        &customer,
        &[SUPPORT],
        &mail(
            &format!("Carol <{customer}>"),
            &format!("Cannot print ({tag})"),
            &format!("<{tag}@customer.test>"),
            &[],
            "The printer says PC LOAD LETTER.\n",
        ),
    );
    let id = d.ticket_of(seq);
    sink.nth_to(&customer, 1);
    id
}

#[test]
fn presence_shows_other_agents_viewing_and_replying_until_they_expire() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |c| {
        c.set("web", "presence_interval", &q("1s"));
    });
    let id = open_ticket(&d, &sink, "presence");
    let r = browse(&d, "presence", &id, |_| String::new());
    // Bob sees Alice viewing, then replying; neither sees themself; after
    // Alice left and three intervals passed, Bob sees nobody.
    assert_eq!(r["bob_sees_viewing"], "Alice Example is viewing", "{r}");
    assert_eq!(r["bob_sees_replying"], "Alice Example is replying", "{r}");
    assert_eq!(r["alice_sees"], "bob is viewing", "{r}");
    assert_eq!(r["bob_after_alice_left"], "", "{r}");
    assert!(r["local_times"].as_u64().unwrap() > 0, "{r}");
    // 2026-12-03 10:00 UTC is 05:00 in New York: the text moves, the title
    // keeps the UTC value.
    let iso = r["time_datetime"].as_str().unwrap();
    let utc = jiff::Timestamp::from_str(iso).unwrap();
    let ny = utc.in_tz("America/New_York").unwrap();
    assert_eq!(
        r["time_local_text"].as_str().unwrap(),
        format!("{} America/New York", ny.strftime("%Y-%m-%d %H:%M")),
        "{r}"
    );
    assert_eq!(
        r["time_utc_title"].as_str().unwrap(),
        format!("{} UTC", utc.strftime("%Y-%m-%d %H:%M")),
        "{r}"
    );
    assert_eq!(r["script_errors"], serde_json::json!([]), "{r}");
}

#[test]
fn stale_submit_from_two_browsers_is_held_until_the_agent_sends_it_anyway() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |_| {});
    let id = open_ticket(&d, &sink, "stale");
    let customer = "stale@customer.test";
    let r = browse(&d, "stale", &id, |_| String::new());
    // Alice's reply was held, her page showed Bob's and the two choices.
    assert_eq!(r["held_panel"], true, "{r}");
    assert!(
        r["panel_text"]
            .as_str()
            .unwrap()
            .contains("Bob has the fix: restart the spooler."),
        "{r}"
    );
    assert_eq!(
        r["revise_prefilled"], "Alice says: load letter paper.",
        "{r}"
    );
    for shot in ["held-desktop", "held-phone"] {
        let png = repo_root().join(format!("target/web-screenshots/ticket/{shot}.png"));
        assert!(std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0) > 1000);
    }
    assert_eq!(r["phone_overflows"], false, "{r}");
    // Send anyway: the customer gets both replies.
    wait_until(SECS_30, "both replies at the customer", || {
        let texts = texts_to(&sink, customer);
        (texts.iter().any(|t| t.contains("Bob has the fix"))
            && texts
                .iter()
                .any(|t| t.contains("Alice says: load letter paper.")))
        .then_some(())
    });
    let t = d.ticket(&id);
    let kinds = event_kinds(&t);
    assert!(kinds.contains(&"reply_held".to_string()), "{t}");
    assert!(kinds.contains(&"held_released".to_string()), "{t}");
}

#[test]
fn a_reply_by_mail_meanwhile_holds_the_browser_reply_and_revising_drops_the_held_one() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |c| {
        c.set("agents", "notify", "true");
    });
    let id = open_ticket(&d, &sink, "bymail");
    let customer = "bymail@customer.test";
    let note = sink.nth_to("bob@example.test", 1);
    let r = browse(&d, "mail", &id, |line| {
        assert_eq!(line, "OPENED", "unexpected line from the script");
        // Bob answers by mail while Alice's page is open.
        let token = bare_address(&header(&note, "Reply-To").expect("Reply-To"));
        let parent = header(&note, "Message-ID").unwrap_or_default();
        let raw = mail(
            "Bob <bob@example.test>",
            "Re: notification",
            "<bob-reply@example.test>",
            &[
                &format!("In-Reply-To: {parent}"),
                &format!("References: {parent}"),
            ],
            "Bob by mail: the tray is empty.\n",
        );
        let raw = String::from_utf8(raw).unwrap().replace(
            "To: Support <support@example.test>",
            &format!("To: {token}"),
        );
        d.send_ok("bob@example.test", &[&token], raw.as_bytes());
        wait_until(SECS_30, "bob's mail reply at the customer", || {
            texts_to(&sink, customer)
                .into_iter()
                .find(|t| t.contains("Bob by mail"))
        });
        "GO".into()
    });
    assert_eq!(r["held_panel"], true, "{r}");
    assert!(
        r["panel_text"]
            .as_str()
            .unwrap()
            .contains("Bob by mail: the tray is empty."),
        "{r}"
    );
    // Alice revised: the revised text goes out, the held one never does.
    wait_until(SECS_30, "alice's revised reply at the customer", || {
        texts_to(&sink, customer)
            .into_iter()
            .find(|t| t.contains("Revised: Bob is right"))
    });
    d.wait_idle(SECS_30);
    assert!(
        texts_to(&sink, customer)
            .iter()
            .all(|t| !t.contains("Alice first draft")),
        "the held reply was sent"
    );
    let t = d.ticket(&id);
    let kinds = event_kinds(&t);
    assert!(kinds.contains(&"held_dropped".to_string()), "{t}");
    assert!(t["held"].as_array().is_none_or(|h| h.is_empty()), "{t}");
}
