//! The campaign loop: claim → may we call? → may we now? → attempt row →
//! place → classify. One loop per campaign; placing runs in tracked tasks so
//! a slow provider never stalls the claim loop, and shutdown waits for them.

use crate::config::CampaignConfig;
use crate::daemon::{Daemon, ProviderHandle};
use crate::domain::{ClaimedLead, Lead, Outcome};
use crate::lifecycle::{self, Timings};
use crate::pacing::{Limiter, Pause};
use crate::provider::PlaceRequest;
use crate::schedule::Facts;
use crate::store::{Begun, ClaimLimits, LeadNext, NumberFacts};
use crate::watchdog::Heartbeat;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How far back the rules read a number's attempts: longer than any cap's period.
pub const RECENT_LOOKBACK: Duration = Duration::days(31);

/// Longest sleep while idle or while a concurrency limit is full, in real
/// time: leads inserted or reopened by other systems, and slots freed by
/// other daemons, are picked up within this.
const IDLE_REAL: std::time::Duration = std::time::Duration::from_millis(1000);

/// What the loop does after a round.
enum Next {
    /// Go again at once.
    Again,
    /// Nothing can be done before this time.
    Until(DateTime<Utc>),
    /// Leads are due but a concurrency limit is full: wait for a slot.
    Full,
}

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
    // Held in the database under the campaign's id: a reload rebuilds the
    // dispatcher but keeps what the campaign has already spent.
    let limiter = Limiter::shared(
        daemon.store.clone(),
        &daemon.clock,
        format!("campaign:{}", campaign.id),
        campaign.pacing.calls_per_minute,
        campaign.pacing.burst,
    );
    limiter.observe_waits(
        daemon
            .metrics
            .limiter_wait(&format!("campaign:{}", campaign.id)),
    );
    let d = Dispatcher {
        claim_latency: daemon.metrics.claim_latency(&campaign.id),
        place_latency: daemon.metrics.place_latency(&provider.cfg.name),
        // Held in the database under the campaign's id: a reload rebuilds
        // the dispatcher but keeps what the campaign has already spent.
        limiter,
        daemon,
        campaign,
        provider,
        next_from: AtomicUsize::new(0),
        warned: Mutex::new(HashSet::new()),
        cell_in_hand: AtomicBool::new(false),
        look_ahead: AtomicBool::new(false),
        unsent: AtomicUsize::new(0),
        drained: Notify::new(),
        caller_ids_capped: Mutex::new(None),
    };
    let d = Arc::new(d);
    let never = Notify::new();
    let slots = d.daemon.slot_signal(&d.provider.cfg.name).unwrap_or(&never);
    tracing::info!(campaign = %d.campaign.id, provider = %d.provider.cfg.name, "campaign dispatcher started");
    let heartbeat = d
        .daemon
        .heartbeats
        .register(format!("dispatcher for campaign {}", d.campaign.id));
    loop {
        if stop.is_cancelled() {
            break;
        }
        heartbeat.beat();
        // Listening before the claim: a slot freed while it runs still wakes us.
        let freed = slots.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let next = match d.round(&stop, &tracker, &heartbeat).await {
            Ok(n) => n,
            Err(e) => {
                if e.downcast_ref::<crate::store::StoreError>().is_some() {
                    d.daemon.metrics.database_error();
                }
                tracing::error!(campaign = %d.campaign.id, error = %e, "dispatch round failed; retrying");
                Next::Until(
                    d.daemon.clock.now()
                        + Duration::from_std(
                            d.daemon
                                .clock
                                .scaled_from_real(std::time::Duration::from_secs(2)),
                        )
                        .unwrap_or(Duration::seconds(2)),
                )
            }
        };
        let now = d.daemon.clock.now();
        let idle_limit = now
            + Duration::from_std(d.daemon.clock.scaled_from_real(IDLE_REAL))
                .unwrap_or(Duration::seconds(1));
        let (until, full) = match next {
            Next::Again => continue,
            Next::Until(t) => (t.min(idle_limit), false),
            Next::Full => (idle_limit, true),
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut freed, if full => {}
            _ = d.daemon.clock.sleep_until(until) => {}
        }
    }
    tracing::info!(campaign = %d.campaign.id, "campaign dispatcher stopped");
}

/// Due leads one look reads: enough that the rules' first look at a
/// million leads another system inserted takes seconds, few enough that
/// one statement moves them within milliseconds.
const LOOK_BATCH: u32 = 1_000;

/// What the rules make of a claimed lead.
enum Checked {
    Go(ClaimedLead),
    Back(ClaimedLead, LeadNext),
}

struct Dispatcher {
    daemon: Arc<Daemon>,
    campaign: Arc<CampaignConfig>,
    provider: Arc<ProviderHandle>,
    limiter: Limiter,
    claim_latency: metrics::Histogram,
    place_latency: metrics::Histogram,
    next_from: AtomicUsize,
    /// Template fields already warned about (one warning each).
    warned: Mutex<HashSet<String>>,
    /// A rate cell taken for a claim that sent nothing, kept for the next.
    cell_in_hand: AtomicBool,
    /// The last claim's leads were all turned away by the rules: the next
    /// pass looks at many due leads at once (`Dispatcher::look`).
    look_ahead: AtomicBool,
    /// Attempt tasks of earlier claims not yet committed or given up (most
    /// wait for the provider's request budget).
    unsent: AtomicUsize,
    /// Told when `unsent` drops to zero.
    drained: Notify,
    /// Every caller ID of the campaign was at its cap until then (the
    /// store's count, all daemons): no claim before it.
    caller_ids_capped: Mutex<Option<DateTime<Utc>>>,
}

/// One attempt task not yet committed: counted in `Dispatcher::unsent`
/// until dropped, however the task ends.
struct Unsent(Arc<Dispatcher>);

impl Unsent {
    fn new(d: &Arc<Dispatcher>) -> Self {
        d.unsent.fetch_add(1, Ordering::SeqCst);
        Unsent(d.clone())
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        if self.0.unsent.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl Dispatcher {
    /// One claim and its leads.
    async fn round(
        self: &Arc<Self>,
        stop: &CancellationToken,
        tracker: &TaskTracker,
        heartbeat: &Heartbeat,
    ) -> anyhow::Result<Next> {
        let d = &self.daemon;
        // Backpressure: the leads of the last claim are committed (or given
        // up) before more are claimed. When the provider's budget or the
        // database is slower than the campaign's rate, waiting attempts
        // would otherwise pile up, outlive their leases, be claimed again
        // and queue ahead of the poller.
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.unsent.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(Next::Again),
                _ = heartbeat.beat_while(&mut drained) => {}
            }
        }
        let now = d.clock.now();
        if self.campaign.paused {
            return Ok(Next::Until(now + Duration::hours(1)));
        }
        if let Some(p) = self.provider.pacing.paused(now) {
            return Ok(Next::Until(p.until));
        }
        if let Some(until) = *self
            .caller_ids_capped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            if until > now {
                return Ok(Next::Until(until));
            }
        }
        if self.provider.pacing.take_probe(now) {
            // The account was unusable (bad key, no credits): ask it once
            // without placing a call before any lead is risked on it again.
            match heartbeat.beat_while(self.provider.api.probe()).await {
                Ok(()) => {
                    d.resume_provider(&self.provider).await;
                    tracing::info!(provider = %self.provider.cfg.name, "provider answers again; dispatching resumes")
                }
                Err(e) => {
                    let until = now + Duration::minutes(5);
                    tracing::error!(provider = %self.provider.cfg.name, error = %e, "provider still unusable; dispatching stays paused");
                    d.pause_provider(
                        &self.provider,
                        Pause {
                            until,
                            reason: e.to_string(),
                            unusable: true,
                        },
                    )
                    .await;
                    return Ok(Next::Until(until));
                }
            }
        }
        if self.look_ahead.load(Ordering::SeqCst) {
            if let Some(next) = self.look().await? {
                return Ok(next);
            }
        }
        // The first lead's rate cell is taken before claiming, so that a
        // claim holds only leads that go within `lifecycle::claim_lease`.
        if !self.cell_in_hand.swap(false, Ordering::SeqCst) {
            tokio::select! {
                _ = stop.cancelled() => return Ok(Next::Again),
                _ = heartbeat.beat_while(self.limiter.ready()) => {}
            }
        }
        let now = d.clock.now();
        // Neither the campaign's rate nor the provider's request budget
        // can send more than this within the claim's horizon.
        let sendable = lifecycle::claim_batch(
            self.campaign
                .pacing
                .calls_per_minute
                .min(self.provider.cfg.requests_per_minute),
        );
        let limits = ClaimLimits {
            campaign_id: self.campaign.id.clone(),
            provider: self.provider.cfg.name.clone(),
            max_concurrent: self.campaign.pacing.max_concurrent,
            provider_max_concurrent: self.provider.cfg.max_concurrent_calls,
            batch: sendable,
        };
        let lease = now + lifecycle::claim_lease();
        let started = std::time::Instant::now();
        let claimed = d.store.claim(&limits, &d.owner, now, lease).await;
        self.claim_latency.record(started.elapsed().as_secs_f64());
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                self.cell_in_hand.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        };
        if claimed.is_empty() {
            self.cell_in_hand.store(true, Ordering::SeqCst);
            return Ok(match d.store.next_due(&self.campaign.id).await? {
                // Due yet not claimed: a concurrency limit is full.
                Some(t) if t <= now => Next::Full,
                Some(t) => Next::Until(t),
                None => Next::Until(now + Duration::hours(1)),
            });
        }
        // Each lead is checked, then sent as soon as its rate cell comes:
        // the first leaves without waiting for the rest of the batch to be
        // checked, and a lead the rules block spends no cell.
        // The rules' facts for the whole batch in two statements, rather
        // than two per lead before the first can go.
        let phones: Vec<&str> = claimed.iter().map(|c| c.lead.phone.as_str()).collect();
        let facts = match d.store.number_facts(&phones, now - RECENT_LOOKBACK).await {
            Ok(f) => f,
            Err(e) => {
                // No attempt exists yet: handing the batch back cannot dial twice.
                for lead in &claimed {
                    self.hand_back(lead, now + Duration::minutes(1)).await;
                }
                return Err(e.into());
            }
        };
        let mut released = Vec::new();
        // Leads the rules turn away, handed back together (one commit).
        let mut back = Vec::new();
        let mut cell = true;
        let mut sending = 0;
        let claimed_any = !claimed.is_empty();
        for lead in claimed {
            if stop.is_cancelled() {
                released.push(lead);
                continue;
            }
            let known = facts.get(&lead.lead.phone).cloned().unwrap_or_default();
            let lead = match self.check(lead, d.clock.now(), &known) {
                Checked::Go(l) => l,
                Checked::Back(l, next) => {
                    back.push((l, next));
                    continue;
                }
            };
            sending += 1;
            if !std::mem::take(&mut cell) {
                // Leads turned away go back before a wait, not after it:
                // held, they would count against the concurrency limits.
                self.hand_back_all(&mut back).await?;
                tokio::select! {
                    _ = stop.cancelled() => { released.push(lead); continue; }
                    _ = heartbeat.beat_while(self.limiter.ready()) => {}
                }
            }
            let me = self.clone();
            let unsent = Unsent::new(self);
            tracker.spawn(async move {
                if let Err(e) = me.attempt(lead.clone(), known, unsent).await {
                    tracing::error!(campaign = %me.campaign.id, lead = lead.lead.id, error = %e, "attempt failed; lead handed back");
                    // An attempt may already be committed: the lead waits
                    // for the `unknown` retry delay, as after a lost request.
                    let now = me.daemon.clock.now();
                    me.hand_back(&lead, lifecycle::retry_at(&me.campaign, &lead.lead, Outcome::Unknown, now)).await;
                }
            });
        }
        if cell {
            self.cell_in_hand.store(true, Ordering::SeqCst);
        }
        self.hand_back_all(&mut back).await?;
        // Every lead turned away: the next pass looks at many at once.
        self.look_ahead
            .store(claimed_any && sending == 0, Ordering::SeqCst);
        // Stopping: hand unsent leads back at once instead of waiting for their lease.
        let now = d.clock.now();
        let unsent: Vec<_> = released
            .into_iter()
            .map(|lead| (lead, LeadNext::pending(now, None)))
            .collect();
        d.store.release_all(&unsent, now).await?;
        Ok(Next::Again)
    }

    /// The rules' look at many due leads at once, after a claim whose leads
    /// they all turned away (leads another system inserted outside their
    /// window, say): up to `LOOK_BATCH` due leads are read, not taken, so no
    /// limit counts them and no other daemon waits for them, and those the
    /// rules turn away move to their next opening in one statement, each
    /// only if no one changed it since it was read. `None` when there is
    /// nothing to look at, or a callable lead: the claim takes it next, as
    /// the limits allow.
    async fn look(&self) -> anyhow::Result<Option<Next>> {
        let d = &self.daemon;
        let now = d.clock.now();
        let looked = d.store.look(&self.campaign.id, now, LOOK_BATCH).await?;
        let phones: Vec<&str> = looked.iter().map(|l| l.lead.phone.as_str()).collect();
        let facts = d.store.number_facts(&phones, now - RECENT_LOOKBACK).await?;
        let mut back = Vec::with_capacity(looked.len());
        let mut callable = false;
        for l in looked {
            let known = facts.get(&l.lead.phone).cloned().unwrap_or_default();
            match self.rules_next(&l.lead, now, &known) {
                Some(next) => back.push((l, next)),
                None => callable = true,
            }
        }
        let moved = d.store.reschedule_all(&back, d.clock.now()).await?;
        // Looking again only while it moves leads: a batch that other
        // writers changed whole goes to the claim, which reads it afresh.
        let again = !callable && moved > 0;
        self.look_ahead.store(again, Ordering::SeqCst);
        Ok(again.then_some(Next::Again))
    }

    /// Hands back the leads the rules turned away, in one statement.
    async fn hand_back_all(&self, back: &mut Vec<(ClaimedLead, LeadNext)>) -> anyhow::Result<()> {
        if back.is_empty() {
            return Ok(());
        }
        self.daemon
            .store
            .release_all(back, self.daemon.clock.now())
            .await?;
        back.clear();
        self.daemon.slot_freed(&self.provider.cfg.name);
        Ok(())
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
        self.daemon.slot_freed(&self.provider.cfg.name);
    }

    /// May this lead be called now? If not, where it goes instead.
    fn check(&self, lead: ClaimedLead, now: DateTime<Utc>, known: &NumberFacts) -> Checked {
        match self.rules_next(&lead.lead, now, known) {
            None => Checked::Go(lead),
            Some(next) => Checked::Back(lead, next),
        }
    }

    /// Where the rules send a lead at `now`: `None` when it may be called.
    fn rules_next(&self, l: &Lead, now: DateTime<Utc>, known: &NumberFacts) -> Option<LeadNext> {
        if let Some(next) = lifecycle::before_rules(&self.campaign, l) {
            if next.status == crate::domain::LeadStatus::Skipped {
                tracing::warn!(campaign = %l.campaign_id, lead = l.id, "lead's phone is not a valid E.164 number; skipped");
            }
            return Some(next);
        }
        let verdict = self.judge(l, now, known);
        if verdict.callable {
            return None;
        }
        tracing::debug!(campaign = %l.campaign_id, lead = l.id, blocked_by = ?verdict.blocked_by, "not callable now");
        Some(lifecycle::blocked(&verdict, now))
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
        let next = lifecycle::blocked(verdict, now);
        tracing::debug!(campaign = %lead.lead.campaign_id, lead = lead.lead.id, blocked_by = ?b, "not callable now");
        self.daemon.store.release(lead, &next, now).await?;
        self.daemon.slot_freed(&self.provider.cfg.name);
        Ok(())
    }

    /// The rules' verdict at `now`, with the number's facts read afresh.
    async fn verdict(
        &self,
        l: &Lead,
        now: DateTime<Utc>,
    ) -> anyhow::Result<crate::schedule::Verdict> {
        let known = self
            .daemon
            .store
            .number_facts(&[l.phone.as_str()], now - RECENT_LOOKBACK)
            .await?
            .remove(&l.phone)
            .unwrap_or_default();
        Ok(self.judge(l, now, &known))
    }

    fn judge(&self, l: &Lead, now: DateTime<Utc>, known: &NumberFacts) -> crate::schedule::Verdict {
        let facts = Facts {
            phone: &l.phone,
            timezone: l.timezone.as_deref(),
            consent: l.consent_at.is_some(),
            dnc: known.dnc,
            paused: self.campaign.paused,
            final_status: false,
            due_at: None,
            // Checked by the caller, which hands the lead back to the pause's end.
            provider_paused_until: None,
            // Counted by `begin_attempt`, in the transaction that commits.
            caller_id_free_at: None,
            recent_attempts: &known.recent_attempts,
        };
        self.campaign.rules.evaluate(&facts, now)
    }

    /// Commits the attempt, places the call, records what the provider said.
    /// `known`: the number's facts as read for the claim's batch.
    async fn attempt(
        &self,
        lead: ClaimedLead,
        known: NumberFacts,
        unsent: Unsent,
    ) -> anyhow::Result<()> {
        let d = &self.daemon;
        let c = &self.campaign;
        let p = &self.provider;
        // The provider's request budget is taken first, so that the rules
        // below are checked, and the attempt committed, right before the
        // request leaves (never before an unbounded wait). Campaigns of
        // higher `priority` are served first; a lead that cannot have a cell
        // while its claim still holds it goes back due, spending nothing.
        let deadline = lead.lease_expires_at - Duration::seconds(1);
        let Some(permit) = p.pacing.requests.take_as(c.priority, deadline).await else {
            tracing::debug!(campaign = %c.id, lead = lead.lead.id, "no provider budget within the claim's lease; handed back");
            self.hand_back(&lead, d.clock.now()).await;
            return Ok(());
        };
        // Checked again at the instant recorded as the attempt's
        // `requested_at`: the lead may have waited for its turn past the
        // window's end. The number's facts are the batch's: what may have
        // changed since (an attempt by another campaign or daemon, the
        // do-not-call list) is read again by `begin_attempt` in the
        // transaction that commits the attempt.
        let now = d.clock.now();
        let verdict = self.judge(&lead.lead, now, &known);
        if !verdict.callable {
            return self.not_callable(&lead, &verdict, now).await;
        }
        if let Some(pause) = p.pacing.paused(now) {
            d.store
                .release(&lead, &LeadNext::pending(pause.until, None), now)
                .await?;
            return Ok(());
        }
        // The caller IDs this call may use, best first; the store takes the
        // first under its caps in the transaction that commits the attempt.
        let from = c.caller_ids.choice(
            &c.id,
            lead.lead.id,
            &lead.lead.phone,
            self.next_from.fetch_add(1, Ordering::Relaxed),
        );
        // Chosen once: the attempt row records the agent the request names.
        let agent = c.agent_for(lead.lead.id).to_string();
        let unknown_due = lifecycle::retry_at(c, &lead.lead, Outcome::Unknown, now);
        // The lead's lease runs while its request is in flight; past it the
        // poller takes the `sending` row for an orphan.
        let send_lease = now + Timings::of(p).send_grace;
        let caps = c.rules.caps_for(&lead.lead.phone);
        let attempt = d
            .store
            .begin_attempt(
                &lead,
                &p.cfg.name,
                &from,
                Some(agent.as_str()),
                &caps,
                send_lease,
                unknown_due,
                now,
            )
            .await;
        drop(unsent);
        let attempt = match attempt? {
            Begun::Attempt(a) => *a,
            Begun::NotHeld => {
                tracing::info!(campaign = %c.id, lead = lead.lead.id, "lead no longer held (lease lost or stopped by another system); not dialled");
                return Ok(());
            }
            Begun::CallerIdCapped { until } => {
                d.metrics.caller_id_capped(&c.id);
                let now = d.clock.now();
                if c.caller_ids.choose != crate::caller_id::Choose::Sticky {
                    // Every number of the campaign is at its cap: the
                    // campaign waits rather than claim leads it cannot call.
                    let mut capped = self
                        .caller_ids_capped
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    // The store's newest answer is the one to wait for.
                    if capped.is_none_or(|t| t <= now) {
                        tracing::info!(campaign = %c.id, until = %crate::domain::rfc3339(until), "every caller ID is at its cap; the campaign waits");
                    }
                    *capped = Some(until);
                } else {
                    tracing::debug!(campaign = %c.id, lead = lead.lead.id, until = %crate::domain::rfc3339(until), "the lead's caller ID is at its cap; the lead waits");
                }
                d.store
                    .release(&lead, &LeadNext::pending(until.max(now), None), now)
                    .await?;
                d.slot_freed(&p.cfg.name);
                return Ok(());
            }
            Begun::Capped | Begun::DoNotCall => {
                // Another campaign or daemon called the number since the
                // batch's facts were read, or the number joined the
                // do-not-call list: the rules, reading the facts again, say
                // when (or that the lead is skipped).
                // Judged at a fresh instant, since that attempt may have been
                // stamped after `now`.
                let now = d.clock.now();
                let verdict = self.verdict(&lead.lead, now).await?;
                tracing::info!(campaign = %c.id, lead = lead.lead.id, blocked_by = ?verdict.blocked_by, "number capped by another call or put on the do-not-call list since the claim; not dialled");
                if verdict.callable {
                    // The rules see no cap reached (the competing attempt was
                    // refused before placing, or is stamped after this
                    // instant): claimable again at once.
                    d.store
                        .release(&lead, &LeadNext::pending(now, None), now)
                        .await?;
                    return Ok(());
                }
                return self.not_callable(&lead, &verdict, now).await;
            }
        };
        // `provider_call_id` is recorded once the provider answers.
        let span = tracing::info_span!(
            "attempt",
            campaign = %c.id,
            lead = lead.lead.id,
            attempt = %attempt.id,
            n = attempt.attempt,
            provider = %self.provider.cfg.name,
            provider_call_id = tracing::field::Empty,
        );
        let from = attempt.from_number.clone();
        self.place(lead, attempt, from, agent, permit)
            .instrument(span)
            .await
    }

    /// Sends the request for a committed attempt and records the answer.
    async fn place(
        &self,
        lead: ClaimedLead,
        attempt: crate::domain::Attempt,
        from: Option<String>,
        agent: String,
        permit: crate::pacing::Permit,
    ) -> anyhow::Result<()> {
        let c = &self.campaign;
        let p = &self.provider;
        let req = PlaceRequest {
            attempt_id: attempt.id.clone(),
            to: lead.lead.phone.clone(),
            from,
            agent_id: agent,
            skill_id: c.skill_id.clone(),
            customer_name: lead
                .lead
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| lead.lead.phone.clone()),
            variables: self.variables(&lead.lead),
            permit,
        };
        let started = std::time::Instant::now();
        let result = p.api.place(&req).await;
        self.place_latency.record(started.elapsed().as_secs_f64());
        lifecycle::answered(&self.daemon, c, p, &lead, &attempt, result).await
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
