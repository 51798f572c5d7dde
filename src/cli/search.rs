//! `postdesk search QUERY` and `postdesk reindex`: ask the running daemon
//! over its JSON API (`GET /api/v1/search`, `POST /api/v1/search/reindex`)
//! with the configured bearer token. The store is the daemon's (redb
//! allows one process), so these never open it themselves.

use super::api_client::{self, encode};
use crate::config::Config;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a command got no answer; the text is for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error("config: {0}")]
    Config(String),
    #[error("cannot reach the daemon at {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the daemon answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("unreadable answer from the daemon: {0}")]
    BadAnswer(String),
}

/// A search or reindex waits this long (a rebuild of a large store takes a while).
const TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs `query` in the daemon; text lines for people, or the API's JSON.
pub fn search(
    cfg: &Config,
    query: &str,
    limit: usize,
    json: bool,
) -> Result<String, ApiClientError> {
    let path = format!("/api/v1/search?q={}&limit={limit}", encode(query));
    let v = request(cfg, "GET", &path)?;
    if json {
        return Ok(format!("{v:#}\n"));
    }
    let mut out = format!("{} tickets\n", v["total"].as_u64().unwrap_or(0));
    for t in v["tickets"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "#{:<7} {:>6.2}  {:<9} {}  <{}>\n          {}\n",
            t["id"].as_str().unwrap_or("?"),
            t["score"].as_f64().unwrap_or(0.0),
            t["status"].as_str().unwrap_or(""),
            t["subject"].as_str().unwrap_or(""),
            t["requester"].as_str().unwrap_or(""),
            t["snippet_text"].as_str().unwrap_or("").trim(),
        ));
    }
    Ok(out)
}

/// Rebuilds the daemon's search index; says how many tickets and how long.
pub fn reindex(cfg: &Config) -> Result<String, ApiClientError> {
    let v = request(cfg, "POST", "/api/v1/search/reindex")?;
    Ok(format!(
        "search index rebuilt: {} tickets in {} ms\n",
        v["tickets"].as_u64().unwrap_or(0),
        v["elapsed_ms"].as_u64().unwrap_or(0)
    ))
}

/// One request to the daemon's API; the JSON body of a 2xx answer, or the
/// API's `{"error"}` as [`ApiClientError::Refused`].
pub(super) fn request(cfg: &Config, method: &str, path: &str) -> Result<Value, ApiClientError> {
    let token = cfg
        .api_token()
        .map_err(|e| ApiClientError::Config(e.to_string()))?;
    let addr = api_client::api_address(cfg).map_err(ApiClientError::Config)?;
    let answer = api_client::request(addr, &token, method, path, TIMEOUT).map_err(|e| match e {
        api_client::RequestError::Unreachable { addr, source } => {
            ApiClientError::Unreachable { addr, source }
        }
        malformed => ApiClientError::BadAnswer(malformed.to_string()),
    })?;
    if !(200..300).contains(&answer.status) {
        return Err(ApiClientError::Refused {
            status: answer.status,
            message: answer.error_text(),
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| ApiClientError::BadAnswer(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            super::encode("\"paper jam\" from:a@b.c grüße&x=1"),
            "%22paper%20jam%22%20from%3Aa%40b.c%20gr%C3%BC%C3%9Fe%26x%3D1"
        );
    }
}
