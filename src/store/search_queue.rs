//! The tickets the search index has yet to take in: the commit protocol
//! between the store (the truth) and the tantivy index beside it.
//!
//! Every write transaction that changes a ticket adds `(mark, ticket)` to
//! [`SEARCH_QUEUE`] before it commits, `mark` one more than the last one
//! given (META `search_queue_seq`), so marks grow with commit order. The
//! indexer reads a [`SearchBacklog`] (marks and the tickets' documents from
//! one snapshot), replaces those tickets in tantivy, commits tantivy, and
//! only then removes the marks it read ([`Store::search_taken`]). A crash
//! anywhere in between leaves the marks, so their tickets are indexed again
//! (replacing a ticket is idempotent); a mark is never removed before its
//! ticket's state as of that mark is committed in tantivy.

use super::*;
use crate::search::TicketDocument;
use std::collections::BTreeSet;

/// `(mark, ticket)` → (): tickets changed by a commit the index has not
/// taken in yet. Small: the indexer drains it within moments.
pub(super) const SEARCH_QUEUE: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("search_queue");

/// META: the last mark given to a commit.
const QUEUE_SEQ: &str = "search_queue_seq";

/// What the indexer takes in one round.
#[derive(Debug, Default)]
pub struct SearchBacklog {
    /// The queue entries read, in mark order.
    pub marks: Vec<(u64, TicketId)>,
    /// Each ticket of `marks` once, with its document as of the same
    /// snapshot (None: the ticket is gone and leaves the index).
    pub documents: Vec<(TicketId, Option<TicketDocument>)>,
    /// Every mark up to this one is in `marks` or was taken before: once
    /// `marks` are indexed, so is every commit up to this mark.
    pub covers: u64,
}

impl Tx<'_> {
    /// Queues `ids` for the index under this commit's mark.
    pub(super) fn queue_for_search(&mut self, ids: &BTreeSet<TicketId>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut meta = self.txn.open_table(META)?;
        let mark = meta.get(QUEUE_SEQ)?.map_or(0, |v| v.value()) + 1;
        meta.insert(QUEUE_SEQ, mark)?;
        let mut queue = self.txn.open_table(SEARCH_QUEUE)?;
        for &id in ids {
            queue.insert((mark, id), ())?;
        }
        Ok(())
    }

    pub(super) fn init_search_queue(&mut self) -> Result<()> {
        self.txn.open_table(SEARCH_QUEUE)?;
        Ok(())
    }
}

impl Store {
    /// The last mark committed: a search that must see every change
    /// committed before it waits until the index covers this mark.
    pub fn search_queue_seq(&self) -> Result<u64> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(META)?.get(QUEUE_SEQ)?.map_or(0, |v| v.value()))
    }

    /// Tickets waiting for the index (for tests and the log).
    pub fn search_queue_len(&self) -> Result<u64> {
        let r = self.db()?.0.begin_read()?;
        Ok(r.open_table(SEARCH_QUEUE)?.len()?)
    }

    /// The oldest `max` queue entries with their tickets' documents, from
    /// one snapshot. Before returning, makes sure that snapshot is durable
    /// (a lazy commit could still be lost in a crash): the index never
    /// holds a change the store may lose.
    pub fn search_backlog(&self, max: usize) -> Result<SearchBacklog> {
        let r = self.db()?.0.begin_read()?;
        // Every commit this snapshot shows has a write number up to this.
        let seen_writes = self.shared.writes.load(Ordering::SeqCst);
        let queue = r.open_table(SEARCH_QUEUE)?;
        let mut marks = Vec::new();
        let mut next = None;
        for item in queue.iter()? {
            let k = item?.0.value();
            if marks.len() == max {
                next = Some(k.0);
                break;
            }
            marks.push(k);
        }
        let covers = match next {
            Some(mark) => mark - 1,
            None => r.open_table(META)?.get(QUEUE_SEQ)?.map_or(0, |v| v.value()),
        };
        let ids: BTreeSet<TicketId> = marks.iter().map(|&(_, id)| id).collect();
        let mut documents = Vec::with_capacity(ids.len());
        for id in ids {
            documents.push((id, super::search::read_document(&r, id)?));
        }
        drop(queue);
        drop(r);
        if !marks.is_empty() && self.shared.durable_upto.load(Ordering::SeqCst) < seen_writes {
            self.flush()?;
        }
        Ok(SearchBacklog {
            marks,
            documents,
            covers,
        })
    }

    /// Removes queue entries the index has committed. Not fsynced on its
    /// own: lost in a crash, the entries come back and their tickets are
    /// indexed once more, which changes nothing.
    pub fn search_taken(&self, marks: &[(u64, TicketId)]) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        self.write_lazy(|tx| {
            let mut queue = tx.txn.open_table(SEARCH_QUEUE)?;
            for &k in marks {
                queue.remove(k)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, ticket: u64, text: &str) -> MessageRecord {
        MessageRecord {
            seq,
            ticket: Some(ticket),
            message_id: format!("m{seq}@example.org"),
            direction: Direction::Inbound,
            kind: MessageKind::Customer,
            from: "ann@example.org".into(),
            to: vec![],
            subject: "Scanner".into(),
            date: 0,
            text: text.into(),
            stranger: None,
        }
    }

    #[test]
    fn commits_queue_their_tickets_until_taken_and_old_index_tables_go() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-search-queue-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        // A store of format 3 kept postings inside redb.
        store
            .write(|tx| {
                let old: TableDefinition<(&str, u64), &[u8]> =
                    TableDefinition::new("search_postings");
                tx.txn.open_table(old)?.insert(("scanner", 1), &[][..])?;
                tx.txn.open_table(META)?.insert("search_format", 3)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        {
            let r = store.db().unwrap().0.begin_read().unwrap();
            let names: Vec<String> = r
                .list_tables()
                .unwrap()
                .map(|t| redb::TableHandle::name(&t).to_string())
                .collect();
            assert!(!names.iter().any(|n| n == "search_postings"), "{names:?}");
            assert!(
                r.open_table(META)
                    .unwrap()
                    .get("search_format")
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(store.search_backlog(10).unwrap().covers, 0);

        for (seq, id, text) in [(1, 1, "It blinks."), (2, 2, "Paper jam.")] {
            store
                .write(|tx| {
                    tx.put_message(&message(seq, id, text))?;
                    let mut t = Ticket::new(id, "ann@example.org", 0);
                    t.subject = "Scanner".into();
                    tx.put_ticket(&t)
                })
                .unwrap();
        }
        // Ticket 1 changed again: two entries, one document.
        store
            .write(|tx| tx.put_message(&message(3, 1, "Now it beeps.")))
            .unwrap();
        // A commit that changes no ticket queues nothing.
        store.write(|tx| tx.put_raw(99, b"x")).unwrap();
        assert_eq!(store.search_queue_seq().unwrap(), 3);
        let b = store.search_backlog(10).unwrap();
        assert_eq!(b.marks, vec![(1, 1), (2, 2), (3, 1)]);
        assert_eq!(b.covers, 3);
        let docs: Vec<(u64, Vec<String>)> = b
            .documents
            .iter()
            .map(|(id, d)| (*id, d.as_ref().unwrap().parts.clone()))
            .collect();
        assert_eq!(
            docs,
            vec![
                (
                    1,
                    vec![
                        "Scanner".into(),
                        "It blinks.".into(),
                        "Now it beeps.".into()
                    ]
                ),
                (2, vec!["Scanner".into(), "Paper jam.".into()]),
            ]
        );
        // A round of two: covers only the marks before the first one left.
        let part = store.search_backlog(2).unwrap();
        assert_eq!(part.marks, vec![(1, 1), (2, 2)]);
        assert_eq!(part.covers, 2);
        store.search_taken(&part.marks).unwrap();
        // Changed meanwhile: its new entry stays when the old ones go.
        store
            .write(|tx| tx.put_message(&message(4, 2, "Fixed.")))
            .unwrap();
        let rest = store.search_backlog(10).unwrap();
        assert_eq!(rest.marks, vec![(3, 1), (4, 2)]);
        store.search_taken(&rest.marks).unwrap();
        assert_eq!(store.search_queue_len().unwrap(), 0);
        assert_eq!(store.search_backlog(10).unwrap().covers, 4);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
