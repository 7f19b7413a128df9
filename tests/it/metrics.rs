//! `/metrics` of a real daemon: every series the Grafana dashboard reads
//! exists, and the counters and gauges agree with the database.

use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::NewLead;
use serde_json::Map;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CAMPAIGN: &str = r#"
id = "c1"
provider = "sim"
timezone = "America/New_York"
[pacing]
calls_per_minute = 600
burst = 20
max_concurrent = 20
[retry]
max_attempts = 1
[compliance]
local_hours = "off"
max_attempts_per_day = 10
"#;

/// Calls of 30 s to 3 min of clock time; at 10x that is 3 to 18 s real,
/// so the live-call count changes a few times a second at most.
fn daemon_toml(url: &str) -> String {
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
seed = 5
requests_per_minute = 100000
max_concurrent_calls = 200
poll_interval = "10s"
[providers.sim.outcomes]
completed = 3
no_answer = 1
"#
    )
}

struct Served {
    running: engine::Running,
    base: String,
}

async fn start(db: &TestDb, dir: &std::path::Path, leads: usize) -> (Served, Clock) {
    let clock = Clock::scaled("2026-12-01T14:00:00Z".parse().unwrap(), 10.0);
    let loaded = crate::support::write_config(dir, &daemon_toml(&db.url), &[("c1.toml", CAMPAIGN)]);
    let daemon = Daemon::new(db.store.clone(), clock.clone(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let rows: Vec<NewLead> = (0..leads)
        .map(|i| NewLead {
            phone: format!("+1212736{:04}", i),
            name: None,
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads("c1", &rows, clock.now())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let running = engine::start(daemon, Some(listener));
    (Served { running, base }, clock)
}

async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sample lines as (name, labels) → value.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.insert((name.to_string(), labels), value.parse().unwrap());
    }
    out
}

fn value(
    s: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    *s.get(&(name.to_string(), want))
        .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
}

on_both_backends! {
    every_series_the_dashboard_reads_is_served => dashboard_series;
    counters_and_gauges_match_the_database => match_database;
}

/// The metric names the dashboard's PromQL expressions use.
fn dashboard_names() -> Vec<String> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dialer.json"),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names = Vec::new();
    for panel in json["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("dialer_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

async fn dashboard_series(db: TestDb) {
    let names = dashboard_names();
    assert!(names.len() >= 12, "{names:?}");
    let dir = tempfile::tempdir().unwrap();
    // No lead yet: the series must be there before the first event.
    let (served, _clock) = start(&db, dir.path(), 0).await;
    let text = scrape(&served.base).await;
    let served_names: std::collections::BTreeSet<String> =
        samples(&text).into_keys().map(|(n, _)| n).collect();
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !served_names.contains(*n))
        .collect();
    assert!(missing.is_empty(), "not in /metrics: {missing:?}\n{text}");
    assert!(text.contains("# HELP dialer_calls_placed_total"), "{text}");
    served.running.stop(Duration::from_secs(5)).await;
}

async fn match_database(db: TestDb) {
    const LEADS: usize = 80;
    let dir = tempfile::tempdir().unwrap();
    let (served, _clock) = start(&db, dir.path(), LEADS).await;

    // Mid-run: wait until the concurrency limit is full, then scrape once
    // (the first scrape reads the database) and read the database right after.
    let started = Instant::now();
    while db
        .scalar("SELECT count(*) FROM call_attempts WHERE state IN ('sending', 'placed')")
        .await
        < 20
    {
        assert!(started.elapsed() < Duration::from_secs(60), "no calls live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = samples(&scrape(&served.base).await);
    let live_db = db
        .scalar("SELECT count(*) FROM call_attempts WHERE state IN ('sending', 'placed')")
        .await;
    let live = value(
        &s,
        "dialer_live_calls",
        &[("campaign", "c1"), ("provider", "sim")],
    );
    // Calls last 3 to 18 s real, 20 at most at once: about one call a
    // second ends (and is replaced), so within the few milliseconds between
    // the two reads at most one or two change.
    assert!(
        (live - live_db as f64).abs() <= 2.0,
        "live calls gauge {live}, database {live_db}"
    );
    assert!(live > 0.0);
    // Every lead is in exactly one status: the gauge's total is exact at any moment.
    let total: f64 = s
        .iter()
        .filter(|((n, l), _)| {
            n == "dialer_leads" && l.get("campaign").map(String::as_str) == Some("c1")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, LEADS as f64);

    // To the end.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "campaign did not finish"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        if db
            .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
            .await
            == 0
            && db
                .scalar("SELECT count(*) FROM call_attempts WHERE state IN ('sending', 'placed', 'unknown')")
                .await
                == 0
        {
            break;
        }
    }
    // The database gauges are read at most every 5 s.
    tokio::time::sleep(dialer::metrics::GAUGE_REFRESH + Duration::from_millis(200)).await;
    let s = samples(&scrape(&served.base).await);
    let placed_db = db
        .scalar("SELECT count(*) FROM call_attempts WHERE provider_call_id IS NOT NULL")
        .await;
    assert_eq!(
        value(
            &s,
            "dialer_calls_placed_total",
            &[("campaign", "c1"), ("provider", "sim")]
        ),
        placed_db as f64
    );
    assert!(placed_db >= LEADS as i64);
    for row in db
        .rows("SELECT outcome, CAST(count(*) AS TEXT) FROM call_attempts WHERE outcome IS NOT NULL GROUP BY outcome")
        .await
    {
        let (o, n) = (row[0].clone().unwrap(), row[1].clone().unwrap());
        assert_eq!(
            value(&s, "dialer_call_outcomes_total", &[("campaign", "c1"), ("outcome", &o), ("provider", "sim")]),
            n.parse::<f64>().unwrap(),
            "outcome {o}"
        );
    }
    let mut by_status = BTreeMap::new();
    for row in db
        .rows("SELECT status, CAST(count(*) AS TEXT) FROM leads GROUP BY status")
        .await
    {
        by_status.insert(row[0].clone().unwrap(), row[1].clone().unwrap());
    }
    for st in [
        "pending",
        "in_progress",
        "completed",
        "exhausted",
        "skipped",
        "canceled",
    ] {
        let n: f64 = by_status.get(st).map_or(0.0, |n| n.parse().unwrap());
        assert_eq!(
            value(&s, "dialer_leads", &[("campaign", "c1"), ("status", st)]),
            n,
            "leads {st}"
        );
    }
    assert_eq!(
        value(
            &s,
            "dialer_live_calls",
            &[("campaign", "c1"), ("provider", "sim")]
        ),
        0.0
    );
    served.running.stop(Duration::from_secs(5)).await;
}

on_both_backends! {
    a_paused_provider_shows_in_status_and_explain => pause_visible;
}

async fn pause_visible(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    crate::support::write_config(dir.path(), &daemon_toml(&db.url), &[("c1.toml", CAMPAIGN)]);
    // A pause in force now (`status` reads the real clock) that ends within
    // the year `explain` looks ahead from its `--at`.
    let at = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(16, 0, 0)
        .unwrap()
        .and_utc();
    let until = at + chrono::Duration::days(30);
    let at_arg = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until_text = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    db.store
        .set_provider_pause(&dialer::store::ProviderPause {
            provider: "sim".into(),
            until,
            reason: "401: invalid API key".into(),
            since: at - chrono::Duration::hours(2),
        })
        .await
        .unwrap();
    let config = dir.path().join("dialer.toml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let explained: serde_json::Value = serde_json::from_str(&run(&[
        "explain",
        "--campaign",
        "c1",
        "--phone",
        "+12127360001",
        "--at",
        &at_arg,
        "--json",
    ]))
    .unwrap();
    assert_eq!(explained["callable"], false, "{explained}");
    assert_eq!(
        explained["blocked_by"],
        serde_json::json!(["provider_paused"])
    );
    assert_eq!(
        explained["provider_paused"]["reason"],
        "401: invalid API key"
    );
    let next: chrono::DateTime<chrono::Utc> = explained["next_callable_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no next_callable_at: {explained}"))
        .parse()
        .unwrap();
    assert!(next >= until, "{explained}");
    let text = run(&[
        "explain",
        "--campaign",
        "c1",
        "--phone",
        "+12127360001",
        "--at",
        &at_arg,
    ]);
    assert!(
        text.contains(&format!(
            "blocked by provider_paused (provider sim paused until {until_text}: 401: invalid API key)"
        )),
        "{text}"
    );
    let status = run(&["status"]);
    assert!(
        status.contains(&format!("provider sim paused until {until_text}"))
            && status.contains("invalid API key"),
        "{status}"
    );
    // Once the probe succeeds the row is removed and nothing blocks.
    db.store.clear_provider_pause("sim").await.unwrap();
    let status = run(&["status"]);
    assert!(!status.contains("paused until"), "{status}");
}

/// `/readyz` answers 503 once the database is gone: the test database is
/// dropped under the running daemon (its connections are terminated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_database_is_unreachable() {
    let Some(db) = crate::support::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (served, _clock) = start(&db, dir.path(), 0).await;
    let ready = || async {
        reqwest::get(format!("{}/readyz", served.base))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let mut admin = reqwest::Url::parse(&db.url).unwrap();
    admin.set_path("/postgres");
    let pool = sqlx::PgPool::connect(admin.as_str()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();
    let asked = Instant::now();
    assert_eq!(ready().await, 503);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let s = samples(&scrape(&served.base).await);
    assert!(value(&s, "dialer_database_errors_total", &[]) >= 1.0);
    served.running.stop(Duration::from_secs(5)).await;
}
