//! SMTP listener (RFC 5321). Accepts mail for configured mailboxes only and
//! answers 250 only after the spool has committed the message.

use crate::config::Config;
use crate::spool::Spool;
use std::sync::Arc;
use tokio::sync::watch;

/// Bound listening sockets, ready to serve.
pub struct SmtpServer {
    cfg: Arc<Config>,
    listeners: Vec<tokio::net::TcpListener>,
}

impl SmtpServer {
    /// Binds every `smtp.listen` address (so a port clash fails start-up, before we report ready).
    pub async fn bind(cfg: Arc<Config>) -> anyhow::Result<SmtpServer> {
        let mut listeners = Vec::new();
        for addr in &cfg.smtp.listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for SMTP on {addr}: {e}"))?;
            listeners.push(l);
        }
        Ok(SmtpServer { cfg, listeners })
    }

    /// Serves until `shutdown` turns true, then lets transactions in progress
    /// finish for up to `smtp.shutdown_grace` and answers 421 to the rest.
    pub async fn run(self, spool: Spool, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let _ = (self.cfg, self.listeners, spool, shutdown);
        todo!("SMTP session loop")
    }
}
