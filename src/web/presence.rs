//! Presence on the ticket page: "Alice is viewing", "Alice is replying".
//!
//! Each open ticket page tells the server every `web.presence_interval`
//! (`app.js`: `POST /tickets/{id}/presence` with the form token) whether its
//! agent is reading or typing a reply; opening the page counts as one beat,
//! so a browser without JavaScript shows up too, for one expiry. An entry
//! lives for three intervals (at least twice the heartbeat, as collision
//! detection needs: one late beat must not make an agent vanish), then it
//! is gone without anyone having to say goodbye — a closed laptop never
//! leaves a ghost. Presence is advice between agents, not a lock: it is
//! kept in memory only, and a restart forgets it within one interval.

use super::{Shared, WebError, blocking, csrf, session};
use crate::model::TicketId;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// What an agent is doing on a ticket page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Viewing,
    Replying,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Viewing => "viewing",
            Activity::Replying => "replying",
        }
    }

    fn parse(s: &str) -> Option<Activity> {
        match s {
            "viewing" => Some(Activity::Viewing),
            "replying" => Some(Activity::Replying),
            _ => None,
        }
    }
}

/// Agent name → (activity, expires at, Unix seconds), for one ticket.
type OnTicket = HashMap<String, (Activity, i64)>;

/// Who is on which ticket page, until when.
#[derive(Debug)]
pub struct Board {
    /// Seconds between two beats of a page (`web.presence_interval`).
    interval: i64,
    entries: Mutex<HashMap<TicketId, OnTicket>>,
}

impl Default for Board {
    fn default() -> Self {
        Board::new(10)
    }
}

impl Board {
    pub fn new(interval_secs: i64) -> Board {
        Board {
            interval: interval_secs.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds between beats, for the page's script.
    pub fn interval(&self) -> i64 {
        self.interval
    }

    /// How long a beat keeps an agent present: three intervals.
    pub fn expiry(&self) -> i64 {
        self.interval * 3
    }

    /// `agent` is on `ticket`'s page doing `activity` at `now`. Drops what
    /// expired, on every ticket, so the board never outgrows the agents
    /// actually looking.
    pub fn beat(&self, ticket: TicketId, agent: &str, activity: Activity, now: i64) {
        let mut all = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, agents| {
            agents.retain(|_, (_, until)| *until > now);
            !agents.is_empty()
        });
        all.entry(ticket)
            .or_default()
            .insert(agent.to_string(), (activity, now + self.expiry()));
    }

    /// The agents other than `me` present on `ticket` at `now`, by name.
    pub fn others(&self, ticket: TicketId, me: &str, now: i64) -> Vec<(String, Activity)> {
        let all = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, Activity)> = all
            .get(&ticket)
            .map(|agents| {
                agents
                    .iter()
                    .filter(|(name, (_, until))| *until > now && !name.eq_ignore_ascii_case(me))
                    .map(|(name, (a, _))| (name.clone(), *a))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// "Alice is viewing" for each present agent, by display name.
pub fn sentences(state: &Shared, others: &[(String, Activity)]) -> Vec<String> {
    let rules = state.rules.current();
    others
        .iter()
        .map(|(name, a)| {
            let shown = rules
                .agents
                .by_name(name)
                .map(|x| x.display_name.clone())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| name.clone());
            format!("{shown} is {}", a.as_str())
        })
        .collect()
}

#[derive(Deserialize)]
pub struct Beat {
    csrf: Option<String>,
    activity: Option<String>,
}

/// `POST /tickets/{id}/presence`: one heartbeat. Answers with who else is
/// there, as JSON (`{"others": ["Bob is replying"]}`); the script puts the
/// sentences in the page as text.
pub async fn beat(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(f): Form<Beat>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        csrf::same_origin(&headers, state.https)?;
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    };
    csrf::check(&headers, state.https, &cur.session.csrf, f.csrf.as_deref())?;
    let activity = f
        .activity
        .as_deref()
        .and_then(Activity::parse)
        .unwrap_or(Activity::Viewing);
    // Only real tickets take a place on the board.
    let store = state.store.clone();
    if blocking(move || store.ticket(id)).await?.is_none() {
        return Err(WebError::NotFound);
    }
    let now = state.clock.now();
    state.presence.beat(id, &cur.session.agent, activity, now);
    let others = state.presence.others(id, &cur.session.agent, now);
    let body = serde_json::json!({ "others": sentences(&state, &others) }).to_string();
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_see_each_other_until_three_intervals_pass() {
        let b = Board::new(10);
        b.beat(7, "alice", Activity::Viewing, 1000);
        b.beat(7, "bob", Activity::Replying, 1005);
        assert_eq!(
            b.others(7, "alice", 1010),
            vec![("bob".to_string(), Activity::Replying)]
        );
        assert_eq!(b.others(7, "bob", 1010).len(), 1);
        assert!(b.others(8, "carol", 1010).is_empty());
        // Alice's last beat was at 1000: gone at 1030, Bob still there.
        assert!(b.others(7, "bob", 1029).iter().any(|(n, _)| n == "alice"));
        assert!(b.others(7, "bob", 1030).is_empty());
        assert_eq!(b.others(7, "carol", 1030).len(), 1);
        // A later beat on any ticket sweeps the expired ones.
        b.beat(9, "carol", Activity::Viewing, 2000);
        assert!(b.entries.lock().unwrap().get(&7).is_none());
    }
}
