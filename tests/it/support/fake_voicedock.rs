//! A fake VoiceDock account served over real HTTP, in the shapes VoiceDock
//! documents: it places calls (`POST /api/v1/calls/outbound`, answered
//! `{success, call_id, status: "dialing"}`), answers `GET /api/v1/calls/{id}`
//! and the list `GET /api/v1/calls` with Call records, and keeps its own log
//! of every request that reached it and when, read on its clock (the test
//! gives it the scaled clock the daemon runs on). Every `lose_every`-th
//! accepted call is answered 500, so the daemon does not learn its id and has
//! to find it in the list. How a call to a number ends, and what the
//! assistant's analysis extracted from it, is set per number (`set_end`);
//! once given the daemon's webhook URL and secret (`send_reports_to`), the
//! fake also reports each call's end as VoiceDock does, with a signed
//! `end-of-call-report`.
#![allow(dead_code)]

use super::wire::{self, Log};
pub use super::wire::{Arrival, Kind};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The assistant's own number, as the records show it.
const ASSISTANT_PHONE: &str = "+31850835037";

/// How a call ends and what the assistant's analysis made of it.
#[derive(Debug, Clone)]
pub struct CallEnd {
    /// The callee picked up: `started_at` is set and the duration positive.
    pub answered: bool,
    pub end_reason: String,
    /// What the assistant's `analysis_plan` extracted: the Call's
    /// `analysis_result`, the end-of-call report's `analysis`.
    pub analysis: Option<Value>,
}

impl Default for CallEnd {
    fn default() -> Self {
        CallEnd {
            answered: true,
            end_reason: "user_hangup".into(),
            analysis: None,
        }
    }
}

impl CallEnd {
    /// Answered, hung up by the callee, with this analysis.
    pub fn analysed(analysis: Value) -> Self {
        CallEnd {
            analysis: Some(analysis),
            ..CallEnd::default()
        }
    }
}

struct Call {
    id: String,
    destination: String,
    assistant_id: Option<String>,
    number_id: Option<String>,
    metadata: Value,
    created: DateTime<Utc>,
    ends: DateTime<Utc>,
    end: CallEnd,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    accepted: usize,
    ends: HashMap<String, CallEnd>,
    /// The daemon's webhook URL and the assistant's webhook secret.
    reports_to: Option<(String, String)>,
    /// The HTTP status the daemon answered each report sent.
    report_answers: Vec<u16>,
}

#[derive(Clone)]
pub struct FakeVoiceDock {
    inner: Arc<Mutex<Inner>>,
    log: Log,
    key: String,
    clock: Clock,
    /// How long each call lasts, on the fake's clock.
    call_length: Duration,
    /// Every n-th accepted call is answered 500 (0: never).
    lose_every: usize,
    client: reqwest::Client,
}

impl FakeVoiceDock {
    /// Starts the fake; returns it and its base URL (with `/api/v1`).
    pub async fn start(
        key: &str,
        clock: Clock,
        call_length: Duration,
        lose_every: usize,
    ) -> (Self, String) {
        let fake = FakeVoiceDock {
            inner: Arc::default(),
            log: Log::new(clock.clone()),
            key: key.to_string(),
            clock,
            call_length,
            lose_every,
            client: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/api/v1/calls/outbound", post(place))
            .route("/api/v1/calls", get(list))
            .route("/api/v1/calls/{id}", get(get_call))
            .with_state(fake.clone());
        let url = format!("{}/api/v1", wire::serve(app).await);
        (fake, url)
    }

    pub fn log(&self) -> Vec<Arrival> {
        self.log.entries()
    }

    /// The calls the fake placed, in order: (`destination`, `number_id`).
    pub fn placed(&self) -> Vec<(String, Option<String>)> {
        let g = self.inner.lock().unwrap();
        g.calls
            .iter()
            .map(|c| (c.destination.clone(), c.number_id.clone()))
            .collect()
    }

    /// How calls to `to` end from now on.
    pub fn set_end(&self, to: &str, end: CallEnd) {
        self.inner.lock().unwrap().ends.insert(to.to_string(), end);
    }

    /// Reports the end of every call placed from now on to `url`, signed
    /// with `secret`, as the assistant's `webhook_url` / `webhook_secret`.
    pub fn send_reports_to(&self, url: String, secret: &str) {
        self.inner.lock().unwrap().reports_to = Some((url, secret.to_string()));
    }

    /// The status the daemon answered each end-of-call report with.
    pub fn report_answers(&self) -> Vec<u16> {
        self.inner.lock().unwrap().report_answers.clone()
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h == format!("Bearer {}", self.key))
    }

    /// Sends the end-of-call report of call `id`, as VoiceDock signs it.
    async fn report(&self, id: &str) {
        let (body, url, secret) = {
            let g = self.inner.lock().unwrap();
            let (Some(c), Some((url, secret))) =
                (g.calls.iter().find(|c| c.id == id), g.reports_to.clone())
            else {
                return;
            };
            (end_of_call_report(c, self.clock.now()), url, secret)
        };
        let body = serde_json::to_vec(&body).unwrap();
        let ts = self.clock.now().timestamp();
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-webhook-event", "end-of-call-report")
            .header("x-webhook-timestamp", ts.to_string())
            .header("x-webhook-signature", sign(&secret, ts, &body))
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        self.inner.lock().unwrap().report_answers.push(answer);
    }
}

/// VoiceDock's webhook signature: `sha256=` and the hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` under the webhook secret.
pub fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn duration_seconds(c: &Call) -> i64 {
    if c.end.answered {
        (c.ends - c.created).num_seconds().max(1)
    } else {
        0
    }
}

fn summary(c: &Call) -> &'static str {
    if c.end.answered {
        "The assistant spoke with the customer."
    } else {
        "The customer did not pick up."
    }
}

fn messages(c: &Call) -> Value {
    if c.end.answered {
        json!([
            {"role": "assistant", "content": "Hello, this is the renewals line."},
            {"role": "user", "content": "Hi, can you hear me?"}
        ])
    } else {
        json!([])
    }
}

/// The Call record (seed 002's fields, plus the echoed `metadata`).
fn record(c: &Call, now: DateTime<Utc>) -> Value {
    let mut v = json!({
        "id": c.id,
        "destination": c.destination,
        "assistant_phone": ASSISTANT_PHONE,
        "phone_number": ASSISTANT_PHONE,
        "agent_id": c.assistant_id,
        "number_id": c.number_id,
        "agent_name": "Renewals",
        "business_name": "Acme",
        "created_at": rfc(c.created),
        "metadata": c.metadata,
    });
    let o = v.as_object_mut().unwrap();
    if c.end.answered {
        o.insert("started_at".into(), json!(rfc(c.created)));
    }
    if now >= c.ends {
        o.insert("status".into(), json!("ended"));
        o.insert("end_reason".into(), json!(c.end.end_reason));
        o.insert("ended_at".into(), json!(rfc(c.ends)));
        o.insert("updated_at".into(), json!(rfc(c.ends)));
        o.insert("duration_seconds".into(), json!(duration_seconds(c)));
        o.insert("summary".into(), json!(summary(c)));
        o.insert("messages".into(), messages(c));
        if let Some(a) = &c.end.analysis {
            o.insert("analysis_result".into(), a.clone());
        }
    } else {
        let status = if c.end.answered {
            "in-progress"
        } else {
            "ringing"
        };
        o.insert("status".into(), json!(status));
        o.insert("updated_at".into(), json!(rfc(c.created)));
    }
    v
}

/// The `end-of-call-report` webhook body for an ended call.
fn end_of_call_report(c: &Call, now: DateTime<Utc>) -> Value {
    let mut message = json!({
        "type": "end-of-call-report",
        "timestamp": rfc(now),
        "call": {"id": c.id, "type": "outbound_phone_call", "status": "ended", "metadata": c.metadata},
        "phone_number": {"id": c.number_id, "number": ASSISTANT_PHONE, "name": "Renewals line"},
        "customer": {"number": c.destination},
        "duration_seconds": duration_seconds(c),
        "end_reason": c.end.end_reason,
        "ended_at": rfc(c.ends),
        "summary": summary(c),
        "messages": messages(c),
    });
    let o = message.as_object_mut().unwrap();
    if c.end.answered {
        o.insert("started_at".into(), json!(rfc(c.created)));
    }
    if let Some(a) = &c.end.analysis {
        o.insert("analysis".into(), a.clone());
    }
    json!({ "message": message })
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Invalid API key"})),
    )
        .into_response()
}

async fn place(
    State(f): State<FakeVoiceDock>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let destination = body["destination"].as_str().unwrap_or_default().to_string();
    if !f.authorized(&headers) {
        f.log.arrived(Kind::Place, 401, Some(destination));
        return unauthorized();
    }
    let now = f.clock.now();
    let (id, lost, reports) = {
        let mut g = f.inner.lock().unwrap();
        g.accepted += 1;
        let n = g.accepted;
        let id = format!("vd-call-{n}");
        let end = g.ends.get(&destination).cloned().unwrap_or_default();
        g.calls.push(Call {
            id: id.clone(),
            destination: destination.clone(),
            assistant_id: body["assistant_id"].as_str().map(String::from),
            number_id: body["number_id"].as_str().map(String::from),
            metadata: body.get("metadata").cloned().unwrap_or(json!({})),
            created: now,
            ends: now + chrono::Duration::from_std(f.call_length).unwrap(),
            end,
        });
        (
            id,
            f.lose_every > 0 && n % f.lose_every == 0,
            g.reports_to.is_some(),
        )
    };
    if reports {
        let (f2, id2) = (f.clone(), id.clone());
        tokio::spawn(async move {
            f2.clock.sleep(f2.call_length).await;
            f2.report(&id2).await;
        });
    }
    if lost {
        f.log.arrived(Kind::Place, 500, Some(destination));
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "Internal error"})),
        )
            .into_response();
    }
    f.log.arrived(Kind::Place, 201, Some(destination));
    (
        StatusCode::CREATED,
        Json(json!({"success": true, "call_id": id, "status": "dialing"})),
    )
        .into_response()
}

async fn get_call(
    State(f): State<FakeVoiceDock>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !f.authorized(&headers) {
        f.log.arrived(Kind::Get, 401, None);
        return unauthorized();
    }
    let now = f.clock.now();
    let found = {
        let g = f.inner.lock().unwrap();
        g.calls.iter().find(|c| c.id == id).map(|c| record(c, now))
    };
    match found {
        Some(v) => {
            f.log.arrived(Kind::Get, 200, None);
            Json(v).into_response()
        }
        None => {
            f.log.arrived(Kind::Get, 404, None);
            (StatusCode::NOT_FOUND, Json(json!({"error": "Not found"}))).into_response()
        }
    }
}

async fn list(
    State(f): State<FakeVoiceDock>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !f.authorized(&headers) {
        f.log.arrived(Kind::List, 401, None);
        return unauthorized();
    }
    let now = f.clock.now();
    let time = |k: &str| {
        q.get(k)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (from, to) = (time("start_date"), time("end_date"));
    let limit: usize = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(100);
    let offset: usize = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
    let (page, total) = {
        let g = f.inner.lock().unwrap();
        let all: Vec<&Call> = g
            .calls
            .iter()
            .filter(|c| from.is_none_or(|t| c.created >= t) && to.is_none_or(|t| c.created <= t))
            .collect();
        let page: Vec<Value> = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| record(c, now))
            .collect();
        (page, all.len())
    };
    f.log.arrived(Kind::List, 200, None);
    Json(json!({
        "calls": page,
        "pagination": {"total": total, "limit": limit, "offset": offset}
    }))
    .into_response()
}
