//! A misbehaving RevRing account over real HTTP, for the chaos test: it
//! speaks the RevRing API as the adapter uses it (`POST /v1/calls`,
//! `POST /v1/calls/batch-get`, `GET /v1/calls/{id}`, post-call webhooks),
//! injects seeded random faults (latency, 429, 500 before or after creating
//! the call, answers that come after the daemon's timeout or never, malformed
//! bodies), and keeps its own log of every place request by its own clock.
//! That log, not anything the daemon writes, is what limits are judged from.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How a call ends, as the fake will report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Completed,
    NoAnswer,
    Voicemail,
    Failed,
    Transferred,
}

impl End {
    /// The outcome README's RevRing table gives this ending.
    pub fn outcome(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::NoAnswer => "no_answer",
            End::Voicemail => "voicemail",
            End::Failed => "failed",
            End::Transferred => "transferred",
        }
    }
}

/// What the fake did with one place request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Created the call and answered 201 with it.
    None,
    /// 429 with `Retry-After`; no call.
    TooMany,
    /// 500 before creating anything; no call.
    ErrorBefore,
    /// Created the call, then answered 500.
    ErrorAfter,
    /// Created the call, answered after the daemon's timeout (or never).
    Hang,
    /// Created the call, answered 201 with a body that is not JSON.
    Malformed,
}

impl Fault {
    /// Whether the call was created (and so will ring the number).
    pub fn accepted(self) -> bool {
        !matches!(self, Fault::TooMany | Fault::ErrorBefore)
    }
}

/// One `POST /v1/calls` as the fake saw it.
#[derive(Clone, Debug)]
pub struct PlaceRecord {
    /// Arrival, by the fake's clock, since the fake started.
    pub at: Duration,
    pub attempt_id: String,
    pub to: String,
    pub fault: Fault,
    pub call_id: Option<String>,
    pub end: Option<End>,
}

impl PlaceRecord {
    pub fn accepted(&self) -> bool {
        self.fault.accepted()
    }
}

struct Call {
    body: Value,
    created: SystemTime,
    ended: SystemTime,
    starts_at: Instant,
    ends_at: Instant,
    end: End,
}

#[derive(Default)]
struct Log {
    places: Vec<PlaceRecord>,
    /// Arrival of every API request (place, batch-get, get), since the fake started.
    requests: Vec<Duration>,
    calls: HashMap<String, Call>,
    batch_gets: usize,
    batch_faults: usize,
    webhooks_sent: usize,
    webhooks_delivered: usize,
}

/// Chances of each fault, in percent; the rest is a clean answer.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub too_many: u32,
    pub error_before: u32,
    pub error_after: u32,
    pub hang: u32,
    pub malformed: u32,
    /// Chance that a batch-get answers 500, hangs, or is malformed (each).
    pub batch_fault: u32,
    /// Chance that a call sends a post-call webhook at its end.
    pub webhook: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            too_many: 6,
            error_before: 4,
            error_after: 4,
            hang: 4,
            malformed: 3,
            batch_fault: 4,
            webhook: 40,
        }
    }
}

#[derive(Clone)]
pub struct ChaosRevRing {
    log: Arc<Mutex<Log>>,
    rng: Arc<Mutex<StdRng>>,
    faults: Faults,
    api_key: String,
    origin: Instant,
    webhook_url: Arc<Mutex<Option<String>>>,
    client: reqwest::Client,
}

/// A random draw, under the lock only for the draw itself.
fn draw<T>(rng: &Mutex<StdRng>, f: impl FnOnce(&mut StdRng) -> T) -> T {
    let mut g = rng.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

impl ChaosRevRing {
    pub async fn start(api_key: &str, seed: u64, faults: Faults) -> (Self, String) {
        let fake = ChaosRevRing {
            log: Arc::default(),
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            faults,
            api_key: api_key.to_string(),
            origin: Instant::now(),
            webhook_url: Arc::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        };
        let app = Router::new()
            .route("/v1/calls", post(place))
            .route("/v1/calls/batch-get", post(batch_get))
            .route("/v1/calls/{id}", get(get_call))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    /// Where post-call webhooks go: the daemon's URL including `?token=`.
    pub fn set_webhook_url(&self, url: String) {
        *self.webhook_url.lock().unwrap() = Some(url);
    }

    pub fn places(&self) -> Vec<PlaceRecord> {
        self.log.lock().unwrap().places.clone()
    }

    /// When each API request arrived, in order, by the fake's clock.
    pub fn requests(&self) -> Vec<Duration> {
        self.log.lock().unwrap().requests.clone()
    }

    /// Now, by the fake's clock (the clock of `PlaceRecord::at`).
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The most calls live at once (created, not yet ended, by the fake's
    /// own reckoning), and when that was first reached, by the fake's clock.
    pub fn peak_live_calls(&self) -> (usize, Duration) {
        let g = self.log.lock().unwrap();
        // (time, +1 for a start / -1 for an end); an end sorts before a
        // start at the same instant: the slot was free again.
        let mut edges: Vec<(Instant, i32)> = Vec::with_capacity(2 * g.calls.len());
        for c in g.calls.values() {
            edges.push((c.starts_at, 1));
            edges.push((c.ends_at, -1));
        }
        edges.sort();
        let (mut live, mut peak, mut at) = (0i64, 0i64, self.origin);
        for (t, d) in edges {
            live += i64::from(d);
            if live > peak {
                peak = live;
                at = t;
            }
        }
        (
            usize::try_from(peak).unwrap_or(0),
            at.saturating_duration_since(self.origin),
        )
    }

    fn arrived(&self) {
        let at = self.origin.elapsed();
        self.log.lock().unwrap().requests.push(at);
    }

    /// (batch-get requests, of which faulted, webhooks sent, webhooks answered 2xx)
    pub fn counters(&self) -> (usize, usize, usize, usize) {
        let g = self.log.lock().unwrap();
        (
            g.batch_gets,
            g.batch_faults,
            g.webhooks_sent,
            g.webhooks_delivered,
        )
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(self.api_key.as_str())
    }

    /// The Call object as RevRing would show it now.
    fn call_json(&self, id: &str, call: &Call) -> Value {
        let created = chrono::DateTime::<chrono::Utc>::from(call.created);
        let now = Instant::now();
        let over = now >= call.ends_at;
        let ended = chrono::DateTime::<chrono::Utc>::from(call.ended);
        let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
        let (status, answered, hangup) = if !over {
            ("ONGOING", false, Value::Null)
        } else {
            match call.end {
                End::Completed => ("COMPLETED", true, json!("USER_ENDED")),
                End::NoAnswer => ("COMPLETED", false, Value::Null),
                End::Voicemail => ("COMPLETED", true, json!("VOICEMAIL_DETECTED")),
                End::Failed => ("FAILED", false, Value::Null),
                End::Transferred => ("TRANSFERRED", true, Value::Null),
            }
        };
        json!({
            "id": id,
            "organizationId": "org_chaos",
            "direction": "OUTBOUND",
            "status": status,
            "fromNumber": call.body["fromNumber"],
            "toNumber": call.body["toNumber"],
            "agentId": call.body["agentId"],
            "variables": call.body["variables"],
            "initiatedAt": rfc(created),
            "createdAt": rfc(created),
            "updatedAt": rfc(if over { ended } else { created }),
            "startedAt": if answered { json!(rfc(created)) } else { Value::Null },
            "endedAt": if over { json!(rfc(ended)) } else { Value::Null },
            "durationSeconds": if answered { json!(1) } else { Value::Null },
            "hangupCause": hangup,
            "errorMessage": if over && call.end == End::Failed { json!("carrier error") } else { Value::Null },
            "summary": if over && answered { json!("spoke with the lead") } else { Value::Null },
            "transcript": [],
            "recordingUrl": Value::Null,
        })
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

async fn place(State(f): State<ChaosRevRing>, headers: HeaderMap, body: Bytes) -> Response {
    let at = f.origin.elapsed();
    f.arrived();
    if !f.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let to = body["toNumber"].as_str().unwrap_or_default().to_string();
    let attempt_id = body["variables"]["dialer_attempt_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if body["skipQueue"] != json!(true)
        || body["agentId"].as_str().is_none()
        || attempt_id.is_empty()
    {
        return error(StatusCode::BAD_REQUEST, "bad request shape");
    }
    let fl = f.faults;
    let (latency, fault, end, call_ms, hang_ms, webhook) = draw(&f.rng, |r| {
        let latency = r.random_range(0..=300u64);
        let roll = r.random_range(0..100u32);
        let mut edge = 0;
        let mut pick = |p: u32, fault: Fault| {
            edge += p;
            (roll < edge).then_some(fault)
        };
        let fault = pick(fl.too_many, Fault::TooMany)
            .or_else(|| pick(fl.error_before, Fault::ErrorBefore))
            .or_else(|| pick(fl.error_after, Fault::ErrorAfter))
            .or_else(|| pick(fl.hang, Fault::Hang))
            .or_else(|| pick(fl.malformed, Fault::Malformed))
            .unwrap_or(Fault::None);
        let end = match r.random_range(0..100u32) {
            0..35 => End::Completed,
            35..60 => End::NoAnswer,
            60..75 => End::Voicemail,
            75..90 => End::Failed,
            _ => End::Transferred,
        };
        // Half the hangs answer late, half never (within any test's life).
        let hang_ms = if r.random_bool(0.5) {
            r.random_range(1_500..4_000u64)
        } else {
            3_600_000
        };
        let webhook = r.random_range(0..100u32) < fl.webhook;
        (
            latency,
            fault,
            end,
            r.random_range(50..=600u64),
            hang_ms,
            webhook,
        )
    });
    let call_id = fault.accepted().then(|| {
        let mut g = f.log.lock().unwrap();
        let id = format!("call_{:06}", g.calls.len() + 1);
        g.calls.insert(
            id.clone(),
            Call {
                body: body.clone(),
                created: SystemTime::now(),
                ended: SystemTime::now() + Duration::from_millis(call_ms),
                starts_at: Instant::now(),
                ends_at: Instant::now() + Duration::from_millis(call_ms),
                end,
            },
        );
        id
    });
    f.log.lock().unwrap().places.push(PlaceRecord {
        at,
        attempt_id,
        to,
        fault,
        call_id: call_id.clone(),
        end: call_id.as_ref().map(|_| end),
    });
    if let (Some(id), true) = (&call_id, webhook) {
        let f2 = f.clone();
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(call_ms + 20)).await;
            let url = f2.webhook_url.lock().unwrap().clone();
            let payload = {
                let g = f2.log.lock().unwrap();
                g.calls.get(&id).map(|c| f2.call_json(&id, c))
            };
            let (Some(url), Some(payload)) = (url, payload) else {
                return;
            };
            // The daemon may be dead at this moment: a lost webhook is what
            // RevRing would do too.
            let ok = f2
                .client
                .post(url)
                .json(&payload)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let mut g = f2.log.lock().unwrap();
            g.webhooks_sent += 1;
            g.webhooks_delivered += usize::from(ok);
        });
    }
    tokio::time::sleep(Duration::from_millis(latency)).await;
    match (fault, call_id) {
        (Fault::TooMany, _) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(json!({"error": {"message": "Concurrency limit reached"}})),
        )
            .into_response(),
        (Fault::ErrorBefore, _) | (_, None) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        (Fault::ErrorAfter, Some(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        (Fault::Malformed, Some(id)) => (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            format!("{{\"data\": {{\"id\": \"{id}\", \"status\": \"QUE"),
        )
            .into_response(),
        (Fault::Hang, Some(id)) => {
            tokio::time::sleep(Duration::from_millis(hang_ms)).await;
            f.answer_call(&id, StatusCode::CREATED)
        }
        (Fault::None, Some(id)) => f.answer_call(&id, StatusCode::CREATED),
    }
}

impl ChaosRevRing {
    fn answer_call(&self, id: &str, status: StatusCode) -> Response {
        let g = self.log.lock().unwrap();
        match g.calls.get(id) {
            Some(c) => (status, Json(json!({ "data": self.call_json(id, c) }))).into_response(),
            None => error(StatusCode::NOT_FOUND, "Call not found"),
        }
    }
}

async fn batch_get(State(f): State<ChaosRevRing>, headers: HeaderMap, body: Bytes) -> Response {
    f.arrived();
    if !f.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let (latency, roll) = draw(&f.rng, |r| {
        (r.random_range(0..=300u64), r.random_range(0..100u32))
    });
    let b = f.faults.batch_fault;
    {
        let mut g = f.log.lock().unwrap();
        g.batch_gets += 1;
        g.batch_faults += usize::from(roll < 3 * b);
    }
    tokio::time::sleep(Duration::from_millis(latency)).await;
    if roll < b {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    if roll < 2 * b {
        tokio::time::sleep(Duration::from_secs(3)).await;
    } else if roll < 3 * b {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"data\": [{\"id\": ",
        )
            .into_response();
    }
    let ids: Vec<String> = body["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let g = f.log.lock().unwrap();
    let calls: Vec<Value> = ids
        .iter()
        .filter_map(|id| g.calls.get(id).map(|c| f.call_json(id, c)))
        .collect();
    Json(json!({ "data": calls })).into_response()
}

async fn get_call(
    State(f): State<ChaosRevRing>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    f.arrived();
    if !f.authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    f.answer_call(&id, StatusCode::OK)
}
