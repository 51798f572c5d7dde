//! Replies to a message postdesk never received.
//!
//! When the original went to a list or to someone else and only the replies
//! were copied to support, the replies share a parent (In-Reply-To /
//! References) that no ticket holds. Like JWZ threading's "empty container"
//! (and notmuch, and mail clients), we remember the ids a message references
//! but we never saw, so a later reply to the same parent finds its ticket.
//!
//! An id only seen referenced proves less than one of a message we hold, so
//! three rules bound it:
//! - ids that cannot identify anything are never remembered ([`identifying`]:
//!   `<yes>`, no `@`, no domain, a too short local part);
//! - an id that turns up in unrelated conversations (a message threaded into
//!   one ticket by the ids we hold references it, but it names only others)
//!   is marked ambiguous and never used again;
//! - it joins only mail from a participant of the ticket: anyone can quote a
//!   public list post's id, and a stranger who wrote first must not own the
//!   conversation of the customers who reply after them. A non-participant's
//!   reply to the same parent opens its own ticket (with a note), and later
//!   replies from its sender join that one.

use super::parse::Parsed;
use crate::model::TicketId;
use crate::store::{StoreError, Tx};

/// A local part shorter than this is a word (`<yes@x.org>`), not an id.
const MIN_LOCAL: usize = 6;

/// Whether `id` can identify one message: an `@` with a local part of at
/// least [`MIN_LOCAL`] characters and a dotted domain other than localhost.
pub fn identifying(id: &str) -> bool {
    let Some((local, domain)) = id.rsplit_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    local.chars().count() >= MIN_LOCAL
        && !local.chars().all(|c| c.is_ascii_digit())
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.starts_with("localhost")
        && domain != "example"
}

/// At most this many referenced ids of a message are looked up or kept
/// (the nearest ancestors): each may name several tickets, and a message
/// with a hundred References must not cost a hundred lookups and writes.
const MAX_IDS_PER_MESSAGE: usize = 20;

/// The parent ids of a message, nearest first, that can identify something.
fn referenced(parsed: &Parsed) -> impl Iterator<Item = &String> {
    parsed
        .in_reply_to
        .iter()
        .chain(parsed.references.iter().rev())
        .filter(|id| identifying(id))
        .filter(move |id| parsed.message_id.as_deref() != Some(id.as_str()))
        .take(MAX_IDS_PER_MESSAGE)
}

/// What the unseen parents of a message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnseenMatch {
    /// The sender takes part in `ticket`, which references the same parent.
    Joined { ticket: TicketId, id: String },
    /// `ticket` references the same parent, but the sender is not one of its
    /// participants: not joined.
    NotParticipant { ticket: TicketId, id: String },
}

/// Looks the message's unseen parents up, nearest first.
pub fn find(
    tx: &mut Tx<'_>,
    parsed: &Parsed,
    sender: &str,
) -> Result<Option<UnseenMatch>, StoreError> {
    let sender = sender.to_ascii_lowercase();
    let mut refused = None;
    // The parent itself arriving late (its own Message-ID was referenced) joins too.
    let own = parsed.message_id.iter().filter(|id| identifying(id));
    for id in own.chain(referenced(parsed)) {
        let Some(entry) = tx.unseen_ref(id)? else {
            continue;
        };
        if entry.ambiguous {
            continue;
        }
        for t in entry.tickets {
            let Some(ticket) = tx.ticket(t)? else {
                continue;
            };
            if !sender.is_empty() && ticket.participants.contains(&sender) {
                return Ok(Some(UnseenMatch::Joined {
                    ticket: t,
                    id: id.clone(),
                }));
            }
            if refused.is_none() {
                refused = Some(UnseenMatch::NotParticipant {
                    ticket: t,
                    id: id.clone(),
                });
            }
        }
    }
    Ok(refused)
}

/// Remembers the unseen parents of a message now stored in `ticket`.
/// `threaded` says the message joined `ticket` by threading: an unseen
/// parent it references that names only other tickets is then seen in
/// unrelated conversations, and becomes ambiguous.
pub fn remember(
    tx: &mut Tx<'_>,
    parsed: &Parsed,
    ticket: TicketId,
    threaded: bool,
) -> Result<(), StoreError> {
    for id in referenced(parsed) {
        if tx.lookup_msgid(id)?.is_some() {
            continue; // a message we hold: the Message-ID index knows it
        }
        if threaded
            && let Some(entry) = tx.unseen_ref(id)?
            && !entry.ambiguous
            && !entry.tickets.is_empty()
            && !entry.tickets.contains(&ticket)
        {
            tracing::info!(id = %id, ticket, "unseen parent found in unrelated conversations");
            tx.mark_unseen_ref_ambiguous(id)?;
            continue;
        }
        tx.note_unseen_ref(id, ticket)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_identify_nothing_are_ignored() {
        for bad in [
            "yes",
            "no-at-sign",
            "abcdefgh@",
            "yes@example.org",
            "1234567@example.org",
            "abcdefgh@localhost",
            "abcdefgh@localhost.localdomain",
            "abcdefgh@host",
            "abcdefgh@.org",
        ] {
            assert!(!identifying(bad), "{bad}");
        }
        for good in [
            "000-real-root@example.org",
            "87bmc6lp3h.fsf@len.workgroup",
            "CAF=abc123@mail.gmail.com",
        ] {
            assert!(identifying(good), "{good}");
        }
    }
}
