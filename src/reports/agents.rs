//! Per agent: public replies sent and tickets resolved in the period, and
//! the first-response and resolution percentiles of the tickets they
//! answered first and resolved (business hours; wall-clock in the times
//! report).

use super::{Facts, Query, Table, hours, percentile};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Default)]
struct Agent {
    replies: u64,
    resolved: u64,
    first_response: Vec<i64>,
    resolution: Vec<i64>,
}

pub fn tables(q: &Query<'_>, facts: &[Facts]) -> Vec<Table> {
    let mut agents: BTreeMap<String, Agent> = BTreeMap::new();
    for f in facts {
        for (at, who) in &f.replies {
            if q.in_period(*at) {
                agents.entry(who.clone()).or_default().replies += 1;
            }
        }
        if let Some((at, who)) = f.first_reply()
            && q.in_period(*at)
        {
            let a = agents.entry(who.clone()).or_default();
            a.first_response.push(f.business_since_open(*at));
        }
        for (at, who) in &f.resolutions {
            if q.in_period(*at) {
                agents.entry(who.clone()).or_default().resolved += 1;
            }
        }
        if let Some((at, who)) = f.final_resolution()
            && q.in_period(*at)
        {
            let a = agents.entry(who.clone()).or_default();
            a.resolution.push(f.business_since_open(*at));
        }
    }
    let rows = agents
        .into_iter()
        .map(|(name, mut a)| {
            vec![
                Value::from(name),
                Value::from(a.replies),
                Value::from(a.resolved),
                hours(percentile(&mut a.first_response, 50)),
                hours(percentile(&mut a.first_response, 90)),
                hours(percentile(&mut a.resolution, 50)),
                hours(percentile(&mut a.resolution, 90)),
            ]
        })
        .collect();
    vec![Table {
        id: "agents".into(),
        title: "Agents: replies, resolutions and their times (business hours)".into(),
        columns: [
            "agent",
            "replies",
            "resolved",
            "first_response_median_h",
            "first_response_p90_h",
            "resolution_median_h",
            "resolution_p90_h",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }]
}
