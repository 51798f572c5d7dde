//! The durable outbound queue and the sender that drains it.
//!
//! Everything postdesk sends is first committed as an [`OutboundJob`] together
//! with the ticket change that caused it (see [`queue::enqueue`]); the
//! [`sender`] delivers due jobs through the configured relay, retries
//! transient failures with exponential backoff until `outbound.lifetime`, and
//! turns permanent failures into ticket events.
//!
//! [`OutboundJob`]: crate::model::OutboundJob

pub mod compose;
pub mod mta_sts;
pub mod mx;
pub mod queue;
pub mod relay;
pub mod sender;
pub mod tls_policy;

#[cfg(test)]
mod testutil;
