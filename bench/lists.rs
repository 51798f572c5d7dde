//! Ticket lists at scale: the queue view's and the API's filtered, paged
//! lists answer from the ticket index. Prints figures; not a test.
//!
//!     cargo bench --bench lists                       # 200,000 tickets
//!     BENCH_TICKETS=1000000 cargo bench --bench lists  # a million
//!
//! Builds a store of N tickets (statuses, queues, assignees, tags spread
//! like a help desk's: most tickets closed, a few open), then times each
//! list 50 times and prints p50 / p99 server-side time (no HTTP).

use postdesk::model::{Status, Ticket};
use postdesk::store::{Store, TicketFilter};
use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("postdesk-bench-lists-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).expect("store");
    let start = Instant::now();
    let mut id = 0;
    while id < n {
        store
            .write(|tx| {
                for _ in 0..10_000 {
                    if id >= n {
                        break;
                    }
                    id += 1;
                    let x = id.wrapping_mul(2654435761);
                    let status = match x % 100 {
                        0..=1 => Status::New,
                        2..=5 => Status::Open,
                        6..=7 => Status::Pending,
                        8..=19 => Status::Resolved,
                        _ => Status::Closed,
                    };
                    let mut t = Ticket {
                        subject: format!("Ticket {id}"),
                        status,
                        queue: ["general", "billing", "it"][(x % 3) as usize].into(),
                        assignee: [None, Some("alice"), Some("bob"), Some("carol")]
                            [((x >> 3) % 4) as usize]
                            .map(str::to_string),
                        ..Ticket::new(id, "customer@example.org", 1_700_000_000 + id as i64)
                    };
                    if x % 50 == 0 {
                        t.tags.push("vip".into());
                    }
                    tx.put_ticket(&t)?;
                }
                Ok(())
            })
            .expect("write tickets");
    }
    println!(
        "store: {n} tickets written in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let f = |status: Option<&str>, queue: Option<&str>, tag: Option<&str>, offset, before| {
        TicketFilter {
            status: status.map(str::to_string),
            queue: queue.map(str::to_string),
            tag: tag.map(str::to_string),
            assignee: None,
            limit: 50,
            offset,
            before,
        }
    };
    let cases = [
        ("newest 50, unfiltered", f(None, None, None, 0, None)),
        ("status=new (2 %)", f(Some("new"), None, None, 0, None)),
        (
            "status=closed (80 %)",
            f(Some("closed"), None, None, 0, None),
        ),
        (
            "status=open & queue=billing",
            f(Some("open"), Some("billing"), None, 0, None),
        ),
        (
            "tag=vip & status=closed",
            f(Some("closed"), None, Some("vip"), 0, None),
        ),
        (
            "unfiltered, offset = n/2",
            f(None, None, None, (n / 2) as usize, None),
        ),
        (
            "status=closed, before = n/2 (keyset)",
            f(Some("closed"), None, None, 0, Some(n / 2)),
        ),
        (
            "status=closed, offset 100,000",
            f(Some("closed"), None, None, 100_000, None),
        ),
    ];
    println!(
        "{:<40} {:>10} {:>10} {:>9}",
        "list (limit 50)", "p50 ms", "p99 ms", "total"
    );
    for (name, filter) in cases {
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..50 {
            let t = Instant::now();
            let (n, page) = store.list_tickets(&filter).expect("list");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            total = n;
            assert!(page.len() <= 50);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name:<40} {:>10.2} {:>10.2} {total:>9}",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
