//! History taken in from a shared mailbox: one message of `postdesk import
//! mbox`, received by the daemon (`POST /api/v1/import`).
//!
//! The message is committed to the spool like any mail, with
//! [`Source::Import`], so threading and routing are the processor's; the
//! source tells it to date the ticket by the message, acknowledge nobody,
//! notify no agent and start no SLA clock. A message the store already
//! holds (the processor's own dedup rule: Message-ID and body, or the whole
//! content's hash) is not spooled again, which makes an import repeatable.
//!
//! History may be imported as finished ([`HistoryStatus`]): the tickets it
//! opens are resolved or closed from the start, so years of answered mail do
//! not land in the agents' queue, and its messages change no ticket's status.

use crate::model::{Envelope, MessageSeq, Source, Status};
use crate::process::Processor;
use crate::spool::Spool;
use crate::store::StoreError;

/// The status imported history gives the tickets it opens (`postdesk
/// import --status`, `POST /api/v1/import?status=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HistoryStatus {
    /// Tickets to work on, like mail that arrives now (the default).
    #[default]
    New,
    /// Answered history: out of the open queue, reopened by a customer's reply.
    Resolved,
    /// Finished history: a customer's reply opens a follow-up ticket.
    Closed,
}

impl HistoryStatus {
    /// The accepted spellings, for error messages.
    pub const CHOICES: &'static str = "new, resolved or closed";

    /// Parses `new`, `resolved` or `closed` (any case).
    pub fn parse(s: &str) -> Option<HistoryStatus> {
        [
            HistoryStatus::New,
            HistoryStatus::Resolved,
            HistoryStatus::Closed,
        ]
        .into_iter()
        .find(|h| s.eq_ignore_ascii_case(h.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HistoryStatus::New => "new",
            HistoryStatus::Resolved => "resolved",
            HistoryStatus::Closed => "closed",
        }
    }

    /// What the envelope carries ([`Envelope::imported_as`]): the finished
    /// status, or None for new (so such an envelope is stored as before).
    pub fn finished(self) -> Option<Status> {
        match self {
            HistoryStatus::New => None,
            HistoryStatus::Resolved => Some(Status::Resolved),
            HistoryStatus::Closed => Some(Status::Closed),
        }
    }
}

/// What became of one imported message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Committed to the spool as this message.
    Spooled(MessageSeq),
    /// The store holds it already (as this message): nothing was done.
    AlreadyStored(MessageSeq),
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not a mail message (the text says why); nothing was taken.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The daemon could not take it now (no mailbox, spool refused).
    #[error("not taken: {0}")]
    NotTaken(String),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

/// Why `raw` is not a message worth importing, if it is not: empty, no
/// header field before the body, or mail-parser could not read it.
pub fn malformed(raw: &[u8], parsed: &crate::process::parse::Parsed) -> Option<String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Some("empty message".into());
    }
    let first = raw.split(|b| *b == b'\n').next().unwrap_or_default();
    let is_field = first
        .iter()
        .position(|b| *b == b':')
        .is_some_and(|i| i > 0 && first[..i].iter().all(|b| b.is_ascii_graphic()));
    if !is_field {
        return Some("it does not start with a header field".into());
    }
    if parsed.unparseable {
        return Some("the message could not be parsed".into());
    }
    None
}

/// Takes one imported message: checked, looked up, spooled.
/// `mail_from` is the sender of the mbox's `From ` line (may be empty);
/// `status` what a ticket it opens becomes. A message already stored is
/// left as it is, its ticket's status too.
pub async fn take(
    processor: &Processor,
    spool: &Spool,
    raw: Vec<u8>,
    mail_from: String,
    status: HistoryStatus,
) -> Result<Imported, ImportError> {
    let parsed = std::panic::catch_unwind(|| crate::process::parse::parse(&raw))
        .map_err(|_| ImportError::Malformed("the message could not be parsed".into()))?;
    if let Some(why) = malformed(&raw, &parsed) {
        return Err(ImportError::Malformed(why));
    }
    let check = processor.clone();
    let (parsed, raw, found) = tokio::task::spawn_blocking(move || {
        let found = check.stored_copy(&parsed, &raw);
        (parsed, raw, found)
    })
    .await
    .map_err(|e| ImportError::NotTaken(e.to_string()))?;
    if let Some(seq) = found? {
        return Ok(Imported::AlreadyStored(seq));
    }
    let Some(mailbox) = processor.cfg.mailboxes.first() else {
        return Err(ImportError::NotTaken("no [[mailbox]] configured".into()));
    };
    let received_at = parsed
        .date
        .filter(|d| *d > 0)
        .unwrap_or_else(|| processor.clock.now());
    let envelope = Envelope {
        // The `From ` line's sender when it is an address (some clients
        // write `From - date`); else what the message records of its
        // envelope (Return-Path, `<>` staying null, or From).
        mail_from: crate::syntax::mailbox(mail_from.trim())
            .unwrap_or_else(|| crate::process::parse::envelope_sender(&raw)),
        rcpt_to: vec![mailbox.address.clone()],
        received_at,
        source: Source::Import,
        peer: "import".into(),
        helo: String::new(),
        imap: None,
        sender_auth: None,
        imported_as: status.finished(),
    };
    let seq = spool
        .submit(envelope, raw)
        .await
        .map_err(|e| ImportError::NotTaken(e.to_string()))?;
    Ok(Imported::Spooled(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_status_parses_the_three_choices_only() {
        assert_eq!(
            HistoryStatus::parse("Resolved"),
            Some(HistoryStatus::Resolved)
        );
        assert_eq!(HistoryStatus::parse("closed"), Some(HistoryStatus::Closed));
        assert_eq!(HistoryStatus::parse("new"), Some(HistoryStatus::New));
        for other in ["open", "pending", "", "resolved "] {
            assert_eq!(HistoryStatus::parse(other), None, "{other:?}");
        }
        assert_eq!(HistoryStatus::New.finished(), None);
        assert_eq!(HistoryStatus::Closed.finished(), Some(Status::Closed));
    }
}
