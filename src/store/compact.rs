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

/// Compacts the store of `data_dir` in place (the daemon stopped): returns
/// the sizes before and after.
pub fn compact(data_dir: &Path) -> std::result::Result<Compacted, CompactError> {
    let path = data_dir.join("postdesk.redb");
    if !path.exists() {
        return Err(CompactError::NoStore(path));
    }
    let mut db = match redb::Builder::new().set_cache_size(CACHE_BYTES).open(&path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(CompactError::InUse(path)),
        Err(e) => return Err(StoreError::Open(e).into()),
    };
    let before = sizes_of(&db, &path)?;
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
    Ok(Compacted { before, after })
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
        assert!(matches!(compact(&dir), Err(CompactError::InUse(_))));
        drop(store);
        let done = compact(&dir).unwrap();
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
            compact(&dir.join("nothing")),
            Err(CompactError::NoStore(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
