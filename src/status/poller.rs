//! Polls each provider for the calls whose fate is open, within the
//! provider's request budget (taken by the adapter, one cell per request). Long calls are polled less often. What the
//! poller sees is handed to `lifecycle`: a status, a call live longer than
//! `max_call_duration` (its attempt becomes `unknown`, still polled for its
//! real end), an attempt left `sending` by a stopped daemon, an `unknown`
//! attempt polled in vain for `Timings::give_up`.

use crate::daemon::{Daemon, ProviderHandle};
use crate::domain::AttemptState;
use crate::lifecycle::apply_status as apply;
use crate::lifecycle::{self, Timings};
use crate::pacing::Pause;
use crate::provider::{PollTarget, ProviderError};
use crate::store::OpenAttempt;
use crate::watchdog::Heartbeat;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Most open attempts read per round.
const ROUND: i64 = 5000;

pub async fn run(daemon: Arc<Daemon>, handle: Arc<ProviderHandle>) {
    let mut last_polled = HashMap::new();
    let heartbeat = daemon
        .heartbeats
        .register(format!("poller for provider {}", handle.cfg.name));
    loop {
        tokio::select! {
            _ = daemon.shutdown.cancelled() => break,
            _ = heartbeat.beat_while(daemon.clock.sleep(handle.cfg.poll_interval)) => {}
        }
        heartbeat.beat();
        if let Err(e) = poll_once(&daemon, &handle, &mut last_polled, &heartbeat).await {
            if e.downcast_ref::<crate::store::StoreError>().is_some() {
                daemon.metrics.database_error();
            }
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

/// One round: returns how many statuses were applied. `heartbeat` beats
/// through the waits on the provider (its budget, its answer).
pub async fn poll_once(
    daemon: &Daemon,
    handle: &ProviderHandle,
    last_polled: &mut HashMap<String, DateTime<Utc>>,
    heartbeat: &Heartbeat,
) -> anyhow::Result<usize> {
    let now = daemon.clock.now();
    let name = &handle.cfg.name;
    let open = daemon.store.open_attempts(name, ROUND).await?;
    let t = Timings::of(handle);

    let mut due: Vec<&OpenAttempt> = Vec::new();
    let mut overdue: Vec<&OpenAttempt> = Vec::new();
    for o in &open {
        let age = now - o.attempt.requested_at;
        match o.attempt.state {
            AttemptState::Sending => {
                // The dispatcher that sent it resolves it within the request
                // timeout; one that has not is gone (crash, kill -9).
                if age > t.send_grace {
                    lifecycle::fate_unknown(
                        daemon,
                        o,
                        "the daemon stopped while the request was in flight",
                    )
                    .await?;
                }
            }
            AttemptState::Unknown if age > t.give_up => lifecycle::give_up(daemon, o).await?,
            _ => {
                let placed_overdue =
                    o.attempt.state == AttemptState::Placed && age > t.max_call_duration;
                if placed_overdue {
                    overdue.push(o);
                }
                if placed_overdue
                    || last_polled
                        .get(&o.attempt.id)
                        .is_none_or(|at| now - *at >= interval_for(handle, age))
                {
                    due.push(o);
                }
            }
        }
    }
    last_polled.retain(|id, _| open.iter().any(|o| &o.attempt.id == id));

    // Each open attempt is polled by one daemon at a time: take those due
    // here that no other daemon on the database holds, for as long as this
    // one would wait before polling them again.
    let now_us = now.timestamp_micros();
    let mut by_until: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for o in &due {
        let until = now + interval_for(handle, now - o.attempt.requested_at);
        by_until
            .entry(until.timestamp_micros())
            .or_default()
            .push(o.attempt.id.clone());
    }
    let mut ours: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (until_us, ids) in by_until {
        ours.extend(daemon.store.take_polls(&ids, now_us, until_us).await?);
    }
    due.retain(|o| ours.contains(&o.attempt.id));
    overdue.retain(|o| ours.contains(&o.attempt.id));

    let by_id: HashMap<&str, &OpenAttempt> =
        due.iter().map(|o| (o.attempt.id.as_str(), *o)).collect();
    let mut applied = 0;
    let mut ended: std::collections::HashSet<String> = std::collections::HashSet::new();
    let latency = daemon.metrics.poll_latency(name);
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
        // The adapter takes a cell of the provider's budget for each
        // request it sends (a chunk may take several, or none).
        let started = std::time::Instant::now();
        let polled = heartbeat.beat_while(handle.api.poll(&targets)).await;
        latency.record(started.elapsed().as_secs_f64());
        let polled = match polled {
            Ok(p) => p,
            Err(ProviderError::RateLimited(wait)) => {
                let wait = wait.unwrap_or(std::time::Duration::from_secs(30));
                tracing::warn!(provider = %name, ?wait, "provider rate limit reached while polling");
                heartbeat.beat_while(daemon.clock.sleep(wait)).await;
                return Ok(applied);
            }
            Err(ProviderError::Unusable(why)) => {
                tracing::error!(provider = %name, %why, "provider refuses polling requests");
                daemon
                    .pause_provider(
                        handle,
                        Pause {
                            until: now + chrono::Duration::minutes(5),
                            reason: why,
                            unusable: true,
                        },
                    )
                    .await;
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
        let mut applying = Vec::with_capacity(polled.len());
        for p in &polled {
            let Some(o) = by_id.get(p.attempt_id.as_str()) else {
                continue;
            };
            if p.status.outcome.is_some() {
                ended.insert(o.attempt.id.clone());
            }
            applying.push(apply(daemon, o, &p.status));
        }
        // Together: the store commits the statuses of a batch in one
        // transaction rather than one after another.
        for settled in futures_util::future::join_all(applying).await {
            if settled? == crate::store::Settled::Applied {
                applied += 1;
            }
        }
    }

    for o in overdue {
        if ended.contains(&o.attempt.id) {
            continue;
        }
        if lifecycle::fate_unknown(
            daemon,
            o,
            "the call exceeded max_call_duration without a final status",
        )
        .await?
        {
            applied += 1;
        }
    }
    Ok(applied)
}
