//! Decisions about a message, made without writing: what a message is
//! ([`Incoming::read`]) and what a new ticket gets ([`new_ticket`]): routing,
//! SLA policy and deadlines, acknowledgement or not and why.
//!
//! The processor applies these plans inside its write transaction;
//! `postdesk rules test` prints the same plans, so the two cannot disagree.
//! What needs the store (threading into existing tickets, least-loaded and
//! round-robin assignment, the acknowledgement rate limits) is left to the
//! apply step and said so.

use super::classify::{self, Class};
use super::parse::Parsed;
use super::vouch::{self, Vouch};
use crate::config::{Config, MailboxConfig};
use crate::model::{Envelope, Priority, SlaState, Ticket};
use crate::rules::RuleSet;
use crate::rules::routing::{AckChoice, Assign, Facts};

/// One inbound message as the decisions about it see it.
pub struct Incoming<'a> {
    pub parsed: &'a Parsed,
    pub env: &'a Envelope,
    pub class: Class,
    /// The From address (syntax-checked), else the envelope sender; may be empty.
    pub sender: String,
    /// Whether anything vouches that the mail comes from `sender`.
    pub vouch: Vouch,
    /// The mailbox it was sent to (the first configured one if none matched).
    pub mailbox: Option<&'a MailboxConfig>,
    pub now: i64,
}

impl<'a> Incoming<'a> {
    /// Reads what `parsed` (received with `env`) is, at `now`.
    pub fn read(cfg: &'a Config, parsed: &'a Parsed, env: &'a Envelope, now: i64) -> Incoming<'a> {
        let class = if parsed.unparseable {
            Class::Customer
        } else {
            classify::classify(parsed, env, &cfg.server.hostname)
        };
        let mailbox = env
            .rcpt_to
            .iter()
            .find_map(|r| cfg.mailbox_for(r))
            .or(cfg.mailboxes.first());
        let sender = if parsed.from.is_empty() {
            crate::syntax::mailbox(&env.mail_from).unwrap_or_default()
        } else {
            parsed.from.clone()
        };
        let vouch = match vouch::by_source(env, &sender) {
            Some(v) => v,
            None => vouch::vouch(
                parsed,
                env,
                &sender,
                vouch::trusted_id(
                    env,
                    &cfg.server.hostname,
                    cfg.agents.trusted_authserv_id.as_deref(),
                ),
            ),
        };
        Incoming {
            parsed,
            env,
            class,
            sender,
            vouch,
            mailbox,
            now,
        }
    }
}

/// Which acknowledgement template a new ticket gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckTemplate {
    /// `acknowledgement.template`.
    Default,
    /// A template a routing rule names (rules/templates/NAME).
    Named(String),
}

/// Whether a new ticket is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Acknowledgements are switched off: nothing to record.
    Off,
    /// None is sent, and why (recorded as an `ack_suppressed` event).
    Suppressed(String),
    /// Sent with this template, unless an hourly rate limit is reached.
    Send(AckTemplate),
}

/// What a message that opens a ticket gets.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// Routing rules that matched, each with why.
    pub matched: Vec<(String, Vec<String>)>,
    pub queue: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    /// How the assignee is chosen (resolved against the store's load).
    pub assign: Option<Assign>,
    /// The SLA clock it starts: policy and deadlines (None: no clock).
    pub sla: Option<SlaState>,
    pub ack: Ack,
}

/// Decides what a message that opens a new ticket gets.
pub fn new_ticket(cfg: &Config, rules: &RuleSet, msg: &Incoming<'_>) -> NewTicket {
    let calendar = rules.default_calendar();
    let parsed = msg.parsed;
    let routed = rules.routing.evaluate(&Facts {
        mailbox: msg.mailbox.map_or("", |m| m.address.as_str()),
        sender: &msg.sender,
        subject: &parsed.subject,
        body: &parsed.text,
        headers: &parsed.headers,
        attachments: &parsed.attachments,
        now: msg.now,
        calendar: &calendar,
    });
    let queue = routed
        .queue
        .clone()
        .or(msg.mailbox.map(|m| m.queue.clone()))
        .unwrap_or_else(|| "general".into());
    let priority = routed.priority.unwrap_or(Priority::Normal);
    // Automated mail is owed no answer: it starts no SLA clock; nor does
    // imported history, whose deadlines passed long ago.
    let sla = (msg.class == Class::Customer && msg.env.source != crate::model::Source::Import)
        .then(|| {
            let probe = Ticket {
                queue: queue.clone(),
                priority,
                ..Ticket::new(0, "", msg.now)
            };
            crate::sla::initial_state(&rules.sla, &rules.calendars, &probe, msg.now)
        })
        .flatten();
    let ack = match ack(cfg, rules, msg, &routed.acknowledgement) {
        Ack::Send(_) if !rules.customer.for_queue(&queue).acknowledgement => Ack::Suppressed(
            format!("the acknowledgement is off for queue {queue} (rules/customer.toml)"),
        ),
        a => a,
    };
    let mut tags = Vec::new();
    for t in routed.tags {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    NewTicket {
        matched: routed.matched,
        queue,
        priority,
        tags,
        assign: routed.assign,
        sla,
        ack,
    }
}

/// Whether a new ticket is acknowledged (before the rate limits).
fn ack(cfg: &Config, rules: &RuleSet, msg: &Incoming<'_>, choice: &Option<AckChoice>) -> Ack {
    let template = match choice {
        None if rules.acknowledgement.is_none() => return Ack::Off,
        None => AckTemplate::Default,
        Some(AckChoice::None) => {
            return Ack::Suppressed("a routing rule says no acknowledgement".into());
        }
        Some(AckChoice::Template(name)) if !rules.templates.contains_key(name) => {
            return Ack::Suppressed(format!("template {name} could not be loaded"));
        }
        Some(AckChoice::Template(name)) => AckTemplate::Named(name.clone()),
    };
    if msg.mailbox.is_none() {
        return Ack::Off;
    }
    let ours: Vec<String> = cfg
        .mailboxes
        .iter()
        .map(|m| m.address.to_ascii_lowercase())
        .chain(std::iter::once(cfg.from_address().to_ascii_lowercase()))
        .collect();
    if let Some(reason) = classify::ack_suppressed(msg.parsed, msg.env, msg.class, &ours) {
        return Ack::Suppressed(reason);
    }
    // Backscatter: an acknowledgement to a From that nothing vouches for
    // would go to whoever a forger named. Except the web form's: its
    // acknowledgement (with the status link) is how the typed address
    // proves itself, and the form's own per-address and per-client
    // allowances bound it besides the acknowledgement caps.
    if let Some(doubt) = msg.vouch.doubt()
        && msg.env.source != crate::model::Source::WebForm
    {
        return Ack::Suppressed(format!(
            "nothing vouches for the sender {}: {doubt}",
            msg.parsed.from
        ));
    }
    Ack::Send(template)
}
