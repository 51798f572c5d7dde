//! What the search index is fed from: each ticket as a
//! [`TicketDocument`], built from the stored records, which stay the truth.
//! The index itself is tantivy's (`search_index`), outside the store; which
//! tickets it has yet to take in is `search_queue.rs`.
//!
//! [`Tx::put_ticket`] and [`Tx::put_message`] mark their ticket, and
//! [`Tx::refresh_search`] queues the marked tickets just before the
//! transaction commits, so no change can commit without its queue entry.

use super::*;
use crate::search::{self, TicketDocument};
use std::collections::HashMap;

/// Message sequence → JSON [`MessageExtras`]: what the index needs of a
/// message that its record does not keep (sender name, attachment names).
/// Source data, not index: a rebuild reads it, never clears it.
pub(super) const MESSAGE_EXTRAS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("message_extras");

/// The search index's directory inside the data directory (tantivy's files,
/// derived from the store: deleted, it is rebuilt; restore removes it).
pub const SEARCH_DIR: &str = "search";

/// The tables of the index kept inside redb until its format 3; dropped on
/// open (tantivy holds the index now), with their META keys.
const RETIRED_TABLES: [&str; 3] = ["search_postings", "search_terms", "search_docs"];
const RETIRED_META: [&str; 3] = ["search_format", "search_doc_count", "search_total_len"];

/// What the index keeps of a message besides its record.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct MessageExtras {
    /// The display name of the From.
    #[serde(default)]
    pub from_name: String,
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// The document of a ticket: its conversation only. What postdesk wrote
/// itself (acknowledgements, notices) would put the same boilerplate words
/// in every ticket, and its snippets would win over the customer's words.
fn document(
    t: &Ticket,
    messages: &[MessageRecord],
    extras: &HashMap<u64, MessageExtras>,
) -> TicketDocument {
    let mut parts = vec![t.subject.clone()];
    let mut fields = vec![
        t.id.to_string(),
        t.tags.join(" "),
        t.requester.clone(),
        t.requester_name.clone(),
    ];
    let mut from = search::from_terms(&t.requester, &t.requester_name);
    for m in messages
        .iter()
        .filter(|m| !matches!(m.kind, MessageKind::Auto | MessageKind::System))
    {
        if m.subject != t.subject && !m.subject.is_empty() {
            parts.push(m.subject.clone());
        }
        parts.push(m.text.clone());
        let x = extras.get(&m.seq).cloned().unwrap_or_default();
        fields.push(m.from.clone());
        fields.push(x.from_name.clone());
        fields.extend(x.attachments.iter().cloned());
        from.extend(search::from_terms(&m.from, &x.from_name));
    }
    from.sort();
    from.dedup();
    TicketDocument {
        ticket: t.id,
        created_at: t.created_at,
        status: t.status.as_str().to_string(),
        queue: t.queue.clone(),
        tags: t.tags.clone(),
        parts,
        fields,
        from,
    }
}

/// The document of ticket `id` as of the read transaction `r` (None: no
/// such ticket, it leaves the index).
pub(super) fn read_document(
    r: &redb::ReadTransaction,
    id: TicketId,
) -> Result<Option<TicketDocument>> {
    let Some(v) = r.open_table(TICKETS)?.get(id)? else {
        return Ok(None);
    };
    let ticket: Ticket = dec("tickets", v.value())?;
    let messages = messages_of(
        &r.open_multimap_table(TICKET_MESSAGES)?,
        &r.open_table(MESSAGES)?,
        id,
    )?;
    let extras_table = r.open_table(MESSAGE_EXTRAS)?;
    let mut extras = HashMap::new();
    for m in &messages {
        if let Some(v) = extras_table.get(m.seq)? {
            extras.insert(m.seq, dec::<MessageExtras>("message_extras", v.value())?);
        }
    }
    Ok(Some(document(&ticket, &messages, &extras)))
}

impl Tx<'_> {
    /// Keeps a message's sender name and attachment names for the index
    /// (call before the message joins its ticket, in the same transaction).
    pub fn put_message_extras(&mut self, seq: MessageSeq, x: &MessageExtras) -> Result<()> {
        if x.from_name.is_empty() && x.attachments.is_empty() {
            return Ok(());
        }
        self.txn
            .open_table(MESSAGE_EXTRAS)?
            .insert(seq, enc(x).as_slice())?;
        Ok(())
    }

    /// Forgets a message's sender name and attachment names (erasure).
    pub(super) fn remove_message_extras(&mut self, seq: MessageSeq) -> Result<()> {
        self.txn.open_table(MESSAGE_EXTRAS)?.remove(seq)?;
        Ok(())
    }

    /// Marks a ticket for [`Tx::refresh_search`].
    pub(super) fn search_dirty(&mut self, id: TicketId) {
        self.search_dirty.insert(id);
    }

    /// Queues every ticket changed in this transaction for the index;
    /// called by [`Store::write`] just before it commits.
    pub(super) fn refresh_search(&mut self) -> Result<()> {
        let dirty = std::mem::take(&mut self.search_dirty);
        self.queue_for_search(&dirty)
    }
}

impl Store {
    /// Drops the tables of the index that lived inside redb (format 3 and
    /// older) and creates the search queue; on open.
    pub(super) fn build_search_index_if_needed(&self) -> Result<()> {
        self.write(|tx| {
            for name in RETIRED_TABLES {
                let def: TableDefinition<&str, ()> = TableDefinition::new(name);
                // Whatever its key and value types were, a table is deleted by name.
                if tx.txn.delete_table(def)? {
                    tracing::info!(table = name, "retired search table dropped");
                }
            }
            let mut meta = tx.txn.open_table(META)?;
            for key in RETIRED_META {
                meta.remove(key)?;
            }
            drop(meta);
            tx.txn.open_table(MESSAGE_EXTRAS)?;
            tx.init_search_queue()
        })
    }

    /// Up to `n` documents of the tickets after `after` in id order, from
    /// one read transaction (a rebuild reads the store in such batches).
    pub fn search_documents_after(&self, after: TicketId, n: usize) -> Result<Vec<TicketDocument>> {
        let r = self.db()?.0.begin_read()?;
        let ids: Vec<u64> = r
            .open_table(TICKETS)?
            .range(after.saturating_add(1)..)?
            .take(n)
            .map(|item| item.map(|(k, _)| k.value()))
            .collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(read_document(&r, id)?);
        }
        Ok(out)
    }

    /// The tickets `ids` as stored now, each with the texts its snippet is
    /// cut from ([`TicketDocument::parts`]); a ticket gone is left out.
    pub fn search_hit_records(&self, ids: &[TicketId]) -> Result<Vec<(Ticket, TicketDocument)>> {
        let r = self.db()?.0.begin_read()?;
        let tickets = r.open_table(TICKETS)?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(v) = tickets.get(id)? else { continue };
            let ticket: Ticket = dec("tickets", v.value())?;
            if let Some(doc) = read_document(&r, id)? {
                out.push((ticket, doc));
            }
        }
        Ok(out)
    }
}
