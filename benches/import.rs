//! `dialer import` of a generated 1,000,000-row CSV, run as a child process
//! of the release binary: prints rows/s and the child's peak RSS (VmHWM)
//! per run and their medians (`DIALER_BENCH_RUNS`, default 3), each run
//! into an empty database, on SQLite and, when reachable, PostgreSQL.
//!
//! `cargo build --release && cargo bench --bench import`

mod support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{binary, env_or, median, peak_kib};

const ROWS: usize = 1_000_000;

fn write_config(dir: &Path, url: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("campaigns")).expect("campaigns dir");
    std::fs::write(
        dir.join("dialer.toml"),
        format!("campaigns_dir = \"campaigns\"\n[database]\nurl = \"{url}\"\n[providers.sim]\nkind = \"simulated\"\n"),
    )
    .expect("dialer.toml");
    std::fs::write(
        dir.join("campaigns/a.toml"),
        "id = \"bench\"\nprovider = \"sim\"\ntimezone = \"America/Chicago\"\n[window]\nweekly = [\"mon-fri 09:00-17:00\"]\n",
    )
    .expect("campaign");
    dir.join("dialer.toml")
}

fn write_csv(path: &Path) {
    let mut s = String::with_capacity(ROWS * 48);
    s.push_str("phone,name,plan\n");
    for i in 0..ROWS {
        // 212 and 310 numbers, exchanges 230..=279: all distinct and valid.
        let area = if i % 2 == 0 { 212 } else { 310 };
        let j = i / 2;
        s.push_str(&format!(
            "+1{area}{:03}{:04},Lead {i},gold\n",
            230 + j / 10_000,
            j % 10_000
        ));
    }
    std::fs::write(path, s).expect("csv");
}

/// One import into the empty database at `url`: (rows/s, peak RSS in MiB).
fn run(label: &str, dir: &Path, url: &str, csv: &Path) -> (f64, f64) {
    let cfg = write_config(dir, url);
    let started = Instant::now();
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(&cfg)
        .args(["import", "--campaign", "bench"])
        .arg(csv)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
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
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "{label}: import failed ({status})");
    let (rate, mib) = (ROWS as f64 / secs, peak as f64 / 1024.0);
    println!("{label}: {ROWS} rows in {secs:.1} s = {rate:.0} rows/s, peak RSS {mib:.1} MiB");
    (rate, mib)
}

fn report(label: &str, runs: &[(f64, f64)]) {
    let rates: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.0)).collect();
    let peaks: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.1)).collect();
    println!(
        "{label}: median of {}: {:.0} rows/s ({}), peak RSS {:.1} MiB ({})",
        runs.len(),
        median(runs.iter().map(|r| r.0).collect()),
        rates.join(", "),
        median(runs.iter().map(|r| r.1).collect()),
        peaks.join(", ")
    );
}

fn main() {
    let runs = env_or("DIALER_BENCH_RUNS", 3).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("leads.csv");
    write_csv(&csv);
    let mut sqlite = Vec::new();
    for i in 0..runs {
        let at = dir.path().join(format!("sqlite{i}"));
        sqlite.push(run(
            &format!("sqlite run {}", i + 1),
            &at,
            "sqlite://bench.db",
            &csv,
        ));
        let _ = std::fs::remove_dir_all(&at);
    }
    report("sqlite", &sqlite);

    let admin = std::env::var("DIALER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut postgres = Vec::new();
    for i in 0..runs {
        let name = format!("dialer_bench_{}_{i}", std::process::id());
        let created = Command::new("psql")
            .args([admin.as_str(), "-qc", &format!("CREATE DATABASE {name}")])
            .status()
            .is_ok_and(|s| s.success());
        if !created {
            println!("postgres: not reachable at {admin}; skipped");
            return;
        }
        let url = admin
            .rsplit_once('/')
            .map_or(admin.clone(), |(base, _)| format!("{base}/{name}"));
        let at = dir.path().join(format!("pg{i}"));
        postgres.push(run(&format!("postgres run {}", i + 1), &at, &url, &csv));
        let _ = Command::new("psql")
            .args([admin.as_str(), "-qc", &format!("DROP DATABASE {name}")])
            .status();
    }
    report("postgres", &postgres);
}
