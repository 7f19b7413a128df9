//! A fake RevRing account served over real HTTP: it checks the request shape
//! RevRing documents, answers like RevRing, keeps calls, answers get and
//! batch-get, and sends post-call webhooks to the daemon. Behaviour per
//! number is chosen by the test through `Script`; an outage (500 to every
//! request) and a skewed provider clock are switched on the fake itself. It
//! keeps its own log, on its own clock (`Instant`), of what reached it and
//! when it told the daemon that a call had ended; each request's arrival is
//! also stamped with the fake's `clock` (the test's scaled clock when it has
//! one), and the fake counts the calls live on it and their high-water mark.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the fake does with a call to a number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    /// Accept; the call ends after `ms` with this final status.
    Answer { ms: u64, end: End },
    /// Refuse the first request with 429 Retry-After: 1, then behave as `Answer`.
    BusyAccountOnce { ms: u64, end: End },
    /// Accept the call but never answer the HTTP request in time (the daemon
    /// times out); the call still happens and its webhook is sent.
    LoseResponse { ms: u64, end: End },
    /// Refuse the number (422).
    RejectNumber,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum End {
    Completed,
    NoAnswer,
    Voicemail,
    Failed,
    Transferred,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub attempt_id: String,
    pub body: Value,
    pub api_key: Option<String>,
    /// The HTTP status the fake answered.
    pub answered: u16,
    /// When the request reached the fake.
    pub at: Instant,
    /// The same arrival on the fake's `clock` (before `skew`).
    pub clock_at: chrono::DateTime<chrono::Utc>,
    /// The call id the fake gave, when it accepted the call.
    pub call_id: Option<String>,
}

#[derive(Default)]
pub struct Inner {
    pub requests: Vec<Received>,
    pub calls: HashMap<String, Value>,
    pub refused_once: std::collections::HashSet<String>,
    pub webhooks_sent: usize,
    pub webhook_answers: Vec<u16>,
    /// Calls whose final status is set, and when.
    pub ended: HashMap<String, Instant>,
    /// When the daemon was first told (batch-get or get answer, or webhook
    /// sent) that a call had ended.
    pub told: HashMap<String, Instant>,
    /// `GET /v1/calls/{id}` requests (RevRing's single get, also the probe).
    pub gets: Vec<(String, Instant, u16)>,
    /// While true every request is answered 500 and no call is placed.
    pub outage: bool,
    /// Added to every time the fake writes into a call (negative: behind).
    pub skew: chrono::Duration,
    /// Calls accepted and not yet ended, by the fake's own bookkeeping.
    pub live: usize,
    /// The most calls that were live at once.
    pub live_peak: usize,
    /// By number: variables the agent "learned" on the call, merged into
    /// the final call's `variables` (as RevRing returns them).
    pub learned: HashMap<String, Value>,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeRevRing {
    pub inner: Arc<Mutex<Inner>>,
    pub script: Arc<dyn Fn(&str) -> Behaviour + Send + Sync>,
    pub api_key: String,
    /// Where to send webhooks: the daemon's URL including `?token=`.
    pub webhook_url: Arc<Mutex<Option<String>>>,
    pub client: reqwest::Client,
    /// The provider's own notion of the present (before `skew`).
    pub clock: dialer::clock::Clock,
}

impl FakeRevRing {
    pub async fn start(
        api_key: &str,
        script: impl Fn(&str) -> Behaviour + Send + Sync + 'static,
    ) -> (Self, String) {
        Self::start_with_clock(api_key, dialer::clock::Clock::system(), script).await
    }

    /// A fake whose call times come from `clock` (a test running the daemon
    /// on a scaled clock gives the fake the same one).
    pub async fn start_with_clock(
        api_key: &str,
        clock: dialer::clock::Clock,
        script: impl Fn(&str) -> Behaviour + Send + Sync + 'static,
    ) -> (Self, String) {
        let fake = FakeRevRing {
            inner: Arc::default(),
            script: Arc::new(script),
            api_key: api_key.to_string(),
            webhook_url: Arc::default(),
            client: reqwest::Client::new(),
            clock,
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

    /// What the agent records on calls to `to` (merged into `variables`).
    pub fn set_learned(&self, to: &str, vars: Value) {
        self.inner
            .lock()
            .unwrap()
            .learned
            .insert(to.to_string(), vars);
    }

    pub fn set_webhook_url(&self, url: String) {
        *self.webhook_url.lock().unwrap() = Some(url);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Accepted place requests to `to`, in order of arrival.
    pub fn accepted_to(&self, to: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.to == to && r.answered == 201)
            .collect()
    }

    pub fn set_outage(&self, on: bool) {
        self.inner.lock().unwrap().outage = on;
    }

    pub fn set_skew(&self, skew: chrono::Duration) {
        self.inner.lock().unwrap().skew = skew;
    }

    /// When the daemon was first told that call `id` had ended.
    pub fn told(&self, id: &str) -> Option<Instant> {
        self.inner.lock().unwrap().told.get(id).copied()
    }

    pub fn gets(&self) -> Vec<(String, Instant, u16)> {
        self.inner.lock().unwrap().gets.clone()
    }

    /// The most calls that were live on the fake at once (accepted, not yet ended).
    pub fn live_peak(&self) -> usize {
        self.inner.lock().unwrap().live_peak
    }

    /// The provider's present as it writes it into calls.
    fn now(&self) -> String {
        let skew = self.inner.lock().unwrap().skew;
        (self.clock.now() + skew).to_rfc3339()
    }
}

fn outage_answer() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": {"message": "Internal server error"}})),
    )
        .into_response()
}

fn call_json(
    now: &str,
    id: &str,
    body: &Value,
    status: &str,
    started: Option<&str>,
    hangup: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "organizationId": "org_1",
        "direction": "OUTBOUND",
        "status": status,
        "fromNumber": body["fromNumber"],
        "toNumber": body["toNumber"],
        "agentId": body["agentId"],
        "variables": body["variables"],
        "createdAt": now,
        "updatedAt": now,
        "startedAt": started,
        "endedAt": if status == "QUEUED" { Value::Null } else { json!(now) },
        "durationSeconds": if started.is_some() { json!(42) } else { Value::Null },
        "hangupCause": hangup,
        "summary": if started.is_some() { json!("Talked about renewal") } else { Value::Null },
        "transcript": if started.is_some() { json!([{"role": "agent", "content": "Hello"}]) } else { json!([]) },
        "recordingUrl": if started.is_some() { json!(format!("https://rec.example/{id}.mp3")) } else { Value::Null },
    })
}

fn to_number(body: &Value) -> String {
    body["toNumber"].as_str().unwrap_or_default().to_string()
}

fn final_call(now: &str, id: &str, body: &Value, end: End) -> Value {
    match end {
        End::Completed => call_json(now, id, body, "COMPLETED", Some(now), Some("USER_ENDED")),
        End::NoAnswer => call_json(now, id, body, "COMPLETED", None, None),
        End::Voicemail => call_json(
            now,
            id,
            body,
            "COMPLETED",
            Some(now),
            Some("VOICEMAIL_DETECTED"),
        ),
        End::Failed => call_json(now, id, body, "FAILED", None, None),
        End::Transferred => call_json(now, id, body, "TRANSFERRED", Some(now), None),
    }
}

async fn place(
    State(f): State<FakeRevRing>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let to = body["toNumber"].as_str().unwrap_or_default().to_string();
    let attempt_id = body["variables"]["dialer_attempt_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let at = Instant::now();
    let clock_at = f.clock.now();
    let record_call = |answered: u16, call_id: Option<String>| {
        f.inner.lock().unwrap().requests.push(Received {
            to: to.clone(),
            attempt_id: attempt_id.clone(),
            body: body.clone(),
            api_key: api_key.clone(),
            answered,
            at,
            clock_at,
            call_id,
        })
    };
    let record = |answered: u16| record_call(answered, None);
    if f.inner.lock().unwrap().outage {
        record(500);
        return outage_answer();
    }
    if api_key.as_deref() != Some(f.api_key.as_str()) {
        record(401);
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Invalid API key"}})),
        )
            .into_response();
    }
    if body["skipQueue"] != json!(true)
        || body["agentId"].as_str().is_none()
        || attempt_id.is_empty()
    {
        record(400);
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "bad request shape"}})),
        )
            .into_response();
    }
    let behaviour = (f.script)(&to);
    let (ms, end, lose) = match behaviour {
        Behaviour::RejectNumber => {
            record(422);
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": {"code": "invalid_phone_number", "message": "toNumber is not a valid phone number", "param": "toNumber"}})),
            )
                .into_response();
        }
        Behaviour::BusyAccountOnce { ms, end } => {
            let first = f.inner.lock().unwrap().refused_once.insert(to.clone());
            if first {
                record(429);
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    Json(json!({"error": {"message": "Concurrency limit reached"}})),
                )
                    .into_response();
            }
            (ms, end, false)
        }
        Behaviour::Answer { ms, end } => (ms, end, false),
        Behaviour::LoseResponse { ms, end } => (ms, end, true),
    };
    let id = {
        let mut g = f.inner.lock().unwrap();
        g.next_id += 1;
        g.live += 1;
        g.live_peak = g.live_peak.max(g.live);
        let id = format!("call_{:05}", g.next_id);
        id
    };
    let queued = call_json(&f.now(), &id, &body, "QUEUED", None, None);
    f.inner.lock().unwrap().calls.insert(id.clone(), queued);
    record_call(201, Some(id.clone()));
    let f2 = f.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let mut fin = final_call(&f2.now(), &id2, &body, end);
        let learned = f2
            .inner
            .lock()
            .unwrap()
            .learned
            .get(&to_number(&body))
            .cloned();
        if let (Some(Value::Object(l)), Some(vars)) = (learned, fin["variables"].as_object_mut()) {
            vars.extend(l);
        }
        {
            let mut g = f2.inner.lock().unwrap();
            g.calls.insert(id2.clone(), fin.clone());
            g.ended.insert(id2.clone(), Instant::now());
            g.live -= 1;
        }
        let url = f2.webhook_url.lock().unwrap().clone();
        if let Some(url) = url {
            f2.inner
                .lock()
                .unwrap()
                .told
                .entry(id2.clone())
                .or_insert_with(Instant::now);
            let answer = f2
                .client
                .post(url)
                .json(&fin)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            let mut g = f2.inner.lock().unwrap();
            g.webhooks_sent += 1;
            g.webhook_answers.push(answer);
        }
    });
    if lose {
        // Longer than the daemon's request timeout.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let call = f
        .inner
        .lock()
        .unwrap()
        .calls
        .get(&id)
        .cloned()
        .unwrap_or(Value::Null);
    (StatusCode::CREATED, Json(json!({ "data": call }))).into_response()
}

async fn batch_get(
    State(f): State<FakeRevRing>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(f.api_key.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Invalid API key"}})),
        )
            .into_response();
    }
    if f.inner.lock().unwrap().outage {
        return outage_answer();
    }
    let ids: Vec<String> = body["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut g = f.inner.lock().unwrap();
    let calls: Vec<Value> = ids
        .iter()
        .filter_map(|id| g.calls.get(id).cloned())
        .collect();
    let now = Instant::now();
    for id in &ids {
        if g.ended.contains_key(id) {
            g.told.entry(id.clone()).or_insert(now);
        }
    }
    Json(json!({ "data": calls })).into_response()
}

async fn get_call(
    State(f): State<FakeRevRing>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(f.api_key.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Invalid API key"}})),
        )
            .into_response();
    }
    let mut g = f.inner.lock().unwrap();
    let now = Instant::now();
    if g.outage {
        g.gets.push((id, now, 500));
        drop(g);
        return outage_answer();
    }
    let Some(call) = g.calls.get(&id).cloned() else {
        g.gets.push((id, now, 404));
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "Call not found"}})),
        )
            .into_response();
    };
    if g.ended.contains_key(&id) {
        g.told.entry(id.clone()).or_insert(now);
    }
    g.gets.push((id, now, 200));
    Json(json!({ "data": call })).into_response()
}
