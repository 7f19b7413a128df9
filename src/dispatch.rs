//! The campaign loop: claim → may we call? → may we now? → attempt row →
//! place → classify. One loop per campaign; placing runs in tracked tasks so
//! a slow provider never stalls the claim loop, and shutdown waits for them.

use crate::config::CampaignConfig;
use crate::daemon::{Daemon, ProviderHandle};
use crate::domain::{
    rfc3339, AttemptState, CallStatus, ClaimedLead, Lead, LeadStatus, Outcome, SkipReason,
};
use crate::outcome;
use crate::pacing::{Limiter, Pause};
use crate::provider::{PlaceRequest, PlaceResult};
use crate::schedule::{Facts, Rule};
use crate::store::{ClaimLimits, LeadNext};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Most leads taken by one claim.
const CLAIM_BATCH: u32 = 100;
/// Longest sleep while idle, in real time: newly inserted or reopened leads
/// are picked up within this.
const IDLE_REAL: std::time::Duration = std::time::Duration::from_millis(1000);

/// Runs one campaign until `stop` is cancelled.
pub async fn run_campaign(
    daemon: Arc<Daemon>,
    campaign: Arc<CampaignConfig>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let Some(provider) = daemon.providers.get(&campaign.provider).cloned() else {
        tracing::error!(campaign = %campaign.id, provider = %campaign.provider, "campaign names an unknown provider; not dialling");
        return;
    };
    let d = Dispatcher {
        limiter: Limiter::per_minute(
            &daemon.clock,
            campaign.pacing.calls_per_minute,
            campaign.pacing.burst,
        ),
        daemon,
        campaign,
        provider,
        next_from: AtomicUsize::new(0),
        warned: Mutex::new(HashSet::new()),
    };
    let d = Arc::new(d);
    tracing::info!(campaign = %d.campaign.id, provider = %d.provider.cfg.name, "campaign dispatcher started");
    loop {
        if stop.is_cancelled() {
            break;
        }
        let wait = match d.round(&stop, &tracker).await {
            Ok(Some(w)) => w,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(campaign = %d.campaign.id, error = %e, "dispatch round failed; retrying");
                d.daemon.clock.now()
                    + Duration::from_std(
                        d.daemon
                            .clock
                            .scaled_from_real(std::time::Duration::from_secs(2)),
                    )
                    .unwrap_or(Duration::seconds(2))
            }
        };
        let now = d.daemon.clock.now();
        let idle_limit = now
            + Duration::from_std(d.daemon.clock.scaled_from_real(IDLE_REAL))
                .unwrap_or(Duration::seconds(1));
        let until = wait.min(idle_limit);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = d.daemon.clock.sleep_until(until) => {}
        }
    }
    tracing::info!(campaign = %d.campaign.id, "campaign dispatcher stopped");
}

struct Dispatcher {
    daemon: Arc<Daemon>,
    campaign: Arc<CampaignConfig>,
    provider: Arc<ProviderHandle>,
    limiter: Limiter,
    next_from: AtomicUsize,
    /// Template fields already warned about (one warning each).
    warned: Mutex<HashSet<String>>,
}

impl Dispatcher {
    /// One claim and its leads. `Ok(None)`: go again at once; `Ok(Some(t))`: sleep until `t`.
    async fn round(
        self: &Arc<Self>,
        stop: &CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let d = &self.daemon;
        let now = d.clock.now();
        if self.campaign.paused {
            return Ok(Some(now + Duration::hours(1)));
        }
        if let Some(p) = self.provider.pacing.paused(now) {
            return Ok(Some(p.until));
        }
        if self.provider.pacing.take_probe(now) {
            // The account was unusable (bad key, no credits): ask it once
            // without placing a call before any lead is risked on it again.
            match self.provider.api.probe().await {
                Ok(()) => {
                    tracing::info!(provider = %self.provider.cfg.name, "provider answers again; dispatching resumes")
                }
                Err(e) => {
                    let until = now + Duration::minutes(5);
                    tracing::error!(provider = %self.provider.cfg.name, error = %e, "provider still unusable; dispatching stays paused");
                    self.provider.pacing.pause(Pause {
                        until,
                        reason: e.to_string(),
                        unusable: true,
                    });
                    return Ok(Some(until));
                }
            }
        }
        let limits = ClaimLimits {
            campaign_id: self.campaign.id.clone(),
            provider: self.provider.cfg.name.clone(),
            max_concurrent: self.campaign.pacing.max_concurrent,
            provider_max_concurrent: self.provider.cfg.max_concurrent_calls,
            batch: CLAIM_BATCH,
        };
        let lease = now + self.claim_lease();
        let claimed = d.store.claim(&limits, &d.owner, now, lease).await?;
        if claimed.is_empty() {
            let next = d.store.next_due(&self.campaign.id).await?;
            return Ok(Some(next.unwrap_or(now + Duration::hours(1)).max(now)));
        }
        let mut callable = Vec::new();
        for lead in claimed {
            match self.check(lead.clone(), now).await {
                Ok(Some(l)) => callable.push(l),
                Ok(None) => {}
                // One lead's failure must not strand the rest of the batch
                // until their leases run out; no attempt exists yet, so
                // handing it back early cannot dial twice.
                Err(e) => {
                    tracing::error!(campaign = %self.campaign.id, lead = lead.lead.id, error = %e, "checking a claimed lead failed; handed back");
                    self.hand_back(&lead, now + Duration::minutes(1)).await;
                }
            }
        }
        let mut released = Vec::new();
        for lead in callable {
            if stop.is_cancelled() {
                released.push(lead);
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => { released.push(lead); continue; }
                _ = self.limiter.ready() => {}
            }
            let me = self.clone();
            tracker.spawn(async move {
                if let Err(e) = me.attempt(lead.clone()).await {
                    tracing::error!(campaign = %me.campaign.id, lead = lead.lead.id, error = %e, "attempt failed; lead handed back");
                    // An attempt may already be committed: the lead waits
                    // for the `unknown` retry delay, as after a lost request.
                    let now = me.daemon.clock.now();
                    me.hand_back(&lead, outcome::retry_at(&me.campaign, &lead.lead, Outcome::Unknown, now)).await;
                }
            });
        }
        // Stopping: hand unsent leads back at once instead of waiting for their lease.
        for lead in released {
            d.store
                .release(
                    &lead,
                    &LeadNext::pending(d.clock.now(), None),
                    d.clock.now(),
                )
                .await?;
        }
        Ok(None)
    }

    /// Best effort, after an error: the lead back to `pending` at `at`
    /// rather than held until its lease expires.
    async fn hand_back(&self, lead: &ClaimedLead, at: DateTime<Utc>) {
        let now = self.daemon.clock.now();
        if let Err(e) = self
            .daemon
            .store
            .release(lead, &LeadNext::pending(at, None), now)
            .await
        {
            tracing::error!(campaign = %self.campaign.id, lead = lead.lead.id, error = %e, "could not hand the lead back; it returns when its lease expires");
        }
    }

    /// How long a claim holds a lead before it is sent: long enough to wait
    /// for the campaign's rate for a whole batch.
    fn claim_lease(&self) -> Duration {
        let per_call = 60.0 / self.campaign.pacing.calls_per_minute.max(1) as f64;
        Duration::seconds((per_call * CLAIM_BATCH as f64) as i64 + 300)
    }

    /// May this lead be called now? Settles those that may not.
    async fn check(
        &self,
        lead: ClaimedLead,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<ClaimedLead>> {
        let d = &self.daemon;
        let l = &lead.lead;
        if crate::phone::normalize(&l.phone, None).ok().as_deref() != Some(l.phone.as_str()) {
            tracing::warn!(campaign = %l.campaign_id, lead = l.id, "lead's phone is not a valid E.164 number; skipped");
            d.store
                .release(
                    &lead,
                    &LeadNext::finished(LeadStatus::Skipped, SkipReason::InvalidNumber.as_str()),
                    now,
                )
                .await?;
            return Ok(None);
        }
        if l.attempts >= self.campaign.retry.max_attempts as i32 {
            let last = l
                .last_outcome
                .clone()
                .unwrap_or_else(|| Outcome::Unknown.to_string());
            d.store
                .release(&lead, &LeadNext::finished(LeadStatus::Exhausted, last), now)
                .await?;
            return Ok(None);
        }
        let verdict = self.verdict(l, now).await?;
        if verdict.callable {
            return Ok(Some(lead));
        }
        self.not_callable(&lead, &verdict, now).await?;
        Ok(None)
    }

    /// Hands back a lead the rules block: skipped for a permanent reason,
    /// otherwise pending at the next instant it may be called.
    async fn not_callable(
        &self,
        lead: &ClaimedLead,
        verdict: &crate::schedule::Verdict,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let b = &verdict.blocked_by;
        let next = if b.contains(&Rule::DoNotCall) {
            LeadNext::finished(LeadStatus::Skipped, SkipReason::DoNotCall.as_str())
        } else if b.contains(&Rule::UnknownTimezone) {
            LeadNext::finished(LeadStatus::Skipped, SkipReason::UnknownTimezone.as_str())
        } else {
            // Keep `next_attempt_at` at an instant the lead may be called, so
            // the claim only returns callable leads; re-checked at claim time.
            let at = verdict
                .next_callable_at
                .filter(|t| *t > now)
                .unwrap_or(now + Duration::days(1));
            LeadNext::pending(at, None)
        };
        tracing::debug!(campaign = %lead.lead.campaign_id, lead = lead.lead.id, blocked_by = ?b, "not callable now");
        self.daemon.store.release(lead, &next, now).await?;
        Ok(())
    }

    async fn verdict(
        &self,
        l: &Lead,
        now: DateTime<Utc>,
    ) -> anyhow::Result<crate::schedule::Verdict> {
        let d = &self.daemon;
        let dnc = d.store.is_dnc(&l.phone).await?;
        let recent = d
            .store
            .recent_attempts(&l.phone, now - Duration::days(31))
            .await?;
        let facts = Facts {
            phone: &l.phone,
            timezone: l.timezone.as_deref(),
            consent: l.consent_at.is_some(),
            dnc,
            paused: self.campaign.paused,
            final_status: false,
            due_at: None,
            recent_attempts: &recent,
        };
        Ok(self.campaign.rules.evaluate(&facts, now))
    }

    /// Commits the attempt, places the call, records what the provider said.
    async fn attempt(&self, lead: ClaimedLead) -> anyhow::Result<()> {
        let d = &self.daemon;
        let c = &self.campaign;
        let p = &self.provider;
        // Checked again at the instant recorded as the attempt's
        // `requested_at`: the lead may have waited for its turn past the
        // window's end, or its number joined the do-not-call list meanwhile.
        let now = d.clock.now();
        let verdict = self.verdict(&lead.lead, now).await?;
        if !verdict.callable {
            return self.not_callable(&lead, &verdict, now).await;
        }
        if let Some(pause) = p.pacing.paused(now) {
            d.store
                .release(&lead, &LeadNext::pending(pause.until, None), now)
                .await?;
            return Ok(());
        }
        let from = if c.from_numbers.is_empty() {
            None
        } else {
            let i = self.next_from.fetch_add(1, Ordering::Relaxed) % c.from_numbers.len();
            Some(c.from_numbers[i].clone())
        };
        let unknown_due = outcome::retry_at(c, &lead.lead, Outcome::Unknown, now);
        let timeout = Duration::from_std(p.cfg.request_timeout).unwrap_or(Duration::seconds(15));
        let send_lease = now + timeout * 2 + Duration::seconds(60);
        let Some(attempt) = d
            .store
            .begin_attempt(
                &lead,
                &p.cfg.name,
                from.as_deref(),
                send_lease,
                unknown_due,
                now,
            )
            .await?
        else {
            tracing::info!(campaign = %c.id, lead = lead.lead.id, "lead no longer held (lease lost or stopped by another system); not dialled");
            return Ok(());
        };
        let span = tracing::info_span!("attempt", campaign = %c.id, lead = lead.lead.id, attempt = %attempt.id, n = attempt.attempt);
        self.place(lead, attempt, from, unknown_due)
            .instrument(span)
            .await
    }

    /// Sends the request for a committed attempt and records the answer.
    async fn place(
        &self,
        lead: ClaimedLead,
        attempt: crate::domain::Attempt,
        from: Option<String>,
        unknown_due: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let d = &self.daemon;
        let c = &self.campaign;
        let p = &self.provider;
        let req = PlaceRequest {
            attempt_id: attempt.id.clone(),
            to: lead.lead.phone.clone(),
            from,
            agent_id: c.agent_id.clone(),
            skill_id: c.skill_id.clone(),
            customer_name: lead
                .lead
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| lead.lead.phone.clone()),
            variables: self.variables(&lead.lead),
        };
        p.pacing.requests.ready().await;
        let result = p.api.place(&req).await;
        let now = d.clock.now();
        match result {
            PlaceResult::Placed {
                provider_call_id,
                provider_status,
            } => {
                d.metrics.inc(
                    "dialer_calls_placed_total",
                    &[("provider", &p.cfg.name), ("campaign", &c.id)],
                );
                let max_call =
                    Duration::from_std(p.cfg.max_call_duration).unwrap_or(Duration::minutes(30));
                let lease = now + max_call + Duration::minutes(5);
                d.store
                    .attempt_placed(&attempt, &provider_call_id, &provider_status, lease, now)
                    .await?;
                tracing::info!(provider_call_id = %provider_call_id, "call placed");
            }
            PlaceResult::NotPlaced {
                retry_after,
                reason,
            } => {
                let wait = retry_after.unwrap_or(std::time::Duration::from_secs(30));
                let until = now + Duration::from_std(wait).unwrap_or(Duration::seconds(30));
                p.pacing.pause(Pause {
                    until,
                    reason: reason.clone(),
                    unusable: false,
                });
                d.metrics.inc(
                    "dialer_calls_not_placed_total",
                    &[("provider", &p.cfg.name)],
                );
                tracing::warn!(%reason, retry_at = %rfc3339(until), "provider did not take the call; same attempt is sent again later");
                d.store
                    .attempt_not_placed(&attempt, &reason, until, now)
                    .await?;
            }
            PlaceResult::Unusable { message } => {
                let until = now + Duration::minutes(5);
                p.pacing.pause(Pause {
                    until,
                    reason: message.clone(),
                    unusable: true,
                });
                d.metrics.inc(
                    "dialer_provider_unusable_total",
                    &[("provider", &p.cfg.name)],
                );
                tracing::error!(provider = %p.cfg.name, %message, "provider account unusable; dispatching on it is paused, no lead is burned");
                d.store
                    .attempt_not_placed(&attempt, &message, until, now)
                    .await?;
            }
            PlaceResult::Rejected {
                message,
                number_refused,
            } => {
                tracing::warn!(%message, number_refused, "provider rejected the call");
                let status = CallStatus {
                    provider_status: "rejected".into(),
                    outcome: Some(Outcome::Failed),
                    status_at: Some(now),
                    ended_at: Some(now),
                    error: Some(message),
                    ..Default::default()
                };
                let next = if number_refused {
                    LeadNext::finished(LeadStatus::Skipped, SkipReason::Rejected.as_str())
                } else {
                    outcome::decide(c, &lead.lead, attempt.attempt, Outcome::Failed, now)
                };
                d.store
                    .settle(&attempt.id, &status, AttemptState::Ended, Some(&next), now)
                    .await?;
            }
            PlaceResult::Unknown { error } => {
                d.metrics
                    .inc("dialer_calls_unknown_total", &[("provider", &p.cfg.name)]);
                tracing::warn!(%error, retry_at = %rfc3339(unknown_due), "fate of the call request unknown; never re-sent, waits for the unknown retry delay");
                d.store
                    .attempt_unknown(&attempt, &error, unknown_due, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// The lead's own variables, then the campaign's `[variables]` rendered
    /// over them; `{{field}}` reads a lead column or one of its variables.
    fn variables(&self, lead: &Lead) -> Map<String, Value> {
        let mut out = lead.variables.clone();
        for (key, template) in &self.campaign.variables {
            let rendered = render(template, lead, |field| {
                let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
                if warned.insert(field.to_string()) {
                    tracing::warn!(campaign = %self.campaign.id, field, "template field is not a lead column or variable; sent as empty");
                }
            });
            out.insert(key.clone(), Value::String(rendered));
        }
        out
    }
}

/// Replaces each `{{field}}` in `template`.
pub fn render(template: &str, lead: &Lead, mut missing: impl FnMut(&str)) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let field = after[..end].trim();
        let value = match field {
            "phone" => Some(lead.phone.clone()),
            "name" => Some(lead.name.clone().unwrap_or_default()),
            "timezone" => Some(lead.timezone.clone().unwrap_or_default()),
            "id" => Some(lead.id.to_string()),
            "campaign_id" => Some(lead.campaign_id.clone()),
            other => lead.variables.get(other).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        };
        match value {
            Some(v) => out.push_str(&v),
            None => missing(field),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}
