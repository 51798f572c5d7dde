//! A consistent copy of the store while the daemon runs, and putting one back.
//!
//! The copy is taken from one redb read transaction (a snapshot: writers go
//! on, intake is not paused) into a fresh database file, table by table with
//! each table's own types. A table the copy does not know (one added later
//! without being listed here) fails the backup by name rather than leaving
//! it out silently.

use super::*;
use redb::{Key, MultimapTableHandle, TableHandle, Value};

/// What a backup or restore holds.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BackupSummary {
    pub tables: usize,
    pub tickets: u64,
    pub messages: u64,
}

fn copy_table<K: Key + 'static, V: Value + 'static>(
    src: &redb::ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
    copied: &mut Vec<String>,
) -> Result<u64> {
    copied.push(def.name().to_string());
    let from = match src.open_table(def) {
        Ok(t) => t,
        // Not created in this store (an older file): nothing to copy.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(redb::Error::from(e).into()),
    };
    let mut to = dst.open_table(def).map_err(redb::Error::from)?;
    let mut n = 0;
    for entry in from.iter().map_err(redb::Error::from)? {
        let (k, v) = entry.map_err(redb::Error::from)?;
        to.insert(k.value(), v.value()).map_err(redb::Error::from)?;
        n += 1;
    }
    Ok(n)
}

fn copy_multimap<K: Key + 'static, V: Key + 'static>(
    src: &redb::ReadTransaction,
    dst: &WriteTransaction,
    def: MultimapTableDefinition<K, V>,
    copied: &mut Vec<String>,
) -> Result<()> {
    copied.push(def.name().to_string());
    let from = match src.open_multimap_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(redb::Error::from(e).into()),
    };
    let mut to = dst.open_multimap_table(def).map_err(redb::Error::from)?;
    for entry in from.iter().map_err(redb::Error::from)? {
        let (k, values) = entry.map_err(redb::Error::from)?;
        for v in values {
            let v = v.map_err(redb::Error::from)?;
            to.insert(k.value(), v.value()).map_err(redb::Error::from)?;
        }
    }
    Ok(())
}

/// Copies every table of `src` into `dst` (a fresh database).
fn copy_all(src: &redb::ReadTransaction, dst: &WriteTransaction) -> Result<BackupSummary> {
    let mut copied = Vec::new();
    let c = &mut copied;
    copy_table(src, dst, META, c)?;
    copy_table(src, dst, SECRETS, c)?;
    copy_table(src, dst, RAW, c)?;
    copy_table(src, dst, RAW_ENCODED, c)?;
    copy_table(src, dst, SPOOL, c)?;
    let messages = copy_table(src, dst, MESSAGES, c)?;
    let tickets = copy_table(src, dst, TICKETS, c)?;
    copy_multimap(src, dst, TICKET_MESSAGES, c)?;
    copy_table(src, dst, EVENTS, c)?;
    copy_table(src, dst, MSGID_INDEX, c)?;
    copy_table(src, dst, DEDUP, c)?;
    copy_table(src, dst, OUTBOUND, c)?;
    copy_table(src, dst, OUTBOUND_DUE, c)?;
    copy_table(src, dst, ACK_RATE, c)?;
    copy_table(src, dst, SLA_TIMERS, c)?;
    copy_table(src, dst, DUPLICATES, c)?;
    copy_table(src, dst, QUARANTINE, c)?;
    copy_table(src, dst, IMAP_CURSORS, c)?;
    copy_table(src, dst, HELD, c)?;
    copy_table(src, dst, AGENT_LOAD, c)?;
    copy_table(src, dst, WEB_SESSIONS, c)?;
    copy_table(src, dst, TICKET_INDEX, c)?;
    copy_table(src, dst, TICKET_COUNTS, c)?;
    copy_table(src, dst, super::merge::MERGED_INTO, c)?;
    copy_multimap(src, dst, super::merge::MERGED_FROM, c)?;
    copy_table(src, dst, super::unseen_refs::UNSEEN_REFS, c)?;
    copy_table(src, dst, super::queue_index::QUEUE_INDEX, c)?;
    copy_table(src, dst, super::queue_index::QUEUE_COUNTS, c)?;
    copy_table(src, dst, super::queue_index::QUEUE_KEY_IDS, c)?;
    copy_table(src, dst, super::search::MESSAGE_EXTRAS, c)?;
    copy_table(src, dst, super::bouncing::BOUNCING, c)?;
    copy_table(src, dst, super::rollups::TICKET_CHANNEL, c)?;
    copy_table(src, dst, super::rollups::REPORT_SUMMARIES, c)?;
    copy_table(src, dst, super::rollups::REPORT_DAYS, c)?;
    copy_table(src, dst, super::rollups::REPORT_DIRTY, c)?;
    copy_table(src, dst, super::delivery_evidence::DELIVERY_EVIDENCE, c)?;
    copy_table(src, dst, super::sender_verdicts::SENDER_VERDICTS, c)?;
    copy_table(src, dst, super::chat::CHAT_CONVERSATIONS, c)?;
    copy_table(src, dst, super::chat::CHAT_NONCES, c)?;
    copy_table(src, dst, super::chat::CHAT_AWAY, c)?;
    copy_table(src, dst, super::csat::SURVEYS, c)?;
    copy_table(src, dst, super::csat::SURVEYS_DUE, c)?;
    // Values name these; a store without them could not read its mail.
    copy_table(src, dst, super::dictionaries::DICTIONARIES, c)?;
    // The search index is tantivy's, beside the store: a restored store
    // has none and rebuilds it on start, so the queue starts empty.
    c.push(super::search_queue::SEARCH_QUEUE.name().to_string());
    let mut unknown: Vec<String> = Vec::new();
    for t in src.list_tables().map_err(redb::Error::from)? {
        if !copied.iter().any(|c| c == t.name()) {
            unknown.push(t.name().to_string());
        }
    }
    for t in src.list_multimap_tables().map_err(redb::Error::from)? {
        if !copied.iter().any(|c| c == t.name()) {
            unknown.push(t.name().to_string());
        }
    }
    if !unknown.is_empty() {
        return Err(StoreError::Unavailable(format!(
            "backup does not know the table(s) {}: list them in store/backup.rs",
            unknown.join(", ")
        )));
    }
    Ok(BackupSummary {
        tables: copied.len(),
        tickets,
        messages,
    })
}

impl Store {
    /// A fresh name next to the store for a backup being taken (same file
    /// system, so there is room where the data is, and no /tmp involved).
    pub fn backup_temp_path(&self) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = self.shared.path.parent().unwrap_or(Path::new("."));
        dir.join(format!(
            ".backup-{}-{}.redb",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Writes a consistent copy of the whole store to `dest` (a new file;
    /// an existing one is an error), from one read transaction, durably.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupSummary> {
        if dest.exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", dest.display()),
            )));
        }
        let (db, _) = self.db()?;
        let snapshot = db.begin_read().map_err(redb::Error::from)?;
        let copy = redb::Builder::new().create(dest)?;
        let tx = copy.begin_write().map_err(redb::Error::from)?;
        let summary = copy_all(&snapshot, &tx)?;
        tx.commit().map_err(redb::Error::from)?;
        drop(copy);
        std::fs::File::open(dest)?.sync_all()?;
        Ok(summary)
    }
}

/// Checks a backup file: it opens as a database and every table can be
/// read; returns what it holds.
pub fn inspect_backup(file: &Path) -> Result<BackupSummary> {
    let db = redb::ReadOnlyDatabase::open(file)?;
    let tx = db.begin_read().map_err(redb::Error::from)?;
    let count = |def: TableDefinition<u64, &[u8]>| -> Result<u64> {
        match tx.open_table(def) {
            Ok(t) => Ok(t.len().map_err(redb::Error::from)?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(redb::Error::from(e).into()),
        }
    };
    Ok(BackupSummary {
        tables: tx.list_tables().map_err(redb::Error::from)?.count()
            + tx.list_multimap_tables()
                .map_err(redb::Error::from)?
                .count(),
        tickets: count(TICKETS)?,
        messages: count(MESSAGES)?,
    })
}

/// Puts a backup in place as the store of `data_dir`, which must not have
/// one yet: checked first, copied under a temporary name, synced, renamed.
pub fn restore(file: &Path, data_dir: &Path) -> Result<BackupSummary> {
    let summary = inspect_backup(file)?;
    std::fs::create_dir_all(data_dir)?;
    let target = data_dir.join("postdesk.redb");
    if target.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} already holds a store; restore only into an empty data directory",
                data_dir.display()
            ),
        )));
    }
    // The search index is derived from the store and never part of a
    // backup: whatever index lies here belongs to another store, so it
    // goes, and the daemon rebuilds it from the restored records.
    let index = data_dir.join(super::SEARCH_DIR);
    if index.exists() {
        std::fs::remove_dir_all(&index)?;
    }
    let tmp = data_dir.join(".postdesk.redb.restoring");
    std::fs::copy(file, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(summary)
}
