//! Rate limits held in total across daemons (SPEC promise 3): three
//! `dialer run` processes share one PostgreSQL database and one RevRing
//! account, and the limits are judged from the fake provider's own arrival
//! log, never from what the daemons wrote about themselves.

use crate::support::chaos_provider::{ChaosRevRing, Faults};
use crate::support::process::{any_hour_phone, free_port, spawn_daemon};
use crate::support::TestDb;
use dialer::store::NewLead;
use serde_json::Map;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_limits_k3y_1a2b3c4d";
const SECRET: &str = "whsec_limits_5e6f7a8b";
const CAMPAIGN_ID: &str = "limits";
const DAEMONS: usize = 3;
const LEADS: usize = 500;
/// How long the daemons run from the first request the fake sees.
const BUSY: Duration = Duration::from_secs(70);
const WINDOW: Duration = Duration::from_secs(60);
/// The limits hold for when requests leave the daemons; the fake sees them
/// a few milliseconds later, unevenly, which can bring one request more
/// into a window measured by arrival than any window of departures holds.
const ARRIVAL_JITTER: usize = 1;
/// What the three daemons must at least reach in the busiest window of a
/// limit of 120 a minute: 80% of it. The ceiling is the promise; the floor
/// only shows the daemons are not starved by the shared limiter. Three
/// debug-build daemons on two shared cores reached 104-111 in the runs seen (a
/// stalled daemon loses the cells its burst of 2 cannot carry).
const FLOOR: usize = 96;

/// A RevRing account that accepts every call and ends it within a second.
fn clean() -> Faults {
    Faults {
        too_many: 0,
        error_before: 0,
        error_after: 0,
        hang: 0,
        malformed: 0,
        batch_fault: 0,
        webhook: 0,
    }
}

fn campaign_toml(calls_per_minute: u32, burst: u32, max_concurrent: u32) -> String {
    format!(
        r#"
id = "{CAMPAIGN_ID}"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001"]
timezone = "America/New_York"
[pacing]
calls_per_minute = {calls_per_minute}
burst = {burst}
max_concurrent = {max_concurrent}
[retry]
max_attempts = 1
[compliance]
local_hours = "off"
max_attempts_per_day = 100
"#
    )
}

fn daemon_toml(db_url: &str, fake_url: &str, port: u16, requests_per_minute: u32) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{db_url}"
[server]
listen = "127.0.0.1:{port}"
[log]
level = "info"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
webhook_secret_file = "secret"
requests_per_minute = {requests_per_minute}
max_concurrent_calls = 200
request_timeout = "5s"
poll_interval = "1s"
max_call_duration = "1m"
"#
    )
}

/// The most arrivals in any `[t, t + WINDOW)`, and the window's start.
fn busiest(arrivals: &[Duration]) -> (usize, Duration) {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut best = (0, Duration::ZERO);
    let mut end = 0;
    for (i, &start) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < start + WINDOW {
            end += 1;
        }
        if end - i > best.0 {
            best = (end - i, start);
        }
    }
    best
}

/// Runs three daemons against one account until `BUSY` has passed since
/// the fake's first request; returns the fake and the daemons' directories.
async fn three_daemons(
    db: &TestDb,
    campaign: &str,
    requests_per_minute: u32,
) -> (ChaosRevRing, Vec<PathBuf>) {
    let (fake, fake_url) = ChaosRevRing::start(API_KEY, 5, clean()).await;
    let root =
        std::env::temp_dir().join(format!("dialer-limits-{}", uuid::Uuid::new_v4().simple()));
    let mut dirs = Vec::new();
    let mut loaded = None;
    for n in 0..DAEMONS {
        let dir = root.join(format!("daemon-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key"), API_KEY).unwrap();
        std::fs::write(dir.join("secret"), SECRET).unwrap();
        loaded = Some(crate::support::write_config(
            &dir,
            &daemon_toml(&db.url, &fake_url, free_port(), requests_per_minute),
            &[("limits.toml", campaign)],
        ));
        dirs.push(dir);
    }
    let loaded = loaded.unwrap();
    let now = chrono::Utc::now();
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, now)
        .await
        .unwrap();
    let leads: Vec<NewLead> = (0..LEADS)
        .map(|i| NewLead {
            phone: any_hour_phone(i),
            name: Some(format!("Lead {i}")),
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads(CAMPAIGN_ID, &leads, now)
        .await
        .unwrap();

    let mut children: Vec<Child> = dirs.iter().map(|d| spawn_daemon(d, "run.log")).collect();
    let started = Instant::now();
    while fake.requests().is_empty() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !fake.requests().is_empty(),
        "no request reached the provider in 20 s; logs in {root:?}"
    );
    // Within 50 ms of the first request: the busy time counts from there.
    tokio::time::sleep(BUSY).await;
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    (fake, dirs)
}

async fn calls_per_minute_in_total(db: TestDb) {
    let _machine = crate::support::measured().await;
    let (fake, dirs) = three_daemons(&db, &campaign_toml(120, 2, 100), 60_000).await;
    let places: Vec<Duration> = fake.places().iter().map(|p| p.at).collect();
    let (most, at) = busiest(&places);
    eprintln!(
        "calls_per_minute = 120, burst = 2, {DAEMONS} daemons: {} place requests, at most {most} in one 60 s window (from {:.1} s)",
        places.len(),
        at.as_secs_f64()
    );
    assert!(
        most <= 122 + ARRIVAL_JITTER,
        "{most} place requests reached the provider within one 60 s window (from {:.1} s); the limit is 120 a minute plus a burst of 2; logs in {:?}",
        at.as_secs_f64(),
        dirs[0].parent()
    );
    assert!(
        most >= FLOOR,
        "only {most} place requests in the busiest 60 s window: the campaign stayed under 80% of its limit; logs in {:?}",
        dirs[0].parent()
    );
}

async fn requests_per_minute_in_total(db: TestDb) {
    let _machine = crate::support::measured().await;
    // The campaign would place far faster: the account's budget, shared by
    // placing and polling, is what holds. Few leads in progress at once, so
    // none waits for the budget past its claim lease (a lead lost that way
    // has spent a cell without a request).
    let (fake, dirs) = three_daemons(&db, &campaign_toml(6000, 20, 10), 120).await;
    let requests = fake.requests();
    let (most, at) = busiest(&requests);
    let places = fake.places().len();
    eprintln!(
        "requests_per_minute = 120, {DAEMONS} daemons: {} requests ({places} place, the rest polls), at most {most} in one 60 s window (from {:.1} s)",
        requests.len(),
        at.as_secs_f64()
    );
    // The provider's burst is requests_per_minute / 60, at least 1.
    assert!(
        most <= 122 + ARRIVAL_JITTER,
        "{most} requests reached the provider within one 60 s window (from {:.1} s); its requests_per_minute is 120 (burst 2); logs in {:?}",
        at.as_secs_f64(),
        dirs[0].parent()
    );
    assert!(
        most >= FLOOR,
        "only {most} requests in the busiest 60 s window: the account stayed under 80% of its budget; logs in {:?}",
        dirs[0].parent()
    );
    assert!(
        places > 0 && places < requests.len(),
        "both placing and polling must have used the budget: {places} of {}",
        requests.len()
    );
}

mod calls_per_minute_across_daemons {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(db) = crate::support::postgres().await {
            super::calls_per_minute_in_total(db).await;
        }
    }
}

mod requests_per_minute_across_daemons {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(db) = crate::support::postgres().await {
            super::requests_per_minute_in_total(db).await;
        }
    }
}

on_both_backends! {
    a_rebuilt_limiter_keeps_what_was_spent => rebuilt_limiter;
}

/// A reload rebuilds the campaign's dispatcher and its limiter: the new one
/// must not start with a fresh burst.
async fn rebuilt_limiter(db: TestDb) {
    let clock = dialer::clock::Clock::system();
    let key = "campaign:reloaded";
    // One call a second, no burst beyond the one.
    let before = dialer::pacing::Limiter::shared(db.store.clone(), &clock, key, 60, 1);
    before.ready().await;
    drop(before);
    let after = dialer::pacing::Limiter::shared(db.store.clone(), &clock, key, 60, 1);
    let started = Instant::now();
    after.ready().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "the rebuilt limiter granted a call after {waited:?}, less than the second the limit asks"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

on_both_backends! {
    a_wait_that_gives_up_spends_nothing => gave_up;
}

/// A lead whose claim runs out before the provider's budget has a cell for
/// it gives up the wait; the cell it did not get is the next waiter's.
async fn gave_up(db: TestDb) {
    let clock = dialer::clock::Clock::system();
    let limiter =
        dialer::pacing::Limiter::shared(db.store.clone(), &clock, "provider:deadline", 60, 1);
    limiter.ready().await;
    let started = Instant::now();
    let deadline = clock.now() + chrono::Duration::milliseconds(300);
    assert!(
        !limiter.ready_as(0, Some(deadline)).await,
        "a cell was granted 300 ms after the last at one a second"
    );
    let gave_up = started.elapsed();
    assert!(
        gave_up >= Duration::from_millis(250) && gave_up < Duration::from_millis(900),
        "gave up after {gave_up:?}, not at its deadline"
    );
    limiter.ready().await;
    let next = started.elapsed();
    assert!(
        next >= Duration::from_millis(900) && next < Duration::from_millis(1600),
        "the next cell came {next:?} after the first, not the one second the limit asks"
    );
}
