//! Polls each provider for the calls whose fate is open, within the
//! provider's request budget. Long calls are polled less often; a call live
//! longer than `max_call_duration` is reconciled (settled as `unknown`); an
//! attempt left `sending` by a stopped daemon becomes `unknown`.

use super::apply;
use crate::daemon::{Daemon, ProviderHandle};
use crate::domain::{AttemptState, CallStatus, Outcome};
use crate::outcome;
use crate::pacing::Pause;
use crate::provider::{PollTarget, ProviderError};
use crate::store::OpenAttempt;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Most open attempts read per round.
const ROUND: i64 = 5000;

pub async fn run(daemon: Arc<Daemon>, handle: Arc<ProviderHandle>) {
    let mut last_polled = HashMap::new();
    loop {
        tokio::select! {
            _ = daemon.shutdown.cancelled() => break,
            _ = daemon.clock.sleep(handle.cfg.poll_interval) => {}
        }
        if let Err(e) = poll_once(&daemon, &handle, &mut last_polled).await {
            tracing::warn!(provider = %handle.cfg.name, error = %e, "polling failed; will try again");
        }
    }
}

/// How long to wait between two polls of a call of this age: the configured
/// interval for the first two minutes, then longer, up to twelve times it.
fn interval_for(handle: &ProviderHandle, age: chrono::Duration) -> chrono::Duration {
    let base = chrono::Duration::from_std(handle.cfg.poll_interval)
        .unwrap_or(chrono::Duration::seconds(5));
    let factor = (1 + age.num_seconds().max(0) / 120).min(12) as i32;
    base * factor
}

/// One round: returns how many statuses were applied.
pub async fn poll_once(
    daemon: &Daemon,
    handle: &ProviderHandle,
    last_polled: &mut HashMap<String, DateTime<Utc>>,
) -> anyhow::Result<usize> {
    let now = daemon.clock.now();
    let name = &handle.cfg.name;
    let open = daemon.store.open_attempts(name, ROUND).await?;
    let max_call = chrono::Duration::from_std(handle.cfg.max_call_duration)
        .unwrap_or(chrono::Duration::minutes(30));
    let send_grace = chrono::Duration::from_std(handle.cfg.request_timeout)
        .unwrap_or(chrono::Duration::seconds(15))
        + chrono::Duration::seconds(60);

    let mut due: Vec<&OpenAttempt> = Vec::new();
    let mut overdue: Vec<&OpenAttempt> = Vec::new();
    for o in &open {
        let age = now - o.attempt.requested_at;
        match o.attempt.state {
            AttemptState::Sending => {
                // The dispatcher that sent it resolves it within the request
                // timeout; one that has not is gone (crash, kill -9).
                if age > send_grace {
                    orphaned_send(daemon, o, now).await?;
                }
            }
            _ => {
                if age > max_call {
                    overdue.push(o);
                    due.push(o);
                } else if last_polled
                    .get(&o.attempt.id)
                    .is_none_or(|t| now - *t >= interval_for(handle, age))
                {
                    due.push(o);
                }
            }
        }
    }
    last_polled.retain(|id, _| open.iter().any(|o| &o.attempt.id == id));

    let by_id: HashMap<&str, &OpenAttempt> =
        due.iter().map(|o| (o.attempt.id.as_str(), *o)).collect();
    let mut applied = 0;
    let mut ended: std::collections::HashSet<String> = std::collections::HashSet::new();
    for chunk in due.chunks(handle.api.poll_batch_size().max(1)) {
        if daemon.shutdown.is_cancelled() {
            break;
        }
        let targets: Vec<PollTarget> = chunk
            .iter()
            .map(|o| PollTarget {
                attempt_id: o.attempt.id.clone(),
                provider_call_id: o.attempt.provider_call_id.clone(),
                to_number: o.attempt.to_number.clone(),
                requested_at: o.attempt.requested_at,
            })
            .collect();
        handle.pacing.requests.ready().await;
        let polled = match handle.api.poll(&targets).await {
            Ok(p) => p,
            Err(ProviderError::RateLimited(wait)) => {
                let wait = wait.unwrap_or(std::time::Duration::from_secs(30));
                tracing::warn!(provider = %name, ?wait, "provider rate limit reached while polling");
                daemon.clock.sleep(wait).await;
                return Ok(applied);
            }
            Err(ProviderError::Unusable(why)) => {
                tracing::error!(provider = %name, %why, "provider refuses polling requests");
                handle.pacing.pause(Pause {
                    until: now + chrono::Duration::minutes(5),
                    reason: why,
                    unusable: true,
                });
                return Ok(applied);
            }
            Err(ProviderError::Other(why)) => {
                tracing::warn!(provider = %name, %why, "poll request failed");
                continue;
            }
        };
        let polled_at = daemon.clock.now();
        for o in chunk {
            last_polled.insert(o.attempt.id.clone(), polled_at);
        }
        for p in polled {
            let Some(o) = by_id.get(p.attempt_id.as_str()) else {
                continue;
            };
            if p.status.outcome.is_some() {
                ended.insert(o.attempt.id.clone());
            }
            if apply(daemon, o, &p.status).await? == crate::store::Settled::Applied {
                applied += 1;
            }
        }
    }

    for o in overdue {
        if ended.contains(&o.attempt.id) {
            continue;
        }
        tracing::warn!(
            campaign = %o.attempt.campaign_id, lead = o.attempt.lead_id, attempt = %o.attempt.id,
            "call exceeded max_call_duration without a final status; settled as unknown"
        );
        let status = CallStatus {
            provider_status: o.attempt.provider_status.clone().unwrap_or_default(),
            outcome: Some(Outcome::Unknown),
            status_at: Some(now),
            error: Some("no final status within max_call_duration".into()),
            ..Default::default()
        };
        if o.attempt.state == AttemptState::Unknown {
            // The lead already waits for the `unknown` retry delay.
            daemon
                .store
                .settle(&o.attempt.id, &status, AttemptState::Ended, None, now)
                .await?;
        } else {
            apply(daemon, o, &status).await?;
        }
        applied += 1;
    }
    Ok(applied)
}

async fn orphaned_send(daemon: &Daemon, o: &OpenAttempt, now: DateTime<Utc>) -> anyhow::Result<()> {
    let next = match daemon.campaign(&o.attempt.campaign_id) {
        Some(c) => {
            outcome::retry_at(&c, &o.lead, Outcome::Unknown, o.attempt.requested_at).max(now)
        }
        None => now + chrono::Duration::hours(2),
    };
    tracing::warn!(
        campaign = %o.attempt.campaign_id, lead = o.attempt.lead_id, attempt = %o.attempt.id,
        "attempt was left sending; its fate is unknown and it is never re-sent"
    );
    daemon
        .store
        .attempt_unknown(
            &o.attempt,
            "the daemon stopped while the request was in flight",
            next,
            now,
        )
        .await?;
    Ok(())
}
