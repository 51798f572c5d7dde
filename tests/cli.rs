//! The stable command line (DESIGN.md): `postdesk check`, `postdesk serve` with a bad config,
//! `postdesk rules test`.

mod common;
use common::*;
use std::process::Command;

fn postdesk(args: &[&str]) -> (bool, String) {
    let out = Command::new(daemon_bin())
        .args(args)
        .output()
        .expect("run postdesk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_accepts_the_test_config() {
    let (_dir, path) = write_config(&DaemonConfig::new(free_port()));
    let (ok, out) = postdesk(&["check", "-c", path.to_str().unwrap()]);
    assert!(ok, "postdesk check failed on a valid config:\n{out}");
}

#[test]
fn check_and_serve_reject_a_bad_config_with_file_line_column() {
    let mut cfg = DaemonConfig::new(free_port());
    cfg.set("smtp", "max_message_size", "\"huge\"");
    let (_dir, path) = write_config(&cfg);
    let p = path.to_str().unwrap();
    let (ok, out) = postdesk(&["check", "-c", p]);
    assert!(!ok, "postdesk check accepted a bad config:\n{out}");
    let re = regex::Regex::new(r"config\.toml:\d+:\d+: ").unwrap();
    assert!(re.is_match(&out), "no file:line:column diagnostic:\n{out}");
    let (ok, out) = postdesk(&["serve", "-c", p]);
    assert!(!ok, "postdesk serve started with a bad config:\n{out}");
    assert!(
        re.is_match(&out),
        "serve should print the diagnostic:\n{out}"
    );
}

#[test]
fn rules_test_reports_on_a_message_without_changing_anything() {
    let (dir, path) = write_config(&DaemonConfig::new(free_port()));
    let eml = dir.path.join("m.eml");
    std::fs::write(
        &eml,
        mail(
            "Alice <alice@customer.example>",
            "Refund for invoice 42",
            "<r-1@customer.example>",
            &[],
            "I was charged twice.\n",
        ),
    )
    .unwrap();
    let (ok, out) = postdesk(&[
        "rules",
        "test",
        "-c",
        path.to_str().unwrap(),
        eml.to_str().unwrap(),
    ]);
    assert!(ok, "postdesk rules test failed:\n{out}");
    assert!(
        out.to_ascii_lowercase().contains("queue"),
        "rules test output names no queue:\n{out}"
    );
    assert!(
        !dir.path.join("data").exists(),
        "rules test must not create or change the store"
    );
}
