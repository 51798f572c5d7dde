//! Plain-text stripping: the line engine that keeps what the sender typed
//! above (or between) the quoted history. The HTML path converts to text and
//! runs the same engine, without the sign-off rules.

use super::cap;
use super::patterns::{
    Kind, attribution_at, classify, is_cut_line, is_forward_banner, is_forwarded_start,
    strip_contact_block, strip_signoff,
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

/// The text of a forward (its subject says so: "Fwd:", "WG:", "TR:", …):
/// what the sender wrote above it, then the forwarded message whole, from
/// its banner or header block on, since the forwarded content is the
/// request. (A forward banner right at the top is a forward whatever the
/// subject; [`visible_text`] keeps it too.)
pub fn visible_text_forward(text: &str) -> String {
    extract_with(cap(text), true, true)
}

/// The engine both entry points share: quoted blocks and everything from the
/// first cut point on are dropped; `signoffs` also strips a trailing sign-off
/// and contact block (plain text only).
pub(super) fn extract(text: &str, signoffs: bool) -> String {
    extract_with(text, signoffs, false)
}

/// [`extract`]; with `forward`, the first banner or header block starts the
/// forwarded message, which is kept, instead of a quoted history to cut.
pub(super) fn extract_with(text: &str, signoffs: bool, forward: bool) -> String {
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

    let interleaved = answered_quote_blocks(&kinds) >= 2;
    // Set when an attribution at the top was dropped: a single quote block
    // under it answered below is a bottom-posted reply to the whole earlier
    // message (Thunderbird's default), whose quote is history, not context.
    let mut bottom_post = false;
    let mut out: Vec<&str> = Vec::new();
    // Set when lines were dropped since the last kept text line: the blank
    // lines around a removed quote collapse into one.
    let mut removed = false;
    // Quoted lines (and the blanks among them) not yet known to be followed
    // by new text: an inline answer keeps them (they give the answer its
    // meaning); a trailing quote block is dropped with them.
    let mut pending: Vec<&str> = Vec::new();
    // Where a forwarded message starts: it is kept whole, below the rest.
    let mut forwarded: Option<usize> = None;
    let mut i = 0;
    while i < n {
        match kinds[i] {
            Kind::Quoted => {
                pending.push(lines[i]);
                removed = true;
                i += 1;
                continue;
            }
            Kind::Blank => {
                if !pending.is_empty() {
                    pending.push("");
                } else if !(removed && out.last().is_some_and(|l| l.trim().is_empty())) {
                    out.push("");
                }
                i += 1;
                continue;
            }
            Kind::Text => {}
        }
        if fenced[i] {
            keep_quote(&mut out, &mut pending, !bottom_post);
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
                bottom_post = !interleaved;
                i = after;
                continue;
            }
            break;
        }
        let forward_here = if forward {
            is_forwarded_start(&lines, &kinds, i)
        } else {
            // without a forward's subject, only a banner with nothing above
            is_forward_banner(lines[i]) && out.iter().all(|l| l.trim().is_empty())
        };
        if forward_here {
            forwarded = Some(i);
            break;
        }
        if is_cut_line(&lines, &kinds, i) {
            // A forward's own signature ("Sent from my phone") comes above
            // the forwarded message: that still follows.
            if forward {
                forwarded = (i + 1..n)
                    .find(|&k| kinds[k] == Kind::Text && is_forwarded_start(&lines, &kinds, k));
            }
            break;
        }
        keep_quote(&mut out, &mut pending, !bottom_post);
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
    // A quote that only a sign-off followed is a trailing quote after all.
    trim_trailing_quote(&mut out);
    if let Some(start) = forwarded {
        let mut body: Vec<&str> = lines[start..].to_vec();
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        if !out.is_empty() {
            out.push("");
        }
        out.extend(body);
    }
    let result = out.join("\n");
    let result = result.trim_matches(|c: char| c == '\n' || c.is_whitespace());
    if result.is_empty() {
        // Losing the only content would be worse than showing some quote.
        return text.trim().to_string();
    }
    result.to_string()
}

/// New text follows the quoted lines in `pending`: they are part of an
/// inline answer and are kept as they were.
/// (`keep` false: a bottom-posted reply's history, dropped.)
fn keep_quote<'a>(out: &mut Vec<&'a str>, pending: &mut Vec<&'a str>, keep: bool) {
    if pending.is_empty() {
        return;
    }
    if !keep {
        pending.clear();
        return;
    }
    // Blank lines that only surrounded a dropped attribution collapse.
    if out.last().is_some_and(|l| l.trim().is_empty()) {
        while pending.first().is_some_and(|l| l.trim().is_empty()) {
            pending.remove(0);
        }
    }
    out.append(pending);
}

/// How many quote blocks (runs of quoted lines, blanks between them
/// included) have a text line somewhere after them: two or more make an
/// answer written between the quoted lines.
fn answered_quote_blocks(kinds: &[Kind]) -> usize {
    let mut blocks = 0;
    let mut in_block = false;
    let mut open_block = false; // a block not yet followed by text
    for k in kinds {
        match k {
            Kind::Quoted => {
                if !in_block {
                    in_block = true;
                    open_block = true;
                }
            }
            Kind::Blank => {}
            Kind::Text => {
                in_block = false;
                if open_block {
                    blocks += 1;
                    open_block = false;
                }
            }
        }
    }
    blocks
}

/// Drops quoted and blank lines at the end.
fn trim_trailing_quote(out: &mut Vec<&str>) {
    let before = out.len();
    while out
        .last()
        .is_some_and(|l| l.trim().is_empty() || classify(l) == Kind::Quoted)
    {
        out.pop();
    }
    if out.len() != before {
        trim_trailing_separators(out);
    }
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
