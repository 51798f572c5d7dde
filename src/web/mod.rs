//! The agent web view: server-rendered HTML on the API's listener.
//!
//! One file per page area (`login`, `queue`, `ticket`) plus the pieces every
//! page uses: `session` (the login cookie and its store record), `csrf`
//! (Origin / Sec-Fetch-Site and the per-session form token), `headers`
//! (CSP and friends on every response, the API's too) and `html` (the page
//! frame and the one escaping function); `mail_html` serves a customer's
//! HTML mail, sanitised, to a sandboxed iframe.
//!
//! Invariants: every dynamic string goes through [`html::esc`]; every POST
//! passes [`csrf::check`] before it does anything; every response carries
//! the CSP of [`headers`].

/// The reports page and its CSV downloads.
pub mod reports;

pub mod acting;
pub mod attachments;
pub mod availability;
pub mod bulk;
pub mod csrf;
pub mod delivery;
pub mod headers;
pub mod held;
pub mod html;
pub mod kb;
pub mod kb_pages;
pub mod login;
pub mod mail_html;
pub mod markdown;
pub mod merge;
pub mod new_ticket;
pub mod presence;
pub mod queue;
pub mod satisfaction;
pub mod search;
pub mod session;
pub mod ticket;
pub mod tls_listener;

use crate::clock::Clock;
use crate::rules::LiveRules;
use crate::store::{Store, StoreError};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// What the pages need: the store, who the agents are, the time.
pub struct WebState {
    pub store: Store,
    pub rules: Arc<LiveRules>,
    pub clock: Clock,
    /// `web.session_idle`, in seconds.
    pub session_idle: i64,
    /// `web.https`: secure cookie name and `https://` origin.
    pub https: bool,
    pub limiter: login::Limiter,
    /// Replies and notes go through its `act`, the path mail commands take
    /// (None only in unit tests of the pages that do not act).
    pub processor: Option<crate::process::Processor>,
    /// Who is on which ticket page (`web.presence_interval`).
    pub presence: presence::Board,
    /// Where tickets opened on a customer's behalf enter, like mail
    /// (`/tickets/new`; None only in unit tests of pages that do not open any).
    pub spool: Option<crate::spool::Spool>,
    /// Full-text search for `/search` (None only in unit tests and
    /// benchmarks of other pages: the page then says search is unavailable).
    pub search: Option<crate::search_index::SearchIndex>,
}

pub type Shared = Arc<WebState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(queue::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/tickets/{id}", get(ticket::page))
        .route("/search", get(search::page))
        .route("/kb", get(kb::list))
        .route("/kb/{slug}", get(kb::show))
        .route("/tickets/{id}/messages/{seq}/html", get(mail_html::frame))
        .route("/tickets/{id}/reply", post(ticket::reply))
        .route("/tickets/{id}/note", post(ticket::note))
        .route("/tickets/{id}/merge", post(merge::merge))
        .route("/tickets/{id}/messages/{seq}/split", post(merge::split))
        .route("/static/app.css", get(stylesheet))
        .route("/reports", get(reports::page))
        .route("/reports/{file}", get(reports::csv))
        .route("/tickets/{id}/act", post(acting::act))
        .route("/tickets/{id}/send-held", post(acting::send_held))
        .route("/tickets/{id}/presence", post(presence::beat))
        .route(
            "/availability",
            get(availability::page).post(availability::set),
        )
        .route(
            "/tickets/{id}/messages/{seq}/attachments/{n}",
            get(attachments::attachment),
        )
        .route("/tickets/{id}/messages/{seq}/raw", get(attachments::raw))
        .route("/static/app.js", get(script))
        .route("/static/queue.js", get(queue::script))
        .route("/queue/live", get(queue::live))
        .route("/tickets/bulk", post(bulk::submit))
        .route(
            "/tickets/new",
            get(new_ticket::form).post(new_ticket::submit),
        )
        .with_state(state)
}

/// The one stylesheet (no inline styles: the CSP forbids them).
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("app.css"),
    )
        .into_response()
}

/// Why a page could not be shown; rendered as a small HTML page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("storage error")]
    Store(#[from] StoreError),
    #[error("request refused: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebError::Store(e) => {
                tracing::error!(error = %e, "web view: store read failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            WebError::Forbidden(why) => {
                tracing::warn!(reason = why, "web view: request refused");
                StatusCode::FORBIDDEN
            }
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Internal(e) => {
                tracing::error!(error = %e, "web view failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let text = self.to_string();
        html::page(
            status,
            &text,
            None,
            &format!("<h1>{}</h1>", html::esc(&text)),
        )
    }
}

/// Runs a blocking store read off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Internal(format!("task failed: {e}")))?
        .map_err(WebError::from)
}

/// The one script (`app.js`): times in the viewer's zone, presence
/// heartbeats. External, as the CSP allows no inline script; every page
/// works without it.
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("app.js"),
    )
        .into_response()
}
