//! A fake VoiceDock account served over real HTTP: it places calls
//! (`POST /api/v1/calls/outbound`), answers `GET /api/v1/calls/{id}` and the
//! list `GET /api/v1/calls`, and keeps its own log of every request that
//! reached it and when, read on its clock (the test gives it the scaled clock
//! the daemon runs on). It sends no webhooks: the daemon learns every status
//! by asking. Every `lose_every`-th accepted call is answered 500, so the
//! daemon does not learn its id and has to find it in the list.
#![allow(dead_code)]

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /calls/outbound`.
    Place,
    /// `GET /calls/{id}`.
    Get,
    /// `GET /calls` (a list page, or the probe).
    List,
}

/// One request as it reached the fake.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub kind: Kind,
    /// On the fake's clock.
    pub at: DateTime<Utc>,
    pub status: u16,
}

struct Call {
    id: String,
    destination: String,
    attempt_id: Option<String>,
    created: DateTime<Utc>,
    ends: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    log: Vec<Arrival>,
    calls: Vec<Call>,
    accepted: usize,
}

#[derive(Clone)]
pub struct FakeVoiceDock {
    inner: Arc<Mutex<Inner>>,
    key: String,
    clock: Clock,
    /// How long each call lasts, on the fake's clock.
    call_length: Duration,
    /// Every n-th accepted call is answered 500 (0: never).
    lose_every: usize,
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
            key: key.to_string(),
            clock,
            call_length,
            lose_every,
        };
        let app = Router::new()
            .route("/api/v1/calls/outbound", post(place))
            .route("/api/v1/calls", get(list))
            .route("/api/v1/calls/{id}", get(get_call))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    pub fn log(&self) -> Vec<Arrival> {
        self.inner.lock().unwrap().log.clone()
    }

    fn arrived(&self, kind: Kind, status: u16) {
        let at = self.clock.now();
        self.inner
            .lock()
            .unwrap()
            .log
            .push(Arrival { kind, at, status });
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h == format!("Bearer {}", self.key))
    }
}

fn record(c: &Call, now: DateTime<Utc>) -> Value {
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut v = json!({
        "id": c.id,
        "destination": c.destination,
        "created_at": rfc(c.created),
        "started_at": rfc(c.created),
        "metadata": {"dialer_attempt_id": c.attempt_id},
    });
    let o = v.as_object_mut().unwrap();
    if now >= c.ends {
        o.insert("status".into(), json!("ended"));
        o.insert("end_reason".into(), json!("user_hangup"));
        o.insert("ended_at".into(), json!(rfc(c.ends)));
        o.insert(
            "duration_seconds".into(),
            json!((c.ends - c.created).num_seconds()),
        );
    } else {
        o.insert("status".into(), json!("in-progress"));
    }
    v
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
    if !f.authorized(&headers) {
        f.arrived(Kind::Place, 401);
        return unauthorized();
    }
    let now = f.clock.now();
    let (id, lost) = {
        let mut g = f.inner.lock().unwrap();
        g.accepted += 1;
        let n = g.accepted;
        let id = format!("vd-call-{n}");
        g.calls.push(Call {
            id: id.clone(),
            destination: body["destination"].as_str().unwrap_or_default().into(),
            attempt_id: body["metadata"]["dialer_attempt_id"]
                .as_str()
                .map(String::from),
            created: now,
            ends: now + chrono::Duration::from_std(f.call_length).unwrap(),
        });
        (id, f.lose_every > 0 && n % f.lose_every == 0)
    };
    if lost {
        f.arrived(Kind::Place, 500);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "Internal error"})),
        )
            .into_response();
    }
    f.arrived(Kind::Place, 201);
    (
        StatusCode::CREATED,
        Json(json!({"call_id": id, "status": "queued"})),
    )
        .into_response()
}

async fn get_call(
    State(f): State<FakeVoiceDock>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !f.authorized(&headers) {
        f.arrived(Kind::Get, 401);
        return unauthorized();
    }
    let now = f.clock.now();
    let found = {
        let g = f.inner.lock().unwrap();
        g.calls.iter().find(|c| c.id == id).map(|c| record(c, now))
    };
    match found {
        Some(v) => {
            f.arrived(Kind::Get, 200);
            Json(v).into_response()
        }
        None => {
            f.arrived(Kind::Get, 404);
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
        f.arrived(Kind::List, 401);
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
    f.arrived(Kind::List, 200);
    Json(json!({
        "calls": page,
        "pagination": {"total": total, "limit": limit, "offset": offset}
    }))
    .into_response()
}
