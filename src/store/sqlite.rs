//! SQLite dialect (the embedded default). WAL mode with `synchronous = FULL`:
//! the `sending` attempt row must be on disk before the request leaves, or a
//! power loss could forget an attempt whose call was placed. Every
//! transaction starts with a write, so it takes the write lock at once
//! rather than failing to upgrade later. Times are RFC 3339 text (whole
//! seconds, `Z`), whose text order is time order; a trigger normalises due
//! times that other systems write in SQLite's own forms.

use super::group::{distinct_runs, padded, values, Group, Tx};
use super::shared::{
    begin_attempts_sql, begin_leads_sql, caller_id_use_sql, claimed, dnc_of_sql, export_page_sql,
    find_attempt_sql, move_leads_sql, open_attempts_sql, placed_attempts_sql, placed_leads_sql,
    placeholders, priority_levels, recent_attempts_of_sql, settle_set_sql, BeginArgs, PlacedArgs,
    SettleArgs, AS_LEFT, COUNTED, DNC_ONE_SQL, DUE_PRIORITIES_SQL, HAS_OPEN_CALL, LEAD_COLS,
    NEXT_DUE_SQL, NUMBER_ATTEMPTS_SQL,
};
use super::*;
use crate::domain::{ceil_second, rfc3339};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Writes grouped into shared transactions (`group`).
    group: Group<sqlx::Sqlite>,
}

/// A due time the claim cannot compare as text.
const NO_DUE: &str = "(next_attempt_at IS NULL OR next_attempt_at NOT GLOB \
    '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z')";

fn ts(t: DateTime<Utc>) -> String {
    rfc3339(t)
}

fn due(t: DateTime<Utc>) -> String {
    rfc3339(ceil_second(t))
}

fn json(v: Value) -> String {
    v.to_string()
}

/// Reads a stored time; accepts the RFC 3339 form and SQLite's own
/// `YYYY-MM-DD HH:MM:SS` form.
fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .map(|n| n.and_utc())
        .map_err(|_| StoreError::Corrupt {
            table: "leads",
            why: format!("`{s}` is not an RFC 3339 time"),
        })
}

fn get_ts(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    let s: Option<String> = row.try_get(col)?;
    s.as_deref().map(parse_ts).transpose()
}

/// JSON is TEXT here; text that is not JSON reads as a JSON string, which
/// the row mapping reports like any other non-object.
fn get_json(row: &SqliteRow, col: &str) -> Result<Option<Value>> {
    let s: Option<String> = row.try_get(col)?;
    Ok(s.map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s))))
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(opts)
            .await?;
        let group = Group::start(pool.clone(), 1);
        Ok(SqliteStore { pool, group })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The claim is one statement: SQLite has one writer, so counting the leads
/// in progress and taking new ones cannot interleave with another claim.
const CLAIM_LOCK: Option<&str> = None;

/// The outbox lease: SQLite's single writer already serialises it.
const OUTBOX_LOCK: &str = "";

/// `begin_attempt` writes first, which takes the single write lock for the
/// whole transaction: no other attempt to any number can commit meanwhile.
const NUMBER_LOCK: Option<&str> = None;

/// Likewise for the choice of a capped caller ID.
const CALLER_ID_LOCK: Option<&str> = None;

/// The insert of an attempt takes the write lock before it reads the lead.
const LOCK_LEAD: &str = "";

/// The attempts' insert reads each lead by its rowid (which `NOT INDEXED`
/// still allows), never a walk of the leads in progress per row.
const LEAD_BY_ID: &str = "NOT INDEXED";

const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// One arm per priority level of the campaign `campaign`'s pending leads
/// due at `now` (placeholders), each an index range of `leads_claim`
/// already in the claim's order: the claim's walk and the look's.
fn pending_arms(levels: &[String], campaign: &str, now: &str) -> Vec<String> {
    levels
        .iter()
        .map(|level| {
            format!(
                "SELECT priority, next_attempt_at, id FROM leads INDEXED BY leads_claim
                  WHERE campaign_id = {campaign} AND status = 'pending' AND {level}
                    AND next_attempt_at <= {now} AND NOT {HAS_OPEN_CALL}"
            )
        })
        .collect()
}

fn claim_sql(levels: &[String]) -> String {
    // One arm per priority level (see `priority_levels`), each an index
    // range of `leads_claim` already in the claim's order, and one for
    // leads in progress whose lease ran out (few: the concurrency caps
    // bound them); SQLite merges the arms (`MERGE (UNION ALL)`) and stops
    // at the limit, so no due lead is sorted and no lead due later is read.
    // `INDEXED BY` holds the plan: with some statistics the planner prefers
    // `leads_due`'s range on the due time and then sorts every due lead.
    let mut arms = pending_arms(levels, "$4", "$3");
    arms.push(format!(
        "SELECT priority, next_attempt_at, id FROM leads INDEXED BY leads_claim
          WHERE campaign_id = $4 AND status = 'in_progress' AND next_attempt_at <= $3
            AND lease_expires_at <= $3 AND NOT {HAS_OPEN_CALL}"
    ));
    format!(
        "UPDATE leads SET status = 'in_progress', daemon_status = 'in_progress',
                daemon_next_attempt_at = next_attempt_at,
                lease_owner = $1, lease_expires_at = $2, updated_at = $3
         WHERE id IN (
           SELECT id FROM (
             {}
             ORDER BY 1 DESC, 2, 3
             LIMIT max(0, min($5,
               $6 - (SELECT count(*) FROM leads WHERE campaign_id = $4 AND status = 'in_progress' AND lease_expires_at > $3),
               $7 - (SELECT count(*) FROM leads p JOIN campaigns cp ON cp.id = p.campaign_id
                      WHERE cp.provider = $8 AND p.status = 'in_progress' AND p.lease_expires_at > $3)))
           )
         )
         RETURNING {}, {COUNTED} + 1 AS next_attempt",
        arms.join("\n             UNION ALL\n             "),
        LEAD_COLS.replace("l.", "")
    )
}

/// The columns a look compares before it moves a lead, as one text: the
/// same expression when the lead is read and when it is moved.
const SEEN: &str = "json_array(leads.status, leads.daemon_status, leads.next_attempt_at, \
    leads.daemon_next_attempt_at, leads.attempts, leads.updated_at)";

/// `look`: the claim's walk over the pending levels (`$1` campaign, `$2`
/// now, `$3` most leads; at least one level), read rather than taken.
fn look_sql(levels: &[String]) -> String {
    let arms = pending_arms(levels, "$1", "$2");
    format!(
        "SELECT {}, {SEEN} AS seen FROM leads
          WHERE id IN (
            SELECT id FROM (
              {}
              ORDER BY 1 DESC, 2, 3 LIMIT $3
            )
          )",
        LEAD_COLS.replace("l.", "leads."),
        arms.join("\n              UNION ALL\n              ")
    )
}

/// The daemon writes `requested_at` as `YYYY-MM-DDTHH:MM:SSZ`: its first 16
/// characters are the minute.
const REQUEST_MINUTE: &str = "(substr(requested_at, 1, 16) || ':00Z')";

/// SQLite's two-argument `max` is the scalar one.
const GREATEST: &str = "max";

/// How the plan test and benches read a query's plan.
const EXPLAIN: &str = "EXPLAIN QUERY PLAN ";
const PLAN_SETUP: Option<&str> = None;

/// One line per step, as SQLite prints them (`SEARCH leads USING ...`).
fn plan_text(rows: &[SqliteRow]) -> Result<String> {
    let mut out = String::new();
    for row in rows {
        let detail: String = row.try_get("detail")?;
        out.push_str(&detail);
        out.push('\n');
    }
    Ok(out)
}

/// Inserts a batch of new leads in one statement. The rows travel as one
/// JSON array that SQLite unpacks with `json_each`, in order, so nothing is
/// bound per row: binding seven parameters a row cost more than writing the
/// rows. Returns how many were inserted (numbers the campaign holds are
/// skipped).
async fn insert_leads_on(
    conn: &mut sqlx::SqliteConnection,
    campaign_id: &str,
    leads: &[NewLead],
    now: String,
) -> Result<u64> {
    let rows: Vec<(&str, Option<&str>, Option<&str>, String)> = leads
        .iter()
        .map(|l| {
            (
                l.phone.as_str(),
                l.name.as_deref(),
                l.timezone.as_deref(),
                serde_json::to_string(&l.variables).unwrap_or_default(),
            )
        })
        .collect();
    // Strings and nulls only: serialising cannot fail.
    let rows = serde_json::to_string(&rows).unwrap_or_default();
    let done = sqlx::query(
        "INSERT INTO leads (campaign_id, phone, name, timezone, variables, status, daemon_status,
                            next_attempt_at, daemon_next_attempt_at, created_at, updated_at)
         SELECT $1, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, 'pending', 'pending',
                $2, $2, $2, $2
           FROM json_each($3) AS r
          WHERE true
          ORDER BY r.key
         ON CONFLICT (campaign_id, phone) DO NOTHING",
    )
    .bind(campaign_id)
    .bind(now)
    .bind(rows)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Moves many leads to their `next` in one statement, the rows travelling
/// as one JSON array `[id, status, due, outcome, key]`: each only where
/// `cond` holds for it (`r.value ->> 4` is its `key`). Returns how many moved.
async fn move_leads_on<'a>(
    conn: &mut sqlx::SqliteConnection,
    leads: impl Iterator<Item = (i64, &'a LeadNext, &'a str)>,
    now: String,
    cond: &str,
) -> Result<u64> {
    let rows: Vec<_> = leads
        .map(|(id, next, key)| {
            serde_json::json!([
                id,
                next.status.as_str(),
                next.next_attempt_at.map(due),
                next.last_outcome,
                key,
            ])
        })
        .collect();
    // Numbers, strings and nulls only: serialising cannot fail.
    let rows = serde_json::to_string(&rows).unwrap_or_default();
    let done = sqlx::query(&format!(
        "UPDATE leads SET status = r.value ->> 1, daemon_status = r.value ->> 1,
                next_attempt_at = COALESCE(r.value ->> 2, next_attempt_at),
                daemon_next_attempt_at = COALESCE(r.value ->> 2, next_attempt_at),
                last_outcome = COALESCE(r.value ->> 3, last_outcome),
                lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
           FROM json_each($2) AS r
          WHERE leads.id = r.value ->> 0 AND {cond}"
    ))
    .bind(now)
    .bind(rows)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// `release` of many claimed leads in one statement: each is changed only
/// if still held by its claim and as the daemon left it.
async fn release_all_on(
    conn: &mut sqlx::SqliteConnection,
    leads: &[(ClaimedLead, LeadNext)],
    now: String,
) -> Result<()> {
    let rows = leads
        .iter()
        .map(|(l, next)| (l.lead.id, next, l.lease_owner.as_str()));
    let cond =
        format!("leads.status = 'in_progress' AND leads.lease_owner = r.value ->> 4 AND {AS_LEFT}");
    move_leads_on(conn, rows, now, &cond).await.map(|_| ())
}

/// `reschedule_all` in one statement: each lead moved only while its
/// `SEEN` columns are as read.
async fn reschedule_all_on(
    conn: &mut sqlx::SqliteConnection,
    leads: &[(LookedLead, LeadNext)],
    now: String,
) -> Result<u64> {
    let rows = leads
        .iter()
        .map(|(l, next)| (l.lead.id, next, l.seen.as_str()));
    move_leads_on(conn, rows, now, &format!("{SEEN} = r.value ->> 4")).await
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

store_impl!(SqliteStore, sqlx::Sqlite, SqliteRow);
