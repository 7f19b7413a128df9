//! Dispatch throughput: how fast the whole daemon (claim, rules, attempt
//! rows, place, poll, settle) moves leads through a simulated provider
//! whose calls end at once, with no pacing limit that binds. Prints calls
//! placed/s and leads settled/s for each run and the median of the runs, on
//! SQLite and, when reachable, PostgreSQL.
//!
//! `cargo bench --bench dispatch`; `DIALER_BENCH_LEADS` (default 100000),
//! `DIALER_BENCH_RUNS` (default 3), `DIALER_BENCH_POSTGRES` (an admin URL;
//! default postgres://postgres@127.0.0.1:5432/postgres),
//! `DIALER_BENCH_ONLY=sqlite|postgres`. Asserts nothing.

use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::Store;
use std::sync::Arc;
mod support;

use std::time::{Duration, Instant};
use support::{env_or, leads, median, Raw};

const LIMIT: Duration = Duration::from_secs(600);

fn config(dir: &std::path::Path, url: &str) -> dialer::config::Loaded {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        format!(
            r#"campaigns_dir = "campaigns"
[database]
url = "{url}"
max_connections = {conns}
[log]
level = "error"
[providers.sim]
kind = "simulated"
min_duration = "0s"
max_duration = "0s"
requests_per_minute = 1000000
max_concurrent_calls = 100000
poll_interval = "100ms"
outcomes = {{ completed = 1.0 }}
"#,
            conns = env_or("DIALER_BENCH_CONNECTIONS", 8)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/fast.toml"),
        r#"id = "fast"
provider = "sim"
timezone = "America/New_York"
[pacing]
calls_per_minute = 1000000
burst = 10000
max_concurrent = 100000
[compliance]
local_hours = "off"
"#,
    )
    .unwrap();
    dialer::config::load(&dir.join("dialer.toml")).unwrap_or_else(|e| panic!("{e}"))
}

struct Figures {
    placed_per_s: f64,
    settled_per_s: f64,
}

/// Whether a lead is still without its attempt, and whether one is still
/// open, read straight from the database. Every lead gets one attempt
/// (`last_attempt_at` is written with it) and ends final, so these tell
/// when all were placed and all settled. Index seeks on `leads_claim` and
/// `leads_in_progress` that stop at the first such lead: counting every
/// attempt and lead ten times a second beside the daemon cost more with
/// every lead.
const LEFT: &str = "SELECT
        CASE WHEN EXISTS (SELECT 1 FROM leads WHERE campaign_id = 'fast' AND status = 'pending'
                                                 AND last_attempt_at IS NULL)
               OR EXISTS (SELECT 1 FROM leads WHERE status = 'in_progress' AND last_attempt_at IS NULL)
             THEN 1 ELSE 0 END,
        CASE WHEN EXISTS (SELECT 1 FROM leads WHERE campaign_id = 'fast' AND status = 'pending')
               OR EXISTS (SELECT 1 FROM leads WHERE status = 'in_progress')
             THEN 1 ELSE 0 END";

/// (some lead not placed yet, some lead not final yet)
async fn left(raw: &Raw) -> (bool, bool) {
    let (unplaced, open): (i32, i32) = match raw {
        Raw::Sqlite(p) => sqlx::query_as(LEFT).fetch_one(p).await.unwrap(),
        Raw::Pg(p) => sqlx::query_as(LEFT).fetch_one(p).await.unwrap(),
    };
    (unplaced == 1, open == 1)
}

async fn one_run(
    store: Arc<dyn Store>,
    raw: Raw,
    loaded: &dialer::config::Loaded,
    n: usize,
) -> Figures {
    store.migrate().await.unwrap();
    let daemon = Daemon::new(store.clone(), Clock::system(), loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    for chunk in leads(n).chunks(10_000) {
        store
            .insert_leads("fast", chunk, chrono::Utc::now())
            .await
            .unwrap();
    }
    let running = engine::start(daemon, None);
    let started = Instant::now();
    let (mut placed_at, mut settled_at) = (None, None);
    while started.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (unplaced, open) = left(&raw).await;
        if placed_at.is_none() && !unplaced {
            placed_at = Some(started.elapsed());
        }
        if !open {
            settled_at = Some(started.elapsed());
            break;
        }
    }
    running.stop(Duration::from_secs(5)).await;
    let rate = |t: Option<Duration>| t.map_or(0.0, |t| n as f64 / t.as_secs_f64());
    Figures {
        placed_per_s: rate(placed_at),
        settled_per_s: rate(settled_at),
    }
}

fn report(label: &str, runs: Vec<Figures>) {
    for (i, f) in runs.iter().enumerate() {
        println!(
            "[{label}] run {}: {:.0} calls placed/s, {:.0} leads settled/s",
            i + 1,
            f.placed_per_s,
            f.settled_per_s
        );
    }
    println!(
        "[{label}] median of {}: {:.0} calls placed/s, {:.0} leads settled/s",
        runs.len(),
        median(runs.iter().map(|f| f.placed_per_s).collect()),
        median(runs.iter().map(|f| f.settled_per_s).collect())
    );
}

#[tokio::main]
async fn main() {
    let n = env_or("DIALER_BENCH_LEADS", 100_000);
    let runs = env_or("DIALER_BENCH_RUNS", 3);
    let only = std::env::var("DIALER_BENCH_ONLY").unwrap_or_default();
    println!("dispatch: {n} leads, simulated provider, calls end at once, {runs} runs per backend");

    if only.is_empty() || only == "sqlite" {
        let mut figures = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let loaded = config(dir.path(), &url);
            let store = dialer::store::SqliteStore::connect(&url, 8).await.unwrap();
            let raw = Raw::Sqlite(store.pool().clone());
            figures.push(one_run(Arc::new(store), raw, &loaded, n).await);
        }
        report("sqlite", figures);
    }

    if only.is_empty() || only == "postgres" {
        let Some(server) = support::Server::reach().await else {
            return;
        };
        let mut figures = Vec::new();
        for i in 0..runs {
            let name = format!("dialer_bench_dispatch_{}_{i}", std::process::id());
            let url = server.create(&name).await;
            let dir = tempfile::tempdir().unwrap();
            let loaded = config(dir.path(), &url);
            let store = dialer::store::PgStore::connect(&url, 8).await.unwrap();
            let raw = Raw::Pg(store.pool().clone());
            figures.push(one_run(Arc::new(store), raw, &loaded, n).await);
            server.drop_database(&name).await;
        }
        report("postgres", figures);
    }
}
