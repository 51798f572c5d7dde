//! `/login` and `/logout`. A wrong password and an unknown account get
//! the same answer after the same work (the unknown one is verified against
//! a dummy hash). Attempts are limited per client address and failures per
//! account name, in memory (a restart forgets them; one daemon serves one
//! desk, so there is nothing to share).

use super::html::{self, esc};
use super::{Shared, WebError, blocking, csrf, session};
use crate::model::WebSession;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// Attempts one client address may make per window (successful ones are
/// given back).
pub const MAX_ATTEMPTS_PER_ADDRESS: u32 = 20;
/// Failed attempts one account name may take per window, from anywhere.
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 10;
/// The window, seconds.
pub const WINDOW: i64 = 600;
/// Beyond this many remembered keys, expired windows are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// Login attempt counters.
#[derive(Default)]
pub struct Limiter {
    by_address: Mutex<HashMap<IpAddr, (i64, u32)>>,
    by_account: Mutex<HashMap<String, (i64, u32)>>,
}

fn count<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, (i64, u32)>>, key: K, now: i64) -> u32 {
    let mut m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if m.len() > PRUNE_ABOVE {
        m.retain(|_, (start, _)| now - *start < WINDOW);
    }
    let e = m.entry(key).or_insert((now, 0));
    if now - e.0 >= WINDOW {
        *e = (now, 0);
    }
    e.1 += 1;
    e.1
}

fn peek<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, (i64, u32)>>, key: &K, now: i64) -> u32 {
    let m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.get(key)
        .filter(|(start, _)| now - *start < WINDOW)
        .map_or(0, |(_, n)| *n)
}

impl Limiter {
    /// Counts this attempt; false when the address or the account is over its limit.
    fn allow(&self, ip: IpAddr, account: &str, now: i64) -> bool {
        let by_ip = count(&self.by_address, ip, now);
        by_ip <= MAX_ATTEMPTS_PER_ADDRESS
            && peek(&self.by_account, &account.to_string(), now) < MAX_FAILURES_PER_ACCOUNT
    }

    fn failed(&self, account: &str, now: i64) {
        count(&self.by_account, account.to_string(), now);
    }

    /// A successful login gives its address's attempt back: only failures
    /// use the allowance up (counted before verifying, so a burst of
    /// parallel guesses is cut off all the same).
    fn succeeded(&self, ip: IpAddr) {
        let mut m = self
            .by_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = m.get_mut(&ip) {
            e.1 = e.1.saturating_sub(1);
        }
    }
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let note = message
        .map(|m| format!(r#"<p class="error" role="alert">{}</p>"#, esc(m)))
        .unwrap_or_default();
    html::page(
        status,
        "Log in",
        None,
        &format!(
            r#"<section class="login"><h1>Log in</h1>{note}<form method="post" action="/login">
<label for="username">Agent name or address</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button></form></section>"#
        ),
    )
}

pub async fn form() -> Response {
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

const REFUSED: &str = "Wrong name or password.";

pub async fn submit(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, WebError> {
    // No session yet, so no token: the origin check guards against a
    // foreign page logging the browser in to an attacker's account.
    csrf::same_origin(&headers, state.https)?;
    let now = state.clock.now();
    let account = f.username.trim().to_lowercase();
    if !state.limiter.allow(peer.ip(), &account, now) {
        tracing::warn!(client = %peer.ip(), "web login rate-limited");
        return Ok(login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many attempts. Try again in a few minutes."),
        ));
    }
    let rules = state.rules.current();
    let agent = rules
        .agents
        .by_name(&account)
        .or_else(|| rules.agents.by_address(&account))
        .filter(|a| a.password_hash.is_some())
        .cloned();
    // Without an account the same work is done against a dummy hash.
    let phc = agent.as_ref().and_then(|a| a.password_hash.clone());
    let password = f.password;
    let matches =
        tokio::task::spawn_blocking(move || crate::password::verify(&password, phc.as_deref()))
            .await
            .map_err(|e| WebError::Internal(format!("task failed: {e}")))?;
    let Some(agent) = agent.filter(|_| matches) else {
        state.limiter.failed(&account, now);
        tracing::info!(client = %peer.ip(), "web login refused");
        return Ok(login_page(StatusCode::UNAUTHORIZED, Some(REFUSED)));
    };
    state.limiter.succeeded(peer.ip());
    // A new id at every login: a session id planted before login is useless.
    let old = session::cookie_value(&headers, session::cookie_name(state.https));
    let id = session::random_hex()?;
    let record = WebSession {
        agent: agent.name.clone(),
        created: now,
        last_seen: now,
        csrf: session::random_hex()?,
    };
    let key = session::key_of(&id);
    let store = state.store.clone();
    let idle_before = now - state.session_idle;
    blocking(move || {
        if let Some(old) = old {
            store.remove_web_session(&session::key_of(&old))?;
        }
        store.put_web_session(&key, &record, idle_before)
    })
    .await?;
    tracing::info!(agent = %agent.name, client = %peer.ip(), "web login");
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = session::set_cookie(state.https, &id).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct TokenForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Result<Response, WebError> {
    let Some(cur) = session::current(&state, &headers).await? else {
        csrf::same_origin(&headers, state.https)?;
        return Ok(Redirect::to("/login").into_response());
    };
    csrf::check(&headers, state.https, &cur.session.csrf, f.csrf.as_deref())?;
    let store = state.store.clone();
    let key = cur.key.clone();
    blocking(move || store.remove_web_session(&key)).await?;
    tracing::info!(agent = %cur.session.agent, "web logout");
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = session::clear_cookie(state.https).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_failures_per_account_and_attempts_per_address() {
        let l = Limiter::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            assert!(l.allow(ip, "alice", 1000));
            l.failed("alice", 1000);
        }
        assert!(
            !l.allow(other, "alice", 1001),
            "the account is locked from anywhere"
        );
        assert!(l.allow(other, "bob", 1001));
        assert!(l.allow(other, "alice", 1000 + WINDOW), "the window passed");
        // Successful logins do not use up the address's allowance.
        let l = Limiter::default();
        for _ in 0..3 * MAX_ATTEMPTS_PER_ADDRESS {
            assert!(l.allow(ip, "alice", 1000));
            l.succeeded(ip);
        }
        for _ in 0..MAX_ATTEMPTS_PER_ADDRESS {
            assert!(l.allow(ip, "mallory", 1000));
        }
        assert!(!l.allow(ip, "carol", 1000));
    }
}
