//! Business-hours calendars (rules/calendar.toml): an IANA time zone, weekly
//! opening hours and holidays. Routing asks "is it business time now?"; SLA
//! targets count business time with [`Calendar::add_business_seconds`].
//!
//! ```toml
//! [default]
//! timezone = "Europe/Berlin"
//! hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-16:00" }
//! holidays = ["2026-12-25", "2026-12-26"]
//! ```

use super::{diag_at, toml_diag};
use crate::diagnostic::Diagnostic;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone)]
pub struct Calendar {
    pub name: String,
    pub tz: TimeZone,
    /// Opening interval per weekday (Monday = 0) in minutes after midnight, local time.
    pub hours: [Option<(u32, u32)>; 7],
    pub holidays: Vec<Date>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    timezone: Spanned<String>,
    #[serde(default)]
    hours: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
}

/// Parses `HH:MM-HH:MM` into minutes after midnight (end may be 24:00).
pub fn parse_interval(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('-')?;
    let hm = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    Some((hm(a)?, hm(b)?))
}

impl Calendar {
    /// Always open, UTC: what business time means when no calendar is configured.
    pub fn always_open() -> Calendar {
        Calendar {
            name: "always".into(),
            tz: TimeZone::UTC,
            hours: [Some((0, 24 * 60)); 7],
            holidays: Vec::new(),
        }
    }

    pub fn parse_file(text: &str, path: &Path) -> Result<Vec<Calendar>, Vec<Diagnostic>> {
        let specs: BTreeMap<String, Spec> =
            toml::from_str(text).map_err(|e| vec![toml_diag(path, text, &e)])?;
        let mut out = Vec::new();
        let mut diags = Vec::new();
        for (name, spec) in specs {
            let tz = match TimeZone::get(spec.timezone.get_ref()) {
                Ok(tz) => tz,
                Err(e) => {
                    diags.push(diag_at(
                        path,
                        text,
                        spec.timezone.span().start,
                        format!("unknown time zone {:?}: {e}", spec.timezone.get_ref()),
                    ));
                    continue;
                }
            };
            let mut hours = [None; 7];
            for (day, value) in &spec.hours {
                let Some(i) = DAYS.iter().position(|d| d.eq_ignore_ascii_case(day)) else {
                    diags.push(diag_at(
                        path,
                        text,
                        value.span().start,
                        format!("unknown day {day:?}; use {}", DAYS.join(", ")),
                    ));
                    continue;
                };
                match parse_interval(value.get_ref()) {
                    Some((a, b)) if a < b => hours[i] = Some((a, b)),
                    _ => diags.push(diag_at(
                        path,
                        text,
                        value.span().start,
                        format!(
                            "{:?} is not an interval like \"09:00-17:00\"",
                            value.get_ref()
                        ),
                    )),
                }
            }
            let mut holidays = Vec::new();
            for h in &spec.holidays {
                match h.get_ref().parse::<Date>() {
                    Ok(d) => holidays.push(d),
                    Err(_) => diags.push(diag_at(
                        path,
                        text,
                        h.span().start,
                        format!("{:?} is not a date (YYYY-MM-DD)", h.get_ref()),
                    )),
                }
            }
            out.push(Calendar {
                name,
                tz,
                hours,
                holidays,
            });
        }
        if diags.is_empty() {
            Ok(out)
        } else {
            Err(diags)
        }
    }

    fn zoned(&self, ts: i64) -> Option<ZonedDateTime> {
        Timestamp::from_second(ts)
            .ok()
            .map(|t| t.to_zoned_datetime(self.tz.clone()))
    }

    /// Opening interval (minutes) of a local date, None when closed all day.
    fn open_on(&self, date: Date) -> Option<(u32, u32)> {
        if self.holidays.contains(&date) {
            return None;
        }
        self.hours[date.weekday().to_monday_zero_offset() as usize]
    }

    pub fn is_open(&self, ts: i64) -> bool {
        let Some(z) = self.zoned(ts) else {
            return false;
        };
        let minute = z.hour() as u32 * 60 + z.minute() as u32;
        self.open_on(z.date())
            .is_some_and(|(a, b)| minute >= a && minute < b)
    }

    /// Local wall-clock minutes → unix seconds on `date`, resolving DST gaps forward.
    fn at(&self, date: Date, minute: u32) -> Option<i64> {
        let time = if minute >= 24 * 60 {
            return self.at(date.tomorrow().ok()?, 0);
        } else {
            Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?
        };
        let z = date
            .to_datetime(time)
            .to_zoned_datetime(self.tz.clone())
            .ok()?;
        Some(z.timestamp().as_second())
    }

    /// The instant `secs` of business time after `start`.
    pub fn add_business_seconds(&self, start: i64, secs: i64) -> i64 {
        let Some(z) = self.zoned(start) else {
            return start + secs;
        };
        let mut remaining = secs;
        let mut date = z.date();
        let mut from_ts = start;
        // Bounded walk: at most ~10 years of days.
        for _ in 0..3700 {
            if let Some((a, b)) = self.open_on(date)
                && let (Some(open), Some(close)) = (self.at(date, a), self.at(date, b))
            {
                let begin = open.max(from_ts);
                if begin < close {
                    let available = close - begin;
                    if remaining <= available {
                        return begin + remaining;
                    }
                    remaining -= available;
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
            from_ts = i64::MIN;
        }
        start + secs
    }

    /// Business seconds between `from` and `to` (0 when `to <= from`).
    pub fn business_seconds_between(&self, from: i64, to: i64) -> i64 {
        if to <= from {
            return 0;
        }
        let Some(z) = self.zoned(from) else {
            return to - from;
        };
        let mut total = 0;
        let mut date = z.date();
        for _ in 0..3700 {
            if let Some((a, b)) = self.open_on(date)
                && let (Some(open), Some(close)) = (self.at(date, a), self.at(date, b))
            {
                let begin = open.max(from);
                let end = close.min(to);
                if end > begin {
                    total += end - begin;
                }
                if open >= to {
                    break;
                }
            } else if self.at(date, 0).is_some_and(|t| t >= to) {
                break;
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Calendar {
        let text = r#"
[default]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-17:00" }
holidays = ["2026-12-25"]
"#;
        Calendar::parse_file(text, Path::new("calendar.toml"))
            .unwrap()
            .remove(0)
    }

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn open_hours_in_local_time() {
        let c = berlin();
        // Wednesday 2026-12-02 08:30 UTC = 09:30 CET
        assert!(c.is_open(ts("2026-12-02T08:30:00Z")));
        assert!(!c.is_open(ts("2026-12-02T16:30:00Z"))); // 17:30 local
        assert!(!c.is_open(ts("2026-12-05T10:00:00Z"))); // Saturday
        assert!(!c.is_open(ts("2026-12-25T10:00:00Z"))); // holiday (Friday)
    }

    #[test]
    fn business_time_skips_weekend_and_holiday() {
        let c = berlin();
        // Thursday 2026-12-24 16:00 local (15:00Z) + 2h business → Monday 28th 10:00 local,
        // skipping the holiday Friday and the weekend.
        let due = c.add_business_seconds(ts("2026-12-24T15:00:00Z"), 2 * 3600);
        assert_eq!(due, ts("2026-12-28T09:00:00Z"));
        assert_eq!(
            c.business_seconds_between(ts("2026-12-24T15:00:00Z"), due),
            2 * 3600
        );
    }

    #[test]
    fn business_time_across_dst_change() {
        let c = berlin();
        // Friday 2026-10-23 16:00 CEST (14:00Z) + 3h → Monday 26th 11:00 CET (10:00Z):
        // the clocks went back on Sunday 25th.
        let due = c.add_business_seconds(ts("2026-10-23T14:00:00Z"), 3 * 3600);
        assert_eq!(due, ts("2026-10-26T10:00:00Z"));
    }

    #[test]
    fn bad_calendar_positions() {
        let text = "[x]\ntimezone = \"Mars/Olympus\"\n";
        let e = Calendar::parse_file(text, Path::new("c.toml")).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 12), "{}", e[0]);
        let text = "[x]\ntimezone = \"UTC\"\nhours = { mon = \"9-5\" }\n";
        let e = Calendar::parse_file(text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e[0].line, 3, "{}", e[0]);
    }
}
