//! Which tickets each commit changed, for whoever waits on one: the live
//! chat's streams wait here for their ticket instead of reading the store
//! on a timer. Every write path that changes a ticket marks it in its
//! transaction (the same mark that queues it for the search index), so
//! nothing that adds a line to a ticket can commit without waking it.
//!
//! In memory on purpose: a waiter reads the store once when it starts, and
//! after a restart every waiter starts again.

use crate::model::TicketId;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use tokio::sync::watch;

/// A version per watched ticket, and one for every commit.
pub struct TicketChanges {
    /// Only tickets somebody watches (or watched since their last change).
    tickets: Mutex<HashMap<TicketId, watch::Sender<u64>>>,
    commits: watch::Sender<u64>,
}

impl Default for TicketChanges {
    fn default() -> TicketChanges {
        TicketChanges {
            tickets: Mutex::default(),
            commits: watch::channel(0).0,
        }
    }
}

impl TicketChanges {
    /// Changes with each commit that changes `ticket`. Mark the receiver
    /// seen (`borrow_and_update`) before reading the store, then wait on
    /// `changed()`: a commit between the two is not missed.
    pub fn watch(&self, ticket: TicketId) -> watch::Receiver<u64> {
        let mut map = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.receiver_count() > 0);
        map.entry(ticket)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Changes with every commit, whatever it wrote: for a waiter that
    /// does not know its ticket yet, or waits for the spool to move.
    pub fn watch_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Called after a commit with the tickets it changed.
    pub(super) fn committed(&self, tickets: &BTreeSet<TicketId>) {
        if !tickets.is_empty() {
            let mut map = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
            for t in tickets {
                if let Some(s) = map.get(t) {
                    if s.receiver_count() == 0 {
                        map.remove(t);
                    } else {
                        s.send_modify(|v| *v = v.wrapping_add(1));
                    }
                }
            }
        }
        self.commits.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Tickets with a sender kept (for the tests: none left behind).
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.tickets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Ticket;
    use crate::store::{Store, StoreError};

    #[test]
    fn a_commit_wakes_the_watchers_of_the_tickets_it_changed_and_no_others() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-ticket-changes-test-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let ticket = |id| Ticket::new(id, "ann@example.org", 0);
        store
            .write(|tx| {
                tx.put_ticket(&ticket(1))?;
                tx.put_ticket(&ticket(2))
            })
            .unwrap();
        let changes = store.ticket_changes();
        let (mut one, two) = (changes.watch(1), changes.watch(2));
        let mut commits = changes.watch_commits();

        store.write(|tx| tx.put_ticket(&ticket(1))).unwrap();
        assert!(one.has_changed().unwrap());
        assert!(!two.has_changed().unwrap());
        assert!(commits.has_changed().unwrap());

        // A commit that changes no ticket (a spooled message) wakes only
        // the waiters on every commit; a rolled-back one wakes nobody.
        one.borrow_and_update();
        commits.borrow_and_update();
        store.write(|_| Ok(())).unwrap();
        assert!(!one.has_changed().unwrap());
        assert!(commits.has_changed().unwrap());
        commits.borrow_and_update();
        let failed = store.write(|tx| {
            tx.put_ticket(&ticket(1))?;
            Err::<(), _>(StoreError::Unavailable("rolled back".into()))
        });
        assert!(failed.is_err());
        assert!(!one.has_changed().unwrap());
        assert!(!commits.has_changed().unwrap());

        // Watchers gone, their tickets are forgotten.
        drop((one, two));
        store.write(|tx| tx.put_ticket(&ticket(1))).unwrap();
        let three = changes.watch(3);
        assert_eq!(changes.kept(), 1);
        drop(three);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
