//! Enqueuing outbound mail inside the caller's transaction.

use crate::model::{MessageSeq, OutboundJob, SystemMail, TicketId};
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

/// Stores and queues a finished message of ours that belongs to no ticket
/// (a notice to the postmaster), in the caller's transaction.
pub fn enqueue_system(tx: &mut Tx<'_>, mail: &SystemMail) -> Result<u64> {
    let seq = tx.next_id("next_message")?;
    tx.put_raw(seq, &mail.raw)?;
    enqueue(
        tx,
        seq,
        None,
        mail.mail_from.clone(),
        mail.rcpt_to.clone(),
        mail.at,
    )
}
