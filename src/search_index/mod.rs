//! Full-text search over tantivy, fed from the store: the only module that
//! names tantivy. `engine.rs` is the index (schema, tokenizer, queries),
//! `indexer.rs` the background thread that drains the store's search queue
//! into it and rebuilds it. This file is the handle the API, the web view
//! and the daemon hold: [`SearchIndex::search`] (read-your-writes, then
//! tantivy, then the tickets from the store) and [`SearchIndex::rebuild`].
//!
//! The store stays the truth. The index lives in `data_dir/search/`
//! ([`crate::store::SEARCH_DIR`]); deleted, unreadable or of an older
//! format, it is rebuilt from the stored records while the daemon serves.

pub mod articles;
mod engine;
mod indexer;

pub use engine::{FORMAT, MAX_PREFIX_TERMS};

use crate::model::Ticket;
use crate::search::{self, Clause, Piece, Query};
use crate::store::{Store, StoreError};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a search waits for the index to take in the changes committed
/// before it (or, while the index is being built, for the build).
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// Why a search or rebuild could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index is being built from the store (first start, or after it
    /// was found missing or outdated) and was not done within
    /// [`CATCH_UP_WAIT`]; ask again shortly.
    #[error("search index rebuilding")]
    Rebuilding,
    /// The daemon is stopping.
    #[error("search index stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("search index: {0}")]
    Index(String),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> SearchError {
        SearchError::Index(e.to_string())
    }
}

impl From<std::io::Error> for SearchError {
    fn from(e: std::io::Error) -> SearchError {
        SearchError::Index(e.to_string())
    }
}

/// One found ticket.
#[derive(Debug, Clone)]
pub struct SearchHit {
    /// As stored now.
    pub ticket: Ticket,
    /// BM25 over the query's words (0 for a query of filters only).
    pub score: f64,
    /// Around the best match in the subject or a message; plain text
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

/// What searches and the indexer tell each other.
#[derive(Debug, Default)]
struct State {
    /// The committed index is complete (false until the first build ends).
    built: bool,
    /// Every store commit up to this search-queue mark is in the
    /// committed index.
    covers: u64,
    /// The highest mark a waiting search needs (wakes the indexer early).
    wanted: u64,
    /// Rebuilds asked for (`postdesk reindex`) and rebuilds finished,
    /// with the last one's outcome.
    rebuilds_asked: u64,
    rebuilds_done: u64,
    last_rebuild: Option<Result<u64, String>>,
    stop: bool,
}

struct Inner {
    store: Store,
    reading: engine::Reading,
    state: Mutex<State>,
    changed: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if it did, the numbers are still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The search index of one store; clones share it.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

impl SearchIndex {
    /// Opens (or creates) the index in `data_dir/search/` and starts its
    /// indexer thread, which first rebuilds it if it is missing, unreadable
    /// or of another format. Returns at once: searches wait for the build
    /// (up to [`CATCH_UP_WAIT`], then [`SearchError::Rebuilding`]).
    pub fn start(data_dir: &Path, store: Store) -> Result<SearchIndex, SearchError> {
        let dir = data_dir.join(crate::store::SEARCH_DIR);
        let (engine, current) = engine::Engine::open(&dir)?;
        // What the committed index already covers: every mark before the
        // oldest still queued.
        let covers = store.search_backlog(0)?.covers;
        let inner = Arc::new(Inner {
            store,
            reading: engine.reading(),
            state: Mutex::new(State {
                built: current,
                covers,
                ..State::default()
            }),
            changed: Condvar::new(),
            thread: Mutex::new(None),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || indexer::run(&worker, engine, !current))?;
        *inner.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
        Ok(SearchIndex { inner })
    }

    /// Stops the indexer (after the round in hand) and waits for it.
    pub fn stop(&self) {
        self.inner.state().stop = true;
        self.inner.changed.notify_all();
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::error!("search indexer panicked");
        }
    }

    /// Whether the index is complete and has taken in every change
    /// committed so far.
    pub fn caught_up(&self) -> Result<bool, SearchError> {
        let need = self.inner.store.search_queue_seq()?;
        let st = self.inner.state();
        Ok(st.built && st.covers >= need)
    }

    /// Runs `query`: how many tickets match it, the best `limit` of them
    /// by BM25 (newer first among equals) with snippets.
    ///
    /// Read-your-writes: first waits (up to [`CATCH_UP_WAIT`]) until the
    /// index holds every change committed before the call, so a client
    /// that just sent mail finds it. The hits are the tickets as stored
    /// now; one that no longer meets the query's filters (changed since the
    /// index's snapshot) is left out.
    pub fn search(&self, query: &Query, limit: usize) -> Result<SearchResults, SearchError> {
        let span = tracing::debug_span!("search");
        let _g = span.enter();
        self.catch_up()?;
        let ranking = self.inner.reading.search(query, limit)?;
        let ids: Vec<u64> = ranking.top.iter().map(|(id, _)| *id).collect();
        let mut records = self.inner.store.search_hit_records(&ids)?;
        let mut hits = Vec::with_capacity(ranking.top.len());
        let mut dropped = 0;
        for (id, score) in ranking.top {
            let Some(at) = records.iter().position(|(t, _)| t.id == id) else {
                dropped += 1;
                continue;
            };
            let (ticket, doc) = records.swap_remove(at);
            if !meets_filters(query, &ticket) {
                dropped += 1;
                continue;
            }
            hits.push(SearchHit {
                snippet: search::best_snippet(&doc.parts, query),
                ticket,
                score,
            });
        }
        Ok(SearchResults {
            total: ranking.total.saturating_sub(dropped),
            hits,
            truncated_prefixes: ranking.truncated_prefixes,
        })
    }

    /// Waits until the index is built and covers every commit made before
    /// this call, at most [`CATCH_UP_WAIT`]. Past it, a built index answers
    /// with what it holds (logged); an unbuilt one is [`SearchError::Rebuilding`].
    fn catch_up(&self) -> Result<(), SearchError> {
        let need = self.inner.store.search_queue_seq()?;
        let deadline = Instant::now() + CATCH_UP_WAIT;
        let mut st = self.inner.state();
        if st.built && st.covers >= need {
            return Ok(());
        }
        st.wanted = st.wanted.max(need);
        self.inner.changed.notify_all();
        loop {
            if st.stop {
                return Err(SearchError::Stopped);
            }
            if st.built && st.covers >= need {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .inner
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if !st.built {
            return Err(SearchError::Rebuilding);
        }
        tracing::warn!(
            need,
            covers = st.covers,
            "search index behind the store after the wait; answering from what it holds"
        );
        Ok(())
    }

    /// Rebuilds the index from the stored records (`postdesk reindex`) and
    /// returns how many tickets it holds. Searches keep the old index until
    /// the new one commits whole; changes meanwhile stay queued and are
    /// taken in right after.
    pub fn rebuild(&self) -> Result<u64, SearchError> {
        let mut st = self.inner.state();
        st.rebuilds_asked += 1;
        let ticket = st.rebuilds_asked;
        self.inner.changed.notify_all();
        while st.rebuilds_done < ticket {
            if st.stop {
                return Err(SearchError::Stopped);
            }
            st = self
                .inner
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match st.last_rebuild.clone() {
            Some(Ok(n)) => Ok(n),
            Some(Err(e)) => Err(SearchError::Index(e)),
            None => Err(SearchError::Stopped),
        }
    }

    /// Tickets in the committed index.
    pub fn documents(&self) -> u64 {
        self.inner.reading.documents()
    }
}

/// Whether `ticket` as stored still meets the filters of `query` (status,
/// queue, tag, dates): the index may have been a moment behind.
fn meets_filters(query: &Query, t: &Ticket) -> bool {
    query.clauses.iter().all(|c| match c {
        Clause::Status(s) => t.status.as_str() == s,
        Clause::Queue(q) => t.queue == *q,
        Clause::Tag(tag) => t.tags.contains(tag),
        Clause::Before(b) => t.created_at < *b,
        Clause::After(a) => t.created_at >= *a,
        Clause::Word(_) | Clause::Prefix(_) | Clause::Phrase(_) | Clause::From(_) => true,
    })
}

#[cfg(test)]
mod tests;
