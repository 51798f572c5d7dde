//! `postdesk search QUERY` and `postdesk reindex`: ask the running daemon
//! over its JSON API (`GET /api/v1/search`, `POST /api/v1/search/reindex`)
//! with the configured bearer token. The store is the daemon's (redb
//! allows one process), so these never open it themselves.

use crate::config::Config;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    let path = format!("/api/v1/search?q={}&limit={limit}", percent_encode(query));
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

/// The API listener as a client reaches it (a wildcard address means this machine).
fn api_address(cfg: &Config) -> Result<SocketAddr, ApiClientError> {
    let mut addr: SocketAddr = cfg
        .web
        .listen
        .parse()
        .map_err(|e| ApiClientError::Config(format!("web.listen {:?}: {e}", cfg.web.listen)))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(addr)
}

/// One HTTP/1.1 request with `Connection: close`; the JSON body of a 2xx
/// answer, or the API's `{"error"}` as [`ApiClientError::Refused`].
fn request(cfg: &Config, method: &str, path: &str) -> Result<Value, ApiClientError> {
    let token = cfg
        .api_token()
        .map_err(|e| ApiClientError::Config(e.to_string()))?;
    let addr = api_address(cfg)?;
    let io = |source| ApiClientError::Unreachable { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(io)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| ApiClientError::BadAnswer("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiClientError::BadAnswer(format!("status line {head:?}")))?;
    let body: Value = serde_json::from_slice(&answer[split + 4..])
        .map_err(|e| ApiClientError::BadAnswer(e.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(ApiClientError::Refused {
            status,
            message: body["error"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(body)
}

/// Percent-encodes a query-string value.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            super::percent_encode("\"paper jam\" from:a@b.c grüße&x=1"),
            "%22paper%20jam%22%20from%3Aa%40b.c%20gr%C3%BC%C3%9Fe%26x%3D1"
        );
    }
}
