//! Live chat on the public listener: the widget a site embeds
//! (`/chat/loader.js` adds a button and an iframe of `/chat/frame`), and
//! the frame's transport: `POST /chat/start` (who the visitor is),
//! `POST /chat/send` (a line), `GET /chat/stream` (server-sent events,
//! resumable with Last-Event-ID = the message sequence), `GET /chat/poll`
//! (long-polling fallback), `POST /chat/leave`.
//!
//! Trust: a site (rules/chat.toml) names the origins that may frame the
//! chat (`frame-ancestors`) and every request's Origin must be one of them
//! or the frame's own (the public listener's); the page that embeds the
//! widget never sees the conversation. The visitor holds a random 128-bit
//! token in the frame's storage (see [`identity`]); the conversation is
//! the ticket's mail thread ([`conversation`]).

pub mod conversation;
pub mod identity;
pub mod limits;
mod push;
/// Which tickets have their visitor connected lives in `crate::chat_live`: the
/// processor asks it without depending on the pages.
pub use crate::chat_live as live;
mod widget;

use crate::public::Shared;
use crate::store::{ChatConversation, StoreError};
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

pub use live::Live;

/// What the chat keeps besides the store: its rate counters, the lock that
/// orders one visitor's lines, and the shutdown signal that ends streams.
pub struct ChatState {
    pub limits: limits::RateLimits,
    /// Held while a line is spooled and its conversation updated, so two
    /// quick lines never both open a ticket.
    sending: tokio::sync::Mutex<()>,
    shutdown: watch::Receiver<bool>,
    /// Bumped after a conversation's first line is spooled: wakes the
    /// streams that wait for theirs ([`push`]).
    first_lines: watch::Sender<u64>,
}

impl ChatState {
    pub fn new(shutdown: watch::Receiver<bool>) -> ChatState {
        ChatState {
            limits: limits::RateLimits::default(),
            sending: tokio::sync::Mutex::new(()),
            shutdown,
            first_lines: watch::channel(0).0,
        }
    }
}

/// Why a chat request was refused; each maps to one status and a text the
/// widget shows as is.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("no such chat site")]
    UnknownSite,
    #[error("this page may not use the chat")]
    Origin,
    #[error("{0}")]
    Invalid(String),
    #[error("identity refused: {0}")]
    Identity(String),
    /// Outside opening hours; where to go instead.
    #[error("We are not here right now. Please send us a request: {0}")]
    Closed(String),
    #[error("no conversation: start the chat first")]
    NoConversation,
    #[error("{0}")]
    Limited(String),
    #[error("not taken: {0}")]
    NotTaken(String),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        let status = match &self {
            ChatError::UnknownSite | ChatError::NoConversation => StatusCode::NOT_FOUND,
            ChatError::Origin | ChatError::Identity(_) => StatusCode::FORBIDDEN,
            ChatError::Invalid(_) => StatusCode::BAD_REQUEST,
            ChatError::Closed(_) => StatusCode::CONFLICT,
            ChatError::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            ChatError::NotTaken(_) | ChatError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "chat request failed");
        }
        (
            status,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.to_string(),
        )
            .into_response()
    }
}

/// The chat's routes, merged into the public router.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/chat/loader.js", get(widget::loader))
        .route("/chat/frame", get(widget::frame))
        .route("/chat/frame.js", get(widget::frame_js))
        .route("/chat/chat.css", get(widget::stylesheet))
        .route("/chat/start", post(start))
        .route("/chat/send", post(send))
        .route("/chat/leave", post(leave))
        .route("/chat/stream", get(stream))
        .route("/chat/poll", get(poll))
        .route(
            "/chat/continue/{token}",
            get(widget::continue_page).post(widget::continue_chat),
        )
}

/// `scheme://host[:port]` of the public listener: the frame's own origin.
fn own_origin(state: &crate::public::PublicState) -> String {
    let base = &state.urls.base;
    match base.find("://") {
        Some(i) => match base[i + 3..].find('/') {
            Some(j) => base[..i + 3 + j].to_ascii_lowercase(),
            None => base.to_ascii_lowercase(),
        },
        None => base.to_ascii_lowercase(),
    }
}

/// Refuses a browser request from anywhere but the site's pages and the
/// frame itself. An Origin header must match; without one (a same-origin
/// GET, which browsers send without Origin) `Sec-Fetch-Site` must not say
/// the request crossed sites. A client that is no browser sends what it
/// likes either way: the limits, not the Origin, hold it.
pub(crate) fn check_origin(
    state: &crate::public::PublicState,
    site: &crate::rules::chat::Site,
    headers: &HeaderMap,
) -> Result<(), ChatError> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase())
    };
    match value("origin") {
        Some(origin) if origin == own_origin(state) || site.allows(&origin) => Ok(()),
        Some(_) => Err(ChatError::Origin),
        None => match value("sec-fetch-site").as_deref() {
            None | Some("same-origin") | Some("none") => Ok(()),
            Some(_) => Err(ChatError::Origin),
        },
    }
}

fn site_of(
    state: &crate::public::PublicState,
    id: &str,
    headers: &HeaderMap,
) -> Result<crate::rules::chat::Site, ChatError> {
    let rules = state.rules.current();
    let site = rules.chat.site(id).ok_or(ChatError::UnknownSite)?.clone();
    check_origin(state, &site, headers)?;
    Ok(site)
}

/// Whether the chat answers now: the site's calendar is open (no
/// calendar: always) and an agent of its queue is available (not `#away`;
/// a queue without agents counts as staffed by whoever reads it).
fn is_open(
    state: &crate::public::PublicState,
    rules: &crate::rules::RuleSet,
    site: &crate::rules::chat::Site,
    now: i64,
) -> Result<bool, StoreError> {
    let hours = site.calendar.as_ref().is_none_or(|name| {
        rules
            .calendars
            .iter()
            .find(|c| &c.name == name)
            .is_none_or(|c| c.is_open(now))
    });
    if !hours {
        return Ok(false);
    }
    let away = state.store.chat_away_agents()?;
    let mut staff = rules.agents.in_queue(&site.queue).peekable();
    if staff.peek().is_none() {
        return Ok(true);
    }
    Ok(staff.any(|a| !away.contains(&a.name.to_ascii_lowercase())))
}

#[derive(Deserialize)]
struct StartReq {
    site: String,
    #[serde(default)]
    visitor: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    identity: Option<identity::SignedIdentity>,
}

/// Who the visitor is: a new token or theirs, the address they typed (or
/// the site's signed identity), and the conversation to continue or open.
async fn start(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<StartReq>,
) -> Result<Response, ChatError> {
    let site = site_of(&state, &req.site, &headers)?;
    let now = state.clock.now();
    let rules = state.rules.current();
    let open = is_open(&state, &rules, &site, now)?;
    let token = match req
        .visitor
        .as_deref()
        .filter(|t| identity::visitor_key(t).is_some())
    {
        Some(t) => t.to_ascii_lowercase(),
        None => identity::new_visitor_token(),
    };
    let key = identity::visitor_key(&token).ok_or(ChatError::NoConversation)?;
    let (address, verified) = match &req.identity {
        Some(id) => {
            identity::check(id, site.secret.as_ref().map(|s| s.0.as_slice()), now)
                .map_err(|e| ChatError::Identity(e.to_string()))?;
            let fresh = state
                .store
                .write(|tx| tx.use_chat_nonce(&id.nonce, id.expires))?;
            if !fresh {
                tracing::warn!(site = %site.id, "chat identity replayed");
                return Err(ChatError::Identity("this identity was already used".into()));
            }
            let addr = crate::syntax::mailbox(id.address.trim())
                .ok_or_else(|| ChatError::Identity("the identity's address is invalid".into()))?;
            (addr.to_ascii_lowercase(), true)
        }
        None => {
            let typed = req.address.as_deref().unwrap_or("").trim();
            let addr = crate::syntax::mailbox(typed)
                .ok_or_else(|| ChatError::Invalid("Please give a valid email address.".into()))?;
            (addr.to_ascii_lowercase(), false)
        }
    };
    let name = crate::syntax::header_text(req.name.as_deref().unwrap_or(""), 100);
    let existing = state.store.chat_conversation(&key)?;
    // A visitor continues their own conversation, with the same address,
    // while its ticket is not finished; anything else is a new one.
    let mut resumed = None;
    if let Some(mut c) = existing
        && c.address == address
        && c.site == site.id
    {
        let ticket = conversation::ticket_of(&state, &key, &mut c)?;
        let finished = match ticket {
            Some(t) => state
                .store
                .ticket(t)?
                .is_none_or(|t| t.status.is_finished()),
            None => false,
        };
        if !finished {
            c.ended = false;
            c.last_active = now;
            c.verified |= verified;
            resumed = Some(c);
        }
    }
    let conv = match resumed {
        Some(c) => c,
        // Outside the site's hours nobody answers: no new conversation, the
        // widget shows the way to the web form instead.
        None if !open => {
            return Err(ChatError::Closed(site.outside_hours.clone()));
        }
        None => {
            state
                .chat
                .limits
                .conversation(
                    &rules.chat.limits,
                    state.client_addr.of(peer, &headers),
                    &key,
                    now,
                )
                .map_err(ChatError::Limited)?;
            ChatConversation {
                site: site.id.clone(),
                address: address.clone(),
                name,
                verified,
                started_at: now,
                last_active: now,
                first_seq: None,
                ticket: None,
                root_message_id: None,
                last_message_id: None,
                lines: 0,
                ended: false,
                transcript_upto: 0,
                link_mailed: verified,
            }
        }
    };
    let stored = conv.clone();
    state
        .store
        .write(|tx| tx.put_chat_conversation(&key, &stored))?;
    tracing::info!(site = %site.id, verified, ticket = ?conv.ticket, "chat started");
    Ok(Json(serde_json::json!({
        "visitor": token,
        "greeting": site.greeting,
        "open": open,
        "outside_hours": site.outside_hours,
        "ticket": conv.ticket,
        "verified": conv.verified,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct SendReq {
    site: String,
    visitor: String,
    text: String,
}

/// Plain text only: control characters but line breaks and tabs dropped.
fn plain(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .trim()
        .to_string()
}

/// The conversation of a visitor token of `site`.
fn conversation_of(
    state: &crate::public::PublicState,
    site: &str,
    token: &str,
) -> Result<(String, ChatConversation), ChatError> {
    let key = identity::visitor_key(token).ok_or(ChatError::NoConversation)?;
    let conv = state
        .store
        .chat_conversation(&key)?
        .filter(|c| c.site == site)
        .ok_or(ChatError::NoConversation)?;
    Ok((key, conv))
}

async fn send(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<SendReq>,
) -> Result<Response, ChatError> {
    let site = site_of(&state, &req.site, &headers)?;
    let limits = state.rules.current().chat.limits.clone();
    let text = plain(&req.text);
    if text.is_empty() {
        return Err(ChatError::Invalid("The message is empty.".into()));
    }
    if text.len() > limits.max_message_bytes {
        return Err(ChatError::Invalid(format!(
            "The message is too long (at most {} bytes).",
            limits.max_message_bytes
        )));
    }
    let key0 = identity::visitor_key(&req.visitor).ok_or(ChatError::NoConversation)?;
    state
        .chat
        .limits
        .line(&limits, &key0, state.clock.now())
        .map_err(ChatError::Limited)?;
    let _order = state.chat.sending.lock().await;
    let (key, mut conv) = conversation_of(&state, &site.id, &req.visitor)?;
    let seq =
        conversation::submit_line(&state, &key, &mut conv, &peer.ip().to_string(), &text).await?;
    if conv.first_seq == Some(seq) {
        state
            .chat
            .first_lines
            .send_modify(|n| *n = n.wrapping_add(1));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "spooled": seq })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct LeaveReq {
    site: String,
    visitor: String,
}

async fn leave(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<LeaveReq>,
) -> Result<Response, ChatError> {
    let site = site_of(&state, &req.site, &headers)?;
    let _order = state.chat.sending.lock().await;
    let (key, mut conv) = conversation_of(&state, &site.id, &req.visitor)?;
    // The first line may still be on its way to a ticket: wait a little.
    for _ in 0..100 {
        if conversation::end(&state, &key, &mut conv)? {
            state.processor.outbound_wake.notify_one();
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Deserialize)]
struct StreamQuery {
    site: String,
    /// The visitor token (EventSource cannot send headers).
    v: String,
    #[serde(default)]
    after: Option<u64>,
}

/// How long a quiet stream goes before a keep-alive comment; it looks at
/// the store then too, in case a change was not signalled ([`push`]).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often an open stream marks its visitor as present in the store.
const TOUCH_EVERY: i64 = 30;
/// How long a long poll waits for a line.
const LONG_POLL: Duration = Duration::from_secs(25);

fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

/// What one look at the store found for a stream or poll.
struct Look {
    ticket: Option<crate::model::TicketId>,
    /// The lines to send, in order.
    lines: Vec<conversation::Line>,
    /// Lines held back behind a message still in the spool.
    withheld: bool,
}

impl Look {
    /// What to wait for before the next look.
    fn wake(&self, conv: &ChatConversation) -> push::Wake {
        push::Wake::after(self.ticket, self.withheld, conv.first_seq.is_some())
    }
}

/// One look at the conversation for a stream or poll: the conversation as
/// stored (the first line may have been sent since), its ticket, the lines
/// after `after`; marks the visitor present. Blocking (the store).
fn refresh(
    state: &crate::public::PublicState,
    key: &str,
    conv: &mut ChatConversation,
    after: u64,
) -> Result<Look, StoreError> {
    crate::counters::CHAT_STREAM_READS.inc();
    if conv.ticket.is_none()
        && let Some(now) = state.store.chat_conversation(key)?
    {
        *conv = now;
    }
    touch(state, key, conv);
    let ticket = conversation::ticket_of(state, key, conv)?;
    let mut lines = match ticket {
        Some(t) => conversation::lines_after(state, t, after)?,
        None => Vec::new(),
    };
    // A line's id is its message sequence, and a client resumes after the
    // highest it saw; but a message spooled earlier can join the ticket
    // after a later one (a visitor line still in the spool while an agent's
    // reply is stored directly). Nothing at or above the oldest message
    // still in the spool is sent yet, so ids reach the client in order.
    let mut withheld = false;
    if let Some((oldest, _)) = state.store.pending_spool(1)?.first() {
        let all = lines.len();
        lines.retain(|l| l.id < *oldest);
        withheld = lines.len() < all;
    }
    Ok(Look {
        ticket,
        lines,
        withheld,
    })
}

/// Marks the visitor present (at most every [`TOUCH_EVERY`] seconds).
fn touch(state: &crate::public::PublicState, key: &str, conv: &mut ChatConversation) {
    let now = state.clock.now();
    if now - conv.last_active < TOUCH_EVERY && !conv.ended {
        return;
    }
    conv.last_active = now;
    conv.ended = false;
    let stored = conv.clone();
    if let Err(e) = state
        .store
        .write(|tx| tx.put_chat_conversation(key, &stored))
    {
        tracing::warn!(error = %e, "chat: cannot mark the visitor present");
    }
}

/// One look at the store off the async threads; the conversation comes
/// back with what it found.
async fn look(
    state: &Shared,
    key: &str,
    conv: ChatConversation,
    after: u64,
) -> Result<(ChatConversation, Result<Look, StoreError>), tokio::task::JoinError> {
    let (st, k) = (state.clone(), key.to_string());
    tokio::task::spawn_blocking(move || {
        let mut c = conv;
        let got = refresh(&st, &k, &mut c, after);
        (c, got)
    })
    .await
}

async fn stream(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ChatError> {
    let site = site_of(&state, &q.site, &headers)?;
    let (key, conv) = conversation_of(&state, &site.id, &q.v)?;
    let limits = state.rules.current().chat.limits.clone();
    let slot = state
        .chat
        .limits
        .stream(&limits, state.client_addr.of(peer, &headers))
        .map_err(ChatError::Limited)?;
    let after = last_event_id(&headers).or(q.after).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(16);
    let task_state = state.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let state = task_state;
        let mut conv = conv;
        let mut after = after;
        let mut connected = None;
        let mut shutdown = state.chat.shutdown.clone();
        let mut waiters = push::Waiters::new(&state.store, &state.chat.first_lines, conv.ticket);
        let mut sent_at = tokio::time::Instant::now();
        if tx.send(Ok("retry: 2000\n\n".into())).await.is_err() {
            return;
        }
        loop {
            waiters.seen();
            let found = match look(&state, &key, conv.clone(), after).await {
                Ok((c, Ok(found))) => {
                    conv = c;
                    found
                }
                Ok((c, Err(e))) => {
                    conv = c;
                    tracing::warn!(error = %e, "chat stream: store");
                    Look {
                        ticket: None,
                        lines: Vec::new(),
                        withheld: false,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "chat stream: task failed");
                    return;
                }
            };
            let wake = found.wake(&conv);
            if let Some(t) = found.ticket
                && connected.is_none()
            {
                connected = Some(state.processor.chat_live.connect(t));
            }
            for line in found.lines {
                after = line.id;
                let data = serde_json::to_string(&line).unwrap_or_default();
                let event = format!("id: {}\nevent: line\ndata: {data}\n\n", line.id);
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
                sent_at = tokio::time::Instant::now();
            }
            if let Some(t) = found.ticket
                && !waiters.watch(&state.store, t)
            {
                continue;
            }
            let quiet = tokio::select! {
                _ = waiters.changed(wake) => false,
                _ = tokio::time::sleep_until(sent_at + KEEP_ALIVE) => true,
                _ = tx.closed() => return,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            if quiet {
                sent_at = tokio::time::Instant::now();
                if tx.send(Ok(": keep-alive\n\n".into())).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// The long-polling fallback: the lines after `after`, waiting up to
/// [`LONG_POLL`] for one.
async fn poll(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ChatError> {
    let site = site_of(&state, &q.site, &headers)?;
    let (key, mut conv) = conversation_of(&state, &site.id, &q.v)?;
    let limits = state.rules.current().chat.limits.clone();
    let _slot = state
        .chat
        .limits
        .stream(&limits, state.client_addr.of(peer, &headers))
        .map_err(ChatError::Limited)?;
    let after = q.after.or(last_event_id(&headers)).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    let mut shutdown = state.chat.shutdown.clone();
    let mut connected = None;
    let mut waiters = push::Waiters::new(&state.store, &state.chat.first_lines, conv.ticket);
    loop {
        waiters.seen();
        let (c, got) = look(&state, &key, conv, after)
            .await
            .map_err(|e| ChatError::NotTaken(format!("task failed: {e}")))?;
        conv = c;
        let found = got?;
        if let Some(t) = found.ticket
            && connected.is_none()
        {
            connected = Some(state.processor.chat_live.connect(t));
        }
        if !found.lines.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(serde_json::json!({ "lines": found.lines })).into_response());
        }
        let wake = found.wake(&conv);
        if let Some(t) = found.ticket
            && !waiters.watch(&state.store, t)
        {
            continue;
        }
        tokio::select! {
            _ = waiters.changed(wake) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait_for(|s| *s) => {
                return Ok(Json(serde_json::json!({ "lines": [] })).into_response());
            }
        }
    }
}

/// Records the tickets first lines opened, ends conversations whose
/// visitor went quiet (no stream, no line for `idle_seconds`) and mails
/// their transcripts; forgets expired nonces. Walks the conversations not
/// ended, every two seconds.
pub async fn sweep(state: Shared, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let s = state.clone();
        let res = tokio::task::spawn_blocking(move || sweep_once(&s)).await;
        match res {
            Ok(Ok(n)) if n > 0 => state.processor.outbound_wake.notify_one(),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "chat sweep failed"),
            Err(e) => tracing::warn!(error = %e, "chat sweep task failed"),
        }
    }
}

/// Sweeps between nonce clean-ups (each is a durable write).
const NONCE_SWEEP_EVERY: u32 = 30;

fn sweep_once(state: &crate::public::PublicState) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let idle = state.rules.current().chat.limits.idle_seconds;
    let mut ended = 0;
    for (key, mut conv) in state.store.open_chat_conversations()? {
        // A first line turned into a ticket: record it (and mail an
        // unverified address its link) even while nobody is watching.
        if conv.ticket.is_none() && conv.first_seq.is_some() {
            conversation::ticket_of(state, &key, &mut conv)?;
        }
        if conv.last_active >= now - idle
            || conv
                .ticket
                .is_some_and(|t| state.processor.chat_live.is_connected(t))
        {
            continue;
        }
        if conversation::end(state, &key, &mut conv)? {
            ended += 1;
        }
    }
    static ROUND: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if ROUND
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .is_multiple_of(NONCE_SWEEP_EVERY)
    {
        state.store.write(|tx| tx.forget_chat_nonces(now))?;
    }
    Ok(ended)
}
