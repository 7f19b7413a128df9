//! Several simulated days with the simulated provider and the test clock:
//! no call is placed outside its lead's window (in the lead's own zone, DST
//! included), a do-not-call number is never called, and the daily cap is
//! never exceeded.

use crate::support::TestDb;
use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::store::NewLead;
use serde_json::Map;

const CAMPAIGN: &str = r#"
id = "c1"
provider = "sim"
timezone = "America/New_York"
[window]
weekly = ["mon-fri 09:00-12:00,13:00-17:00", "sat 10:00-12:00"]
holidays = ["2026-11-03"]
[pacing]
calls_per_minute = 120
burst = 5
max_concurrent = 50
[retry]
max_attempts = 8
[retry.after]
no_answer = "45m"
busy = "20m"
voicemail = "3h"
failed = "30m"
[compliance]
local_hours = "08:00-21:00"
max_attempts_per_day = 2
"#;

const ZONES: [&str; 5] = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Paris",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];

/// The window, written again independently: is this instant inside it for this zone?
fn inside(at: DateTime<Utc>, tz: Tz) -> bool {
    let local = at.with_timezone(&tz);
    let m = local.hour() * 60 + local.minute();
    let date = local.date_naive();
    if date == chrono::NaiveDate::from_ymd_opt(2026, 11, 3).unwrap() {
        return false;
    }
    match local.weekday() {
        Weekday::Sat => (600..720).contains(&m),
        Weekday::Sun => false,
        _ => (540..720).contains(&m) || (780..1020).contains(&m),
    }
}

on_both_backends! {
    several_days_inside_windows_dnc_and_daily_cap => several_days;
}

async fn several_days(db: TestDb) {
    // The number of calls depends on the daemon keeping pace with its fast clock.
    let _machine = crate::support::measured().await;
    let dir = tempfile::tempdir().unwrap();
    // Friday 30 Oct 2026, 20:00 UTC: Paris changes to winter time on Sunday
    // 25 Oct, New York on Sunday 1 Nov, inside the run.
    let start: DateTime<Utc> = "2026-10-30T20:00:00Z".parse().unwrap();
    let clock = Clock::scaled(start, 10800.0);
    let extra = "";
    let mut daemon_toml = crate::support::sim_daemon_toml(&db.url, extra);
    daemon_toml = daemon_toml
        .replace("min_duration = \"30s\"", "min_duration = \"1m\"")
        .replace("poll_interval = \"10s\"", "poll_interval = \"2m\"")
        + "outcomes = { no_answer = 0.7, busy = 0.2, completed = 0.1 }\n";
    let loaded = crate::support::write_config(dir.path(), &daemon_toml, &[("c1.toml", CAMPAIGN)]);
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    let leads: Vec<NewLead> = (0..100)
        .map(|i| NewLead {
            phone: format!("+1212736{:04}", i),
            name: None,
            timezone: Some(ZONES[i % ZONES.len()].to_string()),
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads("c1", &leads, clock.now())
        .await
        .unwrap();
    let dnc = "+12127360042".to_string();
    db.store
        .add_dnc(
            std::slice::from_ref(&dnc),
            "asked not to be called",
            clock.now(),
        )
        .await
        .unwrap();

    let daemon = Daemon::new(db.store.clone(), clock.clone(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    // Run until Thursday 5 Nov, 23:00 UTC on the test clock.
    let end: DateTime<Utc> = "2026-11-05T23:00:00Z".parse().unwrap();
    while clock.now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    running.stop(std::time::Duration::from_secs(5)).await;

    let rows = db
        .rows("SELECT l.phone, l.timezone, a.requested_at FROM call_attempts a JOIN leads l ON l.id = a.lead_id WHERE a.state <> 'not_placed' ORDER BY l.phone, a.requested_at")
        .await;
    eprintln!("{}: {} calls placed", db.backend(), rows.len());
    assert!(rows.len() > 150, "only {} calls placed", rows.len());
    let mut outside = Vec::new();
    let mut by_phone: std::collections::BTreeMap<String, Vec<DateTime<Utc>>> = Default::default();
    for r in &rows {
        let tz: Tz = r[1].as_deref().unwrap().parse().unwrap();
        let raw = r[2].as_deref().unwrap();
        let at: DateTime<Utc> = DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(&raw[..19], "%Y-%m-%d %H:%M:%S")
                    .map(|n| n.and_utc())
            })
            .unwrap();
        if !inside(at, tz) {
            outside.push(format!(
                "{} {} at {} local",
                r[0].as_deref().unwrap(),
                tz,
                at.with_timezone(&tz)
            ));
        }
        by_phone.entry(r[0].clone().unwrap()).or_default().push(at);
    }
    assert!(
        outside.is_empty(),
        "{} calls outside the window: {:?}",
        outside.len(),
        &outside[..outside.len().min(10)]
    );
    assert!(
        !by_phone.contains_key(&dnc),
        "a do-not-call number was called"
    );
    for (phone, times) in &by_phone {
        for w in times.windows(3) {
            assert!(
                w[2] - w[0] >= Duration::hours(24),
                "{phone}: 3 calls within 24 h: {w:?}"
            );
        }
    }
    // Calls happened on several days, in several zones.
    let days: std::collections::BTreeSet<_> = by_phone
        .values()
        .flatten()
        .map(|t| t.date_naive())
        .collect();
    assert!(days.len() >= 4, "calls on {} days only", days.len());
    let dnc_status = db
        .rows("SELECT status, last_outcome FROM leads WHERE phone = '+12127360042'")
        .await;
    assert_eq!(
        dnc_status[0],
        vec![Some("skipped".into()), Some("do_not_call".into())]
    );
}
