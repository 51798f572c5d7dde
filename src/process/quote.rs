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

/// Inputs beyond this many bytes are cut before scanning: a reply longer than
/// this is almost certainly a forwarded archive, and its top is what matters.
pub const MAX_INPUT: usize = 4 << 20;

/// Pattern checks look at no more than this many bytes of a line.
const MAX_PATTERN_LINE: usize = 400;

/// An attribution ("On … wrote:") may be wrapped over at most this many lines.
const MAX_ATTRIBUTION_LINES: usize = 3;

/// The reply the human wrote, from a plain-text body: without quoted blocks,
/// the attribution lines that introduce them, Outlook-style header blocks,
/// "original message" banners, signatures and mobile "Sent from" lines.
///
/// Never empty when `text` has non-blank content: if everything looks quoted,
/// the trimmed original is returned.
pub fn visible_text(text: &str) -> String {
    extract(cap(text), true)
}

/// The reply the human wrote, from an HTML-only body: quote containers
/// (`<blockquote>`, Gmail's `gmail_quote`, Thunderbird's `moz-cite-prefix`,
/// Yahoo's `yahoo_quoted`, Outlook's `divRplyFwdMsg` / `#appendonsend` /
/// border-top separators, Apple Mail's `OLK_SRC_BODY_SECTION`) are dropped by
/// a small tag walker, the rest is converted to text and then run through the
/// same attribution/header rules as [`visible_text`].
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Blank,
    Quoted,
    Text,
}

fn classify(line: &str) -> Kind {
    let t = line.trim_start();
    if t.trim_end().is_empty() {
        Kind::Blank
    } else if t.starts_with('>') && !t.starts_with(">:") {
        // ">:" is the tail of an attribution wrapped inside "<addr\n>:", not a quote.
        Kind::Quoted
    } else {
        Kind::Text
    }
}

fn extract(text: &str, signoffs: bool) -> String {
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

// ---------------------------------------------------------------------------
// Attributions: "On Mon, 1 Jan 2024 at 10:00, Ann <a@x> wrote:" and friends.
// ---------------------------------------------------------------------------

/// Line endings that make an attribution (compared lower-cased, after
/// collapsing whitespace). Localized: German, French, Spanish, Italian,
/// Portuguese, Dutch, Polish, Finnish, Scandinavian, Hungarian, Turkish,
/// Russian, Czech, Chinese.
const ATTRIBUTION_ENDINGS: &[&str] = &[
    "wrote:",
    "wrote：",
    "schrieb:",
    "a écrit :",
    "a écrit:",
    "a écrit :",
    "escribió:",
    "ha scritto:",
    "escreveu:",
    "schreef:",
    "napisał:",
    "napisała:",
    "napisał(a):",
    "pisze:",
    "kirjoitti:",
    "skrev:",
    "írta:",
    "yazdı:",
    "написал:",
    "написала:",
    "написал(а):",
    "napsal:",
    "写道：",
    "写道:",
    "寫道：",
    "寫道:",
];

/// If an attribution starts at line `i`, how many lines it spans.
fn attribution_at(lines: &[&str], kinds: &[Kind], i: usize) -> Option<usize> {
    for k in 0..MAX_ATTRIBUTION_LINES {
        let end = i + k;
        if end >= lines.len() || kinds[end] != Kind::Text {
            return None;
        }
        if k > 0 {
            // A wrapped attribution starts with its date ("On Dec 16, 2011, at
            // 12:47 PM, Corey Donohoe") and not with the end of a sentence.
            let first = lines[i].trim();
            let starts_on = first
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case("on "));
            if first.len() > 200
                || first.ends_with(['.', '!', '?'])
                || !(first.bytes().any(|b| b.is_ascii_digit()) || starts_on)
            {
                return None;
            }
        }
        let mut joined = String::new();
        for l in &lines[i..=end] {
            let l = prefix(l.trim(), MAX_PATTERN_LINE);
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(l);
        }
        if is_attribution(&joined) {
            // Prefer the latest start: a sentence line directly above a
            // one-line attribution is reply text, not part of it.
            if k > 0
                && (i + 1..=end).any(|s| {
                    // "On Nov 21, 2014,\nat 10:18,\nJohn <j@x> wrote:": a line
                    // ending in a comma continues on the next one.
                    !lines[s - 1].ends_with(',')
                        && plausible_start(lines[s])
                        && attribution_len_exact(lines, kinds, s, end)
                })
            {
                return None;
            }
            return Some(k + 1);
        }
    }
    None
}

/// Whether a line could open an attribution on its own ("On 1 Jan…",
/// "30.09.2017, …"): the wrapped tail of one ("<ann@x.org>", "wrote:",
/// "contact@x.com) escreveu:") cannot.
fn plausible_start(line: &str) -> bool {
    let t = line.trim();
    t.chars()
        .next()
        .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
        && (t.bytes().any(|b| b.is_ascii_digit()) || t.to_lowercase().starts_with("on "))
}

/// Whether lines `s..=end` on their own form an attribution.
fn attribution_len_exact(lines: &[&str], kinds: &[Kind], s: usize, end: usize) -> bool {
    let mut joined = String::new();
    for (l, kind) in lines[s..=end].iter().zip(&kinds[s..=end]) {
        if *kind != Kind::Text {
            return false;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(prefix(l.trim(), MAX_PATTERN_LINE));
    }
    is_attribution(&joined)
}

/// Whether one (joined) line reads as an attribution.
fn is_attribution(raw: &str) -> bool {
    // Zoho wraps it in dashes: "---- On Wed, … wrote ----".
    let t = raw.trim_matches(|c: char| c == '-' || c.is_whitespace());
    if t.len() < 8 || t.len() > 2 * MAX_PATTERN_LINE {
        return false;
    }
    // Every form below needs a digit, an '@' or a leading "On ": most lines
    // of a long message have none, and are turned away without allocating.
    let has_digit = t.bytes().any(|b| b.is_ascii_digit());
    let has_at = t.contains('@');
    let starts_on = t.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("on"))
        && t[2..].starts_with(char::is_whitespace);
    if !(has_digit || has_at || starts_on) {
        return false;
    }
    // ...and ends in a colon (every ending in ATTRIBUTION_ENDINGS does) or in "wrote".
    let ends_like = t.ends_with([':', '：'])
        || t.get(t.len().saturating_sub(5)..)
            .is_some_and(|e| e.eq_ignore_ascii_case("wrote"));
    if !ends_like {
        return false;
    }
    let lower = collapse_ws(&t.to_lowercase());
    if ATTRIBUTION_ENDINGS.iter().any(|e| lower.ends_with(e)) {
        return has_digit || has_at || lower.starts_with("on ");
    }
    // "On Wed, 14 Nov 2018 08:14:43 -0200 John Doe <john@doe.com> wrote"
    if lower.starts_with("on ") && lower.ends_with(" wrote") && (has_digit || has_at) {
        return true;
    }
    // Date-and-address attributions without a verb, in any language:
    // `30.09.2017, 18.30, "John" <j@x.com>:`, `ср, 30 апр. 2025 г. в 15:19, John <j@x>:`.
    if (lower.ends_with(':') || lower.ends_with('：')) && has_at && has_time_or_year(&lower) {
        return true;
    }
    false
}

fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// A clock time ("18:30", "18.30") or a year 19xx/20xx.
fn has_time_or_year(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |j: usize| b[j].is_ascii_digit();
    for i in 0..b.len().saturating_sub(3) {
        // hh:mm, h:mm, hh.mm
        if d(i) && (b[i + 1] == b':' || b[i + 1] == b'.') && d(i + 2) && d(i + 3) {
            return true;
        }
        // a standalone 4-digit year 19xx / 20xx
        if d(i) && d(i + 1) && d(i + 2) && d(i + 3) {
            let before = i == 0 || !d(i - 1);
            let after = i + 4 >= b.len() || !d(i + 4);
            if before && after && (b[i..i + 2] == *b"19" || b[i..i + 2] == *b"20") {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------
// Other cut points: signature delimiters, mobile signatures, banners, headers.
// ---------------------------------------------------------------------------

fn is_cut_line(lines: &[&str], kinds: &[Kind], i: usize) -> bool {
    let t = lines[i].trim();
    // RFC 3676 signature delimiter ("-- "), and the bare "--" / "__" forms
    // clients produce after stripping trailing spaces.
    if t == "--" || t == "__" {
        return true;
    }
    is_mobile_signature(t) || is_banner(t) || is_header_block(lines, kinds, i)
}

/// Prefixes of the one-line signatures mobile and webmail clients append.
const MOBILE_PREFIXES: &[&str] = &[
    "sent from ",
    "sent with ",
    "sent via ",
    "get outlook for ",
    "envoyé de mon ",
    "envoyé depuis ",
    "envoyé à partir de ",
    "gesendet von ",
    "von meinem ",
    "enviado desde ",
    "enviado de meu ",
    "enviado do meu ",
    "inviato da ",
    "verzonden vanaf ",
    "verstuurd vanaf ",
    "skickat från ",
    "sendt fra ",
];

/// "Sent from my iPhone", "Get Outlook for iOS<https://aka.ms/…>",
/// "Gesendet von Outlook für Android": a short line of its own, no sentence
/// punctuation ("Sent from my desk, is much easier…" is prose).
fn is_mobile_signature(t: &str) -> bool {
    if t.len() > 120 {
        return false;
    }
    // drop a trailing "<https://…>" link
    let t = match t.find('<') {
        Some(p) if p > 0 => t[..p].trim_end(),
        _ => t,
    };
    let lower = t.to_lowercase();
    MOBILE_PREFIXES.iter().any(|p| lower.starts_with(p))
        && !lower.contains(',')
        && !lower.ends_with('.')
        && lower.split_whitespace().count() <= 8
}

/// Inner texts of "-----Original Message-----"-style banners.
const BANNERS: &[&str] = &[
    "original message",
    "ursprüngliche nachricht",
    "originalnachricht",
    "oprindelig besked",
    "oprindelig meddelelse",
    "message d'origine",
    "message d’origine",
    "message original",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "originalmeddelande",
    "opprinnelig melding",
    "alkuperäinen viesti",
    "wiadomość oryginalna",
    "oryginalna wiadomość",
    "mensagem original",
    "исходное сообщение",
    "forwarded message",
    "weitergeleitete nachricht",
    "message transféré",
    "mensaje reenviado",
    "messaggio inoltrato",
    "doorgestuurd bericht",
    "reply message",
];

fn is_banner(t: &str) -> bool {
    if t.len() > 100 {
        return false;
    }
    let lower = t.to_lowercase();
    if lower.starts_with("begin forwarded message") {
        return true;
    }
    if !t.starts_with(['-', '_', '=', '*']) {
        return false;
    }
    let inner =
        lower.trim_matches(|c: char| matches!(c, '-' | '_' | '=' | '*' | ':') || c.is_whitespace());
    BANNERS.contains(&inner)
}

/// Header names that start or belong to a quoted header block ("From: … Sent:
/// … To: … Subject: …"), in the languages Outlook and webmails localize them to.
const FROM_KEYS: &[&str] = &[
    "from",
    "de",
    "von",
    "van",
    "da",
    "fra",
    "från",
    "od",
    "lähettäjä",
    "от",
    "feladó",
    "kimden",
    "message du",
];
const OTHER_KEYS: &[&str] = &[
    "sent",
    "date",
    "to",
    "subject",
    "cc",
    "bcc",
    "reply-to",
    "envoyé",
    "envoyé le",
    "à",
    "a",
    "objet",
    "sujet",
    "copie à",
    "gesendet",
    "an",
    "betreff",
    "datum",
    "verzonden",
    "aan",
    "onderwerp",
    "inviato",
    "oggetto",
    "data",
    "sendt",
    "dato",
    "til",
    "emne",
    "skickat",
    "till",
    "ämne",
    "enviado",
    "enviada",
    "para",
    "asunto",
    "fecha",
    "assunto",
    "wysłano",
    "do",
    "temat",
    "отправлено",
    "дата",
    "кому",
    "тема",
    "lähetetty",
    "vastaanottaja",
    "aihe",
    "päivämäärä",
];

enum Key {
    From,
    Other,
}

/// The header name of a "Name: value" line, if it is one we know.
fn header_key(line: &str) -> Option<Key> {
    let t = line.trim_start().trim_start_matches('*');
    let pos = t.find([':', '：'])?;
    if pos > 30 {
        return None;
    }
    let key = t[..pos]
        .trim_matches(|c: char| c == '*' || c.is_whitespace())
        .to_lowercase();
    if FROM_KEYS.contains(&key.as_str()) {
        Some(Key::From)
    } else if OTHER_KEYS.contains(&key.as_str()) {
        Some(Key::Other)
    } else {
        None
    }
}

/// A quoted message's header block starts at line `i`: at least three known
/// header lines among the next eight, one of them a From line. One "from:" in
/// prose ("the data comes From: our database") is not enough.
fn is_header_block(lines: &[&str], kinds: &[Kind], i: usize) -> bool {
    if header_key(lines[i]).is_none() {
        return false;
    }
    let end = (i + 8).min(lines.len());
    let mut known = 0;
    let mut from = false;
    for (l, kind) in lines[i..end].iter().zip(&kinds[i..end]) {
        if *kind == Kind::Quoted {
            break;
        }
        match header_key(l) {
            Some(Key::From) => {
                from = true;
                known += 1;
            }
            Some(Key::Other) => known += 1,
            None => {}
        }
    }
    from && known >= 3
}

// ---------------------------------------------------------------------------
// Sign-offs and contact blocks at the end of the reply.
// ---------------------------------------------------------------------------

/// Closing lines after which only a name (and maybe a title) follows.
const SIGNOFFS: &[&str] = &[
    "regards",
    "best regards",
    "kind regards",
    "warm regards",
    "warmest regards",
    "best wishes",
    "thanks",
    "thank you",
    "many thanks",
    "thanks again",
    "cheers",
    "best",
    "mit freundlichen grüßen",
    "mit freundlichen grüssen",
    "viele grüße",
    "beste grüße",
    "cordialement",
    "bien cordialement",
    "bien à vous",
    "saludos",
    "un saludo",
    "cordiali saluti",
    "met vriendelijke groet",
];

/// "Regards,\n\nJohn Doe\nCEO @ Acme" at the very end: cut from the sign-off.
/// Only when a person's name (one to three words) follows and at most four
/// short lines in all — "Sincerely,\nSuper Domain Name Manager" under a notice
/// is the sender's identity, not a personal signature, and stays.
fn strip_signoff(out: &mut Vec<&str>) {
    let content: Vec<usize> = (0..out.len())
        .filter(|&i| !out[i].trim().is_empty())
        .collect();
    if content.len() < 2 {
        return;
    }
    // the sign-off is at most the 5th content line from the end
    let lo = content.len().saturating_sub(5);
    for ci in lo..content.len() - 1 {
        let idx = content[ci];
        let t = out[idx]
            .trim()
            .trim_end_matches([',', '!', '.'])
            .trim()
            .to_lowercase();
        if !SIGNOFFS.contains(&t.as_str()) || ci == 0 {
            continue;
        }
        let after = &content[ci + 1..];
        let name = out[after[0]].trim();
        let name_words = name.split_whitespace().count();
        let name_like = (1..=3).contains(&name_words)
            && name.chars().count() <= 40
            && !name.ends_with(['.', '!', '?', ':'])
            && name.chars().next().is_some_and(|c| c.is_uppercase());
        let short = after.iter().all(|&k| out[k].trim().chars().count() <= 60);
        if after.len() <= 4 && name_like && short {
            out.truncate(idx);
            return;
        }
    }
}

/// A trailing block of short lines with an e-mail address, phone number or
/// URL ("Gina X\ngina@example.com\n(555) 346-9947\nwww.example.com"), starting
/// after a blank line or a "-----" rule: a signature without a delimiter.
fn strip_contact_block(out: &mut Vec<&str>) {
    // Walk up over signature-ish lines.
    let mut start = out.len();
    while start > 0 {
        let t = out[start - 1].trim();
        if t.is_empty() || is_rule(t) || is_sig_ish(t) {
            start -= 1;
        } else {
            break;
        }
    }
    // The block begins at a paragraph boundary inside that run.
    let mut begin = None;
    for k in start..out.len() {
        let t = out[k].trim();
        if is_rule(t) && t.chars().count() >= 4 {
            begin = Some(k);
            break;
        }
        if !t.is_empty() && (k == 0 || out[k - 1].trim().is_empty()) && k > start {
            begin = Some(k);
            break;
        }
        if !t.is_empty() && k == start && k > 0 && out[k - 1].trim().is_empty() {
            begin = Some(k);
            break;
        }
    }
    let Some(b) = begin else { return };
    let block: Vec<&str> = out[b..]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    let has_content_before = out[..b].iter().any(|l| !l.trim().is_empty());
    if has_content_before
        && !block.is_empty()
        && block.len() <= 15
        && block.iter().any(|l| is_contact(l))
    {
        out.truncate(b);
    }
}

fn is_rule(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| matches!(c, '-' | '_' | '=' | '—' | '–'))
}

/// Short, not a sentence: a name, title, address, phone or link line.
fn is_sig_ish(t: &str) -> bool {
    t.chars().count() <= 60 && t.split_whitespace().count() < 8 && !t.ends_with(['!', '?', ':'])
}

/// An e-mail address, URL, phone number (7+ digits in one run) or "via mobile".
fn is_contact(t: &str) -> bool {
    let lower = t.to_lowercase();
    if lower.contains("http://") || lower.contains("https://") || lower.contains("www.") {
        return true;
    }
    if lower == "via mobile" || lower.starts_with("sent via ") {
        return true;
    }
    if let Some(at) = lower.find('@') {
        let (user, domain) = (&lower[..at], &lower[at + 1..]);
        if user.chars().last().is_some_and(|c| c.is_alphanumeric())
            && domain.split_whitespace().next().is_some_and(|d| {
                d.contains('.') && d.chars().next().is_some_and(|c| c.is_alphanumeric())
            })
        {
            return true;
        }
    }
    let mut digits = 0;
    for c in lower.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits >= 7 {
                return true;
            }
        } else if !matches!(c, ' ' | '-' | '(' | ')' | '+' | '.') {
            digits = 0;
        }
    }
    false
}

// ---------------------------------------------------------------------------
// HTML: a tiny tag walker that drops quote containers and emits text.
// ---------------------------------------------------------------------------

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
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
