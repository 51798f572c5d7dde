//! The queue page `/`: folders with counts and the tickets of one folder,
//! nearest SLA deadline first, 50 a page, with filters (status, priority,
//! assignee, tag), the bulk-action form and the live list.
//!
//! Everything comes from the store's queue index (`Store::queue_page`,
//! `Store::queue_counts`): a page view reads its 50 tickets and the folder
//! counts, never the whole store. Paging is by keyset cursor (`after=` /
//! `before=`), so a deep page costs what the first does.
//!
//! `/queue/live` answers the changing parts of the same page (counts, rows,
//! pager) for `queue.js`, which polls it; without script the page is whole.

use super::html::{self, Viewer, csrf_input, esc};
use super::{Shared, WebError, blocking, session};
use crate::model::Ticket;
use crate::store::{QueueCursor, QueuePage, QueueQuery};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeSet;

pub const PAGE_SIZE: usize = 50;

/// The query of `/` and `/queue/live`: folder, filters, cursor.
#[derive(Deserialize, Default, Clone)]
pub struct QueueParams {
    folder: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    assignee: Option<String>,
    tag: Option<String>,
    after: Option<String>,
    before: Option<String>,
    /// `/queue/live` only: the stamp of what the page shows now.
    since: Option<String>,
}

impl QueueParams {
    fn filter(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// The filters as `(name, value)` pairs, in a fixed order.
    fn filters(&self) -> Vec<(&'static str, &str)> {
        [
            ("status", &self.status),
            ("priority", &self.priority),
            ("assignee", &self.assignee),
            ("tag", &self.tag),
        ]
        .into_iter()
        .filter_map(|(n, v)| Self::filter(v).map(|v| (n, v)))
        .collect()
    }

    /// The page's address with folder and filters, plus `extra`.
    fn href(&self, folder: &Folder, extra: &str) -> String {
        let mut q = format!("folder={}", url_encode(&folder.key()));
        for (n, v) in self.filters() {
            q.push_str(&format!("&{n}={}", url_encode(v)));
        }
        if !extra.is_empty() {
            q.push('&');
            q.push_str(extra);
        }
        q
    }
}

pub const STATUSES: [&str; 5] = ["new", "open", "pending", "resolved", "closed"];
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

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

    /// Its key in the store's queue index.
    fn index_key(&self, me: &str) -> String {
        match self {
            Folder::Unassigned => "f:unassigned".into(),
            Folder::Mine => format!("f:mine:{}", me.to_ascii_lowercase()),
            Folder::Queue(q) => format!("f:queue:{q}"),
            Folder::AllOpen => "f:open".into(),
            Folder::Pending => "f:pending".into(),
            Folder::Resolved => "f:resolved".into(),
        }
    }
}

/// The deadline the ticket's SLA clock runs towards, if it runs.
pub fn next_deadline(t: &Ticket) -> Option<i64> {
    crate::store::sla_deadline(t.status, t.sla.as_ref())
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

/// The parts of the page that change as tickets change: what `/queue/live`
/// sends and the page embeds, each under a stable id.
struct LiveParts {
    folders: String,
    count: u64,
    rows: String,
    pager: String,
}

impl LiveParts {
    fn html(&self) -> String {
        format!(
            r#"{}<span id="folder-count" class="count">{}</span><div id="queue-rows">{}</div><nav id="pager" class="pager" aria-label="Pages">{}</nav>"#,
            self.folders, self.count, self.rows, self.pager
        )
    }

    /// Changes whenever what the parts show changes.
    fn stamp(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.html().hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

/// Reads and renders the changing parts for `me` and `q`.
async fn live_parts(
    state: &Shared,
    me: &str,
    q: &QueueParams,
    folder: &Folder,
) -> Result<LiveParts, WebError> {
    let mut keys = vec![folder.index_key(me)];
    for (n, v) in q.filters() {
        let v = if n == "assignee" {
            v.to_ascii_lowercase()
        } else {
            v.to_string()
        };
        keys.push(format!("{n}:{v}"));
    }
    let query = QueueQuery {
        keys,
        limit: PAGE_SIZE,
        after: q.after.as_deref().and_then(QueueCursor::parse),
        before: q.before.as_deref().and_then(QueueCursor::parse),
    };
    let store = state.store.clone();
    let (counts, page) =
        blocking(move || Ok((store.queue_counts("f:")?, store.queue_page(&query)?))).await?;
    let counts: std::collections::BTreeMap<String, u64> = counts.into_iter().collect();
    let now = state.clock.now();

    let mut queues: BTreeSet<String> = counts
        .keys()
        .filter_map(|k| k.strip_prefix("f:queue:"))
        .map(str::to_string)
        .collect();
    if let Some(agent) = state.rules.current().agents.by_name(me) {
        queues.extend(agent.queues.iter().cloned());
    }
    let mut all = vec![Folder::Unassigned, Folder::Mine];
    all.extend(queues.into_iter().map(Folder::Queue));
    all.extend([Folder::AllOpen, Folder::Pending, Folder::Resolved]);
    let mut folders =
        String::from(r#"<nav id="folders" class="folders" aria-label="Folders"><ul>"#);
    for f in &all {
        let n = counts.get(&f.index_key(me)).copied().unwrap_or(0);
        let current = if f == folder {
            r#" aria-current="page""#
        } else {
            ""
        };
        folders.push_str(&format!(
            r#"<li><a href="/?folder={}"{current}>{} <span class="count">{n}</span></a></li>"#,
            esc(&url_encode(&f.key())),
            esc(&f.label())
        ));
    }
    folders.push_str("</ul></nav>");
    Ok(LiveParts {
        folders,
        count: page.total,
        rows: rows(&page, now),
        pager: pager(&page, q, folder),
    })
}

fn rows(page: &QueuePage, now: i64) -> String {
    if page.tickets.is_empty() {
        return r#"<p class="empty">No tickets here.</p>"#.to_string();
    }
    let rows: String = page.tickets.iter().map(|t| row(t, now)).collect();
    format!(
        r#"<div class="scroll"><table class="tickets"><thead><tr><th scope="col"><span class="visually-hidden">Select</span></th><th scope="col">#</th><th scope="col">Subject</th><th scope="col">Requester</th><th scope="col">Status</th><th scope="col">Priority</th><th scope="col">Assignee</th><th scope="col">Updated</th><th scope="col">SLA</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}

fn pager(page: &QueuePage, q: &QueueParams, folder: &Folder) -> String {
    let mut out = String::new();
    let paged = q.after.is_some() || q.before.is_some();
    if paged {
        out.push_str(&format!(
            r#"<a href="/?{}">First</a>"#,
            esc(&q.href(folder, ""))
        ));
    }
    if let Some(c) = page.prev {
        out.push_str(&format!(
            r#"<a rel="prev" href="/?{}">Previous</a>"#,
            esc(&q.href(folder, &format!("before={}", c.to_param())))
        ));
    }
    if let Some(c) = page.next {
        out.push_str(&format!(
            r#"<a rel="next" href="/?{}">Next</a>"#,
            esc(&q.href(folder, &format!("after={}", c.to_param())))
        ));
    }
    out
}

/// The filter form (GET, so a filtered view is a link).
fn filter_form(q: &QueueParams, folder: &Folder) -> String {
    let select = |name: &str, label: &str, options: &[&str], current: Option<&str>| {
        let mut s =
            format!(r#"<label>{label} <select name="{name}"><option value="">any</option>"#);
        for o in options {
            let sel = if current == Some(*o) { " selected" } else { "" };
            s.push_str(&format!(r#"<option{sel}>{}</option>"#, esc(o)));
        }
        s.push_str("</select></label>");
        s
    };
    format!(
        r#"<form class="filters" method="get" action="/"><input type="hidden" name="folder" value="{folder}">{status}{priority}<label>Assignee <input name="assignee" value="{assignee}" size="10"></label><label>Tag <input name="tag" value="{tag}" size="10"></label><button type="submit">Filter</button></form>"#,
        folder = esc(&folder.key()),
        status = select(
            "status",
            "Status",
            &STATUSES,
            QueueParams::filter(&q.status)
        ),
        priority = select(
            "priority",
            "Priority",
            &PRIORITIES,
            QueueParams::filter(&q.priority)
        ),
        assignee = esc(QueueParams::filter(&q.assignee).unwrap_or("")),
        tag = esc(QueueParams::filter(&q.tag).unwrap_or("")),
    )
}

/// The bulk-action controls; the row checkboxes belong to the same form.
fn bulk_controls(csrf: &str, back: &str) -> String {
    format!(
        r#"<fieldset class="bulk"><legend>Selected tickets</legend>{token}<input type="hidden" name="back" value="{back}"><label>Action <select name="action"><option value="assign">Assign to</option><option value="status">Set status</option><option value="priority">Set priority</option><option value="tag">Add tag</option><option value="merge">Merge into ticket</option></select></label><label>Value <input name="value" size="12" required></label><button type="submit">Apply</button></fieldset>"#,
        token = csrf_input(csrf),
        back = esc(back),
    )
}

pub async fn page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<QueueParams>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let me = cur.session.agent.clone();
    let folder = Folder::parse(q.folder.as_deref().unwrap_or("open"));
    let parts = live_parts(&state, &me, &q, &folder).await?;
    let mut here = q.href(&folder, "");
    if let Some(a) = q.after.as_deref() {
        here.push_str(&format!("&after={}", url_encode(a)));
    }
    if let Some(b) = q.before.as_deref() {
        here.push_str(&format!("&before={}", url_encode(b)));
    }
    let body = format!(
        r#"<div class="queue" id="queue" data-live="/queue/live?{here_attr}" data-stamp="{stamp}">{folders}<section class="list"><h1>{label} <span id="folder-count" class="count">{count}</span></h1><p class="new-ticket"><a href="/tickets/new">New ticket (phone)</a></p>{filters}<form method="post" action="/tickets/bulk">{bulk}<div id="queue-rows">{rows}</div></form><nav id="pager" class="pager" aria-label="Pages">{pager}</nav></section></div><script src="/static/queue.js" defer></script>"#,
        here_attr = esc(&here),
        stamp = esc(&parts.stamp()),
        folders = parts.folders,
        label = esc(&folder.label()),
        count = parts.count,
        filters = filter_form(&q, &folder),
        bulk = bulk_controls(&cur.session.csrf, &format!("/?{here}")),
        rows = parts.rows,
        pager = parts.pager,
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

/// `/queue/live`: the changing parts of the page `q` shows, for `queue.js`;
/// 204 when they still match the stamp the page has (`since=`).
pub async fn live(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<QueueParams>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    };
    let folder = Folder::parse(q.folder.as_deref().unwrap_or("open"));
    let parts = live_parts(&state, &cur.session.agent, &q, &folder).await?;
    let stamp = parts.stamp();
    let stamp_header = HeaderValue::from_str(&stamp)
        .map_err(|e| WebError::Internal(format!("stamp header: {e}")))?;
    if q.since.as_deref() == Some(stamp.as_str()) {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        resp.headers_mut().insert("x-queue-stamp", stamp_header);
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(resp);
    }
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        parts.html(),
    )
        .into_response();
    resp.headers_mut().insert("x-queue-stamp", stamp_header);
    Ok(resp)
}

/// The live-refresh script (an external file: the CSP allows no inline script).
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("queue.js"),
    )
        .into_response()
}

fn row(t: &Ticket, now: i64) -> String {
    let state = crate::sla::state_name(t, now);
    let clock = match next_deadline(t) {
        Some(d) => format!(
            r#"{} <span class="left">{}</span> <span class="due">due {}</span>"#,
            esc(state),
            esc(&time_left(d - now)),
            html::time(d)
        ),
        None => esc(state),
    };
    let requester = if t.requester_name.is_empty() {
        t.requester.clone()
    } else {
        format!("{} <{}>", t.requester_name, t.requester)
    };
    let subject = if t.subject.is_empty() {
        "(no subject)"
    } else {
        &t.subject
    };
    format!(
        r#"<tr><td data-label="Select"><input type="checkbox" name="ticket" value="{id}" aria-label="Select ticket {id}"></td><td data-label="Ticket">{id}</td><td data-label="Subject"><a href="/tickets/{id}">{subject}</a></td><td data-label="Requester">{requester}</td><td data-label="Status"><span class="status status-{status}">{status}</span></td><td data-label="Priority">{priority}</td><td data-label="Assignee">{assignee}</td><td data-label="Updated">{updated}</td><td data-label="SLA"><span class="sla sla-{state}">{clock}</span></td></tr>"#,
        id = t.id,
        subject = esc(subject),
        requester = esc(&requester),
        status = esc(t.status.as_str()),
        priority = esc(t.priority.as_str()),
        assignee = esc(t.assignee.as_deref().unwrap_or("—")),
        updated = html::time(t.updated_at),
        state = esc(state),
    )
}

/// Percent-encodes a query value (folder keys carry queue names; their
/// `:` stays readable).
fn url_encode(s: &str) -> String {
    crate::percent::encode(s, b"-._~:")
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
