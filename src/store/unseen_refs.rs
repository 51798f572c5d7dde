//! Message-IDs that our messages reference but that we never received: JWZ's
//! "empty containers". When the original went to a list or to someone else
//! and only replies were copied to us, the replies share a parent we never
//! saw; remembering which tickets reference it lets a later reply to the
//! same parent find them.
//!
//! Kept apart from `msgid_index` (ids of messages we hold), because an id we
//! only saw referenced proves less: the threading code trusts it only for
//! a ticket's participants, and an id found in unrelated conversations is
//! marked ambiguous and never used again.

use super::{Result, Tx, dec, enc};
use crate::model::TicketId;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Referenced Message-ID → [`UnseenRef`] (JSON).
pub(super) const UNSEEN_REFS: TableDefinition<&str, &[u8]> = TableDefinition::new("unseen_refs");

/// At most this many tickets are remembered per unseen id; an id referenced
/// from more tickets than this identifies no conversation and is ambiguous.
pub const MAX_TICKETS_PER_REF: usize = 8;

/// What we know of one unseen Message-ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnseenRef {
    /// Tickets whose messages reference the id, oldest first.
    pub tickets: Vec<TicketId>,
    /// Seen in unrelated conversations: never used for threading again.
    pub ambiguous: bool,
}

impl Tx<'_> {
    /// What is known of the unseen Message-ID `id`.
    pub fn unseen_ref(&mut self, id: &str) -> Result<Option<UnseenRef>> {
        let t = self.txn.open_table(UNSEEN_REFS)?;
        match t.get(id)? {
            Some(v) => Ok(Some(dec("unseen_refs", v.value())?)),
            None => Ok(None),
        }
    }

    /// Records that a message of `ticket` references the unseen `id`. Past
    /// [`MAX_TICKETS_PER_REF`] tickets the id becomes ambiguous.
    pub fn note_unseen_ref(&mut self, id: &str, ticket: TicketId) -> Result<()> {
        if id.is_empty() || id.len() > 900 {
            return Ok(());
        }
        let mut entry = self.unseen_ref(id)?.unwrap_or_default();
        if entry.ambiguous || entry.tickets.contains(&ticket) {
            return Ok(());
        }
        if entry.tickets.len() >= MAX_TICKETS_PER_REF {
            entry.ambiguous = true;
        } else {
            entry.tickets.push(ticket);
        }
        self.put_unseen_ref(id, &entry)
    }

    /// Marks the unseen `id` as seen in unrelated conversations.
    pub fn mark_unseen_ref_ambiguous(&mut self, id: &str) -> Result<()> {
        if id.is_empty() || id.len() > 900 {
            return Ok(());
        }
        let mut entry = self.unseen_ref(id)?.unwrap_or_default();
        if entry.ambiguous {
            return Ok(());
        }
        entry.ambiguous = true;
        self.put_unseen_ref(id, &entry)
    }

    fn put_unseen_ref(&mut self, id: &str, entry: &UnseenRef) -> Result<()> {
        self.txn
            .open_table(UNSEEN_REFS)?
            .insert(id, enc(entry).as_slice())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    #[test]
    fn an_id_referenced_from_too_many_tickets_becomes_ambiguous() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-unseen-refs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let store = Store::open(&dir).unwrap();
        let entry = store
            .write(|tx| {
                for t in 1..=MAX_TICKETS_PER_REF as u64 {
                    tx.note_unseen_ref("parent-0001@lists.example.org", t)?;
                    tx.note_unseen_ref("parent-0001@lists.example.org", t)?;
                }
                let full = tx.unseen_ref("parent-0001@lists.example.org")?;
                tx.note_unseen_ref("parent-0001@lists.example.org", 99)?;
                Ok((full, tx.unseen_ref("parent-0001@lists.example.org")?))
            })
            .unwrap();
        let (full, after) = entry;
        let full = full.unwrap();
        assert_eq!(full.tickets.len(), MAX_TICKETS_PER_REF, "each ticket once");
        assert!(!full.ambiguous);
        assert!(after.unwrap().ambiguous);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
