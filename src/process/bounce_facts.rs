//! What a readable delivery report does to a ticket and an address: each
//! recipient's fate becomes an event (with the status, the remote server's
//! words and who said them), a permanent failure marks the address as
//! bouncing, and a mail from a marked address clears the mark.
//!
//! A report is a stranger's text: it reaches a ticket only through our
//! signed VERP address or a Message-ID we sent, and it marks only an
//! address that received the bounced message (or takes part in the
//! ticket), so nobody can silence a customer with a forged report.

use super::bounce::{Action, Recipient, Report};
use super::decide::Incoming;
use super::{Processor, classify::Class, event};
use crate::model::{EventKind, MessageSeq, Ticket, TicketId};
use crate::store::{Bouncing, StoreError, Tx};
use crate::token::Token;
use tracing::info;

/// The words of an acknowledgement (or notice) not sent because `addr` bounces.
pub(super) fn bouncing_reason(addr: &str, b: &Bouncing) -> String {
    format!(
        "{addr} is marked as bouncing since mail of ticket {} failed for good ({}); nothing automatic goes there until it writes again",
        b.ticket,
        fate(b.status.as_deref(), b.diagnostic.as_deref())
    )
}

/// `5.1.1: 550 user unknown`, or what of it there is.
fn fate(status: Option<&str>, diagnostic: Option<&str>) -> String {
    match (status, diagnostic) {
        (Some(s), Some(d)) if d.contains(s) => d.to_string(),
        (Some(s), Some(d)) => format!("{s}: {d}"),
        (Some(s), None) => s.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "no reason given".to_string(),
    }
}

impl Processor {
    /// The message of ours a report answers, when it came to its VERP address.
    pub(super) fn bounced_message(
        &self,
        env: &crate::model::Envelope,
        sender: &str,
    ) -> Option<MessageSeq> {
        env.rcpt_to
            .iter()
            .find_map(|a| match self.tokens.verify(a, sender, env.received_at) {
                Some(Token::Bounce { message, .. }) => Some(message),
                _ => None,
            })
    }

    /// Records each recipient's fate on `ticket` (the caller stores it).
    pub(super) fn delivery_report(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        report: &Report,
        sender: &str,
        about: Option<MessageSeq>,
        now: i64,
    ) -> Result<(), StoreError> {
        let sent_to: Vec<String> = match about {
            Some(seq) => tx
                .message(seq)?
                .filter(|m| m.ticket == Some(ticket.id))
                .map(|m| m.to)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let reporter = report.reporting_mta.clone().unwrap_or_else(|| {
            if sender.is_empty() {
                "<>".into()
            } else {
                sender.to_string()
            }
        });
        for rc in &report.recipients {
            let ours = sent_to.iter().any(|a| a.eq_ignore_ascii_case(&rc.address))
                || ticket.participants.contains(&rc.address)
                || ticket.requester.eq_ignore_ascii_case(&rc.address);
            let (kind, detail) = self.recipient_fate(tx, ticket.id, rc, ours, &reporter, now)?;
            let mut ev = event(now, kind, "postdesk", detail);
            if let Some(seq) = about {
                ev = ev.about(seq);
            }
            tx.add_event(ticket, ev)?;
        }
        info!(
            ticket = ticket.id,
            format = ?report.format,
            recipients = report.recipients.len(),
            "delivery report read"
        );
        Ok(())
    }

    fn recipient_fate(
        &self,
        tx: &mut Tx<'_>,
        ticket: TicketId,
        rc: &Recipient,
        ours: bool,
        reporter: &str,
        now: i64,
    ) -> Result<(EventKind, String), StoreError> {
        let why = fate(rc.status.as_deref(), rc.diagnostic.as_deref());
        let remote = rc
            .remote_mta
            .as_deref()
            .map(|r| format!("remote server {r}; "))
            .unwrap_or_default();
        let said = format!("({remote}reported by {reporter})");
        Ok(match rc.action {
            Action::Failed => {
                let mark = if ours {
                    tx.mark_bouncing(
                        &rc.address,
                        &Bouncing {
                            since: now,
                            ticket,
                            status: rc.status.clone(),
                            diagnostic: rc.diagnostic.clone(),
                        },
                    )?;
                    format!(
                        "; {} is now marked as bouncing: no acknowledgements or notices until it writes again",
                        rc.address
                    )
                } else {
                    format!(
                        "; {} did not receive that message: not marked as bouncing",
                        rc.address
                    )
                };
                (
                    EventKind::DeliveryFailed,
                    format!(
                        "delivery to {} failed for good: {why} {said}{mark}",
                        rc.address
                    ),
                )
            }
            Action::Delayed => (
                EventKind::DeliveryDelayed,
                format!(
                    "delivery to {} delayed: {why} {said}; still being tried, not a failure",
                    rc.address
                ),
            ),
            Action::Delivered => (
                EventKind::Delivered,
                format!("delivery report: delivered to {} {said}", rc.address),
            ),
        })
    }

    /// Clears the bouncing mark of the sender of `msg` when it is the
    /// customer writing (mail that something vouches for, not a ticket an
    /// agent opened on their behalf); returns the mark it cleared.
    pub(super) fn writes_again(
        &self,
        tx: &mut Tx<'_>,
        msg: &Incoming<'_>,
    ) -> Result<Option<Bouncing>, StoreError> {
        if msg.class != Class::Customer
            || msg.sender.is_empty()
            || !msg.vouch.vouched()
            || !msg.env.source.is_live_mail()
        {
            return Ok(None);
        }
        let Some(was) = tx.bouncing(&msg.sender)? else {
            return Ok(None);
        };
        tx.clear_bouncing(&msg.sender)?;
        Ok(Some(was))
    }

    /// The event saying `addr` is no longer marked, on the ticket its mail joined.
    pub(super) fn note_bounce_cleared(
        &self,
        tx: &mut Tx<'_>,
        ticket: TicketId,
        addr: &str,
        was: &Bouncing,
        now: i64,
    ) -> Result<(), StoreError> {
        let Some(mut t) = tx.ticket(ticket)? else {
            return Ok(());
        };
        let detail = format!(
            "{addr} wrote again: no longer marked as bouncing (marked by ticket {}: {})",
            was.ticket,
            fate(was.status.as_deref(), was.diagnostic.as_deref())
        );
        tx.add_event(&mut t, event(now, EventKind::BounceCleared, addr, detail))?;
        tx.put_ticket(&t)
    }
}
