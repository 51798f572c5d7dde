//! Admin rule files under rules/: routing (`routing.toml`) and agents
//! (`agents.toml`). Loading reports every problem as `file:line:column`;
//! evaluation is pure: `(facts, rules) → Outcome`.
//!
//! The daemon holds the loaded set behind an `Arc` that a reload swaps
//! atomically; a set that fails to load never replaces the working one.

pub mod agents;
pub mod calendar;
pub mod chat;
pub mod customer;
pub mod retention;
pub mod routing;
pub mod sla;
pub mod template;

use crate::diagnostic::Diagnostic;
use std::path::{Path, PathBuf};

pub use agents::{Agent, Agents};
pub use routing::{Facts, Outcome, Routing};

/// Everything loaded from rules_dir.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub routing: Routing,
    pub agents: Agents,
    /// Named business-hours calendars (rules/calendar.toml).
    pub calendars: Vec<calendar::Calendar>,
    /// SLA policies (rules/sla.toml).
    pub sla: sla::Policies,
    /// Acknowledgement templates named by routing rules, by file name.
    pub templates: std::collections::BTreeMap<String, crate::rules::template::Template>,
    /// The default acknowledgement (`acknowledgement.template`); None when
    /// acknowledgements are off. Loaded with the rules, so an edit reloads it.
    pub acknowledgement: Option<crate::rules::template::Template>,
    /// The customer's notice when an agent resolves or closes a ticket
    /// without writing (`acknowledgement.resolved_template`), if set.
    pub resolved: Option<crate::rules::template::Template>,
    /// Retention rules (rules/retention.toml); none when the file is absent.
    pub retention: retention::Retention,
    /// Files read, for change detection.
    pub files: Vec<PathBuf>,
    /// Sites embedding the live chat, and its limits (rules/chat.toml).
    pub chat: chat::ChatSites,
    /// What the customer is told at each stage, per queue (rules/customer.toml).
    pub customer: customer::CustomerMail,
    /// The knowledge base's articles (`server.kb_dir`), loaded and checked
    /// with the rules.
    pub kb: crate::kb::Kb,
}

pub const ROUTING_FILE: &str = "routing.toml";
pub const AGENTS_FILE: &str = "agents.toml";
pub const CALENDAR_FILE: &str = "calendar.toml";
pub const SLA_FILE: &str = "sla.toml";
pub const RETENTION_FILE: &str = "retention.toml";
pub const CHAT_FILE: &str = "chat.toml";

impl RuleSet {
    /// Loads the rule files of `dir`; a missing file means "none of those rules".
    pub fn load(dir: &Path, known_queues: &[String]) -> Result<RuleSet, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let mut set = RuleSet::default();
        let agents_path = dir.join(AGENTS_FILE);
        if let Some(text) = read_optional(&agents_path, &mut diags) {
            match Agents::parse(&text, &agents_path) {
                Ok(a) => set.agents = a,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(agents_path);
        }
        let calendar_path = dir.join(CALENDAR_FILE);
        if let Some(text) = read_optional(&calendar_path, &mut diags) {
            match calendar::Calendar::parse_file(&text, &calendar_path) {
                Ok(c) => set.calendars = c,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(calendar_path);
        }
        let sla_path = dir.join(SLA_FILE);
        if let Some(text) = read_optional(&sla_path, &mut diags) {
            match sla::Policies::parse(&text, &sla_path, &set.calendars, &set.agents) {
                Ok(p) => set.sla = p,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(sla_path);
        }
        let routing_path = dir.join(ROUTING_FILE);
        if let Some(text) = read_optional(&routing_path, &mut diags) {
            match Routing::parse(&text, &routing_path, &set.agents, known_queues) {
                Ok(r) => set.routing = r,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(routing_path);
        }
        let retention_path = dir.join(RETENTION_FILE);
        if let Some(text) = read_optional(&retention_path, &mut diags) {
            match retention::Retention::parse(&text, &retention_path, known_queues) {
                Ok(r) => set.retention = r,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(retention_path);
        }
        let chat_path = dir.join(CHAT_FILE);
        if let Some(text) = read_optional(&chat_path, &mut diags) {
            match chat::ChatSites::parse(&text, &chat_path, dir, &set.calendars, known_queues) {
                Ok(c) => set.chat = c,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(chat_path);
        }
        let customer_path = dir.join(customer::FILE);
        if let Some(text) = read_optional(&customer_path, &mut diags) {
            // Queues a ticket can be in: the mailboxes', the agents', the routing rules'.
            let mut queues = known_queues.to_vec();
            queues.extend(
                set.agents
                    .list
                    .iter()
                    .flat_map(|a| a.queues.iter().cloned()),
            );
            queues.extend(set.routing.rules.iter().filter_map(|r| r.queue.clone()));
            match customer::CustomerMail::parse(
                &text,
                &customer_path,
                &dir.join("templates"),
                &queues,
            ) {
                Ok(c) => set.customer = c,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(customer_path);
        }
        for rule in &set.routing.rules {
            if let Some(routing::AckChoice::Template(name)) = &rule.acknowledgement
                && !set.templates.contains_key(name)
                && let Ok(t) =
                    crate::rules::template::Template::load(&dir.join("templates").join(name))
            {
                set.templates.insert(name.clone(), t);
            }
        }
        if diags.is_empty() {
            Ok(set)
        } else {
            Err(diags)
        }
    }

    /// The rule set `cfg` names: the rule files of its rules_dir and the
    /// acknowledgement and resolved-notice templates, checked and reloaded
    /// together (a set with any problem never replaces the working one).
    pub fn load_for(cfg: &crate::config::Config) -> Result<RuleSet, Vec<Diagnostic>> {
        use crate::rules::template::Template;
        let dir = cfg.rules_dir();
        let (mut set, mut diags) = match RuleSet::load(&dir, &cfg.mailbox_queues()) {
            Ok(set) => (set, Vec::new()),
            Err(d) => (RuleSet::default(), d),
        };
        let ack = &cfg.acknowledgement;
        let mut template = |file: &Path| match Template::load(&dir.join(file)) {
            Ok(t) => Some(t),
            Err(d) => {
                diags.push(d);
                None
            }
        };
        set.acknowledgement = if ack.enabled {
            template(&ack.template)
        } else {
            None
        };
        set.resolved = ack.resolved_template.as_deref().and_then(&mut template);
        match crate::kb::Kb::load(&cfg.kb_dir()) {
            Ok(kb) => set.kb = kb,
            Err(mut d) => diags.append(&mut d),
        }
        if diags.is_empty() {
            Ok(set)
        } else {
            Err(diags)
        }
    }

    /// The calendar named "default", or always-open UTC.
    pub fn default_calendar(&self) -> std::borrow::Cow<'_, calendar::Calendar> {
        match self.calendars.iter().find(|c| c.name == "default") {
            Some(c) => std::borrow::Cow::Borrowed(c),
            None => std::borrow::Cow::Owned(calendar::Calendar::always_open()),
        }
    }

    /// Size and modification time of every rule file, to notice edits
    /// (including files replaced by rename, as editors and config tools do).
    pub fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<std::time::SystemTime>, u64)> {
        let mut paths: Vec<PathBuf> = [
            ROUTING_FILE,
            AGENTS_FILE,
            CALENDAR_FILE,
            SLA_FILE,
            CHAT_FILE,
            customer::FILE,
        ]
        .iter()
        .map(|n| dir.join(n))
        .collect();
        if let Ok(entries) = std::fs::read_dir(dir.join("templates")) {
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            paths.extend(files);
        }
        paths
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                (p, modified, meta.map_or(0, |m| m.len()))
            })
            .collect()
    }
}

fn read_optional(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            diags.push(Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read: {e}"),
            });
            None
        }
    }
}

/// A diagnostic at a byte span of `text`.
pub(crate) fn diag_at(path: &Path, text: &str, offset: usize, message: String) -> Diagnostic {
    let (line, column) = crate::diagnostic::line_col(text, offset);
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// A TOML syntax or shape error as a diagnostic.
pub(crate) fn toml_diag(path: &Path, text: &str, e: &toml::de::Error) -> Diagnostic {
    diag_at(
        path,
        text,
        e.span().map_or(0, |s| s.start),
        e.message().trim().to_string(),
    )
}

/// The working rule set, shared by the processor and swapped whole on reload.
#[derive(Debug, Default)]
pub struct LiveRules {
    current: std::sync::RwLock<std::sync::Arc<RuleSet>>,
}

impl LiveRules {
    pub fn new(set: RuleSet) -> LiveRules {
        LiveRules {
            current: std::sync::RwLock::new(std::sync::Arc::new(set)),
        }
    }

    /// The set in force now; callers keep using it even if a reload happens meanwhile.
    pub fn current(&self) -> std::sync::Arc<RuleSet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, set: RuleSet) {
        let set = std::sync::Arc::new(set);
        match self.current.write() {
            Ok(mut g) => *g = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}
