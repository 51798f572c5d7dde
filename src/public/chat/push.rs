//! When a chat stream or long poll looks at the store again: only when
//! something it shows may have changed, never on a timer of its own (with
//! many widgets open, reading every stream's ticket a few times a second
//! was load for nothing, and lines came up to the timer's period late).
//!
//! What it waits for follows from its last look ([`Wake::after`]):
//! - its ticket known and nothing held back: a commit that changes that
//!   ticket (the store tells each commit's tickets, `store::TicketChanges`);
//! - its ticket not made yet from the first line, or a line held back
//!   behind a message still in the spool: any commit (the processor's
//!   commit that takes the spooled message is one); both last as long as
//!   the processor takes for one message;
//! - no line sent yet: a conversation's first line (any conversation's:
//!   first lines are rare next to commits).
//!
//! The caller keeps a long fallback timer (the keep-alive) for anything
//! this misses.

use crate::model::TicketId;
use crate::store::Store;
use tokio::sync::watch;

/// What a stream waits for after a look at the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Ticket(TicketId),
    Commit,
    FirstLine,
}

impl Wake {
    /// What to wait for after a look that found `ticket` (None: not made
    /// yet), held lines back (`withheld`) or not, and with a line spooled
    /// (`sent`) or not.
    pub fn after(ticket: Option<TicketId>, withheld: bool, sent: bool) -> Wake {
        match ticket {
            _ if withheld => Wake::Commit,
            Some(t) => Wake::Ticket(t),
            None if sent => Wake::Commit,
            None => Wake::FirstLine,
        }
    }
}

/// One stream's (or poll's) receivers.
pub struct Waiters {
    ticket: Option<(TicketId, watch::Receiver<u64>)>,
    commits: watch::Receiver<u64>,
    first_lines: watch::Receiver<u64>,
}

impl Waiters {
    /// Watches `ticket` already when the conversation knows it, so the
    /// first look needs no second one ([`Waiters::watch`]).
    pub fn new(
        store: &Store,
        first_lines: &watch::Sender<u64>,
        ticket: Option<TicketId>,
    ) -> Waiters {
        Waiters {
            ticket: ticket.map(|t| (t, store.ticket_changes().watch(t))),
            commits: store.ticket_changes().watch_commits(),
            first_lines: first_lines.subscribe(),
        }
    }

    /// Marks every change so far as seen; called just before a look at the
    /// store, so a commit during the look wakes the wait after it.
    pub fn seen(&mut self) {
        if let Some((_, rx)) = &mut self.ticket {
            rx.borrow_and_update();
        }
        self.commits.borrow_and_update();
        self.first_lines.borrow_and_update();
    }

    /// Watches `ticket` from now on. False when it is new: a commit
    /// between the look that found it and now was not watched, so the
    /// caller looks once more before it waits.
    pub fn watch(&mut self, store: &Store, ticket: TicketId) -> bool {
        if self.ticket.as_ref().is_some_and(|(t, _)| *t == ticket) {
            return true;
        }
        self.ticket = Some((ticket, store.ticket_changes().watch(ticket)));
        false
    }

    /// Resolves at the next change `wake` asks for (never, if its sender
    /// is gone: the caller's timer still runs).
    pub async fn changed(&mut self, wake: Wake) {
        let rx = match (wake, &mut self.ticket) {
            (Wake::Ticket(t), Some((watched, rx))) if *watched == t => rx,
            (Wake::Ticket(_), _) | (Wake::Commit, _) => &mut self.commits,
            (Wake::FirstLine, _) => &mut self.first_lines,
        };
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_waits_for_its_ticket_unless_a_line_is_held_back_or_none_is_made() {
        assert_eq!(Wake::after(Some(4), false, true), Wake::Ticket(4));
        assert_eq!(Wake::after(Some(4), true, true), Wake::Commit);
        assert_eq!(Wake::after(None, false, true), Wake::Commit);
        assert_eq!(Wake::after(None, false, false), Wake::FirstLine);
    }
}
