//! Starts and stops the daemon's tasks: one dispatcher per campaign
//! (restarted when the campaigns change), one poller per provider, and the
//! HTTP server. Stopping drains the calls being placed, with a bounded wait.

use crate::daemon::Daemon;
use crate::{dispatch, server, status};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Running {
    daemon: Arc<Daemon>,
    tasks: Vec<JoinHandle<()>>,
    placing: TaskTracker,
}

/// Starts everything; `listener` serves webhooks, metrics and health.
pub fn start(daemon: Arc<Daemon>, listener: Option<tokio::net::TcpListener>) -> Running {
    let placing = TaskTracker::new();
    let mut tasks = Vec::new();
    for handle in daemon.providers.values() {
        tasks.push(tokio::spawn(status::poller::run(
            daemon.clone(),
            handle.clone(),
        )));
    }
    tasks.push(tokio::spawn(supervise(daemon.clone(), placing.clone())));
    if let Some(listener) = listener {
        let d = daemon.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server::serve(d.clone(), listener).await {
                tracing::error!(error = %e, "HTTP server stopped");
                d.shutdown.cancel();
            }
        }));
    }
    Running {
        daemon,
        tasks,
        placing,
    }
}

/// Runs one dispatcher per campaign, restarting them all when the campaigns change.
async fn supervise(daemon: Arc<Daemon>, placing: TaskTracker) {
    let mut rx = daemon.subscribe();
    loop {
        let generation = CancellationToken::new();
        let campaigns = rx.borrow_and_update().clone();
        let mut loops = Vec::new();
        for c in campaigns.values() {
            loops.push(tokio::spawn(dispatch::run_campaign(
                daemon.clone(),
                c.clone(),
                generation.clone(),
                placing.clone(),
            )));
        }
        let changed = tokio::select! {
            _ = daemon.shutdown.cancelled() => false,
            r = rx.changed() => r.is_ok(),
        };
        generation.cancel();
        for l in loops {
            let _ = l.await;
        }
        if !changed {
            break;
        }
        tracing::info!("campaigns reloaded; dispatchers restarted");
    }
}

impl Running {
    pub fn daemon(&self) -> &Arc<Daemon> {
        &self.daemon
    }

    /// Graceful stop: no new claims, wait up to `drain` for requests in
    /// flight, then stop pollers and the server.
    pub async fn stop(self, drain: Duration) {
        self.daemon.shutdown.cancel();
        self.placing.close();
        if tokio::time::timeout(drain, self.placing.wait())
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight at shutdown; their attempts stay `sending` and are settled as unknown later");
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}
