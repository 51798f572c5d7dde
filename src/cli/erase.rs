//! `postdesk erase --customer ADDRESS [--dry-run]`: asks the running daemon
//! (`POST /api/v1/erase`) to remove a person's messages and personal data
//! (see `store/erase.rs` for what goes and what stays) and prints what it
//! did, or would do.

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
        "{}{} tickets{}; {} messages erased, {} redacted, {} events redacted, {} queued mails dropped\n",
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
    ))
}
