//! `dialer run`: the daemon.

use super::{load, open_store, CliResult};
use crate::clock::Clock;
use crate::config;
use crate::daemon::Daemon;
use crate::telemetry::LogGuard;
use crate::{engine, shutdown, watchdog};
use sd_notify::NotifyState;
use std::path::Path;
use std::time::Duration;

/// How long a stop waits for requests in flight to the providers.
const DRAIN: Duration = Duration::from_secs(30);
/// What the rest of a stop may take after the drain (tasks ending, the last
/// log lines) before the process exits regardless.
const STOP_SLACK: Duration = Duration::from_secs(5);

/// `log` is the logging `main` set up from the daemon file's `[log]` before
/// anything else was read, so that the configuration's own warnings are
/// logged in the configured format.
pub async fn run(config_path: &Path, log: Option<&LogGuard>) -> CliResult {
    let loaded = load(config_path)?;
    let store = open_store(&loaded).await?;
    let clock = Clock::system();
    let daemon = Daemon::new(store, clock, &loaded)?;
    daemon.set_campaigns(&loaded.campaigns).await?;
    daemon.sync_outbound_routes().await?;
    let listener = tokio::net::TcpListener::bind(loaded.daemon.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", loaded.daemon.server.listen))?;
    tracing::info!(listen = %loaded.daemon.server.listen, campaigns = loaded.campaigns.len(), "dialer running");
    let mut reload = shutdown::listen(daemon.shutdown.clone(), DRAIN + STOP_SLACK)
        .map_err(anyhow::Error::from)?;
    let running = engine::start(daemon.clone(), Some(listener));
    if let Some(interval) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) {
        tracing::info!(
            interval_ms = interval.as_millis() as u64,
            "systemd watchdog on: pinged while every dispatcher and poller makes progress"
        );
        tokio::spawn(watchdog::run(
            daemon.heartbeats.clone(),
            interval,
            daemon.shutdown.clone(),
        ));
    }
    shutdown::notify(&[NotifyState::Ready]);
    loop {
        tokio::select! {
            _ = daemon.shutdown.cancelled() => break,
            Some(()) = reload.recv() => {
                // MONOTONIC_USEC lets systemd ≥ 253 tell this reload from an earlier one.
                match NotifyState::monotonic_usec_now() {
                    Ok(now) => shutdown::notify(&[NotifyState::Reloading, now]),
                    Err(_) => shutdown::notify(&[NotifyState::Reloading]),
                }
                match config::load(config_path) {
                    Ok(new) => {
                        super::warn(&new.warnings);
                        match daemon.set_campaigns(&new.campaigns).await {
                            Ok(()) => tracing::info!(campaigns = new.campaigns.len(), "configuration reloaded"),
                            Err(e) => tracing::error!(error = %e, "reload failed; keeping the last good configuration"),
                        }
                    }
                    Err(invalid) => {
                        for p in &invalid.0 { tracing::error!(problem = %p, "reload refused"); }
                        tracing::error!("reload refused; keeping the last good configuration");
                    }
                }
                shutdown::notify(&[NotifyState::Ready]);
            }
        }
    }
    shutdown::notify(&[NotifyState::Stopping]);
    let failure = running.failure();
    running.stop(DRAIN).await;
    let dropped = log.map_or(0, LogGuard::dropped_lines);
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "log lines dropped because stderr was not taking them"
        );
    }
    if let Some(why) = failure {
        return Err(anyhow::anyhow!("stopped on a failure: {why}").into());
    }
    tracing::info!("stopped");
    Ok(())
}
