//! `dialer export` of a campaign of 1,000,000 leads, each with one ended
//! attempt, run as a child process of the release binary writing to a file:
//! prints leads/s, bytes written and the child's peak RSS (VmHWM), CSV and
//! JSON lines, on SQLite and, when reachable, PostgreSQL.
//!
//! `cargo build --release && cargo bench --bench export`
//! (`DIALER_BENCH_LEADS`, default 1,000,000; `DIALER_BENCH_RUNS`, default 3;
//! `DIALER_BENCH_ONLY=sqlite|postgres`)

mod support;
use dialer::store::Store;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{binary, env_or, median, peak_kib, Raw, Server};

const ATTEMPTS: &str = "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider,
        provider_call_id, from_number, to_number, state, provider_status, outcome, requested_at,
        ended_at, duration_seconds, summary)
     SELECT 'att-' || CAST(id AS TEXT), id, campaign_id, 1, 'sim', 'call-' || CAST(id AS TEXT),
        '+15551230001', phone, 'ended', 'completed', 'completed', '2026-11-30T15:00:00Z',
        '2026-11-30T15:01:10Z', 70, 'The callee asked to be called back next week.'
       FROM leads";

fn write_config(dir: &Path, url: &str) {
    std::fs::create_dir_all(dir.join("campaigns")).expect("campaigns dir");
    std::fs::write(
        dir.join("dialer.toml"),
        format!("campaigns_dir = \"campaigns\"\n[database]\nurl = \"{url}\"\n[providers.sim]\nkind = \"simulated\"\n"),
    )
    .expect("dialer.toml");
    std::fs::write(
        dir.join("campaigns/a.toml"),
        "id = \"bench\"\nprovider = \"sim\"\ntimezone = \"America/Chicago\"\n",
    )
    .expect("campaign");
}

/// The schema, the campaign's row (from the files in `dir`), then its
/// leads and attempts.
async fn prepare(dir: &Path, store: &dyn Store, raw: &Raw, n: usize) {
    store.migrate().await.unwrap();
    let loaded = dialer::config::load(&dir.join("dialer.toml")).unwrap();
    dialer::daemon::sync_campaign_rows(store, &loaded.campaigns, chrono::Utc::now())
        .await
        .unwrap();
    fill(store, raw, n).await;
}

/// Runs one statement on the benchmark's own connection.
async fn exec(raw: &Raw, sql: &str) {
    match raw {
        Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Raw::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn fill(store: &dyn Store, raw: &Raw, n: usize) {
    let leads = support::leads(n);
    for chunk in leads.chunks(50_000) {
        store
            .insert_leads("bench", chunk, chrono::Utc::now())
            .await
            .expect("insert leads");
    }
    exec(raw, ATTEMPTS).await;
    // As a database in use would be: statistics read (autovacuum does it
    // later by itself; the export should not be timed before it).
    exec(raw, "ANALYZE").await;
}

/// One export: seconds, bytes written, peak RSS in KiB.
fn export_once(dir: &Path, format: &str) -> (f64, u64, u64) {
    let out_path = dir.join(format!("export.{format}"));
    let out = std::fs::File::create(&out_path).expect("output file");
    let started = Instant::now();
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(dir.join("dialer.toml"))
        .args(["export", "--campaign", "bench", "--format", format])
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the release binary (cargo build --release first)");
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "export failed: {status}");
    let bytes = std::fs::metadata(&out_path).map(|m| m.len()).unwrap_or(0);
    (secs, bytes, peak)
}

fn report(label: &str, dir: &Path, n: usize, runs: usize) {
    for format in ["csv", "jsonl"] {
        let mut secs = Vec::new();
        let mut peaks = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let (s, b, p) = export_once(dir, format);
            secs.push(s);
            peaks.push(p as f64);
            size = b;
        }
        let s = median(secs.clone());
        println!(
            "{label} {format}: {n} leads in {s:.1} s = {:.0} leads/s ({} MB written), peak RSS {:.1} MiB (median of {runs}; runs {:?} s)",
            n as f64 / s,
            size / 1_000_000,
            median(peaks) / 1024.0,
            secs.iter().map(|s| (s * 10.0).round() / 10.0).collect::<Vec<_>>()
        );
    }
}

#[tokio::main]
async fn main() {
    let n = env_or("DIALER_BENCH_LEADS", 1_000_000);
    let runs = env_or("DIALER_BENCH_RUNS", 3);
    let only = std::env::var("DIALER_BENCH_ONLY").ok();
    let dir = tempfile::tempdir().expect("tempdir");
    if only.as_deref() != Some("postgres") {
        let d = dir.path().join("sqlite");
        let url = format!("sqlite://{}", d.join("bench.db").display());
        write_config(&d, &url);
        let store = dialer::store::SqliteStore::connect(&url, 4).await.unwrap();
        prepare(&d, &store, &Raw::Sqlite(store.pool().clone()), n).await;
        store.pool().close().await;
        report("sqlite", &d, n, runs);
    }
    if only.as_deref() != Some("sqlite") {
        let Some(server) = Server::reach().await else {
            return;
        };
        let name = format!("dialer_bench_export_{}", std::process::id());
        let url = server.create(&name).await;
        let d = dir.path().join("pg");
        write_config(&d, &url);
        let store = dialer::store::PgStore::connect(&url, 4).await.unwrap();
        prepare(&d, &store, &Raw::Pg(store.pool().clone()), n).await;
        store.pool().close().await;
        report("postgres", &d, n, runs);
        server.drop_database(&name).await;
    }
}
