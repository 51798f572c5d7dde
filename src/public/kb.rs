//! `/kb` and `/kb/{slug}` on the public listener: the public articles of
//! the knowledge base. An internal article gets the very 404 of an unknown
//! page, so the public side does not even tell that it exists.

use super::{Shared, page};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

pub fn routes<S: Clone + Send + Sync + 'static>(shared: Shared) -> Router<S> {
    Router::new()
        .route("/kb", get(list))
        .route("/kb/{slug}", get(show))
        .with_state(shared)
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
}

async fn list(State(s): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    let rules = s.rules.current();
    let (status, body) = crate::web::kb_pages::list(&rules.kb, q.q.as_deref(), true);
    page(status, "en", "Knowledge base", &body)
}

async fn show(State(s): State<Shared>, Path(slug): Path<String>) -> Response {
    let rules = s.rules.current();
    match rules.kb.get(&slug).filter(|a| a.is_public()) {
        Some(a) => page(
            StatusCode::OK,
            &a.language,
            &a.title,
            &crate::web::kb_pages::article(a),
        ),
        None => super::not_found().await,
    }
}
