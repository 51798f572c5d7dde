//! `/metrics` in Prometheus text format, behind the bearer token, parsed by
//! the reference Python parser (prometheus_client).

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn metrics_parse_with_a_real_prometheus_parser_and_need_the_token() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let raw = mail(
        "Fay <fay@customer.example>",
        "Metrics please",
        "<metrics-1@customer.example>",
        &[],
        "Hi\n",
    );
    d.ticket_of(d.send_ok("fay@customer.example", &[SUPPORT], &raw));
    let refused = d.send("fay@customer.example", &["nobody@elsewhere.example"], &raw);
    assert_ne!(refused.code, Some(250), "{refused:?}");
    d.wait_idle(SECS_30);
    let (code, _) = d.api_get_as("/metrics", None);
    assert_eq!(code, 401);
    let (code, body) = d.api_get_raw("/metrics");
    assert_eq!(code, 200);
    let mut child = Command::new(python())
        .arg(peer_script("parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text:\n{}\n{}",
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let value = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|s| s["name"] == name && label.is_none_or(|(k, v)| s["labels"][k] == v))
            .and_then(|s| s["value"].as_f64())
            .unwrap_or_else(|| panic!("no {name} {label:?} in {samples:?}"))
    };
    assert_eq!(value("postdesk_store_ok", None), 1.0);
    assert_eq!(value("postdesk_spool_pending", None), 0.0);
    assert_eq!(value("postdesk_outbound_queued", None), 0.0);
    assert_eq!(value("postdesk_tickets", Some(("status", "new"))), 1.0);
    assert_eq!(
        value("postdesk_smtp_messages_total", Some(("result", "accepted"))),
        1.0
    );
    assert_eq!(value("postdesk_smtp_recipients_refused_total", None), 1.0);
    assert_eq!(
        value(
            "postdesk_outbound_attempts_total",
            Some(("result", "delivered"))
        ),
        1.0,
        "the acknowledgement"
    );
    assert!(value("postdesk_store_bytes", None) > 0.0);
    assert_eq!(
        value("postdesk_sla_fired_total", Some(("level", "breach"))),
        0.0
    );
    // The one message spooled since start was processed: one observation, in every bucket
    // from some bound on, and in +Inf.
    assert_eq!(
        value("postdesk_processing_latency_seconds_count", None),
        1.0
    );
    assert_eq!(
        value(
            "postdesk_processing_latency_seconds_bucket",
            Some(("le", "+Inf"))
        ),
        1.0
    );
    assert_eq!(
        value(
            "postdesk_processing_latency_seconds_bucket",
            Some(("le", "60"))
        ),
        1.0,
        "processed within a minute"
    );
    assert!(value("postdesk_processing_latency_seconds_sum", None) > 0.0);
}
