//! The only module that knows about redb. Every table is declared here;
//! records are JSON (see `model`), raw messages are stored byte-exact.
//!
//! Invariant: a spooled message, and everything processing derives from it,
//! change in single write transactions, so a crash leaves either the spool
//! entry or its complete result, never half of both.

mod backup;
pub use backup::{BackupSummary, inspect_backup, restore};
mod compact;
mod dictionaries;
mod encoding;
pub use compact::{CompactError, Compacted, Recoded, StoreSize, TableSize, compact};
mod search;
pub use search::{MessageExtras, SEARCH_DIR};
mod search_queue;
pub use search_queue::SearchBacklog;

use crate::model::*;
use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

mod bouncing;
pub use bouncing::Bouncing;
mod sla_timers;
use sla_timers::SLA_TIMERS;
mod delivery_evidence;
pub use delivery_evidence::{DeliveryEvidence, TlsEvidence};
mod csat;
mod merge;
pub use merge::MAX_MERGE_CHAIN;
mod queue_index;
pub use queue_index::{QueueCursor, QueuePage, QueueQuery, sla_deadline};
mod ticket_changes;
pub use ticket_changes::TicketChanges;

/// Counters and small settings.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// Message sequence → raw bytes exactly as received (or as sent, for our mail),
/// untagged: written by older versions, still read (see `encoding.rs`).
const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("raw");
/// Message sequence → the raw bytes with their one-byte encoding tag
/// (plain or deflate, `encoding.rs`): where raw messages are written now.
const RAW_ENCODED: TableDefinition<u64, &[u8]> = TableDefinition::new("raw_encoded");
/// Message sequence → JSON [`Envelope`], for messages accepted but not yet processed.
const SPOOL: TableDefinition<u64, &[u8]> = TableDefinition::new("spool");
/// Message sequence → JSON [`MessageRecord`].
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const TICKETS: TableDefinition<u64, &[u8]> = TableDefinition::new("tickets");
const TICKET_MESSAGES: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("ticket_messages");
/// (ticket, event number) → JSON [`Event`].
const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
/// Every Message-ID seen or sent → its ticket. Threading by In-Reply-To/References.
const MSGID_INDEX: TableDefinition<&str, u64> = TableDefinition::new("msgid_index");
/// Dedup key (Message-ID or content hash) → first message sequence with it.
const DEDUP: TableDefinition<&str, u64> = TableDefinition::new("dedup");
/// Job id → JSON [`OutboundJob`]: the durable outbound queue.
const OUTBOUND: TableDefinition<u64, &[u8]> = TableDefinition::new("outbound");
/// (sortable next_attempt_at, job id) → (): the outbound queue in due order.
const OUTBOUND_DUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("outbound_due");
/// Address → JSON (window start, count) for acknowledgement rate limiting.
const ACK_RATE: TableDefinition<&str, &[u8]> = TableDefinition::new("ack_rate");
/// Message sequence of a duplicate → the sequence of the message it duplicates.
const DUPLICATES: TableDefinition<u64, u64> = TableDefinition::new("duplicates");
/// Message sequence → JSON [`QuarantineEntry`].
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
/// IMAP account+folder key → JSON [`ImapFolderState`]: where intake resumes.
const IMAP_CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("imap_cursors");
/// Message sequence of a held agent reply → JSON [`HeldReply`] (collision detection).
/// Small: only replies waiting for `#send` or expiry.
const HELD: TableDefinition<u64, &[u8]> = TableDefinition::new("held");
/// Agent name (lower case) → open tickets assigned to them (new, open,
/// pending): least-loaded assignment reads this instead of every ticket.
/// Kept by [`Tx::put_ticket`].
const AGENT_LOAD: TableDefinition<&str, u64> = TableDefinition::new("agent_load");
/// Hex SHA-256 of a web session id → JSON [`WebSession`]. Small: expired
/// sessions are dropped when met and swept at each login.
const WEB_SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("web_sessions");
/// META key set once `AGENT_LOAD` has been built from the tickets.
const AGENT_LOAD_BUILT: &str = "agent_load_built";
/// Secondary index of tickets by what lists filter on: `(key, ticket id)`
/// with keys `status:open`, `queue:general`, `assignee:alice`, `tag:vip`.
/// Kept by [`Tx::put_ticket`]; a filtered list walks one key's range
/// (newest first) instead of every ticket.
const TICKET_INDEX: TableDefinition<(&str, u64), ()> = TableDefinition::new("ticket_index");
/// Tickets per index key, so a one-filter list knows its total at once.
const TICKET_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("ticket_counts");
/// META key set once `TICKET_INDEX` has been built from the tickets.
const TICKET_INDEX_BUILT: &str = "ticket_index_built";

/// What the reports read: channels, rollups (see `rollups.rs`).
mod rollups;
pub use rollups::UNKNOWN_CHANNEL;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("database open: {0}")]
    Open(#[from] redb::DatabaseError),
    #[error("corrupt record in {table}: {source}")]
    Corrupt {
        table: &'static str,
        source: serde_json::Error,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value whose encoding tag or compressed bytes are damaged.
    #[error("corrupt value in {table}: {source}")]
    Encoding {
        table: &'static str,
        source: encoding::DecodeError,
    },
    /// A stored compression dictionary that cannot be used.
    #[error("compression dictionary: {0}")]
    Dictionary(#[from] encoding::DictionaryError),
    /// The database failed (I/O error, e.g. disk full) and is not reopened
    /// yet; the text says why.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An SLA timer kind with no stored code (`store/sla_timers.rs`).
    #[error("unknown SLA timer kind {0:?}")]
    UnknownSlaTimerKind(String),
}

impl StoreError {
    /// Whether this error leaves redb's database unusable until it is
    /// closed and reopened: after a failed write redb latches the I/O error
    /// and refuses every later commit ("previous I/O error").
    fn poisons_database(&self) -> bool {
        match self {
            StoreError::Db(e) => match e {
                redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed => true,
                // A failed commit discards the allocator state; redb asks for a reopen.
                redb::Error::Corrupted(m) => m.contains("reopen"),
                _ => false,
            },
            _ => false,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own plain structs to JSON cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn dec<T: DeserializeOwned>(table: &'static str, b: &[u8]) -> Result<T> {
    // Any record may have been stored compressed (see `encoding.rs`).
    let json =
        encoding::decode_record(b).map_err(|source| StoreError::Encoding { table, source })?;
    serde_json::from_slice(&json).map_err(|source| StoreError::Corrupt { table, source })
}

/// The raw message `seq` from either raw table: tagged values first, then
/// the untagged ones of older versions.
fn read_raw(
    encoded: &impl ReadableTable<u64, &'static [u8]>,
    plain: Option<&impl ReadableTable<u64, &'static [u8]>>,
    seq: MessageSeq,
) -> Result<Option<Vec<u8>>> {
    if let Some(v) = encoded.get(seq)? {
        return encoding::decode_tagged(v.value())
            .map(Some)
            .map_err(|source| StoreError::Encoding {
                table: "raw_encoded",
                source,
            });
    }
    match plain {
        Some(t) => Ok(t.get(seq)?.map(|v| v.value().to_vec())),
        None => Ok(None),
    }
}

/// The messages `links` lists for ticket `id`, oldest first (in a read or a
/// write transaction alike).
fn messages_of(
    links: &impl ReadableMultimapTable<u64, u64>,
    msgs: &impl ReadableTable<u64, &'static [u8]>,
    id: TicketId,
) -> Result<Vec<MessageRecord>> {
    let mut out = Vec::new();
    for seq in links.get(id)? {
        if let Some(v) = msgs.get(seq?.value())? {
            out.push(dec::<MessageRecord>("messages", v.value())?);
        }
    }
    out.sort_by_key(|m| m.seq);
    Ok(out)
}

/// Whose load a ticket counts towards: its assignee while it is open.
fn load_holder(status: Status, assignee: Option<&str>) -> Option<String> {
    match status {
        Status::New | Status::Open | Status::Pending => assignee.map(|a| a.to_ascii_lowercase()),
        Status::Resolved | Status::Closed => None,
    }
}

/// The part of a stored ticket that [`load_holder`] and [`index_keys`] need.
#[derive(serde::Deserialize)]
struct LoadView {
    status: Status,
    assignee: Option<String>,
    queue: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// The `TICKET_INDEX` keys of a ticket.
fn index_keys(
    status: Status,
    queue: &str,
    assignee: Option<&str>,
    tags: &[String],
) -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    keys.insert(format!("status:{}", status.as_str()));
    keys.insert(format!("queue:{queue}"));
    if let Some(a) = assignee {
        keys.insert(format!("assignee:{}", a.to_ascii_lowercase()));
    }
    for t in tags {
        keys.insert(format!("tag:{t}"));
    }
    keys
}

/// Filter for [`Store::list_tickets`].
#[derive(Debug, Default, Clone)]
pub struct TicketFilter {
    pub status: Option<String>,
    pub queue: Option<String>,
    pub assignee: Option<String>,
    pub tag: Option<String>,
    pub limit: usize,
    pub offset: usize,
    /// Keyset paging: only tickets with a smaller id (the last id of the
    /// previous page), so a deep page costs no more than the first.
    pub before: Option<TicketId>,
}

impl TicketFilter {
    /// The index keys every listed ticket must have.
    fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(s) = &self.status {
            keys.push(format!("status:{s}"));
        }
        if let Some(q) = &self.queue {
            keys.push(format!("queue:{q}"));
        }
        if let Some(a) = &self.assignee {
            keys.push(format!("assignee:{}", a.to_ascii_lowercase()));
        }
        if let Some(t) = &self.tag {
            keys.push(format!("tag:{t}"));
        }
        keys
    }
}

/// redb's page cache. Its default (1 GiB) would let a mail backlog grow the
/// daemon's memory far past what small hardware has; the hot set (spool,
/// indexes, open tickets) is much smaller, and the OS page cache holds the rest.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Least time between two attempts to reopen a failed database (and between
/// two health probes), so a disk that stays full costs little.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// Cheap to clone handle on the database. Every stage holds one; they all
/// share the database behind it, which is replaced as a whole when an I/O
/// error made redb refuse further commits (see [`Store::write`]).
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// The open database and its epoch; None after an I/O error until it is
    /// reopened.
    db: RwLock<Option<(Arc<Database>, u64)>>,
    /// Held by the one thread that reopens the database.
    reopening: Mutex<()>,
    state: Mutex<Health>,
    /// Numbers write transactions in commit order (taken while redb's write
    /// lock is held).
    writes: AtomicU64,
    /// Highest number of a durable commit that succeeded.
    durable_upto: AtomicU64,
    /// How new values are written (`[store] compress`, the dictionaries);
    /// reads handle every encoding either way.
    codec: RwLock<Arc<encoding::Codec>>,
    /// Held while dictionaries are trained (see `dictionaries.rs`).
    training: Mutex<()>,
    /// Values of a kind written before its dictionary is trained.
    dictionary_after: AtomicU64,
    /// Told the tickets each commit changed (see `ticket_changes.rs`).
    ticket_changes: TicketChanges,
}

#[derive(Default)]
struct Health {
    /// Why writes fail, from the failed write until one succeeds again.
    failure: Option<String>,
    /// The failed database, until every user has let go of it and it is closed.
    retired: Option<Arc<Database>>,
    /// Bumped with each failed database: commits not durable before it are gone.
    epoch: u64,
    last_reopen: Option<Instant>,
    last_probe: Option<Instant>,
}

/// Where a [`Store::write_lazy_marked`] commit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LazyMark {
    epoch: u64,
    write: u64,
}

/// See [`Store::lazy_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LazyState {
    /// Not yet followed by a durable commit: lost if the process dies now.
    Pending,
    /// A durable commit followed it: it survives a crash.
    Durable,
    /// The database failed after it and was reopened: it may be gone.
    MaybeLost,
}

fn open_database(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; if it did, the data is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Opens (or creates) `DIR/postdesk.redb` and makes sure every table exists.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("postdesk.redb");
        let db = open_database(&path)?;
        let store = Store {
            shared: Arc::new(Shared {
                path,
                db: RwLock::new(Some((Arc::new(db), 0))),
                reopening: Mutex::new(()),
                state: Mutex::new(Health::default()),
                writes: AtomicU64::new(0),
                durable_upto: AtomicU64::new(0),
                codec: RwLock::new(Arc::new(encoding::Codec::new(true, Default::default()))),
                training: Mutex::new(()),
                dictionary_after: AtomicU64::new(dictionaries::DEFAULT_DICTIONARY_AFTER),
                ticket_changes: TicketChanges::default(),
            }),
        };
        store.write(|tx| {
            tx.txn.open_table(META)?;
            tx.txn.open_table(SECRETS)?;
            tx.txn.open_table(RAW)?;
            tx.txn.open_table(RAW_ENCODED)?;
            tx.txn.open_table(SPOOL)?;
            tx.txn.open_table(MESSAGES)?;
            tx.txn.open_table(TICKETS)?;
            tx.txn.open_multimap_table(TICKET_MESSAGES)?;
            tx.txn.open_table(EVENTS)?;
            tx.txn.open_table(MSGID_INDEX)?;
            tx.txn.open_table(DEDUP)?;
            tx.txn.open_table(OUTBOUND)?;
            tx.txn.open_table(ACK_RATE)?;
            tx.txn.open_table(QUARANTINE)?;
            tx.txn.open_table(DUPLICATES)?;
            tx.txn.open_table(IMAP_CURSORS)?;
            tx.txn.open_table(SLA_TIMERS)?;
            sla_timers::migrate_legacy(tx.txn)?;
            tx.txn.open_table(OUTBOUND_DUE)?;
            tx.txn.open_table(HELD)?;
            tx.txn.open_table(AGENT_LOAD)?;
            tx.txn.open_table(WEB_SESSIONS)?;
            tx.txn.open_table(dictionaries::DICTIONARIES)?;
            tx.init_report_rollups()?;
            tx.rebuild_due_index_if_needed()?;
            tx.build_agent_load_if_needed()?;
            tx.build_ticket_index_if_needed()?;
            queue_index::build_if_needed(tx.txn)?;
            Ok(())
        })?;
        store.load_dictionaries()?;
        store.build_search_index_if_needed()?;
        Ok(store)
    }

    /// The database to use now. After an I/O error it is reopened here, at
    /// most once per [`REOPEN_INTERVAL`]; until then callers get
    /// [`StoreError::Unavailable`].
    fn db(&self) -> Result<(Arc<Database>, u64)> {
        let current = self
            .shared
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match current {
            Some(open) => Ok(open),
            None => self.reopen(),
        }
    }

    /// Closes the failed database once nobody uses it any more and opens the
    /// file again (redb repairs it from the last durable commit).
    fn reopen(&self) -> Result<(Arc<Database>, u64)> {
        let unavailable = |st: &Health, extra: &str| {
            StoreError::Unavailable(format!(
                "{}{extra}",
                st.failure.as_deref().unwrap_or("the database failed")
            ))
        };
        let Ok(_reopening) = self.shared.reopening.try_lock() else {
            return Err(unavailable(&lock(&self.shared.state), " (reopening)"));
        };
        if let Some(open) = self
            .shared
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(open);
        }
        let (retired, epoch) = {
            let mut st = lock(&self.shared.state);
            if st
                .last_reopen
                .is_some_and(|t| t.elapsed() < REOPEN_INTERVAL)
            {
                return Err(unavailable(&st, ""));
            }
            st.last_reopen = Some(Instant::now());
            (st.retired.take(), st.epoch)
        };
        if let Some(old) = retired {
            match Arc::try_unwrap(old) {
                Ok(db) => {
                    if let Err(e) = db.close() {
                        tracing::debug!(error = %e, "closing the failed database");
                    }
                }
                Err(still_used) => {
                    let mut st = lock(&self.shared.state);
                    st.retired = Some(still_used);
                    return Err(unavailable(&st, " (the old database is still in use)"));
                }
            }
        }
        match open_database(&self.shared.path) {
            Ok(db) => {
                let open = (Arc::new(db), epoch);
                *self
                    .shared
                    .db
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(open.clone());
                tracing::warn!(
                    path = %self.shared.path.display(),
                    "store reopened after an I/O error; commits that were not yet durable are gone"
                );
                Ok(open)
            }
            Err(e) => {
                let st = lock(&self.shared.state);
                tracing::error!(error = %e, "cannot reopen the store; will try again");
                Err(unavailable(&st, &format!("; reopening failed: {e}")))
            }
        }
    }

    /// Takes `db` out of service after `e`: later calls reopen the file.
    fn failed(&self, db: &Arc<Database>, e: &StoreError) {
        let mut slot = self
            .shared
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut st = lock(&self.shared.state);
        st.failure = Some(e.to_string());
        if slot.as_ref().is_some_and(|(cur, _)| Arc::ptr_eq(cur, db))
            && let Some((old, _)) = slot.take()
        {
            st.retired = Some(old);
            st.epoch += 1;
            st.last_reopen = Some(Instant::now());
            tracing::error!(error = %e, "store write failed; the database will be reopened");
        }
    }

    /// Why the store cannot commit, or None when the last write succeeded.
    pub fn failure(&self) -> Option<String> {
        lock(&self.shared.state).failure.clone()
    }

    /// While the store is failing: tries a small durable write (at most once
    /// per [`REOPEN_INTERVAL`]), so the failure clears once the disk has room
    /// again even when nothing else writes. Returns [`Store::failure`].
    /// The database file's size in bytes (what the disk holds, free pages
    /// included); None when it cannot be read.
    pub fn file_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.shared.path).ok().map(|m| m.len())
    }

    pub fn probe(&self) -> Option<String> {
        {
            let mut st = lock(&self.shared.state);
            if st.failure.is_none() || st.last_probe.is_some_and(|t| t.elapsed() < REOPEN_INTERVAL)
            {
                return st.failure.clone();
            }
            st.last_probe = Some(Instant::now());
        }
        let _ = self.write(|tx| {
            let now = crate::clock::Clock::system().now().max(0) as u64;
            tx.txn.open_table(META)?.insert("health_probe", now)?;
            Ok(())
        });
        self.failure()
    }

    /// Waiters on tickets' changes: woken by the commits that change them.
    pub fn ticket_changes(&self) -> &TicketChanges {
        &self.shared.ticket_changes
    }

    /// Runs `f` in one durable write transaction; nothing is written if it fails.
    ///
    /// An I/O error (disk full) poisons redb's database: it refuses every
    /// later commit until reopened. Such an error takes the database out of
    /// service here and the next use reopens it, so the daemon recovers by
    /// itself once the disk has room; [`Store::failure`] reports it meanwhile.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.write_as(true, f).map(|(v, _)| v)
    }

    /// Makes every earlier [`Store::write_lazy`] commit durable (an empty
    /// durable commit). Called on a clean stop, so a restart does not redo
    /// deliveries that were already recorded.
    pub fn flush(&self) -> Result<()> {
        self.write(|_| Ok(()))
    }

    /// Like [`Store::write`], but the commit becomes durable only with the next
    /// durable commit (or is lost in a crash). For results that are safe to
    /// redo, e.g. recording a delivery: after a crash the message is sent again.
    pub fn write_lazy<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.write_lazy_marked(f).map(|(v, _)| v)
    }

    /// [`Store::write_lazy`], returning a mark to ask [`Store::lazy_state`]
    /// later whether the commit became durable or may have been lost with a
    /// failed database.
    pub fn write_lazy_marked<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<(T, LazyMark)> {
        self.write_as(false, f)
    }

    /// Whether the lazy commit `mark` is durable yet.
    pub fn lazy_state(&self, mark: LazyMark) -> LazyState {
        let epoch = lock(&self.shared.state).epoch;
        if mark.epoch != epoch {
            LazyState::MaybeLost
        } else if self.shared.durable_upto.load(Ordering::SeqCst) > mark.write {
            LazyState::Durable
        } else {
            LazyState::Pending
        }
    }

    fn write_as<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<(T, LazyMark)> {
        self.train_due_dictionaries();
        let (db, epoch) = self.db()?;
        let result = (|| {
            let mut txn = db.begin_write()?;
            let write = self.shared.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if !durable && let Err(e) = txn.set_durability(redb::Durability::None) {
                tracing::debug!(error = %e, "non-durable commit refused; committing durably");
            }
            let mut tx = Tx {
                txn: &txn,
                search_dirty: Default::default(),
                codec: self.codec(),
            };
            let done = f(&mut tx);
            // The tickets changed, for their waiters once committed.
            let changed = tx.search_dirty.clone();
            match done.and_then(|v| tx.refresh_search().map(|()| v)) {
                Ok(v) => {
                    tx.refresh_report_rollups()?;
                    txn.commit()?;
                    self.shared.ticket_changes.committed(&changed);
                    Ok((v, write))
                }
                Err(e) => {
                    let _ = txn.abort();
                    Err(e)
                }
            }
        })();
        match result {
            Ok((v, write)) => {
                if durable {
                    self.shared.durable_upto.fetch_max(write, Ordering::SeqCst);
                    let mut st = lock(&self.shared.state);
                    if let Some(was) = st.failure.take() {
                        tracing::info!(failure = %was, "store writable again");
                    }
                }
                Ok((v, LazyMark { epoch, write }))
            }
            Err(e) => {
                if e.poisons_database() {
                    self.failed(&db, &e);
                }
                Err(e)
            }
        }
    }

    /// Spools a batch of accepted messages in one durable commit (group commit):
    /// returns their sequence numbers in order.
    pub fn spool_batch(&self, items: &[(&Envelope, &[u8])]) -> Result<Vec<MessageSeq>> {
        self.spool_commit(items, &[], |_| Ok(()))
    }

    /// [`Store::spool_batch`] plus IMAP cursors and quarantine entries, all in
    /// the same transaction: a message and the cursor that says "taken" are
    /// committed together or not at all (exactly-once IMAP intake). `also`
    /// writes what else belongs to the commit (the postmaster's notices,
    /// queued by the caller: the store never enqueues mail itself).
    pub fn spool_commit(
        &self,
        items: &[(&Envelope, &[u8])],
        imap: &[&ImapCommit],
        also: impl FnOnce(&mut Tx<'_>) -> Result<()>,
    ) -> Result<Vec<MessageSeq>> {
        // Compressed before the write transaction: the one writer's time
        // (which every SMTP session's 250 waits for) stays the same.
        self.train_due_dictionaries();
        let codec = self.codec();
        let encoded: Vec<Vec<u8>> = items
            .iter()
            .map(|(_, bytes)| codec.encode_tagged(encoding::Kind::Raw, bytes))
            .collect();
        self.write(|tx| {
            also(tx)?;
            for c in imap {
                for q in &c.quarantine {
                    let seq = tx.next_id("next_message")?;
                    tx.put_quarantine(&QuarantineEntry {
                        message: seq,
                        ..q.clone()
                    })?;
                }
                tx.advance_imap_cursor(&c.cursor)?;
            }
            let mut seqs = Vec::with_capacity(items.len());
            let first = tx.reserve_ids("next_message", items.len() as u64)?;
            let mut raw = tx.txn.open_table(RAW_ENCODED)?;
            let mut spool = tx.txn.open_table(SPOOL)?;
            for (i, ((env, _), bytes)) in items.iter().zip(&encoded).enumerate() {
                let seq = first + i as u64;
                raw.insert(seq, bytes.as_slice())?;
                spool.insert(seq, enc(*env).as_slice())?;
                seqs.push(seq);
            }
            Ok(seqs)
        })
    }

    /// Spooled messages not yet processed, oldest first.
    pub fn pending_spool(&self, limit: usize) -> Result<Vec<(MessageSeq, Envelope)>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(SPOOL)?;
        let mut out = Vec::new();
        for item in t.iter()?.take(limit) {
            let (k, v) = item?;
            out.push((k.value(), dec("spool", v.value())?));
        }
        Ok(out)
    }

    pub fn spool_len(&self) -> Result<u64> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(SPOOL)?.len()?)
    }

    pub fn raw(&self, seq: MessageSeq) -> Result<Option<Vec<u8>>> {
        let r = self.db()?.0.begin_read()?;
        let encoded = r.open_table(RAW_ENCODED)?;
        read_raw(&encoded, Some(&r.open_table(RAW)?), seq)
    }

    /// Turns compression of new values on or off (`[store] compress`, on
    /// by default). Stored values keep their encoding; reads handle all.
    pub fn set_compression(&self, on: bool) {
        let old = self.codec();
        let fresh = encoding::Codec::new(on, old.encoders().clone());
        fresh.carry_counts(&old, &[]);
        self.set_codec(fresh);
    }

    /// How many values of a kind are written before its compression
    /// dictionary is trained from them (`[store] dictionary_after`).
    pub fn set_dictionary_after(&self, values: u64) {
        self.shared
            .dictionary_after
            .store(values.max(1), Ordering::Relaxed);
    }

    fn codec(&self) -> Arc<encoding::Codec> {
        self.shared
            .codec
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_codec(&self, codec: encoding::Codec) {
        *self
            .shared
            .codec
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(codec);
    }

    /// A random per-installation secret, created on first use (HMAC of reply tokens).
    pub fn secret(&self, name: &str) -> Result<Vec<u8>> {
        {
            let r = self.db()?.0.begin_read()?;
            if let Some(v) = r.open_table(SECRETS)?.get(name)? {
                return Ok(v.value().to_vec());
            }
        }
        self.write(|tx| {
            let mut t = tx.txn.open_table(SECRETS)?;
            if let Some(v) = t.get(name)? {
                return Ok(v.value().to_vec());
            }
            let mut key = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                .map_err(|_| StoreError::Io(std::io::Error::other("no system randomness")))?;
            t.insert(name, key.as_slice())?;
            Ok(key.to_vec())
        })
    }

    pub fn ticket(&self, id: TicketId) -> Result<Option<Ticket>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(TICKETS)?;
        t.get(id)?.map(|v| dec("tickets", v.value())).transpose()
    }

    /// Tickets newest first, filtered; returns (total matching, page).
    /// Filters walk `TICKET_INDEX` (the rarest key's range; the others are
    /// looked up per id), so no list reads every ticket; only the page's
    /// tickets are decoded.
    pub fn list_tickets(&self, f: &TicketFilter) -> Result<(usize, Vec<Ticket>)> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(TICKETS)?;
        let below = f.before.unwrap_or(u64::MAX);
        let keys = f.keys();
        if keys.is_empty() {
            // Unfiltered: ids grow with time, so the page is a slice of the
            // key order and the total is the table's length.
            let total = t.len()? as usize;
            let page = t
                .range(..below)?
                .rev()
                .skip(f.offset)
                .take(f.limit)
                .map(|item| dec("tickets", item?.1.value()))
                .collect::<Result<Vec<Ticket>>>()?;
            return Ok((total, page));
        }
        let index = r.open_table(TICKET_INDEX)?;
        let counts = r.open_table(TICKET_COUNTS)?;
        let count = |k: &str| -> Result<u64> { Ok(counts.get(k)?.map_or(0, |v| v.value())) };
        let mut sized = Vec::with_capacity(keys.len());
        for k in &keys {
            sized.push((count(k)?, k.as_str()));
        }
        sized.sort();
        let (_, driver) = sized[0];
        let others: Vec<&str> = sized[1..].iter().map(|(_, k)| *k).collect();
        // One key: its count is the total, and the walk starts at `before`
        // and stops with the page. Several: the rarest key's range is walked
        // whole to count (the page still only from below `before`).
        let one_key = others.is_empty();
        let walk_from = if one_key { below } else { u64::MAX };
        let (mut total, mut skipped) = (0, 0);
        let mut ids = Vec::new();
        for item in index.range((driver, 0)..=(driver, walk_from))?.rev() {
            let id = item?.0.value().1;
            let mut all = true;
            for k in &others {
                if index.get((*k, id))?.is_none() {
                    all = false;
                    break;
                }
            }
            if !all {
                continue;
            }
            total += 1;
            if id >= below {
                continue;
            }
            if skipped < f.offset {
                skipped += 1;
            } else if ids.len() < f.limit {
                ids.push(id);
            } else if one_key {
                break;
            }
        }
        if one_key {
            total = count(driver)? as usize;
        }
        let mut page = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = t.get(id)? {
                page.push(dec("tickets", v.value())?);
            }
        }
        Ok((total, page))
    }

    /// The messages of a ticket, oldest first.
    pub fn ticket_messages(&self, id: TicketId) -> Result<Vec<MessageRecord>> {
        let r = self.db()?.0.begin_read()?;
        messages_of(
            &r.open_multimap_table(TICKET_MESSAGES)?,
            &r.open_table(MESSAGES)?,
            id,
        )
    }

    pub fn ticket_events(&self, id: TicketId) -> Result<Vec<Event>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(EVENTS)?;
        let mut out = Vec::new();
        for item in t.range((id, 0)..=(id, u64::MAX))? {
            let (_, v) = item?;
            out.push(dec("events", v.value())?);
        }
        Ok(out)
    }

    pub fn message(&self, seq: MessageSeq) -> Result<Option<MessageRecord>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(MESSAGES)?;
        t.get(seq)?.map(|v| dec("messages", v.value())).transpose()
    }

    /// Outbound jobs due at `now`, earliest first, at most `limit` (a range
    /// scan of the due index, so a long queue costs nothing per pass).
    pub fn due_jobs(&self, now: i64, limit: usize) -> Result<Vec<OutboundJob>> {
        let r = self.db()?.0.begin_read()?;
        let due = r.open_table(OUTBOUND_DUE)?;
        let jobs = r.open_table(OUTBOUND)?;
        let mut out = Vec::new();
        for item in due.range((0, 0)..=(sortable(now), u64::MAX))? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let (_, id) = k.value();
            if let Some(v) = jobs.get(id)? {
                out.push(dec("outbound", v.value())?);
            }
        }
        Ok(out)
    }

    /// Earliest `next_attempt_at` of any queued job.
    pub fn next_job_time(&self) -> Result<Option<i64>> {
        let r = self.db()?.0.begin_read()?;
        let due = r.open_table(OUTBOUND_DUE)?;
        let first = due.iter()?.next().transpose()?;
        Ok(first.map(|(k, _)| unsortable(k.value().0)))
    }

    pub fn outbound_len(&self) -> Result<u64> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(OUTBOUND)?.len()?)
    }

    pub fn quarantine(&self) -> Result<Vec<QuarantineEntry>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(QUARANTINE)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(dec("quarantine", v.value())?);
        }
        Ok(out)
    }

    /// The message a duplicate was dropped in favour of.
    pub fn duplicate_of(&self, seq: MessageSeq) -> Result<Option<MessageSeq>> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(DUPLICATES)?.get(seq)?.map(|v| v.value()))
    }

    /// Where IMAP intake stands in one folder (None: never polled).
    pub fn imap_state(&self, key: &str) -> Result<Option<ImapFolderState>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(IMAP_CURSORS)?;
        t.get(key)?
            .map(|v| dec("imap_cursors", v.value()))
            .transpose()
    }

    /// Starts a folder that was never polled at `uid`: what is at or below it
    /// counts as taken and acted on (`existing = "skip"`), and `now` is the
    /// folder's first sighting. Does nothing if the folder has a cursor
    /// already, so a restart never skips mail.
    pub fn start_imap_cursor_at(
        &self,
        key: &str,
        uidvalidity: u32,
        uid: u32,
        now: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            let mut t = tx.txn.open_table(IMAP_CURSORS)?;
            if t.get(key)?.is_some() {
                return Ok(false);
            }
            let state = ImapFolderState {
                uidvalidity,
                last_uid: uid,
                acted_uid: uid,
                first_seen: now,
                ..ImapFolderState::default()
            };
            t.insert(key, enc(&state).as_slice())?;
            Ok(true)
        })
    }

    /// The folder's first sighting, recorded as `now` when the folder has
    /// none yet: a folder never polled, or one polled before first sightings
    /// were recorded (then only while its UIDVALIDITY is unchanged, so mail
    /// that arrived while it was away is never taken for history).
    /// Returns 0 when it stays unknown.
    pub fn imap_first_seen(&self, key: &str, uidvalidity: u32, now: i64) -> Result<i64> {
        self.write(|tx| {
            let mut t = tx.txn.open_table(IMAP_CURSORS)?;
            let state: Option<ImapFolderState> = t
                .get(key)?
                .map(|v| dec("imap_cursors", v.value()))
                .transpose()?;
            let state = match state {
                Some(s) if s.first_seen != 0 || s.uidvalidity != uidvalidity => {
                    return Ok(s.first_seen);
                }
                Some(s) => ImapFolderState {
                    first_seen: now,
                    ..s
                },
                None => ImapFolderState {
                    uidvalidity,
                    first_seen: now,
                    ..ImapFolderState::default()
                },
            };
            t.insert(key, enc(&state).as_slice())?;
            Ok(now)
        })
    }

    /// Starts a folder over under a new UIDVALIDITY: its old UIDs mean
    /// nothing now. The first sighting stays; `history_upto` is the newest
    /// UID of the re-read folder under `existing = "skip"` (else 0).
    pub fn reset_imap_state(&self, key: &str, uidvalidity: u32, history_upto: u32) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.txn.open_table(IMAP_CURSORS)?;
            let first_seen = t
                .get(key)?
                .map(|v| dec::<ImapFolderState>("imap_cursors", v.value()))
                .transpose()?
                .map_or(0, |s| s.first_seen);
            let state = ImapFolderState {
                uidvalidity,
                first_seen,
                history_upto,
                ..ImapFolderState::default()
            };
            t.insert(key, enc(&state).as_slice())?;
            Ok(())
        })
    }

    /// Records that the `after` action is done for every stored UID up to `uid`.
    pub fn imap_acted(&self, key: &str, uidvalidity: u32, uid: u32) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.txn.open_table(IMAP_CURSORS)?;
            let state: Option<ImapFolderState> = t
                .get(key)?
                .map(|v| dec("imap_cursors", v.value()))
                .transpose()?;
            if let Some(mut s) = state
                && s.uidvalidity == uidvalidity
                && uid > s.acted_uid
            {
                s.acted_uid = uid.min(s.last_uid);
                let acted = s.acted_uid;
                s.unacted.retain(|u| *u > acted);
                t.insert(key, enc(&s).as_slice())?;
            }
            Ok(())
        })
    }

    /// Replies held on ticket `id` by collision detection.
    pub fn held_for_ticket(&self, id: TicketId) -> Result<Vec<HeldReply>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(HELD)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            let h: HeldReply = dec("held", v.value())?;
            if h.ticket == id {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// The earliest expiry of a held agent reply.
    pub fn next_held_expiry(&self) -> Result<Option<i64>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(HELD)?;
        let mut next: Option<i64> = None;
        for item in t.iter()? {
            let (_, v) = item?;
            let h: HeldReply = dec("held", v.value())?;
            next = Some(next.map_or(h.expires_at, |n| n.min(h.expires_at)));
        }
        Ok(next)
    }

    pub fn ticket_count(&self) -> Result<u64> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(TICKETS)?.len()?)
    }

    /// Tickets per status (from the ticket index's counts), and the number
    /// of quarantine entries: what `/metrics` shows.
    pub fn gauges(&self) -> Result<(Vec<(String, u64)>, u64)> {
        let r = self.db()?.0.begin_read()?;
        let counts = r.open_table(TICKET_COUNTS)?;
        let mut by_status = Vec::new();
        for item in counts.range("status:".."status;")? {
            let (k, v) = item?;
            let status = k.value().trim_start_matches("status:").to_string();
            by_status.push((status, v.value()));
        }
        Ok((by_status, r.open_table(QUARANTINE)?.len()?))
    }
}

/// Operations inside one write transaction (see [`Store::write`]).
pub struct Tx<'a> {
    txn: &'a WriteTransaction,
    /// Tickets to queue for the search index before the commit (see `search.rs`).
    search_dirty: std::collections::BTreeSet<TicketId>,
    /// How values written in this transaction are encoded.
    codec: Arc<encoding::Codec>,
}

impl Tx<'_> {
    /// Reserves `n` consecutive ids from a counter; ids start at 1.
    pub fn reserve_ids(&mut self, counter: &str, n: u64) -> Result<u64> {
        let mut meta = self.txn.open_table(META)?;
        let first = meta.get(counter)?.map_or(1, |v| v.value());
        meta.insert(counter, first + n)?;
        Ok(first)
    }

    pub fn next_id(&mut self, counter: &str) -> Result<u64> {
        self.reserve_ids(counter, 1)
    }

    pub fn spool_entry(&mut self, seq: MessageSeq) -> Result<Option<Envelope>> {
        let t = self.txn.open_table(SPOOL)?;
        t.get(seq)?.map(|v| dec("spool", v.value())).transpose()
    }

    pub fn remove_spool(&mut self, seq: MessageSeq) -> Result<()> {
        self.txn.open_table(SPOOL)?.remove(seq)?;
        Ok(())
    }

    pub fn put_raw(&mut self, seq: MessageSeq, raw: &[u8]) -> Result<()> {
        let value = self.codec.encode_tagged(encoding::Kind::Raw, raw);
        self.txn
            .open_table(RAW_ENCODED)?
            .insert(seq, value.as_slice())?;
        // An older untagged copy must not outlive the new bytes.
        self.txn.open_table(RAW)?.remove(seq)?;
        Ok(())
    }

    pub fn remove_raw(&mut self, seq: MessageSeq) -> Result<()> {
        self.txn.open_table(RAW_ENCODED)?.remove(seq)?;
        self.txn.open_table(RAW)?.remove(seq)?;
        Ok(())
    }

    pub fn raw(&mut self, seq: MessageSeq) -> Result<Option<Vec<u8>>> {
        let encoded = self.txn.open_table(RAW_ENCODED)?;
        read_raw(&encoded, Some(&self.txn.open_table(RAW)?), seq)
    }

    /// A message record as stored: compressed when the store compresses.
    fn enc_message(&self, m: &MessageRecord) -> Vec<u8> {
        self.codec.encode_record(encoding::Kind::Message, enc(m))
    }

    /// Stores a message record and links it to its ticket, if any.
    pub fn put_message(&mut self, m: &MessageRecord) -> Result<()> {
        let value = self.enc_message(m);
        self.txn
            .open_table(MESSAGES)?
            .insert(m.seq, value.as_slice())?;
        if let Some(t) = m.ticket {
            self.txn
                .open_multimap_table(TICKET_MESSAGES)?
                .insert(t, m.seq)?;
            self.search_dirty(t);
        }
        Ok(())
    }

    /// Stores a message record that names its ticket but is not listed among
    /// the ticket's messages: copies (an agent's mail relayed as our reply,
    /// notifications to agents) and held replies. Raw bytes and the record stay
    /// reachable by sequence number.
    pub fn put_message_unlisted(&mut self, m: &MessageRecord) -> Result<()> {
        let value = self.enc_message(m);
        self.txn
            .open_table(MESSAGES)?
            .insert(m.seq, value.as_slice())?;
        Ok(())
    }

    /// The messages listed in a ticket, oldest first.
    pub fn ticket_messages(&mut self, id: TicketId) -> Result<Vec<MessageRecord>> {
        messages_of(
            &self.txn.open_multimap_table(TICKET_MESSAGES)?,
            &self.txn.open_table(MESSAGES)?,
            id,
        )
    }

    pub fn put_held(&mut self, h: &HeldReply) -> Result<()> {
        self.txn
            .open_table(HELD)?
            .insert(h.message, enc(h).as_slice())?;
        Ok(())
    }

    pub fn remove_held(&mut self, message: MessageSeq) -> Result<()> {
        self.txn.open_table(HELD)?.remove(message)?;
        Ok(())
    }

    /// Every held reply (a scan of a small table), oldest first.
    pub fn held(&mut self) -> Result<Vec<HeldReply>> {
        let t = self.txn.open_table(HELD)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(dec("held", v.value())?);
        }
        Ok(out)
    }

    pub fn message(&mut self, seq: MessageSeq) -> Result<Option<MessageRecord>> {
        let t = self.txn.open_table(MESSAGES)?;
        t.get(seq)?.map(|v| dec("messages", v.value())).transpose()
    }

    pub fn ticket(&mut self, id: TicketId) -> Result<Option<Ticket>> {
        let t = self.txn.open_table(TICKETS)?;
        t.get(id)?.map(|v| dec("tickets", v.value())).transpose()
    }

    pub fn put_ticket(&mut self, t: &Ticket) -> Result<()> {
        // The old record, decoded once for the three indexes it updates.
        let old_json: Option<Vec<u8>> = {
            let tickets = self.txn.open_table(TICKETS)?;
            let old = tickets.get(t.id)?;
            old.map(|v| {
                encoding::decode_record(v.value())
                    .map(std::borrow::Cow::into_owned)
                    .map_err(|source| StoreError::Encoding {
                        table: "tickets",
                        source,
                    })
            })
            .transpose()?
        };
        let old_queue_view = old_json.as_deref().map(queue_index::view_of).transpose()?;
        queue_index::update(self, old_queue_view, t)?;
        self.search_dirty(t.id);
        let (before, old_keys) = {
            let mut tickets = self.txn.open_table(TICKETS)?;
            let value = self.codec.encode_record(encoding::Kind::Ticket, enc(t));
            tickets.insert(t.id, value.as_slice())?;
            match &old_json {
                // Only the fields that matter, not the whole record.
                Some(json) => {
                    let old: LoadView = dec("tickets", json)?;
                    (
                        load_holder(old.status, old.assignee.as_deref()),
                        index_keys(old.status, &old.queue, old.assignee.as_deref(), &old.tags),
                    )
                }
                None => (None, Default::default()),
            }
        };
        let new_keys = index_keys(t.status, &t.queue, t.assignee.as_deref(), &t.tags);
        if old_keys != new_keys {
            let mut index = self.txn.open_table(TICKET_INDEX)?;
            let mut counts = self.txn.open_table(TICKET_COUNTS)?;
            for k in old_keys.difference(&new_keys) {
                index.remove((k.as_str(), t.id))?;
                let n = counts.get(k.as_str())?.map_or(0, |v| v.value());
                if n <= 1 {
                    counts.remove(k.as_str())?;
                } else {
                    counts.insert(k.as_str(), n - 1)?;
                }
            }
            for k in new_keys.difference(&old_keys) {
                index.insert((k.as_str(), t.id), ())?;
                let n = counts.get(k.as_str())?.map_or(0, |v| v.value());
                counts.insert(k.as_str(), n + 1)?;
            }
        }
        self.mark_report_dirty(t.id)?;
        let after = load_holder(t.status, t.assignee.as_deref());
        if before != after {
            let mut load = self.txn.open_table(AGENT_LOAD)?;
            if let Some(agent) = before {
                let n = load.get(agent.as_str())?.map_or(0, |v| v.value());
                if n <= 1 {
                    load.remove(agent.as_str())?;
                } else {
                    load.insert(agent.as_str(), n - 1)?;
                }
            }
            if let Some(agent) = after {
                let n = load.get(agent.as_str())?.map_or(0, |v| v.value());
                load.insert(agent.as_str(), n + 1)?;
            }
        }
        Ok(())
    }

    /// Indexes every ticket once, for stores made before `TICKET_INDEX`.
    fn build_ticket_index_if_needed(&mut self) -> Result<()> {
        let mut meta = self.txn.open_table(META)?;
        if meta.get(TICKET_INDEX_BUILT)?.is_some() {
            return Ok(());
        }
        let tickets = self.txn.open_table(TICKETS)?;
        let mut index = self.txn.open_table(TICKET_INDEX)?;
        let mut counts = self.txn.open_table(TICKET_COUNTS)?;
        index.retain(|_, _| false)?;
        counts.retain(|_, _| false)?;
        let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
        for item in tickets.iter()? {
            let (id, v) = item?;
            let view: LoadView = dec("tickets", v.value())?;
            for k in index_keys(
                view.status,
                &view.queue,
                view.assignee.as_deref(),
                &view.tags,
            ) {
                index.insert((k.as_str(), id.value()), ())?;
                *totals.entry(k).or_insert(0) += 1;
            }
        }
        for (k, n) in &totals {
            counts.insert(k.as_str(), *n)?;
        }
        meta.insert(TICKET_INDEX_BUILT, 1)?;
        Ok(())
    }

    /// Counts the open tickets per assignee once, for stores made before
    /// `AGENT_LOAD` existed.
    fn build_agent_load_if_needed(&mut self) -> Result<()> {
        let mut meta = self.txn.open_table(META)?;
        if meta.get(AGENT_LOAD_BUILT)?.is_some() {
            return Ok(());
        }
        let counts = self.count_open_tickets()?;
        let mut load = self.txn.open_table(AGENT_LOAD)?;
        load.retain(|_, _| false)?;
        for (agent, n) in &counts {
            load.insert(agent.as_str(), *n as u64)?;
        }
        meta.insert(AGENT_LOAD_BUILT, 1)?;
        Ok(())
    }

    /// Appends an event to a ticket (and bumps its event counter).
    pub fn add_event(&mut self, ticket: &mut Ticket, event: Event) -> Result<()> {
        self.mark_report_dirty(ticket.id)?;
        let n = ticket.next_event;
        ticket.next_event += 1;
        let value = self.codec.encode_record(encoding::Kind::Event, enc(&event));
        self.txn
            .open_table(EVENTS)?
            .insert((ticket.id, n), value.as_slice())?;
        Ok(())
    }

    pub fn lookup_msgid(&mut self, message_id: &str) -> Result<Option<TicketId>> {
        let t = self.txn.open_table(MSGID_INDEX)?;
        Ok(t.get(message_id)?.map(|v| v.value()))
    }

    pub fn index_msgid(&mut self, message_id: &str, ticket: TicketId) -> Result<()> {
        if message_id.is_empty() || message_id.len() > 900 {
            return Ok(());
        }
        let mut t = self.txn.open_table(MSGID_INDEX)?;
        if t.get(message_id)?.is_none() {
            t.insert(message_id, ticket)?;
        }
        Ok(())
    }

    /// Records a dedup key; returns the earlier message sequence if the key was known.
    pub fn dedup(&mut self, key: &str, seq: MessageSeq) -> Result<Option<MessageSeq>> {
        let mut t = self.txn.open_table(DEDUP)?;
        if let Some(v) = t.get(key)? {
            return Ok(Some(v.value()));
        }
        t.insert(key, seq)?;
        Ok(None)
    }

    pub fn put_duplicate(&mut self, seq: MessageSeq, of: MessageSeq) -> Result<()> {
        self.txn.open_table(DUPLICATES)?.insert(seq, of)?;
        Ok(())
    }

    /// Inserts or updates a job, keeping the due index in step.
    pub fn put_job(&mut self, job: &OutboundJob) -> Result<()> {
        let mut jobs = self.txn.open_table(OUTBOUND)?;
        let mut due = self.txn.open_table(OUTBOUND_DUE)?;
        let old: Option<OutboundJob> = match jobs.get(job.id)? {
            Some(v) => Some(dec("outbound", v.value())?),
            None => None,
        };
        if let Some(old) = old {
            due.remove((sortable(old.next_attempt_at), old.id))?;
        }
        jobs.insert(job.id, enc(job).as_slice())?;
        due.insert((sortable(job.next_attempt_at), job.id), ())?;
        Ok(())
    }

    pub fn job(&mut self, id: u64) -> Result<Option<OutboundJob>> {
        let t = self.txn.open_table(OUTBOUND)?;
        t.get(id)?.map(|v| dec("outbound", v.value())).transpose()
    }

    pub fn remove_job(&mut self, id: u64) -> Result<()> {
        let old: Option<OutboundJob> = match self.txn.open_table(OUTBOUND)?.remove(id)? {
            Some(v) => Some(dec("outbound", v.value())?),
            None => None,
        };
        if let Some(old) = old {
            self.txn
                .open_table(OUTBOUND_DUE)?
                .remove((sortable(old.next_attempt_at), old.id))?;
        }
        Ok(())
    }

    /// Rebuilds the due index when it does not match the queue (a store
    /// written before the index existed).
    fn rebuild_due_index_if_needed(&mut self) -> Result<()> {
        let jobs = self.txn.open_table(OUTBOUND)?;
        let mut due = self.txn.open_table(OUTBOUND_DUE)?;
        if jobs.len()? == due.len()? {
            return Ok(());
        }
        due.retain(|_, _| false)?;
        for item in jobs.iter()? {
            let (_, v) = item?;
            let job: OutboundJob = dec("outbound", v.value())?;
            due.insert((sortable(job.next_attempt_at), job.id), ())?;
        }
        Ok(())
    }

    /// Counts an acknowledgement to `addr` in the current hour window; returns false
    /// (and counts nothing) when `max` were already sent in that window.
    pub fn take_ack_allowance(&mut self, addr: &str, now: i64, max: u32) -> Result<bool> {
        let mut t = self.txn.open_table(ACK_RATE)?;
        let (start, count): (i64, u32) = match t.get(addr)? {
            Some(v) => dec("ack_rate", v.value())?,
            None => (now, 0),
        };
        let (start, count) = if now - start >= 3600 {
            (now, 0)
        } else {
            (start, count)
        };
        if count >= max {
            return Ok(false);
        }
        t.insert(addr, enc(&(start, count + 1)).as_slice())?;
        Ok(true)
    }

    /// Moves a folder's cursor forward (never back) under the same UIDVALIDITY;
    /// a different UIDVALIDITY starts the folder's state afresh.
    pub fn advance_imap_cursor(&mut self, c: &ImapCursor) -> Result<()> {
        let mut t = self.txn.open_table(IMAP_CURSORS)?;
        let old: Option<ImapFolderState> = t
            .get(c.key.as_str())?
            .map(|v| dec("imap_cursors", v.value()))
            .transpose()?;
        let new = match old {
            Some(mut s) if s.uidvalidity == c.uidvalidity => {
                let acted = s.acted_uid;
                s.unacted
                    .extend(c.stored.iter().copied().filter(|u| *u > acted));
                s.unacted.sort_unstable();
                s.unacted.dedup();
                ImapFolderState {
                    last_uid: s.last_uid.max(c.uid),
                    ..s
                }
            }
            other => ImapFolderState {
                uidvalidity: c.uidvalidity,
                last_uid: c.uid,
                first_seen: other.map_or(0, |s| s.first_seen),
                unacted: c.stored.clone(),
                ..ImapFolderState::default()
            },
        };
        t.insert(c.key.as_str(), enc(&new).as_slice())?;
        Ok(())
    }

    /// Tickets not yet resolved, per assignee (lower-cased name). A full scan:
    /// fine for the ticket counts of one help desk; an index can replace it later.
    /// Open tickets (new, open, pending) per assignee, lower-cased.
    pub fn open_ticket_counts(&mut self) -> Result<std::collections::HashMap<String, usize>> {
        let load = self.txn.open_table(AGENT_LOAD)?;
        let mut counts = std::collections::HashMap::new();
        for item in load.iter()? {
            let (agent, n) = item?;
            counts.insert(agent.value().to_string(), n.value() as usize);
        }
        Ok(counts)
    }

    /// [`Tx::open_ticket_counts`] the slow way, from every ticket.
    fn count_open_tickets(&mut self) -> Result<std::collections::HashMap<String, usize>> {
        let t = self.txn.open_table(TICKETS)?;
        let mut counts = std::collections::HashMap::new();
        for item in t.iter()? {
            let (_, v) = item?;
            let ticket: Ticket = dec("tickets", v.value())?;
            if matches!(ticket.status, Status::New | Status::Open | Status::Pending)
                && let Some(a) = ticket.assignee
            {
                *counts.entry(a.to_ascii_lowercase()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    pub fn put_quarantine(&mut self, q: &QuarantineEntry) -> Result<()> {
        self.txn
            .open_table(QUARANTINE)?
            .insert(q.message, enc(q).as_slice())?;
        Ok(())
    }
}

/// Unix seconds as a u64 that sorts like the i64.
fn sortable(t: i64) -> u64 {
    (t as u64) ^ (1 << 63)
}

fn unsortable(k: u64) -> i64 {
    (k ^ (1 << 63)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, next: i64) -> OutboundJob {
        OutboundJob {
            id,
            message: id,
            ticket: None,
            mail_from: String::new(),
            rcpt_to: vec!["a@example.org".into()],
            created_at: 0,
            attempts: 0,
            next_attempt_at: next,
            last_error: None,
        }
    }

    #[test]
    fn due_index_follows_updates_and_removals() {
        let dir = std::env::temp_dir().join(format!("postdesk-store-test-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        store
            .write(|tx| {
                tx.put_job(&job(1, 100))?;
                tx.put_job(&job(2, -5))?;
                tx.put_job(&job(3, 50))
            })
            .unwrap();
        let ids = |now| {
            store
                .due_jobs(now, 10)
                .unwrap()
                .iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(60), vec![2, 3]);
        assert_eq!(store.next_job_time().unwrap(), Some(-5));
        // a retry moves the job later; a removal takes it out of the index
        store
            .write(|tx| {
                tx.put_job(&job(2, 200))?;
                tx.remove_job(3)
            })
            .unwrap();
        assert_eq!(ids(150), vec![1]);
        assert_eq!(ids(i64::MAX), vec![1, 2]);
        assert_eq!(store.next_job_time().unwrap(), Some(100));
        std::fs::remove_dir_all(dir).ok();
    }
}

#[cfg(test)]
mod agent_load_tests {
    use super::*;

    fn ticket(id: u64, status: Status, assignee: Option<&str>) -> Ticket {
        Ticket {
            status,
            assignee: assignee.map(str::to_string),
            ..Ticket::new(id, "ann@example.org", 0)
        }
    }

    #[test]
    fn agent_load_follows_every_ticket_change_and_is_built_for_old_stores() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-store-load-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        // A deterministic walk through assignments and status changes.
        let agents = [None, Some("alice"), Some("Bob"), Some("carol")];
        let statuses = [
            Status::New,
            Status::Open,
            Status::Pending,
            Status::Resolved,
            Status::Closed,
        ];
        let mut x: u64 = 7;
        for _ in 0..400 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = 1 + (x >> 33) % 40;
            let agent = agents[((x >> 20) % 4) as usize];
            let status = statuses[((x >> 10) % 5) as usize];
            store
                .write(|tx| tx.put_ticket(&ticket(id, status, agent)))
                .unwrap();
        }
        let (fast, slow) = store
            .write(|tx| Ok((tx.open_ticket_counts()?, tx.count_open_tickets()?)))
            .unwrap();
        assert_eq!(fast, slow);
        assert!(!fast.is_empty(), "the walk left some open tickets assigned");
        assert!(fast.contains_key("bob"), "names are lower-cased: {fast:?}");

        // A store from before the load table: built once on open.
        store
            .write(|tx| {
                tx.txn.open_table(META)?.remove(AGENT_LOAD_BUILT)?;
                tx.txn.open_table(AGENT_LOAD)?.retain(|_, _| false)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        let rebuilt = store.write(|tx| tx.open_ticket_counts()).unwrap();
        assert_eq!(rebuilt, slow);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod ticket_index_tests {
    use super::*;

    /// What a scan of every ticket says a filter lists (the index must agree).
    fn brute(all: &std::collections::BTreeMap<u64, Ticket>, f: &TicketFilter) -> Vec<u64> {
        all.values()
            .rev()
            .filter(|t| f.before.is_none_or(|b| t.id < b))
            .filter(|t| f.status.as_deref().is_none_or(|s| s == t.status.as_str()))
            .filter(|t| f.queue.as_deref().is_none_or(|q| q == t.queue))
            .filter(|t| {
                f.assignee.as_deref().is_none_or(|a| {
                    t.assignee
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(a))
                })
            })
            .filter(|t| {
                f.tag
                    .as_deref()
                    .is_none_or(|g| t.tags.iter().any(|x| x == g))
            })
            .map(|t| t.id)
            .collect()
    }

    #[test]
    fn filtered_lists_agree_with_a_full_scan_and_old_stores_are_indexed_on_open() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-store-index-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let statuses = [
            Status::New,
            Status::Open,
            Status::Pending,
            Status::Resolved,
            Status::Closed,
        ];
        let queues = ["general", "billing"];
        let agents = [None, Some("alice"), Some("Bob")];
        let tags = ["vip", "spam", "printer"];
        let mut all = std::collections::BTreeMap::new();
        let mut x: u64 = 11;
        for _ in 0..600 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = 1 + (x >> 33) % 120;
            let mut t = Ticket {
                status: statuses[((x >> 10) % 5) as usize],
                queue: queues[((x >> 14) % 2) as usize].to_string(),
                assignee: agents[((x >> 18) % 3) as usize].map(str::to_string),
                ..Ticket::new(id, "ann@example.org", 0)
            };
            for (i, tag) in tags.iter().enumerate() {
                if (x >> (22 + i)) & 1 == 1 {
                    t.tags.push(tag.to_string());
                }
            }
            store.write(|tx| tx.put_ticket(&t)).unwrap();
            all.insert(id, t);
        }
        let filters = || {
            let mut out = Vec::new();
            for status in [None, Some("open"), Some("closed")] {
                for queue in [None, Some("billing")] {
                    for assignee in [None, Some("bob")] {
                        for tag in [None, Some("vip")] {
                            for (offset, before) in [(0, None), (3, None), (0, Some(60))] {
                                out.push(TicketFilter {
                                    status: status.map(str::to_string),
                                    queue: queue.map(str::to_string),
                                    assignee: assignee.map(str::to_string),
                                    tag: tag.map(str::to_string),
                                    limit: 7,
                                    offset,
                                    before,
                                });
                            }
                        }
                    }
                }
            }
            out
        };
        let check = |store: &Store| {
            for f in filters() {
                let want = brute(&all, &f);
                let (total, page) = store.list_tickets(&f).unwrap();
                let got: Vec<u64> = page.iter().map(|t| t.id).collect();
                let want_page: Vec<u64> =
                    want.iter().skip(f.offset).take(f.limit).copied().collect();
                assert_eq!(got, want_page, "{f:?}");
                let everything = brute(
                    &all,
                    &TicketFilter {
                        before: None,
                        ..f.clone()
                    },
                );
                assert_eq!(total, everything.len(), "total of {f:?}");
            }
        };
        check(&store);

        // A store from before the index: built once on open, with the same answers.
        store
            .write(|tx| {
                tx.txn.open_table(META)?.remove(TICKET_INDEX_BUILT)?;
                tx.txn.open_table(TICKET_INDEX)?.retain(|_, _| false)?;
                tx.txn.open_table(TICKET_COUNTS)?.retain(|_, _| false)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        check(&store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Web view sessions (see `web::session`): keyed by the hash of the id.
impl Store {
    pub fn web_session(&self, key: &str) -> Result<Option<WebSession>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(WEB_SESSIONS)?;
        t.get(key)?
            .map(|v| dec("web_sessions", v.value()))
            .transpose()
    }

    /// Stores a new session and drops every one idle since before `idle_before`.
    pub fn put_web_session(&self, key: &str, s: &WebSession, idle_before: i64) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.txn.open_table(WEB_SESSIONS)?;
            let mut stale = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                let old: WebSession = dec("web_sessions", v.value())?;
                if old.last_seen < idle_before {
                    stale.push(k.value().to_string());
                }
            }
            for k in stale {
                t.remove(k.as_str())?;
            }
            t.insert(key, enc(s).as_slice())?;
            Ok(())
        })
    }

    /// Records activity; lazily durable (a lost touch only shortens a session).
    pub fn touch_web_session(&self, key: &str, now: i64) -> Result<()> {
        self.write_lazy(|tx| {
            let mut t = tx.txn.open_table(WEB_SESSIONS)?;
            let found = t
                .get(key)?
                .map(|v| dec::<WebSession>("web_sessions", v.value()))
                .transpose()?;
            if let Some(mut s) = found {
                s.last_seen = now;
                t.insert(key, enc(&s).as_slice())?;
            }
            Ok(())
        })
    }

    pub fn remove_web_session(&self, key: &str) -> Result<()> {
        self.write(|tx| {
            tx.txn.open_table(WEB_SESSIONS)?.remove(key)?;
            Ok(())
        })
    }
}

impl Store {
    /// The outbound jobs still queued for ticket `id` (waiting for their
    /// first attempt or retrying): the ticket page's delivery state. A scan
    /// of the queue, which holds only undelivered mail.
    pub fn ticket_jobs(&self, id: TicketId) -> Result<Vec<OutboundJob>> {
        let r = self.db()?.0.begin_read()?;
        let t = r.open_table(OUTBOUND)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            let job: OutboundJob = dec("outbound", v.value())?;
            if job.ticket == Some(id) {
                out.push(job);
            }
        }
        Ok(out)
    }
}

mod unseen_refs;
pub use unseen_refs::{MAX_TICKETS_PER_REF, UnseenRef};

mod erase;
pub use erase::{ERASED_ADDRESS, ErasePlan, ErasureReport, RetentionDue};
impl Store {
    /// The first message stored under a dedup key (see [`Tx::dedup`]), read
    /// without writing: whether an import already holds a message.
    pub fn dedup_entry(&self, key: &str) -> Result<Option<MessageSeq>> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(DEDUP)?.get(key)?.map(|v| v.value()))
    }
}
mod chat;
mod sender_verdicts;
pub use chat::ChatConversation;
