//! IMAP intake: polls existing mailboxes and feeds their mail into the same
//! durable spool as SMTP, exactly once.
//!
//! One poller task per (account, folder), so one folder is never fetched twice
//! at once and one failing account never stops another. Each poller:
//!
//! 1. connects (TLS, STARTTLS or — on loopback only — plain) and logs in;
//! 2. SELECTs the folder and compares UIDVALIDITY with the stored cursor;
//! 3. finishes the `after` action (seen/move/delete) for messages that were
//!    stored before a crash but not yet flagged (the UIDs the store lists as
//!    `unacted`: only ones whose bodies were committed);
//! 4. takes new mail in batches of `batch_size` UIDs above `last_uid`: sizes
//!    and arrival dates first (`RFC822.SIZE INTERNALDATE`), then `BODY.PEEK[]`
//!    of the ones within the limit;
//!    each batch is committed together with the folder's new cursor in one
//!    spool transaction ([`Spool::submit_imap`]); too-large messages become
//!    quarantine entries in that same transaction;
//! 5. only after the commit applies the `after` action on the server;
//! 6. waits in IDLE when the server has it (new mail in about a second),
//!    else sleeps `poll_interval`; any error reconnects with exponential
//!    backoff (1 s doubling to 5 min).
//!
//! # Exactly once
//! The cursor `(uidvalidity, last_uid)` moves in the transaction that stores
//! the messages, so a crash either left both or neither: a restart fetches
//! exactly the UIDs above `last_uid`. The `after` action happens after the
//! commit, so a crash in between leaves stored-but-unflagged messages; they
//! are at or below `last_uid` and are never fetched again, only flagged,
//! moved or deleted on the next connect (step 3). The commit names the UIDs
//! it stored, and only those are ever acted on: a UID that was quarantined,
//! vanished, came back without a body or was skipped as history stays as
//! it is on the server.
//!
//! # UIDVALIDITY
//! When a folder's UIDVALIDITY changes (the folder was deleted and recreated,
//! or the server rebuilt its index) its old UIDs mean nothing: the poller
//! starts the folder over from UID 1 and relies on the processor's dedup
//! (Message-ID, else SHA-256 of the bytes) to drop what it already has. This
//! re-downloads the folder once, but never creates a second ticket.
//! Under `existing = "skip"` the history was never stored, so dedup cannot
//! drop it: the re-read leaves alone every UID (up to the newest at the
//! change) whose INTERNALDATE is before the folder's first sighting, which
//! the folder state keeps across UIDVALIDITY changes. And whatever the mode,
//! mail dated before the first sighting is never acknowledged (see
//! `process::classify::dated_before_mailbox_added`).

pub mod conn;

use crate::clock::Clock;
use crate::config::{Config, ImapAfter, ImapConfig, ImapExisting};
use crate::model::{
    Envelope, ImapCommit, ImapCursor, ImapDates, ImapFolderState, QuarantineEntry, Source,
    SystemMail,
};
use crate::outbound::compose;
use crate::spool::{Spool, SpoolError};
use crate::store::{Store, StoreError};
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{Response, Status};
use conn::ImapSession;
use futures_util::{FutureExt, TryStreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

/// First reconnect delay; doubles per failed attempt.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Re-issue IDLE this often: servers may drop an IDLE after 30 minutes (RFC 2177).
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
/// Longest wait for one IMAP command (or connect + login) before the
/// connection is given up as dead.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Most message bytes fetched in one round trip (and committed in one group);
/// a batch always takes at least one message.
const MAX_FETCH_BYTES: u64 = 64 * 1024 * 1024;
/// How long a session may go on after shutdown to finish the batch in hand
/// (commit, then flag); after that it is dropped, which is safe: the cursor
/// commit and the flagging are each atomic and the flagging is caught up later.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Most UIDs in one STORE/MOVE/SEARCH command during catch-up.
const ACTION_CHUNK: usize = 1000;

/// Why a poller lost its session. Every variant leads to a reconnect with
/// backoff; they are kept apart so logs and the health API say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("authentication: {0}")]
    Auth(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
    #[error("server sent something unusable: {0}")]
    Unexpected(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
}

/// What the health API shows for one polled folder.
#[derive(Debug, Clone, Serialize)]
pub struct ImapStatus {
    pub account: String,
    pub folder: String,
    pub connected: bool,
    /// Unix seconds of the last completed poll.
    pub last_poll: Option<i64>,
    pub last_error: Option<String>,
    /// Messages committed to the spool by this poller since start.
    pub messages_ingested: u64,
}

/// Shared, lock-protected status of every poller. Pollers write it, the API
/// reads snapshots; cheap to clone.
#[derive(Clone, Default)]
pub struct ImapRegistry {
    inner: Arc<Mutex<Vec<ImapStatus>>>,
}

impl ImapRegistry {
    fn add(&self, account: String, folder: String) -> usize {
        let mut v = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        v.push(ImapStatus {
            account,
            folder,
            connected: false,
            last_poll: None,
            last_error: None,
            messages_ingested: 0,
        });
        v.len() - 1
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut ImapStatus)) {
        let mut v = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = v.get_mut(i) {
            f(s);
        }
    }

    /// A copy of every poller's status, in config order.
    pub fn snapshot(&self) -> Vec<ImapStatus> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Starts one poller per configured (account, folder). They stop when
/// `shutdown` turns true: the batch in progress is committed and flagged,
/// no new fetch starts.
pub fn start(
    cfg: &Arc<Config>,
    store: &Store,
    spool: &Spool,
    clock: &Clock,
    registry: &ImapRegistry,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for account in &cfg.imap {
        for folder in &account.folders {
            let name = account.name();
            let slot = registry.add(name.clone(), folder.clone());
            let poller = Poller {
                key: account.cursor_key(folder),
                max_size: cfg.imap_max_message_size(account),
                account: account.clone(),
                folder: folder.clone(),
                name,
                base_dir: cfg.base_dir.clone(),
                store: store.clone(),
                spool: spool.clone(),
                clock: clock.clone(),
                registry: registry.clone(),
                slot,
                crash_after_commit: std::env::var_os("POSTDESK_IMAP_CRASH_AFTER_COMMIT").is_some(),
                admin_address: cfg.server.admin_address.clone(),
                from: cfg.from_address().to_string(),
                hostname: cfg.server.hostname.clone(),
            };
            tasks.push(tokio::spawn(poller.run(shutdown.clone())));
        }
    }
    tasks
}

/// One (account, folder): owns its connection and its cursor.
struct Poller {
    account: ImapConfig,
    folder: String,
    name: String,
    /// Cursor table key, see `ImapConfig::cursor_key`.
    key: String,
    max_size: u64,
    base_dir: PathBuf,
    store: Store,
    spool: Spool,
    clock: Clock,
    registry: ImapRegistry,
    slot: usize,
    /// Test failpoint (env `POSTDESK_IMAP_CRASH_AFTER_COMMIT`): abort the
    /// process right after a batch is committed and before the server is
    /// told, the exact crash window exactly-once has to survive.
    crash_after_commit: bool,
    /// Where quarantine notices go (`server.admin_address`).
    admin_address: Option<String>,
    /// Our sender address and host name, for those notices.
    from: String,
    hostname: String,
}

/// What the server can do, read once per connection.
struct Caps {
    idle: bool,
    mv: bool,
    uidplus: bool,
}

/// Runs an IMAP step with [`COMMAND_TIMEOUT`].
async fn t<T, E: Into<ImapError>>(
    what: &'static str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(ImapError::Timeout(what)),
    }
}

/// Reads a response stream to its end, each item within [`COMMAND_TIMEOUT`].
async fn collect<T>(
    what: &'static str,
    stream: impl futures_util::Stream<Item = Result<T, async_imap::error::Error>>,
) -> Result<Vec<T>, ImapError> {
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(COMMAND_TIMEOUT, stream.try_next()).await {
            Err(_) => return Err(ImapError::Timeout(what)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(None)) => return Ok(out),
            Ok(Ok(Some(item))) => out.push(item),
        }
    }
}

impl Poller {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_START;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let mut healthy = false;
            let outcome = {
                let mut stop = shutdown.clone();
                let session =
                    std::panic::AssertUnwindSafe(self.session(&mut shutdown, &mut healthy))
                        .catch_unwind();
                tokio::pin!(session);
                tokio::select! {
                    r = &mut session => r,
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                        match tokio::time::timeout(SHUTDOWN_GRACE, &mut session).await {
                            Ok(r) => r,
                            Err(_) => {
                                warn!(account = %self.name, folder = %self.folder,
                                    "IMAP session still busy at shutdown; dropped");
                                Ok(Ok(()))
                            }
                        }
                    }
                }
            };
            // A panic inside the IMAP client (on a malformed server reply) ends
            // this session only; the poller reconnects like after any error.
            let result = outcome.unwrap_or_else(|_| {
                Err(ImapError::Unexpected(
                    "the IMAP client panicked on a server reply".into(),
                ))
            });
            self.registry.update(self.slot, |s| s.connected = false);
            match result {
                Ok(()) => break,
                Err(e) => {
                    if healthy {
                        backoff = BACKOFF_START;
                    }
                    warn!(account = %self.name, folder = %self.folder, error = %e,
                        retry_in = ?backoff, "IMAP session ended");
                    let msg = e.to_string();
                    self.registry
                        .update(self.slot, |s| s.last_error = Some(msg));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        debug!(account = %self.name, folder = %self.folder, "IMAP poller stopped");
    }

    /// One connection: poll, wait, poll… until shutdown (Ok) or an error.
    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        healthy: &mut bool,
    ) -> Result<(), ImapError> {
        let mut session = match tokio::time::timeout(
            COMMAND_TIMEOUT,
            conn::connect(&self.account, &self.base_dir),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return Err(ImapError::Timeout("connect and login")),
        };
        let caps = t("CAPABILITY", session.capabilities()).await?;
        let caps = Caps {
            idle: caps.has_str("IDLE"),
            mv: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        };
        let mailbox = t("SELECT", session.select(&self.folder)).await?;
        let uidvalidity = mailbox
            .uid_validity
            .ok_or_else(|| ImapError::Unexpected("SELECT without UIDVALIDITY".into()))?;
        self.registry.update(self.slot, |s| {
            s.connected = true;
            s.last_error = None;
        });
        info!(account = %self.name, folder = %self.folder, uidvalidity,
            idle = caps.idle, "IMAP connected");
        let skip = self.account.existing == ImapExisting::Skip;
        // Under "skip", the newest UID there is now: where history ends.
        let newest = if skip {
            // UIDNEXT - 1 is the newest UID there is; without UIDNEXT, ask.
            match mailbox.uid_next {
                Some(next) => next.saturating_sub(1),
                None => t("UID SEARCH", session.uid_search("ALL"))
                    .await?
                    .into_iter()
                    .max()
                    .unwrap_or(0),
            }
        } else {
            0
        };
        let now = self.clock.now();
        if skip && self.state().await?.is_none() {
            let key = self.key.clone();
            let started = self
                .blocking(move |store| store.start_imap_cursor_at(&key, uidvalidity, newest, now))
                .await?;
            if started {
                info!(account = %self.name, folder = %self.folder, up_to_uid = newest,
                    "first poll: existing mail left alone (existing = \"skip\"); only new mail is taken");
            }
        }
        // Before check_uidvalidity: a first sighting is never made up for a
        // folder that changed while postdesk was away.
        let key = self.key.clone();
        let first_seen = self
            .blocking(move |store| store.imap_first_seen(&key, uidvalidity, now))
            .await?;
        self.check_uidvalidity(uidvalidity, newest, first_seen)
            .await?;
        loop {
            let span = info_span!("imap.poll", account = %self.name, folder = %self.folder);
            self.poll(&mut session, &caps, uidvalidity, shutdown)
                .instrument(span)
                .await?;
            *healthy = true;
            let now = self.clock.now();
            self.registry.update(self.slot, |s| {
                s.last_poll = Some(now);
                s.last_error = None;
            });
            drain_unsolicited(&session);
            if *shutdown.borrow() {
                break;
            }
            if caps.idle {
                session = self.idle(session, shutdown).await?;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(self.account.poll_interval) => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
                // NOOP lets the server tell us about new mail before we ask for it.
                t("NOOP", session.noop()).await?;
            }
            if *shutdown.borrow() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
        Ok(())
    }

    /// Waits in IDLE until the server reports something, [`IDLE_RENEW`]
    /// passes, or shutdown; returns the session out of IDLE.
    async fn idle(
        &self,
        session: ImapSession,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<ImapSession, ImapError> {
        let mut handle = session.idle();
        t("IDLE", handle.init()).await?;
        let outcome = {
            // The inner timeout is only a backstop: keepalives reset it.
            let (wait, _stop) = handle.wait_with_timeout(IDLE_RENEW + Duration::from_secs(60));
            tokio::pin!(wait);
            tokio::select! {
                r = &mut wait => Some(r),
                _ = tokio::time::sleep(IDLE_RENEW) => None,
                _ = shutdown.wait_for(|s| *s) => None,
            }
        };
        match outcome {
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(IdleResponse::NewData(data))) => {
                debug!(folder = %self.folder, response = ?data, "IDLE woke up");
                // An untagged NO/BAD/BYE in IDLE means the selected folder is
                // gone or broken (Dovecot says so when it is deleted): start
                // over with a fresh SELECT, which also notices a new UIDVALIDITY,
                // instead of polling a dead selection in a tight loop.
                if let Response::Data {
                    status: status @ (Status::No | Status::Bad | Status::Bye),
                    outcome,
                } = data.parsed()
                {
                    return Err(ImapError::Unexpected(format!(
                        "{status:?} during IDLE: {}",
                        outcome.information.as_deref().unwrap_or("")
                    )));
                }
            }
            Some(Ok(_)) | None => {}
        }
        // A closed connection also ends the wait; DONE then fails and we reconnect.
        t("DONE", handle.done()).await
    }

    /// Loads the folder's cursor; a changed UIDVALIDITY starts the folder
    /// over. Under `existing = "skip"` the re-read still leaves the history
    /// alone: UIDs up to `newest` that arrived before `first_seen`.
    async fn check_uidvalidity(
        &self,
        uidvalidity: u32,
        newest: u32,
        first_seen: i64,
    ) -> Result<(), ImapError> {
        let state = self.state().await?;
        match state {
            Some(s) if s.uidvalidity == uidvalidity => Ok(()),
            Some(s) => {
                warn!(account = %self.name, folder = %self.folder, old = s.uidvalidity,
                    new = uidvalidity,
                    "UIDVALIDITY changed: re-reading the folder; duplicates are dropped by Message-ID/content dedup");
                let history_upto = if self.account.existing == ImapExisting::Skip {
                    if first_seen == 0 {
                        warn!(account = %self.name, folder = %self.folder,
                            "the folder's first sighting is unknown (recorded only since this version): its history cannot be told apart and is re-read");
                    }
                    newest
                } else {
                    0
                };
                self.blocking({
                    let key = self.key.clone();
                    move |store| store.reset_imap_state(&key, uidvalidity, history_upto)
                })
                .await
            }
            None => Ok(()),
        }
    }

    async fn state(&self) -> Result<Option<ImapFolderState>, ImapError> {
        let key = self.key.clone();
        self.blocking(move |store| store.imap_state(&key)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ImapError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ImapError::Unexpected(format!("store task failed: {e}")))?
            .map_err(ImapError::from)
    }

    /// Catches up pending `after` actions, then takes every new message, batch
    /// by batch, until the folder has nothing above the cursor.
    async fn poll(
        &self,
        session: &mut ImapSession,
        caps: &Caps,
        uidvalidity: u32,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), ImapError> {
        let state = self.state().await?.unwrap_or(ImapFolderState {
            uidvalidity,
            ..ImapFolderState::default()
        });
        if state.uidvalidity == uidvalidity && state.acted_uid < state.last_uid {
            self.catch_up(session, caps, uidvalidity, &state).await?;
        }
        let same = state.uidvalidity == uidvalidity;
        let selected = Selected {
            uidvalidity,
            first_seen: state.first_seen,
            history_upto: if same { state.history_upto } else { 0 },
        };
        let mut last_uid = if same { state.last_uid } else { 0 };
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let query = format!("UID {}:*", u64::from(last_uid) + 1);
            let found = t("UID SEARCH", session.uid_search(&query)).await?;
            // `n:*` includes the highest UID even when it is below n.
            let mut new: Vec<u32> = found.into_iter().filter(|u| *u > last_uid).collect();
            if new.is_empty() {
                return Ok(());
            }
            new.sort_unstable();
            // One SEARCH, then every batch of it: a backlog of 100,000 costs
            // one UID list in memory, never 100,000 bodies.
            for batch in new.chunks(self.account.batch_size.max(1) as usize) {
                if *shutdown.borrow() {
                    return Ok(());
                }
                let meta = self.meta(session, batch).await?;
                let mut start = 0;
                while start < batch.len() {
                    // Bound the bytes in flight: stop a group before MAX_FETCH_BYTES.
                    let mut end = start;
                    let mut bytes = 0u64;
                    while end < batch.len() {
                        let size = meta.get(&batch[end]).map_or(0, |m| m.size);
                        let counted = if size > self.max_size { 0 } else { size };
                        if end > start && bytes + counted > MAX_FETCH_BYTES {
                            break;
                        }
                        bytes += counted;
                        end += 1;
                    }
                    self.take(session, caps, &selected, &batch[start..end], &meta)
                        .await?;
                    last_uid = batch[end - 1];
                    start = end;
                }
            }
        }
    }

    /// `UID FETCH set (UID RFC822.SIZE INTERNALDATE)`: sizes and arrival
    /// dates before any body is downloaded (one round trip for both).
    async fn meta(
        &self,
        session: &mut ImapSession,
        uids: &[u32],
    ) -> Result<BTreeMap<u32, UidMeta>, ImapError> {
        let mut out = BTreeMap::new();
        let set = uid_set(uids);
        let what = "UID FETCH RFC822.SIZE INTERNALDATE";
        let stream = t(
            what,
            session.uid_fetch(&set, "(UID RFC822.SIZE INTERNALDATE)"),
        )
        .await?;
        for f in collect(what, stream).await? {
            if let (Some(uid), Some(size)) = (f.uid, f.size) {
                let internal_date = f.internal_date().map(|d| d.timestamp());
                out.insert(
                    uid,
                    UidMeta {
                        size: u64::from(size),
                        internal_date,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Fetches, commits (with the cursor at the group's last UID) and then
    /// applies the `after` action to the group's stored UIDs.
    async fn take(
        &self,
        session: &mut ImapSession,
        caps: &Caps,
        selected: &Selected,
        uids: &[u32],
        meta: &BTreeMap<u32, UidMeta>,
    ) -> Result<(), ImapError> {
        let Some(&last) = uids.last() else {
            return Ok(());
        };
        let uidvalidity = selected.uidvalidity;
        let now = self.clock.now();
        let (history, rest): (Vec<u32>, Vec<u32>) = uids
            .iter()
            .partition(|&&uid| selected.is_history(uid, meta.get(&uid)));
        if !history.is_empty() {
            info!(
                messages = history.len(),
                first_seen = selected.first_seen,
                "mail from before the folder was first seen left alone after the UIDVALIDITY change (existing = \"skip\")"
            );
        }
        let size = |uid: &u32| meta.get(uid).map(|m| m.size);
        let (too_big, wanted): (Vec<u32>, Vec<u32>) = rest
            .iter()
            .partition(|uid| size(uid).is_some_and(|s| s > self.max_size));
        let mut quarantine = Vec::with_capacity(too_big.len());
        let mut notices = Vec::new();
        if !too_big.is_empty() {
            // Only the header: enough to tell the postmaster which mail it is.
            let what = "UID FETCH BODY.PEEK[HEADER]";
            let stream = t(
                what,
                session.uid_fetch(uid_set(&too_big), "(UID BODY.PEEK[HEADER])"),
            )
            .await?;
            let headers: BTreeMap<u32, Vec<u8>> = collect(what, stream)
                .await?
                .iter()
                .filter_map(|f| Some((f.uid?, f.header().or(f.body())?.to_vec())))
                .collect();
            for &uid in &too_big {
                let size = size(&uid).unwrap_or_default();
                let (from, subject) = headers
                    .get(&uid)
                    .map(|h| crate::process::parse::header_summary(h))
                    .unwrap_or_default();
                warn!(uid, size, limit = self.max_size, %from, %subject,
                    "IMAP message above the size limit: quarantined, not fetched");
                let entry = QuarantineEntry {
                    message: 0,
                    at: now,
                    reason: format!(
                        "IMAP message {uid} in {} of {} is {size} bytes, above the limit of {} bytes; left on the server",
                        self.folder, self.name, self.max_size
                    ),
                    from,
                    subject,
                };
                if let Some(admin) = &self.admin_address {
                    notices.push(self.quarantine_notice(admin, uidvalidity, uid, &entry));
                }
                quarantine.push(entry);
            }
        }
        let mut bodies: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        if !wanted.is_empty() {
            let set = uid_set(&wanted);
            let what = "UID FETCH BODY.PEEK[]";
            let stream = t(what, session.uid_fetch(&set, "(UID BODY.PEEK[])")).await?;
            for f in collect(what, stream).await? {
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    bodies.insert(uid, body.to_vec());
                }
            }
        }
        let mut messages = Vec::with_capacity(bodies.len());
        let mut stored = Vec::with_capacity(bodies.len());
        for uid in &wanted {
            match bodies.remove(uid) {
                Some(raw) => {
                    let dates = ImapDates {
                        folder_first_seen: selected.first_seen,
                        internal_date: meta.get(uid).and_then(|m| m.internal_date),
                    };
                    messages.push((self.envelope(&raw, now, dates), raw));
                    stored.push(*uid);
                }
                // Expunged by another client between SEARCH and FETCH: nothing to take.
                None => warn!(uid, "message vanished before it could be fetched; skipped"),
            }
        }
        let count = messages.len() as u64;
        let commit = ImapCommit {
            cursor: ImapCursor {
                key: self.key.clone(),
                uidvalidity,
                uid: last,
                stored: stored.clone(),
            },
            quarantine,
            notices,
        };
        self.spool.submit_imap(messages, commit).await?;
        self.registry
            .update(self.slot, |s| s.messages_ingested += count);
        info!(messages = count, last_uid = last, "IMAP batch committed");
        if self.crash_after_commit {
            tracing::error!("failpoint POSTDESK_IMAP_CRASH_AFTER_COMMIT: aborting");
            std::process::abort();
        }
        // Only now, with the messages durable, may the server copy change.
        self.after(session, caps, &stored).await?;
        let key = self.key.clone();
        self.blocking(move |store| store.imap_acted(&key, uidvalidity, last))
            .await
    }

    /// Finishes the `after` action for UIDs stored before a crash or a lost
    /// connection: exactly the ones the store lists as stored and unacted
    /// (`ImapFolderState::unacted`). A UID between `acted_uid` and
    /// `last_uid` that is not listed (quarantined, vanished, never given a
    /// body, or history left alone) is never flagged, moved or deleted.
    async fn catch_up(
        &self,
        session: &mut ImapSession,
        caps: &Caps,
        uidvalidity: u32,
        state: &ImapFolderState,
    ) -> Result<(), ImapError> {
        if self.account.after != ImapAfter::Keep {
            for chunk in state.unacted.chunks(ACTION_CHUNK) {
                // Only those still there (and, for "seen", still unread).
                let mut query = format!("UID {}", uid_set(chunk));
                if self.account.after == ImapAfter::Seen {
                    query.push_str(" UNSEEN");
                }
                let found = t("UID SEARCH", session.uid_search(&query)).await?;
                let mut uids: Vec<u32> = found
                    .into_iter()
                    .filter(|u| chunk.binary_search(u).is_ok())
                    .collect();
                uids.sort_unstable();
                info!(
                    messages = uids.len(),
                    "finishing the after action for messages stored earlier"
                );
                self.after(session, caps, &uids).await?;
            }
        }
        let key = self.key.clone();
        let last = state.last_uid;
        self.blocking(move |store| store.imap_acted(&key, uidvalidity, last))
            .await
    }

    /// Applies `after` (seen / move / delete) to stored messages.
    async fn after(
        &self,
        session: &mut ImapSession,
        caps: &Caps,
        uids: &[u32],
    ) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        match &self.account.after {
            ImapAfter::Keep => Ok(()),
            ImapAfter::Seen => store_flag(session, &set, "\\Seen").await,
            ImapAfter::Delete => {
                store_flag(session, &set, "\\Deleted").await?;
                expunge(session, caps, &set).await
            }
            ImapAfter::Move(dest) => {
                if let Err(e) = move_to(session, caps, &set, dest).await {
                    // Most likely the folder does not exist ([TRYCREATE]): create it once.
                    debug!(error = %e, dest = %dest, "move failed; creating the folder and retrying");
                    let _ = t("CREATE", session.create(dest)).await;
                    move_to(session, caps, &set, dest).await?;
                }
                Ok(())
            }
        }
    }

    /// The postmaster's notice about a message left on the server. Its
    /// Message-ID names the folder and UID, so a replay makes the same mail.
    fn quarantine_notice(
        &self,
        admin: &str,
        uidvalidity: u32,
        uid: u32,
        entry: &QuarantineEntry,
    ) -> SystemMail {
        let body = format!(
            "postdesk did not take this message from the mailbox, because it is larger\n\
             than the configured limit (max_message_size).\n\n\
             \x20 Account: {}\n  Folder:  {}\n  From:    {}\n  Subject: {}\n\n\
             {}\n\n\
             It is still on the IMAP server. Raise max_message_size for this account\n\
             (and restart) to import it, or handle it by hand.\n",
            self.name, self.folder, entry.from, entry.subject, entry.reason
        );
        let message_id = format!(
            "quarantine.{}.{uidvalidity}.{uid}@{}",
            crate::token::base32(self.key.as_bytes())
                .chars()
                .take(24)
                .collect::<String>(),
            self.hostname
        );
        let raw = compose::render(
            &compose::Outgoing {
                kind: compose::Kind::Generated,
                from: (String::new(), self.from.clone()),
                to: admin.to_string(),
                cc: Vec::new(),
                reply_to: None,
                subject: format!(
                    "[postdesk] Message too large, left on the server: {}",
                    entry.subject
                ),
                message_id,
                date: entry.at,
                in_reply_to: None,
                references: Vec::new(),
                body,
                attachments: &[],
                extra_headers: Vec::new(),
            },
            &self.hostname,
        );
        SystemMail {
            raw,
            mail_from: self.from.clone(),
            rcpt_to: vec![admin.to_string()],
            at: entry.at,
        }
    }

    /// The envelope of a fetched message: the sender from Return-Path (the
    /// delivering server's record of MAIL FROM, `<>` for bounces) or else
    /// From; the recipient is the configured support mailbox.
    fn envelope(&self, raw: &[u8], now: i64, dates: ImapDates) -> Envelope {
        Envelope {
            mail_from: crate::process::parse::envelope_sender(raw),
            rcpt_to: vec![self.account.mailbox.clone()],
            received_at: now,
            source: Source::Imap,
            peer: format!(
                "imap://{}:{}/{}",
                self.account.host,
                self.account.port(),
                self.folder
            ),
            helo: String::new(),
            imap: Some(dates),
            sender_auth: None,
            imported_as: None,
        }
    }
}

/// What one batch needs to know about its selected folder.
#[derive(Debug, Clone, Copy)]
struct Selected {
    uidvalidity: u32,
    /// [`ImapFolderState::first_seen`].
    first_seen: i64,
    /// [`ImapFolderState::history_upto`].
    history_upto: u32,
}

impl Selected {
    /// History to leave alone: under `existing = "skip"` after a UIDVALIDITY
    /// change, a UID of the re-read folder that arrived (INTERNALDATE) before
    /// the folder was first seen. Unknown dates are not history: the
    /// processor's dedup and acknowledgement rule still apply to them.
    fn is_history(&self, uid: u32, meta: Option<&UidMeta>) -> bool {
        self.first_seen > 0
            && uid <= self.history_upto
            && meta
                .and_then(|m| m.internal_date)
                .is_some_and(|d| d < self.first_seen)
    }
}

/// Size and arrival date of one UID, fetched before its body.
struct UidMeta {
    size: u64,
    /// INTERNALDATE, unix seconds.
    internal_date: Option<i64>,
}

async fn store_flag(session: &mut ImapSession, set: &str, flag: &str) -> Result<(), ImapError> {
    let query = format!("+FLAGS.SILENT ({flag})");
    let stream = t("UID STORE", session.uid_store(set, &query)).await?;
    collect("UID STORE", stream).await.map(drop)
}

/// Removes `\Deleted` messages: only the given UIDs with UIDPLUS; without it,
/// plain EXPUNGE (which also removes anything another client marked deleted).
async fn expunge(session: &mut ImapSession, caps: &Caps, set: &str) -> Result<(), ImapError> {
    if caps.uidplus {
        let stream = t("UID EXPUNGE", session.uid_expunge(set)).await?;
        collect("UID EXPUNGE", stream).await.map(drop)
    } else {
        let stream = t("EXPUNGE", session.expunge()).await?;
        collect("EXPUNGE", stream).await.map(drop)
    }
}

/// UID MOVE where the server has MOVE (RFC 6851), else COPY + \Deleted + EXPUNGE.
async fn move_to(
    session: &mut ImapSession,
    caps: &Caps,
    set: &str,
    dest: &str,
) -> Result<(), ImapError> {
    if caps.mv {
        t("UID MOVE", session.uid_mv(set, dest)).await
    } else {
        t("UID COPY", session.uid_copy(set, dest)).await?;
        store_flag(session, set, "\\Deleted").await?;
        expunge(session, caps, set).await
    }
}

/// Throws away unsolicited responses (EXISTS, EXPUNGE, FETCH of flag
/// changes): the poller asks for what it needs with UID SEARCH instead.
fn drain_unsolicited(session: &ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

/// Compresses sorted UIDs into an IMAP sequence set: `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let set: BTreeSet<u32> = uids.iter().copied().collect();
    let mut out = String::new();
    let mut iter = set.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end.wrapping_add(1))) && end < u32::MAX {
            end += 1;
            iter.next();
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
