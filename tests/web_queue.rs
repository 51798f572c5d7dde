//! The queue page through the real binary: folders and counts from the
//! store's index, filters, keyset paging over more than one page, bulk
//! actions (one POST, per-ticket results), the phone-ticket form, the live
//! fragment; the web listener over TLS with a real TLS client (curl and the
//! test CA); and, in Debian's chromium (tests/peers/web_queue.py), a ticket
//! arriving by SMTP appearing in an open queue page without a reload.

mod common;
use common::web::*;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// The ticket ids a queue page lists (its row checkboxes), in order.
fn listed(page: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"name="ticket" value="(\d+)""#).unwrap();
    re.captures_iter(page).map(|c| c[1].to_string()).collect()
}

/// The count a folder link shows.
fn folder_count(page: &str, key: &str) -> u64 {
    let re = regex::Regex::new(&format!(
        r#"href="/\?folder={}"[^>]*>[^<]*<span class="count">(\d+)</span>"#,
        regex::escape(key)
    ))
    .unwrap();
    re.captures(page)
        .unwrap_or_else(|| panic!("no folder {key} in the page"))[1]
        .parse()
        .unwrap()
}

/// The href of the pager link `rel`, unescaped.
fn pager_link(page: &str, rel: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"<a rel="{rel}" href="([^"]+)""#)).unwrap();
    re.captures(page).map(|c| c[1].replace("&amp;", "&"))
}

/// A phone ticket through the JSON API (fast set-up of many tickets).
fn phone_ticket(d: &Daemon, n: usize) -> String {
    let body = json!({
        "agent": "alice",
        "customer": format!("caller{n}@customer.test"),
        "subject": format!("Caller {n}"),
        "body": "Called about the printer.",
    })
    .to_string();
    let (code, _, resp) = http_request(
        d.web_port,
        "POST",
        "/api/v1/tickets",
        Some(API_TOKEN),
        Some(&body),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(code, 201, "{v}");
    v["ticket"].as_str().unwrap().to_string()
}

fn is_open(t: &Value) -> bool {
    !matches!(t["status"].as_str(), Some("resolved" | "closed"))
}

#[test]
fn folders_filters_paging_bulk_actions_phone_form_and_live_fragment() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |_| {});
    let port = d.web_port;
    for n in 0..56 {
        phone_ticket(&d, n);
    }
    d.wait_idle(Duration::from_secs(60));
    let cookie = login_as(&d, "alice");
    let get = |path: &str| {
        let a = http(port, "GET", path, &[("Cookie", &cookie)], "");
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.body
    };

    // Folder counts agree with what the API says the tickets are.
    let all = d.all_tickets();
    let open: BTreeSet<String> = all
        .iter()
        .filter(|t| is_open(t))
        .map(|t| id_string(&t["id"]).unwrap())
        .collect();
    assert!(open.len() > 50, "more than one page of open tickets");
    let unassigned = all
        .iter()
        .filter(|t| is_open(t) && t["assignee"].is_null())
        .count() as u64;
    let mine = all
        .iter()
        .filter(|t| is_open(t) && t["assignee"] == "alice")
        .count() as u64;
    let first = get("/");
    assert_eq!(folder_count(&first, "open"), open.len() as u64);
    assert_eq!(folder_count(&first, "unassigned"), unassigned);
    assert_eq!(folder_count(&first, "mine"), mine);
    assert_eq!(folder_count(&first, "pending"), 0);
    assert!(first.contains(r#"src="/static/queue.js""#));

    // Paging: two pages, together every open ticket once; back again.
    let page1 = listed(&first);
    assert_eq!(page1.len(), 50, "a full first page");
    assert!(pager_link(&first, "prev").is_none());
    let next = pager_link(&first, "next").expect("a Next link");
    let second = get(&next);
    let page2 = listed(&second);
    assert!(pager_link(&second, "next").is_none(), "two pages only");
    let both: BTreeSet<String> = page1.iter().chain(&page2).cloned().collect();
    assert_eq!(
        both.len(),
        page1.len() + page2.len(),
        "a ticket on both pages"
    );
    assert_eq!(both, open);
    let back = get(&pager_link(&second, "prev").expect("a Previous link"));
    assert_eq!(listed(&back), page1);

    // Bulk: three tickets selected, one of them gone meanwhile (refused,
    // reported); one POST, applied to the two others.
    let token = csrf_token(&first);
    let (a, b) = (page1[0].clone(), page1[1].clone());
    let gone = "999999";
    let bulk = |pairs: &[(&str, &str)], headers: &[(&str, &str)]| {
        let mut h = vec![("Cookie", cookie.as_str())];
        h.extend_from_slice(headers);
        http(port, "POST", "/tickets/bulk", &h, &form(pairs))
    };
    let ours = origin(&d);
    let without_token = bulk(
        &[("ticket", &a), ("action", "priority"), ("value", "urgent")],
        &[("Origin", &ours)],
    );
    assert_eq!(without_token.status, 403, "bulk without the CSRF token");
    let r = bulk(
        &[
            ("csrf", &token),
            ("back", "/?folder=open"),
            ("ticket", &a),
            ("ticket", gone),
            ("ticket", &b),
            ("action", "priority"),
            ("value", "urgent"),
        ],
        &[("Origin", &ours)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("applied to 2 of 3"), "{}", r.body);
    assert!(
        r.body
            .contains(&format!("#{gone}</a>: refused: no ticket #{gone}")),
        "{}",
        r.body
    );
    for id in [&a, &b] {
        assert_eq!(d.ticket(id)["priority"], "urgent", "#{id}");
        assert!(
            r.body.contains(&format!("#{id}</a>: applied")),
            "{}",
            r.body
        );
    }
    let events = d.ticket(&a)["events"].to_string();
    assert!(
        events.contains("alice"),
        "the event names the agent: {events}"
    );

    // Filters: priority, then tag, assignee and status after more bulk actions.
    let urgent = listed(&get("/?folder=open&priority=urgent"));
    assert_eq!(
        urgent.iter().collect::<BTreeSet<_>>(),
        [&a, &b].into_iter().collect()
    );
    let c = page1[2].clone();
    for (action, value, ids) in [
        ("tag", "vip", vec![&b, &c]),
        ("assign", "bob", vec![&c]),
        ("status", "pending", vec![&a]),
    ] {
        let mut pairs = vec![
            ("csrf", token.as_str()),
            ("action", action),
            ("value", value),
        ];
        for id in &ids {
            pairs.push(("ticket", id));
        }
        let r = bulk(&pairs, &[("Origin", &ours)]);
        assert!(
            r.body
                .contains(&format!("applied to {} of {}", ids.len(), ids.len())),
            "{action}: {}",
            r.body
        );
    }
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        set(listed(&get("/?folder=open&tag=vip"))),
        set(vec![b.clone(), c.clone()])
    );
    assert_eq!(
        set(listed(&get("/?folder=open&assignee=Bob"))),
        set(vec![c.clone()])
    );
    assert_eq!(
        set(listed(&get("/?folder=open&status=pending"))),
        set(vec![a.clone()])
    );
    assert_eq!(
        set(listed(&get("/?folder=open&tag=vip&priority=urgent"))),
        set(vec![b.clone()])
    );
    let now = get("/");
    assert_eq!(folder_count(&now, "pending"), 1);
    assert_eq!(listed(&get("/?folder=pending")), vec![a.clone()]);

    // The live fragment: 204 while nothing changed, the new ticket once it
    // came (on the last page: its deadline is the furthest).
    let last = pager_link(&get("/?folder=open"), "next").expect("a second page");
    let live_path = last.replacen("/?", "/queue/live?", 1);
    let live = http(port, "GET", &live_path, &[("Cookie", &cookie)], "");
    assert_eq!(live.status, 200);
    let stamp = live.header("x-queue-stamp").expect("a stamp").to_string();
    let same = http(
        port,
        "GET",
        &format!("{live_path}&since={stamp}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(same.status, 204, "{}", same.body);
    // Deadlines are whole seconds and equal ones list newest first: in the
    // same second as the others, Dora's ticket would sort onto page one.
    std::thread::sleep(Duration::from_millis(1100));
    let seq = d.send_ok(
        "dora@customer.test",
        &[SUPPORT],
        &mail(
            "Dora <dora@customer.test>",
            "Scanner jams on page two",
            "<live-1@customer.test>",
            &[],
            "It jams.\n",
        ),
    );
    let id = d.ticket_of(seq);
    let changed = http(
        port,
        "GET",
        &format!("{live_path}&since={stamp}"),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(changed.status, 200);
    assert!(
        changed.body.contains("Scanner jams on page two"),
        "{}",
        changed.body
    );
    assert!(changed.body.contains(&format!(r#"value="{id}""#)));
    assert_eq!(
        http(port, "GET", "/queue/live?folder=open", &[], "").status,
        401,
        "the fragment needs a session"
    );

    // New ticket by phone through the web form: spooled, made, shown.
    let form_page = get("/tickets/new");
    for field in ["name", "address", "subject", "text"] {
        assert!(
            form_page.contains(&format!(r#"name="{field}""#)),
            "{field}: {form_page}"
        );
    }
    let token = csrf_token(&form_page);
    let fields = [
        ("csrf", token.as_str()),
        ("name", "Erin Caller"),
        ("address", "erin@customer.test"),
        ("subject", "Called: badge reader broken"),
        ("text", "Erin called: the badge reader at door 3 is dead."),
    ];
    let refused = http(
        port,
        "POST",
        "/tickets/new",
        &[("Cookie", &cookie), ("Origin", "http://evil.test")],
        &form(&fields),
    );
    assert_eq!(refused.status, 403, "a foreign page opened a ticket");
    let r = http(
        port,
        "POST",
        "/tickets/new",
        &[("Cookie", &cookie), ("Origin", &ours)],
        &form(&fields),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.header("location").expect("to the new ticket").to_string();
    let new_id = location
        .strip_prefix("/tickets/")
        .expect("a ticket address")
        .to_string();
    let t = d.ticket(&new_id);
    assert_eq!(t["requester"], "erin@customer.test", "{t}");
    assert_eq!(t["subject"], "Called: badge reader broken", "{t}");
    let seq = t["messages"][0]["seq"].as_str().unwrap().to_string();
    let (_, raw) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
    let raw = String::from_utf8_lossy(&raw).into_owned();
    assert!(raw.contains("X-Postdesk-Channel: phone"), "{raw}");
    assert!(raw.contains("X-Postdesk-Taken-By: alice"), "{raw}");
    assert!(get(&location).contains("badge reader"));

    // Bulk merge: the phone ticket and Dora's into c; c itself, selected
    // too, is refused (not into itself) and the others point at it.
    let token = csrf_token(&get("/"));
    let r = bulk(
        &[
            ("csrf", &token),
            ("ticket", &new_id),
            ("ticket", &id),
            ("ticket", &c),
            ("action", "merge"),
            ("value", &c),
        ],
        &[("Origin", &ours)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("applied to 2 of 3"), "{}", r.body);
    assert!(r.body.contains(&format!("#{c}</a>: refused")), "{}", r.body);
    for merged in [&new_id, &id] {
        let t = d.ticket(merged);
        assert_eq!(t["merged_into"], c.as_str(), "{t}");
        assert_eq!(t["status"], "closed", "{t}");
    }
    assert!(get(&format!("/tickets/{c}")).contains("badge reader"));
}

/// curl over TLS to the daemon, trusting only the test CA: (status, headers, body).
fn curl_tls(port: u16, args: &[&str]) -> (u16, String, String) {
    let ca = repo_root().join("fixtures/tls/cert.pem");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "--cacert"])
        .arg(&ca)
        .args(args)
        .arg(format!("https://127.0.0.1:{port}/login"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn the_web_listener_serves_tls_with_the_host_cookie() {
    let sink = Sink::start();
    let cert = repo_root().join("fixtures/tls/cert.pem");
    let key = repo_root().join("fixtures/tls/key.pem");
    let d = daemon_with_passwords(&sink, |c| {
        c.set("web", "tls_cert", &q(&cert.to_string_lossy()));
        c.set("web", "tls_key", &q(&key.to_string_lossy()));
    });
    let port = d.web_port;

    let (status, head, body) = curl_tls(port, &[]);
    assert_eq!(status, 200, "{head}{body}");
    assert!(body.contains(r#"name="username""#), "{body}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );

    // Login over TLS: the __Host- cookie with Secure; the https:// Origin is ours.
    let login = form(&[("username", "alice"), ("password", PASSWORD)]);
    let ours = format!("Origin: https://127.0.0.1:{port}");
    let (status, head, _) = curl_tls(port, &["-H", &ours, "--data", &login]);
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("__host-postdesk="), "{cookie}");
    assert!(cookie.contains("secure"), "{cookie}");
    let plain_origin = format!("Origin: http://127.0.0.1:{port}");
    let (status, _, _) = curl_tls(port, &["-H", &plain_origin, "--data", &login]);
    assert_eq!(status, 403, "an http:// Origin on the TLS listener");

    // Plain HTTP on the TLS port gets no page.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("username"),
        "the login page over plain HTTP"
    );

    // A client that does not trust the certificate is refused by curl.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .arg(format!("https://127.0.0.1:{port}/login"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an untrusted certificate was accepted"
    );

    // `postdesk check` refuses a certificate without its key.
    let bad = d.config_path.with_file_name("half-tls.toml");
    let text = std::fs::read_to_string(&d.config_path).unwrap();
    let half: String = text
        .lines()
        .filter(|l| !l.starts_with("tls_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bad, half).unwrap();
    let out = Command::new(daemon_bin())
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("web.tls_cert and web.tls_key"), "{said}");
}

#[test]
fn an_open_queue_page_shows_a_ticket_arriving_by_smtp_without_reload() {
    let sink = Sink::start();
    let d = daemon_with_passwords(&sink, |_| {});
    for n in 0..3 {
        phone_ticket(&d, n);
    }
    d.wait_idle(Duration::from_secs(30));
    let out_dir = repo_root().join("target/web-screenshots/queue");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(python())
        .arg(peer_script("web_queue.py"))
        .args([&origin(&d), "alice", PASSWORD])
        .arg(d.smtp_port.to_string())
        .arg(&out_dir)
        .output()
        .expect("run tests/peers/web_queue.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "web_queue.py failed:\n{}\n{}\n--- daemon log ---\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr),
        d.log_tail(40)
    );
    let r: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"));
    assert_eq!(r["listed_before"], false, "{r}");
    assert_eq!(r["appeared"], true, "the new ticket never appeared: {r}");
    assert_eq!(
        r["utc_times_after_refresh"], 0,
        "refreshed rows kept their UTC text: {r}"
    );
    assert_eq!(r["reloaded"], false, "the page reloaded: {r}");
    assert_eq!(
        r["selection_kept"], true,
        "a refresh lost the selection: {r}"
    );
    assert_eq!(r["csp_violations"], json!([]), "{r}");
    assert_eq!(r["phone_overflows"], false, "{r}");
    assert!(
        r["count_after"].as_u64() > r["count_before"].as_u64(),
        "{r}"
    );
    for shot in ["queue-desktop", "queue-phone"] {
        let png = out_dir.join(format!("{shot}.png"));
        let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "no screenshot {}", png.display());
    }
}
