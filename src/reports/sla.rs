//! SLA compliance per target: of the tickets opened in the period whose
//! target fell due (met, or breached), the share met; and every breach.
//!
//! A target is due once it is decided: first response when a reply went
//! out or the breach fired; resolution when the ticket was resolved or the
//! breach fired. Targets still running are not counted either way.

use super::{Facts, Query, Table, ratio};
use crate::clock::rfc3339;
use serde_json::Value;

pub fn tables(q: &Query<'_>, facts: &[Facts]) -> Vec<Table> {
    let opened: Vec<&Facts> = facts.iter().filter(|f| q.in_period(f.created_at)).collect();
    let mut rows = Vec::new();
    for goal in ["first_response", "resolution"] {
        let (mut due, mut met) = (0, 0);
        for f in &opened {
            let (target, done) = match goal {
                "first_response" => (f.first_response_due, f.first_reply().is_some()),
                _ => (f.resolution_due, !f.resolutions.is_empty()),
            };
            if target.is_none() {
                continue;
            }
            let breached = f.breached(goal);
            if breached || done {
                due += 1;
                if !breached {
                    met += 1;
                }
            }
        }
        rows.push(vec![
            Value::from(goal),
            Value::from(due),
            Value::from(met),
            Value::from(due - met),
            ratio(met, due),
        ]);
    }
    let mut breaches: Vec<(i64, u64, &str, String, String)> = opened
        .iter()
        .flat_map(|f| {
            f.breaches
                .iter()
                .map(|(at, g)| (*at, f.id, *g, f.queue.clone(), f.priority.as_str().into()))
        })
        .collect();
    breaches.sort();
    vec![
        Table {
            id: "compliance".into(),
            title: "SLA compliance by target".into(),
            columns: ["target", "due", "met", "breached", "compliance"]
                .map(String::from)
                .to_vec(),
            rows,
        },
        Table {
            id: "breaches".into(),
            title: "SLA breaches".into(),
            columns: ["ticket", "target", "breached_at", "queue", "priority"]
                .map(String::from)
                .to_vec(),
            rows: breaches
                .into_iter()
                .map(|(at, id, g, queue, prio)| {
                    vec![
                        Value::from(id),
                        Value::from(g),
                        Value::from(rfc3339(at)),
                        Value::from(queue),
                        Value::from(prio),
                    ]
                })
                .collect(),
        },
    ]
}
