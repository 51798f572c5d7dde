//! The customer told at each stage (rules/customer.toml, per queue): the
//! pending notice when an agent sets a ticket pending without a word, the
//! reopened notice when the customer's mail reopens it, the reminder of a
//! ticket pending too long and its automatic close. (The acknowledgement
//! and the resolved notice are older and live in `mod.rs` and `reply.rs`;
//! an agent's public reply goes out as written, with no template around it.)
//!
//! Every stage mail goes through [`Processor::customer_update`], which
//! first asks [`Processor::why_no_customer_mail`]: nothing automatic goes to
//! an auto-responder or a list (a requester who never wrote to us as a
//! person), a bouncing address, our own addresses or an agent.
//!
//! The reminder and the close are computed from the store on each tick of
//! [`run`] (the ticket's last change to pending and the reminder event after
//! it), so no timer lives in memory: a restart fires what fell due meanwhile.

use super::Processor;
use crate::model::{
    Direction, Event, EventKind, MessageKind, MessageRecord, MessageSeq, Status, Ticket,
};
use crate::outbound::compose::{self, Kind, Outgoing};
use crate::outbound::queue::enqueue;
use crate::rules::RuleSet;
use crate::rules::template::Template;
use crate::store::{StoreError, Tx};
use std::time::Duration;
use tokio::sync::watch;
use tracing::info;

/// How often the reminders, closes and surveys are looked for.
const TICK: Duration = Duration::from_secs(1);
/// Pending tickets read per tick (the oldest-changed first is not needed:
/// every pending ticket is looked at, a page at a time).
const PAGE: usize = 500;

impl Processor {
    /// Why no automatic mail may go to the ticket's requester now, if so.
    pub(crate) fn why_no_customer_mail(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &Ticket,
    ) -> Result<Option<String>, StoreError> {
        let to = ticket.requester.as_str();
        if to.is_empty() {
            return Ok(Some("the ticket has no requester address".into()));
        }
        if self.cfg.accepts(to) || to.eq_ignore_ascii_case(self.cfg.from_address()) {
            return Ok(Some(format!("{to} is one of our own addresses")));
        }
        if rules.agents.by_address(to).is_some() {
            return Ok(Some(format!("{to} is an agent's address")));
        }
        if let Some(b) = tx.bouncing(to)? {
            return Ok(Some(super::bounce_facts::bouncing_reason(to, &b)));
        }
        // The classification of the requester's own mail: only a person's
        // (customer class) earns automatic mail, never an auto-reply's or a list's.
        let wrote_as_person = tx.ticket_messages(ticket.id)?.iter().any(|m| {
            m.direction == Direction::Inbound
                && m.kind == MessageKind::Customer
                && crate::address::same_mailbox(&m.from, to)
        });
        if !wrote_as_person {
            return Ok(Some(format!(
                "{to} never wrote to this ticket as a person (auto-reply, list or system mail)"
            )));
        }
        Ok(None)
    }

    /// Queues `template` (plus `extra`, appended to its body) to the
    /// ticket's requester as a generated message of the ticket, unless
    /// [`Self::why_no_customer_mail`] forbids it (then records why, as an
    /// `ack_suppressed` event). `what` names the stage in events and logs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn customer_update(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        template: &Template,
        what: &str,
        extra: Option<&str>,
        now: i64,
    ) -> Result<Option<MessageSeq>, StoreError> {
        if let Some(why) = self.why_no_customer_mail(tx, rules, ticket)? {
            let reason = format!("no {what}: {why}");
            info!(ticket = ticket.id, %reason, "customer mail suppressed");
            tx.add_event(
                ticket,
                Event::new(now, EventKind::AckSuppressed, "postdesk", reason),
            )?;
            return Ok(None);
        }
        let seq = self.queue_customer_mail(tx, ticket, template, extra, now)?;
        tx.add_event(
            ticket,
            Event::new(
                now,
                EventKind::CustomerNotified,
                "postdesk",
                format!("{} sent the {what} (message {seq})", ticket.requester),
            )
            .about(seq),
        )?;
        Ok(Some(seq))
    }

    /// Renders and queues one generated mail to the requester (no checks,
    /// no event): Reply-To is the ticket's signed reply address for them,
    /// so an answer threads to the ticket.
    pub(crate) fn queue_customer_mail(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        template: &Template,
        extra: Option<&str>,
        now: i64,
    ) -> Result<MessageSeq, StoreError> {
        let support = self.cfg.support_address(&ticket.queue).to_string();
        let requester = ticket.requester.clone();
        let name = if ticket.requester_name.is_empty() {
            requester.split('@').next().unwrap_or("").to_string()
        } else {
            ticket.requester_name.clone()
        };
        let id = ticket.id.to_string();
        let status_url = self.status_url(ticket.id, &requester, now);
        let (subject, mut text) = template.render(&super::ack::Vars {
            ticket: &id,
            subject: &ticket.subject,
            name: &name,
            queue: &ticket.queue,
            status_url: &status_url,
            kb_suggestions: "",
        });
        if let Some(extra) = extra {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(extra);
        }
        let seq = tx.next_id("next_message")?;
        let message_id = compose::message_id(ticket.id, seq, &self.cfg.server.hostname);
        let references = self.references(tx, ticket)?;
        let raw = compose::render(
            &Outgoing {
                kind: Kind::Generated,
                from: (self.cfg.from_display_name(), support.clone()),
                to: requester.clone(),
                cc: Vec::new(),
                reply_to: Some(
                    self.tokens
                        .reply_address(&support, ticket.id, &requester, now),
                ),
                subject: subject.clone(),
                message_id: message_id.clone(),
                date: now,
                in_reply_to: ticket
                    .last_customer_message_id
                    .clone()
                    .or_else(|| references.last().cloned()),
                references,
                body: text.clone(),
                attachments: &[],
                extra_headers: Vec::new(),
            },
            &self.cfg.server.hostname,
        );
        tx.put_raw(seq, &raw)?;
        tx.put_message(&MessageRecord {
            seq,
            ticket: Some(ticket.id),
            message_id: message_id.clone(),
            direction: Direction::Outbound,
            kind: MessageKind::Auto,
            from: support.clone(),
            to: vec![requester.clone()],
            subject,
            date: now,
            text,
            stranger: None,
        })?;
        tx.index_msgid(&message_id, ticket.id)?;
        ticket.message_count += 1;
        let bounce = self.tokens.bounce_address(&support, ticket.id, seq);
        enqueue(tx, seq, Some(ticket.id), bounce, vec![requester], now)?;
        Ok(seq)
    }

    /// The pending notice, when the ticket's queue wants one.
    pub(crate) fn pending_notice(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        now: i64,
    ) -> Result<Option<MessageSeq>, StoreError> {
        let stages = rules.customer.for_queue(&ticket.queue);
        match (&rules.customer.templates.pending, stages.pending) {
            (Some(t), true) => {
                self.customer_update(tx, rules, ticket, t, "pending notice", None, now)
            }
            _ => Ok(None),
        }
    }

    /// The reopened notice, when the ticket's queue wants one.
    pub(crate) fn reopened_notice(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        now: i64,
    ) -> Result<Option<MessageSeq>, StoreError> {
        let stages = rules.customer.for_queue(&ticket.queue);
        match (&rules.customer.templates.reopened, stages.reopened) {
            (Some(t), true) => {
                self.customer_update(tx, rules, ticket, t, "reopened notice", None, now)
            }
            _ => Ok(None),
        }
    }

    /// One pass over the pending tickets: a reminder to those pending
    /// longer than their queue's `remind_after`, and the close of those
    /// reminded more than `close_after` ago. Returns how many changed.
    pub fn remind_and_close(&self, now: i64) -> Result<usize, StoreError> {
        let rules = self.rules.current();
        if rules.customer.shortest_pending_delay().is_none() {
            return Ok(0);
        }
        let mut changed = 0;
        let mut before = None;
        loop {
            let filter = crate::store::TicketFilter {
                status: Some("pending".into()),
                limit: PAGE,
                before,
                ..Default::default()
            };
            let (_, page) = self.store.list_tickets(&filter)?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for t in &page {
                let stages = rules.customer.for_queue(&t.queue);
                let Some(remind_after) = stages.remind_after else {
                    continue;
                };
                let events = self.store.ticket_events(t.id)?;
                let Some(step) = pending_step(&events, remind_after, stages.close_after, now)
                else {
                    continue;
                };
                let seen = t.next_event;
                let done = self.store.write(|tx| {
                    let Some(mut ticket) = tx.ticket(t.id)? else {
                        return Ok(false);
                    };
                    // Changed since it was read: the next tick decides again.
                    if ticket.status != Status::Pending || ticket.next_event != seen {
                        return Ok(false);
                    }
                    match step {
                        PendingStep::Remind => self.remind(tx, &rules, &mut ticket, now)?,
                        PendingStep::Close => self.auto_close(tx, &rules, ticket, now)?,
                    }
                    Ok(true)
                })?;
                if done {
                    changed += 1;
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        if changed > 0 {
            self.outbound_wake.notify_one();
        }
        Ok(changed)
    }

    fn remind(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        now: i64,
    ) -> Result<(), StoreError> {
        let sent = match &rules.customer.templates.reminder {
            Some(t) => self.customer_update(tx, rules, ticket, t, "pending reminder", None, now)?,
            None => None,
        };
        // Recorded whether or not the mail could go: the close counts from it.
        let detail = match sent {
            Some(seq) => format!("pending reminder sent (message {seq})"),
            None => "pending reminder due; no mail could go to the customer".into(),
        };
        let mut ev = Event::new(now, EventKind::Reminded, "postdesk", detail);
        if let Some(seq) = sent {
            ev = ev.about(seq);
        }
        tx.add_event(ticket, ev)?;
        tx.put_ticket(ticket)?;
        info!(ticket = ticket.id, "pending reminder");
        Ok(())
    }

    /// Closes a ticket that waited past its reminder, through `act` like
    /// any other status change (as postdesk itself), then tells the customer.
    fn auto_close(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: Ticket,
        now: i64,
    ) -> Result<(), StoreError> {
        let request = super::commands::Request {
            ticket: ticket.id,
            actor: SYSTEM_ACTOR.into(),
            seen_version: None,
            // Internal: the auto-closed notice below says it, not the resolved notice.
            actions: vec![
                super::commands::Action::Status(Status::Closed),
                super::commands::Action::Internal,
            ],
            via: super::commands::Via::Scheduler,
        };
        let mut ticket = match self.act(tx, rules, request, now) {
            Ok(outcome) => outcome.ticket,
            Err(super::commands::Refusal::Store(e)) => return Err(e),
            Err(refusal) => {
                tracing::warn!(ticket = ticket.id, %refusal, "automatic close refused");
                return Ok(());
            }
        };
        if let Some(t) = &rules.customer.templates.auto_closed {
            self.customer_update(tx, rules, &mut ticket, t, "auto-closed notice", None, now)?;
            tx.put_ticket(&ticket)?;
        }
        info!(
            ticket = ticket.id,
            "pending ticket closed after its reminder"
        );
        Ok(())
    }
}

/// The actor of what postdesk does on its own (the automatic close).
pub const SYSTEM_ACTOR: &str = "postdesk";

/// What a pending ticket is due for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingStep {
    Remind,
    Close,
}

/// From a pending ticket's events: when it last became pending, whether it
/// was reminded since, and so what is due at `now` (None: nothing yet).
pub(crate) fn pending_step(
    events: &[Event],
    remind_after: i64,
    close_after: Option<i64>,
    now: i64,
) -> Option<PendingStep> {
    let since = events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Status.as_str() && e.detail.contains("→ pending"))?
        .at;
    let reminded = events
        .iter()
        .rev()
        .take_while(|e| e.at >= since)
        .find(|e| e.kind == EventKind::Reminded.as_str())
        .map(|e| e.at);
    match reminded {
        None if now >= since.saturating_add(remind_after) => Some(PendingStep::Remind),
        None => None,
        Some(at) => close_after
            .filter(|c| now >= at.saturating_add(*c))
            .map(|_| PendingStep::Close),
    }
}

/// Runs the customer-side timed work until shutdown: reminders and closes
/// of pending tickets, and surveys that fell due. Everything it decides is
/// read from the store each tick.
///
/// Due surveys are an index lookup, done every tick. The pending tickets are
/// scanned (each one's events read) only every tenth of the shortest
/// reminder or close delay, between 1 s and 60 s: a reminder after three
/// days comes at most a minute late, and a large pending backlog is not
/// read every second.
pub async fn run(processor: Processor, mut shutdown: watch::Receiver<bool>) {
    let mut next_scan = i64::MIN;
    loop {
        let p = processor.clone();
        let now = processor.clock.now();
        let scan = now >= next_scan;
        if scan {
            let every = processor
                .rules
                .current()
                .customer
                .shortest_pending_delay()
                .map_or(60, |d| (d / 10).clamp(1, 60));
            next_scan = now.saturating_add(every);
        }
        let done = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            if scan {
                p.remind_and_close(now)?;
            }
            p.send_due_surveys(now)?;
            Ok(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "customer timers failed; will retry"),
            Err(e) => tracing::error!(error = %e, "customer timer task failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: i64, kind: EventKind, detail: &str) -> Event {
        Event::new(at, kind, "alice", detail.into())
    }

    #[test]
    fn reminder_then_close_from_the_events() {
        let mut events = vec![
            ev(0, EventKind::Created, ""),
            ev(100, EventKind::Status, "open → pending by alice"),
        ];
        assert_eq!(pending_step(&events, 50, Some(30), 149), None);
        assert_eq!(
            pending_step(&events, 50, Some(30), 150),
            Some(PendingStep::Remind)
        );
        events.push(ev(150, EventKind::Reminded, "sent"));
        assert_eq!(pending_step(&events, 50, Some(30), 179), None);
        assert_eq!(
            pending_step(&events, 50, Some(30), 180),
            Some(PendingStep::Close)
        );
        assert_eq!(pending_step(&events, 50, None, 10_000), None);
        // Pending again later: a reminder of the earlier wait does not count.
        events.push(ev(
            200,
            EventKind::Status,
            "pending → open: customer replied",
        ));
        events.push(ev(300, EventKind::Status, "open → pending by alice"));
        assert_eq!(pending_step(&events, 50, Some(30), 340), None);
        assert_eq!(
            pending_step(&events, 50, Some(30), 350),
            Some(PendingStep::Remind)
        );
    }
}
