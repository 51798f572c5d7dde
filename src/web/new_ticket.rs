//! `/tickets/new`: an agent opens a ticket on a customer's behalf (a phone
//! call, channel `phone`). The same path as `POST /api/v1/tickets`
//! (`on_behalf::open`): the customer's message is committed to the spool
//! first, then the processor makes the ticket like any mail; the agent is
//! taken to it.

use super::html::{self, Viewer, csrf_input, esc};
use super::{Shared, WebError, csrf, session};
use crate::on_behalf::{NewTicket, NewTicketError, Opened};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct NewTicketForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    text: String,
}

fn render(
    viewer: &Viewer<'_>,
    f: &NewTicketForm,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<section class="compose"><h1>New ticket by phone</h1>{error}<form method="post" action="/tickets/new">{token}<label for="name">Customer name</label><input id="name" name="name" value="{name}" autocomplete="off"><label for="address">Customer address</label><input id="address" name="address" type="email" value="{address}" required autocomplete="off"><label for="subject">Subject</label><input id="subject" name="subject" value="{subject}" required><label for="text">What the customer said</label><textarea id="text" name="text" rows="8" required>{text}</textarea><button type="submit">Open ticket</button></form><p><a href="/">Back to the queue</a></p></section>"#,
        token = csrf_input(viewer.csrf),
        name = esc(&f.name),
        address = esc(&f.address),
        subject = esc(&f.subject),
        text = esc(&f.text),
    );
    html::page(status, "New ticket", Some(viewer), &body)
}

pub async fn form(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let viewer = Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    Ok(render(
        &viewer,
        &NewTicketForm::default(),
        None,
        StatusCode::OK,
    ))
}

pub async fn submit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<NewTicketForm>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        csrf::same_origin(&headers, state.https)?;
        return Ok(Redirect::to("/login").into_response());
    };
    csrf::check(&headers, state.https, &cur.session.csrf, f.csrf.as_deref())?;
    let viewer = Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    let (Some(p), Some(spool)) = (state.processor.as_ref(), state.spool.as_ref()) else {
        return Ok(render(
            &viewer,
            &f,
            Some("This daemon does not open tickets from the web."),
            StatusCode::SERVICE_UNAVAILABLE,
        ));
    };
    let req = NewTicket {
        agent: cur.session.agent.clone(),
        customer: f.address.clone(),
        name: f.name.clone(),
        subject: f.subject.clone(),
        body: f.text.clone(),
        channel: Some("phone".into()),
    };
    match crate::on_behalf::open(p, spool, &state.clock, req).await {
        Ok(Opened::Ticket { ticket, .. }) => {
            tracing::info!(ticket, agent = %cur.session.agent, "ticket opened by phone");
            Ok(Redirect::to(&format!("/tickets/{ticket}")).into_response())
        }
        Ok(Opened::Spooled(seq)) => Ok(html::page(
            StatusCode::ACCEPTED,
            "Ticket taken",
            Some(&viewer),
            &format!(
                r#"<h1>Taken</h1><p>The customer's message is saved (message {seq}); the ticket appears in the queue in a moment.</p><p><a href="/">Back to the queue</a></p>"#
            ),
        )),
        Err(NewTicketError::Invalid(why)) => {
            Ok(render(&viewer, &f, Some(&why), StatusCode::BAD_REQUEST))
        }
        Err(NewTicketError::Store(e)) => Err(e.into()),
        Err(e @ NewTicketError::NotTaken(_)) => Err(WebError::Internal(e.to_string())),
    }
}
