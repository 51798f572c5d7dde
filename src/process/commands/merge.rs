//! Merging two tickets and splitting a message out: the two actions that
//! change two tickets at once. `act.rs` calls the checks here from its
//! `check` and the applications from its loop, so they share its
//! all-or-nothing rule, its events with the agent as actor and its single
//! transaction.
//!
//! A merge moves the messages (see `store::merge` for why moving, not
//! listing), unites the participants and tags, closes the merged ticket with
//! a `merged_into` pointer that threading follows, and stops its SLA clock.
//! A split gives one customer message a ticket of its own, routed and
//! clocked by the same decision as a new ticket (`decide::new_ticket`), but
//! without an acknowledgement: the customer already had one for that mail.

use super::{Action, Request};
use crate::config::TicketsConfig;
use crate::model::{
    Direction, Envelope, EventKind, MessageKind, MessageSeq, Source, Status, Ticket, TicketId,
};
use crate::process::{Actor, Processor, decide, event, parse, participants};
use crate::rules::RuleSet;
use crate::store::{StoreError, Tx};
use tracing::info;

/// A merge or split is asked for on its own (an internal note may go with
/// it), against the version the agent saw.
fn alone_and_current(request: &Request, ticket: &Ticket, what: &str) -> Result<(), String> {
    let others = request.actions.iter().filter(|a| {
        !matches!(
            a,
            Action::Note(_) | Action::Internal | Action::Merge { .. } | Action::Split { .. }
        )
    });
    let two = request
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Merge { .. } | Action::Split { .. }))
        .count()
        > 1;
    if others.count() > 0 || two {
        return Err(format!(
            "{what} is done on its own (an internal note may go with it): send the other changes separately"
        ));
    }
    match request.seen_version {
        Some(v) if v != ticket.version => Err(format!(
            "ticket #{} changed since the version you saw ({v}, now {}): look at it again",
            ticket.id, ticket.version
        )),
        _ => Ok(()),
    }
}

/// Longest reason kept in the events (a door may pass any text).
const MAX_REASON: usize = 300;

/// The reason as the events show it: ": why" (one line, bounded) or nothing.
fn because(reason: &Option<String>) -> String {
    let r = crate::syntax::header_text(reason.as_deref().unwrap_or(""), MAX_REASON);
    if r.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", r.trim())
    }
}

impl Processor {
    /// Whether `ticket` may be merged into `into`.
    pub(super) fn check_merge(
        &self,
        tx: &mut Tx<'_>,
        ticket: &Ticket,
        into: TicketId,
        request: &Request,
    ) -> Result<Result<Option<String>, String>, StoreError> {
        let id = ticket.id;
        if let Err(e) = alone_and_current(request, ticket, "#merge") {
            return Ok(Err(e));
        }
        if into == id {
            return Ok(Err(format!("#{id} cannot be merged into itself")));
        }
        if let Some(already) = tx.merged_into(id)? {
            return Ok(Err(format!("#{id} is already merged into #{already}")));
        }
        if tx.ticket(into)?.is_none() {
            return Ok(Err(format!("no ticket #{into} to merge into")));
        }
        let end = tx.survivor(into)?;
        if end == id {
            return Ok(Err(format!(
                "#{into} was merged into #{id}: merging #{id} into it would make a cycle"
            )));
        }
        if end != into {
            return Ok(Err(format!(
                "#{into} is merged into #{end}: merge into #{end} instead"
            )));
        }
        Ok(Ok(None))
    }

    /// Whether message `seq` may be split out of `ticket`.
    pub(super) fn check_split(
        &self,
        tx: &mut Tx<'_>,
        ticket: &Ticket,
        seq: MessageSeq,
        request: &Request,
    ) -> Result<Result<Option<String>, String>, StoreError> {
        let id = ticket.id;
        if let Err(e) = alone_and_current(request, ticket, "split") {
            return Ok(Err(e));
        }
        if tx.merged_into(id)?.is_some() {
            return Ok(Err(format!(
                "#{id} is merged: split on the ticket it went into"
            )));
        }
        if !tx.lists_message(id, seq)? {
            return Ok(Err(format!("message {seq} is not in ticket #{id}")));
        }
        let Some(record) = tx.message(seq)? else {
            return Ok(Err(format!("no message {seq}")));
        };
        if record.kind != MessageKind::Customer || record.direction != Direction::Inbound {
            return Ok(Err(format!(
                "message {seq} is not a customer's message: only those can be split out"
            )));
        }
        let others = tx
            .ticket_messages(id)?
            .iter()
            .filter(|m| m.seq != seq && m.kind == MessageKind::Customer)
            .count();
        if others == 0 {
            return Ok(Err(format!(
                "message {seq} is the only customer message of #{id}: nothing would stay"
            )));
        }
        Ok(Ok(None))
    }

    /// Merges `ticket` into `into` (checked): returns the transcript line
    /// and the survivor, both stored except `ticket`, which `act` stores.
    pub(super) fn merge(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        by: Actor<'_>,
        into: TicketId,
        reason: &Option<String>,
    ) -> Result<(String, Ticket), StoreError> {
        let (agent, now) = (by.agent.name.as_str(), by.now);
        let mut survivor = self.load_ticket(tx, into)?;
        let moved = tx.move_messages(ticket.id, survivor.id)?;
        survivor.message_count += moved;
        ticket.message_count = ticket.message_count.saturating_sub(moved);
        // Participants join within the per-ticket cap (a merge is one act of
        // an agent, not one message: the per-message cap does not apply).
        let caps = TicketsConfig {
            max_participants_per_message: self.cfg.tickets.max_participants_per_ticket,
            ..self.cfg.tickets.clone()
        };
        let admitted = participants::admit(
            &mut survivor,
            ticket.participants.iter().map(String::as_str),
            &caps,
            |_| false,
        );
        if let Some(note) = admitted.cap_note(&caps) {
            tx.add_event(
                &mut survivor,
                event(now, EventKind::ParticipantsCapped, agent, note),
            )?;
        }
        for t in &ticket.tags {
            if !survivor.tags.contains(t) {
                survivor.tags.push(t.clone());
            }
        }
        if survivor.last_customer_message_id.is_none() {
            survivor.last_customer_message_id = ticket.last_customer_message_id.clone();
        }
        // Held replies wait on the survivor now (`#send` there releases them).
        for mut h in tx.held()? {
            if h.ticket == ticket.id {
                h.ticket = survivor.id;
                tx.put_held(&h)?;
            }
        }
        tx.record_merge(ticket.id, survivor.id)?;
        let why = because(reason);
        let old = ticket.status;
        ticket.status = Status::Closed;
        crate::sla::stop(tx, ticket)?;
        let added = if admitted.added.is_empty() {
            String::new()
        } else {
            format!("; participants added: {}", admitted.added.join(", "))
        };
        tx.add_event(
            ticket,
            event(
                now,
                EventKind::Merged,
                agent,
                format!(
                    "merged into #{} by {agent} ({moved} message(s) moved; {} → closed){why}",
                    survivor.id,
                    old.as_str()
                ),
            ),
        )?;
        tx.add_event(
            &mut survivor,
            event(
                now,
                EventKind::Merged,
                agent,
                format!(
                    "#{} merged into this ticket by {agent} ({moved} message(s){added}){why}",
                    ticket.id
                ),
            ),
        )?;
        for t in [&mut *ticket, &mut survivor] {
            t.version += 1;
            t.updated_at = now;
        }
        tx.put_ticket(&survivor)?;
        info!(ticket = ticket.id, into = survivor.id, moved, %agent, "ticket merged");
        let line = format!(
            "done: #{} merged into #{} ({moved} message(s) moved); later mail to #{} goes to #{}",
            ticket.id, survivor.id, ticket.id, survivor.id
        );
        Ok((line, survivor))
    }

    /// Splits message `seq` (checked) out of `ticket` into a new ticket of
    /// the same requester: returns the transcript line and the new ticket
    /// (stored; `ticket` is stored by `act`).
    pub(super) fn split(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        by: Actor<'_>,
        seq: MessageSeq,
        reason: &Option<String>,
    ) -> Result<(String, Ticket), StoreError> {
        let (agent, now) = (by.agent.name.as_str(), by.now);
        let record = tx.message(seq)?.ok_or_else(|| {
            StoreError::Io(std::io::Error::other(format!(
                "message {seq} vanished during a split"
            )))
        })?;
        let tag = format!("[#{}]", ticket.id);
        let subject = record.subject.replace(&tag, " ");
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut new = Ticket {
            subject: if subject.is_empty() {
                ticket.subject.clone()
            } else {
                subject
            },
            requester_name: ticket.requester_name.clone(),
            queue: ticket.queue.clone(),
            last_customer_message_id: (!record.message_id.is_empty())
                .then(|| record.message_id.clone()),
            ..Ticket::new(tx.next_id("next_ticket")?, &ticket.requester, now)
        };
        new.participants.insert(ticket.requester.clone());
        if ticket.participants.contains(&record.from) {
            new.participants.insert(record.from.clone());
        }
        let why = because(reason);
        tx.add_event(
            &mut new,
            event(
                now,
                EventKind::Created,
                agent,
                format!(
                    "split from #{} by {agent}: message {seq} from {}{why}",
                    ticket.id, record.from
                ),
            ),
        )?;
        // Routing and the SLA clock as for a new ticket made by this mail.
        if let Some(raw) = tx.raw(seq)? {
            let parsed = parse::parse(&raw);
            let env = Envelope {
                mail_from: record.from.clone(),
                rcpt_to: record.to.clone(),
                received_at: record.date,
                source: Source::Smtp,
                peer: String::new(),
                helo: String::new(),
                imap: None,
                sender_auth: None,
                imported_as: None,
            };
            let msg = decide::Incoming::read(&self.cfg, &parsed, &env, now);
            let plan = decide::new_ticket(&self.cfg, rules, &msg);
            self.apply_plan(tx, &mut new, rules, &plan, now)?;
        }
        tx.move_message(seq, ticket.id, new.id)?;
        tx.repoint_msgid(&record.message_id, new.id)?;
        new.message_count = 1;
        ticket.message_count = ticket.message_count.saturating_sub(1);
        if ticket.last_customer_message_id.as_deref() == Some(record.message_id.as_str()) {
            ticket.last_customer_message_id = tx
                .ticket_messages(ticket.id)?
                .iter()
                .rev()
                .find(|m| m.kind == MessageKind::Customer && !m.message_id.is_empty())
                .map(|m| m.message_id.clone());
        }
        tx.add_event(
            ticket,
            event(
                now,
                EventKind::Split,
                agent,
                format!("message {seq} split out into #{} by {agent}{why}", new.id),
            ),
        )?;
        ticket.version += 1;
        ticket.updated_at = now;
        tx.put_ticket(&new)?;
        info!(ticket = ticket.id, new = new.id, message = seq, %agent, "message split out");
        let line = format!(
            "done: message {seq} split out into new ticket #{}; replies to it go there",
            new.id
        );
        Ok((line, new))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reason_text() {
        assert_eq!(super::because(&None), "");
        assert_eq!(super::because(&Some("  ".into())), "");
        assert_eq!(super::because(&Some("dup".into())), ": dup");
        let long = super::because(&Some(format!("a\nb{}", "x".repeat(5000))));
        assert!(
            !long.contains('\n') && long.len() <= super::MAX_REASON + 8,
            "{long}"
        );
    }
}
