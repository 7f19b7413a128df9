//! `POST /webhooks/{provider}`. Checks in the order of SPEC section 3: body
//! over 1 MiB → 413; bad or missing signature/token → 401; unparsable → 400;
//! a call the daemon does not know → 202. The query string (which may carry
//! the token) is never logged.

use crate::daemon::Daemon;
use crate::lifecycle::apply_status as apply;
use crate::metrics::Refused;
use crate::provider::{WebhookError, WebhookRequest};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

pub const MAX_BODY: usize = 1 << 20;

pub fn routes(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/webhooks/{provider}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(daemon)
}

async fn receive(
    State(daemon): State<Arc<Daemon>>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> StatusCode {
    let m = &daemon.metrics;
    // A name no provider has is counted under an empty provider label:
    // whatever a sender puts in the path never becomes a series of its own.
    let known_name = if daemon.providers.contains_key(&provider) {
        provider.as_str()
    } else {
        ""
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                Refused::TooLarge
            } else {
                Refused::BadRequest
            };
            m.webhook_refused_for(known_name, reason);
            tracing::warn!(provider = %known_name, %status, "webhook body refused");
            return status;
        }
    };
    let Some(handle) = daemon.providers.get(&provider) else {
        m.webhook_refused_for("", Refused::UnknownProvider);
        return StatusCode::NOT_FOUND;
    };
    let query: HashMap<String, String> = query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let req = WebhookRequest {
        headers: &headers,
        query: &query,
        body: &body,
        now: daemon.clock.now(),
    };
    let statuses = match handle.api.webhook(&req) {
        Ok(s) => s,
        Err(WebhookError::Unauthorized(why)) => {
            m.webhook_refused_for(&provider, Refused::Unauthorized);
            tracing::warn!(provider = %provider, %why, "webhook refused");
            return StatusCode::UNAUTHORIZED;
        }
        Err(WebhookError::BadRequest(why)) => {
            m.webhook_refused_for(&provider, Refused::BadRequest);
            tracing::warn!(provider = %provider, %why, "webhook body not understood");
            return StatusCode::BAD_REQUEST;
        }
    };
    let mut known = false;
    for status in statuses {
        let found = daemon
            .store
            .find_attempt(
                &provider,
                status.attempt_id.as_deref(),
                status.provider_call_id.as_deref(),
            )
            .await;
        let open = match found {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => {
                m.database_error();
                m.webhook_refused_for(&provider, Refused::Database);
                tracing::error!(provider = %provider, error = %e, "webhook: database error");
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        };
        known = true;
        if let Err(e) = apply(&daemon, &open, &status).await {
            m.webhook_refused_for(&provider, Refused::Database);
            tracing::error!(provider = %provider, campaign = %open.attempt.campaign_id, lead = open.attempt.lead_id, attempt = %open.attempt.id, provider_call_id = open.attempt.provider_call_id.as_deref(), error = %e, "webhook: could not apply status");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let result = if known { "applied" } else { "unknown_call" };
    m.webhook_ok(&provider, result);
    if known {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    }
}
