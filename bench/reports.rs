//! Reports at scale: a 30-day report over a year of tickets, answered from
//! the rollups, and the same period read from the events for comparison.
//! Prints figures; not a test.
//!
//!     cargo bench --bench reports                        # 200,000 tickets
//!     BENCH_TICKETS=1000000 cargo bench --bench reports  # a million
//!
//! Builds a store of N tickets opened evenly over 365 days through the
//! same `Tx` calls processing makes (so the rollups are kept as in the
//! daemon): each opened by a customer, most answered by one of five agents
//! and resolved, a few breached, a few of the last 45 days still open. Then times every
//! report over the last 30 days (rollups) 5 times, and once from the events.

use postdesk::model::{Event, EventKind, Priority, Source, Status, Ticket};
use postdesk::report_service::{Params, run_many};
use postdesk::reports::{NAMES, Summary, compute_from};
use postdesk::rules::RuleSet;
use postdesk::store::Store;
use std::path::Path;
use std::time::Instant;

const DAY: i64 = 86_400;

fn main() {
    let n: u64 = std::env::var("BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = RuleSet::load(&root.join("rules"), &["general".to_string()]).expect("rules/");
    let dir = std::env::temp_dir().join(format!("postdesk-bench-reports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).expect("store");
    let end: i64 = 1_796_083_200; // 2026-12-01
    let start = end - 365 * DAY;
    let step = (365 * DAY) as f64 / n as f64;
    let agents = ["alice", "bob", "carol", "dave", "erin"];
    let built = Instant::now();
    let mut id = 0u64;
    while id < n {
        store
            .write(|tx| {
                for _ in 0..5_000 {
                    if id >= n {
                        break;
                    }
                    id += 1;
                    let x = id.wrapping_mul(2654435761);
                    let at = start + (id as f64 * step) as i64;
                    let mut t = Ticket {
                        subject: format!("Ticket {id}"),
                        queue: ["general", "billing", "it"][(x % 3) as usize].into(),
                        priority: [Priority::Normal, Priority::High, Priority::Low]
                            [((x >> 4) % 3) as usize],
                        ..Ticket::new(id, "customer@example.org", at)
                    };
                    let ev = |at: i64, kind: EventKind, actor: &str, detail: &str| {
                        Event::new(at, kind, actor, detail.to_string())
                    };
                    tx.add_event(
                        &mut t,
                        ev(
                            at,
                            EventKind::Created,
                            "customer@example.org",
                            "customer from customer@example.org: no thread matched",
                        ),
                    )?;
                    tx.note_ticket_channel(
                        id,
                        if x.is_multiple_of(4) {
                            &Source::Imap
                        } else {
                            &Source::Smtp
                        },
                        0,
                    )?;
                    let agent = agents[((x >> 8) % 5) as usize];
                    let answer = at + 600 + ((x >> 12) % (30 * 3600)) as i64;
                    if x % 100 < 97 && answer < end {
                        tx.add_event(&mut t, ev(answer, EventKind::Replied, agent, "reply"))?;
                        t.status = Status::Open;
                    }
                    if x % 100 < 5 {
                        tx.add_event(
                            &mut t,
                            ev(
                                at + 8 * 3600,
                                EventKind::SlaBreach,
                                "sla",
                                "first response overdue since …",
                            ),
                        )?;
                    }
                    let resolve = answer + ((x >> 20) % (72 * 3600)) as i64;
                    // 92 % resolved in time; the rest wait, but a desk's backlog
                    // is recent: nothing older than 45 days is still open.
                    let old = at < end - 45 * DAY;
                    if (x % 100 < 92 || old) && resolve < end {
                        tx.add_event(
                            &mut t,
                            ev(
                                resolve,
                                EventKind::Status,
                                agent,
                                &format!("open → resolved by {agent}"),
                            ),
                        )?;
                        t.status = Status::Resolved;
                    }
                    tx.put_ticket(&t)?;
                }
                Ok(())
            })
            .expect("write tickets");
    }
    let secs = built.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.join("postdesk.redb")).map_or(0, |m| m.len());
    println!(
        "store: {n} tickets (≈{} events) written with rollups in {secs:.1} s ({:.0} tickets/s), {:.0} MB",
        n * 3,
        n as f64 / secs,
        size as f64 / 1e6
    );

    let params = Params {
        since: Some((end - 30 * DAY).to_string()),
        until: Some(end.to_string()),
        ..Params::default()
    };
    println!(
        "30-day report (last 30 days, {:.0} tickets opened in them):",
        30.0 * DAY as f64 / step
    );
    let mut all = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let reports = run_many(&store, &rules, &NAMES, &params, end).expect("reports");
        all.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(reports.len(), NAMES.len());
    }
    all.sort_by(f64::total_cmp);
    println!(
        "  all 7 reports from the rollups (one read):  p50 {:>8.1} ms  max {:>8.1} ms",
        all[2], all[4]
    );
    for name in NAMES {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            run_many(&store, &rules, &[name], &params, end).expect("report");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {name:<8} from the rollups:              p50 {:>8.1} ms  max {:>8.1} ms",
            times[2], times[4]
        );
    }
    let t = Instant::now();
    let histories = store
        .report_histories(end - 30 * DAY, end)
        .expect("histories");
    let summaries: Vec<Summary> = histories
        .iter()
        .map(|h| Summary::of(&h.ticket, &h.events, &h.channel))
        .collect();
    let q = postdesk::reports::Query {
        since: end - 30 * DAY,
        until: end,
        queue: None,
        interval: postdesk::reports::Interval::Day,
        calendars: &rules.calendars,
        policies: &rules.sla,
        now: end,
        recompute: false,
    };
    for name in NAMES {
        compute_from(name, &q, &summaries).expect("report");
    }
    println!(
        "  all 7 reports from the events (no rollups): {:>8.1} ms ({} tickets read with their events)",
        t.elapsed().as_secs_f64() * 1000.0,
        histories.len()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
