//! Retention rules (rules/retention.toml): which tickets lose their content
//! after how long, for data protection. A rule names statuses (default:
//! closed), optionally queues, and an age counted from the ticket's last
//! change; a matching ticket keeps its number, times and events (reports
//! stay true) and loses its messages' content and its customer's data
//! (`store/erase.rs`). Applied by `crate::retention`.
//!
//! ```toml
//! [[rule]]
//! name = "closed tickets after three years"
//! statuses = ["closed"]
//! older_than = "1095d"
//! ```

use crate::config::parse_duration;
use crate::diagnostic::Diagnostic;
use crate::model::{Status, Ticket};
use crate::rules::{diag_at, toml_diag};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// The shortest age a rule may name: a typo ("30m" for "30d") must not
/// empty the help desk.
const MIN_AGE_SECS: i64 = 86_400;

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionRule {
    pub name: String,
    pub statuses: Vec<Status>,
    /// Empty: every queue.
    pub queues: Vec<String>,
    /// Seconds since the ticket last changed.
    pub older_than: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    pub rules: Vec<RetentionRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Spanned<String>,
    #[serde(default)]
    statuses: Vec<Spanned<String>>,
    #[serde(default)]
    queues: Vec<String>,
    older_than: Spanned<String>,
}

impl Retention {
    pub fn parse(
        text: &str,
        path: &Path,
        known_queues: &[String],
    ) -> Result<Retention, Vec<Diagnostic>> {
        let file: File = toml::from_str(text).map_err(|e| vec![toml_diag(path, text, &e)])?;
        let mut diags = Vec::new();
        let mut rules = Vec::new();
        for spec in file.rule {
            let mut err = |at: usize, m: String| diags.push(diag_at(path, text, at, m));
            let mut statuses = Vec::new();
            for s in &spec.statuses {
                let parsed = [
                    Status::New,
                    Status::Open,
                    Status::Pending,
                    Status::Resolved,
                    Status::Closed,
                ]
                .into_iter()
                .find(|k| k.as_str() == s.get_ref());
                match parsed {
                    Some(st) if st.is_finished() => statuses.push(st),
                    Some(_) => err(
                        s.span().start,
                        format!(
                            "status {:?}: retention applies to resolved or closed tickets only",
                            s.get_ref()
                        ),
                    ),
                    None => err(
                        s.span().start,
                        format!("status {:?}: use resolved or closed", s.get_ref()),
                    ),
                }
            }
            if spec.statuses.is_empty() {
                statuses.push(Status::Closed);
            }
            for q in &spec.queues {
                if !known_queues.iter().any(|k| k == q) {
                    err(
                        spec.name.span().start,
                        format!(
                            "rule {:?}: no queue {q:?} among the mailboxes' queues",
                            spec.name.get_ref()
                        ),
                    );
                }
            }
            let older_than = match parse_duration(spec.older_than.get_ref()) {
                Ok(d) => {
                    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                    if secs < MIN_AGE_SECS {
                        err(
                            spec.older_than.span().start,
                            "older_than must be at least 1d".into(),
                        );
                    }
                    secs
                }
                Err(e) => {
                    err(spec.older_than.span().start, e);
                    0
                }
            };
            rules.push(RetentionRule {
                name: spec.name.get_ref().clone(),
                statuses,
                queues: spec.queues.clone(),
                older_than,
            });
        }
        if diags.is_empty() {
            Ok(Retention { rules })
        } else {
            Err(diags)
        }
    }

    /// The first rule under which `t` is due at `now`.
    pub fn due(&self, t: &Ticket, now: i64) -> Option<&RetentionRule> {
        self.rules.iter().find(|r| {
            r.statuses.contains(&t.status)
                && (r.queues.is_empty() || r.queues.contains(&t.queue))
                && now.saturating_sub(t.updated_at) >= r.older_than
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Retention, Vec<Diagnostic>> {
        Retention::parse(text, Path::new("retention.toml"), &["general".into()])
    }

    #[test]
    fn a_rule_parses_with_closed_as_the_default_status() {
        let r = parse("[[rule]]\nname = \"old\"\nolder_than = \"30d\"\n").unwrap();
        assert_eq!(r.rules[0].statuses, [Status::Closed]);
        assert_eq!(r.rules[0].older_than, 30 * 86_400);
    }

    #[test]
    fn open_statuses_short_ages_and_unknown_queues_are_refused_with_positions() {
        let e = parse(
            "[[rule]]\nname = \"bad\"\nstatuses = [\"open\"]\nqueues = [\"nope\"]\nolder_than = \"30m\"\n",
        )
        .unwrap_err();
        let text: Vec<String> = e.iter().map(|d| d.to_string()).collect();
        assert_eq!(e.len(), 3, "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.contains("resolved or closed tickets only") && t.contains(":3:")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("at least 1d")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("no queue \"nope\"")),
            "{text:?}"
        );
    }
}
