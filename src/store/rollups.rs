//! What the reports read: each ticket's channel (recorded when it opens)
//! and the tickets with their event logs for a period.
//!
//! The channel is kept in its own table, written in the transaction that
//! opens the ticket, because nothing else stored says how a ticket came in
//! (the spooled envelope is gone once processed).

use super::{EVENTS, Result, TICKETS, Tx, dec};
use crate::model::{Event, MessageSeq, Source, Ticket, TicketId};
use crate::reports::History;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Ticket → the channel its first message came by (`smtp`, `imap`, `phone`, …).
const TICKET_CHANNEL: TableDefinition<u64, &str> = TableDefinition::new("ticket_channel");

/// The channel of tickets opened before channels were recorded (or by a split).
pub const UNKNOWN_CHANNEL: &str = "unknown";

impl Tx<'_> {
    /// Records how ticket `id` came in: from the envelope's source and, for
    /// a ticket the API opened, the channel header of message `seq`.
    pub fn note_ticket_channel(
        &mut self,
        id: TicketId,
        source: &Source,
        seq: MessageSeq,
    ) -> Result<()> {
        let raw = match source {
            Source::Api => self.raw(seq)?.unwrap_or_default(),
            _ => Vec::new(),
        };
        let channel = crate::reports::channel_of_raw(source, &raw);
        self.txn
            .open_table(TICKET_CHANNEL)?
            .insert(id, channel.as_str())?;
        Ok(())
    }
}

impl super::Store {
    /// The tickets a report over `[since, until)` needs, each with its whole
    /// event log: those opened before `until` that are still open (the
    /// backlog) or were opened or changed since `since`. Reads every
    /// ticket record; see the rollups for the fast path.
    pub fn report_histories(&self, since: i64, until: i64) -> Result<Vec<History>> {
        let r = self.db()?.0.begin_read()?;
        let tickets = r.open_table(TICKETS)?;
        let events = r.open_table(EVENTS)?;
        let channels = match r.open_table(TICKET_CHANNEL) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in tickets.iter()? {
            let (_, v) = item?;
            let ticket: Ticket = dec("tickets", v.value())?;
            let relevant = ticket.created_at < until
                && (!ticket.status.is_finished()
                    || ticket.created_at >= since
                    || ticket.updated_at >= since);
            if !relevant {
                continue;
            }
            let mut log: Vec<Event> = Vec::new();
            for e in events.range((ticket.id, 0)..=(ticket.id, u64::MAX))? {
                log.push(dec("events", e?.1.value())?);
            }
            let channel = match &channels {
                Some(c) => c.get(ticket.id)?.map(|v| v.value().to_string()),
                None => None,
            };
            out.push(History {
                ticket,
                events: log,
                channel: channel.unwrap_or_else(|| UNKNOWN_CHANNEL.into()),
            });
        }
        Ok(out)
    }
}
