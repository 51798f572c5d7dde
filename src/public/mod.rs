//! The customers' side: pages on `web.public_listen`, a listener of its own
//! so that an admin can expose it and keep the agents' view (`web.listen`)
//! private. Nothing here needs a login: a customer reaches a ticket only
//! through a signed link ([`links`]), and a page shows only what that
//! ticket's customer may see.
//!
//! Invariants: no page shows an internal note, an agent's address or
//! another ticket; every response carries the security headers of
//! [`crate::web::headers`]; every dynamic string goes through
//! [`crate::web::html::esc`].

/// Signed customer links and the URLs made of them live in `crate::links`
/// (the processor makes them for customer mail without depending on the
/// pages); re-exported here, where the pages check them.
pub use crate::links::{self, Urls};
pub mod chat;
mod client_addr;
mod form;
mod form_token;
mod intake;
mod kb;
mod multipart;
mod rate_limit;
mod status;
pub mod survey;
/// The customers' words live in `crate::customer_texts`: the processor
/// writes some of them into customer mail without depending on the pages.
use crate::customer_texts as texts;

use crate::clock::Clock;
use crate::rules::LiveRules;
use crate::store::Store;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use client_addr::ClientAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// What the public pages need.
pub struct PublicState {
    pub store: Store,
    pub rules: Arc<LiveRules>,
    pub clock: Clock,
    pub cfg: Arc<crate::config::Config>,
    pub urls: Urls,
    /// Where form submissions and customers' messages enter, like mail.
    pub spool: crate::spool::Spool,
    /// Customers' actions (close, reopen, rate) take the agents' path.
    pub processor: crate::process::Processor,
    /// The live chat's counters and stream shutdown.
    pub chat: chat::ChatState,
    /// `smtp.max_inflight_bytes`, shared with SMTP intake: a request body
    /// is whole in memory until the spool commits it, so many large posts
    /// at once must not take more than SMTP sessions may.
    pub budget: crate::smtp::budget::InflightBudget,
    /// Who a request comes from (`web.trusted_proxies`): the one answer
    /// every per-client limit of these pages counts by.
    pub client_addr: ClientAddr,
}

pub type Shared = Arc<PublicState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/static/public.css", get(stylesheet))
        .merge(form::routes(state.clone()))
        .merge(status::routes(state.clone()))
        .merge(kb::routes(state.clone()))
        .merge(chat::routes())
        .route("/survey/{token}", get(survey::show).post(survey::submit))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body_budget,
        ))
        .with_state(state)
}

/// Reserves a request body's bytes from the shared budget before a handler
/// reads it, and holds them until the answer is made (the spool commit is
/// in it). Over budget: 503 with Retry-After, nothing read, nothing taken.
/// Without a Content-Length (chunked), the largest body a route allows is
/// reserved.
async fn body_budget(
    axum::extract::State(state): axum::extract::State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    let bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(state.cfg.smtp.max_message_size);
    let mut reservation = state.budget.reservation();
    if !reservation.grow_to(bytes) {
        tracing::warn!(bytes, "public page: upload refused, memory budget spent");
        let mut resp = page(
            StatusCode::SERVICE_UNAVAILABLE,
            "en",
            "Busy",
            "<h1>Busy</h1><p>We are receiving many requests right now. Nothing was sent: please try again in a minute.</p>",
        );
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("60"),
        );
        return resp;
    }
    let resp = next.run(req).await;
    drop(reservation);
    resp
}

/// Serves the public pages on `listener` until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: PublicState,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let state = Arc::new(state);
    tokio::spawn(chat::sweep(state.clone(), shutdown.clone()));
    let app = router(state).layer(axum::middleware::from_fn(
        crate::web::headers::security_headers,
    ));
    // Client addresses feed the rate limits.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}

/// A whole public page: `body` is already escaped HTML. Never cached: a
/// status page is one customer's.
pub fn page(status: StatusCode, lang: &str, title: &str, body: &str) -> Response {
    use crate::web::html::esc;
    let html = format!(
        r#"<!doctype html>
<html lang="{}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><link rel="stylesheet" href="/static/public.css"></head>
<body><main>{body}</main></body></html>
"#,
        esc(lang),
        esc(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// The landing page: where a customer can go from here.
async fn index() -> Response {
    page(
        StatusCode::OK,
        "en",
        "Support",
        r#"<h1>Support</h1><p>Write to us by mail, or <a href="/new">send us a request</a>.</p>"#,
    )
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "en",
        "Not found",
        "<h1>Not found</h1><p>This page does not exist or the link is no longer valid.</p>",
    )
}

/// The one stylesheet of the public pages (no inline styles: the CSP
/// forbids them).
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("public.css"),
    )
        .into_response()
}
