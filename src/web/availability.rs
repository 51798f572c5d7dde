//! `/availability`: an agent says whether they take live chats (the web
//! side of `#available` / `#away`). A site's chat opens new conversations
//! only while an agent of its queue is available (`public::chat`).
//! About the agent, not a ticket, so it writes the agent's mark directly.

use super::html;
use super::{Shared, WebError, blocking, csrf, session};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

pub async fn page(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let store = state.store.clone();
    let away = blocking(move || store.chat_away_agents()).await?;
    let agent = cur.session.agent.clone();
    let is_away = away.contains(&agent.to_ascii_lowercase());
    let (now, button, to) = if is_away {
        (
            "away: no live chats are offered to you",
            "Become available",
            "available",
        )
    } else {
        ("available for live chats", "Go away", "away")
    };
    let body = format!(
        r#"<h1>Live chat</h1><p id="availability">You are {now}.</p><form method="post" action="/availability">{}<input type="hidden" name="to" value="{to}"><button type="submit">{button}</button></form><p>By mail: <code>#available</code> or <code>#away</code> in a reply to any ticket.</p>"#,
        html::csrf_input(&cur.session.csrf),
    );
    let viewer = html::Viewer {
        agent: &cur.session.agent,
        csrf: &cur.session.csrf,
    };
    Ok(html::page(
        StatusCode::OK,
        if is_away {
            "Live chat: away"
        } else {
            "Live chat: available"
        },
        Some(&viewer),
        &body,
    ))
}

#[derive(Deserialize)]
pub struct ToggleForm {
    csrf: Option<String>,
    to: String,
}

pub async fn set(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<ToggleForm>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        csrf::same_origin(&headers, state.https)?;
        return Ok(Redirect::to("/login").into_response());
    };
    csrf::check(&headers, state.https, &cur.session.csrf, f.csrf.as_deref())?;
    let away = match f.to.as_str() {
        "away" => true,
        "available" => false,
        _ => return Ok(Redirect::to("/availability").into_response()),
    };
    let (store, agent, now) = (
        state.store.clone(),
        cur.session.agent.clone(),
        state.clock.now(),
    );
    blocking(move || store.write(|tx| tx.set_chat_away(&agent, away, now))).await?;
    tracing::info!(agent = %cur.session.agent, away, "chat availability set in the web view");
    Ok(Redirect::to("/availability").into_response())
}
