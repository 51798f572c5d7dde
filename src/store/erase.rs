//! Erasing a person's data (`postdesk erase --customer ADDRESS`) and
//! removing old tickets' content (retention rules), inside one write
//! transaction each.
//!
//! What goes: every message the person sent (raw bytes replaced by a stub
//! that keeps only the Message-ID, so threading still works; record text,
//! subject and sender cleared), the person's address and display name in
//! every other message, event and ticket field that holds them (our replies
//! to them keep their text with the address and name removed), their place
//! among the participants, mail still queued to them, and their
//! acknowledgement and bounce records. What stays: ticket numbers, statuses,
//! times and events (reports stay true) and an `erased` event on each
//! ticket touched, which names no one.
//!
//! Finding the person's tickets reads every ticket and message record (no
//! index by address exists): seconds at a million tickets. That search runs
//! in a read transaction ([`Store::erase_plan`], [`Store::retention_plan`]),
//! so intake, which needs the one writer, never waits for it; the write
//! transaction then touches only the records the plan named, re-checking
//! each, plus the messages stored since the plan.

use super::{
    ACK_RATE, EVENTS, MESSAGES, OUTBOUND, Result, Store, TICKETS, Tx, bouncing::BOUNCING,
    chat::CHAT_CONVERSATIONS, csat::SURVEYS, dec, delivery_evidence::DELIVERY_EVIDENCE, enc,
    sender_verdicts::SENDER_VERDICTS,
};
use crate::model::{Event, EventKind, MessageRecord, MessageSeq, OutboundJob, Ticket, TicketId};
use crate::rules::retention::Retention;
use redb::{ReadableDatabase, ReadableTable};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What stands in for an erased address.
pub const ERASED_ADDRESS: &str = "erased@invalid";
const ERASED: &str = "[erased]";

/// What an erasure did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ErasureReport {
    /// Tickets touched.
    pub tickets: Vec<TicketId>,
    /// Messages the person sent, replaced by stubs.
    pub messages_erased: u64,
    /// Other messages (ours, other participants', notifications) from which
    /// the address or name was removed.
    pub messages_redacted: u64,
    /// Events whose text named the person.
    pub events_redacted: u64,
    /// Outbound mail to the person dropped from the queue.
    pub jobs_dropped: u64,
    /// Compression dictionaries that hold the person's address or name (a
    /// dictionary is made of strings common in the store's values). They
    /// are marked stale: `postdesk compact` trains new ones and drops them.
    pub dictionaries_holding: u64,
}

/// Replaces `needle` in `hay`, ignoring ASCII case; None when absent.
fn replace_ci(hay: &str, needle: &str, with: &str) -> Option<String> {
    if needle.is_empty() {
        return None;
    }
    let lower_hay = hay.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    if !lower_hay.contains(&lower_needle) {
        return None;
    }
    let mut out = String::with_capacity(hay.len());
    let mut rest = 0;
    for (i, _) in lower_hay.match_indices(&lower_needle) {
        // ASCII lower-casing keeps byte offsets, so `i` is valid in `hay`.
        out.push_str(&hay[rest..i]);
        out.push_str(with);
        rest = i + needle.len();
    }
    out.push_str(&hay[rest..]);
    Some(out)
}

/// What names the person: the address and, when long enough not to hit
/// ordinary words, their display names.
struct Person {
    address: String,
    names: Vec<String>,
}

impl Person {
    /// Removes the person from every string of a JSON record; whether any
    /// named them.
    fn redact_json(&self, v: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match v {
            Value::String(s) => match self.redact(s) {
                Some(r) => {
                    *s = r;
                    true
                }
                None => false,
            },
            // Every element is visited (no short circuit): all must be clean.
            Value::Array(items) => {
                let mut changed = false;
                for i in items {
                    changed |= self.redact_json(i);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                for i in map.values_mut() {
                    changed |= self.redact_json(i);
                }
                changed
            }
            _ => false,
        }
    }

    fn redact(&self, text: &str) -> Option<String> {
        let mut changed = None::<String>;
        for needle in std::iter::once(&self.address).chain(&self.names) {
            let current = changed.as_deref().unwrap_or(text);
            if let Some(t) = replace_ci(current, needle, ERASED) {
                changed = Some(t);
            }
        }
        changed
    }
}

impl Tx<'_> {
    /// How many stored compression dictionaries contain the person's
    /// address or one of their names (ASCII case ignored).
    fn dictionaries_naming(&mut self, person: &Person) -> Result<u64> {
        let t = self.txn.open_table(super::dictionaries::DICTIONARIES)?;
        let mut n = 0;
        for item in t.iter()? {
            let (_, v) = item?;
            let text = String::from_utf8_lossy(v.value()).to_ascii_lowercase();
            if std::iter::once(&person.address)
                .chain(&person.names)
                .any(|needle| !needle.is_empty() && text.contains(&needle.to_ascii_lowercase()))
            {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The stand-in for a message the person sent: headers that keep its place
/// in the thread, nothing of its content.
fn stub(m: &MessageRecord, now: i64) -> Vec<u8> {
    format!(
        "From: {ERASED} <{ERASED_ADDRESS}>\r\nSubject: {ERASED}\r\nMessage-ID: <{}>\r\nX-Postdesk-Erased: {}\r\n\r\nThis message was erased at the sender's request.\r\n",
        m.message_id,
        crate::clock::rfc3339(now)
    )
    .into_bytes()
}

/// The stand-in for another message that named the person: its own sender
/// and subject, its visible text with the person removed; the original
/// bytes (quoted text, headers, attachments) are gone.
fn redacted_raw(m: &MessageRecord, person: &Person, now: i64) -> Vec<u8> {
    let clean = |s: &str| person.redact(s).unwrap_or_else(|| s.to_string());
    let one_line = |s: String| s.replace(['\r', '\n'], " ");
    let mut text = clean(&m.text).replace("\r\n", "\n").replace('\n', "\r\n");
    if !text.ends_with("\r\n") {
        text.push_str("\r\n");
    }
    format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nMessage-ID: <{}>\r\nX-Postdesk-Redacted: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nMIME-Version: 1.0\r\n\r\n{text}",
        one_line(clean(&m.from)),
        one_line(
            m.to.iter()
                .map(|a| clean(a))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        one_line(clean(&m.subject)),
        m.message_id,
        crate::clock::rfc3339(now)
    )
    .into_bytes()
}

/// The records an erasure may touch, found in a read transaction.
#[derive(Debug, Clone, Default)]
pub struct ErasePlan {
    address: String,
    tickets: BTreeSet<TicketId>,
    messages: BTreeSet<MessageSeq>,
    /// Highest message sequence number the plan saw; later ones are
    /// checked by the write transaction itself.
    upto: MessageSeq,
}

/// A ticket due under a retention rule, with its message records.
#[derive(Debug, Clone)]
pub struct RetentionDue {
    pub ticket: TicketId,
    pub rule: String,
    messages: Vec<MessageSeq>,
}

/// Whether a ticket's content is already gone (erased requester and subject).
fn already_purged(t: &Ticket) -> bool {
    t.requester == ERASED_ADDRESS && t.subject == ERASED
}

impl Store {
    /// Finds what an erasure of `address` would touch (read-only).
    pub fn erase_plan(&self, address: &str) -> Result<ErasePlan> {
        let address = address.trim().to_ascii_lowercase();
        let mut plan = ErasePlan {
            address: address.clone(),
            ..ErasePlan::default()
        };
        if address.is_empty() || address == ERASED_ADDRESS {
            return Ok(plan);
        }
        let r = self.db()?.0.begin_read()?;
        for item in r.open_table(TICKETS)?.iter()? {
            let (_, v) = item?;
            let t: Ticket = dec("tickets", v.value())?;
            if t.requester == address || t.participants.contains(&address) {
                plan.tickets.insert(t.id);
            }
        }
        for item in r.open_table(MESSAGES)?.iter()? {
            let (k, v) = item?;
            let seq = k.value();
            plan.upto = plan.upto.max(seq);
            let m: MessageRecord = dec("messages", v.value())?;
            if m.from.eq_ignore_ascii_case(&address)
                || m.to.iter().any(|a| a.eq_ignore_ascii_case(&address))
                || m.ticket.is_some_and(|t| plan.tickets.contains(&t))
            {
                plan.messages.insert(seq);
            }
        }
        Ok(plan)
    }

    /// Up to `limit` tickets due under `rules` at `now` whose content is
    /// still there, with their message records (read-only).
    pub fn retention_plan(
        &self,
        rules: &Retention,
        now: i64,
        limit: usize,
    ) -> Result<Vec<RetentionDue>> {
        if rules.rules.is_empty() {
            return Ok(Vec::new());
        }
        let r = self.db()?.0.begin_read()?;
        let mut due: BTreeMap<TicketId, RetentionDue> = BTreeMap::new();
        for item in r.open_table(TICKETS)?.iter()? {
            let (_, v) = item?;
            let t: Ticket = dec("tickets", v.value())?;
            if let Some(rule) = rules.due(&t, now)
                && !already_purged(&t)
            {
                due.insert(
                    t.id,
                    RetentionDue {
                        ticket: t.id,
                        rule: rule.name.clone(),
                        messages: Vec::new(),
                    },
                );
                if due.len() >= limit {
                    break;
                }
            }
        }
        if due.is_empty() {
            return Ok(Vec::new());
        }
        for item in r.open_table(MESSAGES)?.iter()? {
            let (k, v) = item?;
            let m: MessageRecord = dec("messages", v.value())?;
            if let Some(d) = m.ticket.and_then(|t| due.get_mut(&t)) {
                d.messages.push(k.value());
            }
        }
        Ok(due.into_values().collect())
    }
}

impl Tx<'_> {
    /// Erases `address` from the store (and the display names their
    /// tickets know them by); with `apply` false only counts what it would
    /// touch.
    pub fn erase_customer(
        &mut self,
        plan: &ErasePlan,
        now: i64,
        apply: bool,
    ) -> Result<ErasureReport> {
        let address = plan.address.clone();
        let mut report = ErasureReport::default();
        if address.is_empty() || address == ERASED_ADDRESS {
            return Ok(report);
        }
        // Messages stored since the plan: a new one from them (or a new
        // ticket of theirs) is erased too.
        let mut seqs = plan.messages.clone();
        let mut ticket_ids = plan.tickets.clone();
        for item in self.txn.open_table(MESSAGES)?.range(plan.upto + 1..)? {
            let (k, v) = item?;
            let m: MessageRecord = dec("messages", v.value())?;
            if m.from.eq_ignore_ascii_case(&address)
                || m.to.iter().any(|a| a.eq_ignore_ascii_case(&address))
            {
                seqs.insert(k.value());
                ticket_ids.extend(m.ticket);
            }
        }
        // Tickets where they take part, and the names they go by.
        let mut tickets: BTreeMap<TicketId, Ticket> = BTreeMap::new();
        let mut names = BTreeSet::new();
        for id in &ticket_ids {
            if let Some(t) = self.ticket(*id)?
                && (t.requester == address || t.participants.contains(&address))
            {
                if t.requester == address && t.requester_name.chars().count() >= 4 {
                    names.insert(t.requester_name.clone());
                }
                tickets.insert(t.id, t);
            }
        }
        let person = Person {
            address: address.clone(),
            names: names.into_iter().collect(),
        };
        // Every message record that came from them or names them, listed in
        // a ticket or not (notifications to agents quote the customer).
        let mut erase: Vec<MessageRecord> = Vec::new();
        let mut redact: Vec<MessageRecord> = Vec::new();
        for seq in seqs {
            let Some(m) = self.message(seq)? else {
                continue;
            };
            let from_them = m.from.eq_ignore_ascii_case(&address);
            let in_their_ticket = m.ticket.is_some_and(|t| tickets.contains_key(&t));
            if from_them {
                erase.push(m);
            } else if m.to.iter().any(|a| a.eq_ignore_ascii_case(&address))
                || (in_their_ticket
                    && (person.redact(&m.text).is_some() || person.redact(&m.subject).is_some()))
            {
                redact.push(m);
            }
        }
        // A message of theirs in a ticket they are no longer part of.
        for m in &erase {
            if let Some(id) = m.ticket
                && !tickets.contains_key(&id)
                && let Some(t) = self.ticket(id)?
            {
                tickets.insert(id, t);
            }
        }
        // Mail still queued to them.
        let mut jobs: Vec<OutboundJob> = Vec::new();
        for item in self.txn.open_table(OUTBOUND)?.iter()? {
            let (_, v) = item?;
            let job: OutboundJob = dec("outbound", v.value())?;
            if job.rcpt_to.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                jobs.push(job);
            }
        }
        // Events that name them.
        let mut events: Vec<((TicketId, u64), Event)> = Vec::new();
        {
            let table = self.txn.open_table(EVENTS)?;
            for id in tickets.keys() {
                for item in table.range((*id, 0)..=(*id, u64::MAX))? {
                    let (k, v) = item?;
                    let e: Event = dec("events", v.value())?;
                    if person.redact(&e.detail).is_some() || person.redact(&e.actor).is_some() {
                        events.push((k.value(), e));
                    }
                }
            }
        }
        report.tickets = tickets.keys().copied().collect();
        report.messages_erased = erase.len() as u64;
        report.messages_redacted = redact.len() as u64;
        report.events_redacted = events.len() as u64;
        report.jobs_dropped = jobs.len() as u64;
        report.dictionaries_holding = self.dictionaries_naming(&person)?;
        if !apply {
            return Ok(report);
        }
        if report.dictionaries_holding > 0 {
            self.mark_dictionaries_stale()?;
        }

        let touched: Vec<MessageSeq> = erase.iter().chain(&redact).map(|m| m.seq).collect();
        for mut m in erase {
            self.put_raw(m.seq, &stub(&m, now))?;
            m.from = ERASED_ADDRESS.to_string();
            m.subject = ERASED.to_string();
            m.text = String::new();
            m.to.retain(|a| !a.eq_ignore_ascii_case(&address));
            self.rewrite_message(&m)?;
        }
        for mut m in redact {
            let raw = redacted_raw(&m, &person, now);
            self.put_raw(m.seq, &raw)?;
            let clean = |s: &str| person.redact(s).unwrap_or_else(|| s.to_string());
            m.text = clean(&m.text);
            m.subject = clean(&m.subject);
            for a in &mut m.to {
                if a.eq_ignore_ascii_case(&address) {
                    *a = ERASED_ADDRESS.to_string();
                }
            }
            self.rewrite_message(&m)?;
        }
        for job in jobs {
            let rest: Vec<String> = job
                .rcpt_to
                .iter()
                .filter(|a| !a.eq_ignore_ascii_case(&address))
                .cloned()
                .collect();
            self.remove_job(job.id)?;
            if !rest.is_empty() {
                self.put_job(&OutboundJob {
                    rcpt_to: rest,
                    ..job
                })?;
            }
        }
        {
            let mut table = self.txn.open_table(EVENTS)?;
            for (key, mut e) in events {
                if let Some(d) = person.redact(&e.detail) {
                    e.detail = d;
                }
                if let Some(a) = person.redact(&e.actor) {
                    e.actor = a;
                }
                table.insert(key, enc(&e).as_slice())?;
            }
        }
        self.txn.open_table(ACK_RATE)?.remove(address.as_str())?;
        self.txn.open_table(BOUNCING)?.remove(address.as_str())?;
        self.redact_side_records(&person, &touched, tickets.keys().copied())?;
        for (_, mut t) in tickets {
            let was_requester = t.requester == address;
            t.participants.remove(&address);
            if was_requester {
                t.requester = ERASED_ADDRESS.to_string();
                t.requester_name = String::new();
            }
            if let Some(s) = person.redact(&t.subject) {
                t.subject = s;
            }
            self.add_event(
                &mut t,
                Event::new(
                    now,
                    EventKind::Erased,
                    "admin",
                    "a customer's personal data was erased from this ticket".into(),
                ),
            )?;
            self.put_ticket(&t)?;
        }
        Ok(report)
    }

    /// Removes the content of the ticket `due` names (retention), if it is
    /// still due under `rules` at `now`: every message becomes a stub, the
    /// customer fields are cleared, events keep their kinds and times but
    /// lose their text. Returns whether it did.
    pub fn purge_ticket_content(
        &mut self,
        due: &RetentionDue,
        rules: &Retention,
        now: i64,
    ) -> Result<bool> {
        let id = due.ticket;
        let Some(mut t) = self.ticket(id)? else {
            return Ok(false);
        };
        if already_purged(&t) || rules.due(&t, now).is_none() {
            return Ok(false);
        }
        let rule = &due.rule;
        for seq in &due.messages {
            let Some(mut m) = self.message(*seq)? else {
                continue;
            };
            self.put_raw(m.seq, &stub(&m, now))?;
            m.from = ERASED_ADDRESS.to_string();
            m.to = Vec::new();
            m.subject = ERASED.to_string();
            m.text = String::new();
            self.rewrite_message(&m)?;
        }
        {
            let mut table = self.txn.open_table(EVENTS)?;
            let keys: Vec<(TicketId, u64)> = table
                .range((id, 0)..=(id, u64::MAX))?
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<std::result::Result<_, _>>()?;
            for key in keys {
                let e: Option<Event> = match table.get(key)? {
                    Some(v) => Some(dec("events", v.value())?),
                    None => None,
                };
                if let Some(mut e) = e {
                    e.detail = String::new();
                    // Agents' names stay (who worked on it); an address goes.
                    if e.actor.contains('@') {
                        e.actor = ERASED.to_string();
                    }
                    table.insert(key, enc(&e).as_slice())?;
                }
            }
        }
        // Evidence, verdicts, surveys and chats name the ticket's people.
        let names: Vec<String> = (t.requester_name.chars().count() >= 4)
            .then(|| t.requester_name.clone())
            .into_iter()
            .collect();
        let people: BTreeSet<String> = t
            .participants
            .iter()
            .cloned()
            .chain(std::iter::once(t.requester.clone()))
            .collect();
        for address in people {
            let person = Person {
                address,
                names: names.clone(),
            };
            self.redact_side_records(&person, &due.messages, std::iter::once(id))?;
        }
        t.requester = ERASED_ADDRESS.to_string();
        t.requester_name = String::new();
        t.participants.clear();
        t.subject = ERASED.to_string();
        t.last_customer_message_id = None;
        self.add_event(
            &mut t,
            Event::new(
                now,
                EventKind::Erased,
                "retention",
                format!("content removed by retention rule {rule:?}"),
            ),
        )?;
        self.put_ticket(&t)?;
        Ok(true)
    }

    /// The records kept beside messages and tickets that may name the
    /// person: delivery evidence and sender verdicts of `messages`, the
    /// surveys of `tickets`, and chat conversations. Their strings are
    /// redacted in place, whatever their fields.
    fn redact_side_records(
        &mut self,
        person: &Person,
        messages: &[MessageSeq],
        tickets: impl Iterator<Item = TicketId>,
    ) -> Result<()> {
        for def in [DELIVERY_EVIDENCE, SENDER_VERDICTS] {
            let mut table = self.txn.open_table(def)?;
            for seq in messages {
                let value: Option<serde_json::Value> = match table.get(*seq)? {
                    Some(v) => Some(dec("side record", v.value())?),
                    None => None,
                };
                if let Some(mut v) = value
                    && person.redact_json(&mut v)
                {
                    table.insert(*seq, enc(&v).as_slice())?;
                }
            }
        }
        let mut surveys = self.txn.open_table(SURVEYS)?;
        for id in tickets {
            let found: Vec<((u64, u32), serde_json::Value)> = surveys
                .range((id, 0)..=(id, u32::MAX))?
                .map(|item| {
                    let (k, v) = item?;
                    Ok((k.value(), dec("surveys", v.value())?))
                })
                .collect::<Result<_>>()?;
            for (k, mut v) in found {
                if person.redact_json(&mut v) {
                    surveys.insert(k, enc(&v).as_slice())?;
                }
            }
        }
        drop(surveys);
        let mut chats = self.txn.open_table(CHAT_CONVERSATIONS)?;
        let mut changed = Vec::new();
        for item in chats.iter()? {
            let (k, v) = item?;
            let mut value: serde_json::Value = dec("chat_conversations", v.value())?;
            if person.redact_json(&mut value) {
                changed.push((k.value().to_string(), value));
            }
        }
        for (k, v) in changed {
            chats.insert(k.as_str(), enc(&v).as_slice())?;
        }
        Ok(())
    }

    /// Stores a changed record under its sequence number without listing it
    /// again; its ticket is re-indexed for search.
    fn rewrite_message(&mut self, m: &MessageRecord) -> Result<()> {
        self.put_message_unlisted(m)?;
        self.remove_message_extras(m.seq)?;
        if let Some(t) = m.ticket {
            self.search_dirty(t);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_ignores_case_and_keeps_the_rest() {
        assert_eq!(
            replace_ci(
                "Mail Ann@Example.org or ann@example.org.",
                "ann@example.org",
                "[x]"
            )
            .as_deref(),
            Some("Mail [x] or [x].")
        );
        assert_eq!(replace_ci("nothing here", "ann@example.org", "[x]"), None);
        assert_eq!(
            replace_ci("ümlaut Ann", "ann", "[x]").as_deref(),
            Some("ümlaut [x]")
        );
    }
}
