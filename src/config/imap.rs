//! `[[imap]]` tables: the existing mailboxes postdesk polls, and their
//! checks. Kept apart from the rest of the config because it is a
//! self-contained intake setting; the IMAP poller reads these types, and
//! their validation needs only [`crate::tls`] (the CA file), never the poller.

use super::{Config, de_duration};
use crate::diagnostic::{Diagnostic, line_col};
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// One `[[imap]]` table: an existing mailbox whose mail postdesk takes in as
/// if it had arrived by SMTP for `mailbox`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// Label in logs and the health API; default `host/username`.
    pub name: Option<String>,
    pub host: String,
    /// Default 993 with implicit TLS, 143 otherwise.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: ImapTls,
    /// PEM file of the certificate authorities to trust for this server
    /// (a private CA, a self-signed server); default: the system's trust store.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Option<String>,
    /// File holding the password (read at every connect, so rotation needs no restart).
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub auth: ImapAuth,
    /// argv of a command printing an OAuth2 access token (for `auth = "xoauth2"`).
    pub token_command: Option<Vec<String>>,
    #[serde(default = "default_imap_folders")]
    pub folders: Vec<String>,
    /// The support address this mail counts as (a configured `[[mailbox]]`):
    /// it becomes the envelope recipient.
    pub mailbox: String,
    /// What to do with a message on the server once it is durably stored.
    #[serde(default, deserialize_with = "de_after")]
    pub after: ImapAfter,
    /// What the very first poll does with mail already in the folder.
    #[serde(default)]
    pub existing: ImapExisting,
    #[serde(default = "default_poll_interval", deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// Largest message fetched, in bytes; default `smtp.max_message_size`.
    pub max_message_size: Option<u64>,
    /// Messages fetched (and committed) per round trip.
    #[serde(default = "default_imap_batch")]
    pub batch_size: u32,
}

fn default_imap_folders() -> Vec<String> {
    vec!["INBOX".into()]
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_imap_batch() -> u32 {
    100
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapTls {
    /// TLS from the first byte (imaps, port 993).
    #[default]
    Implicit,
    /// Plain connect, then the STARTTLS command (port 143).
    Starttls,
    /// No TLS at all: only for loopback hosts (tests, local proxies).
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapAuth {
    /// The IMAP LOGIN command.
    #[default]
    Login,
    /// AUTHENTICATE PLAIN (RFC 4616).
    Plain,
    /// AUTHENTICATE XOAUTH2 with a token from `token_command`.
    Xoauth2,
}

/// `existing`: what the first poll of a folder does with the mail already in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapExisting {
    /// Take it like new mail (nothing waiting is ever left behind).
    #[default]
    Import,
    /// Leave it: only mail arriving after the first connect becomes tickets
    /// (for a mailbox with years of history, which must not all be answered).
    Skip,
}

/// The `after` setting: what happens to a message on the server after it was stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ImapAfter {
    /// Leave it untouched (postdesk remembers the last UID it took).
    Keep,
    /// Set `\Seen`.
    #[default]
    Seen,
    /// Move it to this folder.
    Move(String),
    /// Delete and expunge it.
    Delete,
}

impl ImapAfter {
    pub fn parse(s: &str) -> Result<ImapAfter, String> {
        match s {
            "keep" => Ok(ImapAfter::Keep),
            "seen" => Ok(ImapAfter::Seen),
            "delete" => Ok(ImapAfter::Delete),
            _ => match s.strip_prefix("move:") {
                Some(folder) if !folder.trim().is_empty() => {
                    Ok(ImapAfter::Move(folder.to_string()))
                }
                _ => Err(format!(
                    "invalid after {s:?}: expected \"keep\", \"seen\", \"move:FOLDER\" or \"delete\""
                )),
            },
        }
    }
}

fn de_after<'de, D: Deserializer<'de>>(d: D) -> Result<ImapAfter, D::Error> {
    let s = String::deserialize(d)?;
    ImapAfter::parse(&s).map_err(serde::de::Error::custom)
}

impl ImapConfig {
    /// The label used in logs and the health API.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}/{}", self.host, self.username))
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            ImapTls::Implicit => 993,
            ImapTls::Starttls | ImapTls::None => 143,
        })
    }

    /// Identity of one polled folder in the cursor table. Built from the server
    /// and login, not `name`, so renaming an account keeps its position.
    pub fn cursor_key(&self, folder: &str) -> String {
        format!(
            "{}@{}:{}/{}",
            self.username,
            self.host.to_ascii_lowercase(),
            self.port(),
            folder
        )
    }
}

/// True for `localhost` and loopback IP literals: where `tls = "none"` is allowed.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    /// Checks every `[[imap]]` table; positions point into the n-th table.
    pub(super) fn validate_imap(&self, text: &str, out: &mut Vec<Diagnostic>) {
        let starts: Vec<usize> = text.match_indices("[[imap]]").map(|(o, _)| o).collect();
        let mut keys = std::collections::HashSet::new();
        for (i, a) in self.imap.iter().enumerate() {
            let from = starts.get(i).copied().unwrap_or(0);
            let mut err = |needle: &str, message: String| {
                let (line, column) = text[from..]
                    .find(needle)
                    .map_or_else(|| line_col(text, from), |o| line_col(text, from + o));
                out.push(Diagnostic {
                    file: self.path.clone(),
                    line,
                    column,
                    message: format!("imap {:?}: {message}", a.name()),
                });
            };
            if a.host.trim().is_empty() || a.host.contains(char::is_whitespace) {
                err("host", "host must be a host name or IP address".into());
            }
            if a.tls == ImapTls::None && !is_loopback_host(&a.host) {
                err(
                    "tls",
                    "tls = \"none\" sends the password in clear text: only allowed for loopback hosts (use \"implicit\" or \"starttls\")".into(),
                );
            }
            if let Some(ca) = &a.ca_file {
                if a.tls == ImapTls::None {
                    err(
                        "ca_file",
                        "ca_file is only used with tls = \"implicit\" or \"starttls\"".into(),
                    );
                } else if let Err(e) = crate::tls::load_ca_file(&self.base_dir.join(ca)) {
                    err("ca_file", e);
                }
            }
            if a.username.is_empty() {
                err("username", "username must not be empty".into());
            }
            let secrets =
                usize::from(a.password.is_some()) + usize::from(a.password_file.is_some());
            match a.auth {
                ImapAuth::Xoauth2 => {
                    if a.token_command.as_ref().is_none_or(|c| c.is_empty()) {
                        err(
                            "auth",
                            "auth = \"xoauth2\" needs token_command (argv of a command printing an access token)".into(),
                        );
                    }
                    if secrets > 0 {
                        err("password", "password/password_file are not used with auth = \"xoauth2\"; remove them".into());
                    }
                }
                ImapAuth::Login | ImapAuth::Plain => {
                    if secrets != 1 {
                        err(
                            "username",
                            "exactly one of password or password_file is needed".into(),
                        );
                    }
                    if a.token_command.is_some() {
                        err(
                            "token_command",
                            "token_command is only used with auth = \"xoauth2\"".into(),
                        );
                    }
                }
            }
            if a.folders.is_empty() || a.folders.iter().any(|f| f.trim().is_empty()) {
                err(
                    "folders",
                    "folders must list at least one non-empty folder name".into(),
                );
            }
            for f in &a.folders {
                if !keys.insert(a.cursor_key(f)) {
                    err(
                        "folders",
                        format!("folder {f:?} of {}@{} is polled twice", a.username, a.host),
                    );
                }
            }
            if self.mailbox_for(&a.mailbox).is_none() {
                err(
                    "mailbox",
                    format!(
                        "mailbox {:?} is not a configured [[mailbox]] address",
                        a.mailbox
                    ),
                );
            }
            if let ImapAfter::Move(dest) = &a.after
                && a.folders.iter().any(|f| f == dest)
            {
                err(
                    "after",
                    format!("after = \"move:{dest}\" moves into a folder that is polled itself"),
                );
            }
            if a.poll_interval < Duration::from_secs(1) {
                err("poll_interval", "poll_interval must be at least 1s".into());
            }
            if a.batch_size == 0 || a.batch_size > 10_000 {
                err(
                    "batch_size",
                    "batch_size must be between 1 and 10000".into(),
                );
            }
            if a.max_message_size == Some(0) {
                err(
                    "max_message_size",
                    "max_message_size must be at least 1".into(),
                );
            }
        }
    }

    /// Largest message an IMAP account fetches.
    pub fn imap_max_message_size(&self, a: &ImapConfig) -> u64 {
        a.max_message_size.unwrap_or(self.smtp.max_message_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::MINIMAL;
    use std::path::Path;

    const IMAP: &str = r#"
[[imap]]
host = "127.0.0.1"
tls = "none"
username = "tester"
password = "secret"
mailbox = "support@example.test"
"#;

    #[test]
    fn imap_defaults() {
        let text = format!("{MINIMAL}{IMAP}");
        let c = Config::from_str(&text, Path::new("c.toml")).unwrap();
        let a = &c.imap[0];
        assert_eq!(a.port(), 143);
        assert_eq!(a.folders, vec!["INBOX".to_string()]);
        assert_eq!(a.after, ImapAfter::Seen);
        assert_eq!(a.auth, ImapAuth::Login);
        assert_eq!(a.poll_interval, Duration::from_secs(60));
        assert_eq!(a.batch_size, 100);
        assert_eq!(c.imap_max_message_size(a), 25 * 1024 * 1024);
        assert_eq!(a.name(), "127.0.0.1/tester");
    }

    #[test]
    fn imap_after_modes() {
        assert_eq!(
            ImapAfter::parse("move:Done").unwrap(),
            ImapAfter::Move("Done".into())
        );
        assert_eq!(ImapAfter::parse("delete").unwrap(), ImapAfter::Delete);
        assert!(ImapAfter::parse("move:").is_err());
        let text = format!("{MINIMAL}{IMAP}after = \"archive\"\n");
        let e = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
        let line = text.lines().position(|l| l.starts_with("after")).unwrap() + 1;
        assert_eq!(e.0[0].line, line, "{e}");
    }

    #[test]
    fn imap_problems_point_into_their_table() {
        let second = IMAP
            .replace("127.0.0.1", "imap.example.org")
            .replace("password = \"secret\"\n", "")
            .replace("support@example.test", "sales@example.test");
        let text = format!("{MINIMAL}{IMAP}{second}");
        let e = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
        let msgs = e.to_string();
        assert_eq!(e.0.len(), 3, "{msgs}");
        assert!(msgs.contains("loopback"), "{msgs}");
        assert!(msgs.contains("exactly one of password"), "{msgs}");
        assert!(msgs.contains("sales@example.test"), "{msgs}");
        let second_start = text.rfind("[[imap]]").unwrap();
        let (second_line, _) = line_col(&text, second_start);
        assert!(e.0.iter().all(|d| d.line > second_line), "{msgs}");
    }

    #[test]
    fn imap_xoauth2_needs_token_command() {
        let text = format!("{MINIMAL}{IMAP}auth = \"xoauth2\"\n");
        let e = Config::from_str(&text, Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("token_command"), "{e}");
        let ok =
            format!("{MINIMAL}{IMAP}auth = \"xoauth2\"\ntoken_command = [\"echo\", \"tok\"]\n")
                .replace("password = \"secret\"\n", "");
        Config::from_str(&ok, Path::new("c.toml")).unwrap();
    }
}
