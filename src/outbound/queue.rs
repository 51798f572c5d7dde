//! Enqueuing outbound mail inside the caller's transaction.

use crate::model::{MessageSeq, OutboundJob, TicketId};
use crate::store::{Result, Tx};

/// Queues the already stored message `message` (raw bytes under that sequence)
/// for delivery, in the caller's transaction: it is sent if and only if the
/// change that produced it commits.
pub fn enqueue(
    tx: &mut Tx<'_>,
    message: MessageSeq,
    ticket: Option<TicketId>,
    mail_from: String,
    rcpt_to: Vec<String>,
    now: i64,
) -> Result<u64> {
    let id = tx.next_id("next_job")?;
    tx.put_job(&OutboundJob {
        id,
        message,
        ticket,
        mail_from,
        rcpt_to,
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
    })?;
    Ok(id)
}
