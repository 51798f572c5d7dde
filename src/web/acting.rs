//! Acting on a ticket from its page: status, priority, assignee, queue,
//! tags and the canned-response picker, each a small form of its own, and
//! the one function every web form acts through.
//!
//! Every form goes through `Processor::act` (the path mail commands and
//! the JSON API take) with `Via::Web`, the logged-in agent as actor and the
//! ticket version the page was rendered with; a refusal is a page that
//! says why (400), never a 500. The forms are plain HTML: they work
//! without JavaScript, each control has its label, and Tab reaches them
//! in reading order.

use super::html::{Viewer, esc};
use super::session::Current;
use super::{Shared, WebError, blocking, csrf, session};
use crate::model::{Priority, Status, Ticket, TicketId};
use crate::process::commands::{Action, Outcome, Refusal, Request, Sent, Via};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// What the forms offer: the agents, the queues, the canned responses.
pub struct Choices {
    pub agents: Vec<(String, String)>,
    pub queues: Vec<String>,
    pub canned: Vec<String>,
    /// Public knowledge-base articles, (slug, title), for the article picker
    /// (an internal one is never sent to a customer).
    pub kb: Vec<(String, String)>,
}

impl Choices {
    pub fn of(state: &Shared) -> Choices {
        let rules = state.rules.current();
        let agents = rules
            .agents
            .list
            .iter()
            .map(|a| (a.name.clone(), a.display_name.clone()))
            .collect();
        let (queues, canned) = match &state.processor {
            Some(p) => (
                p.known_queues(&rules),
                crate::process::canned::names(&p.cfg.rules_dir()),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let kb = rules
            .kb
            .articles
            .iter()
            .filter(|a| a.is_public())
            .map(|a| (a.slug.clone(), a.title.clone()))
            .collect();
        Choices {
            agents,
            queues,
            canned,
            kb,
        }
    }
}

fn select(name: &str, label: &str, options: &[(String, String)], current: &str) -> String {
    let opts: String = options
        .iter()
        .map(|(value, shown)| {
            format!(
                r#"<option value="{}"{}>{}</option>"#,
                esc(value),
                if value == current { " selected" } else { "" },
                esc(shown)
            )
        })
        .collect();
    format!(
        r#"<label for="act-{name}">{label}</label><select id="act-{name}" name="{name}">{opts}</select>"#,
        label = esc(label),
        name = esc(name),
    )
}

/// The acting forms of ticket `t`; `hidden` is the CSRF token and the
/// version inputs every form carries.
pub fn forms(t: &Ticket, choices: &Choices, hidden: &str) -> String {
    let id = t.id;
    let form = |inner: String, button: &str| {
        format!(
            r#"<form class="act-one" method="post" action="/tickets/{id}/act">{hidden}{inner}<button type="submit">{}</button></form>"#,
            esc(button)
        )
    };
    let pairs = |v: &[&str]| -> Vec<(String, String)> {
        v.iter().map(|s| (s.to_string(), s.to_string())).collect()
    };
    // A new ticket shows as new, which is no state an agent sets.
    let mut statuses = pairs(&["open", "pending", "resolved", "closed"]);
    if t.status == Status::New {
        statuses.insert(0, (String::new(), "new".to_string()));
    }
    let status = select("status", "Status", &statuses, t.status.as_str());
    let priority = select(
        "priority",
        "Priority",
        &pairs(&["low", "normal", "high", "urgent"]),
        t.priority.as_str(),
    );
    let agents: Vec<(String, String)> = choices
        .agents
        .iter()
        .map(|(n, d)| {
            let shown = if d.is_empty() || d == n {
                n.clone()
            } else {
                format!("{d} ({n})")
            };
            (n.clone(), shown)
        })
        .collect();
    // Nobody assigned: an empty first choice, so the form does not claim
    // the first agent is.
    let agents: Vec<(String, String)> = if t.assignee.is_none() {
        std::iter::once((String::new(), "— nobody —".to_string()))
            .chain(agents)
            .collect()
    } else {
        agents
    };
    let assignee = select(
        "assignee",
        "Assignee",
        &agents,
        t.assignee.as_deref().unwrap_or(""),
    );
    let queues: Vec<(String, String)> = choices
        .queues
        .iter()
        .map(|q| (q.clone(), q.clone()))
        .collect();
    let queue = select("queue", "Queue", &queues, &t.queue);
    let tag_add = r#"<label for="act-tag-add">Add tag</label><input id="act-tag-add" name="tag_add" type="text" autocomplete="off" spellcheck="false">"#.to_string();
    let remove: Vec<(String, String)> = t.tags.iter().map(|g| (g.clone(), g.clone())).collect();
    let mut out = String::new();
    out.push_str(&form(status, "Set status"));
    out.push_str(&form(priority, "Set priority"));
    if !agents.is_empty() {
        out.push_str(&form(assignee, "Assign"));
    }
    if !queues.is_empty() {
        out.push_str(&form(queue, "Move"));
    }
    out.push_str(&form(tag_add, "Add tag"));
    if !remove.is_empty() {
        out.push_str(&form(
            select("tag_remove", "Remove tag", &remove, ""),
            "Remove tag",
        ));
    }
    if !choices.canned.is_empty() {
        let canned: Vec<(String, String)> = choices
            .canned
            .iter()
            .map(|c| (c.clone(), c.clone()))
            .collect();
        out.push_str(&form(
            select("canned", "Canned response", &canned, ""),
            "Send canned response",
        ));
    }
    if !choices.kb.is_empty() {
        out.push_str(&form(
            select("kb", "Knowledge base article", &choices.kb, ""),
            "Send article",
        ));
    }
    format!(r#"<section class="acting" aria-label="Change the ticket">{out}</section>"#)
}

/// The acting form's fields: one of them is set per submission.
#[derive(Deserialize)]
pub struct ActForm {
    csrf: Option<String>,
    version: Option<u64>,
    status: Option<String>,
    priority: Option<String>,
    assignee: Option<String>,
    queue: Option<String>,
    tag_add: Option<String>,
    tag_remove: Option<String>,
    canned: Option<String>,
    /// A knowledge-base article's slug (`#kb SLUG`).
    kb: Option<String>,
}

fn status_of(s: &str) -> Option<Status> {
    [
        Status::Open,
        Status::Pending,
        Status::Resolved,
        Status::Closed,
    ]
    .into_iter()
    .find(|x| x.as_str() == s)
}

/// The actions a submitted acting form asks for, or why it asks for none.
fn actions(f: &ActForm) -> Result<Vec<Action>, String> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut out = Vec::new();
    if let Some(s) = given(&f.status) {
        out.push(Action::Status(
            status_of(&s).ok_or_else(|| format!("unknown status {s:?}"))?,
        ));
    }
    if let Some(p) = given(&f.priority) {
        out.push(Action::Priority(
            Priority::parse(&p).ok_or_else(|| format!("unknown priority {p:?}"))?,
        ));
    }
    if let Some(a) = given(&f.assignee) {
        out.push(Action::Assign(a));
    }
    if let Some(q) = given(&f.queue) {
        out.push(Action::Queue(q));
    }
    let words = |v: &Option<String>| -> Vec<String> {
        given(v)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (add, remove) = (words(&f.tag_add), words(&f.tag_remove));
    if !add.is_empty() || !remove.is_empty() {
        out.push(Action::Tags { add, remove });
    }
    if let Some(c) = given(&f.canned) {
        out.push(Action::Canned(c));
    }
    if let Some(slug) = given(&f.kb) {
        out.push(Action::Kb(slug));
    }
    if out.is_empty() {
        return Err("The form asked for no change.".into());
    }
    Ok(out)
}

/// A refusal in words, as a page with the way back (400).
pub fn refused(cur: &Current, id: TicketId, title: &str, why: &str) -> Response {
    super::html::page(
        StatusCode::BAD_REQUEST,
        title,
        Some(&Viewer {
            agent: &cur.session.agent,
            csrf: &cur.session.csrf,
        }),
        &format!(
            r#"<h1>{}</h1><p class="refusal" role="alert">{}</p><p><a href="/tickets/{id}">Back to ticket #{id}</a></p>"#,
            esc(title),
            esc(why)
        ),
    )
}

/// Applies `actions` to ticket `id` as the logged-in agent through
/// `Processor::act`, in one store transaction; wakes the sender when mail
/// was queued. `Err(words)` is a refusal (nothing changed).
pub async fn run(
    state: &Shared,
    cur: &Current,
    id: TicketId,
    seen_version: Option<u64>,
    actions: Vec<Action>,
) -> Result<Result<Outcome, String>, WebError> {
    let request = Request {
        ticket: id,
        actor: cur.session.agent.clone(),
        seen_version,
        actions,
        via: Via::Web,
    };
    let Some(p) = state.processor.clone() else {
        return Ok(Err(
            "This daemon does not act on tickets from the web.".into()
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
    Ok(match acted {
        Ok(outcome) => {
            wake.notify_one();
            tracing::info!(ticket = id, agent = %cur.session.agent, results = ?outcome.results, "web request applied");
            Ok(outcome)
        }
        Err(e) => {
            tracing::info!(ticket = id, agent = %cur.session.agent, refusal = %e, "web request refused");
            Err(e.to_string())
        }
    })
}

/// Where the browser goes after a request was applied: the ticket, or its
/// held-reply panel when the public text was held (`seen` is the version
/// the agent wrote against, to show which replies came in meanwhile).
pub fn after(id: TicketId, outcome: &Outcome, seen: Option<u64>) -> Response {
    match (outcome.sent, seen) {
        (Sent::Held(_), Some(v)) => Redirect::to(&format!("/tickets/{id}?seen={v}#held")),
        (Sent::Held(_), None) => Redirect::to(&format!("/tickets/{id}#held")),
        _ => Redirect::to(&format!("/tickets/{id}")),
    }
    .into_response()
}

/// Session, then CSRF; `None` when nobody is logged in (the caller sends
/// the browser to the login page).
pub async fn gate(
    state: &Shared,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<Option<Current>, WebError> {
    let Some(cur) = session::current(state, headers).await? else {
        csrf::same_origin(headers, state.https)?;
        return Ok(None);
    };
    csrf::check(headers, state.https, &cur.session.csrf, token)?;
    Ok(Some(cur))
}

pub fn parse_id(s: &str) -> Result<u64, WebError> {
    s.trim_start_matches('#')
        .parse()
        .map_err(|_| WebError::NotFound)
}

/// `POST /tickets/{id}/act`: one acting form.
pub async fn act(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ActForm>,
) -> Result<Response, WebError> {
    let Some(cur) = gate(&state, &headers, f.csrf.as_deref()).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let id = parse_id(&id)?;
    let actions = match actions(&f) {
        Ok(a) => a,
        Err(why) => return Ok(refused(&cur, id, "Not changed", &why)),
    };
    match run(&state, &cur, id, f.version, actions).await? {
        Ok(outcome) => Ok(after(id, &outcome, f.version)),
        Err(why) => Ok(refused(&cur, id, "Not changed", &why)),
    }
}

#[derive(Deserialize)]
pub struct HeldForm {
    csrf: Option<String>,
}

/// `POST /tickets/{id}/send-held`: send my held reply anyway.
pub async fn send_held(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<HeldForm>,
) -> Result<Response, WebError> {
    let Some(cur) = gate(&state, &headers, f.csrf.as_deref()).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let id = parse_id(&id)?;
    match run(&state, &cur, id, None, vec![Action::SendHeld]).await? {
        Ok(o) => Ok(after(id, &o, None)),
        Err(why) => Ok(refused(&cur, id, "Not sent", &why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> ActForm {
        ActForm {
            csrf: None,
            version: None,
            status: None,
            priority: None,
            assignee: None,
            queue: None,
            tag_add: None,
            tag_remove: None,
            canned: None,
            kb: None,
        }
    }

    #[test]
    fn each_form_field_is_one_action() {
        assert!(actions(&empty()).is_err());
        let f = ActForm {
            status: Some("pending".into()),
            ..empty()
        };
        assert_eq!(actions(&f).unwrap(), vec![Action::Status(Status::Pending)]);
        let f = ActForm {
            status: Some("new".into()),
            ..empty()
        };
        assert!(actions(&f).is_err(), "new is not something an agent sets");
        let f = ActForm {
            tag_add: Some(" vip  billing ".into()),
            ..empty()
        };
        assert_eq!(
            actions(&f).unwrap(),
            vec![Action::Tags {
                add: vec!["vip".into(), "billing".into()],
                remove: vec![]
            }]
        );
    }
}
