//! `postdesk rules test --format json` and the running daemon agree, field by field, on what
//! every fixture message that opens a ticket gets: queue, priority, tags, assignee,
//! acknowledgement and SLA policy. Both print or apply the same decision
//! (`process::decide`); this test keeps it that way.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn messages(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            messages(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "eml" || x == "txt" || x == "msg")
            && !p.to_string_lossy().contains("/expected/")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".md"))
        {
            out.push(p);
        }
    }
}

fn rules_test(config: &Path, message: &Path, at: Option<&str>) -> Value {
    let mut cmd = Command::new(daemon_bin());
    cmd.args(["rules", "test", "--format", "json", "-c"])
        .arg(config);
    if let Some(at) = at {
        cmd.args(["--at", at]);
    }
    let out = cmd.arg(message).output().expect("run postdesk rules test");
    assert!(
        out.status.success(),
        "rules test {}: {}",
        message.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rules test JSON")
}

#[test]
fn rules_test_and_the_daemon_agree_on_every_fixture() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        // The hourly limits are state the plan cannot see: keep them out of the way.
        c.set("acknowledgement", "max_per_address_per_hour", "100000");
        c.set("acknowledgement", "max_per_hour", "100000");
    });
    let mut files = Vec::new();
    messages(&repo_root().join("fixtures"), &mut files);
    files.sort();
    assert!(files.len() > 200, "only {} fixture messages", files.len());
    // smtplib writes envelope addresses in ASCII only (no SMTPUTF8 here).
    files.retain(|f| {
        rules_test(&d.config_path, f, None)["envelope_sender"]
            .as_str()
            .is_some_and(str::is_ascii)
    });
    let jobs: Vec<Job> = files
        .iter()
        .map(|f| {
            let plan = rules_test(&d.config_path, f, None);
            let sender = plan["envelope_sender"].as_str().unwrap_or("").to_string();
            Job {
                mail_from: sender,
                rcpts: vec![SUPPORT.to_string()],
                file: f.clone(),
            }
        })
        .collect();
    let results = send_batch(d.smtp_port, &jobs);
    d.wait_idle(SECS_60);
    let (mut compared, mut skipped) = (0, 0);
    let mut disagreements = Vec::new();
    for (file, r) in files.iter().zip(&results) {
        let Some(seq) = r.seq.filter(|_| r.code == Some(250)) else {
            skipped += 1;
            continue;
        };
        let m = d.wait_message(seq, SECS_30);
        let Some(id) = id_string(&m["ticket"]) else {
            skipped += 1; // a duplicate, quarantined or agent mail: opens no ticket
            continue;
        };
        let t = d.ticket(&id);
        let opened_by_it = t["messages"][0]["seq"] == Value::String(seq.to_string());
        if !opened_by_it {
            skipped += 1; // threaded into an earlier fixture's ticket
            continue;
        }
        let at = t["created_at"].as_str().unwrap_or_default();
        let plan = rules_test(&d.config_path, file, Some(at));
        let mut differ = |what: &str, daemon: Value, rules: Value| {
            if daemon != rules {
                disagreements.push(format!(
                    "{}: {what}: daemon {daemon}, rules test {rules}",
                    file.display()
                ));
            }
        };
        differ("queue", t["queue"].clone(), plan["queue"].clone());
        differ("priority", t["priority"].clone(), plan["priority"].clone());
        differ("tags", t["tags"].clone(), plan["tags"].clone());
        let a = &plan["assignee"];
        match a["rule"].as_str() {
            Some("none") => differ("assignee", t["assignee"].clone(), Value::Null),
            Some("agent") => differ("assignee", t["assignee"].clone(), a["agent"].clone()),
            Some("round_robin" | "least_loaded") => {
                let ok = match &t["assignee"] {
                    Value::Null => a["candidates"].as_array().is_none_or(|c| c.is_empty()),
                    who => a["candidates"].as_array().is_some_and(|c| c.contains(who)),
                };
                if !ok {
                    differ("assignee", t["assignee"].clone(), a.clone());
                }
            }
            _ => {}
        }
        let acknowledged = event_kinds(&t).iter().any(|k| k == "acknowledged");
        differ(
            "acknowledgement",
            Value::Bool(acknowledged),
            plan["acknowledgement"]["send"].clone(),
        );
        differ(
            "sla policy",
            t["sla"]["policy"].clone(),
            plan["sla"]["policy"].clone(),
        );
        compared += 1;
    }
    eprintln!(
        "{} fixtures: {compared} compared, {skipped} opened no ticket of their own",
        files.len()
    );
    assert!(compared > 150, "only {compared} messages compared");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
