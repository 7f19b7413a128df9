//! Webhook ingest: signed VoiceDock end-of-call reports sent over loopback
//! HTTP to the daemon's own server (`engine::start` with a listener, as
//! `dialer run` does), each settling a distinct placed attempt in the
//! database. Prints events/s and p50/p99 request latency for each run and
//! the median of the runs, on SQLite and, when reachable, PostgreSQL. After
//! each run it counts the attempts the events ended; before it, it sends a
//! few badly signed events and prints the status they got.
//!
//! The attempts are made untimed through the store, as a dispatcher makes
//! them (claim, attempt row, placed). The sender is a reqwest client on its
//! own thread and runtime, `DIALER_BENCH_CONCURRENCY` requests in flight; a
//! request's latency runs from its send to the end of the answer.
//!
//! `cargo bench --bench webhook_ingest`; `DIALER_BENCH_EVENTS` (default
//! 20000), `DIALER_BENCH_CONCURRENCY` (default 32), `DIALER_BENCH_RUNS`
//! (default 3), `DIALER_BENCH_POSTGRES` (an admin URL; default
//! postgres://postgres@127.0.0.1:5432/postgres),
//! `DIALER_BENCH_ONLY=sqlite|postgres`. Asserts nothing.

use chrono::Utc;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::{ClaimLimits, FromChoice, Store};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
mod support;

use std::time::{Duration, Instant};
use support::{env_or, leads, median, Raw};

const SECRET: &str = "vd-bench-webhook-secret";
const CAMPAIGN: &str = "vd";
const PROVIDER: &str = "voicedock";
/// Attempts the setup commits at once.
const SETUP_TASKS: usize = 8;

fn config(dir: &std::path::Path, url: &str) -> dialer::config::Loaded {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(dir.join("vd-key"), "vd-bench-api-key").unwrap();
    std::fs::write(dir.join("vd-secret"), SECRET).unwrap();
    // The poller waits an hour before its first round and the campaign is
    // paused: nothing but the webhooks touches the attempts.
    std::fs::write(
        dir.join("dialer.toml"),
        format!(
            r#"campaigns_dir = "campaigns"
[database]
url = "{url}"
max_connections = 8
[log]
level = "error"
[providers.voicedock]
kind = "voicedock"
base_url = "http://127.0.0.1:9/api/v1"
api_key_file = "vd-key"
webhook_secret_file = "vd-secret"
poll_interval = "1h"
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/vd.toml"),
        format!(
            "id = \"{CAMPAIGN}\"\nprovider = \"{PROVIDER}\"\nagent_id = \"a1\"\nfrom_numbers = [\"+15551230001\"]\ntimezone = \"UTC\"\npaused = true\n"
        ),
    )
    .unwrap();
    dialer::config::load(&dir.join("dialer.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// One placed attempt: (attempt id, provider call id).
type Placed = (String, String);

/// `n` leads, each claimed and given an attempt that VoiceDock accepted.
async fn placed_attempts(store: Arc<dyn Store>, n: usize) -> Vec<Placed> {
    let now = Utc::now();
    let later = now + chrono::Duration::hours(6);
    for chunk in leads(n).chunks(10_000) {
        store.insert_leads(CAMPAIGN, chunk, now).await.unwrap();
    }
    let limits = ClaimLimits {
        campaign_id: CAMPAIGN.into(),
        provider: PROVIDER.into(),
        max_concurrent: u32::MAX,
        provider_max_concurrent: u32::MAX,
        batch: 1000,
    };
    let mut claimed = Vec::with_capacity(n);
    while claimed.len() < n {
        let got = store.claim(&limits, "bench", now, later).await.unwrap();
        assert!(!got.is_empty(), "the claim found no due lead");
        claimed.extend(got);
    }
    let per_task = n.div_ceil(SETUP_TASKS);
    let mut tasks = tokio::task::JoinSet::new();
    for part in claimed.chunks(per_task.max(1)) {
        let (store, part) = (store.clone(), part.to_vec());
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(part.len());
            for lead in &part {
                let a = store
                    .begin_attempt(
                        lead,
                        PROVIDER,
                        &FromChoice::fixed(None),
                        None,
                        &[],
                        later,
                        later,
                        now,
                    )
                    .await
                    .unwrap()
                    .into_attempt()
                    .expect("the attempt was not begun");
                let call_id = format!("vd_{}", a.id);
                store
                    .attempt_placed(&a, &call_id, "dialing", later, now)
                    .await
                    .unwrap();
                out.push((a.id, call_id));
            }
            out
        });
    }
    let mut placed = Vec::with_capacity(n);
    while let Some(part) = tasks.join_next().await {
        placed.extend(part.unwrap());
    }
    placed
}

/// A VoiceDock end-of-call report for an answered call that ended normally.
fn report((attempt_id, call_id): &Placed) -> Vec<u8> {
    let now = Utc::now().to_rfc3339();
    serde_json::to_vec(&json!({ "message": {
        "type": "end-of-call-report",
        "timestamp": now,
        "call": {"id": call_id, "type": "outbound", "status": "ended",
                 "metadata": {"dialer_attempt_id": attempt_id}},
        "phone_number": {"id": "num_1", "number": "+15551230001", "name": "main"},
        "customer": {"number": "+12127365000"},
        "duration_seconds": 75,
        "end_reason": "user_hangup",
        "started_at": now,
        "ended_at": now,
        "summary": "Booked a visit",
        "messages": [{"role": "assistant", "content": "Hi"}],
    }}))
    .unwrap()
}

/// `X-Webhook-Signature`: HMAC-SHA256 over "{timestamp}.{body}".
fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn signed(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    ts: i64,
    signed_body: &[u8],
    sent_body: Vec<u8>,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-webhook-signature", sign(secret, ts, signed_body))
        .header("x-webhook-timestamp", ts.to_string())
        .header("x-webhook-event", "end-of-call-report")
        .body(sent_body)
}

/// What the sender saw.
struct Sent {
    wall: Duration,
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    errors: usize,
}

/// Sends every body, signed as it leaves, `concurrency` at a time.
async fn send_all(url: String, bodies: Vec<Vec<u8>>, concurrency: usize) -> Sent {
    let client = reqwest::Client::new();
    let (url, bodies) = (Arc::new(url), Arc::new(bodies));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses = BTreeMap::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let ts = Utc::now().timestamp();
                let req = signed(&client, &url, SECRET, ts, body, body.clone());
                let t = Instant::now();
                match req.send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                        *statuses.entry(status).or_insert(0) += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, statuses, errors)
        });
    }
    let mut sent = Sent {
        wall: Duration::ZERO,
        latencies: Vec::with_capacity(bodies.len()),
        statuses: BTreeMap::new(),
        errors: 0,
    };
    while let Some(w) = workers.join_next().await {
        let (latencies, statuses, errors) = w.unwrap();
        sent.latencies.extend(latencies);
        for (s, c) in statuses {
            *sent.statuses.entry(s).or_insert(0) += c;
        }
        sent.errors += errors;
    }
    sent.wall = started.elapsed();
    sent
}

/// `send_all` on a thread and runtime of its own, apart from the daemon's.
async fn send_apart(url: String, bodies: Vec<Vec<u8>>, concurrency: usize) -> Sent {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = tx.send(rt.block_on(send_all(url, bodies, concurrency)));
    });
    rx.await.expect("the sender thread failed")
}

/// Badly signed copies of the first events: each must be refused (401)
/// and change nothing. Returns the statuses.
async fn bad_signatures(url: &str, bodies: &[Vec<u8>]) -> Vec<u16> {
    let client = reqwest::Client::new();
    let now = Utc::now().timestamp();
    let mut tampered = bodies[2].clone();
    tampered.extend_from_slice(b" ");
    let reqs = [
        // Another secret.
        signed(
            &client,
            url,
            "wrong-secret",
            now,
            &bodies[0],
            bodies[0].clone(),
        ),
        // Signed over another event's body.
        signed(&client, url, SECRET, now, &bodies[0], bodies[1].clone()),
        // Body changed after signing.
        signed(&client, url, SECRET, now, &bodies[2], tampered),
        // Stale: 301 s old.
        signed(
            &client,
            url,
            SECRET,
            now - 301,
            &bodies[3],
            bodies[3].clone(),
        ),
        // No signature at all.
        client
            .post(url)
            .header("content-type", "application/json")
            .header("x-webhook-timestamp", now.to_string())
            .body(bodies[4].clone()),
    ];
    let mut statuses = Vec::new();
    for req in reqs {
        statuses.push(req.send().await.map_or(0, |r| r.status().as_u16()));
    }
    statuses
}

const APPLIED: &str = "SELECT
    (SELECT count(*) FROM call_attempts
      WHERE provider = 'voicedock' AND state = 'ended' AND outcome = 'completed'
        AND summary = 'Booked a visit'),
    (SELECT count(*) FROM leads WHERE campaign_id = 'vd' AND status = 'completed')";

/// Attempts ended by a report, and leads completed: read from the database.
async fn applied(raw: &Raw) -> (i64, i64) {
    match raw {
        Raw::Sqlite(p) => sqlx::query_as(APPLIED).fetch_one(p).await.unwrap(),
        Raw::Pg(p) => sqlx::query_as(APPLIED).fetch_one(p).await.unwrap(),
    }
}

struct Figures {
    events_per_s: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn one_run(
    label: &str,
    run: usize,
    store: Arc<dyn Store>,
    raw: Raw,
    loaded: &dialer::config::Loaded,
    n: usize,
    concurrency: usize,
) -> Figures {
    store.migrate().await.unwrap();
    let daemon = Daemon::new(store.clone(), Clock::system(), loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let t = Instant::now();
    let placed = placed_attempts(store.clone(), n).await;
    let setup = t.elapsed();
    let bodies: Vec<Vec<u8>> = placed.iter().map(report).collect();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/voicedock",
        listener.local_addr().unwrap()
    );
    let running = engine::start(daemon, Some(listener));

    let refused = bad_signatures(&url, &bodies).await;
    let (changed, _) = applied(&raw).await;
    let all_refused = refused.iter().all(|&s| s == 401);
    println!(
        "[{label}] run {run}: {} badly signed events: statuses {refused:?}, attempts changed {changed}{}",
        refused.len(),
        if all_refused && changed == 0 {
            ""
        } else {
            " — SIGNATURE CHECK NOT AS EXPECTED"
        }
    );

    let mut sent = send_apart(url, bodies, concurrency).await;
    running.stop(Duration::from_secs(5)).await;
    let (ended, completed) = applied(&raw).await;

    sent.latencies.sort();
    let figures = Figures {
        events_per_s: n as f64 / sent.wall.as_secs_f64(),
        p50: percentile(&sent.latencies, 0.50),
        p99: percentile(&sent.latencies, 0.99),
    };
    println!(
        "[{label}] run {run}: {n} events in {:.2} s: {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; statuses {:?}{}; setup {:.1} s",
        sent.wall.as_secs_f64(),
        figures.events_per_s,
        ms(figures.p50),
        ms(figures.p99),
        ms(sent.latencies.last().copied().unwrap_or_default()),
        sent.statuses,
        if sent.errors > 0 {
            format!(", {} requests failed", sent.errors)
        } else {
            String::new()
        },
        setup.as_secs_f64()
    );
    let all = ended as usize == n && completed as usize == n;
    println!(
        "[{label}] run {run}: applied {ended}/{n} (attempts ended completed), leads completed {completed}/{n}{}",
        if all { "" } else { " — NOT EVERY EVENT WAS APPLIED" }
    );
    figures
}

fn report_median(label: &str, runs: &[Figures]) {
    if runs.is_empty() {
        return;
    }
    println!(
        "[{label}] median of {}: {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms",
        runs.len(),
        median(runs.iter().map(|f| f.events_per_s).collect()),
        median(runs.iter().map(|f| ms(f.p50)).collect()),
        median(runs.iter().map(|f| ms(f.p99)).collect())
    );
}

#[tokio::main]
async fn main() {
    let n = env_or("DIALER_BENCH_EVENTS", 20_000).max(5);
    let concurrency = env_or("DIALER_BENCH_CONCURRENCY", 32).max(1);
    let runs = env_or("DIALER_BENCH_RUNS", 3);
    let only = std::env::var("DIALER_BENCH_ONLY").unwrap_or_default();
    println!(
        "webhook_ingest: {n} signed VoiceDock end-of-call reports, {concurrency} in flight, {runs} runs per backend"
    );

    if only.is_empty() || only == "sqlite" {
        let mut figures = Vec::new();
        for i in 0..runs {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let loaded = config(dir.path(), &url);
            let store = dialer::store::SqliteStore::connect(&url, 8).await.unwrap();
            let raw = Raw::Sqlite(store.pool().clone());
            figures.push(
                one_run(
                    "sqlite",
                    i + 1,
                    Arc::new(store),
                    raw,
                    &loaded,
                    n,
                    concurrency,
                )
                .await,
            );
        }
        report_median("sqlite", &figures);
    }

    if only.is_empty() || only == "postgres" {
        let Some(server) = support::Server::reach().await else {
            return;
        };
        let mut figures = Vec::new();
        for i in 0..runs {
            let name = format!("dialer_bench_webhook_{}_{i}", std::process::id());
            let url = server.create(&name).await;
            let dir = tempfile::tempdir().unwrap();
            let loaded = config(dir.path(), &url);
            let store = dialer::store::PgStore::connect(&url, 8).await.unwrap();
            let raw = Raw::Pg(store.pool().clone());
            figures.push(
                one_run(
                    "postgres",
                    i + 1,
                    Arc::new(store),
                    raw,
                    &loaded,
                    n,
                    concurrency,
                )
                .await,
            );
            server.drop_database(&name).await;
        }
        report_median("postgres", &figures);
    }
}
