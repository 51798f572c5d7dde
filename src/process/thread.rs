//! Which ticket does a message belong to? In order of trust:
//! 1. a signed plus-address (reply token; for delivery reports also the
//!    VERP address of our mail);
//! 2. In-Reply-To / References naming a Message-ID we saw or sent
//!    (also the Message-IDs quoted inside a report, and inside a forwarded
//!    message when the sender is a participant of its ticket);
//!    and, for the ticket's participants, a parent we never received that
//!    the ticket's messages reference too (`unseen.rs`);
//! 3. a subject tag `[#N]`, only when the sender already takes part in ticket N;
//!
//! A ticket found that was merged into another leads to the end of its
//! `merged_into` chain (A→B→C: C), whichever of the three found it: the
//! tokens, Message-IDs and tags in customers' mailboxes keep naming it.
//!
//! Otherwise no match: a new ticket.

use super::classify::Class;
use super::parse::Parsed;
use crate::config::Config;
use crate::model::{Envelope, TicketId};
use crate::store::{StoreError, Tx};
use crate::token::{Token, Tokens};
use regex::Regex;
use std::sync::LazyLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadMatch {
    pub ticket: TicketId,
    /// Why, in words for the ticket's event log.
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Found {
    pub matched: Option<ThreadMatch>,
    /// Something worth recording even though it did not match (an ignored subject tag).
    pub note: Option<String>,
}

static SUBJECT_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[#(\d{1,18})\]").unwrap_or_else(|e| panic!("built-in regex: {e}"))
});

/// How a match by a reply token begins its reason.
const REPLY_ADDRESS: &str = "reply address";
/// How a match by the signed status page begins its reason.
const STATUS_LINK: &str = "status link";

/// Whether a match proves its sender receives our mail at their address:
/// the reply token of our mail (signed for that recipient) or the signed
/// status link. Message-IDs and subject tags can be guessed or learnt.
pub fn proves_receipt(m: &ThreadMatch) -> bool {
    m.reason.starts_with(REPLY_ADDRESS) || m.reason.starts_with(STATUS_LINK)
}

/// The ticket number of the first `[#N]` tag in a subject.
pub fn subject_tag(subject: &str) -> Option<TicketId> {
    SUBJECT_TAG
        .captures(subject)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
}

/// Finds the ticket of a message of class `class` from `sender`. Threading
/// says only where a message belongs; whether its sender takes part in the
/// ticket is `participants.rs`'s question.
pub fn find(
    tx: &mut Tx<'_>,
    tokens: &Tokens,
    cfg: &Config,
    parsed: &Parsed,
    env: &Envelope,
    class: Class,
    sender: &str,
) -> Result<Found, StoreError> {
    match &env.source {
        // Anyone can type anyone's address into the form: whatever its
        // subject or headers say, it opens a ticket of its own.
        crate::model::Source::WebForm => {
            return Ok(Found {
                matched: None,
                note: Some("web form: always a new ticket".into()),
            });
        }
        // Written on the ticket's own status page, behind a verified link.
        crate::model::Source::StatusLink { ticket, recipient } => {
            if tx.ticket(*ticket)?.is_some() {
                return followed(tx, *ticket, format!("{STATUS_LINK} of {recipient}"));
            }
        }
        crate::model::Source::Smtp
        | crate::model::Source::Imap
        | crate::model::Source::Api
        | crate::model::Source::Import
        | crate::model::Source::Chat { .. } => {}
    }
    let bounce = class == Class::Bounce;
    // 1. signed addresses among the recipients that are ours
    let ours = env
        .rcpt_to
        .iter()
        .chain(parsed.to.iter())
        .chain(parsed.cc.iter())
        .filter(|a| a.contains('+') && cfg.mailbox_for(a).is_some());
    for addr in ours {
        let (ticket, reason) = match tokens.verify(addr, sender, env.received_at) {
            Some(Token::Reply { ticket }) => (ticket, format!("{REPLY_ADDRESS} {addr}")),
            // Every recipient of our mail sees its VERP address (Return-Path):
            // it proves nothing about the sender, so only delivery reports use it.
            Some(Token::Bounce { ticket, message }) if bounce => {
                (ticket, format!("bounce address of message {message}"))
            }
            Some(Token::Bounce { .. }) => continue,
            // Agent mail never gets here (the processor takes it aside first).
            Some(Token::Agent { .. } | Token::Comment { .. }) | None => continue,
        };
        if tx.ticket(ticket)?.is_some() {
            return followed(tx, ticket, reason);
        }
    }
    // 2. Message-IDs: the most direct parent first
    let ids = parsed
        .in_reply_to
        .iter()
        .chain(parsed.references.iter().rev())
        .chain(parsed.embedded_message_ids.iter());
    for id in ids {
        if let Some(ticket) = tx.lookup_msgid(id)? {
            let how = if parsed.in_reply_to.contains(id) {
                "In-Reply-To"
            } else if parsed.references.contains(id) {
                "References"
            } else if class != Class::Customer {
                "Message-ID quoted in the report"
            } else {
                // A person's forwarded copy of a ticket's mail: anyone may
                // hold one, so it threads only a participant's forward.
                if !is_participant(tx, ticket, sender)? {
                    continue;
                }
                "Message-ID of the forwarded message"
            };
            return followed(tx, ticket, format!("{how} <{id}>"));
        }
    }
    // 2b. a parent we never received, shared with a ticket the sender takes part in
    let unseen_note = match super::unseen::find(tx, parsed, sender)? {
        Some(super::unseen::UnseenMatch::Joined { ticket, id }) => {
            return Ok(found(ticket, format!("the unseen parent <{id}>")));
        }
        Some(super::unseen::UnseenMatch::NotParticipant { ticket, id }) => Some(format!(
            "#{ticket} also replies to the unseen <{id}>, but {sender} is not a participant of #{ticket}"
        )),
        None => None,
    };
    // 3. subject tag, trusted only from participants
    if let Some(n) = subject_tag(&parsed.subject) {
        if let Some(ticket) = tx.ticket(n)? {
            let sender_lc = sender.to_ascii_lowercase();
            // After a merge the survivor's participants count too (the
            // merged ticket's were united into it, others may have joined).
            let end = tx.survivor(n)?;
            let takes_part = ticket.participants.contains(&sender_lc)
                || (end != n
                    && tx
                        .ticket(end)?
                        .is_some_and(|t| t.participants.contains(&sender_lc)));
            if takes_part {
                return followed(
                    tx,
                    n,
                    format!("subject tag [#{n}] from participant {sender}"),
                );
            }
            return Ok(Found {
                matched: None,
                note: Some(format!(
                    "subject tag [#{n}] ignored: {sender} is not a participant of #{n}"
                )),
            });
        }
        return Ok(Found {
            matched: None,
            note: Some(format!("subject tag [#{n}] names no ticket")),
        });
    }
    Ok(Found {
        matched: None,
        note: unseen_note,
    })
}

fn is_participant(tx: &mut Tx<'_>, ticket: TicketId, sender: &str) -> Result<bool, StoreError> {
    let sender = sender.to_ascii_lowercase();
    Ok(!sender.is_empty()
        && tx
            .ticket(ticket)?
            .is_some_and(|t| t.participants.contains(&sender)))
}

/// The match for `ticket`, or for the ticket it was merged into (the end
/// of the chain), saying so.
fn followed(tx: &mut Tx<'_>, ticket: TicketId, reason: String) -> Result<Found, StoreError> {
    let end = tx.survivor(ticket)?;
    if end == ticket {
        return Ok(found(ticket, reason));
    }
    Ok(found(
        end,
        format!("{reason}; #{ticket} was merged into #{end}"),
    ))
}

fn found(ticket: TicketId, reason: String) -> Found {
    Found {
        matched: Some(ThreadMatch { ticket, reason }),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tags() {
        assert_eq!(subject_tag("Re: [#12] Printer"), Some(12));
        assert_eq!(subject_tag("[#12x] no"), None);
        assert_eq!(subject_tag("Ticket #12"), None);
        assert_eq!(subject_tag("[#99999999999999999999999]"), None);
    }
}
