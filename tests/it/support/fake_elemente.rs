//! A fake Elemente AI account served over real HTTP, in the shapes Elemente
//! documents: `POST /api/v1/calls` (HTTP Basic, the account's user and
//! password) checks the documented body and answers the interaction `{id,
//! status, agentPhone, customerPhone, agentId, customerId, skillId,
//! customerName, transcription, recordingUrl}`; `GET /api/v1/calls` lists
//! the calls created within its `dateRange[from]`..`dateRange[to]` (a bare
//! array of call records: Elemente documents the records, not an envelope),
//! each live until the call's length has passed and then in its final
//! status, with the `customerOverride.customFields` it was placed with and,
//! on top, the fields the agent set on the call. How a call to a number ends
//! is set per number (`set_end`). Elemente sends no webhooks and documents
//! no end reason; a number may still be given one, which the record then
//! carries as `endReason`. The fake keeps its own log of every request that
//! reached it and when, on its clock.
#![allow(dead_code)]

use super::wire::{self, Arrival, Kind, Log};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The agent's own number, as the records show it.
const AGENT_PHONE: &str = "+4930123456789";

/// How a call ends and what the agent recorded on it.
#[derive(Debug, Clone)]
pub struct CallEnd {
    /// The final status (`completed`, `no-answer`, `voicemail`, ...).
    pub status: &'static str,
    /// Custom fields the agent set on the call.
    pub fields: Value,
    /// Carried as `endReason` when set.
    pub end_reason: Option<&'static str>,
}

impl Default for CallEnd {
    fn default() -> Self {
        CallEnd {
            status: "completed",
            fields: json!({}),
            end_reason: None,
        }
    }
}

impl CallEnd {
    /// Completed, with these fields set by the agent.
    pub fn recorded(fields: Value) -> Self {
        CallEnd {
            fields,
            ..CallEnd::default()
        }
    }
}

struct Call {
    id: String,
    /// The place request's body, echoed in the record.
    body: Value,
    created: DateTime<Utc>,
    ends: DateTime<Utc>,
    end: CallEnd,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    ends: HashMap<String, CallEnd>,
}

#[derive(Clone)]
pub struct FakeElemente {
    inner: Arc<Mutex<Inner>>,
    log: Log,
    /// The `Authorization` value every request must carry.
    basic: String,
    clock: Clock,
    /// How long each call lasts, on the fake's clock.
    call_length: Duration,
}

impl FakeElemente {
    /// Starts the fake for `user` / `password`; returns it and its base URL.
    pub async fn start(
        user: &str,
        password: &str,
        clock: Clock,
        call_length: Duration,
    ) -> (Self, String) {
        let basic = reqwest::Client::new()
            .get("http://127.0.0.1/")
            .basic_auth(user, Some(password))
            .build()
            .unwrap()
            .headers()["authorization"]
            .to_str()
            .unwrap()
            .to_string();
        let fake = FakeElemente {
            inner: Arc::default(),
            log: Log::new(clock.clone()),
            basic,
            clock,
            call_length,
        };
        let app = Router::new()
            .route("/api/v1/calls", get(list).post(place))
            .with_state(fake.clone());
        let url = wire::serve(app).await;
        (fake, url)
    }

    pub fn log(&self) -> Vec<Arrival> {
        self.log.entries()
    }

    /// How calls to `to` end from now on.
    pub fn set_end(&self, to: &str, end: CallEnd) {
        self.inner.lock().unwrap().ends.insert(to.to_string(), end);
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h == self.basic)
    }
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// The interaction as the place answer and the list show it.
fn interaction(c: &Call, now: DateTime<Utc>) -> Value {
    let ended = now >= c.ends;
    let answered = ended && c.end.status == "completed";
    let mut v = json!({
        "id": c.id,
        "status": if ended { c.end.status } else { "in-progress" },
        "agentPhone": AGENT_PHONE,
        "customerPhone": c.body["customerPhone"],
        "agentId": c.body["agentId"],
        "customerId": format!("cust-{}", c.id),
        "skillId": c.body["skillId"],
        "customerName": c.body["customerName"],
        "transcription": if answered { "Hallo, hier ist das Service-Team." } else { "" },
        "recordingUrl": if answered { format!("https://recordings.example/{}.wav", c.id) } else { String::new() },
    });
    let o = v.as_object_mut().unwrap();
    if ended {
        let secs = if answered {
            (c.ends - c.created).num_seconds().max(1)
        } else {
            0
        };
        o.insert("duration".into(), json!(secs.to_string()));
        if let Some(r) = c.end.end_reason {
            o.insert("endReason".into(), json!(r));
        }
    }
    let mut fields: Map<String, Value> = c.body["customerOverride"]["customFields"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let (true, Some(learned)) = (ended, c.end.fields.as_object()) {
        fields.extend(learned.clone());
    }
    o.insert(
        "customerOverride".into(),
        json!({ "customFields": Value::Object(fields) }),
    );
    v
}

/// The documented place body: every required field, a `call` channel, and
/// the attempt id among the custom fields.
fn well_formed(body: &Value) -> bool {
    let text = |k: &str| body[k].as_str().is_some_and(|s| !s.is_empty());
    ["agentId", "skillId", "customerName", "customerPhone"]
        .iter()
        .all(|k| text(k))
        && body["channel"] == "call"
        && body["customerOverride"]["customFields"]["dialer_attempt_id"]
            .as_str()
            .is_some()
}

async fn place(
    State(f): State<FakeElemente>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let to = body["customerPhone"].as_str().map(String::from);
    if !f.authorized(&headers) {
        f.log.arrived(Kind::Place, 401, to);
        return answer(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if !well_formed(&body) {
        f.log.arrived(Kind::Place, 400, to);
        return answer(StatusCode::BAD_REQUEST, "Invalid interaction");
    }
    let now = f.clock.now();
    let v = {
        let mut g = f.inner.lock().unwrap();
        let id = format!("el-{:05}", g.calls.len() + 1);
        let end = to
            .as_ref()
            .and_then(|t| g.ends.get(t))
            .cloned()
            .unwrap_or_default();
        let call = Call {
            id,
            body,
            created: now,
            ends: now + chrono::Duration::from_std(f.call_length).unwrap(),
            end,
        };
        let v = interaction(&call, now);
        g.calls.push(call);
        v
    };
    f.log.arrived(Kind::Place, 200, to);
    Json(v).into_response()
}

/// `dateRange[from]` / `dateRange[to]`: RFC 3339, or a bare date (the
/// documented example) for the whole day.
fn range_end(q: &HashMap<String, String>, k: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    let s = q.get(k)?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let t = if end_of_day {
        d.and_hms_opt(23, 59, 59)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    t.map(|t| t.and_utc())
}

async fn list(
    State(f): State<FakeElemente>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !f.authorized(&headers) {
        f.log.arrived(Kind::List, 401, None);
        return answer(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let from = range_end(&q, "dateRange[from]", false);
    let to = range_end(&q, "dateRange[to]", true);
    let channel_ok = q.get("channel").is_none_or(|c| c == "call");
    let now = f.clock.now();
    let calls: Vec<Value> = {
        let g = f.inner.lock().unwrap();
        g.calls
            .iter()
            .filter(|c| {
                channel_ok
                    && from.is_none_or(|t| c.created >= t)
                    && to.is_none_or(|t| c.created <= t)
            })
            .map(|c| interaction(c, now))
            .collect()
    };
    f.log.arrived(Kind::List, 200, None);
    Json(Value::Array(calls)).into_response()
}
