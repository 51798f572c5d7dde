//! Tickets an agent opens on a customer's behalf (a phone call, a walk-in),
//! from the JSON API (`POST /api/v1/tickets`) and the web view's
//! `/tickets/new` alike.
//!
//! The request becomes a message from the customer committed to the spool
//! first, so it takes the same path as mail (routing, SLA, acknowledgement
//! to the customer, agents notified) and survives a crash once answered.

use crate::clock::Clock;
use crate::model::{MessageSeq, TicketId};
use crate::process::Processor;
use crate::spool::Spool;
use crate::store::StoreError;

/// What the agent typed.
pub struct NewTicket {
    /// The acting agent's name (rules/agents.toml).
    pub agent: String,
    /// The customer's address.
    pub customer: String,
    pub name: String,
    pub subject: String,
    pub body: String,
    /// `phone` (default), `walk-in`, … : recorded as `X-Postdesk-Channel`.
    pub channel: Option<String>,
}

/// Where the request got to.
pub enum Opened {
    /// The processor made the ticket from the spooled message `seq`.
    Ticket { ticket: TicketId, seq: MessageSeq },
    /// Committed to the spool; the processor has not made the ticket yet.
    Spooled(MessageSeq),
}

#[derive(Debug, thiserror::Error)]
pub enum NewTicketError {
    /// The request itself is wrong (the text says how); nothing was taken.
    #[error("{0}")]
    Invalid(String),
    /// The daemon could not take it (no mailbox configured, spool refused).
    #[error("not taken: {0}")]
    NotTaken(String),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

/// Checks `req`, commits it to the spool as the customer's message, and
/// waits up to about five seconds for the processor to make the ticket.
pub async fn open(
    processor: &Processor,
    spool: &Spool,
    clock: &Clock,
    req: NewTicket,
) -> Result<Opened, NewTicketError> {
    use crate::outbound::compose::{self, Kind, Outgoing};
    let cfg = processor.cfg.clone();
    let rules = processor.rules.current();
    let agent = rules.agents.by_name(&req.agent).ok_or_else(|| {
        NewTicketError::Invalid(format!("no agent {:?} in agents.toml", req.agent))
    })?;
    let customer = crate::syntax::mailbox(req.customer.trim())
        .ok_or_else(|| NewTicketError::Invalid(format!("{:?} is not an address", req.customer)))?;
    let subject = crate::syntax::header_text(&req.subject, crate::syntax::MAX_SUBJECT);
    if subject.is_empty() || req.body.trim().is_empty() {
        return Err(NewTicketError::Invalid(
            "subject and body are required".into(),
        ));
    }
    let channel = crate::syntax::header_text(req.channel.as_deref().unwrap_or("phone"), 32)
        .to_ascii_lowercase();
    if !channel
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(NewTicketError::Invalid(format!(
            "channel {channel:?}: letters, digits and -"
        )));
    }
    let Some(mailbox) = cfg.mailboxes.first() else {
        return Err(NewTicketError::NotTaken("no [[mailbox]] configured".into()));
    };
    let now = clock.now();
    let mut nonce = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let raw = compose::render(
        &Outgoing {
            kind: Kind::OnBehalf,
            from: (
                crate::syntax::header_text(&req.name, crate::syntax::MAX_NAME),
                customer.clone(),
            ),
            to: mailbox.address.clone(),
            cc: Vec::new(),
            reply_to: None,
            subject,
            message_id: format!("{channel}.{nonce}@{}", cfg.server.hostname),
            date: now,
            in_reply_to: None,
            references: Vec::new(),
            body: format!("{}\n", req.body.trim_end()),
            attachments: &[],
            extra_headers: vec![
                ("X-Postdesk-Channel", channel.clone()),
                ("X-Postdesk-Taken-By", agent.name.clone()),
            ],
        },
        &cfg.server.hostname,
    );
    let envelope = crate::model::Envelope {
        mail_from: customer,
        rcpt_to: vec![mailbox.address.clone()],
        received_at: now,
        source: crate::model::Source::Api,
        peer: format!("api ({})", agent.name),
        helo: String::new(),
        imap: None,
        sender_auth: None,
        imported_as: None,
    };
    let seq = spool
        .submit(envelope, raw)
        .await
        .map_err(|e| NewTicketError::NotTaken(e.to_string()))?;
    // The processor is woken by the commit; wait a little for the ticket.
    for _ in 0..250 {
        let store = processor.store.clone();
        let message = tokio::task::spawn_blocking(move || store.message(seq))
            .await
            .map_err(|e| NewTicketError::NotTaken(format!("task failed: {e}")))??;
        if let Some(ticket) = message.and_then(|m| m.ticket) {
            return Ok(Opened::Ticket { ticket, seq });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(Opened::Spooled(seq))
}
