//! Full-text search at scale: index build rate, index size per message,
//! query p50 / p95 on a store of N tickets with one message each, and the
//! store's write rate with the indexer running and without. Prints
//! figures; not a test.
//!
//!     cargo bench --bench search                        # 100,000 messages
//!     BENCH_MESSAGES=1000000 cargo bench --bench search  # a million
//!
//! The order: N tickets are written with no indexer running (intake with
//! indexing off: the commits still queue their tickets, as the daemon's
//! do); the index is then built from the store as on a first start
//! (`postdesk reindex` does the same); queries are timed; last, M more
//! tickets (`BENCH_INTAKE`, default 50,000) are written while the indexer
//! drains them (indexing on), and the time until the index has caught up
//! is taken.
//!
//! The text is synthetic: a 50,000-word vocabulary drawn with Zipf
//! frequencies (word r has weight 1/r, as in natural language), 6 words of
//! subject and 60 of body per message, 5,000 distinct senders. The same
//! generator fed the engine comparison (ARCHITECTURE.md). Times are
//! server-side (`SearchIndex::search`, snippets from the store included;
//! no HTTP).

use postdesk::model::{Direction, MessageKind, MessageRecord, Status, Ticket};
use postdesk::search::Query;
use postdesk::search_index::SearchIndex;
use postdesk::store::Store;
use std::time::Instant;
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The word of rank `r`: `w` and letters.
fn word(r: usize) -> String {
    let mut s = String::from("w");
    let mut n = r;
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s
}

struct Corpus {
    cum: Vec<f64>,
    words: Vec<String>,
}

impl Corpus {
    fn new(v: usize) -> Corpus {
        let mut cum = Vec::with_capacity(v);
        let mut t = 0.0;
        for r in 0..v {
            t += 1.0 / (r as f64 + 1.0);
            cum.push(t);
        }
        Corpus {
            cum,
            words: (0..v).map(word).collect(),
        }
    }

    fn pick(&self, rng: &mut Rng) -> &str {
        let x = (rng.next() as f64 / (1u64 << 31) as f64) * self.cum[self.cum.len() - 1];
        let i = self.cum.partition_point(|c| *c < x).min(self.cum.len() - 1);
        &self.words[i]
    }

    fn text(&self, rng: &mut Rng, n: usize) -> String {
        (0..n).map(|_| self.pick(rng)).collect::<Vec<_>>().join(" ")
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Writes tickets `from..=to`, 1,000 per transaction; returns seconds.
fn write_tickets(store: &Store, corpus: &Corpus, rng: &mut Rng, from: u64, to: u64) -> f64 {
    let start = Instant::now();
    let mut id = from - 1;
    while id < to {
        store
            .write(|tx| {
                for _ in 0..1_000 {
                    if id >= to {
                        break;
                    }
                    id += 1;
                    let from = format!("c{}@example.org", id % 5_000);
                    let subject = corpus.text(rng, 6);
                    let text = corpus.text(rng, 60);
                    let mut t = Ticket {
                        subject: subject.clone(),
                        status: [Status::Open, Status::Closed, Status::Closed][(id % 3) as usize],
                        message_count: 1,
                        ..Ticket::new(id, &from, 1_700_000_000 + id as i64)
                    };
                    if id.is_multiple_of(50) {
                        t.tags.push("vip".into());
                    }
                    tx.put_message(&MessageRecord {
                        seq: id,
                        ticket: Some(id),
                        message_id: format!("m{id}@example.org"),
                        direction: Direction::Inbound,
                        kind: MessageKind::Customer,
                        from,
                        to: vec!["support@example.test".into()],
                        subject,
                        date: t.created_at,
                        text,
                        stranger: None,
                    })?;
                    tx.put_ticket(&t)?;
                }
                Ok(())
            })
            .expect("write");
    }
    start.elapsed().as_secs_f64()
}

fn wait_caught_up(index: &SearchIndex) {
    while !index.caught_up().expect("caught up") {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn main() {
    let env = |k: &str, d: u64| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("BENCH_MESSAGES", 100_000);
    let m = env("BENCH_INTAKE", 50_000);
    let dir = std::env::temp_dir().join(format!("postdesk-bench-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).expect("store");
    let corpus = Corpus::new(50_000);
    let mut rng = Rng(42);

    let written = write_tickets(&store, &corpus, &mut rng, 1, n);
    println!(
        "intake, indexing off: {n} messages (one per ticket) in {written:.1} s ({:.0}/s, 1,000 per transaction)",
        n as f64 / written
    );
    let store_bytes = dir_size(&dir);

    let start = Instant::now();
    let index = SearchIndex::start(&dir, store.clone()).expect("index");
    wait_caught_up(&index);
    let built = start.elapsed().as_secs_f64();
    let index_bytes = dir_size(&dir.join(postdesk::store::SEARCH_DIR));
    println!(
        "index build from the store (first start, postdesk reindex): {built:.1} s ({:.0} messages/s)",
        n as f64 / built
    );
    println!(
        "index size: {:.1} MiB ({:.0} B per message); store file {:.1} MiB ({:.0} B per message)",
        index_bytes as f64 / 1_048_576.0,
        index_bytes as f64 / n as f64,
        store_bytes as f64 / 1_048_576.0,
        store_bytes as f64 / n as f64
    );

    let mut rng_q = Rng(7);
    let w = &corpus.words;
    type Make = fn(&[String], &mut Rng) -> String;
    let cases: [(&str, Make); 8] = [
        ("word (rank 100-5100)", |w, r| {
            w[100 + (r.next() % 5000) as usize].clone()
        }),
        ("two words (rank < 300)", |w, r| {
            format!(
                "{} {}",
                w[(r.next() % 300) as usize],
                w[(r.next() % 300) as usize]
            )
        }),
        ("phrase of two top-50 words", |w, r| {
            format!(
                "\"{} {}\"",
                w[(r.next() % 50) as usize],
                w[(r.next() % 50) as usize]
            )
        }),
        ("prefix (3 letters)", |w, r| {
            format!("{}*", &w[100 + (r.next() % 5000) as usize][..3])
        }),
        ("very common word (top 5)", |w, r| {
            w[(r.next() % 5) as usize].clone()
        }),
        ("word + from:", |w, r| {
            format!(
                "{} from:c{}@example.org",
                w[(r.next() % 1000) as usize],
                r.next() % 5000
            )
        }),
        ("word + status:open + tag:vip", |w, r| {
            format!("{} status:open tag:vip", w[(r.next() % 1000) as usize])
        }),
        ("from: alone", |_, r| {
            format!("from:c{}@example.org", r.next() % 5000)
        }),
    ];
    for (label, make) in cases {
        let mut times = Vec::new();
        let mut totals = 0usize;
        for _ in 0..100 {
            let q = Query::parse(&make(w, &mut rng_q)).expect("query");
            let t = Instant::now();
            let r = index.search(&q, 20).expect("search");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            totals += r.total;
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        println!(
            "query {label}: p50 {:.2} ms, p95 {:.2} ms (mean hits {})",
            p(0.5),
            p(0.95),
            totals / times.len()
        );
    }

    if m > 0 {
        // The same number written without the indexer, for a fair rate.
        index.stop();
        drop(index);
        let off = write_tickets(&store, &corpus, &mut rng, n + 1, n + m);
        let index = SearchIndex::start(&dir, store.clone()).expect("index");
        wait_caught_up(&index);
        let start = Instant::now();
        let on = write_tickets(&store, &corpus, &mut rng, n + m + 1, n + 2 * m);
        wait_caught_up(&index);
        let caught = start.elapsed().as_secs_f64();
        println!(
            "intake of {m} more: indexing off {:.0}/s, indexing on {:.0}/s (index caught up {:.1} s after the first write: {:.0} messages/s end to end)",
            m as f64 / off,
            m as f64 / on,
            caught,
            m as f64 / caught
        );
        index.stop();
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
