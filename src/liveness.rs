//! Whether the stages that make progress on mail are alive and not stuck,
//! for the systemd watchdog ([`crate::service`]): a stuck spool writer means
//! every SMTP client waits for a 250 that never comes; a stuck processor means
//! mail is stored but never becomes tickets. Both look fine from outside (the
//! listeners still accept), so the daemon itself must stop pinging and let
//! systemd restart it.
//!
//! Each stage marks itself running (a guard that clears on exit or panic)
//! and busy around each unit of work (a guard holding the start time). A
//! stage is unhealthy when it is not running, or busy for longer than the
//! limit; idle (waiting for work) is healthy. Plain statics, like
//! [`crate::counters`]: one daemon per process.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One stage's liveness record.
pub struct Stage {
    name: &'static str,
    running: AtomicBool,
    /// Milliseconds since [`epoch`] when the current unit of work began (0: idle).
    busy_since: AtomicU64,
}

/// The spool writer thread (group commit of intake).
pub static SPOOL_WRITER: Stage = Stage::new("spool writer");
/// The processor (spool → tickets).
pub static PROCESSOR: Stage = Stage::new("processor");

/// Every stage the watchdog checks.
pub static STAGES: [&Stage; 2] = [&SPOOL_WRITER, &PROCESSOR];

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Monotonic milliseconds, never 0 (0 means idle).
fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

impl Stage {
    const fn new(name: &'static str) -> Stage {
        Stage {
            name,
            running: AtomicBool::new(false),
            busy_since: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Marks the stage running until the guard drops (the stage's loop
    /// returns, or its thread or task unwinds).
    pub fn running(&'static self) -> Running {
        epoch();
        self.running.store(true, Ordering::SeqCst);
        Running(self)
    }

    /// Marks the stage busy with one unit of work until the guard drops.
    pub fn busy(&'static self) -> Busy {
        self.busy_since.store(now_ms(), Ordering::SeqCst);
        Busy(self)
    }

    /// Why this stage is unhealthy, if it is: not running, or busy longer than `limit`.
    pub fn problem(&self, limit: Duration) -> Option<String> {
        self.problem_at(now_ms(), limit)
    }

    fn problem_at(&self, now: u64, limit: Duration) -> Option<String> {
        if !self.running.load(Ordering::SeqCst) {
            return Some(format!("the {} is not running", self.name));
        }
        let since = self.busy_since.load(Ordering::SeqCst);
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        (since != 0 && now.saturating_sub(since) > limit_ms).then(|| {
            format!(
                "the {} has been busy with one batch for {} ms",
                self.name,
                now - since
            )
        })
    }
}

/// The first unhealthy stage's problem, if any (see [`Stage::problem`]).
pub fn problem(limit: Duration) -> Option<String> {
    STAGES.iter().find_map(|s| s.problem(limit))
}

/// See [`Stage::running`].
#[must_use = "the stage counts as running only while the guard lives"]
pub struct Running(&'static Stage);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
        self.0.busy_since.store(0, Ordering::SeqCst);
    }
}

/// See [`Stage::busy`].
#[must_use = "the stage counts as busy only while the guard lives"]
pub struct Busy(&'static Stage);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy_since.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Own statics: the global stages are shared with every other unit test.
    static A: Stage = Stage::new("a");
    static B: Stage = Stage::new("b");

    #[test]
    fn a_stage_that_never_ran_or_stopped_is_unhealthy() {
        assert!(A.problem(Duration::from_secs(1)).is_some());
        let running = A.running();
        assert_eq!(A.problem(Duration::from_secs(1)), None);
        drop(running);
        assert_eq!(
            A.problem(Duration::from_secs(1)).as_deref(),
            Some("the a is not running")
        );
    }

    #[test]
    fn busy_is_healthy_until_the_limit_idle_always() {
        let _running = B.running();
        let limit = Duration::from_millis(1000);
        let busy = B.busy();
        let since = B.busy_since.load(Ordering::SeqCst);
        assert_eq!(B.problem_at(since + 1000, limit), None);
        assert!(B.problem_at(since + 1001, limit).is_some());
        drop(busy);
        assert_eq!(B.problem_at(since + 1_000_000, limit), None);
    }

    #[test]
    fn a_panicking_stage_stops_counting_as_running() {
        static C: Stage = Stage::new("c");
        let r = std::thread::spawn(|| {
            let _running = C.running();
            let _busy = C.busy();
            panic!("stage crashed");
        })
        .join();
        assert!(r.is_err());
        assert!(C.problem(Duration::from_secs(60)).is_some());
    }
}
