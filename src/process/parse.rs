//! Our view of a message: the fields later stages need, extracted once with
//! mail-parser. Parsing never fails: a message mail-parser cannot read still
//! yields a `Parsed` (with what the envelope tells), so nothing is dropped.

use crate::syntax;
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};

#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: String,
    /// Lower-cased From address; empty when absent.
    pub from: String,
    pub from_name: String,
    /// Lower-cased To and Cc addresses.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub date: Option<i64>,
    /// Visible text of the first text body (derived from HTML when there is no text part).
    pub text: String,
    /// The first text body's HTML when it has no text/plain alternative: the
    /// reply stripper reads its quote markup, which `text` no longer shows.
    pub html: Option<String>,
    /// Top-level headers as (lower-cased name, raw value), in order; bounded in number and size.
    pub headers: Vec<(String, String)>,
    /// Attachments as (lower-cased content type, file name).
    pub attachments: Vec<(String, String)>,
    /// `multipart/report` with its `report-type` (lower-cased), when the message is a report.
    pub report_type: Option<String>,
    /// Message-IDs found in attached messages or headers (DSNs quote our mail this way).
    pub embedded_message_ids: Vec<String>,
    /// Status / Diagnostic-Code lines of a delivery report, for the event detail.
    pub dsn_summary: Option<String>,
    /// mail-parser could not make sense of the message at all.
    pub unparseable: bool,
    /// The first message attached whole (message/rfc822: a forward as
    /// attachment), as a forward block: banner, its From, Date, Subject and
    /// To, and its text. A forward's visible text shows it.
    pub forwarded: Option<String>,
    /// Addresses and Message-IDs the message carried that failed the syntax
    /// checks of [`crate::syntax`] and were dropped, in words (bounded).
    pub dropped: Vec<String>,
}

/// At most this many headers, each at most this long, are kept for rules.
const MAX_HEADERS: usize = 256;
const MAX_HEADER_VALUE: usize = 8192;
/// At most this many To (and as many Cc) addresses are read from a message;
/// the raw message keeps the rest. Participant caps are applied later.
const MAX_ADDRESSES: usize = 1000;
/// At most this many Message-IDs are read from In-Reply-To and References
/// (the last ones: the nearest ancestors).
const MAX_REFERENCES: usize = 100;
/// At most this many dropped values are described.
const MAX_DROPPED: usize = 20;

impl Parsed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    /// The text the sender wrote (see [`visible_text`]). An HTML-only body
    /// goes through the HTML-aware stripper, which sees the quote containers
    /// mail-parser's text conversion flattens away (the quote tests measure
    /// both paths on the corpus).
    pub fn visible_text(&self) -> String {
        match &self.html {
            Some(html) if super::autoreply::forward_subject(&self.subject) => {
                super::quote::visible_text_html_forward(html)
            }
            Some(html) => super::quote::visible_text_html(html),
            None if super::autoreply::forward_subject(&self.subject) => {
                let own = super::quote::visible_text_forward(&self.text);
                match &self.forwarded {
                    Some(block) if own.is_empty() => block.clone(),
                    Some(block) => format!("{own}\n\n{block}"),
                    None => own,
                }
            }
            None => visible_text(&self.text),
        }
    }

    /// Records that `value` of header `field` failed its syntax check.
    fn drop_value(&mut self, field: &str, value: &str) {
        if self.dropped.len() < MAX_DROPPED {
            let shown: String = value.escape_debug().take(80).collect();
            self.dropped.push(format!("{field} \"{shown}\""));
        }
    }

    /// The valid Message-IDs of `ids` (the last [`MAX_REFERENCES`]).
    fn valid_ids(&mut self, field: &str, ids: Vec<String>) -> Vec<String> {
        let skip = ids.len().saturating_sub(MAX_REFERENCES);
        let mut out = Vec::with_capacity(ids.len() - skip);
        for id in ids.into_iter().skip(skip) {
            match syntax::message_id(&id) {
                Some(_) => out.push(id),
                None => self.drop_value(field, &id),
            }
        }
        out
    }

    /// The valid addresses of an address header (the first [`MAX_ADDRESSES`]).
    fn valid_addresses(
        &mut self,
        field: &str,
        a: Option<&mail_parser::Address<'_>>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let Some(a) = a else { return out };
        for x in a.iter().filter_map(|x| x.address()) {
            let x = x.trim();
            if x.is_empty() {
                continue;
            }
            if out.len() == MAX_ADDRESSES {
                self.drop_value(field, "(more addresses than are read)");
                break;
            }
            match syntax::mailbox(x) {
                Some(m) => out.push(m),
                None => self.drop_value(field, x),
            }
        }
        out
    }
}

pub fn parse(raw: &[u8]) -> Parsed {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Parsed {
            unparseable: true,
            ..Parsed::default()
        };
    };
    let mut p = Parsed {
        subject: syntax::header_text(msg.subject().unwrap_or(""), syntax::MAX_SUBJECT),
        date: msg.date().map(|d| d.to_timestamp()),
        ..Parsed::default()
    };
    if let Some(id) = msg.message_id().map(clean_id).filter(|s| !s.is_empty()) {
        match syntax::message_id(&id) {
            Some(id) => p.message_id = Some(id.to_string()),
            None => p.drop_value("Message-ID", &id),
        }
    }
    p.in_reply_to = p.valid_ids("In-Reply-To", id_list(msg.in_reply_to()));
    p.references = p.valid_ids("References", id_list(msg.references()));
    if let Some(a) = msg.from().and_then(|a| a.first()) {
        let from = a.address().unwrap_or("").trim();
        match syntax::mailbox(from) {
            Some(from) => p.from = from,
            None if from.is_empty() => {}
            None => p.drop_value("From", from),
        }
        p.from_name = syntax::header_text(a.name().unwrap_or(""), syntax::MAX_NAME);
    }
    p.to = p.valid_addresses("To", msg.to());
    p.cc = p.valid_addresses("Cc", msg.cc());
    p.text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    if let Some(PartType::Html(html)) = msg.text_part(0).map(|part| &part.body) {
        p.html = Some(html.to_string());
    }
    for (name, value) in msg.headers_raw().take(MAX_HEADERS) {
        let value = value.trim();
        let mut cut = value.len().min(MAX_HEADER_VALUE);
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        p.headers
            .push((name.to_ascii_lowercase(), value[..cut].to_string()));
    }
    for a in msg.attachments() {
        let ct = a
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase())
            .unwrap_or_else(|| "application/octet-stream".into());
        p.attachments
            .push((ct, a.attachment_name().unwrap_or("").to_string()));
    }
    let root = msg.root_part();
    if let Some(ct) = root.content_type()
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        p.report_type = Some(
            ct.attribute("report-type")
                .unwrap_or("")
                .to_ascii_lowercase(),
        );
    }
    collect_embedded(&msg, &mut p);
    p
}

/// Message-IDs and DSN fields from the parts of a report or forwarded message.
fn collect_embedded(msg: &Message<'_>, p: &mut Parsed) {
    let mut summary = Vec::new();
    for part in msg.parts.iter().skip(1) {
        match &part.body {
            PartType::Message(inner) => {
                if let Some(id) = inner.message_id().map(clean_id)
                    && syntax::message_id(&id).is_some()
                {
                    p.embedded_message_ids.push(id);
                }
                if p.forwarded.is_none() {
                    p.forwarded = Some(forward_block(inner));
                }
            }
            PartType::Text(text) => {
                let ct = part
                    .content_type()
                    .map(|c| {
                        format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase()
                    })
                    .unwrap_or_default();
                scan_text(&ct, text, p, &mut summary);
            }
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
                let ct = part
                    .content_type()
                    .map(|c| {
                        format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase()
                    })
                    .unwrap_or_default();
                if ct.contains("delivery-status") || ct.contains("rfc822") {
                    scan_text(&ct, &String::from_utf8_lossy(bytes), p, &mut summary);
                }
            }
            _ => {}
        }
    }
    if !summary.is_empty() {
        p.dsn_summary = Some(summary.join("; "));
    }
}

/// At most this many bytes of an attached message's text are shown.
const MAX_FORWARDED_TEXT: usize = 64 * 1024;

/// An attached message as the forward block Gmail writes inline.
fn forward_block(inner: &Message<'_>) -> String {
    let mut out = String::from("---------- Forwarded message ---------\n");
    if let Some(a) = inner.from().and_then(|a| a.first()) {
        let addr = a.address().unwrap_or_default();
        let from = match a.name() {
            Some(name) => format!("{name} <{addr}>"),
            None => addr.to_string(),
        };
        out.push_str(&format!("From: {}\n", syntax::header_text(&from, 300)));
    }
    if let Some(d) = inner.date() {
        out.push_str(&format!("Date: {}\n", d.to_rfc822()));
    }
    if let Some(s) = inner.subject() {
        out.push_str(&format!(
            "Subject: {}\n",
            syntax::header_text(s, syntax::MAX_SUBJECT)
        ));
    }
    if let Some(to) = inner.to() {
        let list: Vec<&str> = to.iter().filter_map(|a| a.address()).take(10).collect();
        if !list.is_empty() {
            out.push_str(&format!(
                "To: {}\n",
                syntax::header_text(&list.join(", "), 300)
            ));
        }
    }
    let text = inner.body_text(0).unwrap_or_default();
    let mut cut = text.len().min(MAX_FORWARDED_TEXT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push('\n');
    out.push_str(text[..cut].trim_end());
    out
}

fn scan_text(ct: &str, text: &str, p: &mut Parsed, summary: &mut Vec<String>) {
    let is_report = ct.contains("delivery-status");
    let is_headers = ct.contains("rfc822");
    for line in text.lines().take(500) {
        let l = line.trim();
        let lower = l.to_ascii_lowercase();
        if is_report
            && (lower.starts_with("status:")
                || lower.starts_with("diagnostic-code:")
                || lower.starts_with("final-recipient:"))
            && summary.len() < 6
        {
            summary.push(l.chars().take(200).collect());
        }
        if (is_headers || is_report) && lower.starts_with("message-id:") {
            let id = clean_id(&l["message-id:".len()..]);
            if syntax::message_id(&id).is_some() {
                p.embedded_message_ids.push(id);
            }
        }
    }
}

fn clean_id(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    match v.as_text_list() {
        Some(list) => list
            .iter()
            .map(|s| clean_id(s))
            .filter(|s| !s.is_empty())
            .collect(),
        None => v
            .as_text()
            .map(|s| vec![clean_id(s)])
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
    }
}

/// The attachments of a raw message: not its text or HTML body, and not
/// inline parts referenced by Content-ID (signature logos of the HTML body,
/// which is not relayed).
pub fn attachments_of(raw: &[u8]) -> Vec<crate::outbound::compose::Attachment> {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    msg.attachments()
        .filter(|a| {
            let inline = a
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
            !(inline && a.content_id().is_some())
        })
        .map(|a| crate::outbound::compose::Attachment {
            content_type: a
                .content_type()
                .map(|c| {
                    format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream"))
                        .to_ascii_lowercase()
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            name: a
                .attachment_name()
                .unwrap_or("attachment")
                .chars()
                .filter(|c| !c.is_control())
                .collect(),
            data: a.contents().to_vec(),
        })
        .collect()
}

/// From and Subject of a message header, decoded, for the quarantine list.
pub fn header_summary(header: &[u8]) -> (String, String) {
    let Some(msg) = MessageParser::new().parse_headers(header) else {
        return Default::default();
    };
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    (from, msg.subject().unwrap_or_default().to_string())
}

/// The envelope sender recorded in a stored message: Return-Path if present
/// (empty for `<>`), else the From address; empty if neither is readable.
pub fn envelope_sender(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]);
    // Unfold continuation lines, then look at each header once.
    let mut headers: Vec<String> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            headers.push(line.to_string());
        }
    }
    let value = |name: &str| {
        headers.iter().find_map(|h| {
            let (n, v) = h.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if let Some(rp) = value("return-path") {
        let addr = crate::address::bare_address(&rp);
        return if addr.contains('@') {
            addr.to_string()
        } else {
            String::new()
        };
    }
    value("from")
        .map(|f| crate::address::bare_address(&f).to_string())
        .filter(|a| a.contains('@'))
        .unwrap_or_default()
}

/// The text a human wrote, without quoted replies, attributions, forwarded
/// header blocks and signatures (see [`super::quote::visible_text`]). The raw
/// original stays stored; this is only the visible text.
pub fn visible_text(text: &str) -> String {
    super::quote::visible_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_threading_fields() {
        let raw = b"From: Ann Example <Ann@Example.org>\r\nTo: support@example.test\r\nSubject: Re: Printer\r\nMessage-ID: <abc@x>\r\nIn-Reply-To: <p1@y>\r\nReferences: <p0@y>\r\n <p1@y>\r\nAuto-Submitted: no\r\n\r\nHello\r\n";
        let p = parse(raw);
        assert_eq!(p.message_id.as_deref(), Some("abc@x"));
        assert_eq!(p.in_reply_to, vec!["p1@y"]);
        assert_eq!(p.references, vec!["p0@y", "p1@y"]);
        assert_eq!(p.from, "ann@example.org");
        assert_eq!(p.from_name, "Ann Example");
        assert_eq!(p.header("auto-submitted"), Some("no"));
        assert_eq!(p.text.trim(), "Hello");
    }

    #[test]
    fn visible_text_cuts_trailing_quote() {
        let t =
            "Thanks, that worked.\n\nOn Mon, 1 Jan 2024, Support wrote:\n> Try again\n> please\n";
        assert_eq!(visible_text(t), "Thanks, that worked.");
        assert_eq!(visible_text("No quote here\n"), "No quote here");
    }

    #[test]
    fn garbage_still_parses() {
        let p = parse(b"\x00\x01\x02 not a message");
        assert!(p.message_id.is_none());
    }
}

/// What a delivery report reader needs of a message, read with mail-parser
/// here so that `bounce.rs` stays free of it: the machine-readable status
/// parts, the first text body and the `X-Failed-Recipients` values.
#[derive(Debug, Default, Clone)]
pub struct ReportParts {
    /// The bodies of `message/delivery-status` (and RFC 6533
    /// `message/global-delivery-status`) parts, in order.
    pub status_parts: Vec<String>,
    /// The first text body (empty when there is none).
    pub body_text: String,
    /// Every address listed in `X-Failed-Recipients` headers.
    pub failed_recipients: Vec<String>,
}

/// The parts of a possible delivery report; None when mail-parser cannot
/// read the message at all.
pub fn report_parts(raw: &[u8]) -> Option<ReportParts> {
    let msg = MessageParser::default().parse(raw)?;
    let mut out = ReportParts::default();
    for part in msg.parts.iter() {
        let is_status = part.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case("message")
                && c.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("global-delivery-status")
                })
        });
        if !is_status {
            continue;
        }
        match &part.body {
            PartType::Text(t) => out.status_parts.push(t.to_string()),
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                out.status_parts.push(String::from_utf8_lossy(b).into())
            }
            _ => {}
        }
    }
    out.body_text = msg.body_text(0).map(|b| b.to_string()).unwrap_or_default();
    out.failed_recipients = msg
        .header_values("X-Failed-Recipients")
        .filter_map(|v| v.as_text())
        .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    Some(out)
}
