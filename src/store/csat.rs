//! Satisfaction surveys as data: one record per (ticket, resolution) and an
//! index of the unsent ones by due time, so the survey mail is a job in the
//! store (a restart sends what fell due meanwhile) and never a sleeping task.

use super::{Result, Store, Tx, dec, enc};
use crate::csat::Survey;
use crate::model::TicketId;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// (ticket, resolution number) → `csat::Survey`.
pub(super) const SURVEYS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("surveys");
/// (due, ticket) → resolution number: surveys waiting to be sent.
pub(super) const SURVEYS_DUE: TableDefinition<(i64, u64), u32> =
    TableDefinition::new("surveys_due");

impl Tx<'_> {
    /// The ticket's newest survey, if any.
    pub fn latest_survey(&mut self, ticket: TicketId) -> Result<Option<Survey>> {
        let t = self.txn.open_table(SURVEYS)?;
        let mut range = t.range((ticket, 0)..=(ticket, u32::MAX))?;
        match range.next_back().transpose()? {
            Some((_, v)) => Ok(Some(dec("surveys", v.value())?)),
            None => Ok(None),
        }
    }

    /// Stores `survey` (replacing the record of its resolution) and keeps
    /// the due index: listed while unsent and not skipped.
    pub fn put_survey(&mut self, ticket: TicketId, survey: &Survey) -> Result<()> {
        {
            let mut t = self.txn.open_table(SURVEYS)?;
            t.insert((ticket, survey.resolution), enc(survey).as_slice())?;
        }
        let mut due = self.txn.open_table(SURVEYS_DUE)?;
        if survey.sent_at.is_none() && survey.skipped.is_none() {
            due.insert((survey.due, ticket), survey.resolution)?;
        } else {
            due.remove((survey.due, ticket))?;
        }
        Ok(())
    }

    /// Surveys due at `now`, oldest first, at most `limit`: (ticket, survey).
    pub fn due_surveys(&mut self, now: i64, limit: usize) -> Result<Vec<(TicketId, Survey)>> {
        let keys: Vec<(TicketId, u32)> = {
            let due = self.txn.open_table(SURVEYS_DUE)?;
            let mut out = Vec::new();
            for item in due.range((i64::MIN, 0)..=(now, u64::MAX))?.take(limit) {
                let (k, v) = item?;
                out.push((k.value().1, v.value()));
            }
            out
        };
        let t = self.txn.open_table(SURVEYS)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(v) = t.get(key)? {
                out.push((key.0, dec("surveys", v.value())?));
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Every survey of a ticket, oldest resolution first.
    pub fn surveys_of(&self, ticket: TicketId) -> Result<Vec<Survey>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(SURVEYS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.range((ticket, 0)..=(ticket, u32::MAX))? {
            let (_, v) = item?;
            out.push(dec("surveys", v.value())?);
        }
        Ok(out)
    }

    /// Every survey sent (with its ticket), for the reports: a table walk,
    /// one record per resolution that was asked.
    pub fn sent_surveys(&self) -> Result<Vec<(TicketId, Survey)>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(SURVEYS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let s: Survey = dec("surveys", v.value())?;
            if s.sent_at.is_some() {
                out.push((k.value().0, s));
            }
        }
        Ok(out)
    }

    /// When the next unsent survey falls due, if any.
    pub fn next_survey_due(&self) -> Result<Option<i64>> {
        let r = self.db()?.0.begin_read()?;
        let t = match r.open_table(SURVEYS_DUE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let first = t.iter()?.next().transpose()?;
        Ok(first.map(|(k, _)| k.value().0))
    }
}
