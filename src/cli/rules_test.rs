//! `postdesk rules test`: what the rules would do with one message (matched
//! rules and why, queue, priority, tags, assignee, SLA, acknowledgement),
//! reading only the config, the rule files and the message, changing nothing.
//!
//! It prints the plan of `process::decide`, the function the daemon's
//! processor applies, so the two cannot disagree. What needs the store is not
//! evaluated here: threading into an existing ticket (the message is taken as
//! opening a new one), the load behind round-robin and least-loaded
//! assignment (the candidates are listed), and the hourly acknowledgement
//! limits.

use crate::clock::Clock;
use crate::config::Config;
use crate::process::classify::Class;
use crate::process::decide::{self, Ack, AckTemplate, Incoming};
use crate::rules::RuleSet;
use crate::rules::routing::Assign;
use anyhow::Context;
use serde_json::{Value, json};

/// How `rules test` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// `postdesk rules test`: what the rules would do with a message, changing nothing.
/// `at` evaluates as of that instant (unix seconds) instead of now, for
/// reproducible output of time-dependent rules and SLA deadlines.
pub fn rules_test(
    config: &std::path::Path,
    message: &std::path::Path,
    at: Option<i64>,
    format: Format,
) -> anyhow::Result<String> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = RuleSet::load_for(&cfg).map_err(|d| {
        anyhow::anyhow!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let raw =
        std::fs::read(message).with_context(|| format!("cannot read {}", message.display()))?;
    let parsed = crate::process::parse::parse(&raw);
    let now = at.unwrap_or_else(|| Clock::system().now());
    let mailbox = parsed
        .to
        .iter()
        .chain(parsed.cc.iter())
        .find_map(|a| cfg.mailbox_for(a))
        .or(cfg.mailboxes.first());
    let env = crate::model::Envelope {
        // The Return-Path of a delivered message, else as if the From address
        // were the envelope sender (a `Return-Path: <>` header still counts).
        mail_from: match crate::process::parse::envelope_sender(&raw) {
            from if !from.is_empty() => from,
            _ if parsed.from.is_empty() => "unknown@invalid".into(),
            _ => parsed.from.clone(),
        },
        rcpt_to: mailbox.map(|m| vec![m.address.clone()]).unwrap_or_default(),
        received_at: now,
        source: crate::model::Source::Smtp,
        peer: String::new(),
        helo: String::new(),
        imap: None,
        sender_auth: None,
        imported_as: None,
    };
    let msg = Incoming::read(&cfg, &parsed, &env, now);
    let plan = decide::new_ticket(&cfg, &rules, &msg);
    let report = Report {
        cfg: &cfg,
        rules: &rules,
        msg: &msg,
        plan: &plan,
    };
    Ok(match format {
        Format::Text => report.text(message),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report.json())?;
            s.push('\n');
            s
        }
    })
}

/// The plan of one message, ready to print.
struct Report<'a> {
    cfg: &'a Config,
    rules: &'a RuleSet,
    msg: &'a Incoming<'a>,
    plan: &'a decide::NewTicket,
}

impl Report<'_> {
    /// The agents of the plan's queue.
    fn candidates(&self) -> Vec<&str> {
        self.rules
            .agents
            .in_queue(&self.plan.queue)
            .map(|a| a.name.as_str())
            .collect()
    }

    fn assignee_text(&self) -> String {
        match &self.plan.assign {
            None => "(nobody)".to_string(),
            Some(Assign::Agent(a)) => a.clone(),
            Some(Assign::RoundRobin) => {
                format!("round-robin among [{}]", self.candidates().join(", "))
            }
            Some(Assign::LeastLoaded) => {
                format!("least loaded of [{}]", self.candidates().join(", "))
            }
            Some(Assign::Skill(s)) => format!("least loaded agent with skill {s}"),
        }
    }

    /// Whether an SLA policy would apply to a customer's ticket like this one.
    fn policy_would_apply(&self) -> bool {
        let probe = crate::model::Ticket {
            queue: self.plan.queue.clone(),
            priority: self.plan.priority,
            ..crate::model::Ticket::new(0, "", self.msg.now)
        };
        self.rules.sla.for_ticket(&probe).is_some()
    }

    fn sla_text(&self) -> String {
        match &self.plan.sla {
            Some(state) => {
                let calendar = self
                    .rules
                    .sla
                    .by_name(&state.policy)
                    .map(|p| {
                        crate::sla::calendar_of(p, &self.rules.calendars)
                            .name
                            .clone()
                    })
                    .unwrap_or_default();
                let due = |d: Option<i64>| d.map_or("-".to_string(), crate::clock::rfc3339);
                format!(
                    "policy {} (calendar {calendar}): first response due {}, resolution due {}",
                    state.policy,
                    due(state.first_response_due),
                    due(state.resolution_due)
                )
            }
            None if self.msg.class != Class::Customer && self.policy_would_apply() => {
                format!("none ({} gets no SLA clock)", self.msg.class.as_str())
            }
            None => "no policy applies".to_string(),
        }
    }

    fn template_name(&self, t: &AckTemplate) -> String {
        match t {
            AckTemplate::Default => self.cfg.acknowledgement.template.display().to_string(),
            AckTemplate::Named(n) => n.clone(),
        }
    }

    fn ack_text(&self) -> String {
        match &self.plan.ack {
            Ack::Off => "no (acknowledgements disabled)".to_string(),
            Ack::Suppressed(reason) => format!("no ({reason})"),
            Ack::Send(t) => format!(
                "yes, template {} (unless the hourly limit is reached)",
                self.template_name(t)
            ),
        }
    }

    fn text(&self, message: &std::path::Path) -> String {
        use std::fmt::Write;
        let (parsed, plan) = (self.msg.parsed, self.plan);
        let mut out = String::new();
        let _ = writeln!(out, "message:    {}", message.display());
        let _ = writeln!(
            out,
            "from:       {}",
            if parsed.from.is_empty() {
                "(none)"
            } else {
                &parsed.from
            }
        );
        let _ = writeln!(out, "subject:    {}", parsed.subject);
        let _ = writeln!(out, "class:      {}", self.msg.class.as_str());
        if plan.matched.is_empty() {
            let _ = writeln!(out, "rules:      none matched");
        } else {
            let _ = writeln!(out, "rules:");
            for (name, why) in &plan.matched {
                let _ = writeln!(out, "  - {name}: {}", why.join("; "));
            }
        }
        let _ = writeln!(out, "queue:      {}", plan.queue);
        let _ = writeln!(out, "priority:   {}", plan.priority.as_str());
        let tags = if plan.tags.is_empty() {
            "(none)".into()
        } else {
            plan.tags.join(", ")
        };
        let _ = writeln!(out, "tags:       {tags}");
        let _ = writeln!(out, "assignee:   {}", self.assignee_text());
        let _ = writeln!(out, "sla:        {}", self.sla_text());
        let _ = writeln!(out, "ack:        {}", self.ack_text());
        out
    }

    /// The plan as JSON (stable for scripts: `class`, `ticket`, `queue`,
    /// `priority`, `tags`, `assignee`, `acknowledgement`, `sla`, `matched_rules`).
    fn json(&self) -> Value {
        let plan = self.plan;
        let assignee = match &plan.assign {
            None => json!({ "rule": "none", "agent": null }),
            Some(Assign::Agent(a)) => json!({ "rule": "agent", "agent": a }),
            Some(Assign::RoundRobin) => {
                json!({ "rule": "round_robin", "agent": null, "candidates": self.candidates() })
            }
            Some(Assign::LeastLoaded) => {
                json!({ "rule": "least_loaded", "agent": null, "candidates": self.candidates() })
            }
            Some(Assign::Skill(s)) => json!({ "rule": "skill", "agent": null, "skill": s }),
        };
        let acknowledgement = match &plan.ack {
            Ack::Off => json!({ "send": false, "reason": "acknowledgements disabled" }),
            Ack::Suppressed(reason) => json!({ "send": false, "reason": reason }),
            Ack::Send(t) => json!({
                "send": true,
                "template": self.template_name(t),
                "note": "unless an hourly rate limit is reached",
            }),
        };
        let sla = plan.sla.as_ref().map(|s| {
            json!({
                "policy": s.policy,
                "first_response_due": s.first_response_due.map(crate::clock::rfc3339),
                "resolution_due": s.resolution_due.map(crate::clock::rfc3339),
            })
        });
        json!({
            "class": self.msg.class.name(),
            "from": self.msg.sender,
            // Evaluated as if received with this envelope sender (Return-Path, else From).
            "envelope_sender": self.msg.env.mail_from,
            "subject": self.msg.parsed.subject,
            "ticket": {
                "new": true,
                "reason": "threading into existing tickets needs the daemon's store; not evaluated",
            },
            "queue": plan.queue,
            "priority": plan.priority.as_str(),
            "tags": plan.tags,
            "assignee": assignee,
            "acknowledgement": acknowledgement,
            "sla": sla,
            "matched_rules": plan.matched.iter().map(|(name, why)| json!({ "name": name, "why": why })).collect::<Vec<_>>(),
        })
    }
}
