//! The search page `/search?q=…`: tickets matching the query language of
//! [`crate::search`] (words, phrases, prefixes, `from:`, `queue:`,
//! `status:`, `tag:`, `before:`, `after:`), best first, each with a snippet
//! whose matches are marked. Behind the session like every page; the search
//! box in the page frame (`html::page`) submits here.

use super::html::{self, Viewer, esc};
use super::{Shared, WebError, session};
use crate::search::{Piece, Query as SearchQuery};
use crate::search_index::{SearchError, SearchIndex, SearchResults};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Results shown on the page.
pub const RESULTS: usize = 50;

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
}

/// A snippet as HTML: every piece escaped, matches in `<mark>`. The JSON
/// API serves the same string, so a client showing it needs no escaping
/// of its own.
pub fn snippet_html(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| {
            if p.hit {
                format!("<mark>{}</mark>", esc(&p.text))
            } else {
                esc(&p.text)
            }
        })
        .collect()
}

pub async fn page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let text = params.q.unwrap_or_default();
    let form = format!(
        r#"<form class="search-page" method="get" action="/search" role="search"><label for="q">Search</label><input id="q" type="search" name="q" value="{}"></form><p class="hint">Words, "a phrase", prefix*, from:, queue:, status:, tag:, before:/after:YYYY-MM-DD; all must match.</p>"#,
        esc(&text)
    );
    let (status, results) = if text.trim().is_empty() {
        (StatusCode::OK, String::new())
    } else {
        match SearchQuery::parse(&text) {
            Err(e) => (
                StatusCode::BAD_REQUEST,
                format!(r#"<p class="error">{}</p>"#, esc(&e.to_string())),
            ),
            Ok(query) => match search(state.search.clone(), query).await? {
                Err(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(r#"<p class="error">{}</p>"#, esc(&why)),
                ),
                Ok(found) => {
                    let mut out = format!(
                        r#"<h1>Results <span class="count">{}</span></h1>"#,
                        found.total
                    );
                    if found.hits.is_empty() {
                        out.push_str(r#"<p class="empty">No ticket matches.</p>"#);
                    }
                    out.push_str(r#"<ol class="results">"#);
                    for h in &found.hits {
                        let t = &h.ticket;
                        out.push_str(&format!(
                        r#"<li><a href="/tickets/{id}">#{id} {subject}</a> <span class="status status-{status}">{status}</span> <span class="count">{queue} · {requester} · {updated}</span><p class="snippet">{snippet}</p></li>"#,
                        id = t.id,
                        subject = esc(if t.subject.is_empty() {
                            "(no subject)"
                        } else {
                            &t.subject
                        }),
                        status = esc(t.status.as_str()),
                        queue = esc(&t.queue),
                        requester = esc(&t.requester),
                        updated = html::time(t.updated_at),
                        snippet = snippet_html(&h.snippet),
                    ));
                    }
                    out.push_str("</ol>");
                    if found.total > found.hits.len() {
                        out.push_str(&format!(
                        r#"<p class="empty">The best {} shown; add words or filters to narrow.</p>"#,
                        found.hits.len()
                    ));
                    }
                    (StatusCode::OK, out)
                }
            },
        }
    };
    Ok(html::page(
        status,
        "Search",
        Some(&Viewer {
            agent: &cur.session.agent,
            csrf: &cur.session.csrf,
        }),
        &format!(r#"<section class="searching">{form}{results}</section>"#),
    ))
}

/// Runs the query off the async threads: the results, or why search
/// cannot answer now (the index is being built; search not available).
async fn search(
    index: Option<SearchIndex>,
    query: SearchQuery,
) -> Result<Result<SearchResults, String>, WebError> {
    let Some(index) = index else {
        return Ok(Err("Search is not available here.".into()));
    };
    let found = tokio::task::spawn_blocking(move || index.search(&query, RESULTS))
        .await
        .map_err(|e| WebError::Internal(format!("task failed: {e}")))?;
    match found {
        Ok(r) => Ok(Ok(r)),
        Err(SearchError::Rebuilding) => Ok(Err(
            "The search index is being rebuilt; try again in a moment.".into(),
        )),
        Err(SearchError::Store(e)) => Err(WebError::Store(e)),
        Err(e) => Err(WebError::Internal(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_escape_text_and_mark_matches() {
        let pieces = [
            Piece {
                text: "<script>".into(),
                hit: false,
            },
            Piece {
                text: "alert".into(),
                hit: true,
            },
            Piece {
                text: "(1)</script> & \"x\"".into(),
                hit: false,
            },
        ];
        assert_eq!(
            snippet_html(&pieces),
            "&lt;script&gt;<mark>alert</mark>(1)&lt;/script&gt; &amp; &quot;x&quot;"
        );
    }
}
