//! Outbound webhooks: outcomes pushed to the operator's CRM, none lost.
//!
//! The events themselves are written by database triggers into `outbox`, in
//! the transaction of the change they report (see migration 0007), for each
//! route in `outbound_routes`. This module keeps the routes in step with
//! `[[outbound_webhooks]]` and runs one delivery loop per webhook:
//!
//! - it leases the oldest undelivered event of each lead (`take_outbox`), so
//!   a lead's events leave one at a time, in the order of its changes;
//! - it POSTs each as JSON, signed (`Dialer-Signature: t=<unix>,v1=<hex>`,
//!   HMAC-SHA256 of `<t>.<body>` with the webhook's secret);
//! - a 2xx marks it delivered; anything else (a status, a timeout, a refused
//!   connection) schedules it again with exponential backoff and jitter,
//!   until it is older than `give_up_after`.
//!
//! Delivery is at least once: a daemon killed between a receiver's 2xx and
//! the commit of `delivered_at` sends that event again after the lease runs
//! out, with the same event id, which the receiver uses to drop duplicates.

use crate::config::{OutboundWebhookConfig, Secret};
use crate::daemon::Daemon;
use crate::store::{OutboundRoute, OutboxEvent, OutboxFate, OutboxResult};
use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events in flight at once per webhook (each of a different lead).
const BATCH: i64 = 64;
/// How often an idle loop looks for new events.
const IDLE: Duration = Duration::from_millis(250);
/// A lease outlives the request's timeout by this much, so an event is
/// leased again only when the daemon that took it is gone.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// How often the backlog gauges are read and delivered events purged.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
/// Delivered events are kept this long (for an operator's look), then deleted.
const KEEP_DELIVERED: chrono::Duration = chrono::Duration::hours(24);

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Dialer-Signature";

/// The rows of `outbound_routes` for these webhooks.
pub fn routes(webhooks: &[OutboundWebhookConfig]) -> Vec<OutboundRoute> {
    webhooks
        .iter()
        .map(|w| OutboundRoute {
            webhook: w.name.clone(),
            events: w.events.clone(),
            campaigns: w.campaigns.clone(),
        })
        .collect()
}

/// The body of one delivery.
pub fn body(e: &OutboxEvent) -> Vec<u8> {
    serde_json::json!({
        "id": e.event_id,
        "type": e.event,
        "sequence": e.seq,
        "created_at": crate::domain::rfc3339(e.created_at),
        "campaign_id": e.campaign_id,
        "lead_id": e.lead_id,
        "data": e.data,
    })
    .to_string()
    .into_bytes()
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &Secret, t: i64, body: &[u8]) -> String {
    // Any key length is accepted by HMAC.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// When an event that failed `tries` times before is sent again.
pub fn retry_delay(cfg: &OutboundWebhookConfig, tries: i64) -> Duration {
    backon::ExponentialBuilder::default()
        .with_min_delay(cfg.retry_min)
        .with_max_delay(cfg.retry_max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(tries.clamp(0, 64) as usize)
        .unwrap_or(cfg.retry_max)
        .min(cfg.retry_max)
}

/// Delivers the events of one webhook until the daemon stops.
pub async fn run(daemon: Arc<Daemon>, cfg: OutboundWebhookConfig) {
    let client = match reqwest::Client::builder()
        .timeout(cfg.timeout)
        .user_agent(concat!("dialer/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(webhook = %cfg.name, error = %e, "cannot build the HTTP client; outbound webhook not delivered");
            daemon.shutdown.cancelled().await;
            return;
        }
    };
    let lease = chrono::Duration::from_std(cfg.timeout + LEASE_MARGIN)
        .unwrap_or(chrono::Duration::minutes(6));
    let mut housekeeping = Instant::now() - HOUSEKEEPING;
    loop {
        if daemon.shutdown.is_cancelled() {
            break;
        }
        if housekeeping.elapsed() >= HOUSEKEEPING {
            housekeeping = Instant::now();
            tidy(&daemon, &cfg).await;
        }
        let now = Utc::now();
        let events = match daemon
            .store
            .take_outbox(&cfg.name, &daemon.owner, now, now + lease, BATCH)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                daemon.metrics.database_error();
                tracing::warn!(webhook = %cfg.name, error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        if events.is_empty() {
            tokio::select! {
                _ = daemon.shutdown.cancelled() => break,
                _ = tokio::time::sleep(IDLE) => {}
            }
            continue;
        }
        let results = futures_util::future::join_all(
            events.iter().map(|e| deliver(&daemon, &client, &cfg, e)),
        )
        .await;
        // Results are recorded even while stopping: a delivered event not
        // marked so would be sent again.
        if let Err(e) = daemon.store.outbox_results(&results, Utc::now()).await {
            daemon.metrics.database_error();
            tracing::warn!(webhook = %cfg.name, error = %e, "cannot record deliveries; the events are sent again when their lease runs out");
        }
    }
}

/// Sends one event and says what became of it.
async fn deliver(
    daemon: &Daemon,
    client: &reqwest::Client,
    cfg: &OutboundWebhookConfig,
    e: &OutboxEvent,
) -> OutboxResult {
    let body = body(e);
    let t = Utc::now().timestamp();
    let sent = client
        .post(&cfg.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Dialer-Event-Id", &e.event_id)
        .header("Dialer-Event", &e.event)
        .header(SIGNATURE_HEADER, signature(&cfg.secret, t, &body))
        .body(body)
        .send()
        .await;
    let error = match sent {
        Ok(r) if r.status().is_success() => {
            daemon.metrics.outbound_delivered(&cfg.name);
            return OutboxResult {
                seq: e.seq,
                fate: OutboxFate::Delivered,
            };
        }
        Ok(r) => format!("HTTP {}", r.status().as_u16()),
        Err(err) if err.is_timeout() => format!("timed out after {:?}", cfg.timeout),
        Err(err) => format!("{err:#}"),
    };
    daemon.metrics.outbound_failed(&cfg.name);
    let now = Utc::now();
    OutboxResult {
        seq: e.seq,
        fate: fate_after_failure(daemon, cfg, e, error, now),
    }
}

/// A failed delivery is tried again later, unless the event is older than
/// `give_up_after`.
fn fate_after_failure(
    daemon: &Daemon,
    cfg: &OutboundWebhookConfig,
    e: &OutboxEvent,
    error: String,
    now: DateTime<Utc>,
) -> OutboxFate {
    let age = (now - e.created_at).to_std().unwrap_or_default();
    if age >= cfg.give_up_after {
        daemon.metrics.outbound_given_up(&cfg.name);
        tracing::error!(webhook = %cfg.name, event = %e.event_id, kind = %e.event, lead = e.lead_id, tries = e.tries + 1, %error,
            "outbound event given up: older than give_up_after and still not delivered");
        return OutboxFate::GaveUp { error };
    }
    let wait = retry_delay(cfg, e.tries);
    tracing::debug!(webhook = %cfg.name, event = %e.event_id, %error, retry_in = ?wait, "outbound delivery failed");
    OutboxFate::Retry {
        error,
        at: now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(5)),
    }
}

/// Backlog gauges, and deletion of events delivered long ago.
async fn tidy(daemon: &Daemon, cfg: &OutboundWebhookConfig) {
    match daemon.store.outbox_backlog().await {
        Ok(b) => {
            let (n, oldest) = b.get(&cfg.name).cloned().unwrap_or((0, None));
            let age = oldest.map_or(0.0, |t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0);
            daemon.metrics.outbound_backlog(&cfg.name, n, age.max(0.0));
        }
        Err(e) => {
            daemon.metrics.database_error();
            tracing::warn!(webhook = %cfg.name, error = %e, "cannot read the outbox backlog");
        }
    }
    if let Err(e) = daemon.store.outbox_purge(Utc::now() - KEEP_DELIVERED).await {
        daemon.metrics.database_error();
        tracing::warn!(webhook = %cfg.name, error = %e, "cannot purge delivered outbox events");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutboundWebhookConfig {
        OutboundWebhookConfig {
            name: "crm".into(),
            url: "http://127.0.0.1:1/".into(),
            secret: Secret::new("whsec_test"),
            events: vec!["attempt.ended".into()],
            campaigns: None,
            timeout: Duration::from_secs(10),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(3600),
        }
    }

    /// The value README's Python verification computes for the same input.
    #[test]
    fn signature_is_hmac_sha256_of_time_dot_body() {
        let sig = signature(&Secret::new("whsec_test"), 1764597600, br#"{"id":"e1"}"#);
        assert_eq!(
            sig,
            "t=1764597600,v1=6b0d2a10fc8eb19854b9143588c91b9970faa8917e8960b1f549cd588a661440"
        );
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_retry_max() {
        let c = cfg();
        let first = retry_delay(&c, 0);
        assert!(
            first >= c.retry_min && first <= c.retry_min * 2,
            "{first:?}"
        );
        let tenth = retry_delay(&c, 9);
        assert!(tenth >= Duration::from_secs(256), "{tenth:?}");
        for tries in [20, 64, 1_000] {
            assert!(retry_delay(&c, tries) <= c.retry_max);
        }
    }
}
