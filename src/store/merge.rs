//! Merged tickets: where a merged ticket's mail goes now, and moving
//! messages between tickets (merge moves them all, split moves one).
//!
//! A merge moves the merged ticket's message list to the survivor (rows of
//! `ticket_messages` and each record's `ticket`), so every reader of a
//! ticket's conversation (API, web view, split) sees it there without
//! knowing about merges. What is *not* rewritten is everything that names
//! the old ticket from outside: the Message-ID index, reply tokens and
//! `[#N]` subject tags already in customers' mailboxes. Those keep naming
//! the merged ticket, and threading follows its `merged_into` pointer
//! ([`Tx::survivor`]), so a merge costs one write per message, not one per
//! Message-ID ever sent.

use super::{MESSAGES, Result, TICKET_MESSAGES, Tx, dec, enc};
use crate::model::{MessageRecord, MessageSeq, TicketId};
use redb::{
    MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    TableDefinition,
};

/// Merged ticket → the ticket it was merged into (one hop; chains are followed).
pub(super) const MERGED_INTO: TableDefinition<u64, u64> = TableDefinition::new("merged_into");
/// Survivor → the tickets merged into it (directly).
pub(super) const MERGED_FROM: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("merged_from");

/// How many `merged_into` hops threading follows at most. Merges refuse
/// cycles, so a chain ends; the bound only keeps a damaged store from
/// looping forever.
pub const MAX_MERGE_CHAIN: usize = 64;

impl Tx<'_> {
    /// The ticket `id` was merged into (one hop), if it was.
    pub fn merged_into(&mut self, id: TicketId) -> Result<Option<TicketId>> {
        let t = self.txn.open_table(MERGED_INTO)?;
        Ok(t.get(id)?.map(|v| v.value()))
    }

    /// Where mail for ticket `id` belongs now: `id` itself, or the end of its
    /// `merged_into` chain (A→B→C gives C). Stops at [`MAX_MERGE_CHAIN`] hops
    /// or at a ticket seen twice.
    pub fn survivor(&mut self, id: TicketId) -> Result<TicketId> {
        let t = self.txn.open_table(MERGED_INTO)?;
        let mut at = id;
        let mut seen = vec![id];
        for _ in 0..MAX_MERGE_CHAIN {
            match t.get(at)?.map(|v| v.value()) {
                Some(next) if !seen.contains(&next) => {
                    seen.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        Ok(at)
    }

    /// Records that `from` was merged into `into`.
    pub fn record_merge(&mut self, from: TicketId, into: TicketId) -> Result<()> {
        self.txn.open_table(MERGED_INTO)?.insert(from, into)?;
        self.txn
            .open_multimap_table(MERGED_FROM)?
            .insert(into, from)?;
        Ok(())
    }

    /// Moves every message listed in ticket `from` to ticket `to` (the list
    /// and each record's `ticket`); returns how many moved.
    pub fn move_messages(&mut self, from: TicketId, to: TicketId) -> Result<u64> {
        let seqs: Vec<MessageSeq> = {
            let list = self.txn.open_multimap_table(TICKET_MESSAGES)?;
            list.get(from)?
                .map(|v| v.map(|v| v.value()))
                .collect::<std::result::Result<_, _>>()?
        };
        for &seq in &seqs {
            self.move_message(seq, from, to)?;
        }
        Ok(seqs.len() as u64)
    }

    /// Moves message `seq` from ticket `from`'s list to ticket `to`'s and
    /// rewrites its record's `ticket`.
    pub fn move_message(&mut self, seq: MessageSeq, from: TicketId, to: TicketId) -> Result<()> {
        let mut list = self.txn.open_multimap_table(TICKET_MESSAGES)?;
        list.remove(from, seq)?;
        list.insert(to, seq)?;
        let mut messages = self.txn.open_table(MESSAGES)?;
        let record = messages
            .get(seq)?
            .map(|v| dec::<MessageRecord>("messages", v.value()))
            .transpose()?;
        if let Some(mut record) = record {
            record.ticket = Some(to);
            messages.insert(seq, enc(&record).as_slice())?;
        }
        Ok(())
    }

    /// Whether message `seq` is listed in ticket `id`'s conversation.
    pub fn lists_message(&mut self, id: TicketId, seq: MessageSeq) -> Result<bool> {
        let list = self.txn.open_multimap_table(TICKET_MESSAGES)?;
        for v in list.get(id)? {
            if v?.value() == seq {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Points a Message-ID at another ticket (a split message's replies
    /// follow it to its new ticket), unlike `index_msgid`, which keeps the
    /// first ticket a Message-ID was seen in.
    pub fn repoint_msgid(&mut self, message_id: &str, ticket: TicketId) -> Result<()> {
        if message_id.is_empty() || message_id.len() > 900 {
            return Ok(());
        }
        self.txn
            .open_table(super::MSGID_INDEX)?
            .insert(message_id, ticket)?;
        Ok(())
    }
}

impl super::Store {
    /// The ticket `id` was merged into (one hop), if it was.
    pub fn merged_into(&self, id: TicketId) -> Result<Option<TicketId>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(MERGED_INTO) {
            Ok(t) => t,
            // Never written yet: nothing was merged.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(id)?.map(|v| v.value()))
    }

    /// The tickets merged directly into `id`, lowest first.
    pub fn merged_from(&self, id: TicketId) -> Result<Vec<TicketId>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_multimap_table(MERGED_FROM) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for v in t.get(id)? {
            out.push(v?.value());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, MessageKind, Ticket};
    use crate::store::Store;

    fn message(seq: MessageSeq, ticket: TicketId) -> MessageRecord {
        MessageRecord {
            seq,
            ticket: Some(ticket),
            message_id: format!("m{seq}@example.org"),
            direction: Direction::Inbound,
            kind: MessageKind::Customer,
            from: "ann@example.org".into(),
            to: Vec::new(),
            subject: "s".into(),
            date: 0,
            text: String::new(),
            stranger: None,
        }
    }

    #[test]
    fn chains_are_followed_and_messages_move() {
        let dir = std::env::temp_dir().join(format!("postdesk-merge-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.merged_into(1).unwrap(), None);
        assert!(store.merged_from(3).unwrap().is_empty());
        store
            .write(|tx| {
                for id in 1..=3 {
                    tx.put_ticket(&Ticket::new(id, "ann@example.org", 0))?;
                }
                tx.put_message(&message(10, 1))?;
                tx.put_message(&message(11, 1))?;
                tx.put_message(&message(12, 2))?;
                assert_eq!(tx.survivor(1)?, 1);
                assert_eq!(tx.move_messages(1, 2)?, 2);
                tx.record_merge(1, 2)?;
                tx.record_merge(2, 3)?;
                tx.move_messages(2, 3)?;
                assert_eq!(tx.survivor(1)?, 3);
                assert_eq!(tx.survivor(2)?, 3);
                assert_eq!(tx.survivor(3)?, 3);
                assert!(tx.lists_message(3, 10)? && !tx.lists_message(1, 10)?);
                Ok(())
            })
            .unwrap();
        let listed: Vec<_> = store
            .ticket_messages(3)
            .unwrap()
            .iter()
            .map(|m| (m.seq, m.ticket))
            .collect();
        assert_eq!(listed, [(10, Some(3)), (11, Some(3)), (12, Some(3))]);
        assert!(store.ticket_messages(1).unwrap().is_empty());
        assert_eq!(store.merged_into(1).unwrap(), Some(2));
        assert_eq!(store.merged_from(3).unwrap(), [2]);
        // A damaged store with a cycle does not loop.
        store
            .write(|tx| {
                tx.record_merge(3, 1)?;
                assert_eq!(tx.survivor(1)?, 3);
                Ok(())
            })
            .unwrap();
        std::fs::remove_dir_all(dir).ok();
    }
}
