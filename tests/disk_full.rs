//! A full disk under the store: the daemon answers 451 and says so in its health while the
//! disk is full, recovers by itself once space is freed (no restart), and never sends the
//! same mail twice because of it. The data dir is a small tmpfs filled with a file, so these
//! tests need root (CI runs as root); elsewhere they say why they skip.

mod common;
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    _dir: TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    /// None (with the reason printed) when mounting is not permitted here.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = TempDir::new("tmpfs");
        let mount = dir.path.join("data");
        std::fs::create_dir_all(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { _dir: dir, mount }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the file system with `filler` until it refuses more.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.filler()).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0x5a_u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    fn filler(&self) -> PathBuf {
        self.mount.join("filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        // Still busy (a daemon that has not exited): detach it lazily.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn start_on(sink: &Sink, data: &Path) -> Daemon {
    Daemon::start_with(sink, |c| {
        c.set("server", "data_dir", &q(&data.to_string_lossy()));
    })
}

/// A customer mail with a body of about `size` bytes that no compression
/// shrinks (so its commit needs fresh pages: the store compresses mail, and
/// a repeated line would fit in a few hundred bytes).
fn big_mail(from: &str, subject: &str, id: &str, size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64 ^ id.len() as u64;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut body = String::with_capacity(size + size / 64 + 1);
    while body.len() < size {
        for _ in 0..72 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.push(alphabet[(x >> 58) as usize] as char);
        }
        body.push('\n');
    }
    mail(from, subject, id, &[], &body)
}

#[test]
fn full_disk_is_reported_and_survived_without_restart() {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let sink = Sink::start();
    let d = start_on(&sink, &fs.mount);

    // Working normally first.
    let first = mail(
        "Ann <ann@customer.example>",
        "Printer",
        "<df-1@customer.example>",
        &[],
        "It jams.\n",
    );
    let seq = d.send_ok("ann@customer.example", &["support@example.test"], &first);
    d.ticket_of(seq);
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(sink.messages_to("ann@customer.example").len(), 1);

    fs.fill();
    let blocked = big_mail(
        "Bob <bob@customer.example>",
        "Scanner",
        "<df-2@customer.example>",
        2 << 20,
    );
    let r = d.send("bob@customer.example", &["support@example.test"], &blocked);
    assert_eq!(
        r.code,
        Some(451),
        "a commit on a full disk must fail with 451, got {r:?}"
    );

    // Health says so (with and without the token), with a reason for the operator.
    let (st, h) = d.api_get("/api/v1/health");
    assert_eq!(st, 503, "health while the disk is full: {h}");
    assert_ne!(h["status"], "ok", "{h}");
    assert!(
        h["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "health names the reason: {h}"
    );
    let (st, bare) = d.api_get_as("/api/v1/health", None);
    assert_eq!(st, 503, "{}", String::from_utf8_lossy(&bare));

    // Space comes back: the same daemon (no restart) recovers.
    let pid = d.pid();
    fs.free();
    wait_until(
        Duration::from_secs(60),
        "health to be ok again after the disk was freed",
        || (d.api_get("/api/v1/health").0 == 200).then_some(()),
    );
    let seq = d.send_ok("bob@customer.example", &["support@example.test"], &blocked);
    let ticket = d.ticket_of(seq);
    assert_eq!(d.ticket(&ticket)["subject"], "Scanner");
    d.wait_idle(Duration::from_secs(60));
    assert_eq!(d.pid(), pid, "the daemon was not restarted");
    assert_eq!(
        sink.messages_to("bob@customer.example").len(),
        1,
        "Bob's acknowledgement arrives exactly once"
    );
    assert_eq!(sink.messages_to("ann@customer.example").len(), 1);
    assert_eq!(d.tickets_total(), 2, "nothing lost, nothing doubled");
}

/// The relay accepts a message while the disk is full, so its delivery cannot be recorded (or
/// the record is lost when the failed store is reopened): the result is recorded once there is
/// room again, and the message is not sent a second time.
#[test]
fn delivery_accepted_while_the_disk_is_full_is_recorded_later_not_sent_again() {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let sink = Sink::start_refusing();
    let d = start_on(&sink, &fs.mount);

    // The acknowledgement reaches the relay, which holds its answer to DATA.
    sink.hold();
    let raw = mail(
        "Ann <ann@customer.example>",
        "Printer",
        "<dr-1@customer.example>",
        &[],
        "It jams.\n",
    );
    let seq = d.send_ok("ann@customer.example", &["support@example.test"], &raw);
    let ticket = d.ticket_of(seq);
    sink.wait_holding(SECS_30);

    // Meanwhile the disk fills and a commit fails.
    fs.fill();
    let blocked = big_mail(
        "Bob <bob@customer.example>",
        "Scanner",
        "<dr-2@customer.example>",
        2 << 20,
    );
    let r = d.send("bob@customer.example", &["support@example.test"], &blocked);
    assert_eq!(r.code, Some(451), "{r:?}");

    // Now the relay takes the acknowledgement: its result meets the failing store.
    sink.release();
    wait_until(SECS_30, "the acknowledgement at the sink", || {
        (sink.messages_to("ann@customer.example").len() == 1).then_some(())
    });
    // A second failed commit after the record, while the disk is still full.
    let r = d.send("bob@customer.example", &["support@example.test"], &blocked);
    assert_eq!(r.code, Some(451), "{r:?}");

    fs.free();
    wait_until(SECS_60, "health to be ok again", || {
        (d.api_get("/api/v1/health").0 == 200).then_some(())
    });
    let seq = d.send_ok("bob@customer.example", &["support@example.test"], &blocked);
    d.ticket_of(seq);
    // Everything queued is delivered and recorded (a job held back for minutes fails here).
    d.wait_idle(SECS_60);
    sink.wait_for(2, SECS_30);
    assert_eq!(
        sink.messages_to("ann@customer.example").len(),
        1,
        "Ann's acknowledgement was sent once"
    );
    let t = d.ticket(&ticket);
    let delivered = t["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == "delivered").count())
        .unwrap_or(0);
    assert_eq!(delivered, 1, "its delivery is recorded once: {t}");
}
