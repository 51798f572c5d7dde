//! The one source of time. Everything that reads "now" goes through a
//! [`Clock`], so tests can move time without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct Clock {
    /// Offset in seconds added to the system time (0 in production).
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Clock {
            offset: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        sys + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock (and its clones) forward; for tests.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

/// Formats unix seconds as an RFC 3339 UTC string.
pub fn rfc3339(secs: i64) -> String {
    use jiff::Timestamp;
    // A peer's Date header may name any year: clamp to what jiff represents.
    let secs = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(secs)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert!(
            rfc3339(i64::MAX).starts_with("9999-12-3"),
            "{}",
            rfc3339(i64::MAX)
        );
        assert!(!rfc3339(i64::MIN).is_empty());
    }

    #[test]
    fn advance_moves_all_clones() {
        let c = Clock::system();
        let d = c.clone();
        let before = d.now();
        c.advance(3600);
        assert!(d.now() >= before + 3600);
    }
}
