//! DKIM signing, end to end: keys made by `postdesk dkim-keygen`, mail sent by the real
//! daemon to the aiosmtpd sink, and the signature checked by dkimpy (an independent
//! implementation) with the TXT record that `dkim-keygen` printed, given to it through
//! its `dnsfunc` hook instead of DNS. Altered mail must fail the same check.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const CUSTOMER: &str = "alice@customer.example";

/// Runs `postdesk dkim-keygen` into `dir`; returns the key file and the TXT record's text
/// (the zone line's strings joined, as a resolver hands them over).
fn keygen(dir: &Path, selector: &str, algorithm: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{selector}.pem"));
    let out = Command::new(daemon_bin())
        .args([
            "dkim-keygen",
            "--selector",
            selector,
            "--domain",
            "example.test",
            "--algorithm",
            algorithm,
            "--key-file",
        ])
        .arg(&key)
        .output()
        .expect("run postdesk dkim-keygen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dkim-keygen failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("PRIVATE KEY"),
        "with --key-file the key must not be printed:\n{stdout}"
    );
    let zone = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.example.test. IN TXT (")))
        .unwrap_or_else(|| panic!("no zone line in:\n{stdout}"));
    let strings: Vec<&str> = zone.split('"').skip(1).step_by(2).collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{zone}");
    (key, strings.concat())
}

fn dkim_table(selectors: &[(&str, &Path)]) -> String {
    let mut t = String::from("\n[dkim]\n");
    for (name, key) in selectors {
        t.push_str(&format!(
            "[[dkim.selector]]\nname = {}\nkey_file = {}\n",
            q(name),
            q(&key.to_string_lossy())
        ));
    }
    t
}

/// dkimpy's verdict on `raw`, with `records` as the only DNS it sees.
fn verify(dir: &Path, raw: &[u8], records: &[(&str, &str)]) -> Value {
    let file = dir.join("verify.eml");
    std::fs::write(&file, raw).unwrap();
    let out = Command::new(python())
        .arg(peer_script("dkim_verify.py"))
        .arg(&file)
        .args(
            records
                .iter()
                .map(|(sel, txt)| format!("{sel}._domainkey.example.test={txt}")),
        )
        .output()
        .expect("run dkim_verify.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "dkim_verify.py said no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Sends a new customer mail and returns the acknowledgement the sink received.
fn acknowledgement(d: &Daemon, sink: &Sink, n: usize, msgid: &str) -> Vec<u8> {
    let raw = mail(
        &format!("Alice Customer <{CUSTOMER}>"),
        "Printer on fire",
        msgid,
        &[],
        "It smokes.\n",
    );
    d.send_ok(CUSTOMER, &[SUPPORT], &raw);
    sink.nth_to(CUSTOMER, n)
}

/// Replaces the first `from` after the header block with `to`.
fn alter_body(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let start = find(raw, b"\n\n")
        .or_else(|| find(raw, b"\r\n\r\n"))
        .expect("header/body separator");
    let at = start + find(&raw[start..], from.as_bytes()).expect("text to alter");
    let mut out = raw[..at].to_vec();
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&raw[at + from.len()..]);
    out
}

/// The message with one word of its body in capitals.
fn alter_a_body_word(raw: &[u8]) -> Vec<u8> {
    let body = body_text(raw);
    let word = body
        .split_whitespace()
        .find(|w| w.len() > 3 && w.chars().all(|c| c.is_ascii_lowercase()))
        .expect("a word in the body")
        .to_string();
    alter_body(raw, &word, &word.to_uppercase())
}

#[test]
fn acknowledgements_are_signed_rsa_and_dkimpy_verifies_them_but_not_altered_copies() {
    let keys = TempDir::new("dkim-rsa");
    let (key, txt) = keygen(&keys.path, "pd1", "rsa");
    assert!(txt.starts_with("v=DKIM1; k=rsa; p=MII"), "{txt}");
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| c.extra.push_str(&dkim_table(&[("pd1", &key)])));

    let ack = acknowledgement(&d, &sink, 1, "<dkim-rsa-1@customer.example>");
    let sig =
        header(&ack, "DKIM-Signature").expect("the acknowledgement carries no DKIM-Signature");
    assert!(sig.contains("a=rsa-sha256"), "{sig}");
    let v = verify(&keys.path, &ack, &[("pd1", &txt)]);
    assert_eq!(
        v["verified"], true,
        "dkimpy did not verify our signature: {v}"
    );
    assert_eq!(v["domain"], "example.test", "{v}");
    assert_eq!(v["selector"], "pd1", "{v}");

    // One word of the body changed: the body hash no longer matches.
    let altered = alter_a_body_word(&ack);
    let v = verify(&keys.path, &altered, &[("pd1", &txt)]);
    assert_eq!(v["verified"], false, "an altered body verified: {v}");

    // A header we sign changed on the way.
    let subject = header(&ack, "Subject").unwrap();
    let altered = String::from_utf8_lossy(&ack)
        .replacen(&subject, &format!("{subject} (urgent)"), 1)
        .into_bytes();
    assert_ne!(altered, ack);
    let v = verify(&keys.path, &altered, &[("pd1", &txt)]);
    assert_eq!(v["verified"], false, "an altered Subject verified: {v}");

    // A Reply-To added on the way (absent headers are signed as absent).
    let pos = find(&ack, b"Subject:").unwrap();
    let mut added = ack[..pos].to_vec();
    added.extend_from_slice(b"Reply-To: attacker@evil.example\n");
    added.extend_from_slice(&ack[pos..]);
    let v = verify(&keys.path, &added, &[("pd1", &txt)]);
    assert_eq!(v["verified"], false, "an added Reply-To verified: {v}");

    // Another key published under our selector: the signature is ours only.
    let (_, other_txt) = keygen(&keys.path, "other", "rsa");
    let v = verify(&keys.path, &ack, &[("pd1", &other_txt)]);
    assert_eq!(
        v["verified"], false,
        "verified against someone else's key: {v}"
    );
}

#[test]
fn ed25519_signatures_verify_with_dkimpy() {
    let keys = TempDir::new("dkim-ed");
    let (key, txt) = keygen(&keys.path, "ed1", "ed25519");
    assert!(txt.starts_with("v=DKIM1; k=ed25519; p="), "{txt}");
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| c.extra.push_str(&dkim_table(&[("ed1", &key)])));
    let ack = acknowledgement(&d, &sink, 1, "<dkim-ed-1@customer.example>");
    let v = verify(&keys.path, &ack, &[("ed1", &txt)]);
    assert_eq!(
        v["verified"], true,
        "dkimpy did not verify our Ed25519 signature: {v}"
    );
    assert_eq!(v["algorithm"], "ed25519-sha256", "{v}");
    let altered = alter_a_body_word(&ack);
    let v = verify(&keys.path, &altered, &[("ed1", &txt)]);
    assert_eq!(v["verified"], false, "an altered body verified: {v}");

    // An agent's reply (through the API) is signed as well.
    let id = header(&ack, "Subject")
        .and_then(|s| {
            let at = s.find("[#")? + 2;
            Some(s[at..at + s[at..].find(']')?].to_string())
        })
        .expect("ticket tag in the acknowledgement's subject");
    let reply = serde_json::json!({"agent": "alice", "body": "Pull the plug first."});
    let (code, _, body) = http_request(
        d.web_port,
        "POST",
        &format!("/api/v1/tickets/{id}/reply"),
        Some(API_TOKEN),
        Some(&reply.to_string()),
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let relayed = sink.nth_to(CUSTOMER, 2);
    assert!(body_text(&relayed).contains("Pull the plug first."));
    let v = verify(&keys.path, &relayed, &[("ed1", &txt)]);
    assert_eq!(v["verified"], true, "the agent's reply is not signed: {v}");

    // `postdesk check` shows the record the key needs, to compare with DNS.
    let out = Command::new(daemon_bin())
        .args(["check", "-c"])
        .arg(&d.config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("dkim: ed1._domainkey.example.test (signs): {txt}")),
        "{text}"
    );
}

/// Mail queued while the relay is down waits through a key rotation (a restart with a new
/// first selector) and leaves signed with the new key: signing happens when it is sent.
#[test]
fn queued_mail_is_signed_with_the_key_active_when_it_leaves() {
    let keys = TempDir::new("dkim-rotate");
    let (old, old_txt) = keygen(&keys.path, "old", "ed25519");
    let (new, new_txt) = keygen(&keys.path, "new", "ed25519");
    let mut sink = Sink::start();
    let mut d = Daemon::start_with(&sink, |c| c.extra.push_str(&dkim_table(&[("old", &old)])));
    let first = acknowledgement(&d, &sink, 1, "<dkim-rot-1@customer.example>");
    assert_eq!(
        verify(&keys.path, &first, &[("old", &old_txt)])["selector"],
        "old"
    );

    sink.stop();
    let raw = mail(
        &format!("Alice Customer <{CUSTOMER}>"),
        "Second problem",
        "<dkim-rot-2@customer.example>",
        &[],
        "Now the scanner.\n",
    );
    d.send_ok(CUSTOMER, &[SUPPORT], &raw);
    d.wait_processed(SECS_30);
    d.stop();
    // Rotate: the new key first, the old one kept (still published).
    let config = std::fs::read_to_string(&d.config_path).unwrap();
    let rotated = config.replace(
        &dkim_table(&[("old", &old)]),
        &dkim_table(&[("new", &new), ("old", &old)]),
    );
    assert_ne!(rotated, config);
    std::fs::write(&d.config_path, rotated).unwrap();
    sink.start_again();
    d.restart();

    let second = sink.nth_to(CUSTOMER, 2);
    let v = verify(&keys.path, &second, &[("new", &new_txt), ("old", &old_txt)]);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(
        v["selector"], "new",
        "queued mail was not signed with the new key: {v}"
    );
}

#[test]
fn check_refuses_a_config_naming_a_broken_key() {
    let mut cfg = DaemonConfig::new(free_port());
    let keys = TempDir::new("dkim-check");
    let bad = keys.path.join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    cfg.extra.push_str(&dkim_table(&[("pd1", &bad)]));
    let (_dir, path) = write_config(&cfg);
    let out = Command::new(daemon_bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "check accepted a broken DKIM key:\n{text}"
    );
    assert!(text.contains("bad.pem"), "{text}");
    assert!(
        regex::Regex::new(r"config\.toml:\d+:\d+: ")
            .unwrap()
            .is_match(&text),
        "{text}"
    );
}
