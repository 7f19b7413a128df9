//! PostgreSQL backend (for scale-out: several daemons on one database). The
//! claim takes a transaction-scoped advisory lock per provider, so counting
//! the calls in progress and taking new leads is atomic across daemons, and
//! selects with `FOR UPDATE SKIP LOCKED`.

use super::*;
use chrono::SubsecRound;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

pub struct PgStore {
    pool: PgPool,
}

const LEAD_COLS: &str = "l.id, l.campaign_id, l.phone, l.name, l.timezone, l.variables, l.priority, \
    l.consent_at, l.status, l.attempts, l.next_attempt_at, l.last_attempt_at, l.last_outcome";

const ATTEMPT_COLS: &str = "a.id AS a_id, a.lead_id AS a_lead_id, a.campaign_id AS a_campaign_id, \
    a.attempt AS a_attempt, a.provider AS a_provider, a.provider_call_id AS a_provider_call_id, \
    a.from_number AS a_from_number, a.to_number AS a_to_number, a.state AS a_state, \
    a.provider_status AS a_provider_status, a.status_at AS a_status_at, a.outcome AS a_outcome, \
    a.error AS a_error, a.requested_at AS a_requested_at";

/// Counted attempts of the lead `l` (SPEC: every state but `not_placed`).
const COUNTED: &str =
    "(SELECT count(*) FROM call_attempts c WHERE c.lead_id = leads.id AND c.state <> 'not_placed')";

/// Stored times have whole seconds, like the SQLite backend's.
fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

fn opt_ts(row: &PgRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get(col)?)
}

fn lead_from_row(row: &PgRow) -> Result<Lead> {
    let vars: Option<Value> = row.try_get("variables")?;
    let variables = match vars {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            tracing::warn!(lead_id = row.try_get::<i64, _>("id").unwrap_or(0), "lead variables are not a JSON object; ignored");
            Map::new()
        }
    };
    let status: String = row.try_get("status")?;
    Ok(Lead {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        phone: row.try_get("phone")?,
        name: row.try_get("name")?,
        timezone: row.try_get("timezone")?,
        variables,
        priority: row.try_get::<i32, _>("priority")? as i64,
        consent_at: opt_ts(row, "consent_at")?,
        status: parse_enum("leads", &status)?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: opt_ts(row, "next_attempt_at")?,
        last_attempt_at: opt_ts(row, "last_attempt_at")?,
        last_outcome: row.try_get("last_outcome")?,
    })
}

fn attempt_from_row(row: &PgRow) -> Result<Attempt> {
    let state: String = row.try_get("a_state")?;
    let requested: DateTime<Utc> = row.try_get("a_requested_at")?;
    Ok(Attempt {
        id: row.try_get("a_id")?,
        lead_id: row.try_get("a_lead_id")?,
        campaign_id: row.try_get("a_campaign_id")?,
        attempt: row.try_get("a_attempt")?,
        provider: row.try_get("a_provider")?,
        provider_call_id: row.try_get("a_provider_call_id")?,
        from_number: row.try_get("a_from_number")?,
        to_number: row.try_get("a_to_number")?,
        state: parse_enum("call_attempts", &state)?,
        provider_status: row.try_get("a_provider_status")?,
        status_at: opt_ts(row, "a_status_at")?,
        outcome: outcome_opt(row.try_get("a_outcome")?)?,
        error: row.try_get("a_error")?,
        requested_at: requested,
    })
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    async fn sync_campaigns(&self, campaigns: &[CampaignRow], now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = ts(now);
        // First statement writes, so the transaction holds the write lock.
        sqlx::query("UPDATE campaigns SET removed_at = $1, updated_at = $1 WHERE removed_at IS NULL")
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        for c in campaigns {
            sqlx::query(
                "INSERT INTO campaigns (id, provider, paused, config_hash, created_at, updated_at, removed_at)
                 VALUES ($1, $2, $3, $4, $5, $5, NULL)
                 ON CONFLICT (id) DO UPDATE SET
                   provider = excluded.provider, paused = excluded.paused,
                   config_hash = excluded.config_hash, removed_at = NULL,
                   updated_at = CASE WHEN campaigns.config_hash = excluded.config_hash
                                      AND campaigns.paused = excluded.paused
                                      AND campaigns.provider = excluded.provider
                                      AND campaigns.removed_at IS NULL
                                 THEN campaigns.updated_at ELSE excluded.updated_at END",
            )
            .bind(&c.id)
            .bind(&c.provider)
            .bind(c.paused)
            .bind(&c.config_hash)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_leads(
        &self,
        campaign_id: &str,
        leads: &[NewLead],
        now: DateTime<Utc>,
    ) -> Result<InsertCounts> {
        let mut counts = InsertCounts::default();
        let now = ts(now);
        for chunk in leads.chunks(500) {
            let mut tx = self.pool.begin().await?;
            for lead in chunk {
                let done = sqlx::query(
                    "INSERT INTO leads (campaign_id, phone, name, timezone, variables, status, next_attempt_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)
                     ON CONFLICT (campaign_id, phone) DO NOTHING",
                )
                .bind(campaign_id)
                .bind(&lead.phone)
                .bind(&lead.name)
                .bind(&lead.timezone)
                .bind(Value::Object(lead.variables.clone()))
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    counts.imported += 1;
                } else {
                    counts.duplicates += 1;
                }
            }
            tx.commit().await?;
        }
        Ok(counts)
    }

    async fn claim(
        &self,
        limits: &ClaimLimits,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedLead>> {
        let mut tx = self.pool.begin().await?;
        // Serialises claims per provider across daemons, so the counts of
        // leads in progress below cannot be read stale by two claimers.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('dialer.claim:' || $1))")
            .bind(&limits.provider)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "WITH picked AS (
               SELECT id FROM leads
                WHERE campaign_id = $4 AND next_attempt_at <= $3
                  AND (status = 'pending' OR (status = 'in_progress' AND lease_expires_at <= $3))
                ORDER BY priority DESC, next_attempt_at, id
                LIMIT greatest(0, least($5,
                  $6 - (SELECT count(*) FROM leads WHERE campaign_id = $4 AND status = 'in_progress' AND lease_expires_at > $3),
                  $7 - (SELECT count(*) FROM leads p JOIN campaigns c ON c.id = p.campaign_id
                         WHERE c.provider = $8 AND p.status = 'in_progress' AND p.lease_expires_at > $3)))
                FOR UPDATE SKIP LOCKED
             )
             UPDATE leads SET status = 'in_progress', lease_owner = $1, lease_expires_at = $2, updated_at = $3
               FROM picked WHERE leads.id = picked.id
             RETURNING {}, {COUNTED} + 1 AS next_attempt",
            LEAD_COLS.replace("l.", "leads.")
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(ts(lease_until))
            .bind(ts(now))
            .bind(&limits.campaign_id)
            .bind(limits.batch as i64)
            .bind(limits.max_concurrent as i64)
            .bind(limits.provider_max_concurrent as i64)
            .bind(&limits.provider)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let lead = lead_from_row(&row)?;
            let attempt: i64 = row.try_get("next_attempt")?;
            out.push(ClaimedLead {
                lead,
                attempt: attempt as i32,
                lease_owner: owner.to_string(),
                lease_expires_at: lease_until,
            });
        }
        out.sort_by(|a, b| {
            b.lead
                .priority
                .cmp(&a.lead.priority)
                .then(a.lead.next_attempt_at.cmp(&b.lead.next_attempt_at))
        });
        Ok(out)
    }

    async fn next_due(&self, campaign_id: &str) -> Result<Option<DateTime<Utc>>> {
        let s: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT min(next_attempt_at) FROM leads WHERE campaign_id = $1 AND status = 'pending'",
        )
        .bind(campaign_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(s)
    }

    async fn release(&self, lead: &ClaimedLead, next: &LeadNext, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE leads SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at),
                    last_outcome = COALESCE($3, last_outcome),
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = $4
              WHERE id = $5 AND status = 'in_progress' AND lease_owner = $6",
        )
        .bind(next.status.as_str())
        .bind(next.next_attempt_at.map(ts))
        .bind(&next.last_outcome)
        .bind(ts(now))
        .bind(lead.lead.id)
        .bind(&lead.lease_owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn begin_attempt(
        &self,
        lead: &ClaimedLead,
        provider: &str,
        from_number: Option<&str>,
        lease_until: DateTime<Utc>,
        unknown_due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Attempt>> {
        let mut tx = self.pool.begin().await?;
        let now_s = ts(now);
        let held = sqlx::query(
            "UPDATE leads SET lease_expires_at = $1, next_attempt_at = $2, last_attempt_at = $3, updated_at = $3
              WHERE id = $4 AND status = 'in_progress' AND lease_owner = $5",
        )
        .bind(ts(lease_until))
        .bind(ts(unknown_due))
        .bind(&now_s)
        .bind(lead.lead.id)
        .bind(&lead.lease_owner)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 0 {
            return Ok(None); // lease lost, or another system stopped the lead
        }
        let reused: Option<String> = sqlx::query_scalar(
            "UPDATE call_attempts SET state = 'sending', requested_at = $1, from_number = $2,
                    provider = $3, error = NULL
              WHERE lead_id = $4 AND attempt = $5 AND state = 'not_placed'
             RETURNING id",
        )
        .bind(&now_s)
        .bind(from_number)
        .bind(provider)
        .bind(lead.lead.id)
        .bind(lead.attempt)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match reused {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                let inserted = sqlx::query(
                    "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, from_number, to_number, state, requested_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'sending', $8)
                     ON CONFLICT (lead_id, attempt) DO NOTHING",
                )
                .bind(&id)
                .bind(lead.lead.id)
                .bind(&lead.lead.campaign_id)
                .bind(lead.attempt)
                .bind(provider)
                .bind(from_number)
                .bind(&lead.lead.phone)
                .bind(&now_s)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    // That attempt number exists and counts: never send it twice.
                    return Ok(None);
                }
                id
            }
        };
        sqlx::query(&format!("UPDATE leads SET attempts = {COUNTED} WHERE id = $1"))
            .bind(lead.lead.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Attempt {
            id,
            lead_id: lead.lead.id,
            campaign_id: lead.lead.campaign_id.clone(),
            attempt: lead.attempt,
            provider: provider.to_string(),
            provider_call_id: None,
            from_number: from_number.map(str::to_string),
            to_number: lead.lead.phone.clone(),
            state: AttemptState::Sending,
            provider_status: None,
            status_at: None,
            outcome: None,
            error: None,
            requested_at: now,
        }))
    }

    async fn attempt_not_placed(
        &self,
        attempt: &Attempt,
        reason: &str,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE call_attempts SET state = 'not_placed', error = $1 WHERE id = $2 AND state = 'sending'")
            .bind(reason)
            .bind(&attempt.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "UPDATE leads SET status = 'pending', next_attempt_at = $1, lease_owner = NULL,
                    lease_expires_at = NULL, attempts = {COUNTED}, updated_at = $2
              WHERE id = $3 AND status = 'in_progress'"
        ))
        .bind(ts(next))
        .bind(ts(now))
        .bind(attempt.lead_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn attempt_placed(
        &self,
        attempt: &Attempt,
        provider_call_id: &str,
        provider_status: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // A webhook may have settled the attempt before the answer came back:
        // keep its state, only record the call id.
        sqlx::query(
            "UPDATE call_attempts SET
                    provider_call_id = COALESCE(provider_call_id, $1),
                    provider_status = CASE WHEN state = 'sending' THEN $2 ELSE provider_status END,
                    status_at = CASE WHEN state = 'sending' THEN $3 ELSE status_at END,
                    state = CASE WHEN state = 'sending' THEN 'placed' ELSE state END
              WHERE id = $4",
        )
        .bind(provider_call_id)
        .bind(provider_status)
        .bind(ts(now))
        .bind(&attempt.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE leads SET lease_expires_at = $1, next_attempt_at = $1, updated_at = $2
              WHERE id = $3 AND status = 'in_progress'",
        )
        .bind(ts(lease_until))
        .bind(ts(now))
        .bind(attempt.lead_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn attempt_unknown(
        &self,
        attempt: &Attempt,
        error: &str,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE call_attempts SET state = 'unknown', outcome = 'unknown', error = $1
              WHERE id = $2 AND state = 'sending'",
        )
        .bind(error)
        .bind(&attempt.id)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 1 {
            sqlx::query(&format!(
                "UPDATE leads SET status = 'pending', next_attempt_at = $1, last_outcome = 'unknown',
                        lease_owner = NULL, lease_expires_at = NULL, attempts = {COUNTED}, updated_at = $2
                  WHERE id = $3 AND status = 'in_progress'"
            ))
            .bind(ts(next))
            .bind(ts(now))
            .bind(attempt.lead_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn settle(
        &self,
        attempt_id: &str,
        status: &CallStatus,
        state: AttemptState,
        lead_next: Option<&LeadNext>,
        now: DateTime<Utc>,
    ) -> Result<Settled> {
        let mut tx = self.pool.begin().await?;
        let status_at = ts(status.status_at.unwrap_or(now));
        let row = sqlx::query(
            "UPDATE call_attempts SET
                    state = $1, provider_status = $2, status_at = $3,
                    outcome = COALESCE($4, CASE WHEN state = 'unknown' THEN outcome END),
                    provider_call_id = COALESCE(provider_call_id, $5),
                    answered_at = COALESCE($6, answered_at), ended_at = COALESCE($7, ended_at),
                    duration_seconds = COALESCE($8, duration_seconds),
                    hangup_cause = COALESCE($9, hangup_cause), error = COALESCE($10, error),
                    summary = COALESCE($11, summary), transcript = COALESCE($12, transcript),
                    recording_url = COALESCE($13, recording_url)
              WHERE id = $14
                AND (state IN ('sending', 'placed', 'unknown') OR (state = 'ended' AND outcome = 'unknown' AND $4 IS NOT NULL))
                AND (status_at IS NULL OR status_at <= $3)
                AND NOT (state = $1 AND provider_status IS NOT DISTINCT FROM $2 AND outcome IS NOT DISTINCT FROM $4)
             RETURNING lead_id, attempt",
        )
        .bind(state.as_str())
        .bind(&status.provider_status)
        .bind(&status_at)
        .bind(status.outcome.map(|o| o.as_str()))
        .bind(&status.provider_call_id)
        .bind(status.answered_at.map(ts))
        .bind(status.ended_at.map(ts))
        .bind(status.duration_seconds)
        .bind(&status.hangup_cause)
        .bind(&status.error)
        .bind(&status.summary)
        .bind(status.transcript.clone())
        .bind(&status.recording_url)
        .bind(attempt_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Settled::Stale);
        };
        if let Some(next) = lead_next {
            let lead_id: i64 = row.try_get("lead_id")?;
            let attempt: i32 = row.try_get("attempt")?;
            sqlx::query(&format!(
                "UPDATE leads SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at),
                        last_outcome = COALESCE($3, last_outcome), lease_owner = NULL,
                        lease_expires_at = NULL, attempts = {COUNTED}, updated_at = $4
                  WHERE id = $5
                    AND (status IN ('in_progress', 'pending') OR (status = 'exhausted' AND last_outcome = 'unknown'))
                    AND $6 = (SELECT max(attempt) FROM call_attempts c WHERE c.lead_id = leads.id)"
            ))
            .bind(next.status.as_str())
            .bind(next.next_attempt_at.map(ts))
            .bind(&next.last_outcome)
            .bind(ts(now))
            .bind(lead_id)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Settled::Applied)
    }

    async fn find_attempt(
        &self,
        provider: &str,
        attempt_id: Option<&str>,
        provider_call_id: Option<&str>,
    ) -> Result<Option<OpenAttempt>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLS}, {LEAD_COLS} FROM call_attempts a JOIN leads l ON l.id = a.lead_id
              WHERE a.provider = $1 AND (a.id = $2 OR a.provider_call_id = $3) LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(provider)
            .bind(attempt_id)
            .bind(provider_call_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(OpenAttempt {
                attempt: attempt_from_row(&r)?,
                lead: lead_from_row(&r)?,
            })
        })
        .transpose()
    }

    async fn open_attempts(&self, provider: &str, limit: i64) -> Result<Vec<OpenAttempt>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLS}, {LEAD_COLS} FROM call_attempts a JOIN leads l ON l.id = a.lead_id
              WHERE a.provider = $1 AND a.state IN ('sending', 'placed', 'unknown')
              ORDER BY a.status_at LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(provider)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OpenAttempt {
                    attempt: attempt_from_row(r)?,
                    lead: lead_from_row(r)?,
                })
            })
            .collect()
    }

    async fn recent_attempts(&self, phone: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
        let rows: Vec<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT requested_at FROM call_attempts
              WHERE to_number = $1 AND requested_at >= $2 AND state <> 'not_placed'
              ORDER BY requested_at",
        )
        .bind(phone)
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn find_lead(&self, campaign_id: &str, phone: &str) -> Result<Option<Lead>> {
        let sql = format!("SELECT {LEAD_COLS} FROM leads l WHERE l.campaign_id = $1 AND l.phone = $2");
        let row = sqlx::query(&sql)
            .bind(campaign_id)
            .bind(phone)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(lead_from_row).transpose()
    }

    async fn add_dnc(&self, phones: &[String], reason: &str, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for phone in phones {
            added += sqlx::query(
                "INSERT INTO dnc (phone, reason, added_at) VALUES ($1, $2, $3) ON CONFLICT (phone) DO NOTHING",
            )
            .bind(phone)
            .bind(reason)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn is_dnc(&self, phone: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dnc WHERE phone = $1")
            .bind(phone)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn campaign_stats(&self, campaign_id: &str) -> Result<CampaignStats> {
        let mut stats = CampaignStats::default();
        let rows = sqlx::query("SELECT status, count(*) AS n FROM leads WHERE campaign_id = $1 GROUP BY status")
            .bind(campaign_id)
            .fetch_all(&self.pool)
            .await?;
        for r in rows {
            stats.leads.insert(r.try_get("status")?, r.try_get("n")?);
        }
        let rows = sqlx::query(
            "SELECT outcome, count(*) AS n FROM call_attempts
              WHERE campaign_id = $1 AND outcome IS NOT NULL GROUP BY outcome",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            stats.outcomes.insert(r.try_get("outcome")?, r.try_get("n")?);
        }
        stats.in_flight = sqlx::query_scalar(
            "SELECT count(*) FROM call_attempts WHERE campaign_id = $1 AND state IN ('sending', 'placed')",
        )
        .bind(campaign_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(stats)
    }

    async fn campaign_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM campaigns ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }
}
