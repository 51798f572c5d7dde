//! Customer satisfaction: per scale and per agent who replied publicly, the
//! surveys sent in the period, the ratings they got, the response rate
//! (ratings ÷ surveys sent), the satisfied share (good, or 4–5 of 5) and
//! the mean score of the 1–5 scale. A survey counts in the period it was
//! sent (a cohort), so a late answer raises that period's response rate
//! rather than moving to another period.
//!
//! The surveys are not in the rollups (a rating arrives after its ticket's
//! summary): `report_service` reads them from the store's survey table.

use super::{Query, Table, ratio};
use crate::csat::{Scale, Survey};
use crate::model::TicketId;
use serde_json::Value;
use std::collections::BTreeMap;

/// The report's name, beside [`super::NAMES`] (it reads surveys, not summaries).
pub const NAME: &str = "satisfaction";

#[derive(Default)]
struct Tally {
    sent: usize,
    rated: usize,
    satisfied: usize,
    five_sum: u64,
    five_n: u64,
}

impl Tally {
    fn add(&mut self, s: &Survey) {
        self.sent += 1;
        if let Some(r) = &s.rating {
            self.rated += 1;
            if s.scale.satisfied(r.score) {
                self.satisfied += 1;
            }
            if s.scale == Scale::Five {
                self.five_sum += u64::from(r.score);
                self.five_n += 1;
            }
        }
    }

    fn cells(&self) -> Vec<Value> {
        let mean = if self.five_n == 0 {
            Value::Null
        } else {
            Value::from(((self.five_sum as f64 / self.five_n as f64) * 100.0).round() / 100.0)
        };
        vec![
            Value::from(self.sent),
            Value::from(self.rated),
            ratio(self.rated, self.sent),
            ratio(self.satisfied, self.rated),
            mean,
        ]
    }
}

const COLUMNS: [&str; 5] = [
    "surveys_sent",
    "ratings",
    "response_rate",
    "satisfied_share",
    "mean_score_of_5",
];

pub fn tables(q: &Query<'_>, surveys: &[(TicketId, Survey)]) -> Vec<Table> {
    let mut by_scale: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut by_agent: BTreeMap<String, Tally> = BTreeMap::new();
    for (_, s) in surveys {
        let Some(sent) = s.sent_at else { continue };
        if !q.in_period(sent) || q.queue.as_ref().is_some_and(|want| &s.queue != want) {
            continue;
        }
        total.add(s);
        by_scale.entry(s.scale.as_str()).or_default().add(s);
        for a in &s.agents {
            by_agent.entry(a.clone()).or_default().add(s);
        }
    }
    let mut rows: Vec<Vec<Value>> = by_scale
        .iter()
        .map(|(scale, t)| {
            let mut row = vec![Value::from(*scale)];
            row.extend(t.cells());
            row
        })
        .collect();
    let mut all = vec![Value::from("all")];
    all.extend(total.cells());
    rows.push(all);
    let agent_rows = by_agent
        .iter()
        .map(|(name, t)| {
            let mut row = vec![Value::from(name.as_str())];
            row.extend(t.cells());
            row
        })
        .collect();
    let columns = |first: &str| {
        std::iter::once(first)
            .chain(COLUMNS)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    vec![
        Table {
            id: "satisfaction".into(),
            title: "Satisfaction: surveys sent in the period and their ratings".into(),
            columns: columns("scale"),
            rows,
        },
        Table {
            id: "satisfaction_agents".into(),
            title: "Satisfaction per agent who replied publicly before the resolution".into(),
            columns: columns("agent"),
            rows: agent_rows,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csat::Rating;

    fn survey(sent: Option<i64>, scale: Scale, score: Option<u8>, agents: &[&str]) -> Survey {
        Survey {
            resolution: 1,
            scale,
            queue: "general".into(),
            due: 0,
            sent_at: sent,
            skipped: None,
            agents: agents.iter().map(|a| a.to_string()).collect(),
            rating: score.map(|score| Rating {
                score,
                comment: String::new(),
                at: 0,
                changed_at: 0,
                by: "c@example.org".into(),
                via: "web".into(),
            }),
        }
    }

    #[test]
    fn response_rate_satisfied_share_and_mean_per_scale_and_agent() {
        let policies = crate::rules::sla::Policies::default();
        let q = Query {
            since: 100,
            until: 200,
            queue: None,
            interval: super::super::Interval::Day,
            calendars: &[],
            policies: &policies,
            now: 200,
            recompute: false,
        };
        let surveys = vec![
            (1, survey(Some(150), Scale::Five, Some(5), &["alice"])),
            (
                2,
                survey(Some(150), Scale::Five, Some(2), &["alice", "bob"]),
            ),
            (3, survey(Some(150), Scale::Five, None, &["bob"])),
            (4, survey(Some(150), Scale::GoodBad, Some(1), &["bob"])),
            // Outside the period, or never sent: not counted.
            (5, survey(Some(50), Scale::Five, Some(1), &["alice"])),
            (6, survey(None, Scale::Five, None, &["alice"])),
        ];
        let t = tables(&q, &surveys);
        let row = |table: &Table, first: &str| {
            table.rows.iter().find(|r| r[0] == first).cloned().unwrap()
        };
        assert_eq!(
            row(&t[0], "five")[1..],
            serde_json::json!([3, 2, 0.6667, 0.5, 3.5])
                .as_array()
                .unwrap()[..]
        );
        assert_eq!(
            row(&t[0], "all")[1..],
            serde_json::json!([4, 3, 0.75, 0.6667, 3.5])
                .as_array()
                .unwrap()[..]
        );
        assert_eq!(
            row(&t[1], "bob")[1..],
            serde_json::json!([3, 2, 0.6667, 0.5, 2.0])
                .as_array()
                .unwrap()[..]
        );
        assert_eq!(
            row(&t[1], "alice")[1..],
            serde_json::json!([2, 2, 1.0, 0.5, 3.5]).as_array().unwrap()[..]
        );
    }
}
