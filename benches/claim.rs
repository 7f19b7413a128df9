//! The claim at scale: `DIALER_BENCH_LEADS` pending leads (default
//! 10,000,000) of which a tenth are due, spread over four priorities and a
//! month of due times; prints p50/p99 of 200 claims of 100 leads each
//! (`tests/it/plans.rs` asserts the claim's plan). Then it starts the
//! release binary's `dialer run` on the same database (simulated provider)
//! and prints the time from its start to its first committed attempt, and
//! its peak RSS over 20 s of dialling. SQLite and, when reachable, PostgreSQL
//! (`DIALER_BENCH_POSTGRES`, an admin URL; default
//! postgres://postgres@127.0.0.1:5432/postgres). `DIALER_BENCH_ONLY=sqlite|postgres`.
//!
//! `cargo build --release && cargo bench --bench claim`. Asserts nothing.

use dialer::store::{CampaignRow, ClaimLimits, Store};
mod support;

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{binary, peak_kib, Raw};

const CLAIMS: usize = 200;
/// How long `dialer run` dials after its first call, for its peak RSS.
const RUN: Duration = Duration::from_secs(20);

/// The bench's "now": the real time at its start, so that `dialer run`, on
/// the system clock, finds the same leads due.
fn now() -> chrono::DateTime<chrono::Utc> {
    static NOW: OnceLock<chrono::DateTime<chrono::Utc>> = OnceLock::new();
    *NOW.get_or_init(|| {
        use chrono::SubsecRound;
        chrono::Utc::now().trunc_subsecs(0)
    })
}

async fn attempts(raw: &Raw) -> i64 {
    const SQL: &str = "SELECT count(*) FROM call_attempts";
    match raw {
        Raw::Sqlite(p) => sqlx::query_scalar(SQL).fetch_one(p).await.unwrap(),
        Raw::Pg(p) => sqlx::query_scalar(SQL).fetch_one(p).await.unwrap(),
    }
}

/// `dialer run` on the filled database: seconds from its start to the first
/// attempt row committed, then its peak RSS while it dials for `RUN`.
async fn first_call(label: &str, url: &str, raw: &Raw, leads: i64) {
    if !binary().exists() {
        println!(
            "[{label}] dialer run: {} not built; skipped (cargo build --release)",
            binary().display()
        );
        return;
    }
    // The leads the claims above took and ended are due again: the daemon
    // starts with every due lead of the fill waiting.
    const AGAIN: &str = "UPDATE leads SET status = 'pending', daemon_status = 'pending' \
                         WHERE status = 'completed'";
    match raw {
        Raw::Sqlite(p) => sqlx::query(AGAIN).execute(p).await.map(|_| ()),
        Raw::Pg(p) => sqlx::query(AGAIN).execute(p).await.map(|_| ()),
    }
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    std::fs::write(
        dir.path().join("dialer.toml"),
        format!(
            "campaigns_dir = \"campaigns\"\n[database]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\n\
             [providers.sim]\nkind = \"simulated\"\nmin_duration = \"1s\"\nmax_duration = \"2s\"\n\
             requests_per_minute = 6000\nmax_concurrent_calls = 100\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("campaigns/big.toml"),
        "id = \"big\"\nprovider = \"sim\"\ntimezone = \"America/New_York\"\n\
         [pacing]\ncalls_per_minute = 6000\nmax_concurrent = 100\n[compliance]\nlocal_hours = \"off\"\n",
    )
    .unwrap();
    let started = Instant::now();
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(dir.path().join("dialer.toml"))
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let first = loop {
        peak = peak.max(peak_kib(child.id()).unwrap_or(0));
        if attempts(raw).await > 0 {
            break Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(300) || child.try_wait().unwrap().is_some() {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let dialling = Instant::now();
    while first.is_some() && dialling.elapsed() < RUN {
        peak = peak.max(peak_kib(child.id()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let placed = attempts(raw).await;
    match first {
        Some(t) => println!(
            "[{label}] dialer run on {leads} leads: first attempt committed {:.2} s after start; \
             peak RSS {:.1} MiB; {placed} attempts in {:.0} s",
            t.as_secs_f64(),
            peak as f64 / 1024.0,
            (t + RUN).as_secs_f64()
        ),
        None => println!("[{label}] dialer run on {leads} leads: no attempt within 300 s"),
    }
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
    SELECT 'big', '+1' || (2122000000 + i), i % 4, t, 'pending', t FROM (
      SELECT i, CASE WHEN i % 10 = 0
        THEN strftime('%Y-%m-%dT%H:%M:%SZ', $2, '-' || (i % 3600) || ' seconds')
        ELSE strftime('%Y-%m-%dT%H:%M:%SZ', $2, '+' || (1 + i % 2592000) || ' seconds') END AS t
      FROM n)";

const PG_FILL: &str = "INSERT INTO leads (campaign_id, phone, priority, next_attempt_at, daemon_status, daemon_next_attempt_at)
    SELECT 'big', '+1' || (2122000000 + i), i % 4, t, 'pending', t FROM (
      SELECT i, CASE WHEN i % 10 = 0
        THEN $2::timestamptz - make_interval(secs => i % 3600)
        ELSE $2::timestamptz + make_interval(secs => 1 + i % 2592000) END AS t
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
            .bind(dialer::domain::rfc3339(now()))
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
        let raw = Raw::Sqlite(store.pool().clone());
        measure("sqlite", &store, raw.clone(), leads, t.elapsed()).await;
        first_call("sqlite", &url, &raw, leads).await;
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
            .bind(now())
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("VACUUM ANALYZE leads")
            .execute(store.pool())
            .await
            .unwrap();
        let raw = Raw::Pg(store.pool().clone());
        measure("postgres", &store, raw.clone(), leads, t.elapsed()).await;
        first_call("postgres", &url, &raw, leads).await;
        drop(store);
        server.drop_database(&name).await;
    }
}
