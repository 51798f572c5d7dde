//! The indexer thread: builds the index when it is not complete, then
//! drains the store's search queue into it, round after round.
//!
//! A round reads a [`crate::store::SearchBacklog`] (queued marks and the
//! tickets' documents from one durable snapshot), replaces those tickets in
//! tantivy, commits tantivy, and only then removes the marks from the
//! queue. A crash before the tantivy commit loses nothing the store holds;
//! one after it leaves marks whose tickets are indexed once more, which
//! changes nothing. So the index is never behind the store except by the
//! marks still queued, and a search waits for those.

use super::engine::Engine;
use super::{Inner, SearchError};
use std::time::{Duration, Instant};

/// Queue entries taken per round: a round's documents are in memory at once.
const ROUND_MARKS: usize = 2_000;
/// Tickets read from the store per batch while rebuilding.
const REBUILD_BATCH: usize = 2_000;
/// How often an idle indexer looks at the queue (a waiting search wakes it
/// at once).
const POLL: Duration = Duration::from_millis(100);
/// Pause after a failed round before the next try.
const RETRY: Duration = Duration::from_secs(1);

pub(super) fn run(inner: &Inner, mut engine: Engine, mut build: bool) {
    let span = tracing::info_span!("search_indexer");
    let _g = span.enter();
    loop {
        let (stop, asked) = {
            let st = inner.state();
            (st.stop, st.rebuilds_asked > st.rebuilds_done)
        };
        if stop {
            return;
        }
        if build || asked {
            let started = Instant::now();
            let outcome = rebuild(inner, &mut engine);
            let mut st = inner.state();
            match &outcome {
                Ok(Some(n)) => {
                    tracing::info!(
                        tickets = n,
                        format = super::FORMAT,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "search index built"
                    );
                    st.built = true;
                    build = false;
                }
                Ok(None) => return, // stopping
                Err(e) => tracing::error!(error = %e, "search index build failed; will try again"),
            }
            if asked {
                st.rebuilds_done = st.rebuilds_asked;
                st.last_rebuild = Some(match outcome {
                    Ok(n) => Ok(n.unwrap_or(0)),
                    Err(e) => Err(e.to_string()),
                });
            }
            drop(st);
            inner.changed.notify_all();
            if build {
                sleep_unless_stopped(inner, RETRY);
            }
            continue;
        }
        match round(inner, &mut engine) {
            Ok(more) => {
                if !more {
                    idle(inner);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "search indexing round failed; will try again");
                if let Err(e) = engine.rollback() {
                    tracing::error!(error = %e, "search index rollback failed");
                }
                sleep_unless_stopped(inner, RETRY);
            }
        }
    }
}

/// One round: returns whether the queue held more than a round takes.
fn round(inner: &Inner, engine: &mut Engine) -> Result<bool, SearchError> {
    let backlog = inner.store.search_backlog(ROUND_MARKS)?;
    if !backlog.marks.is_empty() {
        let started = Instant::now();
        for (id, doc) in &backlog.documents {
            engine.put(*id, doc.as_ref())?;
        }
        engine.commit()?;
        inner.store.search_taken(&backlog.marks)?;
        tracing::debug!(
            tickets = backlog.documents.len(),
            covers = backlog.covers,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index round"
        );
    }
    {
        let mut st = inner.state();
        st.covers = st.covers.max(backlog.covers);
    }
    inner.changed.notify_all();
    Ok(backlog.marks.len() == ROUND_MARKS)
}

/// Every ticket from the store into a cleared index, committed once at the
/// end (searches see the old index until then). `None` when asked to stop
/// half-way: nothing is committed, and the next start builds again.
fn rebuild(inner: &Inner, engine: &mut Engine) -> Result<Option<u64>, SearchError> {
    let result = (|| {
        engine.clear()?;
        let (mut after, mut n) = (0u64, 0u64);
        loop {
            if inner.state().stop {
                return Ok(None);
            }
            let docs = inner.store.search_documents_after(after, REBUILD_BATCH)?;
            let Some(last) = docs.last().map(|d| d.ticket) else {
                break;
            };
            for d in &docs {
                engine.add(d)?;
            }
            n += docs.len() as u64;
            after = last;
        }
        engine.commit()?;
        Ok(Some(n))
    })();
    if !matches!(result, Ok(Some(_))) {
        engine.rollback()?;
    }
    result
}

/// Waits until a search wants a mark the index does not cover yet, the
/// daemon stops, a rebuild is asked for, or [`POLL`] passes.
fn idle(inner: &Inner) {
    let st = inner.state();
    if st.stop || st.wanted > st.covers || st.rebuilds_asked > st.rebuilds_done {
        return;
    }
    let _ = inner.changed.wait_timeout_while(st, POLL, |st| {
        !(st.stop || st.wanted > st.covers || st.rebuilds_asked > st.rebuilds_done)
    });
}

fn sleep_unless_stopped(inner: &Inner, d: Duration) {
    let st = inner.state();
    let _ = inner.changed.wait_timeout_while(st, d, |st| !st.stop);
}
