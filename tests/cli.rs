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

#[test]
fn hash_password_makes_a_hash_that_check_accepts_and_a_bad_one_is_refused() {
    use std::io::Write;
    let mut child = Command::new(daemon_bin())
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run postdesk hash-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(postdesk::password::verify(
        "correct horse battery",
        Some(&hash)
    ));
    assert!(!postdesk::password::verify("correct horse", Some(&hash)));

    // A good hash in agents.toml passes check; a plain password is refused at its position.
    let (dir, path) = write_config(&DaemonConfig::new(free_port()));
    let agents = dir.path.join("rules").join("agents.toml");
    let text = std::fs::read_to_string(&agents).unwrap();
    let with = |h: &str| {
        text.replacen(
            "[[agent]]\nname = \"alice\"",
            &format!("[[agent]]\nname = \"alice\"\npassword_hash = {}", q(h)),
            1,
        )
    };
    assert_ne!(with(&hash), text, "rules/agents.toml starts with alice");
    std::fs::write(&agents, with(&hash)).unwrap();
    let (ok, out) = postdesk(&["check", "-c", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    std::fs::write(&agents, with("hunter2")).unwrap();
    let (ok, out) = postdesk(&["check", "-c", path.to_str().unwrap()]);
    assert!(!ok, "a plain password passed check:\n{out}");
    let re = regex::Regex::new(r"agents\.toml:\d+:\d+: password_hash of agent").unwrap();
    assert!(re.is_match(&out), "{out}");
}
