//! Store size and intake rate, compression off against on, in one run:
//! bytes per ticket (file, and each table's share) and tickets per second
//! through the real write path (spool group commit, the processor with the
//! repository's rules and an acknowledgement per ticket, the acknowledgement
//! then taken off the queue as the sender would). Prints figures; not a test.
//!
//!     cargo bench --bench store                        # 100,000 tickets
//!     BENCH_TICKETS=20000 BENCH_ROUNDS=2 cargo bench --bench store
//!     BENCH_MODE=serial cargo bench --bench store      # one thread
//!
//! By default spooling and processing run on two threads as in the daemon
//! (`Mode::Pipelined`); `BENCH_MODE=serial` runs them one after the other
//! on one thread, which shows the write path's whole CPU cost per ticket.
//!
//! Each round builds a fresh store with compression off, then one with it
//! on (rounds alternate, since this VM's fsync rate drifts within minutes).
//! The mail is real: the messages of 1–16 KB under fixtures/ (list posts,
//! client replies, auto-replies; delivery reports left out, as they would
//! match no mail of ours; attribution in their MANIFEST.md files), each given its own From and Message-ID so that every
//! one opens a ticket. Compression dictionaries are trained on the first
//! half of the corpus and measured on the second (see `TRAINING_TICKETS`). No SMTP: the SMTP side is the same with or without
//! compression, so this shows the store's share undiluted.

use postdesk::clock::Clock;
use postdesk::config::Config;
use postdesk::model::{Envelope, Source};
use postdesk::process::Processor;
use postdesk::rules::{LiveRules, RuleSet};
use postdesk::store::Store;
use postdesk::token::Tokens;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

/// Messages spooled per commit (the spool writer's group commit under load).
const SPOOL_BATCH: usize = 64;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Header lines (unfolded groups) and body of a message, CRLF.
fn split(raw: &str) -> Option<(Vec<String>, String)> {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n")?;
    let mut fields: Vec<String> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut()?;
            last.push_str("\r\n");
            last.push_str(line);
        } else {
            if !line.contains(':') || line.starts_with("From ") {
                return None;
            }
            fields.push(line.to_string());
        }
    }
    Some((fields, body.replace('\n', "\r\n")))
}

/// The corpus: (header fields without the ones we set, body).
fn corpus(root: &Path) -> Vec<(Vec<String>, String)> {
    let mut files = Vec::new();
    walk(&root.join("fixtures"), &mut files);
    let replaced = [
        "from:",
        "to:",
        "cc:",
        "message-id:",
        "in-reply-to:",
        "references:",
        "date:",
        "return-path:",
        "reply-to:",
        "sender:",
    ];
    files
        .iter()
        .filter(|p| {
            !matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("md" | "toml" | "json" | "txt" | "rs" | "py" | "pem" | "key" | "crt")
            )
        })
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| (1024..=16 * 1024).contains(&b.len()))
        .filter_map(|b| String::from_utf8(b).ok())
        // Delivery reports would match none of our mail and be set aside
        // (quarantined) instead of opening tickets.
        .filter(|s| !s.to_ascii_lowercase().contains("multipart/report"))
        .filter_map(|s| split(&s))
        .map(|(fields, body)| {
            let kept = fields
                .into_iter()
                .filter(|f| {
                    let l = f.to_ascii_lowercase();
                    !replaced.iter().any(|r| l.starts_with(r))
                })
                .collect();
            (kept, body)
        })
        .collect()
}

/// Tickets written from the first half of the corpus: every dictionary is
/// trained within them (after 1,000 values of its kind). Later tickets use
/// only the second half, mail no dictionary has seen, so the figures are
/// not flattered by compressing the training set.
const TRAINING_TICKETS: usize = 1_200;

/// Ticket `i`'s message: a corpus message (its own subject and body) with
/// its own sender and Message-ID.
fn message(i: usize, corpus: &[(Vec<String>, String)]) -> Vec<u8> {
    let half = corpus.len() / 2;
    let pick = if i < TRAINING_TICKETS {
        i % half
    } else {
        half + i % (corpus.len() - half)
    };
    let (fields, body) = &corpus[pick];
    let mut m = format!(
        "From: Customer {i} <c{i}@example.org>\r\nTo: support@example.test\r\n\
         Message-ID: <bench-{i}@example.org>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
    );
    if !fields
        .iter()
        .any(|f| f.to_ascii_lowercase().starts_with("subject:"))
    {
        m.push_str(&format!("Subject: Question {i} about my order\r\n"));
    }
    for f in fields {
        m.push_str(f);
        m.push_str("\r\n");
    }
    m.push_str("\r\n");
    m.push_str(body);
    m.into_bytes()
}

struct Run {
    compress: bool,
    tickets: u64,
    seconds: f64,
    raw_bytes: u64,
    sizes: postdesk::store::StoreSize,
    compacted: postdesk::store::StoreSize,
}

/// How spooling and processing share the machine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// One thread: spool a batch, process it, deliver; the CPU cost of the
    /// whole write path per ticket.
    Serial,
    /// The daemon's shape: spool writer and processor on their own threads.
    Pipelined,
}

fn run(
    root: &Path,
    dir: &Path,
    n: usize,
    compress: bool,
    mode: Mode,
    corpus: &[(Vec<String>, String)],
) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let config = format!(
        "[server]\nhostname = \"support.example.test\"\nrules_dir = {:?}\n\
         [[mailbox]]\naddress = \"support@example.test\"\n\
         [outbound]\nrelay = \"maildir:outbox\"\nfrom = \"Example Support <support@example.test>\"\n\
         [web]\napi_token = \"bench\"\n\
         [acknowledgement]\nmax_per_address_per_hour = 1000000\n[agents]\nnotify = false\n",
        root.join("rules").to_string_lossy()
    );
    let cfg = Config::from_str(&config, &dir.join("config.toml")).expect("config");
    let rules = RuleSet::load_for(&cfg).expect("rules");
    let store = Store::open(&dir.join("data")).expect("store");
    store.set_compression(compress);
    let processor = Processor {
        cfg: Arc::new(cfg),
        store: store.clone(),
        clock: Clock::system(),
        tokens: Tokens::new(b"bench"),
        rules: Arc::new(LiveRules::new(rules)),
        committed: Arc::new(Notify::new()),
        outbound_wake: Arc::new(Notify::new()),
        public: None,
        chat_live: Default::default(),
    };
    // All mail made before the clock starts: only the store's work is timed.
    let batches: Vec<Vec<(Envelope, Vec<u8>)>> = (0..n)
        .step_by(SPOOL_BATCH)
        .map(|i| {
            (i..(i + SPOOL_BATCH).min(n))
                .map(|k| {
                    let env = Envelope {
                        mail_from: format!("c{k}@example.org"),
                        rcpt_to: vec!["support@example.test".into()],
                        received_at: Clock::system().now(),
                        source: Source::Smtp,
                        peer: "127.0.0.1".into(),
                        helo: "bench".into(),
                        imap: None,
                        sender_auth: None,
                        imported_as: None,
                    };
                    (env, message(k, corpus))
                })
                .collect()
        })
        .collect();
    let raw_bytes: u64 = batches.iter().flatten().map(|(_, r)| r.len() as u64).sum();
    let spool = |batch: &Vec<(Envelope, Vec<u8>)>| {
        let items: Vec<(&Envelope, &[u8])> = batch.iter().map(|(e, r)| (e, r.as_slice())).collect();
        store.spool_batch(&items).expect("spool");
    };
    // The sender's part: the acknowledgements leave the queue.
    let deliver = || {
        let due = store.due_jobs(i64::MAX, 10_000).expect("due");
        store
            .write_lazy(|tx| {
                for j in &due {
                    tx.remove_job(j.id)?;
                }
                Ok(())
            })
            .expect("delivered");
    };
    let start = Instant::now();
    match mode {
        Mode::Serial => {
            for batch in &batches {
                spool(batch);
                while processor.process_pending(32).expect("process") > 0 {}
                deliver();
            }
        }
        // As the daemon runs: the spool writer (its group commits, raw
        // mail compressed before each) on one thread, the processor on
        // another, taking what is spooled as it comes.
        Mode::Pipelined => {
            let spooled = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    for batch in &batches {
                        spool(batch);
                    }
                    spooled.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                loop {
                    let done = spooled.load(std::sync::atomic::Ordering::SeqCst);
                    if processor.process_pending(32).expect("process") > 0 {
                        continue;
                    }
                    deliver();
                    if done && store.spool_len().expect("spool") == 0 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            });
        }
    }
    store.flush().expect("flush");
    let seconds = start.elapsed().as_secs_f64();
    let tickets = store.ticket_count().expect("count");
    let sizes = store.sizes().expect("sizes");
    drop(processor);
    drop(store);
    // What `postdesk compact` gives back: free pages and the file's slack.
    let compacted = postdesk::store::compact(&dir.join("data"), compress, false)
        .expect("compact")
        .after;
    let _ = std::fs::remove_dir_all(dir);
    Run {
        compress,
        tickets,
        seconds,
        raw_bytes,
        sizes,
        compacted,
    }
}

fn print(r: &Run, n: usize) {
    let per = |b: u64| b as f64 / r.tickets.max(1) as f64;
    println!(
        "compression {}: {} tickets in {:.1} s = {:.0} tickets/s; file {:.1} MiB = {:.0} B/ticket \
         ({:.2}× the {:.0} B of raw mail per ticket)",
        if r.compress { "on " } else { "off" },
        r.tickets,
        r.seconds,
        n as f64 / r.seconds,
        r.sizes.file_bytes as f64 / 1048576.0,
        per(r.sizes.file_bytes),
        r.sizes.file_bytes as f64 / r.raw_bytes as f64,
        r.raw_bytes as f64 / n as f64,
    );
    println!("| table | entries | stored B/ticket | overhead B/ticket |");
    println!("|---|---:|---:|---:|");
    for t in r.sizes.tables.iter().take(14) {
        println!(
            "| {} | {} | {:.0} | {:.0} |",
            t.name,
            t.entries,
            per(t.stored_bytes),
            per(t.metadata_bytes + t.fragmented_bytes)
        );
    }
    println!(
        "| (free pages, redb's own) | | | {:.0} |",
        per(r.sizes.unaccounted())
    );
    println!(
        "after compact: file {:.1} MiB = {:.0} B/ticket ({:.2}× raw); free pages and redb's own {:.0} B/ticket",
        r.compacted.file_bytes as f64 / 1048576.0,
        per(r.compacted.file_bytes),
        r.compacted.file_bytes as f64 / r.raw_bytes as f64,
        per(r.compacted.unaccounted())
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mode = match std::env::var("BENCH_MODE").as_deref() {
        Ok("serial") => Mode::Serial,
        _ => Mode::Pipelined,
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = corpus(&root);
    assert!(corpus.len() > 50, "corpus: {} messages", corpus.len());
    let dir = root.join("target/bench-store");
    println!(
        "{} corpus messages of 1–16 KB; {n} tickets per run, {rounds} round(s), {mode:?}",
        corpus.len()
    );
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for compress in [false, true] {
            let r = run(&root, &dir, n, compress, mode, &corpus);
            print(&r, n);
            rates[usize::from(compress)].push(n as f64 / r.seconds);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "mean rate: off {:.0} tickets/s, on {:.0} tickets/s ({:+.1} %)",
        mean(&rates[0]),
        mean(&rates[1]),
        (mean(&rates[1]) / mean(&rates[0]) - 1.0) * 100.0
    );
}
