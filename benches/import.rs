//! `dialer import` of a generated 1,000,000-row CSV, run as a child process
//! of the release binary: prints rows/s and the child's peak RSS (VmHWM),
//! on SQLite and, when reachable, PostgreSQL.
//!
//! `cargo build --release && cargo bench --bench import`

mod support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{binary, peak_kib};

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

fn run(label: &str, dir: &Path, url: &str, csv: &Path) {
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
    println!(
        "{label}: {ROWS} rows in {secs:.1} s = {:.0} rows/s, peak RSS {:.1} MiB ({status})",
        ROWS as f64 / secs,
        peak as f64 / 1024.0
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("leads.csv");
    write_csv(&csv);
    let sqlite = dir.path().join("sqlite");
    run("sqlite", &sqlite, "sqlite://bench.db", &csv);

    let admin = std::env::var("DIALER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("dialer_bench_{}", std::process::id());
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
    run("postgres", &dir.path().join("pg"), &url, &csv);
    let _ = Command::new("psql")
        .args([admin.as_str(), "-qc", &format!("DROP DATABASE {name}")])
        .status();
}
