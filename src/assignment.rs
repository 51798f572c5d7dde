//! Resolving a routing rule's `assign` to an agent's name.

use crate::rules::RuleSet;
use crate::rules::routing::Assign;
use crate::store::{StoreError, Tx};

/// The agent a new ticket in `queue` goes to, or None when nobody fits.
pub fn resolve(
    tx: &mut Tx<'_>,
    rules: &RuleSet,
    assign: &Assign,
    queue: &str,
) -> Result<Option<String>, StoreError> {
    let agents = &rules.agents;
    let candidates: Vec<&str> = match assign {
        Assign::Agent(name) => return Ok(Some(name.clone())),
        Assign::RoundRobin | Assign::LeastLoaded => {
            agents.in_queue(queue).map(|a| a.name.as_str()).collect()
        }
        Assign::Skill(skill) => {
            let skilled: Vec<_> = agents
                .list
                .iter()
                .filter(|a| a.skills.iter().any(|s| s == skill))
                .collect();
            let in_queue: Vec<&str> = skilled
                .iter()
                .filter(|a| a.queues.iter().any(|q| q == queue))
                .map(|a| a.name.as_str())
                .collect();
            if in_queue.is_empty() {
                skilled.iter().map(|a| a.name.as_str()).collect()
            } else {
                in_queue
            }
        }
    };
    if candidates.is_empty() {
        return Ok(None);
    }
    if *assign == Assign::RoundRobin {
        let n = tx.next_id(&format!("round-robin:{queue}"))?;
        let i = ((n - 1) % candidates.len() as u64) as usize;
        return Ok(Some(candidates[i].to_string()));
    }
    // least loaded (also among skilled agents): fewest tickets not yet resolved
    let load = tx.open_ticket_counts()?;
    let best = candidates
        .iter()
        .min_by_key(|name| load.get(&name.to_ascii_lowercase()).copied().unwrap_or(0))
        .map(|s| s.to_string());
    Ok(best)
}
