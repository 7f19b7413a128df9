//! What the dispatch and claim benchmarks share: a throwaway PostgreSQL
//! database per run, and the raw pool a benchmark reads figures from.

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
