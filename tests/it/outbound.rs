//! Outbound webhooks under pressure: the `dialer` binary runs a campaign
//! against a misbehaving RevRing while its outcomes go to a receiver over
//! real HTTP that first refuses connections, then answers 500, then holds
//! requests past the daemon's timeout, then fails at random, and finally
//! recovers; the daemon is killed with SIGKILL several times meanwhile.
//! Judged from what the receiver got against the database's final state:
//! every event delivered at least once, every signature valid, each lead's
//! events in order, duplicates only under the same event id.

use crate::support::chaos_provider::{ChaosRevRing, Faults};
use crate::support::process::{any_hour_phone, free_port, spawn_daemon};
use crate::support::TestDb;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use dialer::clock::Clock;
use dialer::store::NewLead;
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_outbound_k3y_1a2b";
const SECRET: &str = "whsec_crm_4f5e6d7c8b9a";
const CAMPAIGN_ID: &str = "crm";
const LEADS: usize = 150;
const KILLS: usize = 6;
const DEADLINE: Duration = Duration::from_secs(120);

/// What the receiver does with a request.
const REFUSE_500: u8 = 1;
const HOLD: u8 = 2;
const FLAKY: u8 = 3;
const ACCEPT: u8 = 4;

/// One request the receiver took in (answered 2xx, or held past the
/// daemon's timeout after taking it in: a receiver that processed an event
/// but answered too late).
#[derive(Clone, Debug)]
struct Got {
    id: String,
    kind: String,
    seq: i64,
    lead_id: i64,
    body: Bytes,
    data: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    mode: Arc<AtomicU8>,
    got: Arc<Mutex<Vec<Got>>>,
    bad_signatures: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<usize>>,
    rng: Arc<Mutex<Option<StdRng>>>,
}

fn signature_ok(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let sig = headers
        .get("dialer-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Dialer-Signature header")?;
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("v1", v)) => v1 = Some(v.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (t.ok_or("no t=")?, v1.ok_or("no v1=")?);
    let given = hex::decode(&v1).map_err(|_| format!("v1 is not hex: {v1}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| format!("signature does not match: {sig}"))?;
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().map_err(|_| "t is not a number")?;
    if age.abs() > 300 {
        return Err(format!("t is {age} s old"));
    }
    Ok(())
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Err(why) = signature_ok(&headers, &body) {
        r.bad_signatures.lock().unwrap().push(why);
        return StatusCode::UNAUTHORIZED;
    }
    let mut mode = r.mode.load(Ordering::SeqCst);
    if mode == FLAKY {
        let roll = r
            .rng
            .lock()
            .unwrap()
            .get_or_insert_with(|| StdRng::seed_from_u64(5))
            .random_range(0..100);
        mode = match roll {
            0..30 => REFUSE_500,
            30..40 => HOLD,
            _ => ACCEPT,
        };
    }
    if mode == REFUSE_500 {
        *r.refused.lock().unwrap() += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let v: Value = serde_json::from_slice(&body).expect("the body is JSON");
    let header_id = headers
        .get("dialer-event-id")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    assert_eq!(
        header_id,
        v["id"].as_str().unwrap(),
        "header and body name one event"
    );
    r.got.lock().unwrap().push(Got {
        id: v["id"].as_str().unwrap().to_string(),
        kind: v["type"].as_str().unwrap().to_string(),
        seq: v["sequence"].as_i64().unwrap(),
        lead_id: v["lead_id"].as_i64().unwrap(),
        body: body.clone(),
        data: v["data"].clone(),
    });
    if mode == HOLD {
        // Past the daemon's one-second timeout.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    StatusCode::OK
}

/// Serves the receiver on `port` until `stop` fires.
fn serve(r: Receiver, port: u16, stop: tokio::sync::oneshot::Receiver<()>) {
    let app = Router::new().route("/crm", post(receive)).with_state(r);
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await
            .unwrap();
    });
}

fn campaign_toml() -> String {
    format!(
        r#"
id = "{CAMPAIGN_ID}"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001"]
timezone = "America/New_York"
[pacing]
calls_per_minute = 6000
burst = 20
max_concurrent = 30
[retry]
max_attempts = 2
[retry.after]
no_answer = "1s"
busy = "1s"
voicemail = "1s"
failed = "1s"
unknown = "1s"
default = "1s"
[compliance]
local_hours = "off"
max_attempts_per_day = 100
"#
    )
}

fn daemon_toml(db_url: &str, fake_url: &str, port: u16, crm_port: u16) -> String {
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
requests_per_minute = 60000
max_concurrent_calls = 40
request_timeout = "1s"
poll_interval = "200ms"
max_call_duration = "1m"

[[outbound_webhooks]]
name = "crm"
url = "http://127.0.0.1:{crm_port}/crm"
secret_file = "crm_secret"
events = ["attempt.ended", "lead.final", "lead.skipped"]
timeout = "1s"
retry_min = "200ms"
retry_max = "2s"
"#
    )
}

/// `dialer_outbound_backlog` and `dialer_outbound_failures_total` of the
/// webhook, when the daemon answers.
async fn scrape(http: &reqwest::Client, url: &str) -> Option<(f64, f64)> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let value = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((
        value("dialer_outbound_backlog{webhook=\"crm\"}")?,
        value("dialer_outbound_failures_total{webhook=\"crm\"}")?,
    ))
}

async fn undelivered(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
        .await
}

async fn unfinished(db: &TestDb) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM leads WHERE campaign_id = '{CAMPAIGN_ID}' \
         AND status NOT IN ('completed', 'exhausted', 'skipped', 'canceled')"
    ))
    .await
}

async fn outbound_survives_kills_and_receiver_faults(db: TestDb) {
    let _machine = crate::support::heavy().await;
    let backend = db.backend();
    let (_fake, fake_url) = ChaosRevRing::start(
        API_KEY,
        17,
        Faults {
            webhook: 0,
            ..Faults::default()
        },
    )
    .await;
    let (port, crm_port) = (free_port(), free_port());
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "dialer-outbound-{backend}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("key"), API_KEY).unwrap();
    std::fs::write(dir.join("crm_secret"), SECRET).unwrap();
    let loaded = crate::support::write_config(
        &dir,
        &daemon_toml(&db.url, &fake_url, port, crm_port),
        &[("crm.toml", &campaign_toml())],
    );
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, Clock::system().now())
        .await
        .unwrap();
    let mut leads: Vec<NewLead> = (0..LEADS)
        .map(|i| NewLead {
            phone: any_hour_phone(i),
            name: Some(format!("Lead {i}")),
            timezone: None,
            variables: Map::from_iter([("crm_id".to_string(), Value::from(format!("C-{i}")))]),
        })
        .collect();
    // Skipped at once (`lead.skipped`).
    leads[0].phone = "+1555".into();
    db.store
        .insert_leads(CAMPAIGN_ID, &leads, Clock::system().now())
        .await
        .unwrap();

    // The receiver's story, by time since the first start: refusing
    // connections (not listening), then 500s, then holding requests past
    // the timeout, then failing at random; it recovers once every lead is final.
    let receiver = Receiver::default();
    let started = Instant::now();
    let mut stop_receiver = None;
    let plan = |t: Duration| match t.as_secs() {
        0..3 => None,
        3..6 => Some(REFUSE_500),
        6..9 => Some(HOLD),
        _ => Some(FLAKY),
    };

    let mut rng = StdRng::seed_from_u64(99);
    let mut kills = 0;
    let mut child = spawn_daemon(&dir, "run-00.log");
    let mut next_kill = started + Duration::from_millis(rng.random_range(1_000..=3_000));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let (mut most_backlog, mut most_failures) = (0.0f64, 0.0f64);
    loop {
        if let Some(m) = scrape(&http, &metrics_url).await {
            most_backlog = most_backlog.max(m.0);
            most_failures = most_failures.max(m.1);
        }
        let t = started.elapsed();
        match plan(t) {
            Some(mode) => {
                receiver.mode.store(mode, Ordering::SeqCst);
                if stop_receiver.is_none() {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    serve(receiver.clone(), crm_port, rx);
                    stop_receiver = Some(tx);
                }
            }
            None => assert!(stop_receiver.is_none()),
        }
        if kills < KILLS && Instant::now() >= next_kill {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            child = spawn_daemon(&dir, &format!("run-{kills:02}.log"));
            next_kill = Instant::now() + Duration::from_millis(rng.random_range(1_000..=4_000));
        }
        if kills == KILLS && t > Duration::from_secs(10) && unfinished(&db).await == 0 {
            receiver.mode.store(ACCEPT, Ordering::SeqCst);
            if undelivered(&db).await == 0 {
                break;
            }
        }
        assert!(
            t < DEADLINE,
            "{backend}: not done after {DEADLINE:?}: {} leads unfinished, {} events undelivered; logs in {}",
            unfinished(&db).await,
            undelivered(&db).await,
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    // The gauges follow the database within their refresh.
    let mut backlog_now = None;
    for _ in 0..80 {
        backlog_now = scrape(&http, &metrics_url).await.map(|m| m.0);
        if backlog_now == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        backlog_now,
        Some(0.0),
        "{backend}: /metrics still shows a backlog"
    );
    assert!(
        most_backlog > 0.0,
        "{backend}: /metrics never showed a backlog"
    );
    assert!(
        most_failures > 0.0,
        "{backend}: /metrics never counted a failed delivery"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = stop_receiver.map(|s| s.send(()));

    let got = receiver.got.lock().unwrap().clone();
    let bad = receiver.bad_signatures.lock().unwrap().clone();
    assert!(bad.is_empty(), "{backend}: invalid signatures: {bad:?}");
    assert!(
        *receiver.refused.lock().unwrap() > 0,
        "{backend}: the receiver never failed a request: the test proves nothing"
    );

    // Duplicates only under the same event id, with the same body.
    let mut by_id: HashMap<&str, Vec<&Got>> = HashMap::new();
    for g in &got {
        by_id.entry(&g.id).or_default().push(g);
    }
    let duplicates = by_id.values().filter(|v| v.len() > 1).count();
    for (id, v) in &by_id {
        assert!(
            v.iter().all(|g| g.body == v[0].body),
            "{backend}: event {id} came twice with different bodies"
        );
    }
    // One event per change: no change reported under two ids.
    let mut changes = HashSet::new();
    for v in by_id.values() {
        let g = v[0];
        let change = match g.kind.as_str() {
            "attempt.ended" => format!("{} {} {}", g.kind, g.data["attempt_id"], g.data["outcome"]),
            _ => format!("{} {}", g.kind, g.lead_id),
        };
        assert!(
            changes.insert(change.clone()),
            "{backend}: {change} reported under two event ids"
        );
    }

    // Per lead, in order: no event arrives after a later one of its lead.
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    let mut out_of_order = Vec::new();
    for g in &got {
        let l = last.entry(g.lead_id).or_insert(i64::MIN);
        if g.seq < *l {
            out_of_order.push(format!("lead {}: {} after {}", g.lead_id, g.seq, l));
        }
        *l = (*l).max(g.seq);
    }
    assert!(
        out_of_order.is_empty(),
        "{backend}: out of order: {out_of_order:?}"
    );

    // None lost, judged against the database's own state, not the outbox:
    // every ended attempt with its outcome, every final lead with its status.
    let ended = db
        .rows(&format!(
            "SELECT id, outcome FROM call_attempts WHERE campaign_id = '{CAMPAIGN_ID}' AND state = 'ended'"
        ))
        .await;
    let mut missing = Vec::new();
    for row in &ended {
        let (id, outcome) = (row[0].clone().unwrap(), row[1].clone().unwrap());
        let seen = by_id.values().any(|v| {
            v[0].kind == "attempt.ended"
                && v[0].data["attempt_id"] == id.as_str()
                && v[0].data["outcome"] == outcome.as_str()
        });
        if !seen {
            missing.push(format!("attempt {id} ended {outcome}"));
        }
    }
    let finals = db
        .rows(&format!(
            "SELECT CAST(id AS TEXT), status, last_outcome FROM leads WHERE campaign_id = '{CAMPAIGN_ID}'"
        ))
        .await;
    for row in &finals {
        let (id, status) = (row[0].clone().unwrap(), row[1].clone().unwrap());
        let kind = if status == "skipped" {
            "lead.skipped"
        } else {
            "lead.final"
        };
        let seen = by_id.values().any(|v| {
            v[0].kind == kind
                && v[0].lead_id.to_string() == id
                && v[0].data["status"] == status.as_str()
        });
        if !seen {
            missing.push(format!("lead {id} {status}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{backend}: never delivered: {missing:?}"
    );
    assert!(
        ended.len() >= LEADS,
        "{backend}: only {} attempts ended",
        ended.len()
    );
    let skipped = by_id
        .values()
        .find(|v| v[0].kind == "lead.skipped")
        .expect("the invalid number's lead is reported skipped");
    assert_eq!(skipped[0].data["phone"], "+1555");
    let a_final = by_id.values().find(|v| v[0].kind == "lead.final").unwrap()[0];
    assert!(a_final.data["variables"]["crm_id"]
        .as_str()
        .unwrap()
        .starts_with("C-"));

    eprintln!(
        "{backend}: {} events ({} attempt ends, {} leads) delivered in {:.1} s across {KILLS} kills; \
         {} requests taken in, {duplicates} events taken in more than once, {} answered 500",
        by_id.len(),
        ended.len(),
        finals.len(),
        took.as_secs_f64(),
        got.len(),
        receiver.refused.lock().unwrap(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

crate::on_both_backends! {
    outbound_events_survive_kills_and_receiver_faults => outbound_survives_kills_and_receiver_faults;
}
