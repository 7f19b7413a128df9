//! The daemon runs a 200-lead campaign against a fake RevRing account over
//! real HTTP: calls are placed, some answers are 429, some responses are
//! lost, some numbers refused; outcomes arrive by signed-by-token webhooks
//! and by polling. Every lead must end right, and no lead may be called more
//! often than the retry policy allows.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::NewLead;
use serde_json::Map;
use std::collections::HashMap;

use std::time::{Duration, Instant};

const API_KEY: &str = "rr_live_k3y_9f8e7d6c5b4a";
const SECRET: &str = "whsec_s3cr3t_0a1b2c3d";

fn behaviour(i: usize) -> Behaviour {
    match i % 10 {
        0..=4 => Behaviour::Answer {
            ms: 150,
            end: End::Completed,
        },
        5 => Behaviour::Answer {
            ms: 100,
            end: End::NoAnswer,
        },
        6 => Behaviour::Answer {
            ms: 100,
            end: End::Voicemail,
        },
        7 => Behaviour::BusyAccountOnce {
            ms: 100,
            end: End::Completed,
        },
        8 => Behaviour::LoseResponse {
            ms: 200,
            end: End::Completed,
        },
        _ if i % 20 == 9 => Behaviour::RejectNumber,
        _ => Behaviour::Answer {
            ms: 100,
            end: End::Transferred,
        },
    }
}

fn phone(i: usize) -> String {
    format!("+1212736{:04}", i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_leads_against_a_fake_revring() {
    crate::support::logs::capture();

    let index: HashMap<String, usize> = (0..200).map(|i| (phone(i), i)).collect();
    let (fake, fake_url) = FakeRevRing::start(API_KEY, move |to| behaviour(index[to])).await;

    let db = crate::support::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
    let daemon_toml = format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{}"
[server]
listen = "127.0.0.1:0"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
webhook_secret_file = "secret"
requests_per_minute = 6000
max_concurrent_calls = 60
request_timeout = "1s"
poll_interval = "1s"
max_call_duration = "1m"
"#,
        db.url
    );
    let campaign = r#"
id = "winter-renewals"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001", "+15551230002"]
timezone = "America/New_York"
[pacing]
calls_per_minute = 3000
burst = 10
max_concurrent = 40
[retry]
max_attempts = 3
[retry.after]
no_answer = "2s"
busy = "1s"
voicemail = "2s"
failed = "1s"
unknown = "3s"
default = "1s"
[compliance]
local_hours = "off"
max_attempts_per_day = 10
[variables]
first_name = "{{name}}"
"#;
    let loaded =
        crate::support::write_config(dir.path(), &daemon_toml, &[("winter.toml", campaign)]);
    let clock = Clock::system();
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    let leads: Vec<NewLead> = (0..200)
        .map(|i| NewLead {
            phone: phone(i),
            name: Some(format!("Lead{i}")),
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads("winter-renewals", &leads, clock.now())
        .await
        .unwrap();

    let daemon = Daemon::new(db.store.clone(), clock, &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    fake.set_webhook_url(format!(
        "http://{}/webhooks/revring?token={SECRET}",
        listener.local_addr().unwrap()
    ));
    let running = engine::start(daemon, Some(listener));

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if db
            .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
            .await
            == 0
        {
            break;
        }
    }
    running.stop(Duration::from_secs(5)).await;

    // Every lead ended right.
    let rows = db
        .rows("SELECT phone, status, last_outcome FROM leads ORDER BY phone")
        .await;
    let mut wrong = Vec::new();
    for r in &rows {
        let i: usize = r[0].as_deref().unwrap()[8..].parse().unwrap();
        let expected = match behaviour(i) {
            Behaviour::Answer {
                end: End::Completed,
                ..
            }
            | Behaviour::BusyAccountOnce { .. }
            | Behaviour::LoseResponse { .. } => ("completed", "completed"),
            Behaviour::Answer {
                end: End::Transferred,
                ..
            } => ("completed", "transferred"),
            Behaviour::Answer {
                end: End::NoAnswer, ..
            } => ("exhausted", "no_answer"),
            Behaviour::Answer {
                end: End::Voicemail,
                ..
            } => ("exhausted", "voicemail"),
            Behaviour::Answer {
                end: End::Failed, ..
            } => ("exhausted", "failed"),
            Behaviour::RejectNumber => ("skipped", "rejected"),
        };
        if (r[1].as_deref(), r[2].as_deref()) != (Some(expected.0), Some(expected.1)) {
            wrong.push(format!("{i}: {:?} expected {expected:?}", r));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} leads ended wrong: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );

    // The provider saw what the retry policy allows, and nothing twice.
    let requests = fake.requests();
    let mut accepted_by_number: HashMap<&str, usize> = HashMap::new();
    let mut accepted_attempts = std::collections::HashSet::new();
    for r in &requests {
        assert_eq!(r.api_key.as_deref(), Some(API_KEY));
        assert_eq!(r.body["skipQueue"], true);
        assert_eq!(r.body["agentId"], "3c90c3cc-0d44-4b50-8888-8dd25736052a");
        assert!(["+15551230001", "+15551230002"].contains(&r.body["fromNumber"].as_str().unwrap()));
        let i: usize = r.to[8..].parse().unwrap();
        assert_eq!(r.body["variables"]["first_name"], format!("Lead{i}"));
        if r.answered != 429 {
            *accepted_by_number.entry(&r.to).or_default() += 1;
            assert!(
                accepted_attempts.insert(r.attempt_id.clone()),
                "attempt {} sent twice",
                r.attempt_id
            );
        }
    }
    for (to, n) in &accepted_by_number {
        let i: usize = to[8..].parse().unwrap();
        let allowed = match behaviour(i) {
            Behaviour::Answer {
                end: End::NoAnswer | End::Voicemail | End::Failed,
                ..
            } => 3,
            _ => 1,
        };
        assert!(
            *n <= allowed,
            "{to} called {n} times, policy allows {allowed}"
        );
        assert_eq!(*n, allowed, "{to} called {n} times, expected {allowed}");
    }
    // A 429 is sent again as the same attempt.
    for r in requests.iter().filter(|r| r.answered == 429) {
        assert!(
            accepted_attempts.contains(&r.attempt_id),
            "refused attempt {} not sent again as itself",
            r.attempt_id
        );
    }
    assert_eq!(requests.iter().filter(|r| r.answered == 429).count(), 20);

    // What the call produced is written back.
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE outcome = 'completed' AND (summary IS NULL OR recording_url IS NULL OR answered_at IS NULL)").await,
        0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE state <> 'ended'")
            .await,
        0
    );

    // No key or secret in any log line.
    let text = crate::support::logs::text();
    assert!(text.contains("call placed"), "logs were captured");
    assert!(!text.contains(API_KEY), "API key in logs");
    assert!(!text.contains(SECRET), "webhook secret in logs");
}
