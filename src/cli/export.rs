//! `postdesk export`: everything a team would take with it, from the
//! running daemon's API. `--format json`: one line per ticket, the ticket as
//! `GET /api/v1/tickets/N` gives it (messages, events, participants, SLA).
//! `--format mbox`: the tickets' messages byte for byte in mboxrd (the
//! format mutt and Python's `mailbox` read), in ticket order, the bytes
//! unchanged but for LF line ends and mboxrd's `>From ` quoting.

use super::api_client;
use super::backup::{BackupError, api_address, read_token};
use crate::config::Config;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum ExportFormat {
    Json,
    Mbox,
}

/// One GET against the API: (status, body).
fn get(addr: SocketAddr, token: &str, path: &str) -> Result<(u16, Vec<u8>), BackupError> {
    let answer = api_client::request(addr, token, "GET", path, Duration::from_secs(120)).map_err(
        |e| match e {
            api_client::RequestError::Unreachable { addr, source } => BackupError::Unreachable {
                addr: addr.to_string(),
                source,
            },
            malformed => BackupError::Refused(malformed.to_string()),
        },
    )?;
    Ok((answer.status, answer.body))
}

fn get_ok(addr: SocketAddr, token: &str, path: &str) -> Result<Vec<u8>, BackupError> {
    let (code, body) = get(addr, token, path)?;
    if code != 200 {
        return Err(BackupError::Refused(format!(
            "GET {path}: {code} {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    Ok(body)
}

fn get_json(addr: SocketAddr, token: &str, path: &str) -> Result<Value, BackupError> {
    let body = get_ok(addr, token, path)?;
    serde_json::from_slice(&body)
        .map_err(|e| BackupError::Refused(format!("GET {path}: not JSON: {e}")))
}

/// Every ticket id, oldest first (or just `only`).
fn ticket_ids(
    addr: SocketAddr,
    token: &str,
    only: Option<u64>,
) -> Result<Vec<String>, BackupError> {
    if let Some(id) = only {
        return Ok(vec![id.to_string()]);
    }
    let mut ids = Vec::new();
    loop {
        let page = get_json(
            addr,
            token,
            &format!("/api/v1/tickets?limit=500&offset={}", ids.len()),
        )?;
        let tickets = page["tickets"].as_array().cloned().unwrap_or_default();
        if tickets.is_empty() {
            break;
        }
        ids.extend(
            tickets
                .iter()
                .filter_map(|t| t["id"].as_str().map(String::from)),
        );
        if ids.len() as u64 >= page["total"].as_u64().unwrap_or(0) {
            break;
        }
    }
    ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
    ids.dedup();
    Ok(ids)
}

/// Writes the export to `out`; returns (tickets, messages) written.
pub fn export(
    cfg: &Config,
    token_file: Option<&Path>,
    format: ExportFormat,
    only: Option<u64>,
    out: &mut impl Write,
) -> Result<(usize, usize), BackupError> {
    let token = read_token(cfg, token_file)?;
    let addr = api_address(cfg)?;
    let ids = ticket_ids(addr, &token, only)?;
    let mut messages = 0;
    for id in &ids {
        let ticket = get_json(addr, &token, &format!("/api/v1/tickets/{id}"))?;
        match format {
            ExportFormat::Json => {
                serde_json::to_writer(&mut *out, &ticket).map_err(|e| BackupError::Io(e.into()))?;
                out.write_all(b"\n")?;
                messages += ticket["messages"].as_array().map_or(0, Vec::len);
            }
            ExportFormat::Mbox => {
                for m in ticket["messages"].as_array().into_iter().flatten() {
                    let Some(seq) = m["seq"].as_str() else {
                        continue;
                    };
                    let raw = get_ok(addr, &token, &format!("/api/v1/messages/{seq}/raw"))?;
                    write_mboxrd(out, m, &raw)?;
                    messages += 1;
                }
            }
        }
    }
    out.flush()?;
    Ok((ids.len(), messages))
}

/// One message in mboxrd: a `From ` line, the message with LF line ends and
/// every line that starts with `>*From ` given one more `>`, a blank line.
fn write_mboxrd(out: &mut impl Write, m: &Value, raw: &[u8]) -> std::io::Result<()> {
    let sender = m["from"]
        .as_str()
        .map(crate::address::bare_address)
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .unwrap_or("MAILER-DAEMON");
    let date = m["date"]
        .as_str()
        .and_then(|d| d.parse::<jiff::Timestamp>().ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    writeln!(
        out,
        "From {sender} {}",
        date.strftime("%a %b %e %H:%M:%S %Y")
    )?;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line
            .iter()
            .skip_while(|&&b| b == b'>')
            .take(5)
            .eq(b"From ".iter())
        {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}
