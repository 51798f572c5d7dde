//! The processor: turns spooled messages into ticket changes.
//!
//! It reads the spool in order; for each message it parses, classifies,
//! threads, writes ticket, message and event records, queues the
//! acknowledgement and removes the spool entry, all in one transaction. A
//! crash before the commit replays the message; after it, nothing is redone.

/// Acknowledgement templates live with the rules (`rules::template`).
pub use crate::rules::template as ack;
pub mod agent;
pub mod autoreply;
pub mod bounce;
mod bounce_facts;
pub mod canned;
pub mod classify;
pub mod collision;
pub mod commands;
pub mod csat;
pub mod decide;
pub mod notify;
pub mod parse;
pub mod participants;
pub mod quote;
pub mod reply;
pub mod stages;
pub mod thread;
pub mod unseen;
pub mod vouch;

use crate::clock::Clock;
use crate::config::{Config, MailboxConfig};
use crate::model::*;
use crate::outbound::compose;
use crate::outbound::queue::enqueue;
use crate::rules::RuleSet;
use crate::store::{Store, StoreError, Tx};
use crate::token::Tokens;
use ack::Template;
use classify::Class;
use decide::Incoming;
use parse::Parsed;
use participants::Standing;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::{Instrument, info, info_span, warn};

/// Spooled messages handled per write transaction.
const BATCH: usize = 32;
/// Raw bytes read for one batch before it stops taking messages (it always
/// takes one): 32 messages of 25 MiB parsed together could exhaust memory,
/// and the crash would repeat on the same batch after every restart.
const BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Longest visible text kept in a message record (the raw message keeps everything).
const MAX_TEXT: usize = 256 * 1024;

/// Everything the processor needs, shared with the thread that runs it.
/// Cheap to clone (handles and `Arc`s): the JSON API holds one to act on
/// tickets through the same `act` as mail commands.
#[derive(Clone)]
pub struct Processor {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub clock: Clock,
    pub tokens: Tokens,
    /// Routing rules, agents, calendars; swapped whole on reload.
    pub rules: Arc<crate::rules::LiveRules>,
    /// Notified by the spool after each commit.
    pub committed: Arc<Notify>,
    /// Notified after outbound jobs were queued.
    pub outbound_wake: Arc<Notify>,
    /// Links to the customers' pages for customer mail (status page,
    /// survey); None when `web.public_listen` is not set.
    pub public: Option<crate::links::Urls>,
    /// Tickets whose chat visitor is connected: an agent's reply reaches
    /// them in the widget and is not mailed as well.
    pub chat_live: crate::chat_live::Live,
}

impl Processor {
    /// Processes the spool until `shutdown` turns true and nothing is left to do.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let _running = crate::liveness::PROCESSOR.running();
        loop {
            let worker = this.clone();
            let busy = crate::liveness::PROCESSOR.busy();
            let done = tokio::task::spawn_blocking(move || worker.process_pending(BATCH))
                .instrument(info_span!("process"))
                .await;
            drop(busy);
            match done {
                Ok(Ok(0)) => {
                    let worker = this.clone();
                    match tokio::task::spawn_blocking(move || worker.expire_held()).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(_)) => this.outbound_wake.notify_one(),
                        Ok(Err(e)) => tracing::error!(error = %e, "expiring held replies failed"),
                        Err(e) => tracing::error!(error = %e, "held-reply task failed"),
                    }
                }
                Ok(Ok(_)) => {
                    this.outbound_wake.notify_one();
                    continue;
                }
                Ok(Err(e)) => {
                    // The batch was rolled back and stays in the spool; retry later.
                    tracing::error!(error = %e, "processing failed; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "processing task failed; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = this.committed.notified() => {}
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// Processes up to `limit` spooled messages in one transaction; returns how many.
    pub fn process_pending(&self, limit: usize) -> Result<usize, StoreError> {
        let pending = self.store.pending_spool(limit)?;
        if pending.is_empty() {
            return Ok(0);
        }
        // Parsing and reply stripping are the CPU-heavy part: done before the
        // write transaction, so SMTP intake (which needs the same single
        // writer for its commits) waits only for the writes.
        let prepared = self.prepare_batch(pending, BATCH_BYTES)?;
        let seqs: Vec<MessageSeq> = prepared.iter().map(|p| p.seq).collect();
        self.store.write(|tx| {
            for p in prepared {
                let _span = info_span!("message", seq = p.seq).entered();
                self.process_one(tx, p)?;
            }
            Ok(())
        })?;
        crate::counters::processed(&seqs);
        Ok(seqs.len())
    }

    /// Prepares spooled messages in order until their raw bytes reach
    /// `max_bytes` (at least one message, so the bound is `max_bytes` plus
    /// one message); the rest stay spooled for the next batch.
    fn prepare_batch(
        &self,
        pending: Vec<(MessageSeq, Envelope)>,
        max_bytes: usize,
    ) -> Result<Vec<Prepared>, StoreError> {
        let mut prepared = Vec::with_capacity(pending.len());
        let mut bytes = 0usize;
        for (seq, env) in pending {
            if !prepared.is_empty() && bytes >= max_bytes {
                break;
            }
            let p = self.prepare(seq, env)?;
            bytes = bytes.saturating_add(p.raw.as_ref().map_or(0, Vec::len));
            prepared.push(p);
        }
        Ok(prepared)
    }

    /// Reads and parses one spooled message. Its raw bytes never change once
    /// spooled, so this needs no write transaction.
    fn prepare(&self, seq: MessageSeq, env: Envelope) -> Result<Prepared, StoreError> {
        let raw = self.store.raw(seq)?;
        let parsed = match &raw {
            // mail-parser must never take the daemon down: a message it panics on is kept aside.
            Some(raw) => {
                std::panic::catch_unwind(|| parse::parse(raw)).unwrap_or_else(|_| Parsed {
                    unparseable: true,
                    ..Parsed::default()
                })
            }
            None => Parsed::default(),
        };
        let text = truncate(parsed.visible_text(), MAX_TEXT);
        Ok(Prepared {
            seq,
            env,
            raw,
            parsed,
            text,
        })
    }

    fn process_one(&self, tx: &mut Tx<'_>, p: Prepared) -> Result<(), StoreError> {
        let Prepared {
            seq,
            env,
            raw,
            parsed,
            text,
        } = p;
        let env = &env;
        tx.remove_spool(seq)?;
        let Some(raw) = raw else {
            warn!("spool entry without raw message; dropped entry");
            return Ok(());
        };
        let imported = env.source == Source::Import;
        // Imported history happened when its Date says: its events are dated so.
        let now = match imported {
            true => parsed.date.filter(|d| *d > 0).unwrap_or(env.received_at),
            false => self.clock.now(),
        };

        if let Some(first) = self.duplicate_of(tx, seq, &parsed, &raw)? {
            info!(duplicate_of = first, "duplicate message dropped");
            tx.put_duplicate(seq, first)?;
            tx.remove_raw(seq)?;
            return Ok(());
        }

        let msg = Incoming::read(&self.cfg, &parsed, env, now);
        let (class, sender) = (msg.class, msg.sender.clone());
        let mut record = MessageRecord {
            seq,
            ticket: None,
            message_id: parsed.message_id.clone().unwrap_or_default(),
            direction: Direction::Inbound,
            kind: class.message_kind(),
            from: sender.clone(),
            to: parsed.to.iter().chain(parsed.cc.iter()).cloned().collect(),
            subject: parsed.subject.clone(),
            date: parsed.date.filter(|d| *d > 0).unwrap_or(env.received_at),
            text,
            stranger: None,
        };
        // For search: the sender's name and attachment names, which the record does not keep.
        tx.put_message_extras(
            seq,
            &crate::store::MessageExtras {
                from_name: parsed.from_name.clone(),
                attachments: parsed.attachments.iter().map(|(_, n)| n.clone()).collect(),
            },
        )?;
        if let Some(verdict) = &env.sender_auth {
            tx.put_sender_verdict(seq, verdict)?;
        }

        // An agent's mail in imported history is part of the conversation,
        // never a command or a reply to relay.
        let from_agent = !imported && self.rules.current().agents.by_address(&sender).is_some();
        if let Some(route) =
            agent::route(&self.cfg, &self.tokens, &parsed, env, from_agent).filter(|_| !imported)
        {
            return self.agent_mail(tx, &mut record, &msg, &raw, route);
        }
        let found = thread::find(tx, &self.tokens, &self.cfg, &parsed, env, class, &sender)?;
        // An agent's mail that threads into a ticket without the agent token
        // (an answer to a notice, a Cc) is not the customer speaking: posting
        // it as a customer message would put agent text in the conversation.
        // Unless the agent takes part in the ticket as a customer, it is set
        // aside with a notice, like any agent mail that cannot be posted.
        if from_agent
            && class == Class::Customer
            && let Some(m) = &found.matched
        {
            let ticket = self.load_ticket(tx, m.ticket)?;
            if !ticket.participants.contains(&sender) {
                let rules = self.rules.current();
                let agent = rules.agents.by_address(&sender).cloned();
                return self.reject(
                    tx,
                    &mut record,
                    agent.as_ref(),
                    Some(ticket),
                    "it is not an answer to a notification (threaded only by its headers); \
                     to answer the customer, reply to a notification: its Reply-To carries \
                     your signed address",
                    now,
                );
            }
        }
        match class {
            Class::Bounce => match found.matched {
                Some(m) => {
                    let mut ticket = self.load_ticket(tx, m.ticket)?;
                    let _t = info_span!("ticket", id = ticket.id).entered();
                    self.attach(tx, &mut ticket, &mut record, &parsed, now)?;
                    if let Some(report) = bounce::parse(&raw) {
                        let about = self.bounced_message(env, &sender);
                        self.delivery_report(tx, &mut ticket, &report, &sender, about, now)?;
                        tx.put_ticket(&ticket)?;
                        return Ok(());
                    }
                    let detail = format!(
                        "delivery failure reported by {} ({}): {}",
                        if sender.is_empty() { "<>" } else { &sender },
                        m.reason,
                        parsed
                            .dsn_summary
                            .clone()
                            .unwrap_or_else(|| parsed.subject.clone())
                    );
                    tx.add_event(
                        &mut ticket,
                        event(now, EventKind::DeliveryFailed, "postdesk", detail),
                    )?;
                    tx.put_ticket(&ticket)?;
                    info!(ticket = ticket.id, "bounce attached to its ticket");
                }
                None => {
                    self.quarantine(
                        tx,
                        &mut record,
                        now,
                        "delivery status notification that matches none of our mail",
                    )?;
                }
            },
            Class::Customer | Class::AutoReply | Class::List | Class::OwnLoop => {
                let cleared = self.writes_again(tx, &msg)?;
                let existing = match &found.matched {
                    Some(m) => {
                        let t = self.load_ticket(tx, m.ticket)?;
                        // A rating in answer to the survey of a closed ticket
                        // still belongs to it (it opens nothing).
                        let rating = class == Class::Customer
                            && t.status == Status::Closed
                            && self.rating_reply(tx, &t, &record.text)?.is_some();
                        // History imported as finished joins its thread
                        // whatever its status: a follow-up is for mail of now.
                        let history = env.history_status().is_some();
                        (t.status != Status::Closed
                            || class != Class::Customer
                            || rating
                            || history)
                            .then_some((t, m.clone()))
                    }
                    None => None,
                };
                match existing {
                    Some((ticket, m)) => self.add_to_ticket(tx, ticket, &mut record, &msg, &m)?,
                    None => self.new_ticket(tx, &mut record, &msg, &found)?,
                }
                if let (Some(was), Some(id)) = (cleared, record.ticket) {
                    self.note_bounce_cleared(tx, id, &sender, &was, now)?;
                }
            }
        }
        Ok(())
    }

    /// Adds a message to the ticket it threads into. A participant's reply
    /// brings in its Cc, reopens a resolved ticket and restarts a paused SLA
    /// clock; a stranger's joins the conversation, marked, and changes nothing
    /// else (the agents are told, and can add the sender with one command).
    fn add_to_ticket(
        &self,
        tx: &mut Tx<'_>,
        mut ticket: Ticket,
        record: &mut MessageRecord,
        msg: &Incoming<'_>,
        m: &thread::ThreadMatch,
    ) -> Result<(), StoreError> {
        let (parsed, class, sender, now) = (msg.parsed, msg.class, msg.sender.as_str(), msg.now);
        let _t = info_span!("ticket", id = ticket.id).entered();
        let standing = participants::standing(&ticket, sender, &msg.vouch);
        if let (Class::Customer, Standing::Stranger(why)) = (class, &standing) {
            record.stranger = Some(why.clone());
        }
        self.attach(tx, &mut ticket, record, parsed, now)?;
        unseen::remember(tx, parsed, ticket.id, true)?;
        let detail = format!("{} threaded by {}", class.as_str(), m.reason);
        tx.add_event(
            &mut ticket,
            event(now, EventKind::MessageAdded, sender, detail).about(record.seq),
        )?;
        if class != Class::Customer {
            tx.put_ticket(&ticket)?;
            info!(ticket = ticket.id, reason = %m.reason, "message threaded");
            return Ok(());
        }
        let rules = self.rules.current();
        if let Standing::Stranger(why) = &standing {
            let detail = stranger_detail(record.seq, why, sender, &parsed.cc);
            tx.add_event(
                &mut ticket,
                event(now, EventKind::NonParticipant, sender, detail),
            )?;
            self.notify_agents(
                tx,
                &rules,
                &mut ticket,
                msg,
                record,
                notify::Cause::CustomerReply,
            )?;
            tx.put_ticket(&ticket)?;
            info!(ticket = ticket.id, reason = %m.reason, "stranger's message threaded");
            return Ok(());
        }
        self.admit_cc(tx, &mut ticket, &rules, msg)?;
        if ticket.unverified && thread::proves_receipt(m) {
            ticket.unverified = false;
            let detail = format!("{sender} answered by {}", m.reason);
            tx.add_event(&mut ticket, event(now, EventKind::Verified, sender, detail))?;
        }
        ticket.last_customer_message_id = parsed.message_id.clone();
        if let Some(score) = self.rating_reply(tx, &ticket, &record.text)? {
            return self.rating_by_mail(tx, &rules, ticket, record, sender, score, now);
        }
        // History imported as finished changes no status (it reopens
        // nothing, so no reopened notice, no survey called off).
        let status = match msg.env.history_status() {
            Some(_) => None,
            None => Some(ticket.status),
        };
        match status {
            None => {}
            Some(Status::Pending) => {
                ticket.status = Status::Open;
                let detail = "pending → open: customer replied".to_string();
                tx.add_event(&mut ticket, event(now, EventKind::Status, sender, detail))?;
                if msg.env.source != Source::Import {
                    crate::sla::resume(tx, &mut ticket, &rules.sla, &rules.calendars, now)?;
                }
            }
            Some(Status::Resolved | Status::Closed) => {
                let detail = format!("customer replied to a {} ticket", ticket.status.as_str());
                ticket.status = Status::Open;
                tx.add_event(&mut ticket, event(now, EventKind::Reopened, sender, detail))?;
                // A reopened ticket is owed an answer again: a fresh SLA
                // cycle (not for history: that answer was given or not long ago).
                if msg.env.source != Source::Import {
                    start_sla(tx, &mut ticket, &rules, now)?;
                }
                self.call_off_survey(tx, &mut ticket, "the customer reopened the ticket", now)?;
                // Imported history mails nobody: the notice is for a customer writing now.
                if msg.env.source != Source::Import {
                    self.reopened_notice(tx, &rules, &mut ticket, now)?;
                }
            }
            Some(Status::New | Status::Open) => {}
        }
        self.notify_agents(
            tx,
            &rules,
            &mut ticket,
            msg,
            record,
            notify::Cause::CustomerReply,
        )?;
        tx.put_ticket(&ticket)?;
        info!(ticket = ticket.id, reason = %m.reason, "message threaded");
        Ok(())
    }

    /// Brings a participant's Cc into the ticket (within the caps; never our
    /// own addresses or the agents'), recording what a cap left out.
    fn admit_cc(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        rules: &RuleSet,
        msg: &Incoming<'_>,
    ) -> Result<(), StoreError> {
        let caps = &self.cfg.tickets;
        let admitted = participants::admit(
            ticket,
            msg.parsed.cc.iter().map(String::as_str),
            caps,
            |a| {
                self.cfg.accepts(a)
                    || a.eq_ignore_ascii_case(self.cfg.from_address())
                    || rules.agents.by_address(a).is_some()
            },
        );
        match admitted.cap_note(caps) {
            Some(note) => tx.add_event(
                ticket,
                event(msg.now, EventKind::ParticipantsCapped, "postdesk", note),
            ),
            None => Ok(()),
        }
    }

    /// Opens a ticket for a message that threads nowhere: routing, SLA, acknowledgement.
    fn new_ticket(
        &self,
        tx: &mut Tx<'_>,
        record: &mut MessageRecord,
        msg: &Incoming<'_>,
        found: &thread::Found,
    ) -> Result<(), StoreError> {
        let (parsed, class, sender, now) = (msg.parsed, msg.class, msg.sender.as_str(), msg.now);
        let rules = self.rules.current();
        let plan = decide::new_ticket(&self.cfg, &rules, msg);
        let queue = plan.queue.clone();
        let mut ticket = Ticket {
            subject: if parsed.subject.is_empty() {
                "(no subject)".into()
            } else {
                parsed.subject.clone()
            },
            queue,
            requester_name: parsed.from_name.clone(),
            last_customer_message_id: parsed.message_id.clone(),
            ..Ticket::new(tx.next_id("next_ticket")?, sender, now)
        };
        let _t = info_span!("ticket", id = ticket.id).entered();
        if !sender.is_empty() {
            ticket.participants.insert(sender.to_string());
        }
        ticket.unverified = msg.env.source.address_typed();
        let mut why = match (&found.matched, &found.note) {
            (Some(m), _) => {
                format!("follow-up to closed ticket #{} ({})", m.ticket, m.reason)
            }
            (None, Some(note)) => format!("no thread matched; {note}"),
            (None, None) => "no thread matched".to_string(),
        };
        // History imported as finished is so from its first event: nobody
        // resolved it here, so no status change is recorded (the reports
        // count no resolution, no survey or notice follows one).
        if let Some(status) = msg.env.history_status() {
            ticket.status = status;
            why.push_str(&format!("; imported as {}", status.as_str()));
        }
        tx.add_event(
            &mut ticket,
            event(
                now,
                EventKind::Created,
                sender,
                format!("{} from {sender}: {why}", class.as_str()),
            )
            .about(record.seq),
        )?;
        // For the reports' volume by channel.
        tx.note_ticket_channel(ticket.id, &msg.env.source, record.seq)?;
        self.attach(tx, &mut ticket, record, parsed, now)?;
        unseen::remember(tx, parsed, ticket.id, false)?;
        // The requester's own mail brings in its Cc; mail that nothing
        // vouches came from its From brings in nobody but the requester
        // (who, if forged, is the one who gets the replies, not the forger).
        if class == Class::Customer && !parsed.cc.is_empty() {
            match msg.vouch.doubt() {
                None => self.admit_cc(tx, &mut ticket, &rules, msg)?,
                Some(doubt) => {
                    let detail = format!(
                        "Cc not added as participants ({}): {doubt}",
                        shown_list(&parsed.cc)
                    );
                    tx.add_event(
                        &mut ticket,
                        event(now, EventKind::CcNotAdded, sender, detail),
                    )?;
                }
            }
        }
        self.apply_plan(tx, &mut ticket, &rules, &plan, now)?;
        let template = match &plan.ack {
            decide::Ack::Off => None,
            decide::Ack::Suppressed(reason) => {
                info!(%reason, "no acknowledgement");
                let detail = reason.clone();
                tx.add_event(
                    &mut ticket,
                    event(now, EventKind::AckSuppressed, "postdesk", detail),
                )?;
                None
            }
            decide::Ack::Send(decide::AckTemplate::Default) => rules.acknowledgement.as_ref(),
            decide::Ack::Send(decide::AckTemplate::Named(name)) => rules.templates.get(name),
        };
        if let Some(t) = template {
            self.acknowledge(tx, &mut ticket, t, msg)?;
        }
        if class == Class::Customer {
            self.notify_agents(
                tx,
                &rules,
                &mut ticket,
                msg,
                record,
                notify::Cause::NewTicket,
            )?;
        }
        tx.put_ticket(&ticket)?;
        info!(ticket = ticket.id, class = class.as_str(), "ticket created");
        Ok(())
    }

    /// The earlier copy of this message, if it is one. Copies share the
    /// Message-ID and the body; the headers may differ (a copy fetched by IMAP
    /// carries the receiving MTA's trace headers). A message that reuses a
    /// Message-ID with another body is a different message and is kept.
    fn duplicate_of(
        &self,
        tx: &mut Tx<'_>,
        seq: MessageSeq,
        parsed: &Parsed,
        raw: &[u8],
    ) -> Result<Option<MessageSeq>, StoreError> {
        let Some(id) = &parsed.message_id else {
            let key = format!("sha256:{}", sha256_hex(raw));
            return tx.dedup(&key, seq);
        };
        let Some(first) = tx.dedup(&format!("mid:{id}"), seq)? else {
            return Ok(None);
        };
        let body = sha256_hex(body_of(raw));
        if tx
            .raw(first)?
            .is_some_and(|r| sha256_hex(body_of(&r)) == body)
        {
            return Ok(Some(first));
        }
        tx.dedup(&format!("mid:{id}:{body}"), seq)
    }

    /// The stored message this one is a copy of, by the same rule as
    /// [`Processor::duplicate_of`] but read-only: how an import knows a
    /// message it already took without spooling it again.
    pub fn stored_copy(
        &self,
        parsed: &Parsed,
        raw: &[u8],
    ) -> Result<Option<MessageSeq>, StoreError> {
        let Some(id) = &parsed.message_id else {
            return self
                .store
                .dedup_entry(&format!("sha256:{}", sha256_hex(raw)));
        };
        let Some(first) = self.store.dedup_entry(&format!("mid:{id}"))? else {
            return Ok(None);
        };
        let body = sha256_hex(body_of(raw));
        if self
            .store
            .raw(first)?
            .is_some_and(|r| sha256_hex(body_of(&r)) == body)
        {
            return Ok(Some(first));
        }
        self.store.dedup_entry(&format!("mid:{id}:{body}"))
    }

    fn load_ticket(&self, tx: &mut Tx<'_>, id: TicketId) -> Result<Ticket, StoreError> {
        tx.ticket(id)?.ok_or_else(|| {
            StoreError::Io(std::io::Error::other(format!(
                "ticket {id} vanished during processing"
            )))
        })
    }

    /// Stores `record` as a message of `ticket` and indexes its Message-ID.
    fn attach(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        record: &mut MessageRecord,
        parsed: &Parsed,
        now: i64,
    ) -> Result<(), StoreError> {
        record.ticket = Some(ticket.id);
        tx.put_message(record)?;
        if let Some(id) = &parsed.message_id {
            tx.index_msgid(id, ticket.id)?;
        }
        ticket.message_count += 1;
        ticket.updated_at = now;
        note_dropped(tx, ticket, record.seq, parsed, now)
    }

    fn quarantine(
        &self,
        tx: &mut Tx<'_>,
        record: &mut MessageRecord,
        now: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        warn!(reason, from = %record.from, "message quarantined");
        tx.put_message(record)?;
        tx.put_quarantine(&QuarantineEntry {
            message: record.seq,
            at: now,
            reason: reason.to_string(),
            from: record.from.clone(),
            subject: record.subject.clone(),
        })
    }

    /// Queues the acknowledgement the plan decided on, unless an hourly rate
    /// limit forbids it (then records why none is sent).
    fn acknowledge(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        template: &Template,
        msg: &Incoming<'_>,
    ) -> Result<(), StoreError> {
        let (parsed, now) = (msg.parsed, msg.now);
        let Some(mailbox) = msg.mailbox else {
            return Ok(());
        };
        if let Some(b) = tx.bouncing(&parsed.from)? {
            let reason = bounce_facts::bouncing_reason(&parsed.from, &b);
            info!(%reason, "no acknowledgement");
            return tx.add_event(
                ticket,
                event(now, EventKind::AckSuppressed, "postdesk", reason),
            );
        }
        if let Some(reason) = self.ack_rate_limited(tx, &parsed.from, now)? {
            info!(%reason, "no acknowledgement");
            return tx.add_event(
                ticket,
                event(now, EventKind::AckSuppressed, "postdesk", reason),
            );
        }
        let seq = tx.next_id("next_message")?;
        let mail = self.render_ack(template, ticket, parsed, mailbox, seq, now);
        tx.put_raw(seq, &mail.raw)?;
        let record = MessageRecord {
            seq,
            ticket: Some(ticket.id),
            message_id: mail.message_id.clone(),
            direction: Direction::Outbound,
            kind: MessageKind::Auto,
            from: self.cfg.from_address().to_string(),
            to: vec![parsed.from.clone()],
            subject: mail.subject.clone(),
            date: now,
            text: mail.text,
            stranger: None,
        };
        tx.put_message(&record)?;
        tx.index_msgid(&mail.message_id, ticket.id)?;
        ticket.message_count += 1;
        let bounce = self.tokens.bounce_address(&mailbox.address, ticket.id, seq);
        enqueue(
            tx,
            seq,
            Some(ticket.id),
            bounce,
            vec![parsed.from.clone()],
            now,
        )?;
        tx.add_event(
            ticket,
            event(
                now,
                EventKind::Acknowledged,
                "postdesk",
                format!("acknowledgement queued to {}", parsed.from),
            )
            .about(seq),
        )
    }

    /// Why the acknowledgement rate limits forbid one to `to` now, if they do:
    /// per address, and for all addresses together.
    fn ack_rate_limited(
        &self,
        tx: &mut Tx<'_>,
        to: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let ack = &self.cfg.acknowledgement;
        if !tx.take_ack_allowance(to, now, ack.max_per_address_per_hour)? {
            return Ok(Some(format!(
                "rate limit: already {} acknowledgements to {to} this hour",
                ack.max_per_address_per_hour
            )));
        }
        if !tx.take_ack_allowance(GLOBAL_ACK_KEY, now, ack.max_per_hour)? {
            return Ok(Some(format!(
                "rate limit: already {} acknowledgements in all this hour",
                ack.max_per_hour
            )));
        }
        Ok(None)
    }

    fn render_ack(
        &self,
        template: &Template,
        ticket: &Ticket,
        parsed: &Parsed,
        mailbox: &MailboxConfig,
        seq: MessageSeq,
        now: i64,
    ) -> RenderedMail {
        let name = if parsed.from_name.is_empty() {
            parsed.from.split('@').next().unwrap_or("").to_string()
        } else {
            parsed.from_name.clone()
        };
        let id = ticket.id.to_string();
        let status_url = self.status_url(ticket.id, &parsed.from, now);
        let kb_suggestions = self.kb_suggestions(&ticket.subject, &parsed.text);
        let (subject, text) = template.render(&ack::Vars {
            ticket: &id,
            subject: &ticket.subject,
            name: &name,
            queue: &ticket.queue,
            status_url: &status_url,
            kb_suggestions: &kb_suggestions,
        });
        let message_id = compose::message_id(ticket.id, seq, &self.cfg.server.hostname);
        let from_addr = self.cfg.from_address().to_string();
        let from_name = display_name(&self.cfg.outbound.from);
        let reply_to = self
            .tokens
            .reply_address(&mailbox.address, ticket.id, &parsed.from, now);
        let (in_reply_to, references) = match &parsed.message_id {
            Some(cid) => {
                let mut refs = bounded_references(&parsed.references);
                refs.push(cid.clone());
                (Some(cid.clone()), refs)
            }
            None => (None, Vec::new()),
        };
        let raw = compose::render(
            &compose::Outgoing {
                kind: compose::Kind::AutoReply,
                from: (from_name, from_addr),
                to: parsed.from.clone(),
                cc: Vec::new(),
                reply_to: Some(reply_to),
                subject: subject.clone(),
                message_id: message_id.clone(),
                date: now,
                in_reply_to,
                references,
                body: text.clone(),
                attachments: &[],
                extra_headers: Vec::new(),
            },
            &self.cfg.server.hostname,
        );
        RenderedMail {
            raw,
            message_id,
            subject,
            text,
        }
    }
}

impl Processor {
    /// Up to three public knowledge-base articles matching a new request
    /// (subject and text), one `Title: URL` line each after a newline, for
    /// the acknowledgement's `{{kb_suggestions}}`; empty when none scores
    /// [`crate::search_index::articles::MIN_SUGGESTION_SCORE`] or the public pages are
    /// not served (the links would lead nowhere).
    pub(crate) fn kb_suggestions(&self, subject: &str, text: &str) -> String {
        let Some(base) = self.cfg.public_base_url() else {
            return String::new();
        };
        let rules = self.rules.current();
        crate::search_index::articles::suggest(&rules.kb, &format!("{subject}\n{text}"), 3)
            .iter()
            .map(|a| format!("\n{}: {base}/kb/{}", a.title, a.slug))
            .collect()
    }

    /// The signed status page of `ticket` for `recipient`, for customer
    /// mail; empty when the customers' pages are not served.
    pub(crate) fn status_url(&self, ticket: TicketId, recipient: &str, now: i64) -> String {
        self.public
            .as_ref()
            .map_or_else(String::new, |u| u.status(ticket, recipient, now))
    }

    /// Applies a new ticket's routing and SLA decisions, with their events.
    fn apply_plan(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        rules: &RuleSet,
        plan: &decide::NewTicket,
        now: i64,
    ) -> Result<(), StoreError> {
        ticket.queue = plan.queue.clone();
        ticket.priority = plan.priority;
        for t in &plan.tags {
            if !ticket.tags.contains(t) {
                ticket.tags.push(t.clone());
            }
        }
        if let Some(a) = &plan.assign {
            ticket.assignee = crate::assignment::resolve(tx, rules, a, &ticket.queue)?;
        }
        if !plan.matched.is_empty() {
            let detail = plan
                .matched
                .iter()
                .map(|(name, why)| format!("rule {name:?} ({})", why.join("; ")))
                .collect::<Vec<_>>()
                .join(", ");
            tx.add_event(ticket, event(now, EventKind::Routed, "rules", detail))?;
        }
        // After routing: the policy is chosen by the priority and queue it set.
        if plan.sla.is_some() {
            start_sla(tx, ticket, rules, now)?;
        }
        Ok(())
    }
}

/// Who acts on a ticket, and when: the agent behind a change and the time
/// of the request.
#[derive(Clone, Copy)]
pub(crate) struct Actor<'a> {
    pub agent: &'a crate::rules::Agent,
    pub now: i64,
}

/// Records on `ticket` the values of message `seq` that failed their syntax
/// checks and were dropped, if any.
fn note_dropped(
    tx: &mut Tx<'_>,
    ticket: &mut Ticket,
    seq: MessageSeq,
    parsed: &Parsed,
    now: i64,
) -> Result<(), StoreError> {
    if parsed.dropped.is_empty() {
        return Ok(());
    }
    let detail = format!(
        "message {seq}: invalid values dropped: {}",
        parsed.dropped.join(", ")
    );
    tx.add_event(
        ticket,
        event(now, EventKind::InvalidInput, "postdesk", detail),
    )
}

/// The acknowledgement allowance key that counts every acknowledgement.
const GLOBAL_ACK_KEY: &str = "*all acknowledgements*";

/// At most this many References are copied into our mail: the first (the
/// thread's root) and the nearest ancestors, as RFC 5322 §3.6.4 suggests.
const MAX_REFERENCES_SENT: usize = 20;

/// `refs` bounded to [`MAX_REFERENCES_SENT`]: the root and the last ones.
pub(crate) fn bounded_references(refs: &[String]) -> Vec<String> {
    if refs.len() <= MAX_REFERENCES_SENT {
        return refs.to_vec();
    }
    let mut out = vec![refs[0].clone()];
    out.extend_from_slice(&refs[refs.len() - (MAX_REFERENCES_SENT - 1)..]);
    out
}

/// The event detail for a stranger's message.
fn stranger_detail(seq: MessageSeq, why: &str, sender: &str, cc: &[String]) -> String {
    let cc = if cc.is_empty() {
        String::new()
    } else {
        format!(" nor its Cc ({})", shown_list(cc))
    };
    format!(
        "message {seq} joins the conversation from a non-participant ({why}); \
         neither the sender{cc} will receive replies. To add them: #participant add {sender}"
    )
}

/// Up to five addresses of `list`, for an event.
fn shown_list(list: &[String]) -> String {
    let shown: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
    let more = if list.len() > shown.len() {
        format!(", … ({} in all)", list.len())
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// A spooled message read and parsed, ready for its write transaction.
struct Prepared {
    seq: MessageSeq,
    env: Envelope,
    raw: Option<Vec<u8>>,
    parsed: Parsed,
    /// The visible text (quoted replies and signatures stripped), truncated.
    text: String,
}

struct RenderedMail {
    raw: Vec<u8>,
    message_id: String,
    subject: String,
    text: String,
}

/// `"Example Support" <support@…>` → `Example Support`.
fn display_name(from: &str) -> String {
    let name = from.find('<').map_or("", |i| &from[..i]);
    name.trim()
        .trim_matches('"')
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Starts the ticket's SLA clock under the policy its priority and queue
/// select (if any), recorded as an event with the deadlines.
pub(crate) fn start_sla(
    tx: &mut Tx<'_>,
    ticket: &mut Ticket,
    rules: &RuleSet,
    now: i64,
) -> Result<(), StoreError> {
    crate::sla::start(tx, ticket, &rules.sla, &rules.calendars, now)?;
    let Some(state) = &ticket.sla else {
        return Ok(());
    };
    let due = |d: Option<i64>| d.map_or("none".to_string(), crate::clock::rfc3339);
    let detail = format!(
        "policy {:?}: first response due {}, resolution due {}",
        state.policy,
        due(state.first_response_due),
        due(state.resolution_due)
    );
    tx.add_event(ticket, event(now, EventKind::SlaStarted, "sla", detail))
}

fn event(at: i64, kind: EventKind, actor: &str, detail: String) -> Event {
    Event::new(at, kind, actor, detail)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The body of a raw message: what follows the first empty line.
fn body_of(raw: &[u8]) -> &[u8] {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => &raw[a.min(b)..],
        (Some(a), None) | (None, Some(a)) => &raw[a..],
        (None, None) => raw,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod agent_tests;
