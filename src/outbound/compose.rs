//! Composing postdesk's own system mail (notices to agents) and queueing it
//! in the caller's transaction.

use super::queue::enqueue;
use crate::config::Config;
use crate::model::{Direction, MessageKind, MessageRecord, Ticket};
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
    })?;
    tx.index_msgid(&message_id, ticket.id)?;
    ticket.message_count += 1;
    enqueue(tx, seq, Some(ticket.id), from, vec![to.to_string()], now)?;
    Ok(())
}
