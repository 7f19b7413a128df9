//! The database: the integration point with other systems (SPEC section 4).
//! Only this module writes SQL. Two backends with one shape: `sqlite.rs` and
//! `postgres.rs`, each with its queries beside it.

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

/// Where a lead goes after an attempt's fate is known.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadNext {
    pub status: LeadStatus,
    /// For `pending`: when it is due; ignored for final statuses.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
}

impl LeadNext {
    pub fn pending(at: DateTime<Utc>, last_outcome: Option<String>) -> Self {
        LeadNext {
            status: LeadStatus::Pending,
            next_attempt_at: Some(at),
            last_outcome,
        }
    }

    pub fn finished(status: LeadStatus, last_outcome: impl Into<String>) -> Self {
        LeadNext {
            status,
            next_attempt_at: None,
            last_outcome: Some(last_outcome.into()),
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
    pub in_flight: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

    /// Keeps `campaigns` in step with the files: upserts these, marks others removed.
    async fn sync_campaigns(&self, campaigns: &[CampaignRow], now: DateTime<Utc>) -> Result<()>;

    /// Inserts leads; an existing (campaign, phone) counts as a duplicate.
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

    /// Earliest `next_attempt_at` of a pending lead of the campaign.
    async fn next_due(&self, campaign_id: &str) -> Result<Option<DateTime<Utc>>>;

    /// Hands a claimed lead back without an attempt: `pending` at a later
    /// instant, or a final status (`skipped` with its reason, `exhausted`).
    async fn release(&self, lead: &ClaimedLead, next: &LeadNext, now: DateTime<Utc>) -> Result<()>;

    /// Commits the attempt row (`sending`) before the request leaves. Reuses
    /// the row of an attempt left `not_placed`. Sets the lead's lease to
    /// `lease_until` and its fallback due time to `unknown_due`.
    #[allow(clippy::too_many_arguments)]
    async fn begin_attempt(
        &self,
        lead: &ClaimedLead,
        provider: &str,
        from_number: Option<&str>,
        lease_until: DateTime<Utc>,
        unknown_due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Attempt>>;

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

    /// The request's fate is unknown: the attempt is `unknown` (counted), the
    /// lead `pending` at `next` (the retry delay for `unknown`).
    async fn attempt_unknown(
        &self,
        attempt: &Attempt,
        error: &str,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Applies a status to an attempt unless it is a duplicate or older than
    /// what is stored; when `lead_next` is given and this attempt is still the
    /// lead's newest, moves the lead too (unless another system ended it).
    async fn settle(
        &self,
        attempt_id: &str,
        status: &CallStatus,
        state: AttemptState,
        lead_next: Option<&LeadNext>,
        now: DateTime<Utc>,
    ) -> Result<Settled>;

    /// Finds an attempt by our id or the provider's call id.
    async fn find_attempt(
        &self,
        provider: &str,
        attempt_id: Option<&str>,
        provider_call_id: Option<&str>,
    ) -> Result<Option<OpenAttempt>>;

    /// Attempts of a provider whose fate is still open (`sending`, `placed`,
    /// `unknown`), oldest status first.
    async fn open_attempts(&self, provider: &str, limit: i64) -> Result<Vec<OpenAttempt>>;

    /// Counted attempts to a number across all campaigns since `since`.
    async fn recent_attempts(&self, phone: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>>;

    async fn find_lead(&self, campaign_id: &str, phone: &str) -> Result<Option<Lead>>;

    async fn add_dnc(&self, phones: &[String], reason: &str, now: DateTime<Utc>) -> Result<u64>;
    async fn is_dnc(&self, phone: &str) -> Result<bool>;

    async fn campaign_stats(&self, campaign_id: &str) -> Result<CampaignStats>;

    /// Ids of campaigns known to the database (including removed ones).
    async fn campaign_ids(&self) -> Result<Vec<String>>;
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
