//! The JSON API (DESIGN.md, stable): health, ticket list, one ticket, plus
//! raw messages and the quarantine. Everything needs the bearer token except
//! the bare liveness answer of health (`{"status":"ok"}`), so a probe needs no
//! secret while queue sizes and IMAP errors stay private.
//!
//! The store is read in `spawn_blocking` (redb reads are synchronous); the
//! wire types here are separate from the stored records on purpose, so the
//! on-disk format can change without changing the API.

use crate::clock::rfc3339;
use crate::model::{MessageRecord, Ticket};
use crate::store::{Store, StoreError, TicketFilter};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::watch;

pub struct ApiState {
    pub store: Store,
    pub token: String,
    /// Live status of the IMAP pollers, shown by the health endpoint.
    pub imap: crate::imap::ImapRegistry,
    pub clock: crate::clock::Clock,
    /// Acts on tickets (the write API) through the processor's `act`, the
    /// same path as agents' mail commands.
    pub processor: crate::process::Processor,
    /// Where phone tickets enter, like mail: the processor opens the ticket.
    pub spool: crate::spool::Spool,
    /// The agent web view served beside the API, if the daemon runs one.
    pub web: Option<crate::web::WebState>,
    /// `web.tls_cert` / `web.tls_key`: serve over TLS instead of plain HTTP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Full-text search (`/api/v1/search`, `/api/v1/search/reindex`).
    pub search: crate::search_index::SearchIndex,
}

type Shared = Arc<ApiState>;

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut state = state;
    let web = state.web.take();
    let tls = state.tls.take();
    let mut app = router(Arc::new(state));
    if let Some(web) = web {
        app = app.merge(crate::web::router(Arc::new(web)));
    }
    let app = app.layer(axum::middleware::from_fn(
        crate::web::headers::security_headers,
    ));
    // Client addresses feed the login rate limit.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Some(config) = tls {
        use axum::serve::ListenerExt;
        let tls_listener =
            crate::web::tls_listener::TlsListener::start(listener, config, shutdown.clone())?;
        // tap_io: axum gives the peer address as connect info to tapped listeners.
        axum::serve(tls_listener.tap_io(|_| {}), app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await?;
        return Ok(());
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/tickets", get(list_tickets).post(new_ticket))
        .route("/api/v1/tickets/{id}", get(get_ticket))
        .route("/api/v1/reports/{name}", get(get_report))
        .route("/api/v1/messages/{seq}", get(get_message))
        .route("/api/v1/messages/{seq}/raw", get(get_raw))
        .route("/api/v1/quarantine", get(quarantine))
        .route("/api/v1/search", get(search))
        .route("/api/v1/search/reindex", axum::routing::post(reindex))
        .route("/api/v1/erase", axum::routing::post(erase))
        .route("/api/v1/retention", axum::routing::post(retention))
        .route("/metrics", get(metrics))
        .route("/api/v1/backup", get(get_backup))
        .route(
            "/api/v1/import",
            axum::routing::post(import_message).layer(axum::extract::DefaultBodyLimit::max(
                state.processor.cfg.smtp.max_message_size as usize,
            )),
        )
        .route(
            "/api/v1/tickets/{id}/{action}",
            axum::routing::post(act_on_ticket),
        )
        .route(
            "/api/v1/tickets/{id}/merge",
            axum::routing::post(merge_ticket),
        )
        .route(
            "/api/v1/tickets/{id}/messages/{seq}/split",
            axum::routing::post(split_message),
        )
        .fallback(not_found)
        .with_state(state)
        // Last, so that it wraps every route and the fallback: the one set
        // of security headers the web pages use too.
        .layer(axum::middleware::from_fn(
            crate::web::headers::security_headers,
        ))
}

/// The body of `POST /api/v1/tickets`: a ticket opened by an agent on a
/// customer's behalf (a phone call, a walk-in).
#[derive(Deserialize)]
struct NewTicketBody {
    agent: String,
    customer: String,
    #[serde(default)]
    name: String,
    subject: String,
    body: String,
    /// `phone` (default), `walk-in`, … : recorded as `X-Postdesk-Channel`.
    #[serde(default)]
    channel: Option<String>,
}

/// Opens a ticket for a customer: the request becomes a message from the
/// customer committed to the spool, so it takes the same path as mail
/// (routing, SLA, acknowledgement to the customer, agents notified). Answers
/// once the processor has made the ticket (or 202 with the message's seq if
/// that takes long).
async fn new_ticket(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(b): axum::Json<NewTicketBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    use crate::on_behalf::{NewTicket, NewTicketError, Opened, open};
    authorize(&headers, &s)?;
    let req = NewTicket {
        agent: b.agent,
        customer: b.customer,
        name: b.name,
        subject: b.subject,
        body: b.body,
        channel: b.channel,
    };
    match open(&s.processor, &s.spool, &s.clock, req).await {
        Ok(Opened::Ticket { ticket, seq }) => Ok((
            StatusCode::CREATED,
            axum::Json(
                json!({ "ticket": ticket.to_string(), "seq": seq.to_string(), "version": 0 }),
            ),
        )),
        Ok(Opened::Spooled(seq)) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "ticket": null, "seq": seq.to_string() })),
        )),
        Err(NewTicketError::Invalid(why)) => Err(ApiError::BadRequest(why)),
        Err(NewTicketError::Store(e)) => Err(e.into()),
        Err(e @ NewTicketError::NotTaken(_)) => Err(ApiError::Internal(e.to_string())),
    }
}

/// The body of `POST /api/v1/tickets/{id}/{reply|note|commands}`.
#[derive(Deserialize)]
struct ActBody {
    /// The acting agent's name (rules/agents.toml).
    agent: String,
    /// The reply or note text (`reply`, `note`).
    #[serde(default)]
    body: String,
    /// Command lines as agents write them by mail (`#priority high`, `#close`…).
    #[serde(default)]
    commands: Vec<String>,
    /// The ticket version the agent saw: a reply written against an older one,
    /// after which another agent replied, is held (collision detection).
    seen_version: Option<u64>,
}

/// Acts on a ticket as an agent: a reply to the customer, an internal note,
/// or commands, checked and applied whole by `Processor::act`; answers the
/// new ticket version and what was done.
async fn act_on_ticket(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    axum::Json(b): axum::Json<ActBody>,
) -> ApiResult<axum::Json<Value>> {
    use crate::process::commands::{Action, MailCommand, Refusal, Request, Sent, Via, parse};
    authorize(&headers, &s)?;
    let id = parse_id(&id, "ticket")?;
    let mut actions = Vec::new();
    for line in &b.commands {
        match parse(line) {
            Ok(MailCommand::Act(a)) => actions.push(a),
            Ok(MailCommand::Note) => {
                return Err(ApiError::BadRequest("#note: post to /note instead".into()));
            }
            Err(e) => return Err(ApiError::BadRequest(format!("{line}: {e}"))),
        }
    }
    let text = b.body.trim().to_string();
    match action.as_str() {
        "reply" if text.is_empty() => return Err(ApiError::BadRequest("empty body".into())),
        "reply" => actions.push(Action::Reply {
            text,
            attachments: Vec::new(),
        }),
        "note" if text.is_empty() => return Err(ApiError::BadRequest("empty body".into())),
        "note" => actions.push(Action::Note(text)),
        "commands" if actions.is_empty() => {
            return Err(ApiError::BadRequest("no commands".into()));
        }
        "commands" => {}
        other => return Err(ApiError::NotFound(format!("no action {other:?}"))),
    }
    let request = Request {
        ticket: id,
        actor: b.agent,
        seen_version: b.seen_version,
        actions,
        via: Via::Api,
    };
    let state = s.clone();
    let acted = blocking(move || {
        let p = &state.processor;
        let rules = p.rules.current();
        let now = state.clock.now();
        p.store.write(|tx| match p.act(tx, &rules, request, now) {
            Err(Refusal::Store(e)) => Err(e),
            other => Ok(other),
        })
    })
    .await?;
    match acted {
        Ok(outcome) => {
            s.processor.outbound_wake.notify_one();
            let sent = match outcome.sent {
                Sent::Nothing => json!(null),
                Sent::Note(seq) => json!({ "note": seq.to_string() }),
                Sent::Reply(seq) => json!({ "reply": seq.to_string() }),
                Sent::Held(seq) => json!({ "held": seq.to_string() }),
            };
            Ok(axum::Json(json!({
                "ticket": outcome.ticket.id.to_string(),
                "version": outcome.ticket.version,
                "status": outcome.ticket.status,
                "results": outcome.results,
                "sent": sent,
            })))
        }
        Err(Refusal::NoTicket(_)) => Err(ApiError::NotFound(format!("no ticket {id}"))),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}

/// An API failure, rendered as `{"error": "..."}` with its status.
enum ApiError {
    Unauthorized,
    NotFound(String),
    BadRequest(String),
    Internal(String),
    /// 503: the answer exists once something finishes (the search index build).
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".to_string(),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        let mut resp = (status, axum::Json(json!({ "error": msg }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store read failed");
        ApiError::Internal(format!("storage error: {e}"))
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn authorize(headers: &HeaderMap, state: &ApiState) -> ApiResult<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim();
    let want = state.token.as_bytes();
    let ok = !want.is_empty()
        && given.len() == want.len()
        && given
            .bytes()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `GET /api/v1/reports/{name}?since=&until=&queue=&interval=&recompute=`:
/// one report's tables as JSON (see [`crate::reports`]); 400 for a bad
/// period or an unknown report.
async fn get_report(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<crate::report_service::Params>,
) -> ApiResult<axum::Json<crate::reports::Report>> {
    use crate::report_service::{RunError, run};
    authorize(&headers, &s)?;
    let store = s.store.clone();
    let rules = s.processor.rules.current();
    let now = s.clock.now();
    let report = tokio::task::spawn_blocking(move || run(&store, &rules, &name, &params, now))
        .await
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))?;
    match report {
        Ok(r) => Ok(axum::Json(r)),
        Err(RunError::Report(e)) => Err(ApiError::BadRequest(e.to_string())),
        Err(RunError::Store(e)) => Err(e.into()),
    }
}

/// Runs a blocking store read off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))?
        .map_err(ApiError::from)
}

/// `{"status":"ok"}` while the daemon can accept mail. When the store
/// cannot commit (disk full, I/O error) it answers 503 with
/// `{"status":"store_failed"}` (plus the reason, with the token): mail gets
/// 451 meanwhile, and a monitor must see that.
async fn health(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Response> {
    let authorized = authorize(&headers, &s).is_ok();
    let store = s.store.clone();
    let failure = tokio::task::spawn_blocking(move || store.probe())
        .await
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))?;
    if let Some(reason) = failure {
        let body = if authorized {
            json!({ "status": "store_failed", "reason": reason })
        } else {
            json!({ "status": "store_failed" })
        };
        return Ok((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response());
    }
    if !authorized {
        return Ok(axum::Json(json!({ "status": "ok" })).into_response());
    }
    let store = s.store.clone();
    let (spool, outbound, tickets) = blocking(move || {
        Ok((
            store.spool_len()?,
            store.outbound_len()?,
            store.ticket_count()?,
        ))
    })
    .await?;
    Ok(axum::Json(json!({
        "status": "ok",
        "spool_pending": spool,
        "outbound_queued": outbound,
        "tickets": tickets,
        "imap": s.imap.snapshot().iter().map(|i| json!({
            "account": i.account,
            "folder": i.folder,
            "connected": i.connected,
            "last_poll": i.last_poll.map(rfc3339),
            "last_error": i.last_error,
            "messages_ingested": i.messages_ingested,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// Prometheus text format (version 0.0.4) of what the daemon holds now:
/// spool and outbound depth, tickets per status, quarantine, IMAP pollers.
/// Behind the bearer token, like the rest of the API.
async fn metrics(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Response> {
    use std::fmt::Write;
    authorize(&headers, &s)?;
    let store = s.store.clone();
    let failure = tokio::task::spawn_blocking(move || store.probe())
        .await
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))?;
    let store = s.store.clone();
    let (spool, outbound, (by_status, quarantined)) =
        blocking(move || Ok((store.spool_len()?, store.outbound_len()?, store.gauges()?))).await?;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    gauge(
        "postdesk_store_ok",
        "1 while the store commits, 0 after an I/O error until it is reopened.",
        "gauge",
        &one(u64::from(failure.is_none())),
    );
    gauge(
        "postdesk_spool_pending",
        "Messages committed by intake, not yet processed.",
        "gauge",
        &one(spool),
    );
    gauge(
        "postdesk_outbound_queued",
        "Outbound jobs waiting for delivery or a retry.",
        "gauge",
        &one(outbound),
    );
    gauge(
        "postdesk_store_bytes",
        "Size of the store's database file (free pages included).",
        "gauge",
        &one(s.store.file_bytes().unwrap_or(0)),
    );
    gauge(
        "postdesk_quarantine_entries",
        "Messages set aside.",
        "gauge",
        &one(quarantined),
    );
    let tickets: Vec<(String, u64)> = by_status
        .iter()
        .map(|(st, n)| (format!("{{status=\"{}\"}}", label(st)), *n))
        .collect();
    gauge("postdesk_tickets", "Tickets by status.", "gauge", &tickets);
    {
        use crate::counters as c;
        let counted = |pairs: &[(&str, &c::Counter)]| -> Vec<(String, u64)> {
            pairs
                .iter()
                .map(|(l, k)| (format!("{{{l}}}"), k.get()))
                .collect()
        };
        gauge(
            "postdesk_smtp_messages_total",
            "SMTP intake answers since start, by result.",
            "counter",
            &counted(&[
                ("result=\"accepted\"", &c::SMTP_ACCEPTED),
                ("result=\"refused_size\"", &c::SMTP_REFUSED_SIZE),
                ("result=\"deferred_budget\"", &c::SMTP_DEFERRED_BUDGET),
                ("result=\"deferred_store\"", &c::SMTP_DEFERRED_STORE),
            ]),
        );
        gauge(
            "postdesk_smtp_recipients_refused_total",
            "Recipients refused at RCPT (not ours).",
            "counter",
            &one(c::SMTP_REFUSED_RECIPIENT.get()),
        );
        gauge(
            "postdesk_smtp_connections_refused_total",
            "Connections refused at a connection limit.",
            "counter",
            &one(c::SMTP_REFUSED_CONNECTION.get()),
        );
        gauge(
            "postdesk_sla_fired_total",
            "SLA warnings and breaches fired since start.",
            "counter",
            &counted(&[
                ("level=\"warning\"", &c::SLA_WARNINGS),
                ("level=\"breach\"", &c::SLA_BREACHES),
            ]),
        );
        gauge(
            "postdesk_outbound_attempts_total",
            "Delivery attempts since start, by result.",
            "counter",
            &counted(&[
                ("result=\"delivered\"", &c::OUTBOUND_DELIVERED),
                ("result=\"deferred\"", &c::OUTBOUND_DEFERRED),
                ("result=\"failed\"", &c::OUTBOUND_FAILED),
            ]),
        );
        gauge(
            "postdesk_chat_stream_reads_total",
            "Looks at the store by live chat streams and long polls.",
            "counter",
            &one(c::CHAT_STREAM_READS.get()),
        );
    }
    let mut histograms = String::new();
    {
        let (buckets, count, sum) = crate::counters::PROCESSING_LATENCY.snapshot();
        let name = "postdesk_processing_latency_seconds";
        let _ = writeln!(
            histograms,
            "# HELP {name} From a message's commit in the spool to its ticket's commit (messages spooled since start).\n# TYPE {name} histogram"
        );
        for (le, n) in buckets {
            let _ = writeln!(histograms, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(histograms, "{name}_sum {sum}\n{name}_count {count}");
    }
    let imap = s.imap.snapshot();
    let per_folder = |f: &dyn Fn(&crate::imap::ImapStatus) -> u64| -> Vec<(String, u64)> {
        imap.iter()
            .map(|i| {
                (
                    format!(
                        "{{account=\"{}\",folder=\"{}\"}}",
                        label(&i.account),
                        label(&i.folder)
                    ),
                    f(i),
                )
            })
            .collect()
    };
    gauge(
        "postdesk_imap_connected",
        "1 while the poller holds a connection.",
        "gauge",
        &per_folder(&|i| u64::from(i.connected)),
    );
    gauge(
        "postdesk_imap_messages_ingested_total",
        "Messages taken from the folder since start.",
        "counter",
        &per_folder(&|i| i.messages_ingested),
    );
    gauge(
        "postdesk_imap_last_poll_timestamp_seconds",
        "Unix time of the last poll (0: none yet).",
        "gauge",
        &per_folder(&|i| i.last_poll.map_or(0, |t| t.max(0) as u64)),
    );
    out.push_str(&histograms);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// A Prometheus label value: backslash, double quote and line feed escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    queue: Option<String>,
    assignee: Option<String>,
    tag: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// Keyset paging: tickets older than this id (the last of the previous page).
    before: Option<String>,
}

async fn list_tickets(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 10000".into(),
        ));
    }
    let before = match q.before.as_deref().filter(|v| !v.is_empty()) {
        Some(b) => Some(
            b.trim_start_matches('#')
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("before={b:?} is not a ticket id")))?,
        ),
        None => None,
    };
    let filter = TicketFilter {
        status: q.status.filter(|v| !v.is_empty()),
        queue: q.queue.filter(|v| !v.is_empty()),
        assignee: q.assignee.filter(|v| !v.is_empty()),
        tag: q.tag.filter(|v| !v.is_empty()),
        limit,
        offset: q.offset.unwrap_or(0),
        before,
    };
    let store = s.store.clone();
    let (total, tickets) = blocking(move || store.list_tickets(&filter)).await?;
    Ok(axum::Json(json!({
        "total": total,
        "tickets": tickets.iter().map(ticket_json).collect::<Vec<_>>(),
    })))
}

fn ticket_json(t: &Ticket) -> Value {
    json!({
        "id": t.id.to_string(),
        "subject": t.subject,
        "status": t.status,
        "priority": t.priority,
        "queue": t.queue,
        "assignee": t.assignee,
        "requester": t.requester,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
        "message_count": t.message_count,
        // Opened through the web form or an unsigned chat and not yet
        // confirmed by the customer answering our mail or using the status
        // link.
        "unverified": t.unverified,
    })
}

fn message_json(m: &MessageRecord) -> Value {
    json!({
        "seq": m.seq.to_string(),
        "ticket": m.ticket.map(|t| t.to_string()),
        "message_id": m.message_id,
        "direction": m.direction,
        "kind": m.kind,
        "from": m.from,
        "to": m.to,
        "subject": m.subject,
        "date": rfc3339(m.date),
        "text": m.text,
        // Why the sender is not a participant (the message brought nobody
        // into the replies); null for a participant's or our own mail.
        "non_participant": m.stranger,
    })
}

/// Adds `sender_verdict` to each message's JSON in `list`: what our own SMTP
/// intake verified about its sender (`{"verdict": "pass"|"fail"|"none",
/// "mechanism", "domain", "spf", "dkim", "dmarc", "arc", "dmarc_policy"}`),
/// null when it was not verified (IMAP, `deliver`, our own mail).
async fn add_sender_verdicts(
    s: &Shared,
    list: &mut Value,
    messages: &[MessageRecord],
) -> ApiResult<()> {
    let store = s.store.clone();
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let verdicts = blocking(move || store.sender_verdicts(seqs)).await?;
    if let Some(items) = list.as_array_mut() {
        for (item, m) in items.iter_mut().zip(messages) {
            item["sender_verdict"] = json!(verdicts.get(&m.seq));
        }
    }
    Ok(())
}

fn parse_id(s: &str, what: &str) -> ApiResult<u64> {
    s.trim_start_matches('#')
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no {what} {s:?}")))
}

async fn get_ticket(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let id = parse_id(&id, "ticket")?;
    let store = s.store.clone();
    let found = blocking(move || {
        let Some(t) = store.ticket(id)? else {
            return Ok(None);
        };
        Ok(Some((
            t,
            store.ticket_messages(id)?,
            store.ticket_events(id)?,
            store.held_for_ticket(id)?,
            (store.merged_into(id)?, store.merged_from(id)?),
        )))
    })
    .await?;
    let (t, messages, events, held, (merged_into, merged_from)) =
        found.ok_or_else(|| ApiError::NotFound(format!("no ticket {id}")))?;
    let mut v = ticket_json(&t);
    // A merged ticket names the ticket its conversation went to (one hop);
    // a survivor lists the tickets merged into it.
    v["merged_into"] = json!(merged_into.map(|m| m.to_string()));
    v["merged_from"] = json!(
        merged_from
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
    );
    v["participants"] = json!(t.participants);
    v["tags"] = json!(t.tags);
    v["sla"] = match &t.sla {
        Some(sla) => json!({
            "policy": sla.policy,
            "first_response_due": sla.first_response_due.map(rfc3339),
            "resolution_due": sla.resolution_due.map(rfc3339),
            "first_response_at": sla.first_response_at.map(rfc3339),
            "state": crate::sla::state_name(&t, s.clock.now()),
        }),
        None => Value::Null,
    };
    v["messages"] = messages.iter().map(message_json).collect();
    // Who accepted each message we sent, and how (its `delivery` list).
    let sent: Vec<u64> = messages
        .iter()
        .filter(|m| m.direction == crate::model::Direction::Outbound)
        .map(|m| m.seq)
        .collect();
    let store = s.store.clone();
    let evidence = blocking(move || store.delivery_evidence(&sent)).await?;
    if let Some(list) = v["messages"].as_array_mut() {
        for (m, j) in messages.iter().zip(list) {
            if let Some(ev) = evidence.get(&m.seq) {
                j["delivery"] = ev.iter().map(evidence_json).collect();
            }
        }
    }
    add_sender_verdicts(&s, &mut v["messages"], &messages).await?;
    // Agent replies held by collision detection, waiting for #send or expiry.
    v["held"] = held
        .iter()
        .map(|h| {
            json!({
                "seq": h.message.to_string(),
                "agent": h.agent,
                "text": h.text,
                "at": rfc3339(h.at),
                "expires_at": rfc3339(h.expires_at),
            })
        })
        .collect();
    v["events"] = events
        .iter()
        .map(|e| json!({ "at": rfc3339(e.at), "kind": e.kind, "actor": e.actor, "detail": e.detail }))
        .collect();
    // Satisfaction surveys, one per resolution, with their ratings.
    let store = s.store.clone();
    let surveys = blocking(move || store.surveys_of(id)).await?;
    v["surveys"] = surveys.iter().map(survey_json).collect();
    Ok(axum::Json(v))
}

/// One acceptance of a message we sent, for the ticket's JSON.
fn evidence_json(e: &crate::store::DeliveryEvidence) -> Value {
    json!({
        "at": rfc3339(e.at),
        "rcpts": e.rcpts,
        "route": e.route,
        "host": e.host,
        "ip": e.ip,
        "reply": e.reply,
        "queue_id": e.queue_id,
        "tls": e.tls.as_ref().map(|t| json!({
            "version": t.version,
            "cipher": t.cipher,
            "verified": t.verified,
            "verify_error": t.verify_error,
        })),
        "policy": e.policy,
        "dkim_selector": e.dkim_selector,
    })
}

/// One survey of a ticket and its rating (null until answered).
fn survey_json(s: &crate::csat::Survey) -> Value {
    json!({
        "resolution": s.resolution,
        "scale": s.scale.as_str(),
        "queue": s.queue,
        "due": rfc3339(s.due),
        "sent_at": s.sent_at.map(rfc3339),
        "skipped": s.skipped,
        "agents": s.agents,
        "rating": s.rating.as_ref().map(|r| json!({
            "score": r.score,
            "satisfied": s.scale.satisfied(r.score),
            "comment": r.comment,
            "at": rfc3339(r.at),
            "changed_at": rfc3339(r.changed_at),
            "by": r.by,
            "via": r.via,
        })),
    })
}

async fn get_message(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let seq = parse_id(&seq, "message")?;
    let store = s.store.clone();
    let (record, dup) =
        blocking(move || Ok((store.message(seq)?, store.duplicate_of(seq)?))).await?;
    match (record, dup) {
        (Some(m), _) => {
            let mut v = json!([message_json(&m)]);
            add_sender_verdicts(&s, &mut v, std::slice::from_ref(&m)).await?;
            Ok(axum::Json(v[0].take()))
        }
        (None, Some(first)) => Ok(axum::Json(json!({
            "seq": seq.to_string(),
            "duplicate_of": first.to_string(),
        }))),
        (None, None) => Err(ApiError::NotFound(format!("no processed message {seq}"))),
    }
}

async fn get_raw(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> ApiResult<Response> {
    authorize(&headers, &s)?;
    let seq = parse_id(&seq, "message")?;
    let store = s.store.clone();
    let raw = blocking(move || store.raw(seq))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no stored message {seq}")))?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

async fn quarantine(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let store = s.store.clone();
    let entries = blocking(move || store.quarantine()).await?;
    Ok(axum::Json(json!({
        "total": entries.len(),
        "entries": entries.iter().map(|q| json!({
            "seq": q.message.to_string(),
            "at": rfc3339(q.at),
            "reason": q.reason,
            "from": q.from,
            "subject": q.subject,
        })).collect::<Vec<_>>(),
    })))
}

/// The body of `POST /api/v1/tickets/{id}/merge`.
#[derive(Deserialize)]
struct MergeBody {
    agent: String,
    /// The survivor: a number, or the id string the API shows (`"42"`, `"#42"`).
    into: Value,
    /// The ticket version the agent saw; a merge against an older one is refused.
    #[serde(alias = "seen_version")]
    version: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

/// The body of `POST /api/v1/tickets/{id}/messages/{seq}/split`.
#[derive(Deserialize)]
struct SplitBody {
    agent: String,
    #[serde(alias = "seen_version")]
    version: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

/// Merges ticket `id` into `into` as an agent, through `Processor::act`;
/// answers both tickets' new versions.
async fn merge_ticket(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Json(b): axum::Json<MergeBody>,
) -> ApiResult<axum::Json<Value>> {
    use crate::process::commands::Action;
    authorize(&headers, &s)?;
    let id = parse_id(&id, "ticket")?;
    let into = match &b.into {
        Value::Number(n) => n.as_u64(),
        Value::String(t) => t.trim().trim_start_matches('#').parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::BadRequest(format!("into: {} is not a ticket number", b.into)))?;
    let action = Action::Merge {
        into,
        reason: b.reason,
    };
    let outcome = act_alone(&s, id, b.agent, b.version, action).await?;
    Ok(axum::Json(json!({
        "ticket": outcome.ticket.id.to_string(),
        "version": outcome.ticket.version,
        "status": outcome.ticket.status,
        "merged_into": outcome.other.as_ref().map(|t| t.id.to_string()),
        "into_version": outcome.other.as_ref().map(|t| t.version),
        "results": outcome.results,
    })))
}

/// Splits message `seq` out of ticket `id` into a new ticket as an agent;
/// answers the old ticket's new version and the new ticket.
async fn split_message(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((id, seq)): Path<(String, String)>,
    axum::Json(b): axum::Json<SplitBody>,
) -> ApiResult<axum::Json<Value>> {
    use crate::process::commands::Action;
    authorize(&headers, &s)?;
    let id = parse_id(&id, "ticket")?;
    let message = parse_id(&seq, "message")?;
    let action = Action::Split {
        message,
        reason: b.reason,
    };
    let outcome = act_alone(&s, id, b.agent, b.version, action).await?;
    Ok(axum::Json(json!({
        "ticket": outcome.ticket.id.to_string(),
        "version": outcome.ticket.version,
        "new_ticket": outcome.other.as_ref().map(|t| t.id.to_string()),
        "new_version": outcome.other.as_ref().map(|t| t.version),
        "results": outcome.results,
    })))
}

/// One action as `agent` on ticket `id` through `Processor::act` in its own
/// transaction; a refusal is 404 (no ticket) or 400 with its reasons.
async fn act_alone(
    s: &Shared,
    id: u64,
    agent: String,
    seen_version: Option<u64>,
    action: crate::process::commands::Action,
) -> ApiResult<crate::process::commands::Outcome> {
    use crate::process::commands::{Refusal, Request, Via};
    let request = Request {
        ticket: id,
        actor: agent,
        seen_version,
        actions: vec![action],
        via: Via::Api,
    };
    let state = s.clone();
    let acted = blocking(move || {
        let p = &state.processor;
        let rules = p.rules.current();
        let now = state.clock.now();
        p.store.write(|tx| match p.act(tx, &rules, request, now) {
            Err(Refusal::Store(e)) => Err(e),
            other => Ok(other),
        })
    })
    .await?;
    match acted {
        Ok(outcome) => {
            s.processor.outbound_wake.notify_one();
            Ok(outcome)
        }
        Err(Refusal::NoTicket(_)) => Err(ApiError::NotFound(format!("no ticket {id}"))),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

/// `GET /api/v1/backup`: a consistent copy of the whole store (a redb file)
/// taken from one read transaction while intake goes on, for `postdesk
/// backup`. The copy is made next to the store, opened, unlinked, then
/// streamed, so nothing is left behind even if the client goes away.
async fn get_backup(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&headers, &s)?;
    let store = s.store.clone();
    let temp = store.backup_temp_path();
    let temp2 = temp.clone();
    let summary = match blocking(move || store.backup_to(&temp2)).await {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let opened = tokio::fs::File::open(&temp).await;
    let _ = tokio::fs::remove_file(&temp).await;
    let file = opened.map_err(|e| ApiError::Internal(format!("backup file: {e}")))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("backup file: {e}")))?
        .len();
    tracing::info!(
        bytes = len,
        tickets = summary.tickets,
        messages = summary.messages,
        "backup taken"
    );
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/search?q=…&limit=…`: tickets matching the query, best
/// first, each with its BM25 score and a snippet: `snippet` is HTML (the
/// text escaped, matches in `<mark>`), `snippet_text` the same as plain text.
async fn search(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let text = q.q.unwrap_or_default();
    let query =
        crate::search::Query::parse(&text).map_err(|e| ApiError::BadRequest(format!("q: {e}")))?;
    let index = s.search.clone();
    let started = std::time::Instant::now();
    let found = search_blocking(move || index.search(&query, limit)).await?;
    tracing::debug!(query = %text, total = found.total, elapsed_ms = started.elapsed().as_millis() as u64, "search");
    Ok(axum::Json(json!({
        "total": found.total,
        "truncated_prefixes": found.truncated_prefixes,
        "tickets": found.hits.iter().map(|h| {
            let mut v = ticket_json(&h.ticket);
            v["score"] = json!(h.score);
            v["snippet"] = json!(crate::web::search::snippet_html(&h.snippet));
            v["snippet_text"] = json!(h.snippet.iter().map(|p| p.text.as_str()).collect::<String>());
            v
        }).collect::<Vec<_>>(),
    })))
}

/// `POST /api/v1/search/reindex` (`postdesk reindex`): rebuilds the search
/// index from the stored tickets and messages; answers when done.
#[derive(Deserialize)]
struct EraseParams {
    customer: String,
    #[serde(default)]
    dry_run: bool,
}

/// Erases a person's data (`postdesk erase`); `dry_run` only counts.
async fn erase(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<EraseParams>,
) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let Some(customer) = crate::syntax::mailbox(p.customer.trim()) else {
        return Err(ApiError::BadRequest(format!(
            "customer {:?} is not an email address",
            p.customer
        )));
    };
    let customer = customer.to_ascii_lowercase();
    let store = s.store.clone();
    let now = s.clock.now();
    let apply = !p.dry_run;
    let who = customer.clone();
    let report = blocking(move || {
        let plan = store.erase_plan(&who)?;
        store.write(|tx| tx.erase_customer(&plan, now, apply))
    })
    .await?;
    // The log names no one either: a hash lets an auditor match a request.
    tracing::warn!(
        person = %crate::token::base32(ring::digest::digest(&ring::digest::SHA256, customer.as_bytes()).as_ref()).get(..16).unwrap_or(""),
        dry_run = p.dry_run,
        tickets = report.tickets.len(),
        messages_erased = report.messages_erased,
        messages_redacted = report.messages_redacted,
        "erasure"
    );
    Ok(axum::Json(json!({
        "dry_run": p.dry_run,
        "tickets": report.tickets.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "messages_erased": report.messages_erased,
        "messages_redacted": report.messages_redacted,
        "events_redacted": report.events_redacted,
        "jobs_dropped": report.jobs_dropped,
        "dictionaries_holding": report.dictionaries_holding,
    })))
}

#[derive(Deserialize)]
struct RetentionParams {
    #[serde(default)]
    dry_run: bool,
    /// Act as of this time (a date, RFC 3339 or unix seconds) instead of
    /// now: to see, or apply, what the rules will do by then.
    as_of: Option<String>,
}

/// Applies the retention rules now (`postdesk retention`); `dry_run` lists.
async fn retention(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<RetentionParams>,
) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let now = match &p.as_of {
        None => s.clock.now(),
        Some(t) => crate::reports::parse_instant(t, s.clock.now())
            .map_err(|e| ApiError::BadRequest(format!("as_of: {e}")))?,
    };
    let (store, rules) = (s.store.clone(), s.processor.rules.clone());
    let apply = !p.dry_run;
    let done = blocking(move || crate::retention::pass(&store, &rules, now, apply)).await?;
    Ok(axum::Json(json!({
        "dry_run": p.dry_run,
        "as_of": rfc3339(now),
        "tickets": done.iter().map(|d| json!({"id": d.ticket.to_string(), "rule": d.rule})).collect::<Vec<_>>(),
    })))
}

async fn reindex(State(s): State<Shared>, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    authorize(&headers, &s)?;
    let index = s.search.clone();
    let started = std::time::Instant::now();
    let tickets = search_blocking(move || index.rebuild()).await?;
    tracing::info!(
        tickets,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "search index rebuilt"
    );
    Ok(axum::Json(json!({
        "tickets": tickets,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    })))
}

/// `POST /api/v1/import?from=SENDER&status=new|resolved|closed`: one
/// message of imported history (the body, byte for byte), see `import.rs`.
/// 202 when spooled, 200 when the store holds it already, 400 when it is
/// not a message or the status is none of the three.
async fn import_message(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    use crate::import::{HistoryStatus, ImportError, Imported, take};
    authorize(&headers, &s)?;
    let from = q.get("from").cloned().unwrap_or_default();
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => HistoryStatus::New,
        Some(v) => HistoryStatus::parse(v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status={v:?}: imported history is {}",
                HistoryStatus::CHOICES
            ))
        })?,
    };
    match take(&s.processor, &s.spool, body.to_vec(), from, status).await {
        Ok(Imported::Spooled(seq)) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "spooled", "seq": seq.to_string() })),
        )),
        Ok(Imported::AlreadyStored(seq)) => Ok((
            StatusCode::OK,
            axum::Json(json!({ "status": "already_stored", "seq": seq.to_string() })),
        )),
        Err(e @ ImportError::Malformed(_)) => Err(ApiError::BadRequest(e.to_string())),
        Err(ImportError::Store(e)) => Err(e.into()),
        Err(e @ ImportError::NotTaken(_)) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Runs a search call off the async threads; an index still being built
/// is a 503 saying so, not an error of the server.
async fn search_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::search_index::SearchError> + Send + 'static,
) -> ApiResult<T> {
    use crate::search_index::SearchError;
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e @ (SearchError::Rebuilding | SearchError::Stopped))) => {
            Err(ApiError::Unavailable(e.to_string()))
        }
        Ok(Err(SearchError::Store(e))) => Err(e.into()),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(ApiError::Internal(format!("task failed: {e}"))),
    }
}
