//! The ticket page `/tickets/{id}`: the conversation oldest first (each
//! message's stored visible text, escaped, kind and standing marked, its
//! attachments and raw bytes as downloads, why it joined the ticket and,
//! for mail we sent, its delivery state), participants, who else is on the
//! page, the event log, the acting forms and the reply and note forms.
//!
//! Replying and notes go through the one command path shared with mail and
//! the JSON API (`Processor::act`), after the CSRF check; a reply written
//! against an older version when another agent answered meanwhile is held
//! and the page opens with the choice (`held.rs`).

use super::acting::{self, parse_id};
use super::delivery;
use super::html::{self, Viewer, csrf_input, esc};
use super::presence::{self, Activity};
use super::{Shared, WebError, blocking, session};
use crate::model::{
    Direction, Event, MessageKind, MessageRecord, OutboundJob, SenderVerdict, Verdict,
};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

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

/// What the page shows of one message besides its text.
struct Extras<'a> {
    /// Framed HTML version (HTML-only mail).
    html: bool,
    /// Attachment names and sizes.
    attachments: Vec<(String, usize)>,
    /// Whether its raw bytes are stored.
    raw: bool,
    jobs: &'a [OutboundJob],
    events: &'a [Event],
    /// Who accepted each message we sent, and how.
    evidence: &'a delivery::EvidenceBySeq,
    /// What our SMTP intake verified about the sender (None: not verified).
    verdict: Option<&'a SenderVerdict>,
}

fn message(m: &MessageRecord, x: &Extras<'_>) -> String {
    let (label, class) = kind_of(m);
    let ticket = m.ticket.unwrap_or_default();
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
    let verified = x.verdict.map(sender_badge).unwrap_or_default();
    // The sanitised HTML in a sandbox (no scripts, no same-origin, no
    // popups), under the plain text, for layout the text loses.
    let frame = if x.html {
        format!(
            r#"<details class="html"><summary>HTML version</summary><iframe sandbox="" name="mail-{seq}" src="/tickets/{ticket}/messages/{seq}/html" title="HTML version of the message" loading="lazy"></iframe><p class="remote-images"><a href="/tickets/{ticket}/messages/{seq}/html?images=remote" target="mail-{seq}">Load remote images</a> (the sender may learn that the mail was read)</p></details>"#,
            seq = m.seq
        )
    } else {
        String::new()
    };
    let arrow = match m.direction {
        Direction::Inbound => "received",
        Direction::Outbound => "sent",
    };
    let delivery = match m.direction {
        Direction::Outbound => delivery::badge(&delivery::state_of(m.seq, x.jobs, x.events)),
        Direction::Inbound => String::new(),
    };
    let evidence = delivery::evidence_html(x.evidence.get(&m.seq).map(Vec::as_slice));
    // Why the message is here and what happened to it: its events, linked
    // to their rows in the log.
    let why: String = delivery::events_about(m.seq, x.events)
        .into_iter()
        .filter_map(|i| x.events.get(i).map(|e| (i, e)))
        .filter(|(_, e)| e.kind != "delivered" && e.kind != "delivery_failed")
        .map(|(i, e)| {
            format!(
                r##"<li><a href="#e{i}">{}</a>: {}</li>"##,
                esc(&e.kind),
                esc(&e.detail)
            )
        })
        .collect();
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(r#"<ul class="why" aria-label="Why this message is here">{why}</ul>"#)
    };
    let raw = if x.raw {
        format!(
            r#" <a class="raw" href="/tickets/{ticket}/messages/{}/raw" download>raw</a>"#,
            m.seq
        )
    } else {
        String::new()
    };
    format!(
        r#"<article class="msg msg-{class}" id="m{seq}"><header><span class="kind">{label}</span>{stranger} <span class="from">{from}</span>{verified} <span class="dir">{arrow}</span> {date} {delivery}{raw}</header><div class="text">{text}</div>{attachments}{frame}{evidence}{why}</article>"#,
        seq = m.seq,
        from = esc(&m.from),
        date = html::time(m.date),
        text = esc(&m.text),
        attachments = super::attachments::list(ticket, m.seq, &x.attachments),
    )
}

/// The "verified sender" badge: whether our own check vouches for the From,
/// by which mechanism, with every method's result in its title.
fn sender_badge(v: &SenderVerdict) -> String {
    let how = match v.mechanism.as_str() {
        "dmarc" => "DMARC",
        "dkim" => "DKIM",
        "spf" => "SPF",
        _ => "",
    };
    let (class, text) = match v.verdict {
        Verdict::Pass => ("sender-pass", format!("verified sender ({how})")),
        Verdict::Fail => ("sender-fail", format!("sender check failed ({how})")),
        Verdict::None => ("sender-none", "sender not verified".to_string()),
    };
    let mut title = format!("spf={} dkim={} dmarc={}", v.spf, v.dkim, v.dmarc);
    if let Some(p) = &v.dmarc_policy {
        title.push_str(&format!(" (policy {p})"));
    }
    if let Some(arc) = &v.arc {
        title.push_str(&format!(" arc={arc}"));
    }
    if !v.domain.is_empty() {
        title.push_str(&format!(" for {}", v.domain));
    }
    format!(
        r#" <span class="badge {class}" data-verdict="{}" title="{}">{}</span>"#,
        v.verdict.as_str(),
        esc(&title),
        esc(&text)
    )
}

/// The page's query: `seen` is the version a held reply was written
/// against (set by the redirect after a held submit).
#[derive(Deserialize)]
pub struct PageQuery {
    seen: Option<u64>,
}

pub async fn page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
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
        // HTML-only mail gets a framed HTML view; every stored message its
        // attachments and raw download.
        let mut extras = Vec::with_capacity(messages.len());
        for m in &messages {
            let raw = store.raw(m.seq)?;
            let html = super::mail_html::has_html(m, raw.as_deref());
            let attachments = raw
                .as_deref()
                .map(super::attachments::of_raw)
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.name, a.data.len()))
                .collect::<Vec<_>>();
            extras.push((html, attachments, raw.is_some()));
        }
        let held = store.held_for_ticket(id)?;
        let jobs = store.ticket_jobs(id)?;
        let verdicts = store.sender_verdicts(messages.iter().map(|m| m.seq))?;
        Ok(Some((
            t,
            messages,
            extras,
            store.ticket_events(id)?,
            held,
            jobs,
            verdicts,
        )))
    })
    .await?;
    let (t, messages, extras, events, held, jobs, verdicts) = found.ok_or(WebError::NotFound)?;
    let sent: Vec<u64> = messages
        .iter()
        .filter(|m| m.direction == Direction::Outbound)
        .map(|m| m.seq)
        .collect();
    let store = state.store.clone();
    let evidence = blocking(move || store.delivery_evidence(&sent)).await?;
    let html_flags: Vec<bool> = extras.iter().map(|e| e.0).collect();
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
        unverified_requester(&t),
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
        .zip(extras)
        .map(|(m, (html, attachments, raw))| {
            message(
                m,
                &Extras {
                    html,
                    attachments,
                    raw,
                    jobs: &jobs,
                    events: &events,
                    evidence: &evidence,
                    verdict: verdicts.get(&m.seq),
                },
            )
        })
        .collect();
    // Each event about a message of the conversation links to it (and the
    // message lists its events): why it joined, what became of it.
    let shown: std::collections::HashSet<u64> = messages.iter().map(|m| m.seq).collect();
    let log: String = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let link = e
                .message
                .filter(|seq| shown.contains(seq))
                .map(|seq| format!(r##" <a href="#m{seq}">message {seq}</a>"##))
                .unwrap_or_default();
            format!(
                r#"<tr id="e{i}"><td data-label="When">{}</td><td data-label="What">{}</td><td data-label="Who">{}</td><td data-label="Detail">{}{link}</td></tr>"#,
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
    let me = cur.session.agent.clone();
    state.presence.beat(id, &me, Activity::Viewing, now);
    let present = presence::sentences(&state, &state.presence.others(id, &me, now));
    let presence = format!(
        r#"<p id="presence" class="presence" aria-live="polite" data-ticket="{id}" data-interval="{}">{}</p>"#,
        state.presence.interval(),
        esc(&present.join(", "))
    );
    let held = super::held::panel(
        &t,
        &me,
        &held,
        &messages,
        query.seen,
        &csrf_input(&cur.session.csrf),
    );
    let acting = acting::forms(&t, &acting::Choices::of(&state), &token);
    let merge = super::merge::section(&state, &t, &messages, &cur.session.csrf).await?;
    let satisfaction = super::satisfaction::section(&state, id).await?;
    let body = format!(
        r#"<article class="ticket"><h1><span class="id">#{id}</span> {subject}</h1>{presence}{held}{facts}
<section class="conversation" aria-label="Conversation">{conversation}</section>
<section class="act"><form method="post" action="/tickets/{id}/reply" class="reply">{token}<label for="reply">Reply to the customer</label><textarea id="reply" name="body" rows="6"></textarea><button type="submit">Send reply</button></form>
<form method="post" action="/tickets/{id}/note">{token}<label for="note">Internal note</label><textarea id="note" name="body" rows="4"></textarea><button type="submit">Add note</button></form></section>
<section class="side"><h2>Change</h2>{acting}{merge}{satisfaction}<h2>Participants</h2><ul class="participants">{participants}</ul>
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
    /// Set by the held panel's "revise" form: this reply replaces my held one.
    revise: Option<String>,
}

/// Shared by reply and note: a session, a same-origin request with its
/// token, then the one command path (`acting::run`) with the logged-in
/// agent as actor. Back to the ticket on success (to its held panel when
/// the reply was held); the refusal, in words, otherwise.
async fn act(
    state: Shared,
    headers: HeaderMap,
    id: String,
    f: ActForm,
    note: bool,
) -> Result<Response, WebError> {
    use crate::process::commands::Action;
    let Some(cur) = acting::gate(&state, &headers, f.csrf.as_deref()).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let id = parse_id(&id)?;
    let text = f.body.unwrap_or_default().trim().to_string();
    if text.is_empty() {
        return Ok(acting::refused(&cur, id, "Not sent", "The text is empty."));
    }
    let mut actions = Vec::with_capacity(2);
    if f.revise.is_some() && !note {
        actions.push(Action::DropHeld);
    }
    actions.push(if note {
        Action::Note(text)
    } else {
        Action::Reply {
            text,
            attachments: Vec::new(),
        }
    });
    match acting::run(&state, &cur, id, f.version, actions).await? {
        Ok(outcome) => Ok(acting::after(id, &outcome, f.version)),
        Err(why) => Ok(acting::refused(&cur, id, "Not sent", &why)),
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

/// The requester, marked when the address was only typed into the web form
/// and its owner has not answered our mail yet.
fn unverified_requester(t: &crate::model::Ticket) -> String {
    if t.unverified {
        format!(
            r#"{} <span class="unverified" title="typed into the web form or the chat; not confirmed until the customer answers our mail or uses the status link">unverified</span>"#,
            esc(&t.requester)
        )
    } else {
        esc(&t.requester)
    }
}
