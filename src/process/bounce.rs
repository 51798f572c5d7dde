//! Delivery reports taken apart: who could not be reached, the status code,
//! the remote server's words and which server said them. Pure: the
//! processor decides what a report does to a ticket and an address.
//!
//! Reads RFC 3464 DSNs (`message/delivery-status`, also the RFC 6533
//! `message/global-delivery-status`) and, for the servers that send none,
//! the common plain-text forms: qmail's ("Hi. This is the qmail-send
//! program"), Exim's ("The following address(es) failed:"), and any report
//! naming its recipients in `X-Failed-Recipients` (Exim, Gmail). A report
//! read none of these ways gives `None`, and the processor keeps today's
//! handling for it.
//!
//! Everything here comes from a stranger: recipients must be valid
//! mailboxes, texts are made single-line and bounded, and at most
//! [`MAX_RECIPIENTS`] are read from one report.

use crate::syntax;
use regex::Regex;
use std::sync::LazyLock;

/// Recipients read from one report at most.
pub const MAX_RECIPIENTS: usize = 50;
/// Longest diagnostic text kept, in characters.
const MAX_TEXT: usize = 300;
/// Bytes of a plain-text report scanned at most.
const MAX_SCAN: usize = 64 * 1024;

/// What the report says happened to one recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given up: a permanent failure.
    Failed,
    /// Not delivered yet, still being tried.
    Delayed,
    /// Delivered, relayed or expanded: nothing went wrong.
    Delivered,
}

/// Which form the report came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc3464,
    Qmail,
    Exim,
    /// Sendmail's human-readable part without a DSN part.
    SendmailText,
    /// `X-Failed-Recipients` and the first SMTP reply in the text.
    FailedRecipientsHeader,
}

/// One recipient's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Lower-cased, syntax-checked.
    pub address: String,
    pub action: Action,
    /// The enhanced status code (`5.1.1`), when the report gives one.
    pub status: Option<String>,
    /// The remote server's reply or the reporter's explanation.
    pub diagnostic: Option<String>,
    /// The server that refused (host name or address).
    pub remote_mta: Option<String>,
}

/// A delivery report that could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub format: Format,
    /// The server that wrote the report.
    pub reporting_mta: Option<String>,
    pub recipients: Vec<Recipient>,
}

/// An enhanced status code after an SMTP reply code (`550 5.1.1`,
/// `550-5.1.1`) or qmail's `(#5.5.0)`: the surest places.
static STATUS_AFTER_REPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\b[245]\d\d[ -]|#)([245]\.\d{1,3}\.\d{1,3})\b").expect("status regex")
});
/// An enhanced status code standing alone (not part of an IP address).
static STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\d.])([245]\.\d{1,3}\.\d{1,3})(?:$|[^\d.])").expect("status regex")
});
static SMTP_REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[\s:])([45]\d\d)[ -]").expect("smtp reply regex"));
static REMOTE_HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:host|by|server)\s+([a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+)\.?\s*\[([0-9a-f:.]+)\]|\bremote host ([0-9a-f:.]+) said",
    )
    .expect("remote host regex")
});

/// Reads a delivery report, if it is in a form we know.
pub fn parse(raw: &[u8]) -> Option<Report> {
    let parts = super::parse::report_parts(raw)?;
    for text in &parts.status_parts {
        if let Some(report) = parse_dsn(text) {
            return Some(report);
        }
    }
    let mut body = parts.body_text;
    if body.trim().is_empty() {
        // A multipart report without its boundaries has no text part: read
        // what follows the header.
        body = String::from_utf8_lossy(after_header(raw)).into_owned();
    }
    let body = truncate(&body, MAX_SCAN);
    // A report whose MIME structure broke on the way (no boundaries), its
    // DSN fields left in the text.
    if (body.contains("\nFinal-Recipient:") || body.contains("\nOriginal-Recipient:"))
        && let Some(r) = parse_dsn(body)
    {
        return Some(r);
    }
    if let Some(r) = parse_qmail(body) {
        return Some(r);
    }
    if let Some(r) = parse_exim(body) {
        return Some(r);
    }
    if let Some(r) = parse_sendmail_text(body) {
        return Some(r);
    }
    parse_failed_header(&parts.failed_recipients, body)
}

fn after_header(raw: &[u8]) -> &[u8] {
    let at = |sep: &[u8]| {
        raw.windows(sep.len())
            .position(|w| w == sep)
            .map(|p| p + sep.len())
    };
    let start = at(b"\r\n\r\n").or_else(|| at(b"\n\n")).unwrap_or(raw.len());
    &raw[start..raw.len().min(start + MAX_SCAN)]
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `text` as one bounded line.
fn line(text: &str) -> Option<String> {
    let t = syntax::header_text(text.trim(), MAX_TEXT);
    (!t.is_empty()).then_some(t)
}

/// The address in `rfc822; user@example.org` or `<user@example.org>`.
fn address(field: &str) -> Option<String> {
    let v = field.rsplit_once(';').map_or(field, |(_, a)| a).trim();
    let v = v.trim_start_matches('<').trim_end_matches('>').trim();
    syntax::mailbox(v)
}

/// `dns; mx.example.org` → `mx.example.org`.
fn without_type(field: &str) -> &str {
    field.split_once(';').map_or(field, |(_, v)| v).trim()
}

fn action_of(status: Option<&str>, permanent_words: bool) -> Action {
    match status.and_then(|s| s.chars().next()) {
        Some('5') => Action::Failed,
        Some('4') => Action::Delayed,
        Some('2') => Action::Delivered,
        _ if permanent_words => Action::Failed,
        _ => Action::Delayed,
    }
}

/// The enhanced status code in `text`, or one made from its SMTP reply code.
fn status_in(text: &str) -> Option<String> {
    if let Some(c) = STATUS_AFTER_REPLY
        .captures(text)
        .or_else(|| STATUS.captures(text))
    {
        return Some(c[1].to_string());
    }
    SMTP_REPLY
        .captures(text)
        .map(|c| format!("{}.0.0", &c[1][..1]))
}

fn remote_in(text: &str) -> Option<String> {
    let c = REMOTE_HOST.captures(text)?;
    c.get(1)
        .or_else(|| c.get(3))
        .map(|m| m.as_str().to_ascii_lowercase())
}

/// Header-like fields (with continuation lines) in groups separated by blank lines.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for l in text.lines() {
        if l.trim().is_empty() {
            if !cur.is_empty() {
                groups.push(std::mem::take(&mut cur));
            }
        } else if l.starts_with([' ', '\t']) {
            if let Some(last) = cur.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
        } else if let Some((k, v)) = l.split_once(':') {
            cur.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// RFC 3464 §2.2 and §2.3: per-message fields, then one group per recipient.
fn parse_dsn(text: &str) -> Option<Report> {
    let mut reporting_mta = None;
    let mut recipients = Vec::new();
    for group in field_groups(text) {
        let get = |name: &str| {
            group
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(r) = get("reporting-mta") {
            reporting_mta = line(without_type(r));
        }
        // Original-Recipient is the address we wrote to (Final-Recipient
        // may be where an alias led), so it names our customer.
        let Some(addr) = get("original-recipient")
            .and_then(address)
            .or_else(|| get("final-recipient").and_then(address))
        else {
            continue;
        };
        if recipients.len() >= MAX_RECIPIENTS {
            break;
        }
        let status = get("status").and_then(status_in);
        let action = match get("action").map(|a| a.trim().to_ascii_lowercase()) {
            Some(a) if a.starts_with("failed") => Action::Failed,
            Some(a) if a.starts_with("delayed") => Action::Delayed,
            Some(a)
                if a.starts_with("delivered")
                    || a.starts_with("relayed")
                    || a.starts_with("expanded") =>
            {
                Action::Delivered
            }
            _ => action_of(status.as_deref(), false),
        };
        let diagnostic = get("diagnostic-code").and_then(|d| line(without_type(d)));
        let remote_mta = get("remote-mta").and_then(|r| line(without_type(r)));
        recipients.push(Recipient {
            address: addr,
            action,
            status,
            diagnostic,
            remote_mta,
        });
    }
    (!recipients.is_empty()).then_some(Report {
        format: Format::Rfc3464,
        reporting_mta,
        recipients,
    })
}

/// qmail-send's bounce (also Yahoo's, which copies it): `<addr>:` lines,
/// each followed by the reason, above "--- Below this line is a copy".
fn parse_qmail(body: &str) -> Option<Report> {
    let start = body.find("This is the qmail-send program").or_else(|| {
        body.contains("--- Below this line is a copy of the message")
            .then_some(0)
    })?;
    let permanent = body.contains("permanent error") || body.contains("unable to deliver");
    let end = body
        .find("--- Below this line is a copy of the message")
        .unwrap_or(body.len());
    let section = &body[start..end.max(start)];
    let mut recipients = Vec::new();
    let mut lines = section.lines().peekable();
    while let Some(l) = lines.next() {
        let l = l.trim();
        let Some(addr) = l
            .strip_suffix(':')
            .filter(|a| a.starts_with('<') && a.ends_with('>'))
            .and_then(address)
        else {
            continue;
        };
        let mut reason = String::new();
        while let Some(next) = lines.peek() {
            let n = next.trim();
            if n.is_empty() || (n.starts_with('<') && n.ends_with(">:")) {
                break;
            }
            reason.push_str(n);
            reason.push(' ');
            lines.next();
        }
        let status = status_in(&reason);
        recipients.push(Recipient {
            address: addr,
            action: action_of(status.as_deref(), permanent),
            remote_mta: remote_in(&reason),
            status,
            diagnostic: line(&reason),
        });
        if recipients.len() >= MAX_RECIPIENTS {
            break;
        }
    }
    let reporting_mta = section
        .lines()
        .next()
        .filter(|l| l.contains("qmail-send"))
        .and_then(|l| l.split(" at ").nth(1))
        .and_then(|h| line(h.trim_end_matches('.')));
    (!recipients.is_empty()).then_some(Report {
        format: Format::Qmail,
        reporting_mta,
        recipients,
    })
}

/// Exim's bounce: after "The following address(es) failed:", each address
/// indented by two spaces, its reason indented further.
fn parse_exim(body: &str) -> Option<Report> {
    let marker = "address(es) failed:";
    let at = body.find(marker)?;
    let permanent = body[..at].contains("permanent error");
    let section = &body[at + marker.len()..];
    let mut recipients = Vec::new();
    let mut lines = section.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("------") {
            break;
        }
        let indent = l.len() - l.trim_start().len();
        let t = l.trim();
        if t.is_empty() || indent == 0 || indent > 2 {
            continue;
        }
        let Some(addr) = t.split_whitespace().next().and_then(address) else {
            continue;
        };
        let mut reason = String::new();
        while let Some(next) = lines.peek() {
            let ni = next.len() - next.trim_start().len();
            if next.trim().is_empty() || ni <= 2 {
                break;
            }
            reason.push_str(next.trim());
            reason.push(' ');
            lines.next();
        }
        let status = status_in(&reason);
        recipients.push(Recipient {
            address: addr,
            action: action_of(status.as_deref(), permanent),
            remote_mta: remote_in(&reason),
            status,
            diagnostic: line(&reason),
        });
        if recipients.len() >= MAX_RECIPIENTS {
            break;
        }
    }
    (!recipients.is_empty()).then_some(Report {
        format: Format::Exim,
        reporting_mta: None,
        recipients,
    })
}

/// Sendmail's human-readable part (and those copying it) when no DSN part
/// survived: addresses under "----- The following addresses had permanent
/// fatal errors -----", the reason in the session transcript below.
fn parse_sendmail_text(body: &str) -> Option<Report> {
    let (at, marker) = [
        "The following addresses had permanent fatal errors",
        "The following addresses had delivery errors",
    ]
    .iter()
    .find_map(|m| body.find(m).map(|at| (at, *m)))?;
    let permanent = marker.contains("permanent");
    let rest = &body[at + marker.len()..];
    let rest = rest.split_once('\n').map_or("", |(_, r)| r);
    let mut addresses = Vec::new();
    for l in rest.lines() {
        let t = l.trim();
        if t.starts_with("---") || (t.is_empty() && !addresses.is_empty()) {
            break;
        }
        let candidate = t
            .trim_start_matches(">>>")
            .split(|c: char| c.is_whitespace() || c == '<' || c == '>')
            .find(|w| w.contains('@'));
        if let Some(a) = candidate.and_then(address)
            && !addresses.contains(&a)
        {
            addresses.push(a);
        }
    }
    let transcript = body
        .find("Transcript of session follows")
        .map_or("", |t| &body[t..]);
    let reply = transcript
        .lines()
        .skip(1)
        .find(|l| SMTP_REPLY.is_match(&format!(" {}", l.trim_start())))
        .unwrap_or("");
    let status = status_in(reply);
    let recipients: Vec<Recipient> = addresses
        .into_iter()
        .take(MAX_RECIPIENTS)
        .map(|address| Recipient {
            address,
            action: action_of(status.as_deref(), permanent),
            status: status.clone(),
            diagnostic: line(reply),
            remote_mta: remote_in(transcript),
        })
        .collect();
    (!recipients.is_empty()).then_some(Report {
        format: Format::SendmailText,
        reporting_mta: None,
        recipients,
    })
}

/// Recipients named by `X-Failed-Recipients`; the reason is the first line
/// of the text holding an SMTP reply.
fn parse_failed_header(failed: &[String], body: &str) -> Option<Report> {
    let reply_line = body
        .lines()
        .take_while(|l| !l.starts_with("----- Original message"))
        .find(|l| SMTP_REPLY.is_match(&format!(" {l}")) && STATUS.is_match(l))
        .or_else(|| {
            body.lines()
                .find(|l| SMTP_REPLY.is_match(&format!(" {}", l.trim_start())))
        })
        .unwrap_or("");
    let permanent = body.contains("permanent");
    let status = status_in(reply_line);
    let remote_mta = remote_in(body);
    let recipients: Vec<Recipient> = failed
        .iter()
        .filter_map(|a| address(a))
        .take(MAX_RECIPIENTS)
        .map(|address| Recipient {
            address,
            action: action_of(status.as_deref(), permanent),
            status: status.clone(),
            diagnostic: line(reply_line),
            remote_mta: remote_mta.clone(),
        })
        .collect();
    (!recipients.is_empty()).then_some(Report {
        format: Format::FailedRecipientsHeader,
        reporting_mta: None,
        recipients,
    })
}

#[cfg(test)]
mod tests;
