//! Agent A/B splits (`[[agents]]`): 1,000 leads on weights 70/30, judged
//! from the fake RevRing's own log of place requests (which `agentId` each
//! call named) and from `dialer status --json`.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use crate::support::process::any_hour_phones;
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_test_key_agents";
const AGENT_A: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
const AGENT_B: &str = "7f1e2d3c-4b5a-4697-8888-1a2b3c4d5e6f";
const LEADS: usize = 1000;

const CAMPAIGN: &str = r#"
id = "split"
provider = "revring"
from_numbers = ["+15551230001"]
timezone = "UTC"
[[agents]]
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
weight = 70
[[agents]]
agent_id = "7f1e2d3c-4b5a-4697-8888-1a2b3c4d5e6f"
weight = 30
[pacing]
calls_per_minute = 30000
burst = 100
max_concurrent = 150
[retry]
max_attempts = 2
[retry.after]
no_answer = "1s"
[compliance]
local_hours = "off"
max_attempts_per_day = 50
"#;

async fn splits_by_weight_and_keeps_each_leads_agent(db: TestDb) {
    let _machine = crate::support::heavy().await;
    let backend = db.backend();
    // A third of the numbers never answer: they are called twice.
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |to| {
        let last = to.chars().last().unwrap().to_digit(10).unwrap();
        Behaviour::Answer {
            ms: 30,
            end: if last % 3 == 0 {
                End::NoAnswer
            } else {
                End::Completed
            },
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    let loaded = crate::support::write_config(
        dir.path(),
        &crate::support::revring_daemon_toml(&db.url, &fake_url),
        &[("split.toml", CAMPAIGN)],
    );
    let phones = any_hour_phones(LEADS);
    for chunk in phones.chunks(200) {
        let values: Vec<String> = chunk.iter().map(|p| format!("('split', '{p}')")).collect();
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone) VALUES {}",
            values.join(", ")
        ))
        .await;
    }
    let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    let started = Instant::now();
    loop {
        let open = db
            .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
            .await;
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{backend}: {open} leads still open after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop(Duration::from_secs(3)).await;

    // At the wire: each number's calls all named one agent.
    let placed: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.call_id.is_some())
        .collect();
    let mut agents_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut calls_of: HashMap<String, usize> = HashMap::new();
    for r in &placed {
        let agent = r.body["agentId"].as_str().unwrap().to_string();
        agents_of.entry(r.to.clone()).or_default().insert(agent);
        *calls_of.entry(r.to.clone()).or_default() += 1;
    }
    assert_eq!(agents_of.len(), LEADS, "{backend}: every lead called");
    let switched: Vec<_> = agents_of.iter().filter(|(_, a)| a.len() > 1).collect();
    assert!(
        switched.is_empty(),
        "{backend}: leads called with two agents: {switched:?}"
    );
    let twice = calls_of.values().filter(|n| **n == 2).count();
    assert!(
        twice >= 250,
        "{backend}: only {twice} leads were called twice"
    );
    let on_a = agents_of.values().filter(|a| a.contains(AGENT_A)).count();
    let share_a = on_a as f64 / LEADS as f64;
    eprintln!(
        "{backend}: {on_a} of {LEADS} leads on agent A ({:.1}%), {twice} called twice",
        share_a * 100.0
    );
    assert!(
        (0.65..=0.75).contains(&share_a),
        "{backend}: {on_a} of {LEADS} leads on the 70% agent"
    );

    // The attempt rows record the agent each request named.
    let rows = db.rows("SELECT id, agent_id FROM call_attempts").await;
    let stored: HashMap<String, String> = rows
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap_or_default()))
        .collect();
    for r in &placed {
        assert_eq!(
            stored.get(&r.attempt_id).map(String::as_str),
            r.body["agentId"].as_str(),
            "{backend}: attempt {}",
            r.attempt_id
        );
    }

    // `status --json`: outcomes by agent, with counts and completion rate.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(dir.path().join("dialer.toml"))
        .args(["status", "--json", "--campaign", "split"])
        .env_remove("DIALER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let agents = &status["campaigns"][0]["agents"];
    for agent in [AGENT_A, AGENT_B] {
        let n = |outcome: &str| {
            placed
                .iter()
                .filter(|r| r.body["agentId"] == agent)
                .filter(|r| {
                    let last = r.to.chars().last().unwrap().to_digit(10).unwrap();
                    (last % 3 == 0) == (outcome == "no_answer")
                })
                .count() as i64
        };
        let a = &agents[agent];
        assert_eq!(
            a["outcomes"]["completed"],
            n("completed"),
            "{backend}: {agents}"
        );
        assert_eq!(
            a["outcomes"]["no_answer"],
            n("no_answer"),
            "{backend}: {agents}"
        );
        let rate = n("completed") as f64 / (n("completed") + n("no_answer")) as f64;
        assert!(
            (a["completion_rate"].as_f64().unwrap() - rate).abs() < 0.001,
            "{backend}: {agents}"
        );
    }
}

crate::on_both_backends! {
    ab_split_by_weight => splits_by_weight_and_keeps_each_leads_agent;
}

#[test]
fn agent_id_and_agents_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    std::fs::write(
        dir.path().join("dialer.toml"),
        "campaigns_dir = \"campaigns\"\n[providers.sim]\nkind = \"simulated\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("campaigns/a.toml"),
        "id = \"a\"\nprovider = \"sim\"\nagent_id = \"x\"\n\
         [[agents]]\nagent_id = \"x\"\n[[agents]]\nagent_id = \"x\"\nweight = 0\n",
    )
    .unwrap();
    let problems = match dialer::config::load(&dir.path().join("dialer.toml")) {
        Ok(_) => panic!("loaded"),
        Err(e) => {
            e.0.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    for expected in [
        "`agent_id`: set either agent_id or [[agents]], not both",
        "`agents[1].weight`: 0 is out of range",
        "`agents[1].agent_id`: `x` is listed twice",
    ] {
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
}
