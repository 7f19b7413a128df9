//! Dispatch throughput against the physical limit: the whole daemon (claim,
//! rules, attempt rows, place, poll, settle) places calls through its RevRing
//! adapter on a fake RevRing served over loopback HTTP that answers at once
//! (a new call id for each place request, every call `COMPLETED` to the
//! first batch-get), with limits that never bind and polling every 100 ms.
//! Beside it, the bare loopback rate: the same HTTP client (built as the
//! adapter builds it) sending the daemon's own place request (same body,
//! same headers) to the same fake, `DIALER_BENCH_CONCURRENCY` requests in
//! flight, `DIALER_BENCH_REQUESTS` requests. Both rates are counted by
//! the fake, from the first place request it receives to the last. Prints,
//! for each run and the median of the runs, the daemon's calls placed/s
//! (and the connections it opened, as many as it ever had requests in
//! flight), the bare requests/s, and the first as a percentage of the
//! second, on SQLite and, when reachable, PostgreSQL.
//!
//! The fake runs on its own runtime (threads named `fake`); the daemon and
//! the bare client run on the bench's (threads named `dialer`).
//!
//! `cargo bench --bench loopback`; `DIALER_BENCH_LEADS` (default 20000),
//! `DIALER_BENCH_REQUESTS` (default 200000), `DIALER_BENCH_CONCURRENCY`
//! (default 32), `DIALER_BENCH_RUNS` (default 3),
//! `DIALER_BENCH_POSTGRES` (an admin URL; default
//! postgres://postgres@127.0.0.1:5432/postgres),
//! `DIALER_BENCH_ONLY=sqlite|postgres`. Asserts nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::Store;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
mod support;
use support::{env_or, leads, median};

const LIMIT: Duration = Duration::from_secs(600);
const API_KEY: &str = "rr-bench-key";
const PROVIDER: &str = "rr";

/// The fake RevRing account: counts place requests and the connections
/// accepted, keeps the first place body it received, and ends every call at
/// once.
struct Fake {
    base: Instant,
    placed: AtomicU64,
    /// Nanoseconds since `base` of the first and the last place request.
    first: AtomicU64,
    last: AtomicU64,
    connections: AtomicUsize,
    body: Mutex<Option<Bytes>>,
}

impl Fake {
    /// Serves a new fake on 127.0.0.1 from `rt`; returns it and its URL.
    async fn start(rt: &tokio::runtime::Handle) -> (Arc<Fake>, String) {
        let fake = Arc::new(Fake {
            base: Instant::now(),
            placed: AtomicU64::new(0),
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            body: Mutex::new(None),
        });
        let app = Router::new()
            .route("/v1/calls", post(place))
            .route("/v1/calls/batch-get", post(batch_get))
            .route("/v1/calls/{id}", get(not_found))
            .with_state(fake.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let counting = fake.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let listener = listener.tap_io(move |tcp| {
                let _ = tcp.set_nodelay(true);
                counting.connections.fetch_add(1, Ordering::Relaxed);
            });
            axum::serve(listener, app).await.unwrap();
        });
        let addr = rx.await.unwrap();
        (fake, format!("http://{addr}"))
    }

    /// Forgets the counts, before a measurement.
    fn reset(&self) {
        self.placed.store(0, Ordering::SeqCst);
        self.first.store(u64::MAX, Ordering::SeqCst);
        self.last.store(0, Ordering::SeqCst);
        self.connections.store(0, Ordering::SeqCst);
    }

    fn placed(&self) -> u64 {
        self.placed.load(Ordering::SeqCst)
    }

    /// Place requests per second, from the first received to the last.
    fn rate(&self) -> f64 {
        let n = self.placed();
        let (first, last) = (
            self.first.load(Ordering::SeqCst),
            self.last.load(Ordering::SeqCst),
        );
        if n < 2 || last <= first {
            return 0.0;
        }
        (n - 1) as f64 / Duration::from_nanos(last - first).as_secs_f64()
    }
}

async fn place(State(f): State<Arc<Fake>>, body: Bytes) -> impl IntoResponse {
    let at = f.base.elapsed().as_nanos() as u64;
    f.first.fetch_min(at, Ordering::Relaxed);
    f.last.fetch_max(at, Ordering::Relaxed);
    let n = f.placed.fetch_add(1, Ordering::Relaxed) + 1;
    if n == 1 {
        f.body.lock().unwrap().get_or_insert(body);
    }
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"data":{{"id":"call_{n}","status":"QUEUED"}}}}"#),
    )
}

#[derive(serde::Deserialize)]
struct Ids {
    ids: Vec<String>,
}

async fn batch_get(Json(req): Json<Ids>) -> Json<Value> {
    let now = chrono::Utc::now().to_rfc3339();
    let calls: Vec<Value> = req
        .ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "status": "COMPLETED",
                "startedAt": now,
                "endedAt": now,
                "updatedAt": now,
                "durationSeconds": 0,
                "hangupCause": "USER_ENDED",
            })
        })
        .collect();
    Json(json!({ "data": calls }))
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {"message": "Call not found"}})),
    )
}

fn config(dir: &std::path::Path, url: &str, fake: &str) -> dialer::config::Loaded {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(dir.join("key"), API_KEY).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        format!(
            r#"campaigns_dir = "campaigns"
[database]
url = "{url}"
max_connections = 8
[log]
level = "error"
[providers.{PROVIDER}]
kind = "revring"
base_url = "{fake}"
api_key_file = "key"
requests_per_minute = 1000000
max_concurrent_calls = 100000
poll_interval = "100ms"
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/fast.toml"),
        format!(
            r#"id = "fast"
provider = "{PROVIDER}"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001"]
timezone = "America/New_York"
[pacing]
calls_per_minute = 1000000
burst = 10000
max_concurrent = 100000
[compliance]
local_hours = "off"
"#
        ),
    )
    .unwrap();
    dialer::config::load(&dir.join("dialer.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// How much each run does.
#[derive(Clone, Copy)]
struct Sizes {
    leads: usize,
    requests: usize,
    concurrency: usize,
}

struct Figures {
    placed_per_s: f64,
    connections: usize,
    bare_per_s: f64,
}

/// The daemon places a call to each lead on `fake`, then the bare client
/// sends copies of the daemon's first place request to it.
async fn one_run(
    store: Arc<dyn Store>,
    loaded: &dialer::config::Loaded,
    fake: &Fake,
    sizes: Sizes,
) -> Figures {
    let n = sizes.leads;
    store.migrate().await.unwrap();
    let daemon = Daemon::new(store.clone(), Clock::system(), loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    for chunk in leads(n).chunks(10_000) {
        store
            .insert_leads("fast", chunk, chrono::Utc::now())
            .await
            .unwrap();
    }
    fake.reset();
    let running = engine::start(daemon, None);
    let started = Instant::now();
    while (fake.placed() as usize) < n && started.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let placed_per_s = fake.rate();
    let connections = fake.connections.load(Ordering::SeqCst);
    running.stop(Duration::from_secs(5)).await;

    let body = fake
        .body
        .lock()
        .unwrap()
        .clone()
        .expect("the daemon sent a place request");
    fake.reset();
    bare(loaded, fake_url(loaded), body, sizes).await;
    Figures {
        placed_per_s,
        connections,
        bare_per_s: fake.rate(),
    }
}

fn fake_url(loaded: &dialer::config::Loaded) -> String {
    format!("{}/v1/calls", loaded.daemon.providers[PROVIDER].base_url)
}

/// `sizes.requests` place requests from the adapter's client,
/// `sizes.concurrency` in flight.
async fn bare(loaded: &dialer::config::Loaded, url: String, body: Bytes, sizes: Sizes) {
    let (n, concurrency) = (sizes.requests, sizes.concurrency);
    let client = dialer::provider::http::client(&loaded.daemon.providers[PROVIDER]).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body, next) = (client.clone(), url.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let resp = client
                    .post(&url)
                    .header("x-api-key", API_KEY)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success());
                resp.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn report(label: &str, runs: Vec<Figures>, concurrency: usize) {
    for (i, f) in runs.iter().enumerate() {
        println!(
            "[{label}] run {}: daemon {:.0} calls placed/s ({} connections opened); bare {:.0} requests/s ({concurrency} in flight); {:.1} %",
            i + 1,
            f.placed_per_s,
            f.connections,
            f.bare_per_s,
            100.0 * f.placed_per_s / f.bare_per_s
        );
    }
    let daemon = median(runs.iter().map(|f| f.placed_per_s).collect());
    let bare = median(runs.iter().map(|f| f.bare_per_s).collect());
    println!(
        "[{label}] median of {}: daemon {daemon:.0} calls placed/s, bare {bare:.0} requests/s: {:.1} % of the loopback rate",
        runs.len(),
        100.0 * daemon / bare
    );
}

async fn run(fake_rt: tokio::runtime::Handle) {
    let sizes = Sizes {
        leads: env_or("DIALER_BENCH_LEADS", 20_000),
        requests: env_or("DIALER_BENCH_REQUESTS", 200_000).max(2),
        concurrency: env_or("DIALER_BENCH_CONCURRENCY", 32).max(1),
    };
    let runs = env_or("DIALER_BENCH_RUNS", 3);
    let only = std::env::var("DIALER_BENCH_ONLY").unwrap_or_default();
    println!(
        "loopback: {} leads, fake RevRing on 127.0.0.1 answering at once; bare client {} requests, {} in flight; {runs} runs per backend",
        sizes.leads, sizes.requests, sizes.concurrency
    );

    if only.is_empty() || only == "sqlite" {
        let mut figures = Vec::new();
        for _ in 0..runs {
            let (fake, fake_url) = Fake::start(&fake_rt).await;
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let loaded = config(dir.path(), &url, &fake_url);
            let store = dialer::store::SqliteStore::connect(&url, 8).await.unwrap();
            figures.push(one_run(Arc::new(store), &loaded, &fake, sizes).await);
        }
        report("sqlite", figures, sizes.concurrency);
    }

    if only.is_empty() || only == "postgres" {
        let Some(server) = support::Server::reach().await else {
            return;
        };
        let mut figures = Vec::new();
        for i in 0..runs {
            let name = format!("dialer_bench_loopback_{}_{i}", std::process::id());
            let url = server.create(&name).await;
            let (fake, fake_url) = Fake::start(&fake_rt).await;
            let dir = tempfile::tempdir().unwrap();
            let loaded = config(dir.path(), &url, &fake_url);
            let store = dialer::store::PgStore::connect(&url, 8).await.unwrap();
            figures.push(one_run(Arc::new(store), &loaded, &fake, sizes).await);
            server.drop_database(&name).await;
        }
        report("postgres", figures, sizes.concurrency);
    }
}

fn main() {
    let fake_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("fake")
        .enable_all()
        .build()
        .unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("dialer")
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(fake_rt.handle().clone()));
}
