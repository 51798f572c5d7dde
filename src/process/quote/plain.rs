//! Plain-text stripping: the line engine that keeps what the sender typed
//! above (or between) the quoted history. The HTML path converts to text and
//! runs the same engine, without the sign-off rules.

use super::cap;
use super::patterns::{
    Kind, attribution_at, classify, is_cut_line, strip_contact_block, strip_signoff,
};

/// The reply the human wrote, from a plain-text body: without quoted blocks,
/// the attribution lines that introduce them, Outlook-style header blocks,
/// "original message" banners, signatures and mobile "Sent from" lines.
///
/// Never empty when `text` has non-blank content: if everything looks quoted,
/// the trimmed original is returned.
pub fn visible_text(text: &str) -> String {
    extract(cap(text), true)
}

/// The engine both entry points share: quoted blocks and everything from the
/// first cut point on are dropped; `signoffs` also strips a trailing sign-off
/// and contact block (plain text only).
pub(super) fn extract(text: &str, signoffs: bool) -> String {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end()).collect();
    let n = lines.len();
    let mut kinds: Vec<Kind> = lines.iter().map(|l| classify(l)).collect();
    // Code fences: nothing inside ``` … ``` is a quote, header or signature.
    let mut fenced = vec![false; n];
    let mut in_fence = false;
    for (i, l) in lines.iter().enumerate() {
        let fence = l.trim_start().starts_with("```");
        if in_fence || fence {
            fenced[i] = true;
            kinds[i] = if kinds[i] == Kind::Blank {
                Kind::Blank
            } else {
                Kind::Text
            };
        }
        if fence {
            in_fence = !in_fence;
        }
    }
    // A short unquoted line between two quoted lines is a quoted line that a
    // client re-wrapped without its ">" ("…pharetra d\nignissim odio?\n>").
    for i in 1..n.saturating_sub(1) {
        if kinds[i] == Kind::Text
            && !fenced[i]
            && kinds[i - 1] == Kind::Quoted
            && kinds[i + 1] == Kind::Quoted
            && lines[i].len() <= 80
        {
            kinds[i] = Kind::Quoted;
        }
    }

    let mut out: Vec<&str> = Vec::new();
    // Set when lines were dropped since the last kept text line: the blank
    // lines around a removed quote collapse into one.
    let mut removed = false;
    let mut i = 0;
    while i < n {
        match kinds[i] {
            Kind::Quoted => {
                removed = true;
                i += 1;
                continue;
            }
            Kind::Blank => {
                if !(removed && out.last().is_some_and(|l| l.trim().is_empty())) {
                    out.push("");
                }
                i += 1;
                continue;
            }
            Kind::Text => {}
        }
        if fenced[i] {
            out.push(lines[i]);
            i += 1;
            continue;
        }
        if let Some(len) = attribution_at(&lines, &kinds, i) {
            let after = i + len;
            let next = (after..n).find(|&k| kinds[k] != Kind::Blank);
            let quoted_follows = next.is_some_and(|k| kinds[k] == Kind::Quoted);
            // Bottom-posting / inline replies put the attribution at the top
            // (at most after a greeting) and answer between the quoted
            // blocks: drop the attribution and keep reading. After real reply
            // content, the attribution starts the quoted history: cut.
            if quoted_follows && is_only_greeting(&out) {
                removed = true;
                i = after;
                continue;
            }
            break;
        }
        if is_cut_line(&lines, &kinds, i) {
            break;
        }
        out.push(lines[i]);
        removed = false;
        i += 1;
    }

    trim_trailing_separators(&mut out);
    if signoffs {
        strip_signoff(&mut out);
        strip_contact_block(&mut out);
        trim_trailing_separators(&mut out);
    }
    let result = out.join("\n");
    let result = result.trim_matches(|c: char| c == '\n' || c.is_whitespace());
    if result.is_empty() {
        // Losing the only content would be worse than showing some quote.
        return text.trim().to_string();
    }
    result.to_string()
}

/// Nothing but (at most) one short line such as "Hi," above this point.
fn is_only_greeting(out: &[&str]) -> bool {
    let mut content = out.iter().filter(|l| !l.trim().is_empty());
    match (content.next(), content.next()) {
        (None, _) => true,
        (Some(l), None) => l.trim().chars().count() <= 40,
        _ => false,
    }
}

/// Drops trailing blank lines and lines made only of separator punctuation
/// ("====", "-----", "______") left above a cut point.
fn trim_trailing_separators(out: &mut Vec<&str>) {
    while let Some(last) = out.last() {
        let t = last.trim();
        if t.is_empty() || t.chars().all(|c| matches!(c, '-' | '_' | '=' | '*' | '~')) {
            out.pop();
        } else {
            break;
        }
    }
}
