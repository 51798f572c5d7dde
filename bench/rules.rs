//! Rule evaluation and SLA scheduler cost. Prints figures; not a test.
//!
//!     cargo bench --bench rules
//!
//! 1. Routing: 1,000 rules (subject/body regexes, sender domains, lists,
//!    headers, combinations) evaluated against a mix of messages: time per message.
//! 2. SLA: 100,000 open tickets with SLA clocks: time to start them, timer
//!    table size, cost of firing due timers, scheduler wake-ups per simulated
//!    day, and peak memory (timers live in redb, not in memory).

use postdesk::config::Config;
use postdesk::model::{Priority, Status, Ticket};
use postdesk::rules::RuleSet;
use postdesk::rules::calendar::Calendar;
use postdesk::rules::routing::Facts;
use postdesk::sla;
use postdesk::store::Store;
use std::fmt::Write;
use std::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("postdesk-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn routing_rules(n: usize) -> String {
    let mut t = String::from("[lists]\nvip = [");
    for i in 0..200 {
        let _ = write!(t, "\"@vip{i}.example\", ");
    }
    t.push_str("\"ceo@bigclient.example\"]\n");
    for i in 0..n {
        let _ = writeln!(t, "[[rule]]\nname = \"rule {i}\"");
        match i % 5 {
            0 => {
                let _ = writeln!(t, "when = {{ subject = \"\\\\b(order|invoice){i}\\\\b\" }}");
            }
            1 => {
                let _ = writeln!(
                    t,
                    "when = {{ sender_domain = [\"customer{i}.example\", \"c{i}.example\"] }}"
                );
            }
            2 => {
                let _ = writeln!(
                    t,
                    "when = {{ any = [{{ body = \"error code E{i:04}\" }}, {{ in_list = \"vip\" }}] }}"
                );
            }
            3 => {
                let _ = writeln!(
                    t,
                    "when = {{ header = {{ name = \"X-Customer-Id\", regex = \"^{i}$\" }} }}"
                );
            }
            _ => {
                let _ = writeln!(
                    t,
                    "when = {{ all = [{{ subject = \"refund\" }}, {{ not = {{ sender_domain = \"d{i}.example\" }} }}] }}"
                );
            }
        }
        let _ = writeln!(t, "tags = [\"t{i}\"]\n");
    }
    t
}

fn bench_routing() -> String {
    let dir = tempdir("rules");
    std::fs::write(dir.join("routing.toml"), routing_rules(1000)).expect("write rules");
    let t0 = Instant::now();
    let set = RuleSet::load(&dir, &["general".into()]).expect("rules load");
    let load = t0.elapsed();
    let cal = Calendar::always_open();
    let body = "Hello,\n\nmy order did not arrive and the tracking page shows error code E0042. "
        .repeat(20);
    let headers = vec![("x-customer-id".to_string(), "733".to_string())];
    let messages: Vec<(String, String)> = (0..64)
        .map(|i| {
            (
                format!("customer{}@c{}.example", i, i * 15),
                format!("Where is my order{} / refund", i * 5),
            )
        })
        .collect();
    let iterations = 20_000;
    let t0 = Instant::now();
    let mut matched = 0usize;
    for k in 0..iterations {
        let (sender, subject) = &messages[k % messages.len()];
        let facts = Facts {
            mailbox: "support@example.test",
            sender,
            subject,
            body: &body,
            headers: &headers,
            attachments: &[],
            now: 1_764_000_000,
            calendar: &cal,
        };
        matched += set.routing.evaluate(&facts).matched.len();
    }
    let per = t0.elapsed().as_secs_f64() / iterations as f64;
    let _ = std::fs::remove_dir_all(&dir);
    format!(
        "routing: 1000 rules loaded and compiled in {:.1} ms; evaluation {:.1} µs/message ({:.0} messages/s, {} body bytes, {:.1} rules matched on average)\n",
        load.as_secs_f64() * 1e3,
        per * 1e6,
        1.0 / per,
        body.len(),
        matched as f64 / iterations as f64
    )
}

fn bench_sla() -> String {
    let dir = tempdir("sla");
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    std::fs::write(
        rules_dir.join("calendar.toml"),
        "[default]\ntimezone = \"Europe/Berlin\"\nhours = { mon = \"09:00-17:00\", tue = \"09:00-17:00\", wed = \"09:00-17:00\", thu = \"09:00-17:00\", fri = \"09:00-17:00\" }\n",
    )
    .expect("calendar");
    std::fs::write(
        rules_dir.join("sla.toml"),
        "[[policy]]\nname = \"std\"\nfirst_response = \"4h\"\nresolution = \"16h\"\non_breach = [{ tag = \"late\" }]\n",
    )
    .expect("sla");
    let rules = RuleSet::load(&rules_dir, &["general".into()]).expect("rules");
    let cfg = Config::from_str(
        "[server]\nhostname = \"b.test\"\n[[mailbox]]\naddress = \"s@b.test\"\n[outbound]\nrelay = \"maildir:o\"\nfrom = \"s@b.test\"\n[web]\napi_token = \"t\"\n",
        &dir.join("config.toml"),
    )
    .expect("config");
    let store = Store::open(&dir.join("data")).expect("store");
    let n: u64 = 100_000;
    let start = 1_764_576_000; // Monday 2025-12-01 08:00 UTC
    let t0 = Instant::now();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        store
            .write(|tx| {
                for &id in chunk {
                    // tickets opened over one business week
                    let created = start + (id as i64 % 5) * 86400 + (id as i64 % 480) * 60;
                    let mut t = Ticket {
                        id,
                        subject: format!("ticket {id}"),
                        status: Status::Open,
                        priority: Priority::Normal,
                        queue: "general".into(),
                        assignee: None,
                        requester: format!("c{id}@example.org"),
                        requester_name: String::new(),
                        participants: Default::default(),
                        created_at: created,
                        updated_at: created,
                        message_count: 1,
                        next_event: 0,
                        tags: Vec::new(),
                        sla: None,
                        last_customer_message_id: None,
                        version: 0,
                        public_replies: Vec::new(),
                        unverified: false,
                    };
                    sla::start(tx, &mut t, &rules.sla, &rules.calendars, created)?;
                    tx.put_ticket(&t)?;
                }
                Ok(())
            })
            .expect("write tickets");
    }
    let started = t0.elapsed();
    let db_bytes = std::fs::metadata(dir.join("data/postdesk.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    // Simulate the scheduler over two weeks: it wakes at the next timer (at most every 30 s).
    let mut now = start;
    let end = start + 14 * 86400;
    let mut wakeups = 0u64;
    let mut fired = 0usize;
    let t0 = Instant::now();
    while now < end {
        wakeups += 1;
        fired += postdesk::sla_scheduler::fire_due(&store, &cfg, &rules, now).expect("fire");
        let next = store.next_sla_timer().expect("next").unwrap_or(end);
        // like the real scheduler: sleep until the next timer, at most 30 s
        now = next.clamp(now + 1, now + 30);
    }
    let fire_time = t0.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    format!(
        "sla: {n} open tickets with SLA clocks started in {:.2} s ({:.0}/s, 1,000 per transaction); store {:.1} MiB\n\
         sla: over 14 simulated days {fired} warnings/breaches fired in {:.2} s ({:.0} µs each, events and actions included); {wakeups} scheduler wake-ups\n",
        started.as_secs_f64(),
        n as f64 / started.as_secs_f64(),
        db_bytes as f64 / 1048576.0,
        fire_time.as_secs_f64(),
        fire_time.as_secs_f64() * 1e6 / fired.max(1) as f64,
    )
}

fn main() {
    let mut out = String::new();
    out.push_str(&bench_routing());
    out.push_str(&bench_sla());
    let _ = writeln!(
        out,
        "peak RSS of the benchmark process: {:.1} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    print!("{out}");
}
