//! Reports computed from the event log: volume, the weekday × hour heatmap,
//! response and resolution times, SLA compliance, backlog, rates and agents.
//!
//! Everything here is pure: a report takes the tickets' histories (each
//! ticket with its events, as [`crate::store`] returns them), the period,
//! and the rules (calendars, SLA policies), and gives [`Table`]s. The API,
//! the CLI (through the API) and the web page all render the same tables,
//! so JSON, CSV and the page cannot disagree.
//!
//! Times are measured twice: in wall-clock hours and in business hours of
//! the ticket's calendar (the calendar of its SLA policy, else the
//! `default` calendar), with the same arithmetic as the SLA clock
//! ([`Calendar::business_seconds_between`]). Percentiles are nearest-rank
//! (the median of 1, 2, 3, 4 is 2), so every figure is one real ticket's.

mod agents;
mod backlog;
mod facts;
mod heatmap;

pub mod satisfaction;
mod sla;
mod times;
mod volume;

#[cfg(test)]
mod tests;

pub use facts::{Facts, Summary, channel_of_raw};

use crate::model::{Event, Ticket};
use crate::rules::calendar::Calendar;
use crate::rules::sla::Policies;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One ticket as the reports see it: the record, its whole event log, and
/// the channel it came in by (`smtp`, `imap`, `phone`, …).
#[derive(Debug, Clone)]
pub struct History {
    pub ticket: Ticket,
    pub events: Vec<Event>,
    pub channel: String,
}

/// What a report is asked about: `[since, until)` in unix seconds, an
/// optional queue, and the rules to count business time with.
pub struct Query<'a> {
    pub since: i64,
    pub until: i64,
    pub queue: Option<String>,
    /// Bucket volume by `day` or `week`.
    pub interval: Interval,
    pub calendars: &'a [Calendar],
    pub policies: &'a Policies,
    /// The moment "now" for backlog ages.
    pub now: i64,
    /// Recompute SLA deadlines under these (today's) policies and calendars
    /// instead of the deadlines recorded on the tickets.
    pub recompute: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
}

impl Query<'_> {
    /// The team's time zone: the `default` calendar's (UTC without one).
    pub fn team_zone(&self) -> TimeZone {
        self.calendars
            .iter()
            .find(|c| c.name == "default")
            .map_or(TimeZone::UTC, |c| c.tz.clone())
    }

    pub fn in_period(&self, t: i64) -> bool {
        t >= self.since && t < self.until
    }
}

/// One table of a report: named columns and rows of JSON values (strings,
/// integers, hours as numbers with two decimals, null for "no figure").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Table {
    pub id: String,
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A computed report: its tables, in the order they are shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    pub since: String,
    pub until: String,
    pub queue: Option<String>,
    pub recomputed: bool,
    pub tables: Vec<Table>,
}

/// The reports there are, in the order the page shows them.
pub const NAMES: [&str; 7] = [
    "volume", "heatmap", "times", "sla", "backlog", "rates", "agents",
];

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("no report named {0:?} (there are: {list})", list = NAMES.join(", "))]
    UnknownReport(String),
    #[error("{0}")]
    BadPeriod(String),
}

/// Computes report `name` over `histories` (any order; those outside the
/// query are skipped here, so a caller may pass more than needed).
pub fn compute(name: &str, q: &Query<'_>, histories: &[History]) -> Result<Report, ReportError> {
    let summaries: Vec<Summary> = histories
        .iter()
        .map(|h| Summary::of(&h.ticket, &h.events, &h.channel))
        .collect();
    compute_from(name, q, &summaries)
}

/// [`compute`] over the tickets' summaries (the rollups, or made from the
/// events on the spot).
pub fn compute_from(
    name: &str,
    q: &Query<'_>,
    summaries: &[Summary],
) -> Result<Report, ReportError> {
    let mut reports = compute_many(&[name], q, summaries)?;
    Ok(reports.remove(0))
}

/// Several reports over the same summaries, reading each ticket's facts
/// (its calendar, recomputed deadlines) once for all of them.
pub fn compute_many(
    names: &[&str],
    q: &Query<'_>,
    summaries: &[Summary],
) -> Result<Vec<Report>, ReportError> {
    if let Some(bad) = names.iter().find(|n| !NAMES.contains(n)) {
        return Err(ReportError::UnknownReport(bad.to_string()));
    }
    let facts: Vec<Facts> = summaries
        .iter()
        .filter(|s| q.queue.as_ref().is_none_or(|want| &s.queue == want))
        .map(|s| Facts::of(s, q))
        .collect();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let tables = match *name {
            "volume" => volume::tables(q, &facts),
            "heatmap" => heatmap::tables(q, &facts),
            "times" => times::tables(q, &facts),
            "sla" => sla::tables(q, &facts),
            "backlog" => backlog::tables(q, &facts),
            "rates" => times::rates(q, &facts),
            "agents" => agents::tables(q, &facts),
            other => return Err(ReportError::UnknownReport(other.to_string())),
        };
        out.push(Report {
            name: name.to_string(),
            since: crate::clock::rfc3339(q.since),
            until: crate::clock::rfc3339(q.until),
            queue: q.queue.clone(),
            recomputed: q.recompute,
            tables,
        });
    }
    Ok(out)
}

/// Nearest-rank percentile (`p` in 0..=100) of `values`, sorted in place.
pub fn percentile(values: &mut [i64], p: u32) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (p as usize * values.len()).div_ceil(100).max(1);
    Some(values[rank - 1])
}

/// Seconds as hours with two decimals (null when there is no figure).
pub fn hours(secs: Option<i64>) -> Value {
    match secs {
        Some(s) => Value::from(((s as f64 / 3600.0) * 100.0).round() / 100.0),
        None => Value::Null,
    }
}

/// A ratio with four decimals (null when nothing was due).
pub fn ratio(num: usize, den: usize) -> Value {
    if den == 0 {
        Value::Null
    } else {
        Value::from(((num as f64 / den as f64) * 10_000.0).round() / 10_000.0)
    }
}

/// A cell as CSV and the text table show it.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// RFC 4180 CSV of one table (header line first, CRLF line ends). Cells
/// that a spreadsheet would run as a formula are prefixed with `'`.
pub fn to_csv(t: &Table) -> String {
    fn field(s: &str) -> String {
        let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::new();
    let header: Vec<String> = t.columns.iter().map(|c| field(c)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &t.rows {
        let cells: Vec<String> = row.iter().map(|v| field(&cell_text(v))).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A plain-text table with aligned columns, for the terminal.
pub fn to_text(t: &Table) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(t.columns.clone())
        .chain(t.rows.iter().map(|r| r.iter().map(cell_text).collect()))
        .collect();
    let mut widths = vec![0; t.columns.len()];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = format!("{}\n", t.title);
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Parses a period bound: unix seconds, an RFC 3339 instant, a date
/// (`2026-12-01`, midnight UTC) or an age before `now` (`30d`, `12h`, `2w`).
pub fn parse_instant(s: &str, now: i64) -> Result<i64, ReportError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Some((num, unit)) = s
        .char_indices()
        .last()
        .map(|(i, c)| (&s[..i], c.to_ascii_lowercase()))
        && let Ok(n) = num.parse::<i64>()
    {
        let per = match unit {
            'h' => Some(3600),
            'd' => Some(86_400),
            'w' => Some(7 * 86_400),
            _ => None,
        };
        if let Some(per) = per {
            return Ok(now - n.saturating_mul(per));
        }
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>()
        && let Ok(z) = d.to_zoned_datetime(TimeZone::UTC)
    {
        return Ok(z.timestamp().as_second());
    }
    Err(ReportError::BadPeriod(format!(
        "{s:?} is not a time (use 30d, 12h, 2w, 2026-12-01, an RFC 3339 instant or unix seconds)"
    )))
}
