//! Full-text search, the pure half: how text becomes terms
//! ([`tokenize`]), what a query says ([`Query::parse`]), what is indexed of
//! a ticket ([`TicketDocument`]) and how a match is shown ([`snippet`],
//! [`best_snippet`]). The index itself (tantivy, fed from the store's
//! queue of changed tickets) is `search_index`; the store builds the
//! documents (`store::search`). This module names no storage, so it is
//! unit-tested alone.
//!
//! A document is a ticket: its subject, id, tags, and every listed
//! message's subject, visible text, sender address and name and attachment
//! names. Searching tickets, not messages, is what an agent asks for ("the
//! ticket where we talked about the paper jam"): every clause of a query
//! must hold for the ticket, not for one message of it.

/// Terms longer than this are cut: nobody searches for them, and they
/// would bloat keys (a base64 blob pasted into a mail).
pub const MAX_TERM_CHARS: usize = 40;

/// The prefix of field terms for `from:`: the tokenizer never yields a `:`,
/// so these cannot collide with words of the text.
pub const FROM_FIELD: &str = "from:";

/// Splits `text` into lower-case terms: runs of alphanumeric characters
/// (Unicode-aware, so `Grüße` and `naïve` stay one word each; everything
/// else separates), each cut to [`MAX_TERM_CHARS`].
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    token_spans(text).map(|(_, w)| normalize(w))
}

/// The byte ranges of the words of `text` with the words themselves (not
/// lower-cased): snippets highlight the original spelling.
pub fn token_spans(text: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// One word as a term: lower case (full Unicode), at most [`MAX_TERM_CHARS`].
pub fn normalize(word: &str) -> String {
    word.chars()
        .flat_map(char::to_lowercase)
        .take(MAX_TERM_CHARS)
        .collect()
}

/// The `from:` terms of an address and a display name: the whole address,
/// and each word of both (`from:alice`, `from:example`).
pub fn from_terms(address: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let addr = address.trim().to_lowercase();
    if !addr.is_empty() {
        out.push(format!("{FROM_FIELD}{addr}"));
    }
    for t in tokenize(&addr).chain(tokenize(name)) {
        out.push(format!("{FROM_FIELD}{t}"));
    }
    out
}

/// What the index takes in of one ticket, built by the store from the
/// ticket, its conversation messages (not postdesk's own acknowledgements
/// and notices: their boilerplate would be in every ticket) and their
/// extras.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketDocument {
    pub ticket: u64,
    /// Unix seconds (`before:`/`after:`).
    pub created_at: i64,
    /// As `Status::as_str` spells it (`status:`).
    pub status: String,
    pub queue: String,
    pub tags: Vec<String>,
    /// Subject, then every conversation message's subject (when it differs)
    /// and visible text: what snippets are cut from.
    pub parts: Vec<String>,
    /// Ticket number, tags, requester and senders' addresses and names,
    /// attachment names: searched as words too, never shown as snippets.
    pub fields: Vec<String>,
    /// The `from:` terms ([`from_terms`]) of the requester and every sender.
    pub from: Vec<String>,
}

/// One condition of a query; a ticket must meet all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// A word of the text.
    Word(String),
    /// Any term starting with this (`print*`).
    Prefix(String),
    /// These words next to each other, in order (`"paper jam"`).
    Phrase(Vec<String>),
    /// A sender: a whole address (`from:alice@example.com`) or a word of
    /// an address or name (`from:alice`); stored as the field term.
    From(String),
    Status(String),
    Queue(String),
    Tag(String),
    /// Created before this time (unix seconds, start of the given day, UTC).
    Before(i64),
    /// Created at or after this time (unix seconds, start of the day, UTC).
    After(i64),
}

impl Clause {
    /// Whether the clause is about words of the text (it scores and
    /// highlights), not a filter.
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            Clause::Word(_) | Clause::Prefix(_) | Clause::Phrase(_)
        )
    }
}

/// A parsed query: clauses combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub clauses: Vec<Clause>,
}

/// Why a query cannot run; the text is for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("empty query")]
    Empty,
    #[error("{0}: expected a date like 2026-03-01")]
    BadDate(String),
    #[error("{0}: a prefix needs at least {MIN_PREFIX_CHARS} letters before the *")]
    ShortPrefix(String),
    #[error("unbalanced quote")]
    UnbalancedQuote,
}

/// Shorter prefixes would expand to most of the vocabulary.
pub const MIN_PREFIX_CHARS: usize = 2;

impl Query {
    /// Parses the query language: words, `"phrases"`, `prefix*`, and
    /// `from:`, `queue:`, `status:`, `tag:`, `before:`, `after:` (a value
    /// may be quoted), all combined with AND. An unknown `name:value` is
    /// searched as words. A word the tokenizer splits (`e-mail`) is a phrase.
    pub fn parse(input: &str) -> Result<Query, QueryError> {
        let mut clauses = Vec::new();
        for (field, value, quoted) in split_query(input)? {
            match field.as_deref() {
                Some("from") => {
                    let v = value.trim().to_lowercase();
                    if v.contains('@') {
                        clauses.push(Clause::From(format!("{FROM_FIELD}{v}")));
                    } else {
                        for t in tokenize(&v) {
                            clauses.push(Clause::From(format!("{FROM_FIELD}{t}")));
                        }
                    }
                }
                Some("status") => clauses.push(Clause::Status(value.to_lowercase())),
                Some("queue") => clauses.push(Clause::Queue(value.clone())),
                Some("tag") => clauses.push(Clause::Tag(value.trim_start_matches('#').into())),
                Some("before") => clauses.push(Clause::Before(parse_day(&value)?)),
                Some("after") => clauses.push(Clause::After(parse_day(&value)?)),
                Some(other) => {
                    // Not an operator: `foo:bar` is the words foo and bar.
                    text_clauses(&format!("{other}:{value}"), quoted, &mut clauses)?;
                }
                None => text_clauses(&value, quoted, &mut clauses)?,
            }
        }
        if clauses.is_empty() {
            return Err(QueryError::Empty);
        }
        Ok(Query { clauses })
    }

    /// The text clauses, for scoring and highlighting.
    pub fn text(&self) -> impl Iterator<Item = &Clause> {
        self.clauses.iter().filter(|c| c.is_text())
    }
}

/// Word, phrase or prefix clauses of one query item.
fn text_clauses(value: &str, quoted: bool, out: &mut Vec<Clause>) -> Result<(), QueryError> {
    let prefix = !quoted && value.ends_with('*');
    let mut words: Vec<String> = tokenize(value).collect();
    if prefix {
        let Some(last) = words.pop() else {
            return Ok(());
        };
        if last.chars().count() < MIN_PREFIX_CHARS {
            return Err(QueryError::ShortPrefix(value.to_string()));
        }
        push_words(words, out);
        out.push(Clause::Prefix(last));
    } else {
        push_words(words, out);
    }
    Ok(())
}

fn push_words(mut words: Vec<String>, out: &mut Vec<Clause>) {
    match words.len() {
        0 => {}
        1 => out.extend(words.pop().map(Clause::Word)),
        _ => out.push(Clause::Phrase(words)),
    }
}

/// The query's items as (field, value, quoted).
fn split_query(input: &str) -> Result<Vec<(Option<String>, String, bool)>, QueryError> {
    let mut items = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut field = None;
        let mut value = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' {
                quoted = true;
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    value.push(c);
                }
                if !closed {
                    return Err(QueryError::UnbalancedQuote);
                }
            } else if c == ':' && field.is_none() && !quoted && !value.is_empty() {
                field = Some(value.to_lowercase());
                value = String::new();
            } else {
                value.push(c);
            }
        }
        items.push((field, value, quoted));
    }
    Ok(items)
}

/// `YYYY-MM-DD` as the unix second that day starts (UTC).
fn parse_day(v: &str) -> Result<i64, QueryError> {
    let bad = || QueryError::BadDate(v.to_string());
    let date: jiff::civil::Date = v.trim().parse().map_err(|_| bad())?;
    format!("{date}T00:00:00Z")
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| bad())
}

/// Whether the words of `phrase` occur next to each other, in order, in `text`.
pub fn contains_phrase(text: &str, phrase: &[String]) -> bool {
    if phrase.is_empty() {
        return true;
    }
    let words: Vec<String> = tokenize(text).collect();
    words.windows(phrase.len()).any(|w| w == phrase)
}

/// A piece of a snippet: text, and whether it matched the query. Escaping
/// is the caller's (the web view's `esc`), so the snippet stays plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub hit: bool,
}

/// About this many characters of context around the first match.
pub const SNIPPET_CHARS: usize = 160;

/// The part of `text` around the first word that matches a text clause of
/// `query`, with every matching word marked; the start of `text` when
/// nothing matches (the match was in a field, e.g. the sender).
pub fn snippet(text: &str, query: &Query) -> Vec<Piece> {
    let matches = |word: &str| {
        let term = normalize(word);
        query.text().any(|c| match c {
            Clause::Word(w) => *w == term,
            Clause::Prefix(p) => term.starts_with(p.as_str()),
            Clause::Phrase(ws) => ws.contains(&term),
            _ => false,
        })
    };
    let spans: Vec<(usize, &str)> = token_spans(text).collect();
    let first = spans
        .iter()
        .find(|(_, w)| matches(w))
        .map_or(0, |(i, _)| *i);
    // Start a little before the first match, on a character boundary.
    let mut start = first.saturating_sub(SNIPPET_CHARS / 3);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let end = text[start..]
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map_or(text.len(), |(i, _)| start + i);
    let mut out: Vec<Piece> = Vec::new();
    let mut push = |s: &str, hit: bool| {
        if s.is_empty() {
            return;
        }
        let s = collapse_whitespace(s);
        match out.last_mut() {
            Some(p) if !p.hit && !hit => p.text.push_str(&s),
            _ => out.push(Piece { text: s, hit }),
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for (i, w) in spans
        .iter()
        .filter(|(i, w)| *i >= start && i + w.len() <= end)
    {
        if matches(w) {
            push(&text[at..*i], false);
            push(w, true);
            at = i + w.len();
        }
    }
    push(&text[at..end], false);
    if end < text.len() {
        push("…", false);
    }
    out
}

/// The snippet of the part with the most distinct matching words:
/// messages first (the subject is shown beside the snippet anyway), the
/// earliest on a tie; the first message's text when nothing matches.
pub fn best_snippet(parts: &[String], query: &Query) -> Vec<Piece> {
    let order = (1..parts.len()).chain(0..parts.len().min(1));
    let mut best: Option<(usize, Vec<Piece>)> = None;
    for i in order {
        let s = snippet(&parts[i], query);
        let words: std::collections::BTreeSet<String> = s
            .iter()
            .filter(|p| p.hit)
            .map(|p| normalize(&p.text))
            .collect();
        if !words.is_empty() && best.as_ref().is_none_or(|(n, _)| words.len() > *n) {
            best = Some((words.len(), s));
        }
    }
    match best {
        Some((_, s)) => s,
        None => {
            let fallback = parts.get(1).or(parts.first()).map_or("", String::as_str);
            snippet(fallback, query)
        }
    }
}

/// Every run of whitespace (line ends of a mail) as one space.
fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests;
