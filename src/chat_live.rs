//! Which tickets have their chat visitor connected right now. The
//! processor asks before mailing an agent's reply: a connected visitor
//! sees it in the widget (their stream reads the ticket's messages), so it
//! is not mailed as well; the transcript carries it once they leave.
//!
//! In memory on purpose: after a restart nobody is connected until their
//! widget reconnects, and a reply meanwhile is mailed, which loses nothing.
//! A visitor counts as connected for [`GRACE`] after their last stream or
//! long poll ended: the long-polling widget is between two polls then.

use crate::model::TicketId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long after a stream or poll ended its visitor still counts as there.
pub const GRACE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Entry {
    open: usize,
    left: Option<Instant>,
}

#[derive(Clone, Default)]
pub struct Live {
    streams: Arc<Mutex<HashMap<TicketId, Entry>>>,
}

/// One open stream of a ticket's visitor; dropping it disconnects.
pub struct Connected {
    live: Live,
    ticket: TicketId,
}

impl Live {
    /// Whether a visitor of `ticket` has a stream open.
    pub fn is_connected(&self, ticket: TicketId) -> bool {
        let map = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&ticket)
            .is_some_and(|e| e.open > 0 || e.left.is_some_and(|at| at.elapsed() < GRACE))
    }

    pub fn connect(&self, ticket: TicketId) -> Connected {
        let mut map = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, e| e.open > 0 || e.left.is_some_and(|at| at.elapsed() < GRACE));
        map.entry(ticket).or_default().open += 1;
        Connected {
            live: self.clone(),
            ticket,
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut map = self
            .live
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get_mut(&self.ticket) {
            e.open = e.open.saturating_sub(1);
            e.left = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_connected_while_any_of_its_streams_is_open() {
        let live = Live::default();
        assert!(!live.is_connected(7));
        let a = live.connect(7);
        let b = live.connect(7);
        drop(a);
        assert!(live.is_connected(7));
        drop(b);
        assert!(live.is_connected(7), "between two long polls");
        live.streams.lock().unwrap().get_mut(&7).unwrap().left = Instant::now().checked_sub(GRACE);
        assert!(!live.is_connected(7));
    }
}
