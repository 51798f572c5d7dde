//! The ticket page `/tickets/{id}`: the conversation oldest first (each
//! message's stored visible text, escaped, kind and standing marked),
//! participants and the event log, with the reply and note forms.
//!
//! Replying and notes go through the one command path shared with mail and
//! the JSON API (`Processor::act`), after the CSRF check.

use super::html::{self, Viewer, csrf_input, esc};
use super::{Shared, WebError, blocking, csrf, session};
use crate::model::{Direction, MessageKind, MessageRecord};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

fn parse_id(s: &str) -> Result<u64, WebError> {
    s.trim_start_matches('#')
        .parse()
        .map_err(|_| WebError::NotFound)
}

/// The label and CSS class of a message's kind.
fn kind_of(m: &MessageRecord) -> (&'static str, &'static str) {
    match m.kind {
        MessageKind::Customer => ("Customer", "customer"),
        MessageKind::Agent => ("Agent reply", "agent"),
        MessageKind::Note => ("Internal note", "note"),
        MessageKind::Auto => ("Automatic", "auto"),
        MessageKind::System => ("System", "system"),
        MessageKind::Held => ("Held reply", "held"),
    }
}

fn message(m: &MessageRecord, html: bool) -> String {
    let (label, class) = kind_of(m);
    let stranger = m
        .stranger
        .as_deref()
        .map(|why| {
            format!(
                r#" <span class="badge stranger" title="{}">not a participant</span>"#,
                esc(why)
            )
        })
        .unwrap_or_default();
    // The sanitised HTML in a sandbox (no scripts, no same-origin, no
    // popups), under the plain text, for layout the text loses.
    let frame = if html {
        format!(
            r#"<details class="html"><summary>HTML version</summary><iframe sandbox="" src="/tickets/{}/messages/{}/html" title="HTML version of the message" loading="lazy"></iframe></details>"#,
            m.ticket.unwrap_or_default(),
            m.seq
        )
    } else {
        String::new()
    };
    let arrow = match m.direction {
        Direction::Inbound => "received",
        Direction::Outbound => "sent",
    };
    format!(
        r#"<article class="msg msg-{class}" id="m{seq}"><header><span class="kind">{label}</span>{stranger} <span class="from">{from}</span> <span class="dir">{arrow}</span> {date}</header><div class="text">{text}</div>{frame}</article>"#,
        seq = m.seq,
        from = esc(&m.from),
        date = html::time(m.date),
        text = esc(&m.text),
    )
}

pub async fn page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let id = parse_id(&id)?;
    let store = state.store.clone();
    let found = blocking(move || {
        let Some(t) = store.ticket(id)? else {
            return Ok(None);
        };
        let messages = store.ticket_messages(id)?;
        // Which messages came as HTML only: those get a framed HTML view.
        let mut html = Vec::with_capacity(messages.len());
        for m in &messages {
            let raw = match m.direction {
                crate::model::Direction::Inbound => store.raw(m.seq)?,
                crate::model::Direction::Outbound => None,
            };
            html.push(super::mail_html::has_html(m, raw.as_deref()));
        }
        Ok(Some((t, messages, html, store.ticket_events(id)?)))
    })
    .await?;
    let (t, messages, html_flags, events) = found.ok_or(WebError::NotFound)?;
    let now = state.clock.now();
    let subject = if t.subject.is_empty() {
        "(no subject)"
    } else {
        &t.subject
    };
    let sla = crate::sla::state_name(&t, now);
    let left = super::queue::next_deadline(&t)
        .map(|d| format!(" {}", super::queue::time_left(d - now)))
        .unwrap_or_default();
    let facts = format!(
        r#"<dl class="facts"><dt>Status</dt><dd>{}</dd><dt>Priority</dt><dd>{}</dd><dt>Queue</dt><dd>{}</dd><dt>Assignee</dt><dd>{}</dd><dt>Requester</dt><dd>{}</dd><dt>Tags</dt><dd>{}</dd><dt>SLA</dt><dd><span class="sla sla-{}">{}{}</span></dd><dt>Opened</dt><dd>{}</dd></dl>"#,
        esc(t.status.as_str()),
        esc(t.priority.as_str()),
        esc(&t.queue),
        esc(t.assignee.as_deref().unwrap_or("—")),
        esc(&t.requester),
        esc(&t.tags.join(", ")),
        esc(sla),
        esc(sla),
        esc(&left),
        html::time(t.created_at),
    );
    let participants: String = t
        .participants
        .iter()
        .map(|p| format!("<li>{}</li>", esc(p)))
        .collect();
    let conversation: String = messages
        .iter()
        .zip(&html_flags)
        .map(|(m, html)| message(m, *html))
        .collect();
    let log: String = events
        .iter()
        .map(|e| {
            format!(
                r#"<tr><td data-label="When">{}</td><td data-label="What">{}</td><td data-label="Who">{}</td><td data-label="Detail">{}</td></tr>"#,
                html::time(e.at),
                esc(&e.kind),
                esc(&e.actor),
                esc(&e.detail)
            )
        })
        .collect();
    // The version seen travels with the reply: collision detection holds a
    // reply written against an older one after another agent answered.
    let token = format!(
        r#"{}<input type="hidden" name="version" value="{}">"#,
        csrf_input(&cur.session.csrf),
        t.version
    );
    let merge = super::merge::section(&state, &t, &messages, &cur.session.csrf).await?;
    let body = format!(
        r#"<article class="ticket"><h1><span class="id">#{id}</span> {subject}</h1>{facts}
<section class="conversation" aria-label="Conversation">{conversation}</section>
<section class="act"><form method="post" action="/tickets/{id}/reply">{token}<label for="reply">Reply to the customer</label><textarea id="reply" name="body" rows="6"></textarea><button type="submit">Send reply</button></form>
<form method="post" action="/tickets/{id}/note">{token}<label for="note">Internal note</label><textarea id="note" name="body" rows="4"></textarea><button type="submit">Add note</button></form></section>{merge}
<section class="side"><h2>Participants</h2><ul class="participants">{participants}</ul>
<h2>Events</h2><div class="scroll"><table class="events"><thead><tr><th scope="col">When</th><th scope="col">What</th><th scope="col">Who</th><th scope="col">Detail</th></tr></thead><tbody>{log}</tbody></table></div></section></article>"#,
        subject = esc(subject),
    );
    let mut resp = html::page(
        StatusCode::OK,
        &format!("#{id} {subject}"),
        Some(&Viewer {
            agent: &cur.session.agent,
            csrf: &cur.session.csrf,
        }),
        &body,
    );
    if html_flags.iter().any(|h| *h) {
        resp.headers_mut().insert(
            axum::http::header::CONTENT_SECURITY_POLICY,
            axum::http::HeaderValue::from_static(super::headers::CSP_WITH_MAIL_FRAMES),
        );
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct ActForm {
    csrf: Option<String>,
    body: Option<String>,
    /// The ticket version the page showed (collision detection).
    version: Option<u64>,
}

/// Shared by reply and note: a session, a same-origin request with its
/// token, then the one command path (`Processor::act`, as mail commands
/// and the JSON API use) with the logged-in agent as actor. Back to the
/// ticket on success; the refusal, in words, otherwise.
async fn act(
    state: Shared,
    headers: HeaderMap,
    id: String,
    f: ActForm,
    note: bool,
) -> Result<Response, WebError> {
    use crate::process::commands::{Action, Refusal, Request, Via};
    let Some(cur) = session::current(&state, &headers).await? else {
        csrf::same_origin(&headers, state.https)?;
        return Ok(Redirect::to("/login").into_response());
    };
    csrf::check(&headers, state.https, &cur.session.csrf, f.csrf.as_deref())?;
    let id = parse_id(&id)?;
    let text = f.body.unwrap_or_default().trim().to_string();
    let viewer = Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    let refused = |why: String| {
        html::page(
            StatusCode::BAD_REQUEST,
            "Not sent",
            Some(&viewer),
            &format!(
                r#"<h1>Not sent</h1><p>{}</p><p><a href="/tickets/{id}">Back to ticket #{id}</a></p>"#,
                esc(&why)
            ),
        )
    };
    if text.is_empty() {
        return Ok(refused("The text is empty.".into()));
    }
    let action = if note {
        Action::Note(text)
    } else {
        Action::Reply {
            text,
            attachments: Vec::new(),
        }
    };
    let request = Request {
        ticket: id,
        actor: cur.session.agent.clone(),
        seen_version: f.version,
        actions: vec![action],
        via: Via::Web,
    };
    let Some(p) = state.processor.clone() else {
        return Ok(refused(
            "This daemon does not act on tickets from the web.".into(),
        ));
    };
    let wake = p.outbound_wake.clone();
    let acted = blocking(move || {
        let rules = p.rules.current();
        let now = p.clock.now();
        p.store.write(|tx| match p.act(tx, &rules, request, now) {
            Err(Refusal::Store(e)) => Err(e),
            other => Ok(other),
        })
    })
    .await?;
    match acted {
        Ok(_) => {
            wake.notify_one();
            Ok(Redirect::to(&format!("/tickets/{id}")).into_response())
        }
        Err(e) => Ok(refused(e.to_string())),
    }
}

pub async fn reply(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ActForm>,
) -> Result<Response, WebError> {
    act(state, headers, id, f, false).await
}

pub async fn note(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ActForm>,
) -> Result<Response, WebError> {
    act(state, headers, id, f, true).await
}
