//! Provider adapters. Only this module knows a provider's JSON. Each adapter
//! classifies every answer (`PlaceResult`) so the lifecycle decides in one
//! place what it means; none retries a "place call" request (SPEC promise 1).

pub mod elemente;
pub mod http;
pub mod revring;
pub mod simulated;
pub mod voicedock;

use crate::clock::Clock;
use crate::config::{ProviderConfig, ProviderKind};
use crate::domain::CallStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Everything an adapter needs to place one call.
#[derive(Debug, Clone)]
pub struct PlaceRequest {
    /// Our attempt id; sent as `dialer_attempt_id`.
    pub attempt_id: String,
    /// E.164.
    pub to: String,
    /// Caller ID (RevRing: E.164; VoiceDock: number id); `None` where unused.
    pub from: Option<String>,
    pub agent_id: String,
    pub skill_id: Option<String>,
    /// The lead's name, or its number when it has none (Elemente requires one).
    pub customer_name: String,
    /// Merged variables (lead's own, then the campaign's `[variables]`).
    pub variables: Map<String, Value>,
}

/// What became of a "place call" request.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceResult {
    /// Accepted; the call is live.
    Placed {
        provider_call_id: String,
        provider_status: String,
    },
    /// Known not to have been accepted (429, connection refused): send the
    /// same attempt again after `retry_after`; placing on this provider pauses.
    NotPlaced {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// A validation answer (4xx): the attempt ends `failed`. `number_refused`
    /// when the number itself was refused (the lead becomes `skipped`/`rejected`).
    Rejected {
        message: String,
        number_refused: bool,
    },
    /// The account cannot place calls (401, 402, unknown agent): the attempt is
    /// `not_placed`, dispatching on this provider pauses until a probe succeeds.
    Unusable { message: String },
    /// The fate is not known (timeout, 5xx, lost connection, unparsable body):
    /// never re-sent; settled later by webhook, get or list.
    Unknown { error: String },
}

/// A call to look up when polling.
#[derive(Debug, Clone)]
pub struct PollTarget {
    pub attempt_id: String,
    pub provider_call_id: Option<String>,
    pub to_number: String,
    pub requested_at: DateTime<Utc>,
}

/// A status learned by polling, tied to the attempt it belongs to.
#[derive(Debug, Clone)]
pub struct Polled {
    pub attempt_id: String,
    pub status: CallStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("rate limited by the provider (retry after {0:?})")]
    RateLimited(Option<Duration>),
    #[error("provider unusable: {0}")]
    Unusable(String),
    #[error("{0}")]
    Other(String),
}

/// Why a webhook was refused; maps to the HTTP answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WebhookError {
    /// Bad or missing signature/token: 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Unparsable body: 400.
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// A webhook request as the server received it.
pub struct WebhookRequest<'a> {
    pub headers: &'a axum::http::HeaderMap,
    /// Query parameters (never logged).
    pub query: &'a std::collections::HashMap<String, String>,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &str;

    /// Places one call. Never retries by itself.
    async fn place(&self, req: &PlaceRequest) -> PlaceResult;

    /// Looks up the calls' current statuses. Calls not found are left out.
    async fn poll(&self, targets: &[PollTarget]) -> Result<Vec<Polled>, ProviderError>;

    /// Most calls a single `poll` should be given.
    fn poll_batch_size(&self) -> usize {
        50
    }

    /// Checks, without placing a call, that the provider answers and accepts
    /// the credentials: lets a provider paused as unusable be resumed. The
    /// default (for providers with nothing to ask) always succeeds.
    async fn probe(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Checks the signature or token of a webhook, then parses it.
    fn webhook(&self, _req: &WebhookRequest<'_>) -> Result<Vec<CallStatus>, WebhookError> {
        Err(WebhookError::Unauthorized(
            "this provider does not send webhooks".into(),
        ))
    }
}

/// Builds the adapter for one provider table.
pub fn build(cfg: &ProviderConfig, clock: &Clock) -> anyhow::Result<Arc<dyn Provider>> {
    Ok(match cfg.kind {
        ProviderKind::Simulated => Arc::new(simulated::Simulated::new(cfg, clock.clone())),
        ProviderKind::RevRing => Arc::new(revring::RevRing::new(cfg, clock.clone())?),
        ProviderKind::VoiceDock => Arc::new(voicedock::VoiceDock::new(cfg, clock.clone())?),
        ProviderKind::Elemente => Arc::new(elemente::Elemente::new(cfg, clock.clone())?),
    })
}
