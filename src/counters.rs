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

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
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
/// SLA warnings fired (committed).
pub static SLA_WARNINGS: Counter = Counter::new();
/// SLA breaches fired (committed).
pub static SLA_BREACHES: Counter = Counter::new();
/// Looks at the store by live chat streams and long polls (each reads the
/// conversation's ticket): they look when their ticket changed, not on a timer.
pub static CHAT_STREAM_READS: Counter = Counter::new();

/// A latency histogram with fixed buckets (seconds), Prometheus-style:
/// each bucket counts observations at or below its bound.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus `+Inf`.
    buckets: [AtomicU64; 16],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new(bounds: &'static [f64]) -> Histogram {
        assert!(bounds.len() < 16);
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; 16],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative `(upper bound, count)` pairs ending with `+Inf`, the
    /// observation count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(String, u64)>, u64, f64) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(self.bounds.len() + 1);
        for (i, b) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            out.push((b.to_string(), cumulative));
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        out.push(("+Inf".into(), cumulative));
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (out, cumulative, sum)
    }
}

/// From a message's durable commit in the spool to its ticket's commit by
/// the processor: how long a customer's mail waits before agents see it.
/// Messages spooled before the daemon started are not observed (their
/// commit instant is not known).
pub static PROCESSING_LATENCY: Histogram = Histogram::new(&[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
]);

/// When each spooled message was committed, for [`PROCESSING_LATENCY`].
/// Bounded: beyond [`SPOOLED_AT_MAX`] entries (a processor far behind) the
/// oldest are forgotten and go unobserved rather than grow memory.
static SPOOLED_AT: std::sync::Mutex<std::collections::BTreeMap<u64, std::time::Instant>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
const SPOOLED_AT_MAX: usize = 100_000;

/// The spool committed `seqs` now.
pub fn spooled(seqs: &[u64]) {
    let now = std::time::Instant::now();
    let mut map = SPOOLED_AT.lock().unwrap_or_else(|e| e.into_inner());
    for s in seqs {
        map.insert(*s, now);
    }
    while map.len() > SPOOLED_AT_MAX {
        map.pop_first();
    }
}

/// The processor committed the tickets of `seqs` now.
pub fn processed(seqs: &[u64]) {
    let now = std::time::Instant::now();
    let mut map = SPOOLED_AT.lock().unwrap_or_else(|e| e.into_inner());
    for s in seqs {
        if let Some(at) = map.remove(s) {
            PROCESSING_LATENCY.observe(now.saturating_duration_since(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        static H: Histogram = Histogram::new(&[0.01, 0.1, 1.0]);
        H.observe(Duration::from_millis(5));
        H.observe(Duration::from_millis(50));
        H.observe(Duration::from_millis(50));
        H.observe(Duration::from_secs(5));
        let (buckets, count, sum) = H.snapshot();
        let counts: Vec<u64> = buckets.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [1, 3, 3, 4]);
        assert_eq!(buckets.last().unwrap().0, "+Inf");
        assert_eq!(count, 4);
        assert!((sum - 5.105).abs() < 1e-6, "{sum}");
    }
}
