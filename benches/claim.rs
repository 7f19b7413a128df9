//! The claim at scale: `DIALER_BENCH_LEADS` pending leads (default
//! 10,000,000) of which a tenth are due, spread over four priorities and a
//! month of due times; prints p50/p99 of 200 claims of 100 leads each
//! (`tests/it/plans.rs` asserts the claim's plan). SQLite and, when reachable, PostgreSQL
//! (`DIALER_BENCH_POSTGRES`, an admin URL; default
//! postgres://postgres@127.0.0.1:5432/postgres). `DIALER_BENCH_ONLY=sqlite|postgres`.
//!
//! `cargo bench --bench claim`. Asserts nothing.

use dialer::store::{CampaignRow, ClaimLimits, Store};
mod support;

use std::time::{Duration, Instant};
use support::Raw;

const CLAIMS: usize = 200;

fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-12-01T15:00:00Z".parse().unwrap()
}

const END_CLAIMED: &str = "UPDATE leads SET status = 'completed', daemon_status = 'completed',
    lease_owner = NULL, lease_expires_at = NULL WHERE status = 'in_progress'";

/// Ends the leads a claim took (untimed), as their calls would: a claim
/// sees as many leads in progress as a running campaign has.
async fn end_claimed(raw: &Raw) {
    match raw {
        Raw::Sqlite(p) => sqlx::query(END_CLAIMED).execute(p).await.map(|_| ()),
        Raw::Pg(p) => sqlx::query(END_CLAIMED).execute(p).await.map(|_| ()),
    }
    .unwrap();
}

async fn measure(label: &str, store: &dyn Store, raw: Raw, leads: i64, filled: Duration) {
    store
        .sync_campaigns(
            &[CampaignRow {
                id: "big".into(),
                provider: "sim".into(),
                paused: false,
                config_hash: "h".into(),
            }],
            now(),
        )
        .await
        .unwrap();
    let limits = ClaimLimits {
        campaign_id: "big".into(),
        provider: "sim".into(),
        max_concurrent: 100_000,
        provider_max_concurrent: 100_000,
        batch: 100,
    };
    let mut samples = Vec::with_capacity(CLAIMS);
    for _ in 0..CLAIMS {
        let t = Instant::now();
        let got = store
            .claim(
                &limits,
                "bench",
                now(),
                now() + chrono::Duration::minutes(5),
            )
            .await
            .unwrap();
        samples.push(t.elapsed());
        assert_eq!(got.len(), 100, "a claim took fewer than 100 due leads");
        end_claimed(&raw).await;
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "[{label}] {leads} leads ({} due), filled in {:.0} s: claim of 100 p50 {:.2} ms, p99 {:.2} ms",
        leads / 10,
        filled.as_secs_f64(),
        p(0.50).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3
    );
}

// Due: one lead in ten, over the hour before `now`; the rest over the
// month after it. Priorities 0..=3.
const SQLITE_FILL: &str = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1 - 1)
    INSERT INTO leads (campaign_id, phone, priority, next_attempt_at, daemon_status, daemon_next_attempt_at)
    SELECT 'big', '+1' || (2000000000 + i), i % 4, t, 'pending', t FROM (
      SELECT i, CASE WHEN i % 10 = 0
        THEN strftime('%Y-%m-%dT%H:%M:%SZ', '2026-12-01T15:00:00Z', '-' || (i % 3600) || ' seconds')
        ELSE strftime('%Y-%m-%dT%H:%M:%SZ', '2026-12-01T15:00:00Z', '+' || (1 + i % 2592000) || ' seconds') END AS t
      FROM n)";

const PG_FILL: &str = "INSERT INTO leads (campaign_id, phone, priority, next_attempt_at, daemon_status, daemon_next_attempt_at)
    SELECT 'big', '+1' || (2000000000 + i), i % 4, t, 'pending', t FROM (
      SELECT i, CASE WHEN i % 10 = 0
        THEN timestamptz '2026-12-01 15:00:00Z' - make_interval(secs => i % 3600)
        ELSE timestamptz '2026-12-01 15:00:00Z' + make_interval(secs => 1 + i % 2592000) END AS t
      FROM generate_series(0, $1 - 1) i) s";

#[tokio::main]
async fn main() {
    let leads: i64 = std::env::var("DIALER_BENCH_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let only = std::env::var("DIALER_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("claim.db").display());
        let store = dialer::store::SqliteStore::connect(&url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let t = Instant::now();
        sqlx::query(SQLITE_FILL)
            .bind(leads)
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
        let raw = Raw::Sqlite(store.pool().clone());
        measure("sqlite", &store, raw, leads, t.elapsed()).await;
    }
    if only.is_empty() || only == "postgres" {
        let Some(server) = support::Server::reach().await else {
            return;
        };
        let name = format!("dialer_bench_claim_{}", std::process::id());
        let url = server.create(&name).await;
        let store = dialer::store::PgStore::connect(&url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let t = Instant::now();
        sqlx::query(PG_FILL)
            .bind(leads)
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("VACUUM ANALYZE leads")
            .execute(store.pool())
            .await
            .unwrap();
        let raw = Raw::Pg(store.pool().clone());
        measure("postgres", &store, raw, leads, t.elapsed()).await;
        drop(store);
        server.drop_database(&name).await;
    }
}
