//! The command line's side of the running daemon's listeners: where a
//! client reaches them, and one plain HTTP/1.1 request to the JSON API.
//! `postdesk search`, `reindex`, `report` and `export` ask through
//! [`request`]; `backup` streams its (large) answer itself but finds the
//! daemon the same way; `deliver` finds the SMTP listener with [`reachable`].

use crate::config::Config;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `listen` as a client on this machine reaches it: a wildcard address
/// (`0.0.0.0`, `::`) means loopback.
pub fn reachable(listen: &str) -> Result<SocketAddr, String> {
    let mut addr: SocketAddr = listen.parse().map_err(|e| format!("{listen:?}: {e}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(addr)
}

/// The API listener (`web.listen`) as a client reaches it.
pub fn api_address(cfg: &Config) -> Result<SocketAddr, String> {
    reachable(&cfg.web.listen).map_err(|e| format!("web.listen {e}"))
}

/// Percent-encodes a query-string value (all but RFC 3986's unreserved).
pub fn encode(s: &str) -> String {
    crate::percent::encode(s, crate::percent::UNRESERVED)
}

/// A status and a (de-chunked) body.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The API's `{"error": …}` text, or the body itself.
    pub fn error_text(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_string())
    }
}

/// Why a request got no readable answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("cannot reach the daemon at {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("unreadable answer from the daemon at {0}")]
    Malformed(SocketAddr),
}

/// One request with the bearer `token` and `Connection: close`, waiting at
/// most `timeout` for each read.
pub fn request(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<Answer, RequestError> {
    request_with_body(addr, token, method, path, &[], timeout)
}

/// [`request`] with a body (sent as `application/octet-stream`).
pub fn request_with_body(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, RequestError> {
    let io = |source| RequestError::Unreachable { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .map_err(io)?;
    s.write_all(body).map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    parse_response(&raw).ok_or(RequestError::Malformed(addr))
}

/// Status code and body (de-chunked when sent chunked) of an HTTP/1.1 answer.
fn parse_response(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut body = &raw[split + 4..];
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return Some(Answer {
            status,
            body: body.to_vec(),
        });
    }
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
    Some(Answer { status, body: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(
            parse_response(plain),
            Some(Answer {
                status: 200,
                body: b"{}".to_vec()
            })
        );
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked),
            Some(Answer {
                status: 400,
                body: b"{\"a\"}".to_vec()
            })
        );
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("2026-12-01T00:00:00Z"), "2026-12-01T00%3A00%3A00Z");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:2525").unwrap(),
            "127.0.0.1:2525".parse().unwrap()
        );
        assert_eq!(reachable("[::]:80").unwrap(), "[::1]:80".parse().unwrap());
        assert!(reachable("nowhere").is_err());
    }
}
