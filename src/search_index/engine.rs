//! The tantivy index: its schema, the tokenizer (the same words as
//! [`crate::search::tokenize`], so a query term is spelled as the indexed
//! one), replacing a ticket's document, commits tagged with the format, and
//! a [`Query`] turned into tantivy queries ranked by BM25.
//!
//! One document per ticket, as before tantivy: every clause of a query must
//! hold for the ticket (a word in one message, the sender of another).
//! Nothing is stored in tantivy but what ranking needs (the ticket id as a
//! fast field); the hits' texts and snippets come from the store.

use super::SearchError;
use crate::search::{self, Clause, Query, TicketDocument};
use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::Path;
use tantivy::collector::{Count, ScoreSegmentTweaker, ScoreTweaker, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, EmptyQuery, Occur, PhraseQuery, Query as TantivyQuery,
    RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument,
    Term,
};

/// Written as the payload of every commit. An index whose last commit says
/// anything else (an older format, a rebuild that never finished) is
/// rebuilt: bump it when what is indexed or how changes.
pub const FORMAT: &str = "postdesk-search 1";

/// The name our tokenizer is registered under (not persisted by tantivy:
/// registered at every open).
const WORDS: &str = "postdesk_words";

/// A prefix expands to at most this many terms (in term order), so `ab*`
/// cannot read the whole vocabulary; what it leaves out is reported.
pub const MAX_PREFIX_TERMS: usize = 256;

/// The indexing threads' memory before they write a segment (tantivy's
/// floor is 15 MB per thread).
const WRITER_MEMORY: usize = 96_000_000;
/// Two threads: a rebuild on the 2-core machines we target keeps both
/// busy; a steady-state round is a few documents.
const WRITER_THREADS: usize = 2;

#[derive(Debug, Clone, Copy)]
struct Fields {
    /// Indexed (delete by ticket) and fast (ties: newer ticket first).
    ticket: Field,
    /// Unix seconds the ticket was created: `before:`/`after:`.
    created: Field,
    /// Every word: subject, visible texts, senders, number, tags,
    /// attachment names; one value each (positions, for phrases: tantivy
    /// leaves a gap between values, so a phrase never spans two).
    text: Field,
    /// `from:` terms, whole (`from:ann@example.org`, `from:ann`).
    from: Field,
    status: Field,
    queue: Field,
    tag: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(WORDS)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        ticket: b.add_u64_field("ticket", INDEXED | FAST),
        created: b.add_i64_field("created", INDEXED | FAST),
        text: b.add_text_field("text", text),
        from: b.add_text_field("from", STRING),
        status: b.add_text_field("status", STRING),
        queue: b.add_text_field("queue", STRING),
        tag: b.add_text_field("tag", STRING),
    };
    (b.build(), fields)
}

/// [`search::token_spans`] and [`search::normalize`] as a tantivy
/// tokenizer: Unicode alphanumeric runs, lower case, cut to 40 characters.
#[derive(Clone)]
pub(super) struct Words;

pub(super) struct WordStream {
    tokens: std::vec::IntoIter<Token>,
    current: Token,
}

impl Tokenizer for Words {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        let tokens: Vec<Token> = search::token_spans(text)
            .enumerate()
            .map(|(position, (at, word))| Token {
                offset_from: at,
                offset_to: at + word.len(),
                position,
                text: search::normalize(word),
                position_length: 1,
            })
            .collect();
        WordStream {
            tokens: tokens.into_iter(),
            current: Token::default(),
        }
    }
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some(t) => {
                self.current = t;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

/// Ranks by score, then the newer (higher) ticket first, as the redb index did.
struct NewerFirst;

struct NewerFirstInSegment(Column<u64>);

impl ScoreTweaker<(Score, u64)> for NewerFirst {
    type Child = NewerFirstInSegment;

    fn segment_tweaker(&self, segment: &SegmentReader) -> tantivy::Result<NewerFirstInSegment> {
        Ok(NewerFirstInSegment(segment.fast_fields().u64("ticket")?))
    }
}

impl ScoreSegmentTweaker<(Score, u64)> for NewerFirstInSegment {
    fn score(&mut self, doc: DocId, score: Score) -> (Score, u64) {
        (score, self.0.first(doc).unwrap_or(0))
    }
}

/// What a query found, before the store adds the tickets.
#[derive(Debug, Clone, Default)]
pub struct Ranking {
    /// Tickets matching the whole query.
    pub total: usize,
    /// The best of them as (ticket, BM25 score), best first.
    pub top: Vec<(u64, f64)>,
    /// Prefixes that matched more than [`MAX_PREFIX_TERMS`] terms.
    pub truncated_prefixes: Vec<String>,
}

/// The open index with its one writer; the indexer's alone.
pub struct Engine {
    writer: IndexWriter,
    reading: Reading,
}

/// The searching side: cheap to clone, never waits for the writer.
#[derive(Clone)]
pub struct Reading {
    reader: IndexReader,
    f: Fields,
}

impl Engine {
    /// Opens the index in `dir`, or makes an empty one there when it is
    /// missing, unreadable or of another schema (what was there is
    /// removed: it is derived data). Returns whether it is complete and of
    /// [`FORMAT`]; if not, the caller rebuilds it.
    pub fn open(dir: &Path) -> Result<(Engine, bool), SearchError> {
        match Engine::open_existing(dir) {
            Ok(Some(opened)) => return Ok(opened),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "search index unreadable; it will be rebuilt");
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let (schema, f) = schema();
        let index = Index::create_in_dir(dir, schema)?;
        Ok((Engine::with_index(index, f)?, false))
    }

    fn open_existing(dir: &Path) -> Result<Option<(Engine, bool)>, SearchError> {
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let index = Index::open_in_dir(dir)?;
        let (schema, f) = schema();
        if index.schema() != schema {
            tracing::info!(dir = %dir.display(), "search index of another schema; it will be rebuilt");
            return Ok(None);
        }
        let current = index.load_metas()?.payload.as_deref() == Some(FORMAT);
        let engine = Engine::with_index(index, f)?;
        // Reading every segment's term dictionaries proves the files are there.
        for segment in engine.reading.reader.searcher().segment_readers() {
            segment.inverted_index(f.text)?;
        }
        Ok(Some((engine, current)))
    }

    fn with_index(index: Index, f: Fields) -> Result<Engine, SearchError> {
        index.tokenizers().register(WORDS, Words);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)?;
        Ok(Engine {
            writer,
            reading: Reading { reader, f },
        })
    }

    /// The searching side of this index.
    pub fn reading(&self) -> Reading {
        self.reading.clone()
    }

    /// Replaces ticket `id`'s document (or removes it: `None`). Seen by
    /// searches only after [`Engine::commit`].
    pub fn put(&mut self, id: u64, doc: Option<&TicketDocument>) -> Result<(), SearchError> {
        self.writer
            .delete_term(Term::from_field_u64(self.reading.f.ticket, id));
        if let Some(d) = doc {
            self.add(d)?;
        }
        Ok(())
    }

    /// Adds a document without removing an older one (a rebuild, after
    /// [`Engine::clear`]).
    pub fn add(&mut self, d: &TicketDocument) -> Result<(), SearchError> {
        self.writer.add_document(self.document(d))?;
        Ok(())
    }

    fn document(&self, d: &TicketDocument) -> TantivyDocument {
        let f = self.reading.f;
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.ticket, d.ticket);
        doc.add_i64(f.created, d.created_at);
        for s in d.parts.iter().chain(d.fields.iter()) {
            doc.add_text(f.text, s);
        }
        for s in &d.from {
            doc.add_text(f.from, s);
        }
        doc.add_text(f.status, &d.status);
        doc.add_text(f.queue, &d.queue);
        for t in &d.tags {
            doc.add_text(f.tag, t);
        }
        doc
    }

    /// Forgets every document (not committed yet: searches keep seeing the
    /// old index until the rebuild commits).
    pub fn clear(&mut self) -> Result<(), SearchError> {
        self.writer.delete_all_documents()?;
        Ok(())
    }

    /// Commits what was put, tagged with [`FORMAT`], and shows it to searches.
    pub fn commit(&mut self) -> Result<(), SearchError> {
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(FORMAT);
        prepared.commit()?;
        self.reading.reader.reload()?;
        Ok(())
    }

    /// Drops what was put since the last commit (after a failed round).
    pub fn rollback(&mut self) -> Result<(), SearchError> {
        self.writer.rollback()?;
        Ok(())
    }
}

impl Reading {
    /// Documents in the committed index (deleted ones not counted).
    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Runs `query` on the committed index: how many tickets match it, the
    /// best `limit` by BM25 (newer first among equals).
    pub fn search(&self, query: &Query, limit: usize) -> Result<Ranking, SearchError> {
        let searcher = self.reader.searcher();
        let f = self.f;
        let mut musts: Vec<(Occur, Box<dyn TantivyQuery>)> = Vec::new();
        let mut truncated = Vec::new();
        // A filter selects; it adds nothing to the score.
        let filter = |q: Box<dyn TantivyQuery>| -> (Occur, Box<dyn TantivyQuery>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
        };
        let keyword = |field: Field, value: &str| -> Box<dyn TantivyQuery> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let word = |w: &str| -> Box<dyn TantivyQuery> {
            Box::new(TermQuery::new(
                Term::from_field_text(f.text, w),
                IndexRecordOption::WithFreqs,
            ))
        };
        let (mut before, mut after) = (None::<i64>, None::<i64>);
        for c in &query.clauses {
            match c {
                Clause::Word(w) => musts.push((Occur::Must, word(w))),
                Clause::Phrase(ws) => {
                    let terms = ws
                        .iter()
                        .map(|w| Term::from_field_text(f.text, w))
                        .collect::<Vec<_>>();
                    let q: Box<dyn TantivyQuery> = match terms.len() {
                        0 => continue,
                        1 => word(&ws[0]),
                        _ => Box::new(PhraseQuery::new(terms)),
                    };
                    musts.push((Occur::Must, q));
                }
                Clause::Prefix(p) => {
                    let (terms, cut) = self.expand_prefix(&searcher, p)?;
                    if cut {
                        truncated.push(p.clone());
                    }
                    let q: Box<dyn TantivyQuery> = if terms.is_empty() {
                        Box::new(EmptyQuery)
                    } else {
                        Box::new(BooleanQuery::union(terms.iter().map(|t| word(t)).collect()))
                    };
                    musts.push((Occur::Must, q));
                }
                Clause::From(v) => musts.push(filter(keyword(f.from, v))),
                Clause::Status(s) => musts.push(filter(keyword(f.status, s))),
                Clause::Queue(q) => musts.push(filter(keyword(f.queue, q))),
                Clause::Tag(t) => musts.push(filter(keyword(f.tag, t))),
                Clause::Before(t) => before = Some(before.map_or(*t, |b| b.min(*t))),
                Clause::After(t) => after = Some(after.map_or(*t, |a| a.max(*t))),
            }
        }
        if before.is_some() || after.is_some() {
            let bound = |v: Option<i64>, inclusive: bool| match v {
                None => Bound::Unbounded,
                Some(v) if inclusive => Bound::Included(Term::from_field_i64(f.created, v)),
                Some(v) => Bound::Excluded(Term::from_field_i64(f.created, v)),
            };
            musts.push(filter(Box::new(RangeQuery::new(
                bound(after, true),
                bound(before, false),
            ))));
        }
        let q = BooleanQuery::new(musts);
        let top = TopDocs::with_limit(limit.max(1)).tweak_score(NewerFirst);
        let (found, total) = searcher.search(&q, &(top, Count))?;
        Ok(Ranking {
            total,
            top: found
                .into_iter()
                .take(limit)
                .map(|((score, id), _)| (id, f64::from(score)))
                .collect(),
            truncated_prefixes: truncated,
        })
    }

    /// The first [`MAX_PREFIX_TERMS`] words of the index starting with `p`
    /// (in term order, over every segment), and whether there were more.
    fn expand_prefix(
        &self,
        searcher: &tantivy::Searcher,
        p: &str,
    ) -> Result<(BTreeSet<String>, bool), SearchError> {
        let mut terms = BTreeSet::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.f.text)?;
            let mut stream = inverted.terms().range().ge(p.as_bytes()).into_stream()?;
            let mut n = 0;
            while stream.advance() {
                let k = stream.key();
                if !k.starts_with(p.as_bytes()) || n > MAX_PREFIX_TERMS {
                    break;
                }
                if let Ok(t) = std::str::from_utf8(k) {
                    terms.insert(t.to_string());
                    n += 1;
                }
            }
        }
        let cut = terms.len() > MAX_PREFIX_TERMS;
        Ok((terms.into_iter().take(MAX_PREFIX_TERMS).collect(), cut))
    }
}

#[cfg(test)]
impl Engine {
    pub fn writer_for_tests(&mut self) -> &mut IndexWriter {
        &mut self.writer
    }
}

#[cfg(test)]
pub fn words_for_tests() -> impl Tokenizer {
    Words
}
