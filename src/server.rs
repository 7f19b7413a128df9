//! The HTTP server: webhooks, `/metrics`, `/healthz` (the process is up),
//! `/readyz` (the database answers).

use crate::daemon::Daemon;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub fn app(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(daemon.clone())
        .merge(crate::status::webhook::routes(daemon))
}

async fn ready(State(d): State<Arc<Daemon>>) -> (StatusCode, &'static str) {
    match d.store.campaign_ids().await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n"),
    }
}

async fn metrics(State(d): State<Arc<Daemon>>) -> String {
    d.metrics.render()
}

/// Serves until the daemon shuts down.
pub async fn serve(daemon: Arc<Daemon>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let token = daemon.shutdown.clone();
    axum::serve(listener, app(daemon))
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
}
