//! SLA policies (rules/sla.toml): first-response and resolution targets per
//! priority or queue, counted in a business-hours calendar, with warnings
//! and the actions a warning or breach takes. Loading reports every problem
//! as `file:line:column`; the clock that applies a policy is `crate::sla`.

use crate::config::parse_duration;
use crate::diagnostic::Diagnostic;
use crate::model::{Priority, Ticket};
use crate::rules::calendar::Calendar;
use crate::rules::routing::Assign;
use crate::rules::{diag_at, toml_diag};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub priorities: Vec<Priority>,
    pub queues: Vec<String>,
    pub first_response: Option<i64>,
    pub resolution: Option<i64>,
    pub calendar: String,
    pub warn_at: f64,
    pub on_warning: Vec<Action>,
    pub on_breach: Vec<Action>,
    /// When an agent's first public reply meets the first-response target.
    pub first_response_on: FirstResponseOn,
}

/// When the first response counts as given (`first_response_on`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FirstResponseOn {
    /// When the reply is queued (the agent answered).
    #[default]
    Queued,
    /// When the customer's server accepts it (delivery evidence), so a reply
    /// stuck in the queue does not count as an answer.
    Delivered,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Mail the assignee (or, without one, nobody), an agent, or an address.
    Notify(Target),
    RaisePriority,
    Reassign(Assign),
    Tag(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Assignee,
    Agent(String),
    Address(String),
}

#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub list: Vec<Policy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    policy: Vec<PolicySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    name: Spanned<String>,
    #[serde(default)]
    priorities: Vec<Spanned<String>>,
    #[serde(default)]
    queues: Vec<String>,
    first_response: Option<Spanned<String>>,
    resolution: Option<Spanned<String>>,
    calendar: Option<Spanned<String>>,
    warn_at: Option<Spanned<f64>>,
    #[serde(default)]
    on_warning: Vec<Spanned<ActionSpec>>,
    #[serde(default)]
    on_breach: Vec<Spanned<ActionSpec>>,
    first_response_on: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSpec {
    notify: Option<String>,
    raise_priority: Option<bool>,
    reassign: Option<String>,
    tag: Option<String>,
}

impl Policies {
    pub fn parse(
        text: &str,
        path: &Path,
        calendars: &[Calendar],
        agents: &crate::rules::Agents,
    ) -> Result<Policies, Vec<Diagnostic>> {
        let file: File = toml::from_str(text).map_err(|e| vec![toml_diag(path, text, &e)])?;
        let mut diags = Vec::new();
        let mut list = Vec::new();
        for spec in file.policy {
            let mut err = |at: usize, m: String| diags.push(diag_at(path, text, at, m));
            let mut priorities = Vec::new();
            for p in &spec.priorities {
                match Priority::parse(p.get_ref()) {
                    Some(v) => priorities.push(v),
                    None => err(
                        p.span().start,
                        format!(
                            "priority {:?}: use low, normal, high or urgent",
                            p.get_ref()
                        ),
                    ),
                }
            }
            let mut duration = |d: &Option<Spanned<String>>| -> Option<i64> {
                let d = d.as_ref()?;
                match parse_duration(d.get_ref()) {
                    Ok(v) if !v.is_zero() => Some(v.as_secs() as i64),
                    Ok(_) => {
                        err(d.span().start, "a target must be longer than zero".into());
                        None
                    }
                    Err(e) => {
                        err(d.span().start, e);
                        None
                    }
                }
            };
            let first_response = duration(&spec.first_response);
            let resolution = duration(&spec.resolution);
            if spec.first_response.is_none() && spec.resolution.is_none() {
                err(
                    spec.name.span().start,
                    "a policy needs first_response and/or resolution".into(),
                );
            }
            let calendar = spec
                .calendar
                .as_ref()
                .map_or("default".to_string(), |c| c.get_ref().clone());
            if let Some(c) = &spec.calendar
                && c.get_ref() != "always"
                && !calendars.iter().any(|k| &k.name == c.get_ref())
            {
                err(
                    c.span().start,
                    format!(
                        "no calendar {:?} in calendar.toml (or use \"always\")",
                        c.get_ref()
                    ),
                );
            }
            let warn_at = spec.warn_at.as_ref().map_or(0.8, |w| *w.get_ref());
            if let Some(w) = &spec.warn_at
                && !(*w.get_ref() > 0.0 && *w.get_ref() < 1.0)
            {
                err(
                    w.span().start,
                    "warn_at must be between 0 and 1 (a share of the target)".into(),
                );
            }
            let first_response_on = match spec.first_response_on.as_ref() {
                None => FirstResponseOn::Queued,
                Some(v) => match v.get_ref().as_str() {
                    "queued" => FirstResponseOn::Queued,
                    "delivered" => FirstResponseOn::Delivered,
                    other => {
                        err(
                            v.span().start,
                            format!("first_response_on {other:?}: use \"queued\" or \"delivered\""),
                        );
                        FirstResponseOn::Queued
                    }
                },
            };
            let mut actions = |specs: &[Spanned<ActionSpec>]| -> Vec<Action> {
                let mut out = Vec::new();
                for a in specs {
                    let at = a.span().start;
                    let s = a.get_ref();
                    let mut n = 0;
                    if let Some(t) = &s.notify {
                        n += 1;
                        let target = if t == "assignee" {
                            Some(Target::Assignee)
                        } else if let Some(name) = t.strip_prefix("agent:") {
                            agents.by_name(name).map(|a| Target::Agent(a.name.clone()))
                        } else if t.contains('@') {
                            Some(Target::Address(t.clone()))
                        } else {
                            None
                        };
                        match target {
                            Some(t) => out.push(Action::Notify(t)),
                            None => err(
                                at,
                                format!(
                                    "notify {t:?}: use \"assignee\", \"agent:NAME\" of agents.toml, or an address"
                                ),
                            ),
                        }
                    }
                    if s.raise_priority == Some(true) {
                        n += 1;
                        out.push(Action::RaisePriority);
                    }
                    if let Some(r) = &s.reassign {
                        n += 1;
                        let assign = match r.as_str() {
                            "round-robin" => Some(Assign::RoundRobin),
                            "least-loaded" => Some(Assign::LeastLoaded),
                            s if s.starts_with("skill:") => Some(Assign::Skill(s[6..].to_string())),
                            name => agents.by_name(name).map(|a| Assign::Agent(a.name.clone())),
                        };
                        match assign {
                            Some(a) => out.push(Action::Reassign(a)),
                            None => err(
                                at,
                                format!(
                                    "reassign {r:?}: no such agent (or round-robin, least-loaded, skill:NAME)"
                                ),
                            ),
                        }
                    }
                    if let Some(t) = &s.tag {
                        n += 1;
                        out.push(Action::Tag(t.clone()));
                    }
                    if n != 1 {
                        err(
                            at,
                            "each action is one of notify, raise_priority, reassign, tag".into(),
                        );
                    }
                }
                out
            };
            let on_warning = actions(&spec.on_warning);
            let on_breach = actions(&spec.on_breach);
            list.push(Policy {
                name: spec.name.into_inner(),
                priorities,
                queues: spec.queues,
                first_response,
                resolution,
                calendar,
                warn_at,
                on_warning,
                on_breach,
                first_response_on,
            });
        }
        if diags.is_empty() {
            Ok(Policies { list })
        } else {
            Err(diags)
        }
    }

    /// The first policy whose priorities and queues (each empty = any) fit the ticket.
    pub fn for_ticket(&self, t: &Ticket) -> Option<&Policy> {
        self.list.iter().find(|p| {
            (p.priorities.is_empty() || p.priorities.contains(&t.priority))
                && (p.queues.is_empty() || p.queues.contains(&t.queue))
        })
    }

    pub fn by_name(&self, name: &str) -> Option<&Policy> {
        self.list.iter().find(|p| p.name == name)
    }
}

/// The calendar a policy counts in.
pub fn calendar_of<'a>(
    policy: &Policy,
    calendars: &'a [Calendar],
) -> std::borrow::Cow<'a, Calendar> {
    match calendars.iter().find(|c| c.name == policy.calendar) {
        Some(c) => std::borrow::Cow::Borrowed(c),
        None => std::borrow::Cow::Owned(Calendar::always_open()),
    }
}
