//! A store with compressed raw messages and records through the real
//! binary: `postdesk compact` refused while the daemon holds the store,
//! run while it is stopped (size before and after printed), and the same
//! bytes come back afterwards, from a backup restored elsewhere and from an
//! export.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

/// A few kilobytes of ordinary prose: long enough to be stored compressed.
fn long_mail(n: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..60 {
        body.push_str(&format!(
            "Line {i} of message {n}: the invoice for order {} still shows the old address.\n",
            1000 + n * 7 + i
        ));
    }
    mail(
        &format!("c{n}@customer.example"),
        &format!("Compact {n}"),
        &format!("<compact-{n}@customer.example>"),
        &[],
        &body,
    )
}

#[test]
fn compressed_messages_survive_compaction_backup_restore_and_export() {
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    let mut seqs = Vec::new();
    for n in 0..8 {
        let from = format!("c{n}@customer.example");
        seqs.push(d.send_ok(&from, &[SUPPORT], &long_mail(n)));
    }
    d.wait_processed(Duration::from_secs(60));
    let originals: Vec<Vec<u8>> = seqs
        .iter()
        .map(|s| {
            let (st, raw) = d.api_get_raw(&format!("/api/v1/messages/{s}/raw"));
            assert_eq!(st, 200);
            raw
        })
        .collect();
    for (raw, n) in originals.iter().zip(0..) {
        assert!(
            raw.ends_with(&long_mail(n)),
            "message {n} is not the bytes sent"
        );
    }

    let backup_dir = TempDir::new("compact-backup");
    let file = backup_dir.path.join("postdesk.backup");
    let (ok, out) = postdesk_cli(&["backup", &file.to_string_lossy()], &d.config_path);
    assert!(ok, "backup: {out}");

    // The running daemon holds the store: compaction is refused, nothing changes.
    let (ok, out) = postdesk_cli(&["compact"], &d.config_path);
    assert!(!ok, "compact ran beside the daemon: {out}");
    assert!(out.contains("in use"), "{out}");

    d.stop();
    let (ok, out) = postdesk_cli(&["compact"], &d.config_path);
    assert!(ok, "compact: {out}");
    assert!(
        out.contains("MiB before") && out.contains("MiB after"),
        "{out}"
    );
    assert!(
        out.contains("raw_encoded"),
        "per-table sizes missing: {out}"
    );

    d.restart();
    for (s, want) in seqs.iter().zip(&originals) {
        let (st, raw) = d.api_get_raw(&format!("/api/v1/messages/{s}/raw"));
        assert_eq!(st, 200);
        assert_eq!(&raw, want, "message {s} changed by compaction");
    }
    // With new dictionaries trained from today's values: still the same bytes.
    d.stop();
    let (ok, out) = postdesk_cli(&["compact", "--retrain"], &d.config_path);
    assert!(ok, "compact --retrain: {out}");
    d.restart();
    for (s, want) in seqs.iter().zip(&originals) {
        let (_, raw) = d.api_get_raw(&format!("/api/v1/messages/{s}/raw"));
        assert_eq!(&raw, want, "message {s} changed by retraining");
    }
    // Compressed records still read: the ticket's conversation text.
    let t = d.ticket(&d.ticket_of(seqs[3]));
    assert!(
        t.to_string().contains("Line 59 of message 3"),
        "message text missing from {t}"
    );

    // The backup, restored into another data directory, has the same bytes.
    let restored = TempDir::new("compact-restored");
    let mut cfg = DaemonConfig::new(sink.port);
    cfg.set(
        "server",
        "data_dir",
        &q(&restored.path.join("data").to_string_lossy()),
    );
    let (_cfg_dir, cfg_path) = write_config(&cfg);
    let (ok, out) = postdesk_cli(&["restore", &file.to_string_lossy()], &cfg_path);
    assert!(ok, "restore: {out}");
    let r = Daemon::with_config(cfg);
    for (s, want) in seqs.iter().zip(&originals) {
        let (st, raw) = r.api_get_raw(&format!("/api/v1/messages/{s}/raw"));
        assert_eq!(st, 200, "message {s} missing after restore");
        assert_eq!(&raw, want, "message {s} differs after restore");
    }

    // And the export carries them whole (mbox: the message after its From_ line).
    let export = Command::new(daemon_bin())
        .args(["export", "--format", "mbox", "-c"])
        .arg(&r.config_path)
        .output()
        .unwrap();
    assert!(export.status.success());
    let mbox = String::from_utf8_lossy(&export.stdout).replace("\r\n", "\n");
    for n in 0..8 {
        assert!(
            mbox.contains(&format!("Line 59 of message {n}: ")),
            "message {n} missing from the export"
        );
    }
}
