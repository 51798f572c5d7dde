//! `postdesk erase --customer ADDRESS [--dry-run]` and `postdesk retention
//! [--dry-run] [--as-of DATE]`: ask the running daemon (`POST
//! /api/v1/erase`, `POST /api/v1/retention`) to remove a person's data or
//! apply the retention rules (see `store/erase.rs` for what goes and what
//! stays) and print what it did, or would do.

use super::api_client::encode;
use super::search::{ApiClientError, request};
use crate::config::Config;

pub fn erase(cfg: &Config, customer: &str, dry_run: bool) -> Result<String, ApiClientError> {
    let path = format!(
        "/api/v1/erase?customer={}&dry_run={dry_run}",
        encode(customer)
    );
    let v = request(cfg, "POST", &path)?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let tickets: Vec<String> = v["tickets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(|t| format!("#{t}")))
        .collect();
    Ok(format!(
        "{}{} tickets{}; {} messages erased, {} redacted, {} events redacted, {} queued mails dropped\n{}",
        if dry_run {
            "dry run (nothing changed): "
        } else {
            "erased: "
        },
        tickets.len(),
        if tickets.is_empty() {
            String::new()
        } else {
            format!(" ({})", tickets.join(" "))
        },
        n("messages_erased"),
        n("messages_redacted"),
        n("events_redacted"),
        n("jobs_dropped"),
        if n("dictionaries_holding") > 0 {
            "the store's compression dictionaries hold the address or a name: \
             run `postdesk compact` (daemon stopped) to replace them\n"
        } else {
            ""
        },
    ))
}

/// Applies the retention rules now (or as of `as_of`); lists the tickets.
pub fn retention(
    cfg: &Config,
    dry_run: bool,
    as_of: Option<&str>,
) -> Result<String, ApiClientError> {
    let mut path = format!("/api/v1/retention?dry_run={dry_run}");
    if let Some(t) = as_of {
        path.push_str(&format!("&as_of={}", encode(t)));
    }
    let v = request(cfg, "POST", &path)?;
    let tickets = v["tickets"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "{} {} tickets as of {}\n",
        if dry_run {
            "would remove the content of"
        } else {
            "removed the content of"
        },
        tickets.len(),
        v["as_of"].as_str().unwrap_or("?")
    );
    for t in tickets {
        out.push_str(&format!(
            "#{:<8} {}\n",
            t["id"].as_str().unwrap_or("?"),
            t["rule"].as_str().unwrap_or("")
        ));
    }
    Ok(out)
}
