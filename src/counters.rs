//! Counters since the daemon started, for `/metrics`: what intake answered
//! and what delivery attempts came to. Plain atomics, no registry: each
//! counter is a name the metrics page lists, incremented where it happens.

use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonic counter.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Messages SMTP intake answered 250 for (committed).
pub static SMTP_ACCEPTED: Counter = Counter::new();
/// Recipients refused at RCPT (not ours).
pub static SMTP_REFUSED_RECIPIENT: Counter = Counter::new();
/// Messages refused for their size.
pub static SMTP_REFUSED_SIZE: Counter = Counter::new();
/// Messages deferred because the memory budget was spent (452).
pub static SMTP_DEFERRED_BUDGET: Counter = Counter::new();
/// Messages deferred because the store could not commit (451).
pub static SMTP_DEFERRED_STORE: Counter = Counter::new();
/// Connections refused at a connection limit (421).
pub static SMTP_REFUSED_CONNECTION: Counter = Counter::new();
/// Delivery attempts the relay accepted (wholly or for some recipients).
pub static OUTBOUND_DELIVERED: Counter = Counter::new();
/// Delivery attempts that failed for now (retried).
pub static OUTBOUND_DEFERRED: Counter = Counter::new();
/// Deliveries given up (permanent refusal or lifetime over).
pub static OUTBOUND_FAILED: Counter = Counter::new();
