//! Logs a machine can read: `dialer run` as a real process, its stderr read
//! line by line. With `log.format = "json"` every line is one JSON object
//! with one `message` and no key twice, start-up warnings included; text
//! logs written to a file carry no colour codes; a bad row is warned about
//! once, not at every read.

use crate::support::process::{any_hour_phone, free_port};
use crate::support::TestDb;
use dialer::clock::Clock;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const CAMPAIGN_ID: &str = "logs";

/// A JSON object read with its keys in order, duplicates kept, so that a
/// key written twice is seen (a map would keep only one of them).
struct Pairs(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Pairs {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn str(&self, key: &str) -> &str {
        self.get(key).and_then(Value::as_str).unwrap_or("")
    }
}

fn daemon_toml(url: &str, port: u16, format: &str, poll: &str) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{url}"
[server]
listen = "127.0.0.1:{port}"
[log]
format = "{format}"
level = "info"
[providers.sim]
kind = "simulated"
min_duration = "20s"
max_duration = "30s"
seed = 7
requests_per_minute = 6000
max_concurrent_calls = 20
poll_interval = "{poll}"
"#
    )
}

fn campaign_toml() -> String {
    format!(
        r#"
id = "{CAMPAIGN_ID}"
provider = "sim"
agent_id = "agent-1"
[pacing]
calls_per_minute = 600
burst = 5
max_concurrent = 5
[compliance]
local_hours = "off"
"#
    )
}

/// `dialer run` on `dir/dialer.toml`, stderr alone in `dir/stderr.log`.
fn spawn(dir: &Path) -> Child {
    let out = std::fs::File::create(dir.join("stdout.log")).unwrap();
    let err = std::fs::File::create(dir.join("stderr.log")).unwrap();
    crate::support::process::spawn_daemon_to(dir, out, err)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

fn stderr(dir: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(dir.join("stderr.log")).unwrap()).into_owned()
}

/// Waits until stderr contains `what`.
async fn wait_for_log(dir: &Path, what: &str, within: Duration) {
    let start = Instant::now();
    while !stderr(dir).contains(what) {
        assert!(
            start.elapsed() < within,
            "`{what}` not logged within {within:?}:\n{}",
            stderr(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, then waits for the exit (SIGKILL after 40 s).
fn stop(mut child: Child) {
    signal(&child, "TERM");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.wait();
}

async fn setup(db: &TestDb, dir: &Path, format: &str, poll: &str) -> u16 {
    let port = free_port();
    let loaded = crate::support::write_config(
        dir,
        &daemon_toml(&db.url, port, format, poll),
        &[("logs.toml", &campaign_toml())],
    );
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, Clock::system().now())
        .await
        .unwrap();
    port
}

on_both_backends! {
    every_stderr_line_is_one_json_object => every_stderr_line_is_one_json_object;
    text_logs_to_a_file_are_plain_and_bad_variables_warn_once => text_logs_to_a_file_are_plain_and_bad_variables_warn_once;
}

async fn every_stderr_line_is_one_json_object(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let port = setup(&db, dir.path(), "json", "1s").await;
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone) VALUES ('{CAMPAIGN_ID}', '{}')",
        any_hour_phone(0)
    ))
    .await;
    let child = spawn(dir.path());
    wait_for_log(dir.path(), "call placed", Duration::from_secs(30)).await;

    signal(&child, "HUP");
    wait_for_log(
        dir.path(),
        "configuration reloaded",
        Duration::from_secs(30),
    )
    .await;

    let status = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhooks/sim?token=wrong"))
        .header("X-Dialer-Token", "wrong")
        .header("X-Signature", "sha256=00")
        .body(r#"{"call_id":"x","status":"completed"}"#)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401, "a webhook without a valid signature");
    wait_for_log(dir.path(), "webhook refused", Duration::from_secs(10)).await;
    stop(child);

    let text = stderr(dir.path());
    let mut lines = Vec::new();
    for line in text.lines() {
        let pairs: Pairs = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}\nin:\n{text}"));
        let mut keys: Vec<&str> = pairs.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before, "a key written twice: {line}");
        for key in ["timestamp", "level", "message", "target"] {
            assert!(pairs.get(key).is_some(), "no `{key}` in {line}");
        }
        lines.push(pairs);
    }

    let placed = lines
        .iter()
        .find(|l| l.str("message") == "call placed")
        .expect("a `call placed` line");
    assert_eq!(placed.str("campaign"), CAMPAIGN_ID);
    assert_eq!(placed.str("provider"), "sim");
    assert!(placed.get("lead").is_some_and(Value::is_i64), "lead id");
    assert!(!placed.str("attempt").is_empty(), "attempt id");
    assert!(
        !placed.str("provider_call_id").is_empty(),
        "provider call id"
    );
    assert!(
        placed.get("span").is_none(),
        "fields are flat, not under span"
    );

    let warnings: Vec<&Pairs> = lines
        .iter()
        .filter(|l| l.str("message").contains("local_hours = \"off\""))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "the local_hours warning once, as JSON, despite the reload:\n{text}"
    );
    assert_eq!(warnings[0].str("level"), "WARN");

    let refused = lines
        .iter()
        .find(|l| l.str("message") == "webhook refused")
        .expect("the refused webhook");
    assert_eq!(refused.str("provider"), "sim");
    assert!(
        lines.iter().any(|l| l.str("message") == "stopped"),
        "the last line is written before exit:\n{text}"
    );
}

async fn text_logs_to_a_file_are_plain_and_bad_variables_warn_once(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    // Calls outlive the run and are polled every 200 ms: each poll reads the
    // lead row again.
    setup(&db, dir.path(), "text", "200ms").await;
    for i in 0..2 {
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone, variables) VALUES ('{CAMPAIGN_ID}', '{}', '[1, 2]')",
            any_hour_phone(i)
        ))
        .await;
    }
    let child = spawn(dir.path());
    wait_for_log(
        dir.path(),
        "lead variables are not a JSON object",
        Duration::from_secs(30),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop(child);

    let raw = std::fs::read(dir.path().join("stderr.log")).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        !raw.contains(&0x1b),
        "no colour codes when stderr is not a terminal:\n{text}"
    );
    let ids = db
        .rows(&format!(
            "SELECT CAST(id AS TEXT) FROM leads WHERE campaign_id = '{CAMPAIGN_ID}'"
        ))
        .await;
    for row in ids {
        let id = row[0].clone().unwrap();
        let n = text
            .lines()
            .filter(|l| l.contains("lead variables are not a JSON object"))
            .filter(|l| l.contains(&format!("lead={id}")))
            .count();
        assert_eq!(n, 1, "one warning for lead {id}:\n{text}");
    }
    assert_eq!(
        text.lines().filter(|l| l.contains("local_hours")).count(),
        1,
        "the local_hours warning once, on its own line:\n{text}"
    );
}
