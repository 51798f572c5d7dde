//! Service-level targets: policies from rules/sla.toml, deadlines counted in
//! business time, and a scheduler that fires each warning and breach once.
//!
//! ```toml
//! [[policy]]
//! name = "urgent"
//! priorities = ["urgent"]          # and/or queues = ["billing"]; first match wins
//! first_response = "1h"            # business time of the calendar
//! resolution = "8h"
//! calendar = "default"             # rules/calendar.toml; "always" = 24/7
//! warn_at = 0.8                    # share of the target
//! on_warning = [{ notify = "assignee" }]
//! on_breach = [{ notify = "agent:alice" }, { raise_priority = true }, { reassign = "least-loaded" }, { tag = "sla-breached" }]
//! ```
//!
//! Deadlines are stored as instants on the ticket and as timers in the store,
//! so nothing is recomputed on restart and timers that fell due while the
//! daemon was down fire on the next scheduler pass (catch-up).

use crate::model::{EventKind, SlaState, Ticket, TicketId};
use crate::rules::calendar::Calendar;
use crate::store::{StoreError, Tx};

/// The SLA target a timer watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    FirstResponse,
    Resolution,
}

/// What a timer fires when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warning,
    Breach,
}

/// The kind of one SLA timer. Named (to the store, which keeps it as a
/// one-byte code in its timer table, and in `SlaState::fired`) as
/// `first_response:warning`, `resolution:breach`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKind {
    pub goal: Goal,
    pub level: Level,
}

impl Goal {
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::FirstResponse => "first_response",
            Goal::Resolution => "resolution",
        }
    }
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Breach => "breach",
        }
    }
}

impl TimerKind {
    /// The stored key.
    pub fn key(self) -> String {
        format!("{}:{}", self.goal.as_str(), self.level.as_str())
    }

    /// Parses a stored key (a bare goal, as some early timers were written, is a breach).
    pub fn parse(key: &str) -> Option<TimerKind> {
        let (goal, level) = key.split_once(':').unwrap_or((key, "breach"));
        let goal = [Goal::FirstResponse, Goal::Resolution]
            .into_iter()
            .find(|g| g.as_str() == goal)?;
        let level = [Level::Warning, Level::Breach]
            .into_iter()
            .find(|l| l.as_str() == level)?;
        Some(TimerKind { goal, level })
    }
}

// The policies are a rule file: they live with the rules.
pub use crate::rules::sla::{Action, FirstResponseOn, Policies, Policy, Target, calendar_of};

/// Starts the SLA clock of a new ticket (after routing set its priority and queue).
pub fn start(
    tx: &mut Tx<'_>,
    ticket: &mut Ticket,
    policies: &Policies,
    calendars: &[Calendar],
    now: i64,
) -> Result<(), StoreError> {
    let Some(state) = initial_state(policies, calendars, ticket, now) else {
        return Ok(());
    };
    let Some(policy) = policies.by_name(&state.policy) else {
        return Ok(());
    };
    let cal = calendar_of(policy, calendars);
    schedule(tx, ticket.id, &state, policy, &cal, now)?;
    ticket.sla = Some(state);
    Ok(())
}

/// The clock a ticket of this priority and queue starts at `now`: the
/// policy that applies and its deadlines in business time. Pure; `start`
/// and the new-ticket decision both use it.
pub fn initial_state(
    policies: &Policies,
    calendars: &[Calendar],
    ticket: &Ticket,
    now: i64,
) -> Option<SlaState> {
    let policy = policies.for_ticket(ticket)?;
    let cal = calendar_of(policy, calendars);
    Some(SlaState {
        policy: policy.name.clone(),
        first_response_due: policy
            .first_response
            .map(|s| cal.add_business_seconds(now, s)),
        resolution_due: policy.resolution.map(|s| cal.add_business_seconds(now, s)),
        started_at: Some(now),
        ..SlaState::default()
    })
}

/// Inserts the warning and breach timers still ahead for `state`.
fn schedule(
    tx: &mut Tx<'_>,
    id: TicketId,
    state: &SlaState,
    policy: &Policy,
    cal: &Calendar,
    now: i64,
) -> Result<(), StoreError> {
    let targets = [
        (
            Goal::FirstResponse,
            state.first_response_due,
            policy.first_response,
            state.first_response_at.is_some(),
        ),
        (
            Goal::Resolution,
            state.resolution_due,
            policy.resolution,
            false,
        ),
    ];
    for (goal, due, target, met) in targets {
        let (Some(due), Some(target), false) = (due, target, met) else {
            continue;
        };
        // The warning comes when (1 - warn_at) of the target is left, in business time.
        let left = ((1.0 - policy.warn_at) * target as f64) as i64;
        let warn =
            cal.add_business_seconds(now, (cal.business_seconds_between(now, due) - left).max(0));
        let warn_kind = TimerKind {
            goal,
            level: Level::Warning,
        }
        .key();
        if !state.fired.contains(&warn_kind) && warn < due {
            tx.add_sla_timer(warn, id, &warn_kind)?;
        }
        let breach_kind = TimerKind {
            goal,
            level: Level::Breach,
        }
        .key();
        if !state.fired.contains(&breach_kind) {
            tx.add_sla_timer(due, id, &breach_kind)?;
        }
    }
    Ok(())
}

/// The ticket now waits on the customer: stop the clock.
pub fn pause(tx: &mut Tx<'_>, ticket: &mut Ticket, now: i64) -> Result<(), StoreError> {
    if let Some(state) = ticket.sla.as_mut()
        && state.paused_since.is_none()
    {
        state.paused_since = Some(now);
        tx.clear_sla_timers(ticket.id)?;
        let detail = "clock paused while the ticket waits on the customer".to_string();
        tx.add_event(ticket, sla_event(now, EventKind::SlaPaused, detail))?;
    }
    Ok(())
}

fn sla_event(at: i64, kind: crate::model::EventKind, detail: String) -> crate::model::Event {
    crate::model::Event::new(at, kind, "sla", detail)
}

/// The customer answered: restart the clock, moving the deadlines by the
/// business time that passed while paused.
pub fn resume(
    tx: &mut Tx<'_>,
    ticket: &mut Ticket,
    policies: &Policies,
    calendars: &[Calendar],
    now: i64,
) -> Result<(), StoreError> {
    let Some(state) = ticket.sla.as_mut() else {
        return Ok(());
    };
    let Some(since) = state.paused_since.take() else {
        return Ok(());
    };
    let Some(policy) = policies.by_name(&state.policy) else {
        return Ok(());
    };
    let cal = calendar_of(policy, calendars);
    let shift = |due: Option<i64>| {
        due.map(|d| cal.add_business_seconds(now, cal.business_seconds_between(since, d)))
    };
    state.paused_business_secs += cal.business_seconds_between(since, now);
    state.first_response_due = shift(state.first_response_due);
    state.resolution_due = shift(state.resolution_due);
    let state = state.clone();
    tx.clear_sla_timers(ticket.id)?;
    schedule(tx, ticket.id, &state, policy, &cal, now)?;
    let due = |d: Option<i64>| d.map_or("none".to_string(), crate::clock::rfc3339);
    let detail = format!(
        "clock running again: first response due {}, resolution due {}",
        due(state.first_response_due),
        due(state.resolution_due)
    );
    tx.add_event(ticket, sla_event(now, EventKind::SlaResumed, detail))
}

/// The ticket's priority or queue changed. When that selects another policy,
/// the new policy's targets apply, counted from when the clock started (less
/// the time paused), so raising a ticket to urgent can make it overdue at
/// once; warnings and breaches already fired do not fire again. Returns a
/// description of the change for the ticket's events, or None if the
/// policy stays.
pub fn reselect(
    tx: &mut Tx<'_>,
    ticket: &mut Ticket,
    policies: &Policies,
    calendars: &[Calendar],
    now: i64,
) -> Result<Option<String>, StoreError> {
    if matches!(
        ticket.status,
        crate::model::Status::Resolved | crate::model::Status::Closed
    ) {
        return Ok(None);
    }
    let Some(old) = ticket.sla.clone() else {
        // No clock yet (no policy applied before): start one now.
        start(tx, ticket, policies, calendars, now)?;
        return Ok(ticket
            .sla
            .as_ref()
            .map(|s| format!("policy {:?} applies now", s.policy)));
    };
    let policy = policies.for_ticket(ticket);
    if policy.is_some_and(|p| p.name == old.policy) {
        return Ok(None);
    }
    tx.clear_sla_timers(ticket.id)?;
    let Some(policy) = policy else {
        ticket.sla = None;
        return Ok(Some(format!(
            "policy {:?} no longer applies; no SLA policy does",
            old.policy
        )));
    };
    let cal = calendar_of(policy, calendars);
    let started = old.started_at.unwrap_or(ticket.created_at);
    let due = |target: Option<i64>| {
        target.map(|t| cal.add_business_seconds(started, t + old.paused_business_secs))
    };
    let state = SlaState {
        policy: policy.name.clone(),
        first_response_due: due(policy.first_response),
        resolution_due: due(policy.resolution),
        ..old.clone()
    };
    // While paused there are no timers; resume shifts the deadlines and schedules.
    if state.paused_since.is_none() {
        schedule(tx, ticket.id, &state, policy, &cal, now)?;
    }
    let text = |d: Option<i64>| d.map_or("none".to_string(), crate::clock::rfc3339);
    let detail = format!(
        "policy {:?} → {:?}: first response due {}, resolution due {}",
        old.policy,
        state.policy,
        text(state.first_response_due),
        text(state.resolution_due)
    );
    ticket.sla = Some(state);
    Ok(Some(detail))
}

/// An agent's first public reply went out: the first-response target is met
/// (its timers are then skipped by the scheduler; the resolution clock runs on).
pub fn first_response(ticket: &mut Ticket, now: i64) {
    if let Some(state) = ticket.sla.as_mut()
        && state.first_response_at.is_none()
    {
        state.first_response_at = Some(now);
    }
}

/// An agent's public reply was queued: the first response, unless the
/// ticket's policy counts it only once delivered (`first_response_on =
/// "delivered"`, see [`first_response_delivered`]).
pub fn first_response_queued(ticket: &mut Ticket, policies: &Policies, now: i64) {
    if first_response_on(ticket, policies) == FirstResponseOn::Queued {
        first_response(ticket, now);
    }
}

/// The customer's server accepted an agent's public reply at `now`: under
/// `first_response_on = "delivered"` that is the first response. True if
/// it met the target now.
pub fn first_response_delivered(ticket: &mut Ticket, policies: &Policies, now: i64) -> bool {
    let open = ticket
        .sla
        .as_ref()
        .is_some_and(|s| s.first_response_at.is_none());
    if open && first_response_on(ticket, policies) == FirstResponseOn::Delivered {
        first_response(ticket, now);
        return true;
    }
    false
}

fn first_response_on(ticket: &Ticket, policies: &Policies) -> FirstResponseOn {
    ticket
        .sla
        .as_ref()
        .and_then(|s| policies.by_name(&s.policy))
        .map_or(FirstResponseOn::Queued, |p| p.first_response_on)
}

/// The reply that met the first response never arrived (the customer's
/// server refused it for good): the target counts as met by `next`, the
/// next public reply's time, if there is one; otherwise it is open again and
/// its timers are back (a breach already due fires on the scheduler's next
/// pass). True if anything changed.
pub fn first_response_refused(
    tx: &mut Tx<'_>,
    ticket: &mut Ticket,
    policies: &Policies,
    calendars: &[Calendar],
    next: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(state) = ticket.sla.as_mut() else {
        return Ok(false);
    };
    if state.first_response_at.is_none() {
        return Ok(false);
    }
    state.first_response_at = next;
    let running = state.paused_since.is_none()
        && !matches!(
            ticket.status,
            crate::model::Status::Resolved | crate::model::Status::Closed
        );
    if next.is_none()
        && running
        && let Some(policy) = policies.by_name(&state.policy)
    {
        let state = state.clone();
        let cal = calendar_of(policy, calendars);
        tx.clear_sla_timers(ticket.id)?;
        schedule(tx, ticket.id, &state, policy, &cal, now)?;
    }
    Ok(true)
}

/// The ticket is resolved or closed: nothing more can breach.
pub fn stop(tx: &mut Tx<'_>, ticket: &mut Ticket) -> Result<(), StoreError> {
    if ticket.sla.is_some() {
        tx.clear_sla_timers(ticket.id)?;
    }
    Ok(())
}

/// What the API shows: "ok", "warning", "breached", "paused" or "met".
pub fn state_name(ticket: &Ticket, now: i64) -> &'static str {
    let Some(s) = &ticket.sla else { return "none" };
    let resolved = ticket.status.is_finished();
    // A resolved ticket keeps only the breaches that fired before it was resolved.
    let running = !resolved && s.paused_since.is_none();
    let breached = s.fired.iter().any(|f| f.ends_with(":breach"))
        || (running && s.resolution_due.is_some_and(|d| d <= now))
        || (running
            && s.first_response_at.is_none()
            && s.first_response_due.is_some_and(|d| d <= now));
    if breached {
        "breached"
    } else if resolved {
        "met"
    } else if s.paused_since.is_some() {
        "paused"
    } else if s.fired.iter().any(|f| f.ends_with(":warning")) {
        "warning"
    } else {
        "ok"
    }
}

#[cfg(test)]
mod tests;
