//! What the three HTTP adapters share: the client (configured timeout, no
//! retries of any kind), the one place a request is sent and metered against
//! the provider's request budget, classifying transport failures and error
//! answers into `PlaceResult` / `ProviderError`, `Retry-After`, both error
//! body shapes, lenient field readers, and keeping secrets out of every
//! message.

use super::{PlaceResult, ProviderError};
use crate::clock::Clock;
use crate::config::ProviderConfig;
use crate::pacing::{Budget, Permit};
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Longest slice of a provider's body quoted in an error message.
const MAX_QUOTE: usize = 300;

/// What an adapter keeps of its account: where it is, the key, the webhook
/// secret, the HTTP client, the clock and the request budget.
pub struct Account {
    pub name: String,
    pub base: String,
    pub key: crate::config::Secret,
    pub webhook_secret: Option<crate::config::Secret>,
    pub client: reqwest::Client,
    pub clock: Clock,
    /// Every request but a place request (sent on the dispatcher's permit)
    /// takes a cell of it in `send_poll`.
    pub budget: Budget,
}

impl Account {
    pub fn new(cfg: &ProviderConfig, clock: Clock, budget: Budget) -> anyhow::Result<Self> {
        Ok(Account {
            name: cfg.name.clone(),
            base: base_url(cfg),
            key: crate::config::Secret::new(api_key(cfg)?),
            webhook_secret: cfg.webhook_secret.clone(),
            client: client(cfg)?,
            clock,
            budget,
        })
    }

    /// The secrets to scrub from any message built from a provider's answer.
    pub fn secrets(&self) -> Vec<&str> {
        let mut s = vec![self.key.expose()];
        if let Some(w) = &self.webhook_secret {
            s.push(w.expose());
        }
        s
    }
}

/// Builds the client for one provider. No retry policy: a "place call"
/// request must leave at most once (SPEC promise 1), so even reqwest's
/// default replay of HTTP/2 protocol NACKs is switched off. Redirects are not
/// followed either: a 307/308 would send the same call again, and a redirect
/// to another host would hand it the api key in the request's headers.
pub fn client(cfg: &ProviderConfig) -> anyhow::Result<reqwest::Client> {
    let timeout = cfg.request_timeout;
    // The connect timeout fires a little before the whole-request one, so a
    // server that never accepts the connection is reported as "not sent"
    // (the request is safe to send again) rather than as a timeout of
    // unknown fate.
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.mul_f64(0.9))
        .retry(reqwest::retry::never())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dialer/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The base URL without a trailing slash, so paths can be appended.
pub fn base_url(cfg: &ProviderConfig) -> String {
    cfg.base_url.trim_end_matches('/').to_string()
}

/// The configured api key, or an error naming the provider (never the key).
pub fn api_key(cfg: &ProviderConfig) -> anyhow::Result<String> {
    match &cfg.api_key {
        Some(k) if !k.expose().is_empty() => Ok(k.expose().to_string()),
        _ => anyhow::bail!("provider `{}`: no api key configured", cfg.name),
    }
}

/// Replaces every occurrence of each secret in `text` with `***`. Applied to
/// every message built from a provider's answer or a transport error, in case
/// either echoes a credential back.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 {
            out = out.replace(s, "***");
        }
    }
    out
}

/// A transport failure, split by whether the request can have reached the
/// provider.
pub enum Transport {
    /// Connection refused, DNS failure, connect timeout: nothing was sent.
    NotSent(String),
    /// Timeout after sending, connection reset, body read failure: the
    /// provider may have acted on it.
    MaybeSent(String),
    /// The request could not even be built (bad base URL): a configuration
    /// problem that will not go away by waiting.
    Invalid(String),
}

pub fn transport(e: &reqwest::Error) -> Transport {
    let text = describe(e);
    if e.is_builder() {
        Transport::Invalid(text)
    } else if e.is_connect() {
        Transport::NotSent(text)
    } else {
        Transport::MaybeSent(text)
    }
}

/// The error and its causes, without the URL (which may carry query
/// parameters) and without any header.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "request timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut seen = HashSet::new();
    while let Some(s) = source {
        let part = s.to_string();
        if seen.insert(part.clone()) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A place request that failed in transport.
pub fn place_transport(e: &reqwest::Error, secrets: &[&str]) -> PlaceResult {
    match transport(e) {
        Transport::NotSent(m) => PlaceResult::NotPlaced {
            retry_after: None,
            reason: redact(&m, secrets),
        },
        Transport::MaybeSent(m) => PlaceResult::Unknown {
            error: redact(&m, secrets),
        },
        Transport::Invalid(m) => PlaceResult::Unusable {
            message: redact(&m, secrets),
        },
    }
}

/// A poll request that failed in transport: nothing to classify, polling
/// simply tries again at its next tick.
pub fn poll_transport(e: &reqwest::Error, secrets: &[&str]) -> ProviderError {
    match transport(e) {
        Transport::Invalid(m) => ProviderError::Unusable(redact(&m, secrets)),
        Transport::NotSent(m) | Transport::MaybeSent(m) => {
            ProviderError::Other(redact(&m, secrets))
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (relative to `now`).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// `X-RateLimit-Reset`: either a Unix time (large values) or seconds to wait.
pub fn rate_limit_reset(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let n = v
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)?;
    // Anything past 2001-09-09 in seconds is a timestamp, not a wait.
    if n >= 1_000_000_000.0 {
        let at = DateTime::<Utc>::from_timestamp(n as i64, 0)?;
        Some((at - now).to_std().unwrap_or(Duration::ZERO))
    } else {
        Some(Duration::from_secs_f64(n))
    }
}

/// A provider's error answer, from either documented shape:
/// `{"error": {"code", "message", "param", "type"}}` or
/// `{"error": "...", "message"?, "details"?, "retry_after"?}` (and a bare
/// `{"message": "..."}`, or plain text, as a last resort).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    pub code: Option<String>,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> ApiError {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ApiError {
                message: quote(&String::from_utf8_lossy(body)),
                ..ApiError::default()
            };
        };
        let mut e = ApiError {
            retry_after: v.get("retry_after").and_then(seconds),
            ..ApiError::default()
        };
        match v.get("error") {
            Some(Value::Object(o)) => {
                e.code = o.get("code").and_then(text);
                e.message = o.get("message").and_then(text).unwrap_or_default();
                e.param = o.get("param").and_then(text);
                if e.retry_after.is_none() {
                    e.retry_after = o.get("retry_after").and_then(seconds);
                }
            }
            Some(Value::String(s)) => {
                e.message = match v.get("message").and_then(text) {
                    Some(m) if m != *s => format!("{s}: {m}"),
                    _ => s.clone(),
                };
            }
            _ => {
                e.message = v.get("message").and_then(text).unwrap_or_default();
            }
        }
        if let Some(d) = v.get("details").filter(|d| !d.is_null()) {
            let d = match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            e.message = if e.message.is_empty() {
                d
            } else {
                format!("{} ({d})", e.message)
            };
        }
        if e.message.is_empty() {
            e.message = quote(&v.to_string());
        }
        e.message = quote(&e.message);
        e
    }

    /// Message, code and param as one lowercase string, for keyword checks.
    fn haystack(&self) -> String {
        format!(
            "{} {} {}",
            self.message,
            self.code.as_deref().unwrap_or(""),
            self.param.as_deref().unwrap_or("")
        )
        .to_lowercase()
    }

    fn display(&self) -> String {
        match (&self.code, &self.param) {
            (Some(c), Some(p)) => format!("{} [{c}, {p}]", self.message),
            (Some(c), None) => format!("{} [{c}]", self.message),
            (None, Some(p)) => format!("{} [{p}]", self.message),
            (None, None) => self.message.clone(),
        }
    }
}

/// What a provider calls things, for classifying its validation errors.
pub struct Vocabulary {
    /// Body fields that carry the lead's number (`toNumber`, `destination`,
    /// `customerPhone`); an error about one of them refuses the number.
    pub number_fields: &'static [&'static str],
    /// Words naming what a campaign configures (agent, skill, caller number
    /// id) that a 404 can be about; a 404 naming one means the campaign's
    /// configuration is wrong, not the lead, and no call would go through.
    pub agent_words: &'static [&'static str],
}

/// Classifies a non-2xx answer to a place request.
pub fn classify_place_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    vocab: &Vocabulary,
    secrets: &[&str],
) -> PlaceResult {
    let err = ApiError::parse(body);
    let message = redact(
        &format!("HTTP {}: {}", status.as_u16(), err.display()),
        secrets,
    );
    let hay = err.haystack();
    if status.is_redirection() {
        // The provider may have acted on the request before pointing
        // elsewhere, and following it could place the call twice.
        return PlaceResult::Unknown {
            error: format!("{message} (redirect not followed)"),
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return PlaceResult::NotPlaced {
            retry_after: retry_after(headers, now)
                .or(err.retry_after)
                .or_else(|| rate_limit_reset(headers, now)),
            reason: message,
        };
    }
    if matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED
    ) || hay.contains("insufficient credit")
        || hay.contains("insufficient_credit")
    {
        return PlaceResult::Unusable { message };
    }
    if status == StatusCode::NOT_FOUND && vocab.agent_words.iter().any(|w| hay.contains(w)) {
        return PlaceResult::Unusable { message };
    }
    if status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT {
        return PlaceResult::Rejected {
            number_refused: refuses_number(&err, vocab),
            message,
        };
    }
    // 5xx, 408, and anything unexpected: the provider may have placed it.
    PlaceResult::Unknown { error: message }
}

/// Whether a validation error is about the destination number.
fn refuses_number(err: &ApiError, vocab: &Vocabulary) -> bool {
    let param = err.param.as_deref().unwrap_or("").to_lowercase();
    let msg = err.message.to_lowercase();
    vocab.number_fields.iter().any(|f| {
        let f = f.to_lowercase();
        param == f || msg.contains(&f)
    }) || ((msg.contains("phone number") || msg.contains("destination number"))
        && !msg.contains("from")
        && !msg.contains("caller"))
}

/// Classifies a non-2xx answer to a poll request.
pub fn classify_poll_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    secrets: &[&str],
) -> ProviderError {
    let err = ApiError::parse(body);
    let message = redact(
        &format!("HTTP {}: {}", status.as_u16(), err.display()),
        secrets,
    );
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited(
            retry_after(headers, now)
                .or(err.retry_after)
                .or_else(|| rate_limit_reset(headers, now)),
        ),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED => {
            ProviderError::Unusable(message)
        }
        s if s.is_redirection() => {
            ProviderError::Other(format!("{message} (redirect not followed)"))
        }
        _ => ProviderError::Other(message),
    }
}

/// The cell of the provider's request budget a request leaves on.
enum Cell<'a> {
    /// Taken right before the request leaves.
    Take(&'a Budget),
    /// Already taken for it: a place request's permit.
    Taken(&'a Permit),
}

/// Every request to a provider leaves here, on exactly one cell of its
/// request budget.
async fn send(
    rb: reqwest::RequestBuilder,
    cell: Cell<'_>,
) -> Result<reqwest::Response, reqwest::Error> {
    match cell {
        Cell::Take(budget) => {
            let _spent = budget.take().await;
        }
        Cell::Taken(_permit) => {}
    }
    rb.send().await
}

/// Sends a place request on the permit the dispatcher took for it, and
/// returns the parsed body of a 2xx answer, or the final classification of
/// anything else.
pub async fn send_place(
    rb: reqwest::RequestBuilder,
    permit: &Permit,
    clock: &Clock,
    vocab: &Vocabulary,
    secrets: &[&str],
) -> Result<Value, PlaceResult> {
    let resp = send(rb, Cell::Taken(permit))
        .await
        .map_err(|e| place_transport(&e, secrets))?;
    let now = clock.now();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match resp.bytes().await {
        Ok(b) => b,
        // The status line arrived, so the provider got the request: a
        // success whose body was lost is a call of unknown fate.
        Err(e) if status.is_success() => {
            return Err(PlaceResult::Unknown {
                error: redact(
                    &format!("HTTP {}: {}", status.as_u16(), describe(&e)),
                    secrets,
                ),
            })
        }
        Err(_) => Default::default(),
    };
    if !status.is_success() {
        return Err(classify_place_error(
            status, &headers, &body, now, vocab, secrets,
        ));
    }
    serde_json::from_slice::<Value>(&body).map_err(|e| PlaceResult::Unknown {
        error: redact(
            &format!(
                "HTTP {}: unparsable answer ({e}): {}",
                status.as_u16(),
                quote(&String::from_utf8_lossy(&body))
            ),
            secrets,
        ),
    })
}

/// Sends any other request (get, batch-get, list page, probe) on a cell
/// taken from `budget` right before it leaves, and returns the parsed body
/// of a 2xx answer; `None` for a 404 (the call is not known there).
pub async fn send_poll(
    rb: reqwest::RequestBuilder,
    budget: &Budget,
    clock: &Clock,
    secrets: &[&str],
) -> Result<Option<Value>, ProviderError> {
    let resp = send(rb, Cell::Take(budget))
        .await
        .map_err(|e| poll_transport(&e, secrets))?;
    let now = clock.now();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| poll_transport(&e, secrets))?;
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(classify_poll_error(status, &headers, &body, now, secrets));
    }
    serde_json::from_slice::<Value>(&body)
        .map(Some)
        .map_err(|e| {
            ProviderError::Other(redact(
                &format!(
                    "unparsable answer ({e}): {}",
                    quote(&String::from_utf8_lossy(&body))
                ),
                secrets,
            ))
        })
}

/// How far before a lost request's `requested_at` a provider's record of the
/// call may be stamped (clock skew between us and the provider).
const MATCH_BEFORE: chrono::Duration = chrono::Duration::minutes(2);
/// How far after it (the provider may stamp the call when it starts dialing).
const MATCH_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// The window to list a provider's calls in to find these targets' calls.
pub fn list_window(targets: &[&super::PollTarget]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let from = targets.iter().map(|t| t.requested_at).min()?;
    let to = targets.iter().map(|t| t.requested_at).max()?;
    Some((from - MATCH_BEFORE, to + MATCH_AFTER))
}

/// A call from a provider's list, reduced to what matching needs.
pub struct Candidate {
    pub id: Option<String>,
    /// The echoed `dialer_attempt_id`, when the provider echoes it.
    pub attempt_id: Option<String>,
    /// The number that was called.
    pub number: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Finds the call of each target whose provider call id was lost. A call
/// echoing a `dialer_attempt_id` matches only that attempt; otherwise the
/// called number must be the target's and the call stamped near its
/// `requested_at` (the nearest wins). A call is given to one target at most,
/// and never one whose id is in `taken` (another attempt's known call).
/// Returns (target index, candidate index) pairs.
pub fn match_lost(
    targets: &[&super::PollTarget],
    cands: &[Candidate],
    taken: &HashSet<String>,
) -> Vec<(usize, usize)> {
    let mut used = vec![false; cands.len()];
    let mut out = Vec::new();
    for (ti, t) in targets.iter().enumerate() {
        let free = |ci: usize, c: &Candidate| {
            !used[ci] && c.id.as_ref().is_none_or(|id| !taken.contains(id))
        };
        let by_attempt = cands
            .iter()
            .enumerate()
            .find(|(ci, c)| free(*ci, c) && c.attempt_id.as_deref() == Some(t.attempt_id.as_str()));
        let found = by_attempt.map(|(ci, _)| ci).or_else(|| {
            cands
                .iter()
                .enumerate()
                .filter(|(ci, c)| {
                    free(*ci, c)
                        && c.attempt_id.is_none()
                        && c.number
                            .as_deref()
                            .is_some_and(|n| same_number(n, &t.to_number))
                        && c.created_at.is_none_or(|at| {
                            at >= t.requested_at - MATCH_BEFORE
                                && at <= t.requested_at + MATCH_AFTER
                        })
                })
                .min_by_key(|(_, c)| {
                    c.created_at
                        .map(|at| (at - t.requested_at).num_milliseconds().abs())
                        .unwrap_or(i64::MAX)
                })
                .map(|(ci, _)| ci)
        });
        if let Some(ci) = found {
            used[ci] = true;
            out.push((ti, ci));
        }
    }
    out
}

/// Numbers compared by their digits, so `+1 555-0100` equals `+15550100`.
fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(|c| c.is_ascii_digit()).collect::<String>();
    let (a, b) = (digits(a), digits(b));
    !a.is_empty() && a == b
}

/// One URL path segment: a provider's call id is put in a path as data, so
/// anything but unreserved and harmless characters is percent-encoded.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+@:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A body quoted in an error: trimmed and cut to a readable length.
/// A 2xx answer that names no call: it does not prove the call was not
/// placed, so its fate is unknown (settled later, never re-sent).
pub fn without_call_id(v: &Value, secrets: &[&str]) -> PlaceResult {
    PlaceResult::Unknown {
        error: redact(
            &format!("answer without a call id: {}", quote(&v.to_string())),
            secrets,
        ),
    }
}

pub fn quote(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= MAX_QUOTE {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX_QUOTE).collect();
        format!("{cut}…")
    }
}

/// A string field; numbers are accepted too (ids are sometimes numeric).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A field by any of several names, as text.
pub fn field(v: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| v.get(*n).and_then(text))
}

/// Seconds as a number or numeric string.
pub fn seconds(v: &Value) -> Option<Duration> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then(|| Duration::from_secs_f64(n))
}

/// A whole number of seconds as a number or numeric string.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f.round() as i64),
        _ => None,
    }
}

/// A timestamp: RFC 3339 text, or Unix seconds / milliseconds as a number.
/// Anything else is `None` rather than an error: one odd field must not lose
/// the rest of a status.
pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| s.trim().parse::<i64>().ok().and_then(unix)),
        Value::Number(n) => n.as_i64().and_then(unix),
        _ => None,
    }
}

/// Unix seconds, or milliseconds when the value is too large for seconds.
fn unix(n: i64) -> Option<DateTime<Utc>> {
    if n > 100_000_000_000 {
        DateTime::<Utc>::from_timestamp_millis(n)
    } else {
        DateTime::<Utc>::from_timestamp(n, 0)
    }
}

/// A time field by any of several names.
pub fn time_field(v: &Value, names: &[&str]) -> Option<DateTime<Utc>> {
    names.iter().find_map(|n| v.get(*n).and_then(time))
}

/// Logs a provider status this build does not know, once per provider kind
/// and status string (a busy account would otherwise repeat it every poll).
pub fn warn_unknown_status(kind: &str, status: &str) {
    static SEEN: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashSet::new()));
    let first = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((kind.to_string(), status.to_string()));
    if first {
        tracing::warn!(
            provider_kind = kind,
            status,
            "unknown provider call status; treating the call as still live"
        );
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap()
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sat, 21 Nov 2026 12:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(30)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sat, 21 Nov 2026 11:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now()), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now()), None);
    }

    #[test]
    fn rate_limit_reset_timestamp_or_seconds() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(rate_limit_reset(&h, now()), Some(Duration::from_secs(12)));
        let at = (now().timestamp() + 40).to_string();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&at).unwrap());
        assert_eq!(rate_limit_reset(&h, now()), Some(Duration::from_secs(40)));
    }

    #[test]
    fn both_error_shapes() {
        let a = ApiError::parse(
            br#"{"error":{"code":"invalid","message":"bad number","param":"toNumber","type":"validation"}}"#,
        );
        assert_eq!(a.message, "bad number");
        assert_eq!(a.param.as_deref(), Some("toNumber"));
        assert_eq!(a.code.as_deref(), Some("invalid"));
        let b = ApiError::parse(br#"{"error":"Too many","message":"slow down","retry_after":9}"#);
        assert_eq!(b.message, "Too many: slow down");
        assert_eq!(b.retry_after, Some(Duration::from_secs(9)));
        let c = ApiError::parse(b"<html>oops</html>");
        assert_eq!(c.message, "<html>oops</html>");
        let d = ApiError::parse(
            br#"{"error":"Validation failed","details":{"destination":"invalid"}}"#,
        );
        assert!(d.message.contains("destination"), "{}", d.message);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("call-_+3162_Xq"), "call-_+3162_Xq");
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
    }

    #[test]
    fn redact_hides_secrets() {
        assert_eq!(
            redact("key sk_live_123 leaked", &["sk_live_123"]),
            "key *** leaked"
        );
    }

    #[test]
    fn times_parse_leniently() {
        assert_eq!(
            time(&Value::String("2026-11-21T12:00:00Z".into())),
            Some(now())
        );
        assert_eq!(time(&serde_json::json!(now().timestamp())), Some(now()));
        assert_eq!(
            time(&serde_json::json!(now().timestamp_millis())),
            Some(now())
        );
        assert_eq!(time(&Value::String("yesterday".into())), None);
    }
}
