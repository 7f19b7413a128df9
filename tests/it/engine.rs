//! The whole daemon in-process: simulated provider, test clock running much
//! faster than real time, real databases.

use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::NewLead;
use serde_json::Map;
use std::time::{Duration, Instant};

const CAMPAIGN: &str = r#"
id = "c1"
provider = "sim"
timezone = "America/New_York"
[pacing]
calls_per_minute = 600
burst = 20
max_concurrent = 100
[retry]
max_attempts = 3
[retry.after]
no_answer = "10m"
busy = "5m"
voicemail = "15m"
failed = "5m"
default = "10m"
[compliance]
local_hours = "off"
max_attempts_per_day = 10
"#;

/// Runs the daemon until no lead of `c1` is pending or in progress (or `limit` passes).
async fn run_until_settled(
    db: &TestDb,
    clock: Clock,
    dir: &std::path::Path,
    limit: Duration,
) -> bool {
    let loaded = crate::support::write_config(
        dir,
        &crate::support::sim_daemon_toml(&db.url, ""),
        &[("c1.toml", CAMPAIGN)],
    );
    let daemon = Daemon::new(db.store.clone(), clock, &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    let started = Instant::now();
    let mut done = false;
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Settled: every lead final, and every attempt's fate known. A call
        // reconciled as `unknown` (it outlived max_call_duration while the
        // poller lagged) frees its lead but is still polled for its real end.
        if db
            .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
            .await
            == 0
            && db
                .scalar("SELECT count(*) FROM call_attempts WHERE state IN ('sending', 'placed', 'unknown')")
                .await
                == 0
        {
            done = true;
            break;
        }
    }
    running.stop(Duration::from_secs(5)).await;
    done
}

on_both_backends! {
    thousand_leads_through_the_simulated_provider => thousand_leads;
    plain_sql_lead_is_dialled_and_canceled_lead_is_not => plain_sql_dialled;
}

async fn thousand_leads(db: TestDb) {
    // Settling in time depends on the daemon keeping pace with its fast clock.
    let _machine = crate::support::measured().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::scaled("2026-12-01T14:00:00Z".parse().unwrap(), 600.0);
    let leads: Vec<NewLead> = (0..1000)
        .map(|i| NewLead {
            phone: format!("+1212736{:04}", i),
            name: Some(format!("Lead {i}")),
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    crate::support::write_config(
        dir.path(),
        &crate::support::sim_daemon_toml(&db.url, ""),
        &[("c1.toml", CAMPAIGN)],
    );
    dialer::daemon::sync_campaign_rows(
        db.store.as_ref(),
        &dialer::config::load(&dir.path().join("dialer.toml"))
            .unwrap()
            .campaigns,
        clock.now(),
    )
    .await
    .unwrap();
    db.store
        .insert_leads("c1", &leads, clock.now())
        .await
        .unwrap();
    // Bad rows another system wrote, and a do-not-call number.
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('c1', '12345')")
        .await;
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('c1', '+1999')")
        .await;
    db.store
        .add_dnc(&["+12127360007".to_string()], "test", clock.now())
        .await
        .unwrap();
    // Due at the test clock's start: the rows inserted by SQL took the
    // database's own time of day, which may be hours past it.
    db.exec("UPDATE leads SET next_attempt_at = '2026-12-01T14:00:00Z'")
        .await;

    let settled = run_until_settled(&db, clock, dir.path(), Duration::from_secs(150)).await;
    let open = db
        .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
        .await;
    if !settled {
        // What is stuck, for whoever reads the failure.
        let leads = db.rows("SELECT CAST(id AS TEXT), status, CAST(next_attempt_at AS TEXT), CAST(lease_expires_at AS TEXT), last_outcome FROM leads WHERE status IN ('pending', 'in_progress') LIMIT 5").await;
        let attempts = db
            .rows("SELECT state, CAST(count(*) AS TEXT) FROM call_attempts GROUP BY state")
            .await;
        eprintln!("open leads (first 5): {leads:?}\nattempts by state: {attempts:?}");
    }
    assert!(settled, "{open} leads still open");

    let by_status = db
        .rows("SELECT status, CAST(count(*) AS TEXT) FROM leads GROUP BY status ORDER BY status")
        .await;
    eprintln!("{}: {:?}", db.backend(), by_status);
    assert_eq!(db.scalar("SELECT count(*) FROM leads").await, 1002);
    assert_eq!(
        db.scalar("SELECT count(*) FROM leads WHERE attempts > 3")
            .await,
        0,
        "no lead over max_attempts"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts a WHERE a.attempt > 3")
            .await,
        0,
        "no attempt numbered over max_attempts"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM leads l WHERE l.attempts <>
               (SELECT count(*) FROM call_attempts a WHERE a.lead_id = l.id AND a.state <> 'not_placed')"
        )
        .await,
        0,
        "leads.attempts counts the attempts that are not not_placed"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM leads l WHERE l.status IN ('completed', 'exhausted', 'canceled')
               AND l.last_outcome IS DISTINCT FROM
               (SELECT a.outcome FROM call_attempts a WHERE a.lead_id = l.id ORDER BY a.attempt DESC LIMIT 1)"
        )
        .await,
        0,
        "a final lead's last_outcome is its last attempt's outcome"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM leads WHERE status = 'skipped'
               AND last_outcome NOT IN ('invalid_number', 'do_not_call', 'unknown_timezone', 'rejected')"
        )
        .await,
        0
    );
    let skipped = db
        .rows("SELECT phone, last_outcome FROM leads WHERE status = 'skipped' ORDER BY phone")
        .await;
    assert_eq!(
        skipped,
        vec![
            vec![Some("+12127360007".into()), Some("do_not_call".into())],
            vec![Some("+1999".into()), Some("invalid_number".into())],
            vec![Some("12345".into()), Some("invalid_number".into())],
        ]
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE to_number = '+12127360007'")
            .await,
        0
    );
    assert!(
        db.scalar("SELECT count(*) FROM leads WHERE status = 'completed'")
            .await
            > 500
    );
    assert!(
        db.scalar("SELECT count(*) FROM leads WHERE status = 'exhausted'")
            .await
            > 0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE state <> 'ended'")
            .await,
        0
    );
    assert_eq!(db.scalar("SELECT count(*) FROM leads WHERE status = 'completed' AND last_outcome NOT IN ('completed', 'transferred')").await, 0);
}

async fn plain_sql_dialled(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::scaled(chrono::Utc::now(), 600.0);
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('c1', '+12127365001')")
        .await;
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('c1', '+12127365002')")
        .await;
    db.exec("UPDATE leads SET status = 'canceled' WHERE phone = '+12127365002'")
        .await;
    assert!(run_until_settled(&db, clock, dir.path(), Duration::from_secs(60)).await);
    assert!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE to_number = '+12127365001'")
            .await
            >= 1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE to_number = '+12127365002'")
            .await,
        0
    );
    let rows = db
        .rows("SELECT status FROM leads WHERE phone = '+12127365002'")
        .await;
    assert_eq!(rows[0][0].as_deref(), Some("canceled"));
}
