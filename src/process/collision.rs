//! Collision detection: two agents answering the same ticket by mail.
//!
//! Every public reply bumps the ticket's version, and every agent address
//! carries the version its agent saw. A reply written against an older
//! version, after which another agent replied, is held instead of sent: its
//! author gets a notice quoting the other reply, and answering that notice
//! with `#send` sends the held reply anyway. Held replies are rows of the
//! `held` table with an absolute expiry; the processor's loop drops those
//! past `agents.hold_expiry` (with a ticket event and a notice), so a restart
//! loses none.

use super::Processor;
use super::reply::attachments_of;
use crate::model::{
    EventKind, HeldReply, MessageKind, MessageRecord, MessageSeq, PublicReply, Ticket,
};
use crate::outbound::compose::{AgentMail, queue_agent_mail};
use crate::rules::{Agent, RuleSet};
use crate::store::{StoreError, Tx};
use tracing::info;

/// Public replies by other agents since version `seen`.
pub fn conflicts(ticket: &Ticket, agent: &str, seen: u64) -> Vec<PublicReply> {
    ticket
        .public_replies
        .iter()
        .filter(|r| r.version > seen && !r.agent.eq_ignore_ascii_case(agent))
        .cloned()
        .collect()
}

fn quote(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_string()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Processor {
    /// Holds `record` (an agent's reply with text `text`: their mail, or a
    /// message made for a reply from the web) and tells its author why.
    pub(super) fn hold(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        record: &mut MessageRecord,
        by: super::Actor<'_>,
        text: String,
        conflicts: &[PublicReply],
    ) -> Result<(), StoreError> {
        let (agent, now) = (by.agent, by.now);
        record.kind = MessageKind::Held;
        record.ticket = Some(ticket.id);
        tx.put_message_unlisted(record)?;
        let expires_at = now + self.cfg.agents.hold_expiry.as_secs() as i64;
        tx.put_held(&HeldReply {
            message: record.seq,
            ticket: ticket.id,
            agent: agent.name.clone(),
            text: text.clone(),
            at: now,
            expires_at,
        })?;
        let others: Vec<String> = conflicts.iter().map(|c| c.agent.clone()).collect();
        tx.add_event(
            ticket,
            super::event(
                now,
                EventKind::ReplyHeld,
                &agent.name,
                format!(
                    "reply by {} (message {}) held: {} replied after the version {} saw",
                    agent.name,
                    record.seq,
                    others.join(", "),
                    agent.name
                ),
            ),
        )?;
        let mut quoted = String::new();
        for c in conflicts {
            let other = tx.message(c.message)?.map(|m| m.text).unwrap_or_default();
            quoted.push_str(&format!(
                "{} replied to the customer (message {}):\n\n{}\n\n",
                c.agent,
                c.message,
                quote(&other)
            ));
        }
        let body = format!(
            "Your reply to ticket #{id} was NOT sent: another agent answered the customer after\n\
             the notification you replied to.\n\n{quoted}\
             Your held reply:\n\n{mine}\n\n\
             To send yours anyway, reply to this mail with\n\n#send\n\n\
             on the first line. Otherwise it is dropped at {expires} (it stays in the ticket's history).\n",
            id = ticket.id,
            mine = quote(&text),
            expires = crate::clock::rfc3339(expires_at),
        );
        queue_agent_mail(
            tx,
            &self.cfg,
            &self.tokens,
            AgentMail {
                in_reply_to: (!record.message_id.is_empty()).then(|| record.message_id.clone()),
                ..AgentMail::answerable(
                    &self.cfg,
                    &self.tokens,
                    ticket,
                    agent,
                    format!(
                        "[#{}] Reply held: {} answered first",
                        ticket.id,
                        others.join(", ")
                    ),
                    body,
                    now,
                )
            },
            now,
        )?;
        info!(ticket = ticket.id, agent = %agent.name, "reply held (collision)");
        Ok(())
    }

    /// Sends every reply of `agent` held on `ticket` (`#send`); returns the
    /// sequence numbers of the mail sent.
    pub(super) fn release_held(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        agent: &Agent,
        now: i64,
    ) -> Result<Vec<MessageSeq>, StoreError> {
        let mine: Vec<HeldReply> = tx
            .held()?
            .into_iter()
            .filter(|h| h.ticket == ticket.id && h.agent.eq_ignore_ascii_case(&agent.name))
            .collect();
        let mut sent = Vec::new();
        for h in mine {
            let attachments = tx
                .raw(h.message)?
                .map(|r| attachments_of(&r))
                .unwrap_or_default();
            let by = super::Actor { agent, now };
            let seq = self.send_reply(tx, rules, ticket, by, &h.text, &attachments)?;
            tx.remove_held(h.message)?;
            tx.add_event(
                ticket,
                super::event(
                    now,
                    EventKind::HeldReleased,
                    &agent.name,
                    format!(
                        "held reply (message {}) sent by #send as message {seq}",
                        h.message
                    ),
                ),
            )?;
            sent.push(seq);
        }
        Ok(sent)
    }

    /// Drops held replies past their expiry (an event on the ticket and a
    /// notice to the agent); returns how many. Cheap when none is due.
    pub fn expire_held(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        match self.store.next_held_expiry()? {
            Some(at) if at <= now => {}
            _ => return Ok(0),
        }
        let rules = self.rules.current();
        self.store.write(|tx| {
            let due: Vec<HeldReply> = tx
                .held()?
                .into_iter()
                .filter(|h| h.expires_at <= now)
                .collect();
            for h in &due {
                tx.remove_held(h.message)?;
                let Some(mut ticket) = tx.ticket(h.ticket)? else {
                    continue;
                };
                tx.add_event(
                    &mut ticket,
                    super::event(
                        now,
                        EventKind::HeldExpired,
                        "postdesk",
                        format!(
                            "held reply by {} (message {}) expired unsent",
                            h.agent, h.message
                        ),
                    ),
                )?;
                if let Some(agent) = rules.agents.by_name(&h.agent) {
                    let support = self.cfg.support_address(&ticket.queue).to_string();
                    queue_agent_mail(
                        tx,
                        &self.cfg,
                        &self.tokens,
                        AgentMail {
                            ticket: Some(ticket.id),
                            to: agent.address.clone(),
                            from_name: self.cfg.from_display_name(),
                            from_addr: support,
                            reply_to: None,
                            subject: format!("[#{}] Held reply expired", ticket.id),
                            body: format!(
                                "Your reply to ticket #{} was held and has now expired; it was not sent:\n\n{}\n",
                                ticket.id,
                                quote(&h.text)
                            ),
                            msgid_tag: None,
                            in_reply_to: None,
                            references: Vec::new(),
                        },
                        now,
                    )?;
                }
                tx.put_ticket(&ticket)?;
                info!(ticket = h.ticket, agent = %h.agent, "held reply expired");
            }
            Ok(due.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_other_agents_replies_after_the_seen_version() {
        let mut t: Ticket = serde_json::from_value(serde_json::json!({
            "id": 1, "subject": "s", "status": "open", "priority": "normal", "queue": "general",
            "assignee": null, "requester": "c@example.org", "participants": [],
            "created_at": 0, "updated_at": 0, "message_count": 0, "next_event": 0
        }))
        .unwrap();
        t.public_replies = vec![
            PublicReply {
                version: 1,
                agent: "alice".into(),
                message: 10,
            },
            PublicReply {
                version: 2,
                agent: "bob".into(),
                message: 11,
            },
        ];
        assert!(conflicts(&t, "bob", 1).is_empty(), "own reply only");
        assert_eq!(conflicts(&t, "alice", 1).len(), 1);
        assert_eq!(conflicts(&t, "carol", 0).len(), 2);
        assert!(conflicts(&t, "carol", 2).is_empty());
    }
}
