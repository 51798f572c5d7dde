//! Client addresses on the public listener behind a reverse proxy, through
//! the real binary over HTTP: the per-client allowance of the web form
//! counts the address `X-Forwarded-For` names only when the TCP peer is a
//! `web.trusted_proxies` entry; from anyone else the header is ignored, so
//! a client cannot spread its posts over invented addresses.

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
