//! `postdesk backup FILE` and `postdesk restore FILE`.
//!
//! Backup asks the running daemon for a consistent copy of its store
//! (`GET /api/v1/backup`, a snapshot from one read transaction, so intake
//! goes on) and writes it to FILE only once it is whole, synced and opens as
//! a database: a FILE that exists is a usable backup. Restore puts such a
//! file in place as the store of an empty data directory (the daemon
//! stopped, or a new machine).

use crate::config::Config;
use crate::store::BackupSummary;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot reach the daemon at {addr}: {source}")]
    Unreachable {
        addr: String,
        source: std::io::Error,
    },
    #[error("the daemon answered {0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("the backup does not open as a store: {0}")]
    Invalid(String),
}

/// How long the daemon may be silent while sending the copy.
const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// The daemon's API address as a client reaches it (a wildcard is this machine).
pub(crate) fn api_address(cfg: &Config) -> Result<SocketAddr, BackupError> {
    super::api_client::api_address(cfg).map_err(BackupError::Config)
}

/// The API token: from `token_file` when given, else as the daemon reads it.
pub(crate) fn read_token(cfg: &Config, token_file: Option<&Path>) -> Result<String, BackupError> {
    match token_file {
        Some(f) => Ok(std::fs::read_to_string(f)?.trim().to_string()),
        None => cfg
            .api_token()
            .map_err(|e| BackupError::Config(format!("{e:#} (or pass --token-file)"))),
    }
}

/// Takes a backup through the running daemon into `dest` (which must not exist).
/// `token_file` overrides the config's API token (e.g. when the config names a
/// systemd credential that only the service can read).
pub fn backup(
    cfg: &Config,
    token_file: Option<&Path>,
    dest: &Path,
) -> Result<BackupSummary, BackupError> {
    if dest.exists() {
        return Err(BackupError::Config(format!(
            "{} already exists; choose a new file",
            dest.display()
        )));
    }
    let token = read_token(cfg, token_file)?;
    let addr = api_address(cfg)?;
    let tcp = TcpStream::connect(addr).map_err(|source| BackupError::Unreachable {
        addr: addr.to_string(),
        source,
    })?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut writer = tcp.try_clone()?;
    write!(
        writer,
        "GET /api/v1/backup HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    writer.flush()?;
    let mut reader = BufReader::new(tcp);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length: Option<u64> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok();
        }
    }
    if status.split_whitespace().nth(1) != Some("200") {
        let mut body = String::new();
        let _ = reader.take(4096).read_to_string(&mut body);
        return Err(BackupError::Refused(format!(
            "{} {}",
            status.trim(),
            body.trim()
        )));
    }
    let length = length.ok_or_else(|| BackupError::Refused("no Content-Length".into()))?;

    let partial = partial_name(dest);
    let result = (|| {
        let mut out = std::fs::File::create(&partial)?;
        let copied = std::io::copy(&mut reader.take(length), &mut out)?;
        if copied != length {
            return Err(BackupError::Refused(format!(
                "the copy ended after {copied} of {length} bytes"
            )));
        }
        out.sync_all()?;
        drop(out);
        let summary = crate::store::inspect_backup(&partial)
            .map_err(|e| BackupError::Invalid(e.to_string()))?;
        std::fs::rename(&partial, dest)?;
        Ok(summary)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn partial_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Restores `file` as the store of the config's data directory, which must
/// not hold one.
pub fn restore(cfg: &Config, file: &Path) -> Result<BackupSummary, BackupError> {
    crate::store::restore(file, &cfg.data_dir()).map_err(|e| BackupError::Invalid(e.to_string()))
}
