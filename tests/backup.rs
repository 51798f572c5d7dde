//! `postdesk backup` through the running daemon while mail keeps arriving,
//! and `postdesk restore` into an empty data directory: every message the
//! daemon had accepted before the backup began is in the restored store,
//! byte for byte, with its ticket; the restored daemon takes new mail.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn customer_mail(n: usize, phase: &str) -> Vec<u8> {
    mail(
        &format!("c{n}@customer.example"),
        &format!("Backup {phase} {n}"),
        &format!("<backup-{phase}-{n}@customer.example>"),
        &[],
        &format!("Message {n} ({phase}).\n"),
    )
}

#[test]
fn a_backup_under_intake_load_restores_every_message_accepted_before_it() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let mut before = Vec::new();
    for n in 0..15 {
        let from = format!("c{n}@customer.example");
        before.push(d.send_ok(&from, &[SUPPORT], &customer_mail(n, "before")));
    }

    let backup_dir = TempDir::new("backup");
    let file = backup_dir.path.join("postdesk.backup");
    let file_arg = file.to_string_lossy().into_owned();
    let stop = AtomicBool::new(false);
    let (ok, out, during) = std::thread::scope(|scope| {
        // Intake goes on while the backup is taken.
        let load = scope.spawn(|| {
            let mut n = 100;
            let mut accepted = 0;
            while !stop.load(Ordering::SeqCst) {
                let from = format!("c{n}@customer.example");
                if d.send(&from, &[SUPPORT], &customer_mail(n, "during")).code == Some(250) {
                    accepted += 1;
                }
                n += 1;
            }
            accepted
        });
        std::thread::sleep(Duration::from_millis(300));
        let (ok, out) = postdesk_cli(&["backup", &file_arg], &d.config_path);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        (ok, out, load.join().unwrap())
    });
    assert!(ok, "postdesk backup failed: {out}\n{}", d.log_tail(20));
    assert!(out.starts_with("ok:"), "{out}");
    assert!(during > 0, "no mail arrived during the backup");
    // No partial or temporary file is left behind, next to the backup or the store.
    let leftovers = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial") || n.starts_with(".backup-"))
            .collect::<Vec<_>>()
    };
    assert_eq!(leftovers(&backup_dir.path), Vec::<String>::new());
    assert_eq!(leftovers(&d.dir.path.join("data")), Vec::<String>::new());
    // A second backup never overwrites the first.
    let (ok, out) = postdesk_cli(&["backup", &file_arg], &d.config_path);
    assert!(!ok && out.contains("already exists"), "{out}");

    // Restore into an empty data directory, and run a daemon on it.
    let restored_data = TempDir::new("restored");
    let mut cfg = DaemonConfig::new(sink.port);
    cfg.set(
        "server",
        "data_dir",
        &q(&restored_data.path.join("data").to_string_lossy()),
    );
    let (_cfg_dir, cfg_path) = write_config(&cfg);
    let (ok, out) = postdesk_cli(&["restore", &file_arg], &cfg_path);
    assert!(ok, "postdesk restore failed: {out}");
    // Never over an existing store.
    let (ok, out) = postdesk_cli(&["restore", &file_arg], &cfg_path);
    assert!(!ok && out.contains("already holds a store"), "{out}");

    d.wait_processed(Duration::from_secs(60));
    let r = Daemon::with_config(cfg);
    for seq in &before {
        let (st, original) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
        assert_eq!(st, 200);
        let (st, copy) = r.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
        assert_eq!(st, 200, "message {seq} missing after restore");
        assert_eq!(copy, original, "message {seq} differs after restore");
        assert_eq!(
            r.ticket(&r.ticket_of(*seq))["subject"],
            d.ticket(&d.ticket_of(*seq))["subject"]
        );
    }
    assert!(r.tickets_total() >= before.len() as u64);
    // The restored daemon takes new mail (its sequence numbers go on).
    let seq = r.send_ok(
        "new@customer.example",
        &[SUPPORT],
        &customer_mail(999, "restored"),
    );
    assert!(!before.contains(&seq));
    assert_eq!(
        r.ticket(&r.ticket_of(seq))["subject"],
        "Backup restored 999"
    );
    // The search index is not in the backup: the restored daemon built it
    // from the restored store, and the new mail joins it.
    let found = |q: &str| -> u64 {
        let (st, v) = r.api_get(&format!("/api/v1/search?q={q}&limit=1"));
        assert_eq!(st, 200, "{v}");
        v["total"].as_u64().unwrap()
    };
    assert!(found("before") >= before.len() as u64);
    assert_eq!(found("from%3Ac3%40customer.example"), 1);
    // (Not the word "after": outside business hours every ticket is tagged after-hours.)
    assert_eq!(
        found("restored"),
        1,
        "{}",
        r.api_get("/api/v1/search?q=restored&limit=3").1
    );
}

#[test]
fn backup_needs_the_api_token_and_a_running_daemon() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let dir = TempDir::new("backup");
    let wrong = dir.path.join("wrong-token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let file = dir.path.join("b");
    let out = Command::new(daemon_bin())
        .args(["backup", "-c"])
        .arg(&d.config_path)
        .arg("--token-file")
        .arg(&wrong)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert!(!file.exists());
    d.stop();
    let (ok, out) = postdesk_cli(&["backup", &file.to_string_lossy()], &d.config_path);
    assert!(!ok && out.contains("cannot reach the daemon"), "{out}");
    assert!(!file.exists());
}
