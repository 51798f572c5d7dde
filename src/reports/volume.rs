//! Volume: tickets opened per day or week (in the team's time zone), in
//! total and by queue, channel and priority.

use super::{Facts, Interval, Query, Table};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::Value;
use std::collections::BTreeMap;

/// At most this many buckets are listed with zeros (a longer period lists
/// only the buckets that have tickets).
const MAX_EMPTY_BUCKETS: usize = 1000;

/// The local date that names the bucket of instant `t`: the day, or the
/// Monday of its week.
pub fn bucket(t: i64, tz: &TimeZone, interval: Interval) -> Option<Date> {
    let d = Timestamp::from_second(t)
        .ok()?
        .to_zoned_datetime(tz.clone())
        .date();
    match interval {
        Interval::Day => Some(d),
        Interval::Week => {
            let back = d.weekday().to_monday_zero_offset() as i64;
            d.checked_sub(jiff::Span::new().days(back)).ok()
        }
    }
}

pub fn tables(q: &Query<'_>, facts: &[Facts]) -> Vec<Table> {
    let tz = q.team_zone();
    let mut total: BTreeMap<Date, u64> = BTreeMap::new();
    // Every bucket of the period, so quiet days show as zero bars.
    if let (Some(first), Some(last)) = (
        bucket(q.since, &tz, q.interval),
        bucket(q.until - 1, &tz, q.interval),
    ) {
        let step = match q.interval {
            Interval::Day => jiff::Span::new().days(1),
            Interval::Week => jiff::Span::new().weeks(1),
        };
        let mut d = first;
        for _ in 0..MAX_EMPTY_BUCKETS {
            if d > last {
                break;
            }
            total.insert(d, 0);
            match d.checked_add(step) {
                Ok(n) => d = n,
                Err(_) => break,
            }
        }
    }
    let mut by: [BTreeMap<(Date, String), u64>; 3] = Default::default();
    for f in facts.iter().filter(|f| q.in_period(f.created_at)) {
        let Some(b) = bucket(f.created_at, &tz, q.interval) else {
            continue;
        };
        *total.entry(b).or_default() += 1;
        let dims = [
            f.queue.clone(),
            f.channel.clone(),
            f.priority.as_str().to_string(),
        ];
        for (map, dim) in by.iter_mut().zip(dims) {
            *map.entry((b, dim)).or_default() += 1;
        }
    }
    // Requests the customer marked solved on their status page, by when.
    let mut deflected: BTreeMap<Date, u64> = BTreeMap::new();
    for at in facts.iter().flat_map(|f| &f.deflections) {
        if q.in_period(*at)
            && let Some(b) = bucket(*at, &tz, q.interval)
        {
            *deflected.entry(b).or_default() += 1;
        }
    }
    let mut out = vec![Table {
        id: "total".into(),
        title: format!("Tickets opened per {}", interval_name(q.interval)),
        columns: vec!["period".into(), "tickets".into()],
        rows: total
            .into_iter()
            .map(|(d, n)| vec![Value::from(d.to_string()), Value::from(n)])
            .collect(),
    }];
    for (map, dim) in by.into_iter().zip(["queue", "channel", "priority"]) {
        out.push(Table {
            id: format!("by_{dim}"),
            title: format!("Tickets opened per {} by {dim}", interval_name(q.interval)),
            columns: vec!["period".into(), dim.into(), "tickets".into()],
            rows: map
                .into_iter()
                .map(|((d, k), n)| vec![Value::from(d.to_string()), Value::from(k), Value::from(n)])
                .collect(),
        });
    }
    out.push(Table {
        id: "deflected".into(),
        title: format!(
            "Requests the customer marked solved (deflections) per {}",
            interval_name(q.interval)
        ),
        columns: vec!["period".into(), "deflected".into()],
        rows: deflected
            .into_iter()
            .map(|(d, n)| vec![Value::from(d.to_string()), Value::from(n)])
            .collect(),
    });
    out
}

fn interval_name(i: Interval) -> &'static str {
    match i {
        Interval::Day => "day",
        Interval::Week => "week",
    }
}
