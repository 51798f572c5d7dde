//! The sender task: picks due jobs from the queue and delivers them.
//!
//! Delivery is **at least once**: a job is removed only after the relay has
//! accepted the message, in a separate transaction. A crash between the
//! relay's acceptance and that commit delivers the message once more on
//! restart; it carries the same Message-ID, so receivers can dedupe.
//!
//! While the daemon lives, a message the relay accepted is not sent again:
//! results are recorded without fsync ([`Store::write_lazy_marked`]) and kept
//! in memory until a durable commit follows; a result that could not be
//! recorded (disk full), or whose record was lost when the store was
//! reopened after an I/O error, is recorded again before its job may be
//! attempted again.

use crate::clock::Clock;
use crate::config::{Config, OutboundConfig, Relay};
use crate::model::{Event, EventKind, OutboundJob, Ticket};
use crate::outbound::relay::{self, DeliveryError};
use crate::store::{self, DeliveryEvidence, LazyMark, LazyState, Store, Tx};
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
/// How long a job whose attempt ended without a result (its message could
/// not be read, or the task failed) is left alone before it is tried again.
const HOLD_UNRECORDED: i64 = 300;
/// Results kept until a durable commit covers them; past this many the
/// sender makes one itself instead of waiting for intake to.
const MAX_UNCONFIRMED: usize = 1000;

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
    agents: Agents,
) {
    // `Config::load` has loaded these keys already; failing now means the
    // file changed since. Mail then waits rather than going out unsigned.
    let dkim = cfg.dkim_signer().map_err(|e| {
        tracing::error!(error = %e, "DKIM key unusable: outbound mail waits until it is fixed");
        e.to_string()
    });
    if let Ok(Some(signer)) = &dkim {
        tracing::info!(
            domain = signer.domain(),
            selector = signer.selector(),
            "outbound mail is DKIM-signed"
        );
    }
    // Direct delivery's resolver and trust anchors; if they cannot be set
    // up (the check validates both), mail waits like with an unusable key.
    let mx = (cfg.relay() == Relay::Mx).then(|| {
        crate::outbound::mx::MxRouter::new(cfg.clone())
            .map(Arc::new)
            .map_err(|e| {
                tracing::error!(error = %e, "direct delivery cannot start: outbound mail waits");
                e.to_string()
            })
    });
    let ctx = Arc::new(Ctx {
        dkim,
        mx,
        relay: cfg.relay(),
        pool: relay::ConnectionPool::new(cfg.outbound.concurrency.max(1)),
        cfg,
        store,
        clock,
        agents,
    });
    let limit = ctx.cfg.outbound.concurrency.max(1);
    // Each task yields its attempt's outcome, recorded here in batches.
    let mut tasks: JoinSet<Option<Attempted>> = JoinSet::new();
    // Job ids with an attempt running, and which task runs which job.
    let mut in_flight: HashSet<u64> = HashSet::new();
    let mut task_jobs: HashMap<Id, u64> = HashMap::new();
    // Job id -> unix seconds before which it is not tried again.
    let mut held: HashMap<u64, i64> = HashMap::new();
    let mut results = Results::default();

    while !*shutdown.borrow() {
        ctx.settle(&mut results, tasks.is_empty()).await;
        // Register for wake-ups before looking at the queue, so a job queued
        // while we look is not missed (works with notify_one and notify_waiters).
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let idle = match ctx
            .start_due(
                &mut tasks,
                &mut in_flight,
                &mut task_jobs,
                &held,
                &results,
                limit,
            )
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
        // Results still to be recorded are retried soon, not after MAX_IDLE.
        let idle = if results.unrecorded.is_empty() {
            idle
        } else {
            idle.min(STORE_RETRY)
        };
        // With every slot busy only a finished attempt frees work to do.
        let full = tasks.len() >= limit;
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = &mut notified, if !full => {}
            _ = tokio::time::sleep(idle), if !full => {}
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                // Every attempt finished by now goes into the same commit.
                let mut done = vec![done];
                while let Some(more) = tasks.try_join_next_with_id() {
                    done.push(more);
                }
                ctx.finished(done, &mut in_flight, &mut task_jobs, &mut held, &mut results)
                    .await;
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
        ctx.finished(
            vec![done],
            &mut in_flight,
            &mut task_jobs,
            &mut held,
            &mut results,
        )
        .await;
    }
    // Results the store refused: try once more; a restart would send those
    // messages again (at-least-once), so say so.
    ctx.settle(&mut results, true).await;
    if !results.unrecorded.is_empty() {
        tracing::error!(
            jobs = ?results.unrecorded.keys().collect::<Vec<_>>(),
            "delivery results could not be recorded; these messages will be sent again after the restart"
        );
    }
}

/// Attempt results on their way into the store, by job id.
#[derive(Default)]
struct Results {
    /// Not in the store: the write failed, or it was lost when the store was
    /// reopened. Recorded before the job may be attempted again.
    unrecorded: HashMap<u64, Attempted>,
    /// Recorded without fsync, waiting for a durable commit.
    unconfirmed: Vec<(LazyMark, Vec<Attempted>)>,
}

impl Results {
    /// Whether `job` has a result the store may not hold yet (so it must not
    /// be delivered again).
    fn holds(&self, job: u64) -> bool {
        self.unrecorded.contains_key(&job)
            || self
                .unconfirmed
                .iter()
                .any(|(_, batch)| batch.iter().any(|a| a.job == job))
    }
}

type Done = Result<(Id, Option<Attempted>), tokio::task::JoinError>;

/// What the sender needs to tell an agent that the customer's server
/// refused their reply: the agents and SLA policies, and the tokens for an
/// answerable notice.
#[derive(Clone)]
pub struct Agents {
    pub rules: Arc<crate::rules::LiveRules>,
    pub tokens: crate::token::Tokens,
}

struct Ctx {
    cfg: Arc<Config>,
    /// The signer of `[dkim]` (None: unsigned), or why its key failed to load.
    dkim: Result<Option<crate::dkim::Signer>, String>,
    relay: Relay,
    /// Direct delivery (`relay = "mx"`), or why it could not start.
    mx: Option<Result<Arc<crate::outbound::mx::MxRouter>, String>>,
    /// Idle relay connections, reused across deliveries.
    pool: relay::ConnectionPool,
    store: Store,
    clock: Clock,
    agents: Agents,
}

impl Ctx {
    /// Records finished attempts, then frees their jobs for the queue scan
    /// (only after the record, or the scan would see them due again). A job
    /// whose outcome was not recorded is left alone for a while.
    async fn finished(
        self: &Arc<Self>,
        done: Vec<Done>,
        in_flight: &mut HashSet<u64>,
        task_jobs: &mut HashMap<Id, u64>,
        held: &mut HashMap<u64, i64>,
        results: &mut Results,
    ) {
        let mut batch = Vec::new();
        let mut ended = Vec::new();
        for d in done {
            match d {
                Ok((id, attempted)) => {
                    ended.push((id, attempted.is_some()));
                    batch.extend(attempted);
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbound: delivery task failed");
                    ended.push((e.id(), false));
                }
            }
        }
        if !batch.is_empty() {
            match self.record_all(batch.clone()).await {
                Some(mark) => results.unconfirmed.push((mark, batch)),
                // Kept, and recorded before these jobs are attempted again.
                None => results
                    .unrecorded
                    .extend(batch.into_iter().map(|a| (a.job, a))),
            }
        }
        let now = self.clock.now();
        held.retain(|_, until| *until > now);
        for (id, attempted) in ended {
            if let Some(job) = task_jobs.remove(&id) {
                in_flight.remove(&job);
                if !attempted {
                    // The job stays queued as it was; try it again later.
                    held.insert(job, now + HOLD_UNRECORDED);
                }
            }
        }
    }

    /// Brings the results in memory up to date with the store: forgets those
    /// a durable commit covers, takes back those a reopened store may have
    /// lost, and records what is not recorded. When the sender is idle (or
    /// holds many), one durable commit confirms them all.
    async fn settle(self: &Arc<Self>, results: &mut Results, idle: bool) {
        let mut lost = Vec::new();
        results
            .unconfirmed
            .retain_mut(|(mark, batch)| match self.store.lazy_state(*mark) {
                LazyState::Durable => false,
                LazyState::Pending => true,
                LazyState::MaybeLost => {
                    lost.append(batch);
                    false
                }
            });
        if !lost.is_empty() {
            tracing::warn!(
                jobs = ?lost.iter().map(|a| a.job).collect::<Vec<_>>(),
                "delivery results may have been lost with the failed store; recording them again"
            );
        }
        for a in lost {
            // An older result of the same job would be stale; the newer stays.
            results.unrecorded.entry(a.job).or_insert(a);
        }
        if !results.unrecorded.is_empty() {
            let batch: Vec<Attempted> = results.unrecorded.values().cloned().collect();
            if let Some(mark) = self.record_all(batch.clone()).await {
                tracing::info!(jobs = batch.len(), "delivery results recorded late");
                results.unrecorded.clear();
                results.unconfirmed.push((mark, batch));
            }
        }
        let held: usize = results.unconfirmed.iter().map(|(_, b)| b.len()).sum();
        if held > 0 && (idle || held > MAX_UNCONFIRMED) {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.flush()).await {
                Ok(Ok(())) => results
                    .unconfirmed
                    .retain(|(mark, _)| self.store.lazy_state(*mark) != LazyState::Durable),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot make delivery results durable"),
                Err(e) => tracing::warn!(error = %e, "cannot make delivery results durable"),
            }
        }
    }

    /// Starts attempts for due jobs not already in flight, up to `limit` in
    /// all; returns when the next not-yet-started job becomes due, if any.
    async fn start_due(
        self: &Arc<Self>,
        tasks: &mut JoinSet<Option<Attempted>>,
        in_flight: &mut HashSet<u64>,
        task_jobs: &mut HashMap<Id, u64>,
        held: &HashMap<u64, i64>,
        results: &Results,
        limit: usize,
    ) -> store::Result<Option<i64>> {
        let free = limit.saturating_sub(tasks.len());
        // The head of the queue, due or not (earliest first). Jobs in flight
        // keep their past next_attempt_at until their result is recorded, so
        // look far enough to see the first job that is not in flight.
        let want = in_flight.len() + held.len() + results.unrecorded.len() + free + 1;
        let store = self.store.clone();
        let head = tokio::task::spawn_blocking(move || store.due_jobs(i64::MAX, want))
            .await
            .map_err(|e| store::StoreError::Io(std::io::Error::other(e)))??;
        let now = self.clock.now();
        let mut start = Vec::new();
        let mut next_due = None;
        for job in head {
            if in_flight.contains(&job.id)
                || held.get(&job.id).is_some_and(|&t| t > now)
                || results.holds(job.id)
            {
                // A job whose last result may not be in the store yet is not
                // sent again: that result is recorded first (see `settle`).
                continue;
            }
            if job.next_attempt_at > now || start.len() >= free {
                next_due = Some(job.next_attempt_at);
                break;
            }
            start.push(job);
        }
        if start.is_empty() {
            return Ok(next_due);
        }
        // The messages of all jobs started now, in one read.
        let store = self.store.clone();
        let seqs: Vec<_> = start.iter().map(|j| j.message).collect();
        let raws = tokio::task::spawn_blocking(move || {
            seqs.iter().map(|&s| store.raw(s)).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| store::StoreError::Io(std::io::Error::other(e)))?;
        for (job, raw) in start.into_iter().zip(raws) {
            in_flight.insert(job.id);
            let span = tracing::info_span!(
                "delivery",
                job = job.id,
                ticket = ?job.ticket,
                attempt = job.attempts + 1
            );
            let job_id = job.id;
            let handle = tasks.spawn(self.clone().attempt(job, raw).instrument(span));
            task_jobs.insert(handle.id(), job_id);
        }
        Ok(next_due)
    }

    /// The bytes to send: the stored message with our DKIM-Signature in
    /// front when `[dkim]` names a key (signed now, so the signature covers
    /// exactly what leaves and uses the key configured today).
    fn signed(&self, raw: Vec<u8>) -> Result<Vec<u8>, DeliveryError> {
        match &self.dkim {
            Ok(None) => Ok(raw),
            Ok(Some(signer)) => signer.sign(&raw).map_err(|e| {
                tracing::error!(error = %e, "cannot sign the message");
                DeliveryError::Transient(e.to_string())
            }),
            Err(e) => Err(DeliveryError::Transient(e.clone())),
        }
    }

    /// One delivery attempt; its outcome, to be recorded by the run loop
    /// (None if the message could not be read: the job is left as it is).
    async fn attempt(
        self: Arc<Self>,
        job: OutboundJob,
        raw: store::Result<Option<Vec<u8>>>,
    ) -> Option<Attempted> {
        let seq = job.message;
        let result = match raw {
            Ok(Some(raw)) => match self.signed(raw) {
                Ok(bytes) => match &self.mx {
                    Some(Ok(router)) => {
                        router
                            .deliver(&self.pool, &job.mail_from, &job.rcpt_to, &bytes)
                            .await
                    }
                    Some(Err(e)) => Err(DeliveryError::Transient(e.clone())),
                    None => {
                        relay::deliver(
                            &self.relay,
                            &self.pool,
                            &self.cfg.server.hostname,
                            self.cfg.outbound.timeout,
                            &job.mail_from,
                            &job.rcpt_to,
                            &bytes,
                        )
                        .await
                    }
                },
                Err(e) => Err(e),
            },
            Ok(None) => Err(DeliveryError::Permanent(format!(
                "message {seq} is missing from the store"
            ))),
            Err(e) => {
                // Our own trouble, not the message's: leave the job as it is.
                tracing::error!(error = %e, message = seq, "cannot load the message to send");
                return None;
            }
        };
        let now = self.clock.now();
        let mut result = result;
        // Who took it and how, kept with the outcome; the selector is ours.
        let selector = match &self.dkim {
            Ok(Some(signer)) => Some(signer.selector().to_string()),
            _ => None,
        };
        let evidence: Vec<DeliveryEvidence> = match &mut result {
            Ok(accepted) => std::mem::take(&mut accepted.evidence)
                .into_iter()
                .map(|mut e| {
                    e.at = now;
                    e.dkim_selector = selector.clone();
                    e
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let outcome = outcome(&job, result, now, &self.cfg.outbound);
        match &outcome {
            Outcome::Delivered | Outcome::Partial { .. } => {
                crate::counters::OUTBOUND_DELIVERED.inc()
            }
            Outcome::Retry { .. } => crate::counters::OUTBOUND_DEFERRED.inc(),
            Outcome::Failed(_) => crate::counters::OUTBOUND_FAILED.inc(),
        }
        match &outcome {
            Outcome::Delivered => tracing::info!(rcpt = ?job.rcpt_to, "delivered"),
            Outcome::Partial { failed, later } => tracing::warn!(
                rcpt = ?job.rcpt_to,
                refused = ?failed,
                retry = ?later.as_ref().map(|l| &l.rcpts),
                "delivered, but some recipients were refused"
            ),
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
        Some(Attempted {
            job: job.id,
            attempts: job.attempts,
            outcome,
            evidence,
            at: now,
        })
    }

    /// Records the outcomes of finished attempts in one write transaction,
    /// not fsynced on its own: after a crash those jobs are simply still
    /// queued and sent again (at-least-once), never lost. None if the store
    /// refused the write; else the mark to follow it to durability.
    async fn record_all(self: &Arc<Self>, batch: Vec<Attempted>) -> Option<LazyMark> {
        if batch.is_empty() {
            return None;
        }
        let ctx = self.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            ctx.store.write_lazy_marked(|tx| {
                for a in &batch {
                    ctx.record(tx, a)?;
                }
                Ok(())
            })
        })
        .await;
        match recorded {
            Ok(Ok(((), mark))) => Some(mark),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot record delivery results");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record delivery results");
                None
            }
        }
    }

    /// Applies an outcome to the job as it is now in the store, with its
    /// ticket event. Only once: a job that is gone or has counted another
    /// attempt since already holds this result (recording it again after
    /// the store was reopened is then a no-op).
    fn record(&self, tx: &mut Tx<'_>, attempted: &Attempted) -> store::Result<()> {
        let (id, outcome, now) = (attempted.job, &attempted.outcome, attempted.at);
        let Some(mut job) = tx.job(id)? else {
            return Ok(());
        };
        if job.attempts != attempted.attempts {
            return Ok(());
        }
        let via = match self.relay {
            // Direct delivery names the hosts that took the message.
            Relay::Mx => mx_hosts(&attempted.evidence),
            _ => relay::describe(&self.relay),
        };
        if matches!(outcome, Outcome::Delivered | Outcome::Partial { .. }) {
            tx.add_delivery_evidence(job.message, &attempted.evidence)?;
        }
        // Recipients that will never get the message, and why.
        let refused: Vec<(String, String)> = match outcome {
            Outcome::Failed(error) => job
                .rcpt_to
                .iter()
                .map(|r| (r.clone(), error.clone()))
                .collect(),
            Outcome::Partial { failed, .. } => failed.clone(),
            _ => Vec::new(),
        };
        let events: Vec<(EventKind, String)> =
            match outcome {
                Outcome::Delivered => {
                    tx.remove_job(id)?;
                    vec![(
                        EventKind::Delivered,
                        format!("to {} via {via}", job.rcpt_to.join(", ")),
                    )]
                }
                Outcome::Partial { failed, later } => {
                    let refused = |r: &String| {
                        failed.iter().any(|(f, _)| f == r)
                            || later.as_ref().is_some_and(|l| l.rcpts.contains(r))
                    };
                    let taken: Vec<&str> = job
                        .rcpt_to
                        .iter()
                        .filter(|r| !refused(r))
                        .map(String::as_str)
                        .collect();
                    let mut events = vec![(
                        EventKind::Delivered,
                        format!("to {} via {via}", taken.join(", ")),
                    )];
                    events.extend(failed.iter().map(|(rcpt, error)| {
                        (EventKind::DeliveryFailed, format!("{rcpt}: {error}"))
                    }));
                    match later {
                        // Only the recipients refused for now stay queued.
                        Some(l) => {
                            job.rcpt_to = l.rcpts.clone();
                            job.attempts = job.attempts.saturating_add(1);
                            job.next_attempt_at = l.next_attempt_at;
                            job.last_error = Some(l.error.clone());
                            tx.put_job(&job)?;
                        }
                        None => tx.remove_job(id)?,
                    }
                    events
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
                    vec![(
                        EventKind::DeliveryFailed,
                        format!("{}: {error}", job.rcpt_to.join(", ")),
                    )]
                }
            };
        let ticket = match job.ticket {
            Some(t) => tx.ticket(t)?,
            None => None,
        };
        match ticket {
            Some(mut ticket) => {
                // The customer's server took an agent's reply: the first
                // response, where the policy counts it from delivery.
                if matches!(outcome, Outcome::Delivered | Outcome::Partial { .. })
                    && ticket
                        .public_replies
                        .iter()
                        .any(|p| p.message == job.message)
                    && crate::sla::first_response_delivered(
                        &mut ticket,
                        &self.agents.rules.current().sla,
                        now,
                    )
                {
                    tracing::info!(
                        ticket = ticket.id,
                        message = job.message,
                        "first response delivered"
                    );
                }
                for (kind, detail) in events {
                    let e = Event::new(now, kind, "postdesk", detail).about(job.message);
                    tx.add_event(&mut ticket, e)?;
                }
                let requester = ticket.requester.clone();
                if let Some((_, error)) = refused
                    .iter()
                    .find(|(r, _)| r.eq_ignore_ascii_case(&requester))
                {
                    self.reply_refused(tx, &mut ticket, job.message, error, now)?;
                }
                tx.put_ticket(&ticket)?;
            }
            None => {
                for (_, detail) in events
                    .iter()
                    .filter(|(k, _)| *k == EventKind::DeliveryFailed)
                {
                    tracing::warn!(job = id, %detail, "undeliverable message without a ticket");
                }
            }
        }
        Ok(())
    }
}

impl Ctx {
    /// The customer's server refused message `seq` for good. If it is an
    /// agent's public reply, the customer never got it: the ticket says so,
    /// the agent is told by mail (with their text, so nothing is lost), and
    /// it no longer counts as the first response.
    fn reply_refused(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        seq: u64,
        error: &str,
        now: i64,
    ) -> store::Result<()> {
        let Some(pos) = ticket.public_replies.iter().position(|p| p.message == seq) else {
            return Ok(());
        };
        let author = ticket.public_replies[pos].agent.clone();
        let later = ticket.public_replies.get(pos + 1).map(|p| p.message);
        let record = tx.message(seq)?;
        let sent_at = record.as_ref().map(|m| m.date);
        let next_at = match later {
            Some(m) => tx.message(m)?.map(|m| m.date),
            None => None,
        };
        let rules = self.agents.rules.current();
        // Only the reply that met the first response takes it back.
        let sla_undone = ticket
            .sla
            .as_ref()
            .is_some_and(|s| s.first_response_at.is_some() && s.first_response_at == sent_at)
            && crate::sla::first_response_refused(
                tx,
                ticket,
                &rules.sla,
                &rules.calendars,
                next_at,
                now,
            )?;
        let agent = rules.agents.by_name(&author);
        let told = match agent {
            Some(agent) => {
                let text = record.as_ref().map_or("", |m| m.text.as_str());
                let quoted: String = text.lines().map(|l| format!("> {l}\n")).collect();
                let body = format!(
                    "Your reply on ticket #{id} ({subject}) was not delivered to {to}.\n\
                     Their mail server refused it for good:\n\n  {error}\n\n\
                     The customer has not received it{sla}. Check the address, or reach the \
                     customer another way.\n\nYour reply was:\n\n{quoted}",
                    id = ticket.id,
                    subject = ticket.subject,
                    to = ticket.requester,
                    sla = if sla_undone {
                        ", and it does not count as the ticket's first response"
                    } else {
                        ""
                    },
                );
                let mail = crate::outbound::compose::AgentMail::answerable(
                    &self.cfg,
                    &self.agents.tokens,
                    ticket,
                    agent,
                    format!("Reply not delivered: [#{}] {}", ticket.id, ticket.subject),
                    body,
                    now,
                );
                crate::outbound::compose::queue_agent_mail(
                    tx,
                    &self.cfg,
                    &self.agents.tokens,
                    mail,
                    now,
                )?;
                format!("{author} was told")
            }
            None => format!("agent {author} is no longer known; nobody was told"),
        };
        tracing::warn!(
            ticket = ticket.id,
            message = seq,
            agent = %author,
            %error,
            "an agent's reply was refused by the customer's server"
        );
        tx.add_event(
            ticket,
            Event::new(
                now,
                EventKind::ReplyRefused,
                "postdesk",
                format!(
                    "reply by {author} (message {seq}) not delivered to {}: {error}; {told}{}",
                    ticket.requester,
                    if sla_undone {
                        "; first response no longer met"
                    } else {
                        ""
                    }
                ),
            )
            .about(seq),
        )
    }
}

/// `mx1.example.net [192.0.2.1] (TLSv1.3, verified)`, for each host.
fn mx_hosts(evidence: &[DeliveryEvidence]) -> String {
    evidence
        .iter()
        .map(|e| {
            let ip =
                e.ip.as_deref()
                    .map(|ip| format!(" [{ip}]"))
                    .unwrap_or_default();
            let tls = match &e.tls {
                Some(t) if t.verified => format!("{}, verified", t.version),
                Some(t) => format!("{}, not verified", t.version),
                None => "no TLS".into(),
            };
            format!("{}{ip} ({tls})", e.host)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A finished attempt waiting to be recorded.
#[derive(Debug, Clone)]
struct Attempted {
    job: u64,
    /// The job's attempt count when it was tried (see [`Ctx::record`]).
    attempts: u32,
    outcome: Outcome,
    /// Who accepted the message and how (empty unless delivered, in part or whole).
    evidence: Vec<DeliveryEvidence>,
    at: i64,
}

/// What to do with a job after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Taken for some recipients: `failed` (recipient, why) will never get
    /// it; `later` are tried again.
    Partial {
        failed: Vec<(String, String)>,
        later: Option<Later>,
    },
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    Failed(String),
}

/// Recipients refused for now, and when to try them again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Later {
    rcpts: Vec<String>,
    next_attempt_at: i64,
    error: String,
}

/// Decides the job's fate: transient failures are retried with backoff until
/// the job is `lifetime` old, then given up like permanent ones.
fn outcome(
    job: &OutboundJob,
    result: Result<relay::Accepted, DeliveryError>,
    now: i64,
    cfg: &OutboundConfig,
) -> Outcome {
    match result {
        Ok(accepted) if accepted.refused.is_empty() => Outcome::Delivered,
        Ok(accepted) => {
            let attempts = job.attempts.saturating_add(1);
            let next = next_attempt(job.created_at, attempts, now, cfg);
            let mut failed = Vec::new();
            let mut later: Option<Later> = None;
            for (rcpt, e) in accepted.refused {
                match (e, next) {
                    (DeliveryError::Permanent(t), _) => failed.push((rcpt, t)),
                    (DeliveryError::Transient(t), None) => failed.push((
                        rcpt,
                        format!(
                            "gave up after {attempts} attempts over {}: {t}",
                            human_duration(now - job.created_at)
                        ),
                    )),
                    (DeliveryError::Transient(t), Some(at)) => match &mut later {
                        Some(l) => l.rcpts.push(rcpt),
                        None => {
                            later = Some(Later {
                                rcpts: vec![rcpt],
                                next_attempt_at: at,
                                error: t,
                            })
                        }
                    },
                }
            }
            Outcome::Partial { failed, later }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, Ticket};
    use crate::outbound::queue;
    use crate::outbound::testutil::{Script, Server, tempdir};
    use std::path::{Path, PathBuf};

    fn config(relay: &str) -> Config {
        let text = format!(
            r#"
[server]
hostname = "support.example.test"

[[mailbox]]
address = "support@example.test"

[outbound]
relay = "{relay}"
from = "Example Support <support@example.test>"
lifetime = "1d"
retry_initial = "60s"
retry_max = "1h"
timeout = "5s"

[web]
api_token = "t"
"#
        );
        Config::from_str(&text, Path::new("/tmp/x/config.toml")).unwrap()
    }

    fn job(created_at: i64, attempts: u32) -> OutboundJob {
        OutboundJob {
            id: 1,
            message: 1,
            ticket: None,
            mail_from: "a@x.test".into(),
            rcpt_to: vec!["b@y.test".into()],
            created_at,
            attempts,
            next_attempt_at: created_at,
            last_error: None,
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let (i, m) = (Duration::from_secs(60), Duration::from_secs(3600));
        let got: Vec<u64> = (1..=8).map(|a| backoff(a, i, m).as_secs()).collect();
        assert_eq!(got, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(0, i, m).as_secs(), 60);
        assert_eq!(backoff(u32::MAX, i, m).as_secs(), 3600);
    }

    #[test]
    fn transient_failures_retry_until_lifetime_then_fail() {
        let cfg = config("maildir:/tmp/x").outbound;
        let t0 = 1_000_000;
        let err = || Err(DeliveryError::Transient("451 later".into()));
        assert_eq!(
            outcome(&job(t0, 0), err(), t0, &cfg),
            Outcome::Retry {
                next_attempt_at: t0 + 60,
                error: "451 later".into()
            }
        );
        assert_eq!(
            outcome(&job(t0, 2), err(), t0 + 500, &cfg),
            Outcome::Retry {
                next_attempt_at: t0 + 500 + 240,
                error: "451 later".into()
            }
        );
        // The last retry is pulled in to the end of the lifetime...
        let late = t0 + 86400 - 100;
        assert_eq!(
            outcome(&job(t0, 20), err(), late, &cfg),
            Outcome::Retry {
                next_attempt_at: t0 + 86400,
                error: "451 later".into()
            }
        );
        // ...and failing then gives up.
        match outcome(&job(t0, 21), err(), t0 + 86400, &cfg) {
            Outcome::Failed(e) => {
                assert!(
                    e.starts_with("gave up after 22 attempts over 1d0h: 451 later"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        let perm = Err(DeliveryError::Permanent("550 no".into()));
        assert_eq!(
            outcome(&job(t0, 0), perm, t0, &cfg),
            Outcome::Failed("550 no".into())
        );
        assert_eq!(
            outcome(&job(t0, 0), Ok(relay::Accepted::default()), t0, &cfg),
            Outcome::Delivered
        );
    }

    const RAW: &[u8] =
        b"From: support@example.test\r\nTo: alice@example.net\r\nSubject: hi\r\n\r\nhello\r\n";

    /// A store with ticket 1 and one job for it; returns the job id.
    fn setup(dir: &Path, now: i64) -> (Store, u64) {
        setup_for(dir, now, &["alice@example.net"])
    }

    fn setup_for(dir: &Path, now: i64, rcpts: &[&str]) -> (Store, u64) {
        let store = Store::open(dir).unwrap();
        let id = store
            .write(|tx| {
                tx.put_ticket(&Ticket {
                    subject: "printer".into(),
                    status: Status::Open,
                    participants: ["alice@example.net".to_string()].into(),
                    message_count: 1,
                    ..Ticket::new(1, "alice@example.net", now)
                })?;
                tx.put_raw(7, RAW)?;
                queue::enqueue(
                    tx,
                    7,
                    Some(1),
                    "support+b1@example.test".into(),
                    rcpts.iter().map(|r| r.to_string()).collect(),
                    now,
                )
            })
            .unwrap();
        (store, id)
    }

    struct Running {
        shutdown: watch::Sender<bool>,
        wake: Arc<Notify>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(cfg: Config, store: &Store, clock: &Clock) -> Running {
        let (tx, rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            Arc::new(cfg),
            store.clone(),
            clock.clone(),
            wake.clone(),
            rx,
            Agents {
                rules: Arc::new(crate::rules::LiveRules::new(Default::default())),
                tokens: crate::token::Tokens::new(b"k"),
            },
        ));
        Running {
            shutdown: tx,
            wake,
            task,
        }
    }

    impl Running {
        async fn stop(self) {
            self.shutdown.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(10), self.task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// Polls until `f` holds (the sender works in the background).
    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn events(store: &Store) -> Vec<(String, String)> {
        store
            .ticket_events(1)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.detail))
            .collect()
    }

    fn maildir_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir.join("new"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn delivers_to_maildir_and_records_event() {
        let dir = tempdir("sender-maildir");
        let outbox = dir.join("outbox");
        let clock = Clock::system();
        let (store, id) = setup(&dir.join("data"), clock.now());
        let running = start(
            config(&format!("maildir:{}", outbox.display())),
            &store,
            &clock,
        );

        until("the job to go", || store.outbound_len().unwrap() == 0).await;
        running.stop().await;

        let files = maildir_files(&outbox);
        assert_eq!(files.len(), 1);
        let got = std::fs::read(&files[0]).unwrap();
        assert!(got.ends_with(RAW));
        assert!(got.starts_with(b"Return-Path: <support+b1@example.test>\r\n"));
        assert!(store.write(|tx| tx.job(id)).unwrap().is_none());
        assert_eq!(
            events(&store),
            [(
                "delivered".to_string(),
                format!("to alice@example.net via maildir:{}", outbox.display())
            )]
        );
        assert_eq!(store.ticket(1).unwrap().unwrap().next_event, 1);
    }

    #[tokio::test]
    async fn permanent_rejection_removes_job_with_event() {
        let server = Server::start(Script {
            rcpt: "550 5.1.1 No such user",
            ..Script::default()
        })
        .await;
        let dir = tempdir("sender-550");
        let clock = Clock::system();
        let (store, _) = setup(&dir, clock.now());
        let running = start(config(&format!("smtp://{}", server.addr)), &store, &clock);

        until("the job to go", || store.outbound_len().unwrap() == 0).await;
        running.stop().await;
        assert_eq!(
            events(&store),
            [(
                "delivery_failed".to_string(),
                "alice@example.net: RCPT TO:<alice@example.net>: 550 5.1.1 No such user"
                    .to_string()
            )]
        );
    }

    #[tokio::test]
    async fn refused_recipients_are_split_off_and_the_rest_delivered() {
        let server = Server::start(Script {
            rcpt_for: vec![
                ("bob@example.net", "550 5.1.1 No such user"),
                ("carol@example.net", "452 4.2.2 Mailbox full"),
            ],
            ..Script::default()
        })
        .await;
        let dir = tempdir("sender-partial");
        let clock = Clock::system();
        let (store, _) = setup_for(
            &dir,
            clock.now(),
            &["alice@example.net", "bob@example.net", "carol@example.net"],
        );
        let running = start(config(&format!("smtp://{}", server.addr)), &store, &clock);
        until("the first attempt recorded", || events(&store).len() == 2).await;
        running.stop().await;
        let ev = events(&store);
        assert_eq!(ev[0].0, "delivered");
        assert!(
            ev[0].1.starts_with("to alice@example.net via smtp://"),
            "{ev:?}"
        );
        assert_eq!(
            ev[1],
            (
                "delivery_failed".to_string(),
                "bob@example.net: RCPT TO:<bob@example.net>: 550 5.1.1 No such user".to_string()
            )
        );
        // Only carol, refused for now, stays queued for a later attempt.
        let jobs = store.due_jobs(i64::MAX, 10).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].rcpt_to, ["carol@example.net"]);
        assert_eq!(jobs[0].attempts, 1);
        assert!(
            jobs[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("452 4.2.2")),
            "{:?}",
            jobs[0].last_error
        );
        assert_eq!(server.session(0).await.data.as_deref(), Some(RAW));
    }

    #[tokio::test]
    async fn temporary_failure_retries_with_backoff_until_lifetime() {
        let server = Server::start(Script {
            rcpt: "451 4.7.1 Greylisted, try again later",
            ..Script::default()
        })
        .await;
        let dir = tempdir("sender-451");
        let clock = Clock::system();
        let t0 = clock.now();
        let (store, id) = setup(&dir, t0);
        let running = start(config(&format!("smtp://{}", server.addr)), &store, &clock);
        let job = || store.write(|tx| tx.job(id)).unwrap();

        until("the first attempt", || {
            job().is_some_and(|j| j.attempts == 1)
        })
        .await;
        let j = job().unwrap();
        assert!(
            j.next_attempt_at >= t0 + 60 && j.next_attempt_at <= clock.now() + 60,
            "{j:?}"
        );
        assert_eq!(
            j.last_error.as_deref(),
            Some("RCPT TO:<alice@example.net>: 451 4.7.1 Greylisted, try again later")
        );
        assert!(events(&store).is_empty());
        // Not retried before it is due.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(job().unwrap().attempts, 1);

        // Time passes: the second attempt comes 60 s later, the third 120 s after that.
        clock.advance(61);
        running.wake.notify_one();
        until("the second attempt", || {
            job().is_some_and(|j| j.attempts == 2)
        })
        .await;
        let j = job().unwrap();
        assert!(j.next_attempt_at >= clock.now() + 119, "{j:?}");

        // Past the lifetime (1 day) the next failure is final.
        clock.advance(86400);
        running.wake.notify_one();
        until("the job to be given up", || job().is_none()).await;
        running.stop().await;
        let ev = events(&store);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].0, "delivery_failed");
        assert!(ev[0].1.contains("gave up after 3 attempts"), "{ev:?}");
        assert!(ev[0].1.contains("451 4.7.1 Greylisted"), "{ev:?}");
        assert_eq!(server.session(2).await.rcpt_to.len(), 1);
    }

    #[tokio::test]
    async fn missing_raw_message_is_a_permanent_failure() {
        let dir = tempdir("sender-noraw");
        let clock = Clock::system();
        let (store, _) = setup(&dir.join("data"), clock.now());
        store.write(|tx| tx.remove_raw(7)).unwrap();
        let running = start(
            config(&format!("maildir:{}", dir.join("outbox").display())),
            &store,
            &clock,
        );
        until("the job to go", || store.outbound_len().unwrap() == 0).await;
        running.stop().await;
        assert_eq!(
            events(&store),
            [(
                "delivery_failed".to_string(),
                "alice@example.net: message 7 is missing from the store".to_string()
            )]
        );
        assert!(maildir_files(&dir.join("outbox")).is_empty());
    }

    #[tokio::test]
    async fn shutdown_waits_for_deliveries_in_flight() {
        // A server that never answers: the attempt runs until the 5 s timeout
        // unless shutdown abandons it; shutdown must wait and record it.
        let server = Server::start(Script {
            mute: true,
            ..Script::default()
        })
        .await;
        let dir = tempdir("sender-shutdown");
        let clock = Clock::system();
        let (store, id) = setup(&dir, clock.now());
        let mut cfg = config(&format!("smtp://{}", server.addr));
        cfg.outbound.timeout = Duration::from_millis(500);
        let running = start(cfg, &store, &clock);
        until("the attempt to connect", || {
            server.accepted.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await;
        running.stop().await;
        let j = store.write(|tx| tx.job(id)).unwrap().unwrap();
        assert_eq!(j.attempts, 1, "{j:?}");
        assert!(j.last_error.is_some());
    }
}
