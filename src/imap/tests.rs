use super::*;
use crate::process::parse::envelope_sender;

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

/// A store in a fresh temporary directory (removed by the caller).
fn temp_store(name: &str) -> (Store, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "postdesk-imap-test-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    (Store::open(&dir).expect("open store"), dir)
}

#[test]
fn first_sighting_is_recorded_once_and_survives_a_uidvalidity_change() {
    let (store, dir) = temp_store("first-seen");
    let key = "u@h:143/INBOX";
    assert_eq!(store.imap_first_seen(key, 7, 1000).unwrap(), 1000);
    assert_eq!(
        store.imap_first_seen(key, 7, 2000).unwrap(),
        1000,
        "a later connect keeps the first sighting"
    );
    store.reset_imap_state(key, 8, 42).unwrap();
    let st = store.imap_state(key).unwrap().unwrap();
    assert_eq!(
        (st.uidvalidity, st.first_seen, st.history_upto),
        (8, 1000, 42)
    );
    assert_eq!(store.imap_first_seen(key, 8, 3000).unwrap(), 1000);

    // A folder polled before first sightings were recorded gets one only
    // while its UIDVALIDITY is the one it had.
    let legacy = "u@h:143/Old";
    store
        .write(|tx| {
            tx.advance_imap_cursor(&ImapCursor {
                key: legacy.into(),
                uidvalidity: 5,
                uid: 10,
                stored: vec![],
            })
        })
        .unwrap();
    assert_eq!(store.imap_first_seen(legacy, 6, 4000).unwrap(), 0);
    assert_eq!(store.imap_first_seen(legacy, 5, 4000).unwrap(), 4000);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn only_stored_uids_await_the_after_action() {
    let (store, dir) = temp_store("unacted");
    let key = "u@h:143/INBOX";
    let commit = |uid, stored: Vec<u32>| {
        store.write(|tx| {
            tx.advance_imap_cursor(&ImapCursor {
                key: key.into(),
                uidvalidity: 7,
                uid,
                stored,
            })
        })
    };
    // UIDs 1..=5: 2 had no body in the FETCH answer, 4 was too large.
    commit(5, vec![1, 3, 5]).unwrap();
    let st = store.imap_state(key).unwrap().unwrap();
    assert_eq!((st.last_uid, st.acted_uid), (5, 0));
    assert_eq!(st.unacted, vec![1, 3, 5], "catch-up may touch only these");
    // A second commit before the after action (a lost connection) adds to them.
    commit(8, vec![7]).unwrap();
    assert_eq!(
        store.imap_state(key).unwrap().unwrap().unacted,
        vec![1, 3, 5, 7]
    );
    store.imap_acted(key, 7, 5).unwrap();
    assert_eq!(store.imap_state(key).unwrap().unwrap().unacted, vec![7]);
    store.imap_acted(key, 7, 8).unwrap();
    let st = store.imap_state(key).unwrap().unwrap();
    assert!(st.unacted.is_empty());
    assert_eq!(st.acted_uid, 8);
    // A new UIDVALIDITY forgets the old UIDs.
    commit(9, vec![9]).unwrap();
    store.reset_imap_state(key, 8, 0).unwrap();
    assert!(store.imap_state(key).unwrap().unwrap().unacted.is_empty());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn history_is_only_what_arrived_before_the_first_sighting_in_the_reread_range() {
    let sel = Selected {
        uidvalidity: 8,
        first_seen: 1000,
        history_upto: 3,
    };
    let at = |d: Option<i64>| UidMeta {
        size: 10,
        internal_date: d,
    };
    assert!(sel.is_history(2, Some(&at(Some(999)))));
    assert!(
        !sel.is_history(2, Some(&at(Some(1000)))),
        "arrived at the sighting"
    );
    assert!(
        !sel.is_history(4, Some(&at(Some(10)))),
        "above the re-read range"
    );
    assert!(
        !sel.is_history(2, Some(&at(None))),
        "no INTERNALDATE: taken"
    );
    assert!(
        !sel.is_history(2, None),
        "no FETCH answer: taken (or vanished)"
    );
    let unknown = Selected {
        first_seen: 0,
        ..sel
    };
    assert!(!unknown.is_history(2, Some(&at(Some(10)))));
}
