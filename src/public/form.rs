//! The web form at `/new`: a customer's request without writing mail.
//!
//! The submission is committed to the spool as the customer's message with
//! `Source::WebForm` (the "thank you" page only after the commit); the
//! processor then opens a new ticket for it, always (anyone can type
//! anyone's address, so it never threads into an existing one), marked
//! unverified until the customer answers our mail. Against abuse: an
//! Origin / Sec-Fetch-Site check and a signed, time-limited form token
//! (no session needed), a honeypot field, and hourly allowances per client
//! address and per typed address. Works without JavaScript.

use super::intake::{self, Submission};
use super::rate_limit::RateLimit;
use super::texts::Texts;
use super::{Shared, form_token, multipart, page};
use crate::model::Source;
use crate::web::html::esc;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The form's scope in its anti-forgery token.
const SCOPE: &str = "new";
/// The honeypot's field name: a plausible one, which bots fill in.
const HONEYPOT: &str = "website";
/// Room for the text fields beside the attachments in a posted body.
const FIELDS_ALLOWANCE: usize = 1024 * 1024;

struct FormState {
    shared: Shared,
    per_ip: RateLimit,
    per_address: RateLimit,
}

/// `/new`, with its own rate-limit state.
pub fn routes<S: Clone + Send + Sync + 'static>(shared: Shared) -> Router<S> {
    let limit = usize::try_from(shared.cfg.smtp.max_message_size)
        .unwrap_or(usize::MAX)
        .saturating_add(FIELDS_ALLOWANCE);
    Router::new()
        .route("/new", get(show).post(submit))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(FormState {
            shared,
            per_ip: RateLimit::default(),
            per_address: RateLimit::default(),
        }))
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// What the visitor typed, to show the form again after a mistake.
#[derive(Default)]
struct Typed {
    name: String,
    email: String,
    subject: String,
    body: String,
}

async fn show(
    State(st): State<Arc<FormState>>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let t = intake::language(&headers, q.lang.as_deref());
    form_page(&st, t, StatusCode::OK, &Typed::default(), None)
}

fn form_page(
    st: &FormState,
    t: &Texts,
    status: StatusCode,
    typed: &Typed,
    error: Option<&str>,
) -> Response {
    let s = &st.shared;
    let token = form_token::issue(&s.urls.links, SCOPE, s.clock.now());
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" role="alert">{}</p>"#, esc(e))
    });
    let hint = t
        .attachment_hint
        .replace("{n}", &intake::megabytes(s.cfg.smtp.max_message_size));
    let other = t.other();
    let body = format!(
        r#"<p class="lang"><a href="/new?lang={other_lang}" hreflang="{other_lang}" lang="{other_lang}">{other_name}</a></p>
<h1>{title}</h1>
<p>{intro}</p>
{error}<form method="post" action="/new?lang={lang}" enctype="multipart/form-data">
<input type="hidden" name="token" value="{token}">
<label for="name">{l_name}</label>
<input type="text" id="name" name="name" autocomplete="name" maxlength="100" value="{name}">
<label for="email">{l_email}</label>
<input type="email" id="email" name="email" autocomplete="email" required maxlength="254" value="{email}">
<div class="hidden-field"><label for="{hp}">{l_hp}</label>
<input type="text" id="{hp}" name="{hp}" autocomplete="off" tabindex="-1"></div>
<label for="subject">{l_subject}</label>
<input type="text" id="subject" name="subject" required maxlength="250" value="{subject}">
<label for="body">{l_body}</label>
<textarea id="body" name="body" required>{text}</textarea>
<label for="attachment">{l_att}</label>
<input type="file" id="attachment" name="attachment" multiple aria-describedby="attachment-hint">
<p class="muted" id="attachment-hint">{hint}</p>
<button type="submit">{send}</button>
</form>"#,
        other_lang = esc(other.lang),
        other_name = esc(t.other_language),
        title = esc(t.new_title),
        intro = esc(t.new_intro),
        lang = esc(t.lang),
        token = esc(&token),
        l_name = esc(t.name),
        name = esc(&typed.name),
        l_email = esc(t.email),
        email = esc(&typed.email),
        hp = HONEYPOT,
        l_hp = esc(t.leave_empty),
        l_subject = esc(t.subject),
        subject = esc(&typed.subject),
        l_body = esc(t.body),
        text = esc(&typed.body),
        l_att = esc(t.attachment),
        hint = esc(&hint),
        send = esc(t.send),
    );
    page(status, t.lang, t.new_title, &body)
}

/// A page with a title and one paragraph.
fn notice(t: &Texts, status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text));
    page(status, t.lang, title, &body)
}

/// The 429 page, with Retry-After.
fn too_many(t: &Texts, retry_after: i64) -> Response {
    let minutes = ((retry_after + 59) / 60).max(1).to_string();
    let mut r = notice(
        t,
        StatusCode::TOO_MANY_REQUESTS,
        t.too_many_title,
        &t.too_many_body.replace("{minutes}", &minutes),
    );
    if let Ok(v) = retry_after.to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The "thank you" page; with the ticket number when the processor made
/// the ticket in time.
fn thanks(t: &Texts, ticket: Option<u64>) -> Response {
    let first = match ticket {
        Some(n) => t.thanks_ticket.replace("{n}", &n.to_string()),
        None => t.thanks_pending.to_string(),
    };
    let body = format!(
        r#"<h1>{}</h1><p class="done" role="status">{}</p><p>{}</p>"#,
        esc(t.thanks_title),
        esc(&first),
        esc(t.thanks_mail)
    );
    page(StatusCode::OK, t.lang, t.thanks_title, &body)
}

async fn submit(
    State(st): State<Arc<FormState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use tracing::Instrument;
    let client = st.shared.client_addr.of(client, &headers);
    let span = tracing::info_span!("web_form", client = %client);
    take(&st, client, q, &headers, &body).instrument(span).await
}

/// Checks a posted form in order (origin, client allowance, body, token,
/// honeypot, fields, address allowance) and takes it.
async fn take(
    st: &FormState,
    client: IpAddr,
    q: LangQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let s = &st.shared;
    let t = intake::language(headers, q.lang.as_deref());
    if !intake::same_origin(s, headers) {
        tracing::info!("web form refused: cross-site post");
        return notice(t, StatusCode::FORBIDDEN, t.refused_title, t.refused_body);
    }
    let now = s.clock.now();
    let ip = client.to_string();
    if let Err(wait) = st.per_ip.take(&ip, s.cfg.web.form_per_ip_per_hour, now) {
        tracing::info!(
            retry_after = wait,
            "web form refused: hourly allowance of the client used up"
        );
        return too_many(t, wait);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = match multipart::parse(content_type, body) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "web form refused: unreadable body");
            return notice(t, StatusCode::BAD_REQUEST, t.refused_title, t.not_taken);
        }
    };
    match form_token::check(
        &s.urls.links,
        SCOPE,
        Some(intake::field(&parts, "token").as_str()).filter(|v| !v.is_empty()),
        now,
    ) {
        Ok(()) => {}
        Err(form_token::Refused::Expired) => {
            tracing::info!("web form refused: form token expired");
            return notice(t, StatusCode::FORBIDDEN, t.expired_title, t.expired_body);
        }
        Err(form_token::Refused::Invalid) => {
            tracing::info!("web form refused: no valid form token");
            return notice(t, StatusCode::FORBIDDEN, t.refused_title, t.refused_body);
        }
    }
    // A bot filled in the field people never see: it gets the same thank-you
    // page, and nothing is taken.
    if !intake::field(&parts, HONEYPOT).trim().is_empty() {
        tracing::info!("web form: honeypot filled in; nothing taken");
        return thanks(t, None);
    }
    let typed = Typed {
        name: crate::syntax::header_text(&intake::field(&parts, "name"), crate::syntax::MAX_NAME),
        email: intake::field(&parts, "email").trim().to_string(),
        subject: crate::syntax::header_text(
            &intake::field(&parts, "subject"),
            crate::syntax::MAX_SUBJECT,
        ),
        body: intake::field(&parts, "body"),
    };
    if typed.email.is_empty() || typed.subject.is_empty() || typed.body.trim().is_empty() {
        return form_page(st, t, StatusCode::BAD_REQUEST, &typed, Some(t.missing));
    }
    let Some(email) = crate::syntax::mailbox(&typed.email) else {
        return form_page(st, t, StatusCode::BAD_REQUEST, &typed, Some(t.bad_email));
    };
    let max = s.cfg.smtp.max_message_size;
    let Ok(attachments) = intake::attachments(parts, max) else {
        let why = t.too_large.replace("{n}", &intake::megabytes(max));
        return form_page(st, t, StatusCode::PAYLOAD_TOO_LARGE, &typed, Some(&why));
    };
    if let Err(wait) = st.per_address.take(
        &email.to_ascii_lowercase(),
        s.cfg.web.form_per_address_per_hour,
        now,
    ) {
        tracing::info!(
            retry_after = wait,
            "web form refused: hourly allowance of the address used up"
        );
        return too_many(t, wait);
    }
    let submission = Submission {
        name: typed.name,
        email,
        subject: typed.subject,
        body: typed.body,
        attachments,
        source: Source::WebForm,
        peer: format!("web form ({ip})"),
    };
    match intake::submit(s, submission).await {
        Ok((seq, ticket)) => {
            tracing::info!(seq, ticket, "web form request taken");
            thanks(t, ticket)
        }
        Err(e) => {
            tracing::error!(error = %e, "web form request not taken");
            notice(
                t,
                StatusCode::SERVICE_UNAVAILABLE,
                t.refused_title,
                t.not_taken,
            )
            .into_response()
        }
    }
}
