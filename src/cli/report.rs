//! `postdesk report NAME [--since 30d] [--until …] [--queue Q] [--interval
//! day|week] [--recompute] [--format table|csv|json]`: asks the running
//! daemon's JSON API for a report (the store is the daemon's; a second
//! process must not open it) and prints it.
//!
//! The request is one plain HTTP/1.1 GET to `web.listen` on loopback with
//! the configured bearer token; the answer is the API's JSON, printed as
//! is, as CSV (each table after a `# title` line) or as aligned text.

use crate::config::Config;
use crate::reports::{Report, to_csv, to_text};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// What the report request asks for, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub name: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub queue: Option<String>,
    pub interval: Option<String>,
    pub recompute: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportCliError {
    /// The daemon could not be asked (down, wrong address, no token).
    #[error("cannot reach the daemon: {0}")]
    Unreachable(String),
    /// The daemon answered with an error (bad period, unknown report).
    #[error("the daemon refused: {0}")]
    Refused(String),
}

/// How long the whole request may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Fetches the report and renders it in `format`.
pub fn report(cfg: &Config, req: &Request, format: Format) -> Result<String, ReportCliError> {
    let token = cfg
        .api_token()
        .map_err(|e| ReportCliError::Unreachable(e.to_string()))?;
    let addr = api_address(cfg)?;
    let mut query = Vec::new();
    for (k, v) in [
        ("since", &req.since),
        ("until", &req.until),
        ("queue", &req.queue),
        ("interval", &req.interval),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={}", encode(v)));
        }
    }
    if req.recompute {
        query.push("recompute=1".into());
    }
    let path = format!("/api/v1/reports/{}?{}", encode(&req.name), query.join("&"));
    let body = get(addr, &path, &token)?;
    if format == Format::Json {
        return Ok(body);
    }
    let report: Report = serde_json::from_str(&body)
        .map_err(|e| ReportCliError::Unreachable(format!("unreadable answer: {e}")))?;
    let mut out = String::new();
    for t in &report.tables {
        match format {
            Format::Csv => {
                out.push_str(&format!("# {}\r\n", t.title));
                out.push_str(&to_csv(t));
            }
            _ => {
                out.push_str(&to_text(t));
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// `web.listen`, with an unspecified address (0.0.0.0) replaced by loopback.
fn api_address(cfg: &Config) -> Result<SocketAddr, ReportCliError> {
    let mut addr: SocketAddr = cfg.web.listen.parse().map_err(|e| {
        ReportCliError::Unreachable(format!("web.listen {:?}: {e}", cfg.web.listen))
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(addr)
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One GET with `Connection: close`; the body of a 200, else the API's error.
fn get(addr: SocketAddr, path: &str, token: &str) -> Result<String, ReportCliError> {
    let unreachable = |e: std::io::Error| ReportCliError::Unreachable(format!("{addr}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(unreachable)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(unreachable)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(unreachable)?;
    let (status, body) = parse_response(&raw)
        .ok_or_else(|| ReportCliError::Unreachable("malformed HTTP answer".into()))?;
    if status == 200 {
        return Ok(body);
    }
    let msg = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| body.trim().to_string());
    Err(ReportCliError::Refused(format!("{status}: {msg}")))
}

/// Status code and body (de-chunked when sent chunked) of an HTTP/1.1 answer.
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
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
        return Some((status, String::from_utf8_lossy(body).into_owned()));
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
    Some((status, String::from_utf8_lossy(&out).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((200, "{}".into())));
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((400, "{\"a\"}".into())));
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("2026-12-01T00:00:00Z"), "2026-12-01T00%3A00%3A00Z");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
