//! Caller IDs (`[caller_id]`), judged from the fake RevRing's own log of
//! place requests (the `fromNumber` each call carried):
//! - `local`: a number with the lead's area code, else one in its state or
//!   province, else one in its country, else any; `sticky`: every attempt to
//!   a lead from one number;
//! - `calls_per_hour` / `calls_per_day` per number, held in total by two
//!   daemons on one database: once every number is at a cap no request
//!   leaves, and `explain` says `caller_id_cap` until the first one frees.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_test_key_caller_id";
const NYC: &str = "+12125550100"; // New York, area code 212
const CHICAGO: &str = "+13125550100"; // Illinois, 312
const SAN_FRANCISCO: &str = "+14155550100"; // California, 415
const TORONTO: &str = "+14165550100"; // Ontario, Canada
const BOSTON: &str = "+16175550100"; // sticky campaign
const SEATTLE: &str = "+12065550100"; // sticky campaign

/// Each lead of the local campaign, and the caller IDs its calls may use:
/// one when a number shares its area code or its state or province, the
/// US numbers when only the country matches, any when nothing does.
fn local_leads() -> Vec<(&'static str, Vec<&'static str>)> {
    let us = vec![NYC, CHICAGO, SAN_FRANCISCO];
    let any = vec![NYC, CHICAGO, SAN_FRANCISCO, TORONTO];
    vec![
        ("+12127360001", vec![NYC]),           // area code 212
        ("+12127360002", vec![NYC]),           // area code 212
        ("+16467360003", vec![NYC]),           // Manhattan 646: New York state
        ("+17187360004", vec![NYC]),           // Brooklyn 718: New York state
        ("+13127360005", vec![CHICAGO]),       // area code 312
        ("+17737360006", vec![CHICAGO]),       // Chicago 773: Illinois
        ("+15107360007", vec![SAN_FRANCISCO]), // Oakland 510: California
        ("+16137360008", vec![TORONTO]),       // Ottawa 613: Ontario
        ("+15037360009", us.clone()),          // Portland, Oregon: the US
        ("+19077360010", us),                  // Alaska: the US
        // London: none. (Not Paris: France's country rule would close its
        // calls at 20:00 there, and the test would depend on the hour.)
        ("+442079460000", any),
    ]
}

const STICKY_LEADS: [&str; 6] = [
    "+12127361001",
    "+12127361002",
    "+12127361003",
    "+12127361004",
    "+12127361005",
    "+12127361006",
];

fn campaign(id: &str, numbers: &[&str], caller_id: &str, max_attempts: u32) -> String {
    let numbers: Vec<String> = numbers.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        r#"
id = "{id}"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = [{}]
timezone = "UTC"
[caller_id]
{caller_id}
[pacing]
calls_per_minute = 6000
burst = 10
max_concurrent = 10
[retry]
max_attempts = {max_attempts}
[retry.after]
default = "1s"
[compliance]
local_hours = "off"
max_attempts_per_day = 50
"#,
        numbers.join(", ")
    )
}

crate::on_both_backends! {
    local_presence_and_sticky_numbers_at_the_wire => local_and_sticky;
    caller_id_caps_hold_across_two_daemons_at_the_wire => caps_across_daemons;
    voicedock_number_ids_by_local_presence_and_caps => voicedock_number_ids;
}

/// The place requests the fake accepted, as (to, fromNumber).
fn calls(fake: &FakeRevRing) -> Vec<(String, String)> {
    fake.requests()
        .into_iter()
        .filter(|r| r.call_id.is_some())
        .map(|r| {
            let from = r.body["fromNumber"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (r.to, from)
        })
        .collect()
}

async fn insert_leads(db: &TestDb, campaign: &str, phones: &[&str]) {
    let values: Vec<String> = phones
        .iter()
        .map(|p| format!("('{campaign}', '{p}')"))
        .collect();
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone) VALUES {}",
        values.join(", ")
    ))
    .await;
}

/// Waits until no lead is pending or in progress.
async fn until_settled(db: &TestDb, what: &str, limit: Duration) {
    crate::support::fields::wait_until_none(
        db,
        "SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')",
        limit,
        what,
    )
    .await;
}

/// Local presence on every tier, and sticky numbers across three attempts
/// per lead: each call's `fromNumber` at the fake is one its lead may use.
async fn local_and_sticky(db: TestDb) {
    let backend = db.backend();
    let leads = local_leads();
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |_| Behaviour::Answer {
        ms: 30,
        end: End::NoAnswer,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    let local = campaign(
        "local",
        &[NYC, CHICAGO, SAN_FRANCISCO, TORONTO],
        "choose = \"local\"",
        2,
    );
    let sticky = campaign("sticky", &[BOSTON, SEATTLE], "choose = \"sticky\"", 3);
    let loaded = crate::support::write_config(
        dir.path(),
        &crate::support::revring_daemon_toml(&db.url, &fake_url),
        &[("local.toml", &local), ("sticky.toml", &sticky)],
    );
    let phones: Vec<&str> = leads.iter().map(|(p, _)| *p).collect();
    insert_leads(&db, "local", &phones).await;
    insert_leads(&db, "sticky", &STICKY_LEADS).await;
    let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    until_settled(&db, "local and sticky", Duration::from_secs(60)).await;
    running.stop(Duration::from_secs(3)).await;

    let placed = calls(&fake);
    let allowed: HashMap<&str, &Vec<&str>> = leads.iter().map(|(p, a)| (*p, a)).collect();
    let mut used: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for (to, from) in &placed {
        used.entry(to.as_str()).or_default().insert(from.clone());
        if let Some(ok) = allowed.get(to.as_str()) {
            assert!(
                ok.contains(&from.as_str()),
                "{backend}: {to} was called from {from}; it may be called from {ok:?}"
            );
        }
    }
    for (phone, _) in &leads {
        let n = placed.iter().filter(|(to, _)| to == phone).count();
        assert_eq!(n, 2, "{backend}: {phone} called {n} times");
    }
    // Sticky: three attempts a lead, one number each; both numbers used.
    let mut sticky_numbers = BTreeSet::new();
    for phone in STICKY_LEADS {
        let n = placed.iter().filter(|(to, _)| to == phone).count();
        assert_eq!(n, 3, "{backend}: {phone} called {n} times");
        let numbers = &used[phone];
        assert_eq!(
            numbers.len(),
            1,
            "{backend}: {phone} called from {numbers:?}"
        );
        sticky_numbers.extend(numbers.iter().cloned());
    }
    assert_eq!(
        sticky_numbers,
        BTreeSet::from([BOSTON.to_string(), SEATTLE.to_string()]),
        "{backend}"
    );
    // Each attempt row records the number its request carried.
    let stored = db
        .rows("SELECT id, from_number FROM call_attempts WHERE state <> 'not_placed'")
        .await;
    let stored: HashMap<String, String> = stored
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap_or_default()))
        .collect();
    for r in fake.requests().iter().filter(|r| r.call_id.is_some()) {
        assert_eq!(
            stored.get(&r.attempt_id).map(String::as_str),
            r.body["fromNumber"].as_str(),
            "{backend}: attempt {}",
            r.attempt_id
        );
    }
}

/// Per number at most 3 calls an hour and 5 a day. `SAN_FRANCISCO` made 4
/// calls earlier today (another campaign's), so it has 1 left; the others 3
/// each: 7 calls, whatever the two daemons do, then none while every number
/// is at a cap, although 13 leads are still due; `explain` says why and
/// until when.
async fn caps_across_daemons(db: TestDb) {
    const PER_HOUR: usize = 3;
    const LEADS: usize = 20;
    let backend = db.backend();
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |_| Behaviour::Answer {
        ms: 30,
        end: End::Completed,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    let caps = campaign(
        "caps",
        &[NYC, CHICAGO, SAN_FRANCISCO],
        "choose = \"local\"\ncalls_per_hour = 3\ncalls_per_day = 5",
        1,
    );
    let loaded = crate::support::write_config(
        dir.path(),
        &crate::support::revring_daemon_toml(&db.url, &fake_url),
        &[("caps.toml", &caps)],
    );
    let phones: Vec<String> = (0..LEADS).map(|i| format!("+1212737{i:04}")).collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    insert_leads(&db, "caps", &phones).await;
    // Four calls from San Francisco's number 2 to 20 hours ago, made for
    // another campaign: they count against its day.
    db.exec("INSERT INTO campaigns (id, provider, paused, config_hash, created_at, updated_at)
             VALUES ('earlier', 'revring', false, '', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
        .await;
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('earlier', '+14155559999')")
        .await;
    let earlier_lead = db
        .scalar("SELECT id FROM leads WHERE campaign_id = 'earlier'")
        .await;
    let now = chrono::Utc::now();
    for (n, hours) in [2, 8, 14, 20].into_iter().enumerate() {
        let at = dialer::domain::rfc3339(now - chrono::Duration::hours(hours));
        db.exec(&format!(
            "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, from_number, to_number, state, outcome, requested_at)
             VALUES ('earlier-{n}', {earlier_lead}, 'earlier', {}, 'revring', '{SAN_FRANCISCO}', '+14155559999', 'ended', 'completed', '{at}')",
            n + 1
        ))
        .await;
    }
    db.exec("UPDATE leads SET status = 'completed' WHERE campaign_id = 'earlier'")
        .await;
    // Two daemons, each with its own connections to the database.
    let mut running = Vec::new();
    for _ in 0..2 {
        let store = dialer::store::connect(&db.url, 4).await.unwrap();
        let daemon = Daemon::new(store, Clock::system(), &loaded).unwrap();
        daemon.set_campaigns(&loaded.campaigns).await.unwrap();
        running.push(engine::start(daemon, None));
    }
    let expected = 2 * PER_HOUR + 1;
    let started = Instant::now();
    while calls(&fake).len() < expected {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{backend}: {} calls after 30 s",
            calls(&fake).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every number is at a cap now: nothing more leaves, though leads are due.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for r in running {
        r.stop(Duration::from_secs(3)).await;
    }
    let placed = calls(&fake);
    let mut per_number: HashMap<&str, usize> = HashMap::new();
    for (_, from) in &placed {
        *per_number.entry(from.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_number,
        HashMap::from([(NYC, PER_HOUR), (CHICAGO, PER_HOUR), (SAN_FRANCISCO, 1)]),
        "{backend}: calls per caller ID at the fake"
    );
    assert_eq!(placed.len(), expected, "{backend}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM leads WHERE campaign_id = 'caps' AND status = 'pending'")
            .await,
        (LEADS - expected) as i64,
        "{backend}: the leads not called wait, pending"
    );
    let waiting = phones
        .iter()
        .find(|p| !placed.iter().any(|(to, _)| to == *p))
        .unwrap();
    let explain = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(dir.path().join("dialer.toml"))
        .args([
            "explain",
            "--campaign",
            "caps",
            "--json",
            "--phone",
            waiting,
        ])
        .env_remove("DIALER_CONFIG")
        .output()
        .unwrap();
    // `explain`: blocked by the caps until the first of the day's calls from
    // New York or Chicago is an hour old.
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        explain.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["callable"], Value::Bool(false), "{v}");
    assert!(
        v["blocked_by"]
            .as_array()
            .unwrap()
            .contains(&Value::from("caller_id_cap")),
        "{v}"
    );
    let first = fake
        .requests()
        .iter()
        .filter(|r| r.call_id.is_some() && r.body["fromNumber"] != SAN_FRANCISCO)
        .map(|r| r.clock_at)
        .min()
        .unwrap();
    let until: chrono::DateTime<chrono::Utc> = v["caller_id"]["capped_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected_until = first + chrono::Duration::hours(1);
    assert!(
        (until - expected_until).num_seconds().abs() <= 2,
        "{backend}: capped until {until}, the first call reached the fake at {first}"
    );
    assert_eq!(
        v["next_callable_at"].as_str(),
        v["caller_id"]["capped_until"].as_str(),
        "{v}"
    );
}

/// VoiceDock: `from_numbers` are number ids, placed by the numbers
/// `[caller_id.numbers]` gives them; the fake records the `number_id` of
/// every call it placed. Two calls an hour per number, five leads: the
/// New York number calls two 212 leads, Chicago's the 773 lead and the
/// third 212 lead, and the fifth lead waits, `caller_id_cap`.
async fn voicedock_number_ids(db: TestDb) {
    const KEY: &str = "vd-caller-id-key";
    let backend = db.backend();
    let (fake, url) = crate::support::fake_voicedock::FakeVoiceDock::start(
        KEY,
        Clock::system(),
        Duration::from_millis(100),
        0,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    std::fs::write(dir.path().join("secret"), "vd-caller-id-secret").unwrap();
    let campaign = r#"
id = "vd"
provider = "voicedock"
agent_id = "assistant-caller-id"
from_numbers = ["num_nyc", "num_chi"]
timezone = "UTC"
[caller_id]
choose = "local"
calls_per_hour = 2
[caller_id.numbers]
num_nyc = "+12125550100"
num_chi = "+13125550100"
[pacing]
calls_per_minute = 6000
burst = 10
max_concurrent = 10
[retry]
max_attempts = 1
[compliance]
local_hours = "off"
"#;
    let loaded = crate::support::write_config(
        dir.path(),
        &crate::support::account_daemon_toml(&db.url, "voicedock", &url, "200ms"),
        &[("vd.toml", campaign)],
    );
    let new_york = [
        "+12127380001",
        "+12127380002",
        "+12127380003",
        "+12127380004",
    ];
    let chicago = "+17737380005";
    insert_leads(&db, "vd", &new_york[..3]).await;
    insert_leads(&db, "vd", &[chicago]).await;
    let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    until_settled(&db, "voicedock", Duration::from_secs(30)).await;
    // Due once the four above are settled: both numbers are at their cap.
    insert_leads(&db, "vd", &new_york[3..]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop(Duration::from_secs(3)).await;

    let placed = fake.placed();
    let from = |to: &str| -> Vec<String> {
        placed
            .iter()
            .filter(|(d, _)| d == to)
            .map(|(_, n)| n.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(from(chicago), ["num_chi"], "{backend}: {placed:?}");
    let mut nyc: Vec<String> = new_york[..3].iter().flat_map(|p| from(p)).collect();
    nyc.sort();
    assert_eq!(
        nyc,
        ["num_chi", "num_nyc", "num_nyc"],
        "{backend}: {placed:?}"
    );
    assert!(from(new_york[3]).is_empty(), "{backend}: {placed:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(dir.path().join("dialer.toml"))
        .args([
            "explain",
            "--campaign",
            "vd",
            "--json",
            "--phone",
            new_york[3],
        ])
        .env_remove("DIALER_CONFIG")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Handed back due when the first number frees: `not_due` until then too.
    assert_eq!(
        v["blocked_by"],
        serde_json::json!(["caller_id_cap", "not_due"]),
        "{v}"
    );
    assert_eq!(
        v["caller_id"]["numbers"],
        serde_json::json!(["num_nyc", "num_chi"]),
        "{v}"
    );
}
