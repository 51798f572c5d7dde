//! The sender task: picks due jobs from the queue and delivers them.
//!
//! Delivery is **at least once**: a job is removed only after the relay has
//! accepted the message, in a separate transaction. A crash between the
//! relay's acceptance and that commit delivers the message once more on
//! restart; it carries the same Message-ID, so receivers can dedupe.

use crate::clock::Clock;
use crate::config::{Config, OutboundConfig, Relay};
use crate::model::{Event, OutboundJob};
use crate::outbound::relay::{self, DeliveryError};
use crate::store::{self, Store, Tx};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::{Id, JoinSet};
use tracing::Instrument;

/// Longest sleep between queue scans, so a changed clock or a missed wake-up
/// is noticed.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// Pause after the store failed, before trying again.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// Runs until `shutdown` turns true. `wake` is notified whenever new jobs are queued.
///
/// On shutdown no new attempts start; attempts in flight (each bounded by
/// `outbound.timeout`) finish and their results are recorded before it returns.
pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    clock: Clock,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Ctx {
        relay: cfg.relay(),
        cfg,
        store,
        clock,
    });
    let limit = ctx.cfg.outbound.concurrency.max(1);
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Job ids with an attempt running, and which task runs which job.
    let mut in_flight: HashSet<u64> = HashSet::new();
    let mut task_jobs: HashMap<Id, u64> = HashMap::new();

    while !*shutdown.borrow() {
        // Register for wake-ups before looking at the queue, so a job queued
        // while we look is not missed (works with notify_one and notify_waiters).
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let idle = match ctx
            .start_due(&mut tasks, &mut in_flight, &mut task_jobs, limit)
            .await
        {
            Ok(Some(next)) => {
                let secs = (next - ctx.clock.now()).max(0) as u64;
                Duration::from_secs(secs).min(MAX_IDLE)
            }
            Ok(None) => MAX_IDLE,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbound queue");
                STORE_RETRY
            }
        };
        // With every slot busy only a finished attempt frees work to do.
        let full = tasks.len() >= limit;
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = &mut notified, if !full => {}
            _ = tokio::time::sleep(idle), if !full => {}
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                finished(done, &mut in_flight, &mut task_jobs);
            }
        }
        if shutdown.has_changed().is_err() {
            // The sender of the shutdown channel is gone: treat it as shutdown.
            break;
        }
    }

    if !tasks.is_empty() {
        tracing::info!(
            in_flight = tasks.len(),
            "outbound: waiting for deliveries in progress"
        );
    }
    while let Some(done) = tasks.join_next_with_id().await {
        finished(done, &mut in_flight, &mut task_jobs);
    }
}

fn finished(
    done: Result<(Id, ()), tokio::task::JoinError>,
    in_flight: &mut HashSet<u64>,
    task_jobs: &mut HashMap<Id, u64>,
) {
    let id = match done {
        Ok((id, ())) => id,
        Err(e) => {
            // The job stays queued and is tried again.
            tracing::error!(error = %e, "outbound: delivery task failed");
            e.id()
        }
    };
    if let Some(job) = task_jobs.remove(&id) {
        in_flight.remove(&job);
    }
}

struct Ctx {
    cfg: Arc<Config>,
    relay: Relay,
    store: Store,
    clock: Clock,
}

impl Ctx {
    /// Starts attempts for due jobs not already in flight, up to `limit` in
    /// all; returns when the next not-yet-started job becomes due, if any.
    async fn start_due(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        in_flight: &mut HashSet<u64>,
        task_jobs: &mut HashMap<Id, u64>,
        limit: usize,
    ) -> store::Result<Option<i64>> {
        let free = limit.saturating_sub(tasks.len());
        // The head of the queue, due or not (earliest first). Jobs in flight
        // keep their past next_attempt_at until their result is recorded, so
        // look far enough to see the first job that is not in flight.
        let want = in_flight.len() + free + 1;
        let store = self.store.clone();
        let head = tokio::task::spawn_blocking(move || store.due_jobs(i64::MAX, want))
            .await
            .map_err(|e| store::StoreError::Io(std::io::Error::other(e)))??;
        let now = self.clock.now();
        let mut started = 0;
        for job in head {
            if in_flight.contains(&job.id) {
                continue;
            }
            if job.next_attempt_at > now || started >= free {
                return Ok(Some(job.next_attempt_at));
            }
            started += 1;
            in_flight.insert(job.id);
            let span = tracing::info_span!(
                "delivery",
                job = job.id,
                ticket = ?job.ticket,
                attempt = job.attempts + 1
            );
            let job_id = job.id;
            let handle = tasks.spawn(self.clone().attempt(job).instrument(span));
            task_jobs.insert(handle.id(), job_id);
        }
        Ok(None)
    }

    /// One delivery attempt, and its result recorded.
    async fn attempt(self: Arc<Self>, job: OutboundJob) {
        let store = self.store.clone();
        let seq = job.message;
        let raw = tokio::task::spawn_blocking(move || store.raw(seq)).await;
        let result = match raw {
            Ok(Ok(Some(raw))) => {
                relay::deliver(
                    &self.relay,
                    &self.cfg.server.hostname,
                    self.cfg.outbound.timeout,
                    &job.mail_from,
                    &job.rcpt_to,
                    &raw,
                )
                .await
            }
            Ok(Ok(None)) => Err(DeliveryError::Permanent(format!(
                "message {seq} is missing from the store"
            ))),
            Ok(Err(e)) => {
                // Our own trouble, not the message's: leave the job as it is.
                tracing::error!(error = %e, message = seq, "cannot load the message to send");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load the message to send");
                return;
            }
        };
        let now = self.clock.now();
        let outcome = outcome(&job, result, now, &self.cfg.outbound);
        match &outcome {
            Outcome::Delivered => tracing::info!(rcpt = ?job.rcpt_to, "delivered"),
            Outcome::Retry {
                next_attempt_at,
                error,
            } => tracing::warn!(
                rcpt = ?job.rcpt_to,
                error = %error,
                retry_in = next_attempt_at - now,
                "delivery failed temporarily; will retry"
            ),
            Outcome::Failed(error) => tracing::warn!(
                rcpt = ?job.rcpt_to,
                error = %error,
                "delivery failed permanently; giving up"
            ),
        }
        let ctx = self.clone();
        let id = job.id;
        let recorded = tokio::task::spawn_blocking(move || {
            ctx.store.write(|tx| ctx.record(tx, id, &outcome, now))
        })
        .await;
        match recorded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot record the delivery result"),
            Err(e) => tracing::error!(error = %e, "cannot record the delivery result"),
        }
    }

    /// Applies an outcome to the job as it is now in the store (it may have
    /// been changed or removed meanwhile), with its ticket event.
    fn record(&self, tx: &mut Tx<'_>, id: u64, outcome: &Outcome, now: i64) -> store::Result<()> {
        let Some(mut job) = tx.job(id)? else {
            return Ok(());
        };
        let rcpts = job.rcpt_to.join(", ");
        let event = match outcome {
            Outcome::Delivered => {
                tx.remove_job(id)?;
                (
                    "delivered",
                    format!("to {rcpts} via {}", relay::describe(&self.relay)),
                )
            }
            Outcome::Retry {
                next_attempt_at,
                error,
            } => {
                job.attempts = job.attempts.saturating_add(1);
                job.next_attempt_at = *next_attempt_at;
                job.last_error = Some(error.clone());
                tx.put_job(&job)?;
                return Ok(());
            }
            Outcome::Failed(error) => {
                tx.remove_job(id)?;
                ("delivery_failed", format!("{rcpts}: {error}"))
            }
        };
        let ticket = match job.ticket {
            Some(t) => tx.ticket(t)?,
            None => None,
        };
        match ticket {
            Some(mut ticket) => {
                let (kind, detail) = event;
                tx.add_event(
                    &mut ticket,
                    Event {
                        at: now,
                        kind: kind.into(),
                        actor: "postdesk".into(),
                        detail,
                    },
                )?;
                tx.put_ticket(&ticket)?;
            }
            None if matches!(outcome, Outcome::Failed(_)) => {
                tracing::warn!(job = id, detail = %event.1, "undeliverable message without a ticket");
            }
            None => {}
        }
        Ok(())
    }
}

/// What to do with a job after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Retry { next_attempt_at: i64, error: String },
    Failed(String),
}

/// Decides the job's fate: transient failures are retried with backoff until
/// the job is `lifetime` old, then given up like permanent ones.
fn outcome(
    job: &OutboundJob,
    result: Result<(), DeliveryError>,
    now: i64,
    cfg: &OutboundConfig,
) -> Outcome {
    match result {
        Ok(()) => Outcome::Delivered,
        Err(DeliveryError::Permanent(e)) => Outcome::Failed(e),
        Err(DeliveryError::Transient(e)) => {
            let attempts = job.attempts.saturating_add(1);
            match next_attempt(job.created_at, attempts, now, cfg) {
                Some(next_attempt_at) => Outcome::Retry {
                    next_attempt_at,
                    error: e,
                },
                None => Outcome::Failed(format!(
                    "gave up after {attempts} attempts over {}: {e}",
                    human_duration(now - job.created_at)
                )),
            }
        }
    }
}

/// When to try again after the `attempts`-th failed attempt, or None once
/// the job has outlived `lifetime`. The last retry is moved to the end of the
/// lifetime rather than past it, so every job gets a final attempt then.
fn next_attempt(created_at: i64, attempts: u32, now: i64, cfg: &OutboundConfig) -> Option<i64> {
    let lifetime = secs(cfg.lifetime);
    let expires = created_at.saturating_add(lifetime);
    if now >= expires {
        return None;
    }
    let delay = secs(backoff(attempts, cfg.retry_initial, cfg.retry_max)).max(1);
    Some(now.saturating_add(delay).min(expires))
}

/// `initial * 2^(attempts-1)`, at most `max`.
fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn human_duration(secs: i64) -> String {
    match secs {
        s if s >= 86400 => format!("{}d{}h", s / 86400, s % 86400 / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}
