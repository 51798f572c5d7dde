//! rules/chat.toml: the sites that embed the live chat widget, and the
//! chat's limits.
//!
//! ```toml
//! [limits]                       # every key optional; defaults below
//! conversations_per_ip_per_day = 30
//! conversations_per_visitor_per_day = 10
//! messages_per_minute = 20
//! max_message_bytes = 2000
//! streams_per_ip = 6
//! idle_seconds = 600             # transcript mailed after this long without the visitor
//! keep_conversations = "30d"     # an ended conversation's record, after the visitor left
//!
//! [[site]]
//! id = "www"
//! origins = ["https://www.example.com"]
//! queue = "general"
//! greeting = "Hello! How can we help?"
//! calendar = "default"           # rules/calendar.toml; absent: always open
//! outside_hours = "/new"         # where a visitor goes while closed
//! secret_file = "credential:chat-www"   # or secret = "…": verified identities
//! ```
//!
//! A site is the unit of trust: its origins are the only pages that may
//! frame the chat and the only origins whose requests it answers, and its
//! secret is the only key that vouches for a visitor's address.

use super::{diag_at, toml_diag};
use crate::diagnostic::Diagnostic;
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// The chat's limits; each guards the desk against one kind of flood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// New conversations one client address may open per UTC day.
    pub conversations_per_ip_per_day: u32,
    /// New conversations one visitor token may open per UTC day.
    pub conversations_per_visitor_per_day: u32,
    /// Lines one visitor may send per minute.
    pub messages_per_minute: u32,
    /// The longest line, in bytes of UTF-8.
    pub max_message_bytes: usize,
    /// Open event streams (and long polls) per client address.
    pub streams_per_ip: u32,
    /// Seconds without the visitor (no stream, no line) after which the
    /// conversation ends and the transcript is mailed.
    pub idle_seconds: i64,
    /// Seconds an ended conversation's record is kept after its visitor
    /// was last there (`keep_conversations`); then it is removed. Its
    /// lines stay: they are the ticket's messages.
    pub keep_conversations: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            conversations_per_ip_per_day: 30,
            conversations_per_visitor_per_day: 10,
            messages_per_minute: 20,
            max_message_bytes: 2000,
            streams_per_ip: 6,
            idle_seconds: 600,
            keep_conversations: 30 * 86_400,
        }
    }
}

/// One site that embeds the widget.
#[derive(Debug, Clone)]
pub struct Site {
    /// Named in `loader.js?site=ID`: letters, digits, - and _.
    pub id: String,
    /// Exact origins (`scheme://host[:port]`) allowed to frame the chat.
    pub origins: Vec<String>,
    /// The queue new chat tickets go to (a mailbox's queue).
    pub queue: String,
    pub greeting: String,
    /// A calendar of rules/calendar.toml; None: always open.
    pub calendar: Option<String>,
    /// Where a visitor is sent outside opening hours.
    pub outside_hours: String,
    /// The shared secret for verified identities; None: every address is
    /// unverified.
    pub secret: Option<Secret>,
}

/// A site's shared secret; its Debug form hides it.
#[derive(Clone)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Site {
    /// Whether `origin` (an Origin header) is one of the site's.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ChatSites {
    pub limits: Limits,
    pub sites: Vec<Site>,
}

impl ChatSites {
    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    limits: Option<LimitsSpec>,
    #[serde(default)]
    site: Vec<SiteSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSpec {
    conversations_per_ip_per_day: Option<u32>,
    conversations_per_visitor_per_day: Option<u32>,
    messages_per_minute: Option<u32>,
    max_message_bytes: Option<Spanned<usize>>,
    streams_per_ip: Option<u32>,
    idle_seconds: Option<Spanned<i64>>,
    keep_conversations: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteSpec {
    id: Spanned<String>,
    origins: Vec<Spanned<String>>,
    queue: Spanned<String>,
    #[serde(default)]
    greeting: Option<String>,
    calendar: Option<Spanned<String>>,
    outside_hours: Option<String>,
    secret: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
}

/// Whether `o` is an origin as browsers send it: scheme, host, optional port; no path.
fn is_origin(o: &str) -> bool {
    let o = o.strip_suffix('/').unwrap_or(o);
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

impl ChatSites {
    /// Parses rules/chat.toml; `dir` resolves a relative `secret_file`,
    /// `calendars` and `queues` are what the sites may name.
    pub fn parse(
        text: &str,
        path: &Path,
        dir: &Path,
        calendars: &[super::calendar::Calendar],
        queues: &[String],
    ) -> Result<ChatSites, Vec<Diagnostic>> {
        let file: File = toml::from_str(text).map_err(|e| vec![toml_diag(path, text, &e)])?;
        let mut diags = Vec::new();
        let mut at = |offset: usize, message: String| {
            diags.push(diag_at(path, text, offset, message));
        };
        let mut limits = Limits::default();
        if let Some(l) = file.limits {
            let d = Limits::default();
            limits = Limits {
                conversations_per_ip_per_day: l
                    .conversations_per_ip_per_day
                    .unwrap_or(d.conversations_per_ip_per_day),
                conversations_per_visitor_per_day: l
                    .conversations_per_visitor_per_day
                    .unwrap_or(d.conversations_per_visitor_per_day),
                messages_per_minute: l.messages_per_minute.unwrap_or(d.messages_per_minute),
                max_message_bytes: l
                    .max_message_bytes
                    .as_ref()
                    .map_or(d.max_message_bytes, |s| *s.get_ref()),
                streams_per_ip: l.streams_per_ip.unwrap_or(d.streams_per_ip),
                idle_seconds: l
                    .idle_seconds
                    .as_ref()
                    .map_or(d.idle_seconds, |s| *s.get_ref()),
                keep_conversations: d.keep_conversations,
            };
            if let Some(m) = &l.max_message_bytes
                && !(1..=65_536).contains(m.get_ref())
            {
                at(m.span().start, "max_message_bytes: 1 to 65536".into());
            }
            if let Some(i) = &l.idle_seconds
                && !(10..=86_400).contains(i.get_ref())
            {
                at(i.span().start, "idle_seconds: 10 to 86400".into());
            }
            if let Some(k) = &l.keep_conversations {
                // At least a day: a visitor who comes back within it
                // continues their conversation (and its ticket).
                match crate::config::parse_duration(k.get_ref()).map(|d| d.as_secs()) {
                    Ok(secs @ 86_400..=315_360_000) => {
                        limits.keep_conversations = secs as i64;
                    }
                    Ok(_) => at(k.span().start, "keep_conversations: 1d to 3650d".into()),
                    Err(e) => at(k.span().start, format!("keep_conversations: {e}")),
                }
            }
        }
        let mut sites: Vec<Site> = Vec::new();
        for spec in file.site {
            let id = spec.id.get_ref().clone();
            if id.is_empty()
                || id.len() > 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                at(
                    spec.id.span().start,
                    format!("site id {id:?}: letters, digits, - and _ (at most 32)"),
                );
            }
            if sites.iter().any(|s| s.id == id) {
                at(
                    spec.id.span().start,
                    format!("site {id:?} is defined twice"),
                );
            }
            if spec.origins.is_empty() {
                at(
                    spec.id.span().start,
                    format!("site {id:?} needs at least one origin"),
                );
            }
            for o in &spec.origins {
                if !is_origin(o.get_ref()) {
                    at(
                        o.span().start,
                        format!(
                            "{:?} is not an origin (scheme://host[:port], no path)",
                            o.get_ref()
                        ),
                    );
                }
            }
            if !queues.iter().any(|q| q == spec.queue.get_ref()) {
                at(
                    spec.queue.span().start,
                    format!(
                        "queue {:?} is no [[mailbox]]'s queue ({})",
                        spec.queue.get_ref(),
                        queues.join(", ")
                    ),
                );
            }
            if let Some(c) = &spec.calendar
                && !calendars.iter().any(|k| &k.name == c.get_ref())
            {
                at(
                    c.span().start,
                    format!("no calendar {:?} in calendar.toml", c.get_ref()),
                );
            }
            let secret = match (&spec.secret, &spec.secret_file) {
                (Some(s), None) if s.get_ref().len() < 16 => {
                    at(s.span().start, "secret: at least 16 characters".into());
                    None
                }
                (Some(s), None) => Some(Secret(s.get_ref().as_bytes().to_vec())),
                (None, Some(f)) => {
                    let read =
                        crate::credentials::resolve(dir, Path::new(f.get_ref())).and_then(|p| {
                            std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
                        });
                    match read {
                        Ok(b) if b.trim_ascii().len() >= 16 => {
                            Some(Secret(b.trim_ascii().to_vec()))
                        }
                        Ok(_) => {
                            at(f.span().start, "secret_file: at least 16 bytes".into());
                            None
                        }
                        Err(e) => {
                            at(f.span().start, format!("secret_file: {e}"));
                            None
                        }
                    }
                }
                (Some(s), Some(_)) => {
                    at(s.span().start, "secret or secret_file, not both".into());
                    None
                }
                (None, None) => None,
            };
            sites.push(Site {
                id,
                origins: spec
                    .origins
                    .iter()
                    .map(|o| o.get_ref().trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
                queue: spec.queue.into_inner(),
                greeting: spec
                    .greeting
                    .unwrap_or_else(|| "Hello! How can we help?".into()),
                calendar: spec.calendar.map(Spanned::into_inner),
                outside_hours: spec.outside_hours.unwrap_or_else(|| "/new".into()),
                secret,
            });
        }
        if diags.is_empty() {
            Ok(ChatSites { limits, sites })
        } else {
            Err(diags)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChatSites, Vec<Diagnostic>> {
        ChatSites::parse(
            text,
            Path::new("chat.toml"),
            Path::new("."),
            &[],
            &["general".to_string()],
        )
    }

    #[test]
    fn sites_parse_with_default_limits_and_problems_have_positions() {
        let ok = "[[site]]\nid = \"www\"\norigins = [\"https://www.example.com/\"]\nqueue = \"general\"\nsecret = \"0123456789abcdef\"\n";
        let s = parse(ok).unwrap();
        let site = s.site("www").unwrap();
        assert!(site.allows("https://WWW.example.com"));
        assert!(!site.allows("https://evil.example"));
        assert_eq!(s.limits, Limits::default());
        assert_eq!(site.outside_hours, "/new");

        let bad_origin =
            "[[site]]\nid = \"www\"\norigins = [\"https://x.test/page\"]\nqueue = \"general\"\n";
        let e = parse(bad_origin).unwrap_err();
        assert_eq!(e[0].line, 3, "{}", e[0]);
        let bad_queue =
            "[[site]]\nid = \"www\"\norigins = [\"https://x.test\"]\nqueue = \"nope\"\n";
        assert_eq!(parse(bad_queue).unwrap_err()[0].line, 4);
        let bad_cal = "[[site]]\nid = \"w\"\norigins = [\"https://x.test\"]\nqueue = \"general\"\ncalendar = \"x\"\n";
        assert_eq!(parse(bad_cal).unwrap_err()[0].line, 5);
        let short = "[[site]]\nid = \"w\"\norigins = [\"https://x.test\"]\nqueue = \"general\"\nsecret = \"short\"\n";
        assert_eq!(parse(short).unwrap_err()[0].line, 5);
        let limits = "[limits]\nmax_message_bytes = 0\n";
        assert_eq!(parse(limits).unwrap_err()[0].line, 2);
        let keep = parse("[limits]\nkeep_conversations = \"7d\"\n").unwrap();
        assert_eq!(keep.limits.keep_conversations, 7 * 86_400);
        for bad in ["\"1h\"", "\"soon\"", "\"4000d\""] {
            let text = format!("[limits]\nidle_seconds = 60\nkeep_conversations = {bad}\n");
            assert_eq!(parse(&text).unwrap_err()[0].line, 3, "{bad}");
        }
    }
}
