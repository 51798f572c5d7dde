//! Each store's own compression dictionaries (see `encoding.rs` for why).
//!
//! A kind of value (raw mail, message records, tickets, events, report
//! summaries) is written without a dictionary until `dictionary_after`
//! values of it went through the codec (1,000 by default). The next write
//! first trains a dictionary from the newest stored values of that kind
//! (decoded, mail addresses cut out), keeps it in `dictionaries` under its
//! id and names it in META `dictionary:<kind>`, in a durable commit of its
//! own; only then does the codec use it. So no value on disk ever names a
//! dictionary that is not on disk before it: redb commits are ordered, and
//! a crash loses a suffix of lazy commits, never the durable one before.
//!
//! Dictionaries are never changed or deleted while a value may name them;
//! `postdesk compact` re-encodes every value with the current ones.
//! Values written before a dictionary existed stay as they are (zstd
//! without a dictionary, deflate or plain) and read as before.

use super::encoding::{self, Codec, Encoder, Kind};
use super::*;

/// Dictionary id → dictionary bytes: every dictionary a value may name.
pub(super) const DICTIONARIES: TableDefinition<u32, &[u8]> = TableDefinition::new("dictionaries");

/// Values of a kind written without a dictionary before one is trained,
/// and how many of the newest ones it is trained on.
pub const DEFAULT_DICTIONARY_AFTER: u64 = 1000;

/// META key set when a dictionary may hold erased personal data: the next
/// `postdesk compact` trains every dictionary anew.
const STALE: &str = "dictionaries_stale";

fn meta_key(kind: Kind) -> String {
    format!("dictionary:{}", kind.name())
}

/// What a dictionary learns from is at the start of a value (a message's
/// header fields, a record's keys); the rest of a large one (an
/// attachment) is left out.
const SAMPLE_BYTES: usize = 16 * 1024;

/// All samples of one training together: recent mail with large
/// attachments must not make the daemon hold a thousand of them.
const SAMPLES_TOTAL: usize = 8 * 1024 * 1024;

/// Up to `n` of the newest stored values of `kind`, decoded, each cut to
/// [`SAMPLE_BYTES`] and together at most [`SAMPLES_TOTAL`].
fn samples(r: &redb::ReadTransaction, kind: Kind, n: usize) -> Result<Vec<Vec<u8>>> {
    fn newest<K: redb::Key + 'static>(
        t: &impl ReadableTable<K, &'static [u8]>,
        table: &'static str,
        n: usize,
        decode: impl Fn(&[u8]) -> std::result::Result<Vec<u8>, encoding::DecodeError>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut total = 0;
        for item in t.iter()?.rev().take(n) {
            let (_, v) = item?;
            let mut sample =
                decode(v.value()).map_err(|source| StoreError::Encoding { table, source })?;
            sample.truncate(SAMPLE_BYTES);
            total += sample.len();
            out.push(sample);
            if total >= SAMPLES_TOTAL {
                break;
            }
        }
        Ok(out)
    }
    let record = |v: &[u8]| encoding::decode_record(v).map(|c| c.into_owned());
    match kind {
        Kind::Raw => newest(
            &r.open_table(RAW_ENCODED)?,
            "raw_encoded",
            n,
            encoding::decode_tagged,
        ),
        Kind::Message => newest(&r.open_table(MESSAGES)?, "messages", n, record),
        Kind::Ticket => newest(&r.open_table(TICKETS)?, "tickets", n, record),
        Kind::Event => newest(&r.open_table(EVENTS)?, "events", n, record),
        Kind::Summary => newest(
            &r.open_table(rollups::REPORT_SUMMARIES)?,
            "report_summaries",
            n,
            record,
        ),
    }
}

impl Tx<'_> {
    /// Asks the next `postdesk compact` to replace every dictionary.
    pub(super) fn mark_dictionaries_stale(&mut self) -> Result<()> {
        self.txn.open_table(META)?.insert(STALE, 1)?;
        Ok(())
    }
}

impl Store {
    /// Whether an erasure found personal data in a dictionary since the
    /// last `postdesk compact`.
    pub fn dictionaries_stale(&self) -> Result<bool> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(META)?.get(STALE)?.is_some())
    }

    /// After every value was rewritten with the current dictionaries
    /// (offline, in `postdesk compact`): drops the others and the stale
    /// mark. No value names a dropped one: nothing else writes meanwhile.
    pub(super) fn drop_unused_dictionaries(&self) -> Result<u64> {
        let current: Vec<u32> = self
            .codec()
            .encoders()
            .iter()
            .flatten()
            .map(|e| e.id())
            .collect();
        self.write(|tx| {
            let mut t = tx.txn.open_table(DICTIONARIES)?;
            let unused: Vec<u32> = t
                .iter()?
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<std::result::Result<_, _>>()?;
            let mut dropped = 0;
            for id in unused.into_iter().filter(|id| !current.contains(id)) {
                t.remove(id)?;
                dropped += 1;
            }
            let mut meta = tx.txn.open_table(META)?;
            meta.remove(STALE)?;
            for kind in Kind::ALL {
                if self.codec().encoders()[kind as usize].is_none() {
                    meta.remove(meta_key(kind).as_str())?;
                }
            }
            Ok(dropped)
        })
    }

    /// Forgets the current dictionaries (values keep naming theirs, which
    /// stay stored until [`Store::drop_unused_dictionaries`]).
    pub(super) fn forget_dictionaries(&self) {
        let old = self.codec();
        self.set_codec(Codec::new(old.compresses(), Default::default()));
    }

    /// Registers every dictionary of the store and puts the current one of
    /// each kind in the codec (at open).
    pub(super) fn load_dictionaries(&self) -> Result<()> {
        let r = self.db()?.0.begin_read()?;
        let dictionaries = r.open_table(DICTIONARIES)?;
        for item in dictionaries.iter()? {
            let (_, v) = item?;
            encoding::register(v.value())?;
        }
        let meta = r.open_table(META)?;
        let mut encoders: [Option<Arc<Encoder>>; 5] = Default::default();
        for (slot, kind) in encoders.iter_mut().zip(Kind::ALL) {
            let Some(id) = meta.get(meta_key(kind).as_str())? else {
                continue;
            };
            let id = u32::try_from(id.value()).unwrap_or(0);
            match dictionaries.get(id)? {
                Some(bytes) => *slot = Some(Arc::new(Encoder::new(bytes.value())?)),
                None => tracing::warn!(
                    kind = kind.name(),
                    id = format_args!("{id:08x}"),
                    "the store names a dictionary it does not hold; training a new one"
                ),
            }
        }
        let compress = self.codec().compresses();
        self.set_codec(Codec::new(compress, encoders));
        Ok(())
    }

    /// Trains what [`Codec::untrained`] says is due; called before a write
    /// transaction begins. Only one thread trains at a time, and a write
    /// made by the training itself does not train again.
    pub(super) fn train_due_dictionaries(&self) {
        let after = self.shared.dictionary_after.load(Ordering::Relaxed);
        if self.codec().untrained(after).is_empty() {
            return;
        }
        let Ok(_training) = self.shared.training.try_lock() else {
            return;
        };
        let due = self.codec().untrained(after);
        if due.is_empty() {
            return;
        }
        if let Err(e) = self.train_dictionaries(&due) {
            tracing::warn!(error = %e, "training compression dictionaries failed; writing without");
        }
    }

    /// Trains and stores a dictionary for each of `kinds` from the newest
    /// `dictionary_after` values of that kind, then writes with them.
    /// Returns the kinds that got one (too few or too uniform samples give
    /// none; the kind tries again after as many values more).
    pub fn train_dictionaries(&self, kinds: &[Kind]) -> Result<Vec<Kind>> {
        let n = self.shared.dictionary_after.load(Ordering::Relaxed).max(1) as usize;
        let mut trained: Vec<(Kind, Vec<u8>)> = Vec::new();
        {
            let r = self.db()?.0.begin_read()?;
            for &kind in kinds {
                let samples = samples(&r, kind, n)?;
                let started = Instant::now();
                match encoding::train(kind, &samples) {
                    Some(d) => {
                        tracing::info!(
                            kind = kind.name(),
                            samples = samples.len(),
                            bytes = d.len(),
                            ms = started.elapsed().as_millis() as u64,
                            "compression dictionary trained"
                        );
                        trained.push((kind, d));
                    }
                    None => tracing::info!(
                        kind = kind.name(),
                        samples = samples.len(),
                        "too little to train a compression dictionary from; trying later"
                    ),
                }
            }
        }
        let mut encoders = self.codec().encoders().clone();
        let mut done = Vec::new();
        let mut stored = Vec::new();
        for (kind, bytes) in trained {
            match Encoder::new(&bytes) {
                Ok(e) => {
                    encoders[kind as usize] = Some(Arc::new(e));
                    stored.push((kind, bytes));
                }
                // A clash of ids (one in four billion) or an unusable
                // dictionary: this kind goes on without one.
                Err(e) => tracing::warn!(kind = kind.name(), error = %e, "dictionary not used"),
            }
        }
        if !stored.is_empty() {
            // Durable, and before any value uses it (see the module comment).
            self.write(|tx| {
                let mut t = tx.txn.open_table(DICTIONARIES)?;
                let mut meta = tx.txn.open_table(META)?;
                for (kind, bytes) in &stored {
                    let id = encoding::dictionary_id(bytes);
                    t.insert(id, bytes.as_slice())?;
                    meta.insert(meta_key(*kind).as_str(), u64::from(id))?;
                }
                Ok(())
            })?;
            done = stored.iter().map(|(k, _)| *k).collect();
        }
        let old = self.codec();
        let fresh = Codec::new(old.compresses(), encoders);
        // Kinds that failed start counting again; the others carry over.
        fresh.carry_counts(&old, kinds);
        self.set_codec(fresh);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::encoding::dictionary_of;
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-dict-{name}-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mail(i: u64) -> Vec<u8> {
        format!(
            "From: Customer {i} <c{i}@example.org>\r\nTo: support@example.test\r\n\
             Subject: Printer {i} jams again\r\nMessage-ID: <m{i}@example.org>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n\
             Hello, the printer on floor {i} jams whenever we print more than ten pages.\r\n\
             We tried another paper tray. Could somebody have a look this week?\r\n"
        )
        .into_bytes()
    }

    /// Writes ticket `i` with its raw mail, record and an event.
    fn write_ticket(store: &Store, i: u64) {
        store
            .write(|tx| {
                let mut t = Ticket::new(i, &format!("c{i}@example.org"), i as i64);
                t.subject = format!("Printer {i} jams again");
                tx.put_raw(i, &mail(i))?;
                tx.put_message_unlisted(&MessageRecord {
                    seq: i,
                    ticket: Some(i),
                    message_id: format!("m{i}@example.org"),
                    direction: Direction::Inbound,
                    kind: MessageKind::Customer,
                    from: format!("c{i}@example.org"),
                    to: vec!["support@example.test".into()],
                    subject: t.subject.clone(),
                    date: i as i64,
                    text: String::from_utf8_lossy(&mail(i)).into_owned(),
                    stranger: None,
                })?;
                tx.add_event(
                    &mut t,
                    Event {
                        at: i as i64,
                        kind: "created".into(),
                        actor: format!("c{i}@example.org"),
                        detail: format!("by mail, queue support, message {i}"),
                        message: Some(i),
                    },
                )?;
                tx.put_ticket(&t)
            })
            .unwrap();
    }

    fn stored(store: &Store, table: TableDefinition<u64, &[u8]>, key: u64) -> Vec<u8> {
        let r = store.db().unwrap().0.begin_read().unwrap();
        let t = r.open_table(table).unwrap();
        t.get(key).unwrap().unwrap().value().to_vec()
    }

    #[test]
    fn dictionaries_are_trained_stored_before_use_and_travel_with_backups() {
        let dir = temp("train");
        let store = Store::open(&dir).unwrap();
        store.set_dictionary_after(40);
        for i in 1..=60 {
            write_ticket(&store, i);
        }
        // Trained once 40 values of each kind were written; the later
        // values name their kind's dictionary.
        let r = store.db().unwrap().0.begin_read().unwrap();
        let meta = r.open_table(META).unwrap();
        let dictionaries = r.open_table(DICTIONARIES).unwrap();
        for kind in [Kind::Raw, Kind::Message, Kind::Ticket] {
            let id = meta
                .get(meta_key(kind).as_str())
                .unwrap()
                .unwrap_or_else(|| panic!("no {} dictionary", kind.name()))
                .value() as u32;
            assert!(dictionaries.get(id).unwrap().is_some());
        }
        drop((meta, dictionaries, r));
        let raw = stored(&store, RAW_ENCODED, 60);
        let record = stored(&store, MESSAGES, 60);
        let ticket = stored(&store, TICKETS, 60);
        for v in [&raw, &record, &ticket] {
            assert!(dictionary_of(v).is_some_and(|id| id != 0), "{:?}", &v[..8]);
        }
        // Early values kept what they were written with (zstd alone).
        assert_eq!(dictionary_of(&stored(&store, RAW_ENCODED, 1)), Some(0));
        let check = |store: &Store| {
            for i in [1, 39, 41, 60] {
                assert_eq!(store.raw(i).unwrap().unwrap(), mail(i));
                assert_eq!(
                    store.message(i).unwrap().unwrap().subject,
                    format!("Printer {i} jams again")
                );
                let t = store.ticket(i).unwrap().unwrap();
                assert_eq!(t.requester, format!("c{i}@example.org"));
                assert_eq!(
                    store.ticket_events(i).unwrap()[0].detail,
                    format!("by mail, queue support, message {i}")
                );
            }
        };
        check(&store);
        // A backup carries the dictionaries: restored into an empty data
        // directory, every value reads.
        let backup = dir.join("backup.redb");
        store.backup_to(&backup).unwrap();
        drop(store);
        let restored = dir.join("restored");
        super::super::backup::restore(&backup, &restored).unwrap();
        check(&Store::open(&restored).unwrap());
        // Reopened, the store writes with the same dictionaries.
        let store = Store::open(&dir).unwrap();
        check(&store);
        write_ticket(&store, 61);
        assert_eq!(
            dictionary_of(&stored(&store, TICKETS, 61)),
            dictionary_of(&ticket)
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn compact_rewrites_older_values_with_dictionaries_or_plain() {
        let dir = temp("compact");
        let store = Store::open(&dir).unwrap();
        store.set_dictionary_after(u64::MAX);
        for i in 1..=300 {
            write_ticket(&store, i);
        }
        assert_eq!(dictionary_of(&stored(&store, TICKETS, 300)), Some(0));
        drop(store);
        let done = super::super::compact(&dir, true, false).unwrap();
        assert!(done.recoded.values >= 900, "{:?}", done.recoded);
        assert!(
            done.recoded.bytes_after < done.recoded.bytes_before,
            "{:?}",
            done.recoded
        );
        let store = Store::open(&dir).unwrap();
        for i in [1, 150, 300] {
            for table in [RAW_ENCODED, MESSAGES, TICKETS] {
                assert!(dictionary_of(&stored(&store, table, i)).is_some_and(|id| id != 0));
            }
            assert_eq!(store.raw(i).unwrap().unwrap(), mail(i));
            assert_eq!(
                store.ticket(i).unwrap().unwrap().subject,
                format!("Printer {i} jams again")
            );
            assert_eq!(store.ticket_events(i).unwrap()[0].message, Some(i));
        }
        drop(store);
        // Compression switched off: compact writes everything plain again.
        super::super::compact(&dir, false, false).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(stored(&store, RAW_ENCODED, 7)[0], encoding::PLAIN);
        assert_eq!(stored(&store, TICKETS, 7)[0], b'{');
        assert_eq!(store.raw(7).unwrap().unwrap(), mail(7));
        assert_eq!(store.message(7).unwrap().unwrap().seq, 7);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_erased_name_in_a_dictionary_is_reported_and_compact_replaces_the_dictionary() {
        let dir = temp("erase");
        let store = Store::open(&dir).unwrap();
        store.set_dictionary_after(40);
        // A frequent customer: their name is common enough in the store's
        // mail to be learnt by the dictionaries.
        let name = "Bartholomew Quince";
        for i in 1..=80u64 {
            let raw = format!(
                "From: {name} <bq@example.org>\r\nSubject: Order {i}\r\nMessage-ID: <q{i}@example.org>\r\n\r\n\
                 Order {i} arrived damaged again.\r\nKind regards, {name}\r\n"
            );
            store
                .write(|tx| {
                    let mut t = Ticket::new(i, "bq@example.org", i as i64);
                    t.requester_name = name.into();
                    t.subject = format!("Order {i}");
                    tx.put_raw(i, raw.as_bytes())?;
                    tx.put_message(&MessageRecord {
                        seq: i,
                        ticket: Some(i),
                        message_id: format!("q{i}@example.org"),
                        direction: Direction::Inbound,
                        kind: MessageKind::Customer,
                        from: "bq@example.org".into(),
                        to: vec!["support@example.test".into()],
                        subject: t.subject.clone(),
                        date: i as i64,
                        text: format!("Order {i} arrived damaged again.\nKind regards, {name}\n"),
                        stranger: None,
                    })?;
                    tx.put_ticket(&t)
                })
                .unwrap();
        }
        let holding = |store: &Store| {
            let r = store.db().unwrap().0.begin_read().unwrap();
            let t = r.open_table(DICTIONARIES).unwrap();
            t.iter()
                .unwrap()
                .filter(|i| {
                    let (_, v) = i.as_ref().unwrap();
                    String::from_utf8_lossy(v.value()).contains("Quince")
                })
                .count()
        };
        assert!(
            holding(&store) > 0,
            "the test needs a dictionary that learnt the name"
        );
        let plan = store.erase_plan("bq@example.org").unwrap();
        let report = store
            .write(|tx| tx.erase_customer(&plan, 1_000, true))
            .unwrap();
        assert_eq!(report.dictionaries_holding, holding(&store) as u64);
        assert!(store.dictionaries_stale().unwrap());
        drop(store);
        super::super::compact(&dir, true, false).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(holding(&store), 0);
        assert!(!store.dictionaries_stale().unwrap());
        // Everything still reads (the stubs and redacted records).
        for i in [1, 40, 80] {
            assert!(store.raw(i).unwrap().is_some());
            assert!(store.message(i).unwrap().is_some());
            assert!(store.ticket(i).unwrap().is_some());
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn compact_with_retrain_replaces_every_dictionary() {
        let dir = temp("retrain");
        let store = Store::open(&dir).unwrap();
        store.set_dictionary_after(40);
        for i in 1..=60 {
            write_ticket(&store, i);
        }
        let ids = |store: &Store| -> Vec<u32> {
            let r = store.db().unwrap().0.begin_read().unwrap();
            let t = r.open_table(DICTIONARIES).unwrap();
            t.iter().unwrap().map(|i| i.unwrap().0.value()).collect()
        };
        let before = ids(&store);
        let ticket_dictionary = dictionary_of(&stored(&store, TICKETS, 60));
        assert!(before.len() >= 3, "{before:?}");
        drop(store);
        // Without retrain, the dictionaries stay.
        super::super::compact(&dir, true, false).unwrap();
        assert_eq!(ids(&Store::open(&dir).unwrap()), before);
        super::super::compact(&dir, true, true).unwrap();
        let store = Store::open(&dir).unwrap();
        let after = ids(&store);
        assert!(
            after.iter().all(|id| !before.contains(id)),
            "{before:?} {after:?}"
        );
        assert_ne!(
            dictionary_of(&stored(&store, TICKETS, 60)),
            ticket_dictionary
        );
        for i in [1, 30, 60] {
            assert_eq!(store.raw(i).unwrap().unwrap(), mail(i));
            assert_eq!(
                store.ticket(i).unwrap().unwrap().requester,
                format!("c{i}@example.org")
            );
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn training_samples_are_bounded_whatever_the_mail_carries() {
        let dir = temp("samples");
        let store = Store::open(&dir).unwrap();
        store.set_compression(false);
        // Ten messages of 3 MB each (an attachment), then small ones.
        let big: Vec<u8> = (0..3 * 1024 * 1024u32)
            .map(|i| b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26)
            .collect();
        store
            .write(|tx| {
                for i in 1..=10 {
                    tx.put_raw(i, &big)?;
                }
                Ok(())
            })
            .unwrap();
        let r = store.db().unwrap().0.begin_read().unwrap();
        let got = samples(&r, Kind::Raw, 1000).unwrap();
        assert!(got.iter().all(|s| s.len() <= SAMPLE_BYTES));
        assert_eq!(got.len(), 10);
        let total: usize = got.iter().map(Vec::len).sum();
        assert!(total <= SAMPLES_TOTAL, "{total}");
        // A thousand asked of a store with many: stops at the total.
        drop(r);
        store
            .write(|tx| {
                for i in 11..=700 {
                    tx.put_raw(i, &big[..20_000])?;
                }
                Ok(())
            })
            .unwrap();
        let r = store.db().unwrap().0.begin_read().unwrap();
        let got = samples(&r, Kind::Raw, 1000).unwrap();
        let total: usize = got.iter().map(Vec::len).sum();
        assert!(total < SAMPLES_TOTAL + SAMPLE_BYTES, "{total}");
        assert!(got.len() < 700, "{}", got.len());
        drop((r, store));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
