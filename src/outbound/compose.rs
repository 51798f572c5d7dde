//! Composing postdesk's own system mail (notices and notifications to agents) and queueing it
//! in the caller's transaction.

use super::queue::enqueue;
use crate::config::Config;
use crate::model::{Direction, MessageKind, MessageRecord, MessageSeq, Ticket, TicketId};
use crate::store::{StoreError, Tx};
use mail_builder::headers::raw::Raw;

/// Queues an automatic notice about `ticket` to `to`, recorded as a system
/// message of the ticket. It carries Auto-Submitted and our loop header, so
/// no well-behaved responder answers it and we never answer an echo of it.
pub fn queue_notice(
    tx: &mut Tx<'_>,
    cfg: &Config,
    ticket: &mut Ticket,
    to: &str,
    subject: &str,
    body: &str,
    now: i64,
) -> Result<(), StoreError> {
    let seq = tx.next_id("next_message")?;
    let message_id = crate::process::our_message_id(ticket.id, seq, &cfg.server.hostname);
    let from = cfg.from_address().to_string();
    let raw = mail_builder::MessageBuilder::new()
        .from(from.clone())
        .to(to.to_string())
        .subject(subject.to_string())
        .message_id(message_id.clone())
        .date(mail_builder::headers::date::Date::new(now))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("X-Auto-Response-Suppress", Raw::new("All"))
        .header("X-Postdesk-Loop", Raw::new(cfg.server.hostname.clone()))
        .text_body(body.to_string())
        .write_to_vec()
        .unwrap_or_default();
    tx.put_raw(seq, &raw)?;
    tx.put_message(&MessageRecord {
        seq,
        ticket: Some(ticket.id),
        message_id: message_id.clone(),
        direction: Direction::Outbound,
        kind: MessageKind::System,
        from: from.clone(),
        to: vec![to.to_string()],
        subject: subject.to_string(),
        date: now,
        text: body.to_string(),
        stranger: None,
    })?;
    tx.index_msgid(&message_id, ticket.id)?;
    ticket.message_count += 1;
    enqueue(tx, seq, Some(ticket.id), from, vec![to.to_string()], now)?;
    Ok(())
}

/// A system mail to one agent: a notification, a notice why mail was not
/// posted, a command transcript, a held-reply notice.
pub struct AgentMail {
    /// The ticket it is about (its bounce address and Message-ID name it).
    pub ticket: Option<TicketId>,
    pub to: String,
    /// Display name of From; the address is the support address `from_addr`.
    pub from_name: String,
    pub from_addr: String,
    /// Where the agent's answer goes (an agent token address), if anywhere.
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: String,
    /// A plus-tag to carry in the Message-ID (`pd.TAG.mSEQ@host`), so a reply
    /// that lost its Reply-To is still recognised by its In-Reply-To.
    pub msgid_tag: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

impl AgentMail {
    /// Mail to `agent` about `ticket` that the agent can answer: from the
    /// ticket's support address, with the agent token for the ticket's
    /// current version in Reply-To and in the Message-ID.
    pub fn answerable(
        cfg: &Config,
        tokens: &crate::token::Tokens,
        ticket: &Ticket,
        agent: &crate::rules::agents::Agent,
        subject: String,
        body: String,
        now: i64,
    ) -> AgentMail {
        let support = cfg.support_address(&ticket.queue).to_string();
        AgentMail {
            ticket: Some(ticket.id),
            to: agent.address.clone(),
            from_name: cfg.from_display_name(),
            reply_to: Some(tokens.agent_address(
                &support,
                ticket.id,
                &agent.name,
                ticket.version,
                now,
            )),
            from_addr: support,
            subject,
            body,
            msgid_tag: Some(tokens.agent_tag(ticket.id, &agent.name, ticket.version, now)),
            in_reply_to: None,
            references: Vec::new(),
        }
    }
}

/// Queues `mail` in the caller's transaction. The record names the ticket but
/// is not listed among its messages (it is a copy for one agent, not part of
/// the conversation); its Message-ID is indexed, so a reply threads.
/// Returns the message sequence.
pub fn queue_agent_mail(
    tx: &mut Tx<'_>,
    cfg: &Config,
    tokens: &crate::token::Tokens,
    mail: AgentMail,
    now: i64,
) -> Result<MessageSeq, StoreError> {
    let seq = tx.next_id("next_message")?;
    let host = &cfg.server.hostname;
    let message_id = match (&mail.msgid_tag, mail.ticket) {
        (Some(tag), _) => format!("pd.{tag}.m{seq}@{host}"),
        (None, Some(t)) => crate::process::our_message_id(t, seq, host),
        (None, None) => crate::process::our_message_id(0, seq, host),
    };
    let mut b = mail_builder::MessageBuilder::new()
        .from((mail.from_name.clone(), mail.from_addr.clone()))
        .to(mail.to.clone())
        .subject(mail.subject.clone())
        .message_id(message_id.clone())
        .date(mail_builder::headers::date::Date::new(now))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("X-Auto-Response-Suppress", Raw::new("All"))
        .header("X-Postdesk-Loop", Raw::new(host.clone()))
        .text_body(mail.body.clone());
    if let Some(r) = &mail.reply_to {
        b = b.reply_to(r.clone());
    }
    if let Some(irt) = &mail.in_reply_to {
        b = b.in_reply_to(irt.clone());
    }
    if !mail.references.is_empty() {
        b = b.references(mail.references.clone());
    }
    // Writing into a Vec cannot fail.
    let raw = b.write_to_vec().unwrap_or_default();
    tx.put_raw(seq, &raw)?;
    tx.put_message_unlisted(&MessageRecord {
        seq,
        ticket: mail.ticket,
        message_id: message_id.clone(),
        direction: Direction::Outbound,
        kind: MessageKind::System,
        from: mail.from_addr.clone(),
        to: vec![mail.to.clone()],
        subject: mail.subject.clone(),
        date: now,
        text: mail.body.clone(),
        stranger: None,
    })?;
    let mail_from = match mail.ticket {
        Some(t) => {
            tx.index_msgid(&message_id, t)?;
            tokens.bounce_address(&mail.from_addr, t, seq)
        }
        None => mail.from_addr.clone(),
    };
    enqueue(tx, seq, mail.ticket, mail_from, vec![mail.to], now)?;
    Ok(seq)
}
