//! An account that cannot place calls (402 insufficient credits) pauses
//! dispatching on that provider without burning any lead; dispatching
//! resumes only after a probe of the account succeeds.

use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::NewLead;
use serde_json::{json, Map};
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_required_pauses_without_burning_leads_and_probe_resumes() {
    let server = MockServer::start().await;
    let no_credits = ResponseTemplate::new(402).set_body_json(
        json!({"error": {"code": "insufficient_credits", "message": "Insufficient credits"}}),
    );
    Mock::given(method("POST"))
        .and(path("/v1/calls"))
        .respond_with(no_credits.clone())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/calls/.+"))
        .respond_with(no_credits)
        .mount(&server)
        .await;

    let db = crate::support::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "rr-key").unwrap();
    let daemon_toml = format!(
        "campaigns_dir = \"campaigns\"\n[database]\nurl = \"{}\"\n[providers.revring]\nkind = \"revring\"\nbase_url = \"{}\"\napi_key_file = \"key\"\npoll_interval = \"1h\"\n",
        db.url,
        server.uri()
    );
    let campaign = "id = \"c1\"\nprovider = \"revring\"\nagent_id = \"a1\"\nfrom_numbers = [\"+15551230001\"]\ntimezone = \"UTC\"\n[pacing]\nmax_concurrent = 1\ncalls_per_minute = 600\n[compliance]\nlocal_hours = \"off\"\n";
    let loaded = crate::support::write_config(dir.path(), &daemon_toml, &[("c1.toml", campaign)]);
    // 600x: the 5-minute pause lasts half a real second.
    let clock = Clock::scaled(chrono::Utc::now(), 600.0);
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    let leads: Vec<NewLead> = (0..3)
        .map(|i| NewLead {
            phone: format!("+1212736500{i}"),
            name: None,
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads("c1", &leads, clock.now())
        .await
        .unwrap();
    let daemon = Daemon::new(db.store.clone(), clock, &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let requests = server.received_requests().await.unwrap();
    let posts = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    let probes = requests
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(posts, 1, "placing stops at the first 402");
    assert!(
        probes >= 2,
        "the account is probed while paused ({probes} probes)"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM leads WHERE status = 'pending' AND attempts = 0")
            .await,
        3,
        "no lead burned"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE state = 'not_placed'")
            .await,
        1
    );

    // Credits are back: the probe succeeds (404 for the made-up id), calls go out.
    server.reset().await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/calls/.+"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"message": "Call not found"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/calls"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"data": {"id": "call_1", "status": "QUEUED"}})),
        )
        .mount(&server)
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    running.stop(Duration::from_secs(2)).await;
    let posts = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(
        posts, 1,
        "one call placed (max_concurrent = 1, the call is still live)"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE state = 'placed'")
            .await,
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts").await,
        db.scalar("SELECT count(DISTINCT lead_id) FROM call_attempts")
            .await,
        "a refused attempt is kept to be sent again as itself, never as a new attempt"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM leads WHERE attempts > 1")
            .await,
        0
    );
}
