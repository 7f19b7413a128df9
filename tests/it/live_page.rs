//! The live page at `/`: a real `dialer run` dialling the simulated provider,
//! the page loaded in headless Chromium as a person would see it, twice a
//! few seconds apart; and `/api/overview`, the JSON it polls, read without a
//! browser from a daemon run in-process.

use crate::support::process::{any_hour_phones, free_port, spawn_daemon};
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::pacing::Pause;
use dialer::store::NewLead;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CAMPAIGN: &str = "spring-renewals";

fn daemon_toml(url: &str, listen: &str) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{url}"
[server]
listen = "{listen}"
[log]
level = "warn"
[providers.sim]
kind = "simulated"
min_duration = "1s"
max_duration = "3s"
seed = 5
requests_per_minute = 100000
max_concurrent_calls = 9
poll_interval = "1s"
outcomes = {{ completed = 0.7, no_answer = 0.2, busy = 0.1 }}
"#
    )
}

fn campaign_toml(max_concurrent: u32) -> String {
    format!(
        r#"
id = "{CAMPAIGN}"
provider = "sim"
timezone = "America/New_York"
[pacing]
calls_per_minute = 240
burst = 4
max_concurrent = {max_concurrent}
[retry]
max_attempts = 2
[retry.after]
default = "1s"
[compliance]
local_hours = "off"
"#
    )
}

fn leads(n: usize) -> Vec<NewLead> {
    any_hour_phones(n)
        .into_iter()
        .enumerate()
        .map(|(i, phone)| NewLead {
            phone,
            name: Some(format!("Lead {i}")),
            timezone: None,
            variables: Map::new(),
        })
        .collect()
}

/// The browser, or `None` (said loudly) when none is installed; with
/// `DIALER_REQUIRE_BROWSER` set, a missing browser fails the test.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("DIALER_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .filter_map(|name| {
                    std::env::var_os("PATH").and_then(|paths| {
                        std::env::split_paths(&paths)
                            .map(|d| d.join(name))
                            .find(|p| p.is_file())
                    })
                }),
        )
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var_os("DIALER_REQUIRE_BROWSER").is_some() {
            panic!("DIALER_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)");
        }
        eprintln!("\n!!! SKIPPED: no chromium on PATH; the live page was not loaded in a browser (apt-get install chromium) !!!\n");
    }
    found
}

/// Chromium's arguments for a headless load that lets the page poll a few
/// times before it is read.
fn headless(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
        "--virtual-time-budget=5000".into(),
    ]
}

/// The page's DOM after its script ran.
fn dump_dom(browser: &Path, profile: &Path, url: &str) -> String {
    let out = Command::new(browser)
        .args(headless(profile))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number shown in the element carrying `attr="value"`.
fn shown_number(dom: &str, attr: &str) -> i64 {
    let at = dom
        .find(&format!("{attr}>"))
        .unwrap_or_else(|| panic!("no element with {attr} on the page:\n{dom}"));
    let rest = &dom[at + attr.len() + 1..];
    rest[..rest.find('<').unwrap()]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{attr} shows no number"))
}

/// The page's visible text: tags dropped, spaces collapsed.
fn text_of(dom: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for ch in dom.chars() {
        match ch {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Heights of the chart's bars.
fn bar_heights(dom: &str) -> Vec<f64> {
    dom.split("<rect")
        .skip(1)
        .filter(|r| r.contains("class=\"bar\""))
        .map(|r| {
            let h = r.split("height=\"").nth(1).expect("a bar has a height");
            h[..h.find('"').unwrap()].parse().expect("a numeric height")
        })
        .collect()
}

async fn get_json(url: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, ct, r.json().await.unwrap())
}

async fn wait_until_completed(base: &str, at_least: i64, limit: Duration) -> Value {
    let t = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/api/overview")).await {
            if let Ok(o) = r.json::<Value>().await {
                let done = o["campaigns"][0]["leads"]["completed"]
                    .as_i64()
                    .unwrap_or(0);
                if done >= at_least || t.elapsed() > limit {
                    return o;
                }
            }
        }
        assert!(t.elapsed() < limit, "the daemon did not answer at {base}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn page_in_browser_shows_the_run(db: TestDb) {
    let Some(browser) = chromium() else { return };
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let loaded = crate::support::write_config(
        dir.path(),
        &daemon_toml(&db.url, &format!("127.0.0.1:{port}")),
        &[("spring.toml", &campaign_toml(6))],
    );
    let clock = Clock::system();
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    db.store
        .insert_leads(CAMPAIGN, &leads(400), clock.now())
        .await
        .unwrap();
    let mut child = spawn_daemon(dir.path(), "run.log");
    let base = format!("http://127.0.0.1:{port}");
    let started = wait_until_completed(&base, 1, Duration::from_secs(30)).await;
    let profile = tempfile::tempdir().unwrap();

    let first = dump_dom(&browser, profile.path(), &format!("{base}/"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = dump_dom(&browser, profile.path(), &format!("{base}/"));
    if std::env::var_os("DIALER_LIVE_SCREENSHOT").is_some() {
        let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/live-page.png");
        let out = Command::new(&browser)
            .args(headless(profile.path()))
            .arg("--window-size=1280,900")
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("{base}/"))
            .output()
            .unwrap();
        assert!(out.status.success(), "screenshot failed");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    assert!(
        started["campaigns"][0]["leads"]["completed"]
            .as_i64()
            .unwrap_or(0)
            >= 1,
        "no call completed within 30 s\n{log}"
    );

    let text = text_of(&second);
    assert!(
        second.contains(&format!("data-campaign=\"{CAMPAIGN}\"")) && text.contains(CAMPAIGN),
        "the campaign's name is not on the page:\n{text}"
    );
    let (before, after) = (
        shown_number(&first, "data-lead=\"completed\""),
        shown_number(&second, "data-lead=\"completed\""),
    );
    assert!(
        after > before,
        "the completed count did not grow between two loads 4 s apart ({before} then {after})"
    );
    let total: i64 = [
        "pending",
        "in_progress",
        "completed",
        "exhausted",
        "skipped",
        "canceled",
    ]
    .iter()
    .map(|s| shown_number(&second, &format!("data-lead=\"{s}\"")))
    .sum();
    assert_eq!(
        total, 400,
        "the leads by status do not add up to the 400 imported"
    );
    let bars = bar_heights(&second);
    assert_eq!(bars.len(), 60, "the chart has one bar a minute for an hour");
    assert!(
        bars.iter().any(|&h| h > 0.0),
        "the calls-per-minute chart draws no bar: {bars:?}"
    );
    assert!(
        shown_number(&second, "data-field=\"calls_last_hour\"") > 0,
        "no call counted in the last hour"
    );
    assert!(
        text.contains("of 6 (max_concurrent)"),
        "the campaign's max_concurrent is not shown:\n{text}"
    );
    assert!(
        text.contains("of 9 (max_concurrent_calls)"),
        "the provider's max_concurrent_calls is not shown:\n{text}"
    );
    assert!(
        text.contains("Calling window: open now"),
        "the calling window is not shown:\n{text}"
    );
    assert!(
        !text.contains("not updating"),
        "the page reports an error:\n{text}"
    );
}

/// `/api/overview` read from a daemon run in-process: what the page draws,
/// checked against the database and against `dialer status`.
async fn overview_json_matches_the_database(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    // A window that opens two hours from now, for a campaign with no leads.
    let hour = chrono::Timelike::hour(&(chrono::Utc::now() + chrono::TimeDelta::hours(2)));
    let end = format!("{:02}:00", hour + 1);
    let hour = format!("{hour:02}");
    let later = format!(
        r#"
id = "later"
provider = "sim"
timezone = "UTC"
[window]
weekly = ["mon-sun {hour}:00-{end}"]
[compliance]
local_hours = "off"
"#
    );
    let loaded = crate::support::write_config(
        dir.path(),
        &daemon_toml(&db.url, "127.0.0.1:0"),
        &[("spring.toml", &campaign_toml(3)), ("later.toml", &later)],
    );
    let clock = Clock::system();
    let daemon = Daemon::new(db.store.clone(), clock.clone(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    db.store
        .insert_leads(CAMPAIGN, &leads(12), clock.now())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let running = dialer::engine::start(daemon.clone(), Some(listener));

    // Every lead ends (completed, or exhausted after two attempts).
    let t = Instant::now();
    loop {
        let open = db
            .scalar(&format!(
                "SELECT count(*) FROM leads WHERE campaign_id = '{CAMPAIGN}' AND status IN ('pending', 'in_progress')"
            ))
            .await;
        let live = db
            .scalar("SELECT count(*) FROM call_attempts WHERE state IN ('sending', 'placed')")
            .await;
        if open == 0 && live == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{open} leads still open after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.providers["sim"].pacing.pause(Pause {
        until: clock.now() + chrono::TimeDelta::hours(1),
        reason: "429 Too Many Requests, Retry-After 3600".into(),
        unusable: false,
    });
    // Past the one second an overview is kept for.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, ct, o) = get_json(&format!("{base}/api/overview")).await;
    // The page and its two files, compiled into the binary.
    for (path, ct, holds) in [
        ("/", "text/html", "/live/live.js"),
        ("/live/live.js", "text/javascript", "/api/overview"),
        ("/live/live.css", "text/css", "svg.chart"),
    ] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let got = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(got.starts_with(ct), "{path} is served as {got}");
        assert!(r.text().await.unwrap().contains(holds), "{path}");
    }
    running.stop(Duration::from_secs(5)).await;
    assert_eq!(status, 200);
    assert_eq!(ct.as_deref(), Some("application/json"));

    let spring = o["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == CAMPAIGN)
        .expect("the campaign is listed");
    let leads = spring["leads"].as_object().unwrap();
    for s in [
        "pending",
        "in_progress",
        "completed",
        "exhausted",
        "skipped",
        "canceled",
    ] {
        assert!(leads.contains_key(s), "leads.{s} missing: {leads:?}");
    }
    assert_eq!(leads.values().map(|v| v.as_i64().unwrap()).sum::<i64>(), 12);
    let completed = db
        .scalar(&format!(
            "SELECT count(*) FROM leads WHERE campaign_id = '{CAMPAIGN}' AND status = 'completed'"
        ))
        .await;
    assert_eq!(leads["completed"].as_i64(), Some(completed));
    let attempts = db
        .scalar("SELECT count(*) FROM call_attempts WHERE state <> 'not_placed'")
        .await;
    let per_minute: Vec<i64> = spring["calls_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(per_minute.len(), 60);
    assert_eq!(
        per_minute.iter().sum::<i64>(),
        attempts,
        "the last hour's bars do not add up to the attempts made"
    );
    assert!(
        per_minute[55..].iter().sum::<i64>() > 0,
        "the calls are not in the last minutes: {per_minute:?}"
    );
    let outcomes: i64 = spring["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(outcomes, attempts, "every attempt ended with an outcome");
    assert_eq!(spring["live_calls"], 0);
    assert_eq!(spring["max_concurrent"], 3);
    assert_eq!(spring["calls_per_minute_limit"], 240);
    assert_eq!(spring["window_open"], true);

    let sim = &o["providers"][0];
    assert_eq!(sim["name"], "sim");
    assert_eq!(sim["kind"], "simulated");
    assert_eq!(sim["max_concurrent_calls"], 9);
    assert_eq!(sim["live_calls"], 0);
    assert_eq!(
        sim["paused"]["reason"],
        "429 Too Many Requests, Retry-After 3600"
    );

    // The next opening is the one `dialer status` gives.
    let later = o["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "later")
        .expect("the closed campaign is listed");
    assert_eq!(later["window_open"], false);
    assert_eq!(later["calls_per_minute"].as_array().unwrap().len(), 60);
    let out = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(dir.path().join("dialer.toml"))
        .args(["status", "--json", "--campaign", "later"])
        .env_remove("DIALER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        later["next_opening"],
        status["campaigns"][0]["next_opening"]
    );
    assert!(later["next_opening"]
        .as_str()
        .unwrap()
        .ends_with(&format!("T{hour}:00:00Z")));
}

on_both_backends! {
    live_page_in_a_browser => page_in_browser_shows_the_run;
    overview_json => overview_json_matches_the_database;
}
