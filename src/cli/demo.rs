//! `dialer demo`: the whole daemon on a throw-away SQLite file with the
//! simulated provider, sample leads, fast pacing and an always-open window,
//! on a clock running 120 times faster than real time. No network, no keys.

use super::{open_store, CliResult};
use crate::clock::Clock;
use crate::config;
use crate::daemon::Daemon;
use crate::domain::{LeadStatus, Outcome};
use crate::engine;
use crate::store::NewLead;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const SPEED: f64 = 120.0;
const REAL_LIMIT: Duration = Duration::from_secs(50);

const DAEMON_TOML: &str = r#"
campaigns_dir = "campaigns"

[database]
url = "sqlite://demo.db"
max_connections = 4

[log]
level = "error"

[providers.sim]
kind = "simulated"
min_duration = "20s"
max_duration = "2m"
seed = 7
requests_per_minute = 60000
max_concurrent_calls = 40
poll_interval = "5s"
outcomes = { completed = 0.45, no_answer = 0.25, busy = 0.1, voicemail = 0.1, failed = 0.05, transferred = 0.05 }
"#;

const CAMPAIGN_TOML: &str = r#"
id = "demo"
provider = "sim"
timezone = "America/New_York"

[pacing]
calls_per_minute = 600
burst = 20
max_concurrent = 40

[retry]
max_attempts = 3
[retry.after]
no_answer = "10m"
busy = "5m"
voicemail = "15m"
failed = "5m"
unknown = "10m"
default = "10m"

[compliance]
local_hours = "off"
max_attempts_per_day = 3

[variables]
first_name = "{{name}}"
"#;

/// Sample numbers in several countries (fictional ranges where they exist).
fn sample_leads(n: usize) -> Vec<NewLead> {
    (0..n)
        .map(|i| {
            let phone = match i % 4 {
                0 => format!("+1212736{:04}", 1000 + i),
                1 => format!("+1310555{:04}", 2000 + i),
                2 => format!("+4930901{:05}", 20000 + i),
                _ => format!("+4420794{:05}", 60000 + i),
            };
            let mut variables = Map::new();
            variables.insert(
                "plan".into(),
                Value::String(if i % 3 == 0 { "gold" } else { "basic" }.into()),
            );
            NewLead {
                phone,
                name: Some(format!("Sample Lead {}", i + 1)),
                timezone: None,
                variables,
            }
        })
        .collect()
}

pub async fn run(leads: usize) -> CliResult {
    let dir = tempfile::Builder::new()
        .prefix("dialer-demo-")
        .tempdir()
        .map_err(|e| anyhow::anyhow!("cannot create a temporary directory: {e}"))?;
    std::fs::create_dir(dir.path().join("campaigns")).map_err(anyhow::Error::from)?;
    std::fs::write(dir.path().join("dialer.toml"), DAEMON_TOML).map_err(anyhow::Error::from)?;
    std::fs::write(dir.path().join("campaigns/demo.toml"), CAMPAIGN_TOML)
        .map_err(anyhow::Error::from)?;
    let loaded = config::load(&dir.path().join("dialer.toml"))?;
    let _log = crate::telemetry::init(&loaded.daemon.log);

    println!(
        "dialer demo: a throw-away SQLite database in {}",
        dir.path().display()
    );
    println!("  provider: simulated (no network, no keys); calls last 20 s to 2 min, outcomes drawn with seed 7");
    println!("  window: ALWAYS OPEN and local-hours guard OFF, for the demo only (real campaigns call inside [window] and legal hours)");
    println!("  clock: simulated, {SPEED}x real time; retries after 5-15 simulated minutes, at most 3 attempts a lead");

    let store = open_store(&loaded).await?;
    let clock = Clock::scaled(chrono::Utc::now(), SPEED);
    let start_sim = clock.now();
    crate::daemon::sync_campaign_rows(store.as_ref(), &loaded.campaigns, clock.now()).await?;
    let counts = store
        .insert_leads("demo", &sample_leads(leads), clock.now())
        .await?;
    println!("  {} sample leads loaded\n", counts.imported);

    let daemon = Daemon::new(store.clone(), clock.clone(), &loaded)?;
    daemon.set_campaigns(&loaded.campaigns).await?;
    daemon.sync_outbound_routes().await?;
    let running = engine::start(daemon.clone(), None);
    let started = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut last_line = Instant::now();
    let mut stats;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stats = store.campaign_stats("demo").await?;
        let get = |s: LeadStatus| stats.leads.get(s.as_str()).copied().unwrap_or(0);
        let open = get(LeadStatus::Pending) + get(LeadStatus::InProgress);
        let finished = open == 0 || started.elapsed() > REAL_LIMIT;
        if !tty && !finished && last_line.elapsed() < Duration::from_secs(2) {
            continue;
        }
        last_line = Instant::now();
        print!(
            "{}  [{:>4.1}s real, {:>5} min simulated] completed {:>4}  exhausted {:>4}  skipped {:>3}  pending {:>4}  in progress {:>3}  calls live {:>3}",
            if tty { "\r" } else { "\n" },
            started.elapsed().as_secs_f64(),
            (clock.now() - start_sim).num_minutes(),
            get(LeadStatus::Completed),
            get(LeadStatus::Exhausted),
            get(LeadStatus::Skipped),
            get(LeadStatus::Pending),
            get(LeadStatus::InProgress),
            stats.in_flight,
        );
        let _ = std::io::stdout().flush();
        if finished {
            break;
        }
    }
    println!();
    running.stop(Duration::from_secs(5)).await;
    let stats = store.campaign_stats("demo").await?;
    println!(
        "\nsummary after {:.1} s ({} simulated minutes):",
        started.elapsed().as_secs_f64(),
        (clock.now() - start_sim).num_minutes()
    );
    println!("  leads:");
    for s in LeadStatus::ALL {
        println!(
            "    {:<12} {:>5}",
            s.as_str(),
            stats.leads.get(s.as_str()).copied().unwrap_or(0)
        );
    }
    println!("  attempts by outcome:");
    let mut total = 0;
    for o in Outcome::ALL {
        let n = stats.outcomes.get(o.as_str()).copied().unwrap_or(0);
        total += n;
        println!("    {:<12} {:>5}", o.as_str(), n);
    }
    println!("    {:<12} {:>5}", "total", total);
    let pending = stats.leads.get("pending").copied().unwrap_or(0)
        + stats.leads.get("in_progress").copied().unwrap_or(0);
    if pending > 0 {
        println!("  {pending} lead(s) still wait for a retry; a real daemon would call them at their due time");
    } else {
        println!("  every lead reached a final status");
    }
    Ok(())
}
