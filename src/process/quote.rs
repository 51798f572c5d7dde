//! Quoted-reply and signature stripping: the part of a reply the human wrote.
//!
//! Agents read tickets, not threads: every reply carries the whole history
//! below it (or interleaved with it), plus signatures and "Sent from my
//! iPhone" lines. [`visible_text`] keeps what the sender typed; the caller keeps
//! the raw message, so cutting too much loses nothing for good — but an empty
//! result would hide the message, so whenever the rules leave nothing, the
//! original (trimmed) text is returned instead.
//!
//! The approach is line based and linear: every line is classified once
//! (quoted `>` line, blank, text), and text lines are checked against a fixed
//! set of cheap patterns, each looking at a bounded prefix of the line and at
//! most a few following lines. There are no regular expressions, so there is
//! nothing to backtrack; inputs are capped at [`MAX_INPUT`] bytes.
//!
//! Measured against `fixtures/reply-stripping/` (the tests in `quote/tests.rs`
//! print the pass rate and every miss).
//!
//! The module follows its seams: [`plain`] is the line engine and the
//! plain-text entry point, [`html`] turns an HTML body into text without its
//! quote containers and hands it to the same engine, and [`patterns`] holds
//! what the engine recognises (line classes, attributions in their languages,
//! header blocks, banners, signatures and sign-offs).

mod html;
mod patterns;
mod plain;

pub use html::visible_text_html;
pub use html::visible_text_html_forward;
pub use plain::visible_text;
pub use plain::visible_text_forward;

/// Inputs beyond this many bytes are cut before scanning: a reply longer than
/// this is almost certainly a forwarded archive, and its top is what matters.
pub const MAX_INPUT: usize = 4 << 20;

/// `s` cut to at most [`MAX_INPUT`] bytes on a char boundary.
fn cap(s: &str) -> &str {
    prefix(s, MAX_INPUT)
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

#[cfg(test)]
mod tests;
