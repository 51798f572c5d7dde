//! Starts every stage, wires them together and fans out shutdown.

use crate::api::{self, ApiState};
use crate::clock::Clock;
use crate::config::Config;
use crate::outbound::sender;
use crate::process::Processor;
use crate::rules::{LiveRules, RuleSet};
use crate::smtp::SmtpServer;
use crate::spool::Spool;
use crate::store::Store;
use crate::token::Tokens;
use anyhow::Context;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    for warning in cfg.warnings() {
        tracing::warn!("INSECURE CONFIGURATION: {warning}");
    }
    let cfg = Arc::new(cfg);
    let clock = Clock::system();
    let data_dir = cfg.data_dir();
    let store = Store::open(&data_dir)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let tokens = Tokens::with_lifetimes(
        &store.secret("token-hmac")?,
        cfg.tokens.reply_lifetime,
        cfg.tokens.agent_lifetime,
    );
    let api_token = cfg.api_token()?;
    let ack_template = if cfg.acknowledgement.enabled {
        let path = cfg.rules_dir().join(&cfg.acknowledgement.template);
        Some(crate::process::ack::Template::load(&path).map_err(|d| anyhow::anyhow!("{d}"))?)
    } else {
        None
    };
    let resolved_template = match &cfg.acknowledgement.resolved_template {
        Some(t) => Some(
            crate::process::ack::Template::load(&cfg.rules_dir().join(t))
                .map_err(|d| anyhow::anyhow!("{d}"))?,
        ),
        None => None,
    };

    let rules_dir = cfg.rules_dir();
    let rules = RuleSet::load(&rules_dir, &known_queues(&cfg)).map_err(|d| {
        anyhow::anyhow!(
            "invalid rules:\n{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let rules = Arc::new(LiveRules::new(rules));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let committed = Arc::new(Notify::new());
    let outbound_wake = Arc::new(Notify::new());
    let spool = Spool::start(store.clone(), committed.clone());
    let imap_status = crate::imap::ImapRegistry::default();

    // Bind everything before reporting ready, so a port clash fails start-up.
    let smtp = SmtpServer::bind(cfg.clone()).await?;
    let web = tokio::net::TcpListener::bind(&cfg.web.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", cfg.web.listen))?;

    let processor = Processor {
        cfg: cfg.clone(),
        store: store.clone(),
        clock: clock.clone(),
        tokens: tokens.clone(),
        ack_template,
        resolved_template,
        rules: rules.clone(),
        committed: committed.clone(),
        outbound_wake: outbound_wake.clone(),
    };
    let processor = tokio::spawn(processor.run(shutdown_rx.clone()));
    let sender = tokio::spawn(sender::run(
        cfg.clone(),
        store.clone(),
        clock.clone(),
        outbound_wake.clone(),
        shutdown_rx.clone(),
        sender::Agents {
            rules: rules.clone(),
            tokens: tokens.clone(),
        },
    ));
    let api = tokio::spawn(api::serve(
        web,
        ApiState {
            store: store.clone(),
            token: api_token,
            imap: imap_status.clone(),
            clock: clock.clone(),
        },
        shutdown_rx.clone(),
    ));
    let imap = crate::imap::start(&cfg, &store, &spool, &clock, &imap_status, &shutdown_rx);
    let smtp = tokio::spawn(smtp.run(spool, shutdown_rx.clone()));
    let sla = tokio::spawn(crate::sla::scheduler::run(
        cfg.clone(),
        store.clone(),
        clock.clone(),
        rules.clone(),
        outbound_wake.clone(),
        shutdown_rx.clone(),
    ));
    let reloader = tokio::spawn(reload_rules(
        cfg.clone(),
        rules.clone(),
        shutdown_rx.clone(),
    ));

    tracing::info!(
        smtp = ?cfg.smtp.listen,
        web = %cfg.web.listen,
        data = %data_dir.display(),
        "postdesk ready"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);

    match smtp.await {
        Ok(Err(e)) => tracing::error!(error = %e, "SMTP listener failed"),
        Err(e) => tracing::error!(error = %e, "SMTP listener panicked"),
        Ok(Ok(())) => {}
    }
    // IMAP pollers finish the batch in hand (commit, then flag) and start no new fetch.
    for poller in imap {
        let _ = poller.await;
    }
    let _ = processor.await;
    let _ = sender.await;
    let _ = api.await;
    let _ = reloader.await;
    let _ = sla.await;
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final commit failed: recent deliveries may be repeated after the restart");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The queues mailboxes feed; routing rules may only name these (or agents' queues).
fn known_queues(cfg: &Config) -> Vec<String> {
    cfg.mailboxes.iter().map(|m| m.queue.clone()).collect()
}

/// Reloads the rules on SIGHUP and when a rule file changes (checked every 2 s).
/// A set that fails to load is logged and the working set stays in force.
async fn reload_rules(
    cfg: Arc<Config>,
    rules: Arc<LiveRules>,
    mut shutdown: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let dir = cfg.rules_dir();
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut seen = RuleSet::fingerprint(&dir);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        let forced = tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => false,
            Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = RuleSet::fingerprint(&dir);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        let dir2 = dir.clone();
        let queues = known_queues(&cfg);
        match tokio::task::spawn_blocking(move || RuleSet::load(&dir2, &queues)).await {
            Ok(Ok(set)) => {
                tracing::info!(
                    rules = set.routing.rules.len(),
                    agents = set.agents.list.len(),
                    "rules reloaded"
                );
                rules.replace(set);
            }
            Ok(Err(diags)) => {
                for d in &diags {
                    tracing::error!(problem = %d, "rules not reloaded; the previous rules stay in force");
                }
            }
            Err(e) => tracing::error!(error = %e, "rules reload task failed"),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// `postdesk check`: validates the config and the rule files it names.
pub fn check(path: &std::path::Path) -> Result<String, Vec<crate::config::Diagnostic>> {
    let cfg = Config::load(path).map_err(|e| e.0)?;
    let mut diags = Vec::new();
    let template = cfg.rules_dir().join(&cfg.acknowledgement.template);
    if cfg.acknowledgement.enabled
        && let Err(d) = crate::process::ack::Template::load(&template)
    {
        diags.push(d);
    }
    if let Some(t) = &cfg.acknowledgement.resolved_template
        && let Err(d) = crate::process::ack::Template::load(&cfg.rules_dir().join(t))
    {
        diags.push(d);
    }
    let rules = match RuleSet::load(&cfg.rules_dir(), &known_queues(&cfg)) {
        Ok(r) => Some(r),
        Err(mut d) => {
            diags.append(&mut d);
            None
        }
    };
    diags.append(&mut crate::process::canned::check_dir(&cfg.rules_dir()));
    if diags.is_empty() {
        let (n_rules, n_agents) =
            rules.map_or((0, 0), |r| (r.routing.rules.len(), r.agents.list.len()));
        let warnings: String = cfg
            .warnings()
            .iter()
            .map(|w| format!("{}: warning: {w}\n", path.display()))
            .collect();
        Ok(format!(
            "{warnings}{}: ok ({} mailbox(es), {n_rules} routing rule(s), {n_agents} agent(s), relay {})",
            path.display(),
            cfg.mailboxes.len(),
            cfg.outbound.relay
        ))
    } else {
        Err(diags)
    }
}

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
    let rules = RuleSet::load(&cfg.rules_dir(), &known_queues(&cfg)).map_err(|d| {
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
