//! Fires SLA warnings and breaches when their timers fall due, each once,
//! and applies the actions a policy names (notify, raise priority, reassign,
//! tag). Apart from `crate::sla`, the clock arithmetic, which sends nothing.
//!
//! A timer is removed in the same transaction that records its event and
//! applies its actions, so a crash either fires it later or has fired it.

use crate::assignment;
use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::model::{Event, EventKind, Priority, Ticket};
use crate::outbound::compose;
use crate::rules::{LiveRules, RuleSet};
use crate::sla::{Action, Goal, Level, Target, TimerKind};
use crate::store::{Store, StoreError, Tx};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Timers handled per transaction.
const BATCH: usize = 256;

/// Fires every timer due at `now`; returns how many fired an event.
pub fn fire_due(
    store: &Store,
    cfg: &Config,
    rules: &RuleSet,
    now: i64,
) -> Result<usize, StoreError> {
    let mut fired = 0;
    loop {
        let (warnings, breaches, more) = store.write(|tx| {
            let due = tx.take_due_sla_timers(now, BATCH)?;
            let more = due.len() == BATCH;
            let (mut warnings, mut breaches) = (0, 0);
            for (at, ticket, kind) in due {
                match fire_one(tx, cfg, rules, ticket, &kind, at, now)? {
                    Some(Level::Warning) => warnings += 1,
                    Some(Level::Breach) => breaches += 1,
                    None => {}
                }
            }
            Ok((warnings, breaches, more))
        })?;
        // Counted once committed: a rolled-back batch fires again.
        crate::counters::SLA_WARNINGS.add(warnings);
        crate::counters::SLA_BREACHES.add(breaches);
        fired += (warnings + breaches) as usize;
        if !more {
            return Ok(fired);
        }
    }
}

fn fire_one(
    tx: &mut Tx<'_>,
    cfg: &Config,
    rules: &RuleSet,
    id: u64,
    kind: &str,
    due: i64,
    now: i64,
) -> Result<Option<Level>, StoreError> {
    let Some(mut ticket) = tx.ticket(id)? else {
        return Ok(None);
    };
    let Some(state) = ticket.sla.clone() else {
        return Ok(None);
    };
    let Some(timer) = TimerKind::parse(kind) else {
        tracing::warn!(ticket = id, kind, "unknown SLA timer kind; dropped");
        return Ok(None);
    };
    let met = ticket.status.is_finished()
        || (timer.goal == Goal::FirstResponse && state.first_response_at.is_some());
    if met || state.paused_since.is_some() || state.fired.iter().any(|f| f == kind) {
        return Ok(None);
    }
    let Some(policy) = rules.sla.by_name(&state.policy) else {
        return Ok(None);
    };
    let target_due = match timer.goal {
        Goal::FirstResponse => state.first_response_due,
        Goal::Resolution => state.resolution_due,
    };
    let label = timer.goal.as_str().replace('_', " ");
    let detail = match timer.level {
        Level::Warning => format!(
            "{label} due {} (policy {}): warning",
            target_due.map_or("?".into(), rfc3339),
            policy.name
        ),
        Level::Breach => format!(
            "{label} overdue since {} (policy {})",
            rfc3339(due),
            policy.name
        ),
    };
    if let Some(s) = ticket.sla.as_mut() {
        s.fired.push(kind.to_string());
    }
    let (kind_name, actions) = match timer.level {
        Level::Warning => (EventKind::SlaWarning, &policy.on_warning),
        Level::Breach => (EventKind::SlaBreach, &policy.on_breach),
    };
    tx.add_event(&mut ticket, event(now, kind_name, &detail))?;
    for action in actions {
        apply(tx, cfg, rules, &mut ticket, action, &detail, now)?;
    }
    tx.put_ticket(&ticket)?;
    tracing::info!(ticket = id, kind, "SLA {}", kind_name.as_str());
    Ok(Some(timer.level))
}

fn apply(
    tx: &mut Tx<'_>,
    cfg: &Config,
    rules: &RuleSet,
    ticket: &mut Ticket,
    action: &Action,
    detail: &str,
    now: i64,
) -> Result<(), StoreError> {
    match action {
        Action::RaisePriority => {
            let next = match ticket.priority {
                Priority::Low => Priority::Normal,
                Priority::Normal => Priority::High,
                Priority::High | Priority::Urgent => Priority::Urgent,
            };
            if next != ticket.priority {
                ticket.priority = next;
                tx.add_event(
                    ticket,
                    event(
                        now,
                        EventKind::Priority,
                        &format!("raised to {next:?} by the SLA policy").to_lowercase(),
                    ),
                )?;
            }
        }
        Action::Tag(t) => {
            if !ticket.tags.contains(t) {
                ticket.tags.push(t.clone());
            }
        }
        Action::Reassign(a) => {
            let to = assignment::resolve(tx, rules, a, &ticket.queue)?;
            if to.is_some() && to != ticket.assignee {
                ticket.assignee = to.clone();
                tx.add_event(
                    ticket,
                    event(
                        now,
                        EventKind::Assigned,
                        &format!("reassigned to {} by the SLA policy", to.unwrap_or_default()),
                    ),
                )?;
            }
        }
        Action::Notify(target) => {
            let address = match target {
                Target::Assignee => ticket
                    .assignee
                    .as_deref()
                    .and_then(|n| rules.agents.by_name(n))
                    .map(|a| a.address.clone()),
                Target::Agent(n) => rules.agents.by_name(n).map(|a| a.address.clone()),
                Target::Address(a) => Some(a.clone()),
            };
            match address {
                Some(to) => {
                    let subject = format!("[#{}] SLA: {detail}", ticket.id);
                    let body = format!(
                        "Ticket #{} \"{}\" ({}, {}, queue {}):\n\n{detail}\n",
                        ticket.id,
                        ticket.subject,
                        ticket.status.as_str(),
                        format!("{:?}", ticket.priority).to_lowercase(),
                        ticket.queue
                    );
                    compose::queue_notice(tx, cfg, ticket, &to, &subject, &body, now)?;
                }
                None => tx.add_event(
                    ticket,
                    event(
                        now,
                        EventKind::SlaNotifySkipped,
                        "nobody to notify (no assignee)",
                    ),
                )?,
            }
        }
    }
    Ok(())
}

fn event(at: i64, kind: EventKind, detail: &str) -> Event {
    Event::new(at, kind, "sla", detail.to_string())
}

/// Runs the scheduler until shutdown: fires due timers (catching up on start),
/// then sleeps until the next timer, a wake-up, or at most 30 s.
pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    clock: Clock,
    rules: Arc<LiveRules>,
    outbound_wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (s, c, r, now) = (store.clone(), cfg.clone(), rules.current(), clock.now());
        match tokio::task::spawn_blocking(move || fire_due(&s, &c, &r, now)).await {
            Ok(Ok(n)) if n > 0 => outbound_wake.notify_one(),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "SLA timers failed; will retry"),
            Err(e) => tracing::error!(error = %e, "SLA task failed; will retry"),
        }
        let wait = match store.next_sla_timer() {
            Ok(Some(due)) => (due - clock.now()).clamp(0, 30),
            _ => 30,
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(wait as u64).max(Duration::from_millis(200))) => {}
        }
    }
}
