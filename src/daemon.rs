//! Starts every stage, wires them together and fans out shutdown.

use crate::api::{self, ApiState};
use crate::clock::Clock;
use crate::config::Config;
use crate::outbound::sender;
use crate::process::Processor;
use crate::smtp::SmtpServer;
use crate::spool::Spool;
use crate::store::Store;
use crate::token::Tokens;
use anyhow::Context;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let clock = Clock::system();
    let data_dir = cfg.data_dir();
    let store = Store::open(&data_dir)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let tokens = Tokens::new(&store.secret("token-hmac")?);
    let api_token = cfg.api_token()?;
    let ack_template = if cfg.acknowledgement.enabled {
        let path = cfg.rules_dir().join(&cfg.acknowledgement.template);
        Some(crate::process::ack::Template::load(&path).map_err(|d| anyhow::anyhow!("{d}"))?)
    } else {
        None
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let committed = Arc::new(Notify::new());
    let outbound_wake = Arc::new(Notify::new());
    let spool = Spool::start(store.clone(), committed.clone());

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
    ));
    let api = tokio::spawn(api::serve(
        web,
        ApiState {
            store: store.clone(),
            token: api_token,
        },
        shutdown_rx.clone(),
    ));
    let smtp = tokio::spawn(smtp.run(spool, shutdown_rx.clone()));

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
    let _ = processor.await;
    let _ = sender.await;
    let _ = api.await;
    tracing::info!("stopped");
    Ok(())
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
    if diags.is_empty() {
        Ok(format!(
            "{}: ok ({} mailbox(es), relay {})",
            path.display(),
            cfg.mailboxes.len(),
            cfg.outbound.relay
        ))
    } else {
        Err(diags)
    }
}
