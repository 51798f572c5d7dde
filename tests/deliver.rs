//! `postdesk deliver` as an MTA's pipe runs it: exit 0 only once the running
//! daemon committed the message; 75 (retry) when the daemon is down; 67 when
//! every recipient is refused.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `postdesk deliver -c CONFIG -f from rcpts…` with `raw` on stdin: (exit code, stderr).
fn deliver(config: &std::path::Path, from: &str, rcpts: &[&str], raw: &[u8]) -> (i32, String) {
    let mut child = Command::new(daemon_bin())
        .arg("deliver")
        .arg("-c")
        .arg(config)
        .args(["-f", from])
        .args(rcpts)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postdesk deliver");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_piped_message_is_committed_before_exit_0_and_retried_when_the_daemon_is_down() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let raw = mail(
        "Erin <erin@customer.example>",
        "Piped in by Postfix",
        "<pipe-1@customer.example>",
        &[],
        "Hello through the pipe.\n",
    );
    let (code, err) = deliver(&d.config_path, "erin@customer.example", &[SUPPORT], &raw);
    assert_eq!(code, 0, "{err}");
    let seq = queued_as(&err).unwrap_or_else(|| panic!("no queued-as in {err:?}"));
    let id = d.ticket_of(seq);
    assert_eq!(d.ticket(&id)["requester"], "erin@customer.example");
    sink.nth_to("erin@customer.example", 1);

    // Every recipient refused: the MTA bounces (67), nothing is stored.
    let (code, err) = deliver(
        &d.config_path,
        "erin@customer.example",
        &["nobody@elsewhere.example"],
        &raw,
    );
    assert_eq!(code, 67, "{err}");

    // The daemon is down: 75, so the MTA keeps the message and tries again.
    d.stop();
    let raw2 = mail(
        "Erin <erin@customer.example>",
        "Second try",
        "<pipe-2@customer.example>",
        &[],
        "Are you there?\n",
    );
    let (code, err) = deliver(&d.config_path, "erin@customer.example", &[SUPPORT], &raw2);
    assert_eq!(code, 75, "{err}");
    // Back up, the retry goes through.
    d.restart();
    let (code, err) = deliver(&d.config_path, "erin@customer.example", &[SUPPORT], &raw2);
    assert_eq!(code, 0, "{err}");
    let seq = queued_as(&err).unwrap_or_else(|| panic!("no queued-as in {err:?}"));
    assert_ne!(d.ticket_of(seq), id);
    assert_eq!(d.tickets_total(), 2);
}
