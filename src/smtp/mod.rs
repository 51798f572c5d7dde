//! SMTP listener (RFC 5321). Accepts mail for configured mailboxes only and
//! answers 250 only after the spool has committed the message.
//!
//! - this file: listening sockets, TLS setup, the accept loop, the connection
//!   limits and the two-stage graceful shutdown;
//! - [`session`]: the per-connection command state machine;
//! - [`data`]: the DATA reader (end-of-data detection, dot-unstuffing, size cap);
//! - [`budget`]: the memory budget of message bytes held by all sessions;
//! - [`per_ip`]: the count of sessions per client address.

/// Public (hidden) only for the fuzz targets in fuzz/ (`smtp_data`).
#[doc(hidden)]
pub mod budget;
/// Public (hidden) only for the fuzz targets in fuzz/ (`smtp_data`).
#[doc(hidden)]
pub mod data;
mod per_ip;
mod session;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::spool::Spool;
use budget::InflightBudget;
use per_ip::PerIpLimit;
use session::{Shared, Signals};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// After the hard stop every session has been told to close; one that is
/// still stuck (e.g. inside a TLS handshake) after this long is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we try to tell a refused connection why, before dropping it.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound listening sockets, ready to serve.
pub struct SmtpServer {
    cfg: Arc<Config>,
    listeners: Vec<TcpListener>,
    tls: Option<TlsSlot>,
    budget: InflightBudget,
}

/// The STARTTLS identity in force; replaced on reload (SIGHUP) so renewed
/// certificates apply to the next handshake. Sessions already encrypted
/// keep theirs; nothing is dropped.
#[derive(Clone)]
pub struct TlsSlot(Arc<std::sync::RwLock<TlsAcceptor>>);

impl TlsSlot {
    /// The identity for a handshake starting now.
    pub(crate) fn current(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Reloads the STARTTLS certificate and key from their files.
#[derive(Clone)]
pub struct TlsReloader {
    cfg: Arc<Config>,
    slot: TlsSlot,
}

impl TlsReloader {
    /// Reads `smtp.tls_cert`/`tls_key` again; on any error the identity in
    /// force stays and the error says why.
    pub fn reload(&self) -> anyhow::Result<()> {
        let Some(acceptor) = load_tls(&self.cfg)? else {
            return Ok(());
        };
        *self.slot.0.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
        Ok(())
    }
}

impl SmtpServer {
    /// Binds every `smtp.listen` address (so a port clash fails start-up, before we report ready)
    /// and loads the STARTTLS certificate if one is configured (so a bad one fails start-up too).
    pub async fn bind(cfg: Arc<Config>) -> anyhow::Result<SmtpServer> {
        let tls = load_tls(&cfg)?.map(|a| TlsSlot(Arc::new(std::sync::RwLock::new(a))));
        let mut listeners = Vec::new();
        // Sockets from systemd (postdesk.socket) replace smtp.listen.
        for l in crate::service::activated_smtp_listeners()? {
            listeners.push(
                TcpListener::from_std(l).map_err(|e| anyhow::anyhow!("socket activation: {e}"))?,
            );
        }
        let bind = if listeners.is_empty() {
            cfg.smtp.listen.as_slice()
        } else {
            &[]
        };
        for addr in bind {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for SMTP on {addr}: {e}"))?;
            listeners.push(l);
        }
        Ok(SmtpServer {
            budget: InflightBudget::new(cfg.smtp.max_inflight_bytes),
            cfg,
            listeners,
            tls,
        })
    }

    /// A handle that reloads the STARTTLS certificate (None without STARTTLS).
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.as_ref().map(|slot| TlsReloader {
            cfg: self.cfg.clone(),
            slot: slot.clone(),
        })
    }

    /// The memory budget of message bytes in flight, `smtp.max_inflight_bytes`:
    /// shared with every other door that holds a whole message in memory
    /// before the spool commits it (the customers' form and status page).
    pub fn budget(&self) -> InflightBudget {
        self.budget.clone()
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` turns true, then lets transactions in progress
    /// finish for up to `smtp.shutdown_grace` and answers 421 to the rest.
    /// Returns once every session has ended.
    pub async fn run(
        self,
        spool: Spool,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let SmtpServer {
            cfg,
            listeners,
            tls,
            budget,
        } = self;
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            spool,
            tls,
            budget,
            verifier: sender_verifier(&cfg),
        });
        let per_ip = PerIpLimit::new(cfg.smtp.max_connections_per_ip);
        let (hard_stop_tx, hard_stop) = watch::channel(false);
        let signals = Signals {
            shutdown: shutdown.clone(),
            hard_stop,
        };
        let permits = Arc::new(Semaphore::new(cfg.smtp.max_connections));
        let mut sessions = JoinSet::new();
        let mut next_id: u64 = 0;

        loop {
            tokio::select! {
                ok = async { shutdown.wait_for(|&v| v).await.is_ok() } => {
                    if !ok {
                        tracing::warn!("shutdown signal sender dropped; stopping SMTP");
                    }
                    break;
                }
                accepted = accept_any(&listeners) => match accepted {
                    Ok((tcp, peer)) => {
                        // Replies are small writes the client waits for: no Nagle delay.
                        let _ = tcp.set_nodelay(true);
                        next_id += 1;
                        let Some(slot) = per_ip.try_acquire(peer.ip()) else {
                            tracing::warn!(%peer, limit = cfg.smtp.max_connections_per_ip, "too many connections from this client, refusing");
                            crate::counters::SMTP_REFUSED_CONNECTION.inc();
                            sessions.spawn(refuse(tcp, format!("421 4.7.0 {} Too many connections from your address, try again later\r\n", cfg.server.hostname)));
                            continue;
                        };
                        match permits.clone().try_acquire_owned() {
                            Ok(permit) => {
                                let shared = shared.clone();
                                let signals = signals.clone();
                                sessions.spawn(async move {
                                    session::serve_connection(shared, signals, tcp, peer, next_id).await;
                                    drop(permit);
                                    drop(slot);
                                });
                            }
                            Err(_) => {
                                tracing::warn!(%peer, limit = cfg.smtp.max_connections, "too many connections, refusing");
                                crate::counters::SMTP_REFUSED_CONNECTION.inc();
                                sessions.spawn(refuse(tcp, format!("421 4.7.0 {} Too many connections, try again later\r\n", cfg.server.hostname)));
                            }
                        }
                    }
                    Err(e) => {
                        // E.g. EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(joined) = sessions.join_next(), if !sessions.is_empty() => {
                    if let Err(e) = joined && e.is_panic() {
                        tracing::error!(error = %e, "SMTP session panicked");
                    }
                }
            }
        }

        tracing::info!(
            sessions = sessions.len(),
            grace_secs = cfg.smtp.shutdown_grace.as_secs(),
            "SMTP shutting down"
        );
        // Idle sessions close on their own (they watch `shutdown`); the rest
        // get until the grace period ends. Meanwhile a new connection is told
        // 421 (the client knows to come back, rather than guess from a refused
        // connection); the listening sockets close once the sessions are done.
        let shutting_down = format!(
            "421 4.3.2 {} Service shutting down\r\n",
            cfg.server.hostname
        );
        let mut refusals = JoinSet::new();
        let grace = tokio::time::sleep(cfg.smtp.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                joined = sessions.join_next() => if joined.is_none() { return Ok(()) },
                () = &mut grace => break,
                accepted = accept_any(&listeners) => match accepted {
                    Ok((tcp, peer)) => {
                        tracing::info!(%peer, "shutting down: new connection refused with 421");
                        refusals.spawn(refuse(tcp, shutting_down.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                },
                Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
            }
        }
        drop(listeners);
        tracing::info!(
            sessions = sessions.len(),
            "shutdown grace elapsed, closing remaining SMTP sessions"
        );
        let _ = hard_stop_tx.send(true);
        let all_done = async { while sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_TIMEOUT, all_done).await.is_err() {
            tracing::warn!(
                sessions = sessions.len(),
                "aborting SMTP sessions that did not stop"
            );
            sessions.shutdown().await;
        }
        Ok(())
    }
}

/// Accepts from whichever listener has a connection ready.
async fn accept_any(listeners: &[TcpListener]) -> std::io::Result<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for l in listeners {
            if let Poll::Ready(r) = l.poll_accept(cx) {
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    })
    .await
}

/// Tells a connection over a limit to come back later (`line`, a 421), then closes it.
async fn refuse(mut tcp: TcpStream, line: String) {
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, async {
        tcp.write_all(line.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// The sender verifier `[auth]` asks for. A resolver that cannot be set up
/// (no usable /etc/resolv.conf) is logged and intake goes on unverified, as
/// with `auth.verify = false`: verification adds evidence, it never gates mail.
fn sender_verifier(cfg: &Config) -> Option<Arc<crate::sender_auth::Verifier>> {
    if !cfg.auth.verify {
        return None;
    }
    match crate::sender_auth::Verifier::new(
        &cfg.server.hostname,
        cfg.auth.dns_server_addr(),
        cfg.auth.timeout,
    ) {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            tracing::error!(error = %e, "sender verification is off");
            None
        }
    }
}

/// Builds the STARTTLS acceptor from `smtp.tls_cert`/`tls_key` (PEM), if set.
fn load_tls(cfg: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&cfg.smtp.tls_cert, &cfg.smtp.tls_key) else {
        return Ok(None);
    };
    let cert = cfg
        .resolve_file(cert)
        .map_err(|e| anyhow::anyhow!("smtp.tls_cert: {e}"))?;
    let key = cfg
        .resolve_file(key)
        .map_err(|e| anyhow::anyhow!("smtp.tls_key: {e}"))?;
    let config = crate::tls::server_config(&cert, &key, "smtp")?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}
