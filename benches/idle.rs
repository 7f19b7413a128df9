//! With 1,000,000 pending leads of which none is callable (the window is
//! closed until tomorrow), how much CPU does the daemon use while it waits?
//! And what does one claim cost with that many leads in the table? And while
//! a campaign with many due leads sits at `max_concurrent` with long calls?
//!
//! `cargo bench --bench idle` (SQLite; set DIALER_BENCH_POSTGRES=postgres://...
//! to run it on PostgreSQL too; DIALER_BENCH_ONLY=full runs only the
//! full-campaign figure, DIALER_BENCH_FULL sets its number of leads;
//! DIALER_BENCH_ONLY=first runs only the first look, on SQLite and, with
//! DIALER_BENCH_POSTGRES, on PostgreSQL; DIALER_BENCH_FIRST_PASS sets its
//! number of leads).
//! Prints figures; asserts nothing.

use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::{ClaimLimits, Store};
use std::time::{Duration, Instant};

const LEADS: i64 = 1_000_000;
const WAIT: Duration = Duration::from_secs(20);

/// This process's user + system CPU time, from /proc (Linux).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn config(dir: &std::path::Path, url: &str) -> dialer::config::Loaded {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        format!(
            "campaigns_dir = \"campaigns\"\n[database]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\n[providers.sim]\nkind = \"simulated\"\npoll_interval = \"5s\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/big.toml"),
        "id = \"big\"\nprovider = \"sim\"\ntimezone = \"America/New_York\"\n[window]\nweekly = [\"mon-fri 09:00-17:00\"]\n",
    )
    .unwrap();
    dialer::config::load(&dir.join("dialer.toml")).unwrap()
}

async fn run(
    name: &str,
    store: std::sync::Arc<dyn Store>,
    fill: impl std::future::Future<Output = ()>,
    loaded: dialer::config::Loaded,
) {
    store.migrate().await.unwrap();
    let t = Instant::now();
    fill.await;
    println!(
        "[{name}] inserted {LEADS} pending leads due tomorrow in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let now = chrono::Utc::now();
    let limits = ClaimLimits {
        campaign_id: "big".into(),
        provider: "sim".into(),
        max_concurrent: 10,
        provider_max_concurrent: 20,
        batch: 100,
    };
    let mut samples = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let got = store
            .claim(&limits, "bench", now, now + chrono::Duration::minutes(5))
            .await
            .unwrap();
        assert!(got.is_empty());
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "[{name}] empty claim over {LEADS} leads: median {:?}, p90 {:?}",
        samples[25], samples[45]
    );

    let daemon = Daemon::new(store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(WAIT).await;
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    running.stop(Duration::from_secs(2)).await;
    println!(
        "[{name}] waiting with nothing callable: {:.3} s CPU in {:.1} s wall = {:.2}% of one core (includes the database's work only for SQLite, which runs in-process)",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
}

/// A bench database's own connection, to fill it and count as another
/// system would.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap()
    }
}

/// Leads inserted due now while the campaign has not started yet: the
/// dispatcher must look at each once and move it to its next opening.
/// `url` is the database, `db` a connection of its own to it.
async fn first_pass(name: &str, n: i64, url: &str, db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let loaded = config(dir.path(), url);
    let starts = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    std::fs::write(
        dir.path().join("campaigns/big.toml"),
        format!("id = \"big\"\nprovider = \"sim\"\ntimezone = \"America/New_York\"\nstarts = \"{starts}\"\n[window]\nweekly = [\"mon-sun 09:00-17:00\"]\n"),
    )
    .unwrap();
    let loaded = dialer::config::load(&dir.path().join("dialer.toml")).unwrap_or(loaded);
    let store: std::sync::Arc<dyn Store> = match db {
        Db::Sqlite(_) => {
            std::sync::Arc::new(dialer::store::SqliteStore::connect(url, 4).await.unwrap())
        }
        Db::Postgres(_) => {
            std::sync::Arc::new(dialer::store::PgStore::connect(url, 4).await.unwrap())
        }
    };
    store.migrate().await.unwrap();
    // Another system's plain insert: two columns, every other one its default.
    let now_sql = match db {
        Db::Sqlite(_) => {
            db.exec(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {n} - 1)
                 INSERT INTO leads (campaign_id, phone) SELECT 'big', '+1212' || (2000000 + i) FROM n"
            ))
            .await;
            "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
        }
        Db::Postgres(_) => {
            db.exec(&format!(
                "INSERT INTO leads (campaign_id, phone)
                 SELECT 'big', '+1212' || (2000000 + i)::text FROM generate_series(0, {n} - 1) i"
            ))
            .await;
            db.exec("ANALYZE leads").await;
            "now()"
        }
    };
    let daemon = Daemon::new(store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let running = engine::start(daemon, None);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Whether any lead is still due or held: two index seeks, so that
        // this loop costs the database next to nothing beside the daemon.
        let left = db
            .count(&format!(
                "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM leads WHERE campaign_id = 'big' AND status = 'pending' AND next_attempt_at <= {now_sql})
                              OR EXISTS (SELECT 1 FROM leads WHERE campaign_id = 'big' AND status = 'in_progress')
                             THEN 1 ELSE 0 END AS BIGINT)"
            ))
            .await;
        if left == 0 || t0.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    let pending = db
        .count("SELECT count(*) FROM leads WHERE status = 'pending'")
        .await;
    assert_eq!(pending, n, "every lead is still pending, only rescheduled");
    println!(
        "[{name}] first look at {n} due leads before the campaign starts: all moved to their opening in {:.1} s ({:.0} leads/s), {:.1} s CPU{}",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        if name == "sqlite" { "" } else { " (this process's only: the database's own is not counted)" }
    );
    let (cpu0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(WAIT).await;
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    running.stop(Duration::from_secs(2)).await;
    println!(
        "[{name}] then waiting: {:.3} s CPU in {:.1} s wall = {:.2}% of one core",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
}

/// Creates the database `name` through the admin URL `admin`: the admin
/// pool (to drop it after) and the new database's URL.
async fn create_database(admin: &str, name: &str) -> (sqlx::PgPool, String) {
    let admin_pool = sqlx::PgPool::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin_pool)
        .await
        .unwrap();
    let mut u = reqwest::Url::parse(admin).unwrap();
    u.set_path(&format!("/{name}"));
    (admin_pool, u.to_string())
}

/// `first_pass` on SQLite, then on PostgreSQL when `DIALER_BENCH_POSTGRES`
/// names an admin URL.
async fn first_passes(n: i64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("first.db").display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(
            url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .create_if_missing(true),
        )
        .await
        .unwrap();
    first_pass("sqlite", n, &url, Db::Sqlite(pool)).await;
    if let Ok(admin) = std::env::var("DIALER_BENCH_POSTGRES") {
        let name = format!("dialer_bench_first_{}", std::process::id());
        let (admin_pool, url) = create_database(&admin, &name).await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        first_pass("postgres", n, &url, Db::Postgres(pool.clone())).await;
        pool.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin_pool)
            .await;
    }
}

/// `n` leads due now, a campaign allowed 2 calls at once, calls of 2 to 3
/// minutes: the dispatcher has work it may not start until a call ends.
async fn full_campaign(n: i64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("full.db").display());
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    std::fs::write(
        dir.path().join("dialer.toml"),
        format!(
            "campaigns_dir = \"campaigns\"\n[database]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\n[providers.sim]\nkind = \"simulated\"\nmin_duration = \"2m\"\nmax_duration = \"3m\"\npoll_interval = \"5s\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("campaigns/full.toml"),
        "id = \"full\"\nprovider = \"sim\"\ntimezone = \"America/New_York\"\n[pacing]\nmax_concurrent = 2\n[compliance]\nlocal_hours = \"off\"\n",
    )
    .unwrap();
    let loaded = dialer::config::load(&dir.path().join("dialer.toml")).unwrap();
    let store = dialer::store::SqliteStore::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {n} - 1)
         INSERT INTO leads (campaign_id, phone) SELECT 'full', '+1212' || (2000000 + i) FROM n"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    let daemon = Daemon::new(store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    let t0 = Instant::now();
    let attempts = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM call_attempts")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    while attempts().await < 2 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(WAIT).await;
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    let placed = attempts().await;
    running.stop(Duration::from_secs(2)).await;
    println!(
        "[sqlite] {n} due leads, max_concurrent = 2 full with calls of 2-3 min ({placed} calls placed): {:.3} s CPU in {:.1} s wall = {:.2}% of one core",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let full: i64 = std::env::var("DIALER_BENCH_FULL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let only = std::env::var("DIALER_BENCH_ONLY").unwrap_or_default();
    if only != "first" {
        full_campaign(full).await;
    }
    if only == "full" {
        return;
    }
    let first: i64 = std::env::var("DIALER_BENCH_FIRST_PASS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    first_passes(first).await;
    if only == "first" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let loaded = config(dir.path(), &url);
    let store = dialer::store::SqliteStore::connect(&url, 4).await.unwrap();
    let pool = store.pool().clone();
    let tomorrow0 = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let tomorrow = tomorrow0.clone();
    let fill = async move {
        sqlx::query(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {LEADS} - 1)
             INSERT INTO leads (campaign_id, phone, next_attempt_at) SELECT 'big', '+1212' || (2000000 + i), '{tomorrow}' FROM n"
        ))
        .execute(&pool)
        .await
        .unwrap();
    };
    run("sqlite", std::sync::Arc::new(store), fill, loaded).await;

    if let Ok(admin) = std::env::var("DIALER_BENCH_POSTGRES") {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("dialer_bench_{}", std::process::id());
        let (admin_pool, url) = create_database(&admin, &name).await;
        let loaded = config(dir.path(), &url);
        let store = dialer::store::PgStore::connect(&url, 4).await.unwrap();
        let pool = store.pool().clone();
        let tomorrow = tomorrow0.clone();
        let fill = async move {
            sqlx::query(&format!(
                "INSERT INTO leads (campaign_id, phone, next_attempt_at)
                 SELECT 'big', '+1212' || (2000000 + i)::text, '{tomorrow}'::timestamptz FROM generate_series(0, {LEADS} - 1) i"
            ))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE leads").execute(&pool).await.unwrap();
        };
        run("postgres", std::sync::Arc::new(store), fill, loaded).await;
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin_pool)
            .await;
    }
}
