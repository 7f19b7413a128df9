//! The Elemente AI adapter (`kind = "elemente"`): places calls with
//! `POST /api/v1/calls` (HTTP Basic: configured `username`, api key as the
//! password), polls by listing `GET /api/v1/calls` over a `dateRange` around
//! the calls' request times (Elemente documents no get-by-id and no
//! webhooks), and owns the mapping of Elemente's statuses to outcomes.

use super::http::{self, Candidate, Vocabulary};
use super::*;
use crate::config::Secret;
use crate::domain::Outcome;
use serde_json::json;
use std::collections::HashSet;

const VOCAB: Vocabulary = Vocabulary {
    number_fields: &["customerPhone", "customer_phone"],
    agent_words: &["agent", "skill"],
};

/// Elemente as configuration sees it: HTTP Basic with a `username`, a
/// `skillId` on every call, no caller-ID field and no webhooks.
pub const FACTS: Facts = Facts {
    kind: ProviderKind::Elemente,
    name: "elemente",
    title: "Elemente",
    default_base_url: Some("https://api.elemente.ai"),
    default_requests_per_minute: 600,
    needs_api_key: true,
    needs_username: true,
    needs_skill_id: true,
    default_agent_id: None,
    caller_id: CallerId::Unused,
    webhooks: Webhooks::NotSent,
    simulation: false,
    build: |cfg, clock, budget| Ok(Arc::new(Elemente::new(cfg, clock, budget)?)),
};

pub struct Elemente {
    name: String,
    base: String,
    username: String,
    key: Secret,
    /// The encoded `Authorization` value, kept only to scrub it from
    /// messages should a provider ever echo it back.
    basic: Secret,
    client: reqwest::Client,
    clock: Clock,
    /// Every request but a place request takes a cell of it.
    budget: Budget,
}

impl Elemente {
    pub fn new(cfg: &ProviderConfig, clock: Clock, budget: Budget) -> anyhow::Result<Self> {
        let username = match &cfg.username {
            Some(u) if !u.is_empty() => u.clone(),
            _ => anyhow::bail!(
                "provider `{}`: Elemente needs `username` (the HTTP Basic user)",
                cfg.name
            ),
        };
        let key = http::api_key(cfg)?;
        let client = http::client(cfg)?;
        let basic = client
            .get(http::base_url(cfg))
            .basic_auth(&username, Some(&key))
            .build()
            .ok()
            .and_then(|r| {
                r.headers()
                    .get(reqwest::header::AUTHORIZATION)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.strip_prefix("Basic "))
                    .map(String::from)
            })
            .unwrap_or_default();
        Ok(Elemente {
            name: cfg.name.clone(),
            base: http::base_url(cfg),
            username,
            key: Secret::new(key),
            basic: Secret::new(basic),
            client,
            clock,
            budget,
        })
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.key.expose(), self.basic.expose()]
    }
}

/// The request body for one call. Elemente has no caller-ID field; the
/// variables and the attempt id travel in `customerOverride.customFields`.
pub fn place_body(req: &PlaceRequest) -> Value {
    let mut fields = req.variables.clone();
    fields.insert(
        "dialer_attempt_id".into(),
        Value::String(req.attempt_id.clone()),
    );
    json!({
        "agentId": req.agent_id,
        "channel": "call",
        "skillId": req.skill_id,
        "customerName": req.customer_name,
        "customerPhone": req.to,
        "customerOverride": { "customFields": fields },
    })
}

/// Elemente status → outcome; `None` while live. `expired` (the call was
/// never connected in time) counts as no_answer.
pub fn outcome(status: &str) -> Option<Outcome> {
    match status.to_lowercase().as_str() {
        "queued" | "pending" | "ringing" | "in-progress" | "in_progress" | "answer" => None,
        "completed" => Some(Outcome::Completed),
        "voicemail" => Some(Outcome::Voicemail),
        "busy" => Some(Outcome::Busy),
        "no-answer" | "no_answer" | "expired" => Some(Outcome::NoAnswer),
        "failed" => Some(Outcome::Failed),
        "canceled" | "cancelled" => Some(Outcome::Canceled),
        _ => {
            http::warn_unknown_status("elemente", status);
            None
        }
    }
}

/// The echoed `dialer_attempt_id`, if the call record carries the custom
/// fields back.
fn attempt_id_in(call: &Value) -> Option<String> {
    call.get("customerOverride")
        .and_then(|o| o.get("customFields"))
        .or_else(|| call.get("customFields"))
        .and_then(|f| f.get("dialer_attempt_id"))
        .and_then(http::text)
}

/// An Elemente call record → `CallStatus`. `None` when it has no status.
pub fn call_status(call: &Value) -> Option<CallStatus> {
    let status = call.get("status").and_then(http::text)?;
    let ended_at = http::time_field(call, &["endedAt", "ended_at"]);
    let answered_at = http::time_field(call, &["startedAt", "answeredAt", "started_at"]);
    let transcript = call
        .get("transcription")
        .or_else(|| call.get("transcript"))
        .filter(|t| match t {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        })
        .cloned();
    Some(CallStatus {
        provider_call_id: http::field(call, &["id"]),
        attempt_id: attempt_id_in(call),
        outcome: outcome(&status),
        provider_status: status,
        status_at: http::time_field(call, &["updatedAt", "updated_at"])
            .or(ended_at)
            .or(answered_at)
            .or_else(|| http::time_field(call, &["createdAt", "created_at"])),
        answered_at,
        ended_at,
        duration_seconds: ["durationSeconds", "duration", "duration_seconds"]
            .iter()
            .find_map(|k| call.get(*k).and_then(http::int)),
        hangup_cause: http::field(call, &["hangupCause", "endReason"]),
        error: http::field(call, &["error", "errorMessage"]),
        summary: http::field(call, &["summary"]),
        transcript,
        recording_url: http::field(call, &["recordingUrl"]),
        fields: call
            .get("customerOverride")
            .and_then(|o| o.get("customFields"))
            .or_else(|| call.get("customFields"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

/// The calls in a list answer: a bare array or one under `data`, `calls`,
/// `items` or `results`.
fn calls_in(v: &Value) -> Vec<Value> {
    let list = ["data", "calls", "items", "results"]
        .iter()
        .find_map(|k| v.get(*k).filter(|l| l.is_array()))
        .unwrap_or(v);
    list.as_array().cloned().unwrap_or_default()
}

#[async_trait]
impl Provider for Elemente {
    fn name(&self) -> &str {
        &self.name
    }

    async fn place(&self, req: &PlaceRequest) -> PlaceResult {
        if req.skill_id.is_none() {
            // Every call of the campaign would be refused the same way: the
            // configuration is at fault, not the lead.
            return PlaceResult::Unusable {
                message: "Elemente needs the campaign's skill_id".into(),
            };
        }
        let secrets = self.secrets();
        let rb = self
            .client
            .post(format!("{}/api/v1/calls", self.base))
            .basic_auth(&self.username, Some(self.key.expose()))
            .json(&place_body(req));
        let v = match http::send_place(rb, &req.permit, &self.clock, &VOCAB, &secrets).await {
            Ok(v) => v,
            Err(result) => return result,
        };
        let call = v.get("data").filter(|d| d.is_object()).unwrap_or(&v);
        match http::field(call, &["id"]) {
            Some(id) => PlaceResult::Placed {
                provider_call_id: id,
                provider_status: http::field(call, &["status"]).unwrap_or_default(),
            },
            None => http::without_call_id(&v, &secrets),
        }
    }

    /// One list request over the targets' request times; calls matched by id,
    /// and calls whose id was lost by the echoed attempt id or by number near
    /// the request time.
    async fn poll(&self, targets: &[PollTarget]) -> Result<Vec<Polled>, ProviderError> {
        let all: Vec<&PollTarget> = targets.iter().collect();
        let Some((from, to)) = http::list_window(&all) else {
            return Ok(Vec::new());
        };
        let secrets = self.secrets();
        let rb = self
            .client
            .get(format!("{}/api/v1/calls", self.base))
            .basic_auth(&self.username, Some(self.key.expose()))
            .query(&[
                ("dateRange[from]", crate::domain::rfc3339(from)),
                ("dateRange[to]", crate::domain::rfc3339(to)),
                ("channel", "call".to_string()),
            ]);
        let Some(v) = http::send_poll(rb, &self.budget, &self.clock, &secrets).await? else {
            return Ok(Vec::new());
        };
        let calls = calls_in(&v);
        let mut out = Vec::new();
        let mut known = HashSet::new();
        for t in targets {
            let Some(id) = &t.provider_call_id else {
                continue;
            };
            known.insert(id.clone());
            let found = calls
                .iter()
                .find(|c| http::field(c, &["id"]).as_deref() == Some(id.as_str()));
            if let Some(status) = found.and_then(call_status) {
                out.push(Polled {
                    attempt_id: t.attempt_id.clone(),
                    status,
                });
            }
        }
        let lost: Vec<&PollTarget> = targets
            .iter()
            .filter(|t| t.provider_call_id.is_none())
            .collect();
        if lost.is_empty() {
            return Ok(out);
        }
        let cands: Vec<Candidate> = calls
            .iter()
            .map(|c| Candidate {
                id: http::field(c, &["id"]),
                attempt_id: attempt_id_in(c),
                number: http::field(c, &["customerPhone"]),
                created_at: http::time_field(c, &["createdAt", "created_at"]),
            })
            .collect();
        for (ti, ci) in http::match_lost(&lost, &cands, &known) {
            if let Some(status) = call_status(&calls[ci]) {
                out.push(Polled {
                    attempt_id: lost[ti].attempt_id.clone(),
                    status,
                });
            }
        }
        Ok(out)
    }

    /// Lists the last minute's calls: proves the credentials work without
    /// placing anything.
    async fn probe(&self) -> Result<(), ProviderError> {
        let now = self.clock.now();
        let rb = self
            .client
            .get(format!("{}/api/v1/calls", self.base))
            .basic_auth(&self.username, Some(self.key.expose()))
            .query(&[
                (
                    "dateRange[from]",
                    crate::domain::rfc3339(now - chrono::Duration::minutes(1)),
                ),
                ("dateRange[to]", crate::domain::rfc3339(now)),
                ("channel", "call".to_string()),
            ]);
        http::send_poll(rb, &self.budget, &self.clock, &self.secrets())
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_table() {
        use Outcome::*;
        let cases: &[(&str, Option<Outcome>)] = &[
            ("queued", None),
            ("pending", None),
            ("ringing", None),
            ("in-progress", None),
            ("answer", None),
            ("completed", Some(Completed)),
            ("voicemail", Some(Voicemail)),
            ("busy", Some(Busy)),
            ("no-answer", Some(NoAnswer)),
            ("failed", Some(Failed)),
            ("canceled", Some(Canceled)),
            ("expired", Some(NoAnswer)),
            ("teleported", None),
        ];
        for (status, want) in cases {
            assert_eq!(outcome(status), *want, "{status}");
        }
    }

    #[test]
    fn call_record_fields() {
        let c = json!({"id": "e1", "status": "completed", "customerPhone": "+15550100",
            "transcription": "Hello", "recordingUrl": "https://r/e1",
            "updatedAt": "2026-11-21T10:00:00Z",
            "customerOverride": {"customFields": {"dialer_attempt_id": "a1"}}});
        let s = call_status(&c).unwrap();
        assert_eq!(s.attempt_id.as_deref(), Some("a1"));
        assert_eq!(s.outcome, Some(Outcome::Completed));
        assert_eq!(s.transcript, Some(json!("Hello")));
        assert_eq!(s.recording_url.as_deref(), Some("https://r/e1"));
        assert!(s.status_at.is_some());
    }

    #[test]
    fn refuses_webhooks() {
        let cfg = ProviderConfig {
            name: "el".into(),
            kind: ProviderKind::Elemente,
            base_url: "http://127.0.0.1:9".into(),
            api_key: Some(Secret::new("pw-123")),
            webhook_secret: Some(Secret::new("whatever")),
            username: Some("acme".into()),
            requests_per_minute: 60,
            max_concurrent_calls: 5,
            request_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_secs(5),
            max_call_duration: Duration::from_secs(1800),
            pause_after_unknown: 5,
            sim: None,
        };
        let p = Elemente::new(&cfg, Clock::system(), Budget::unmetered()).unwrap();
        let r = p.webhook(&WebhookRequest {
            headers: &axum::http::HeaderMap::new(),
            query: &std::collections::HashMap::new(),
            body: b"{}",
            now: Utc::now(),
        });
        assert!(matches!(r, Err(WebhookError::Unauthorized(_))));
        let no_user = ProviderConfig {
            username: None,
            ..cfg
        };
        assert!(Elemente::new(&no_user, Clock::system(), Budget::unmetered()).is_err());
    }
}
