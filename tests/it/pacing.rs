//! What a claim holds: a daemon killed after claiming leads of a slow
//! campaign must not strand them for minutes. The `dialer` binary is killed
//! with SIGKILL and a new one started; when the leads are dialled again is
//! judged from when place requests reach a fake RevRing account.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use crate::support::process::{free_port, spawn_daemon};
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::store::NewLead;
use serde_json::Map;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_pacing_k3y_1a2b3c4d";
const SECRET: &str = "whsec_pacing_5e6f7a8b";
const CAMPAIGN_ID: &str = "slow";
const LEADS: usize = 4;

/// Accepted place requests, in order of arrival.
fn accepted(fake: &FakeRevRing) -> Vec<(String, Instant)> {
    fake.requests()
        .into_iter()
        .filter(|r| r.answered == 201)
        .map(|r| (r.to, r.at))
        .collect()
}

async fn wait_for_places(fake: &FakeRevRing, n: usize, limit: Duration) -> Vec<(String, Instant)> {
    let t = Instant::now();
    loop {
        let a = accepted(fake);
        if a.len() >= n || t.elapsed() > limit {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn killed_daemon_hands_leads_on_within_seconds(db: TestDb) {
    let _machine = crate::support::heavy().await;
    // Calls last ten minutes: only the claim lease decides when the leads
    // of the killed daemon may be dialled by the next one.
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |_| Behaviour::Answer {
        ms: 600_000,
        end: End::Completed,
    })
    .await;
    let port = free_port();
    fake.set_webhook_url(format!(
        "http://127.0.0.1:{port}/webhooks/revring?token={SECRET}"
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let daemon = format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{}"
[server]
listen = "127.0.0.1:{port}"
[log]
level = "info"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
webhook_secret_file = "secret"
requests_per_minute = 600
max_concurrent_calls = 40
request_timeout = "5s"
poll_interval = "1h"
max_call_duration = "30m"
"#,
        db.url
    );
    let campaign = format!(
        r#"
id = "{CAMPAIGN_ID}"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001"]
timezone = "America/New_York"
[pacing]
calls_per_minute = 6
burst = 1
max_concurrent = 10
[compliance]
local_hours = "off"
"#
    );
    let loaded = crate::support::write_config(dir.path(), &daemon, &[("slow.toml", &campaign)]);
    let clock = Clock::system();
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    let leads: Vec<NewLead> = (0..LEADS)
        .map(|i| NewLead {
            phone: format!("+1212736{:04}", 1000 + i),
            name: Some(format!("Lead {i}")),
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads(CAMPAIGN_ID, &leads, clock.now())
        .await
        .unwrap();

    let mut first = spawn_daemon(dir.path(), "run-1.log");
    let placed = wait_for_places(&fake, 1, Duration::from_secs(20)).await;
    assert_eq!(placed.len(), 1, "the first daemon placed no call");
    // Killed while the next lead waits for its turn at 6 calls a minute.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let killed = Instant::now();
    assert_eq!(
        accepted(&fake).len(),
        1,
        "a second call left the killed daemon before the kill"
    );

    let mut second = spawn_daemon(dir.path(), "run-2.log");
    let placed = wait_for_places(&fake, 2, Duration::from_secs(60)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    let log = |run: usize| {
        std::fs::read_to_string(dir.path().join(format!("run-{run}.log"))).unwrap_or_default()
    };
    assert!(
        placed.len() >= 2,
        "no lead was dialled within 60 s after the daemon that claimed them was killed\n\
         --- first daemon ---\n{}\n--- second daemon ---\n{}",
        log(1),
        log(2)
    );
    let after_kill = placed[1].1.duration_since(killed);
    eprintln!(
        "next place request {:.1} s after the SIGKILL",
        after_kill.as_secs_f64()
    );
    assert!(
        after_kill <= Duration::from_secs(20),
        "the next lead was dialled {:.1} s after the kill: the killed daemon's claim held it",
        after_kill.as_secs_f64()
    );
    let numbers: HashSet<&String> = placed.iter().map(|(to, _)| to).collect();
    assert_eq!(
        numbers.len(),
        placed.len(),
        "a number was called twice: {placed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemons_claimed_leads_are_dialled_within_seconds_sqlite() {
    killed_daemon_hands_leads_on_within_seconds(crate::support::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemons_claimed_leads_are_dialled_within_seconds_postgres() {
    if let Some(db) = crate::support::postgres().await {
        killed_daemon_hands_leads_on_within_seconds(db).await;
    }
}
