//! The one vocabulary of ticket commands: what an agent can do to a ticket
//! (`Action`), asked for by whichever door (`Request`: mail today, the web
//! view, the JSON API and the CLI later), checked and applied by one function,
//! `Processor::act` (`act.rs`). Every change an agent makes to a ticket goes
//! through it, so every door gets the same checks (one bad action applies
//! nothing), the same events with the agent as actor, and the same collision
//! detection for public replies.
//!
//! `mail.rs` reads the `#command` lines of an agent's mail (pure parsing);
//! `agent.rs` turns an authenticated mail into a `Request` and the `Outcome`
//! into the transcript mail.

pub mod act;
pub mod mail;
mod merge;

pub use mail::{HINT, Line, MailCommand, parse, split};

use crate::model::{MessageSeq, Priority, Status, Ticket, TicketId};
use crate::outbound::compose::Attachment;
use crate::store::StoreError;

/// One thing an agent does to a ticket.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open, pending, resolved, closed (`#open`, `#pending`, `#resolve`, `#close`).
    Status(Status),
    /// `#priority low|normal|high|urgent`.
    Priority(Priority),
    /// An agent by name, or `me` (kept as written; resolved against agents.toml).
    Assign(String),
    /// `#queue NAME`.
    Queue(String),
    /// `#tag +a -b c` (a bare word adds).
    Tags {
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// `#participant add|remove ADDRESS…`: who receives the public replies.
    Participant { add: bool, addresses: Vec<String> },
    /// An internal note, never sent. Coming by mail, the note is the mail
    /// itself (its attachments stay in its raw bytes).
    Note(String),
    /// Nothing of this request reaches the customer, though there is no text
    /// to keep (a mail's `#note` above an empty text): no reply, no canned
    /// response, no resolved notice.
    Internal,
    /// A public reply to the ticket's customers.
    Reply {
        text: String,
        attachments: Vec<Attachment>,
    },
    /// `#canned NAME`: rules/canned/NAME.txt, after the reply's text (if any).
    Canned(String),
    /// `#kb SLUG`: a knowledge-base article's title, text and (if public)
    /// link, after the reply's text (if any), like a canned response.
    Kb(String),
    /// `#send`: send the agent's replies held by collision detection anyway.
    SendHeld,
    /// `#merge N [reason]`: this ticket's messages move to ticket `into`
    /// (the survivor), its participants join it, and it is closed with a
    /// pointer that later mail to it follows. The reason, if any, goes into
    /// both tickets' events.
    Merge {
        into: TicketId,
        reason: Option<String>,
    },
    /// Takes one customer message out of this ticket into a new ticket of
    /// the same requester (routed and clocked as a new ticket); later mail
    /// answering that message follows it.
    Split {
        message: MessageSeq,
        reason: Option<String>,
    },
    /// Drop the agent's replies held on the ticket unsent (the web view's
    /// "revise": the agent writes a new reply instead).
    DropHeld,
    /// `#available` / `#away`: whether the acting agent takes live chats.
    /// About the agent, not the ticket it came with (nothing on it changes).
    Availability(bool),
}

impl PartialEq for Action {
    /// Attachments compare by name, type and content (`Attachment` itself
    /// has no equality).
    fn eq(&self, other: &Self) -> bool {
        use Action::*;
        match (self, other) {
            (Status(a), Status(b)) => a == b,
            (Priority(a), Priority(b)) => a == b,
            (Assign(a), Assign(b))
            | (Queue(a), Queue(b))
            | (Canned(a), Canned(b))
            | (Kb(a), Kb(b)) => a == b,
            (Note(a), Note(b)) => a == b,
            (
                Tags { add, remove },
                Tags {
                    add: a2,
                    remove: r2,
                },
            ) => add == a2 && remove == r2,
            (
                Participant { add, addresses },
                Participant {
                    add: a2,
                    addresses: s2,
                },
            ) => add == a2 && addresses == s2,
            (
                Reply { text, attachments },
                Reply {
                    text: t2,
                    attachments: at2,
                },
            ) => {
                text == t2
                    && attachments.len() == at2.len()
                    && attachments.iter().zip(at2).all(|(x, y)| {
                        x.name == y.name && x.content_type == y.content_type && x.data == y.data
                    })
            }
            (Internal, Internal) | (SendHeld, SendHeld) | (DropHeld, DropHeld) => true,
            (Availability(a), Availability(b)) => a == b,
            (
                Merge { into, reason },
                Merge {
                    into: i2,
                    reason: r2,
                },
            ) => into == i2 && reason == r2,
            (
                Split { message, reason },
                Split {
                    message: m2,
                    reason: r2,
                },
            ) => message == m2 && reason == r2,
            _ => false,
        }
    }
}

impl Eq for Action {}

/// Which door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An authenticated agent mail, already stored (unlisted) under this
    /// sequence by its caller: a note or held reply becomes that message.
    Mail { message: MessageSeq },
    /// The web view.
    Web,
    /// The JSON API.
    Api,
    /// A customer on their signed status page: `Request::actor` is their
    /// address (a participant of the ticket), and they may only close
    /// their ticket or reopen a finished one.
    Customer,
    /// postdesk itself on a timer (the automatic close of a pending
    /// ticket), acting as `stages::SYSTEM_ACTOR`, who is no agent.
    Scheduler,
}

/// An agent's request to change one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub ticket: TicketId,
    /// The agent's name in agents.toml.
    pub actor: String,
    /// The ticket version the agent saw (`Ticket::version`); None when the
    /// door does not know it (the comment address): no collision check.
    pub seen_version: Option<u64>,
    pub actions: Vec<Action>,
    pub via: Via,
}

/// What became of a request's public text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Nothing for the customer in the request.
    Nothing,
    /// Kept as an internal note (this message).
    Note(MessageSeq),
    /// Sent to the customer as this message.
    Reply(MessageSeq),
    /// Held: another agent replied after the version seen. The held message.
    Held(MessageSeq),
}

/// What an applied request did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The ticket afterwards (already stored); `version` is its new version.
    pub ticket: Ticket,
    /// One line per action, in order, in the transcript's words.
    pub results: Vec<String>,
    /// The public text: noted, sent, held or none.
    pub sent: Sent,
    /// Held replies released by `SendHeld` (their new message sequences).
    pub released: Vec<MessageSeq>,
    /// The customer's resolved notice, when the request resolved or closed
    /// the ticket without a word to them.
    pub resolved_notice: Option<MessageSeq>,
    /// Whether the request was internal (a note): nothing went to the customer.
    pub internal: bool,
    /// The other ticket a merge or split changed (already stored): the
    /// survivor of a merge, the new ticket of a split.
    pub other: Option<Ticket>,
}

/// Why a request applied nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no ticket #{0}")]
    NoTicket(TicketId),
    #[error("no agent {0:?} in agents.toml")]
    UnknownAgent(String),
    /// Some action cannot be applied: one result per action, in order
    /// (`Err(why)` for those at fault). Nothing was changed or recorded.
    #[error("not applied: {}", .0.iter().filter_map(|r| r.as_ref().err().cloned()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Result<(), String>>),
    #[error(transparent)]
    Store(#[from] StoreError),
}
