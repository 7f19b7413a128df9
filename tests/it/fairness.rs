//! Campaigns sharing one provider's request budget (SPEC: "higher-priority
//! campaigns get a provider's shared budget first"): with equal priorities a
//! campaign with ten times the leads does not starve the other; with
//! different priorities the higher one is served first. Judged from the
//! fake provider's own log of place requests.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_test_key_fairness";
const AGENT: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
/// The provider's budget: far below what the campaigns would place.
const REQUESTS_PER_MINUTE: u32 = 120;
const BIG: usize = 500;
const SMALL: usize = 50;
/// Place requests counted (the run stops once the fake has seen them).
const SAMPLE: usize = 36;

fn big_phone(i: usize) -> String {
    format!("+1212555{:04}", i)
}

fn small_phone(i: usize) -> String {
    format!("+1212556{:04}", i)
}

fn daemon_toml(db_url: &str, fake_url: &str) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{db_url}"
[log]
level = "warn"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
requests_per_minute = {REQUESTS_PER_MINUTE}
max_concurrent_calls = 100
request_timeout = "2s"
poll_interval = "30s"
max_call_duration = "1m"
"#
    )
}

fn campaign_toml(id: &str, priority: i64) -> String {
    format!(
        r#"
id = "{id}"
provider = "revring"
agent_id = "{AGENT}"
from_numbers = ["+15551230001"]
timezone = "UTC"
priority = {priority}
[pacing]
calls_per_minute = 6000
burst = 5
max_concurrent = 50
[retry]
max_attempts = 1
[compliance]
local_hours = "off"
max_attempts_per_day = 50
"#
    )
}

/// Runs both campaigns until the fake has seen `SAMPLE` place requests;
/// returns how many of them were the big campaign's and the small one's.
async fn share(db: &TestDb, big_priority: i64, small_priority: i64) -> (usize, usize) {
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |_| Behaviour::Answer {
        ms: 100,
        end: End::Completed,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    let loaded = crate::support::write_config(
        dir.path(),
        &daemon_toml(&db.url, &fake_url),
        &[
            ("big.toml", &campaign_toml("big", big_priority)),
            ("small.toml", &campaign_toml("small", small_priority)),
        ],
    );
    for i in 0..BIG {
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone) VALUES ('big', '{}')",
            big_phone(i)
        ))
        .await;
    }
    for i in 0..SMALL {
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone) VALUES ('small', '{}')",
            small_phone(i)
        ))
        .await;
    }
    let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    let started = Instant::now();
    let places = loop {
        let places: Vec<String> = fake
            .requests()
            .into_iter()
            .filter(|r| r.call_id.is_some())
            .map(|r| r.to)
            .collect();
        if places.len() >= SAMPLE || started.elapsed() > Duration::from_secs(60) {
            break places;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    running.stop(Duration::from_secs(3)).await;
    assert!(
        places.len() >= SAMPLE,
        "only {} calls placed in 60 s at {REQUESTS_PER_MINUTE} requests a minute",
        places.len()
    );
    let sample = &places[..SAMPLE];
    let order: String = sample
        .iter()
        .map(|to| if to.starts_with("+1212555") { 'B' } else { 's' })
        .collect();
    eprintln!("{}: order of calls (B big, s small): {order}", db.backend());
    let big = sample
        .iter()
        .filter(|to| to.starts_with("+1212555"))
        .count();
    (big, SAMPLE - big)
}

on_both_backends! {
    equal_priorities_share_the_providers_budget => equal_priorities;
    higher_priority_campaign_is_served_first => higher_priority_first;
}

async fn equal_priorities(db: TestDb) {
    let _machine = crate::support::measured().await;
    let (big, small) = share(&db, 0, 0).await;
    eprintln!(
        "{}: equal priorities, {BIG} and {SMALL} leads: first {SAMPLE} calls {big} / {small}",
        db.backend()
    );
    // An even split is 18 / 18; the campaign with a tenth of the leads
    // still gets at least a third of the budget.
    assert!(
        small >= SAMPLE / 3 && big >= SAMPLE / 3,
        "one campaign starved the other: {big} calls for the big one, {small} for the small one"
    );
}

async fn higher_priority_first(db: TestDb) {
    let _machine = crate::support::measured().await;
    let (big, small) = share(&db, 0, 5).await;
    eprintln!(
        "{}: small campaign at priority 5: first {SAMPLE} calls {big} (priority 0) / {small} (priority 5)",
        db.backend()
    );
    // Only requests already waiting for the budget when both campaigns
    // started can go to the lower priority.
    assert!(
        big <= 3,
        "the lower-priority campaign got {big} of the first {SAMPLE} calls while the higher one had leads due"
    );
}
