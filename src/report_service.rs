//! What every report door (API, web page, CSV) does: read the request's
//! parameters, read the store (rollups, or the events before them), compute.
//! One place, so the JSON, the CSV and the page are the same figures.

use crate::reports::{Interval, Query, Report, ReportError, Summary, compute_many, parse_instant};
use crate::rules::RuleSet;
use crate::store::{Store, StoreError};
use serde::Deserialize;

/// A report request as the query string gives it (`?since=30d&until=&queue=
/// &interval=week&recompute=1`); every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Params {
    pub since: Option<String>,
    pub until: Option<String>,
    pub queue: Option<String>,
    pub interval: Option<String>,
    pub recompute: Option<String>,
}

/// The period when none is asked for: the last 30 days.
pub const DEFAULT_SINCE: &str = "30d";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Params {
    fn flag(v: &Option<String>) -> bool {
        matches!(v.as_deref(), Some("1" | "true" | "yes" | "on"))
    }

    fn nonempty(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// The period `[since, until)` asked for.
    pub fn period(&self, now: i64) -> Result<(i64, i64), ReportError> {
        let since = parse_instant(Self::nonempty(&self.since).unwrap_or(DEFAULT_SINCE), now)?;
        let until = match Self::nonempty(&self.until) {
            Some(u) => parse_instant(u, now)?,
            None => now + 1,
        };
        if until <= since {
            return Err(ReportError::BadPeriod("until must be after since".into()));
        }
        Ok((since, until))
    }

    pub fn interval(&self) -> Result<Interval, ReportError> {
        match Self::nonempty(&self.interval) {
            None | Some("day") => Ok(Interval::Day),
            Some("week") => Ok(Interval::Week),
            Some(other) => Err(ReportError::BadPeriod(format!(
                "interval {other:?} is not day or week"
            ))),
        }
    }

    pub fn recompute(&self) -> bool {
        Self::flag(&self.recompute)
    }

    pub fn queue(&self) -> Option<String> {
        Self::nonempty(&self.queue).map(String::from)
    }
}

/// Computes report `name` for `params` from the store, at `now`, under
/// `rules` (today's calendars and policies). Blocking: call it off the
/// async threads.
pub fn run(
    store: &Store,
    rules: &RuleSet,
    name: &str,
    params: &Params,
    now: i64,
) -> Result<Report, RunError> {
    let mut reports = run_many(store, rules, &[name], params, now)?;
    Ok(reports.remove(0))
}

/// Computes several reports over one read of the store (the web page
/// shows them all).
pub fn run_many(
    store: &Store,
    rules: &RuleSet,
    names: &[&str],
    params: &Params,
    now: i64,
) -> Result<Vec<Report>, RunError> {
    use crate::reports::satisfaction;
    if let Some(bad) = names
        .iter()
        .find(|n| !crate::reports::NAMES.contains(n) && **n != satisfaction::NAME)
    {
        return Err(ReportError::UnknownReport(bad.to_string()).into());
    }
    let (since, until) = params.period(now)?;
    let q = Query {
        since,
        until,
        queue: params.queue(),
        interval: params.interval()?,
        calendars: &rules.calendars,
        policies: &rules.sla,
        now,
        recompute: params.recompute(),
    };
    let _span = tracing::info_span!("report", ?names, since, until).entered();
    // The rollups when they cover the period, else the events.
    let summaries = match store.report_summaries(since, until)? {
        Some(s) => s,
        None => {
            tracing::info!("period starts before the rollups: reading the events");
            store
                .report_histories(since, until)?
                .iter()
                .map(|h| Summary::of(&h.ticket, &h.events, &h.channel))
                .collect()
        }
    };
    // The satisfaction report reads the surveys, not the summaries.
    let standard: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != satisfaction::NAME)
        .collect();
    let mut computed = compute_many(&standard, &q, &summaries)?.into_iter();
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        if *name == satisfaction::NAME {
            reports.push(Report {
                name: name.to_string(),
                since: crate::clock::rfc3339(q.since),
                until: crate::clock::rfc3339(q.until),
                queue: q.queue.clone(),
                recomputed: q.recompute,
                tables: satisfaction::tables(&q, &store.sent_surveys()?),
            });
        } else if let Some(r) = computed.next() {
            reports.push(r);
        }
    }
    tracing::debug!(tickets = summaries.len(), "reports computed");
    Ok(reports)
}
