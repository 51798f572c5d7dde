//! Client addresses on the public listener behind a reverse proxy, through
//! the real binary over HTTP: the per-client allowance of the web form
//! counts the address `X-Forwarded-For` names only when the TCP peer is a
//! `web.trusted_proxies` entry; from anyone else the header is ignored, so
//! a client cannot spread its posts over invented addresses. `postdesk
//! check` refuses an entry that is no address or network. The chat's
//! conversations per client follow the same rule.

mod common;
use common::*;
use std::time::Duration;

/// One POST of an empty-field multipart form to `/new` from 127.0.0.1 with
/// `headers`; (status, body). Every post counts against the client's
/// allowance before the form token is read, so a bare post is enough.
fn post_form(port: u16, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let boundary = "----postdesk-proxy-test";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nnone\r\n--{boundary}--\r\n"
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "POST /new HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n{extra}Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = find(&buf, b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        String::from_utf8_lossy(&buf[split + 4..]).into_owned(),
    )
}

/// The attack: a client that is no proxy names a new address in
/// `X-Forwarded-For` with every post to get a fresh allowance each time.
/// The limit still hits after the allowance, whatever the header says.
#[test]
fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let sink = Sink::start();
    let mut public = 0;
    let _d = Daemon::start_with(&sink, |c| {
        public = c.with_public();
        c.set("web", "form_per_ip_per_hour", "3");
    });
    for n in 1..=3 {
        let xff = format!("203.0.113.{n}");
        let (status, text) = post_form(public, &[("X-Forwarded-For", &xff)]);
        assert_eq!(status, 403, "post {n} gets past the allowance: {text}");
    }
    for xff in ["198.51.100.7", "198.51.100.8, 203.0.113.99", "garbage"] {
        let (status, text) = post_form(public, &[("X-Forwarded-For", xff)]);
        assert_eq!(
            status, 429,
            "X-Forwarded-For {xff:?} from 127.0.0.1 (not trusted) bought a new allowance: {text}"
        );
    }
    let (status, _) = post_form(public, &[]);
    assert_eq!(status, 429, "and without the header");
}

/// Behind a proxy on 127.0.0.1 that is trusted, each forwarded client has
/// an allowance of its own; the header's leftmost entry (the client's own
/// writing) does not make a new one, and the proxy's own posts without the
/// header count for the proxy.
#[test]
fn behind_a_trusted_proxy_forwarded_clients_are_counted_apart() {
    let sink = Sink::start();
    let mut public = 0;
    let _d = Daemon::start_with(&sink, |c| {
        public = c.with_public();
        c.set("web", "form_per_ip_per_hour", "2");
        c.set("web", "trusted_proxies", r#"["127.0.0.1", "10.0.0.0/8"]"#);
    });
    for client in ["203.0.113.1", "203.0.113.2"] {
        for n in 1..=2 {
            let (status, text) = post_form(public, &[("X-Forwarded-For", client)]);
            assert_eq!(status, 403, "{client} post {n}: {text}");
        }
        let (status, text) = post_form(public, &[("X-Forwarded-For", client)]);
        assert_eq!(status, 429, "{client}'s third post: {text}");
    }
    // The first client again through a second trusted hop, with an invented
    // address left of it: still the first client, still used up.
    let (status, text) = post_form(
        public,
        &[("X-Forwarded-For", "198.51.100.9, 203.0.113.1, 10.0.0.5")],
    );
    assert_eq!(status, 429, "{text}");
    // A third client has its own allowance.
    let (status, text) = post_form(public, &[("X-Forwarded-For", "2001:db8::3")]);
    assert_eq!(status, 403, "{text}");
    // No header, or one we cannot read: the proxy's own address counts.
    for xff in [None, Some("garbage")] {
        let headers: Vec<(&str, &str)> = xff.map(|v| ("X-Forwarded-For", v)).into_iter().collect();
        let (status, text) = post_form(public, &headers);
        assert_eq!(status, 403, "{xff:?}: {text}");
    }
    // …which is then used up like any other: 127.0.0.1 had two.
    let (status, text) = post_form(public, &[]);
    assert_eq!(status, 429, "{text}");
}

/// `postdesk check` refuses a trusted proxy that is no address or network,
/// naming the key and the entry where it stands.
#[test]
fn check_refuses_a_bad_trusted_proxy_with_its_key() {
    let check = |value: &str| {
        let mut cfg = DaemonConfig::new(free_port());
        cfg.set("web", "trusted_proxies", value);
        let (_dir, path) = write_config(&cfg);
        let out = std::process::Command::new(daemon_bin())
            .args(["check", "-c", path.to_str().unwrap()])
            .output()
            .expect("run postdesk check");
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        (out.status.success(), text)
    };
    let (ok, out) = check(r#"["127.0.0.1", "10.0.0.0/8", "fd00::/8"]"#);
    assert!(ok, "{out}");
    for bad in ["10.0.0.0/33", "10.0.0/8", "proxy.example"] {
        let (ok, out) = check(&format!(r#"["127.0.0.1", "{bad}"]"#));
        assert!(!ok, "{bad}: {out}");
        let want = regex::Regex::new(&format!(
            r#"config\.toml:\d+:\d+: web\.trusted_proxies: "{}""#,
            regex::escape(bad)
        ))
        .unwrap();
        assert!(want.is_match(&out), "{bad}: {out}");
    }
}

/// The chat's conversations per client address take the same answer: a
/// spoofed header from an untrusted peer buys nothing; behind a trusted
/// proxy each forwarded client has its own allowance.
#[test]
fn chat_conversations_per_client_follow_the_same_rule() {
    let run = |trusted: bool| {
        let sink = Sink::start();
        let mut public = 0;
        let d = Daemon::start_with(&sink, |c| {
            public = c.with_public();
            c.rules_files.push((
                "chat.toml".into(),
                "[limits]\nconversations_per_ip_per_day = 2\n\n[[site]]\nid = \"www\"\norigins = [\"http://127.0.0.2:8000\"]\nqueue = \"general\"\n".into(),
            ));
            if trusted {
                c.set("web", "trusted_proxies", r#"["127.0.0.0/8"]"#);
            }
        });
        let start = |n: u32, xff: &str| -> u16 {
            let (status, _, body) = http_request_with(
                public,
                "/chat/start",
                &[
                    ("Origin", "http://127.0.0.2:8000"),
                    ("X-Forwarded-For", xff),
                ],
                &format!(r#"{{"site":"www","address":"v{n}@example.org"}}"#),
            );
            assert!(status == 200 || status == 429, "{status}: {body}");
            status
        };
        let codes: Vec<u16> = (0..4)
            .map(|n| start(n, &format!("203.0.113.{n}")))
            .collect();
        drop(d);
        codes
    };
    assert_eq!(run(false), [200, 200, 429, 429], "untrusted: one client");
    assert_eq!(run(true), [200, 200, 200, 200], "trusted: four clients");
}

/// A JSON POST with extra headers; (status, head, body).
fn http_request_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}
