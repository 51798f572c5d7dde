use super::*;

#[test]
fn uid_sets_are_compressed_ranges() {
    assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
    assert_eq!(uid_set(&[5]), "5");
    assert_eq!(uid_set(&[3, 1, 2, 2]), "1:3");
    assert_eq!(
        uid_set(&[u32::MAX - 1, u32::MAX]),
        format!("{}:{}", u32::MAX - 1, u32::MAX)
    );
    assert_eq!(uid_set(&[]), "");
}

#[test]
fn envelope_sender_prefers_return_path() {
    let raw = b"Return-Path: <bounce@lists.example.org>\r\nFrom: Ann <ann@example.org>\r\n\r\nbody";
    assert_eq!(envelope_sender(raw), "bounce@lists.example.org");
    let bounce = b"Return-Path: <>\r\nFrom: MAILER-DAEMON@example.org\r\n\r\nx";
    assert_eq!(envelope_sender(bounce), "", "null sender stays null");
    let folded = b"From: \"Doe,\r\n John\" <john@example.org>\nSubject: x\n\nReturn-Path: <no@x>";
    assert_eq!(
        envelope_sender(folded),
        "john@example.org",
        "only headers count"
    );
    assert_eq!(envelope_sender(b"Subject: no sender\r\n\r\n"), "");
    assert_eq!(envelope_sender(b"\xff\xfe garbage"), "");
}

#[test]
fn xoauth2_initial_response_and_error_acknowledgement() {
    use async_imap::Authenticator;
    assert_eq!(
        conn::xoauth2("u@example.org", "tok"),
        b"user=u@example.org\x01auth=Bearer tok\x01\x01".to_vec()
    );
    let mut a = conn::OneShot::new(b"first".to_vec());
    assert_eq!(a.process(b""), b"first".to_vec());
    // The server's JSON error challenge is answered with an empty line.
    assert_eq!(a.process(b"{\"status\":\"401\"}"), Vec::<u8>::new());
}

#[test]
fn registry_snapshots_in_config_order() {
    let r = ImapRegistry::default();
    let a = r.add("acct".into(), "INBOX".into());
    let b = r.add("acct".into(), "Sales".into());
    r.update(b, |s| s.messages_ingested += 3);
    r.update(a, |s| s.connected = true);
    let snap = r.snapshot();
    assert_eq!(snap.len(), 2);
    assert!(snap[0].connected && !snap[1].connected);
    assert_eq!(snap[1].messages_ingested, 3);
}
