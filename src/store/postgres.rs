//! PostgreSQL dialect (for scale-out: several daemons on one database). The
//! claim takes a transaction-scoped advisory lock per provider, so counting
//! the calls in progress and taking new leads is atomic across daemons, and
//! selects with `FOR UPDATE SKIP LOCKED`. Times are `timestamptz`, stored in
//! whole seconds like SQLite's; JSON is `jsonb`.

use super::group::{distinct_runs, padded, values, Group, Tx};
use super::shared::{
    begin_attempts_sql, begin_leads_sql, caller_id_use_sql, claimed, dnc_of_sql, export_page_sql,
    find_attempt_sql, move_leads_sql, open_attempts_sql, placed_attempts_sql, placed_leads_sql,
    placeholders, priority_levels, recent_attempts_of_sql, settle_set_sql, BeginArgs, PlacedArgs,
    SettleArgs, AS_LEFT, COUNTED, DNC_ONE_SQL, DUE_PRIORITIES_SQL, HAS_OPEN_CALL, LEAD_COLS,
    NEXT_DUE_SQL, NUMBER_ATTEMPTS_SQL,
};
use super::*;
use crate::domain::ceil_second;
use chrono::SubsecRound;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

pub struct PgStore {
    pool: PgPool,
    /// Writes grouped into shared transactions (`group`).
    group: Group<sqlx::Postgres>,
}

/// A due time the claim cannot compare (a `timestamptz` is always readable).
const NO_DUE: &str = "next_attempt_at IS NULL";

fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

fn due(t: DateTime<Utc>) -> DateTime<Utc> {
    ceil_second(t)
}

fn json(v: Value) -> Value {
    v
}

fn get_ts(row: &PgRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get(col)?)
}

fn get_json(row: &PgRow, col: &str) -> Result<Option<Value>> {
    Ok(row.try_get(col)?)
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        // Two writers for the default eight connections: one commits while
        // the other runs its group; the rest of the pool serves reads.
        let group = Group::start(pool.clone(), (max_connections as usize / 4).clamp(1, 4));
        Ok(PgStore { pool, group })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Serialises claims per provider across daemons, so the counts of leads in
/// progress in the claim cannot be read stale by two claimers.
///
/// The claim's commit does not wait for its WAL to reach the disk
/// (`synchronous_commit` off for this transaction alone): a claim only
/// leases leads, and no request leaves before the attempt's own commit,
/// which waits for the WAL up to its commit, the claim's with it. A server
/// crash may lose the lease, never an attempt: the lead is pending again,
/// and the holder's `begin_attempt` finds it not held.
const CLAIM_LOCK: Option<&str> = Some(
    "SELECT pg_advisory_xact_lock(hashtext('dialer.claim:' || $1)),
            set_config('synchronous_commit', 'off', true)",
);

/// The outbox lease: another daemon skips the events being leased.
const OUTBOX_LOCK: &str = "FOR UPDATE SKIP LOCKED";

/// Serialises `begin_attempt` per phone number across daemons: its count of
/// the number's attempts and its insert are one step for every campaign.
/// The numbers are rows `{values}` (`NULL` for none), locked in the order of
/// their keys.
const NUMBER_LOCK: Option<&str> = Some(
    "SELECT pg_advisory_xact_lock(k) FROM
       (SELECT hashtext('dialer.number:' || column1) AS k FROM ({values}) AS v
         WHERE column1 IS NOT NULL ORDER BY k) AS keys",
);

/// Serialises the choice of a capped caller ID across daemons: its count of
/// each number's attempts and the insert are one step for every campaign.
const CALLER_ID_LOCK: Option<&str> =
    Some("SELECT pg_advisory_xact_lock(hashtext('dialer.caller_id'))");

/// The lead row `begin_attempt` reads is locked until its transaction ends,
/// and read as of that lock: no other writer changes it in between.
const LOCK_LEAD: &str = "FOR UPDATE OF leads";

/// The planner reads each lead of the attempts' insert by its key.
const LEAD_BY_ID: &str = "";

const BEGIN_WRITE: &str = "BEGIN";

/// One arm per priority level of the campaign `campaign`'s pending leads
/// due at `now`, at most `limit` each (placeholders or SQL), each an index
/// range of `leads_claim` already in the claim's order: the claim's walk
/// and the look's.
fn pending_arms(levels: &[String], campaign: &str, now: &str, limit: &str) -> Vec<String> {
    levels
        .iter()
        .map(|level| {
            format!(
                "(SELECT id, priority, next_attempt_at FROM leads
                   WHERE campaign_id = {campaign} AND status = 'pending' AND {level}
                     AND next_attempt_at <= {now} AND NOT {HAS_OPEN_CALL}
                   ORDER BY priority DESC, next_attempt_at, id LIMIT {limit})"
            )
        })
        .collect()
}

fn claim_sql(levels: &[String]) -> String {
    // `candidates`: one arm per priority level (see `priority_levels`), each
    // an index range of `leads_claim` already in the claim's order, and one
    // for leads in progress whose lease ran out, merged (`Merge Append`)
    // up to the limit: no due lead is sorted and no lead due later is read.
    // `picked` then locks them, checking again each row's state as of the
    // lock (a row another transaction changed meanwhile is read as it is
    // now, and a row locked by one is skipped).
    let mut arms = pending_arms(levels, "$4", "$3", "(SELECT n FROM limits)");
    arms.push(format!(
        "(SELECT id, priority, next_attempt_at FROM leads
           WHERE campaign_id = $4 AND status = 'in_progress' AND next_attempt_at <= $3
             AND lease_expires_at <= $3 AND NOT {HAS_OPEN_CALL}
           ORDER BY priority DESC, next_attempt_at, id LIMIT (SELECT n FROM limits))"
    ));
    format!(
        "WITH limits AS (
           SELECT greatest(0, least($5,
             $6 - (SELECT count(*) FROM leads WHERE campaign_id = $4 AND status = 'in_progress' AND lease_expires_at > $3),
             $7 - (SELECT count(*) FROM leads p JOIN campaigns cp ON cp.id = p.campaign_id
                    WHERE cp.provider = $8 AND p.status = 'in_progress' AND p.lease_expires_at > $3))) AS n
         ), candidates AS (
           SELECT * FROM (
           {}
           ) arms ORDER BY priority DESC, next_attempt_at, id LIMIT (SELECT n FROM limits)
         ), picked AS (
           SELECT id FROM leads
            WHERE id IN (SELECT id FROM candidates) AND next_attempt_at <= $3
              AND (status = 'pending' OR (status = 'in_progress' AND lease_expires_at <= $3))
              AND NOT {HAS_OPEN_CALL}
            FOR UPDATE SKIP LOCKED
         )
         UPDATE leads SET status = 'in_progress', daemon_status = 'in_progress',
                daemon_next_attempt_at = next_attempt_at,
                lease_owner = $1, lease_expires_at = $2, updated_at = $3
           FROM picked WHERE leads.id = picked.id
         RETURNING {}, {COUNTED} + 1 AS next_attempt",
        arms.join("\n           UNION ALL\n           "),
        LEAD_COLS.replace("l.", "leads.")
    )
}

/// The columns a look compares before it moves a lead, as one text: the
/// same expression when the lead is read and when it is moved (times as
/// epoch seconds, which no session setting changes).
const SEEN: &str = "json_build_array(leads.status, leads.daemon_status, \
    extract(epoch FROM leads.next_attempt_at), extract(epoch FROM leads.daemon_next_attempt_at), \
    leads.attempts, extract(epoch FROM leads.updated_at))::text";

/// `look`: the claim's walk over the pending levels (`$1` campaign, `$2`
/// now, `$3` most leads; at least one level), read rather than taken: no lock, no row locked.
fn look_sql(levels: &[String]) -> String {
    let arms = pending_arms(levels, "$1", "$2", "$3");
    format!(
        "SELECT {}, {SEEN} AS seen FROM leads
          WHERE id IN (
            SELECT id FROM (
            {}
            ) arms ORDER BY priority DESC, next_attempt_at, id LIMIT $3
          )",
        LEAD_COLS.replace("l.", "leads."),
        arms.join("\n            UNION ALL\n            ")
    )
}

const GREATEST: &str = "greatest";

/// Minutes are whole in every zone's offset, so the session's time zone does
/// not move the cut.
const REQUEST_MINUTE: &str = "date_trunc('minute', requested_at)";

/// How the plan test and benches read a query's plan.
const EXPLAIN: &str = "EXPLAIN ";
/// With sequential scans priced out, a plan that still scans a table has no
/// index to use, whatever the table's size in the test.
const PLAN_SETUP: Option<&str> = Some("SET LOCAL enable_seqscan = off");

fn plan_text(rows: &[PgRow]) -> Result<String> {
    let mut out = String::new();
    for row in rows {
        let line: String = row.try_get(0)?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// Inserts a batch of new leads in one statement: each column travels as
/// one array that `UNNEST` zips back into rows, in order, so the statement
/// has six parameters whatever the batch's size. Returns how many were
/// inserted (numbers the campaign holds are skipped).
async fn insert_leads_on(
    conn: &mut sqlx::PgConnection,
    campaign_id: &str,
    leads: &[NewLead],
    now: DateTime<Utc>,
) -> Result<u64> {
    let phones: Vec<&str> = leads.iter().map(|l| l.phone.as_str()).collect();
    let names: Vec<Option<&str>> = leads.iter().map(|l| l.name.as_deref()).collect();
    let zones: Vec<Option<&str>> = leads.iter().map(|l| l.timezone.as_deref()).collect();
    let variables: Vec<String> = leads
        .iter()
        .map(|l| serde_json::to_string(&l.variables).unwrap_or_default())
        .collect();
    let done = sqlx::query(
        "INSERT INTO leads (campaign_id, phone, name, timezone, variables, status, daemon_status,
                            next_attempt_at, daemon_next_attempt_at, created_at, updated_at)
         SELECT $1, r.phone, r.name, r.timezone, r.variables::jsonb, 'pending', 'pending',
                $2, $2, $2, $2
           FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[])
                WITH ORDINALITY AS r(phone, name, timezone, variables, n)
          ORDER BY r.n
         ON CONFLICT (campaign_id, phone) DO NOTHING",
    )
    .bind(campaign_id)
    .bind(now)
    .bind(phones)
    .bind(names)
    .bind(zones)
    .bind(variables)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Moves many leads to their `next` in one statement, each column as one
/// array: each only where `cond` holds for it (`r.r_key` is its `key`).
/// Returns how many moved.
async fn move_leads_on<'a>(
    conn: &mut sqlx::PgConnection,
    leads: impl Iterator<Item = (i64, &'a LeadNext, &'a str)>,
    now: DateTime<Utc>,
    cond: &str,
) -> Result<u64> {
    let (mut ids, mut statuses, mut dues, mut outcomes, mut keys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, next, key) in leads {
        ids.push(id);
        statuses.push(next.status.as_str());
        dues.push(next.next_attempt_at.map(due));
        outcomes.push(next.last_outcome.as_deref());
        keys.push(key);
    }
    let done = sqlx::query(&format!(
        "UPDATE leads SET status = r.r_status, daemon_status = r.r_status,
                next_attempt_at = COALESCE(r.r_due, leads.next_attempt_at),
                daemon_next_attempt_at = COALESCE(r.r_due, leads.next_attempt_at),
                last_outcome = COALESCE(r.r_outcome, leads.last_outcome),
                lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
           FROM UNNEST($2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
                AS r(r_id, r_status, r_due, r_outcome, r_key)
          WHERE leads.id = r.r_id AND {cond}"
    ))
    .bind(now)
    .bind(ids)
    .bind(statuses)
    .bind(dues)
    .bind(outcomes)
    .bind(keys)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// `release` of many claimed leads in one statement: each is changed only
/// if still held by its claim and as the daemon left it.
async fn release_all_on(
    conn: &mut sqlx::PgConnection,
    leads: &[(ClaimedLead, LeadNext)],
    now: DateTime<Utc>,
) -> Result<()> {
    let rows = leads
        .iter()
        .map(|(l, next)| (l.lead.id, next, l.lease_owner.as_str()));
    let cond =
        format!("leads.status = 'in_progress' AND leads.lease_owner = r.r_key AND {AS_LEFT}");
    move_leads_on(conn, rows, now, &cond).await.map(|_| ())
}

/// `reschedule_all` in one statement: each lead moved only while its
/// `SEEN` columns are as read.
async fn reschedule_all_on(
    conn: &mut sqlx::PgConnection,
    leads: &[(LookedLead, LeadNext)],
    now: DateTime<Utc>,
) -> Result<u64> {
    let rows = leads
        .iter()
        .map(|(l, next)| (l.lead.id, next, l.seen.as_str()));
    move_leads_on(conn, rows, now, &format!("{SEEN} = r.r_key")).await
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

store_impl!(PgStore, sqlx::Postgres, PgRow);
