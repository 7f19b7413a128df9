//! `dialer export`: the binary run on a database holding leads with and
//! without attempts, read back as CSV and as JSON lines, on both backends.

use crate::support::TestDb;
use dialer::store::NewLead;
use serde_json::{Map, Value};
use std::path::Path;
use std::process::{Command, Output};

fn export(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(dir.join("dialer.toml"))
        .arg("export")
        .args(args)
        .env_remove("DIALER_CONFIG")
        .output()
        .expect("run dialer")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Inserts an attempt as the daemon would have written it.
async fn attempt(db: &TestDb, id: &str, lead: i64, n: i64, outcome: &str, at: &str) {
    db.exec(&format!(
        "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, provider_call_id,
             from_number, to_number, state, provider_status, outcome, requested_at, ended_at,
             duration_seconds, summary)
         SELECT '{id}', id, campaign_id, {n}, 'sim', 'call-{id}', '+15551230001', phone, 'ended',
             '{outcome}', '{outcome}', '{at}', '{at}', 42, 'said \"yes\", then, later: no'
           FROM leads WHERE id = {lead}"
    ))
    .await;
}

async fn exports_leads_with_their_attempts(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    crate::support::write_config(
        dir.path(),
        &crate::support::sim_daemon_toml(&db.url, ""),
        &[(
            "a.toml",
            "id = \"spring\"\nprovider = \"sim\"\ntimezone = \"America/Chicago\"\n",
        )],
    );
    let leads: Vec<NewLead> = (0..3)
        .map(|i| NewLead {
            phone: format!("+1212736{:04}", 1000 + i),
            name: Some(format!("Lead {i}")),
            timezone: None,
            variables: Map::from_iter([("crm_id".to_string(), Value::from(format!("C-{i}")))]),
        })
        .collect();
    db.store
        .insert_leads("spring", &leads, chrono::Utc::now())
        .await
        .unwrap();
    let ids: Vec<i64> = db
        .rows("SELECT CAST(id AS TEXT) FROM leads ORDER BY id")
        .await
        .iter()
        .map(|r| r[0].as_ref().unwrap().parse().unwrap())
        .collect();
    attempt(&db, "a1", ids[0], 1, "no_answer", "2026-11-01T15:00:00Z").await;
    attempt(&db, "a2", ids[0], 2, "completed", "2026-11-02T15:00:00Z").await;
    attempt(&db, "a3", ids[2], 1, "busy", "2026-11-20T15:00:00Z").await;
    db.exec(&format!(
        "UPDATE leads SET status = 'completed', attempts = 2, last_outcome = 'completed', \
         updated_at = '2026-11-02T15:00:00Z' WHERE id = {}",
        ids[0]
    ))
    .await;
    db.exec(&format!(
        "UPDATE leads SET updated_at = '2026-11-01T00:00:00Z' WHERE id IN ({}, {})",
        ids[1], ids[2]
    ))
    .await;

    // CSV: one row per attempt, one row for the lead never called.
    let csv_text = stdout(&export(dir.path(), &["--campaign", "spring"]));
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, dialer::cli::export::CSV_HEADER);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    let seen: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[col("phone")].to_string(),
                r[col("attempt")].to_string(),
                r[col("outcome")].to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("+12127361000".into(), "1".into(), "no_answer".into()),
            ("+12127361000".into(), "2".into(), "completed".into()),
            ("+12127361001".into(), "".into(), "".into()),
            ("+12127361002".into(), "1".into(), "busy".into()),
        ]
    );
    assert_eq!(&rows[1][col("status")], "completed");
    assert_eq!(&rows[1][col("summary")], "said \"yes\", then, later: no");
    assert_eq!(&rows[1][col("ended_at")], "2026-11-02T15:00:00Z");
    assert_eq!(&rows[1][col("duration_seconds")], "42");
    let vars: Value = serde_json::from_str(&rows[2][col("variables")]).unwrap();
    assert_eq!(vars["crm_id"], "C-1");

    // JSON lines: one lead a line, its calls inside.
    let jsonl = stdout(&export(
        dir.path(),
        &["--campaign", "spring", "--format", "jsonl"],
    ));
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["calls"].as_array().unwrap().len(), 2);
    assert_eq!(lines[0]["calls"][1]["outcome"], "completed");
    assert_eq!(lines[0]["calls"][1]["requested_at"], "2026-11-02T15:00:00Z");
    assert_eq!(lines[1]["calls"], Value::Array(vec![]));
    assert_eq!(lines[2]["variables"]["crm_id"], "C-2");

    // --since: the lead updated then, and the lead whose attempt came later.
    let since = stdout(&export(
        dir.path(),
        &[
            "--campaign",
            "spring",
            "--format",
            "jsonl",
            "--since",
            "2026-11-02T00:00:00Z",
        ],
    ));
    let phones: Vec<String> = since
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["phone"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(phones, ["+12127361000", "+12127361002"]);

    // Mistakes are named.
    let out = export(dir.path(), &["--campaign", "autumn"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown campaign `autumn`"));
    let out = export(dir.path(), &["--campaign", "spring", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format `xml`"));
    let out = export(
        dir.path(),
        &["--campaign", "spring", "--since", "yesterday"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since `yesterday`"));
}

crate::on_both_backends! {
    export_streams_leads_with_attempts => exports_leads_with_their_attempts;
}
