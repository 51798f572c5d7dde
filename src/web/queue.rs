//! The queue page `/`: folders with counts and the tickets of one folder,
//! nearest SLA deadline first, 50 a page.
//!
//! For now it reads every ticket through `Store::list_tickets` and counts
//! and filters in memory (a scan: fine for thousands of tickets, not for a
//! million; index-backed lists come later).

use super::html::{self, Viewer, esc};
use super::{Shared, WebError, blocking, session};
use crate::model::{Status, Ticket};
use crate::store::TicketFilter;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeSet;

pub const PAGE_SIZE: usize = 50;

#[derive(Deserialize)]
pub struct QueueQuery {
    folder: Option<String>,
    page: Option<usize>,
}

/// A folder of the queue page: which tickets it holds.
#[derive(Clone, PartialEq, Eq)]
enum Folder {
    Unassigned,
    Mine,
    Queue(String),
    AllOpen,
    Pending,
    Resolved,
}

impl Folder {
    fn parse(s: &str) -> Folder {
        match s {
            "unassigned" => Folder::Unassigned,
            "mine" => Folder::Mine,
            "pending" => Folder::Pending,
            "resolved" => Folder::Resolved,
            _ => match s.strip_prefix("queue:") {
                Some(q) => Folder::Queue(q.to_string()),
                None => Folder::AllOpen,
            },
        }
    }

    fn key(&self) -> String {
        match self {
            Folder::Unassigned => "unassigned".into(),
            Folder::Mine => "mine".into(),
            Folder::Queue(q) => format!("queue:{q}"),
            Folder::AllOpen => "open".into(),
            Folder::Pending => "pending".into(),
            Folder::Resolved => "resolved".into(),
        }
    }

    fn label(&self) -> String {
        match self {
            Folder::Unassigned => "Unassigned".into(),
            Folder::Mine => "Mine".into(),
            Folder::Queue(q) => format!("Queue {q}"),
            Folder::AllOpen => "All open".into(),
            Folder::Pending => "Pending".into(),
            Folder::Resolved => "Resolved".into(),
        }
    }

    fn holds(&self, t: &Ticket, me: &str) -> bool {
        let open = !t.status.is_finished();
        match self {
            Folder::Unassigned => open && t.assignee.is_none(),
            Folder::Mine => {
                open && t
                    .assignee
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(me))
            }
            Folder::Queue(q) => open && t.queue == *q,
            Folder::AllOpen => open,
            Folder::Pending => t.status == Status::Pending,
            Folder::Resolved => t.status.is_finished(),
        }
    }
}

/// The deadline the ticket's SLA clock runs towards, if it runs.
pub fn next_deadline(t: &Ticket) -> Option<i64> {
    let s = t.sla.as_ref()?;
    if t.status.is_finished() || s.paused_since.is_some() {
        return None;
    }
    let first = s
        .first_response_due
        .filter(|_| s.first_response_at.is_none());
    match (first, s.resolution_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// "3h 20m", "2d 4h", "-45m" (overdue).
pub fn time_left(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{sign}{d}d {h}h")
    } else if h > 0 {
        format!("{sign}{h}h {m}m")
    } else {
        format!("{sign}{m}m")
    }
}

pub async fn page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let me = cur.session.agent.clone();
    let store = state.store.clone();
    let (_, tickets) = blocking(move || {
        store.list_tickets(&TicketFilter {
            status: None,
            queue: None,
            limit: usize::MAX,
            offset: 0,
            ..Default::default()
        })
    })
    .await?;
    let now = state.clock.now();
    let folder = Folder::parse(q.folder.as_deref().unwrap_or("open"));

    let mut queues: BTreeSet<String> = tickets
        .iter()
        .filter(|t| !t.status.is_finished())
        .map(|t| t.queue.clone())
        .collect();
    if let Some(agent) = state.rules.current().agents.by_name(&me) {
        queues.extend(agent.queues.iter().cloned());
    }
    let mut folders = vec![Folder::Unassigned, Folder::Mine];
    folders.extend(queues.into_iter().map(Folder::Queue));
    folders.extend([Folder::AllOpen, Folder::Pending, Folder::Resolved]);

    let mut nav = String::from(r#"<nav class="folders" aria-label="Folders"><ul>"#);
    for f in &folders {
        let n = tickets.iter().filter(|t| f.holds(t, &me)).count();
        let current = if *f == folder {
            r#" aria-current="page""#
        } else {
            ""
        };
        nav.push_str(&format!(
            r#"<li><a href="/?folder={}"{current}>{} <span class="count">{n}</span></a></li>"#,
            esc(&url_encode(&f.key())),
            esc(&f.label())
        ));
    }
    nav.push_str("</ul></nav>");

    let mut shown: Vec<&Ticket> = tickets.iter().filter(|t| folder.holds(t, &me)).collect();
    shown.sort_by_key(|t| (next_deadline(t).unwrap_or(i64::MAX), -t.updated_at));
    let total = shown.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let rows: String = shown
        .iter()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|t| row(t, now))
        .collect();
    let table = if total == 0 {
        r#"<p class="empty">No tickets here.</p>"#.to_string()
    } else {
        format!(
            r#"<div class="scroll"><table class="tickets"><thead><tr><th scope="col">#</th><th scope="col">Subject</th><th scope="col">Requester</th><th scope="col">Status</th><th scope="col">Priority</th><th scope="col">Assignee</th><th scope="col">Updated</th><th scope="col">SLA</th></tr></thead><tbody>{rows}</tbody></table></div>"#
        )
    };
    let mut pager = String::new();
    if pages > 1 {
        pager.push_str(r#"<nav class="pager" aria-label="Pages">"#);
        let key = esc(&url_encode(&folder.key()));
        if page_no > 1 {
            pager.push_str(&format!(
                r#"<a rel="prev" href="/?folder={key}&amp;page={}">Previous</a>"#,
                page_no - 1
            ));
        }
        pager.push_str(&format!(" <span>Page {page_no} of {pages}</span> "));
        if page_no < pages {
            pager.push_str(&format!(
                r#"<a rel="next" href="/?folder={key}&amp;page={}">Next</a>"#,
                page_no + 1
            ));
        }
        pager.push_str("</nav>");
    }
    let body = format!(
        r#"<div class="queue">{nav}<section class="list"><h1>{} <span class="count">{total}</span></h1>{table}{pager}</section></div>"#,
        esc(&folder.label())
    );
    Ok(html::page(
        StatusCode::OK,
        &folder.label(),
        Some(&Viewer {
            agent: &me,
            csrf: &cur.session.csrf,
        }),
        &body,
    ))
}

fn row(t: &Ticket, now: i64) -> String {
    let state = crate::sla::state_name(t, now);
    let left = next_deadline(t)
        .map(|d| format!(" {}", time_left(d - now)))
        .unwrap_or_default();
    let requester = if t.requester_name.is_empty() {
        t.requester.clone()
    } else {
        format!("{} <{}>", t.requester_name, t.requester)
    };
    format!(
        r#"<tr><td data-label="Ticket">{id}</td><td data-label="Subject"><a href="/tickets/{id}">{subject}</a></td><td data-label="Requester">{requester}</td><td data-label="Status"><span class="status status-{status}">{status}</span></td><td data-label="Priority">{priority}</td><td data-label="Assignee">{assignee}</td><td data-label="Updated">{updated}</td><td data-label="SLA"><span class="sla sla-{state}">{state}{left}</span></td></tr>"#,
        id = t.id,
        subject = esc(if t.subject.is_empty() {
            "(no subject)"
        } else {
            &t.subject
        }),
        requester = esc(&requester),
        status = esc(t.status.as_str()),
        priority = esc(t.priority.as_str()),
        assignee = esc(t.assignee.as_deref().unwrap_or("—")),
        updated = html::time(t.updated_at),
        state = esc(state),
        left = esc(&left),
    )
}

/// Percent-encodes a query value (folder keys carry queue names).
fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_well() {
        assert_eq!(time_left(3 * 3600 + 20 * 60), "3h 20m");
        assert_eq!(time_left(2 * 86400 + 4 * 3600), "2d 4h");
        assert_eq!(time_left(-45 * 60), "-45m");
    }
}
