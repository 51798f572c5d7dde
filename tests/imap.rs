//! IMAP intake against a real Dovecot (scripts/dovecot-up.sh) and the real
//! postdesk binary, checked through the JSON API and a second IMAP client
//! (Python imaplib, tests/imap_support/imap_tool.py).
//!
//! Needs `dovecot-imapd dovecot-core` and `python3`; without Dovecot every
//! test here prints a loud SKIPPED notice and passes, unless
//! `POSTDESK_REQUIRE_DOVECOT` is set (CI), which turns the skip into a failure.

mod imap_support;

use imap_support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(90);

#[test]
fn append_100_become_100_tickets_and_a_reply_threads() {
    if !dovecot_available("append_100_become_100_tickets_and_a_reply_threads") {
        return;
    }
    let dir = scratch("append100");
    let dov = Dovecot::start(&dir);
    let msgs: Vec<Vec<u8>> = (1..=100).map(|i| mail("bulk", i, "")).collect();
    dov.append("INBOX", &msgs);
    let pd = Postdesk::start(&dir, &imap_table(dov.port, ""));
    wait_until(LONG, "100 tickets", Some(&pd), || pd.ticket_total() == 100);

    let first = pd
        .tickets()
        .into_iter()
        .find(|t| t["subject"] == "bulk question 1")
        .expect("ticket of message 1");
    let id = first["id"].as_str().unwrap_or_default().to_string();
    let reply = "From: Customer 1 <c1@example.org>\r\nTo: support@example.test\r\n\
                 Subject: Re: bulk question 1\r\nMessage-ID: <bulk-reply@example.org>\r\n\
                 In-Reply-To: <bulk-1@example.org>\r\nReferences: <bulk-1@example.org>\r\n\
                 \r\nStill broken.\r\n";
    dov.append("INBOX", &[reply.as_bytes().to_vec()]);
    wait_until(
        Duration::from_secs(30),
        "reply threaded into ticket 1",
        Some(&pd),
        || {
            pd.get(&format!("/api/v1/tickets/{id}"))["messages"]
                .as_array()
                .is_some_and(|m| {
                    m.iter()
                        .any(|m| m["message_id"] == "bulk-reply@example.org")
                })
        },
    );
    assert_eq!(pd.ticket_total(), 100, "the reply made no new ticket");

    let h = pd.health();
    let imap = &h["imap"][0];
    assert_eq!(imap["folder"], "INBOX", "{h}");
    assert_eq!(imap["messages_ingested"], 101, "{h}");
    assert_eq!(imap["connected"], true, "{h}");
    assert!(imap["last_poll"].is_string(), "{h}");
    assert!(imap["last_error"].is_null(), "{h}");
    assert_eq!(h["status"], "ok", "existing health fields stay: {h}");
    // after = "seen" (the default): every message gets \Seen once stored.
    wait_until(
        Duration::from_secs(30),
        "101 messages \\Seen",
        Some(&pd),
        || dov.seen_count("INBOX") == 101,
    );
    assert_eq!(pd.duplicates(), 0);
}

#[test]
fn each_after_mode_does_what_it_says() {
    if !dovecot_available("each_after_mode_does_what_it_says") {
        return;
    }
    let dir = scratch("after");
    let dov = Dovecot::start(&dir);
    for (n, folder) in ["Keep", "Seen", "Move", "Delete"].iter().enumerate() {
        let msgs: Vec<Vec<u8>> = (1..=3)
            .map(|i| mail(&folder.to_lowercase(), n * 10 + i, ""))
            .collect();
        dov.append(folder, &msgs);
    }
    let tables = [
        imap_table(dov.port, "folders = [\"Keep\"]\nafter = \"keep\""),
        imap_table(dov.port, "folders = [\"Seen\"]\nafter = \"seen\""),
        imap_table(dov.port, "folders = [\"Move\"]\nafter = \"move:Done\""),
        imap_table(dov.port, "folders = [\"Delete\"]\nafter = \"delete\""),
    ]
    .concat();
    let pd = Postdesk::start(&dir, &tables);
    wait_until(LONG, "12 tickets", Some(&pd), || pd.ticket_total() == 12);
    wait_until(
        Duration::from_secs(30),
        "after actions applied",
        Some(&pd),
        || {
            dov.list("Seen").len() == 3
                && dov.seen_count("Seen") == 3
                && dov.list("Move").is_empty()
                && dov.list("Done").len() == 3
                && dov.list("Delete").is_empty()
        },
    );
    let keep = dov.list("Keep");
    assert_eq!(keep.len(), 3, "keep leaves the messages: {keep:?}");
    assert_eq!(
        dov.seen_count("Keep"),
        0,
        "keep does not even set \\Seen: {keep:?}"
    );
    // Restarting must not take the kept messages again (the cursor remembers).
    let mut pd = pd;
    let stopped = pd.stop();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "SIGTERM stops the pollers and the daemon cleanly: {stopped:?}"
    );
    pd.spawn();
    wait_until(
        Duration::from_secs(20),
        "all pollers polled after restart",
        Some(&pd),
        || {
            let h = pd.health();
            h["imap"]
                .as_array()
                .is_some_and(|a| a.len() == 4 && a.iter().all(|i| i["last_poll"].is_string()))
        },
    );
    assert_eq!(pd.ticket_total(), 12);
    assert_eq!(pd.duplicates(), 0, "nothing fetched twice after restart");
}

#[test]
fn kill_9_mid_batch_then_restart_stores_every_message_exactly_once() {
    if !dovecot_available("kill_9_mid_batch_then_restart_stores_every_message_exactly_once") {
        return;
    }
    const N: usize = 1500;
    let dir = scratch("kill9");
    let dov = Dovecot::start(&dir);
    for i in 1..=N {
        dov.drop_message("INBOX", &format!("k{i}.eml"), &mail("crash", i, ""));
    }
    let mut pd = Postdesk::start(&dir, &imap_table(dov.port, "batch_size = 20"));
    let start = Instant::now();
    let mut ingested = 0;
    while start.elapsed() < LONG {
        ingested = pd
            .try_get("/api/v1/health")
            .and_then(|(_, h)| h["imap"][0]["messages_ingested"].as_u64())
            .unwrap_or(0);
        if ingested >= 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    pd.kill9();
    assert!(ingested >= 100, "postdesk took nothing before the kill");
    if ingested as usize >= N {
        eprintln!("note: all {N} messages were taken before the kill landed");
    }
    pd.spawn();
    wait_until(LONG, "all messages stored", Some(&pd), || {
        pd.ticket_total() as usize == N
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pd.ticket_total() as usize, N, "no extra tickets");
    assert_eq!(
        pd.duplicates(),
        0,
        "no message was fetched twice (the processor saw no duplicate)"
    );
    // Messages stored but not yet flagged when killed get \Seen after the restart.
    wait_until(
        Duration::from_secs(30),
        "every message \\Seen",
        Some(&pd),
        || dov.seen_count("INBOX") == N,
    );
}

#[test]
fn crash_between_commit_and_flag_stores_once_and_flags_after_restart() {
    if !dovecot_available("crash_between_commit_and_flag_stores_once_and_flags_after_restart") {
        return;
    }
    let dir = scratch("failpoint");
    let dov = Dovecot::start(&dir);
    // The failpoint aborts right after the first IMAP commit, before \Seen is set.
    let mut pd = Postdesk::start_with_env(
        &dir,
        &imap_table(dov.port, "batch_size = 2"),
        &[("POSTDESK_IMAP_CRASH_AFTER_COMMIT", "1")],
    );
    wait_until(
        Duration::from_secs(20),
        "first (empty) poll",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    for i in 1..=5 {
        dov.drop_message("INBOX", &format!("f{i}.eml"), &mail("window", i, ""));
    }
    assert!(
        pd.wait_exit(Duration::from_secs(30)).is_some(),
        "postdesk did not abort at the failpoint\n{}",
        pd.log_tail(20)
    );
    assert_eq!(
        dov.seen_count("INBOX"),
        0,
        "crashed before flagging anything"
    );
    pd.spawn();
    wait_until(LONG, "all 5 messages stored", Some(&pd), || {
        pd.ticket_total() == 5
    });
    wait_until(
        Duration::from_secs(20),
        "every message \\Seen",
        Some(&pd),
        || dov.seen_count("INBOX") == 5,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pd.ticket_total(), 5);
    assert_eq!(
        pd.duplicates(),
        0,
        "the committed batch was not fetched again"
    );
    assert!(
        pd.log().contains("finishing the after action"),
        "{}",
        pd.log_tail(20)
    );
}

#[test]
fn dovecot_restart_during_polling_is_survived() {
    if !dovecot_available("dovecot_restart_during_polling_is_survived") {
        return;
    }
    let dir = scratch("restart");
    let dov = Dovecot::start(&dir);
    for i in 1..=3 {
        dov.drop_message("INBOX", &format!("a{i}.eml"), &mail("before", i, ""));
    }
    let pd = Postdesk::start(&dir, &imap_table(dov.port, ""));
    wait_until(LONG, "3 tickets", Some(&pd), || pd.ticket_total() == 3);
    dov.stop();
    wait_until(
        Duration::from_secs(30),
        "health shows disconnected",
        Some(&pd),
        || pd.health()["imap"][0]["connected"] == false,
    );
    for i in 4..=6 {
        dov.drop_message("INBOX", &format!("a{i}.eml"), &mail("during", i, ""));
    }
    dov.restart();
    for i in 7..=9 {
        dov.drop_message("INBOX", &format!("a{i}.eml"), &mail("after", i, ""));
    }
    wait_until(LONG, "9 tickets after Dovecot came back", Some(&pd), || {
        pd.ticket_total() == 9
    });
    let h = pd.health();
    assert_eq!(h["imap"][0]["connected"], true, "{h}");
    assert_eq!(h["imap"][0]["messages_ingested"], 9, "{h}");
    assert_eq!(pd.duplicates(), 0);
}

#[test]
fn recreated_folder_with_new_uidvalidity_makes_no_duplicates() {
    if !dovecot_available("recreated_folder_with_new_uidvalidity_makes_no_duplicates") {
        return;
    }
    let dir = scratch("uidvalidity");
    let dov = Dovecot::start(&dir);
    let msgs: Vec<Vec<u8>> = (1..=4).map(|i| mail("uv", i, "")).collect();
    dov.append("Support", &msgs);
    let before = dov.tool(&["uidvalidity", "Support"]);
    let pd = Postdesk::start(
        &dir,
        &imap_table(dov.port, "folders = [\"Support\"]\nafter = \"keep\""),
    );
    wait_until(LONG, "4 tickets", Some(&pd), || pd.ticket_total() == 4);

    dov.tool(&["delete", "Support"]);
    let mut again = msgs.clone();
    again.push(mail("uv", 5, ""));
    dov.append("Support", &again);
    let after = dov.tool(&["uidvalidity", "Support"]);
    assert_ne!(
        before, after,
        "Dovecot gave the recreated folder a new UIDVALIDITY"
    );

    wait_until(LONG, "the new message became ticket 5", Some(&pd), || {
        pd.ticket_total() == 5
    });
    wait_until(
        Duration::from_secs(30),
        "the folder was re-read",
        Some(&pd),
        || pd.health()["imap"][0]["messages_ingested"] == 9,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pd.ticket_total(), 5, "re-read messages made no tickets");
    assert_eq!(
        pd.duplicates(),
        4,
        "the 4 re-read messages were dropped as duplicates"
    );
    assert!(
        pd.log().contains("UIDVALIDITY changed"),
        "{}",
        pd.log_tail(20)
    );
}

#[test]
fn idle_turns_new_mail_into_a_ticket_within_seconds() {
    if !dovecot_available("idle_turns_new_mail_into_a_ticket_within_seconds") {
        return;
    }
    let dir = scratch("idle");
    let dov = Dovecot::start(&dir);
    // poll_interval = 300s: only IDLE can be this fast.
    let pd = Postdesk::start(&dir, &imap_table(dov.port, ""));
    wait_until(
        Duration::from_secs(20),
        "first poll done",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    dov.drop_message("INBOX", "idle.eml", &mail("idle", 1, ""));
    wait_until(
        Duration::from_secs(10),
        "ticket via IDLE",
        Some(&pd),
        || pd.ticket_total() == 1,
    );
    eprintln!("IDLE: ticket {:?} after delivery", start.elapsed());
}

#[test]
fn oversized_message_is_quarantined_and_left_on_the_server() {
    if !dovecot_available("oversized_message_is_quarantined_and_left_on_the_server") {
        return;
    }
    let dir = scratch("oversized");
    let dov = Dovecot::start(&dir);
    let big = mail("big", 1, &format!("X-Padding: {}\r\n", "x".repeat(8000)));
    dov.drop_message("INBOX", "1-big.eml", &big);
    dov.drop_message("INBOX", "2-small.eml", &mail("small", 2, ""));
    let pd = Postdesk::start(&dir, &imap_table(dov.port, "max_message_size = 4000"));
    wait_until(LONG, "the small message became a ticket", Some(&pd), || {
        pd.ticket_total() == 1
    });
    let q = pd.get("/api/v1/quarantine");
    assert_eq!(q["total"], 1, "{q}");
    let reason = q["entries"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("above the limit"), "{reason}");
    assert!(reason.contains("INBOX"), "{reason}");
    let entry = &q["entries"][0];
    assert_eq!(entry["from"], "c1@example.org", "{q}");
    assert_eq!(entry["subject"], "big question 1", "{q}");
    wait_until(
        Duration::from_secs(20),
        "the postmaster's notice in the outbox",
        Some(&pd),
        || {
            pd.outbox().iter().any(|m| {
                m.contains("To: <postmaster@example.test>")
                    || m.contains("To: postmaster@example.test")
            })
        },
    );
    let notices: Vec<String> = pd
        .outbox()
        .into_iter()
        .filter(|m| m.contains("postmaster@example.test"))
        .collect();
    assert_eq!(notices.len(), 1, "one notice: {notices:?}");
    assert!(notices[0].contains("big question 1"), "{}", notices[0]);
    assert!(
        notices[0].contains("Auto-Submitted: auto-generated"),
        "{}",
        notices[0]
    );
    wait_until(
        Duration::from_secs(20),
        "small one \\Seen",
        Some(&pd),
        || dov.seen_count("INBOX") == 1,
    );
    let list = dov.list("INBOX");
    assert_eq!(list.len(), 2, "the big one stays on the server: {list:?}");
    // A restart neither fetches nor quarantines it again.
    let mut pd = pd;
    let stopped = pd.stop();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "SIGTERM stops the pollers and the daemon cleanly: {stopped:?}"
    );
    pd.spawn();
    wait_until(
        Duration::from_secs(20),
        "polled after restart",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    assert_eq!(pd.get("/api/v1/quarantine")["total"], 1);
    assert_eq!(dov.seen_count("INBOX"), 1, "the big one is still unread");
    let notices = pd
        .outbox()
        .into_iter()
        .filter(|m| m.contains("postmaster@example.test"))
        .count();
    assert_eq!(notices, 1, "no second notice after the restart");
}

#[test]
fn the_same_message_in_two_folders_is_stored_once() {
    if !dovecot_available("the_same_message_in_two_folders_is_stored_once") {
        return;
    }
    let dir = scratch("twofolders");
    let dov = Dovecot::start(&dir);
    let m = mail("twice", 1, "");
    dov.append("INBOX", std::slice::from_ref(&m));
    dov.append("Archive", std::slice::from_ref(&m));
    let pd = Postdesk::start(
        &dir,
        &imap_table(dov.port, "folders = [\"INBOX\", \"Archive\"]"),
    );
    wait_until(LONG, "both folders taken", Some(&pd), || {
        let h = pd.health();
        h["imap"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|i| i["messages_ingested"] == 1))
    });
    wait_until(Duration::from_secs(10), "processed", Some(&pd), || {
        pd.health()["spool_pending"] == 0
    });
    assert_eq!(pd.ticket_total(), 1);
    assert_eq!(pd.duplicates(), 1);
}

#[test]
fn the_same_message_by_smtp_and_imap_is_stored_once() {
    if !dovecot_available("the_same_message_by_smtp_and_imap_is_stored_once") {
        return;
    }
    let dir = scratch("smtpimap");
    let dov = Dovecot::start(&dir);
    let pd = Postdesk::start(&dir, &imap_table(dov.port, ""));
    let m = mail("both", 1, "");
    let path = dir.join("both.eml");
    std::fs::write(&path, &m).expect("write message");
    let sent = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import smtplib,sys\n\
             s=smtplib.SMTP('127.0.0.1',int(sys.argv[1]),timeout=5)\n\
             s.sendmail('c1@example.org',['support@example.test'],open(sys.argv[2],'rb').read())\n\
             s.quit()",
        )
        .arg(pd.smtp.to_string())
        .arg(&path)
        .output();
    if !sent.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "\n!!!!!!!!!! SKIPPED the_same_message_by_smtp_and_imap_is_stored_once: postdesk's SMTP \
             listener did not accept the message on this branch (not merged yet?): {:?}\n",
            sent.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        );
        return;
    }
    dov.drop_message("INBOX", "both.eml", &m);
    wait_until(LONG, "IMAP copy taken", Some(&pd), || {
        pd.health()["imap"][0]["messages_ingested"] == 1
    });
    wait_until(Duration::from_secs(10), "processed", Some(&pd), || {
        pd.health()["spool_pending"] == 0
    });
    assert_eq!(pd.ticket_total(), 1);
    assert_eq!(pd.duplicates(), 1);
}

#[test]
fn xoauth2_login_through_dovecot_oauth2_passdb() {
    if !dovecot_available("xoauth2_login_through_dovecot_oauth2_passdb") {
        return;
    }
    let dir = scratch("xoauth2");
    let oauth_port = free_port();
    let mut endpoint = std::process::Command::new("python3")
        .arg(repo().join("tests/imap_support/oauth2_introspect.py"))
        .arg(oauth_port.to_string())
        .arg("good-token")
        .arg(USER)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the token endpoint");
    wait_until(Duration::from_secs(10), "token endpoint up", None, || {
        std::net::TcpStream::connect(("127.0.0.1", oauth_port)).is_ok()
    });
    let dov = Dovecot::start_with(
        &dir,
        vec![(
            "OAUTH2_INTROSPECT_URL".into(),
            format!("http://127.0.0.1:{oauth_port}/introspect"),
        )],
    );
    dov.drop_message("INBOX", "o1.eml", &mail("oauth", 1, ""));
    let good = format!(
        "[[imap]]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{USER}\"\n\
         auth = \"xoauth2\"\ntoken_command = [\"echo\", \"good-token\"]\nmailbox = \"support@example.test\"\n",
        dov.port
    );
    let bad = format!(
        "[[imap]]\nname = \"bad-token\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{USER}\"\n\
         auth = \"xoauth2\"\ntoken_command = [\"echo\", \"expired\"]\nfolders = [\"Other\"]\n\
         mailbox = \"support@example.test\"\n",
        dov.port
    );
    let pd = Postdesk::start(&dir, &format!("{good}\n{bad}"));
    wait_until(LONG, "ticket via XOAUTH2", Some(&pd), || {
        pd.ticket_total() == 1
    });
    wait_until(
        Duration::from_secs(20),
        "bad token reported",
        Some(&pd),
        || {
            let h = pd.health();
            h["imap"][1]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("authentication"))
        },
    );
    let h = pd.health();
    assert_eq!(
        h["imap"][0]["connected"], true,
        "one account failing never stops another: {h}"
    );
    assert_eq!(h["imap"][1]["connected"], false, "{h}");
    let _ = endpoint.kill();
    let _ = endpoint.wait();
}

#[test]
fn check_reports_imap_problems_with_positions() {
    let dir = scratch("check");
    let cfg = dir.join("config.toml");
    // `postdesk check -c cfg`: whether it passed, and what it printed.
    let check = |cfg: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_postdesk"))
            .args(["check", "-c"])
            .arg(cfg)
            .output()
            .expect("run postdesk check");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let text = String::from(
        "[server]\nhostname = \"x.test\"\n\n[[mailbox]]\naddress = \"support@example.test\"\n\n\
         [outbound]\nrelay = \"maildir:o\"\nfrom = \"support@example.test\"\n\n[web]\napi_token = \"t\"\n\n\
         [[imap]]\nhost = \"imap.example.org\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\n\
         mailbox = \"support@example.test\"\nafter = \"move:\"\n",
    );
    std::fs::write(&cfg, &text).expect("write config");
    let (ok, stdout) = check(&cfg);
    assert!(!ok, "{stdout}");
    let line = text
        .lines()
        .position(|l| l.starts_with("after"))
        .unwrap_or(0)
        + 1;
    assert!(
        stdout.contains(&format!("config.toml:{line}:")) && stdout.contains("move:FOLDER"),
        "{stdout}"
    );

    let fixed = text.replace("after = \"move:\"\n", "");
    std::fs::write(&cfg, &fixed).expect("write config");
    let (ok, stdout) = check(&cfg);
    assert!(!ok, "{stdout}");
    let line = fixed
        .lines()
        .position(|l| l.starts_with("tls"))
        .unwrap_or(0)
        + 1;
    assert!(
        stdout.contains(&format!("config.toml:{line}:")) && stdout.contains("loopback"),
        "{stdout}"
    );

    // A CA file that holds no certificate is reported where it is named.
    std::fs::write(dir.join("not-a-ca.pem"), "hello\n").expect("write bad CA file");
    let bad_ca = fixed.replace(
        "tls = \"none\"\n",
        "tls = \"implicit\"\nca_file = \"not-a-ca.pem\"\n",
    );
    std::fs::write(&cfg, &bad_ca).expect("write config");
    let (ok, stdout) = check(&cfg);
    assert!(!ok, "{stdout}");
    let line = bad_ca
        .lines()
        .position(|l| l.starts_with("ca_file"))
        .unwrap_or(0)
        + 1;
    assert!(
        stdout.contains(&format!("config.toml:{line}:"))
            && stdout.contains("no usable certificate"),
        "{stdout}"
    );
}

#[test]
fn implicit_tls_and_starttls_with_a_private_ca() {
    if !dovecot_available("implicit_tls_and_starttls_with_a_private_ca") {
        return;
    }
    let dir = scratch("tls");
    let cert = repo().join("fixtures/tls/cert.pem");
    let key = repo().join("fixtures/tls/key.pem");
    let imaps = free_port();
    let dov = Dovecot::start_with(
        &dir,
        vec![
            ("TLS_CERT".into(), cert.display().to_string()),
            ("TLS_KEY".into(), key.display().to_string()),
            ("IMAPS_PORT".into(), imaps.to_string()),
        ],
    );
    dov.drop_message("INBOX", "t1.eml", &mail("tls-implicit", 1, ""));
    dov.append("Support", &[mail("tls-starttls", 2, "")]);
    dov.append("Other", &[mail("tls-untrusted", 3, "")]);
    let account = |name: &str, port: u16, tls: &str, ca: bool, folder: &str| {
        format!(
            "[[imap]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\n{}\
             username = \"{USER}\"\npassword = \"{PASS}\"\nfolders = [\"{folder}\"]\n\
             mailbox = \"support@example.test\"\npoll_interval = \"300s\"\n",
            if ca {
                format!("ca_file = \"{}\"\n", cert.display())
            } else {
                String::new()
            }
        )
    };
    let pd = Postdesk::start(
        &dir,
        &[
            account("implicit", imaps, "implicit", true, "INBOX"),
            account("starttls", dov.port, "starttls", true, "Support"),
            account("untrusted", imaps, "implicit", false, "Other"),
        ]
        .concat(),
    );
    wait_until(LONG, "both trusted accounts delivered", Some(&pd), || {
        pd.ticket_total() == 2
    });
    let h = pd.health();
    for i in 0..2 {
        assert_eq!(h["imap"][i]["connected"], true, "{h}");
        assert_eq!(h["imap"][i]["messages_ingested"], 1, "{h}");
    }
    // Without the CA, the self-signed server is refused: nothing fetched, the reason visible.
    wait_until(
        Duration::from_secs(20),
        "the untrusted account reports its TLS error",
        Some(&pd),
        || pd.health()["imap"][2]["last_error"].is_string(),
    );
    let h = pd.health();
    let err = h["imap"][2]["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("TLS") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_eq!(h["imap"][2]["messages_ingested"], 0, "{h}");
}

#[test]
fn existing_skip_takes_only_mail_that_arrives_later() {
    if !dovecot_available("existing_skip_takes_only_mail_that_arrives_later") {
        return;
    }
    let dir = scratch("existing-skip");
    let dov = Dovecot::start(&dir);
    let old: Vec<Vec<u8>> = (1..=3).map(|i| mail("history", i, "")).collect();
    dov.append("INBOX", &old);
    let mut pd = Postdesk::start(
        &dir,
        &imap_table(dov.port, "existing = \"skip\"\nafter = \"seen\""),
    );
    wait_until(
        Duration::from_secs(20),
        "first poll done",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    assert_eq!(pd.ticket_total(), 0, "the history stays untouched");
    assert_eq!(dov.seen_count("INBOX"), 0, "and unread");
    dov.drop_message("INBOX", "new.eml", &mail("fresh", 1, ""));
    wait_until(LONG, "the new message became a ticket", Some(&pd), || {
        pd.ticket_total() == 1
    });
    // A restart does not skip what arrived while postdesk was down.
    let stopped = pd.stop();
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}");
    dov.drop_message("INBOX", "while-down.eml", &mail("fresh", 2, ""));
    pd.spawn();
    wait_until(
        LONG,
        "the mail from the downtime became a ticket",
        Some(&pd),
        || pd.ticket_total() == 2,
    );
    assert_eq!(
        pd.health()["imap"][0]["messages_ingested"],
        1,
        "{}",
        pd.health()
    );
    assert!(
        pd.log().contains("existing mail left alone"),
        "{}",
        pd.log_tail(20)
    );
}

/// A customer message from 2018: the history of a mailbox added today.
fn old_mail(i: usize) -> Vec<u8> {
    format!(
        "From: Old Customer {i} <old{i}@example.org>\r\n\
         To: support@example.test\r\n\
         Subject: printer question from 2018, {i}\r\n\
         Message-ID: <history-2018-{i}@example.org>\r\n\
         Date: Mon, 15 Jan 2018 10:0{i}:00 +0000\r\n\
         \r\n\
         An old question, number {i}.\r\n"
    )
    .into_bytes()
}

/// A customer message written now.
fn new_mail(tag: &str) -> Vec<u8> {
    let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000");
    format!(
        "From: New Customer <{tag}@example.org>\r\n\
         To: support@example.test\r\n\
         Subject: {tag} question\r\n\
         Message-ID: <{tag}-now@example.org>\r\n\
         Date: {date}\r\n\
         \r\n\
         A new question.\r\n"
    )
    .into_bytes()
}

const HISTORY_DATE: &str = "15-Jan-2018 10:00:00 +0000";

#[test]
fn existing_skip_keeps_skipping_the_history_after_a_uidvalidity_change() {
    if !dovecot_available("existing_skip_keeps_skipping_the_history_after_a_uidvalidity_change") {
        return;
    }
    let dir = scratch("skip-uidvalidity");
    let dov = Dovecot::start(&dir);
    let old: Vec<Vec<u8>> = (1..=3).map(old_mail).collect();
    dov.append_dated("Support", HISTORY_DATE, &old);
    let before = dov.tool(&["uidvalidity", "Support"]);
    let pd = Postdesk::start_acknowledging(
        &dir,
        &imap_table(
            dov.port,
            "folders = [\"Support\"]\nexisting = \"skip\"\nafter = \"seen\"",
        ),
    );
    wait_until(
        Duration::from_secs(20),
        "first poll done",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    assert_eq!(pd.ticket_total(), 0, "the history is skipped");

    // The folder is deleted and recreated (new UIDVALIDITY) with its history
    // and one new message, as a server migration or a restore does.
    dov.tool(&["delete", "Support"]);
    dov.append_dated("Support", HISTORY_DATE, &old);
    dov.append("Support", &[new_mail("fresh")]);
    let after = dov.tool(&["uidvalidity", "Support"]);
    assert_ne!(before, after, "Dovecot gave the folder a new UIDVALIDITY");

    wait_until(LONG, "the new message became a ticket", Some(&pd), || {
        pd.tickets()
            .iter()
            .any(|t| t["subject"] == "fresh question")
    });
    wait_until(Duration::from_secs(20), "processed", Some(&pd), || {
        pd.health()["spool_pending"] == 0
    });
    wait_until(
        Duration::from_secs(20),
        "the new message's acknowledgement in the outbox",
        Some(&pd),
        || pd.outbox().iter().any(|m| m.contains("fresh@example.org")),
    );
    std::thread::sleep(Duration::from_secs(2));
    let subjects: Vec<String> = pd
        .tickets()
        .iter()
        .map(|t| t["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        subjects,
        vec!["fresh question".to_string()],
        "the 2018 history made no tickets after the UIDVALIDITY change"
    );
    let outbox = pd.outbox();
    for i in 1..=3 {
        let addr = format!("old{i}@example.org");
        let about: Vec<&String> = outbox.iter().filter(|m| m.contains(&addr)).collect();
        assert!(
            about.is_empty(),
            "nothing was sent to or about {addr}: {about:?}"
        );
    }
    let about_history: Vec<&String> = outbox.iter().filter(|m| m.contains("from 2018")).collect();
    assert!(
        about_history.is_empty(),
        "no acknowledgement or agent notification about the history: {about_history:?}"
    );
    let acks: Vec<&String> = outbox
        .iter()
        .filter(|m| m.contains("To: <fresh@example.org>") || m.contains("To: fresh@example.org"))
        .collect();
    assert_eq!(
        acks.len(),
        1,
        "the new message is acknowledged once: {outbox:?}"
    );
    // The history stays as it was on the server: unread; the new one is \Seen.
    wait_until(
        Duration::from_secs(20),
        "the new one \\Seen",
        Some(&pd),
        || dov.seen_count("Support") == 1,
    );
    assert_eq!(dov.list("Support").len(), 4);
    assert!(
        pd.log().contains("UIDVALIDITY changed"),
        "{}",
        pd.log_tail(20)
    );
}

#[test]
fn imported_history_becomes_tickets_but_is_never_acknowledged() {
    if !dovecot_available("imported_history_becomes_tickets_but_is_never_acknowledged") {
        return;
    }
    let dir = scratch("history-ack");
    let dov = Dovecot::start(&dir);
    dov.append_dated("INBOX", HISTORY_DATE, &[old_mail(1), old_mail(2)]);
    // existing = "import" (the default): the history is taken on purpose.
    let pd = Postdesk::start_acknowledging(&dir, &imap_table(dov.port, ""));
    wait_until(LONG, "the history became 2 tickets", Some(&pd), || {
        pd.ticket_total() == 2
    });
    wait_until(
        Duration::from_secs(20),
        "first poll done",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    dov.append("INBOX", &[new_mail("later")]);
    wait_until(LONG, "the new message became a ticket", Some(&pd), || {
        pd.ticket_total() == 3
    });
    wait_until(
        Duration::from_secs(20),
        "the new message's acknowledgement in the outbox",
        Some(&pd),
        || {
            pd.outbox()
                .iter()
                .any(|m| m.contains("To: <later@example.org>"))
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let outbox = pd.outbox();
    for i in 1..=2 {
        let to = format!("To: <old{i}@example.org>");
        assert!(
            !outbox.iter().any(|m| m.contains(&to)),
            "no acknowledgement to mail from before the mailbox was added: {outbox:?}"
        );
    }
    for t in pd.tickets() {
        if !t["subject"]
            .as_str()
            .unwrap_or_default()
            .contains("from 2018")
        {
            continue;
        }
        let id = t["id"].as_str().unwrap_or_default().to_string();
        let ticket = pd.get(&format!("/api/v1/tickets/{id}"));
        let events = ticket["events"].as_array().cloned().unwrap_or_default();
        assert!(
            events.iter().any(|e| e["kind"] == "ack_suppressed"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("before its IMAP mailbox was added"))),
            "the ticket says why it was not acknowledged: {ticket}"
        );
    }
}

#[test]
fn catch_up_never_deletes_a_message_whose_body_was_not_stored() {
    if !dovecot_available("catch_up_never_deletes_a_message_whose_body_was_not_stored") {
        return;
    }
    let dir = scratch("catch-up-unstored");
    let dov = Dovecot::start(&dir);
    let big = mail(
        "unstored",
        2,
        &format!("X-Padding: {}\r\n", "x".repeat(8000)),
    );
    dov.drop_message("INBOX", "1.eml", &mail("stored", 1, ""));
    dov.drop_message("INBOX", "2.eml", &big);
    dov.drop_message("INBOX", "3.eml", &mail("stored", 3, ""));
    // One batch: 1 and 3 stored, 2 quarantined; the failpoint aborts right
    // after that commit, before anything is deleted.
    let mut pd = Postdesk::start_with_env(
        &dir,
        &imap_table(dov.port, "after = \"delete\"\nmax_message_size = 4000"),
        &[("POSTDESK_IMAP_CRASH_AFTER_COMMIT", "1")],
    );
    assert!(
        pd.wait_exit(Duration::from_secs(30)).is_some(),
        "postdesk did not abort at the failpoint\n{}",
        pd.log_tail(20)
    );
    assert_eq!(
        dov.list("INBOX").len(),
        3,
        "crashed before deleting anything"
    );
    // The postmaster does what the quarantine notice says: raises the limit
    // and restarts. The catch-up must still not touch message 2: it was
    // never stored (nor will it be: it is below the cursor).
    let config = pd.dir.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(
        &config,
        text.replace("max_message_size = 4000", "max_message_size = 1000000"),
    )
    .expect("write config");
    pd.spawn();
    wait_until(
        Duration::from_secs(30),
        "the stored messages deleted by the catch-up",
        Some(&pd),
        || dov.list("INBOX").len() <= 1,
    );
    wait_until(
        Duration::from_secs(20),
        "polled after restart",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    assert!(
        pd.log().contains("finishing the after action"),
        "{}",
        pd.log_tail(20)
    );
    let left = dov.list("INBOX");
    assert_eq!(
        left.len(),
        1,
        "the quarantined message is still on the server: {left:?}"
    );
    let md = dov.maildir("INBOX");
    let still_there = ["cur", "new"].iter().any(|sub| {
        std::fs::read_dir(md.join(sub)).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|m| m.contains("unstored question 2"))
            })
        })
    });
    assert!(still_there, "the one left is the quarantined one");
    assert_eq!(pd.ticket_total(), 2);
    assert_eq!(pd.get("/api/v1/quarantine")["total"], 1);
}

#[test]
fn history_left_alone_after_a_uidvalidity_change_survives_a_crash_and_catch_up() {
    if !dovecot_available(
        "history_left_alone_after_a_uidvalidity_change_survives_a_crash_and_catch_up",
    ) {
        return;
    }
    let dir = scratch("skip-crash");
    let dov = Dovecot::start(&dir);
    let old: Vec<Vec<u8>> = (1..=3).map(old_mail).collect();
    dov.append_dated("Support", HISTORY_DATE, &old);
    let mut pd = Postdesk::start(
        &dir,
        &imap_table(
            dov.port,
            "folders = [\"Support\"]\nexisting = \"skip\"\nafter = \"delete\"",
        ),
    );
    wait_until(
        Duration::from_secs(20),
        "first poll done",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    let stopped = pd.stop();
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}");
    dov.tool(&["delete", "Support"]);
    dov.append_dated("Support", HISTORY_DATE, &old);
    dov.append("Support", &[new_mail("crashed")]);
    // The re-read batch (history left alone, the new one stored) is
    // committed, then the process aborts before deleting anything.
    pd.spawn_with(&[("POSTDESK_IMAP_CRASH_AFTER_COMMIT", "1")]);
    assert!(
        pd.wait_exit(Duration::from_secs(30)).is_some(),
        "postdesk did not abort at the failpoint\n{}",
        pd.log_tail(20)
    );
    assert_eq!(
        dov.list("Support").len(),
        4,
        "nothing deleted before the crash"
    );
    pd.spawn();
    wait_until(
        Duration::from_secs(30),
        "the stored message deleted by the catch-up",
        Some(&pd),
        || dov.list("Support").len() <= 3,
    );
    wait_until(
        Duration::from_secs(20),
        "polled after restart",
        Some(&pd),
        || pd.health()["imap"][0]["last_poll"].is_string(),
    );
    assert!(
        pd.log().contains("finishing the after action"),
        "{}",
        pd.log_tail(20)
    );
    assert_eq!(
        dov.list("Support").len(),
        3,
        "the history is still on the server"
    );
    let subjects: Vec<Value> = pd.tickets().iter().map(|t| t["subject"].clone()).collect();
    assert_eq!(subjects, vec![Value::from("crashed question")]);
}

/// `password_file = "credential:imap-password"` (systemd's `LoadCredential=`):
/// the poller logs in with the password from `$CREDENTIALS_DIRECTORY`.
#[test]
fn the_imap_password_comes_from_a_systemd_credential() {
    if !dovecot_available("the_imap_password_comes_from_a_systemd_credential") {
        return;
    }
    let dir = scratch("imapcred");
    let dov = Dovecot::start(&dir);
    dov.append("INBOX", &[mail("credential", 1, "")]);
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("imap-password"), format!("{PASS}\n")).unwrap();
    let table = format!(
        "[[imap]]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{USER}\"\n\
         password_file = \"credential:imap-password\"\nmailbox = \"support@example.test\"\n\
         poll_interval = \"300s\"\n",
        dov.port
    );
    let creds_dir = creds.to_string_lossy().into_owned();
    let pd = Postdesk::start_with_env(&dir, &table, &[("CREDENTIALS_DIRECTORY", &creds_dir)]);
    wait_until(LONG, "the message as a ticket", Some(&pd), || {
        pd.ticket_total() == 1
    });
    assert_eq!(pd.tickets()[0]["subject"], "credential question 1");
}
