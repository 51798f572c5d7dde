//! What the browser loads: the loader script a site embeds, the frame page
//! with its own script and stylesheet (no inline script or style; the CSP
//! says so), and the "continue this chat" page a mailed link opens.

use super::{ChatError, check_origin, identity};
use crate::public::Shared;
use crate::public::links::Purpose;
use crate::store::ChatConversation;
use crate::web::html::esc;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct SiteQuery {
    site: String,
}

fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// `loader.js?site=ID`: the only script a site embeds. It adds a button
/// and, on first use, an iframe of the frame page; it learns postdesk's
/// address from its own URL, so it is the same file for every site.
pub(super) async fn loader(State(state): State<Shared>, Query(q): Query<SiteQuery>) -> Response {
    if state.rules.current().chat.site(&q.site).is_none() {
        return ChatError::UnknownSite.into_response();
    }
    script(include_str!("loader.js"))
}

pub(super) async fn frame_js() -> Response {
    script(include_str!("frame.js"))
}

pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("chat.css"),
    )
        .into_response()
}

/// The frame's CSP: nothing but our own script, style and requests, and
/// framed only by `ancestors` (the site's origins, or `'none'`).
fn frame_csp(ancestors: &str) -> String {
    format!(
        "default-src 'none'; frame-ancestors {ancestors}; base-uri 'none'; form-action 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'"
    )
}

/// The chat's page; `visitor`/`address` preset it (the continue link).
fn frame_page(
    site: &crate::rules::chat::Site,
    open: bool,
    ancestors: &str,
    preset: Option<(&str, &str)>,
) -> Response {
    let (visitor, address) = preset.unwrap_or(("", ""));
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Chat with us</title><link rel="stylesheet" href="/chat/chat.css"><script src="/chat/frame.js" defer></script></head>
<body><main id="chat" data-site="{site}" data-open="{open}" data-visitor="{visitor}" data-address="{address}">
<h1>Chat with us</h1>
<p id="greeting">{greeting}</p>
<div id="closed" hidden><p>We are not here right now. <a href="{outside}" target="_blank" rel="noopener">Send us a request</a> and we will answer by mail.</p></div>
<form id="start-form" hidden>
<label for="address">Your email address</label>
<input id="address" name="address" type="email" required autocomplete="email" maxlength="254">
<label for="name">Your name (optional)</label>
<input id="name" name="name" autocomplete="name" maxlength="100">
<button type="submit">Start chat</button>
</form>
<ol id="lines" aria-live="polite" aria-label="Conversation" hidden></ol>
<form id="send-form" hidden>
<label for="text">Your message</label>
<textarea id="text" name="text" rows="2" required></textarea>
<button type="submit">Send</button>
</form>
<button id="leave" type="button" hidden>End the chat and mail me the transcript</button>
<p id="status" role="status" aria-live="polite"></p>
</main></body></html>
"#,
        site = esc(&site.id),
        open = if open { "1" } else { "0" },
        visitor = esc(visitor),
        address = esc(address),
        greeting = esc(&site.greeting),
        outside = esc(&site.outside_hours),
    );
    let csp = HeaderValue::from_str(&frame_csp(ancestors))
        .unwrap_or_else(|_| HeaderValue::from_static(crate::web::headers::CSP));
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp);
    // frame-ancestors decides; browsers ignore X-Frame-Options beside it,
    // older ones honour this one, which keeps the frame on our own pages.
    resp.headers_mut().insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    resp
}

/// `frame?site=ID`: the iframe page, framed only by the site's origins.
pub(super) async fn frame(State(state): State<Shared>, Query(q): Query<SiteQuery>) -> Response {
    let rules = state.rules.current();
    let Some(site) = rules.chat.site(&q.site) else {
        return ChatError::UnknownSite.into_response();
    };
    let open = match super::is_open(&state, &rules, site, state.clock.now()) {
        Ok(open) => open,
        Err(e) => return ChatError::Store(e).into_response(),
    };
    frame_page(site, open, &site.origins.join(" "), None)
}

/// The ticket a chat link names, when it verifies for one of its participants.
fn verify_link(
    state: &crate::public::PublicState,
    token: &str,
) -> Result<Option<(crate::model::Ticket, String)>, ChatError> {
    let Some(id) = crate::public::links::Links::claimed_ticket(token) else {
        return Ok(None);
    };
    let Some(ticket) = state.store.ticket(id)? else {
        return Ok(None);
    };
    let mut candidates: Vec<&str> = ticket.participants.iter().map(String::as_str).collect();
    candidates.push(&ticket.requester);
    let verified = state
        .urls
        .links
        .verify(Purpose::Chat, token, candidates, state.clock.now());
    Ok(verified.map(|v| (ticket.clone(), v.recipient)))
}

fn invalid_link() -> Response {
    crate::public::page(
        StatusCode::NOT_FOUND,
        "en",
        "Link not valid",
        "<h1>Link not valid</h1><p>This link is not valid any more. Write to us by mail, or <a href=\"/new\">send us a request</a>.</p>",
    )
}

/// `GET /chat/continue/{token}`: a button, so that a mail scanner that
/// follows links does not take the chat over.
pub(super) async fn continue_page(
    State(state): State<Shared>,
    Path(token): Path<String>,
) -> Result<Response, ChatError> {
    let Some((ticket, _)) = verify_link(&state, &token)? else {
        return Ok(invalid_link());
    };
    Ok(crate::public::page(
        StatusCode::OK,
        "en",
        "Continue your chat",
        &format!(
            "<h1>Continue your chat</h1><p>Ticket #{}: {}</p><form method=\"post\"><button type=\"submit\">Continue the chat</button></form>",
            ticket.id,
            esc(&ticket.subject)
        ),
    ))
}

/// `POST /chat/continue/{token}`: the address's owner (they hold the
/// mailed link) continues the ticket in the chat, verified.
pub(super) async fn continue_chat(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ChatError> {
    let Some((ticket, recipient)) = verify_link(&state, &token)? else {
        return Ok(invalid_link());
    };
    let rules = state.rules.current();
    let Some(site) = rules
        .chat
        .sites
        .iter()
        .find(|s| s.queue == ticket.queue)
        .or_else(|| rules.chat.sites.first())
    else {
        return Err(ChatError::UnknownSite);
    };
    check_origin(&state, site, &headers)?;
    let now = state.clock.now();
    // The transcript covers what follows; what came before was mailed.
    let seen = state
        .store
        .ticket_messages(ticket.id)?
        .last()
        .map_or(0, |m| m.seq);
    let visitor = identity::new_visitor_token();
    let key = identity::visitor_key(&visitor).ok_or(ChatError::NoConversation)?;
    let conv = ChatConversation {
        site: site.id.clone(),
        address: recipient.clone(),
        name: ticket.requester_name.clone(),
        verified: true,
        started_at: now,
        last_active: now,
        first_seq: None,
        ticket: Some(ticket.id),
        root_message_id: ticket.last_customer_message_id.clone(),
        last_message_id: ticket.last_customer_message_id.clone(),
        lines: 0,
        ended: false,
        transcript_upto: seen,
        link_mailed: true,
    };
    state
        .store
        .write(|tx| tx.put_chat_conversation(&key, &conv))?;
    tracing::info!(ticket = ticket.id, "chat continued from a mailed link");
    let open = super::is_open(&state, &rules, site, now)?;
    Ok(frame_page(
        site,
        open,
        "'none'",
        Some((&visitor, &recipient)),
    ))
}
