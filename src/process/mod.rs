//! The processor: turns spooled messages into ticket changes.
//!
//! It reads the spool in order; for each message it parses, classifies,
//! threads, writes ticket, message and event records, queues the
//! acknowledgement and removes the spool entry, all in one transaction. A
//! crash before the commit replays the message; after it, nothing is redone.

use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use crate::token::Tokens;
use std::sync::Arc;
use tokio::sync::Notify;

pub mod ack;

/// Everything the processor needs, shared with the thread that runs it.
pub struct Processor {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub clock: Clock,
    pub tokens: Tokens,
    /// Notified by the spool after each commit.
    pub committed: Arc<Notify>,
    /// Notified after outbound jobs were queued.
    pub outbound_wake: Arc<Notify>,
}

impl Processor {
    /// Processes the spool until `shutdown` is set and the spool is drained of what was there.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let _ = shutdown;
        todo!("processor")
    }
}
