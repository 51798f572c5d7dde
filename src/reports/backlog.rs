//! Backlog now: the tickets still open (new, open, pending) by age and by
//! how long the customer has waited since their last message. The period
//! does not apply: a backlog is a picture of the moment.

use super::{Facts, Query, Table};
use serde_json::Value;

/// Upper bounds (exclusive) of the age buckets, with their names.
const BUCKETS: [(i64, &str); 5] = [
    (86_400, "< 1 day"),
    (3 * 86_400, "1-3 days"),
    (7 * 86_400, "3-7 days"),
    (30 * 86_400, "7-30 days"),
    (i64::MAX, ">= 30 days"),
];

fn bucket_of(age: i64) -> usize {
    BUCKETS.iter().position(|(b, _)| age < *b).unwrap_or(4)
}

pub fn tables(q: &Query<'_>, facts: &[Facts]) -> Vec<Table> {
    let open: Vec<&Facts> = facts.iter().filter(|f| !f.status.is_finished()).collect();
    let mut by_age = [0u64; 5];
    let mut by_wait = [0u64; 5];
    for f in &open {
        by_age[bucket_of(q.now - f.created_at)] += 1;
        by_wait[bucket_of(q.now - f.last_customer_at)] += 1;
    }
    let table = |id: &str, title: &str, counts: [u64; 5]| Table {
        id: id.into(),
        title: title.into(),
        columns: vec!["bucket".into(), "tickets".into()],
        rows: BUCKETS
            .iter()
            .zip(counts)
            .map(|((_, name), n)| vec![Value::from(*name), Value::from(n)])
            .collect(),
    };
    vec![
        table("by_age", "Open tickets by age", by_age),
        table(
            "by_customer_wait",
            "Open tickets by time since the customer's last message",
            by_wait,
        ),
    ]
}
