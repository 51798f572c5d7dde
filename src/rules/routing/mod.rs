//! rules/routing.toml: ordered, named rules that route new tickets.
//!
//! ```toml
//! [lists]
//! vip = ["ceo@bigclient.example", "@vip.example"]   # addresses or @domains
//!
//! [[rule]]
//! name = "billing by keywords"
//! when = { any = [ { subject = "invoice|refund" }, { body = "credit card" } ] }
//! queue = "billing"
//! priority = "high"            # low | normal | high | urgent
//! tags = ["billing"]
//! assign = "round-robin"       # an agent's name | round-robin | least-loaded | skill:NAME
//! acknowledgement = "none"     # "none", or a template file under rules/templates/
//! stop = true                  # no further rules
//! ```
//!
//! Conditions (a table's keys must all hold; `all`, `any`, `not` combine):
//! `mailbox`, `sender`, `sender_domain` (a string or a list), `subject`,
//! `body` (regex, case-insensitive unless `{ regex = "…", case_sensitive = true }`),
//! `header = { name = "X-Priority", regex = "^1" }`, `has_attachment`,
//! `attachment_type` (regex over content type and file name), `in_list`,
//! `business_hours` (calendar "default" of rules/calendar.toml),
//! `hours = "18:00-08:00"` with optional `days = ["sat", "sun"]` (local time of
//! the default calendar), `language` ("en", "de", "fr", "es", "it", "nl").

use super::agents::Agents;
use super::calendar::{Calendar, DAYS, parse_interval};
use super::{diag_at, toml_diag};
use crate::address::split_address;
use crate::diagnostic::Diagnostic;
use crate::model::Priority;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// Longest compiled regex program accepted from a rule file (guards memory).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct Routing {
    pub rules: Vec<Rule>,
    pub lists: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub when: Condition,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
    pub assign: Option<Assign>,
    pub acknowledgement: Option<AckChoice>,
    pub stop: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assign {
    Agent(String),
    RoundRobin,
    LeastLoaded,
    Skill(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckChoice {
    None,
    Template(String),
}

#[derive(Debug)]
pub enum Condition {
    Always,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Mailbox(Vec<String>),
    Sender(Vec<String>),
    SenderDomain(Vec<String>),
    Subject(Regex),
    Body(Regex),
    Header(String, Regex),
    HasAttachment(bool),
    AttachmentType(Regex),
    InList(String),
    BusinessHours(bool),
    Hours {
        from: u32,
        to: u32,
        days: Option<[bool; 7]>,
    },
    Language(String),
}

/// What the rules look at.
pub struct Facts<'a> {
    /// The configured mailbox address the mail came in on.
    pub mailbox: &'a str,
    pub sender: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// (lower-cased name, value)
    pub headers: &'a [(String, String)],
    /// (content type, file name)
    pub attachments: &'a [(String, String)],
    pub now: i64,
    pub calendar: &'a Calendar,
}

/// The result of routing one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// (rule name, why it matched)
    pub matched: Vec<(String, Vec<String>)>,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
    pub assign: Option<Assign>,
    pub acknowledgement: Option<AckChoice>,
}

// ---- file format ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    lists: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Spanned<String>,
    when: Option<Spanned<CondSpec>>,
    queue: Option<Spanned<String>>,
    priority: Option<Spanned<String>>,
    #[serde(default)]
    tags: Vec<String>,
    assign: Option<Spanned<String>>,
    acknowledgement: Option<Spanned<String>>,
    #[serde(default)]
    stop: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PatternSpec {
    Plain(String),
    Full {
        regex: String,
        #[serde(default)]
        case_sensitive: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderSpec {
    name: String,
    regex: String,
    #[serde(default)]
    case_sensitive: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CondSpec {
    all: Option<Vec<CondSpec>>,
    any: Option<Vec<CondSpec>>,
    not: Option<Box<CondSpec>>,
    mailbox: Option<OneOrMany>,
    sender: Option<OneOrMany>,
    sender_domain: Option<OneOrMany>,
    subject: Option<PatternSpec>,
    body: Option<PatternSpec>,
    header: Option<HeaderSpec>,
    has_attachment: Option<bool>,
    attachment_type: Option<PatternSpec>,
    in_list: Option<String>,
    business_hours: Option<bool>,
    hours: Option<String>,
    days: Option<Vec<String>>,
    language: Option<String>,
}

const LANGUAGES: &[&str] = &["en", "de", "fr", "es", "it", "nl"];

/// Compiles a condition; `at` is the byte offset of the `when` table, for errors.
struct Compiler<'a> {
    path: &'a Path,
    text: &'a str,
    at: usize,
    lists: &'a BTreeMap<String, Vec<String>>,
    diags: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn err(&mut self, needle: &str, message: String) {
        // Point at the offending literal inside this rule when it can be found.
        let offset = self.text[self.at..]
            .find(needle)
            .map_or(self.at, |o| self.at + o);
        self.diags
            .push(diag_at(self.path, self.text, offset, message));
    }

    fn regex(&mut self, p: PatternSpec) -> Option<Regex> {
        let (pattern, case_sensitive) = match p {
            PatternSpec::Plain(s) => (s, false),
            PatternSpec::Full {
                regex,
                case_sensitive,
            } => (regex, case_sensitive),
        };
        self.compile(&pattern, case_sensitive)
    }

    fn compile(&mut self, pattern: &str, case_sensitive: bool) -> Option<Regex> {
        match RegexBuilder::new(pattern)
            .case_insensitive(!case_sensitive)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(r) => Some(r),
            Err(e) => {
                let first_line = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let needle: String = pattern.chars().take(20).collect();
                self.err(&needle, format!("invalid regex {pattern:?}: {first_line}"));
                None
            }
        }
    }

    fn condition(&mut self, c: CondSpec) -> Condition {
        let mut parts = Vec::new();
        if let Some(list) = c.all {
            parts.push(Condition::All(
                list.into_iter().map(|c| self.condition(c)).collect(),
            ));
        }
        if let Some(list) = c.any {
            parts.push(Condition::Any(
                list.into_iter().map(|c| self.condition(c)).collect(),
            ));
        }
        if let Some(inner) = c.not {
            parts.push(Condition::Not(Box::new(self.condition(*inner))));
        }
        if let Some(m) = c.mailbox {
            parts.push(Condition::Mailbox(lower(m.into_vec())));
        }
        if let Some(s) = c.sender {
            let v = lower(s.into_vec());
            for a in &v {
                if split_address(a).is_none() {
                    self.err(
                        a,
                        format!("sender {a:?} is not an address; use sender_domain for domains"),
                    );
                }
            }
            parts.push(Condition::Sender(v));
        }
        if let Some(d) = c.sender_domain {
            parts.push(Condition::SenderDomain(
                lower(d.into_vec())
                    .into_iter()
                    .map(|d| d.trim_start_matches('@').to_string())
                    .collect(),
            ));
        }
        if let Some(p) = c.subject
            && let Some(r) = self.regex(p)
        {
            parts.push(Condition::Subject(r));
        }
        if let Some(p) = c.body
            && let Some(r) = self.regex(p)
        {
            parts.push(Condition::Body(r));
        }
        if let Some(h) = c.header
            && let Some(r) = self.compile(&h.regex, h.case_sensitive)
        {
            parts.push(Condition::Header(h.name.to_ascii_lowercase(), r));
        }
        if let Some(b) = c.has_attachment {
            parts.push(Condition::HasAttachment(b));
        }
        if let Some(p) = c.attachment_type
            && let Some(r) = self.regex(p)
        {
            parts.push(Condition::AttachmentType(r));
        }
        if let Some(l) = c.in_list {
            if !self.lists.contains_key(&l) {
                self.err(&l, format!("no list {l:?} in [lists]"));
            }
            parts.push(Condition::InList(l));
        }
        if let Some(b) = c.business_hours {
            parts.push(Condition::BusinessHours(b));
        }
        let days = c.days.map(|names| {
            let mut set = [false; 7];
            for n in names {
                match DAYS.iter().position(|d| d.eq_ignore_ascii_case(&n)) {
                    Some(i) => set[i] = true,
                    None => self.err(&n, format!("unknown day {n:?}; use {}", DAYS.join(", "))),
                }
            }
            set
        });
        match (c.hours, days) {
            (Some(h), days) => match parse_interval(&h) {
                Some((from, to)) if from != to => parts.push(Condition::Hours { from, to, days }),
                _ => self.err(
                    &h,
                    format!("hours {h:?} is not an interval like \"18:00-08:00\""),
                ),
            },
            (None, Some(days)) => parts.push(Condition::Hours {
                from: 0,
                to: 24 * 60,
                days: Some(days),
            }),
            (None, None) => {}
        }
        if let Some(lang) = c.language {
            let lang = lang.to_ascii_lowercase();
            if !LANGUAGES.contains(&lang.as_str()) {
                self.err(
                    &lang,
                    format!(
                        "language {lang:?} is not detected; known: {}",
                        LANGUAGES.join(", ")
                    ),
                );
            }
            parts.push(Condition::Language(lang));
        }
        match parts.len() {
            0 => Condition::Always,
            1 => parts.pop().unwrap_or(Condition::Always),
            _ => Condition::All(parts),
        }
    }
}

fn lower(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

impl Routing {
    pub fn parse(
        text: &str,
        path: &Path,
        agents: &Agents,
        known_queues: &[String],
    ) -> Result<Routing, Vec<Diagnostic>> {
        let file: File = toml::from_str(text).map_err(|e| vec![toml_diag(path, text, &e)])?;
        let lists: BTreeMap<String, Vec<String>> =
            file.lists.into_iter().map(|(k, v)| (k, lower(v))).collect();
        let mut diags = Vec::new();
        let mut rules = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for spec in file.rule {
            let at = spec.name.span().start;
            let name = spec.name.get_ref().trim().to_string();
            if name.is_empty() {
                diags.push(diag_at(
                    path,
                    text,
                    at,
                    "rule name must not be empty".into(),
                ));
            }
            if names.contains(&name) {
                diags.push(diag_at(
                    path,
                    text,
                    at,
                    format!("rule name {name:?} is used twice"),
                ));
            }
            names.push(name.clone());
            let mut c = Compiler {
                path,
                text,
                at,
                lists: &lists,
                diags: Vec::new(),
            };
            let when = match spec.when {
                Some(w) => {
                    c.at = w.span().start;
                    c.condition(w.into_inner())
                }
                None => Condition::Always,
            };
            diags.append(&mut c.diags);
            let priority = spec.priority.as_ref().and_then(|p| {
                let v = Priority::parse(p.get_ref());
                if v.is_none() {
                    diags.push(diag_at(
                        path,
                        text,
                        p.span().start,
                        format!(
                            "priority {:?}: use low, normal, high or urgent",
                            p.get_ref()
                        ),
                    ));
                }
                v
            });
            if let Some(q) = &spec.queue
                && !known_queues.is_empty()
                && !known_queues.contains(q.get_ref())
                && !agents.list.iter().any(|a| a.queues.contains(q.get_ref()))
            {
                diags.push(diag_at(
                    path,
                    text,
                    q.span().start,
                    format!(
                        "queue {:?} is no mailbox's queue and no agent serves it",
                        q.get_ref()
                    ),
                ));
            }
            let assign = spec.assign.as_ref().and_then(|a| {
                let v = a.get_ref().trim();
                let parsed = match v.to_ascii_lowercase().as_str() {
                    "round-robin" => Some(Assign::RoundRobin),
                    "least-loaded" => Some(Assign::LeastLoaded),
                    s if s.starts_with("skill:") => Some(Assign::Skill(v[6..].trim().to_string())),
                    _ => agents.by_name(v).map(|ag| Assign::Agent(ag.name.clone())),
                };
                if parsed.is_none() {
                    diags.push(diag_at(
                        path,
                        text,
                        a.span().start,
                        format!("assign {v:?}: no such agent in agents.toml (or use round-robin, least-loaded, skill:NAME)"),
                    ));
                }
                parsed
            });
            let acknowledgement = spec.acknowledgement.as_ref().map(|a| {
                if a.get_ref().eq_ignore_ascii_case("none") {
                    AckChoice::None
                } else {
                    AckChoice::Template(a.get_ref().clone())
                }
            });
            if let (Some(AckChoice::Template(t)), Some(a)) =
                (&acknowledgement, &spec.acknowledgement)
            {
                let file = path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("templates")
                    .join(t);
                if let Err(d) = crate::rules::template::Template::load(&file) {
                    diags.push(diag_at(
                        path,
                        text,
                        a.span().start,
                        format!("acknowledgement template {t:?}: {}", d.message),
                    ));
                }
            }
            rules.push(Rule {
                name,
                when,
                queue: spec.queue.map(|q| q.into_inner()),
                priority,
                tags: spec.tags,
                assign,
                acknowledgement,
                stop: spec.stop,
            });
        }
        if diags.is_empty() {
            Ok(Routing { rules, lists })
        } else {
            Err(diags)
        }
    }

    /// Applies the rules in order; later matches override earlier actions
    /// (tags accumulate) until a matching rule says `stop`.
    pub fn evaluate(&self, f: &Facts<'_>) -> Outcome {
        let sender = f.sender.to_ascii_lowercase();
        let domain = split_address(&sender)
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        let ctx = Ctx {
            f,
            sender,
            domain,
            language: std::cell::OnceCell::new(),
        };
        let mut out = Outcome::default();
        for rule in &self.rules {
            let mut why = Vec::new();
            if !self.eval(&rule.when, &ctx, &mut why) {
                continue;
            }
            if why.is_empty() {
                why.push("always".into());
            }
            out.matched.push((rule.name.clone(), why));
            if rule.queue.is_some() {
                out.queue.clone_from(&rule.queue);
            }
            if rule.priority.is_some() {
                out.priority = rule.priority;
            }
            for t in &rule.tags {
                if !out.tags.contains(t) {
                    out.tags.push(t.clone());
                }
            }
            if rule.assign.is_some() {
                out.assign.clone_from(&rule.assign);
            }
            if rule.acknowledgement.is_some() {
                out.acknowledgement.clone_from(&rule.acknowledgement);
            }
            if rule.stop {
                break;
            }
        }
        out
    }

    /// Whether `c` holds; pushes the reasons of what matched onto `why`
    /// (formatted only on a match: this runs for every rule of every message).
    fn eval(&self, c: &Condition, ctx: &Ctx<'_, '_>, why: &mut Vec<String>) -> bool {
        let f = ctx.f;
        let (sender, domain) = (&ctx.sender, &ctx.domain);
        let hit = |why: &mut Vec<String>, ok: bool, text: &dyn Fn() -> String| {
            if ok {
                why.push(text());
            }
            ok
        };
        match c {
            Condition::Always => true,
            Condition::All(list) => {
                let mut local = Vec::new();
                let ok = list.iter().all(|c| self.eval(c, ctx, &mut local));
                if ok {
                    why.append(&mut local);
                }
                ok
            }
            Condition::Any(list) => list.iter().any(|c| self.eval(c, ctx, why)),
            Condition::Not(inner) => {
                let ok = !self.eval(inner, ctx, &mut Vec::new());
                hit(why, ok, &|| "negated condition did not match".into())
            }
            Condition::Mailbox(list) => {
                let ok = list.iter().any(|m| m.eq_ignore_ascii_case(f.mailbox));
                hit(why, ok, &|| format!("mailbox is {}", f.mailbox))
            }
            Condition::Sender(list) => hit(why, list.contains(sender), &|| {
                format!("sender is {sender}")
            }),
            Condition::SenderDomain(list) => {
                let ok = list
                    .iter()
                    .any(|d| *domain == *d || domain.ends_with(&format!(".{d}")));
                hit(why, ok, &|| format!("sender domain is {domain}"))
            }
            Condition::Subject(r) => match r.find(f.subject) {
                Some(m) => hit(why, true, &|| {
                    format!("subject matches /{}/ at {:?}", r.as_str(), m.as_str())
                }),
                None => false,
            },
            Condition::Body(r) => match r.find(f.body) {
                Some(m) => hit(why, true, &|| {
                    format!("body matches /{}/ at {:?}", r.as_str(), m.as_str())
                }),
                None => false,
            },
            Condition::Header(name, r) => {
                let v = f.headers.iter().find(|(n, v)| n == name && r.is_match(v));
                hit(why, v.is_some(), &|| {
                    format!("header {name} matches /{}/", r.as_str())
                })
            }
            Condition::HasAttachment(b) => hit(why, f.attachments.is_empty() != *b, &|| {
                format!("has attachment: {b}")
            }),
            Condition::AttachmentType(r) => {
                let a = f
                    .attachments
                    .iter()
                    .find(|(ct, name)| r.is_match(ct) || r.is_match(name));
                match a {
                    Some((ct, name)) => hit(why, true, &|| {
                        format!("attachment {name:?} ({ct}) matches /{}/", r.as_str())
                    }),
                    None => false,
                }
            }
            Condition::InList(l) => {
                let ok = self.lists.get(l).is_some_and(|entries| {
                    entries
                        .iter()
                        .any(|e| e == sender || e.strip_prefix('@').is_some_and(|d| d == *domain))
                });
                hit(why, ok, &|| format!("sender is in list {l}"))
            }
            Condition::BusinessHours(b) => {
                let open = f.calendar.is_open(f.now);
                hit(why, open == *b, &|| {
                    format!("{} business hours", if open { "within" } else { "outside" })
                })
            }
            Condition::Hours { from, to, days } => {
                let Some((weekday, minute)) = local_time(f.calendar, f.now) else {
                    return false;
                };
                let in_hours = if from < to {
                    (*from..*to).contains(&minute)
                } else {
                    minute >= *from || minute < *to
                };
                let in_days = days.is_none_or(|d| d[weekday]);
                hit(why, in_hours && in_days, &|| {
                    format!(
                        "local time {:02}:{:02} on {}",
                        minute / 60,
                        minute % 60,
                        DAYS[weekday]
                    )
                })
            }
            Condition::Language(lang) => {
                let detected = *ctx
                    .language
                    .get_or_init(|| detect_language(f.subject, f.body));
                hit(why, detected == Some(lang.as_str()), &|| {
                    format!("language looks like {lang}")
                })
            }
        }
    }
}

/// Per-message values computed once for all rules.
struct Ctx<'a, 'f> {
    f: &'a Facts<'f>,
    sender: String,
    domain: String,
    language: std::cell::OnceCell<Option<&'static str>>,
}

fn local_time(cal: &Calendar, ts: i64) -> Option<(usize, u32)> {
    let z = jiff::Timestamp::from_second(ts)
        .ok()?
        .to_zoned_datetime(cal.tz.clone());
    Some((
        z.weekday().to_monday_zero_offset() as usize,
        z.hour() as u32 * 60 + z.minute() as u32,
    ))
}

/// A small stop-word vote: good enough to route "German mail to the German queue".
pub fn detect_language(subject: &str, body: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &[&str])] = &[
        (
            "en",
            &[
                "the", "and", "is", "you", "that", "with", "have", "for", "not", "this", "please",
                "thanks",
            ],
        ),
        (
            "de",
            &[
                "der", "die", "und", "ist", "nicht", "ich", "sie", "mit", "das", "bitte", "danke",
                "ein",
            ],
        ),
        (
            "fr",
            &[
                "le", "la", "et", "est", "vous", "pas", "je", "les", "des", "merci", "une", "pour",
            ],
        ),
        (
            "es",
            &[
                "el", "la", "y", "es", "que", "no", "los", "por", "una", "gracias", "para", "con",
            ],
        ),
        (
            "it",
            &[
                "il", "che", "e", "non", "per", "una", "sono", "grazie", "della", "con", "questo",
                "mi",
            ],
        ),
        (
            "nl",
            &[
                "de", "het", "een", "en", "niet", "ik", "van", "dat", "bedankt", "voor", "met",
                "is",
            ],
        ),
    ];
    let text = format!("{subject} {}", body.chars().take(4000).collect::<String>()).to_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    let mut best: Option<(&str, usize)> = None;
    for (lang, stop) in WORDS {
        let n = words.iter().filter(|w| stop.contains(w)).count();
        if n >= 2 && best.is_none_or(|(_, b)| n > b) {
            best = Some((lang, n));
        }
    }
    best.map(|(l, _)| l)
}

#[cfg(test)]
mod tests;
