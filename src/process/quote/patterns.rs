//! What the stripper recognises in a line or a run of lines: line classes,
//! attributions ("On … wrote:" in the languages clients localise it to),
//! quoted header blocks, "original message" banners, signature delimiters,
//! mobile signatures, sign-offs and contact blocks. Each check looks at a
//! bounded prefix of a line and at most a few following lines.

use super::prefix;

/// Pattern checks look at no more than this many bytes of a line.
const MAX_PATTERN_LINE: usize = 400;

/// An attribution ("On … wrote:") may be wrapped over at most this many lines.
const MAX_ATTRIBUTION_LINES: usize = 3;

/// What a line is before any pattern looks at it: the engine drops quoted
/// lines, collapses blank runs and runs the patterns only on text lines.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Blank,
    Quoted,
    Text,
}

pub(super) fn classify(line: &str) -> Kind {
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
pub(super) fn attribution_at(lines: &[&str], kinds: &[Kind], i: usize) -> Option<usize> {
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

pub(super) fn is_cut_line(lines: &[&str], kinds: &[Kind], i: usize) -> bool {
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

/// Lines that open a forwarded message, in the major clients' formats and
/// languages: Gmail's and Thunderbird's dashed banners, Yahoo's, Apple
/// Mail's "Begin forwarded message:".
const FORWARD_BANNERS: &[&str] = &[
    "forwarded message",
    "weitergeleitete nachricht",
    "message transféré",
    "mensaje reenviado",
    "messaggio inoltrato",
    "doorgestuurd bericht",
    "mensagem encaminhada",
    "przekazana wiadomość",
    "vidarebefordrat meddelande",
    "videresendt meddelelse",
    "videresendt melding",
    "välitetty viesti",
    "пересылаемое сообщение",
    "пересланное сообщение",
    "přeposlaná zpráva",
    "továbbított üzenet",
    "iletilen ileti",
];

/// Apple Mail's forward introductions (ending in a colon).
const FORWARD_INTROS: &[&str] = &[
    "begin forwarded message",
    "anfang der weitergeleiteten nachricht",
    "début du message réexpédié",
    "début du message transféré",
    "inicio del mensaje reenviado",
    "inizio messaggio inoltrato",
    "begin doorgestuurd bericht",
    "início da mensagem reencaminhada",
    "mensagem encaminhada",
];

/// Whether the line opens a forwarded message.
pub(super) fn is_forward_banner(t: &str) -> bool {
    let t = t.trim();
    if t.len() > 100 {
        return false;
    }
    let lower = t.to_lowercase();
    let bare = lower.trim_end_matches([':', ' ']);
    if FORWARD_INTROS.contains(&bare) {
        return true;
    }
    if !t.starts_with(['-', '_', '=', '*']) {
        return false;
    }
    let inner =
        lower.trim_matches(|c: char| matches!(c, '-' | '_' | '=' | '*' | ':') || c.is_whitespace());
    FORWARD_BANNERS.contains(&inner)
}

/// Whether a forward starts at line `i` of a mail whose subject says it is
/// a forward: a forward banner, an "original message" banner, or a header
/// block (Outlook forwards with one under a rule).
pub(super) fn is_forwarded_start(lines: &[&str], kinds: &[Kind], i: usize) -> bool {
    let t = lines[i].trim();
    is_forward_banner(t) || is_banner(t) || is_header_block(lines, kinds, i)
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
pub(super) fn strip_signoff(out: &mut Vec<&str>) {
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
pub(super) fn strip_contact_block(out: &mut Vec<&str>) {
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
