//! `postdesk rules test`: what the rules would do with one message (matched
//! rules and why, queue, priority, tags, assignee, SLA, acknowledgement),
//! reading only the config, the rule files and the message, changing nothing.

use crate::clock::Clock;
use crate::config::Config;
use crate::rules::RuleSet;
use anyhow::Context;

/// `postdesk rules test`: what the rules would do with a message, changing nothing.
/// `at` evaluates as of that instant (unix seconds) instead of now, for
/// reproducible output of time-dependent rules and SLA deadlines.
pub fn rules_test(
    config: &std::path::Path,
    message: &std::path::Path,
    at: Option<i64>,
) -> anyhow::Result<String> {
    use crate::process::{classify, parse};
    use crate::rules::routing::{AckChoice, Assign};
    use std::fmt::Write;

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
    let parsed = parse::parse(&raw);
    let mailbox = parsed
        .to
        .iter()
        .chain(parsed.cc.iter())
        .find_map(|a| cfg.mailbox_for(a))
        .or(cfg.mailboxes.first());
    let sender = parsed.from.clone();
    let env = crate::model::Envelope {
        // The Return-Path of a delivered message, else as if the From address
        // were the envelope sender (a `Return-Path: <>` header still counts).
        mail_from: match crate::imap::envelope_sender(&raw) {
            from if !from.is_empty() => from,
            _ if sender.is_empty() => "unknown@invalid".into(),
            _ => sender.clone(),
        },
        rcpt_to: mailbox.map(|m| vec![m.address.clone()]).unwrap_or_default(),
        received_at: at.unwrap_or_else(|| Clock::system().now()),
        source: crate::model::Source::Smtp,
        peer: String::new(),
        helo: String::new(),
        imap: None,
    };
    let class = classify::classify(&parsed, &env, &cfg.server.hostname);
    let calendar = rules.default_calendar();
    let now = at.unwrap_or_else(|| Clock::system().now());
    let outcome = rules.routing.evaluate(&crate::rules::routing::Facts {
        mailbox: mailbox.map_or("", |m| m.address.as_str()),
        sender: &sender,
        subject: &parsed.subject,
        body: &parsed.text,
        headers: &parsed.headers,
        attachments: &parsed.attachments,
        now,
        calendar: &calendar,
    });

    let mut out = String::new();
    let _ = writeln!(out, "message:    {}", message.display());
    let _ = writeln!(
        out,
        "from:       {}",
        if sender.is_empty() { "(none)" } else { &sender }
    );
    let _ = writeln!(out, "subject:    {}", parsed.subject);
    let _ = writeln!(out, "class:      {}", class.as_str());
    if outcome.matched.is_empty() {
        let _ = writeln!(out, "rules:      none matched");
    } else {
        let _ = writeln!(out, "rules:");
        for (name, why) in &outcome.matched {
            let _ = writeln!(out, "  - {name}: {}", why.join("; "));
        }
    }
    let queue = outcome
        .queue
        .clone()
        .or(mailbox.map(|m| m.queue.clone()))
        .unwrap_or_else(|| "general".into());
    let _ = writeln!(out, "queue:      {queue}");
    let priority = outcome.priority.unwrap_or(crate::model::Priority::Normal);
    let _ = writeln!(
        out,
        "priority:   {}",
        format!("{priority:?}").to_lowercase()
    );
    let _ = writeln!(
        out,
        "tags:       {}",
        if outcome.tags.is_empty() {
            "(none)".into()
        } else {
            outcome.tags.join(", ")
        }
    );
    let assignee = match &outcome.assign {
        None => "(nobody)".to_string(),
        Some(Assign::Agent(a)) => a.clone(),
        Some(Assign::RoundRobin) => format!(
            "round-robin among [{}]",
            rules
                .agents
                .in_queue(&queue)
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Assign::LeastLoaded) => format!(
            "least loaded of [{}]",
            rules
                .agents
                .in_queue(&queue)
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Assign::Skill(s)) => format!("least loaded agent with skill {s}"),
    };
    let _ = writeln!(out, "assignee:   {assignee}");
    let probe = crate::model::Ticket {
        subject: parsed.subject.clone(),
        priority,
        queue: queue.clone(),
        ..crate::model::Ticket::new(0, &sender, now)
    };
    match rules.sla.for_ticket(&probe) {
        Some(p) if class == classify::Class::Customer => {
            let cal = crate::sla::calendar_of(p, &rules.calendars);
            let due = |s: Option<i64>| {
                s.map_or("-".to_string(), |s| {
                    crate::clock::rfc3339(cal.add_business_seconds(now, s))
                })
            };
            let _ = writeln!(
                out,
                "sla:        policy {} (calendar {}): first response due {}, resolution due {}",
                p.name,
                cal.name,
                due(p.first_response),
                due(p.resolution)
            );
        }
        Some(_) => {
            let _ = writeln!(
                out,
                "sla:        none ({} gets no SLA clock)",
                class.as_str()
            );
        }
        None => {
            let _ = writeln!(out, "sla:        no policy applies");
        }
    }
    let ours: Vec<String> = cfg
        .mailboxes
        .iter()
        .map(|m| m.address.to_ascii_lowercase())
        .collect();
    let ack = if !cfg.acknowledgement.enabled {
        "no (acknowledgements disabled)".to_string()
    } else if let Some(reason) = classify::ack_suppressed(&parsed, &env, class, &ours) {
        format!("no ({reason})")
    } else if let Some(doubt) = crate::process::vouch::vouch(
        &parsed,
        &env,
        &sender,
        cfg.agents.trusted_authserv_id.as_deref(),
    )
    .doubt()
    {
        format!("no (nothing vouches for the sender {sender}: {doubt})")
    } else {
        match &outcome.acknowledgement {
            Some(AckChoice::None) => "no (a routing rule says no acknowledgement)".into(),
            Some(AckChoice::Template(t)) => {
                format!("yes, template {t} (unless the hourly limit is reached)")
            }
            None => format!(
                "yes, template {} (unless the hourly limit is reached)",
                cfg.acknowledgement.template.display()
            ),
        }
    };
    let _ = writeln!(out, "ack:        {ack}");
    Ok(out)
}
