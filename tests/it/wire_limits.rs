//! SPEC promises 2 and 3 judged at the wire: the daemon runs in-process on a
//! scaled clock against a fake RevRing account sharing that clock, and every
//! verdict comes from the fake's own log (arrival times on its clock, calls
//! live by its own bookkeeping), never from what the daemon wrote.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use crate::support::TestDb;
use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use chrono_tz::Tz;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine::{self, Running};
use dialer::store::NewLead;
use serde_json::Map;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_wire_limits_k3y_9f8e7d";
const SECRET: &str = "whsec_wire_limits_6c5b4a";
const AGENT: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
const WINDOW: ChronoDuration = ChronoDuration::seconds(60);

/// What the provider account is configured with.
struct Account {
    requests_per_minute: u32,
    max_concurrent_calls: u32,
}

/// One campaign file.
struct Campaign {
    id: &'static str,
    calls_per_minute: u32,
    burst: u32,
    max_concurrent: u32,
    local_hours: &'static str,
}

fn daemon_toml(db_url: &str, fake_url: &str, a: &Account) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{db_url}"
[server]
listen = "127.0.0.1:0"
[log]
level = "warn"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
webhook_secret_file = "secret"
requests_per_minute = {rpm}
max_concurrent_calls = {mcc}
request_timeout = "5s"
poll_interval = "5s"
max_call_duration = "10m"
"#,
        rpm = a.requests_per_minute,
        mcc = a.max_concurrent_calls,
    )
}

fn campaign_toml(c: &Campaign) -> String {
    format!(
        r#"
id = "{id}"
provider = "revring"
agent_id = "{AGENT}"
from_numbers = ["+15551230001"]
timezone = "America/New_York"
[pacing]
calls_per_minute = {cpm}
burst = {burst}
max_concurrent = {mc}
[retry]
max_attempts = 1
[compliance]
local_hours = "{lh}"
max_attempts_per_day = 10
"#,
        id = c.id,
        cpm = c.calls_per_minute,
        burst = c.burst,
        mc = c.max_concurrent,
        lh = c.local_hours,
    )
}

struct Rig {
    fake: FakeRevRing,
    clock: Clock,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop(Duration::from_secs(5)).await;
        }
    }

    /// Waits (real time, at most `limit`) for the fake's first place request.
    async fn first_arrival(&self, limit: Duration) -> DateTime<Utc> {
        let started = Instant::now();
        loop {
            if let Some(r) = self.fake.requests().first() {
                return r.clock_at;
            }
            assert!(
                started.elapsed() < limit,
                "no request reached the provider in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts a fake sharing `clock`, writes the campaigns and their leads
/// (`leads` gives each campaign's numbers and zones), starts the daemon.
async fn rig(
    db: &TestDb,
    clock: Clock,
    account: Account,
    campaigns: &[Campaign],
    leads: impl Fn(&str) -> Vec<NewLead>,
    call: Duration,
) -> Rig {
    let ms = u64::try_from(call.as_millis()).unwrap();
    let (fake, fake_url) =
        FakeRevRing::start_with_clock(API_KEY, clock.clone(), move |_| Behaviour::Answer {
            ms,
            end: End::Completed,
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let files: Vec<(String, String)> = campaigns
        .iter()
        .map(|c| (format!("{}.toml", c.id), campaign_toml(c)))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let loaded = crate::support::write_config(
        dir.path(),
        &daemon_toml(&db.url, &fake_url, &account),
        &files,
    );
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    for c in campaigns {
        db.store
            .insert_leads(c.id, &leads(c.id), clock.now())
            .await
            .unwrap();
    }
    let daemon = Daemon::new(db.store.clone(), clock.clone(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    fake.set_webhook_url(format!(
        "http://{}/webhooks/revring?token={SECRET}",
        listener.local_addr().unwrap()
    ));
    let running = engine::start(daemon, Some(listener));
    Rig {
        fake,
        clock,
        running: Some(running),
        _dir: dir,
    }
}

fn lead(phone: String, timezone: Option<&str>) -> NewLead {
    NewLead {
        phone,
        name: None,
        timezone: timezone.map(str::to_string),
        variables: Map::new(),
    }
}

/// The most arrivals in any `[t, t + WINDOW)`, and that window's start.
fn busiest(arrivals: &[DateTime<Utc>]) -> (usize, DateTime<Utc>) {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut best = (0, sorted.first().copied().unwrap_or_default());
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

/// Each attempt's `requested_at` as the daemon recorded it, by attempt id.
async fn recorded_times(db: &TestDb) -> std::collections::HashMap<String, DateTime<Utc>> {
    db.rows("SELECT CAST(id AS TEXT), requested_at FROM call_attempts")
        .await
        .into_iter()
        .map(|r| {
            let raw = r[1].clone().unwrap();
            let at = DateTime::parse_from_rfc3339(&raw)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(&raw, "%Y-%m-%d %H:%M:%S%.f")
                        .map(|n| n.and_utc())
                })
                .unwrap_or_else(|e| panic!("{raw}: {e}"));
            (r[0].clone().unwrap(), at)
        })
        .collect()
}

fn secs(d: ChronoDuration) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

// ------------------------------------------------------------------ rate

on_both_backends! {
    calls_per_minute_reached_and_never_exceeded_at_the_wire => rate_at_the_wire;
}

/// Test-clock speed of the rate test: 600 calls a minute are 30 a second
/// of real time, which a loaded 2-core machine keeps up with (at 5x,
/// SQLite under load placed only 90% of the limit).
const RATE_SPEED: f64 = 3.0;
/// The limit holds for when requests leave the daemon; the fake sees each
/// some milliseconds after its cell was granted (the attempt is committed
/// in between), unevenly under load, which can bring a few more requests
/// into a window measured by arrival than any window of grants holds. Up
/// to this much real time of uneven lag is allowed for; the scaled clock
/// stretches it `RATE_SPEED` times.
const ARRIVAL_LAG_REAL: Duration = Duration::from_millis(100);
const RATE_SPAN: ChronoDuration = ChronoDuration::minutes(3);

async fn rate_at_the_wire(db: TestDb) {
    let _machine = crate::support::measured().await;
    const CPM: usize = 600;
    const BURST: usize = 10;
    let clock = Clock::scaled("2026-12-01T15:00:00Z".parse().unwrap(), RATE_SPEED);
    let mut rig = rig(
        &db,
        clock,
        Account {
            requests_per_minute: 1_000_000,
            max_concurrent_calls: 100_000,
        },
        &[Campaign {
            id: "rate",
            calls_per_minute: CPM as u32,
            burst: BURST as u32,
            max_concurrent: 10_000,
            local_hours: "off",
        }],
        |_| {
            (0..2500)
                .map(|i| lead(format!("+1212736{:04}", i), None))
                .collect()
        },
        Duration::from_millis(50),
    )
    .await;
    let first = rig.first_arrival(Duration::from_secs(20)).await;
    let end = first + RATE_SPAN;
    // A little past the span, so requests in flight at its end have arrived.
    rig.clock
        .sleep_until(end + ChronoDuration::seconds(2))
        .await;
    rig.stop().await;

    let places: Vec<DateTime<Utc>> = rig
        .fake
        .requests()
        .iter()
        .map(|r| r.clock_at)
        .filter(|&t| t < end)
        .collect();
    let (most, at) = busiest(&places);
    // For whoever reads a failure, not judged: the same window counted by
    // the instants the daemon recorded, and how much later requests arrived.
    let recorded = recorded_times(&db).await;
    let (most_recorded, _) = busiest(&recorded.values().copied().collect::<Vec<_>>());
    let lag = rig
        .fake
        .requests()
        .iter()
        .filter_map(|r| recorded.get(&r.attempt_id).map(|&t| secs(r.clock_at - t)))
        .fold(0.0, f64::max);
    eprintln!(
        "{}: by the daemon's requested_at, busiest 60 s window {most_recorded}; arrivals at most {lag:.3} s of test clock after requested_at",
        db.backend()
    );
    let span_minutes = secs(RATE_SPAN) / 60.0;
    let allowed = (CPM as f64 * span_minutes) as usize;
    let floor = (allowed as f64 * 0.98).ceil() as usize;
    let jitter = (CPM as f64 / 60.0 * RATE_SPEED * ARRIVAL_LAG_REAL.as_secs_f64()).ceil() as usize;
    eprintln!(
        "{}: calls_per_minute = {CPM}, burst = {BURST}, clock x{RATE_SPEED}: {} place requests in the {span_minutes} min from the first arrival (the limit allows {allowed} + at most {BURST}; floor {floor}); busiest 60 s window {most} (from +{:.1} s; allowed {CPM} + {BURST} + {jitter} for arrival lag)",
        db.backend(),
        places.len(),
        secs(at - first),
    );
    assert!(
        most <= CPM + BURST + jitter,
        "{most} place requests arrived within one 60 s window (from +{:.1} s): the limit is {CPM} a minute plus a burst of {BURST} (and {jitter} for arrival lag)",
        secs(at - first)
    );
    assert!(
        places.len() <= allowed + BURST + jitter,
        "{} place requests in {span_minutes} min: more than {allowed} + {BURST} (+ {jitter} for arrival lag)",
        places.len()
    );
    assert!(
        places.len() >= floor,
        "only {} place requests in {span_minutes} min: under 98% of the {allowed} the limit allows",
        places.len()
    );
}

// ----------------------------------------------------------- concurrency

on_both_backends! {
    live_calls_reach_and_never_pass_the_campaign_max_concurrent => campaign_concurrency;
    live_calls_reach_and_never_pass_the_provider_max_concurrent_calls => provider_concurrency;
    live_calls_never_pass_max_concurrent_when_the_rules_look_ahead => look_ahead_concurrency;
}

const CONCURRENCY_SPEED: f64 = 10.0;
/// Real time each call stays live at the fake (ten seconds of test clock):
/// far longer than placing takes, so the concurrency limit binds.
const LONG_CALL: Duration = Duration::from_secs(1);
/// Real time the daemon runs: several calls' worth, so slots are freed and
/// taken again many times.
const CONCURRENCY_RUN: Duration = Duration::from_secs(6);

/// Numbers distinct per campaign (the daily cap counts a number across campaigns).
fn numbers(campaign: &str, n: usize) -> Vec<NewLead> {
    let base = match campaign {
        "a" => 0,
        "b" => 1000,
        _ => 2000,
    };
    (0..n)
        .map(|i| lead(format!("+1212736{:04}", base + i), None))
        .collect()
}

fn fast_campaign(id: &'static str, max_concurrent: u32) -> Campaign {
    Campaign {
        id,
        calls_per_minute: 6000,
        burst: 20,
        max_concurrent,
        local_hours: "off",
    }
}

/// Runs the campaigns for `CONCURRENCY_RUN`; returns the fake's peak of
/// live calls and the number of calls placed.
async fn peak_live(
    db: &TestDb,
    max_concurrent_calls: u32,
    campaigns: &[Campaign],
) -> (usize, usize) {
    let clock = Clock::scaled("2026-12-01T15:00:00Z".parse().unwrap(), CONCURRENCY_SPEED);
    let mut rig = rig(
        db,
        clock,
        Account {
            requests_per_minute: 1_000_000,
            max_concurrent_calls,
        },
        campaigns,
        |id| numbers(id, 100),
        LONG_CALL,
    )
    .await;
    rig.first_arrival(Duration::from_secs(20)).await;
    tokio::time::sleep(CONCURRENCY_RUN).await;
    rig.stop().await;
    let placed = rig
        .fake
        .requests()
        .iter()
        .filter(|r| r.answered == 201)
        .count();
    (rig.fake.live_peak(), placed)
}

async fn campaign_concurrency(db: TestDb) {
    let _machine = crate::support::measured().await;
    let (peak, placed) = peak_live(&db, 100, &[fast_campaign("a", 5)]).await;
    eprintln!(
        "{}: one campaign, max_concurrent = 5 (provider 100): {placed} calls placed, at most {peak} live at the fake at once",
        db.backend()
    );
    assert!(
        placed >= 15,
        "only {placed} calls placed: the limit was not taken up repeatedly"
    );
    assert!(
        peak <= 5,
        "{peak} calls were live at the provider at once; the campaign's max_concurrent is 5"
    );
    assert_eq!(
        peak, 5,
        "the campaign never reached its max_concurrent of 5 live calls"
    );
}

/// Leads the rules turn away first in the claim's order (their zone is at
/// night), then callable ones: the dispatcher looks at many due leads at
/// once without taking them, and the claim that follows sends only what the
/// concurrency limits allow.
async fn look_ahead_concurrency(db: TestDb) {
    let _machine = crate::support::measured().await;
    // 10:00 in New York, midnight in Tokyo.
    let clock = Clock::scaled("2026-12-01T15:00:00Z".parse().unwrap(), CONCURRENCY_SPEED);
    let campaign = Campaign {
        local_hours: "09:00-21:00",
        ..fast_campaign("a", 5)
    };
    let mut rig = rig(
        &db,
        clock,
        Account {
            requests_per_minute: 1_000_000,
            max_concurrent_calls: 100,
        },
        &[campaign],
        |_| {
            let night = (0..300).map(|i| lead(format!("+1212736{i:04}"), Some("Asia/Tokyo")));
            let day = (0..100).map(|i| lead(format!("+1312555{i:04}"), Some(NEW_YORK)));
            night.chain(day).collect()
        },
        LONG_CALL,
    )
    .await;
    rig.first_arrival(Duration::from_secs(20)).await;
    tokio::time::sleep(CONCURRENCY_RUN).await;
    rig.stop().await;
    let requests = rig.fake.requests();
    let placed = requests.iter().filter(|r| r.answered == 201).count();
    let peak = rig.fake.live_peak();
    let at_night = requests
        .iter()
        .filter(|r| r.to.starts_with("+1212"))
        .count();
    eprintln!(
        "{}: 300 leads at night before 100 callable, max_concurrent = 5: {placed} calls placed, at most {peak} live at the fake at once",
        db.backend()
    );
    assert_eq!(at_night, 0, "a lead was called at night in its zone");
    assert!(
        peak <= 5,
        "{peak} calls were live at the provider at once; the campaign's max_concurrent is 5"
    );
    assert_eq!(
        peak, 5,
        "the campaign never reached its max_concurrent of 5"
    );
    assert!(placed >= 15, "only {placed} calls placed");
    // Every lead at night was looked at once and waits for its morning.
    let waiting = db
        .scalar(
            "SELECT count(*) FROM leads WHERE phone LIKE '+1212%' AND status = 'pending' \
             AND lease_owner IS NULL AND next_attempt_at > updated_at",
        )
        .await;
    assert_eq!(waiting, 300, "leads at night not moved to their opening");
}

async fn provider_concurrency(db: TestDb) {
    let _machine = crate::support::measured().await;
    let campaigns = [
        fast_campaign("a", 5),
        fast_campaign("b", 5),
        fast_campaign("c", 5),
    ];
    let (peak, placed) = peak_live(&db, 6, &campaigns).await;
    eprintln!(
        "{}: three campaigns at max_concurrent = 5 on one provider with max_concurrent_calls = 6: {placed} calls placed, at most {peak} live at the fake at once",
        db.backend()
    );
    assert!(
        placed >= 18,
        "only {placed} calls placed: the limit was not taken up repeatedly"
    );
    assert!(
        peak <= 6,
        "{peak} calls were live at the provider at once; its max_concurrent_calls is 6"
    );
    assert_eq!(
        peak, 6,
        "the provider never reached its max_concurrent_calls of 6 live calls"
    );
}

// ------------------------------------------------------------- windows

on_both_backends! {
    no_request_arrives_after_the_window_closes_under_a_starved_budget => window_under_starved_budget;
}

const WINDOW_SPEED: f64 = 20.0;
const NEW_YORK: &str = "America/New_York";
const CHICAGO: &str = "America/Chicago";

/// Half the leads in New York, where 21:00 comes three minutes into the
/// run; half in Chicago, an hour behind, whose window stays open.
fn zoned(campaign: &str) -> Vec<NewLead> {
    let base = if campaign == "w1" { 0 } else { 1000 };
    (0..100)
        .map(|i| {
            if i % 2 == 0 {
                lead(format!("+1212736{:04}", base + i), Some(NEW_YORK))
            } else {
                lead(format!("+1312555{:04}", base + i), Some(CHICAGO))
            }
        })
        .collect()
}

/// Inside `local_hours = "09:00-21:00"` in `zone`, written again here.
fn inside_hours(at: DateTime<Utc>, zone: Tz) -> bool {
    let local = at.with_timezone(&zone);
    (9..21).contains(&local.hour())
}

async fn window_under_starved_budget(db: TestDb) {
    let _machine = crate::support::heavy().await;
    // Tuesday 1 December 2026, 20:57 in New York, 19:57 in Chicago.
    let origin: DateTime<Utc> = "2026-12-02T01:57:00Z".parse().unwrap();
    let close: DateTime<Utc> = "2026-12-02T02:00:00Z".parse().unwrap();
    let clock = Clock::scaled(origin, WINDOW_SPEED);
    let window = |id| Campaign {
        id,
        calls_per_minute: 300,
        burst: 5,
        max_concurrent: 50,
        local_hours: "09:00-21:00",
    };
    let mut rig = rig(
        &db,
        clock,
        Account {
            requests_per_minute: 30,
            max_concurrent_calls: 1000,
        },
        &[window("w1"), window("w2")],
        zoned,
        Duration::from_millis(100),
    )
    .await;
    let zones: std::collections::HashMap<String, Tz> = ["w1", "w2"]
        .into_iter()
        .flat_map(zoned)
        .map(|l| (l.phone, l.timezone.unwrap().parse().unwrap()))
        .collect();
    rig.first_arrival(Duration::from_secs(20)).await;
    rig.clock
        .sleep_until(close + ChronoDuration::minutes(2))
        .await;
    rig.stop().await;

    let requests = rig.fake.requests();
    let mut outside = Vec::new();
    for r in &requests {
        let zone = zones[&r.to];
        if !inside_hours(r.clock_at, zone) {
            outside.push(format!(
                "{} at {} local",
                r.to,
                r.clock_at.with_timezone(&zone).format("%H:%M:%S%.3f")
            ));
        }
    }
    let new_york: Vec<DateTime<Utc>> = requests
        .iter()
        .filter(|r| zones[&r.to].name() == NEW_YORK)
        .map(|r| r.clock_at)
        .collect();
    let last_minute = new_york
        .iter()
        .filter(|&&t| t >= close - WINDOW && t < close)
        .count();
    let last = new_york.iter().max().copied();
    let chicago_after = requests
        .iter()
        .filter(|r| zones[&r.to].name() == CHICAGO && r.clock_at >= close)
        .count();
    eprintln!(
        "{}: requests_per_minute = 30, two campaigns at 300/min, clock x{WINDOW_SPEED}: {} place requests; New York leads: {} in all, {last_minute} in the last minute before 21:00, the last {:.3} s before it; Chicago leads after New York's close: {chicago_after}; outside the window: {}",
        db.backend(),
        requests.len(),
        new_york.len(),
        last.map(|t| secs(close - t)).unwrap_or(f64::NAN),
        outside.len(),
    );
    assert!(
        outside.is_empty(),
        "{} place requests arrived outside their lead's 09:00-21:00: {:?}",
        outside.len(),
        &outside[..outside.len().min(10)]
    );
    assert!(
        last_minute > 0,
        "no place request for a New York lead arrived in the last minute before 21:00 there"
    );
    assert!(
        chicago_after > 0,
        "no place request for a Chicago lead after New York's close: the budget was not used at all"
    );
}
