//! What the two backends share: the columns read, the row mapping, and every
//! query and transaction but the claim. Written once as a macro that each
//! backend expands inside its own module, where these dialect items resolve:
//!
//! - `ts(t)`: a time to bind for comparison or record (whole seconds, rounded down);
//! - `due(t)`: a due time or lease end to bind (rounded *up*: never early);
//! - `get_ts(row, col)`, `get_json(row, col)`: read a time or a JSON value;
//! - `json(v)`: a JSON value to bind;
//! - `NO_DUE`: SQL that is true for a lead whose `next_attempt_at` the
//!   claim cannot compare (NULL, or on SQLite text in no time format);
//! - `CLAIM_LOCK`, `claim_sql(levels)`: the claim, the one query written per
//!   dialect (SQLite's single writer vs PostgreSQL's advisory lock and
//!   `FOR UPDATE SKIP LOCKED`);
//! - `NUMBER_LOCK`: what serialises `begin_attempt` per phone number: the
//!   numbers are the rows of `{values}` (one column, `NULL` for none), so
//!   their attempts cannot be counted stale by another daemon;
//! - `CALLER_ID_LOCK`: likewise for the choice of a capped caller ID;
//! - `LOCK_LEAD`: what locks the lead row `begin_attempt` reads to insert
//!   its attempt (nothing on SQLite, whose write lock the insert holds);
//! - `LEAD_BY_ID`: what makes the attempts' insert read each lead by its id
//!   alone, row by row of its set (SQLite's `NOT INDEXED`: with few leads
//!   in progress its planner would rather walk them all for each row);
//! - `BEGIN_WRITE`: a transaction that holds the write lock before it reads
//!   (SQLite's `BEGIN IMMEDIATE`; a plain `BEGIN` on PostgreSQL);
//! - `GREATEST`: the larger of two values (`max` vs `greatest`);
//! - `REQUEST_MINUTE`: an attempt's `requested_at` cut to its minute, read
//!   back with `get_ts`;
//! - `insert_leads_on(tx, campaign, leads, now)`: inserts new leads, skipping
//!   numbers the campaign holds, and returns how many were inserted;
//! - `release_all_on(conn, leads, now)`: `release` of many leads in one
//!   statement;
//! - `look_sql(levels)`, `SEEN`, `reschedule_all_on(conn, leads, now)`: the
//!   claim's walk read without taking, the columns a lead read so is
//!   compared by, and the move of many such leads in one statement;
//! - `MIGRATOR`: the dialect's migrations.
//!
//! Both dialects take `$1`-style placeholders, so the SQL text is the same.
//! (A generic function over `sqlx::Database` would need a bound for every
//! type bound and decoded; a macro expanded per backend keeps each query
//! checked against its concrete driver.)

/// Lead columns, read the same way from both backends.
pub(super) const LEAD_COLS: &str =
    "l.id, l.campaign_id, l.phone, l.name, l.timezone, l.variables, CAST(l.priority AS BIGINT) AS priority, \
    l.consent_at, l.status, l.attempts, l.next_attempt_at, l.last_attempt_at, l.last_outcome, \
    l.callbacks, l.callback_at";

pub(super) const ATTEMPT_COLS: &str =
    "a.id AS a_id, a.lead_id AS a_lead_id, a.campaign_id AS a_campaign_id, \
    a.attempt AS a_attempt, a.provider AS a_provider, a.provider_call_id AS a_provider_call_id, \
    a.from_number AS a_from_number, a.to_number AS a_to_number, a.state AS a_state, \
    a.provider_status AS a_provider_status, a.status_at AS a_status_at, a.outcome AS a_outcome, \
    a.error AS a_error, a.requested_at AS a_requested_at";

/// Counted attempts of the lead (SPEC: every state but `not_placed`).
pub(super) const COUNTED: &str =
    "(SELECT count(*) FROM call_attempts c WHERE c.lead_id = leads.id AND c.state <> 'not_placed')";

/// The lead is as the daemon last left it: no other system has changed its
/// status or due time since.
pub(super) const AS_LEFT: &str = "leads.status = leads.daemon_status \
    AND leads.next_attempt_at IS NOT DISTINCT FROM leads.daemon_next_attempt_at";

/// A lead with a `sending` or `placed` attempt: its call may be live, so it
/// is never claimed, whatever another system did to its status.
pub(super) const HAS_OPEN_CALL: &str = "EXISTS (SELECT 1 FROM call_attempts o \
    WHERE o.lead_id = leads.id AND o.state IN ('sending', 'placed'))";

/// Most priority levels a claim walks one by one; lower ones share one walk.
pub(super) const CLAIM_LEVELS: usize = 16;

/// The priority levels of a campaign's pending leads that have a lead due
/// at `$2`, highest first (at most `CLAIM_LEVELS + 1`): one index seek per
/// level, so a level whose leads are all due later costs the claim nothing.
pub(super) const DUE_PRIORITIES_SQL: &str = "WITH RECURSIVE pr(p) AS (
       SELECT (SELECT max(priority) FROM leads WHERE campaign_id = $1 AND status = 'pending')
       UNION ALL
       SELECT (SELECT max(priority) FROM leads
                WHERE campaign_id = $1 AND status = 'pending' AND priority < pr.p)
         FROM pr WHERE pr.p IS NOT NULL
     )
     SELECT CAST(p AS BIGINT) FROM pr
      WHERE p IS NOT NULL AND EXISTS (SELECT 1 FROM leads
        WHERE campaign_id = $1 AND status = 'pending' AND priority = pr.p AND next_attempt_at <= $2)
      LIMIT 17";

/// The claim's conditions on `priority` for its pending leads: one level
/// each (an index range already in the claim's order), the rest together.
pub(super) fn priority_levels(due: &[i64]) -> Vec<String> {
    let mut levels: Vec<String> = due
        .iter()
        .take(CLAIM_LEVELS)
        .map(|p| format!("priority = {p}"))
        .collect();
    if due.len() > CLAIM_LEVELS {
        levels.push(format!("priority < {}", due[CLAIM_LEVELS - 1]));
    }
    levels
}

/// The hot path's read queries, named so that `hot_query_plans` explains
/// exactly the text the store runs.
pub(super) const NEXT_DUE_SQL: &str =
    "SELECT min(next_attempt_at) AS t FROM leads WHERE campaign_id = $1 AND status = 'pending'";
/// Whether a number is on the do-not-call list (0 or 1).
pub(super) const DNC_ONE_SQL: &str = "SELECT count(*) FROM dnc WHERE phone = $1";
pub(super) const NUMBER_ATTEMPTS_SQL: &str = "SELECT count(*) FROM call_attempts
      WHERE to_number = $1 AND state <> 'not_placed' AND requested_at > $2";

/// Counted attempts that went out from `n` caller IDs (`$2`...) after `$1`.
pub(super) fn caller_id_use_sql(n: usize) -> String {
    format!(
        "SELECT from_number, requested_at FROM call_attempts
          WHERE from_number IN ({}) AND requested_at > $1 AND state <> 'not_placed'",
        placeholders(2, n)
    )
}

/// `begin_attempt`'s one statement for a lead (`$8`, held by `$9`) and its
/// number (`$5`) under `caps` caps (`$10`, `$11`: since, most; and so on):
/// the `sending` attempt `$2` is inserted (id `$1`), or a `not_placed` one
/// of that number taken again, only while the lead is as claimed, the number
/// is not on the do-not-call list and every cap has room. `lock`: what locks
/// the lead's row as it is read (PostgreSQL's `FOR UPDATE`). Returns the
/// attempt's id, or no row.
/// Columns of one row of `begin_attempts_sql` before its caps: attempt id,
/// attempt number, provider, caller ID, number, requested at, agent, lead
/// id, lease owner; then each cap's start and most.
pub(super) const BEGIN_COLS: usize = 9;

/// The attempts of `rows` held leads (`values` rows of `BEGIN_COLS` + 2 per
/// cap), inserted in one statement, each only if its lead is still held as
/// claimed, its number not on the do-not-call list and under each of its
/// `caps`. Returns the lead and attempt id of each row written.
pub(super) fn begin_attempts_sql(rows: usize, caps: usize, lock: &str, by_id: &str) -> String {
    let cols = BEGIN_COLS + 2 * caps;
    let caps: String = (0..caps)
        .map(|i| {
            format!(
                " AND (SELECT count(*) FROM call_attempts c WHERE c.to_number = v.column5
                        AND c.state <> 'not_placed' AND c.requested_at > v.column{}) < v.column{}",
                BEGIN_COLS + 1 + 2 * i,
                BEGIN_COLS + 2 + 2 * i
            )
        })
        .collect();
    format!(
        "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, from_number, to_number,
                                    state, requested_at, agent_id)
         SELECT v.column1, leads.id, leads.campaign_id, v.column2, v.column3, v.column4, v.column5,
                'sending', v.column6, v.column7
           FROM ({}) AS v CROSS JOIN leads {by_id}
          WHERE leads.id = v.column8 AND leads.status = 'in_progress' AND leads.lease_owner = v.column9
            AND {AS_LEFT} AND NOT EXISTS (SELECT 1 FROM dnc WHERE dnc.phone = v.column5){caps}
          {lock}
         ON CONFLICT (lead_id, attempt) DO UPDATE SET state = 'sending',
                requested_at = excluded.requested_at, from_number = excluded.from_number,
                provider = excluded.provider, error = NULL, agent_id = excluded.agent_id
          WHERE call_attempts.state = 'not_placed'
         RETURNING id, lead_id",
        super::group::values(rows, cols)
    )
}

/// `move_leads` for `rows` rows of 7 columns: the lead's new status, due
/// time, last outcome, the time of the write, the lead, its attempt number,
/// the callback time.
pub(super) fn move_leads_sql(rows: usize) -> String {
    format!(
        "UPDATE leads SET status = v.column1, daemon_status = v.column1,
                next_attempt_at = COALESCE(v.column2, next_attempt_at),
                daemon_next_attempt_at = COALESCE(v.column2, next_attempt_at),
                last_outcome = COALESCE(v.column3, last_outcome), lease_owner = NULL,
                lease_expires_at = NULL, updated_at = v.column4,
                callbacks = callbacks + CASE WHEN v.column7 IS NULL THEN 0 ELSE 1 END,
                callback_at = COALESCE(v.column7, callback_at)
           FROM ({}) AS v
          WHERE leads.id = v.column5 AND leads.status IN ('in_progress', 'pending', 'exhausted')
            AND {AS_LEFT}
            AND v.column6 = (SELECT max(c.attempt) FROM call_attempts c WHERE c.lead_id = leads.id)",
        super::group::values(rows, 7)
    )
}

/// `attempt_placed`'s attempts, `rows` rows of 3: call id, provider status,
/// attempt id.
pub(super) fn placed_attempts_sql(rows: usize) -> String {
    format!(
        "UPDATE call_attempts SET
                provider_call_id = COALESCE(provider_call_id, v.column1),
                provider_status = CASE WHEN state = 'sending' THEN v.column2 ELSE provider_status END,
                state = CASE WHEN state = 'sending' THEN 'placed' ELSE state END
           FROM ({}) AS v
          WHERE call_attempts.id = v.column3",
        super::group::values(rows, 3)
    )
}

/// `attempt_placed`'s leads, `rows` rows of 4: lease end, time of the write,
/// lead, attempt number.
pub(super) fn placed_leads_sql(rows: usize) -> String {
    format!(
        "UPDATE leads SET lease_expires_at = v.column1, updated_at = v.column2
           FROM ({}) AS v
          WHERE leads.id = v.column3 AND leads.status = 'in_progress' AND {AS_LEFT}
            AND v.column4 = (SELECT max(c.attempt) FROM call_attempts c WHERE c.lead_id = leads.id)",
        super::group::values(rows, 4)
    )
}

/// `settle`'s attempts, `rows` rows of 13: outcome, provider status, status
/// time, call id, answered, ended, duration, hangup cause, error, summary,
/// transcript, recording, attempt id.
pub(super) fn settle_set_sql(rows: usize) -> String {
    format!(
        "UPDATE call_attempts SET
                state = CASE WHEN v.column1 IS NOT NULL THEN 'ended'
                             WHEN state = 'sending' THEN 'placed' ELSE state END,
                outcome = COALESCE(v.column1, outcome),
                provider_status = v.column2, status_at = COALESCE(v.column3, status_at),
                provider_call_id = COALESCE(provider_call_id, v.column4),
                answered_at = COALESCE(v.column5, answered_at),
                ended_at = COALESCE(v.column6, ended_at),
                duration_seconds = COALESCE(v.column7, duration_seconds),
                hangup_cause = COALESCE(v.column8, hangup_cause),
                error = COALESCE(v.column9, error),
                summary = COALESCE(v.column10, summary),
                transcript = COALESCE(v.column11, transcript),
                recording_url = COALESCE(v.column12, recording_url)
           FROM ({}) AS v
          WHERE call_attempts.id = v.column13
            AND CASE WHEN v.column1 IS NOT NULL
                     -- an end: the first real one wins; a synthetic `unknown` never blocks it
                     THEN state <> 'ended' OR outcome = 'unknown'
                     -- a live status: while the call is open, not older by the
                     -- provider's own clock, and not a duplicate
                     ELSE state IN ('sending', 'placed', 'unknown')
                          AND (status_at IS NULL OR v.column3 IS NULL OR status_at <= v.column3)
                          AND NOT (provider_status IS NOT DISTINCT FROM v.column2
                                   AND status_at IS NOT DISTINCT FROM v.column3)
                END
         RETURNING id, lead_id, attempt",
        super::group::values(rows, 13)
    )
}

/// `begin_attempt`'s leads, `rows` rows of 4: lease end, `unknown` due time,
/// time of the write, lead.
pub(super) fn begin_leads_sql(rows: usize) -> String {
    format!(
        "UPDATE leads SET lease_expires_at = v.column1, next_attempt_at = v.column2,
                daemon_next_attempt_at = v.column2, last_attempt_at = v.column3,
                updated_at = v.column3, attempts = {COUNTED}
           FROM ({}) AS v
          WHERE leads.id = v.column4",
        super::group::values(rows, 4)
    )
}

/// `$first, $first+1, ...`: `n` placeholders for an `IN` list.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of `n` phones (`$1`...) are on the do-not-call list.
pub(super) fn dnc_of_sql(n: usize) -> String {
    format!(
        "SELECT phone FROM dnc WHERE phone IN ({})",
        placeholders(1, n)
    )
}

/// Counted attempts to `n` phones (`$2`...) requested at or after `$1`.
pub(super) fn recent_attempts_of_sql(n: usize) -> String {
    format!(
        "SELECT to_number, requested_at FROM call_attempts
          WHERE to_number IN ({}) AND requested_at >= $1 AND state <> 'not_placed'
          ORDER BY requested_at",
        placeholders(2, n)
    )
}

/// A page of `export`: leads of campaign `$1` with an id above `$2`, at
/// most `$3`; with `since`, only those changed at or after `$4`. A range of
/// `leads_campaign_id`, already in id order: no page sorts the campaign.
pub(super) fn export_page_sql(since: bool) -> String {
    let changed = if since {
        "AND (l.updated_at >= $4 OR EXISTS (SELECT 1 FROM call_attempts c
              WHERE c.lead_id = l.id AND (c.requested_at >= $4 OR c.ended_at >= $4)))"
    } else {
        ""
    };
    format!(
        "SELECT {LEAD_COLS}, l.updated_at FROM leads l
          WHERE l.campaign_id = $1 AND l.id > $2 {changed}
          ORDER BY l.id LIMIT $3"
    )
}

/// An attempt by its id or by the provider's call id: two index lookups.
/// Written as one `OR`, SQLite read every attempt of the provider; and with
/// `provider = $1` indexable beside `id = $2`, both planners may pick the
/// provider's range over the primary key (`|| ''` keeps it a plain filter).
pub(super) fn find_attempt_sql() -> String {
    format!(
        "SELECT {ATTEMPT_COLS}, {LEAD_COLS} FROM call_attempts a JOIN leads l ON l.id = a.lead_id
          WHERE a.id = $2 AND a.provider || '' = $1
         UNION ALL
         SELECT {ATTEMPT_COLS}, {LEAD_COLS} FROM call_attempts a JOIN leads l ON l.id = a.lead_id
          WHERE a.provider = $1 AND a.provider_call_id = $3
         LIMIT 1"
    )
}

pub(super) fn open_attempts_sql() -> String {
    format!(
        "SELECT {ATTEMPT_COLS}, {LEAD_COLS} FROM call_attempts a JOIN leads l ON l.id = a.lead_id
          WHERE a.provider = $1 AND a.state IN ('sending', 'placed', 'unknown')
          ORDER BY CASE WHEN a.state = 'unknown' THEN 1 ELSE 0 END, a.requested_at LIMIT $2"
    )
}

use super::{FromChoice, NumberCap, Result};
use crate::domain::{ClaimedLead, Lead};
use chrono::{DateTime, Utc};

/// `begin_attempt`'s arguments, owned: the write runs on the group's writer.
pub(super) struct BeginArgs {
    pub lead: ClaimedLead,
    pub provider: String,
    pub from: FromChoice,
    pub agent_id: Option<String>,
    pub caps: Vec<NumberCap>,
    pub lease_until: DateTime<Utc>,
    pub unknown_due: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// `attempt_placed`'s arguments, owned.
pub(super) struct PlacedArgs {
    pub lead_id: i64,
    pub attempt_id: String,
    pub attempt: i32,
    pub provider_call_id: String,
    pub provider_status: String,
    pub lease_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// `settle`'s arguments, owned.
pub(super) struct SettleArgs {
    pub attempt_id: String,
    pub status: crate::domain::CallStatus,
    pub next: Option<super::LeadNext>,
    pub now: DateTime<Utc>,
}

/// The leads a claim returned, highest priority and longest due first.
pub(super) fn claimed<R>(
    rows: &[R],
    owner: &str,
    lease_until: DateTime<Utc>,
    read: impl Fn(&R) -> Result<(Lead, i64)>,
) -> Result<Vec<ClaimedLead>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (lead, attempt) = read(row)?;
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
            .then(a.lead.id.cmp(&b.lead.id))
    });
    Ok(out)
}

macro_rules! store_impl {
    ($store:ty, $db:ty, $row:ty) => {
        fn lead_from_row(row: &$row) -> Result<Lead> {
            let variables = match get_json(row, "variables")? {
                Some(Value::Object(m)) => m,
                None | Some(Value::Null) => Map::new(),
                Some(_) => {
                    // The row is read again at every claim and poll: say it once.
                    let lead = row.try_get::<i64, _>("id").unwrap_or(0);
                    if crate::telemetry::first_time(&format!("lead variables: {lead}")) {
                        tracing::warn!(
                            campaign = row.try_get::<String, _>("campaign_id").unwrap_or_default(),
                            lead,
                            "lead variables are not a JSON object; ignored (said once per lead)"
                        );
                    }
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
                priority: row.try_get("priority")?,
                consent_at: get_ts(row, "consent_at")?,
                status: parse_enum("leads", &status)?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: get_ts(row, "next_attempt_at")?,
                last_attempt_at: get_ts(row, "last_attempt_at")?,
                last_outcome: row.try_get("last_outcome")?,
                callbacks: row.try_get("callbacks")?,
                callback_at: get_ts(row, "callback_at")?,
            })
        }

        fn attempt_from_row(row: &$row) -> Result<Attempt> {
            let state: String = row.try_get("a_state")?;
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
                status_at: get_ts(row, "a_status_at")?,
                outcome: outcome_opt(row.try_get("a_outcome")?)?,
                error: row.try_get("a_error")?,
                requested_at: get_ts(row, "a_requested_at")?.ok_or(StoreError::Corrupt {
                    table: "call_attempts",
                    why: "requested_at is NULL".into(),
                })?,
            })
        }

        fn open_attempt_from_row(row: &$row) -> Result<OpenAttempt> {
            Ok(OpenAttempt {
                attempt: attempt_from_row(row)?,
                lead: lead_from_row(row)?,
            })
        }

        /// `Store::caller_id_use` on one connection (or a transaction's).
        async fn caller_id_use_on(
            conn: &mut <$db as sqlx::Database>::Connection,
            numbers: &[String],
            since: DateTime<Utc>,
        ) -> Result<std::collections::HashMap<String, Vec<DateTime<Utc>>>> {
            let mut used = std::collections::HashMap::<String, Vec<DateTime<Utc>>>::new();
            for chunk in numbers.chunks(500) {
                let sql = caller_id_use_sql(chunk.len());
                let mut q = sqlx::query(&sql).bind(ts(since));
                for n in chunk {
                    q = q.bind(n);
                }
                for row in q.fetch_all(&mut *conn).await? {
                    if let Some(at) = get_ts(&row, "requested_at")? {
                        let n: String = row.try_get("from_number")?;
                        used.entry(n).or_default().push(at);
                    }
                }
            }
            Ok(used)
        }

        impl $store {
            /// The claim. `ahead`: the concurrency limits do not bound it;
            /// instead the room they left before it is counted in the same
            /// transaction (what is in progress now, less what this claim
            /// took) and returned. Otherwise the room returned is the number
            /// claimed.
            /// The campaign's priority levels with a pending lead due at
            /// `now` (`DUE_PRIORITIES_SQL`): what the claim and the look walk.
            async fn due_levels(&self, campaign_id: &str, now: DateTime<Utc>) -> Result<Vec<i64>> {
                Ok(sqlx::query_scalar(DUE_PRIORITIES_SQL)
                    .bind(campaign_id)
                    .bind(ts(now))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn claim_in(
                &self,
                limits: &ClaimLimits,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> Result<Vec<ClaimedLead>> {
                // Read before the claim's transaction: it only shapes the
                // claim, which checks every lead again (a level that gains a
                // due lead meanwhile is taken by the next claim).
                let levels = self.due_levels(&limits.campaign_id, now).await?;
                let mut tx = self.pool.begin().await?;
                if let Some(lock) = CLAIM_LOCK {
                    sqlx::query(lock).bind(&limits.provider).execute(&mut *tx).await?;
                }
                let rows = sqlx::query(&claim_sql(&priority_levels(&levels)))
                    .bind(owner)
                    .bind(due(lease_until))
                    .bind(ts(now))
                    .bind(&limits.campaign_id)
                    .bind(limits.batch as i64)
                    .bind(i64::from(limits.max_concurrent))
                    .bind(i64::from(limits.provider_max_concurrent))
                    .bind(&limits.provider)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                claimed(&rows, owner, lease_until, |r| {
                    Ok((lead_from_row(r)?, r.try_get("next_attempt")?))
                })
            }

            /// Moves the lead of attempt number `attempt` to `next`, when the
            /// lead is as the daemon left it and this is its newest attempt.
            /// Moves each lead as its attempt's fate says, if that attempt is
            /// still the lead's last and the lead is as the daemon left it:
            /// one statement per run of distinct leads.
            async fn move_leads(
                tx: &mut sqlx::Transaction<'_, $db>,
                moves: &[(i64, i32, &LeadNext, DateTime<Utc>)],
            ) -> Result<()> {
                for run in distinct_runs(moves, |m| m.0) {
                    let rows = padded(run.len());
                    let sql = move_leads_sql(rows);
                    let mut q = sqlx::query(&sql);
                    for r in 0..rows {
                        let m = run.get(r);
                        let next = m.map(|m| m.2);
                        q = q
                            .bind(next.map(|n| n.status.as_str()))
                            .bind(next.and_then(|n| n.next_attempt_at).map(due))
                            .bind(next.and_then(|n| n.last_outcome.as_deref()))
                            .bind(m.map(|m| ts(m.3)))
                            .bind(m.map(|m| m.0))
                            .bind(m.map(|m| m.1))
                            .bind(next.and_then(|n| n.callback_at).map(ts));
                    }
                    q.execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// `begin_attempt` with a caller ID chosen under its caps: alone
            /// in its transaction (see `begin_attempt`).
            async fn begin_attempt_in(tx: &mut Tx<$db>, a: &BeginArgs) -> Result<Begun> {
                Self::lock_numbers(tx, &[a]).await?;
                // One chooser at a time across daemons: the count and the
                // insert below are one step for every caller ID.
                if let Some(lock) = CALLER_ID_LOCK {
                    sqlx::query(lock).execute(&mut **tx).await?;
                }
                let longest = a.from.caps.iter().map(|(p, _)| *p).max().unwrap_or_default();
                let used = caller_id_use_on(&mut **tx, &a.from.numbers, a.now - longest).await?;
                let from_number = match crate::caller_id::first_free(&a.from.numbers, &a.from.caps, &used, a.now) {
                    Ok(n) => n,
                    Err(until) => {
                        let blocked = Self::blocked(tx, a).await?;
                        return Ok(blocked.unwrap_or(Begun::CallerIdCapped { until }));
                    }
                };
                let mut begun = Self::insert_attempts(tx, &[(a, from_number)]).await?;
                Ok(begun.pop().unwrap_or(Begun::NotHeld))
            }

            /// `begin_attempt`'s writes for a set of held leads whose caller
            /// ID is the first they are offered (see `Group::write_set`):
            /// one insert and one update per run of distinct numbers with as
            /// many caps.
            async fn begin_set_in(tx: &mut Tx<$db>, all: &[&BeginArgs]) -> Result<Vec<Begun>> {
                let mut out = Vec::with_capacity(all.len());
                for run in distinct_runs(all, |a| a.lead.lead.phone.as_str()) {
                    Self::lock_numbers(tx, run).await?;
                    for part in run.chunk_by(|x, y| x.caps.len() == y.caps.len()) {
                        let rows: Vec<_> = part.iter().map(|a| (*a, a.from.numbers.first().cloned())).collect();
                        out.extend(Self::insert_attempts(tx, &rows).await?);
                    }
                }
                Ok(out)
            }

            /// Whoever holds a number's lock counts its attempts and commits
            /// before the next one counts: the caps hold across campaigns
            /// and daemons. Taken in one order, so writers of sets that
            /// share numbers wait for each other rather than deadlock.
            async fn lock_numbers(tx: &mut Tx<$db>, all: &[&BeginArgs]) -> Result<()> {
                let Some(lock) = NUMBER_LOCK else {
                    return Ok(());
                };
                let rows = padded(all.len());
                let sql = lock.replace("{values}", &values(rows, 1));
                let mut q = sqlx::query(&sql);
                for r in 0..rows {
                    q = q.bind(all.get(r).map(|a| a.lead.lead.phone.as_str()));
                }
                q.execute(&mut **tx).await?;
                Ok(())
            }

            /// The attempt rows of `rows` (each with its caller ID), as many
            /// caps each and distinct numbers, inserted in one statement, each
            /// only if its lead is still held as claimed, its number is not
            /// on the do-not-call list and under its caps (on SQLite the
            /// insert takes the write lock before it reads), then their
            /// leads' leases and due times in one more. Nothing is written
            /// for a lead something blocks, so nothing has to be undone, and
            /// `blocked` then says what did.
            async fn insert_attempts(
                tx: &mut Tx<$db>,
                rows: &[(&BeginArgs, Option<String>)],
            ) -> Result<Vec<Begun>> {
                let Some(caps) = rows.first().map(|(a, _)| a.caps.len()) else {
                    return Ok(Vec::new());
                };
                let n = padded(rows.len());
                let sql = begin_attempts_sql(n, caps, LOCK_LEAD, LEAD_BY_ID);
                let ids: Vec<String> = rows.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect();
                let mut q = sqlx::query(&sql);
                for r in 0..n {
                    let row = rows.get(r);
                    let a = row.map(|(a, _)| *a);
                    q = q
                        .bind(ids.get(r).map(String::as_str))
                        .bind(a.map(|a| a.lead.attempt))
                        .bind(a.map(|a| a.provider.as_str()))
                        .bind(row.and_then(|(_, from)| from.as_deref()))
                        .bind(a.map(|a| a.lead.lead.phone.as_str()))
                        .bind(a.map(|a| ts(a.now)))
                        .bind(a.and_then(|a| a.agent_id.as_deref()))
                        .bind(a.map(|a| a.lead.lead.id))
                        .bind(a.map(|a| a.lead.lease_owner.as_str()));
                    for c in 0..caps {
                        let cap = a.and_then(|a| a.caps.get(c).map(|(period, max)| (a.now - *period, *max)));
                        q = q.bind(cap.map(|(since, _)| ts(since))).bind(cap.map(|(_, max)| i64::from(max)));
                    }
                }
                // The attempt id by lead: an attempt that was `not_placed`
                // keeps its own id.
                let mut inserted = std::collections::HashMap::new();
                for row in q.fetch_all(&mut **tx).await? {
                    let lead_id: i64 = row.try_get("lead_id")?;
                    inserted.insert(lead_id, row.try_get::<String, _>("id")?);
                }
                // Until the request's fate is known, a lead's due time is
                // the `unknown` retry delay: a crash now can never make it
                // due earlier. The leads are locked (SQLite's write lock, or
                // the row locks above): they are as the insert found them.
                let held: Vec<&BeginArgs> = rows
                    .iter()
                    .map(|(a, _)| *a)
                    .filter(|a| inserted.contains_key(&a.lead.lead.id))
                    .collect();
                if !held.is_empty() {
                    let n = padded(held.len());
                    let sql = begin_leads_sql(n);
                    let mut q = sqlx::query(&sql);
                    for r in 0..n {
                        let a = held.get(r);
                        q = q
                            .bind(a.map(|a| due(a.lease_until)))
                            .bind(a.map(|a| due(a.unknown_due)))
                            .bind(a.map(|a| ts(a.now)))
                            .bind(a.map(|a| a.lead.lead.id));
                    }
                    let moved = q.execute(&mut **tx).await?.rows_affected();
                    if moved != held.len() as u64 {
                        return Err(StoreError::Corrupt {
                            table: "leads",
                            why: format!("{} of {} leads vanished while their attempts were begun", held.len() as u64 - moved, held.len()),
                        });
                    }
                }
                let mut out = Vec::with_capacity(rows.len());
                for (a, from_number) in rows {
                    let lead = &a.lead;
                    let Some(id) = inserted.remove(&lead.lead.id) else {
                        // Blocked, or that attempt number exists and counts:
                        // never send it twice.
                        out.push(Self::blocked(tx, a).await?.unwrap_or(Begun::NotHeld));
                        continue;
                    };
                    out.push(Begun::Attempt(Box::new(Attempt {
                        id,
                        lead_id: lead.lead.id,
                        campaign_id: lead.lead.campaign_id.clone(),
                        attempt: lead.attempt,
                        provider: a.provider.clone(),
                        provider_call_id: None,
                        from_number: from_number.clone(),
                        to_number: lead.lead.phone.clone(),
                        state: AttemptState::Sending,
                        provider_status: None,
                        status_at: None,
                        outcome: None,
                        error: None,
                        requested_at: a.now,
                    })));
                }
                Ok(out)
            }

            /// What keeps `a` from being attempted now, first match: the
            /// lead is no longer held as claimed, its number is on the
            /// do-not-call list, or one of its caps is reached. `None`:
            /// nothing of these.
            async fn blocked(tx: &mut Tx<$db>, a: &BeginArgs) -> Result<Option<Begun>> {
                let lead = &a.lead;
                let held: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM leads
                      WHERE id = $1 AND status = 'in_progress' AND lease_owner = $2 AND {AS_LEFT}"
                ))
                .bind(lead.lead.id)
                .bind(&lead.lease_owner)
                .fetch_one(&mut **tx)
                .await?;
                if held == 0 {
                    return Ok(Some(Begun::NotHeld)); // lease lost, or another system changed the lead
                }
                let dnc: i64 = sqlx::query_scalar(DNC_ONE_SQL)
                    .bind(&lead.lead.phone)
                    .fetch_one(&mut **tx)
                    .await?;
                if dnc > 0 {
                    return Ok(Some(Begun::DoNotCall));
                }
                for (period, max) in &a.caps {
                    // No upper bound at `now`: an attempt committed while this
                    // one waited for the lock may carry a later instant, and
                    // it counts all the same.
                    let counted: i64 = sqlx::query_scalar(NUMBER_ATTEMPTS_SQL)
                        .bind(&lead.lead.phone)
                        .bind(ts(a.now - *period))
                        .fetch_one(&mut **tx)
                        .await?;
                    if counted >= i64::from(*max) {
                        return Ok(Some(Begun::Capped));
                    }
                }
                Ok(None)
            }

            async fn attempt_not_placed_in(
                tx: &mut Tx<$db>,
                lead_id: i64,
                attempt_id: &str,
                reason: &str,
                next: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE call_attempts SET state = 'not_placed', error = $1 WHERE id = $2 AND state = 'sending'",
                )
                .bind(reason)
                .bind(attempt_id)
                .execute(&mut **tx)
                .await?;
                sqlx::query(&format!(
                    "UPDATE leads SET status = 'pending', daemon_status = 'pending',
                            next_attempt_at = $1, daemon_next_attempt_at = $1,
                            lease_owner = NULL, lease_expires_at = NULL
                      WHERE id = $2 AND status = 'in_progress' AND {AS_LEFT}"
                ))
                .bind(due(next))
                .bind(lead_id)
                .execute(&mut **tx)
                .await?;
                // The attempt no longer counts, whoever holds the lead now.
                sqlx::query(&format!("UPDATE leads SET attempts = {COUNTED}, updated_at = $1 WHERE id = $2"))
                    .bind(ts(now))
                    .bind(lead_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// `attempt_placed`'s writes for a set of attempts (see
            /// `Group::write_set`): the attempts' rows, then their leads'
            /// leases, one statement per run of distinct rows.
            async fn placed_set_in(tx: &mut Tx<$db>, all: &[&PlacedArgs]) -> Result<Vec<()>> {
                // A webhook or a poll may have settled the attempt before the
                // answer came back: keep its state, only record the call id.
                // No status time is stamped: ours and the provider's clocks
                // are never compared.
                for run in distinct_runs(all, |a| a.attempt_id.as_str()) {
                    let rows = padded(run.len());
                    let sql = placed_attempts_sql(rows);
                    let mut q = sqlx::query(&sql);
                    for r in 0..rows {
                        let a = run.get(r);
                        q = q
                            .bind(a.map(|a| a.provider_call_id.as_str()))
                            .bind(a.map(|a| a.provider_status.as_str()))
                            .bind(a.map(|a| a.attempt_id.as_str()));
                    }
                    q.execute(&mut **tx).await?;
                }
                for run in distinct_runs(all, |a| a.lead_id) {
                    let rows = padded(run.len());
                    let sql = placed_leads_sql(rows);
                    let mut q = sqlx::query(&sql);
                    for r in 0..rows {
                        let a = run.get(r);
                        q = q
                            .bind(a.map(|a| due(a.lease_until)))
                            .bind(a.map(|a| ts(a.now)))
                            .bind(a.map(|a| a.lead_id))
                            .bind(a.map(|a| a.attempt));
                    }
                    q.execute(&mut **tx).await?;
                }
                Ok(vec![(); all.len()])
            }

            async fn attempt_unknown_in(
                tx: &mut Tx<$db>,
                attempt_id: &str,
                error: &str,
                lead_next: &LeadNext,
                now: DateTime<Utc>,
            ) -> Result<bool> {
                let row = sqlx::query(
                    "UPDATE call_attempts SET state = 'unknown', outcome = 'unknown', error = $1
                      WHERE id = $2 AND state IN ('sending', 'placed')
                     RETURNING lead_id, attempt",
                )
                .bind(error)
                .bind(attempt_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                Self::move_leads(tx, &[(row.try_get("lead_id")?, row.try_get("attempt")?, lead_next, now)])
                    .await?;
                Ok(true)
            }

            /// `settle`'s writes for a set of statuses (see
            /// `Group::write_set`): the attempts' rows, one statement per run
            /// of distinct attempts, then the numbers the outcomes put on the
            /// do-not-call list, then the leads moved (`move_leads`).
            async fn settle_set_in(tx: &mut Tx<$db>, all: &[&SettleArgs]) -> Result<Vec<Settled>> {
                let mut applied: Vec<Option<(i64, i32)>> = vec![None; all.len()];
                let order: Vec<usize> = (0..all.len()).collect();
                for run in distinct_runs(&order, |&i| all[i].attempt_id.as_str()) {
                    let rows = padded(run.len());
                    let sql = settle_set_sql(rows);
                    let mut q = sqlx::query(&sql);
                    for r in 0..rows {
                        let a = run.get(r).map(|&i| all[i]);
                        let s = a.map(|a| &a.status);
                        q = q
                            .bind(s.and_then(|s| s.outcome).map(|o| o.as_str()))
                            .bind(s.map(|s| s.provider_status.as_str()))
                            .bind(s.and_then(|s| s.status_at).map(ts))
                            .bind(s.and_then(|s| s.provider_call_id.as_deref()))
                            .bind(s.and_then(|s| s.answered_at).map(ts))
                            .bind(s.and_then(|s| s.ended_at).map(ts))
                            .bind(s.and_then(|s| s.duration_seconds))
                            .bind(s.and_then(|s| s.hangup_cause.as_deref()))
                            .bind(s.and_then(|s| s.error.as_deref()))
                            .bind(s.and_then(|s| s.summary.as_deref()))
                            .bind(s.and_then(|s| s.transcript.clone()).map(json))
                            .bind(s.and_then(|s| s.recording_url.as_deref()))
                            .bind(a.map(|a| a.attempt_id.as_str()));
                    }
                    let mut settled = std::collections::HashMap::new();
                    for row in q.fetch_all(&mut **tx).await? {
                        let id: String = row.try_get("id")?;
                        settled.insert(id, (row.try_get("lead_id")?, row.try_get("attempt")?));
                    }
                    for &i in run {
                        applied[i] = settled.get(&all[i].attempt_id).copied();
                    }
                }
                for (a, applied) in all.iter().zip(&applied) {
                    let Some(reason) = a.next.as_ref().and_then(|n| n.do_not_call.as_deref()) else {
                        continue;
                    };
                    if applied.is_none() {
                        continue;
                    }
                    // Before this commits, no attempt to the number can:
                    // `begin_attempt` reads the list in its own transaction.
                    sqlx::query(
                        "INSERT INTO dnc (phone, reason, added_at, attempt_id)
                         SELECT to_number, $1, $2, id FROM call_attempts WHERE id = $3
                         ON CONFLICT (phone) DO NOTHING",
                    )
                    .bind(reason)
                    .bind(ts(a.now))
                    .bind(&a.attempt_id)
                    .execute(&mut **tx)
                    .await?;
                }
                let moves: Vec<_> = all
                    .iter()
                    .zip(&applied)
                    .filter_map(|(a, applied)| {
                        let (lead_id, attempt) = (*applied)?;
                        Some((lead_id, attempt, a.next.as_ref()?, a.now))
                    })
                    .collect();
                Self::move_leads(tx, &moves).await?;
                Ok(applied
                    .iter()
                    .map(|a| if a.is_some() { Settled::Applied } else { Settled::Stale })
                    .collect())
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn migrate(&self) -> Result<()> {
                MIGRATOR.run(&self.pool).await?;
                Ok(())
            }

            async fn claim(
                &self,
                limits: &ClaimLimits,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> Result<Vec<ClaimedLead>> {
                self.claim_in(limits, owner, now, lease_until).await
            }

            async fn look(
                &self,
                campaign_id: &str,
                now: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<LookedLead>> {
                let levels = self.due_levels(campaign_id, now).await?;
                if levels.is_empty() {
                    return Ok(Vec::new());
                }
                // A read on a pooled connection: no transaction, no lock.
                let rows = sqlx::query(&look_sql(&priority_levels(&levels)))
                    .bind(campaign_id)
                    .bind(ts(now))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(LookedLead {
                            lead: lead_from_row(r)?,
                            seen: r.try_get("seen")?,
                        })
                    })
                    .collect()
            }

            async fn reschedule_all(
                &self,
                leads: &[(LookedLead, LeadNext)],
                now: DateTime<Utc>,
            ) -> Result<u64> {
                if leads.is_empty() {
                    return Ok(0);
                }
                let mut conn = self.pool.acquire().await?;
                reschedule_all_on(&mut conn, leads, ts(now)).await
            }

            async fn sync_campaigns(&self, campaigns: &[CampaignRow], now: DateTime<Utc>) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                // First statement writes, so that a SQLite transaction holds
                // the write lock from the start.
                sqlx::query(
                    "UPDATE campaigns SET removed_at = $1, updated_at = $1 WHERE removed_at IS NULL",
                )
                .bind(ts(now))
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
                    .bind(ts(now))
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
                // One transaction for the call, so that a caller's batch is
                // committed whole or not at all; the dialect inserts it in
                // as few statements as its driver allows. Counting by rows
                // affected keeps nothing per row.
                let mut tx = self.pool.begin().await?;
                let imported = insert_leads_on(&mut *tx, campaign_id, leads, ts(now)).await?;
                tx.commit().await?;
                Ok(InsertCounts {
                    imported,
                    duplicates: leads.len() as u64 - imported,
                })
            }

            async fn next_due(&self, campaign_id: &str) -> Result<Option<DateTime<Utc>>> {
                let row = sqlx::query(NEXT_DUE_SQL)
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                get_ts(&row, "t")
            }

            async fn release(&self, lead: &ClaimedLead, next: &LeadNext, now: DateTime<Utc>) -> Result<()> {
                // The same statement as for many leads: one place decides
                // what a hand-back may change.
                let mut conn = self.pool.acquire().await?;
                release_all_on(&mut conn, &[(lead.clone(), next.clone())], ts(now)).await
            }

            async fn release_all(&self, leads: &[(ClaimedLead, LeadNext)], now: DateTime<Utc>) -> Result<()> {
                if leads.is_empty() {
                    return Ok(());
                }
                // One statement: atomic, and no round trip per lead.
                let mut conn = self.pool.acquire().await?;
                release_all_on(&mut conn, leads, ts(now)).await
            }

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
            ) -> Result<Begun> {
                let args = BeginArgs {
                    lead: lead.clone(),
                    provider: provider.to_string(),
                    from: from.clone(),
                    agent_id: agent_id.map(str::to_string),
                    caps: caps.to_vec(),
                    lease_until,
                    unknown_due,
                    now,
                };
                if from.caps.is_empty() {
                    return self.group.write_set(args, |tx, all| Box::pin(Self::begin_set_in(tx, all))).await;
                }
                // Capped caller IDs: a transaction of its own, so that the
                // chooser's lock is taken holding no other write's locks
                // (grouped, two writers could each wait for the other).
                // It reads the caller IDs' use before it writes: on SQLite
                // it holds the write lock from the start, so that nothing
                // commits between that read and its insert.
                let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
                let begun = Self::begin_attempt_in(&mut tx, &args).await?;
                tx.commit().await?;
                Ok(begun)
            }

            async fn attempt_not_placed(
                &self,
                attempt: &Attempt,
                reason: &str,
                next: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<()> {
                let args = (attempt.lead_id, attempt.id.clone(), reason.to_string(), next, now);
                self.group
                    .write(args, |tx, (lead_id, id, reason, next, now)| {
                        Box::pin(Self::attempt_not_placed_in(tx, *lead_id, id, reason, *next, *now))
                    })
                    .await
            }

            async fn attempt_placed(
                &self,
                attempt: &Attempt,
                provider_call_id: &str,
                provider_status: &str,
                lease_until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<()> {
                let args = PlacedArgs {
                    lead_id: attempt.lead_id,
                    attempt_id: attempt.id.clone(),
                    attempt: attempt.attempt,
                    provider_call_id: provider_call_id.to_string(),
                    provider_status: provider_status.to_string(),
                    lease_until,
                    now,
                };
                self.group.write_set(args, |tx, all| Box::pin(Self::placed_set_in(tx, all))).await
            }

            async fn attempt_unknown(
                &self,
                attempt_id: &str,
                error: &str,
                lead_next: &LeadNext,
                now: DateTime<Utc>,
            ) -> Result<bool> {
                let args = (attempt_id.to_string(), error.to_string(), lead_next.clone(), now);
                self.group
                    .write(args, |tx, (id, error, next, now)| {
                        Box::pin(Self::attempt_unknown_in(tx, id, error, next, *now))
                    })
                    .await
            }

            async fn settle(
                &self,
                attempt_id: &str,
                status: &CallStatus,
                lead_next: Option<&LeadNext>,
                now: DateTime<Utc>,
            ) -> Result<Settled> {
                let args = SettleArgs {
                    attempt_id: attempt_id.to_string(),
                    status: status.clone(),
                    next: lead_next.cloned(),
                    now,
                };
                self.group.write_set(args, |tx, all| Box::pin(Self::settle_set_in(tx, all))).await
            }

            async fn give_up(&self, attempt_id: &str) -> Result<()> {
                sqlx::query("UPDATE call_attempts SET state = 'ended' WHERE id = $1 AND state = 'unknown'")
                    .bind(attempt_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn find_attempt(
                &self,
                provider: &str,
                attempt_id: Option<&str>,
                provider_call_id: Option<&str>,
            ) -> Result<Option<OpenAttempt>> {
                let row = sqlx::query(&find_attempt_sql())
                    .bind(provider)
                    .bind(attempt_id)
                    .bind(provider_call_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(open_attempt_from_row).transpose()
            }

            async fn open_attempts(&self, provider: &str, limit: i64) -> Result<Vec<OpenAttempt>> {
                let rows = sqlx::query(&open_attempts_sql())
                    .bind(provider)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(open_attempt_from_row).collect()
            }

            async fn take_polls(&self, ids: &[String], now_us: i64, until_us: i64) -> Result<Vec<String>> {
                let mut taken = Vec::new();
                for chunk in ids.chunks(500) {
                    let list = (0..chunk.len())
                        .map(|i| format!("${}", i + 3))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "UPDATE call_attempts SET poll_after_us = $1
                          WHERE (poll_after_us IS NULL OR poll_after_us <= $2) AND id IN ({list})
                          RETURNING id"
                    );
                    let mut q = sqlx::query_scalar::<_, String>(&sql).bind(until_us).bind(now_us);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    taken.extend(q.fetch_all(&self.pool).await?);
                }
                Ok(taken)
            }

            async fn number_facts(
                &self,
                phones: &[&str],
                since: DateTime<Utc>,
            ) -> Result<std::collections::HashMap<String, NumberFacts>> {
                let mut facts = std::collections::HashMap::<String, NumberFacts>::new();
                for chunk in phones.chunks(500) {
                    let sql = dnc_of_sql(chunk.len());
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for phone in chunk {
                        q = q.bind(*phone);
                    }
                    for phone in q.fetch_all(&self.pool).await? {
                        facts.entry(phone).or_default().dnc = true;
                    }
                    let sql = recent_attempts_of_sql(chunk.len());
                    let mut q = sqlx::query(&sql).bind(ts(since));
                    for phone in chunk {
                        q = q.bind(*phone);
                    }
                    for row in q.fetch_all(&self.pool).await? {
                        if let Some(at) = get_ts(&row, "requested_at")? {
                            let phone: String = row.try_get("to_number")?;
                            facts.entry(phone).or_default().recent_attempts.push(at);
                        }
                    }
                }
                Ok(facts)
            }

            async fn caller_id_use(
                &self,
                numbers: &[String],
                since: DateTime<Utc>,
            ) -> Result<std::collections::HashMap<String, Vec<DateTime<Utc>>>> {
                let mut conn = self.pool.acquire().await?;
                caller_id_use_on(&mut conn, numbers, since).await
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

            async fn schedule_callback(
                &self,
                lead_id: i64,
                asked: DateTime<Utc>,
                due_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE leads SET status = 'pending', next_attempt_at = $1, callbacks = callbacks + 1,
                            callback_at = $2, updated_at = $3
                      WHERE id = $4",
                )
                .bind(due(due_at))
                .bind(ts(asked))
                .bind(ts(now))
                .bind(lead_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
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

            async fn hot_query_plans(
                &self,
                campaign_id: &str,
                now: DateTime<Utc>,
            ) -> Result<Vec<(&'static str, String)>> {
                let mut tx = self.pool.begin().await?;
                if let Some(setup) = PLAN_SETUP {
                    sqlx::query(setup).execute(&mut *tx).await?;
                }
                let (t, phone) = (ts(now), "+12125550100");
                let mut plans = Vec::new();
                let sql = format!("{EXPLAIN}{DUE_PRIORITIES_SQL}");
                let rows = sqlx::query(&sql).bind(campaign_id).bind(&t).fetch_all(&mut *tx).await?;
                plans.push(("due_priorities", plan_text(&rows)?));
                let levels: Vec<i64> = sqlx::query_scalar(DUE_PRIORITIES_SQL)
                    .bind(campaign_id)
                    .bind(&t)
                    .fetch_all(&mut *tx)
                    .await?;
                let claim = format!("{EXPLAIN}{}", claim_sql(&priority_levels(&levels)));
                let rows = sqlx::query(&claim)
                    .bind("plan")
                    .bind(due(now))
                    .bind(&t)
                    .bind(campaign_id)
                    .bind(100_i64)
                    .bind(100_i64)
                    .bind(100_i64)
                    .bind("plan")
                    .fetch_all(&mut *tx)
                    .await?;
                plans.insert(0, ("claim", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{NEXT_DUE_SQL}");
                let rows = sqlx::query(&sql).bind(campaign_id).fetch_all(&mut *tx).await?;
                plans.push(("next_due", plan_text(&rows)?));
                // The rules' facts, as `number_facts` reads them for one number.
                let sql = format!("{EXPLAIN}{}", recent_attempts_of_sql(1));
                let rows = sqlx::query(&sql).bind(&t).bind(phone).fetch_all(&mut *tx).await?;
                plans.push(("recent_attempts", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{NUMBER_ATTEMPTS_SQL}");
                let rows = sqlx::query(&sql).bind(phone).bind(&t).fetch_all(&mut *tx).await?;
                plans.push(("number_attempts", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", dnc_of_sql(1));
                let rows = sqlx::query(&sql).bind(phone).fetch_all(&mut *tx).await?;
                plans.push(("is_dnc", plan_text(&rows)?));
                // A capped caller ID's count, for a campaign of three numbers.
                let sql = format!("{EXPLAIN}{}", caller_id_use_sql(3));
                let rows = sqlx::query(&sql)
                    .bind(&t)
                    .bind("+12125550100")
                    .bind("+13125550100")
                    .bind("+14155550100")
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("caller_id_use", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", find_attempt_sql());
                let rows = sqlx::query(&sql)
                    .bind("plan")
                    .bind(Some("plan"))
                    .bind(Some("plan"))
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("find_attempt", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", open_attempts_sql());
                let rows = sqlx::query(&sql).bind("plan").bind(100_i64).fetch_all(&mut *tx).await?;
                plans.push(("open_attempts", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", export_page_sql(false));
                let rows = sqlx::query(&sql)
                    .bind(campaign_id)
                    .bind(0_i64)
                    .bind(1000_i64)
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("export_page", plan_text(&rows)?));
                // An attempt's insert, for a number under one cap.
                let sql = format!("{EXPLAIN}{}", begin_attempts_sql(1, 1, LOCK_LEAD, LEAD_BY_ID));
                let rows = sqlx::query(&sql)
                    .bind("plan")
                    .bind(1_i32)
                    .bind("sim")
                    .bind(Some("+13125550100"))
                    .bind(phone)
                    .bind(&t)
                    .bind(None::<String>)
                    .bind(1_i64)
                    .bind("plan")
                    .bind(&t)
                    .bind(3_i64)
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("begin_attempt", plan_text(&rows)?));
                // The set writes of a group, for one row each.
                let sql = format!("{EXPLAIN}{}", begin_leads_sql(1));
                let rows = sqlx::query(&sql)
                    .bind(&t)
                    .bind(&t)
                    .bind(&t)
                    .bind(1_i64)
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("begin_leads", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", placed_attempts_sql(1));
                let rows = sqlx::query(&sql)
                    .bind("call-1")
                    .bind("queued")
                    .bind("plan")
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("placed_attempts", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", placed_leads_sql(1));
                let rows = sqlx::query(&sql)
                    .bind(&t)
                    .bind(&t)
                    .bind(1_i64)
                    .bind(1_i32)
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("placed_leads", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", settle_set_sql(1));
                let rows = sqlx::query(&sql)
                    .bind(Some("completed"))
                    .bind("completed")
                    .bind(Some(&t))
                    .bind(Some("call-1"))
                    .bind(None::<String>.map(|_| t.clone()))
                    .bind(Some(&t))
                    .bind(Some(30_i64))
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(None::<Value>.map(json))
                    .bind(None::<String>)
                    .bind("plan")
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("settle", plan_text(&rows)?));
                let sql = format!("{EXPLAIN}{}", move_leads_sql(1));
                let rows = sqlx::query(&sql)
                    .bind("pending")
                    .bind(Some(&t))
                    .bind(Some("busy"))
                    .bind(&t)
                    .bind(1_i64)
                    .bind(1_i32)
                    .bind(None::<String>.map(|_| t.clone()))
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(("move_leads", plan_text(&rows)?));
                // The rules' look at many due leads, read without taking them.
                if !levels.is_empty() {
                    let look = format!("{EXPLAIN}{}", look_sql(&priority_levels(&levels)));
                    let rows = sqlx::query(&look)
                        .bind(campaign_id)
                        .bind(&t)
                        .bind(1000_i64)
                        .fetch_all(&mut *tx)
                        .await?;
                    plans.push(("look", plan_text(&rows)?));
                }
                tx.rollback().await?;
                Ok(plans)
            }

            async fn campaign_stats(&self, campaign_id: &str) -> Result<CampaignStats> {
                let mut stats = CampaignStats::default();
                let rows = sqlx::query(
                    "SELECT status, count(*) AS n FROM leads WHERE campaign_id = $1 GROUP BY status",
                )
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
                let rows = sqlx::query(
                    "SELECT agent_id, outcome, count(*) AS n FROM call_attempts
                      WHERE campaign_id = $1 AND outcome IS NOT NULL AND agent_id IS NOT NULL
                      GROUP BY agent_id, outcome",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                for r in rows {
                    stats
                        .by_agent
                        .entry(r.try_get("agent_id")?)
                        .or_default()
                        .insert(r.try_get("outcome")?, r.try_get("n")?);
                }
                stats.in_flight = sqlx::query_scalar(
                    "SELECT count(*) FROM call_attempts WHERE campaign_id = $1 AND state IN ('sending', 'placed')",
                )
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                stats.unusable = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM leads WHERE campaign_id = $1 AND status = 'pending' AND {NO_DUE}"
                ))
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

            async fn take_rate(&self, key: &str, take: &RateTake) -> Result<RateTaken> {
                // A first take (no row yet) is granted: the caller asks for
                // at most the burst.
                let granted: Option<i64> = sqlx::query_scalar(&format!(
                    "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + $3)
                     ON CONFLICT (key) DO UPDATE SET tat = {GREATEST}(rate_limits.tat, $2) + $3
                      WHERE {GREATEST}(rate_limits.tat, $2) + $3 - $4 <= $2
                     RETURNING tat"
                ))
                .bind(key)
                .bind(take.now_us)
                .bind(take.cost_us)
                .bind(take.tolerance_us)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(tat_us) = granted {
                    return Ok(RateTaken::Granted { tat_us });
                }
                let tat_us: i64 = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = $1")
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(RateTaken::Refused { tat_us })
            }

            async fn gauges(&self) -> Result<Gauges> {
                let mut g = Gauges::default();
                let rows = sqlx::query(
                    "SELECT campaign_id, status, count(*) AS n FROM leads GROUP BY campaign_id, status",
                )
                .fetch_all(&self.pool)
                .await?;
                for r in rows {
                    g.leads.insert((r.try_get("campaign_id")?, r.try_get("status")?), r.try_get("n")?);
                }
                let rows = sqlx::query(
                    "SELECT campaign_id, provider, count(*) AS n FROM call_attempts
                      WHERE state IN ('sending', 'placed') GROUP BY campaign_id, provider",
                )
                .fetch_all(&self.pool)
                .await?;
                for r in rows {
                    g.live.insert((r.try_get("campaign_id")?, r.try_get("provider")?), r.try_get("n")?);
                }
                Ok(g)
            }

            async fn set_provider_pause(&self, pause: &ProviderPause) -> Result<()> {
                sqlx::query(
                    "INSERT INTO provider_pauses (provider, paused_until, reason, since) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (provider) DO UPDATE SET paused_until = $2, reason = $3, since = $4",
                )
                .bind(&pause.provider)
                .bind(due(pause.until))
                .bind(&pause.reason)
                .bind(ts(pause.since))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn clear_provider_pause(&self, provider: &str) -> Result<()> {
                sqlx::query("DELETE FROM provider_pauses WHERE provider = $1")
                    .bind(provider)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn provider_pauses(&self) -> Result<Vec<ProviderPause>> {
                let rows = sqlx::query(
                    "SELECT provider, paused_until, reason, since FROM provider_pauses ORDER BY provider",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let time = |col: &str| {
                            get_ts(r, col)?.ok_or(StoreError::Corrupt {
                                table: "provider_pauses",
                                why: format!("{col} is NULL"),
                            })
                        };
                        Ok(ProviderPause {
                            provider: r.try_get("provider")?,
                            until: time("paused_until")?,
                            reason: r.try_get("reason")?,
                            since: time("since")?,
                        })
                    })
                    .collect()
            }

            async fn unusable_leads(&self, limit: i64) -> Result<Vec<UnusableLead>> {
                let rows = sqlx::query(&format!(
                    "SELECT id, campaign_id, 0 AS why FROM leads WHERE status = 'pending' AND {NO_DUE}
                     UNION ALL
                     SELECT id, campaign_id, 1 AS why FROM leads
                      WHERE status IN ('pending', 'in_progress')
                        AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = leads.campaign_id)
                     ORDER BY 1 LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let why: i32 = r.try_get("why")?;
                        Ok(UnusableLead {
                            id: r.try_get("id")?,
                            campaign_id: r.try_get("campaign_id")?,
                            why: if why == 0 { Unusable::NoDueTime } else { Unusable::UnknownCampaign },
                        })
                    })
                    .collect()
            }

            async fn attempts_per_minute(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>> {
                let rows = sqlx::query(&format!(
                    "SELECT campaign_id, {REQUEST_MINUTE} AS minute, count(*) AS n FROM call_attempts
                      WHERE requested_at >= $1 AND state <> 'not_placed'
                      GROUP BY campaign_id, {REQUEST_MINUTE} ORDER BY 1, 2"
                ))
                .bind(ts(since))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(MinuteCount {
                            campaign_id: r.try_get("campaign_id")?,
                            minute: get_ts(r, "minute")?.ok_or(StoreError::Corrupt {
                                table: "call_attempts",
                                why: "requested_at is NULL".into(),
                            })?,
                            attempts: r.try_get("n")?,
                        })
                    })
                    .collect()
            }

            async fn live_calls_by_provider(&self) -> Result<BTreeMap<String, i64>> {
                let rows = sqlx::query(
                    "SELECT provider, count(*) AS n FROM call_attempts
                      WHERE state IN ('sending', 'placed') GROUP BY provider",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("provider")?, r.try_get("n")?)))
                    .collect()
            }

            async fn sync_outbound_routes(&self, routes: &[OutboundRoute]) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM outbound_routes").execute(&mut *tx).await?;
                for r in routes {
                    let framed = |v: &[String]| format!(",{},", v.join(","));
                    sqlx::query("INSERT INTO outbound_routes (webhook, events, campaigns) VALUES ($1, $2, $3)")
                        .bind(&r.webhook)
                        .bind(framed(&r.events))
                        .bind(r.campaigns.as_deref().map(framed))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn take_outbox(
                &self,
                webhook: &str,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<OutboxEvent>> {
                let rows = sqlx::query(&format!(
                    "UPDATE outbox SET lease_owner = $2, lease_until = $4
                      WHERE id IN (
                        SELECT o.id FROM outbox o
                         WHERE o.webhook = $1 AND o.delivered_at IS NULL AND o.gave_up_at IS NULL
                           AND (o.next_try_at IS NULL OR o.next_try_at <= $3)
                           AND (o.lease_until IS NULL OR o.lease_until <= $3)
                           AND NOT EXISTS (SELECT 1 FROM outbox p
                                WHERE p.webhook = o.webhook AND p.lead_id = o.lead_id AND p.id < o.id
                                  AND p.delivered_at IS NULL AND p.gave_up_at IS NULL)
                         ORDER BY o.id LIMIT $5 {OUTBOX_LOCK})
                      RETURNING id, event_id, event, campaign_id, lead_id, payload, created_at, tries"
                ))
                .bind(webhook)
                .bind(owner)
                .bind(ts(now))
                .bind(due(lease_until))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut events = rows
                    .iter()
                    .map(|r| {
                        let tries: i32 = r.try_get("tries")?;
                        Ok(OutboxEvent {
                            seq: r.try_get("id")?,
                            event_id: r.try_get("event_id")?,
                            event: r.try_get("event")?,
                            campaign_id: r.try_get("campaign_id")?,
                            lead_id: r.try_get("lead_id")?,
                            data: get_json(r, "payload")?.unwrap_or(Value::Null),
                            created_at: get_ts(r, "created_at")?.ok_or(StoreError::Corrupt {
                                table: "outbox",
                                why: "created_at is NULL".into(),
                            })?,
                            tries: tries.into(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                events.sort_by_key(|e| e.seq);
                Ok(events)
            }

            async fn outbox_results(&self, results: &[OutboxResult], now: DateTime<Utc>) -> Result<()> {
                if results.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for r in results {
                    let q = match &r.fate {
                        OutboxFate::Delivered => sqlx::query(
                            "UPDATE outbox SET delivered_at = $2, tries = tries + 1, lease_until = NULL, last_error = NULL
                              WHERE id = $1 AND delivered_at IS NULL",
                        )
                        .bind(r.seq)
                        .bind(ts(now)),
                        OutboxFate::Retry { error, at } => sqlx::query(
                            "UPDATE outbox SET tries = tries + 1, next_try_at = $2, lease_until = NULL, last_error = $3
                              WHERE id = $1 AND delivered_at IS NULL",
                        )
                        .bind(r.seq)
                        .bind(due(*at))
                        .bind(error),
                        OutboxFate::GaveUp { error } => sqlx::query(
                            "UPDATE outbox SET tries = tries + 1, gave_up_at = $2, lease_until = NULL, last_error = $3
                              WHERE id = $1 AND delivered_at IS NULL",
                        )
                        .bind(r.seq)
                        .bind(ts(now))
                        .bind(error),
                    };
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn outbox_backlog(&self) -> Result<BTreeMap<String, (i64, Option<DateTime<Utc>>)>> {
                let rows = sqlx::query(
                    "SELECT webhook, count(*) AS n, min(created_at) AS oldest FROM outbox
                      WHERE delivered_at IS NULL AND gave_up_at IS NULL GROUP BY webhook",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("webhook")?, (r.try_get("n")?, get_ts(r, "oldest")?))))
                    .collect()
            }

            async fn export_page(
                &self,
                campaign_id: &str,
                since: Option<DateTime<Utc>>,
                after_id: i64,
                limit: i64,
            ) -> Result<Vec<ExportLead>> {
                let sql = export_page_sql(since.is_some());
                let mut q = sqlx::query(&sql)
                .bind(campaign_id)
                .bind(after_id)
                .bind(limit);
                if let Some(t) = since {
                    q = q.bind(ts(t));
                }
                let rows = q.fetch_all(&self.pool).await?;
                let mut leads = rows
                    .iter()
                    .map(|r| {
                        Ok(ExportLead {
                            lead: lead_from_row(r)?,
                            updated_at: get_ts(r, "updated_at")?,
                            attempts: Vec::new(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                if leads.is_empty() {
                    return Ok(leads);
                }
                let sql = format!(
                    "SELECT lead_id, id, CAST(attempt AS BIGINT) AS attempt, provider, provider_call_id,
                            from_number, state, outcome, provider_status, hangup_cause, error,
                            requested_at, answered_at, ended_at,
                            CAST(duration_seconds AS BIGINT) AS duration_seconds, summary, recording_url
                       FROM call_attempts WHERE lead_id IN ({}) ORDER BY lead_id, attempt",
                    placeholders(1, leads.len())
                );
                let mut q = sqlx::query(&sql);
                for l in &leads {
                    q = q.bind(l.lead.id);
                }
                let rows = q.fetch_all(&self.pool).await?;
                let at: std::collections::HashMap<i64, usize> =
                    leads.iter().enumerate().map(|(i, l)| (l.lead.id, i)).collect();
                for r in &rows {
                    let lead_id: i64 = r.try_get("lead_id")?;
                    let Some(&i) = at.get(&lead_id) else { continue };
                    leads[i].attempts.push(ExportAttempt {
                        attempt_id: r.try_get("id")?,
                        attempt: r.try_get("attempt")?,
                        provider: r.try_get("provider")?,
                        provider_call_id: r.try_get("provider_call_id")?,
                        from_number: r.try_get("from_number")?,
                        state: r.try_get("state")?,
                        outcome: r.try_get("outcome")?,
                        provider_status: r.try_get("provider_status")?,
                        hangup_cause: r.try_get("hangup_cause")?,
                        error: r.try_get("error")?,
                        requested_at: get_ts(r, "requested_at")?,
                        answered_at: get_ts(r, "answered_at")?,
                        ended_at: get_ts(r, "ended_at")?,
                        duration_seconds: r.try_get("duration_seconds")?,
                        summary: r.try_get("summary")?,
                        recording_url: r.try_get("recording_url")?,
                    });
                }
                Ok(leads)
            }

            async fn outbox_purge(&self, before: DateTime<Utc>) -> Result<u64> {
                let done = sqlx::query("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1")
                    .bind(ts(before))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}
