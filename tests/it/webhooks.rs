//! Webhooks over real HTTP against the running daemon: signatures and
//! tokens, the order of checks, duplicates, out-of-order events, and an event
//! for an attempt whose response was lost.

use crate::support::fake_voicedock::sign;
use crate::support::TestDb;
use chrono::{Duration, Utc};
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine::{self, Running};
use dialer::store::{ClaimLimits, FromChoice};
use serde_json::{json, Value};

const RR_SECRET: &str = "rr-webhook-secret-123";
const RR_KEY: &str = "rr-api-key-7c1d";
const VD_KEY: &str = "vd-api-key-93ab";

fn capture_logs() {
    crate::support::logs::capture();
}

fn assert_no_secret_logged() {
    let text = crate::support::logs::text();
    assert!(text.contains("webhook refused"), "refusals are logged");
    for s in [RR_SECRET, VD_SECRET, RR_KEY, VD_KEY, "token="] {
        assert!(!text.contains(s), "`{s}` appears in the logs");
    }
}
const VD_SECRET: &str = "vd-webhook-secret-456";

struct Harness {
    db: TestDb,
    base: String,
    running: Option<Running>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let db = crate::support::sqlite().await;
        let dir = tempfile::tempdir().unwrap();
        for (f, v) in [
            ("rr-key", "rr-api-key"),
            ("rr-secret", RR_SECRET),
            ("vd-key", "vd-api-key"),
            ("vd-secret", VD_SECRET),
            ("el-key", "el-pass"),
        ] {
            std::fs::write(dir.path().join(f), v).unwrap();
        }
        let daemon_toml = format!(
            r#"
campaigns_dir = "campaigns"
[database]
url = "{}"
[providers.revring]
kind = "revring"
base_url = "http://127.0.0.1:9"
api_key_file = "rr-key"
webhook_secret_file = "rr-secret"
poll_interval = "1h"
[providers.voicedock]
kind = "voicedock"
base_url = "http://127.0.0.1:9/api/v1"
api_key_file = "vd-key"
webhook_secret_file = "vd-secret"
poll_interval = "1h"
[providers.nosecret]
kind = "revring"
base_url = "http://127.0.0.1:9"
api_key_file = "rr-key"
poll_interval = "1h"
"#,
            db.url
        );
        let camp = |id: &str, p: &str| {
            format!("id = \"{id}\"\nprovider = \"{p}\"\nagent_id = \"a1\"\nfrom_numbers = [\"+15551230001\"]\ntimezone = \"UTC\"\npaused = true\n")
        };
        let loaded = crate::support::write_config(
            dir.path(),
            &daemon_toml,
            &[
                ("rr.toml", &camp("rr", "revring")),
                ("vd.toml", &camp("vd", "voicedock")),
                ("ns.toml", &camp("ns", "nosecret")),
            ],
        );
        let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
        daemon.set_campaigns(&loaded.campaigns).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let running = engine::start(daemon, Some(listener));
        Harness {
            db,
            base,
            running: Some(running),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// A lead with one attempt on `provider`; `call_id` None: the response was lost (`unknown`).
    async fn attempt(
        &self,
        campaign: &str,
        provider: &str,
        phone: &str,
        call_id: Option<&str>,
    ) -> String {
        let store = &self.db.store;
        let now = Utc::now();
        self.db
            .exec(&format!("INSERT INTO leads (campaign_id, phone, next_attempt_at) VALUES ('{campaign}', '{phone}', '2000-01-01T00:00:00Z')"))
            .await;
        let limits = ClaimLimits {
            campaign_id: campaign.into(),
            provider: provider.into(),
            max_concurrent: 10,
            provider_max_concurrent: 10,
            batch: 1,
        };
        let lead = store
            .claim(&limits, "test", now, now + Duration::minutes(5))
            .await
            .unwrap()
            .pop()
            .unwrap();
        let a = store
            .begin_attempt(
                &lead,
                provider,
                &FromChoice::fixed(None),
                None,
                &[],
                now + Duration::minutes(5),
                now + Duration::hours(2),
                now,
            )
            .await
            .unwrap()
            .into_attempt()
            .unwrap();
        match call_id {
            Some(id) => store
                .attempt_placed(&a, id, "QUEUED", now + Duration::minutes(30), now)
                .await
                .unwrap(),
            None => store
                .attempt_unknown(
                    &a.id,
                    "timed out",
                    &dialer::store::LeadNext::pending(
                        now + Duration::hours(2),
                        Some("unknown".into()),
                    ),
                    now,
                )
                .await
                .map(|_| ())
                .unwrap(),
        }
        a.id
    }

    async fn post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> u16 {
        // The server answers an oversized body with 413 without reading it
        // all, so the client may see the connection reset while still
        // writing; sending again gets the answer.
        let mut last_error = None;
        for _ in 0..5 {
            let mut req = self
                .http
                .post(format!("{}{path}", self.base))
                .body(body.clone())
                .header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            match req.send().await {
                Ok(r) => return r.status().as_u16(),
                Err(e) => last_error = Some(e),
            }
        }
        panic!("no answer from the daemon: {last_error:?}");
    }

    async fn attempt_row(&self, id: &str) -> Vec<Option<String>> {
        self.db
            .rows(&format!("SELECT state, outcome, provider_status, summary FROM call_attempts WHERE id = '{id}'"))
            .await
            .remove(0)
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop(std::time::Duration::from_secs(2)).await;
        }
    }
}

fn revring_call(id: &str, status: &str, attempt_id: &str, updated: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "direction": "OUTBOUND", "status": status,
        "fromNumber": "+15551230001", "toNumber": "+12127365000", "agentId": "a1",
        "variables": {"dialer_attempt_id": attempt_id},
        "createdAt": updated, "updatedAt": updated,
        "startedAt": if status == "COMPLETED" { json!(updated) } else { Value::Null },
        "endedAt": if status == "COMPLETED" { json!(updated) } else { Value::Null },
        "durationSeconds": if status == "COMPLETED" { json!(61) } else { Value::Null },
        "hangupCause": if status == "COMPLETED" { json!("USER_ENDED") } else { Value::Null },
        "summary": if status == "COMPLETED" { json!("Agreed to renew") } else { Value::Null },
        "transcript": [], "recordingUrl": null
    }))
    .unwrap()
}

fn voicedock_event(call_id: &str, attempt_id: &str, kind: &str, status: &str) -> Vec<u8> {
    let now = Utc::now().to_rfc3339();
    let mut message = json!({
        "type": kind,
        "timestamp": now,
        "call": {"id": call_id, "type": "outbound", "status": status, "metadata": {"dialer_attempt_id": attempt_id}},
        "phone_number": {"id": "num_1", "number": "+15551230001", "name": "main"},
        "customer": {"number": "+12127365000"},
    });
    if kind == "end-of-call-report" {
        message["duration_seconds"] = json!(75);
        message["end_reason"] = json!("user_hangup");
        message["started_at"] = json!(now);
        message["ended_at"] = json!(now);
        message["summary"] = json!("Booked a visit");
        message["messages"] = json!([{"role": "assistant", "content": "Hi"}]);
    }
    serde_json::to_vec(&json!({ "message": message })).unwrap()
}

fn vd_headers(secret: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-webhook-signature", sign(secret, ts, body)),
        ("x-webhook-timestamp", ts.to_string()),
        ("x-webhook-event", "end-of-call-report".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revring_token_checks_and_application() {
    capture_logs();
    let h = Harness::start().await;
    let a = h
        .attempt("rr", "revring", "+12127365000", Some("call_1"))
        .await;
    let now = Utc::now().to_rfc3339();
    let body = revring_call("call_1", "COMPLETED", &a, &now);

    // Missing or wrong token: 401, nothing changes.
    assert_eq!(h.post("/webhooks/revring", &[], body.clone()).await, 401);
    assert_eq!(
        h.post("/webhooks/revring?token=nope", &[], body.clone())
            .await,
        401
    );
    assert_eq!(
        h.post(
            "/webhooks/revring",
            &[("x-dialer-token", "nope".into())],
            body.clone()
        )
        .await,
        401
    );
    assert_eq!(h.attempt_row(&a).await[0].as_deref(), Some("placed"));
    // A provider with no secret refuses everything.
    assert_eq!(
        h.post(
            &format!("/webhooks/nosecret?token={RR_SECRET}"),
            &[],
            body.clone()
        )
        .await,
        401
    );
    // Over 1 MiB: 413 before anything else.
    let big = vec![b' '; 2 << 20];
    assert_eq!(
        h.post(&format!("/webhooks/revring?token={RR_SECRET}"), &[], big)
            .await,
        413
    );
    // Right token, unparsable body: 400.
    assert_eq!(
        h.post(
            &format!("/webhooks/revring?token={RR_SECRET}"),
            &[],
            b"{not json".to_vec()
        )
        .await,
        400
    );
    assert_eq!(h.attempt_row(&a).await[0].as_deref(), Some("placed"));

    // Right token (query): applied.
    assert_eq!(
        h.post(
            &format!("/webhooks/revring?token={RR_SECRET}"),
            &[],
            body.clone()
        )
        .await,
        200
    );
    assert_eq!(
        h.attempt_row(&a).await,
        vec![
            Some("ended".into()),
            Some("completed".into()),
            Some("COMPLETED".into()),
            Some("Agreed to renew".into())
        ]
    );
    assert_eq!(
        h.db.rows("SELECT status, last_outcome FROM leads WHERE campaign_id = 'rr'")
            .await[0],
        vec![Some("completed".into()), Some("completed".into())]
    );
    // Duplicate (token in header this time): accepted, nothing changes.
    assert_eq!(
        h.post(
            "/webhooks/revring",
            &[("x-dialer-token", RR_SECRET.into())],
            body.clone()
        )
        .await,
        200
    );
    // An older status after the final one never regresses it.
    let older = revring_call(
        "call_1",
        "ONGOING",
        &a,
        &(Utc::now() - Duration::minutes(5)).to_rfc3339(),
    );
    assert_eq!(
        h.post(&format!("/webhooks/revring?token={RR_SECRET}"), &[], older)
            .await,
        200
    );
    assert_eq!(h.attempt_row(&a).await[0].as_deref(), Some("ended"));
    assert_eq!(h.attempt_row(&a).await[2].as_deref(), Some("COMPLETED"));
    // A call the daemon does not know: 202.
    let stranger = revring_call(
        "call_999",
        "COMPLETED",
        "00000000-0000-0000-0000-000000000000",
        &now,
    );
    assert_eq!(
        h.post(
            &format!("/webhooks/revring?token={RR_SECRET}"),
            &[],
            stranger
        )
        .await,
        202
    );

    // An attempt whose POST response was lost is matched by dialer_attempt_id.
    let lost = h.attempt("rr", "revring", "+12127365001", None).await;
    assert_eq!(h.attempt_row(&lost).await[0].as_deref(), Some("unknown"));
    let body = revring_call("call_2", "COMPLETED", &lost, &Utc::now().to_rfc3339());
    assert_eq!(
        h.post(&format!("/webhooks/revring?token={RR_SECRET}"), &[], body)
            .await,
        200
    );
    assert_eq!(
        h.attempt_row(&lost).await[..2],
        [Some("ended".into()), Some("completed".into())]
    );
    assert_eq!(
        h.db.rows(&format!(
            "SELECT provider_call_id FROM call_attempts WHERE id = '{lost}'"
        ))
        .await[0][0]
            .as_deref(),
        Some("call_2")
    );
    assert_eq!(
        h.db.rows("SELECT status FROM leads WHERE phone = '+12127365001'")
            .await[0][0]
            .as_deref(),
        Some("completed")
    );
    h.stop().await;
    assert_no_secret_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voicedock_signature_checks_and_application() {
    capture_logs();
    let h = Harness::start().await;
    let a = h
        .attempt("vd", "voicedock", "+12127365002", Some("vd_call_1"))
        .await;
    let body = voicedock_event("vd_call_1", &a, "end-of-call-report", "ended");
    let now = Utc::now().timestamp();

    assert_eq!(
        h.post("/webhooks/voicedock", &[], body.clone()).await,
        401,
        "no signature"
    );
    assert_eq!(
        h.post(
            "/webhooks/voicedock",
            &vd_headers("wrong-secret", now, &body),
            body.clone()
        )
        .await,
        401,
        "wrong secret"
    );
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        h.post(
            "/webhooks/voicedock",
            &vd_headers(VD_SECRET, now, &body),
            tampered
        )
        .await,
        401,
        "body changed after signing"
    );
    assert_eq!(
        h.post(
            "/webhooks/voicedock",
            &vd_headers(VD_SECRET, now - 301, &body),
            body.clone()
        )
        .await,
        401,
        "stale timestamp"
    );
    assert_eq!(
        h.attempt_row(&a).await[0].as_deref(),
        Some("placed"),
        "refused webhooks change nothing"
    );
    let junk = b"[1,2".to_vec();
    assert_eq!(
        h.post(
            "/webhooks/voicedock",
            &vd_headers(VD_SECRET, now, &junk),
            junk
        )
        .await,
        400
    );

    assert_eq!(
        h.post(
            "/webhooks/voicedock",
            &vd_headers(VD_SECRET, now, &body),
            body.clone()
        )
        .await,
        200
    );
    let row = h.attempt_row(&a).await;
    assert_eq!(row[0].as_deref(), Some("ended"));
    assert_eq!(row[1].as_deref(), Some("completed"));
    assert_eq!(row[3].as_deref(), Some("Booked a visit"));
    // Duplicate delivery: accepted, nothing changes.
    assert_eq!(
        h.post(
            "/webhooks/voicedock",
            &vd_headers(VD_SECRET, now, &body),
            body.clone()
        )
        .await,
        200
    );
    assert_eq!(h.attempt_row(&a).await, row);
    // A late status-update saying "ringing" never regresses the end.
    let late = voicedock_event("vd_call_1", &a, "status-update", "ringing");
    assert_eq!(
        h.post(
            "/webhooks/voicedock",
            &vd_headers(VD_SECRET, now, &late),
            late
        )
        .await,
        200
    );
    assert_eq!(h.attempt_row(&a).await[0].as_deref(), Some("ended"));
    h.stop().await;
    assert_no_secret_logged();
}
