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
use crate::pacing::{Budget, Permit};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Everything an adapter needs to place one call, and the cell of the
/// provider's request budget the request is sent on.
#[derive(Debug)]
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
    /// Taken by the dispatcher before it committed the attempt; the request
    /// is sent on it and takes no other cell.
    pub permit: Permit,
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

/// What the caller ID of a campaign (`from_numbers`) is to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerId {
    /// E.164 numbers; a campaign must list at least one, each checked.
    E164,
    /// The provider's own id of one of the account's numbers; optional.
    NumberId,
    /// The provider has no caller-ID field; `from_numbers` is not sent.
    Unused,
    /// Nothing is sent (the simulated provider), but a number chosen from
    /// `from_numbers` is recorded on the attempt; optional.
    Recorded,
}

/// Whether a provider sends webhooks, and what they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhooks {
    /// None are sent (calls are followed by polling alone).
    NotSent,
    /// Accepted only with the provider's `webhook_secret` (a token or a
    /// signature); without one, every webhook is refused.
    SecretRequired,
}

/// The facts about one provider kind that configuration checks against and
/// fills defaults from. Each adapter states its own as `FACTS`.
#[derive(Debug)]
pub struct Facts {
    pub kind: ProviderKind,
    /// The `kind = "..."` value of a daemon file's provider table.
    pub name: &'static str,
    /// The provider's own name, as messages write it.
    pub title: &'static str,
    /// `base_url` when the file sets none (`None`: the adapter makes no requests).
    pub default_base_url: Option<&'static str>,
    /// `requests_per_minute` when the file sets none.
    pub default_requests_per_minute: u32,
    /// An API key (`api_key_env` or `api_key_file`) must be set.
    pub needs_api_key: bool,
    /// `username` must be set (HTTP Basic user).
    pub needs_username: bool,
    /// A campaign must set `skill_id`.
    pub needs_skill_id: bool,
    /// A campaign's `agent_id` when it sets none; `None`: it must set one.
    pub default_agent_id: Option<&'static str>,
    pub caller_id: CallerId,
    pub webhooks: Webhooks,
    /// Takes the simulation keys (`min_duration`, `max_duration`, `seed`,
    /// `outcomes`).
    pub simulation: bool,
    /// Builds the adapter, its requests (all but place requests, which come
    /// with their permit) sent on the budget's cells.
    pub build: fn(&ProviderConfig, Clock, Budget) -> anyhow::Result<Arc<dyn Provider>>,
}

/// Every provider kind, in the order messages list them.
pub const KINDS: &[&Facts] = &[
    &revring::FACTS,
    &voicedock::FACTS,
    &elemente::FACTS,
    &simulated::FACTS,
];

/// The facts of one kind.
pub fn facts(kind: ProviderKind) -> &'static Facts {
    match kind {
        ProviderKind::RevRing => &revring::FACTS,
        ProviderKind::VoiceDock => &voicedock::FACTS,
        ProviderKind::Elemente => &elemente::FACTS,
        ProviderKind::Simulated => &simulated::FACTS,
    }
}

/// Builds the adapter for one provider table, sending its requests (all
/// but place requests, which come with their permit) on `budget`'s cells.
pub fn build_metered(
    cfg: &ProviderConfig,
    clock: &Clock,
    budget: Budget,
) -> anyhow::Result<Arc<dyn Provider>> {
    (facts(cfg.kind).build)(cfg, clock.clone(), budget)
}

/// Builds the adapter with no request budget of its own, for use outside a
/// daemon (tests, tools); the daemon builds with `build_metered`.
pub fn build(cfg: &ProviderConfig, clock: &Clock) -> anyhow::Result<Arc<dyn Provider>> {
    build_metered(cfg, clock, Budget::unmetered())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind is in `KINDS` once, under its own facts, and its name is
    /// what the daemon file's `kind` parses to.
    #[test]
    fn the_kind_list_holds_every_kind_once() {
        // Stops compiling when a kind is added and not listed here.
        let every = |k: ProviderKind| match k {
            ProviderKind::RevRing
            | ProviderKind::VoiceDock
            | ProviderKind::Elemente
            | ProviderKind::Simulated => k,
        };
        let all = [
            ProviderKind::RevRing,
            ProviderKind::VoiceDock,
            ProviderKind::Elemente,
            ProviderKind::Simulated,
        ]
        .map(every);
        assert_eq!(KINDS.len(), all.len());
        for kind in all {
            let listed: Vec<_> = KINDS.iter().filter(|f| f.kind == kind).collect();
            assert_eq!(listed.len(), 1, "{kind:?}");
            // `FACTS` are consts: each reference may be its own copy, so
            // compare what they say, not where they are.
            assert_eq!(facts(kind).kind, kind);
            assert_eq!(listed[0].name, facts(kind).name, "{kind:?}");
            assert_eq!(ProviderKind::parse(facts(kind).name), Ok(kind));
        }
    }
}
