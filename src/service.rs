//! The systemd notification protocol (sd_notify(3)) for `Type=notify`:
//! READY=1 once every listener is bound, RELOADING=1 … READY=1 around a
//! SIGHUP reload, STOPPING=1 at SIGTERM, and WATCHDOG=1 pings every half
//! `WatchdogSec` *only while* the spool writer and the processor are alive
//! and not stuck ([`crate::liveness`]), so systemd restarts a daemon whose
//! listeners still accept but whose mail no longer moves.
//!
//! Outside systemd ($NOTIFY_SOCKET unset) every call here does nothing.

use crate::liveness;
use sd_notify::NotifyState;
use std::time::Duration;
use tokio::sync::watch;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Listeners bound, stages started: the service is up.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("accepting mail")]);
}

/// A reload (SIGHUP) begins. MONOTONIC_USEC lets systemd match it to its
/// request (systemd ≥ 253 wants it; older ones ignore it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// The reload is done (whether or not it changed anything).
pub fn reloaded() {
    send(&[NotifyState::Ready, NotifyState::Status("accepting mail")]);
}

/// Shutdown begins.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("shutting down: finishing transactions in progress"),
    ]);
}

/// Pings the watchdog every half `WATCHDOG_USEC` while the stages are
/// healthy; returns at shutdown. Does nothing without a watchdog.
pub async fn watchdog(mut shutdown: watch::Receiver<bool>) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    // A stage busy with one batch for a whole watchdog period is stuck.
    let limit = period;
    let mut tick = tokio::time::interval((period / 2).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog on");
    let mut unhealthy = false;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        match liveness::problem(limit) {
            None => {
                if unhealthy {
                    tracing::info!("stages healthy again; watchdog pings resume");
                    unhealthy = false;
                }
                send(&[NotifyState::Watchdog]);
            }
            Some(problem) => {
                if !unhealthy {
                    tracing::error!(%problem, "withholding the watchdog ping: systemd will restart postdesk if this lasts");
                    send(&[NotifyState::Status(&format!("stuck: {problem}"))]);
                    unhealthy = true;
                }
            }
        }
    }
}

/// The SMTP listening sockets systemd passed (socket activation:
/// `postdesk.socket` with `ListenStream=25`), so port 25 is bound by the
/// service manager and the daemon needs no `CAP_NET_BIND_SERVICE`. Sockets
/// named by `FileDescriptorName=` other than `smtp` are left alone; unnamed
/// ones count as SMTP. Empty outside socket activation (`LISTEN_PID` is not
/// ours), and then `smtp.listen` is bound as usual.
pub fn activated_smtp_listeners() -> anyhow::Result<Vec<std::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    let fds = sd_notify::listen_fds_with_names()
        .map_err(|e| anyhow::anyhow!("socket activation: {e}"))?;
    let mut listeners = Vec::new();
    for (fd, name) in fds {
        if !(name == "smtp" || name == "unknown" || name.is_empty()) {
            tracing::warn!(
                fd,
                name,
                "socket activation: a socket not named smtp; ignored"
            );
            continue;
        }
        // SAFETY: the service manager handed us `fd` (LISTEN_PID is this
        // process, checked by listen_fds) and nothing else in the process
        // owns it; it is taken exactly once, here.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        let addr = listener.local_addr().map_err(|e| {
            anyhow::anyhow!("socket activation: descriptor {fd} is not a TCP socket: {e}")
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| anyhow::anyhow!("socket activation: {addr}: {e}"))?;
        tracing::info!(%addr, "SMTP socket from the service manager");
        listeners.push(listener);
    }
    Ok(listeners)
}
