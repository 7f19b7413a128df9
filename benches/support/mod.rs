//! What the benchmarks share: a throwaway PostgreSQL database per run, the
//! raw pool a benchmark reads figures from, generated leads, the release
//! binary and its peak RSS, settings and medians. Each benchmark uses a part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A benchmark's own connection to its database, beside the store.
#[derive(Clone)]
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// The PostgreSQL server the benchmarks create their databases on:
/// `DIALER_BENCH_POSTGRES` (an admin URL), by default the local one.
pub struct Server {
    admin: String,
    pool: sqlx::PgPool,
}

impl Server {
    /// None (and says so) when the server cannot be reached.
    pub async fn reach() -> Option<Self> {
        let admin = std::env::var("DIALER_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        match sqlx::PgPool::connect(&admin).await {
            Ok(pool) => Some(Server { admin, pool }),
            Err(_) => {
                println!("[postgres] not reachable at {admin}; skipped");
                None
            }
        }
    }

    /// Creates database `name` and returns its URL.
    pub async fn create(&self, name: &str) -> String {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&self.pool)
            .await
            .unwrap();
        self.admin
            .rsplit_once('/')
            .map_or(self.admin.clone(), |(base, _)| format!("{base}/{name}"))
    }

    pub async fn drop_database(&self, name: &str) {
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&self.pool)
            .await;
    }
}

/// A `DIALER_BENCH_*` setting, or its default.
pub fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` leads with distinct, valid numbers.
pub fn leads(n: usize) -> Vec<dialer::store::NewLead> {
    (0..n)
        .map(|i| dialer::store::NewLead {
            // 212 and 310 numbers, exchanges from 230: all distinct and valid.
            phone: format!(
                "+1{}{:03}{:04}",
                if i % 2 == 0 { 212 } else { 310 },
                230 + i / 20_000,
                (i / 2) % 10_000
            ),
            name: None,
            timezone: None,
            variables: serde_json::Map::new(),
        })
        .collect()
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The release binary (`cargo build --release`).
pub fn binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/dialer")
}

/// Peak RSS in KiB of `pid` so far (VmHWM), from /proc.
pub fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
