//! The database: the integration point with other systems (SPEC section 4).
//! Only this module writes SQL. The queries, the row mapping and the
//! transaction shapes live once, in `shared.rs`; `sqlite.rs` and
//! `postgres.rs` keep only their dialect: connecting, the claim, and how a
//! time or a JSON value is encoded.
//!
//! Each lifecycle transition is one method here, and its guard names the
//! rows it may touch (see `crate::lifecycle` for who calls which, and when).
//! Two guards recur:
//! - *the lead is as the daemon left it*: `status` and `next_attempt_at`
//!   still equal `daemon_status` and `daemon_next_attempt_at`, which every
//!   daemon write sets together with them. Another system that reopens,
//!   reschedules or stops a lead changes the first pair only, so its change
//!   is kept when the attempt settles (the attempt is still recorded);
//! - *the attempt is the lead's newest*: an older attempt's late status
//!   never moves the lead.

mod group;
#[macro_use]
mod shared;
mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::domain::{Attempt, AttemptState, CallStatus, ClaimedLead, Lead, LeadStatus, Outcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row in {table}: {why}")]
    Corrupt { table: &'static str, why: String },
}

/// A campaign as the `campaigns` table keeps it.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    pub id: String,
    pub provider: String,
    pub paused: bool,
    pub config_hash: String,
}

/// A lead to insert (import).
#[derive(Debug, Clone)]
pub struct NewLead {
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub variables: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertCounts {
    pub imported: u64,
    pub duplicates: u64,
}

/// Limits the claim enforces in the same transaction, so that they hold in
/// total whatever the number of daemons.
#[derive(Debug, Clone)]
pub struct ClaimLimits {
    pub campaign_id: String,
    pub provider: String,
    /// Most leads in progress for the campaign at once.
    pub max_concurrent: u32,
    /// Most leads in progress across every campaign on the provider.
    pub provider_max_concurrent: u32,
    /// Most leads to take in this claim.
    pub batch: u32,
}

/// Cells asked of a shared rate limit (GCRA), in microseconds of the
/// daemons' clock: granted when `max(tat, now) + cost - tolerance <= now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateTake {
    pub now_us: i64,
    /// The cells' emission interval times their number; at most `tolerance_us`.
    pub cost_us: i64,
    /// The emission interval times the burst.
    pub tolerance_us: i64,
}

/// What a shared rate limit answered, with its theoretical arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateTaken {
    Granted { tat_us: i64 },
    Refused { tat_us: i64 },
}

/// Where a lead goes after an attempt's fate is known.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadNext {
    pub status: LeadStatus,
    /// For `pending`: when it is due; ignored for final statuses.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    /// The callee opted out: the number goes on the do-not-call list with
    /// this reason, in the transaction that records the call's end.
    pub do_not_call: Option<String>,
    /// A callback the callee asked for at this instant: the lead's
    /// `callbacks` grows by one and `callback_at` records it.
    pub callback_at: Option<DateTime<Utc>>,
}

impl LeadNext {
    pub fn pending(at: DateTime<Utc>, last_outcome: Option<String>) -> Self {
        LeadNext {
            status: LeadStatus::Pending,
            next_attempt_at: Some(at),
            last_outcome,
            do_not_call: None,
            callback_at: None,
        }
    }

    pub fn finished(status: LeadStatus, last_outcome: impl Into<String>) -> Self {
        LeadNext {
            status,
            next_attempt_at: None,
            last_outcome: Some(last_outcome.into()),
            do_not_call: None,
            callback_at: None,
        }
    }
}

/// At most `max` counted attempts to one number in any rolling `period`.
pub type NumberCap = (chrono::Duration, u32);

/// The caller IDs an attempt may go out from, best first, and the caps each
/// is held to (counted attempts from that number, every campaign).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FromChoice {
    pub numbers: Vec<String>,
    pub caps: Vec<NumberCap>,
}

impl FromChoice {
    /// This one number (or none), with no cap.
    pub fn fixed(number: Option<&str>) -> Self {
        FromChoice {
            numbers: number.map(str::to_string).into_iter().collect(),
            caps: Vec::new(),
        }
    }
}

/// What `begin_attempt` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// The attempt row is committed: the request may leave.
    Attempt(Box<Attempt>),
    /// The lead is no longer ours (lease lost, or another system changed
    /// it), or its attempt number is already taken: nothing committed.
    NotHeld,
    /// One of the number's caps is reached, counting attempts committed by
    /// any campaign or daemon: nothing committed, the lead is still held.
    Capped,
    /// The number is on the do-not-call list: nothing committed, the lead
    /// is still held.
    DoNotCall,
    /// Every caller ID the attempt may use is at one of its caps until
    /// `until`: nothing committed, the lead is still held.
    CallerIdCapped { until: DateTime<Utc> },
}

impl Begun {
    /// The committed attempt, if any.
    pub fn into_attempt(self) -> Option<Attempt> {
        match self {
            Begun::Attempt(a) => Some(*a),
            Begun::NotHeld | Begun::Capped | Begun::DoNotCall | Begun::CallerIdCapped { .. } => {
                None
            }
        }
    }
}

/// What `settle` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The status was applied to the attempt (and the lead, when current).
    Applied,
    /// A duplicate or an older status: nothing changed.
    Stale,
}

/// A live or unsettled attempt, with what the poller needs.
#[derive(Debug, Clone)]
pub struct OpenAttempt {
    pub attempt: Attempt,
    pub lead: Lead,
}

/// `status` numbers for one campaign.
#[derive(Debug, Clone, Default)]
pub struct CampaignStats {
    pub leads: BTreeMap<String, i64>,
    pub outcomes: BTreeMap<String, i64>,
    /// Agent → outcome → attempts, for attempts that recorded their agent.
    pub by_agent: BTreeMap<String, BTreeMap<String, i64>>,
    pub in_flight: i64,
    /// Pending leads whose due time is NULL or unreadable: never dialled.
    pub unusable: i64,
}

/// A due lead as `look` read it.
#[derive(Debug, Clone)]
pub struct LookedLead {
    pub lead: Lead,
    /// The lead's status, due time, attempt count and last write as the
    /// database printed them when it was read: `reschedule_all` moves the
    /// lead only while they are unchanged.
    pub seen: String,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

    /// Keeps `campaigns` in step with the files: upserts these, marks others removed.
    async fn sync_campaigns(&self, campaigns: &[CampaignRow], now: DateTime<Utc>) -> Result<()>;

    /// Inserts leads in one transaction; an existing (campaign, phone), or
    /// one earlier in `leads`, counts as a duplicate.
    async fn insert_leads(
        &self,
        campaign_id: &str,
        leads: &[NewLead],
        now: DateTime<Utc>,
    ) -> Result<InsertCounts>;

    /// Claims due leads of one campaign in one statement, taking a lease and
    /// the attempt number. Respects the concurrency limits in `limits`.
    async fn claim(
        &self,
        limits: &ClaimLimits,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedLead>>;

    /// Up to `limit` of the campaign's pending leads due at `now`, in the
    /// claim's order, read without taking them: the rules' look at many
    /// leads at once (leads another system inserted outside their window,
    /// say). Nothing is held, so no limit counts them and another claim may
    /// take any of them meanwhile.
    async fn look(
        &self,
        campaign_id: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LookedLead>>;

    /// Moves leads `look` read and the rules turned away to their `next`
    /// (pending at a later instant, or a final status) in one statement,
    /// each only if it is still as it was read: a lead claimed, called or
    /// changed by another writer since is left as it is. Returns how many
    /// moved.
    async fn reschedule_all(
        &self,
        leads: &[(LookedLead, LeadNext)],
        now: DateTime<Utc>,
    ) -> Result<u64>;

    /// Earliest `next_attempt_at` of a pending lead of the campaign.
    async fn next_due(&self, campaign_id: &str) -> Result<Option<DateTime<Utc>>>;

    /// Hands a claimed lead back without an attempt: `pending` at a later
    /// instant, or a final status (`skipped` with its reason, `exhausted`).
    async fn release(&self, lead: &ClaimedLead, next: &LeadNext, now: DateTime<Utc>) -> Result<()>;

    /// `release` for many leads in one statement: the leads
    /// of a claim the rules turned away, such as the first look at leads
    /// another system inserted outside their window.
    async fn release_all(
        &self,
        leads: &[(ClaimedLead, LeadNext)],
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Commits the attempt row (`sending`) before the request leaves. Reuses
    /// the row of an attempt left `not_placed`. Sets the lead's lease to
    /// `lease_until` and its fallback due time to `unknown_due`.
    ///
    /// `caps` are the number's attempt caps (rolling period, most counted
    /// attempts in it). They are counted inside the transaction that commits
    /// the attempt, over every campaign, serialised per number across
    /// daemons, so two claims of one number cannot both pass a cap; a
    /// reached cap commits nothing (`Begun::Capped`). The do-not-call list
    /// is read in the same transaction: a number on it commits nothing
    /// (`Begun::DoNotCall`), however recently it was added.
    ///
    /// The attempt goes out from the first of `from.numbers` under its caps,
    /// counted in the same transaction and serialised across daemons; when
    /// every one is at a cap nothing is committed (`Begun::CallerIdCapped`).
    #[allow(clippy::too_many_arguments)]
    async fn begin_attempt(
        &self,
        lead: &ClaimedLead,
        provider: &str,
        from: &FromChoice,
        agent_id: Option<&str>,
        caps: &[NumberCap],
        lease_until: DateTime<Utc>,
        unknown_due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Begun>;

    /// The provider refused before placing: the attempt is `not_placed`, the
    /// lead `pending` at `next` (the same attempt is sent again then).
    async fn attempt_not_placed(
        &self,
        attempt: &Attempt,
        reason: &str,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The provider accepted: the attempt is `placed`, the lead's lease runs to `lease_until`.
    async fn attempt_placed(
        &self,
        attempt: &Attempt,
        provider_call_id: &str,
        provider_status: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The fate of a `sending` or `placed` attempt is unknown (the request
    /// timed out, the daemon that sent it died, the call outlived
    /// `max_call_duration`): the attempt becomes `unknown` (counted, still
    /// polled), and the lead moves to `lead_next` when it is as the daemon
    /// left it and this is its newest attempt. Returns whether the attempt changed.
    async fn attempt_unknown(
        &self,
        attempt_id: &str,
        error: &str,
        lead_next: &LeadNext,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Applies a provider's status to an attempt. A final status applies
    /// unless a real final status is already stored (a synthetic `unknown`
    /// never blocks one); a live status applies while the attempt is open
    /// and is not older, by the provider's own clock, than the stored one.
    /// When `lead_next` is given, the lead moves to it if it is as the daemon
    /// left it and this is its newest attempt.
    async fn settle(
        &self,
        attempt_id: &str,
        status: &CallStatus,
        lead_next: Option<&LeadNext>,
        now: DateTime<Utc>,
    ) -> Result<Settled>;

    /// Stops polling an `unknown` attempt whose fate never became known:
    /// it ends with outcome `unknown` (a real status arriving later still
    /// applies). The lead is not touched: it was moved on when the attempt
    /// became `unknown`.
    async fn give_up(&self, attempt_id: &str) -> Result<()>;

    /// Finds an attempt by our id or the provider's call id.
    async fn find_attempt(
        &self,
        provider: &str,
        attempt_id: Option<&str>,
        provider_call_id: Option<&str>,
    ) -> Result<Option<OpenAttempt>>;

    /// Attempts of a provider whose fate is still open (`sending`, `placed`,
    /// `unknown`): live ones first, oldest request first.
    async fn open_attempts(&self, provider: &str, limit: i64) -> Result<Vec<OpenAttempt>>;

    /// Takes the polling of these attempts until `until_us` (clock
    /// microseconds): returns the ids no other daemon holds at `now_us`, now
    /// held by the caller. Each open attempt is polled by one daemon at a time.
    async fn take_polls(&self, ids: &[String], now_us: i64, until_us: i64) -> Result<Vec<String>>;

    /// What the rules need to know of each of `phones`, in two statements
    /// for the whole set: whether it is on the do-not-call list, and its
    /// counted attempts (every campaign) requested at or after `since`,
    /// oldest first. A phone with neither is absent from the map.
    async fn number_facts(
        &self,
        phones: &[&str],
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, NumberFacts>>;

    /// Counted attempts (every campaign) that went out from each of
    /// `numbers` (caller IDs) after `since`: what `begin_attempt` counts
    /// against `[caller_id]` caps.
    async fn caller_id_use(
        &self,
        numbers: &[String],
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, Vec<DateTime<Utc>>>>;

    async fn find_lead(&self, campaign_id: &str, phone: &str) -> Result<Option<Lead>>;

    /// `dialer callback`: the lead is `pending` at `due` with one more
    /// callback (an attempt beyond `max_attempts`) asked for `asked`. Written
    /// as another system would (not the daemon's own columns), so a call of
    /// the lead still live keeps the change. Returns whether a lead was found.
    async fn schedule_callback(
        &self,
        lead_id: i64,
        asked: DateTime<Utc>,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    async fn add_dnc(&self, phones: &[String], reason: &str, now: DateTime<Utc>) -> Result<u64>;

    /// The database's plan for each query on the dispatch hot path (the
    /// claim of `campaign_id` as its leads stand, due times, per-number
    /// counts, DNC, status lookups, a page of `export`, the insert of an attempt), as text, by name, the claim first. On PostgreSQL sequential scans are disabled for the look,
    /// so a plan that still scans a table has no index to use; the test of
    /// the plans fails on a scan of `leads` or `call_attempts`, and on a
    /// sort in the claim.
    async fn hot_query_plans(
        &self,
        campaign_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, String)>>;

    async fn campaign_stats(&self, campaign_id: &str) -> Result<CampaignStats>;

    /// Ids of campaigns known to the database (including removed ones).
    async fn campaign_ids(&self) -> Result<Vec<String>>;

    /// Takes cells from the rate limit `key`, shared by every daemon on this
    /// database, in one atomic statement; refused when they would exceed it.
    async fn take_rate(&self, key: &str, take: &RateTake) -> Result<RateTaken>;

    /// Rows the daemon cannot use: pending leads without a due time it can
    /// read, and leads of a campaign the `campaigns` table does not know.
    async fn unusable_leads(&self, limit: i64) -> Result<Vec<UnusableLead>>;

    /// Leads by campaign and status, and attempts whose call may be live
    /// (`sending`, `placed`) by campaign and provider: the gauges of `/metrics`.
    async fn gauges(&self) -> Result<Gauges>;

    /// Records that placing on `pause.provider` is paused (replacing an
    /// earlier pause of it), so that other processes see it.
    async fn set_provider_pause(&self, pause: &ProviderPause) -> Result<()>;

    /// The provider answers again: its pause row is removed.
    async fn clear_provider_pause(&self, provider: &str) -> Result<()>;

    /// Every recorded pause, including those that have run out.
    async fn provider_pauses(&self) -> Result<Vec<ProviderPause>>;

    /// Counted attempts (every state but `not_placed`) requested at or after
    /// `since`, per campaign and minute: one row per campaign and minute
    /// that has any, so an hour is at most sixty rows a campaign.
    async fn attempts_per_minute(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>>;

    /// Attempts whose call may be live (`sending`, `placed`), per provider,
    /// over every campaign and daemon.
    async fn live_calls_by_provider(&self) -> Result<BTreeMap<String, i64>>;

    /// Replaces the rows of `outbound_routes` with these: from now on, each
    /// change a route wants writes an event into `outbox` in its own
    /// transaction (database triggers).
    async fn sync_outbound_routes(&self, routes: &[OutboundRoute]) -> Result<()>;

    /// Leases up to `limit` events of `webhook` for delivery until
    /// `lease_until`: due ones (`next_try_at` passed, no live lease) that
    /// are the oldest undelivered event of their lead, so a lead's events
    /// leave one at a time and in order. Oldest first.
    async fn take_outbox(
        &self,
        webhook: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>>;

    /// Records what delivering events did, in one transaction.
    async fn outbox_results(&self, results: &[OutboxResult], now: DateTime<Utc>) -> Result<()>;

    /// Per webhook: events neither delivered nor given up, and the oldest one's `created_at`.
    async fn outbox_backlog(&self) -> Result<BTreeMap<String, (i64, Option<DateTime<Utc>>)>>;

    /// Deletes events delivered before `before`; returns how many.
    async fn outbox_purge(&self, before: DateTime<Utc>) -> Result<u64>;

    /// One page of `dialer export`: the campaign's leads with an id above
    /// `after_id`, by id, at most `limit`, each with its attempts (two
    /// statements). With `since`, only leads changed at or after it: their
    /// `updated_at`, or an attempt requested or ended then.
    async fn export_page(
        &self,
        campaign_id: &str,
        since: Option<DateTime<Utc>>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ExportLead>>;
}

/// A lead as `dialer export` writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportLead {
    pub lead: Lead,
    pub updated_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub attempts: Vec<ExportAttempt>,
}

/// An attempt as `dialer export` writes it (every column but `transcript`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportAttempt {
    pub attempt_id: String,
    pub attempt: i64,
    pub provider: String,
    pub provider_call_id: Option<String>,
    pub from_number: Option<String>,
    pub state: String,
    pub outcome: Option<String>,
    pub provider_status: Option<String>,
    pub hangup_cause: Option<String>,
    pub error: Option<String>,
    #[serde(serialize_with = "crate::domain::ser_time_opt")]
    pub requested_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::ser_time_opt")]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::ser_time_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    pub summary: Option<String>,
    pub recording_url: Option<String>,
}

/// A row of `outbound_routes`: which events one outbound webhook wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRoute {
    pub webhook: String,
    /// `attempt.ended`, `lead.final`, `lead.skipped`.
    pub events: Vec<String>,
    /// `None`: every campaign.
    pub campaigns: Option<Vec<String>>,
}

/// An event of `outbox`, leased for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Order of events (per lead, the order of the changes they report).
    pub seq: i64,
    pub event_id: String,
    pub event: String,
    pub campaign_id: String,
    pub lead_id: i64,
    pub data: Value,
    pub created_at: DateTime<Utc>,
    /// Deliveries tried before this one.
    pub tries: i64,
}

/// What one delivery of an `outbox` event did.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxResult {
    pub seq: i64,
    pub fate: OutboxFate,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutboxFate {
    /// The receiver answered 2xx.
    Delivered,
    /// Failed; tried again at `at`.
    Retry { error: String, at: DateTime<Utc> },
    /// Failed, and older than the webhook's `give_up_after`: never sent again.
    GaveUp { error: String },
}

/// One number's facts for the rules, as `Store::number_facts` reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberFacts {
    pub dnc: bool,
    pub recent_attempts: Vec<DateTime<Utc>>,
}

/// What `Store::gauges` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// (campaign, status) → leads.
    pub leads: BTreeMap<(String, String), i64>,
    /// (campaign, provider) → attempts `sending` or `placed`.
    pub live: BTreeMap<(String, String), i64>,
}

/// A row of `provider_pauses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPause {
    pub provider: String,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub since: DateTime<Utc>,
}

impl ProviderPause {
    /// In force at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.until > now
    }
}

/// Attempts of one campaign requested in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    pub campaign_id: String,
    /// The minute's first instant.
    pub minute: DateTime<Utc>,
    pub attempts: i64,
}

/// A lead row the daemon cannot dial, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableLead {
    pub id: i64,
    pub campaign_id: String,
    pub why: Unusable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unusable {
    /// `status = 'pending'` with `next_attempt_at` NULL or not a time.
    NoDueTime,
    /// `campaign_id` names no campaign the daemon has ever known.
    UnknownCampaign,
}

/// Opens the backend the URL names.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, max_connections).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    }
}

pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(
    table: &'static str,
    s: &str,
) -> Result<T> {
    s.parse().map_err(|why| StoreError::Corrupt { table, why })
}

pub(crate) fn outcome_opt(s: Option<String>) -> Result<Option<Outcome>> {
    s.map(|s| parse_enum("call_attempts", &s)).transpose()
}
