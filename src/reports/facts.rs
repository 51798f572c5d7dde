//! What one ticket's event log says, read once: when the customer wrote,
//! when agents answered, when it was resolved and reopened, which SLA
//! targets it had and which were breached. Every report works on these.

use super::Query;
use crate::model::{Event, EventKind, Priority, Status, Ticket, TicketId};
use crate::rules::calendar::Calendar;
use crate::rules::sla::calendar_of;
use serde::{Deserialize, Serialize};

/// What the reports need of one ticket, read once from its record and
/// event log. Stored per ticket as the rollup (see `store::rollups`), so a
/// field added here needs `#[serde(default)]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub id: TicketId,
    /// When the first inbound customer message opened it.
    pub created_at: i64,
    pub queue: String,
    pub priority: Priority,
    pub channel: String,
    pub status: Status,
    /// Public agent replies (time, agent), oldest first. Notes, automatic
    /// mail and held replies are not replies.
    pub replies: Vec<(i64, String)>,
    /// Each time it became resolved or closed (time, who), oldest first.
    pub resolutions: Vec<(i64, String)>,
    /// How often a resolved or closed ticket was opened again.
    pub reopens: usize,
    /// The customer's latest message (the opening one if none followed).
    pub last_customer_at: i64,
    /// The SLA breaches recorded (time, goal: `first_response` or `resolution`).
    pub breaches: Vec<(i64, String)>,
    /// The SLA policy and deadlines recorded on the ticket.
    pub sla_policy: Option<String>,
    pub first_response_due: Option<i64>,
    pub resolution_due: Option<i64>,
    /// When the customer marked it solved on their status page
    /// (`deflected` events), oldest first.
    #[serde(default)]
    pub deflections: Vec<i64>,
}

const GOALS: [&str; 2] = ["first_response", "resolution"];

impl Summary {
    pub fn of(t: &Ticket, events: &[Event], channel: &str) -> Summary {
        let mut f = Summary {
            id: t.id,
            created_at: t.created_at,
            queue: t.queue.clone(),
            priority: t.priority,
            channel: channel.to_string(),
            status: t.status,
            replies: Vec::new(),
            resolutions: Vec::new(),
            reopens: 0,
            last_customer_at: t.created_at,
            breaches: Vec::new(),
            sla_policy: t.sla.as_ref().map(|s| s.policy.clone()),
            first_response_due: t.sla.as_ref().and_then(|s| s.first_response_due),
            resolution_due: t.sla.as_ref().and_then(|s| s.resolution_due),
            deflections: Vec::new(),
        };
        for e in events {
            match e.kind.as_str() {
                k if k == EventKind::Created.as_str() => f.created_at = e.at,
                k if k == EventKind::Replied.as_str() => f.replies.push((e.at, e.actor.clone())),
                k if k == EventKind::MessageAdded.as_str() && e.detail.starts_with("customer ") => {
                    f.last_customer_at = f.last_customer_at.max(e.at);
                }
                k if k == EventKind::Reopened.as_str() => f.reopens += 1,
                k if k == EventKind::Deflected.as_str() => f.deflections.push(e.at),
                k if k == EventKind::Status.as_str() => {
                    let Some((old, new)) = status_change(&e.detail) else {
                        continue;
                    };
                    if new.is_finished() && !old.is_finished() {
                        f.resolutions.push((e.at, e.actor.clone()));
                    } else if old.is_finished() && !new.is_finished() {
                        f.reopens += 1;
                    }
                }
                k if k == EventKind::SlaBreach.as_str() => {
                    let label = |g: &str| g.replace('_', " ");
                    if let Some(g) = GOALS.iter().find(|g| e.detail.starts_with(&label(g))) {
                        f.breaches.push((e.at, g.to_string()));
                    }
                }
                _ => {}
            }
        }
        f
    }

    /// The UTC days (unix seconds / 86400) on which something a period
    /// report counts happened: opened, answered, resolved, breached.
    pub fn active_days(&self) -> std::collections::BTreeSet<i64> {
        std::iter::once(self.created_at)
            .chain(self.replies.iter().map(|r| r.0))
            .chain(self.resolutions.iter().map(|r| r.0))
            .chain(self.breaches.iter().map(|r| r.0))
            .map(|t| t.div_euclid(86_400))
            .collect()
    }
}

/// A [`Summary`] with the calendar its business hours count in and, with
/// `recompute`, today's deadlines and the breaches they imply.
#[derive(Debug, Clone)]
pub struct Facts {
    pub id: TicketId,
    pub created_at: i64,
    pub queue: String,
    pub priority: Priority,
    pub channel: String,
    pub status: Status,
    pub replies: Vec<(i64, String)>,
    pub resolutions: Vec<(i64, String)>,
    pub reopens: usize,
    pub last_customer_at: i64,
    pub breaches: Vec<(i64, &'static str)>,
    pub first_response_due: Option<i64>,
    pub resolution_due: Option<i64>,
    pub calendar: Calendar,
    /// See [`Summary::deflections`].
    pub deflections: Vec<i64>,
}

impl Facts {
    pub fn of(s: &Summary, q: &Query<'_>) -> Facts {
        let mut f = Facts {
            id: s.id,
            created_at: s.created_at,
            queue: s.queue.clone(),
            priority: s.priority,
            channel: s.channel.clone(),
            status: s.status,
            replies: s.replies.clone(),
            resolutions: s.resolutions.clone(),
            reopens: s.reopens,
            last_customer_at: s.last_customer_at,
            breaches: s
                .breaches
                .iter()
                .filter_map(|(at, g)| Some((*at, *GOALS.iter().find(|x| *x == g)?)))
                .collect(),
            first_response_due: s.first_response_due,
            resolution_due: s.resolution_due,
            calendar: calendar_for(s, q),
            deflections: s.deflections.clone(),
        };
        if q.recompute {
            f.recompute(s, q);
        }
        f
    }

    /// The deadlines today's policy for this ticket would have set when it
    /// opened, and the breaches they imply (replacing the recorded ones):
    /// the first reply or the first resolution after its deadline, or none
    /// yet by now. Time the ticket waited on the customer is not taken off.
    fn recompute(&mut self, s: &Summary, q: &Query<'_>) {
        self.breaches.clear();
        let Some(policy) = policy_today(s, q) else {
            self.first_response_due = None;
            self.resolution_due = None;
            return;
        };
        let cal = calendar_of(policy, q.calendars).into_owned();
        let start = self.created_at;
        self.first_response_due = policy
            .first_response
            .map(|s| cal.add_business_seconds(start, s));
        self.resolution_due = policy
            .resolution
            .map(|s| cal.add_business_seconds(start, s));
        let firsts = [
            (self.first_response_due, self.first_reply().map(|r| r.0)),
            (self.resolution_due, self.resolutions.first().map(|r| r.0)),
        ];
        for ((due, done), goal) in firsts.into_iter().zip(GOALS) {
            if let Some(due) = due
                && done.unwrap_or(q.now) > due
            {
                self.breaches.push((due, goal));
            }
        }
        self.calendar = cal;
    }

    pub fn first_reply(&self) -> Option<&(i64, String)> {
        self.replies.first()
    }

    /// The last resolution, if the ticket is resolved or closed now.
    pub fn final_resolution(&self) -> Option<&(i64, String)> {
        if self.status.is_finished() {
            self.resolutions.last()
        } else {
            None
        }
    }

    pub fn breached(&self, goal: &str) -> bool {
        self.breaches.iter().any(|(_, g)| *g == goal)
    }

    /// Business seconds from the customer's first message to `to`.
    pub fn business_since_open(&self, to: i64) -> i64 {
        self.calendar.business_seconds_between(self.created_at, to)
    }
}

/// The policy that applies to the ticket under today's rules (by its
/// priority and queue).
fn policy_today<'a>(s: &Summary, q: &Query<'a>) -> Option<&'a crate::rules::sla::Policy> {
    let mut t = Ticket::new(s.id, "", s.created_at);
    t.priority = s.priority;
    t.queue = s.queue.clone();
    q.policies.for_ticket(&t)
}

/// The calendar of the ticket's SLA policy, else the `default` one, else
/// always open.
fn calendar_for(s: &Summary, q: &Query<'_>) -> Calendar {
    let by_policy = s
        .sla_policy
        .as_deref()
        .and_then(|p| q.policies.by_name(p))
        .or_else(|| policy_today(s, q));
    match by_policy {
        Some(p) => calendar_of(p, q.calendars).into_owned(),
        None => q
            .calendars
            .iter()
            .find(|c| c.name == "default")
            .cloned()
            .unwrap_or_else(Calendar::always_open),
    }
}

/// Reads "open → resolved by alice" / "pending → open: customer replied".
fn status_change(detail: &str) -> Option<(Status, Status)> {
    let (old, rest) = detail.split_once(" → ")?;
    let new = rest.split([' ', ':']).next()?;
    Some((parse_status(old.trim())?, parse_status(new)?))
}

fn parse_status(s: &str) -> Option<Status> {
    [
        Status::New,
        Status::Open,
        Status::Pending,
        Status::Resolved,
        Status::Closed,
    ]
    .into_iter()
    .find(|x| x.as_str() == s)
}

/// The channel a ticket's first message came by, from its envelope's
/// source and, for tickets the API opened, the `X-Postdesk-Channel` header
/// of the raw message (`phone`, `walk-in`, …).
pub fn channel_of_raw(source: &crate::model::Source, raw: &[u8]) -> String {
    use crate::model::Source;
    match source {
        Source::Smtp => "smtp".into(),
        Source::Imap => "imap".into(),
        // A status-page message never opens a ticket; counted as web alike.
        Source::WebForm | Source::StatusLink { .. } => "web".into(),
        Source::Import => "import".into(),
        Source::Chat { .. } => "chat".into(),
        Source::Api => {
            let head_end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(raw.len());
            let head = String::from_utf8_lossy(&raw[..head_end]);
            head.lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("x-postdesk-channel")
                        .then(|| value.trim().to_ascii_lowercase())
                })
                .filter(|v| !v.is_empty() && v.len() <= 32)
                .unwrap_or_else(|| "phone".into())
        }
    }
}
