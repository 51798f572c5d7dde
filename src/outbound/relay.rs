//! Delivery of one message through the configured relay: SMTP(S) via
//! mail-send, or an outbox Maildir folder.

use crate::config::Relay;

/// How a delivery attempt ended, as the queue needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: 4xx, connection refused, timeout, local I/O trouble.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Will never succeed: 5xx.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Delivers `raw` from `mail_from` to `rcpt_to` through `relay`.
pub async fn deliver(
    relay: &Relay,
    helo: &str,
    timeout: std::time::Duration,
    mail_from: &str,
    rcpt_to: &[String],
    raw: &[u8],
) -> Result<(), DeliveryError> {
    let _ = (relay, helo, timeout, mail_from, rcpt_to, raw);
    todo!("relay delivery")
}
