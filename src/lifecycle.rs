//! A lead's and an attempt's lifecycle: every transition is decided here, and
//! each is written by one store method whose guard names the rows it may
//! touch. The dispatcher, the poller and the webhook route only report what
//! happened (a claimed lead is not callable, the provider answered, a status
//! arrived, a call outlived its limit); this module decides what follows.
//!
//! Lead: `pending` --claim--> `in_progress` --attempt settles--> `pending`
//! (at the retry delay, moved to the next opening) or final (`completed`,
//! `exhausted`, `canceled`; `skipped` before any call). Attempt: `sending`
//! --answer--> `placed` | `not_placed` (sent again as the same attempt) |
//! `unknown` | `ended`; `placed` --status--> `ended`, or `unknown` when the
//! call outlives `max_call_duration`; `unknown` --real status--> `ended`.
//!
//! The retry policy is here too: `completed`, `transferred` and `canceled`
//! are final; any other outcome is retried after the campaign's delay for
//! it, moved to the lead's next opening, until `max_attempts` counted
//! attempts are spent.

use crate::config::CampaignConfig;
use crate::daemon::{Daemon, ProviderHandle};
use crate::domain::{
    rfc3339, Attempt, CallStatus, ClaimedLead, Lead, LeadStatus, Outcome, SkipReason,
};
use crate::pacing::Pause;
use crate::provider::PlaceResult;
use crate::schedule::{Rule, Verdict};
use crate::store::{self, LeadNext, OpenAttempt, Settled, StoreError};
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Duration, Utc};
use std::future::Future;

/// The timings of one attempt's life, named once. They must keep this order
/// (checked by `Timings::check` and its test):
///
/// ```text
/// request_timeout + WRITE_RETRY_BOUND  <  send_grace (request_timeout + 30 s)
///     a sender that is alive resolves its `sending` row before the poller
///     takes it for an orphan of a dead daemon;
/// max_call_duration  <  live_lease
///     a live call keeps its lead's lease (and its concurrency slot) until
///     the poller reconciles it;
/// max_call_duration  <=  give_up
///     an attempt reconciled as `unknown` is still polled for its real end.
/// ```
///
/// The claim lease (a claimed lead not yet sent) is `claim_lease`, and a
/// claim takes only what the campaign's rate sends within it (`claim_batch`).
/// None of these ever makes a lead due early: the due time of a lead with an attempt in flight is its `unknown` retry
/// delay, and the claim never takes a lead whose call may be live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// A place request not answered by then is `unknown` (never re-sent).
    pub request_timeout: Duration,
    /// A `sending` row older than this was left by a daemon that stopped
    /// while its request was in flight: it becomes `unknown`.
    pub send_grace: Duration,
    /// A `placed` call live longer than this is reconciled: the attempt
    /// becomes `unknown` and the lead waits for the `unknown` delay.
    pub max_call_duration: Duration,
    /// How long a lead whose call is live holds its lease.
    pub live_lease: Duration,
    /// An `unknown` attempt is polled for its real end until this old.
    pub give_up: Duration,
}

/// How long writes after the provider answered are retried (a database
/// restart, a lock timeout) before the daemon gives up on them.
pub const WRITE_RETRY_BOUND: std::time::Duration = std::time::Duration::from_secs(20);

impl Timings {
    pub fn of(p: &ProviderHandle) -> Self {
        Self::new(p.cfg.request_timeout, p.cfg.max_call_duration)
    }

    pub fn new(
        request_timeout: std::time::Duration,
        max_call_duration: std::time::Duration,
    ) -> Self {
        let request_timeout = duration(request_timeout);
        let max_call_duration = duration(max_call_duration);
        Timings {
            request_timeout,
            send_grace: request_timeout + Duration::seconds(30),
            max_call_duration,
            live_lease: max_call_duration + Duration::minutes(5),
            give_up: max_call_duration.max(Duration::hours(24)),
        }
    }

    /// Whether the order in the type's documentation holds.
    pub fn check(&self) -> bool {
        self.request_timeout + duration(WRITE_RETRY_BOUND) < self.send_grace
            && self.max_call_duration < self.live_lease
            && self.max_call_duration <= self.give_up
    }
}

/// How far ahead of the campaign's rate a claim reaches: it takes only the
/// leads that rate releases within this, so that few leads (and provider
/// concurrency slots) wait in memory under a lease.
pub const CLAIM_HORIZON: std::time::Duration = std::time::Duration::from_secs(5);
/// Beyond the horizon, for checking a batch against the rules and taking the
/// provider's request budget before each attempt is committed.
pub const CLAIM_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);
/// Most leads one claim takes, whatever the rate.
pub const CLAIM_BATCH_MAX: u32 = 100;

/// How many leads one claim takes: the first may be sent at once (the
/// dispatcher holds its rate cell before claiming), the rest are those the
/// campaign's `calls_per_minute` releases within `CLAIM_HORIZON`.
pub fn claim_batch(calls_per_minute: u32) -> u32 {
    let within = u64::from(calls_per_minute) * CLAIM_HORIZON.as_secs() / 60;
    u32::try_from(within.saturating_add(1))
        .unwrap_or(u32::MAX)
        .min(CLAIM_BATCH_MAX)
}

/// How long a claim holds a lead before it is sent: the horizon plus the
/// margin. A daemon that dies after claiming strands its leads for at most
/// this long.
pub fn claim_lease() -> Duration {
    duration(CLAIM_HORIZON + CLAIM_MARGIN)
}

fn duration(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::days(365))
}

// ---------------------------------------------------------------- policy

/// The lead's next state after attempt number `attempt` ended with `outcome`
/// at `at` (our clock: the provider's may be skewed from ours).
pub fn decide(
    c: &CampaignConfig,
    lead: &Lead,
    attempt: i32,
    outcome: Outcome,
    at: DateTime<Utc>,
) -> LeadNext {
    match outcome {
        Outcome::Completed | Outcome::Transferred => {
            LeadNext::finished(LeadStatus::Completed, outcome.as_str())
        }
        Outcome::Canceled => LeadNext::finished(LeadStatus::Canceled, outcome.as_str()),
        _ if attempt >= c.retry.max_attempts as i32 + lead.callbacks => {
            LeadNext::finished(LeadStatus::Exhausted, outcome.as_str())
        }
        _ => LeadNext::pending(
            retry_at(c, lead, outcome, at),
            Some(outcome.as_str().to_string()),
        ),
    }
}

/// A callback the call's end asks for (`[callbacks]`), while the lead has
/// callbacks left: pending at the asked instant, or at the next opening of
/// its window and legal hours after it.
fn callback(
    c: &CampaignConfig,
    lead: &Lead,
    status: &CallStatus,
    now: DateTime<Utc>,
) -> Option<LeadNext> {
    let cb = c.callbacks.as_ref()?;
    if lead.callbacks >= cb.max_per_lead as i32 {
        return None;
    }
    let zone = c.rules.zone_of(lead.timezone.as_deref(), &lead.phone);
    let asked = cb.asked(&status.fields, zone.zones.first().copied(), |field| {
        sent_value(c, lead, field)
    })?;
    let due = c
        .rules
        .next_opening(&zone, &lead.phone, asked.max(now))
        .unwrap_or(asked.max(now));
    let mut next = LeadNext::pending(due, status.outcome.map(|o| o.as_str().to_string()));
    next.callback_at = Some(asked);
    Some(next)
}

/// What the daemon sent under `field`: the lead's variable, else the campaign's.
fn sent_value(c: &CampaignConfig, lead: &Lead, field: &str) -> Option<serde_json::Value> {
    lead.variables.get(field).cloned().or_else(|| {
        c.variables
            .get(field)
            .map(|v| serde_json::Value::String(v.clone()))
    })
}

/// Whether the call's end says the callee opted out (`[opt_out]`).
fn opted_out(c: &CampaignConfig, lead: &Lead, status: &CallStatus) -> bool {
    c.opt_out
        .says_so(&status.fields, status.hangup_cause.as_deref(), |field| {
            sent_value(c, lead, field)
        })
}

/// As `decide`, for a lead whose campaign file was removed: its leads are
/// not dialled again.
fn decide_removed(outcome: Outcome) -> LeadNext {
    let status = match outcome {
        Outcome::Completed | Outcome::Transferred => LeadStatus::Completed,
        Outcome::Canceled => LeadStatus::Canceled,
        _ => LeadStatus::Exhausted,
    };
    LeadNext::finished(status, outcome.as_str())
}

/// When the next attempt may happen after `outcome` at `at`: the delay for
/// the outcome, then the lead's next opening.
pub fn retry_at(
    c: &CampaignConfig,
    lead: &Lead,
    outcome: Outcome,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    let earliest = at + duration(c.retry.delay_after(outcome));
    let zone = c.rules.zone_of(lead.timezone.as_deref(), &lead.phone);
    c.rules
        .next_opening(&zone, &lead.phone, earliest)
        .unwrap_or(earliest)
}

/// What becomes of a claimed lead before any call: `None` when it may be
/// checked against the rules, otherwise where it goes.
pub fn before_rules(c: &CampaignConfig, lead: &Lead) -> Option<LeadNext> {
    if crate::phone::normalize(&lead.phone, None).ok().as_deref() != Some(lead.phone.as_str()) {
        return Some(LeadNext::finished(
            LeadStatus::Skipped,
            SkipReason::InvalidNumber.as_str(),
        ));
    }
    if lead.attempts >= c.retry.max_attempts as i32 + lead.callbacks {
        let last = lead
            .last_outcome
            .clone()
            .unwrap_or_else(|| Outcome::Unknown.to_string());
        return Some(LeadNext::finished(LeadStatus::Exhausted, last));
    }
    None
}

/// Where a lead the rules block goes: skipped for a permanent reason,
/// otherwise pending at the next instant it may be called (so the claim only
/// returns callable leads).
pub fn blocked(verdict: &Verdict, now: DateTime<Utc>) -> LeadNext {
    let b = &verdict.blocked_by;
    if b.contains(&Rule::DoNotCall) {
        LeadNext::finished(LeadStatus::Skipped, SkipReason::DoNotCall.as_str())
    } else if b.contains(&Rule::UnknownTimezone) {
        LeadNext::finished(LeadStatus::Skipped, SkipReason::UnknownTimezone.as_str())
    } else {
        let at = verdict
            .next_callable_at
            .filter(|t| *t > now)
            .unwrap_or(now + Duration::days(1));
        LeadNext::pending(at, None)
    }
}

// ----------------------------------------------------------- transitions

/// Retries a write that records what a provider already did (a call id, a
/// status): losing it would leave a call the daemon cannot account for. Only
/// database errors are retried, with backoff, for `WRITE_RETRY_BOUND`.
/// Placing a call is never retried: this is only for our own writes.
pub async fn durable<T, F, Fut>(what: &str, write: F) -> store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = store::Result<T>>,
{
    write
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(std::time::Duration::from_millis(50))
                .with_max_delay(std::time::Duration::from_secs(5))
                .with_total_delay(Some(WRITE_RETRY_BOUND))
                .without_max_times()
                .with_jitter(),
        )
        .when(|e| matches!(e, StoreError::Db(_)))
        .notify(
            |e, wait| tracing::warn!(error = %e, ?wait, "{what}: database write failed; retrying"),
        )
        .await
}

/// The provider answered the place request of a committed attempt: records
/// the answer and moves the attempt and its lead.
pub async fn answered(
    d: &Daemon,
    c: &CampaignConfig,
    p: &ProviderHandle,
    lead: &ClaimedLead,
    attempt: &Attempt,
    result: PlaceResult,
) -> anyhow::Result<()> {
    let now = d.clock.now();
    let name = &p.cfg.name;
    let slot_freed = !matches!(result, PlaceResult::Placed { .. });
    match result {
        PlaceResult::Placed {
            provider_call_id,
            provider_status,
        } => {
            p.pacing.known_fate();
            d.metrics.placed(&c.id, name);
            let lease = now + Timings::of(p).live_lease;
            durable("recording a placed call", || {
                d.store
                    .attempt_placed(attempt, &provider_call_id, &provider_status, lease, now)
            })
            .await?;
            tracing::Span::current().record("provider_call_id", provider_call_id.as_str());
            tracing::info!(provider_call_id = %provider_call_id, "call placed");
        }
        PlaceResult::NotPlaced {
            retry_after,
            reason,
        } => {
            p.pacing.known_fate();
            let until = now + duration(retry_after.unwrap_or(std::time::Duration::from_secs(30)));
            d.pause_provider(
                p,
                Pause {
                    until,
                    reason: reason.clone(),
                    unusable: false,
                },
            )
            .await;
            d.metrics.not_placed(&c.id, name);
            tracing::warn!(%reason, retry_at = %rfc3339(until), "provider did not take the call; same attempt is sent again later");
            durable("recording a call not placed", || {
                d.store.attempt_not_placed(attempt, &reason, until, now)
            })
            .await?;
        }
        PlaceResult::Unusable { message } => {
            let until = now + Duration::minutes(5);
            d.pause_provider(
                p,
                Pause {
                    until,
                    reason: message.clone(),
                    unusable: true,
                },
            )
            .await;
            d.metrics.unusable(name);
            d.metrics.not_placed(&c.id, name);
            tracing::error!(provider = %name, reason = %message, "provider account unusable; dispatching on it is paused, no lead is burned");
            durable("recording a call not placed", || {
                d.store.attempt_not_placed(attempt, &message, until, now)
            })
            .await?;
        }
        PlaceResult::Rejected {
            message,
            number_refused,
        } => {
            p.pacing.known_fate();
            tracing::warn!(reason = %message, number_refused, "provider rejected the call");
            // Never placed, so no provider status follows: no status time.
            let status = CallStatus {
                provider_status: "rejected".into(),
                outcome: Some(Outcome::Failed),
                ended_at: Some(now),
                error: Some(message),
                ..Default::default()
            };
            let next = if number_refused {
                LeadNext::finished(LeadStatus::Skipped, SkipReason::Rejected.as_str())
            } else {
                decide(c, &lead.lead, attempt.attempt, Outcome::Failed, now)
            };
            durable("recording a rejected call", || {
                d.store.settle(&attempt.id, &status, Some(&next), now)
            })
            .await?;
        }
        PlaceResult::Unknown { error } => {
            d.metrics.unknown(&c.id, name);
            let next = decide(c, &lead.lead, attempt.attempt, Outcome::Unknown, now);
            tracing::warn!(%error, next = ?next.next_attempt_at.map(rfc3339), "fate of the call request unknown; never re-sent, waits for the unknown retry delay");
            durable("recording a call of unknown fate", || {
                d.store.attempt_unknown(&attempt.id, &error, &next, now)
            })
            .await?;
            let limit = p.cfg.pause_after_unknown;
            if p.pacing.unknown_fate(limit) {
                let until = now + Duration::seconds(15);
                tracing::error!(
                    provider = %name, consecutive = limit, until = %rfc3339(until),
                    "provider answers no place request with a known fate (outage?); placing on it is paused until a probe succeeds"
                );
                d.pause_provider(
                    p,
                    Pause {
                        until,
                        reason: format!("{limit} place requests in a row with unknown fate"),
                        unusable: true,
                    },
                )
                .await;
            }
        }
    }
    if slot_freed {
        d.slot_freed(name);
    }
    Ok(())
}

/// Applies a provider's status (poll or webhook) to its attempt; when the
/// call ended, the lead moves on as the retry policy says, if this is still
/// its newest attempt and no other system changed it meanwhile.
pub async fn apply_status(
    d: &Daemon,
    open: &OpenAttempt,
    status: &CallStatus,
) -> anyhow::Result<Settled> {
    let now = d.clock.now();
    let lead_next = status.outcome.map(|outcome| {
        match d.campaign(&open.attempt.campaign_id) {
            Some(c) if opted_out(&c, &open.lead, status) => {
                let mut next =
                    LeadNext::finished(LeadStatus::Skipped, SkipReason::DoNotCall.as_str());
                next.do_not_call = Some(format!("opt_out (campaign {})", c.id));
                next
            }
            Some(c) => match callback(&c, &open.lead, status, now) {
                Some(next) => next,
                // Retry delays run from when we learned the end, on our own clock.
                None => decide(&c, &open.lead, open.attempt.attempt, outcome, now),
            },
            None => decide_removed(outcome),
        }
    });
    if let Some(at) = lead_next.as_ref().and_then(|n| n.callback_at) {
        tracing::info!(
            campaign = %open.attempt.campaign_id, lead = open.attempt.lead_id, attempt = %open.attempt.id,
            asked = %rfc3339(at),
            due = lead_next.as_ref().and_then(|n| n.next_attempt_at).map(rfc3339).as_deref(),
            "the callee asked to be called back"
        );
    }
    if lead_next.as_ref().is_some_and(|n| n.do_not_call.is_some()) {
        tracing::info!(
            campaign = %open.attempt.campaign_id, lead = open.attempt.lead_id, attempt = %open.attempt.id,
            "the callee opted out: the lead is skipped and its number goes on the do-not-call list"
        );
    }
    let settled = durable("applying a call status", || {
        d.store
            .settle(&open.attempt.id, status, lead_next.as_ref(), now)
    })
    .await?;
    if settled == Settled::Applied {
        if let Some(o) = status.outcome {
            d.slot_freed(&open.attempt.provider);
            d.metrics.ended(
                &open.attempt.campaign_id,
                &open.attempt.provider,
                o.as_str(),
            );
            tracing::info!(
                campaign = %open.attempt.campaign_id,
                lead = open.attempt.lead_id,
                attempt = %open.attempt.id,
                provider = %open.attempt.provider,
                provider_call_id = open.attempt.provider_call_id.as_deref(),
                outcome = %o,
                provider_status = %status.provider_status,
                "call ended"
            );
        }
    }
    Ok(settled)
}

/// An attempt's fate became unknown without a request answer to go by: a
/// `sending` row left by a daemon that stopped, or a call that outlived
/// `max_call_duration`. The attempt stays open to evidence (it is still
/// polled); the lead waits for the `unknown` retry delay.
pub async fn fate_unknown(d: &Daemon, open: &OpenAttempt, why: &str) -> anyhow::Result<bool> {
    let now = d.clock.now();
    let next = match d.campaign(&open.attempt.campaign_id) {
        Some(c) => decide(&c, &open.lead, open.attempt.attempt, Outcome::Unknown, now),
        None => decide_removed(Outcome::Unknown),
    };
    let changed = durable("recording an attempt of unknown fate", || {
        d.store.attempt_unknown(&open.attempt.id, why, &next, now)
    })
    .await?;
    if changed {
        d.slot_freed(&open.attempt.provider);
        tracing::warn!(
            campaign = %open.attempt.campaign_id, lead = open.attempt.lead_id, attempt = %open.attempt.id,
            provider = %open.attempt.provider, provider_call_id = open.attempt.provider_call_id.as_deref(),
            next = ?next.next_attempt_at.map(rfc3339), "{why}; the attempt is unknown and never re-sent"
        );
    }
    Ok(changed)
}

/// An `unknown` attempt polled for `Timings::give_up` without a real end:
/// polling stops (a webhook arriving later still applies).
pub async fn give_up(d: &Daemon, open: &OpenAttempt) -> anyhow::Result<()> {
    d.store.give_up(&open.attempt.id).await?;
    tracing::warn!(
        campaign = %open.attempt.campaign_id, lead = open.attempt.lead_id, attempt = %open.attempt.id,
        provider = %open.attempt.provider, provider_call_id = open.attempt.provider_call_id.as_deref(),
        "no final status learned for this attempt; no longer polled"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings(request_timeout: u64, max_call: u64) -> Timings {
        Timings::new(
            std::time::Duration::from_secs(request_timeout),
            std::time::Duration::from_secs(max_call),
        )
    }

    #[test]
    fn timings_keep_their_order_across_the_configurable_range() {
        // request_timeout 1 s ..= 5 min, max_call_duration 1 s ..= 1 day.
        for rt in [1, 15, 60, 300] {
            for mc in [1, 60, 1800, 86_400] {
                assert!(
                    timings(rt, mc).check(),
                    "request_timeout {rt}s, max_call {mc}s"
                );
            }
        }
    }

    #[test]
    fn a_claim_takes_what_the_rate_sends_within_its_lease() {
        assert_eq!(claim_lease(), Duration::seconds(15));
        for (cpm, batch) in [
            (0, 1),
            (1, 1),
            (6, 1),
            (12, 2),
            (60, 6),
            (1200, 100),
            (6000, 100),
        ] {
            assert_eq!(claim_batch(cpm), batch, "calls_per_minute {cpm}");
            // The first goes at once; the others one rate period apart,
            // all within the horizon and so well within the lease.
            let last_sent_ms = 60_000 * i64::from(batch - 1) / i64::from(cpm.max(1));
            assert!(Duration::milliseconds(last_sent_ms) <= duration(CLAIM_HORIZON));
        }
    }
}
