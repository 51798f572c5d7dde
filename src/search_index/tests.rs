use super::*;
use crate::model::{Direction, MessageKind, MessageRecord, Status};
use std::collections::BTreeSet;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "postdesk-search-index-{name}-{}-{}",
        std::process::id(),
        crate::clock::Clock::system().now()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn msg(seq: u64, ticket: u64, from: &str, subject: &str, text: &str) -> MessageRecord {
    MessageRecord {
        seq,
        ticket: Some(ticket),
        message_id: format!("m{seq}@example.org"),
        direction: Direction::Inbound,
        kind: MessageKind::Customer,
        from: from.into(),
        to: vec![],
        subject: subject.into(),
        date: 0,
        text: text.into(),
        stranger: None,
    }
}

const WORDS: [&str; 12] = [
    "printer", "paper", "jam", "invoice", "refund", "grüße", "printing", "login", "password",
    "broken", "urgent", "café",
];

/// What a query should find, by reading every ticket (no index).
fn brute(store: &Store, q: &Query, n: u64) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for id in 1..=n {
        let t = store.ticket(id).unwrap().unwrap();
        let doc = &store.search_hit_records(&[id]).unwrap()[0].1;
        let words: BTreeSet<String> = doc
            .parts
            .iter()
            .chain(doc.fields.iter())
            .flat_map(|p| search::tokenize(p).collect::<Vec<_>>())
            .collect();
        let ok = q.clauses.iter().all(|c| match c {
            Clause::Word(w) => words.contains(w),
            Clause::Prefix(p) => words.iter().any(|k| k.starts_with(p.as_str())),
            Clause::Phrase(ws) => doc
                .parts
                .iter()
                .chain(doc.fields.iter())
                .any(|p| search::contains_phrase(p, ws)),
            Clause::From(f) => doc.from.contains(f),
            Clause::Status(s) => t.status.as_str() == s,
            Clause::Queue(qu) => t.queue == *qu,
            Clause::Tag(tag) => t.tags.contains(tag),
            Clause::Before(b) => t.created_at < *b,
            Clause::After(a) => t.created_at >= *a,
        });
        if ok {
            out.insert(id);
        }
    }
    out
}

const QUERIES: [&str; 13] = [
    "printer",
    "\"paper jam\"",
    "print*",
    "grüße status:open",
    "from:c3@example.org",
    "from:c3",
    "tag:vip jam",
    "queue:billing refund",
    "status:resolved",
    "after:1970-01-20 before:1970-02-10 invoice",
    "nothing",
    "café",
    "paper jam invoice",
];

#[test]
fn search_agrees_with_a_full_scan_follows_changes_and_rebuilds_the_same() {
    let dir = temp_dir("scan");
    let store = Store::open(&dir).unwrap();
    let index = SearchIndex::start(&dir, store.clone()).unwrap();
    let n = 60u64;
    let mut seed = 7u64;
    let mut rnd = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    let mut seq = 0;
    for id in 1..=n {
        let mut t = Ticket::new(id, &format!("c{}@example.org", id % 7), id as i64 * 86_400);
        t.subject = format!("{} {}", WORDS[rnd(12) as usize], WORDS[rnd(12) as usize]);
        t.status = [Status::New, Status::Open, Status::Resolved][rnd(3) as usize];
        t.queue = ["general", "billing"][rnd(2) as usize].into();
        if rnd(3) == 0 {
            t.tags.push("vip".into());
        }
        let mut ms = Vec::new();
        for _ in 0..=rnd(3) {
            seq += 1;
            let text: Vec<&str> = (0..rnd(20) + 1).map(|_| WORDS[rnd(12) as usize]).collect();
            ms.push(msg(seq, id, &t.requester, &t.subject, &text.join(" ")));
        }
        store
            .write(|tx| {
                for m in &ms {
                    tx.put_message(m)?;
                }
                tx.put_ticket(&t)
            })
            .unwrap();
    }
    let check = |index: &SearchIndex| {
        for text in QUERIES {
            let q = Query::parse(text).unwrap();
            let r = index.search(&q, 1000).unwrap();
            let got: BTreeSet<u64> = r.hits.iter().map(|h| h.ticket.id).collect();
            let want = brute(&store, &q, n);
            assert_eq!(got, want, "{text}");
            assert_eq!(r.total, want.len(), "{text}");
            // Best first; among equals, the newer ticket.
            assert!(
                r.hits.windows(2).all(|w| w[0].score > w[1].score
                    || (w[0].score == w[1].score && w[0].ticket.id > w[1].ticket.id)),
                "{text}"
            );
        }
    };
    check(&index);
    // Changes are found by the next search: a new message, a new tag, a status.
    let mut t = store.ticket(5).unwrap().unwrap();
    t.tags.push("zebra".into());
    t.status = Status::Closed;
    store
        .write(|tx| {
            tx.put_message(&msg(
                999,
                5,
                "x@example.org",
                &t.subject,
                "a flamingo appeared",
            ))?;
            tx.put_ticket(&t)
        })
        .unwrap();
    let ids = |index: &SearchIndex, q: &str| -> Vec<u64> {
        let r = index.search(&Query::parse(q).unwrap(), 10).unwrap();
        r.hits.iter().map(|h| h.ticket.id).collect()
    };
    assert_eq!(ids(&index, "flamingo"), vec![5]);
    assert_eq!(ids(&index, "zebra"), vec![5]);
    assert_eq!(ids(&index, "tag:zebra status:closed"), vec![5]);
    assert_eq!(ids(&index, "from:x@example.org"), vec![5]);
    check(&index);
    // A rebuild from the records gives the same answers.
    let answers = |index: &SearchIndex| -> Vec<Vec<(u64, f64)>> {
        QUERIES
            .iter()
            .map(|q| {
                let r = index.search(&Query::parse(q).unwrap(), 1000).unwrap();
                r.hits.iter().map(|h| (h.ticket.id, h.score)).collect()
            })
            .collect()
    };
    let before = answers(&index);
    assert_eq!(index.rebuild().unwrap(), n);
    assert_eq!(index.documents(), n);
    same_answers(&answers(&index), &before);
    // Snippets mark the words found.
    let r = index.search(&Query::parse("flamingo").unwrap(), 1).unwrap();
    assert!(
        r.hits[0]
            .snippet
            .iter()
            .any(|p| p.hit && p.text == "flamingo")
    );
    index.stop();
    // Reopened, nothing to rebuild: the same answers, the queue empty.
    let index = SearchIndex::start(&dir, store.clone()).unwrap();
    assert!(index.caught_up().unwrap());
    same_answers(&answers(&index), &before);
    assert_eq!(store.search_queue_len().unwrap(), 0);
    index.stop();
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

/// The same tickets found. Scores (and so the order of near ties) may
/// move a little: tantivy's BM25 statistics count replaced documents until
/// their segments are merged.
fn same_answers(a: &[Vec<(u64, f64)>], b: &[Vec<(u64, f64)>]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let ids = |v: &[(u64, f64)]| v.iter().map(|h| h.0).collect::<BTreeSet<_>>();
        assert_eq!(ids(x), ids(y));
    }
}

/// The index is derived data: missing, damaged or of another format, it is
/// built again from the store; a change it has not taken in (the daemon
/// stopped first) is still queued and indexed at the next start.
#[test]
fn a_missing_damaged_or_outdated_index_is_rebuilt_and_the_queue_survives() {
    let dir = temp_dir("rebuild");
    let store = Store::open(&dir).unwrap();
    let mut t = Ticket::new(1, "ann@example.org", 0);
    t.subject = "Scanner offline".into();
    store
        .write(|tx| {
            tx.put_message(&msg(1, 1, "ann@example.org", &t.subject, "It blinks."))?;
            tx.put_ticket(&t)
        })
        .unwrap();
    let found = |index: &SearchIndex, q: &str| -> Vec<u64> {
        let r = index.search(&Query::parse(q).unwrap(), 5).unwrap();
        r.hits.iter().map(|h| h.ticket.id).collect()
    };
    let index = SearchIndex::start(&dir, store.clone()).unwrap();
    assert_eq!(found(&index, "blinks"), vec![1]);
    index.stop();
    drop(index);

    // Changed while no indexer runs: the queue keeps it for the next start.
    store
        .write(|tx| {
            tx.put_message(&msg(2, 1, "ann@example.org", &t.subject, "Now it beeps."))?;
            tx.put_ticket(&t)
        })
        .unwrap();
    assert!(store.search_queue_len().unwrap() > 0);
    let index = SearchIndex::start(&dir, store.clone()).unwrap();
    assert_eq!(found(&index, "beeps"), vec![1]);
    index.stop();
    drop(index);

    let search_dir = dir.join(crate::store::SEARCH_DIR);
    // Deleted.
    std::fs::remove_dir_all(&search_dir).unwrap();
    let index = SearchIndex::start(&dir, store.clone()).unwrap();
    assert_eq!(found(&index, "blinks beeps"), vec![1]);
    index.stop();
    drop(index);
    // Damaged: every file emptied.
    for e in std::fs::read_dir(&search_dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, b"").unwrap();
        }
    }
    let index = SearchIndex::start(&dir, store.clone()).unwrap();
    assert_eq!(found(&index, "scanner"), vec![1]);
    index.stop();
    drop(index);
    // Of an older format: the last commit's payload says so.
    {
        let (mut engine, current) = engine::Engine::open(&search_dir).unwrap();
        assert!(current);
        engine.clear().unwrap();
        let mut prepared = engine_writer(&mut engine).prepare_commit().unwrap();
        prepared.set_payload("postdesk-search 0");
        prepared.commit().unwrap();
    }
    let (_, current) = engine::Engine::open(&search_dir).unwrap();
    assert!(!current);
    let index = SearchIndex::start(&dir, store.clone()).unwrap();
    assert_eq!(found(&index, "scanner"), vec![1]);
    index.stop();
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

fn engine_writer(engine: &mut engine::Engine) -> &mut tantivy::IndexWriter {
    engine.writer_for_tests()
}

#[test]
fn words_are_cut_like_the_query_tokenizer() {
    use tantivy::tokenizer::{TokenStream, Tokenizer};
    let text = "Grüße aus KÖLN: e-mail #42 ".to_string() + &"x".repeat(60);
    let mut words = engine::words_for_tests();
    let mut stream = words.token_stream(&text);
    let mut got = Vec::new();
    while stream.advance() {
        let t = stream.token();
        got.push((t.text.clone(), t.position));
    }
    let want: Vec<(String, usize)> = search::tokenize(&text)
        .enumerate()
        .map(|(i, w)| (w, i))
        .collect();
    assert_eq!(got, want);
}
