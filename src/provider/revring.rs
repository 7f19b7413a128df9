//! The RevRing adapter (`kind = "revring"`): places calls with
//! `POST /v1/calls`, polls with `POST /v1/calls/batch-get`, accepts the
//! post-call webhook (a flat Call object) when it carries the provider's
//! webhook secret, and owns the mapping of RevRing's statuses and hangup
//! causes to outcomes.

use super::http::{self, Vocabulary};
use super::*;
use crate::domain::Outcome;
use serde_json::json;

/// Most ids `batch-get` accepts in one request.
const BATCH: usize = 100;

/// A call id no call has: what `probe` asks for.
const PROBE_ID: &str = "00000000-0000-0000-0000-000000000000";

const VOCAB: Vocabulary = Vocabulary {
    number_fields: &["toNumber", "to_number"],
    agent_words: &["agent"],
};

/// RevRing as configuration sees it: numbers are E.164 (docs.revring.ai),
/// the post-call webhook is unsigned so it must carry the webhook secret.
pub const FACTS: Facts = Facts {
    kind: ProviderKind::RevRing,
    name: "revring",
    title: "RevRing",
    default_base_url: Some("https://api.revring.ai"),
    default_requests_per_minute: 600,
    needs_api_key: true,
    needs_username: false,
    needs_skill_id: false,
    default_agent_id: None,
    caller_id: CallerId::E164,
    webhooks: Webhooks::SecretRequired,
    simulation: false,
    build: |cfg, clock, budget| Ok(Arc::new(RevRing::new(cfg, clock, budget)?)),
};

pub struct RevRing(http::Account);

/// The account's fields read as the adapter's own.
impl std::ops::Deref for RevRing {
    type Target = http::Account;
    fn deref(&self) -> &http::Account {
        &self.0
    }
}

impl RevRing {
    pub fn new(cfg: &ProviderConfig, clock: Clock, budget: Budget) -> anyhow::Result<Self> {
        Ok(RevRing(http::Account::new(cfg, clock, budget)?))
    }
}

/// The request body for one call. `skipQueue: true` makes RevRing answer 429
/// at once when the account is full instead of queueing, so pacing stays
/// with the daemon.
pub fn place_body(req: &PlaceRequest) -> Value {
    let mut variables = req.variables.clone();
    variables.insert(
        "dialer_attempt_id".into(),
        Value::String(req.attempt_id.clone()),
    );
    let mut body = json!({
        "agentId": req.agent_id,
        "toNumber": req.to,
        "variables": variables,
        "skipQueue": true,
    });
    if let (Some(from), Some(o)) = (&req.from, body.as_object_mut()) {
        o.insert("fromNumber".into(), Value::String(from.clone()));
    }
    body
}

/// RevRing status (and hangup cause) → outcome; `None` while live.
///
/// `COMPLETED` is split by what happened: `VOICEMAIL_DETECTED` → voicemail;
/// never answered (`startedAt` null) → no_answer; otherwise completed.
pub fn outcome(status: &str, hangup_cause: Option<&str>, answered: bool) -> Option<Outcome> {
    let voicemail = hangup_cause.is_some_and(|h| h.eq_ignore_ascii_case("VOICEMAIL_DETECTED"));
    match status.to_ascii_uppercase().as_str() {
        "QUEUED" | "INITIATED" | "ONGOING" => None,
        "TRANSFERRED" => Some(Outcome::Transferred),
        "COMPLETED" if voicemail => Some(Outcome::Voicemail),
        "COMPLETED" if !answered => Some(Outcome::NoAnswer),
        "COMPLETED" => Some(Outcome::Completed),
        "FAILED" => Some(Outcome::Failed),
        "CANCELED" | "CANCELLED" => Some(Outcome::Canceled),
        _ => {
            http::warn_unknown_status("revring", status);
            None
        }
    }
}

/// A RevRing Call object → `CallStatus`. `None` when it has no status.
pub fn call_status(call: &Value) -> Option<CallStatus> {
    let status = call.get("status").and_then(http::text)?;
    let answered_at = http::time_field(call, &["startedAt"]);
    let hangup_cause = http::field(call, &["hangupCause"]);
    let outcome = outcome(&status, hangup_cause.as_deref(), answered_at.is_some());
    let ended_at = http::time_field(call, &["endedAt"]);
    let transcript = call
        .get("transcript")
        .filter(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()))
        .cloned();
    Some(CallStatus {
        provider_call_id: http::field(call, &["id"]),
        attempt_id: call
            .get("variables")
            .and_then(|v| v.get("dialer_attempt_id"))
            .and_then(http::text),
        provider_status: status,
        outcome,
        status_at: http::time_field(call, &["updatedAt"])
            .or(ended_at)
            .or(answered_at)
            .or_else(|| http::time_field(call, &["initiatedAt", "createdAt"])),
        answered_at,
        ended_at,
        duration_seconds: call.get("durationSeconds").and_then(http::int),
        hangup_cause,
        error: http::field(call, &["errorMessage"]),
        summary: http::field(call, &["summary"]),
        transcript,
        recording_url: http::field(call, &["recordingUrl"]),
        fields: call
            .get("variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

/// The calls in a `batch-get` answer: `{data: [...]}`, `{data: {calls}}` or
/// a bare array.
fn calls_in(v: &Value) -> Vec<&Value> {
    let list = v
        .get("data")
        .map(|d| d.get("calls").unwrap_or(d))
        .or_else(|| v.get("calls"))
        .unwrap_or(v);
    list.as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

#[async_trait]
impl Provider for RevRing {
    fn name(&self) -> &str {
        &self.name
    }

    async fn place(&self, req: &PlaceRequest) -> PlaceResult {
        let secrets = self.secrets();
        let rb = self
            .client
            .post(format!("{}/v1/calls", self.base))
            .header("x-api-key", self.key.expose())
            .json(&place_body(req));
        let v = match http::send_place(rb, &req.permit, &self.clock, &VOCAB, &secrets).await {
            Ok(v) => v,
            Err(result) => return result,
        };
        let call = v.get("data").unwrap_or(&v);
        match (
            call.get("id").and_then(http::text),
            call.get("status").and_then(http::text),
        ) {
            (Some(id), status) => PlaceResult::Placed {
                provider_call_id: id,
                provider_status: status.unwrap_or_default(),
            },
            (None, _) => http::without_call_id(&v, &secrets),
        }
    }

    /// Calls whose id is not known (the place answer was lost) cannot be
    /// looked up by id; they are left out and settled by the post-call
    /// webhook, which echoes `dialer_attempt_id`, or by the retry delay.
    async fn poll(&self, targets: &[PollTarget]) -> Result<Vec<Polled>, ProviderError> {
        let secrets = self.secrets();
        let mut out = Vec::new();
        let with_id: Vec<(&str, &PollTarget)> = targets
            .iter()
            .filter_map(|t| t.provider_call_id.as_deref().map(|id| (id, t)))
            .collect();
        for chunk in with_id.chunks(BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| *id).collect();
            let rb = self
                .client
                .post(format!("{}/v1/calls/batch-get", self.base))
                .header("x-api-key", self.key.expose())
                .json(&json!({ "ids": ids, "minimal": false }));
            let Some(v) = http::send_poll(rb, &self.budget, &self.clock, &secrets).await? else {
                continue;
            };
            for call in calls_in(&v) {
                let Some(status) = call_status(call) else {
                    continue;
                };
                let Some((_, t)) = chunk
                    .iter()
                    .find(|(id, _)| status.provider_call_id.as_deref() == Some(*id))
                else {
                    continue;
                };
                out.push(Polled {
                    attempt_id: t.attempt_id.clone(),
                    status,
                });
            }
        }
        Ok(out)
    }

    fn poll_batch_size(&self) -> usize {
        BATCH
    }

    /// Looks up a call id that cannot exist: 404 proves the key works.
    async fn probe(&self) -> Result<(), ProviderError> {
        let rb = self
            .client
            .get(format!("{}/v1/calls/{PROBE_ID}", self.base))
            .header("x-api-key", self.key.expose());
        http::send_poll(rb, &self.budget, &self.clock, &self.secrets())
            .await
            .map(|_| ())
    }

    /// RevRing documents no signing: the request must carry the provider's
    /// webhook secret as `?token=` or `X-Dialer-Token`.
    fn webhook(&self, req: &WebhookRequest<'_>) -> Result<Vec<CallStatus>, WebhookError> {
        let Some(secret) = &self.webhook_secret else {
            return Err(WebhookError::Unauthorized(
                "no webhook secret is configured for this provider".into(),
            ));
        };
        let given = req
            .headers
            .get("x-dialer-token")
            .map(|h| h.as_bytes())
            .or_else(|| req.query.get("token").map(|t| t.as_bytes()));
        match given {
            None => {
                return Err(WebhookError::Unauthorized("missing token".into()));
            }
            Some(t) if !http::ct_eq(t, secret.expose().as_bytes()) => {
                return Err(WebhookError::Unauthorized("wrong token".into()));
            }
            Some(_) => {}
        }
        let v: Value = serde_json::from_slice(req.body)
            .map_err(|e| WebhookError::BadRequest(format!("body is not JSON: {e}")))?;
        // Documented flat; a `{data: Call}` wrapper is accepted too.
        let call = match v.get("data") {
            Some(d) if d.is_object() && v.get("status").is_none() => d,
            _ => &v,
        };
        if call.get("id").and_then(http::text).is_none() {
            return Err(WebhookError::BadRequest("call object without an id".into()));
        }
        let status = call_status(call)
            .ok_or_else(|| WebhookError::BadRequest("call object without a status".into()))?;
        Ok(vec![status])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::collections::HashMap;

    #[test]
    fn status_mapping_table() {
        let cases: &[(&str, Option<&str>, bool, Option<Outcome>)] = &[
            ("QUEUED", None, false, None),
            ("INITIATED", None, false, None),
            ("ONGOING", None, true, None),
            (
                "COMPLETED",
                Some("USER_ENDED"),
                true,
                Some(Outcome::Completed),
            ),
            (
                "COMPLETED",
                Some("END_CALL_TOOL"),
                true,
                Some(Outcome::Completed),
            ),
            (
                "COMPLETED",
                Some("MAX_DURATION"),
                true,
                Some(Outcome::Completed),
            ),
            ("COMPLETED", None, false, Some(Outcome::NoAnswer)),
            (
                "COMPLETED",
                Some("SILENCE_TIMEOUT"),
                false,
                Some(Outcome::NoAnswer),
            ),
            (
                "COMPLETED",
                Some("VOICEMAIL_DETECTED"),
                true,
                Some(Outcome::Voicemail),
            ),
            (
                "COMPLETED",
                Some("VOICEMAIL_DETECTED"),
                false,
                Some(Outcome::Voicemail),
            ),
            ("TRANSFERRED", None, true, Some(Outcome::Transferred)),
            ("FAILED", None, false, Some(Outcome::Failed)),
            ("CANCELED", None, false, Some(Outcome::Canceled)),
            ("completed", None, true, Some(Outcome::Completed)),
            ("SOMETHING_NEW", None, true, None),
        ];
        for (status, cause, answered, want) in cases {
            assert_eq!(
                outcome(status, *cause, *answered),
                *want,
                "{status} {cause:?} answered={answered}"
            );
        }
    }

    #[test]
    fn call_object_fills_every_field() {
        let call = json!({
            "id": "c1", "status": "COMPLETED",
            "updatedAt": "2026-11-21T10:05:00Z", "startedAt": "2026-11-21T10:01:00Z",
            "endedAt": "2026-11-21T10:04:00Z", "durationSeconds": 180,
            "hangupCause": "USER_ENDED", "errorMessage": null, "summary": "ok",
            "transcript": [{"role": "agent", "text": "hi"}], "recordingUrl": "https://r/1",
            "variables": {"dialer_attempt_id": "a1", "first_name": "Ann"}
        });
        let s = call_status(&call).unwrap();
        assert_eq!(s.provider_call_id.as_deref(), Some("c1"));
        assert_eq!(s.attempt_id.as_deref(), Some("a1"));
        assert_eq!(s.outcome, Some(Outcome::Completed));
        assert_eq!(s.duration_seconds, Some(180));
        assert_eq!(s.hangup_cause.as_deref(), Some("USER_ENDED"));
        assert_eq!(
            s.status_at.unwrap().to_rfc3339(),
            "2026-11-21T10:05:00+00:00"
        );
        assert!(s.answered_at.is_some() && s.ended_at.is_some());
        assert_eq!(s.summary.as_deref(), Some("ok"));
        assert_eq!(s.recording_url.as_deref(), Some("https://r/1"));
        assert!(s.transcript.is_some());
        assert_eq!(s.error, None);
    }

    fn adapter(secret: Option<&str>) -> RevRing {
        let cfg = ProviderConfig {
            name: "rr".into(),
            kind: ProviderKind::RevRing,
            base_url: "http://127.0.0.1:9".into(),
            api_key: Some(Secret::new("rr-key-123")),
            webhook_secret: secret.map(Secret::new),
            username: None,
            requests_per_minute: 600,
            max_concurrent_calls: 10,
            request_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_secs(5),
            max_call_duration: Duration::from_secs(1800),
            pause_after_unknown: 5,
            sim: None,
        };
        RevRing::new(&cfg, Clock::system(), Budget::unmetered()).unwrap()
    }

    const BODY: &[u8] = br#"{"id":"c9","status":"COMPLETED","startedAt":null,"variables":{"dialer_attempt_id":"a9"}}"#;

    fn hook(
        p: &RevRing,
        header: Option<&str>,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<CallStatus>, WebhookError> {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(h) = header {
            headers.insert("x-dialer-token", h.parse().unwrap());
        }
        let mut q = HashMap::new();
        if let Some(t) = query {
            q.insert("token".to_string(), t.to_string());
        }
        p.webhook(&WebhookRequest {
            headers: &headers,
            query: &q,
            body,
            now: Utc::now(),
        })
    }

    #[test]
    fn webhook_token_via_query_or_header() {
        let p = adapter(Some("s3cret-token"));
        let via_query = hook(&p, None, Some("s3cret-token"), BODY).unwrap();
        assert_eq!(via_query[0].attempt_id.as_deref(), Some("a9"));
        assert_eq!(via_query[0].outcome, Some(Outcome::NoAnswer));
        let via_header = hook(&p, Some("s3cret-token"), None, BODY).unwrap();
        assert_eq!(via_header[0].provider_call_id.as_deref(), Some("c9"));
    }

    #[test]
    fn webhook_refusals() {
        let p = adapter(Some("s3cret-token"));
        assert!(matches!(
            hook(&p, None, None, BODY),
            Err(WebhookError::Unauthorized(_))
        ));
        assert!(matches!(
            hook(&p, None, Some("s3cret-tokeX"), BODY),
            Err(WebhookError::Unauthorized(_))
        ));
        assert!(matches!(
            hook(&p, Some("nope"), None, BODY),
            Err(WebhookError::Unauthorized(_))
        ));
        // Token checked before the body is looked at.
        assert!(matches!(
            hook(&p, None, None, b"{not json"),
            Err(WebhookError::Unauthorized(_))
        ));
        assert!(matches!(
            hook(&p, None, Some("s3cret-token"), b"{not json"),
            Err(WebhookError::BadRequest(_))
        ));
        assert!(matches!(
            hook(&p, None, Some("s3cret-token"), br#"{"hello":1}"#),
            Err(WebhookError::BadRequest(_))
        ));
        let unset = adapter(None);
        assert!(matches!(
            hook(&unset, Some("anything"), Some("anything"), BODY),
            Err(WebhookError::Unauthorized(_))
        ));
    }

    #[test]
    fn errors_never_show_the_token() {
        let p = adapter(Some("s3cret-token"));
        let e = hook(&p, None, Some("s3cret-tokeX"), BODY).unwrap_err();
        assert!(!e.to_string().contains("s3cret"));
    }
}
