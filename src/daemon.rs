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
    store.set_compression(cfg.store.compress);
    store.set_dictionary_after(cfg.store.dictionary_after);
    let search = crate::search_index::SearchIndex::start(&data_dir, store.clone())
        .context("cannot open the search index")?;
    let token_secret = match cfg.token_secret()? {
        Some(key) => key,
        None => store.secret("token-hmac")?,
    };
    let tokens = Tokens::with_lifetimes(
        &token_secret,
        cfg.tokens.reply_lifetime,
        cfg.tokens.agent_lifetime,
    );
    let api_token = cfg.api_token()?;
    let rules = RuleSet::load_for(&cfg).map_err(|d| {
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

    // Take over SIGTERM and SIGHUP before reporting ready: tokio keeps a handler
    // installed for the process's life once one is made, so a signal that comes
    // before the tasks below listen is not the default action (exit).
    {
        use tokio::signal::unix::{SignalKind, signal};
        let _term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let _hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    }
    // Bind everything before reporting ready, so a port clash fails start-up.
    let smtp = SmtpServer::bind(cfg.clone()).await?;
    let tls_reloader = smtp.tls_reloader();
    let web = tokio::net::TcpListener::bind(&cfg.web.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", cfg.web.listen))?;

    let public_listener = match &cfg.web.public_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for the customers' pages on {addr}"))?,
        ),
        None => None,
    };
    let public_urls = match cfg.public_base_url() {
        Some(base) => {
            let secret = match cfg.link_secret()? {
                Some(key) => key,
                None => store.secret("customer-links")?,
            };
            Some(crate::links::Urls {
                base,
                links: crate::links::Links::new(&secret),
                lifetime: i64::try_from(cfg.web.link_lifetime.as_secs()).unwrap_or(i64::MAX),
            })
        }
        None => None,
    };

    let web_tls = match (&cfg.web.tls_cert, &cfg.web.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(crate::tls::server_config(
            &cfg.resolve_file(cert).map_err(anyhow::Error::msg)?,
            &cfg.resolve_file(key).map_err(anyhow::Error::msg)?,
            "web",
        )?)),
        _ => None,
    };

    let processor = Processor {
        cfg: cfg.clone(),
        store: store.clone(),
        clock: clock.clone(),
        tokens: tokens.clone(),
        rules: rules.clone(),
        committed: committed.clone(),
        outbound_wake: outbound_wake.clone(),
        public: public_urls.clone(),
        chat_live: Default::default(),
    };
    let acting = processor.clone();
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
            processor: acting.clone(),
            spool: spool.clone(),
            web: Some(crate::web::WebState {
                store: store.clone(),
                rules: rules.clone(),
                clock: clock.clone(),
                session_idle: i64::try_from(cfg.web.session_idle.as_secs()).unwrap_or(i64::MAX),
                https: cfg.web_https(),
                limiter: Default::default(),
                processor: Some(acting.clone()),
                presence: crate::web::presence::Board::new(
                    i64::try_from(cfg.web.presence_interval.as_secs()).unwrap_or(10),
                ),
                spool: Some(spool.clone()),
                search: Some(search.clone()),
            }),
            tls: web_tls,
            search: search.clone(),
        },
        shutdown_rx.clone(),
    ));
    let public = match (public_listener, public_urls) {
        (Some(listener), Some(urls)) => Some(tokio::spawn(crate::public::serve(
            listener,
            crate::public::PublicState {
                store: store.clone(),
                rules: rules.clone(),
                clock: clock.clone(),
                cfg: cfg.clone(),
                urls,
                spool: spool.clone(),
                processor: acting.clone(),
                chat: crate::public::chat::ChatState::new(shutdown_rx.clone()),
                budget: smtp.budget(),
                client_addr: crate::public::ClientAddr::new(&cfg.web.trusted_proxies),
            },
            shutdown_rx.clone(),
        ))),
        _ => None,
    };
    let retention = tokio::spawn(crate::retention::run(
        store.clone(),
        rules.clone(),
        clock.clone(),
        shutdown_rx.clone(),
    ));
    let imap = crate::imap::start(&cfg, &store, &spool, &clock, &imap_status, &shutdown_rx);
    let smtp = tokio::spawn(smtp.run(spool, shutdown_rx.clone()));
    let sla = tokio::spawn(crate::sla_scheduler::run(
        cfg.clone(),
        store.clone(),
        clock.clone(),
        rules.clone(),
        outbound_wake.clone(),
        shutdown_rx.clone(),
    ));
    // Customer mail on a timer: pending reminders and closes, due surveys.
    let customer_timers = tokio::spawn(crate::process::stages::run(
        acting.clone(),
        shutdown_rx.clone(),
    ));
    let reloader = tokio::spawn(reload_rules(
        cfg.clone(),
        rules.clone(),
        tls_reloader,
        shutdown_rx.clone(),
    ));

    tracing::info!(
        smtp = ?cfg.smtp.listen,
        web = %cfg.web.listen,
        public = ?cfg.web.public_listen,
        data = %data_dir.display(),
        "postdesk ready"
    );
    crate::service::ready();
    let watchdog = tokio::spawn(crate::service::watchdog(shutdown_rx.clone()));

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    // No ping may follow STOPPING=1: the watchdog returns at the shutdown signal.
    let _ = watchdog.await;
    crate::service::stopping();

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
    if let Some(public) = public {
        let _ = public.await;
    }
    let _ = reloader.await;
    let _ = retention.await;
    let _ = sla.await;
    let _ = customer_timers.await;
    // The indexer ends its round; what it had not taken in stays queued.
    let indexer = search.clone();
    let _ = tokio::task::spawn_blocking(move || indexer.stop()).await;
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final commit failed: recent deliveries may be repeated after the restart");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the rules on SIGHUP and when a rule file changes (checked every 2 s),
/// and on SIGHUP the STARTTLS certificate too, telling systemd RELOADING=1
/// then READY=1 around it. A set or certificate that fails to load is logged
/// and the working one stays in force.
async fn reload_rules(
    cfg: Arc<Config>,
    rules: Arc<LiveRules>,
    tls: Option<crate::smtp::TlsReloader>,
    mut shutdown: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let dir = cfg.rules_dir();
    let mut hup = signal(SignalKind::hangup()).ok();
    let kb_dir = cfg.kb_dir();
    let fingerprint = || (RuleSet::fingerprint(&dir), crate::kb::fingerprint(&kb_dir));
    let mut seen = fingerprint();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        let forced = tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => false,
            Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = fingerprint();
        if !forced && now == seen {
            continue;
        }
        seen = now;
        if forced {
            crate::service::reloading();
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => tracing::info!("STARTTLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "STARTTLS certificate not reloaded; the previous one stays in force")
                    }
                }
            }
        }
        let cfg2 = cfg.clone();
        match tokio::task::spawn_blocking(move || RuleSet::load_for(&cfg2)).await {
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
        if forced {
            crate::service::reloaded();
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
