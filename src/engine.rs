//! Starts, supervises and stops the daemon's tasks: one dispatcher per
//! campaign (restarted when the campaigns change), one poller per provider,
//! the audit of unusable rows,
//! and the HTTP server. A task that panics or ends while the daemon is not
//! stopping is logged with its cause and restarted after a backoff; the
//! HTTP server is not restarted: losing it shuts the daemon down with a
//! failure, so that the service manager restarts the whole process.
//! Stopping drains the calls being placed, with a bounded wait.

use crate::daemon::Daemon;
use crate::{dispatch, server, status};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Wait before the first restart of a task; doubled on each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before failing starts again from `FIRST_BACKOFF`.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

pub struct Running {
    daemon: Arc<Daemon>,
    tasks: Vec<JoinHandle<()>>,
    placing: TaskTracker,
    failure: Arc<Mutex<Option<String>>>,
}

/// Starts everything; `listener` serves webhooks, metrics and health.
pub fn start(daemon: Arc<Daemon>, listener: Option<tokio::net::TcpListener>) -> Running {
    let placing = TaskTracker::new();
    let failure = Arc::new(Mutex::new(None));
    let mut tasks = Vec::new();
    for handle in daemon.providers.values() {
        let (d, h) = (daemon.clone(), handle.clone());
        tasks.push(tokio::spawn(supervised(
            format!("poller for provider {}", handle.cfg.name),
            daemon.shutdown.clone(),
            move || status::poller::run(d.clone(), h.clone()),
        )));
    }
    {
        let (d, p) = (daemon.clone(), placing.clone());
        tasks.push(tokio::spawn(supervised(
            "campaign supervisor".to_string(),
            daemon.shutdown.clone(),
            move || campaigns(d.clone(), p.clone()),
        )));
    }
    {
        let d = daemon.clone();
        tasks.push(tokio::spawn(supervised(
            "unusable-row audit".to_string(),
            daemon.shutdown.clone(),
            move || crate::audit::run(d.clone()),
        )));
    }
    for w in &daemon.outbound {
        let (d, w2) = (daemon.clone(), w.clone());
        tasks.push(tokio::spawn(supervised(
            format!("outbound webhook {}", w.name),
            daemon.shutdown.clone(),
            move || crate::outbound::run(d.clone(), w2.clone()),
        )));
    }
    if let Some(listener) = listener {
        tasks.push(tokio::spawn(serve(
            daemon.clone(),
            listener,
            failure.clone(),
        )));
    }
    Running {
        daemon,
        tasks,
        placing,
        failure,
    }
}

/// Runs the server; if it ends on its own, the daemon stops with a failure.
async fn serve(
    daemon: Arc<Daemon>,
    listener: tokio::net::TcpListener,
    failure: Arc<Mutex<Option<String>>>,
) {
    let result = tokio::spawn(server::serve(daemon.clone(), listener)).await;
    if daemon.shutdown.is_cancelled() {
        return;
    }
    let cause = match result {
        Ok(Ok(())) => "it stopped serving".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => join_cause(e),
    };
    tracing::error!(%cause, "HTTP server stopped; the daemon stops so that it is restarted whole");
    if let Ok(mut f) = failure.lock() {
        f.get_or_insert(format!("the HTTP server stopped: {cause}"));
    }
    daemon.shutdown.cancel();
}

/// Runs the task `start` makes until `stop` is cancelled; a task that ends
/// before that (a panic, or a return it should not make) is logged with its
/// cause and started again after a backoff.
async fn supervised<F, Fut>(name: String, stop: CancellationToken, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let result = tokio::spawn(start()).await;
        if stop.is_cancelled() {
            break;
        }
        let cause = match result {
            Ok(()) => "it returned while the daemon was running".to_string(),
            Err(e) => join_cause(e),
        };
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!(task = %name, %cause, restart_in = ?backoff, "task stopped unexpectedly; it will be restarted");
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tracing::info!(task = %name, "task restarted");
    }
}

/// A panic's message, or why the task was cancelled.
fn join_cause(e: JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    format!("panicked: {message}")
}

/// Runs one supervised dispatcher per campaign, restarting them all when the
/// campaigns change.
async fn campaigns(daemon: Arc<Daemon>, placing: TaskTracker) {
    let mut rx = daemon.subscribe();
    loop {
        let generation = CancellationToken::new();
        // If this task itself panics, its dispatchers must not outlive it:
        // the restarted supervisor starts its own.
        let _stop_dispatchers = generation.clone().drop_guard();
        let campaigns = rx.borrow_and_update().clone();
        let mut loops = Vec::new();
        for c in campaigns.values() {
            let (d, c2, g, p) = (
                daemon.clone(),
                c.clone(),
                generation.clone(),
                placing.clone(),
            );
            loops.push(tokio::spawn(supervised(
                format!("dispatcher for campaign {}", c.id),
                generation.clone(),
                move || dispatch::run_campaign(d.clone(), c2.clone(), g.clone(), p.clone()),
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

    /// Why the daemon stopped on its own (the HTTP server was lost), if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
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
