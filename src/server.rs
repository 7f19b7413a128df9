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
        .merge(crate::live::routes(daemon.clone()))
        .merge(crate::status::webhook::routes(daemon))
}

/// How long `/readyz` waits for the database: a pool waiting for a
/// connection that never comes would otherwise hold the probe for the
/// pool's own timeout.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn ready(State(d): State<Arc<Daemon>>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(READY_WAIT, d.store.campaign_ids()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n"),
        Ok(Err(e)) => {
            d.metrics.database_error();
            tracing::warn!(error = %e, "readyz: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
        Err(_) => {
            d.metrics.database_error();
            tracing::warn!(wait = ?READY_WAIT, "readyz: the database did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

async fn metrics(
    State(d): State<Arc<Daemon>>,
) -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    let text = d
        .metrics
        .render(d.store.as_ref(), &d.provider_names())
        .await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Serves until the daemon shuts down.
pub async fn serve(daemon: Arc<Daemon>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let token = daemon.shutdown.clone();
    axum::serve(listener, app(daemon))
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
}
