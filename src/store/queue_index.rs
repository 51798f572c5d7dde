//! The queue view's index: tickets per folder and filter key, in the order
//! the queue page shows them (nearest SLA deadline first, tickets without a
//! running clock last, newest first among equals), with a count per key.
//!
//! Why a second index beside `TICKET_INDEX`: that one is in id order, and
//! sorting a folder of 100,000 open tickets by deadline would mean reading
//! all of them per page view. Here a page is one range walk from a keyset
//! cursor, and the folder counts are single reads.
//!
//! Keys: folders `f:open`, `f:unassigned`, `f:mine:<agent>`, `f:queue:<q>`
//! (all open, i.e. not resolved or closed), `f:pending`, `f:resolved`
//! (resolved or closed); filters `status:<s>`, `priority:<p>`,
//! `assignee:<agent>`, `tag:<t>`. Agent names are lower-cased.
//!
//! In the index a key is a `u32` id given once per key text
//! (`QUEUE_KEY_IDS`): every ticket has about six entries, and a fixed-width
//! 20-byte entry takes about 41 bytes of the file with redb's overhead,
//! one led by the key's text about 68 (244 against 407 bytes per ticket,
//! `cargo bench --bench store`).
//!
//! Kept by [`super::Tx::put_ticket`] in the same transaction as the ticket;
//! built once from the tickets for stores made before it, and rebuilt for
//! stores whose index is still keyed by text (`queue_index`, dropped).

use super::{META, Result, StoreError, TICKETS, Tx, dec, sortable};
use crate::model::{Priority, SlaState, Status, Ticket, TicketId};
use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};
use std::collections::BTreeSet;
use std::ops::Bound;

/// `(key id, due order, u64::MAX - ticket id)`: the due order is the
/// sortable deadline, or `u64::MAX` when no SLA clock runs.
pub(super) const QUEUE_INDEX: TableDefinition<(u32, u64, u64), ()> =
    TableDefinition::new("queue_index_by_id");
/// Key text → its id in `QUEUE_INDEX`. Ids are `0..len`, given in order and
/// never removed (a key without tickets keeps its id), except when the
/// whole index is rebuilt with it.
pub(super) const QUEUE_KEY_IDS: TableDefinition<&str, u32> = TableDefinition::new("queue_key_ids");
/// Tickets per `QUEUE_INDEX` key: the folder counts.
pub(super) const QUEUE_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("queue_counts");
/// META key set once `QUEUE_INDEX` has been built from the tickets.
const QUEUE_INDEX_BUILT: &str = "queue_index_by_id_built";
/// The index of older stores, keyed by the key's text, and its META flag:
/// dropped at open, the index is rebuilt from the tickets.
const LEGACY_QUEUE_INDEX: TableDefinition<(&str, u64, u64), ()> =
    TableDefinition::new("queue_index");
const LEGACY_QUEUE_INDEX_BUILT: &str = "queue_index_built";

/// The deadline a ticket's SLA clock runs towards: the first-response due
/// until the first response went out, then the resolution due; none while
/// the clock is paused or the ticket is finished.
pub fn sla_deadline(status: Status, sla: Option<&SlaState>) -> Option<i64> {
    let s = sla?;
    if status.is_finished() || s.paused_since.is_some() {
        return None;
    }
    let first = s
        .first_response_due
        .filter(|_| s.first_response_at.is_none());
    match (first, s.resolution_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The part of a stored ticket the index needs.
#[derive(serde::Deserialize)]
struct QueueView {
    status: Status,
    priority: Priority,
    queue: String,
    assignee: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    sla: Option<SlaState>,
}

impl QueueView {
    fn of(t: &Ticket) -> QueueView {
        QueueView {
            status: t.status,
            priority: t.priority,
            queue: t.queue.clone(),
            assignee: t.assignee.clone(),
            tags: t.tags.clone(),
            sla: t.sla.clone(),
        }
    }

    fn due_order(&self) -> u64 {
        sla_deadline(self.status, self.sla.as_ref()).map_or(u64::MAX, sortable)
    }

    fn keys(&self) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let assignee = self.assignee.as_deref().map(str::to_ascii_lowercase);
        if self.status.is_finished() {
            keys.insert("f:resolved".to_string());
        } else {
            keys.insert("f:open".to_string());
            keys.insert(format!("f:queue:{}", self.queue));
            match &assignee {
                None => keys.insert("f:unassigned".to_string()),
                Some(a) => keys.insert(format!("f:mine:{a}")),
            };
        }
        if self.status == Status::Pending {
            keys.insert("f:pending".to_string());
        }
        keys.insert(format!("status:{}", self.status.as_str()));
        keys.insert(format!("priority:{}", self.priority.as_str()));
        if let Some(a) = &assignee {
            keys.insert(format!("assignee:{a}"));
        }
        for t in &self.tags {
            keys.insert(format!("tag:{t}"));
        }
        keys
    }
}

/// Where a queue page starts or ends: a ticket's place in the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCursor {
    due: u64,
    rev_id: u64,
}

impl QueueCursor {
    fn of(due: u64, id: TicketId) -> QueueCursor {
        QueueCursor {
            due,
            rev_id: u64::MAX - id,
        }
    }

    /// As a URL parameter: `<due order>.<ticket id>`.
    pub fn to_param(self) -> String {
        format!("{}.{}", self.due, u64::MAX - self.rev_id)
    }

    pub fn parse(s: &str) -> Option<QueueCursor> {
        let (due, id) = s.split_once('.')?;
        Some(QueueCursor::of(due.parse().ok()?, id.parse().ok()?))
    }
}

/// Which tickets a queue page lists: every key must hold (a folder key and
/// any filter keys, see the module doc), from a cursor on.
#[derive(Debug, Clone, Default)]
pub struct QueueQuery {
    pub keys: Vec<String>,
    pub limit: usize,
    /// The page after this place (the last of the previous page).
    pub after: Option<QueueCursor>,
    /// The page before this place (the first of the next page); wins over `after`.
    pub before: Option<QueueCursor>,
}

/// One page of a queue.
#[derive(Debug)]
pub struct QueuePage {
    /// Tickets matching every key (all pages).
    pub total: u64,
    pub tickets: Vec<Ticket>,
    /// Cursors for the previous and next pages, when there are any.
    pub prev: Option<QueueCursor>,
    pub next: Option<QueueCursor>,
}

/// The old ticket's index view, read before `put_ticket` overwrites it.
pub(super) fn view_of(ticket_json: &[u8]) -> Result<QueueViewHandle> {
    Ok(QueueViewHandle(dec::<QueueView>("tickets", ticket_json)?))
}

/// Opaque to the rest of the store: what [`view_of`] read.
pub(super) struct QueueViewHandle(QueueView);

/// The id of key text `key`, given now if it has none.
fn key_id(ids: &mut redb::Table<&str, u32>, key: &str) -> Result<u32> {
    if let Some(id) = ids.get(key)? {
        return Ok(id.value());
    }
    let id = u32::try_from(ids.len()?).map_err(|_| {
        StoreError::Io(std::io::Error::other(
            "queue index: every u32 key id is taken",
        ))
    })?;
    ids.insert(key, id)?;
    Ok(id)
}

/// Moves ticket `t` in the index from where its old record had it.
pub(super) fn update(tx: &Tx<'_>, old: Option<QueueViewHandle>, t: &Ticket) -> Result<()> {
    let new = QueueView::of(t);
    let (new_due, new_keys) = (new.due_order(), new.keys());
    let (old_due, old_keys) = match &old {
        Some(QueueViewHandle(v)) => (v.due_order(), v.keys()),
        None => (u64::MAX, BTreeSet::new()),
    };
    if old_due == new_due && old_keys == new_keys {
        return Ok(());
    }
    let rev = u64::MAX - t.id;
    let mut index = tx.txn.open_table(QUEUE_INDEX)?;
    let mut ids = tx.txn.open_table(QUEUE_KEY_IDS)?;
    let mut counts = tx.txn.open_table(QUEUE_COUNTS)?;
    for k in &old_keys {
        if let Some(id) = ids.get(k.as_str())? {
            index.remove((id.value(), old_due, rev))?;
        }
        if !new_keys.contains(k) {
            let n = counts.get(k.as_str())?.map_or(0, |v| v.value());
            if n <= 1 {
                counts.remove(k.as_str())?;
            } else {
                counts.insert(k.as_str(), n - 1)?;
            }
        }
    }
    for k in &new_keys {
        index.insert((key_id(&mut ids, k)?, new_due, rev), ())?;
        if !old_keys.contains(k) {
            let n = counts.get(k.as_str())?.map_or(0, |v| v.value());
            counts.insert(k.as_str(), n + 1)?;
        }
    }
    Ok(())
}

/// Indexes every ticket once, for stores made before `QUEUE_INDEX`; an
/// older store's text-keyed index is dropped first (in the same
/// transaction, the store's open), so it is rebuilt here.
pub(super) fn build_if_needed(txn: &WriteTransaction) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    let legacy = txn
        .list_tables()?
        .any(|t| t.name() == LEGACY_QUEUE_INDEX.name());
    if legacy {
        txn.delete_table(LEGACY_QUEUE_INDEX)?;
        meta.remove(LEGACY_QUEUE_INDEX_BUILT)?;
        tracing::info!("queue index keyed by text dropped; rebuilding it with key ids");
    }
    if meta.get(QUEUE_INDEX_BUILT)?.is_some() {
        return Ok(());
    }
    let tickets = txn.open_table(TICKETS)?;
    let mut index = txn.open_table(QUEUE_INDEX)?;
    let mut ids = txn.open_table(QUEUE_KEY_IDS)?;
    let mut counts = txn.open_table(QUEUE_COUNTS)?;
    index.retain(|_, _| false)?;
    ids.retain(|_, _| false)?;
    counts.retain(|_, _| false)?;
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    for item in tickets.iter()? {
        let (id, v) = item?;
        let view: QueueView = dec("tickets", v.value())?;
        let due = view.due_order();
        for k in view.keys() {
            index.insert((key_id(&mut ids, &k)?, due, u64::MAX - id.value()), ())?;
            *totals.entry(k).or_insert(0) += 1;
        }
    }
    for (k, n) in &totals {
        counts.insert(k.as_str(), *n)?;
    }
    meta.insert(QUEUE_INDEX_BUILT, 1)?;
    Ok(())
}

impl super::Store {
    /// Tickets per queue-index key whose key starts with `prefix` (e.g.
    /// `f:` for every folder count): single reads, no ticket is opened.
    pub fn queue_counts(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let r = self.db()?.0.begin_read()?;
        let counts = r.open_table(QUEUE_COUNTS)?;
        let mut out = Vec::new();
        for item in counts.range(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// One page of a queue in deadline order. Walks the rarest key's range
    /// from the cursor and looks the other keys up per ticket; only the
    /// page's tickets are decoded. With one key the total is its count;
    /// with several the rarest key's range is walked whole to count.
    pub fn queue_page(&self, q: &QueueQuery) -> Result<QueuePage> {
        let r = self.db()?.0.begin_read()?;
        let index = r.open_table(QUEUE_INDEX)?;
        let ids = r.open_table(QUEUE_KEY_IDS)?;
        let counts = r.open_table(QUEUE_COUNTS)?;
        let tickets = r.open_table(TICKETS)?;
        let empty = QueuePage {
            total: 0,
            tickets: Vec::new(),
            prev: None,
            next: None,
        };
        let mut sized = Vec::with_capacity(q.keys.len());
        for k in &q.keys {
            let count = counts.get(k.as_str())?.map_or(0, |v| v.value());
            // A key never indexed has no id and no tickets.
            let Some(id) = ids.get(k.as_str())?.map(|v| v.value()) else {
                return Ok(empty);
            };
            sized.push((count, id));
        }
        sized.sort();
        let Some(&(driver_count, driver)) = sized.first() else {
            return Ok(empty);
        };
        if driver_count == 0 {
            return Ok(empty);
        }
        let others: Vec<u32> = sized[1..].iter().map(|(_, k)| *k).collect();
        let matches = |due: u64, rev: u64| -> Result<bool> {
            for k in &others {
                if index.get((*k, due, rev))?.is_none() {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        let lo = (driver, 0u64, 0u64);
        let hi = (driver, u64::MAX, u64::MAX);
        let limit = q.limit.max(1);
        // limit + 1 places tell whether there is more beyond the page.
        let mut places: Vec<(u64, u64)> = Vec::with_capacity(limit + 1);
        let backwards = q.before.is_some();
        if let Some(c) = q.before {
            let range = index.range::<(u32, u64, u64)>((
                Bound::Included(lo),
                Bound::Excluded((driver, c.due, c.rev_id)),
            ))?;
            for item in range.rev() {
                let (due, rev) = {
                    let k = item?.0;
                    let k = k.value();
                    (k.1, k.2)
                };
                if matches(due, rev)? {
                    places.push((due, rev));
                    if places.len() > limit {
                        break;
                    }
                }
            }
        } else {
            let start = match q.after {
                Some(c) => Bound::Excluded((driver, c.due, c.rev_id)),
                None => Bound::Included(lo),
            };
            for item in index.range::<(u32, u64, u64)>((start, Bound::Included(hi)))? {
                let (due, rev) = {
                    let k = item?.0;
                    let k = k.value();
                    (k.1, k.2)
                };
                if matches(due, rev)? {
                    places.push((due, rev));
                    if places.len() > limit {
                        break;
                    }
                }
            }
        }
        let more = places.len() > limit;
        places.truncate(limit);
        if backwards {
            places.reverse();
        }
        let cursor = |p: &(u64, u64)| QueueCursor {
            due: p.0,
            rev_id: p.1,
        };
        let (prev, next) = match (backwards, places.first(), places.last()) {
            (_, None, _) | (_, _, None) => (None, None),
            (true, Some(f), Some(l)) => (more.then(|| cursor(f)), Some(cursor(l))),
            (false, Some(f), Some(l)) => (q.after.map(|_| cursor(f)), more.then(|| cursor(l))),
        };
        let total = if others.is_empty() {
            driver_count
        } else {
            let mut n = 0;
            for item in index.range(lo..=hi)? {
                let k = item?.0;
                let k = k.value();
                if matches(k.1, k.2)? {
                    n += 1;
                }
            }
            n
        };
        let mut page = Vec::with_capacity(places.len());
        for (_, rev) in places {
            if let Some(v) = tickets.get(u64::MAX - rev)? {
                page.push(dec("tickets", v.value())?);
            }
        }
        Ok(QueuePage {
            total,
            tickets: page,
            prev,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// What a scan of every ticket says a queue lists, in order.
    fn brute(all: &std::collections::BTreeMap<u64, Ticket>, keys: &[String]) -> Vec<u64> {
        let mut v: Vec<(u64, u64)> = all
            .values()
            .map(QueueView::of)
            .zip(all.keys())
            .filter(|(view, _)| {
                let have = view.keys();
                keys.iter().all(|k| have.contains(k))
            })
            .map(|(view, id)| (view.due_order(), u64::MAX - id))
            .collect();
        v.sort();
        v.into_iter().map(|(_, rev)| u64::MAX - rev).collect()
    }

    fn walk(store: &Store, keys: &[String], limit: usize) -> (u64, Vec<u64>) {
        let mut q = QueueQuery {
            keys: keys.to_vec(),
            limit,
            ..Default::default()
        };
        let mut ids = Vec::new();
        let mut pages = Vec::new();
        let mut total;
        loop {
            let p = store.queue_page(&q).unwrap();
            total = p.total;
            pages.push((p.tickets.iter().map(|t| t.id).collect::<Vec<_>>(), p.prev));
            ids.extend(p.tickets.iter().map(|t| t.id));
            match p.next {
                Some(c) => q.after = Some(c),
                None => break,
            }
        }
        // And back again: each previous page is the one walked before it.
        for w in (1..pages.len()).rev() {
            let prev = pages[w].1.expect("a page after the first has a previous");
            let back = store
                .queue_page(&QueueQuery {
                    keys: keys.to_vec(),
                    limit,
                    before: Some(prev),
                    after: None,
                })
                .unwrap();
            let got: Vec<u64> = back.tickets.iter().map(|t| t.id).collect();
            assert_eq!(got, pages[w - 1].0, "previous page of {keys:?}");
        }
        (total, ids)
    }

    #[test]
    fn queues_agree_with_a_full_scan_in_deadline_order_and_old_stores_are_indexed_on_open() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-queue-index-{}-{}",
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
        let priorities = [Priority::Low, Priority::Normal, Priority::High];
        let agents = [None, Some("alice"), Some("Bob")];
        let mut all = std::collections::BTreeMap::new();
        let mut x: u64 = 7;
        for _ in 0..700 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = 1 + (x >> 33) % 150;
            let mut t = Ticket {
                status: statuses[((x >> 10) % 5) as usize],
                priority: priorities[((x >> 13) % 3) as usize],
                queue: ["general", "billing"][((x >> 15) % 2) as usize].to_string(),
                assignee: agents[((x >> 18) % 3) as usize].map(str::to_string),
                ..Ticket::new(id, "ann@example.org", 0)
            };
            if !(x >> 21).is_multiple_of(4) {
                let due = ((x >> 24) % 40) as i64 * 600 - 3600;
                t.sla = Some(SlaState {
                    policy: "std".into(),
                    first_response_due: Some(due),
                    resolution_due: Some(due + 7200),
                    first_response_at: ((x >> 30) & 1 == 1).then_some(0),
                    paused_since: (x >> 31).is_multiple_of(5).then_some(0),
                    fired: Vec::new(),
                    started_at: None,
                    paused_business_secs: 0,
                });
            }
            if (x >> 40) & 1 == 1 {
                t.tags.push("vip".into());
            }
            store.write(|tx| tx.put_ticket(&t)).unwrap();
            all.insert(id, t);
        }
        let queries: Vec<Vec<String>> = {
            let mut out = Vec::new();
            for folder in [
                "f:open",
                "f:unassigned",
                "f:mine:bob",
                "f:queue:billing",
                "f:pending",
                "f:resolved",
            ] {
                for extra in [
                    None,
                    Some("priority:high"),
                    Some("tag:vip"),
                    Some("status:new"),
                ] {
                    let mut keys = vec![folder.to_string()];
                    keys.extend(extra.map(str::to_string));
                    out.push(keys);
                }
            }
            out
        };
        let check = |store: &Store| {
            for keys in &queries {
                let want = brute(&all, keys);
                let (total, got) = walk(store, keys, 7);
                assert_eq!(got, want, "{keys:?}");
                assert_eq!(total as usize, want.len(), "total of {keys:?}");
            }
            let counts: std::collections::BTreeMap<String, u64> =
                store.queue_counts("f:").unwrap().into_iter().collect();
            for f in [
                "f:open",
                "f:unassigned",
                "f:mine:bob",
                "f:pending",
                "f:resolved",
            ] {
                let want = brute(&all, &[f.to_string()]).len() as u64;
                assert_eq!(counts.get(f).copied().unwrap_or(0), want, "count of {f}");
            }
        };
        check(&store);

        store
            .write(|tx| {
                tx.txn.open_table(META)?.remove(QUEUE_INDEX_BUILT)?;
                tx.txn.open_table(QUEUE_INDEX)?.retain(|_, _| false)?;
                tx.txn.open_table(QUEUE_COUNTS)?.retain(|_, _| false)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        check(&store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn ticket(id: u64, status: Status, tag: Option<&str>) -> Ticket {
        Ticket {
            status,
            tags: tag.map(str::to_string).into_iter().collect(),
            ..Ticket::new(id, "ann@example.org", 0)
        }
    }

    fn ids(store: &Store, keys: &[&str]) -> Vec<u64> {
        let q = QueueQuery {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            limit: 100,
            ..Default::default()
        };
        let p = store.queue_page(&q).unwrap();
        p.tickets.iter().map(|t| t.id).collect()
    }

    #[test]
    fn an_older_store_s_text_keyed_index_is_dropped_and_rebuilt_with_key_ids() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-queue-index-legacy-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store
            .write(|tx| {
                tx.put_ticket(&ticket(1, Status::Open, Some("vip")))?;
                tx.put_ticket(&ticket(2, Status::Resolved, Some("vip")))?;
                tx.put_ticket(&ticket(3, Status::Open, None))
            })
            .unwrap();
        // As an older version left it: its text-keyed index and flag, none
        // of the id-keyed tables.
        store
            .write(|tx| {
                let mut meta = tx.txn.open_table(META)?;
                meta.remove(QUEUE_INDEX_BUILT)?;
                meta.insert(LEGACY_QUEUE_INDEX_BUILT, 1)?;
                tx.txn.delete_table(QUEUE_INDEX)?;
                tx.txn.delete_table(QUEUE_KEY_IDS)?;
                tx.txn
                    .open_table(LEGACY_QUEUE_INDEX)?
                    .insert(("f:open", u64::MAX, u64::MAX - 1), ())?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        {
            let r = store.db().unwrap().0.begin_read().unwrap();
            assert!(
                !r.list_tables()
                    .unwrap()
                    .any(|t| t.name() == LEGACY_QUEUE_INDEX.name()),
                "the text-keyed index is dropped"
            );
            let meta = r.open_table(META).unwrap();
            assert!(meta.get(LEGACY_QUEUE_INDEX_BUILT).unwrap().is_none());
            assert!(meta.get(QUEUE_INDEX_BUILT).unwrap().is_some());
        }
        assert_eq!(ids(&store, &["f:open"]), vec![3, 1]);
        assert_eq!(ids(&store, &["tag:vip"]), vec![2, 1]);
        assert_eq!(ids(&store, &["f:open", "tag:vip"]), vec![1]);
        assert_eq!(ids(&store, &["tag:never-seen"]), Vec::<u64>::new());
        // A key first seen after the rebuild gets the next id.
        store
            .write(|tx| tx.put_ticket(&ticket(4, Status::Pending, Some("new"))))
            .unwrap();
        assert_eq!(ids(&store, &["tag:new"]), vec![4]);
        assert_eq!(ids(&store, &["f:open"]), vec![4, 3, 1]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
