//! Domain records shared by every stage. They are serialised as JSON inside
//! redb values; field names are part of the on-disk format, so add fields
//! with `#[serde(default)]` and never rename them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Sequence number of a stored message (raw bytes + record), assigned by the store.
pub type MessageSeq = u64;
/// Ticket number; shown to humans as `#N` and in subject tags as `[#N]`.
pub type TicketId = u64;

/// Where a message came in from; kept with the spooled message for tracing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Smtp,
    Imap,
    /// Made by the JSON API on a customer's behalf (a phone ticket).
    Api,
    /// Typed into the public web form (`/new`): its From is whatever the
    /// visitor typed, so it always opens a new, unverified ticket. Only the
    /// form sets this; nothing in a message can claim it.
    #[serde(rename = "web_form")]
    WebForm,
    /// Written on a ticket's signed status page by `recipient`, who held a
    /// valid link for `ticket`: it threads into exactly that ticket, from
    /// exactly that participant.
    #[serde(rename = "status_link")]
    StatusLink {
        ticket: TicketId,
        recipient: String,
    },
    /// History taken from a shared mailbox (`postdesk import mbox`):
    /// threaded as usual, dated by the message, never acknowledged, no
    /// agent notified, no SLA clock started.
    Import,
    /// A line a visitor wrote in the live chat (`public::chat`);
    /// `verified` when the site vouched for the visitor's address (signed
    /// identity) or they followed the link mailed to it.
    Chat {
        verified: bool,
    },
}

impl Source {
    /// Whether the message's From was typed by whoever used the door
    /// (the web form, a chat without the site's signed identity): nothing
    /// shows the address belongs to them, so their ticket is unverified
    /// until its owner answers our mail or uses a signed link.
    pub fn address_typed(&self) -> bool {
        matches!(self, Source::WebForm | Source::Chat { verified: false })
    }

    /// Whether the message came as mail from a mailbox now (SMTP, IMAP).
    /// The other doors prove a browser, a link or an agent's word, and
    /// imported history proves only the past: none shows that mail to the
    /// sender arrives, so none clears a bouncing mark.
    pub fn is_live_mail(&self) -> bool {
        matches!(self, Source::Smtp | Source::Imap)
    }
}

/// The SMTP envelope of an accepted message (or its IMAP equivalent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Reverse path without angle brackets; empty for the null reverse path `<>`.
    pub mail_from: String,
    /// Accepted recipients, as given at RCPT.
    pub rcpt_to: Vec<String>,
    /// Unix seconds when intake committed the message.
    pub received_at: i64,
    pub source: Source,
    /// Peer address and HELO name, for the record.
    #[serde(default)]
    pub peer: String,
    #[serde(default)]
    pub helo: String,
    /// For IMAP mail: when its folder was first seen and the server's
    /// INTERNALDATE, so history is never acknowledged (`classify::ack_suppressed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<ImapDates>,
    /// What our own SMTP intake verified about the sender (`[auth]`); None
    /// when it did not verify (IMAP, `deliver`, the API, verification off),
    /// and then no `Authentication-Results` of our own id is believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_auth: Option<SenderVerdict>,
    /// For history imported as finished (`postdesk import --status`,
    /// [`Source::Import`] only): the status a ticket it opens takes,
    /// resolved or closed; such a message changes no ticket's status. None:
    /// a ticket it opens is new, as for mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_as: Option<Status>,
}

impl Envelope {
    /// The finished status (resolved, closed) that imported history was
    /// given; None for any other message, whatever it carries.
    pub fn history_status(&self) -> Option<Status> {
        self.imported_as
            .filter(|s| self.source == Source::Import && s.is_finished())
    }
}

/// The dates that tell a mailbox's history from mail that arrived after
/// postdesk was given the mailbox (unix seconds).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImapDates {
    /// When postdesk first selected the folder ([`ImapFolderState::first_seen`]);
    /// 0 when unknown (a folder polled before this was recorded).
    pub folder_first_seen: i64,
    /// The server's INTERNALDATE of the message (when it arrived in the
    /// folder, kept across APPEND/COPY), if the server gave one.
    pub internal_date: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Open,
    Pending,
    Resolved,
    Closed,
}

impl Status {
    /// Resolved or closed: nobody owes the customer anything now.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Resolved | Status::Closed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    /// The one spelling of each priority, as commands, rules and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Parses `low`, `normal`, `high` or `urgent` (any case).
    pub fn parse(s: &str) -> Option<Priority> {
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ]
        .into_iter()
        .find(|p| s.eq_ignore_ascii_case(p.as_str()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub queue: String,
    pub assignee: Option<String>,
    /// Address of the customer who opened the ticket (lower-cased).
    pub requester: String,
    #[serde(default)]
    pub requester_name: String,
    /// The customers who take part in the ticket (lower-cased): they receive
    /// the agents' public replies, and subject-tag threading trusts mail
    /// from them. Brought in by the requester's or another participant's own
    /// mail (as sender or Cc), or by an agent; never by a stranger's mail
    /// (see `process::participants`). A set: membership is checked per Cc.
    pub participants: BTreeSet<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: u64,
    /// Next per-ticket event sequence number.
    pub next_event: u64,
    #[serde(default)]
    pub tags: Vec<String>,
    /// SLA clock of the policy that applies, if any.
    #[serde(default)]
    pub sla: Option<SlaState>,
    /// Message-ID of the customer's latest message, for threading our replies.
    #[serde(default)]
    pub last_customer_message_id: Option<String>,
    /// Bumped by every public agent reply. Agent tokens carry the version the
    /// agent saw, so a reply written against an older version can be held
    /// (collision detection).
    #[serde(default)]
    pub version: u64,
    /// Who sent each public reply, by the version it created.
    #[serde(default)]
    pub public_replies: Vec<PublicReply>,
    /// Opened through the web form, where anyone can type anyone's address:
    /// set until the customer answers through the reply address or the
    /// status link of our mail, which only the address's owner receives.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

impl Ticket {
    /// A new ticket of `requester`, opened at `now`: status new, priority
    /// normal, queue "general", nobody assigned, no messages yet.
    pub fn new(id: TicketId, requester: &str, now: i64) -> Ticket {
        Ticket {
            id,
            subject: String::new(),
            status: Status::New,
            priority: Priority::Normal,
            queue: "general".into(),
            assignee: None,
            requester: requester.to_string(),
            requester_name: String::new(),
            participants: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            message_count: 0,
            next_event: 0,
            tags: Vec::new(),
            sla: None,
            last_customer_message_id: None,
            version: 0,
            public_replies: Vec::new(),
            unverified: false,
        }
    }
}

/// One public agent reply: the ticket version it created, its author, and
/// the message sent to the customer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicReply {
    pub version: u64,
    pub agent: String,
    pub message: MessageSeq,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// What a message is to the ticket, as the JSON API reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Customer,
    Agent,
    Note,
    Auto,
    System,
    /// An agent's reply held back because another agent answered first.
    Held,
}

/// One message of a ticket; the raw bytes live beside it under the same sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    pub seq: MessageSeq,
    pub ticket: Option<TicketId>,
    /// Message-ID without angle brackets (ours for outbound mail).
    pub message_id: String,
    pub direction: Direction,
    pub kind: MessageKind,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// Unix seconds: the Date header if sane, else the time we received it.
    pub date: i64,
    /// Visible text.
    pub text: String,
    /// Set when the sender was not a participant of the ticket (or nothing
    /// vouched that the mail came from one): why. Such a message joins the
    /// conversation but brings nobody into the replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stranger: Option<String>,
}

/// Something that happened to a ticket, with why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub detail: String,
    /// The message the event is about (the one that joined, was sent or
    /// delivered), so a page can show why each message is in the ticket
    /// and what became of each mail we sent. None in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageSeq>,
}

/// What happened to a ticket: the vocabulary of its event log. Stored and
/// shown by the API as the snake_case string of [`EventKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A ticket was opened.
    Created,
    /// Routing rules matched.
    Routed,
    /// An SLA clock started.
    SlaStarted,
    /// The acknowledgement was queued.
    Acknowledged,
    /// No acknowledgement, and why.
    AckSuppressed,
    /// Agents were notified.
    Notified,
    /// A message joined the ticket.
    MessageAdded,
    /// A message from a non-participant joined the ticket.
    NonParticipant,
    /// The Cc of mail nothing vouched for was not added.
    CcNotAdded,
    /// An agent added or removed participants.
    Participants,
    /// A participant cap left addresses out.
    ParticipantsCapped,
    /// Invalid addresses or Message-IDs were dropped.
    InvalidInput,
    /// The status changed.
    Status,
    /// A customer reopened the ticket.
    Reopened,
    /// The priority changed.
    Priority,
    /// The assignee changed.
    Assigned,
    /// The queue changed.
    Queue,
    /// Tags changed.
    Tags,
    /// Another SLA policy applies.
    SlaPolicy,
    /// The SLA clock paused.
    SlaPaused,
    /// The SLA clock resumed.
    SlaResumed,
    /// An SLA target is near.
    SlaWarning,
    /// An SLA target was missed.
    SlaBreach,
    /// Nobody to tell of an SLA event.
    SlaNotifySkipped,
    /// An agent replied to the customer.
    Replied,
    /// An agent wrote an internal note.
    Note,
    /// The customer was told of a status change.
    CustomerNotified,
    /// An agent's commands were refused.
    CommandsFailed,
    /// Agent mail was quarantined.
    AgentMailRejected,
    /// A reply was held by collision detection.
    ReplyHeld,
    /// A held reply was sent.
    HeldReleased,
    /// A held reply expired.
    HeldExpired,
    /// An agent dropped their held reply (to write another).
    HeldDropped,
    /// The relay accepted our mail.
    Delivered,
    /// Our mail could not be delivered.
    DeliveryFailed,
    /// An agent's reply was refused for good.
    ReplyRefused,
    /// One ticket was merged into another (on both).
    Merged,
    /// A message was split out into a new ticket (on both).
    Split,
    /// A delivery report says our mail is delayed (still being tried).
    DeliveryDelayed,
    /// An address marked as bouncing wrote to us again: the mark is gone.
    BounceCleared,
    /// A person's data was erased from the ticket (`postdesk erase`) or
    /// its content removed by a retention rule; the detail names no one.
    Erased,
    /// A web-form ticket's customer proved they receive mail at its
    /// address (answered through the reply address or the status link).
    Verified,
    /// The customer was reminded of a ticket waiting on them.
    Reminded,
    /// The satisfaction survey was scheduled after a resolution.
    SurveyScheduled,
    /// The satisfaction survey was queued to the customer.
    SurveySent,
    /// No satisfaction survey, and why.
    SurveySkipped,
    /// The customer rated the resolution (or changed their rating).
    Rated,
    /// The customer resolved the ticket themselves ("this solved my
    /// problem" on the status page): a request the knowledge base or the
    /// conversation so far answered, counted as a deflection.
    Deflected,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Routed => "routed",
            EventKind::SlaStarted => "sla_started",
            EventKind::Acknowledged => "acknowledged",
            EventKind::AckSuppressed => "ack_suppressed",
            EventKind::Notified => "notified",
            EventKind::MessageAdded => "message_added",
            EventKind::NonParticipant => "non_participant",
            EventKind::CcNotAdded => "cc_not_added",
            EventKind::Participants => "participants",
            EventKind::ParticipantsCapped => "participants_capped",
            EventKind::InvalidInput => "invalid_input",
            EventKind::Status => "status",
            EventKind::Reopened => "reopened",
            EventKind::Priority => "priority",
            EventKind::Assigned => "assigned",
            EventKind::Queue => "queue",
            EventKind::Tags => "tags",
            EventKind::SlaPolicy => "sla_policy",
            EventKind::SlaPaused => "sla_paused",
            EventKind::SlaResumed => "sla_resumed",
            EventKind::SlaWarning => "sla_warning",
            EventKind::SlaBreach => "sla_breach",
            EventKind::SlaNotifySkipped => "sla_notify_skipped",
            EventKind::Replied => "replied",
            EventKind::Note => "note",
            EventKind::CustomerNotified => "customer_notified",
            EventKind::CommandsFailed => "commands_failed",
            EventKind::AgentMailRejected => "agent_mail_rejected",
            EventKind::ReplyHeld => "reply_held",
            EventKind::HeldReleased => "held_released",
            EventKind::HeldExpired => "held_expired",
            EventKind::HeldDropped => "held_dropped",
            EventKind::Delivered => "delivered",
            EventKind::DeliveryFailed => "delivery_failed",
            EventKind::ReplyRefused => "reply_refused",
            EventKind::Merged => "merged",
            EventKind::Split => "split",
            EventKind::DeliveryDelayed => "delivery_delayed",
            EventKind::BounceCleared => "bounce_cleared",
            EventKind::Erased => "erased",
            EventKind::Verified => "verified",
            EventKind::Reminded => "reminded",
            EventKind::SurveyScheduled => "survey_scheduled",
            EventKind::SurveySent => "survey_sent",
            EventKind::SurveySkipped => "survey_skipped",
            EventKind::Rated => "rated",
            EventKind::Deflected => "deflected",
        }
    }
}

impl Event {
    /// An event of `kind` at `at` by `actor`.
    pub fn new(at: i64, kind: EventKind, actor: &str, detail: String) -> Event {
        Event {
            at,
            kind: kind.as_str().to_string(),
            actor: actor.to_string(),
            detail,
            message: None,
        }
    }

    /// The same event, about message `seq`.
    pub fn about(mut self, seq: MessageSeq) -> Event {
        self.message = Some(seq);
        self
    }
}

/// A message waiting for delivery by the outbound sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundJob {
    pub id: u64,
    /// The stored message (raw bytes under the same sequence number).
    pub message: MessageSeq,
    pub ticket: Option<TicketId>,
    /// Envelope sender (VERP bounce address, so bounces find their ticket).
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub created_at: i64,
    pub attempts: u32,
    pub next_attempt_at: i64,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// An agent's reply held by collision detection until `#send` or expiry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldReply {
    /// The agent's message (raw bytes and record under this sequence).
    pub message: MessageSeq,
    pub ticket: TicketId,
    /// Agent name.
    pub agent: String,
    /// The text that would go to the customer (commands and quotes removed).
    pub text: String,
    pub at: i64,
    pub expires_at: i64,
}

/// A message kept aside instead of joining a ticket, with the reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub message: MessageSeq,
    pub at: i64,
    pub reason: String,
    pub from: String,
    pub subject: String,
}

/// How far IMAP intake has got in one folder: every message with a UID up to
/// `uid` (under this UIDVALIDITY) is durably stored or quarantined. Written in
/// the same transaction as the messages it covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImapCursor {
    /// Account and folder, see `ImapConfig::cursor_key`.
    pub key: String,
    pub uidvalidity: u32,
    pub uid: u32,
    /// The UIDs whose bodies this commit stores: the only ones the `after`
    /// action may touch (not quarantined, vanished or skipped ones).
    pub stored: Vec<u32>,
}

/// The stored state of one polled folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImapFolderState {
    pub uidvalidity: u32,
    /// Highest UID stored (or quarantined, or skipped); fetching resumes above it.
    pub last_uid: u32,
    /// Highest UID whose `after` action (seen/move/delete) is known to be done.
    pub acted_uid: u32,
    /// Unix seconds when postdesk first selected this folder (kept across
    /// UIDVALIDITY changes); 0 when unknown. Mail that arrived in the folder
    /// before it is the folder's history.
    #[serde(default)]
    pub first_seen: i64,
    /// Under `existing = "skip"`, after a UIDVALIDITY change: the newest UID
    /// of the re-read folder. UIDs up to it whose INTERNALDATE is before
    /// `first_seen` are history and are left alone, as on the first poll.
    #[serde(default)]
    pub history_upto: u32,
    /// UIDs above `acted_uid` whose bodies are stored but whose `after`
    /// action is not known to be done (a crash or lost connection in
    /// between); catch-up acts on these and on nothing else.
    #[serde(default)]
    pub unacted: Vec<u32>,
}

/// What one IMAP commit adds besides the messages: the new cursor and the
/// quarantine entries of messages too large to fetch (they have no raw bytes;
/// the store gives each a message sequence of its own).
#[derive(Debug, Clone)]
pub struct ImapCommit {
    pub cursor: ImapCursor,
    pub quarantine: Vec<QuarantineEntry>,
    /// Mail to the postmaster about the quarantined messages, queued for
    /// delivery in the same transaction (no notice without its entry).
    pub notices: Vec<SystemMail>,
}

/// A finished message of ours that belongs to no ticket, ready to queue.
#[derive(Debug, Clone)]
pub struct SystemMail {
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// When it was made: the job is due from then.
    pub at: i64,
}

/// Where a ticket stands against its SLA policy. Deadlines are absolute
/// instants (already counted in business time) so a restart needs no recomputation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlaState {
    pub policy: String,
    pub first_response_due: Option<i64>,
    pub resolution_due: Option<i64>,
    /// When the first agent response went out (the first-response target is met).
    #[serde(default)]
    pub first_response_at: Option<i64>,
    /// Set while the ticket waits on the customer; the clock does not run.
    #[serde(default)]
    pub paused_since: Option<i64>,
    /// Warnings and breaches already fired, e.g. "resolution:breach": each fires once.
    #[serde(default)]
    pub fired: Vec<String>,
    /// When this clock started (ticket opened or reopened).
    #[serde(default)]
    pub started_at: Option<i64>,
    /// Business seconds spent paused so far (added when a pause ends).
    #[serde(default)]
    pub paused_business_secs: i64,
}

/// A web view login, stored under the SHA-256 of its cookie value (a copy
/// of the store does not hand out live sessions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebSession {
    /// Agent name as in rules/agents.toml.
    pub agent: String,
    pub created: i64,
    pub last_seen: i64,
    /// The token every form of this session carries (CSRF), hex.
    pub csrf: String,
}

/// Whether postdesk's own verification vouches for a message's sender, and by
/// which mechanism: stored with the message (`store/sender_verdicts.rs`),
/// shown on the ticket page and in the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SenderVerdict {
    pub verdict: Verdict,
    /// What decided it: `dmarc`, `dkim` or `spf` (empty when nothing did).
    #[serde(default)]
    pub mechanism: String,
    /// The domain it is about (the From's, or the signer's for DKIM).
    #[serde(default)]
    pub domain: String,
    /// Each method's result as written in our Authentication-Results
    /// (`pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`).
    pub spf: String,
    pub dkim: String,
    pub dmarc: String,
    /// `arc=` when the message carried an ARC set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc: Option<String>,
    /// The From domain's DMARC policy when it publishes one (`none`,
    /// `quarantine`, `reject`); None when no record was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_policy: Option<String>,
}

/// The verdict's headline.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// An aligned DMARC, DKIM or SPF pass for the From's domain.
    Pass,
    /// DMARC fails, or the only signatures or SPF fail.
    Fail,
    /// Nothing to go by (no records, temporary errors, unaligned passes).
    None,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::None => "none",
        }
    }
}
