//! SLA with an injected clock: deadlines in business time, warnings and
//! breaches firing once, pause/resume, catch-up after a restart.

use super::*;
use crate::config::Config;
use crate::model::{Priority, Status};
use crate::rules::RuleSet;
use crate::sla_scheduler as scheduler;
use crate::store::Store;
use std::path::Path;
use std::path::PathBuf;

const CALENDAR: &str = r#"
[default]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-17:00" }
holidays = ["2026-12-25"]
"#;

const AGENTS: &str = "[[agent]]\nname = \"alice\"\naddress = \"alice@example.test\"\nqueues = [\"general\"]\n[[agent]]\nname = \"lead\"\naddress = \"lead@example.test\"\n";

const SLA: &str = r#"
[[policy]]
name = "normal"
priorities = ["normal"]
first_response = "4h"
resolution = "16h"
warn_at = 0.75
on_warning = [{ notify = "assignee" }]
on_breach = [{ notify = "agent:lead" }, { raise_priority = true }, { tag = "sla-breached" }]
"#;

const CONFIG: &str = r#"
[server]
hostname = "support.example.test"
[[mailbox]]
address = "support@example.test"
[outbound]
relay = "maildir:outbox"
from = "Example Support <support@example.test>"
[web]
api_token = "t"
"#;

struct Env {
    dir: PathBuf,
    cfg: Config,
    rules: RuleSet,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env() -> Env {
    env_with(SLA)
}

fn env_with(sla: &str) -> Env {
    let dir = std::env::temp_dir().join(format!(
        "postdesk-sla-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("calendar.toml"), CALENDAR).unwrap();
    std::fs::write(rules_dir.join("agents.toml"), AGENTS).unwrap();
    std::fs::write(rules_dir.join("sla.toml"), sla).unwrap();
    let cfg = Config::from_str(CONFIG, &dir.join("config.toml")).unwrap();
    let rules = RuleSet::load(&rules_dir, &["general".into()]).unwrap();
    Env { dir, cfg, rules }
}

fn ts(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn ticket(id: u64, now: i64) -> Ticket {
    Ticket {
        subject: "Printer".into(),
        assignee: Some("alice".into()),
        participants: ["ann@example.org".to_string()].into(),
        message_count: 1,
        ..Ticket::new(id, "ann@example.org", now)
    }
}

fn open_ticket(store: &Store, e: &Env, now: i64) -> Ticket {
    store
        .write(|tx| {
            let mut t = ticket(1, now);
            start(tx, &mut t, &e.rules.sla, &e.rules.calendars, now)?;
            tx.put_ticket(&t)?;
            Ok(t)
        })
        .unwrap()
}

fn kinds(store: &Store) -> Vec<String> {
    store
        .ticket_events(1)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn deadlines_count_business_time_across_a_weekend() {
    let e = env();
    let store = Store::open(&e.dir.join("data")).unwrap();
    // Friday 2026-11-27 15:00 local (14:00Z): 2h left today, 2h on Monday.
    let t = open_ticket(&store, &e, ts("2026-11-27T14:00:00Z"));
    let s = t.sla.unwrap();
    assert_eq!(s.policy, "normal");
    assert_eq!(s.first_response_due, Some(ts("2026-11-30T10:00:00Z"))); // Monday 11:00 local
    // 16h = 2h Fri + 8h Mon + 6h Tue → Tuesday 15:00 local
    assert_eq!(s.resolution_due, Some(ts("2026-12-01T14:00:00Z")));
}

#[test]
fn warning_then_breach_each_fire_once_even_across_restart() {
    let e = env();
    let data = e.dir.join("data");
    let start_at = ts("2026-12-01T08:00:00Z"); // Tuesday 09:00 local
    {
        let store = Store::open(&data).unwrap();
        open_ticket(&store, &e, start_at);
        // 2h in: nothing due yet
        assert_eq!(
            scheduler::fire_due(&store, &e.cfg, &e.rules, start_at + 2 * 3600).unwrap(),
            0
        );
        // 3h in: first-response warning (75% of 4h)
        assert_eq!(
            scheduler::fire_due(&store, &e.cfg, &e.rules, start_at + 3 * 3600).unwrap(),
            1
        );
        assert_eq!(
            scheduler::fire_due(&store, &e.cfg, &e.rules, start_at + 3 * 3600 + 60).unwrap(),
            0
        );
        assert_eq!(kinds(&store), vec!["sla_warning"]);
        // the warning mailed the assignee
        let jobs = store.due_jobs(i64::MAX, 10).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].rcpt_to, vec!["alice@example.test"]);
    } // "daemon stops"
    // The daemon was down across the first-response deadline (13:00 local).
    let store = Store::open(&data).unwrap();
    let later = ts("2026-12-01T15:00:00Z"); // 16:00 local
    assert_eq!(
        scheduler::fire_due(&store, &e.cfg, &e.rules, later).unwrap(),
        1,
        "catch-up fires the breach"
    );
    assert_eq!(
        scheduler::fire_due(&store, &e.cfg, &e.rules, later + 60).unwrap(),
        0,
        "once only"
    );
    let k = kinds(&store);
    assert!(k.contains(&"sla_breach".to_string()), "{k:?}");
    let t = store.ticket(1).unwrap().unwrap();
    assert_eq!(t.priority, Priority::High, "breach raised the priority");
    assert!(t.tags.contains(&"sla-breached".to_string()));
    assert_eq!(state_name(&t, later), "breached");
    let jobs = store.due_jobs(i64::MAX, 10).unwrap();
    assert!(
        jobs.iter().any(|j| j.rcpt_to == vec!["lead@example.test"]),
        "{jobs:?}"
    );
}

#[test]
fn pause_stops_the_clock_and_resume_moves_deadlines() {
    let e = env();
    let store = Store::open(&e.dir.join("data")).unwrap();
    let start_at = ts("2026-12-01T08:00:00Z"); // Tuesday 09:00 local
    let t = open_ticket(&store, &e, start_at);
    let first_due = t.sla.as_ref().unwrap().first_response_due.unwrap();
    assert_eq!(first_due, ts("2026-12-01T12:00:00Z"));
    // pending after 1h, for 2 business hours
    store
        .write(|tx| {
            let mut t = tx.ticket(1)?.unwrap();
            pause(tx, &mut t, start_at + 3600)?;
            tx.put_ticket(&t)
        })
        .unwrap();
    // nothing fires while paused, even past the original deadline
    assert_eq!(
        scheduler::fire_due(&store, &e.cfg, &e.rules, first_due + 60).unwrap(),
        0
    );
    assert_eq!(
        state_name(&store.ticket(1).unwrap().unwrap(), first_due + 60),
        "paused"
    );
    let resumed_at = start_at + 3 * 3600;
    store
        .write(|tx| {
            let mut t = tx.ticket(1)?.unwrap();
            resume(tx, &mut t, &e.rules.sla, &e.rules.calendars, resumed_at)?;
            tx.put_ticket(&t)
        })
        .unwrap();
    let s = store.ticket(1).unwrap().unwrap().sla.unwrap();
    assert_eq!(s.first_response_due, Some(first_due + 2 * 3600));
    assert_eq!(
        scheduler::fire_due(&store, &e.cfg, &e.rules, first_due + 60).unwrap(),
        0
    );
    assert_eq!(
        scheduler::fire_due(&store, &e.cfg, &e.rules, first_due + 2 * 3600).unwrap(),
        2,
        "warning and breach"
    );
}

#[test]
fn resolved_tickets_do_not_breach() {
    let e = env();
    let store = Store::open(&e.dir.join("data")).unwrap();
    let start_at = ts("2026-12-01T08:00:00Z");
    open_ticket(&store, &e, start_at);
    store
        .write(|tx| {
            let mut t = tx.ticket(1)?.unwrap();
            t.status = Status::Resolved;
            stop(tx, &mut t)?;
            tx.put_ticket(&t)
        })
        .unwrap();
    assert_eq!(
        scheduler::fire_due(&store, &e.cfg, &e.rules, start_at + 30 * 86400).unwrap(),
        0
    );
    assert_eq!(
        state_name(&store.ticket(1).unwrap().unwrap(), start_at + 30 * 86400),
        "met"
    );
}

#[test]
fn invalid_policies_report_positions() {
    let e = env();
    let bad = "[[policy]]\nname = \"x\"\nresolution = \"8 hours\"\non_breach = [{ notify = \"agent:nobody\" }]\n";
    let err = Policies::parse(
        bad,
        Path::new("sla.toml"),
        &e.rules.calendars,
        &e.rules.agents,
    )
    .unwrap_err();
    assert_eq!((err[0].line, err[0].column), (3, 14), "{}", err[0]);
    assert_eq!(err[1].line, 4, "{}", err[1]);
}

#[test]
fn raising_priority_switches_policy_counted_from_the_start() {
    let sla = format!(
        "{}\n{SLA}",
        r#"
[[policy]]
name = "urgent"
priorities = ["urgent"]
first_response = "1h"
resolution = "4h"
on_breach = [{ tag = "urgent-breached" }]
"#
    );
    let e = env_with(&sla);
    let store = Store::open(&e.dir.join("data")).unwrap();
    let start_at = ts("2026-12-01T08:00:00Z"); // Tuesday 09:00 local
    open_ticket(&store, &e, start_at);
    let later = start_at + 2 * 3600;
    // An agent raises it to urgent two hours in: its 1 h first response is already overdue.
    let detail = store
        .write(|tx| {
            let mut t = tx.ticket(1)?.unwrap();
            t.priority = Priority::Urgent;
            let d = reselect(tx, &mut t, &e.rules.sla, &e.rules.calendars, later)?;
            tx.put_ticket(&t)?;
            Ok(d)
        })
        .unwrap();
    let detail = detail.expect("the policy changed");
    assert!(detail.contains("\"normal\" → \"urgent\""), "{detail}");
    let t = store.ticket(1).unwrap().unwrap();
    let s = t.sla.unwrap();
    assert_eq!(s.policy, "urgent");
    assert_eq!(s.first_response_due, Some(start_at + 3600));
    assert_eq!(s.resolution_due, Some(start_at + 4 * 3600));
    assert_eq!(
        scheduler::fire_due(&store, &e.cfg, &e.rules, later).unwrap(),
        1,
        "the overdue first response breaches at once"
    );
    assert_eq!(kinds(&store), vec!["sla_breach"]);
    let tags = store.ticket(1).unwrap().unwrap().tags;
    assert_eq!(
        tags,
        vec!["urgent-breached"],
        "the new policy's breach actions"
    );
    // The same priority again changes nothing.
    let again = store
        .write(|tx| {
            let mut t = tx.ticket(1)?.unwrap();
            reselect(tx, &mut t, &e.rules.sla, &e.rules.calendars, later + 60)
        })
        .unwrap();
    assert_eq!(again, None);
}

#[test]
fn timer_kinds_round_trip_through_their_stored_keys() {
    use super::{Goal, Level, TimerKind};
    for goal in [Goal::FirstResponse, Goal::Resolution] {
        for level in [Level::Warning, Level::Breach] {
            let kind = TimerKind { goal, level };
            assert_eq!(TimerKind::parse(&kind.key()), Some(kind));
        }
    }
    assert_eq!(
        TimerKind::parse("resolution:breach")
            .map(TimerKind::key)
            .as_deref(),
        Some("resolution:breach")
    );
    assert_eq!(
        TimerKind::parse("first_response"),
        Some(TimerKind {
            goal: Goal::FirstResponse,
            level: Level::Breach
        })
    );
    assert_eq!(TimerKind::parse("lunch:breach"), None);
    assert_eq!(TimerKind::parse("resolution:panic"), None);
}

#[test]
fn first_response_on_is_queued_or_delivered() {
    let e = env();
    let parse = |text: &str| {
        Policies::parse(
            text,
            Path::new("sla.toml"),
            &e.rules.calendars,
            &e.rules.agents,
        )
    };
    let base = "[[policy]]\nname = \"x\"\nfirst_response = \"1h\"\n";
    assert_eq!(
        parse(base).unwrap().list[0].first_response_on,
        FirstResponseOn::Queued,
        "the default"
    );
    let p = parse(&format!("{base}first_response_on = \"delivered\"\n")).unwrap();
    assert_eq!(p.list[0].first_response_on, FirstResponseOn::Delivered);
    let err = parse(&format!("{base}first_response_on = \"read\"\n")).unwrap_err();
    assert_eq!((err[0].line, err[0].column), (4, 21), "{}", err[0]);
    assert!(
        err[0].message.contains("\"queued\" or \"delivered\""),
        "{}",
        err[0]
    );
}

/// The store keeps each kind as a one-byte code of its own table: every
/// kind `sla` writes must have one and come back as the same key.
#[test]
fn every_timer_kind_is_stored_and_read_back() {
    let e = env();
    let store = Store::open(&e.dir.join("data")).unwrap();
    let mut kinds = Vec::new();
    for goal in [Goal::FirstResponse, Goal::Resolution] {
        for level in [Level::Warning, Level::Breach] {
            kinds.push(TimerKind { goal, level }.key());
        }
    }
    store
        .write(|tx| {
            for (n, kind) in kinds.iter().enumerate() {
                tx.add_sla_timer(n as i64, 1, kind)?;
            }
            Ok(())
        })
        .unwrap();
    let due = store
        .write(|tx| tx.take_due_sla_timers(i64::MAX, 10))
        .unwrap();
    let back: Vec<String> = due.into_iter().map(|(_, _, kind)| kind).collect();
    assert_eq!(back, kinds);
}
