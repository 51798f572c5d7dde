//! Where the store's bytes go, and giving free pages back to the file
//! system (`postdesk compact`).
//!
//! redb reuses the pages a commit frees for later writes, so the file does
//! not grow while tickets are deleted and written again; it never shrinks
//! by itself, though. Compaction moves pages down and truncates the file;
//! redb does it only with no other transaction open, so it runs offline:
//! the daemon holds the file's lock while it runs, and opening the file
//! here then fails with "already open", which is reported as [`InUse`].
//!
//! [`InUse`]: CompactError::InUse

use super::*;
use redb::{MultimapTableHandle, TableHandle};

/// One table's share of the file (redb's own accounting).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TableSize {
    pub name: String,
    pub entries: u64,
    /// Keys and values as stored (after compression, where it applies).
    pub stored_bytes: u64,
    /// Branch pages and other metadata of the table's tree.
    pub metadata_bytes: u64,
    /// Unused room inside the table's pages.
    pub fragmented_bytes: u64,
}

/// The store file and its tables.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StoreSize {
    pub file_bytes: u64,
    /// Largest first.
    pub tables: Vec<TableSize>,
}

impl StoreSize {
    /// Bytes in the file that no table accounts for: free pages and redb's
    /// own trees (allocator state, table directory).
    pub fn unaccounted(&self) -> u64 {
        let used: u64 = self
            .tables
            .iter()
            .map(|t| t.stored_bytes + t.metadata_bytes + t.fragmented_bytes)
            .sum();
        self.file_bytes.saturating_sub(used)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("no store at {0}")]
    NoStore(PathBuf),
    #[error(
        "{0} is in use (the daemon is running?): stop it first; compaction needs the store to itself"
    )]
    InUse(PathBuf),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What `postdesk compact` did.
#[derive(Debug, Clone)]
pub struct Compacted {
    pub before: StoreSize,
    pub after: StoreSize,
    pub recoded: Recoded,
}

/// Values rewritten with the current encoding by [`Store::recode`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recoded {
    pub values: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Values rewritten per write transaction: a large store is recoded in
/// many bounded commits, not in one that holds it all in memory.
const RECODE_BATCH: usize = 2000;

/// And at most about this many bytes of stored values: a batch of large
/// messages (attachments) must not hold gigabytes.
const RECODE_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Whether a batch holding `values` of `bytes` in all is full.
fn batch_full(values: usize, bytes: usize) -> bool {
    values >= RECODE_BATCH || bytes >= RECODE_BATCH_BYTES
}

/// Whether `value` is written otherwise than `codec` would write it now.
fn outdated(value: &[u8], codec: &encoding::Codec, kind: encoding::Kind) -> bool {
    let compressed = matches!(value.first(), Some(&encoding::ZSTD | &encoding::DEFLATE));
    if !codec.compresses() {
        return compressed;
    }
    let wanted = codec.encoders()[kind as usize]
        .as_ref()
        .map_or(0, |e| e.id());
    match encoding::dictionary_of(value) {
        Some(id) => id != wanted,
        // Deflate (earlier versions) or plain: worth a try (a value that
        // comes out the same, e.g. a small one staying plain, is not written).
        None => true,
    }
}

fn recode_table<K>(
    store: &Store,
    table: TableDefinition<K, &'static [u8]>,
    name: &'static str,
    kind: encoding::Kind,
    tagged: bool,
    done: &mut Recoded,
) -> Result<()>
where
    K: redb::Key + Copy + 'static + for<'a> redb::Value<SelfType<'a> = K>,
{
    let codec = store.codec();
    let mut after: Option<K> = None;
    loop {
        let batch: Vec<(K, Vec<u8>)> = {
            let r = store.db()?.0.begin_read()?;
            let t = r.open_table(table)?;
            let range = match after {
                Some(k) => {
                    t.range::<K>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))?
                }
                None => t.range::<K>(..)?,
            };
            let (mut batch, mut bytes) = (Vec::new(), 0);
            for item in range {
                let (k, v) = item?;
                bytes += v.value().len();
                batch.push((k.value(), v.value().to_vec()));
                if batch_full(batch.len(), bytes) {
                    break;
                }
            }
            batch
        };
        let Some(&(last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last);
        let mut changed = Vec::new();
        for (k, v) in batch {
            if !outdated(&v, &codec, kind) {
                continue;
            }
            let fresh = if tagged {
                let bytes = encoding::decode_tagged(&v).map_err(|source| StoreError::Encoding {
                    table: name,
                    source,
                })?;
                codec.encode_tagged(kind, &bytes)
            } else {
                let json = encoding::decode_record(&v).map_err(|source| StoreError::Encoding {
                    table: name,
                    source,
                })?;
                codec.encode_record(kind, json.into_owned())
            };
            if fresh != v {
                done.values += 1;
                done.bytes_before += v.len() as u64;
                done.bytes_after += fresh.len() as u64;
                changed.push((k, fresh));
            }
        }
        if !changed.is_empty() {
            store.write(|tx| {
                let mut t = tx.txn.open_table(table)?;
                for (k, v) in &changed {
                    t.insert(*k, v.as_slice())?;
                }
                Ok(())
            })?;
        }
    }
}

impl Store {
    /// Rewrites every raw message, message record, ticket, event and report
    /// summary that is not written the way the store writes now: with
    /// compression on, with each kind's dictionary (trained first where a
    /// kind has none yet, and for every kind with `retrain` or after an
    /// erasure found personal data in one); with it off, plain. Values read
    /// the same before and after. Part of `postdesk compact`.
    pub fn recode(&self, retrain: bool) -> Result<Recoded> {
        use encoding::Kind;
        // Personal data may be in a dictionary (see `erase.rs`): new ones
        // from today's values, which the erasure already cleaned.
        let retrain = retrain || self.dictionaries_stale()?;
        if retrain {
            self.forget_dictionaries();
        }
        let codec = self.codec();
        if codec.compresses() {
            let missing: Vec<Kind> = Kind::ALL
                .into_iter()
                .filter(|k| codec.encoders()[*k as usize].is_none())
                .collect();
            if !missing.is_empty() {
                self.train_dictionaries(&missing)?;
            }
        }
        let mut done = Recoded::default();
        // Untagged raw values of the oldest stores move to `raw_encoded`.
        loop {
            let batch: Vec<(u64, Vec<u8>)> = {
                let r = self.db()?.0.begin_read()?;
                let t = r.open_table(RAW)?;
                let mut batch = Vec::new();
                let mut bytes = 0;
                for item in t.iter()? {
                    let (k, v) = item?;
                    bytes += v.value().len();
                    batch.push((k.value(), v.value().to_vec()));
                    if batch_full(batch.len(), bytes) {
                        break;
                    }
                }
                batch
            };
            if batch.is_empty() {
                break;
            }
            self.write(|tx| {
                for (seq, bytes) in &batch {
                    tx.put_raw(*seq, bytes)?;
                }
                Ok(())
            })?;
        }
        recode_table(self, RAW_ENCODED, "raw_encoded", Kind::Raw, true, &mut done)?;
        recode_table(self, MESSAGES, "messages", Kind::Message, false, &mut done)?;
        recode_table(self, TICKETS, "tickets", Kind::Ticket, false, &mut done)?;
        recode_table(self, EVENTS, "events", Kind::Event, false, &mut done)?;
        recode_table(
            self,
            super::rollups::REPORT_SUMMARIES,
            "report_summaries",
            Kind::Summary,
            false,
            &mut done,
        )?;
        if retrain || !self.codec().compresses() {
            self.drop_unused_dictionaries()?;
        }
        Ok(done)
    }
}

fn sizes_of(db: &impl ReadableDatabase, path: &Path) -> Result<StoreSize> {
    let r = db.begin_read()?;
    let mut tables = Vec::new();
    for handle in r.list_tables()? {
        let name = handle.name().to_string();
        let t = r.open_untyped_table(handle)?;
        let s = t.stats()?;
        tables.push(TableSize {
            name,
            entries: t.len()?,
            stored_bytes: s.stored_bytes(),
            metadata_bytes: s.metadata_bytes(),
            fragmented_bytes: s.fragmented_bytes(),
        });
    }
    for handle in r.list_multimap_tables()? {
        let name = handle.name().to_string();
        let t = r.open_untyped_multimap_table(handle)?;
        let s = t.stats()?;
        tables.push(TableSize {
            name,
            entries: t.len()?,
            stored_bytes: s.stored_bytes(),
            metadata_bytes: s.metadata_bytes(),
            fragmented_bytes: s.fragmented_bytes(),
        });
    }
    tables.sort_by(|a, b| {
        (b.stored_bytes + b.metadata_bytes + b.fragmented_bytes)
            .cmp(&(a.stored_bytes + a.metadata_bytes + a.fragmented_bytes))
    });
    Ok(StoreSize {
        file_bytes: std::fs::metadata(path)?.len(),
        tables,
    })
}

impl Store {
    /// The file's size and each table's share, from one read transaction.
    pub fn sizes(&self) -> Result<StoreSize> {
        sizes_of(&*self.db()?.0, &self.shared.path)
    }
}

/// Compacts the store of `data_dir` in place (the daemon stopped): values
/// are rewritten as the store writes now (`compress`, with new
/// dictionaries if `retrain`: see [`Store::recode`]), then free pages go
/// back to the file system. Returns the sizes before and after.
pub fn compact(
    data_dir: &Path,
    compress: bool,
    retrain: bool,
) -> std::result::Result<Compacted, CompactError> {
    let path = data_dir.join("postdesk.redb");
    if !path.exists() {
        return Err(CompactError::NoStore(path));
    }
    let before = {
        let db = match redb::Builder::new().set_cache_size(CACHE_BYTES).open(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(CompactError::InUse(path)),
            Err(e) => return Err(StoreError::Open(e).into()),
        };
        sizes_of(&db, &path)?
    };
    let recoded = {
        let store = match Store::open(data_dir) {
            Ok(s) => s,
            Err(StoreError::Open(redb::DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(CompactError::InUse(path));
            }
            Err(e) => return Err(e.into()),
        };
        store.set_compression(compress);
        store.recode(retrain)?
    };
    let mut db = match redb::Builder::new().set_cache_size(CACHE_BYTES).open(&path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(CompactError::InUse(path)),
        Err(e) => return Err(StoreError::Open(e).into()),
    };
    let _span = tracing::info_span!("compact", path = %path.display()).entered();
    // Each pass moves what it can; redb says when nothing more moved.
    for _ in 0..16 {
        match db.compact() {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => return Err(StoreError::Db(e.into()).into()),
        }
    }
    let after = sizes_of(&db, &path)?;
    drop(db);
    Ok(Compacted {
        before,
        after,
        recoded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_shrinks_a_store_with_free_pages_and_refuses_an_open_one() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-compact-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let body = vec![b'x'; 20_000];
        for chunk in 0..20u64 {
            store
                .write(|tx| {
                    for i in 0..50 {
                        tx.put_raw(chunk * 50 + i, &body)?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        store
            .write(|tx| {
                for seq in 0..1000 {
                    tx.remove_raw(seq)?;
                }
                Ok(())
            })
            .unwrap();
        let sizes = store.sizes().unwrap();
        assert!(sizes.tables.iter().any(|t| t.name == "raw_encoded"));
        // The daemon (here: this open store) holds the file.
        assert!(matches!(
            compact(&dir, true, false),
            Err(CompactError::InUse(_))
        ));
        drop(store);
        let done = compact(&dir, true, false).unwrap();
        assert!(
            done.after.file_bytes < done.before.file_bytes,
            "{} → {}",
            done.before.file_bytes,
            done.after.file_bytes
        );
        // Still a working store.
        let store = Store::open(&dir).unwrap();
        store.write(|tx| tx.put_raw(5, b"again\r\n")).unwrap();
        assert_eq!(store.raw(5).unwrap().unwrap(), b"again\r\n");
        drop(store);
        assert!(matches!(
            compact(&dir.join("nothing"), true, false),
            Err(CompactError::NoStore(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
