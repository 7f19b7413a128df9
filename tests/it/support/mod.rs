//! Shared test helpers: fresh databases on both backends, configuration
//! written to a temporary directory, raw SQL as another system would send it.
#![allow(dead_code)]

pub mod chaos_provider;
pub mod fake_elemente;
pub mod fake_revring;
pub mod fake_voicedock;
pub mod fields;
pub mod logs;
pub mod process;
pub mod schedule;
pub mod wire;

use dialer::config::{self, Loaded};
use dialer::store::{PgStore, SqliteStore, Store};
use sqlx::Row;
use std::path::Path;
use std::sync::Arc;

/// The machine, shared by the tests that run in parallel in this binary.
/// A test that judges a rate or a peak at the wire (`measured`) runs while
/// no other test that starts several daemons or drives thousands of leads
/// (`heavy`) does: on two shared cores those starve the daemons under
/// measurement, which then fall short of the limit they must reach. Light
/// tests still run beside either.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held for the whole of a test that measures a rate at the wire.
pub async fn measured() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// Held for the whole of a test that loads the machine (several daemons,
/// thousands of leads); several such tests may run together.
pub async fn heavy() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub raw: Raw,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn backend(&self) -> &'static str {
        match self.raw {
            Raw::Sqlite(_) => "sqlite",
            Raw::Pg(_) => "postgres",
        }
    }

    /// Runs a statement as an integrator would.
    pub async fn exec(&self, sql: &str) -> u64 {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql)
                .execute(p)
                .await
                .expect(sql)
                .rows_affected(),
            Raw::Pg(p) => sqlx::query(sql)
                .execute(p)
                .await
                .expect(sql)
                .rows_affected(),
        }
    }

    /// The first column of the first row, as i64.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .expect(sql)
                .get::<i64, _>(0),
            Raw::Pg(p) => {
                let row = sqlx::query(sql).fetch_one(p).await.expect(sql);
                row.try_get::<i64, _>(0)
                    .or_else(|_| row.try_get::<i32, _>(0).map(i64::from))
                    .expect(sql)
            }
        }
    }

    /// Rows of text columns (cast in SQL where needed).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .expect(sql)
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<Option<String>, _>(i))
                        .collect()
                })
                .collect(),
            Raw::Pg(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .expect(sql)
                .iter()
                .map(|r| (0..r.len()).map(|i| pg_text(r, i)).collect())
                .collect(),
        }
    }
}

/// A PostgreSQL column as the text the SQLite backend would hold.
fn pg_text(r: &sqlx::postgres::PgRow, i: usize) -> Option<String> {
    if let Ok(v) = r.try_get::<Option<String>, _>(i) {
        return v;
    }
    if let Ok(v) = r.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i) {
        return v.map(dialer::domain::rfc3339);
    }
    if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = r.try_get::<Option<i32>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = r.try_get::<Option<bool>, _>(i) {
        return v.map(|v| v.to_string());
    }
    r.try_get::<Option<serde_json::Value>, _>(i)
        .expect("a text-like column")
        .map(|v| v.to_string())
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = SqliteStore::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::Sqlite(store.pool().clone());
    TestDb {
        store: Arc::new(store),
        raw,
        url,
        _dir: Some(dir),
    }
}

fn admin_url() -> String {
    std::env::var("DIALER_TEST_POSTGRES")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, or `None` (said loudly) when no server is
/// reachable. With `CI` or `DIALER_REQUIRE_POSTGRES` set, a missing server fails.
pub async fn postgres() -> Option<TestDb> {
    let admin = admin_url();
    let pool = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&admin)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
                || std::env::var("DIALER_REQUIRE_POSTGRES").is_ok();
            if required {
                panic!("PostgreSQL is required here but not reachable at {admin}: {e}");
            }
            eprintln!("\n!!! SKIPPED: PostgreSQL not reachable at {admin} ({e}); this test ran on SQLite only !!!\n");
            return None;
        }
    };
    let name = format!("dialer_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut url = reqwest::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let store = PgStore::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::Pg(store.pool().clone());
    Some(TestDb {
        store: Arc::new(store),
        raw,
        url,
        _dir: None,
    })
}

/// Runs an async test body against SQLite and then PostgreSQL. A body may
/// take arguments after the database (`name => body(Arg::A);`), read in
/// the scope of the module that names it.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:ident $(($($arg:expr),+))?;)+) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::support::sqlite().await;
                    super::$body(db $($(, $arg)+)?).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::support::postgres().await {
                        super::$body(db $($(, $arg)+)?).await;
                    }
                }
            }
        )+
    };
}

/// Writes `dialer.toml` and campaign files into `dir` and loads them.
pub fn write_config(dir: &Path, daemon: &str, campaigns: &[(&str, &str)]) -> Loaded {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(dir.join("dialer.toml"), daemon).unwrap();
    for (name, text) in campaigns {
        std::fs::write(dir.join("campaigns").join(name), text).unwrap();
    }
    config::load(&dir.join("dialer.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// A daemon file for one RevRing account at `fake_url` (the key in
/// `key`), generous limits, polled every 200 ms.
pub fn revring_daemon_toml(db_url: &str, fake_url: &str) -> String {
    account_daemon_toml(db_url, "revring", fake_url, "200ms")
}

/// A daemon file for one account of provider `kind` (the table is named
/// after it) at `fake_url`: the key in the file `key`, VoiceDock's webhook
/// secret in `secret`, Elemente's user `acme`; generous limits, polled
/// every `poll_interval`.
pub fn account_daemon_toml(
    db_url: &str,
    kind: &str,
    fake_url: &str,
    poll_interval: &str,
) -> String {
    let own = match kind {
        "voicedock" => "webhook_secret_file = \"secret\"",
        "elemente" => "username = \"acme\"",
        _ => "",
    };
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{db_url}"
[log]
level = "warn"
[providers.{kind}]
kind = "{kind}"
base_url = "{fake_url}"
api_key_file = "key"
{own}
requests_per_minute = 100000
max_concurrent_calls = 200
request_timeout = "5s"
poll_interval = "{poll_interval}"
max_call_duration = "1m"
"#
    )
}

/// A daemon file for the simulated provider on `url`.
pub fn sim_daemon_toml(url: &str, extra: &str) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{url}"
[log]
level = "warn"
[providers.sim]
kind = "simulated"
min_duration = "30s"
max_duration = "3m"
seed = 11
requests_per_minute = 100000
max_concurrent_calls = 200
poll_interval = "10s"
{extra}
"#
    )
}
