//! `/kb` and `/kb/{slug}` in the agents' web view: every article, internal
//! ones marked, behind the session like every page.

use super::html::{self, Viewer};
use super::{Shared, WebError, session};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
}

pub async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let rules = state.rules.current();
    let (status, body) = crate::web::kb_pages::list(&rules.kb, q.q.as_deref(), false);
    Ok(html::page(
        status,
        "Knowledge base",
        Some(&Viewer {
            agent: &cur.session.agent,
            csrf: &cur.session.csrf,
        }),
        &body,
    ))
}

pub async fn show(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let rules = state.rules.current();
    let viewer = Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    Ok(match rules.kb.get(&slug) {
        Some(a) => html::page(
            StatusCode::OK,
            &a.title,
            Some(&viewer),
            &crate::web::kb_pages::article(a),
        ),
        None => html::page(
            StatusCode::NOT_FOUND,
            "Not found",
            Some(&viewer),
            "<h1>Not found</h1><p>No such article.</p>",
        ),
    })
}
