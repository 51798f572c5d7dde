//! The customers' listener (`web.public_listen`): its own port, its own pages, nothing of the
//! agents' view or the API on it, the security headers on every answer.

mod common;
use common::*;

fn head_has(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[test]
fn public_listener_serves_customer_pages_and_nothing_of_the_agents() {
    let sink = Sink::start();
    let mut public_port = 0;
    let d = Daemon::start_with(&sink, |c| public_port = c.with_public());

    let (status, head, body) = http_request(public_port, "GET", "/", None, None).unwrap();
    assert_eq!(status, 200, "{head}");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("/new"),
        "the landing page links the form: {body}"
    );
    let csp = head_has(&head, "content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(
        head_has(&head, "x-content-type-options").as_deref(),
        Some("nosniff")
    );

    // The agents' pages and the API are not on the public port, with or without a token.
    for path in [
        "/login",
        "/tickets/1",
        "/api/v1/health",
        "/api/v1/tickets",
        "/metrics",
    ] {
        let (status, head, _) =
            http_request(public_port, "GET", path, Some(API_TOKEN), None).unwrap();
        assert_eq!(status, 404, "{path} on the public port: {head}");
        assert!(
            head_has(&head, "content-security-policy").is_some(),
            "{path}: {head}"
        );
    }
    // The agents' listener still serves them.
    let (status, _) = http_get(d.web_port, "/api/v1/health", Some(API_TOKEN)).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn no_public_listener_unless_configured() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let (status, _) = http_get(d.web_port, "/api/v1/health", Some(API_TOKEN)).unwrap();
    assert_eq!(status, 200);
    // The landing page is not on the agents' port either: "/" there is the agents' queue.
    let (status, head, _) = http_request(d.web_port, "GET", "/", None, None).unwrap();
    assert_ne!(status, 200, "the queue needs a login: {head}");
}

#[test]
fn check_refuses_a_public_listener_on_the_agents_port() {
    let mut cfg = DaemonConfig::new(free_port());
    let web = format!("127.0.0.1:{}", cfg.web_port);
    cfg.set("web", "public_listen", &q(&web));
    let (_dir, path) = write_config(&cfg);
    let out = std::process::Command::new(daemon_bin())
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("web.public_listen must differ"), "{text}");
}
