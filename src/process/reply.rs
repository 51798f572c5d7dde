//! An agent's public reply, relayed to the customer as the help desk's mail:
//! from the support address with the agent's name in the display name, to the
//! requester with the other customer participants in Cc, the ticket tag in
//! the subject, In-Reply-To/References to the customer's last message, the
//! customer's reply token as Reply-To, the agent's attachments carried over.
//!
//! Nothing of the agent's own mail is copied but the text and the attachment
//! contents, so the agent's address never reaches the customer; where the
//! agent typed it into the text (a signature that survived stripping), it is
//! replaced by the support address.

use super::Processor;
use crate::customer_texts::{self, Texts};
use crate::model::{
    Direction, EventKind, MessageKind, MessageRecord, MessageSeq, PublicReply, Status, Ticket,
};
use crate::outbound::compose::{self, Kind, Outgoing};
use crate::outbound::queue::enqueue;
use crate::rules::{Agent, RuleSet};
use crate::store::{StoreError, Tx};

pub use super::parse::attachments_of;
pub use crate::outbound::compose::Attachment;

/// `text` with every address of `agent` replaced by `support` (ASCII case-insensitive).
pub fn redact(text: &str, agent: &Agent, support: &str) -> String {
    let mut out = text.to_string();
    for addr in std::iter::once(&agent.address).chain(agent.alternates.iter()) {
        let needle = addr.to_ascii_lowercase();
        if needle.is_empty() {
            continue;
        }
        let mut result = String::with_capacity(out.len());
        let lower = out.to_ascii_lowercase();
        let mut last = 0;
        for (i, _) in lower.match_indices(&needle) {
            result.push_str(&out[last..i]);
            result.push_str(support);
            last = i + needle.len();
        }
        result.push_str(&out[last..]);
        out = result;
    }
    out
}

/// In-Reply-To the customer's last message, or, when it had no Message-ID,
/// the newest message of the conversation (our acknowledgement, say), so
/// the customer's client threads the mail either way; and References.
fn in_reply_to(ticket: &Ticket, references: &[String]) -> Option<String> {
    ticket
        .last_customer_message_id
        .clone()
        .or_else(|| references.last().cloned())
}

/// A reply's body: `text` ending with a line break, then the recipient's
/// status link under a signature separator, named in `t`'s words (none
/// when `status_url` is empty). The stored record keeps the text alone:
/// the link is one recipient's.
fn with_status_link(t: &Texts, text: &str, status_url: &str) -> String {
    if status_url.is_empty() {
        return format!("{}\n", text.trim_end());
    }
    format!(
        "{}\n\n-- \n{} {status_url}\n",
        text.trim_end(),
        t.request_online
    )
}

/// The customer's language for our own words in a reply: the language the
/// routing rules' `language` condition sees (`detect_language`) in the
/// customer's latest message where it sees one, chosen among the shipped
/// tables as the pages choose theirs (`customer_texts::pick`); English
/// when none is recognised. Mail has no Accept-Language: the customer's
/// own words are the best evidence of what they read.
fn customer_language(messages: &[MessageRecord]) -> &'static Texts {
    let mut theirs: Vec<&MessageRecord> = messages
        .iter()
        .filter(|m| {
            m.direction == Direction::Inbound
                && m.kind == MessageKind::Customer
                && m.stranger.is_none()
        })
        .collect();
    theirs.sort_by_key(|m| (m.date, m.seq));
    let lang = theirs
        .iter()
        .rev()
        .find_map(|m| crate::rules::routing::detect_language(&m.subject, &m.text));
    customer_texts::pick(lang, None)
}

/// `Re: [#N] subject`, without piling up `Re:` prefixes or tags.
pub fn reply_subject(ticket: &Ticket) -> String {
    let mut s = ticket.subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let cut = ["re:", "aw:", "sv:", "fwd:", "fw:"]
            .iter()
            .find(|p| lower.starts_with(*p))
            .map(|p| p.len());
        match cut {
            Some(n) => s = s[n..].trim_start(),
            None => break,
        }
    }
    let tag = format!("[#{}]", ticket.id);
    if s.contains(&tag) {
        format!("Re: {s}")
    } else {
        format!("Re: {tag} {s}")
    }
}

impl Processor {
    /// Queues `text` (and `attachments`) from `agent` to the ticket's customers,
    /// stores it as the ticket's outbound agent message, bumps the ticket
    /// version, meets the SLA first response. Returns the message sequence.
    pub(super) fn send_reply(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        by: super::Actor<'_>,
        text: &str,
        attachments: &[Attachment],
    ) -> Result<MessageSeq, StoreError> {
        let (agent, now) = (by.agent, by.now);
        let support = self.cfg.support_address(&ticket.queue).to_string();
        let text = redact(text, agent, &support);
        let seq = tx.next_id("next_message")?;
        let message_id = compose::message_id(ticket.id, seq, &self.cfg.server.hostname);
        let requester = ticket.requester.clone();
        let is_ours =
            |a: &str| self.cfg.accepts(a) || a.eq_ignore_ascii_case(self.cfg.from_address());
        let cc: Vec<String> = ticket
            .participants
            .iter()
            .filter(|p| {
                !p.eq_ignore_ascii_case(&requester)
                    && !is_ours(p)
                    && rules.agents.by_address(p).is_none()
            })
            .cloned()
            .collect();
        let subject = reply_subject(ticket);
        let messages = tx.ticket_messages(ticket.id)?;
        let references = references_in(&messages, ticket);
        let texts = customer_language(&messages);
        let from_name = format!("{} ({})", agent.display_name, self.cfg.from_display_name());
        let mut rcpts = vec![requester.clone()];
        rcpts.extend(cc.iter().cloned());
        // One copy per recipient, alike but for the Reply-To: each carries a
        // reply address signed for that recipient, so whoever answers threads
        // by their own token (one made for the requester would not verify
        // from anyone else). The first copy is the ticket's message record.
        let copy_for = |rcpt: &str| {
            compose::render(
                &Outgoing {
                    kind: Kind::Personal,
                    from: (from_name.clone(), support.clone()),
                    to: requester.clone(),
                    cc: cc.clone(),
                    reply_to: Some(self.tokens.reply_address(&support, ticket.id, rcpt, now)),
                    subject: subject.clone(),
                    message_id: message_id.clone(),
                    date: now,
                    in_reply_to: in_reply_to(ticket, &references),
                    references: references.clone(),
                    // A text body ends with a line break, whatever the stripping
                    // left; then the recipient's own status link, if served.
                    body: with_status_link(texts, &text, &self.status_url(ticket.id, rcpt, now)),
                    attachments,
                    extra_headers: Vec::new(),
                },
                &self.cfg.server.hostname,
            )
        };
        tx.put_raw(seq, &copy_for(&requester))?;
        // A chat visitor who is connected reads the reply in the widget;
        // the transcript mails it once they leave, so it is never mailed twice.
        let pushed = self.chat_live.is_connected(ticket.id);
        if !pushed {
            let bounce = self.tokens.bounce_address(&support, ticket.id, seq);
            enqueue(
                tx,
                seq,
                Some(ticket.id),
                bounce,
                vec![requester.clone()],
                now,
            )?;
        }
        for rcpt in &cc {
            let copy = tx.next_id("next_message")?;
            tx.put_raw(copy, &copy_for(rcpt))?;
            let bounce = self.tokens.bounce_address(&support, ticket.id, copy);
            enqueue(tx, copy, Some(ticket.id), bounce, vec![rcpt.clone()], now)?;
        }
        let record = MessageRecord {
            seq,
            ticket: Some(ticket.id),
            message_id: message_id.clone(),
            direction: Direction::Outbound,
            kind: MessageKind::Agent,
            from: support.clone(),
            to: rcpts.clone(),
            subject,
            date: now,
            text,
            stranger: None,
        };
        tx.put_message(&record)?;
        tx.index_msgid(&message_id, ticket.id)?;
        ticket.message_count += 1;
        ticket.updated_at = now;
        ticket.version += 1;
        ticket.public_replies.push(PublicReply {
            version: ticket.version,
            agent: agent.name.clone(),
            message: seq,
        });
        crate::sla::first_response_queued(ticket, &rules.sla, now);
        if ticket.status == Status::New {
            ticket.status = Status::Open;
        }
        tx.add_event(
            ticket,
            super::event(
                now,
                EventKind::Replied,
                &agent.name,
                format!(
                    "reply by {} {} {} as message {seq}{}",
                    agent.name,
                    if pushed {
                        "shown in the chat to"
                    } else {
                        "sent to"
                    },
                    rcpts.join(", "),
                    if attachments.is_empty() {
                        String::new()
                    } else {
                        format!(" with {} attachment(s)", attachments.len())
                    }
                ),
            )
            .about(seq),
        )?;
        Ok(seq)
    }

    /// Tells the customer that an agent resolved or closed the ticket without
    /// writing (`acknowledgement.resolved_template`), so a request never
    /// just goes quiet; a reply reopens it. None when no template is set.
    pub(super) fn resolved_notice(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        now: i64,
    ) -> Result<Option<MessageSeq>, StoreError> {
        let rules = self.rules.current();
        let Some(template) = &rules.resolved else {
            return Ok(None);
        };
        // Switched off for this queue in rules/customer.toml.
        if !rules.customer.for_queue(&ticket.queue).resolved {
            return Ok(None);
        }
        if let Some(b) = tx.bouncing(&ticket.requester)? {
            let reason = format!(
                "no resolved notice: {}",
                super::bounce_facts::bouncing_reason(&ticket.requester, &b)
            );
            tracing::info!(%reason, "resolved notice suppressed");
            tx.add_event(
                ticket,
                crate::model::Event::new(now, EventKind::AckSuppressed, "postdesk", reason),
            )?;
            return Ok(None);
        }
        // Composed and queued like every generated mail to the customer.
        let seq = self.queue_customer_mail(tx, ticket, template, None, now)?;
        let requester = ticket.requester.clone();
        tx.add_event(
            ticket,
            super::event(
                now,
                EventKind::CustomerNotified,
                "postdesk",
                format!(
                    "{} told the ticket is {} (message {seq})",
                    requester,
                    ticket.status.as_str()
                ),
            ),
        )?;
        Ok(Some(seq))
    }

    /// Message-IDs of the ticket's conversation as the customer holds it
    /// (their mail, our public replies, our acknowledgement and notices),
    /// oldest first, for References.
    pub(super) fn references(
        &self,
        tx: &mut Tx<'_>,
        ticket: &Ticket,
    ) -> Result<Vec<String>, StoreError> {
        Ok(references_in(&tx.ticket_messages(ticket.id)?, ticket))
    }
}

/// [`Processor::references`] of messages already read.
fn references_in(messages: &[MessageRecord], ticket: &Ticket) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .filter(|m| m.stranger.is_none())
        .filter(|m| {
            matches!(m.kind, MessageKind::Customer | MessageKind::Agent)
                || (m.kind == MessageKind::Auto && m.direction == Direction::Outbound)
        })
        .map(|m| m.message_id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    if let Some(last) = &ticket.last_customer_message_id
        && !ids.contains(last)
    {
        ids.push(last.clone());
    }
    super::bounded_references(&ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        Agent {
            name: "alice".into(),
            display_name: "Alice".into(),
            address: "alice@example.test".into(),
            alternates: vec!["alice@home.example".into()],
            queues: vec![],
            skills: vec![],
            password_hash: None,
        }
    }

    #[test]
    fn redacts_every_agent_address() {
        let t = "Alice\nALICE@Example.test | alice@home.example\nbob@example.test";
        assert_eq!(
            redact(t, &agent(), "support@example.test"),
            "Alice\nsupport@example.test | support@example.test\nbob@example.test"
        );
    }

    fn customer_message(seq: u64, text: &str) -> MessageRecord {
        MessageRecord {
            seq,
            ticket: Some(1),
            message_id: format!("<{seq}@customer.example>"),
            direction: Direction::Inbound,
            kind: MessageKind::Customer,
            from: "kunde@example.de".into(),
            to: vec!["support@example.test".into()],
            subject: "Drucker".into(),
            date: 1_700_000_000 + seq as i64,
            text: text.into(),
            stranger: None,
        }
    }

    #[test]
    fn the_status_line_speaks_the_language_of_the_customers_latest_words() {
        let german = customer_message(
            1,
            "Der Drucker ist kaputt und ich kann nicht drucken, bitte helfen Sie mir.",
        );
        let english = customer_message(2, "The printer is broken and I cannot print, please help.");
        let german_again = customer_message(3, "Es geht wieder nicht, bitte noch einmal.");
        let thanks = customer_message(4, "Danke!");
        assert_eq!(customer_language(&[]).lang, "en");
        assert_eq!(customer_language(std::slice::from_ref(&german)).lang, "de");
        assert_eq!(
            customer_language(&[german.clone(), english.clone()]).lang,
            "en"
        );
        // Too short to tell: the message before it decides.
        assert_eq!(
            customer_language(&[german.clone(), english.clone(), german_again, thanks]).lang,
            "de"
        );
        // Another language nobody translated: English.
        let french = customer_message(
            4,
            "Je ne peux pas imprimer, merci de votre aide pour le fichier.",
        );
        assert_eq!(customer_language(&[german.clone(), french]).lang, "en");
        // Our own mail and a stranger's say nothing about the customer.
        let mut ours =
            customer_message(5, "The printer is broken and I cannot print, please help.");
        ours.direction = Direction::Outbound;
        ours.kind = MessageKind::Agent;
        let mut stranger = english.clone();
        stranger.seq = 7;
        stranger.date += 10;
        stranger.stranger = Some("not a participant".into());
        assert_eq!(
            customer_language(&[german.clone(), ours, stranger]).lang,
            "de"
        );
        let line = with_status_link(&customer_texts::DE, "Erledigt.", "https://h/status/x");
        assert_eq!(
            line,
            "Erledigt.\n\n-- \nIhre Anfrage online: https://h/status/x\n"
        );
    }

    #[test]
    fn subjects_get_one_tag_and_one_re() {
        let mut t = crate::model::Ticket {
            id: 7,
            subject: "Re: RE: Printer".into(),
            status: Status::New,
            priority: crate::model::Priority::Normal,
            queue: "general".into(),
            assignee: None,
            requester: "c@example.org".into(),
            requester_name: String::new(),
            participants: Default::default(),
            created_at: 0,
            updated_at: 0,
            message_count: 0,
            next_event: 0,
            tags: vec![],
            sla: None,
            last_customer_message_id: None,
            version: 0,
            public_replies: vec![],
            unverified: false,
        };
        assert_eq!(reply_subject(&t), "Re: [#7] Printer");
        t.subject = "[#7] Printer".into();
        assert_eq!(reply_subject(&t), "Re: [#7] Printer");
    }
}
