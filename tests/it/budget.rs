//! A provider's `requests_per_minute` holds for every request the daemon
//! sends it (place, get, list page, probe), judged from the fake provider's
//! own log of arrivals, on its clock.

use crate::support::fake_voicedock::{Arrival, FakeVoiceDock, Kind};
use crate::support::TestDb;
use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use dialer::config::{ProviderConfig, ProviderKind, Secret};
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::pacing::ProviderPacing;
use dialer::provider;
use std::time::Duration;

const KEY: &str = "vd-budget-key-0001";

/// VoiceDock's documented limit.
const PER_MINUTE: usize = 100;
/// The burst the daemon allows a provider of that limit (`rpm / 60`, 1 to 10).
const BURST: usize = 1;
/// How fast the test clock runs: one cell every 0.6 s of clock time is
/// 200 ms of real time. A place request leaves some time after its cell (the
/// rules are checked again and the attempt committed in between); while that
/// stays under one cell's interval the wire sees at most 100 + burst in any
/// minute.
const SPEED: f64 = 3.0;
/// A commit slower than that (a loaded machine) lets one place request
/// arrive a little after the poll cells taken behind it, which can bring
/// one request more into a window measured by arrival than any window of
/// cells holds (as in `limits.rs`).
const ARRIVAL_JITTER: usize = 1;
/// Clock time the daemon runs for.
const RUN: Duration = Duration::from_secs(180);

fn daemon_toml(db_url: &str, fake_url: &str) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{db_url}"
[log]
level = "warn"
[providers.voicedock]
kind = "voicedock"
base_url = "{fake_url}"
api_key_file = "key"
webhook_secret_file = "secret"
requests_per_minute = {PER_MINUTE}
max_concurrent_calls = 100
request_timeout = "5s"
poll_interval = "5s"
max_call_duration = "30m"
"#
    )
}

/// Places six times faster than the provider's whole budget allows.
const CAMPAIGN: &str = r#"
id = "c1"
provider = "voicedock"
agent_id = "assistant-budget"
timezone = "UTC"
[pacing]
calls_per_minute = 600
burst = 10
max_concurrent = 100
[compliance]
local_hours = "off"
max_attempts_per_day = 50
"#;

/// The most arrivals in any 60 s window `[t, t + 60 s)` of the fake's
/// clock, and the window's start.
fn busiest_minute(log: &[Arrival]) -> (usize, Option<DateTime<Utc>>) {
    let mut at: Vec<DateTime<Utc>> = log.iter().map(|a| a.at).collect();
    at.sort();
    let mut best = (0, None);
    let mut end = 0;
    for (start, t) in at.iter().enumerate() {
        while end < at.len() && at[end] < *t + chrono::Duration::seconds(60) {
            end += 1;
        }
        if end - start > best.0 {
            best = (end - start, Some(*t));
        }
    }
    best
}

on_both_backends! {
    voicedock_requests_of_every_kind_stay_within_its_budget => within_budget;
}

/// A campaign placing faster than VoiceDock's 100 requests a minute, calls
/// of 40 s that are followed by polling (one GET per call, and list pages for
/// the calls whose place answer was lost): in no minute, by arrival at the
/// fake, do more than 100 + burst requests arrive.
async fn within_budget(db: TestDb) {
    let _machine = crate::support::measured().await;
    let clock = Clock::scaled("2026-12-01T14:00:00Z".parse().unwrap(), SPEED);
    let (fake, url) = FakeVoiceDock::start(KEY, clock.clone(), Duration::from_secs(40), 7).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    std::fs::write(dir.path().join("secret"), "whsec-budget").unwrap();
    let loaded = crate::support::write_config(
        dir.path(),
        &daemon_toml(&db.url, &url),
        &[("c1.toml", CAMPAIGN)],
    );
    // Due at the test clock's start: inserted with the database's own clock,
    // they would wait until the test clock reached the real time of day.
    for i in 0..600 {
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone, next_attempt_at) \
             VALUES ('c1', '+1212555{i:04}', '2026-12-01T14:00:00Z')"
        ))
        .await;
    }
    let daemon = Daemon::new(db.store.clone(), clock.clone(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let started = clock.now();
    let running = engine::start(daemon, None);
    tokio::time::sleep(clock.real(RUN)).await;
    running.stop(Duration::from_secs(5)).await;

    let log = fake.log();
    let count = |k: Kind| log.iter().filter(|a| a.kind == k).count();
    let (places, gets, lists) = (count(Kind::Place), count(Kind::Get), count(Kind::List));
    let (busiest, from) = busiest_minute(&log);
    let per_minute: Vec<usize> = (0..=RUN.as_secs() / 60)
        .map(|m| {
            let lo = started + chrono::Duration::seconds(60 * m as i64);
            let hi = lo + chrono::Duration::seconds(60);
            log.iter().filter(|a| a.at >= lo && a.at < hi).count()
        })
        .collect();
    eprintln!(
        "[{}] {} s of clock time: {} requests reached the fake ({places} place, {gets} get, {lists} list); \
         by clock minute {per_minute:?}; busiest 60 s window: {busiest} requests (from {:?}); \
         allowed: {} + burst {}",
        db.backend(),
        RUN.as_secs(),
        log.len(),
        from.map(|t| (t - started).num_milliseconds() as f64 / 1000.0),
        PER_MINUTE,
        BURST,
    );
    assert!(
        gets > 0,
        "no call was polled: polling is not in the measure"
    );
    assert!(lists > 0, "no list page was asked for");
    assert!(
        busiest >= PER_MINUTE / 2,
        "the budget was never near its limit ({busiest} in the busiest minute): the test shows nothing"
    );
    assert!(
        busiest <= PER_MINUTE + BURST + ARRIVAL_JITTER,
        "{busiest} requests reached VoiceDock within 60 s; its limit is {PER_MINUTE} (+ burst {BURST}, + {ARRIVAL_JITTER} for arrival jitter)"
    );
}

/// The probe that lifts an "unusable" pause is a request like any other: it
/// waits for a cell of the provider's budget.
#[tokio::test]
async fn a_probe_waits_for_a_cell_of_the_budget() {
    let db = crate::support::sqlite().await;
    let clock = Clock::system();
    let (fake, url) = FakeVoiceDock::start(KEY, clock.clone(), Duration::from_secs(1), 0).await;
    let cfg = ProviderConfig {
        name: "voicedock".into(),
        kind: ProviderKind::VoiceDock,
        base_url: url,
        api_key: Some(Secret::new(KEY)),
        webhook_secret: None,
        username: None,
        // One cell a second, burst 1.
        requests_per_minute: 60,
        max_concurrent_calls: 10,
        request_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_secs(5),
        max_call_duration: Duration::from_secs(1800),
        pause_after_unknown: 5,
        sim: None,
    };
    let pacing = ProviderPacing::new(db.store.clone(), &clock, "voicedock", 60);
    let api = provider::build_metered(&cfg, &clock, pacing.requests.clone()).unwrap();

    // Another request has just spent the only cell.
    let _spent = pacing.requests.take().await;
    let before = clock.now();
    api.probe().await.unwrap();
    let log = fake.log();
    assert_eq!(log.len(), 1, "{log:?}");
    let waited = log[0].at - before;
    eprintln!(
        "probe reached the fake {} ms after the budget's only cell was spent (one cell a second)",
        waited.num_milliseconds()
    );
    assert!(
        waited >= chrono::Duration::milliseconds(900),
        "the probe left {} ms after the last cell was taken, without waiting for the next",
        waited.num_milliseconds()
    );
}
