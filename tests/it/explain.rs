//! `dialer explain` on hand-checked cases, in JSON and in text. Every expected
//! instant below was worked out by hand from the zone's UTC offset on that
//! date (EST = UTC-5, PST = UTC-8, MST = UTC-7, CET = UTC+1, IST = UTC+5:30).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const STD: &str = r#"
id = "std"
provider = "sim"
timezone = "America/New_York"
[window]
weekly = ["mon-fri 09:00-12:00,13:00-20:00", "sat 10:00-14:00"]
holidays = ["2026-12-25"]
[compliance]
max_attempts_per_day = 3
"#;

const OPEN: &str = r#"
id = "open"
provider = "sim"
"#;

fn dialer(cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn setup(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://explain.db\"\n[providers.sim]\nkind = \"simulated\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("campaigns/std.toml"), STD).unwrap();
    std::fs::write(dir.join("campaigns/open.toml"), OPEN).unwrap();
    let cfg = dir.join("dialer.toml");
    std::fs::write(
        dir.join("leads.csv"),
        "phone,timezone\n+12127365001,Asia/Kolkata\n+12127365002,\n",
    )
    .unwrap();
    assert!(dialer(
        &cfg,
        &[
            "import",
            "--campaign",
            "std",
            dir.join("leads.csv").to_str().unwrap()
        ]
    )
    .status
    .success());
    assert!(dialer(&cfg, &["dnc", "add", "+12127365009"])
        .status
        .success());
    cfg
}

async fn add_attempts(dir: &Path) {
    let url = format!("sqlite://{}", dir.join("explain.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for (n, at) in [
        "2026-12-01T13:00:00Z",
        "2026-12-01T13:10:00Z",
        "2026-12-01T14:30:00Z",
    ]
    .iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, to_number, state, outcome, requested_at)
             SELECT ?1, id, campaign_id, ?2, 'sim', phone, 'ended', 'no_answer', ?3 FROM leads WHERE phone = '+12127365002'",
        )
        .bind(format!("att-{n}"))
        .bind(n as i64 + 1)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE leads SET attempts = 3 WHERE phone = '+12127365002'")
        .execute(&pool)
        .await
        .unwrap();
    // Due before every case's instant: the import made them due at the real
    // time of day, which may be past some cases.
    sqlx::query(
        "UPDATE leads SET next_attempt_at = '2026-12-01T00:00:00Z', \
         daemon_next_attempt_at = '2026-12-01T00:00:00Z'",
    )
    .execute(&pool)
    .await
    .unwrap();
}

struct Case {
    what: &'static str,
    campaign: &'static str,
    phone: &'static str,
    at: &'static str,
    callable: bool,
    blocked_by: &'static [&'static str],
    next: Option<&'static str>,
    timezone: Value,
    source: &'static str,
    known_lead: bool,
}

#[tokio::test]
async fn hand_checked_cases() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    add_attempts(dir.path()).await;
    let cases = [
        Case { what: "New York number, Tuesday 10:00 EST: open", campaign: "std", phone: "+12127365000", at: "2026-12-01T15:00:00Z", callable: true, blocked_by: &[], next: Some("2026-12-01T15:00:00Z"), timezone: json!("America/New_York"), source: "number", known_lead: false },
        Case { what: "New York, 12:30 EST: lunch gap, opens 13:00 EST", campaign: "std", phone: "+12127365000", at: "2026-12-01T17:30:00Z", callable: false, blocked_by: &["window"], next: Some("2026-12-01T18:00:00Z"), timezone: json!("America/New_York"), source: "number", known_lead: false },
        Case { what: "Christmas (Friday) 10:00 EST: holiday, next Saturday 10:00 EST", campaign: "std", phone: "+12127365000", at: "2026-12-25T15:00:00Z", callable: false, blocked_by: &["holiday"], next: Some("2026-12-26T15:00:00Z"), timezone: json!("America/New_York"), source: "number", known_lead: false },
        Case { what: "Los Angeles, 07:00 PST: before the window and the 08:00 guard", campaign: "std", phone: "+13107365000", at: "2026-12-01T15:00:00Z", callable: false, blocked_by: &["window", "legal_hours"], next: Some("2026-12-01T17:00:00Z"), timezone: json!("America/Los_Angeles"), source: "number", known_lead: false },
        Case { what: "Florida (305), 20:30 EST, no window: Florida's 20:00 limit, opens 08:00 EST", campaign: "open", phone: "+13057365000", at: "2026-12-02T01:30:00Z", callable: false, blocked_by: &["state_rule"], next: Some("2026-12-02T13:00:00Z"), timezone: json!("America/New_York"), source: "number", known_lead: false },
        Case { what: "New York, same instant, no window: the generic guard runs to 21:00", campaign: "open", phone: "+12127365000", at: "2026-12-02T01:30:00Z", callable: true, blocked_by: &[], next: Some("2026-12-02T01:30:00Z"), timezone: json!("America/New_York"), source: "number", known_lead: false },
        Case { what: "Paris, Tuesday 13:30 CET: French lunch break, opens 14:00 CET", campaign: "std", phone: "+33142685300", at: "2026-12-01T12:30:00Z", callable: false, blocked_by: &["country_rule"], next: Some("2026-12-01T13:00:00Z"), timezone: json!("Europe/Paris"), source: "number", known_lead: false },
        Case { what: "Paris, Saturday 11:00 CET: campaign open, France forbids Saturdays; Monday 10:00 CET", campaign: "std", phone: "+33142685300", at: "2026-12-05T10:00:00Z", callable: false, blocked_by: &["country_rule"], next: Some("2026-12-07T09:00:00Z"), timezone: json!("Europe/Paris"), source: "number", known_lead: false },
        Case { what: "Do-not-call number: never", campaign: "std", phone: "+12127365009", at: "2026-12-01T15:00:00Z", callable: false, blocked_by: &["do_not_call"], next: None, timezone: json!("America/New_York"), source: "number", known_lead: false },
        Case { what: "Toll-free number, campaign without a zone: unknown", campaign: "open", phone: "+18002752273", at: "2026-12-01T15:00:00Z", callable: false, blocked_by: &["unknown_timezone"], next: None, timezone: Value::Null, source: "unknown", known_lead: false },
        Case { what: "Lead whose column says Asia/Kolkata, 20:30 IST: window closed, Wednesday 09:00 IST", campaign: "std", phone: "+12127365001", at: "2026-12-01T15:00:00Z", callable: false, blocked_by: &["window"], next: Some("2026-12-02T03:30:00Z"), timezone: json!("Asia/Kolkata"), source: "lead", known_lead: true },
        Case { what: "Idaho 208 spans Boise and Los Angeles: 09:30 MST but 08:30 PST, opens 09:00 PST", campaign: "std", phone: "+12087365000", at: "2026-12-01T16:30:00Z", callable: false, blocked_by: &["window"], next: Some("2026-12-01T17:00:00Z"), timezone: json!(["America/Boise", "America/Los_Angeles"]), source: "number", known_lead: false },
        Case { what: "Three attempts since 13:00Z: daily cap; the oldest leaves at 13:00Z the next day, window opens 14:00Z", campaign: "std", phone: "+12127365002", at: "2026-12-01T15:00:00Z", callable: false, blocked_by: &["daily_cap"], next: Some("2026-12-02T14:00:00Z"), timezone: json!("America/New_York"), source: "number", known_lead: true },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let out = dialer(
            &cfg,
            &[
                "explain",
                "--campaign",
                c.campaign,
                "--phone",
                c.phone,
                "--at",
                c.at,
                "--json",
            ],
        );
        assert!(
            out.status.success(),
            "{}: {}",
            c.what,
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut timezone = v["timezone"].clone();
        if let Value::Array(a) = &mut timezone {
            a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
        }
        let got = (
            v["callable"].as_bool(),
            v["blocked_by"].clone(),
            v["next_callable_at"].as_str().map(str::to_string),
            timezone,
            v["timezone_source"].as_str().map(str::to_string),
            v["lead_id"].is_number(),
        );
        let want = (
            Some(c.callable),
            json!(c.blocked_by),
            c.next.map(str::to_string),
            c.timezone.clone(),
            Some(c.source.to_string()),
            c.known_lead,
        );
        if got != want {
            failures.push(format!("{}:\n  got  {got:?}\n  want {want:?}", c.what));
        }
        assert_eq!(v["campaign"], c.campaign);
        assert_eq!(v["phone"], c.phone);
        assert_eq!(v["at"], c.at);

        // The same answer in text.
        let text = String::from_utf8(
            dialer(
                &cfg,
                &[
                    "explain",
                    "--campaign",
                    c.campaign,
                    "--phone",
                    c.phone,
                    "--at",
                    c.at,
                ],
            )
            .stdout,
        )
        .unwrap();
        for rule in c.blocked_by {
            assert!(
                text.contains(&format!("blocked by {rule}")),
                "{}: text lacks `{rule}`:\n{text}",
                c.what
            );
        }
        match c.next {
            Some(n) => assert!(text.contains(n), "{}: text lacks {n}:\n{text}", c.what),
            None => assert!(text.contains("next callable: none"), "{}:\n{text}", c.what),
        }
        assert!(
            text.contains(if c.callable {
                "may be called"
            } else {
                "may not be called"
            }),
            "{}:\n{text}",
            c.what
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn unknown_campaign_exits_1_and_bad_phone_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    assert_eq!(
        dialer(
            &cfg,
            &["explain", "--campaign", "nope", "--phone", "+12127365000"]
        )
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        dialer(&cfg, &["explain", "--campaign", "std", "--phone", "12"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        dialer(
            &cfg,
            &[
                "explain",
                "--campaign",
                "std",
                "--phone",
                "+12127365000",
                "--at",
                "tomorrow"
            ]
        )
        .status
        .code(),
        Some(2)
    );
}
