//! `Processor::act`: the one function that checks and applies an agent's
//! `Request`, whichever door it came through.
//!
//! Every action is checked before any is applied, so one bad action applies
//! nothing (and records nothing: the door reports the refusal its own way).
//! Then the actions are applied in order, each recorded as a ticket event with
//! the agent as actor; the request's public text (its `Reply` and `Canned`
//! actions, as one message) is sent last, or held when another agent replied
//! after the version the agent saw (`collision.rs`), or, for an internal
//! request, kept as a note. A request that resolves the ticket without a word
//! to the customer sends the resolved notice. A request on a merged ticket
//! (other than a merge or split) acts on the ticket it was merged into.
//! Merge and split, which change two tickets, are `merge.rs`.

use super::{Action, Outcome, Refusal, Request, Sent, Via};
use crate::model::{Direction, EventKind, MessageKind, MessageRecord, MessageSeq, Status, Ticket};
use crate::outbound::compose::Attachment;
use crate::process::{Actor, Processor, canned, collision, event};
use crate::rules::{Agent, RuleSet};
use crate::store::{StoreError, Tx};
use tracing::{info, info_span};

/// The customer acting through their status page, in an agent's shape so
/// that the one path records them as actor (by address; they have no other
/// name here). Only a participant of the ticket may act.
fn customer_actor(ticket: &Ticket, request: &Request) -> Result<Agent, Refusal> {
    let address = request.actor.to_ascii_lowercase();
    if !ticket.participants.contains(&address) {
        return Err(Refusal::Invalid(vec![Err(format!(
            "{address} is not a participant of #{}",
            ticket.id
        ))]));
    }
    Ok(Agent {
        name: address.clone(),
        display_name: address.clone(),
        address,
        alternates: Vec::new(),
        queues: Vec::new(),
        skills: Vec::new(),
        password_hash: None,
    })
}

/// The refusal of `#canned` (and of a reply) in an internal request.
const NOT_WITH_NOTE: &str = "#canned sends mail to the customer: it cannot be combined with #note";

impl Processor {
    /// Checks every action of `request`, then applies them all (or, when one
    /// is refused, none) in the caller's transaction. The ticket is stored
    /// with its events; the caller commits.
    pub fn act(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        request: Request,
        now: i64,
    ) -> Result<Outcome, Refusal> {
        let _span =
            info_span!("act", ticket = request.ticket, actor = %request.actor, via = ?request.via)
                .entered();
        let mut request = request;
        let merging = request
            .actions
            .iter()
            .any(|a| matches!(a, Action::Merge { .. } | Action::Split { .. }));
        if !merging && tx.merged_into(request.ticket)?.is_some() {
            // A merged ticket's conversation lives on in its survivor: act
            // there. The version seen was the merged ticket's, so any public
            // reply by another agent on the survivor counts as unseen.
            let survivor = tx.survivor(request.ticket)?;
            info!(
                from = request.ticket,
                to = survivor,
                "request follows a merge"
            );
            request.ticket = survivor;
            request.seen_version = request.seen_version.map(|_| 0);
        }
        let mut ticket = tx
            .ticket(request.ticket)?
            .ok_or(Refusal::NoTicket(request.ticket))?;
        let customer;
        let system;
        let agent = if request.via == Via::Customer {
            customer = customer_actor(&ticket, &request)?;
            &customer
        } else {
            match rules.agents.by_name(&request.actor) {
                Some(a) => a,
                None if request.via == Via::Scheduler
                    && request.actor == crate::process::stages::SYSTEM_ACTOR =>
                {
                    system = system_agent(self.cfg.from_address());
                    &system
                }
                None => return Err(Refusal::UnknownAgent(request.actor.clone())),
            }
        };
        let checked = self.check(tx, rules, &ticket, agent, &request)?;
        if checked.iter().any(Result::is_err) {
            return Err(Refusal::Invalid(
                checked.into_iter().map(|r| r.map(|_| ())).collect(),
            ));
        }

        let internal = is_internal(&request);
        let was_finished = ticket.status.is_finished();
        let status_before = ticket.status;
        let mut results = Vec::with_capacity(request.actions.len());
        let mut released = Vec::new();
        let mut reply: Option<(usize, String, &[Attachment])> = None;
        let mut canned_texts = Vec::new();
        let mut note: Option<(usize, &str)> = None;
        let mut other: Option<Ticket> = None;
        for (i, (action, canned)) in request.actions.iter().zip(checked).enumerate() {
            // Checked above: every entry is Ok.
            let canned = canned.ok().flatten();
            let result = match action {
                // The public text and the note go last, as one message each.
                Action::Reply { text, attachments } => {
                    reply = Some((i, text.clone(), attachments));
                    String::new()
                }
                Action::Note(text) => {
                    note = Some((i, text));
                    String::new()
                }
                Action::Canned(n) => {
                    canned_texts.extend(canned);
                    format!("done: canned response {n:?} added to the reply")
                }
                Action::Kb(slug) => {
                    canned_texts.extend(canned);
                    format!("done: knowledge base article {slug:?} added to the reply")
                }
                Action::Internal => "done: nothing of this is sent to the customer".to_string(),
                Action::Merge { into, reason } => {
                    let by = Actor { agent, now };
                    let (line, survivor) = self.merge(tx, &mut ticket, by, *into, reason)?;
                    other = Some(survivor);
                    line
                }
                Action::Split { message, reason } => {
                    let by = Actor { agent, now };
                    let (line, new) = self.split(tx, rules, &mut ticket, by, *message, reason)?;
                    other = Some(new);
                    line
                }
                other => {
                    let by = Actor { agent, now };
                    self.apply(tx, rules, &mut ticket, by, other, &mut released)?
                }
            };
            results.push(result);
        }

        let (reply_index, mut body, attachments) = match reply {
            Some((i, text, attachments)) => (Some(i), text, attachments),
            None => (None, String::new(), &[][..]),
        };
        for c in canned_texts {
            body = if body.is_empty() {
                c
            } else {
                format!("{body}\n\n{c}")
            };
        }
        let sent = if let Some((i, text)) = note {
            let seq = self.keep_note(tx, &mut ticket, agent, request.via, text, now)?;
            // A note that came with a merge belongs to the conversation, which
            // now lives in the survivor.
            if let Some(survivor) = other.as_mut()
                && tx.merged_into(ticket.id)? == Some(survivor.id)
            {
                tx.move_message(seq, ticket.id, survivor.id)?;
                ticket.message_count = ticket.message_count.saturating_sub(1);
                survivor.message_count += 1;
                tx.put_ticket(survivor)?;
            }
            results[i] = format!("done: internal note (message {seq})");
            Sent::Note(seq)
        } else if internal || (body.is_empty() && attachments.is_empty()) {
            Sent::Nothing
        } else {
            let conflicts = request
                .seen_version
                .map_or_else(Vec::new, |v| collision::conflicts(&ticket, &agent.name, v));
            let sent = if conflicts.is_empty() {
                let by = Actor { agent, now };
                Sent::Reply(self.send_reply(tx, rules, &mut ticket, by, &body, attachments)?)
            } else {
                let by = Actor { agent, now };
                let via = request.via;
                let mut record =
                    self.agent_record(tx, &ticket, by, via, MessageKind::Held, &body)?;
                self.hold(tx, &mut ticket, &mut record, by, body, &conflicts)?;
                Sent::Held(record.seq)
            };
            if let Some(r) = reply_index.and_then(|i| results.get_mut(i)) {
                *r = match sent {
                    Sent::Reply(seq) => format!("done: reply sent to the customer (message {seq})"),
                    _ => "held: another agent replied since the version you saw".to_string(),
                };
            }
            sent
        };
        // Resolved or closed without a word to the customer: the resolved
        // notice, if the help desk has one.
        // (A merge closes the merged ticket without anything being resolved.)
        // A customer who reopens is owed an answer again: a fresh SLA cycle,
        // as when they reopen by mail.
        if request.via == Via::Customer && was_finished && !ticket.status.is_finished() {
            let detail = "the customer reopened it on their status page".to_string();
            tx.add_event(
                &mut ticket,
                event(now, EventKind::Reopened, &agent.name, detail),
            )?;
            crate::process::start_sla(tx, &mut ticket, rules, now)?;
        }
        // A customer who says their problem is solved resolves the ticket:
        // a deflection, for the reports.
        if request.via == Via::Customer && !was_finished && ticket.status == Status::Resolved {
            let detail = "the customer marked it solved on their status page".to_string();
            tx.add_event(
                &mut ticket,
                event(now, EventKind::Deflected, &agent.name, detail),
            )?;
        }
        // (A customer who closes their ticket needs no notice of it.)
        let resolved_notice = if !internal
            && request.via != Via::Customer
            && sent == Sent::Nothing
            && other.is_none()
            && !was_finished
            && ticket.status.is_finished()
        {
            self.resolved_notice(tx, &mut ticket, now)?
        } else {
            None
        };
        // Set pending without a word to the customer: the pending notice,
        // if the queue has one (rules/customer.toml).
        if !internal
            && sent == Sent::Nothing
            && other.is_none()
            && status_before != Status::Pending
            && ticket.status == Status::Pending
        {
            self.pending_notice(tx, rules, &mut ticket, now)?;
        }
        if other.is_none() {
            self.survey_on_status(tx, rules, &mut ticket, status_before, now)?;
        }
        tx.put_ticket(&ticket)?;
        info!(ticket = ticket.id, agent = %agent.name, actions = results.len(), "request applied");
        Ok(Outcome {
            ticket,
            results,
            sent,
            released,
            resolved_notice,
            internal,
            other,
        })
    }

    /// Whether each action of `request` can be applied to `ticket` (in
    /// order); for `Canned`, its rendered text. Reads only.
    pub(in crate::process) fn check(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &Ticket,
        agent: &Agent,
        request: &Request,
    ) -> Result<Vec<Result<Option<String>, String>>, StoreError> {
        let internal = is_internal(request);
        let mut out = Vec::with_capacity(request.actions.len());
        let (mut replies, mut notes) = (0, 0);
        for action in &request.actions {
            out.push(match action {
                // A customer closes their ticket or reopens a finished one; nothing else.
                Action::Status(Status::Closed) if request.via == Via::Customer => {
                    if ticket.status == Status::Closed {
                        Err("the ticket is closed already".into())
                    } else {
                        Ok(None)
                    }
                }
                // "This solved my problem" on the status page.
                Action::Status(Status::Resolved) if request.via == Via::Customer => {
                    if ticket.status.is_finished() {
                        Err("the ticket is resolved or closed already".into())
                    } else {
                        Ok(None)
                    }
                }
                Action::Status(Status::Open) if request.via == Via::Customer => {
                    if ticket.status.is_finished() {
                        Ok(None)
                    } else {
                        Err("only a resolved or closed ticket can be reopened".into())
                    }
                }
                _ if request.via == Via::Customer => {
                    Err("a customer can only close or reopen their ticket".into())
                }
                // The text goes out (or is kept) as one message.
                Action::Reply { .. } if replies > 0 => Err("one reply per request".into()),
                Action::Note(_) if notes > 0 => Err("one note per request".into()),
                Action::Assign(n) if !n.eq_ignore_ascii_case("me") => {
                    match rules.agents.by_name(n) {
                        Some(_) => Ok(None),
                        None => Err(format!("no agent {n:?} in agents.toml")),
                    }
                }
                Action::Queue(q) => {
                    let known = self.known_queues(rules);
                    if known.iter().any(|k| k == q) {
                        Ok(None)
                    } else {
                        Err(format!("unknown queue {q:?} (known: {})", known.join(", ")))
                    }
                }
                Action::Canned(_) if internal => Err(NOT_WITH_NOTE.into()),
                Action::Kb(_) if internal => {
                    Err("#kb sends mail to the customer: it cannot be combined with #note".into())
                }
                Action::Kb(slug) => rules
                    .kb
                    .reply_text(slug, self.cfg.public_base_url().as_deref())
                    .map(Some),
                Action::Canned(name) => {
                    let customer = if ticket.requester_name.is_empty() {
                        ticket.requester.clone()
                    } else {
                        ticket.requester_name.clone()
                    };
                    let id = ticket.id.to_string();
                    canned::render(
                        &self.cfg.rules_dir(),
                        name,
                        &canned::Vars {
                            customer_name: &customer,
                            ticket_id: &id,
                            agent_name: &agent.display_name,
                            subject: &ticket.subject,
                        },
                    )
                    .map(Some)
                }
                Action::Reply { .. } if internal => {
                    Err("a reply goes to the customer: it cannot be combined with a note".into())
                }
                Action::Reply { text, attachments }
                    if text.trim().is_empty() && attachments.is_empty() =>
                {
                    Err("the reply is empty".into())
                }
                // A mail is its own note, even without text (its attachments).
                Action::Note(text)
                    if text.trim().is_empty() && !matches!(request.via, Via::Mail { .. }) =>
                {
                    Err("the note is empty".into())
                }
                Action::SendHeld | Action::DropHeld => {
                    let held = tx.held()?;
                    if held
                        .iter()
                        .any(|h| h.ticket == ticket.id && h.agent.eq_ignore_ascii_case(&agent.name))
                    {
                        Ok(None)
                    } else {
                        Err(format!(
                            "no reply of yours is held on ticket #{}",
                            ticket.id
                        ))
                    }
                }
                Action::Merge { into, .. } => self.check_merge(tx, ticket, *into, request)?,
                Action::Split { message, .. } => self.check_split(tx, ticket, *message, request)?,
                Action::Participant {
                    add: false,
                    addresses,
                } if addresses.contains(&ticket.requester) => Err(format!(
                    "{} is the ticket's requester and always receives the replies",
                    ticket.requester
                )),
                _ => Ok(None),
            });
            match action {
                Action::Reply { .. } => replies += 1,
                Action::Note(_) => notes += 1,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Queues known to postdesk: those of the mailboxes and of the agents
    /// (what `Action::Queue` accepts; the web view offers them).
    pub fn known_queues(&self, rules: &RuleSet) -> Vec<String> {
        let mut q: Vec<String> = self.cfg.mailboxes.iter().map(|m| m.queue.clone()).collect();
        for a in &rules.agents.list {
            q.extend(a.queues.iter().cloned());
        }
        q.sort();
        q.dedup();
        q
    }

    /// A priority or queue change may select another SLA policy: apply it,
    /// with an event; returns a note for the transcript.
    fn reselect_sla(
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        now: i64,
    ) -> Result<String, StoreError> {
        match crate::sla::reselect(tx, ticket, &rules.sla, &rules.calendars, now)? {
            Some(detail) => {
                let note = format!("; SLA {detail}");
                tx.add_event(ticket, event(now, EventKind::SlaPolicy, "sla", detail))?;
                Ok(note)
            }
            None => Ok(String::new()),
        }
    }

    /// Applies one checked action that changes the ticket itself; returns
    /// what was done, for the transcript. (`Reply`, `Canned`, `Note` and
    /// `Internal` are the request's text: `act` handles them.)
    fn apply(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        by: Actor<'_>,
        action: &Action,
        released: &mut Vec<MessageSeq>,
    ) -> Result<String, StoreError> {
        let (agent, now) = (by.agent, by.now);
        let actor = agent.name.as_str();
        let ev = |kind: EventKind, detail: String| event(now, kind, actor, detail);
        Ok(match action {
            Action::Status(s) => {
                let old = ticket.status;
                if old == *s {
                    return Ok(format!("done (the ticket was already {})", s.as_str()));
                }
                ticket.status = *s;
                match s {
                    Status::Pending => crate::sla::pause(tx, ticket, now)?,
                    Status::Resolved | Status::Closed => crate::sla::stop(tx, ticket)?,
                    Status::Open | Status::New => {
                        crate::sla::resume(tx, ticket, &rules.sla, &rules.calendars, now)?
                    }
                }
                let d = format!("{} → {}", old.as_str(), s.as_str());
                tx.add_event(ticket, ev(EventKind::Status, format!("{d} by {actor}")))?;
                format!("done: status {d}")
            }
            Action::Priority(p) => {
                let old = ticket.priority;
                ticket.priority = *p;
                let d = format!("{} → {}", old.as_str(), p.as_str());
                tx.add_event(ticket, ev(EventKind::Priority, format!("{d} by {actor}")))?;
                let sla = Self::reselect_sla(tx, rules, ticket, now)?;
                format!("done: priority {d}{sla}")
            }
            Action::Assign(n) => {
                let name = if n.eq_ignore_ascii_case("me") {
                    agent.name.clone()
                } else {
                    rules
                        .agents
                        .by_name(n)
                        .map_or_else(|| n.clone(), |a| a.name.clone())
                };
                let old = ticket.assignee.replace(name.clone());
                let d = format!("{} → {name}", old.as_deref().unwrap_or("nobody"));
                tx.add_event(ticket, ev(EventKind::Assigned, format!("{d} by {actor}")))?;
                format!("done: assignee {d}")
            }
            Action::Queue(q) => {
                let old = std::mem::replace(&mut ticket.queue, q.clone());
                let d = format!("{old} → {q}");
                tx.add_event(ticket, ev(EventKind::Queue, format!("{d} by {actor}")))?;
                let sla = Self::reselect_sla(tx, rules, ticket, now)?;
                format!("done: queue {d}{sla}")
            }
            Action::Tags { add, remove } => {
                for t in add {
                    if !ticket.tags.contains(t) {
                        ticket.tags.push(t.clone());
                    }
                }
                ticket.tags.retain(|t| !remove.contains(t));
                let d = format!(
                    "{}{}",
                    add.iter().map(|t| format!("+{t} ")).collect::<String>(),
                    remove.iter().map(|t| format!("-{t} ")).collect::<String>()
                );
                let d = d.trim_end();
                tx.add_event(ticket, ev(EventKind::Tags, format!("{d} by {actor}")))?;
                format!("done: tags {d} (now: {})", ticket.tags.join(", "))
            }
            Action::Participant {
                add: true,
                addresses,
            } => {
                let caps = &self.cfg.tickets;
                let admitted = crate::process::participants::admit(
                    ticket,
                    addresses.iter().map(String::as_str),
                    caps,
                    |a| self.cfg.accepts(a) || rules.agents.by_address(a).is_some(),
                );
                let d = if admitted.added.is_empty() {
                    "nobody new".to_string()
                } else {
                    admitted.added.join(", ")
                };
                tx.add_event(
                    ticket,
                    ev(EventKind::Participants, format!("added {d} by {actor}")),
                )?;
                if let Some(note) = admitted.cap_note(caps) {
                    tx.add_event(ticket, ev(EventKind::ParticipantsCapped, note))?;
                }
                format!("done: participants added: {d}")
            }
            Action::Participant {
                add: false,
                addresses,
            } => {
                let removed: Vec<&str> = addresses
                    .iter()
                    .filter(|a| *a != &ticket.requester && ticket.participants.remove(*a))
                    .map(String::as_str)
                    .collect();
                let d = if removed.is_empty() {
                    "nobody".to_string()
                } else {
                    removed.join(", ")
                };
                tx.add_event(
                    ticket,
                    ev(EventKind::Participants, format!("removed {d} by {actor}")),
                )?;
                format!("done: participants removed: {d}")
            }
            Action::SendHeld => {
                let sent = self.release_held(tx, rules, ticket, agent, now)?;
                let list = sent
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                released.extend(sent);
                format!("done: held reply sent to the customer (message {list})")
            }
            Action::DropHeld => {
                let mine: Vec<crate::model::HeldReply> = tx
                    .held()?
                    .into_iter()
                    .filter(|h| h.ticket == ticket.id && h.agent.eq_ignore_ascii_case(&agent.name))
                    .collect();
                let list = mine
                    .iter()
                    .map(|h| h.message.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                for h in &mine {
                    tx.remove_held(h.message)?;
                }
                tx.add_event(
                    ticket,
                    ev(
                        EventKind::HeldDropped,
                        format!("held reply by {actor} (message {list}) dropped unsent"),
                    ),
                )?;
                format!("done: held reply dropped (message {list})")
            }
            Action::Availability(available) => {
                tx.set_chat_away(&agent.name, !*available, by.now)?;
                if *available {
                    format!("done: {} is available for live chats", agent.name)
                } else {
                    format!("done: {} is away (no live chats)", agent.name)
                }
            }
            Action::Note(_)
            | Action::Internal
            | Action::Reply { .. }
            | Action::Canned(_)
            | Action::Kb(_)
            | Action::Merge { .. }
            | Action::Split { .. } => String::new(),
        })
    }

    /// Keeps an internal note as a message of the ticket: the agent's mail
    /// itself when it came by mail, else a new message with `text`.
    fn keep_note(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        agent: &Agent,
        via: Via,
        text: &str,
        now: i64,
    ) -> Result<MessageSeq, StoreError> {
        let by = Actor { agent, now };
        let record = self.agent_record(tx, ticket, by, via, MessageKind::Note, text)?;
        tx.put_message(&record)?;
        ticket.message_count += 1;
        ticket.updated_at = now;
        tx.add_event(
            ticket,
            event(
                now,
                EventKind::Note,
                &agent.name,
                format!("internal note by {} (message {})", agent.name, record.seq),
            ),
        )?;
        Ok(record.seq)
    }

    /// The message that carries the agent's text as `kind` (not yet stored):
    /// by mail, the stored mail; from the web or the API, a new message.
    fn agent_record(
        &self,
        tx: &mut Tx<'_>,
        ticket: &Ticket,
        by: Actor<'_>,
        via: Via,
        kind: MessageKind,
        text: &str,
    ) -> Result<MessageRecord, StoreError> {
        let (agent, now) = (by.agent, by.now);
        if let Via::Mail { message } = via {
            let mut record = tx.message(message)?.ok_or_else(|| {
                StoreError::Io(std::io::Error::other(format!(
                    "agent mail {message} vanished during processing"
                )))
            })?;
            record.kind = kind;
            record.ticket = Some(ticket.id);
            return Ok(record);
        }
        Ok(MessageRecord {
            seq: tx.next_id("next_message")?,
            ticket: Some(ticket.id),
            message_id: String::new(),
            direction: Direction::Inbound,
            kind,
            from: agent.address.clone(),
            to: Vec::new(),
            subject: ticket.subject.clone(),
            date: now,
            text: text.to_string(),
            stranger: None,
        })
    }
}

/// The agent record postdesk acts as on a timer (`Via::Scheduler`): no
/// address of an agent, no queues, no login.
fn system_agent(from: &str) -> Agent {
    Agent {
        name: crate::process::stages::SYSTEM_ACTOR.into(),
        display_name: crate::process::stages::SYSTEM_ACTOR.into(),
        address: from.to_string(),
        alternates: Vec::new(),
        queues: Vec::new(),
        skills: Vec::new(),
        password_hash: None,
    }
}

/// A request with a note sends nothing to the customer.
fn is_internal(request: &Request) -> bool {
    request
        .actions
        .iter()
        .any(|a| matches!(a, Action::Note(_) | Action::Internal))
}

#[cfg(test)]
#[path = "act_tests.rs"]
mod tests;
