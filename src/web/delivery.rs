//! What became of each mail we sent, and why each message is in the
//! ticket: read from the outbound queue (mail not yet delivered) and from
//! the event log (events name the message they are about).
//!
//! A queued job is the truth while it exists; once the sender has a
//! result, the job is gone and the `delivered` / `delivery_failed` /
//! `reply_refused` event of that message says how it ended.

use crate::model::{Event, EventKind, MessageSeq, OutboundJob};
use crate::store::DeliveryEvidence;
use std::collections::HashMap;

/// The delivery evidence of a ticket's messages, by message.
pub type EvidenceBySeq = HashMap<MessageSeq, Vec<DeliveryEvidence>>;

/// The delivery state of one outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting for its first attempt.
    Queued,
    /// Attempted and refused for now; tried again at `next`.
    Retrying {
        attempts: u32,
        error: String,
        next: i64,
    },
    /// The relay took it.
    Delivered(String),
    /// Refused for good (by the relay or, later, by the customer's server).
    Failed(String),
    /// Nothing known: sent before events named their message.
    Unknown,
}

/// The state of message `seq` from the ticket's queued `jobs` and `events`.
pub fn state_of(seq: MessageSeq, jobs: &[OutboundJob], events: &[Event]) -> Delivery {
    if let Some(job) = jobs.iter().find(|j| j.message == seq) {
        return if job.attempts == 0 {
            Delivery::Queued
        } else {
            Delivery::Retrying {
                attempts: job.attempts,
                error: job.last_error.clone().unwrap_or_default(),
                next: job.next_attempt_at,
            }
        };
    }
    let delivered = EventKind::Delivered.as_str();
    let failed = [
        EventKind::DeliveryFailed.as_str(),
        EventKind::ReplyRefused.as_str(),
    ];
    // The last word wins: a refusal reported after delivery (a bounce)
    // overrides it.
    events
        .iter()
        .rev()
        .filter(|e| e.message == Some(seq))
        .find_map(|e| {
            if e.kind == delivered {
                Some(Delivery::Delivered(e.detail.clone()))
            } else if failed.contains(&e.kind.as_str()) {
                Some(Delivery::Failed(e.detail.clone()))
            } else {
                None
            }
        })
        .unwrap_or(Delivery::Unknown)
}

/// The badge of a delivery state: CSS class, label, detail for its title.
pub fn badge(d: &Delivery) -> String {
    use super::html::esc;
    let (class, label, detail) = match d {
        Delivery::Queued => ("queued", "queued".to_string(), String::new()),
        Delivery::Retrying {
            attempts,
            error,
            next,
        } => (
            "retrying",
            format!("retrying ({attempts} attempts)"),
            format!("{error}; next attempt {}", crate::clock::rfc3339(*next)),
        ),
        Delivery::Delivered(d) => ("delivered", "delivered".to_string(), d.clone()),
        Delivery::Failed(d) => ("failed", "not delivered".to_string(), d.clone()),
        Delivery::Unknown => return String::new(),
    };
    let detail_text = match d {
        Delivery::Retrying { .. } | Delivery::Failed(_) => {
            format!(r#" <span class="delivery-detail">{}</span>"#, esc(&detail))
        }
        _ => String::new(),
    };
    format!(
        r#"<span class="delivery delivery-{class}" title="{}">{}</span>{detail_text}"#,
        esc(&detail),
        esc(&label)
    )
}

/// What the receiving servers said when they took a message: host and
/// address, reply and queue id, TLS, DKIM selector. Empty when nothing is
/// recorded (not delivered yet, or delivered before evidence was kept).
pub fn evidence_html(evidence: Option<&[DeliveryEvidence]>) -> String {
    use super::html::{esc, time};
    let Some(evidence) = evidence.filter(|e| !e.is_empty()) else {
        return String::new();
    };
    let rows: String = evidence
        .iter()
        .map(|e| {
            let ip = e
                .ip
                .as_deref()
                .map(|ip| format!(" [{}]", esc(ip)))
                .unwrap_or_default();
            let tls = match &e.tls {
                Some(t) => format!(
                    r#"<span class="tls tls-{class}" title="{why}">{version} {cipher}, certificate {verdict}</span>"#,
                    class = if t.verified { "verified" } else { "unverified" },
                    why = esc(t.verify_error.as_deref().unwrap_or("")),
                    version = esc(&t.version),
                    cipher = esc(&t.cipher),
                    verdict = if t.verified { "verified" } else { "not verified" },
                ),
                None => r#"<span class="tls tls-none">no TLS</span>"#.to_string(),
            };
            let queue_id = e
                .queue_id
                .as_deref()
                .map(|q| format!("; queue id <code>{}</code>", esc(q)))
                .unwrap_or_default();
            let policy = e
                .policy
                .as_deref()
                .map(|p| format!("; policy {}", esc(p)))
                .unwrap_or_default();
            let dkim = match &e.dkim_selector {
                Some(s) => format!("; DKIM selector {}", esc(s)),
                None => "; not DKIM-signed".into(),
            };
            format!(
                r#"<li>{at}: {rcpts} accepted by <span class="host">{host}</span>{ip} ({route}): <q>{reply}</q>{queue_id}; {tls}{policy}{dkim}</li>"#,
                at = time(e.at),
                rcpts = esc(&e.rcpts.join(", ")),
                host = esc(&e.host),
                route = esc(&e.route),
                reply = esc(&e.reply),
            )
        })
        .collect();
    format!(r#"<ul class="evidence" aria-label="Delivery evidence">{rows}</ul>"#)
}

/// The events about message `seq` (why it joined, what happened to it),
/// as indexes into `events`.
pub fn events_about(seq: MessageSeq, events: &[Event]) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.message == Some(seq))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(message: u64, attempts: u32) -> OutboundJob {
        OutboundJob {
            id: 1,
            message,
            ticket: Some(1),
            mail_from: String::new(),
            rcpt_to: vec!["c@x.test".into()],
            created_at: 0,
            attempts,
            next_attempt_at: 60,
            last_error: (attempts > 0).then(|| "451 try later".into()),
        }
    }

    #[test]
    fn queue_first_then_the_last_event_about_the_message() {
        let ev =
            |kind: EventKind, seq| Event::new(0, kind, "postdesk", kind.as_str().into()).about(seq);
        assert_eq!(state_of(5, &[job(5, 0)], &[]), Delivery::Queued);
        assert!(matches!(
            state_of(5, &[job(5, 2)], &[]),
            Delivery::Retrying { attempts: 2, .. }
        ));
        let events = [ev(EventKind::Delivered, 5), ev(EventKind::Delivered, 6)];
        assert_eq!(
            state_of(5, &[], &events),
            Delivery::Delivered("delivered".into())
        );
        let events = [ev(EventKind::Delivered, 5), ev(EventKind::ReplyRefused, 5)];
        assert!(matches!(state_of(5, &[], &events), Delivery::Failed(_)));
        assert_eq!(state_of(7, &[], &events), Delivery::Unknown);
    }
}
