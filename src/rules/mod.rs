//! Admin rule files under rules/: routing (`routing.toml`) and agents
//! (`agents.toml`). Loading reports every problem as `file:line:column`;
//! evaluation is pure: `(facts, rules) → Outcome`.
//!
//! The daemon holds the loaded set behind an `Arc` that a reload swaps
//! atomically; a set that fails to load never replaces the working one.

pub mod agents;
pub mod calendar;
pub mod routing;

use crate::config::Diagnostic;
use std::path::{Path, PathBuf};

pub use agents::{Agent, Agents};
pub use routing::{Facts, Outcome, Routing};

/// Everything loaded from rules_dir.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub routing: Routing,
    pub agents: Agents,
    /// Files read, for change detection.
    pub files: Vec<PathBuf>,
}

pub const ROUTING_FILE: &str = "routing.toml";
pub const AGENTS_FILE: &str = "agents.toml";

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
        let routing_path = dir.join(ROUTING_FILE);
        if let Some(text) = read_optional(&routing_path, &mut diags) {
            match Routing::parse(&text, &routing_path, &set.agents, known_queues) {
                Ok(r) => set.routing = r,
                Err(mut d) => diags.append(&mut d),
            }
            set.files.push(routing_path);
        }
        if diags.is_empty() {
            Ok(set)
        } else {
            Err(diags)
        }
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
    let (line, column) = crate::config::line_col(text, offset);
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
