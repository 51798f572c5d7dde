//! First response and resolution times (median and 90th percentile, in
//! business and wall-clock hours), and the reopen and one-touch rates.
//!
//! A ticket counts in the period it was opened in. First response: the
//! customer's first message to the first public agent reply. Resolution:
//! to the first time it was resolved (first) and to the resolution that
//! stands now (final; a reopened ticket that is open again has none).

use super::{Facts, Query, Table, hours, percentile, ratio};
use serde_json::Value;

/// One measure over a set of tickets: `(business secs, wall secs)` each.
pub fn measure_row(name: &str, spans: &[(i64, i64)]) -> Vec<Value> {
    let mut business: Vec<i64> = spans.iter().map(|s| s.0).collect();
    let mut wall: Vec<i64> = spans.iter().map(|s| s.1).collect();
    vec![
        Value::from(name),
        Value::from(spans.len()),
        hours(percentile(&mut business, 50)),
        hours(percentile(&mut business, 90)),
        hours(percentile(&mut wall, 50)),
        hours(percentile(&mut wall, 90)),
    ]
}

pub fn measure_columns(first: &str) -> Vec<String> {
    [
        first,
        "tickets",
        "median_business_h",
        "p90_business_h",
        "median_wall_h",
        "p90_wall_h",
    ]
    .map(String::from)
    .to_vec()
}

/// (business, wall) seconds from the ticket's opening to `to`.
pub fn span(f: &Facts, to: i64) -> (i64, i64) {
    (f.business_since_open(to), (to - f.created_at).max(0))
}

pub fn tables(q: &Query<'_>, facts: &[Facts]) -> Vec<Table> {
    let opened: Vec<&Facts> = facts.iter().filter(|f| q.in_period(f.created_at)).collect();
    let first_response: Vec<(i64, i64)> = opened
        .iter()
        .filter_map(|f| f.first_reply().map(|r| span(f, r.0)))
        .collect();
    let first_resolution: Vec<(i64, i64)> = opened
        .iter()
        .filter_map(|f| f.resolutions.first().map(|r| span(f, r.0)))
        .collect();
    let final_resolution: Vec<(i64, i64)> = opened
        .iter()
        .filter_map(|f| f.final_resolution().map(|r| span(f, r.0)))
        .collect();
    vec![
        Table {
            id: "times".into(),
            title: "Response and resolution times (hours)".into(),
            columns: measure_columns("measure"),
            rows: vec![
                measure_row("first_response", &first_response),
                measure_row("first_resolution", &first_resolution),
                measure_row("final_resolution", &final_resolution),
            ],
        },
        chat_wait(&opened),
    ]
}

/// How long chat visitors waited for the first agent's line, in wall-clock
/// minutes (a visitor waits in the widget whatever the business hours):
/// chat tickets opened in the period, how many were answered, the median
/// and 90th percentile of the wait, and how many are still waiting.
fn chat_wait(opened: &[&Facts]) -> Table {
    let chats: Vec<&&Facts> = opened.iter().filter(|f| f.channel == "chat").collect();
    let mut waits: Vec<i64> = chats
        .iter()
        .filter_map(|f| f.first_reply().map(|r| (r.0 - f.created_at).max(0)))
        .collect();
    let minutes = |secs: Option<i64>| match secs {
        Some(s) => Value::from(((s as f64 / 60.0) * 10.0).round() / 10.0),
        None => Value::Null,
    };
    let answered = waits.len();
    Table {
        id: "chat_wait".into(),
        title: "Chat: wait for the first agent line (minutes)".into(),
        columns: [
            "channel",
            "tickets",
            "answered",
            "median_wait_min",
            "p90_wait_min",
            "unanswered",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![vec![
            Value::from("chat"),
            Value::from(chats.len()),
            Value::from(answered),
            minutes(percentile(&mut waits, 50)),
            minutes(percentile(&mut waits, 90)),
            Value::from(chats.len() - answered),
        ]],
    }
}

/// Reopen rate: of the tickets opened in the period that were resolved,
/// the share opened again. One-touch: of those resolved now, the share
/// resolved with exactly one public reply.
pub fn rates(q: &Query<'_>, facts: &[Facts]) -> Vec<Table> {
    let opened: Vec<&Facts> = facts.iter().filter(|f| q.in_period(f.created_at)).collect();
    let resolved_once = opened.iter().filter(|f| !f.resolutions.is_empty());
    let reopened = resolved_once.clone().filter(|f| f.reopens > 0).count();
    let resolved_once = resolved_once.count();
    let resolved_now: Vec<&&Facts> = opened
        .iter()
        .filter(|f| f.final_resolution().is_some())
        .collect();
    let one_touch = resolved_now.iter().filter(|f| f.replies.len() == 1).count();
    vec![Table {
        id: "rates".into(),
        title: "Reopen and one-touch resolution rates".into(),
        columns: ["rate", "tickets", "of", "ratio"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            vec![
                Value::from("reopened"),
                Value::from(reopened),
                Value::from(resolved_once),
                ratio(reopened, resolved_once),
            ],
            vec![
                Value::from("one_touch"),
                Value::from(one_touch),
                Value::from(resolved_now.len()),
                ratio(one_touch, resolved_now.len()),
            ],
        ],
    }]
}
