//! The sender task: picks due jobs from the queue and delivers them.

use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// Runs until `shutdown` turns true. `wake` is notified whenever new jobs are queued.
pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    clock: Clock,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = (cfg, store, clock, wake, shutdown);
    todo!("outbound sender")
}
