//! Which tickets have their chat visitor connected right now. The
//! processor asks before mailing an agent's reply: a connected visitor
//! sees it in the widget (their stream reads the ticket's messages), so it
//! is not mailed as well; the transcript carries it once they leave.
//!
//! In memory on purpose: after a restart nobody is connected until their
//! widget reconnects, and a reply meanwhile is mailed, which loses nothing.

use crate::model::TicketId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Clone, Default)]
pub struct Live {
    streams: Arc<Mutex<HashMap<TicketId, usize>>>,
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
        map.get(&ticket).is_some_and(|n| *n > 0)
    }

    pub fn connect(&self, ticket: TicketId) -> Connected {
        let mut map = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(ticket).or_default() += 1;
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
        if let Some(n) = map.get_mut(&self.ticket) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ticket);
            }
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
        assert!(!live.is_connected(7));
    }
}
