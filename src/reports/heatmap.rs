//! When customers write: tickets opened per weekday × hour of the day, in
//! the team's time zone (so a Monday 09:00 rush shows as Monday 09:00 there,
//! also across daylight-saving changes).

use super::{Facts, Query, Table};
use crate::rules::calendar::DAYS;
use jiff::Timestamp;
use serde_json::Value;

pub fn tables(q: &Query<'_>, facts: &[Facts]) -> Vec<Table> {
    let tz = q.team_zone();
    let mut grid = [[0u64; 24]; 7];
    for f in facts.iter().filter(|f| q.in_period(f.created_at)) {
        let Ok(t) = Timestamp::from_second(f.created_at) else {
            continue;
        };
        let z = t.to_zoned_datetime(tz.clone());
        grid[z.weekday().to_monday_zero_offset() as usize][z.hour() as usize] += 1;
    }
    let mut columns = vec!["weekday".to_string()];
    columns.extend((0..24).map(|h| format!("{h:02}")));
    let rows = grid
        .iter()
        .zip(DAYS)
        .map(|(hours, day)| {
            std::iter::once(Value::from(day))
                .chain(hours.iter().map(|n| Value::from(*n)))
                .collect()
        })
        .collect();
    vec![Table {
        id: "heatmap".into(),
        title: format!("Tickets opened by weekday and hour ({})", tz_name(&tz)),
        columns,
        rows,
    }]
}

fn tz_name(tz: &jiff::tz::TimeZone) -> String {
    tz.iana_name().unwrap_or("UTC").to_string()
}
