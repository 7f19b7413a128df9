//! `dialer run`: the daemon.

use super::{load, open_store, CliResult};
use crate::clock::Clock;
use crate::config;
use crate::daemon::Daemon;
use crate::{engine, shutdown, telemetry};
use std::path::Path;
use std::time::Duration;

pub async fn run(config_path: &Path) -> CliResult {
    let loaded = load(config_path)?;
    telemetry::init(&loaded.daemon.log);
    let store = open_store(&loaded).await?;
    let clock = Clock::system();
    let daemon = Daemon::new(store, clock, &loaded)?;
    daemon.set_campaigns(&loaded.campaigns).await?;
    let listener = tokio::net::TcpListener::bind(loaded.daemon.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", loaded.daemon.server.listen))?;
    tracing::info!(listen = %loaded.daemon.server.listen, campaigns = loaded.campaigns.len(), "dialer running");
    let mut reload = shutdown::listen(daemon.shutdown.clone()).map_err(anyhow::Error::from)?;
    let running = engine::start(daemon.clone(), Some(listener));
    shutdown::notify("READY=1");
    loop {
        tokio::select! {
            _ = daemon.shutdown.cancelled() => break,
            Some(()) = reload.recv() => {
                shutdown::notify("RELOADING=1");
                match config::load(config_path) {
                    Ok(new) => {
                        for w in &new.warnings { tracing::warn!("{w}"); }
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
                shutdown::notify("READY=1");
            }
        }
    }
    shutdown::notify("STOPPING=1");
    running.stop(Duration::from_secs(30)).await;
    tracing::info!("stopped");
    Ok(())
}
