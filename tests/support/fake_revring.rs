//! A fake RevRing account served over real HTTP: it checks the request shape
//! RevRing documents, answers like RevRing, keeps calls, answers batch-get,
//! and sends post-call webhooks to the daemon. Behaviour per number is chosen
//! by the test through `Script`.
#![allow(dead_code)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

#[derive(Default)]
pub struct Inner {
    pub requests: Vec<Received>,
    pub calls: HashMap<String, Value>,
    pub refused_once: std::collections::HashSet<String>,
    pub webhooks_sent: usize,
    pub webhook_answers: Vec<u16>,
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
}

impl FakeRevRing {
    pub async fn start(
        api_key: &str,
        script: impl Fn(&str) -> Behaviour + Send + Sync + 'static,
    ) -> (Self, String) {
        let fake = FakeRevRing {
            inner: Arc::default(),
            script: Arc::new(script),
            api_key: api_key.to_string(),
            webhook_url: Arc::default(),
            client: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v1/calls", post(place))
            .route("/v1/calls/batch-get", post(batch_get))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    pub fn set_webhook_url(&self, url: String) {
        *self.webhook_url.lock().unwrap() = Some(url);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.inner.lock().unwrap().requests.clone()
    }
}

fn call_json(
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
        "createdAt": chrono::Utc::now().to_rfc3339(),
        "updatedAt": chrono::Utc::now().to_rfc3339(),
        "startedAt": started,
        "endedAt": if status == "QUEUED" { Value::Null } else { json!(chrono::Utc::now().to_rfc3339()) },
        "durationSeconds": if started.is_some() { json!(42) } else { Value::Null },
        "hangupCause": hangup,
        "summary": if started.is_some() { json!("Talked about renewal") } else { Value::Null },
        "transcript": if started.is_some() { json!([{"role": "agent", "content": "Hello"}]) } else { json!([]) },
        "recordingUrl": if started.is_some() { json!(format!("https://rec.example/{id}.mp3")) } else { Value::Null },
    })
}

fn final_call(id: &str, body: &Value, end: End) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    match end {
        End::Completed => call_json(id, body, "COMPLETED", Some(&now), Some("USER_ENDED")),
        End::NoAnswer => call_json(id, body, "COMPLETED", None, None),
        End::Voicemail => call_json(
            id,
            body,
            "COMPLETED",
            Some(&now),
            Some("VOICEMAIL_DETECTED"),
        ),
        End::Failed => call_json(id, body, "FAILED", None, None),
        End::Transferred => call_json(id, body, "TRANSFERRED", Some(&now), None),
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
    let record = |answered: u16| {
        f.inner.lock().unwrap().requests.push(Received {
            to: to.clone(),
            attempt_id: attempt_id.clone(),
            body: body.clone(),
            api_key: api_key.clone(),
            answered,
        })
    };
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
        let id = format!("call_{:05}", g.next_id);
        g.calls
            .insert(id.clone(), call_json(&id, &body, "QUEUED", None, None));
        id
    };
    record(201);
    let fin = final_call(&id, &body, end);
    let f2 = f.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        f2.inner
            .lock()
            .unwrap()
            .calls
            .insert(id2.clone(), fin.clone());
        let url = f2.webhook_url.lock().unwrap().clone();
        if let Some(url) = url {
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
    let ids: Vec<String> = body["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let g = f.inner.lock().unwrap();
    let calls: Vec<Value> = ids
        .iter()
        .filter_map(|id| g.calls.get(id).cloned())
        .collect();
    Json(json!({ "data": calls })).into_response()
}
