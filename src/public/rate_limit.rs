//! Hourly allowances for the web form, per client address and per typed
//! email address, kept in memory: a restart forgets them, which costs at
//! most one more hour's allowance. Fixed windows of an hour per key.

use std::collections::HashMap;
use std::sync::Mutex;

const WINDOW_SECS: i64 = 3600;
/// Above this many keys, the expired windows are dropped (a flood of
/// addresses cannot grow the map without bound for long).
const PRUNE_ABOVE: usize = 10_000;

/// One kind of allowance (per IP, per address).
#[derive(Default)]
pub struct RateLimit {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimit {
    /// Takes one from `key`'s allowance of `max` an hour at `now`; when it
    /// is used up, Err(seconds until the window ends).
    pub fn take(&self, key: &str, max: u32, now: i64) -> Result<(), i64> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, (start, _)| now - *start < WINDOW_SECS);
        }
        let entry = windows.entry(key.to_string()).or_insert((now, 0));
        if now - entry.0 >= WINDOW_SECS {
            *entry = (now, 0);
        }
        if entry.1 >= max {
            return Err((entry.0 + WINDOW_SECS - now).max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_is_used_up_then_renewed_after_the_hour() {
        let l = RateLimit::default();
        assert_eq!(l.take("a", 2, 100), Ok(()));
        assert_eq!(l.take("a", 2, 200), Ok(()));
        assert_eq!(l.take("a", 2, 300), Err(3400));
        assert_eq!(l.take("b", 2, 300), Ok(()));
        assert_eq!(l.take("a", 2, 100 + 3600), Ok(()));
    }
}
