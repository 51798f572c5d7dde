//! Applies the retention rules (rules/retention.toml, `rules::retention`):
//! once an hour (and on `postdesk retention`), tickets due under a rule lose
//! their content (`store/erase.rs`), a batch per write transaction so intake
//! never waits long for the writer. A dry run lists what a pass would do.
//! The same hourly round prunes ended chat conversations' records kept
//! past `keep_conversations` (rules/chat.toml; their lines are messages
//! and stay).

use crate::clock::Clock;
use crate::model::TicketId;
use crate::rules::LiveRules;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Tickets planned per read; purged [`BATCH`] per write transaction.
const PLAN: usize = 1000;
const BATCH: usize = 50;
/// How often the daemon applies the rules.
const INTERVAL: Duration = Duration::from_secs(3600);
/// Chat conversations removed per write transaction.
const CHAT_BATCH: usize = 200;

/// Removes the chat conversations that ended and whose visitor was last
/// there more than `keep_conversations` before `now`; returns how many.
pub fn prune_chats(store: &Store, rules: &LiveRules, now: i64) -> Result<usize, StoreError> {
    let keep = rules.current().chat.limits.keep_conversations;
    store.prune_chat_conversations(now.saturating_sub(keep), CHAT_BATCH)
}

/// One ticket a pass purged (or would purge) and the rule it fell under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    pub ticket: TicketId,
    pub rule: String,
}

/// One pass at `now`: every due ticket (dry run: only listed).
pub fn pass(
    store: &Store,
    rules: &LiveRules,
    now: i64,
    apply: bool,
) -> Result<Vec<Purged>, StoreError> {
    let retention = rules.current().retention.clone();
    let mut done = Vec::new();
    loop {
        let plan = store.retention_plan(&retention, now, PLAN)?;
        if !apply {
            return Ok(plan
                .into_iter()
                .map(|d| Purged {
                    ticket: d.ticket,
                    rule: d.rule,
                })
                .collect());
        }
        let planned = plan.len();
        for chunk in plan.chunks(BATCH) {
            let purged = store.write(|tx| {
                let mut purged = Vec::new();
                for due in chunk {
                    if tx.purge_ticket_content(due, &retention, now)? {
                        purged.push(Purged {
                            ticket: due.ticket,
                            rule: due.rule.clone(),
                        });
                    }
                }
                Ok(purged)
            })?;
            for p in &purged {
                tracing::info!(ticket = p.ticket, rule = %p.rule, "retention: content removed");
            }
            done.extend(purged);
        }
        // A full plan may have left more behind; a short one saw them all.
        if planned < PLAN {
            return Ok(done);
        }
    }
}

/// Applies the rules every [`INTERVAL`] until shutdown.
pub async fn run(
    store: Store,
    rules: Arc<LiveRules>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let (s, r, now) = (store.clone(), rules.clone(), clock.now());
        match tokio::task::spawn_blocking(move || prune_chats(&s, &r, now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(conversations = n, "chat conversations pruned"),
            Ok(Err(e)) => tracing::error!(error = %e, "pruning chat conversations failed"),
            Err(e) => tracing::error!(error = %e, "chat pruning task failed"),
        }
        if rules.current().retention.rules.is_empty() {
            continue;
        }
        let (store, rules, now) = (store.clone(), rules.clone(), clock.now());
        match tokio::task::spawn_blocking(move || pass(&store, &rules, now, true)).await {
            Ok(Ok(done)) if !done.is_empty() => {
                tracing::info!(tickets = done.len(), "retention pass")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "retention pass failed"),
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
    }
}
