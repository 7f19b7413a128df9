//! Callbacks the callee asked for (`[callbacks]`, `dialer callback`): the
//! RevRing agent records `callback_at` in the call's variables; the lead is
//! called again at that instant (judged from the fake provider's log) even
//! past `max_attempts`; a local time is read in the lead's zone across a
//! DST change; a callback asked outside the window moves to the next
//! opening, and `explain` says so.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use crate::support::fields::normal_time;
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_test_key_callbacks";
/// New York: asks to be called back in three seconds.
const SOON: &str = "+12127361001";
/// Los Angeles: asks for 02:30 local on 2027-03-14, inside the hour the
/// clocks skip; read as 03:30 PDT.
const IN_THE_GAP: &str = "+13105551002";
/// Los Angeles: asks for 01:30 local on 2027-11-07, which happens twice;
/// read as the first (PDT).
const TWICE: &str = "+13105551003";
/// Says something that is not a time: no callback.
const UNREADABLE: &str = "+12127361004";

const CAMPAIGN: &str = r#"
id = "cb"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001"]
[callbacks]
field = "callback_at"
max_per_lead = 1
[pacing]
calls_per_minute = 6000
burst = 10
max_concurrent = 10
[retry]
max_attempts = 1
[compliance]
local_hours = "off"
max_attempts_per_day = 50
"#;

async fn callbacks_from_the_call(db: TestDb) {
    let backend = db.backend();
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |_| Behaviour::Answer {
        ms: 50,
        end: End::Completed,
    })
    .await;
    let soon = chrono::DurationRound::duration_trunc(
        chrono::Utc::now() + chrono::Duration::seconds(3),
        chrono::Duration::seconds(1),
    )
    .unwrap();
    let soon_text = soon.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    fake.set_learned(SOON, json!({"callback_at": soon_text}));
    fake.set_learned(IN_THE_GAP, json!({"callback_at": "2027-03-14T02:30"}));
    fake.set_learned(TWICE, json!({"callback_at": "2027-11-07 01:30:00"}));
    fake.set_learned(UNREADABLE, json!({"callback_at": "tomorrow afternoon"}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    let loaded = crate::support::write_config(
        dir.path(),
        &crate::support::revring_daemon_toml(&db.url, &fake_url),
        &[("cb.toml", CAMPAIGN)],
    );
    for phone in [SOON, IN_THE_GAP, TWICE, UNREADABLE] {
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone) VALUES ('cb', '{phone}')"
        ))
        .await;
    }
    let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    let started = Instant::now();
    let status_of = |phone: &'static str| {
        let db = &db;
        async move {
            db.rows(&format!(
                "SELECT status, CAST(callbacks AS TEXT), CAST(attempts AS TEXT) FROM leads WHERE phone = '{phone}'"
            ))
            .await[0]
                .iter()
                .map(|c| c.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };
    while status_of(SOON).await[0] != "completed" || status_of(UNREADABLE).await[0] != "completed" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{backend}: {:?} {:?}",
            status_of(SOON).await,
            status_of(UNREADABLE).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop(Duration::from_secs(3)).await;

    // At the wire: called again, not before the instant asked, although
    // `max_attempts = 1`; a second callback is beyond `max_per_lead`.
    let calls: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.to == SOON && r.call_id.is_some())
        .map(|r| r.clock_at)
        .collect();
    assert_eq!(calls.len(), 2, "{backend}: {calls:?}");
    assert!(
        calls[1] >= soon,
        "{backend}: called back at {} before the {} asked",
        calls[1],
        soon_text
    );
    assert_eq!(status_of(SOON).await, ["completed", "1", "2"], "{backend}");
    assert_eq!(
        status_of(UNREADABLE).await,
        ["completed", "0", "1"],
        "{backend}"
    );

    // Local times in the lead's zone, across DST.
    for (phone, due) in [
        (IN_THE_GAP, "2027-03-14T10:30:00Z"),
        (TWICE, "2027-11-07T08:30:00Z"),
    ] {
        let row = db
            .rows(&format!(
                "SELECT status, next_attempt_at, callback_at, CAST(callbacks AS TEXT) FROM leads WHERE phone = '{phone}'"
            ))
            .await;
        let row: Vec<String> = row[0]
            .iter()
            .map(|c| c.clone().unwrap_or_default())
            .collect();
        assert_eq!(row[0], "pending", "{backend} {phone}: {row:?}");
        assert_eq!(normal_time(&row[1]), due, "{backend} {phone}: {row:?}");
        assert_eq!(normal_time(&row[2]), due, "{backend} {phone}: {row:?}");
        assert_eq!(row[3], "1", "{backend} {phone}");
        assert_eq!(
            fake.requests().iter().filter(|r| r.to == phone).count(),
            1,
            "{backend} {phone}"
        );
    }
}

crate::on_both_backends! {
    callbacks_asked_on_the_call => callbacks_from_the_call;
}

/// `dialer callback` by hand, outside the window: moved to the next
/// opening, said by the command and by `explain`.
#[test]
fn a_callback_outside_the_window_moves_to_the_next_opening() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    std::fs::write(
        dir.path().join("dialer.toml"),
        "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://test.db\"\n[providers.sim]\nkind = \"simulated\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("campaigns/a.toml"),
        "id = \"weekdays\"\nprovider = \"sim\"\n[window]\nweekly = [\"mon-fri 09:00-17:00\"]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dialer"))
            .arg("--config")
            .arg(dir.path().join("dialer.toml"))
            .args(args)
            .env_remove("DIALER_CONFIG")
            .output()
            .unwrap()
    };
    let csv = dir.path().join("leads.csv");
    std::fs::write(&csv, "phone,timezone\n+12127361001,America/New_York\n").unwrap();
    assert!(
        run(&["import", "--campaign", "weekdays", csv.to_str().unwrap()])
            .status
            .success()
    );
    // Saturday 20:00 in New York: due Monday 09:00 there.
    let out = run(&[
        "callback",
        "--campaign",
        "weekdays",
        "--phone",
        "+12127361001",
        "--at",
        "2030-12-07T20:00:00-05:00",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("asked for 2030-12-08T01:00:00Z: outside its window or legal hours, so due at the next opening, 2030-12-09T14:00:00Z"),
        "{text}"
    );
    let out = run(&[
        "explain",
        "--campaign",
        "weekdays",
        "--phone",
        "+12127361001",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["callback"],
        json!({"asked_for": "2030-12-08T01:00:00Z", "due_at": "2030-12-09T14:00:00Z",
               "moved_to_next_opening": true, "callbacks": 1}),
        "{v}"
    );
    // A number not in the campaign, and a time that is none.
    let out = run(&[
        "callback",
        "--campaign",
        "weekdays",
        "--phone",
        "+12127369999",
        "--at",
        "2030-12-09T15:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&[
        "callback",
        "--campaign",
        "weekdays",
        "--phone",
        "+12127361001",
        "--at",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--at: `soon`"));
}
