//! Merging and splitting from the ticket page: the small forms
//! ([`section`], placed by `ticket.rs`) and their handlers,
//! `POST /tickets/{id}/merge` (a ticket-number field) and
//! `POST /tickets/{id}/messages/{seq}/split`. Both pass the session and
//! CSRF checks first, like the reply form, then go through the one command
//! path (`Processor::act`) as the logged-in agent with the version the page
//! showed, so they are refused exactly as by mail or the JSON API.

use super::html::{self, Viewer, csrf_input, esc};
use super::{Shared, WebError, blocking, csrf, session};
use crate::model::{MessageKind, MessageRecord, Ticket};
use crate::process::commands::Action;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// The merge form and one split button per customer message (when more
/// than one), or, for a merged ticket, where it went. Reads the merge
/// pointers of `t`.
pub async fn section(
    state: &Shared,
    t: &Ticket,
    messages: &[MessageRecord],
    csrf: &str,
) -> Result<String, WebError> {
    let (store, id) = (state.store.clone(), t.id);
    let (into, from) =
        blocking(move || Ok((store.merged_into(id)?, store.merged_from(id)?))).await?;
    let from = if from.is_empty() {
        String::new()
    } else {
        let links: Vec<String> = from
            .iter()
            .map(|f| format!(r##"<a href="/tickets/{f}">#{f}</a>"##))
            .collect();
        format!(
            r#"<p class="merged-from">Merged into this ticket: {}</p>"#,
            links.join(", ")
        )
    };
    if let Some(into) = into {
        return Ok(format!(
            r##"<section class="act merge" aria-labelledby="merge-h"><h2 id="merge-h">Merged</h2><p class="merged-into">Merged into <a href="/tickets/{into}">#{into}</a>: its conversation and later mail are there.</p>{from}</section>"##
        ));
    }
    let hidden = format!(
        r#"{}<input type="hidden" name="version" value="{}">"#,
        csrf_input(csrf),
        t.version
    );
    let customer: Vec<&MessageRecord> = messages
        .iter()
        .filter(|m| m.kind == MessageKind::Customer)
        .collect();
    let split = if customer.len() > 1 {
        let buttons: String = customer
            .iter()
            .map(|m| {
                format!(
                    r#"<li><form method="post" action="/tickets/{id}/messages/{seq}/split">{hidden}<button type="submit" name="split" value="{seq}">Split out message {seq}</button> <span class="from">{from}</span> {date}</form></li>"#,
                    seq = m.seq,
                    from = esc(&m.from),
                    date = html::time(m.date),
                )
            })
            .collect();
        format!(
            r#"<details class="split"><summary>Split a message out into a new ticket</summary><ul>{buttons}</ul></details>"#
        )
    } else {
        String::new()
    };
    Ok(format!(
        r##"<section class="act merge" aria-labelledby="merge-h"><h2 id="merge-h">Merge or split</h2>{from}<form method="post" action="/tickets/{id}/merge">{hidden}<label for="merge-into">Merge this ticket into ticket number</label><input id="merge-into" name="into" inputmode="numeric" pattern="#?[0-9]+" required><label for="merge-reason">Why (optional)</label><input id="merge-reason" name="reason"><button type="submit">Merge</button></form>{split}</section>"##
    ))
}

#[derive(Deserialize)]
pub struct MergeForm {
    csrf: Option<String>,
    into: Option<String>,
    reason: Option<String>,
    version: Option<u64>,
}

#[derive(Deserialize)]
pub struct SplitForm {
    csrf: Option<String>,
    reason: Option<String>,
    version: Option<u64>,
}

fn parse_id(s: &str) -> Option<u64> {
    s.trim().trim_start_matches('#').parse().ok()
}

/// The session, CSRF, then `action` through `Processor::act` as the
/// logged-in agent; on success to the ticket the conversation is in now.
async fn act(
    state: Shared,
    headers: HeaderMap,
    id: &str,
    csrf_token: Option<&str>,
    version: Option<u64>,
    action: impl FnOnce() -> Result<Action, String>,
) -> Result<Response, WebError> {
    use crate::process::commands::{Refusal, Request, Via};
    let Some(cur) = session::current(&state, &headers).await? else {
        csrf::same_origin(&headers, state.https)?;
        return Ok(Redirect::to("/login").into_response());
    };
    csrf::check(&headers, state.https, &cur.session.csrf, csrf_token)?;
    let id = parse_id(id).ok_or(WebError::NotFound)?;
    let viewer = Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    let refused = |why: String| {
        html::page(
            StatusCode::BAD_REQUEST,
            "Not done",
            Some(&viewer),
            &format!(
                r#"<h1>Not done</h1><p>{}</p><p><a href="/tickets/{id}">Back to ticket #{id}</a></p>"#,
                esc(&why)
            ),
        )
    };
    let action = match action() {
        Ok(a) => a,
        Err(why) => return Ok(refused(why)),
    };
    let Some(p) = state.processor.clone() else {
        return Ok(refused(
            "This daemon does not act on tickets from the web.".into(),
        ));
    };
    let request = Request {
        ticket: id,
        actor: cur.session.agent.clone(),
        seen_version: version,
        actions: vec![action],
        via: Via::Web,
    };
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
        // The survivor of a merge, the new ticket of a split.
        Ok(outcome) => {
            let to = outcome.other.map_or(id, |t| t.id);
            Ok(Redirect::to(&format!("/tickets/{to}")).into_response())
        }
        Err(e) => Ok(refused(e.to_string())),
    }
}

pub async fn merge(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<MergeForm>,
) -> Result<Response, WebError> {
    let into = f.into.unwrap_or_default();
    let reason = f.reason.filter(|r| !r.trim().is_empty());
    act(state, headers, &id, f.csrf.as_deref(), f.version, || {
        parse_id(&into)
            .map(|into| Action::Merge { into, reason })
            .ok_or_else(|| format!("{into:?} is not a ticket number."))
    })
    .await
}

pub async fn split(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, seq)): Path<(String, String)>,
    Form(f): Form<SplitForm>,
) -> Result<Response, WebError> {
    let reason = f.reason.filter(|r| !r.trim().is_empty());
    act(state, headers, &id, f.csrf.as_deref(), f.version, || {
        parse_id(&seq)
            .map(|message| Action::Split { message, reason })
            .ok_or_else(|| format!("{seq:?} is not a message number."))
    })
    .await
}
