//! A real Postfix in front of postdesk, delivering through pipe(8) to
//! `postdesk deliver -f ${sender} ${recipient}`, the way a postmaster sets it
//! up. While postdesk is up, down and restarted, every message Postfix
//! accepted ends up in exactly one ticket: exit 75 makes Postfix keep the
//! message and retry (we flush its queue once postdesk is back), exit 0 comes
//! only after postdesk committed.
//!
//! The Postfix instance is private: its own config dir, queue and log under a
//! temp dir, smtpd on a free loopback port; the system's mail is not touched.
//! It needs /usr/sbin/postfix (scripts/test-deps.sh installs it) and root
//! (Postfix's master runs as root and drops to the `postfix` user); without
//! them the test says why and skips.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const POSTFIX: &str = "/usr/sbin/postfix";
const POSTQUEUE: &str = "/usr/sbin/postqueue";

/// Why Postfix cannot run here, if it cannot.
fn postfix_unavailable() -> Option<String> {
    if !Path::new(POSTFIX).exists() {
        return Some(format!(
            "{POSTFIX} is missing (scripts/test-deps.sh installs Postfix)"
        ));
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("a private Postfix needs root (its master starts as root)".into());
    }
    None
}

/// A private Postfix instance: smtpd on 127.0.0.1:`port`, mail for
/// example.test relayed to the `postdesk` pipe(8) transport.
struct Postfix {
    dir: TempDir,
    port: u16,
}

impl Postfix {
    fn start(postdesk_config: &Path) -> Postfix {
        let dir = TempDir::new("postfix");
        // The postfix user must reach the queue; the pipe user must reach the config.
        chmod_755(&dir.path);
        let port = free_port();
        let etc = dir.path.join("etc");
        for sub in ["etc", "spool", "data"] {
            std::fs::create_dir_all(dir.path.join(sub)).unwrap();
        }
        let d = dir.path.display();
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/spool
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
syslog_name = postfix-pipe-test-{port}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mta.example.test
mydomain = mta.example.test
myorigin = $mydomain
mydestination =
local_recipient_maps =
local_transport = error:no local delivery in this test
default_transport = error:no outside mail in this test
relay_domains = example.test
relay_transport = postdesk
relay_recipient_maps =
# one recipient per pipe run, so ${{recipient}} is exactly one address
postdesk_destination_recipient_limit = 1
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtputf8_enable = no
biff = no
disable_dns_lookups = yes
"
            ),
        )
        .unwrap();
        std::fs::write(
            etc.join("master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
postdesk unix - n n - - pipe
  flags=DRX user=nobody argv={bin} deliver -c {cfg} -f ${{sender}} ${{recipient}}
",
                bin = daemon_bin().display(),
                cfg = postdesk_config.display(),
            ),
        )
        .unwrap();
        let pf = Postfix { dir, port };
        let _ = pf.postfix(&["set-permissions"]);
        let (ok, out) = pf.postfix(&["check"]);
        assert!(ok, "postfix check failed: {out}\n{}", pf.log());
        let (ok, out) = pf.postfix(&["start"]);
        assert!(ok, "postfix start failed: {out}\n{}", pf.log());
        wait_until(Duration::from_secs(30), "Postfix smtpd to listen", || {
            port_open(port).then_some(())
        });
        pf
    }

    fn etc(&self) -> PathBuf {
        self.dir.path.join("etc")
    }

    fn postfix(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.etc())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run postfix");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("maillog")).unwrap_or_default()
    }

    /// How many log lines say a delivery through the pipe ended so.
    fn statuses(&self, status: &str) -> usize {
        let needle = format!("status={status}");
        self.log()
            .lines()
            .filter(|l| l.contains("relay=postdesk") && l.contains(&needle))
            .count()
    }

    /// Messages in Postfix's queue (any state), from `postqueue -j`.
    fn queued(&self) -> usize {
        let out = Command::new(POSTQUEUE)
            .arg("-c")
            .arg(self.etc())
            .arg("-j")
            .output()
            .expect("run postqueue -j");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .count()
    }

    /// Retries every deferred message now (`postqueue -f`).
    fn flush(&self) {
        let st = Command::new(POSTQUEUE)
            .arg("-c")
            .arg(self.etc())
            .arg("-f")
            .status()
            .expect("run postqueue -f");
        assert!(st.success(), "postqueue -f failed:\n{}", self.log());
    }

    fn send(&self, n: usize, phase: &str) -> String {
        let subject = format!("Through Postfix {phase} {n}");
        let raw = mail(
            &format!("Customer {n} <customer{n}@customer.example>"),
            &subject,
            &format!("<pipe-{phase}-{n}@customer.example>"),
            &[],
            &format!("Message {n} sent while postdesk was {phase}.\n.\nA lone dot above.\n"),
        );
        let r = send_smtp(
            self.port,
            &format!("customer{n}@customer.example"),
            &[SUPPORT],
            &raw,
        );
        assert_eq!(r.code, Some(250), "Postfix refused {subject:?}: {r:?}");
        subject
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // `abort` stops every Postfix process of this instance at once; the queue is thrown away.
        let (ok, out) = self.postfix(&["abort"]);
        if !ok {
            eprintln!("postfix abort: {out}");
        }
        let pid_file = self.dir.path.join("spool/pid/master.pid");
        let _ = wait_until_quiet(&pid_file);
        if std::thread::panicking() {
            eprintln!("----- Postfix maillog -----\n{}", self.log());
        }
    }
}

/// Waits (up to 10 s) for the master named in `pid_file` to be gone.
fn wait_until_quiet(pid_file: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return true;
    };
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn chmod_755(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn postfix_pipe_delivers_every_message_into_exactly_one_ticket_across_down_and_restart() {
    if let Some(why) = postfix_unavailable() {
        eprintln!("SKIPPED: a real Postfix cannot run here: {why}");
        return;
    }
    let sink = Sink::start();
    let mut d = Daemon::start(&sink);
    // The pipe runs `postdesk deliver` as nobody: it must read the config.
    chmod_755(&d.dir.path);
    let pf = Postfix::start(&d.config_path);
    let mut subjects = Vec::new();

    // Up: Postfix hands each message over at once.
    for n in 1..=3 {
        subjects.push(pf.send(n, "up"));
    }
    wait_until(Duration::from_secs(60), "3 pipe deliveries", || {
        (pf.statuses("sent") >= 3).then_some(())
    });
    // 250 (and so exit 0) means committed; the ticket is made just after.
    d.wait_processed(Duration::from_secs(60));
    assert_eq!(d.tickets_total(), 3);

    // Down: `deliver` exits 75, Postfix defers and keeps the messages.
    d.stop();
    for n in 4..=6 {
        subjects.push(pf.send(n, "down"));
    }
    wait_until(
        Duration::from_secs(60),
        "3 deferred pipe deliveries",
        || (pf.statuses("deferred") >= 3).then_some(()),
    );
    assert_eq!(pf.queued(), 3, "deferred messages stay queued");

    // Back up: a flush delivers the deferred messages.
    d.restart();
    pf.flush();
    wait_until(
        Duration::from_secs(60),
        "the deferred messages delivered",
        || (pf.statuses("sent") >= 6).then_some(()),
    );

    // Restarted while Postfix is delivering: SIGTERM lets transactions in
    // progress finish; what arrives while it is down is deferred again.
    std::thread::scope(|scope| {
        let sending = scope.spawn(|| {
            (7..=12)
                .map(|n| {
                    let s = pf.send(n, "restarting");
                    std::thread::sleep(Duration::from_millis(100));
                    s
                })
                .collect::<Vec<_>>()
        });
        wait_until(
            Duration::from_secs(60),
            "the first of them delivered",
            || (pf.statuses("sent") >= 7).then_some(()),
        );
        d.restart();
        subjects.extend(sending.join().expect("sending thread"));
    });
    wait_until(Duration::from_secs(120), "Postfix's queue to drain", || {
        if pf.queued() == 0 {
            return Some(());
        }
        pf.flush();
        std::thread::sleep(Duration::from_millis(500));
        None
    });

    // Every message in exactly one ticket, nothing twice.
    d.wait_processed(Duration::from_secs(60));
    let tickets = d.all_tickets();
    let mut seen: Vec<String> = tickets
        .iter()
        .map(|t| t["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    seen.sort();
    subjects.sort();
    assert_eq!(
        seen, subjects,
        "one ticket per message sent through Postfix"
    );

    // The bytes arrived intact: the dot line, the envelope sender as requester.
    let first = tickets
        .iter()
        .find(|t| t["subject"] == "Through Postfix up 1")
        .expect("ticket of the first message");
    let id = id_string(&first["id"]).expect("ticket id");
    let t = d.ticket(&id);
    assert_eq!(t["requester"], "customer1@customer.example");
    let body = t.to_string();
    assert!(
        body.contains("A lone dot above."),
        "the body survived the pipe: {body}"
    );
}
