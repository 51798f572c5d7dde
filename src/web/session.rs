//! Web view sessions: a random 256-bit id in a cookie, a record in the
//! store under the id's SHA-256 (agent, created, last seen, CSRF token).
//! A session ends after `web.session_idle` without a request, at logout,
//! or when its agent is removed from rules/agents.toml or loses their
//! password.

use super::{Shared, WebError, blocking};
use crate::model::WebSession;
use axum::http::{HeaderMap, header};

/// Cookie name: `__Host-` binds it to our exact origin over HTTPS (the
/// browser refuses it without Secure and Path=/).
pub fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-postdesk"
    } else {
        "postdesk_session"
    }
}

/// 32 random bytes as hex: session ids and CSRF tokens.
pub fn random_hex() -> Result<String, WebError> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| WebError::Internal("no system randomness".into()))?;
    Ok(hex(&b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The store key of a session id.
pub fn key_of(id: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()).as_ref())
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(https: bool, id: &str) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Lax{secure}",
        cookie_name(https)
    )
}

/// `Set-Cookie` that deletes the session cookie.
pub fn clear_cookie(https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        cookie_name(https)
    )
}

/// The value of cookie `name`, if the request has it.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A logged-in agent's session.
pub struct Current {
    pub key: String,
    pub session: WebSession,
}

/// Touching the record at most this often keeps page views from writing.
const TOUCH_EVERY: i64 = 60;

/// The session of this request, if it has a live one.
pub async fn current(state: &Shared, headers: &HeaderMap) -> Result<Option<Current>, WebError> {
    let Some(id) = cookie_value(headers, cookie_name(state.https)) else {
        return Ok(None);
    };
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let key = key_of(&id);
    let store = state.store.clone();
    let k = key.clone();
    let Some(session) = blocking(move || store.web_session(&k)).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    let rules = state.rules.current();
    let agent_may_log_in = rules
        .agents
        .by_name(&session.agent)
        .is_some_and(|a| a.password_hash.is_some());
    let store = state.store.clone();
    let k = key.clone();
    if now - session.last_seen > state.session_idle || !agent_may_log_in {
        tracing::info!(agent = %session.agent, "web session ended (idle or agent gone)");
        blocking(move || store.remove_web_session(&k)).await?;
        return Ok(None);
    }
    if now - session.last_seen >= TOUCH_EVERY {
        blocking(move || store.touch_web_session(&k, now)).await?;
    }
    Ok(Some(Current { key, session }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::agents::Agent;
    use crate::rules::{LiveRules, RuleSet};
    use crate::store::Store;
    use axum::http::HeaderValue;
    use std::sync::Arc;

    fn agent(hash: Option<String>) -> Agent {
        Agent {
            name: "alice".into(),
            display_name: "Alice".into(),
            address: "alice@example.test".into(),
            alternates: vec![],
            queues: vec![],
            skills: vec![],
            password_hash: hash,
        }
    }

    #[tokio::test]
    async fn a_session_ends_when_idle_too_long_or_when_its_agent_loses_the_password() {
        let dir = std::env::temp_dir().join(format!(
            "postdesk-web-session-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let store = Store::open(&dir).unwrap();
        let mut rules = RuleSet::default();
        rules.agents.list.push(agent(Some("$argon2id$x".into())));
        let state: Shared = Arc::new(super::super::WebState {
            store: store.clone(),
            rules: Arc::new(LiveRules::new(rules)),
            clock: crate::clock::Clock::system(),
            session_idle: 3600,
            https: false,
            limiter: Default::default(),
            processor: None,
            presence: Default::default(),
            spool: None,
            search: None,
        });
        let login = |id: &str| {
            let now = state.clock.now();
            let s = WebSession {
                agent: "alice".into(),
                created: now,
                last_seen: now,
                csrf: "t".into(),
            };
            store.put_web_session(&key_of(id), &s, now - 3600).unwrap();
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("other=1; postdesk_session={id}")).unwrap(),
            );
            h
        };
        let id = "a".repeat(64);
        let h = login(&id);
        assert!(current(&state, &h).await.unwrap().is_some());
        // Activity within the idle time keeps it alive...
        state.clock.advance(3000);
        assert!(current(&state, &h).await.unwrap().is_some());
        state.clock.advance(3000);
        assert!(current(&state, &h).await.unwrap().is_some());
        // ...an hour and a second without a request ends it, in the store too.
        state.clock.advance(3601);
        assert!(current(&state, &h).await.unwrap().is_none());
        assert!(store.web_session(&key_of(&id)).unwrap().is_none());

        let id = "b".repeat(64);
        let h = login(&id);
        assert!(current(&state, &h).await.unwrap().is_some());
        let mut rules = RuleSet::default();
        rules.agents.list.push(agent(None));
        state.rules.replace(rules);
        assert!(current(&state, &h).await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
