//! Rules reload in a running daemon: a valid change takes effect on the next
//! message (by file change, and by SIGHUP); an invalid change is rejected with
//! its position in the log and the old rules keep working.

mod common;
use common::*;
use std::time::Duration;

fn routing(d: &Daemon) -> std::path::PathBuf {
    d.dir.path.join("rules").join("routing.toml")
}

/// Sends a new customer mail and returns its ticket as JSON.
fn new_ticket(d: &Daemon, n: u32, subject: &str) -> serde_json::Value {
    let from = format!("reload{n}@customer.example");
    let raw = mail(
        &from,
        subject,
        &format!("<reload-{n}@customer.example>"),
        &[],
        "Hello",
    );
    let seq = d.send_ok(&from, &["support@example.test"], &raw);
    let id = d.ticket_of(seq);
    d.ticket(&id)
}

fn write_rules(d: &Daemon, text: &str) {
    // Replace by rename, as editors and config management do.
    let tmp = d.dir.path.join("rules").join(".routing.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, routing(d)).unwrap();
}

#[test]
fn valid_change_applies_invalid_change_is_rejected_and_old_rules_stay() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    write_rules(
        &d,
        "[[rule]]\nname = \"zebra\"\nwhen = { subject = \"zebra\" }\npriority = \"high\"\ntags = [\"v1\"]\n",
    );
    // The file watcher picks the change up within a few seconds.
    wait_until(Duration::from_secs(15), "rules v1 loaded", || {
        d.log().contains("rules reloaded").then_some(())
    });
    let t = new_ticket(&d, 1, "A zebra in the printer");
    assert_eq!(t["priority"], "high", "{t}");
    assert_eq!(t["tags"], serde_json::json!(["v1"]), "{t}");

    // An invalid set: rejected, the log names file:line:column, v1 keeps working.
    write_rules(
        &d,
        "[[rule]]\nname = \"zebra\"\nwhen = { subject = \"(zebra\" }\npriority = \"urgent\"\n",
    );
    let routing_path = routing(&d);
    let want = format!("{}:3:21", routing_path.display());
    wait_until(
        Duration::from_secs(15),
        "invalid rules rejected in the log",
        || d.log().contains(&want).then_some(()),
    );
    let t = new_ticket(&d, 2, "Another zebra");
    assert_eq!(t["priority"], "high", "old rules must stay in force: {t}");

    // A valid set again, announced by SIGHUP (as `systemctl reload` does).
    std::fs::write(
        routing(&d),
        "[[rule]]\nname = \"zebra\"\nwhen = { subject = \"zebra\" }\npriority = \"low\"\ntags = [\"v2\"]\n",
    )
    .unwrap();
    let pid = d.pid().expect("daemon pid");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until(Duration::from_secs(15), "rules v2 loaded", || {
        (d.log().matches("rules reloaded").count() >= 2).then_some(())
    });
    let t = new_ticket(&d, 3, "Zebra three");
    assert_eq!(t["priority"], "low", "{t}");
    assert_eq!(t["tags"], serde_json::json!(["v2"]), "{t}");
}

#[test]
fn an_edited_acknowledgement_template_applies_without_a_restart() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let path = d
        .dir
        .path
        .join("rules")
        .join("templates")
        .join("acknowledgement.txt");
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        "Subject: [#{{ticket}}] Thanks, we are on it: {{subject}}\n\nHello {{name}}, version two.\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_until(Duration::from_secs(15), "template reloaded", || {
        d.log().contains("rules reloaded").then_some(())
    });
    new_ticket(&d, 10, "Template test");
    let ack = sink.nth_to("reload10@customer.example", 1);
    let subject = header(&ack, "Subject").unwrap_or_default();
    assert!(subject.contains("Thanks, we are on it"), "{subject}");

    // A broken template is refused like broken rules; the last good one stays.
    std::fs::write(&tmp, "no subject line here").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_until(Duration::from_secs(15), "broken template rejected", || {
        d.log().contains("rules not reloaded").then_some(())
    });
    new_ticket(&d, 11, "Template test again");
    let ack = sink.nth_to("reload11@customer.example", 1);
    let subject = header(&ack, "Subject").unwrap_or_default();
    assert!(subject.contains("Thanks, we are on it"), "{subject}");
}
