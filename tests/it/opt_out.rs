//! Opt-outs honoured at once (`[opt_out]`): a RevRing agent records
//! `opt_out` in the call's variables; the lead is skipped as `do_not_call`,
//! its number goes on the do-not-call list with the reason and the attempt,
//! and the same number in another campaign is never called. Judged from the
//! fake provider's log of place requests and from the database.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine;
use dialer::provider::{elemente, voicedock};
use serde_json::json;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_test_key_opt_out";
const OPTS_OUT: &str = "+12127361001";
/// Imported with `opt_out = "true"` among its own variables: echoed back
/// by RevRing, it was not learned on the call.
const SENT_ITSELF: &str = "+12127361002";
const STAYS: &str = "+12127361003";

fn campaign(id: &str, opt_out: &str) -> String {
    format!(
        r#"
id = "{id}"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001"]
timezone = "UTC"
{opt_out}
[pacing]
calls_per_minute = 6000
burst = 10
max_concurrent = 10
[retry]
max_attempts = 3
[retry.after]
default = "1s"
[compliance]
local_hours = "off"
max_attempts_per_day = 50
"#
    )
}

async fn an_opt_out_stops_the_number_everywhere(db: TestDb) {
    let backend = db.backend();
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |_| Behaviour::Answer {
        ms: 50,
        end: End::NoAnswer,
    })
    .await;
    fake.set_learned(OPTS_OUT, json!({"opt_out": true}));
    fake.set_learned(STAYS, json!({"opt_out": false}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    let loaded = crate::support::write_config(
        dir.path(),
        &crate::support::revring_daemon_toml(&db.url, &fake_url),
        &[
            ("a.toml", &campaign("a", "[opt_out]\nfield = \"opt_out\"")),
            ("b.toml", &campaign("b", "")),
        ],
    );
    for phone in [OPTS_OUT, SENT_ITSELF, STAYS] {
        let vars = if phone == SENT_ITSELF {
            r#"{"opt_out": "true"}"#
        } else {
            "{}"
        };
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone, variables) VALUES ('a', '{phone}', '{vars}')"
        ))
        .await;
    }
    // The same number in a campaign without `[opt_out]`, due a little later.
    let later = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone, next_attempt_at) VALUES ('b', '{OPTS_OUT}', '{later}')"
    ))
    .await;
    let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = engine::start(daemon, None);
    let started = Instant::now();
    while db
        .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
        .await
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{backend}: leads still open after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop(Duration::from_secs(3)).await;

    let calls_to = |to: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.to == to && r.call_id.is_some())
            .count()
    };
    assert_eq!(
        calls_to(OPTS_OUT),
        1,
        "{backend}: the number that opted out was called again"
    );
    assert_eq!(
        calls_to(SENT_ITSELF),
        3,
        "{backend}: an echoed variable counted as an opt-out"
    );
    assert_eq!(calls_to(STAYS), 3, "{backend}");
    let leads = db
        .rows("SELECT campaign_id, phone, status, last_outcome FROM leads ORDER BY campaign_id, phone")
        .await;
    let leads: Vec<Vec<String>> = leads
        .into_iter()
        .map(|r| r.into_iter().map(|c| c.unwrap_or_default()).collect())
        .collect();
    assert_eq!(
        leads,
        [
            ["a", OPTS_OUT, "skipped", "do_not_call"],
            ["a", SENT_ITSELF, "exhausted", "no_answer"],
            ["a", STAYS, "exhausted", "no_answer"],
            ["b", OPTS_OUT, "skipped", "do_not_call"],
        ],
        "{backend}"
    );
    let dnc = db
        .rows(&format!(
            "SELECT d.reason, a.to_number, a.campaign_id FROM dnc d JOIN call_attempts a ON a.id = d.attempt_id WHERE d.phone = '{OPTS_OUT}'"
        ))
        .await;
    assert_eq!(
        dnc,
        [[
            Some("opt_out (campaign a)".to_string()),
            Some(OPTS_OUT.to_string()),
            Some("a".to_string())
        ]],
        "{backend}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM dnc").await, 1, "{backend}");
}

crate::on_both_backends! {
    opt_out_stops_the_number_everywhere => an_opt_out_stops_the_number_everywhere;
}

/// The other providers' documented shapes carry what the agent recorded
/// into the status the opt-out rule reads.
#[test]
fn voicedock_and_elemente_calls_carry_the_agents_fields() {
    let report = json!({"message": {
        "type": "end-of-call-report", "timestamp": "2026-12-01T15:00:00Z",
        "call": {"id": "call_1", "type": "outbound", "status": "ended"},
        "phone_number": {"id": "pn_1", "number": "+15551230001", "name": "Main"},
        "customer": {"number": OPTS_OUT},
        "duration_seconds": 31, "end_reason": "user_hangup",
        "started_at": "2026-12-01T14:59:29Z", "ended_at": "2026-12-01T15:00:00Z",
        "summary": "Asked not to be called again.", "messages": [],
        "analysis": {"summary": "Opt-out", "sentiment": "negative",
                     "structured_data": {"opt_out": true, "callback_at": null}}
    }});
    let s = voicedock::envelope_status(&report).unwrap().unwrap();
    assert_eq!(s.fields["opt_out"], true);
    assert_eq!(s.hangup_cause.as_deref(), Some("user_hangup"));
    let record = json!({"id": "call_1", "status": "ended", "end_reason": "user_hangup",
        "started_at": "2026-12-01T14:59:29Z", "ended_at": "2026-12-01T15:00:00Z",
        "analysis_result": {"summary": "Opt-out", "sentiment": "negative", "opt_out": "yes"}});
    assert_eq!(
        voicedock::call_status(&record).unwrap().fields["opt_out"],
        "yes"
    );
    let call = json!({"id": "c1", "status": "completed", "customerPhone": OPTS_OUT,
        "agentId": "ag", "skillId": "sk", "customerName": "Ada",
        "customerOverride": {"customFields": {"dialer_attempt_id": "att", "opt_out": "true"}}});
    assert_eq!(
        elemente::call_status(&call).unwrap().fields["opt_out"],
        "true"
    );
}
