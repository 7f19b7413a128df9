//! The chaos test: the `dialer` binary runs a 1,000-lead campaign against a
//! RevRing account that misbehaves on purpose (latency, 429, 500 before and
//! after creating the call, answers after the timeout or never, malformed
//! bodies, faulty batch-get), and is killed with SIGKILL at least twenty
//! times at random moments. Promises 1, 3 (per-lead attempts) and 4 are then
//! judged from the fake provider's own log and from the database only.

use crate::support::chaos_provider::{ChaosRevRing, End, Faults, PlaceRecord};
use crate::support::process::{any_hour_phone, free_port, spawn_daemon};
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::store::NewLead;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Map;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_chaos_k3y_5e6f7a8b";
const SECRET: &str = "whsec_chaos_9c8d7e6f";
const CAMPAIGN_ID: &str = "chaos";
const LEADS: usize = 1000;
const KILLS: usize = 20;
const MAX_ATTEMPTS: usize = 3;
/// Every `retry.after` delay of the campaign.
const RETRY: Duration = Duration::from_secs(2);
/// From the first start of the daemon: when the last run is stopped, whatever
/// the state of the leads.
const DEADLINE: Duration = Duration::from_secs(190);
const FINAL: &[&str] = &["completed", "exhausted", "skipped", "canceled"];

fn campaign_toml() -> String {
    format!(
        r#"
id = "{CAMPAIGN_ID}"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001", "+15551230002"]
timezone = "America/New_York"
[pacing]
calls_per_minute = 6000
burst = 20
max_concurrent = 30
[retry]
max_attempts = {MAX_ATTEMPTS}
[retry.after]
no_answer = "2s"
busy = "2s"
voicemail = "2s"
failed = "2s"
unknown = "2s"
default = "2s"
[compliance]
local_hours = "off"
max_attempts_per_day = 100
"#
    )
}

fn daemon_toml(db_url: &str, fake_url: &str, port: u16) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{db_url}"
[server]
listen = "127.0.0.1:{port}"
[log]
level = "info"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
webhook_secret_file = "secret"
requests_per_minute = 60000
max_concurrent_calls = 40
request_timeout = "1s"
poll_interval = "200ms"
max_call_duration = "1m"
"#
    )
}

/// A daemon that stopped on its own before the test stopped it.
fn exited_early(child: &mut Child, run: usize, early: &mut Vec<String>) {
    if let Ok(Some(status)) = child.try_wait() {
        early.push(format!("run {run} exited by itself: {status}"));
    }
}

async fn remaining(db: &TestDb) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM leads WHERE campaign_id = '{CAMPAIGN_ID}' AND status NOT IN ('completed', 'exhausted', 'skipped', 'canceled')"
    ))
    .await
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Verdicts that failed: name, and every offending example.
#[derive(Default)]
struct Verdicts(Vec<(&'static str, Vec<String>)>);

impl Verdicts {
    fn add(&mut self, name: &'static str, offending: Vec<String>) {
        self.0.push((name, offending));
    }

    fn count(&self) -> usize {
        self.0.iter().map(|(_, v)| v.len()).sum()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (name, v) in self.0.iter().filter(|(_, v)| !v.is_empty()) {
            out.push_str(&format!("\n{name}: {} violation(s), e.g.\n", v.len()));
            for e in v.iter().take(8) {
                out.push_str(&format!("    {e}\n"));
            }
        }
        out
    }
}

async fn chaos(db: TestDb, seed: u64) {
    let _machine = crate::support::heavy().await;
    let backend = db.backend();
    let test_started = Instant::now();
    let (fake, fake_url) = ChaosRevRing::start(API_KEY, seed, Faults::default()).await;
    let port = free_port();
    fake.set_webhook_url(format!(
        "http://127.0.0.1:{port}/webhooks/revring?token={SECRET}"
    ));

    // Kept when the test fails: the daemon's logs are the evidence.
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "dialer-chaos-{backend}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("key"), API_KEY).unwrap();
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    let loaded = crate::support::write_config(
        &dir,
        &daemon_toml(&db.url, &fake_url, port),
        &[("chaos.toml", &campaign_toml())],
    );
    let clock = Clock::system();
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    let leads: Vec<NewLead> = (0..LEADS)
        .map(|i| NewLead {
            phone: any_hour_phone(i),
            name: Some(format!("Lead {i}")),
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads(CAMPAIGN_ID, &leads, clock.now())
        .await
        .unwrap();

    // Kill -9 at random moments, restarting each time.
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(7));
    let mut early = Vec::new();
    let started = Instant::now();
    let mut kills = 0;
    while kills < KILLS {
        let mut child = spawn_daemon(&dir, &format!("run-{kills:02}.log"));
        let life = Duration::from_millis(rng.random_range(500..=5_000));
        tokio::time::sleep(life).await;
        exited_early(&mut child, kills, &mut early);
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    let killing_took = started.elapsed();

    // The last run: until every lead is final or the deadline passes.
    let mut child = spawn_daemon(&dir, &format!("run-{kills:02}.log"));
    let mut left = remaining(&db).await;
    while left > 0 && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = remaining(&db).await;
    }
    let drained_at = started.elapsed();
    exited_early(&mut child, kills, &mut early);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let term = Instant::now();
    let mut term_status = None;
    while term.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(s)) = child.try_wait() {
            term_status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if term_status.is_none() {
        early.push("the last run did not stop within 15 s of SIGTERM".into());
        let _ = child.kill();
        let _ = child.wait();
    } else if let Some(s) = term_status.filter(|s| !s.success()) {
        early.push(format!("the last run exited with {s} after SIGTERM"));
    }

    let places = fake.places();
    let accepted: Vec<&PlaceRecord> = places.iter().filter(|p| p.accepted()).collect();
    let mut v = Verdicts::default();

    // 1. No attempt id accepted twice.
    let mut by_attempt: HashMap<&str, Vec<&PlaceRecord>> = HashMap::new();
    for p in &accepted {
        by_attempt.entry(&p.attempt_id).or_default().push(p);
    }
    let mut twice: Vec<String> = by_attempt
        .iter()
        .filter(|(_, ps)| ps.len() > 1)
        .map(|(id, ps)| {
            let seen: Vec<String> = ps
                .iter()
                .map(|p| format!("{:.3}s {:?} {:?}", p.at.as_secs_f64(), p.fault, p.call_id))
                .collect();
            format!(
                "attempt {id} to {} accepted {} times: {seen:?}",
                ps[0].to,
                ps.len()
            )
        })
        .collect();
    twice.sort();
    v.add("1. an attempt id accepted twice by the provider", twice);

    // 2 and 3. Per number: at most max_attempts calls, at least the retry
    // delay apart (request arrival to request arrival, by the fake's clock).
    let mut by_number: HashMap<&str, Vec<&PlaceRecord>> = HashMap::new();
    for p in &accepted {
        by_number.entry(&p.to).or_default().push(p);
    }
    let mut too_many = Vec::new();
    let mut too_close = Vec::new();
    for (to, ps) in by_number.iter_mut() {
        ps.sort_by_key(|p| p.at);
        let calls = || -> Vec<String> {
            ps.iter()
                .map(|p| {
                    format!(
                        "{:.3}s attempt {} {:?} ends {:?}",
                        p.at.as_secs_f64(),
                        p.attempt_id,
                        p.fault,
                        p.end
                    )
                })
                .collect()
        };
        if ps.len() > MAX_ATTEMPTS {
            too_many.push(format!("{to}: {} calls: {:?}", ps.len(), calls()));
        }
        for w in ps.windows(2) {
            let gap = w[1].at - w[0].at;
            if gap < RETRY {
                too_close.push(format!(
                    "{to}: {:.3}s apart ({} then {}): {:?}",
                    gap.as_secs_f64(),
                    w[0].attempt_id,
                    w[1].attempt_id,
                    calls()
                ));
            }
        }
    }
    too_many.sort();
    too_close.sort();
    v.add(
        "2. a number called more often than max_attempts = 3",
        too_many,
    );
    v.add(
        "3. two calls to one number closer than the retry delay (2 s)",
        too_close,
    );

    // 4. Every lead final, or pending with a due time; in progress only under
    // a live lease; attempts counts the attempts that were not refused.
    let now = chrono::Utc::now();
    let leads = db
        .rows(&format!(
            "SELECT CAST(l.id AS TEXT), l.phone, l.status, CAST(l.attempts AS TEXT), l.next_attempt_at, l.lease_expires_at, l.last_outcome,
                    (SELECT CAST(count(*) AS TEXT) FROM call_attempts a WHERE a.lead_id = l.id AND a.state <> 'not_placed')
               FROM leads l WHERE l.campaign_id = '{CAMPAIGN_ID}' ORDER BY l.id"
        ))
        .await;
    assert_eq!(leads.len(), LEADS, "every lead was inserted");
    let mut bad_state = Vec::new();
    let mut bad_count = Vec::new();
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for r in &leads {
        let text = |i: usize| r[i].clone().unwrap_or_else(|| "NULL".into());
        let status = text(2);
        *by_status.entry(status.clone()).or_default() += 1;
        let ok = match status.as_str() {
            s if FINAL.contains(&s) => true,
            "pending" => r[4].is_some(),
            "in_progress" => r[5]
                .as_deref()
                .and_then(parse_time)
                .is_some_and(|t| t > now),
            _ => false,
        };
        if !ok {
            bad_state.push(format!(
                "lead {} {}: status {status}, next_attempt_at {}, lease_expires_at {} (now {})",
                text(0),
                text(1),
                text(4),
                text(5),
                dialer::domain::rfc3339(now)
            ));
        }
        if r[3] != r[7] {
            bad_count.push(format!(
                "lead {} {}: attempts = {}, call_attempts not not_placed = {}",
                text(0),
                text(1),
                text(3),
                text(7)
            ));
        }
    }
    v.add(
        "4a. a lead neither final, nor pending with a due time, nor in progress under a live lease",
        bad_state,
    );
    v.add(
        "4b. leads.attempts differs from its call_attempts that are not not_placed",
        bad_count,
    );

    // 5. Every attempt that learnt its call id ended with the fake's outcome.
    let by_call: HashMap<&str, (&str, End)> = accepted
        .iter()
        .filter_map(|p| Some((p.call_id.as_deref()?, (p.attempt_id.as_str(), p.end?))))
        .collect();
    let attempts = db
        .rows(&format!(
            "SELECT id, provider_call_id, state, outcome, error FROM call_attempts WHERE campaign_id = '{CAMPAIGN_ID}' AND provider_call_id IS NOT NULL ORDER BY requested_at"
        ))
        .await;
    let mut wrong_end = Vec::new();
    for r in &attempts {
        let text = |i: usize| r[i].clone().unwrap_or_else(|| "NULL".into());
        let call_id = text(1);
        let Some((attempt_id, end)) = by_call.get(call_id.as_str()) else {
            wrong_end.push(format!(
                "attempt {}: provider_call_id {call_id} the provider never created",
                text(0)
            ));
            continue;
        };
        if *attempt_id != text(0) || text(2) != "ended" || text(3) != end.outcome() {
            wrong_end.push(format!(
                "attempt {} (call {call_id}, placed for attempt {attempt_id}): state {}, outcome {}, error {}; the provider ended it {}",
                text(0),
                text(2),
                text(3),
                text(4),
                end.outcome()
            ));
        }
    }
    v.add(
        "5. an attempt with a known call id not ended with the provider's outcome",
        wrong_end,
    );

    // 6. Done in bounded time.
    let not_final: Vec<String> = if left > 0 {
        let mut counts: Vec<_> = by_status.iter().collect();
        counts.sort();
        vec![format!(
            "{left} leads not final {:.0} s after the first start (statuses: {counts:?})",
            drained_at.as_secs_f64()
        )]
    } else {
        Vec::new()
    };
    v.add("6. every lead final before the deadline", not_final);
    v.add("daemon runs that ended on their own", early);

    let mut faults: HashMap<String, usize> = HashMap::new();
    for p in &places {
        *faults.entry(format!("{:?}", p.fault)).or_default() += 1;
    }
    let (batch_gets, batch_faults, hooks_sent, hooks_ok) = fake.counters();
    let summary = format!(
        "chaos {backend}: leads={LEADS} kills={kills} calls accepted={} place requests={} violations={} seconds={:.0}\n\
         chaos {backend}: killing took {:.0} s, last run until {:.0} s; place answers {faults:?}; batch-get {batch_gets} ({batch_faults} faulty); webhooks {hooks_sent} sent, {hooks_ok} taken; leads {by_status:?}\n",
        accepted.len(),
        places.len(),
        v.count(),
        test_started.elapsed().as_secs_f64(),
        killing_took.as_secs_f64(),
        drained_at.as_secs_f64()
    );
    // Straight to the process's stderr, past the test harness's capture, so
    // the figures show in every run (CI included), passing or not.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), summary.as_bytes());
    assert!(
        v.count() == 0,
        "chaos {backend}: {} violation(s){}\ndaemon logs: {}",
        v.count(),
        v.report(),
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sqlite() {
    chaos(crate::support::sqlite().await, 0x5eed_0001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_postgres() {
    if let Some(db) = crate::support::postgres().await {
        chaos(db, 0x5eed_0002).await;
    }
}
