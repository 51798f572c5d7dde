//! The full-text index inside redb: postings `(term, ticket) → frequency`,
//! document frequencies, and each ticket's indexed length and terms. The
//! words, query language and scoring are [`crate::search`]'s; this file
//! keeps the index and answers queries from it.
//!
//! Invariant: the index never falls behind the tickets. [`Tx::put_ticket`]
//! and [`Tx::put_message`] mark their ticket, and [`Tx::refresh_search`]
//! re-indexes every marked ticket just before the transaction commits, so
//! a ticket and its postings change together. A store whose index is
//! missing or of an older [`SEARCH_FORMAT`] is rebuilt on open; `postdesk
//! reindex` rebuilds it in a running daemon.

use super::*;
use crate::search::{self, Clause, Piece, Query, TopK};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `(term, ticket)` → the document's length and the term's frequency (each
/// 4 bytes, little end first), then the term's positions (LEB128 varints,
/// each the gap to the one before): scoring a candidate needs no second
/// lookup and a phrase is checked without reading the text. All of a
/// ticket's postings are rewritten when it is re-indexed, so the length
/// stays current.
pub(super) const SEARCH_POSTINGS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("search_postings");
/// Term → in how many tickets it occurs (BM25's document frequency).
pub(super) const SEARCH_TERMS: TableDefinition<&str, u64> = TableDefinition::new("search_terms");
/// Ticket → its indexed document: length in words (4 bytes, little end
/// first) and then its distinct terms separated by `\n`, so a re-index
/// knows which postings to remove.
pub(super) const SEARCH_DOCS: TableDefinition<u64, &[u8]> = TableDefinition::new("search_docs");
/// Message sequence → JSON [`MessageExtras`]: what the index needs of a
/// message that its record does not keep (sender name, attachment names).
/// Source data, not index: a rebuild reads it, never clears it.
pub(super) const MESSAGE_EXTRAS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("message_extras");

/// META: the format of the index the store holds; a different one is rebuilt.
const SEARCH_FORMAT_KEY: &str = "search_format";
/// META: indexed tickets and the sum of their lengths (BM25's average).
const SEARCH_DOC_COUNT: &str = "search_doc_count";
const SEARCH_TOTAL_LEN: &str = "search_total_len";

/// Bump when what is indexed or how changes: stores with another format
/// are re-indexed on open.
pub const SEARCH_FORMAT: u64 = 3;

/// A prefix expands to at most this many terms (in term order), so `a*`
/// cannot read the whole vocabulary; what it leaves out is reported.
pub const MAX_PREFIX_TERMS: usize = 256;

/// Tickets re-indexed per write transaction by a rebuild: small enough to
/// keep a transaction's memory and the processor's wait short.
const REBUILD_BATCH: usize = 2_000;

/// What the index keeps of a message besides its record.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct MessageExtras {
    /// The display name of the From.
    #[serde(default)]
    pub from_name: String,
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// One found ticket.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub ticket: Ticket,
    /// BM25 over the query's words (0 for a query of filters only).
    pub score: f64,
    /// Around the first match in the subject or a message; plain text
    /// pieces, escaped by whoever renders them.
    pub snippet: Vec<Piece>,
}

/// The answer to a query.
#[derive(Debug, Clone, Default)]
pub struct SearchResults {
    /// Tickets matching the whole query.
    pub total: usize,
    pub hits: Vec<SearchHit>,
    /// Prefixes that matched more than [`MAX_PREFIX_TERMS`] terms (only the
    /// first ones were searched).
    pub truncated_prefixes: Vec<String>,
}

/// The text and terms of a ticket's document.
struct Document {
    /// Subject, then every listed message's subject (when different) and text.
    parts: Vec<String>,
    /// Ticket number, tags, senders' addresses and names, attachment names.
    #[cfg_attr(not(test), allow(dead_code, reason = "the full-scan test reads it"))]
    fields: Vec<String>,
    /// Term → its positions (empty for field terms, `from:`).
    terms: BTreeMap<String, Vec<u32>>,
    /// Words of the text (field terms not counted).
    len: u32,
}

/// Positions skipped between two parts or fields, so a phrase never spans
/// the end of one message and the start of the next.
const PART_GAP: u32 = 8;

fn document(
    t: &Ticket,
    messages: &[MessageRecord],
    extras: &HashMap<u64, MessageExtras>,
) -> Document {
    let mut parts = vec![t.subject.clone()];
    let mut fields = vec![
        t.id.to_string(),
        t.tags.join(" "),
        t.requester.clone(),
        t.requester_name.clone(),
    ];
    let mut from = search::from_terms(&t.requester, &t.requester_name);
    // The conversation only: what postdesk wrote itself (acknowledgements,
    // notices) would put the same boilerplate words in every ticket, and
    // its snippets would win over the customer's words.
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
    let mut terms: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let (mut len, mut pos) = (0u32, 0u32);
    for s in parts.iter().chain(fields.iter()) {
        for w in search::tokenize(s) {
            terms.entry(w).or_default().push(pos);
            pos = pos.saturating_add(1);
            len += 1;
        }
        pos = pos.saturating_add(PART_GAP);
    }
    for f in from {
        // A field term counts once per ticket: it filters, it does not rank.
        terms.insert(f, Vec::new());
    }
    Document {
        parts,
        fields,
        terms,
        len,
    }
}

fn doc_value(len: u32, terms: &BTreeMap<String, Vec<u32>>) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    for (i, t) in terms.keys().enumerate() {
        if i > 0 {
            v.push(b'\n');
        }
        v.extend_from_slice(t.as_bytes());
    }
    v
}

/// A posting's value (see [`SEARCH_POSTINGS`]); a field term has no
/// positions and frequency 1.
fn posting(positions: &[u32], doc_len: u32) -> Vec<u8> {
    let tf = (positions.len() as u32).max(1);
    let mut v = Vec::with_capacity(8 + positions.len() * 2);
    v.extend_from_slice(&doc_len.to_le_bytes());
    v.extend_from_slice(&tf.to_le_bytes());
    let mut last = 0;
    for &p in positions {
        let mut gap = p - last;
        last = p;
        loop {
            let byte = (gap & 0x7f) as u8;
            gap >>= 7;
            if gap == 0 {
                v.push(byte);
                break;
            }
            v.push(byte | 0x80);
        }
    }
    v
}

/// (frequency, document length) of a posting's value.
fn unposting(v: &[u8]) -> (u32, u32) {
    let word = |at: usize| {
        v.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    (word(4), word(0))
}

/// The positions of a posting's value, in order.
fn positions(v: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let (mut at, mut gap, mut shift) = (0u32, 0u32, 0u32);
    for &b in v.get(8..).unwrap_or_default() {
        gap |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            at = at.saturating_add(gap);
            out.push(at);
            (gap, shift) = (0, 0);
        } else {
            shift += 7;
        }
    }
    out
}

fn doc_len(v: &[u8]) -> u32 {
    v.get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn doc_terms(v: &[u8]) -> BTreeSet<String> {
    let rest = v.get(4..).unwrap_or_default();
    String::from_utf8_lossy(rest)
        .split('\n')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn add_meta(meta: &mut redb::Table<&str, u64>, key: &str, delta: i64) -> Result<()> {
    let n = meta.get(key)?.map_or(0, |v| v.value());
    meta.insert(key, n.saturating_add_signed(delta))?;
    Ok(())
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

    /// Re-indexes every ticket changed in this transaction; called by
    /// [`Store::write`] just before it commits.
    pub(super) fn refresh_search(&mut self) -> Result<()> {
        let dirty = std::mem::take(&mut self.search_dirty);
        for id in dirty {
            self.index_ticket(id)?;
        }
        Ok(())
    }

    /// Brings one ticket's postings in line with its record and messages.
    fn index_ticket(&mut self, id: TicketId) -> Result<()> {
        let ticket = self.ticket(id)?;
        let messages = self.ticket_messages(id)?;
        let extras = {
            let t = self.txn.open_table(MESSAGE_EXTRAS)?;
            let mut out = HashMap::new();
            for m in &messages {
                if let Some(v) = t.get(m.seq)? {
                    out.insert(m.seq, dec::<MessageExtras>("message_extras", v.value())?);
                }
            }
            out
        };
        let mut docs = self.txn.open_table(SEARCH_DOCS)?;
        let mut postings = self.txn.open_table(SEARCH_POSTINGS)?;
        let mut df = self.txn.open_table(SEARCH_TERMS)?;
        let mut meta = self.txn.open_table(META)?;
        let old = docs
            .get(id)?
            .map(|v| (doc_len(v.value()), doc_terms(v.value())));
        let new = ticket.map(|t| document(&t, &messages, &extras));
        let (old_len, old_terms) = old.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let new_terms = new.as_ref().map_or(&empty, |d| &d.terms);
        for t in old_terms.iter().filter(|t| !new_terms.contains_key(*t)) {
            postings.remove((t.as_str(), id))?;
            let n = df.get(t.as_str())?.map_or(0, |v| v.value());
            if n <= 1 {
                df.remove(t.as_str())?;
            } else {
                df.insert(t.as_str(), n - 1)?;
            }
        }
        let new_len = new.as_ref().map_or(0, |d| d.len);
        for (t, at) in new_terms {
            postings.insert((t.as_str(), id), posting(at, new_len).as_slice())?;
            if !old_terms.contains(t) {
                let n = df.get(t.as_str())?.map_or(0, |v| v.value());
                df.insert(t.as_str(), n + 1)?;
            }
        }
        match &new {
            Some(d) => {
                docs.insert(id, doc_value(d.len, &d.terms).as_slice())?;
                if old.is_none() {
                    add_meta(&mut meta, SEARCH_DOC_COUNT, 1)?;
                }
                add_meta(
                    &mut meta,
                    SEARCH_TOTAL_LEN,
                    i64::from(d.len) - i64::from(old_len),
                )?;
            }
            None => {
                if old.is_some() {
                    docs.remove(id)?;
                    add_meta(&mut meta, SEARCH_DOC_COUNT, -1)?;
                    add_meta(&mut meta, SEARCH_TOTAL_LEN, -i64::from(old_len))?;
                }
            }
        }
        Ok(())
    }

    /// Empties the index and marks it as not built (the first step of a rebuild).
    fn clear_search(&mut self) -> Result<()> {
        self.txn.delete_table(SEARCH_POSTINGS)?;
        self.txn.delete_table(SEARCH_TERMS)?;
        self.txn.delete_table(SEARCH_DOCS)?;
        self.txn.open_table(SEARCH_POSTINGS)?;
        self.txn.open_table(SEARCH_TERMS)?;
        self.txn.open_table(SEARCH_DOCS)?;
        let mut meta = self.txn.open_table(META)?;
        meta.remove(SEARCH_FORMAT_KEY)?;
        meta.insert(SEARCH_DOC_COUNT, 0)?;
        meta.insert(SEARCH_TOTAL_LEN, 0)?;
        Ok(())
    }
}

impl Store {
    /// Whether the index is complete and of this format.
    pub fn search_index_current(&self) -> Result<bool> {
        let r = self.db()?.0.begin_read()?;
        let meta = r.open_table(META)?;
        Ok(meta.get(SEARCH_FORMAT_KEY)?.map(|v| v.value()) == Some(SEARCH_FORMAT))
    }

    /// Rebuilds the index when it is missing or of another format (on open).
    pub fn build_search_index_if_needed(&self) -> Result<()> {
        if self.search_index_current()? {
            return Ok(());
        }
        let n = self.rebuild_search_index()?;
        tracing::info!(tickets = n, format = SEARCH_FORMAT, "search index built");
        Ok(())
    }

    /// Re-indexes every ticket from the stored records (`postdesk reindex`);
    /// returns how many. In batches of [`REBUILD_BATCH`] tickets per
    /// transaction, so intake goes on meanwhile: a ticket changed during the
    /// rebuild is indexed by its own transaction, and re-indexing is
    /// idempotent. Searches see a partial index until the last batch.
    pub fn rebuild_search_index(&self) -> Result<u64> {
        let span = tracing::info_span!("search_rebuild");
        let _g = span.enter();
        self.write(|tx| tx.clear_search())?;
        let mut next = 0u64;
        let mut count = 0u64;
        loop {
            let ids: Vec<u64> = {
                let r = self.db()?.0.begin_read()?;
                let t = r.open_table(TICKETS)?;
                t.range(next..)?
                    .take(REBUILD_BATCH)
                    .map(|item| item.map(|(k, _)| k.value()))
                    .collect::<std::result::Result<_, _>>()?
            };
            let Some(&last) = ids.last() else { break };
            self.write_lazy(|tx| {
                for &id in &ids {
                    tx.index_ticket(id)?;
                }
                Ok(())
            })?;
            count += ids.len() as u64;
            next = last + 1;
        }
        self.write(|tx| {
            tx.txn
                .open_table(META)?
                .insert(SEARCH_FORMAT_KEY, SEARCH_FORMAT)?;
            Ok(())
        })?;
        Ok(count)
    }

    /// Drops the whole index (it is rebuilt on the next open); for tests
    /// and for an administrator who suspects it.
    pub fn clear_search_index(&self) -> Result<()> {
        self.write(|tx| tx.clear_search())
    }

    /// Size of the index: (postings, distinct terms, indexed tickets), for
    /// benchmarks and the log.
    pub fn search_index_stats(&self) -> Result<(u64, u64, u64)> {
        let r = self.db()?.0.begin_read()?;
        Ok((
            r.open_table(SEARCH_POSTINGS)?.len()?,
            r.open_table(SEARCH_TERMS)?.len()?,
            r.open_table(SEARCH_DOCS)?.len()?,
        ))
    }

    /// Bytes of keys and values in the index tables (what the index holds,
    /// without redb's page overhead); walks them all, for benchmarks.
    pub fn search_index_bytes(&self) -> Result<u64> {
        let r = self.db()?.0.begin_read()?;
        let mut n = 0u64;
        for item in r.open_table(SEARCH_POSTINGS)?.iter()? {
            let (k, v) = item?;
            n += (k.value().0.len() + 8 + v.value().len()) as u64;
        }
        for item in r.open_table(SEARCH_TERMS)?.iter()? {
            n += (item?.0.value().len() + 8) as u64;
        }
        for item in r.open_table(SEARCH_DOCS)?.iter()? {
            n += (8 + item?.1.value().len()) as u64;
        }
        Ok(n)
    }

    /// Runs `query`: every ticket meeting all its clauses counts; the best
    /// `limit` by BM25 (newest first among equals) come back with snippets.
    ///
    /// The rarest clause drives: its posting list (or, for a query of
    /// filters only, the rarest ticket-index key) gives the candidates, and
    /// each other clause is a point lookup per candidate; dates read the
    /// ticket, phrases its text, both only for candidates that passed the rest.
    pub fn search(&self, query: &Query, limit: usize) -> Result<SearchResults> {
        let r = self.db()?.0.begin_read()?;
        let postings = r.open_table(SEARCH_POSTINGS)?;
        let df_table = r.open_table(SEARCH_TERMS)?;
        let tickets = r.open_table(TICKETS)?;
        let index = r.open_table(TICKET_INDEX)?;
        let counts = r.open_table(TICKET_COUNTS)?;
        let meta = r.open_table(META)?;
        let n_docs = meta.get(SEARCH_DOC_COUNT)?.map_or(0, |v| v.value());
        let total_len = meta.get(SEARCH_TOTAL_LEN)?.map_or(0, |v| v.value());
        let avg_len = total_len as f64 / n_docs.max(1) as f64;

        // Each need: a set of terms, one of which the ticket must have,
        // with their document frequencies; `scored` for words of the text.
        struct Need {
            terms: Vec<(String, u64)>,
            scored: bool,
        }
        let df = |t: &str| -> Result<u64> { Ok(df_table.get(t)?.map_or(0, |v| v.value())) };
        let mut needs: Vec<Need> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        let (mut before, mut after) = (None::<i64>, None::<i64>);
        let mut phrases: Vec<&Vec<String>> = Vec::new();
        let mut truncated = Vec::new();
        for c in &query.clauses {
            match c {
                Clause::Word(w) => needs.push(Need {
                    terms: vec![(w.clone(), df(w)?)],
                    scored: true,
                }),
                Clause::Phrase(ws) => {
                    for w in ws.iter().collect::<BTreeSet<_>>() {
                        needs.push(Need {
                            terms: vec![(w.clone(), df(w)?)],
                            scored: true,
                        });
                    }
                    phrases.push(ws);
                }
                Clause::Prefix(p) => {
                    let mut terms = Vec::new();
                    for item in df_table.range(p.as_str()..)? {
                        let (k, v) = item?;
                        if !k.value().starts_with(p.as_str()) {
                            break;
                        }
                        if terms.len() == MAX_PREFIX_TERMS {
                            truncated.push(p.clone());
                            break;
                        }
                        terms.push((k.value().to_string(), v.value()));
                    }
                    needs.push(Need {
                        terms,
                        scored: true,
                    });
                }
                Clause::From(f) => needs.push(Need {
                    terms: vec![(f.clone(), df(f)?)],
                    scored: false,
                }),
                Clause::Status(s) => keys.push(format!("status:{s}")),
                Clause::Queue(q) => keys.push(format!("queue:{q}")),
                Clause::Tag(t) => keys.push(format!("tag:{t}")),
                Clause::Before(t) => before = Some(before.map_or(*t, |b: i64| b.min(*t))),
                Clause::After(t) => after = Some(after.map_or(*t, |a: i64| a.max(*t))),
            }
        }

        // Candidates from the rarest need (or key), best first order not needed.
        let need_size = |n: &Need| n.terms.iter().map(|(_, d)| *d).sum::<u64>();
        let driver = (0..needs.len()).min_by_key(|&i| need_size(&needs[i]));
        // (ticket, the driver's part of its score).
        let mut candidates: Vec<(u64, f64)> = Vec::new();
        let mut driver_key = None;
        // A driver that only filters (`from:`) adds nothing to the score.
        let weight = |i: usize| if needs[i].scored { 1.0 } else { 0.0 };
        match driver {
            Some(i) if needs[i].terms.len() == 1 => {
                // One term: its posting list is already in ticket order.
                let (t, d) = &needs[i].terms[0];
                for item in postings.range((t.as_str(), 0)..=(t.as_str(), u64::MAX))? {
                    let (k, v) = item?;
                    let (tf, len) = unposting(v.value());
                    let score = search::bm25(tf, len, *d, n_docs, avg_len) * weight(i);
                    candidates.push((k.value().1, score));
                }
            }
            Some(i) => {
                let mut ids: BTreeMap<u64, f64> = BTreeMap::new();
                for (t, d) in &needs[i].terms {
                    for item in postings.range((t.as_str(), 0)..=(t.as_str(), u64::MAX))? {
                        let (k, v) = item?;
                        let (tf, len) = unposting(v.value());
                        *ids.entry(k.value().1).or_default() +=
                            search::bm25(tf, len, *d, n_docs, avg_len) * weight(i);
                    }
                }
                candidates.extend(ids);
            }
            None if !keys.is_empty() => {
                let mut sized = Vec::new();
                for k in &keys {
                    sized.push((counts.get(k.as_str())?.map_or(0, |v| v.value()), k.clone()));
                }
                sized.sort();
                let k = sized[0].1.clone();
                for item in index.range((k.as_str(), 0)..=(k.as_str(), u64::MAX))? {
                    candidates.push((item?.0.value().1, 0.0));
                }
                driver_key = Some(k);
            }
            None => {
                for item in tickets.iter()? {
                    candidates.push((item?.0.value(), 0.0));
                }
            }
        }

        let mut top = TopK::new(limit);
        'candidates: for (id, driver_score) in candidates {
            for k in &keys {
                if Some(k) != driver_key.as_ref() && index.get((k.as_str(), id))?.is_none() {
                    continue 'candidates;
                }
            }
            let mut score = driver_score;
            for (i, need) in needs.iter().enumerate() {
                if Some(i) == driver {
                    continue;
                }
                let mut found = false;
                for (t, d) in &need.terms {
                    if let Some(v) = postings.get((t.as_str(), id))? {
                        found = true;
                        if need.scored {
                            let (tf, len) = unposting(v.value());
                            score += search::bm25(tf, len, *d, n_docs, avg_len);
                        }
                    }
                }
                if !found {
                    continue 'candidates;
                }
            }
            if before.is_some() || after.is_some() {
                let Some(v) = tickets.get(id)? else {
                    continue;
                };
                let t: Ticket = dec("tickets", v.value())?;
                if before.is_some_and(|b| t.created_at >= b)
                    || after.is_some_and(|a| t.created_at < a)
                {
                    continue;
                }
            }
            for phrase in &phrases {
                let mut at = Vec::with_capacity(phrase.len());
                for w in phrase.iter() {
                    let v = postings.get((w.as_str(), id))?;
                    at.push(v.map(|v| positions(v.value())).unwrap_or_default());
                }
                if !phrase_at(&at) {
                    continue 'candidates;
                }
            }
            top.offer(id, score);
        }
        let ranking = top.finish();
        let mut hits = Vec::with_capacity(ranking.top.len());
        for (id, score) in ranking.top {
            let Some(v) = tickets.get(id)? else { continue };
            let ticket: Ticket = dec("tickets", v.value())?;
            let parts = self.document_parts(&r, id)?;
            let snippet = best_snippet(&parts, query);
            hits.push(SearchHit {
                ticket,
                score,
                snippet,
            });
        }
        Ok(SearchResults {
            total: ranking.total,
            hits,
            truncated_prefixes: truncated,
        })
    }

    /// The subject and message texts of a ticket, as indexed.
    fn document_parts(&self, r: &redb::ReadTransaction, id: TicketId) -> Result<Vec<String>> {
        let Some(v) = r.open_table(TICKETS)?.get(id)? else {
            return Ok(Vec::new());
        };
        let t: Ticket = dec("tickets", v.value())?;
        let messages = messages_of(
            &r.open_multimap_table(TICKET_MESSAGES)?,
            &r.open_table(MESSAGES)?,
            id,
        )?;
        Ok(document(&t, &messages, &HashMap::new()).parts)
    }
}

/// Whether word i of a phrase occurs at p + i for some p, given each
/// word's positions (sorted).
fn phrase_at(at: &[Vec<u32>]) -> bool {
    let Some((first, rest)) = at.split_first() else {
        return true;
    };
    first.iter().any(|&p| {
        rest.iter()
            .enumerate()
            .all(|(i, ps)| ps.binary_search(&(p + 1 + i as u32)).is_ok())
    })
}

/// The snippet of the part with the most distinct matching words:
/// messages first (the subject is shown beside the snippet anyway), the
/// earliest on a tie; the first message's text when nothing matches.
fn best_snippet(parts: &[String], query: &Query) -> Vec<Piece> {
    let order = (1..parts.len()).chain(0..parts.len().min(1));
    let mut best: Option<(usize, Vec<Piece>)> = None;
    for i in order {
        let s = search::snippet(&parts[i], query);
        let words: BTreeSet<String> = s
            .iter()
            .filter(|p| p.hit)
            .map(|p| search::normalize(&p.text))
            .collect();
        if !words.is_empty() && best.as_ref().is_none_or(|(n, _)| words.len() > *n) {
            best = Some((words.len(), s));
        }
    }
    match best {
        Some((_, s)) => s,
        None => {
            let fallback = parts.get(1).or(parts.first()).map_or("", String::as_str);
            search::snippet(fallback, query)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, ticket: u64, from: &str, subject: &str, text: &str) -> MessageRecord {
        MessageRecord {
            seq,
            ticket: Some(ticket),
            message_id: format!("m{seq}@example.org"),
            direction: Direction::Inbound,
            kind: MessageKind::Customer,
            from: from.into(),
            to: vec![],
            subject: subject.into(),
            date: 0,
            text: text.into(),
            stranger: None,
        }
    }

    const WORDS: [&str; 12] = [
        "printer", "paper", "jam", "invoice", "refund", "grüße", "printing", "login", "password",
        "broken", "urgent", "café",
    ];

    /// What a query should find, by reading every ticket (no index).
    fn brute(store: &Store, q: &Query, n: u64) -> BTreeSet<u64> {
        let mut out = BTreeSet::new();
        for id in 1..=n {
            let t = store.ticket(id).unwrap().unwrap();
            let ms = store.ticket_messages(id).unwrap();
            let doc = document(&t, &ms, &HashMap::new());
            let ok = q.clauses.iter().all(|c| match c {
                Clause::Word(w) => doc.terms.contains_key(w),
                Clause::Prefix(p) => doc
                    .terms
                    .keys()
                    .any(|k| k.starts_with(p.as_str()) && !k.starts_with("from:")),
                Clause::Phrase(ws) => doc
                    .parts
                    .iter()
                    .chain(doc.fields.iter())
                    .any(|p| search::contains_phrase(p, ws)),
                Clause::From(f) => doc.terms.contains_key(f),
                Clause::Status(s) => t.status.as_str() == s,
                Clause::Queue(qu) => t.queue == *qu,
                Clause::Tag(tag) => t.tags.contains(tag),
                Clause::Before(b) => t.created_at < *b,
                Clause::After(a) => t.created_at >= *a,
            });
            if ok {
                out.insert(id);
            }
        }
        out
    }

    #[test]
    fn postings_keep_length_frequency_and_positions() {
        let at = [0, 1, 5, 127, 128, 300, 70_000, u32::MAX / 2];
        let v = posting(&at, 1234);
        assert_eq!(unposting(&v), (at.len() as u32, 1234));
        assert_eq!(positions(&v), at);
        // A field term: no positions, frequency 1.
        let v = posting(&[], 9);
        assert_eq!((unposting(&v), positions(&v)), ((1, 9), vec![]));
        assert!(phrase_at(&[vec![3, 10], vec![4, 20], vec![5]]));
        assert!(!phrase_at(&[vec![3, 10], vec![11], vec![5]]));
        assert!(!phrase_at(&[vec![3], vec![]]));
    }

    #[test]
    fn an_index_of_an_older_format_is_replaced_on_open() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-store-search-format-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut t = Ticket::new(1, "ann@example.org", 0);
        t.subject = "Scanner offline".into();
        store
            .write(|tx| {
                tx.put_message(&msg(1, 1, "ann@example.org", &t.subject, "It blinks."))?;
                tx.put_ticket(&t)
            })
            .unwrap();
        // Format 1 kept postings as u32: a table of another type under the same name.
        store
            .write(|tx| {
                tx.txn.delete_table(SEARCH_POSTINGS)?;
                let old: TableDefinition<(&str, u64), u32> =
                    TableDefinition::new("search_postings");
                tx.txn.open_table(old)?.insert(("scanner", 1), 1)?;
                tx.txn.open_table(META)?.insert(SEARCH_FORMAT_KEY, 1)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        let r = store.search(&Query::parse("blinks").unwrap(), 5).unwrap();
        assert_eq!(r.hits.len(), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn search_agrees_with_a_full_scan_follows_changes_and_rebuilds_the_same() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-store-search-{}-{}",
            std::process::id(),
            crate::clock::Clock::system().now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let n = 60u64;
        let mut seed = 7u64;
        let mut rnd = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let mut seq = 0;
        for id in 1..=n {
            let mut t = Ticket::new(id, &format!("c{}@example.org", id % 7), id as i64 * 86_400);
            t.subject = format!("{} {}", WORDS[rnd(12) as usize], WORDS[rnd(12) as usize]);
            t.status = [Status::New, Status::Open, Status::Resolved][rnd(3) as usize];
            t.queue = ["general", "billing"][rnd(2) as usize].into();
            if rnd(3) == 0 {
                t.tags.push("vip".into());
            }
            let mut ms = Vec::new();
            for _ in 0..=rnd(3) {
                seq += 1;
                let text: Vec<&str> = (0..rnd(20) + 1).map(|_| WORDS[rnd(12) as usize]).collect();
                ms.push(msg(seq, id, &t.requester, &t.subject, &text.join(" ")));
            }
            store
                .write(|tx| {
                    for m in &ms {
                        tx.put_message(m)?;
                    }
                    tx.put_ticket(&t)
                })
                .unwrap();
        }
        let queries = [
            "printer",
            "\"paper jam\"",
            "print*",
            "grüße status:open",
            "from:c3@example.org",
            "from:c3",
            "tag:vip jam",
            "queue:billing refund",
            "status:resolved",
            "after:1970-01-20 before:1970-02-10 invoice",
            "nothing",
            "café",
        ];
        let check = |store: &Store| {
            for text in queries {
                let q = Query::parse(text).unwrap();
                let r = store.search(&q, 1000).unwrap();
                let got: BTreeSet<u64> = r.hits.iter().map(|h| h.ticket.id).collect();
                let want = brute(store, &q, n);
                assert_eq!(got, want, "{text}");
                assert_eq!(r.total, want.len(), "{text}");
                // Best first.
                assert!(
                    r.hits.windows(2).all(|w| w[0].score >= w[1].score),
                    "{text}"
                );
            }
        };
        check(&store);
        // Changes are indexed in their transaction: a new message, a new tag, a status.
        let mut t = store.ticket(5).unwrap().unwrap();
        t.tags.push("zebra".into());
        t.status = Status::Closed;
        store
            .write(|tx| {
                tx.put_message(&msg(
                    999,
                    5,
                    "x@example.org",
                    &t.subject,
                    "a flamingo appeared",
                ))?;
                tx.put_ticket(&t)
            })
            .unwrap();
        let ids = |q: &str| -> Vec<u64> {
            let r = store.search(&Query::parse(q).unwrap(), 10).unwrap();
            r.hits.iter().map(|h| h.ticket.id).collect()
        };
        assert_eq!(ids("flamingo"), vec![5]);
        assert_eq!(ids("zebra"), vec![5]);
        assert_eq!(ids("tag:zebra status:closed"), vec![5]);
        assert_eq!(ids("from:x@example.org"), vec![5]);
        check(&store);
        // A rebuild from the records gives the same answers and statistics.
        let stats = store.search_index_stats().unwrap();
        let before: Vec<_> = queries
            .iter()
            .map(|q| {
                let r = store.search(&Query::parse(q).unwrap(), 1000).unwrap();
                r.hits
                    .iter()
                    .map(|h| (h.ticket.id, h.score))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(store.rebuild_search_index().unwrap(), n);
        assert_eq!(store.search_index_stats().unwrap(), stats);
        let after: Vec<_> = queries
            .iter()
            .map(|q| {
                let r = store.search(&Query::parse(q).unwrap(), 1000).unwrap();
                r.hits
                    .iter()
                    .map(|h| (h.ticket.id, h.score))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(before, after);
        // A store without the index (or of an older format) is indexed on open.
        store
            .write(|tx| {
                tx.clear_search()?;
                Ok(())
            })
            .unwrap();
        assert!(!store.search_index_current().unwrap());
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert!(store.search_index_current().unwrap());
        assert_eq!(store.search_index_stats().unwrap(), stats);
        check(&store);
        // Snippets mark the words found.
        let r = store.search(&Query::parse("flamingo").unwrap(), 1).unwrap();
        assert!(
            r.hits[0]
                .snippet
                .iter()
                .any(|p| p.hit && p.text == "flamingo")
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
