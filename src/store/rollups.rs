//! What the reports read: each ticket's channel (recorded when it opens),
//! the per-ticket rollups, and the tickets with their event logs for a
//! period without rollups.
//!
//! The channel is kept in its own table, written in the transaction that
//! opens the ticket, because nothing else stored says how a ticket came in
//! (the spooled envelope is gone once processed).
//!
//! Rollups: percentiles cannot be added up per day, so the rollup is one
//! [`Summary`] per ticket (what every report needs of it, a few hundred
//! bytes) plus a day index `(UTC day, ticket)` for each day the ticket had
//! something a report counts. A period report reads the day index of its
//! days and those summaries, instead of every ticket and every event.
//! Invariant: any write transaction that adds a ticket's event or puts the
//! ticket refreshes its summary before it commits (see [`Tx::refresh_report_rollups`]),
//! so a rollup never lags its ticket.

use super::{EVENTS, META, Result, TICKET_INDEX, TICKETS, Tx, dec, enc};
use crate::model::{Event, MessageSeq, Source, Ticket, TicketId};
use crate::reports::{History, Summary};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::BTreeSet;

/// Ticket → JSON [`Summary`]: the rollup of one ticket.
pub(super) const REPORT_SUMMARIES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("report_summaries");
/// (UTC day, ticket) → (): the days a ticket had something reports count.
pub(super) const REPORT_DAYS: TableDefinition<(i64, u64), ()> = TableDefinition::new("report_days");
/// Tickets a write transaction touched, whose rollup is refreshed before
/// it commits (always empty between transactions).
pub(super) const REPORT_DIRTY: TableDefinition<u64, ()> = TableDefinition::new("report_dirty");
/// META key: unix seconds from which every ticket's activity is in the
/// rollups (0 for a store that had rollups from its first ticket). A
/// period starting earlier is computed from the events.
const ROLLUPS_SINCE: &str = "report_rollups_since";

/// Ticket → the channel its first message came by (`smtp`, `imap`, `phone`, …).
pub(super) const TICKET_CHANNEL: TableDefinition<u64, &str> =
    TableDefinition::new("ticket_channel");

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

impl Tx<'_> {
    /// Creates the rollup tables; on a store that has tickets already,
    /// records that rollups start now (earlier periods read the events).
    pub(super) fn init_report_rollups(&mut self) -> Result<()> {
        self.txn.open_table(REPORT_SUMMARIES)?;
        self.txn.open_table(REPORT_DAYS)?;
        self.txn.open_table(TICKET_CHANNEL)?;
        self.txn.open_table(REPORT_DIRTY)?;
        let mut meta = self.txn.open_table(META)?;
        if meta.get(ROLLUPS_SINCE)?.is_none() {
            let since = if self.txn.open_table(TICKETS)?.is_empty()? {
                0
            } else {
                crate::clock::Clock::system().now().max(0) as u64
            };
            meta.insert(ROLLUPS_SINCE, since)?;
        }
        Ok(())
    }

    /// Notes that ticket `id` changed in this transaction (put or a new event).
    pub(super) fn mark_report_dirty(&mut self, id: TicketId) -> Result<()> {
        self.txn.open_table(REPORT_DIRTY)?.insert(id, ())?;
        Ok(())
    }

    /// Rebuilds the summary and day index of every ticket this transaction
    /// touched (called just before commit).
    pub(super) fn refresh_report_rollups(&mut self) -> Result<()> {
        let dirty: Vec<u64> = {
            let mut table = self.txn.open_table(REPORT_DIRTY)?;
            if table.is_empty()? {
                return Ok(());
            }
            let ids = table
                .iter()?
                .map(|item| Ok(item?.0.value()))
                .collect::<Result<Vec<u64>>>()?;
            for id in &ids {
                table.remove(*id)?;
            }
            ids
        };
        let tickets = self.txn.open_table(TICKETS)?;
        let events = self.txn.open_table(EVENTS)?;
        let channels = self.txn.open_table(TICKET_CHANNEL)?;
        let mut summaries = self.txn.open_table(REPORT_SUMMARIES)?;
        let mut days = self.txn.open_table(REPORT_DAYS)?;
        for id in dirty {
            let Some(t) = tickets.get(id)? else {
                continue;
            };
            let ticket: Ticket = dec("tickets", t.value())?;
            let mut log: Vec<Event> = Vec::new();
            for e in events.range((id, 0)..=(id, u64::MAX))? {
                log.push(dec("events", e?.1.value())?);
            }
            let channel = channels
                .get(id)?
                .map_or_else(|| UNKNOWN_CHANNEL.to_string(), |v| v.value().to_string());
            let new = Summary::of(&ticket, &log, &channel);
            let old: Option<Summary> = summaries
                .get(id)?
                .map(|v| dec("report_summaries", v.value()))
                .transpose()?;
            if old.as_ref() == Some(&new) {
                continue;
            }
            let old_days = old.map(|o| o.active_days()).unwrap_or_default();
            let new_days = new.active_days();
            for d in old_days.difference(&new_days) {
                days.remove((*d, id))?;
            }
            for d in new_days.difference(&old_days) {
                days.insert((*d, id), ())?;
            }
            let value = self
                .codec
                .encode_record(super::encoding::Kind::Summary, enc(&new));
            summaries.insert(id, value.as_slice())?;
        }
        Ok(())
    }
}

impl super::Store {
    /// The rollups of the tickets a report over `[since, until)` needs:
    /// those active on a day of the period and those open now. None when
    /// the period starts before the rollups do (read the events then).
    pub fn report_summaries(&self, since: i64, until: i64) -> Result<Option<Vec<Summary>>> {
        let r = self.db()?.0.begin_read()?;
        let meta = r.open_table(META)?;
        let from = meta.get(ROLLUPS_SINCE)?.map(|v| v.value());
        match from {
            Some(from) if since >= from as i64 => {}
            _ => return Ok(None),
        }
        let summaries = r.open_table(REPORT_SUMMARIES)?;
        let days = r.open_table(REPORT_DAYS)?;
        let index = r.open_table(TICKET_INDEX)?;
        let mut ids = BTreeSet::new();
        let (first, last) = (since.div_euclid(86_400), (until - 1).div_euclid(86_400));
        for item in days.range((first, 0)..=(last, u64::MAX))? {
            ids.insert(item?.0.value().1);
        }
        let mut open = BTreeSet::new();
        for status in ["status:new", "status:open", "status:pending"] {
            for item in index.range((status, 0)..=(status, u64::MAX))? {
                open.insert(item?.0.value().1);
            }
        }
        ids.extend(&open);
        let mut out = Vec::with_capacity(ids.len());
        let tickets = r.open_table(TICKETS)?;
        let events = r.open_table(EVENTS)?;
        let channels = r.open_table(TICKET_CHANNEL)?;
        for id in ids {
            if let Some(v) = summaries.get(id)? {
                out.push(dec("report_summaries", v.value())?);
            } else if open.contains(&id)
                && let Some(t) = tickets.get(id)?
            {
                // Open since before the rollups and untouched since: the
                // backlog still counts it, from its events.
                let ticket: Ticket = dec("tickets", t.value())?;
                let mut log: Vec<Event> = Vec::new();
                for e in events.range((id, 0)..=(id, u64::MAX))? {
                    log.push(dec("events", e?.1.value())?);
                }
                let channel = channels
                    .get(id)?
                    .map_or_else(|| UNKNOWN_CHANNEL.to_string(), |v| v.value().to_string());
                out.push(Summary::of(&ticket, &log, &channel));
            }
        }
        Ok(Some(out))
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, Status};
    use crate::report_service::{Params, run};
    use crate::rules::RuleSet;
    use crate::store::Store;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_796_000_000; // 2026-11-30

    fn event(at: i64, kind: EventKind, actor: &str, detail: &str) -> Event {
        Event::new(at, kind, actor, detail.to_string())
    }

    /// Ticket `id` opened at `at` by SMTP, answered by alice an hour later.
    fn open_and_answer(tx: &mut Tx<'_>, id: u64, at: i64) -> Result<()> {
        let mut t = Ticket::new(id, "c@example.org", at);
        tx.add_event(
            &mut t,
            event(at, EventKind::Created, "c", "customer from c"),
        )?;
        tx.note_ticket_channel(id, &Source::Smtp, 0)?;
        tx.add_event(
            &mut t,
            event(at + 3600, EventKind::Replied, "alice", "reply"),
        )?;
        t.status = Status::Open;
        tx.put_ticket(&t)
    }

    fn summaries_from_events(store: &Store, since: i64, until: i64) -> Vec<Summary> {
        store
            .report_histories(since, until)
            .unwrap()
            .iter()
            .map(|h| Summary::of(&h.ticket, &h.events, &h.channel))
            .collect()
    }

    #[test]
    fn rollups_follow_every_event_and_agree_with_the_events() {
        let dir =
            std::env::temp_dir().join(format!("postdesk-rollups-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store
            .write(|tx| {
                open_and_answer(tx, 1, T0)?;
                open_and_answer(tx, 2, T0 + 10 * DAY)
            })
            .unwrap();
        // An event added without putting the ticket again still reaches the rollup.
        store
            .write(|tx| {
                let mut t = tx.ticket(1)?.unwrap();
                tx.add_event(
                    &mut t,
                    event(
                        T0 + 2 * DAY,
                        EventKind::Status,
                        "bob",
                        "open → resolved by bob",
                    ),
                )
            })
            .unwrap();
        let (since, until) = (T0, T0 + 30 * DAY);
        let rolled = store
            .report_summaries(since, until)
            .unwrap()
            .expect("rollups cover it");
        assert_eq!(rolled, summaries_from_events(&store, since, until));
        assert_eq!(
            rolled[0].resolutions,
            vec![(T0 + 2 * DAY, "bob".to_string())]
        );
        assert_eq!(rolled[0].channel, "smtp");
        store
            .write(|tx| {
                let mut t = tx.ticket(1)?.unwrap();
                t.status = Status::Resolved;
                tx.put_ticket(&t)
            })
            .unwrap();
        let rolled = store.report_summaries(since, until).unwrap().unwrap();
        assert_eq!(rolled, summaries_from_events(&store, since, until));
        assert_eq!(rolled[0].status, Status::Resolved);
        // A period of ticket 2's days only: ticket 1 (resolved, quiet then) is not read.
        let later = store
            .report_summaries(T0 + 10 * DAY, T0 + 11 * DAY)
            .unwrap()
            .unwrap();
        assert_eq!(later.iter().map(|s| s.id).collect::<Vec<_>>(), vec![2]);
        // An open ticket without a rollup (open since before the rollups
        // began, untouched since) is still in the backlog, from its events.
        store
            .write(|tx| {
                tx.txn.open_table(REPORT_SUMMARIES)?.remove(2)?;
                Ok(())
            })
            .unwrap();
        let again = store
            .report_summaries(T0 + 10 * DAY, T0 + 11 * DAY)
            .unwrap()
            .unwrap();
        assert_eq!(again, later);

        // A store whose rollups began later: earlier periods come from the events,
        // with the same figures.
        let api = |params: &Params| {
            serde_json::to_value(run(&store, &RuleSet::default(), "agents", params, until).unwrap())
                .unwrap()
        };
        let params = Params {
            since: Some(since.to_string()),
            until: Some(until.to_string()),
            ..Params::default()
        };
        let from_rollups = api(&params);
        store
            .write(|tx| {
                tx.txn
                    .open_table(META)?
                    .insert(ROLLUPS_SINCE, (T0 + 5 * DAY) as u64)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.report_summaries(since, until).unwrap(), None);
        assert_eq!(api(&params), from_rollups);
        assert_eq!(
            from_rollups["tables"][0]["rows"],
            serde_json::json!([
                ["alice", 2, 0, 1.0, 1.0, null, null],
                ["bob", 0, 1, null, null, 48.0, 48.0]
            ])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
