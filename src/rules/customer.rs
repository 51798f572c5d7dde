//! What the customer is told at each stage, per queue (rules/customer.toml):
//! the pending notice, the reopened notice, the reminder of a pending
//! ticket and its automatic close, the satisfaction survey. `[default]`
//! applies to every queue; `[queue.NAME]` overrides single keys for one.
//! A missing file means all of it is off (the acknowledgement and the
//! resolved notice are configured in config.toml, as before).
//!
//! The texts are files under templates/ (`pending.txt`, `reopened.txt`,
//! `reminder.txt`, `auto-closed.txt`, `survey.txt`), loaded only when some
//! queue uses them, so a set that names one which is missing or broken
//! fails to load (and `postdesk check` says where).

use super::template::Template;
use crate::csat::Scale;
use crate::diagnostic::Diagnostic;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

pub const FILE: &str = "customer.toml";

/// One queue's settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// The acknowledgement of a new ticket routed to this queue (the
    /// template itself is config's or the routing rule's).
    pub acknowledgement: bool,
    /// "We are waiting for you" when an agent sets the ticket pending
    /// without writing to the customer.
    pub pending: bool,
    /// "Your request is open again" when the customer's mail reopens it.
    pub reopened: bool,
    /// The reminder, sent when a ticket has been pending this long (seconds).
    pub remind_after: Option<i64>,
    /// The automatic close, this long after the reminder (seconds).
    pub close_after: Option<i64>,
    /// The resolved notice (`acknowledgement.resolved_template`) for this queue.
    pub resolved: bool,
    pub survey: Option<SurveySettings>,
}

impl Default for Stages {
    fn default() -> Self {
        Stages {
            acknowledgement: true,
            pending: false,
            reopened: false,
            remind_after: None,
            close_after: None,
            resolved: true,
            survey: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurveySettings {
    /// From resolution to the survey mail (seconds).
    pub delay: i64,
    pub scale: Scale,
    /// How long after the first answer it may still be changed (seconds).
    pub changeable_for: i64,
}

/// The stage templates, those that some queue uses.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    pub pending: Option<Template>,
    pub reopened: Option<Template>,
    pub reminder: Option<Template>,
    pub auto_closed: Option<Template>,
    pub survey: Option<Template>,
}

#[derive(Debug, Clone, Default)]
pub struct CustomerMail {
    default: Stages,
    queues: BTreeMap<String, Stages>,
    pub templates: Templates,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Spec {
    acknowledgement: Option<bool>,
    pending: Option<bool>,
    reopened: Option<bool>,
    resolved: Option<bool>,
    remind_after: Option<Spanned<String>>,
    close_after: Option<Spanned<String>>,
    survey: Option<bool>,
    survey_delay: Option<Spanned<String>>,
    survey_scale: Option<Spanned<String>>,
    survey_changeable_for: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    default: Spec,
    #[serde(default)]
    queue: BTreeMap<Spanned<String>, Spec>,
}

impl CustomerMail {
    /// The settings for tickets of `queue`.
    pub fn for_queue(&self, queue: &str) -> &Stages {
        self.queues.get(queue).unwrap_or(&self.default)
    }

    /// The shortest reminder or close delay of any queue (seconds); None
    /// when no queue reminds: the pending tickets need no scan.
    pub fn shortest_pending_delay(&self) -> Option<i64> {
        std::iter::once(&self.default)
            .chain(self.queues.values())
            .flat_map(|s| [s.remind_after, s.close_after])
            .flatten()
            .min()
    }

    /// Whether any queue uses a stage (to load its template).
    fn any(&self, f: impl Fn(&Stages) -> bool) -> bool {
        f(&self.default) || self.queues.values().any(f)
    }

    /// Parses rules/customer.toml and loads the templates it needs from
    /// `templates_dir`. `known_queues`: queue names a `[queue.X]` may use.
    pub fn parse(
        text: &str,
        path: &Path,
        templates_dir: &Path,
        known_queues: &[String],
    ) -> Result<CustomerMail, Vec<Diagnostic>> {
        let file: File =
            toml::from_str(text).map_err(|e| vec![super::toml_diag(path, text, &e)])?;
        let mut diags = Vec::new();
        let default = resolve(&Stages::default(), &file.default, path, text, &mut diags);
        let mut queues = BTreeMap::new();
        for (name, spec) in &file.queue {
            if !known_queues.is_empty() && !known_queues.iter().any(|k| k == name.get_ref()) {
                diags.push(super::diag_at(
                    path,
                    text,
                    name.span().start,
                    format!(
                        "unknown queue {:?} (known: {})",
                        name.get_ref(),
                        known_queues.join(", ")
                    ),
                ));
            }
            let merged = resolve(&default, spec, path, text, &mut diags);
            queues.insert(name.get_ref().clone(), merged);
        }
        let mut set = CustomerMail {
            default,
            queues,
            templates: Templates::default(),
        };
        let mut load = |used: bool, file: &str| -> Option<Template> {
            if !used {
                return None;
            }
            match Template::load(&templates_dir.join(file)) {
                Ok(t) => Some(t),
                Err(d) => {
                    diags.push(d);
                    None
                }
            }
        };
        let t = Templates {
            pending: load(set.any(|s| s.pending), "pending.txt"),
            reopened: load(set.any(|s| s.reopened), "reopened.txt"),
            reminder: load(set.any(|s| s.remind_after.is_some()), "reminder.txt"),
            auto_closed: load(set.any(|s| s.close_after.is_some()), "auto-closed.txt"),
            survey: load(set.any(|s| s.survey.is_some()), "survey.txt"),
        };
        set.templates = t;
        if diags.is_empty() {
            Ok(set)
        } else {
            Err(diags)
        }
    }
}

/// `spec` over `base`; problems go to `diags`.
fn resolve(
    base: &Stages,
    spec: &Spec,
    path: &Path,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Stages {
    let mut s = base.clone();
    if let Some(v) = spec.acknowledgement {
        s.acknowledgement = v;
    }
    if let Some(v) = spec.pending {
        s.pending = v;
    }
    if let Some(v) = spec.reopened {
        s.reopened = v;
    }
    if let Some(v) = spec.resolved {
        s.resolved = v;
    }
    let dur = |v: &Spanned<String>, diags: &mut Vec<Diagnostic>| -> Option<i64> {
        if v.get_ref().trim() == "off" {
            return None;
        }
        match crate::config::parse_duration(v.get_ref()) {
            Ok(d) if d.as_secs() > 0 => Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Ok(_) => {
                diags.push(super::diag_at(
                    path,
                    text,
                    v.span().start,
                    "a duration of at least 1s, or \"off\"".into(),
                ));
                None
            }
            Err(e) => {
                diags.push(super::diag_at(path, text, v.span().start, e));
                None
            }
        }
    };
    if let Some(v) = &spec.remind_after {
        s.remind_after = dur(v, diags);
    }
    if let Some(v) = &spec.close_after {
        s.close_after = dur(v, diags);
    }
    if s.close_after.is_some() && s.remind_after.is_none() {
        let at = spec
            .close_after
            .as_ref()
            .or(spec.remind_after.as_ref())
            .map_or(0, |v| v.span().start);
        diags.push(super::diag_at(
            path,
            text,
            at,
            "close_after counts from the reminder: set remind_after too".into(),
        ));
    }
    let survey_on = spec.survey.unwrap_or(base.survey.is_some());
    if !survey_on {
        s.survey = None;
        return s;
    }
    let mut survey = base.survey.unwrap_or(SurveySettings {
        delay: 3600,
        scale: Scale::Five,
        changeable_for: 7 * 86_400,
    });
    if let Some(v) = &spec.survey_delay {
        // "0s" is allowed here: the survey right after resolution.
        match crate::config::parse_duration(v.get_ref()) {
            Ok(d) => survey.delay = i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => diags.push(super::diag_at(path, text, v.span().start, e)),
        }
    }
    if let Some(v) = &spec.survey_changeable_for {
        match crate::config::parse_duration(v.get_ref()) {
            Ok(d) => survey.changeable_for = i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => diags.push(super::diag_at(path, text, v.span().start, e)),
        }
    }
    if let Some(v) = &spec.survey_scale {
        match Scale::parse(v.get_ref()) {
            Some(sc) => survey.scale = sc,
            None => diags.push(super::diag_at(
                path,
                text,
                v.span().start,
                format!("unknown scale {:?}: \"good_bad\" or \"five\"", v.get_ref()),
            )),
        }
    }
    s.survey = Some(survey);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/templates")
    }

    #[test]
    fn queues_override_the_default_key_by_key() {
        let text = r#"
[default]
pending = true
survey = true
survey_delay = "2h"
survey_scale = "good_bad"

[queue.billing]
survey = false
pending = false
"#;
        let c = CustomerMail::parse(
            text,
            Path::new("customer.toml"),
            &dir(),
            &["general".into(), "billing".into()],
        )
        .unwrap();
        let g = c.for_queue("general");
        assert!(g.pending);
        assert_eq!(g.survey.unwrap().delay, 7200);
        assert_eq!(g.survey.unwrap().scale, Scale::GoodBad);
        let b = c.for_queue("billing");
        assert!(!b.pending && b.survey.is_none());
        assert!(c.templates.pending.is_some() && c.templates.survey.is_some());
        assert!(c.templates.reminder.is_none());
    }

    #[test]
    fn problems_have_positions() {
        let text = "[default]\nremind_after = \"3x\"\n\n[queue.nope]\nsurvey_scale = \"ten\"\nsurvey = true\n";
        let e = CustomerMail::parse(text, Path::new("c.toml"), &dir(), &["general".into()])
            .unwrap_err();
        let lines: Vec<usize> = e.iter().map(|d| d.line).collect();
        assert!(lines.contains(&2), "{e:?}");
        assert!(lines.contains(&4), "{e:?}");
        assert!(lines.contains(&5), "{e:?}");
        let e = CustomerMail::parse(
            "[default]\nclose_after = \"2d\"\n",
            Path::new("c.toml"),
            &dir(),
            &[],
        )
        .unwrap_err();
        assert!(e[0].message.contains("remind_after"), "{e:?}");
    }
}
