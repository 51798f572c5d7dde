//! The memory budget of SMTP intake: message bytes held by all sessions together.
//!
//! A message must be whole in memory when the spool commits it (redb writes
//! the raw bytes in one transaction), so spilling to a temporary file would
//! only move the copy, not remove it. Instead every session reserves memory
//! from one shared budget *before* its DATA buffer grows, and gives it back
//! when the message is committed or dropped. A session that finds the budget
//! spent stops buffering, reads the rest of the message to keep the protocol
//! in step, and answers 452 4.3.1: the client retries later and nothing it was
//! told is stored is lost. Without it, 200 sessions × 25 MiB could take 5 GiB.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Granularity of reservations: permits are KiB, so a 256 MiB budget is
/// 262,144 permits (far below the semaphore's limit).
const UNIT: u64 = 1024;

/// The budget shared by every session of one listener.
#[derive(Clone)]
pub struct InflightBudget {
    permits: Arc<Semaphore>,
    total_units: u64,
}

impl InflightBudget {
    /// A budget of `bytes` (rounded down to whole KiB, at least one).
    pub fn new(bytes: u64) -> InflightBudget {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        InflightBudget {
            // `units` is clamped to MAX_PERMITS, which is a usize.
            permits: Arc::new(Semaphore::new(usize::try_from(units).unwrap_or(1))),
            total_units: units,
        }
    }

    /// An empty reservation drawing on this budget.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: None,
            units: 0,
        }
    }

    /// Bytes not reserved by any session right now.
    #[cfg(test)]
    pub fn available_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }
}

/// The part of the budget one message holds; returned when dropped.
pub struct Reservation {
    budget: InflightBudget,
    held: Option<OwnedSemaphorePermit>,
    units: u64,
}

impl Reservation {
    /// Makes the reservation cover at least `bytes`, without waiting. False
    /// when the budget cannot give that much now (the reservation is unchanged).
    pub fn grow_to(&mut self, bytes: u64) -> bool {
        let want = bytes.div_ceil(UNIT);
        if want <= self.units {
            return true;
        }
        if want > self.budget.total_units {
            return false;
        }
        let Ok(more) = u32::try_from(want - self.units) else {
            return false;
        };
        match self.budget.permits.clone().try_acquire_many_owned(more) {
            Ok(permit) => {
                match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                }
                self.units = want;
                true
            }
            Err(_) => false,
        }
    }

    /// Gives everything back to the budget now.
    pub fn release(&mut self) {
        self.held = None;
        self.units = 0;
    }

    /// Bytes currently covered.
    pub fn bytes(&self) -> u64 {
        self.units * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_budget_and_give_back_on_drop() {
        let budget = InflightBudget::new(10 * 1024);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        assert!(a.grow_to(6 * 1024));
        assert!(a.grow_to(1)); // already covered
        assert_eq!(a.bytes(), 6 * 1024);
        assert!(!b.grow_to(5 * 1024), "only 4 KiB are left");
        assert_eq!(b.bytes(), 0);
        assert!(b.grow_to(4 * 1024 - 100));
        assert_eq!(budget.available_bytes(), 0);
        drop(a);
        assert_eq!(budget.available_bytes(), 6 * 1024);
        b.release();
        assert_eq!(budget.available_bytes(), 10 * 1024);
        assert!(
            !budget.reservation().grow_to(11 * 1024),
            "more than the whole budget"
        );
    }
}
