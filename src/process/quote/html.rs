//! HTML stripping: a small tag walker that drops quote containers and emits
//! text, which then goes through the plain-text engine.

use super::cap;
use super::plain::{extract, extract_with};

/// The reply the human wrote, from an HTML-only body: quote containers
/// (`<blockquote>`, Gmail's `gmail_quote`, Thunderbird's `moz-cite-prefix`,
/// Yahoo's `yahoo_quoted`, Outlook's `divRplyFwdMsg` / `#appendonsend` /
/// border-top separators, Apple Mail's `OLK_SRC_BODY_SECTION`) are dropped by
/// a small tag walker, the rest is converted to text and then run through the
/// same attribution/header rules as [`super::visible_text`].
///
/// Sign-off heuristics ("Regards,\nJohn", contact blocks) are not applied
/// here: HTML replies mark their quotes structurally, and the sign-off above
/// the quote is part of what the person wrote (talon's HTML fixtures keep it).
pub fn visible_text_html(html: &str) -> String {
    let text = html_to_text(cap(html));
    let out = extract(&text, false);
    if out.is_empty() {
        // Everything was inside quote containers: fall back to the whole
        // document as text rather than show nothing.
        let all = html_to_text_inner(cap(html), false);
        return extract(&all, false);
    }
    out
}

/// The text of an HTML-only forward (its subject says so): quote containers
/// are not dropped (Outlook puts the forwarded message after the same
/// separator as a reply's history), and the forwarded message is kept
/// whole from its banner or header block on, as
/// [`super::visible_text_forward`] does for plain text.
pub fn visible_text_html_forward(html: &str) -> String {
    extract_with(&html_to_text_inner(cap(html), false), false, true)
}

fn html_to_text(html: &str) -> String {
    html_to_text_inner(html, true)
}

/// Elements whose start and end produce a line break.
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "br",
    "tr",
    "li",
    "ul",
    "ol",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "blockquote",
    "pre",
    "body",
    "section",
    "article",
    "header",
    "footer",
];

/// Elements with no end tag (they never nest).
const VOID_TAGS: &[&str] = &[
    "br", "hr", "img", "meta", "link", "input", "base", "col", "area", "wbr", "source",
];

/// What to do with an element that opens a quote.
enum QuoteAction {
    /// Drop the element and its content.
    SkipElement,
    /// Drop it and everything after it (Outlook puts the quoted message after
    /// its separator, not inside it).
    CutRest,
}

fn quote_action(name: &str, attrs: &str) -> Option<QuoteAction> {
    if name == "blockquote" {
        return Some(QuoteAction::SkipElement);
    }
    let a = attrs; // already lower-cased
    if a.contains("divrplyfwdmsg")
        || a.contains("id=\"appendonsend\"")
        || a.contains("id=appendonsend")
        || a.contains("stopspelling")
        || a.contains("mail-editor-reference-message-container")
    {
        return Some(QuoteAction::CutRest);
    }
    let compact: String = a.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("border-top:solid")
        && (compact.contains("#e1e1e1") || compact.contains("#b5c4df") || compact.contains("3.0pt"))
    {
        return Some(QuoteAction::CutRest);
    }
    if a.contains("gmail_quote")
        || a.contains("moz-cite-prefix")
        || a.contains("yahoo_quoted")
        || a.contains("protonmail_quote")
        || a.contains("olk_src_body_section")
        || a.contains("type=\"cite\"")
        || a.contains("type=cite")
    {
        return Some(QuoteAction::SkipElement);
    }
    None
}

fn html_to_text_inner(html: &str, strip_quotes: bool) -> String {
    let lower = html.to_ascii_lowercase(); // same byte offsets as `html`
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    // (tag name, nesting depth) of the quote element being skipped
    let mut skipping: Option<(String, usize)> = None;
    while i < b.len() {
        if b[i] != b'<' {
            let next = lower[i..].find('<').map_or(b.len(), |p| i + p);
            if skipping.is_none() {
                push_text(&mut out, &html[i..next]);
            }
            i = next;
            continue;
        }
        if lower[i..].starts_with("<!--") {
            i = lower[i + 4..]
                .find("-->")
                .map_or(b.len(), |p| i + 4 + p + 3);
            continue;
        }
        let Some(close) = lower[i..].find('>').map(|p| i + p) else {
            break;
        };
        let tag = &lower[i + 1..close];
        i = close + 1;
        let closing = tag.starts_with('/');
        let tag = tag.trim_start_matches('/');
        let name_end = tag
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tag.len());
        let name = &tag[..name_end];
        let attrs = &tag[name_end..];
        if name.is_empty() || name.starts_with('!') || name.starts_with('?') {
            continue;
        }
        if !closing && matches!(name, "style" | "script" | "head" | "title") {
            let end_tag = format!("</{name}");
            i = lower[i..]
                .find(&end_tag)
                .map_or(b.len(), |p| i + p + end_tag.len());
            i = lower[i..].find('>').map_or(b.len(), |p| i + p + 1);
            continue;
        }
        let void = VOID_TAGS.contains(&name) || tag.ends_with('/');
        if let Some((skip_name, depth)) = skipping.as_mut() {
            if skip_name == name && !void {
                if closing {
                    *depth -= 1;
                    if *depth == 0 {
                        skipping = None;
                        out.push('\n');
                    }
                } else {
                    *depth += 1;
                }
            }
            continue;
        }
        if !closing && strip_quotes {
            match quote_action(name, attrs) {
                Some(QuoteAction::CutRest) => break,
                Some(QuoteAction::SkipElement) => {
                    if !void {
                        skipping = Some((name.to_string(), 1));
                    }
                    continue;
                }
                None => {}
            }
        }
        if BLOCK_TAGS.contains(&name) {
            out.push('\n');
        }
    }
    // tidy: trim each line, at most one blank line in a row
    let mut tidy = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let l = line.trim();
        if l.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        tidy.push_str(l);
        tidy.push('\n');
    }
    tidy
}

/// Appends HTML text with whitespace collapsed and entities decoded.
fn push_text(out: &mut String, raw: &str) {
    let mut rest = raw;
    while !rest.is_empty() {
        let amp = rest.find('&').unwrap_or(rest.len());
        push_collapsed(out, &rest[..amp]);
        rest = &rest[amp..];
        if rest.is_empty() {
            break;
        }
        // entity: "&name;" within 10 bytes
        let semi = rest.char_indices().take(12).find(|&(_, c)| c == ';');
        match semi.and_then(|(p, _)| decode_entity(&rest[1..p]).map(|c| (p, c))) {
            Some((p, c)) => {
                if c == '\u{a0}' {
                    push_collapsed(out, " ");
                } else {
                    out.push(c);
                }
                rest = &rest[p + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
}

fn push_collapsed(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_whitespace() {
            if !out.ends_with(|p: char| p.is_whitespace()) && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "nbsp" => '\u{a0}',
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "rsquo" => '’',
        "lsquo" => '‘',
        "rdquo" => '”',
        "ldquo" => '“',
        "copy" => '©',
        _ => return named_entity(name),
    })
}

/// Any other named entity ("&eacute;", "&euro;"), looked up in mail-parser's
/// table, the one its own HTML-to-text conversion uses: the HTML path then
/// decodes everything the conversion it replaced did.
fn named_entity(name: &str) -> Option<char> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let token = format!("&{name};");
    let mut decoded = String::new();
    mail_parser::decoders::html::add_html_token(&mut decoded, token.as_bytes(), false);
    // An unknown name comes back as the token itself.
    let mut chars = decoded.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}
