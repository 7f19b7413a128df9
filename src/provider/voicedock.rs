//! The VoiceDock adapter (`kind = "voicedock"`): places calls with
//! `POST /calls/outbound`, polls with `GET /calls/{id}` (and, for a call whose
//! id was lost, `GET /calls` around the request time), verifies the
//! HMAC-signed webhooks, and owns the mapping of VoiceDock's statuses and end
//! reasons to outcomes. The configured base URL already ends in `/api/v1`.

use super::http::{self, Candidate, Vocabulary};
use super::*;
use crate::domain::Outcome;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::collections::HashSet;

/// Oldest webhook accepted, by its signed timestamp (replay protection).
const MAX_WEBHOOK_AGE_SECS: i64 = 300;
/// Page size when listing calls, and most pages read in one poll.
const LIST_LIMIT: usize = 100;
const LIST_MAX_PAGES: usize = 10;

const VOCAB: Vocabulary = Vocabulary {
    number_fields: &["destination"],
    agent_words: &["assistant", "agent", "number_id"],
};

/// VoiceDock as configuration sees it: 100 requests a minute per key, the
/// caller ID is an optional `number_id`, webhooks are HMAC-signed with the
/// webhook secret.
pub const FACTS: Facts = Facts {
    kind: ProviderKind::VoiceDock,
    name: "voicedock",
    title: "VoiceDock",
    default_base_url: Some("https://api.hmsovereign.com/api/v1"),
    default_requests_per_minute: 100,
    needs_api_key: true,
    needs_username: false,
    needs_skill_id: false,
    default_agent_id: None,
    caller_id: CallerId::NumberId,
    webhooks: Webhooks::SecretRequired,
    simulation: false,
    build: |cfg, clock, budget| Ok(Arc::new(VoiceDock::new(cfg, clock, budget)?)),
};

pub struct VoiceDock(http::Account);

/// The account's fields read as the adapter's own.
impl std::ops::Deref for VoiceDock {
    type Target = http::Account;
    fn deref(&self) -> &http::Account {
        &self.0
    }
}

impl VoiceDock {
    pub fn new(cfg: &ProviderConfig, clock: Clock, budget: Budget) -> anyhow::Result<Self> {
        Ok(VoiceDock(http::Account::new(cfg, clock, budget)?))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
    }

    /// Lists the calls created in a window, every page up to a bound.
    async fn list(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Value>, ProviderError> {
        let secrets = self.secrets();
        let mut calls = Vec::new();
        for page in 0..LIST_MAX_PAGES {
            let offset = page * LIST_LIMIT;
            let rb = self.get("/calls").query(&[
                ("limit", LIST_LIMIT.to_string()),
                ("offset", offset.to_string()),
                ("start_date", crate::domain::rfc3339(from)),
                ("end_date", crate::domain::rfc3339(to)),
            ]);
            let Some(v) = http::send_poll(rb, &self.budget, &self.clock, &secrets).await? else {
                break;
            };
            let list = v
                .get("calls")
                .or_else(|| v.get("data"))
                .unwrap_or(&v)
                .as_array()
                .cloned()
                .unwrap_or_default();
            let n = list.len();
            calls.extend(list);
            let total = v
                .get("pagination")
                .and_then(|p| p.get("total"))
                .and_then(http::int)
                .unwrap_or(0);
            if n < LIST_LIMIT || (offset + n) as i64 >= total {
                break;
            }
        }
        Ok(calls)
    }
}

/// The request body for one call: variables and the attempt id travel in
/// `metadata`, which VoiceDock echoes in later events.
pub fn place_body(req: &PlaceRequest) -> Value {
    let mut metadata = req.variables.clone();
    metadata.insert(
        "dialer_attempt_id".into(),
        Value::String(req.attempt_id.clone()),
    );
    let mut body = json!({
        "destination": req.to,
        "assistant_id": req.agent_id,
        "metadata": metadata,
    });
    if let (Some(from), Some(o)) = (&req.from, body.as_object_mut()) {
        o.insert("number_id".into(), Value::String(from.clone()));
    }
    body
}

/// What an end reason says about how the call ended.
fn reason_says(end_reason: Option<&str>, words: &[&str]) -> bool {
    end_reason.is_some_and(|r| {
        let r = r.to_lowercase().replace(['-', ' '], "_");
        words.iter().any(|w| r.contains(w))
    })
}

/// VoiceDock status (and end reason) → outcome; `None` while live.
///
/// `answered`: `Some(true)` when the call started (`started_at` set or a
/// positive duration), `Some(false)` when a full record shows it never did,
/// `None` when the event carries no timing (a `status-update`): an `ended`
/// call is then left live until the end-of-call report or a poll tells.
/// `rejected` maps to busy: the callee (or their network) declined the call,
/// which is worth a retry after the busy delay, not a failure.
pub fn outcome(status: &str, end_reason: Option<&str>, answered: Option<bool>) -> Option<Outcome> {
    match status.to_lowercase().as_str() {
        "queued" | "dialing" | "connecting" | "ringing" | "in-progress" | "in_progress" => None,
        "ended" | "completed" => {
            if reason_says(end_reason, &["voicemail", "machine"]) {
                Some(Outcome::Voicemail)
            } else if reason_says(end_reason, &["busy"]) {
                Some(Outcome::Busy)
            } else if reason_says(
                end_reason,
                &["no_answer", "noanswer", "not_answered", "unanswered"],
            ) {
                Some(if answered == Some(true) {
                    Outcome::Completed
                } else {
                    Outcome::NoAnswer
                })
            } else {
                match answered {
                    Some(true) => Some(Outcome::Completed),
                    Some(false) => Some(Outcome::NoAnswer),
                    None => None,
                }
            }
        }
        "transferred" => Some(Outcome::Transferred),
        "ended-with-error" | "failed" | "insufficient-credits" => Some(Outcome::Failed),
        "rejected" => Some(Outcome::Busy),
        "canceled" | "cancelled" => Some(Outcome::Canceled),
        _ => {
            http::warn_unknown_status("voicedock", status);
            None
        }
    }
}

/// The echoed `dialer_attempt_id`, wherever the metadata came back.
fn attempt_id_in(v: &Value) -> Option<String> {
    v.get("metadata")
        .and_then(|m| m.get("dialer_attempt_id"))
        .and_then(http::text)
}

/// Whether a full record says the call was answered.
fn answered(call: &Value) -> bool {
    http::time_field(call, &["started_at"]).is_some()
        || call
            .get("duration_seconds")
            .and_then(http::int)
            .is_some_and(|d| d > 0)
}

/// The messages of a call as the transcript, when there are any.
fn transcript(v: &Value) -> Option<Value> {
    v.get("messages")
        .or_else(|| v.get("transcript"))
        .filter(|m| !m.is_null() && m.as_array().is_none_or(|a| !a.is_empty()))
        .cloned()
}

/// What the assistant recorded: the keys of `analysis_result` (a call
/// record) or `analysis` (an end-of-call report), with those of a
/// `structured_data` / `structuredData` object inside them on top.
fn fields(v: &Value) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for a in ["analysis_result", "analysis"]
        .iter()
        .filter_map(|k| v.get(*k))
    {
        if let Some(o) = a.as_object() {
            out.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
            for k in ["structured_data", "structuredData"] {
                if let Some(sd) = o.get(k).and_then(Value::as_object) {
                    out.extend(sd.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
    }
    out
}

fn summary(v: &Value) -> Option<String> {
    http::field(v, &["summary"]).or_else(|| {
        v.get("analysis_result")
            .or_else(|| v.get("analysis"))
            .and_then(|a| http::field(a, &["summary"]))
    })
}

/// A VoiceDock Call record (from `GET /calls/{id}` or the list) →
/// `CallStatus`. `None` when it has no status.
pub fn call_status(call: &Value) -> Option<CallStatus> {
    let status = call.get("status").and_then(http::text)?;
    let end_reason = http::field(call, &["end_reason", "ended_reason"]);
    let ended_at = http::time_field(call, &["ended_at"]);
    Some(CallStatus {
        provider_call_id: http::field(call, &["id", "call_id"]),
        attempt_id: attempt_id_in(call),
        outcome: outcome(&status, end_reason.as_deref(), Some(answered(call))),
        provider_status: status,
        status_at: http::time_field(call, &["updated_at"])
            .or(ended_at)
            .or_else(|| http::time_field(call, &["started_at", "created_at"])),
        answered_at: http::time_field(call, &["started_at"]),
        ended_at,
        duration_seconds: call.get("duration_seconds").and_then(http::int),
        hangup_cause: end_reason,
        error: http::field(call, &["error"]),
        summary: summary(call),
        transcript: transcript(call),
        recording_url: http::field(call, &["recording_url"]),
        fields: fields(call),
    })
}

/// A webhook envelope → the status it reports; `Ok(None)` for event types
/// that carry no call status (tool calls, assistant requests).
pub fn envelope_status(v: &Value) -> Result<Option<CallStatus>, String> {
    let msg = v
        .get("message")
        .filter(|m| m.is_object())
        .ok_or("no `message` object")?;
    let kind = msg
        .get("type")
        .and_then(http::text)
        .ok_or("no `message.type`")?;
    let report = match kind.as_str() {
        "status-update" => false,
        "end-of-call-report" => true,
        _ => return Ok(None),
    };
    let call = msg
        .get("call")
        .filter(|c| c.is_object())
        .ok_or("no `message.call`")?;
    let id = http::field(call, &["id"]).ok_or("no `message.call.id`")?;
    let status = http::field(call, &["status"])
        .or_else(|| http::field(msg, &["status"]))
        .or_else(|| report.then(|| "ended".to_string()))
        .ok_or("no call status")?;
    let end_reason = http::field(msg, &["end_reason", "ended_reason"])
        .or_else(|| http::field(call, &["end_reason"]));
    // Only the end-of-call report carries timing; a status update cannot
    // tell an unanswered call from an answered one.
    let was_answered = report.then(|| answered(msg));
    let ended_at = http::time_field(msg, &["ended_at"]);
    Ok(Some(CallStatus {
        provider_call_id: Some(id),
        attempt_id: attempt_id_in(msg).or_else(|| attempt_id_in(call)),
        outcome: outcome(&status, end_reason.as_deref(), was_answered),
        provider_status: status,
        status_at: http::time_field(msg, &["timestamp"]).or(ended_at),
        answered_at: http::time_field(msg, &["started_at"]),
        ended_at,
        duration_seconds: msg.get("duration_seconds").and_then(http::int),
        hangup_cause: end_reason,
        error: http::field(msg, &["error"]),
        summary: summary(msg),
        transcript: transcript(msg),
        recording_url: http::field(msg, &["recording_url"]),
        fields: fields(msg),
    }))
}

/// Checks `X-Webhook-Signature: sha256=<hex>` = HMAC-SHA256(secret,
/// "{timestamp}.{body}") in constant time, then that the signed timestamp is
/// at most 300 s from `now`.
pub fn verify_signature(
    secret: &[u8],
    headers: &axum::http::HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let unauthorized = |m: &str| WebhookError::Unauthorized(m.to_string());
    let sig = headers
        .get("x-webhook-signature")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| unauthorized("missing X-Webhook-Signature"))?
        .trim();
    let ts = headers
        .get("x-webhook-timestamp")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| unauthorized("missing X-Webhook-Timestamp"))?
        .trim();
    let hex_sig = sig
        .strip_prefix("sha256=")
        .or_else(|| sig.strip_prefix("SHA256="))
        .unwrap_or(sig);
    let given = hex::decode(hex_sig).map_err(|_| unauthorized("malformed signature"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| unauthorized("unusable webhook secret"))?;
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| unauthorized("signature does not match"))?;
    let ts: i64 = ts
        .parse()
        .map_err(|_| unauthorized("malformed timestamp"))?;
    if (now.timestamp() - ts).abs() > MAX_WEBHOOK_AGE_SECS {
        return Err(unauthorized("timestamp outside the 300 s window"));
    }
    Ok(())
}

#[async_trait]
impl Provider for VoiceDock {
    fn name(&self) -> &str {
        &self.name
    }

    async fn place(&self, req: &PlaceRequest) -> PlaceResult {
        let secrets = self.secrets();
        let rb = self
            .client
            .post(format!("{}/calls/outbound", self.base))
            .bearer_auth(self.key.expose())
            .json(&place_body(req));
        let v = match http::send_place(rb, &req.permit, &self.clock, &VOCAB, &secrets).await {
            Ok(v) => v,
            Err(result) => return result,
        };
        match http::field(&v, &["call_id", "id"]) {
            Some(id) => PlaceResult::Placed {
                provider_call_id: id,
                provider_status: http::field(&v, &["status"]).unwrap_or_default(),
            },
            // A 2xx without an id (even `success: false`) does not prove the
            // call was not placed: settle it later rather than re-send.
            None => http::without_call_id(&v, &secrets),
        }
    }

    async fn poll(&self, targets: &[PollTarget]) -> Result<Vec<Polled>, ProviderError> {
        let secrets = self.secrets();
        let mut out = Vec::new();
        let mut known = HashSet::new();
        for t in targets {
            let Some(id) = &t.provider_call_id else {
                continue;
            };
            known.insert(id.clone());
            let Some(v) = http::send_poll(
                self.get(&format!("/calls/{}", http::segment(id))),
                &self.budget,
                &self.clock,
                &secrets,
            )
            .await?
            else {
                continue;
            };
            let call = v.get("data").or_else(|| v.get("call")).unwrap_or(&v);
            if let Some(status) = call_status(call) {
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
        let Some((from, to)) = http::list_window(&lost) else {
            return Ok(out);
        };
        let calls = self.list(from, to).await?;
        let cands: Vec<Candidate> = calls
            .iter()
            .map(|c| Candidate {
                id: http::field(c, &["id"]),
                attempt_id: attempt_id_in(c),
                number: http::field(c, &["destination", "customer_number", "caller_phone"])
                    .or_else(|| {
                        c.get("customer")
                            .and_then(|cu| http::field(cu, &["number"]))
                    }),
                created_at: http::time_field(c, &["created_at"]),
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

    /// One request per call with an id: keep batches small against the
    /// account's 100 requests a minute.
    fn poll_batch_size(&self) -> usize {
        20
    }

    /// Lists one call: proves the key works without placing anything.
    async fn probe(&self) -> Result<(), ProviderError> {
        let rb = self.get("/calls").query(&[("limit", "1")]);
        http::send_poll(rb, &self.budget, &self.clock, &self.secrets())
            .await
            .map(|_| ())
    }

    fn webhook(&self, req: &WebhookRequest<'_>) -> Result<Vec<CallStatus>, WebhookError> {
        let Some(secret) = &self.webhook_secret else {
            return Err(WebhookError::Unauthorized(
                "no webhook secret is configured for this provider".into(),
            ));
        };
        verify_signature(secret.expose().as_bytes(), req.headers, req.body, req.now)?;
        let v: Value = serde_json::from_slice(req.body)
            .map_err(|e| WebhookError::BadRequest(format!("body is not JSON: {e}")))?;
        let status = envelope_status(&v).map_err(WebhookError::BadRequest)?;
        Ok(status.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::collections::HashMap;

    /// (status, end reason, answered, expected outcome).
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<bool>,
        Option<Outcome>,
    );

    #[test]
    fn status_mapping_table() {
        use Outcome::*;
        let cases: &[Case] = &[
            ("dialing", None, None, None),
            ("connecting", None, None, None),
            ("ringing", None, None, None),
            ("in-progress", None, Some(true), None),
            ("ended", Some("user_hangup"), Some(true), Some(Completed)),
            ("ended", Some("max_duration"), Some(true), Some(Completed)),
            ("ended", None, Some(false), Some(NoAnswer)),
            ("ended", Some("no_answer"), Some(false), Some(NoAnswer)),
            (
                "ended",
                Some("customer-did-not-answer"),
                Some(false),
                Some(NoAnswer),
            ),
            ("ended", Some("voicemail"), Some(true), Some(Voicemail)),
            ("ended", Some("customer_busy"), Some(false), Some(Busy)),
            ("ended", Some("user_hangup"), None, None),
            ("ended", Some("voicemail_detected"), None, Some(Voicemail)),
            ("ended-with-error", None, None, Some(Failed)),
            ("failed", None, None, Some(Failed)),
            ("insufficient-credits", None, None, Some(Failed)),
            ("rejected", None, None, Some(Busy)),
            ("transferred", None, Some(true), Some(Transferred)),
            ("warp-drive", None, None, None),
        ];
        for (status, reason, answered, want) in cases {
            assert_eq!(
                outcome(status, *reason, *answered),
                *want,
                "{status} {reason:?} {answered:?}"
            );
        }
    }

    const SECRET: &str = "whsec-test-123";

    fn sign(ts: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn adapter(secret: Option<&str>) -> VoiceDock {
        let cfg = ProviderConfig {
            name: "vd".into(),
            kind: ProviderKind::VoiceDock,
            base_url: "http://127.0.0.1:9/api/v1".into(),
            api_key: Some(Secret::new("vd-key-123")),
            webhook_secret: secret.map(Secret::new),
            username: None,
            requests_per_minute: 100,
            max_concurrent_calls: 10,
            request_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_secs(5),
            max_call_duration: Duration::from_secs(1800),
            pause_after_unknown: 5,
            sim: None,
        };
        VoiceDock::new(&cfg, Clock::system(), Budget::unmetered()).unwrap()
    }

    fn hook(
        p: &VoiceDock,
        sig: Option<String>,
        ts: i64,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<CallStatus>, WebhookError> {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(s) = sig {
            headers.insert("x-webhook-signature", s.parse().unwrap());
        }
        headers.insert("x-webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("x-webhook-event", "end-of-call-report".parse().unwrap());
        p.webhook(&WebhookRequest {
            headers: &headers,
            query: &HashMap::new(),
            body,
            now,
        })
    }

    const REPORT: &[u8] = br#"{"message":{"type":"end-of-call-report","timestamp":"2026-11-21T12:00:00Z",
        "call":{"id":"call-1","type":"outbound","status":"ended","metadata":{"dialer_attempt_id":"att-1"}},
        "customer":{"number":"+15550100"},"duration_seconds":42,"end_reason":"user_hangup",
        "started_at":"2026-11-21T11:59:00Z","ended_at":"2026-11-21T11:59:42Z","summary":"Booked.",
        "messages":[{"role":"assistant","content":"Hi"}],"recording_url":"https://rec/1"}}"#;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T12:00:10Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn valid_signature_parses_the_report() {
        let p = adapter(Some(SECRET));
        let ts = now().timestamp() - 10;
        let got = hook(&p, Some(sign(ts, REPORT)), ts, REPORT, now()).unwrap();
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!(s.provider_call_id.as_deref(), Some("call-1"));
        assert_eq!(s.attempt_id.as_deref(), Some("att-1"));
        assert_eq!(s.outcome, Some(Outcome::Completed));
        assert_eq!(s.duration_seconds, Some(42));
        assert_eq!(s.hangup_cause.as_deref(), Some("user_hangup"));
        assert_eq!(s.summary.as_deref(), Some("Booked."));
        assert_eq!(s.recording_url.as_deref(), Some("https://rec/1"));
        assert!(s.transcript.is_some() && s.answered_at.is_some() && s.ended_at.is_some());
    }

    #[test]
    fn status_update_metadata_at_message_level() {
        let p = adapter(Some(SECRET));
        let body = br#"{"message":{"type":"status-update","timestamp":1795000000,"call":{"id":"call-2","status":"ringing"},"metadata":{"dialer_attempt_id":"att-2"}}}"#;
        let ts = now().timestamp();
        let got = hook(&p, Some(sign(ts, body)), ts, body, now()).unwrap();
        assert_eq!(got[0].attempt_id.as_deref(), Some("att-2"));
        assert_eq!(got[0].outcome, None);
        assert_eq!(got[0].provider_status, "ringing");
        assert!(got[0].status_at.is_some());
    }

    #[test]
    fn refusals_and_check_order() {
        let p = adapter(Some(SECRET));
        let ts = now().timestamp();
        // Wrong signature (signed over another body).
        assert!(matches!(
            hook(&p, Some(sign(ts, b"{}")), ts, REPORT, now()),
            Err(WebhookError::Unauthorized(_))
        ));
        // Signed with a timestamp, sent with another.
        assert!(matches!(
            hook(&p, Some(sign(ts - 1, REPORT)), ts, REPORT, now()),
            Err(WebhookError::Unauthorized(_))
        ));
        // Missing signature.
        assert!(matches!(
            hook(&p, None, ts, REPORT, now()),
            Err(WebhookError::Unauthorized(_))
        ));
        // Stale: correctly signed, 301 s old.
        let old = ts - 301;
        assert!(matches!(
            hook(&p, Some(sign(old, REPORT)), old, REPORT, now()),
            Err(WebhookError::Unauthorized(_))
        ));
        // 299 s old is fine.
        let recent = ts - 299;
        assert!(hook(&p, Some(sign(recent, REPORT)), recent, REPORT, now()).is_ok());
        // Signature first: garbage with a bad signature is 401, not 400.
        assert!(matches!(
            hook(&p, Some("sha256=00".into()), ts, b"garbage", now()),
            Err(WebhookError::Unauthorized(_))
        ));
        // Well signed garbage is 400.
        assert!(matches!(
            hook(&p, Some(sign(ts, b"garbage")), ts, b"garbage", now()),
            Err(WebhookError::BadRequest(_))
        ));
        let no_call = br#"{"message":{"type":"status-update"}}"#;
        assert!(matches!(
            hook(&p, Some(sign(ts, no_call)), ts, no_call, now()),
            Err(WebhookError::BadRequest(_))
        ));
        // Other event types are acknowledged with nothing to apply.
        let tool = br#"{"message":{"type":"tool-calls","call":{"id":"x"}}}"#;
        assert_eq!(hook(&p, Some(sign(ts, tool)), ts, tool, now()), Ok(vec![]));
        // No secret configured: everything refused.
        let unset = adapter(None);
        assert!(matches!(
            hook(&unset, Some(sign(ts, REPORT)), ts, REPORT, now()),
            Err(WebhookError::Unauthorized(_))
        ));
    }
}
