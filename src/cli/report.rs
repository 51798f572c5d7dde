//! `postdesk report NAME [--since 30d] [--until …] [--queue Q] [--interval
//! day|week] [--recompute] [--format table|csv|json]`: asks the running
//! daemon's JSON API for a report (the store is the daemon's; a second
//! process must not open it) and prints it.
//!
//! The request is one plain HTTP/1.1 GET to `web.listen` on loopback with
//! the configured bearer token; the answer is the API's JSON, printed as
//! is, as CSV (each table after a `# title` line) or as aligned text.

use super::api_client::{self, encode};
use crate::config::Config;
use crate::reports::{Report, to_csv, to_text};
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
    let addr = api_client::api_address(cfg).map_err(ReportCliError::Unreachable)?;
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
    let answer = api_client::request(addr, &token, "GET", &path, TIMEOUT)
        .map_err(|e| ReportCliError::Unreachable(e.to_string()))?;
    if answer.status != 200 {
        return Err(ReportCliError::Refused(format!(
            "{}: {}",
            answer.status,
            answer.error_text()
        )));
    }
    let body = String::from_utf8_lossy(&answer.body).into_owned();
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
