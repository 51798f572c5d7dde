//! The signed status page, `/status/{token}`: where a customer sees their
//! ticket's status and public conversation, adds a message (with files),
//! closes the ticket, or reopens it within `web.reopen_window`.
//!
//! The link is the only key ([`super::links`]): a tampered, expired or
//! foreign link gets the very 404 of an unknown page, so it tells nothing
//! about the ticket. The page shows the customers' messages (the holder's
//! own as "You", other participants' without their address) and the
//! agents' public replies under the agent's display name, never internal
//! notes, events, our automatic mail or a stranger's message. Its forms
//! carry a token bound to the link (besides the Origin check); a message
//! is committed to the spool as `Source::StatusLink`, which the processor
//! threads into exactly this ticket from exactly this participant; close
//! and reopen take `Processor::act` with the customer as actor.

use super::intake::{self, Submission};
use super::links::{Links, Purpose, Verified};
use super::texts::Texts;
use super::{Shared, form_token, multipart, page};
use crate::model::{Direction, MessageKind, MessageRecord, Source, Status, Ticket};
use crate::process::commands::{Action, Refusal, Request, Via};
use crate::web::html::esc;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// Room for the text fields beside the attachments in a posted body.
const FIELDS_ALLOWANCE: usize = 1024 * 1024;

/// `/status/{token}` and its forms.
pub fn routes<S: Clone + Send + Sync + 'static>(shared: Shared) -> Router<S> {
    let limit = usize::try_from(shared.cfg.smtp.max_message_size)
        .unwrap_or(usize::MAX)
        .saturating_add(FIELDS_ALLOWANCE);
    Router::new()
        .route("/status/{token}", get(show))
        .route("/status/{token}/message", post(add_message))
        .route("/status/{token}/close", post(close))
        .route("/status/{token}/reopen", post(reopen))
        .route("/status/{token}/solved", post(solved))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

#[derive(Deserialize)]
struct PageQuery {
    lang: Option<String>,
    /// What the last form did: `sent`, `received`, `closed`, `reopened`, `solved`, `unchanged`.
    done: Option<String>,
}

/// The ticket and holder of a valid link; None for anything else.
async fn verified(s: &Shared, token: &str) -> Option<(Ticket, Verified)> {
    let id = Links::claimed_ticket(token)?;
    let store = s.store.clone();
    let ticket = match tokio::task::spawn_blocking(move || store.ticket(id)).await {
        Ok(Ok(t)) => t?,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, ticket = id, "status page: reading the ticket failed");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "status page task failed");
            return None;
        }
    };
    let now = s.clock.now();
    let v = s.urls.links.verify(
        Purpose::Status,
        token,
        ticket.participants.iter().map(String::as_str),
        now,
    )?;
    Some((ticket, v))
}

/// The scope of a status page's form tokens: the link itself.
fn scope(token: &str) -> String {
    format!("status {token}")
}

async fn show(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let t = intake::language(&headers, q.lang.as_deref());
    let Some((ticket, v)) = verified(&s, &token).await else {
        tracing::info!("status page: no valid link");
        return super::not_found().await;
    };
    let store = s.store.clone();
    let id = ticket.id;
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((store.ticket_messages(id)?, store.ticket_events(id)?))
    })
    .await;
    let (messages, events) = match read {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::error!(error = %e, ticket = id, "status page: reading the conversation failed");
            return super::not_found().await;
        }
        Err(e) => {
            tracing::error!(error = %e, "status page task failed");
            return super::not_found().await;
        }
    };
    let finished_at = finished_at(&ticket, &events);
    status_page(
        &s,
        t,
        &token,
        &ticket,
        &v,
        &messages,
        finished_at,
        q.done.as_deref(),
    )
}

/// When a finished ticket was resolved or closed (its last status change).
fn finished_at(ticket: &Ticket, events: &[crate::model::Event]) -> i64 {
    events
        .iter()
        .rev()
        .find(|e| e.kind == crate::model::EventKind::Status.as_str())
        .map_or(ticket.updated_at, |e| e.at)
}

/// Whether the customer may still reopen `ticket` at `now`.
fn may_reopen(s: &Shared, ticket: &Ticket, finished_at: i64, now: i64) -> bool {
    let window = i64::try_from(s.cfg.web.reopen_window.as_secs()).unwrap_or(i64::MAX);
    ticket.status.is_finished() && now.saturating_sub(finished_at) <= window
}

#[allow(clippy::too_many_arguments)]
fn status_page(
    s: &Shared,
    t: &Texts,
    token: &str,
    ticket: &Ticket,
    v: &Verified,
    messages: &[MessageRecord],
    finished_at: i64,
    done: Option<&str>,
) -> Response {
    let now = s.clock.now();
    let form_token = form_token::issue(&s.urls.links, &scope(token), now);
    let base = format!("/status/{token}");
    let lang = t.lang;
    let other = t.other();
    let done = match done {
        Some("sent") => Some(t.sent),
        Some("received") => Some(t.sent_pending),
        Some("closed") => Some(t.closed_done),
        Some("reopened") => Some(t.reopened_done),
        Some("solved") => Some(t.solved_done),
        Some("unchanged") => Some(t.not_changed),
        _ => None,
    }
    .map_or_else(String::new, |d| {
        format!(r#"<p class="done" role="status">{}</p>"#, esc(d))
    });
    let rules = s.rules.current();
    let mut shown: Vec<&MessageRecord> = messages.iter().filter(|m| is_public(m)).collect();
    shown.sort_by_key(|m| (m.date, m.seq));
    let conversation: String = shown
        .iter()
        .map(|m| {
            let who = match m.direction {
                Direction::Inbound if m.from.eq_ignore_ascii_case(&v.recipient) => {
                    t.you.to_string()
                }
                Direction::Inbound => t.other_participant.to_string(),
                Direction::Outbound => ticket
                    .public_replies
                    .iter()
                    .find(|r| r.message == m.seq)
                    .and_then(|r| rules.agents.by_name(&r.agent))
                    .map_or_else(|| t.support.to_string(), |a| a.display_name.clone()),
            };
            let class = if m.direction == Direction::Inbound {
                "message customer"
            } else {
                "message agent"
            };
            format!(
                r#"<article class="{class}"><p class="meta"><strong>{}</strong> · {}</p><pre>{}</pre></article>"#,
                esc(&who),
                crate::web::html::time(m.date),
                esc(m.text.trim_end())
            )
        })
        .collect();
    let hidden = format!(
        r#"<input type="hidden" name="token" value="{}">"#,
        esc(&form_token)
    );
    let write = if ticket.status == Status::Closed {
        format!(r#"<p class="muted">{}</p>"#, esc(t.closed_write))
    } else {
        format!(
            r#"<form method="post" action="{base}/message?lang={lang}" enctype="multipart/form-data">{hidden}
<label for="body">{l_msg}</label>
<textarea id="body" name="body"></textarea>
<label for="attachment">{l_att}</label>
<input type="file" id="attachment" name="attachment" multiple>
<button type="submit">{send}</button>
</form>"#,
            l_msg = esc(t.your_message),
            l_att = esc(t.attachment),
            send = esc(t.send_message),
        )
    };
    let mut actions = String::new();
    if !ticket.status.is_finished() {
        let kb = if rules.kb.articles.iter().any(|a| a.is_public()) {
            format!(r#" <a href="/kb">{}</a>"#, esc(t.kb_link))
        } else {
            String::new()
        };
        actions.push_str(&format!(
            r#"<form method="post" action="{base}/solved?lang={lang}" enctype="multipart/form-data" class="action">{hidden}<p class="muted">{}{kb}</p><button type="submit">{}</button></form>"#,
            esc(t.solved_hint),
            esc(t.solved)
        ));
    }
    if ticket.status != Status::Closed {
        actions.push_str(&format!(
            r#"<form method="post" action="{base}/close?lang={lang}" enctype="multipart/form-data" class="action">{hidden}<p class="muted">{}</p><button type="submit" class="secondary">{}</button></form>"#,
            esc(t.close_hint),
            esc(t.close_ticket)
        ));
    }
    if may_reopen(s, ticket, finished_at, now) {
        actions.push_str(&format!(
            r#"<form method="post" action="{base}/reopen?lang={lang}" enctype="multipart/form-data" class="action">{hidden}<p class="muted">{}</p><button type="submit">{}</button></form>"#,
            esc(t.reopen_hint),
            esc(t.reopen)
        ));
    }
    let body = format!(
        r#"<p class="lang"><a href="{base}?lang={other_lang}" hreflang="{other_lang}" lang="{other_lang}">{other_name}</a></p>
<h1>{subject}</h1>
<p class="summary">#{id} · {l_status}: <strong class="status status-{status_key}">{status}</strong></p>
{done}<h2>{l_conv}</h2>
{conversation}
<h2>{l_add}</h2>
{write}
{actions}"#,
        other_lang = esc(other.lang),
        other_name = esc(t.other_language),
        subject = esc(&ticket.subject),
        id = ticket.id,
        l_status = esc(t.status_label),
        status_key = ticket.status.as_str(),
        status = esc(t.status(ticket.status)),
        l_conv = esc(t.conversation),
        l_add = esc(t.add_message),
    );
    page(StatusCode::OK, t.lang, t.status_title, &body)
}

/// What of a ticket its customers see: their own messages (not a
/// stranger's) and the agents' public replies.
fn is_public(m: &MessageRecord) -> bool {
    match (m.direction, m.kind) {
        (Direction::Inbound, MessageKind::Customer) => m.stranger.is_none(),
        (Direction::Outbound, MessageKind::Agent) => true,
        _ => false,
    }
}

/// A posted status-page form, checked: the link, the origin and the
/// link-bound token. Err is the response to give.
async fn posted(
    s: &Shared,
    token: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Ticket, Verified, Vec<multipart::Part>), Response> {
    let Some((ticket, v)) = verified(s, token).await else {
        tracing::info!("status form: no valid link");
        return Err(super::not_found().await);
    };
    let t = intake::language(headers, None);
    if !intake::same_origin(s, headers) {
        tracing::info!(ticket = ticket.id, "status form refused: cross-site post");
        return Err(refused(t));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Ok(parts) = multipart::parse(content_type, body) else {
        return Err(refused(t));
    };
    let given = intake::field(&parts, "token");
    if form_token::check(
        &s.urls.links,
        &scope(token),
        Some(given.as_str()).filter(|g| !g.is_empty()),
        s.clock.now(),
    )
    .is_err()
    {
        tracing::info!(
            ticket = ticket.id,
            "status form refused: no valid form token"
        );
        return Err(refused(t));
    }
    Ok((ticket, v, parts))
}

fn refused(t: &Texts) -> Response {
    let body = format!(
        "<h1>{}</h1><p>{}</p>",
        esc(t.refused_title),
        esc(t.refused_body)
    );
    page(StatusCode::FORBIDDEN, t.lang, t.refused_title, &body)
}

/// Back to the status page, saying what happened.
fn back(token: &str, q: &PageQuery, done: &str) -> Response {
    let lang = q
        .lang
        .as_deref()
        .filter(|l| l.chars().all(|c| c.is_ascii_alphabetic()) && l.len() <= 8)
        .map_or_else(String::new, |l| format!("&lang={l}"));
    Redirect::to(&format!("/status/{token}?done={done}{lang}")).into_response()
}

async fn add_message(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ticket, v, parts) = match posted(&s, &token, &headers, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let text = intake::field(&parts, "body");
    let Ok(attachments) = intake::attachments(parts, s.cfg.smtp.max_message_size) else {
        return back(&token, &q, "unchanged");
    };
    if ticket.status == Status::Closed || (text.trim().is_empty() && attachments.is_empty()) {
        return back(&token, &q, "unchanged");
    }
    let name = if v.recipient == ticket.requester {
        ticket.requester_name.clone()
    } else {
        String::new()
    };
    let submission = Submission {
        name,
        email: v.recipient.clone(),
        subject: crate::process::reply::reply_subject(&ticket),
        body: text,
        attachments,
        source: Source::StatusLink {
            ticket: ticket.id,
            recipient: v.recipient.clone(),
        },
        peer: "status page".into(),
    };
    match intake::submit(&s, submission).await {
        Ok((seq, Some(_))) => {
            tracing::info!(ticket = ticket.id, seq, "status page message taken");
            back(&token, &q, "sent")
        }
        Ok((seq, None)) => {
            tracing::info!(ticket = ticket.id, seq, "status page message spooled");
            back(&token, &q, "received")
        }
        Err(e) => {
            tracing::error!(error = %e, ticket = ticket.id, "status page message not taken");
            back(&token, &q, "unchanged")
        }
    }
}

async fn close(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    set_status(&s, &token, &q, &headers, &body, Status::Closed, "closed").await
}

/// "This solved my problem": the customer resolves their ticket, which
/// `Processor::act` records as a deflection.
async fn solved(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    set_status(&s, &token, &q, &headers, &body, Status::Resolved, "solved").await
}

/// A checked post that sets the ticket's status as the customer; back to
/// the page saying `done` or "unchanged".
async fn set_status(
    s: &Shared,
    token: &str,
    q: &PageQuery,
    headers: &HeaderMap,
    body: &Bytes,
    status: Status,
    done: &'static str,
) -> Response {
    let (ticket, v, _) = match posted(s, token, headers, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let changed = act(s, &ticket, &v, status).await;
    back(token, q, if changed { done } else { "unchanged" })
}

async fn reopen(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ticket, v, _) = match posted(&s, &token, &headers, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let store = s.store.clone();
    let id = ticket.id;
    let events = match tokio::task::spawn_blocking(move || store.ticket_events(id)).await {
        Ok(Ok(e)) => e,
        _ => return back(&token, &q, "unchanged"),
    };
    if !may_reopen(&s, &ticket, finished_at(&ticket, &events), s.clock.now()) {
        tracing::info!(
            ticket = id,
            "status page: reopen refused (not finished, or after the window)"
        );
        return back(&token, &q, "unchanged");
    }
    let done = act(&s, &ticket, &v, Status::Open).await;
    back(&token, &q, if done { "reopened" } else { "unchanged" })
}

/// Sets the ticket's status as the customer, through the agents' one
/// decision path; whether it was applied.
async fn act(s: &Shared, ticket: &Ticket, v: &Verified, status: Status) -> bool {
    let p = s.processor.clone();
    let request = Request {
        ticket: ticket.id,
        actor: v.recipient.clone(),
        seen_version: None,
        actions: vec![Action::Status(status)],
        via: Via::Customer,
    };
    let id = ticket.id;
    let wake = p.outbound_wake.clone();
    let acted = tokio::task::spawn_blocking(move || {
        let rules = p.rules.current();
        let now = p.clock.now();
        p.store.write(|tx| match p.act(tx, &rules, request, now) {
            Err(Refusal::Store(e)) => Err(e),
            other => Ok(other),
        })
    })
    .await;
    match acted {
        Ok(Ok(Ok(outcome))) => {
            wake.notify_one();
            tracing::info!(ticket = id, results = ?outcome.results, "customer request applied");
            true
        }
        Ok(Ok(Err(refusal))) => {
            tracing::info!(ticket = id, %refusal, "customer request refused");
            false
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, ticket = id, "customer request failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "customer request task failed");
            false
        }
    }
}
