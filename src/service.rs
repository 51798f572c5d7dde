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
