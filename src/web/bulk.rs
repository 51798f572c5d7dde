//! Bulk actions from the queue page: one POST with the selected tickets
//! and one action (assign, status, priority, tag, merge into a ticket), applied on the server to
//! each ticket through `Processor::act` (`Via::Web`, the logged-in agent),
//! so the browser sends one request and waits for one page, whatever the
//! number of tickets. The answer says which tickets took the action and
//! which refused it, and why.
//!
//! The action is written as the mail command an agent would send
//! (`#assign bob`, `#priority high`, `#tag +vip`, `#resolve`) and parsed by
//! the same parser: one vocabulary, whichever door.

use super::html::{self, Viewer, esc};
use super::{Shared, WebError, blocking, csrf, session};
use crate::model::TicketId;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// Most tickets one bulk request may name (a queue page shows 50).
pub const MAX_TICKETS: usize = 500;

/// What happened to one ticket.
struct Outcome {
    ticket: TicketId,
    refused: Option<String>,
}

/// The mail command line for `action` with `value`, or why there is none.
fn command_line(action: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("a value is required".into());
    }
    if value.contains(['\r', '\n']) {
        return Err("the value is one line".into());
    }
    match action {
        "assign" => Ok(format!("#assign {value}")),
        "priority" => Ok(format!("#priority {value}")),
        "tag" => Ok(format!("#tag +{}", value.trim_start_matches('+'))),
        // Each selected ticket is merged into ticket `value` (the survivor
        // itself, if selected, is refused: not into itself).
        "merge" => Ok(format!("#merge {}", value.trim_start_matches('#'))),
        "status" => match value.to_ascii_lowercase().as_str() {
            "open" => Ok("#open".into()),
            "pending" => Ok("#pending".into()),
            "resolved" | "resolve" => Ok("#resolve".into()),
            "closed" | "close" => Ok("#close".into()),
            other => Err(format!(
                "status {other:?}: open, pending, resolved or closed"
            )),
        },
        other => Err(format!("no bulk action {other:?}")),
    }
}

/// Where "back to the queue" leads: the queue address the form came from,
/// if it is one of ours (a path, never another site).
fn back_link(back: Option<&str>) -> String {
    match back {
        Some(b) if b.starts_with("/?") || b == "/" => b.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn submit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    use crate::process::commands::{MailCommand, Refusal, Request, Via, parse};
    let Some(cur) = session::current(&state, &headers).await? else {
        csrf::same_origin(&headers, state.https)?;
        return Ok(Redirect::to("/login").into_response());
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    csrf::check(&headers, state.https, &cur.session.csrf, field("csrf"))?;
    let viewer = Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    let back = back_link(field("back"));
    let refused_page = |why: &str| {
        html::page(
            StatusCode::BAD_REQUEST,
            "Not applied",
            Some(&viewer),
            &format!(
                r#"<h1>Not applied</h1><p>{}</p><p><a href="{}">Back to the queue</a></p>"#,
                esc(why),
                esc(&back)
            ),
        )
    };
    let mut ids: Vec<TicketId> = Vec::new();
    for (k, v) in &fields {
        if k == "ticket" {
            match v.trim().trim_start_matches('#').parse() {
                Ok(id) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(_) => return Ok(refused_page(&format!("{v:?} is not a ticket number"))),
            }
        }
    }
    if ids.is_empty() {
        return Ok(refused_page("No ticket was selected."));
    }
    if ids.len() > MAX_TICKETS {
        return Ok(refused_page(&format!(
            "At most {MAX_TICKETS} tickets at once."
        )));
    }
    let line = match command_line(field("action").unwrap_or(""), field("value").unwrap_or("")) {
        Ok(l) => l,
        Err(why) => return Ok(refused_page(&why)),
    };
    let action = match parse(&line) {
        Ok(MailCommand::Act(a)) => a,
        Ok(MailCommand::Note) => return Ok(refused_page("#note is not a bulk action")),
        Err(e) => return Ok(refused_page(&format!("{line}: {e}"))),
    };
    let Some(p) = state.processor.clone() else {
        return Ok(refused_page(
            "This daemon does not act on tickets from the web.",
        ));
    };
    let agent = cur.session.agent.clone();
    let span = tracing::info_span!("bulk", agent = %agent, command = %line, tickets = ids.len());
    let wake = p.outbound_wake.clone();
    // One transaction for all: each ticket is checked and applied whole
    // (a refusal changes nothing of that ticket), and one commit is one
    // fsync however many tickets were selected.
    let outcomes = blocking(move || {
        let _enter = span.enter();
        let rules = p.rules.current();
        let now = p.clock.now();
        p.store.write(|tx| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let request = Request {
                    ticket: id,
                    actor: agent.clone(),
                    seen_version: None,
                    actions: vec![action.clone()],
                    via: Via::Web,
                };
                let refused = match p.act(tx, &rules, request, now) {
                    Ok(_) => None,
                    Err(Refusal::Store(e)) => return Err(e),
                    Err(e) => Some(e.to_string()),
                };
                out.push(Outcome {
                    ticket: id,
                    refused,
                });
            }
            Ok(out)
        })
    })
    .await?;
    wake.notify_one();
    let applied = outcomes.iter().filter(|o| o.refused.is_none()).count();
    tracing::info!(applied, refused = outcomes.len() - applied, command = %line, "bulk action");
    let mut list = String::new();
    for o in &outcomes {
        match &o.refused {
            None => list.push_str(&format!(
                r#"<li class="applied"><a href="/tickets/{id}">#{id}</a>: applied</li>"#,
                id = o.ticket
            )),
            Some(why) => list.push_str(&format!(
                r#"<li class="refused"><a href="/tickets/{id}">#{id}</a>: refused: {}</li>"#,
                esc(why),
                id = o.ticket
            )),
        }
    }
    let body = format!(
        r#"<section class="results"><h1>{line}: applied to {applied} of {n}</h1><ul>{list}</ul><p><a href="{back}">Back to the queue</a></p></section>"#,
        line = esc(&line),
        n = outcomes.len(),
        back = esc(&back),
    );
    Ok(html::page(
        StatusCode::OK,
        "Bulk action",
        Some(&viewer),
        &body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_the_mail_commands() {
        assert_eq!(command_line("assign", " bob ").unwrap(), "#assign bob");
        assert_eq!(command_line("merge", "#42").unwrap(), "#merge 42");
        assert_eq!(command_line("status", "Resolved").unwrap(), "#resolve");
        assert_eq!(command_line("tag", "+vip").unwrap(), "#tag +vip");
        assert!(command_line("status", "new").is_err());
        assert!(command_line("split", "3").is_err());
        assert!(command_line("merge", "").is_err());
        assert!(command_line("assign", "bob\n#close").is_err());
        assert_eq!(back_link(Some("https://evil.test/")), "/");
        assert_eq!(back_link(Some("//evil.test/")), "/");
        assert_eq!(back_link(Some("/?folder=open")), "/?folder=open");
    }
}
