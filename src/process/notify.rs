//! Notifications to agents: a new ticket goes to its queue's agents (or the
//! assignee routing chose), a customer reply to the assignee (or, unassigned,
//! the queue's agents). Each agent gets a mail of its own whose Reply-To is a
//! signed agent address naming the ticket, the agent and the ticket version
//! the agent saw; pressing Reply is all it takes to answer the customer.
//!
//! Queued in the transaction that stores the customer's message, so a
//! notification goes out if and only if the message was taken in.

use super::commands::HINT;
use super::{Incoming, Processor};
use crate::model::{EventKind, MessageRecord, Ticket};
use crate::outbound::compose::{AgentMail, queue_agent_mail};
use crate::rules::{Agent, RuleSet};
use crate::store::{StoreError, Tx};

/// What happened that agents should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    NewTicket,
    CustomerReply,
}

/// The agents to notify about `ticket`: the assignee, else the queue's
/// agents; never the one whose address `sender` is (who caused the event).
pub fn recipients<'a>(rules: &'a RuleSet, ticket: &Ticket, sender: &str) -> Vec<&'a Agent> {
    let agents = &rules.agents;
    let mut to: Vec<&Agent> = match ticket.assignee.as_deref().and_then(|n| agents.by_name(n)) {
        Some(a) => vec![a],
        None => agents
            .list
            .iter()
            .filter(|a| a.queues.contains(&ticket.queue))
            .collect(),
    };
    to.retain(|a| !a.has_address(sender));
    to
}

impl Processor {
    /// Queues one notification per agent to notify about the customer message
    /// `record` (its visible text) on `ticket`, and records whom as an event.
    /// When the sender is not a participant (`record.stranger`), the
    /// notification says so and how to add them.
    pub(super) fn notify_agents(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        msg: &Incoming<'_>,
        record: &MessageRecord,
        cause: Cause,
    ) -> Result<(), StoreError> {
        let (parsed, sender, now) = (msg.parsed, msg.sender.as_str(), msg.now);
        let (text, stranger) = (&record.text, record.stranger.as_deref());
        // Imported history is news to nobody.
        if !self.cfg.agents.notify || msg.env.source == crate::model::Source::Import {
            return Ok(());
        }
        let to = recipients(rules, ticket, sender);
        if to.is_empty() {
            return Ok(());
        }
        let support = self.cfg.support_address(&ticket.queue).to_string();
        let customer = if parsed.from_name.is_empty() {
            sender.to_string()
        } else {
            parsed.from_name.clone()
        };
        let from_name = format!("{customer} via {}", self.cfg.from_display_name());
        let subject = match cause {
            Cause::NewTicket => format!("[#{}] {}", ticket.id, ticket.subject),
            Cause::CustomerReply => format!("Re: [#{}] {}", ticket.id, ticket.subject),
        };
        let what = match cause {
            Cause::NewTicket => "opened ticket",
            Cause::CustomerReply => "replied on ticket",
        };
        let mut attachments = String::new();
        for (ct, name) in &parsed.attachments {
            let name = if name.is_empty() { "(no name)" } else { name };
            attachments.push_str(&format!("Attachment: {name} ({ct})\n"));
        }
        if !attachments.is_empty() {
            attachments.insert(0, '\n');
        }
        let who = if parsed.from_name.is_empty() {
            sender.to_string()
        } else {
            format!("{customer} <{sender}>")
        };
        let warning = match stranger {
            Some(why) => format!(
                "NOT A PARTICIPANT: {why}.\n\
                 The message joins the conversation, but {who} will not receive\n\
                 replies. To add the sender, reply with this line at the top:\n\
                 #participant add {sender}\n\n",
                who = if parsed.cc.is_empty() {
                    "the sender"
                } else {
                    "the sender and its Cc"
                },
            ),
            None => String::new(),
        };
        let body = format!(
            "{warning}{who} {what} #{id}:\n\n{text}\n{attachments}\n-- \n\
             Ticket #{id}: status {status}, priority {priority}, queue {queue}, assignee {assignee}\n\
             Reply to this mail to answer the customer; your reply goes out from {support}.\n\
             {HINT}\n",
            id = ticket.id,
            text = text.trim_end(),
            status = ticket.status.as_str(),
            priority = ticket.priority.as_str(),
            queue = ticket.queue,
            assignee = ticket.assignee.as_deref().unwrap_or("nobody"),
        );
        // One thread per ticket in the agent's mail client.
        let root = crate::outbound::compose::thread_root(ticket.id, &self.cfg.server.hostname);
        let mut names = Vec::new();
        for agent in &to {
            // The agent's own signed comment address: mail from the agent's
            // From alone is not enough to post a note.
            let body = match &self.cfg.agents.comment_address {
                Some(c) => format!(
                    "{body}Internal note by mail: write to {} with [#{}] in the subject.\n",
                    self.tokens.comment_address(c, &agent.name, now),
                    ticket.id
                ),
                None => body.clone(),
            };
            queue_agent_mail(
                tx,
                &self.cfg,
                &self.tokens,
                AgentMail {
                    from_name: from_name.clone(),
                    references: vec![root.clone()],
                    ..AgentMail::answerable(
                        &self.cfg,
                        &self.tokens,
                        ticket,
                        agent,
                        subject.clone(),
                        body,
                        now,
                    )
                },
                now,
            )?;
            names.push(agent.name.clone());
        }
        tx.add_event(
            ticket,
            super::event(
                now,
                EventKind::Notified,
                "postdesk",
                format!("notified {}", names.join(", ")),
            ),
        )
    }
}
