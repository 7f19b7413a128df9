//! VoiceDock adapter against a real HTTP server: the exact request sent, the
//! classification of every kind of answer, and polling by id and by list.

use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use dialer::config::{ProviderConfig, ProviderKind, Secret};
use dialer::domain::Outcome;
use dialer::pacing::Budget;
use dialer::provider::{self, PlaceRequest, PlaceResult, PollTarget, Provider, ProviderError};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "vd-secret-key-0002";

fn config(base_url: &str, timeout: Duration) -> ProviderConfig {
    ProviderConfig {
        name: "voicedock".into(),
        kind: ProviderKind::VoiceDock,
        base_url: format!("{base_url}/api/v1"),
        api_key: Some(Secret::new(KEY)),
        webhook_secret: Some(Secret::new("whsec")),
        username: None,
        requests_per_minute: 100,
        max_concurrent_calls: 20,
        request_timeout: timeout,
        poll_interval: Duration::from_secs(5),
        max_call_duration: Duration::from_secs(1800),
        pause_after_unknown: 5,
        sim: None,
    }
}

fn adapter(base_url: &str) -> Arc<dyn Provider> {
    provider::build(&config(base_url, Duration::from_secs(5)), &Clock::system()).unwrap()
}

async fn request() -> PlaceRequest {
    let mut variables = Map::new();
    variables.insert("first_name".into(), json!("Bo"));
    PlaceRequest {
        attempt_id: "att-0002".into(),
        to: "+31612345678".into(),
        from: Some("num-7".into()),
        agent_id: "assistant-9".into(),
        skill_id: None,
        customer_name: "Bo".into(),
        variables,
        permit: Budget::unmetered().take().await,
    }
}

fn expected_body() -> Value {
    json!({
        "destination": "+31612345678",
        "number_id": "num-7",
        "assistant_id": "assistant-9",
        "metadata": {"first_name": "Bo", "dialer_attempt_id": "att-0002"}
    })
}

async fn place_with(response: ResponseTemplate) -> PlaceResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/calls/outbound"))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let result = adapter(&server.uri()).place(&request().await).await;
    server.verify().await;
    assert!(
        !format!("{result:?}").contains(KEY),
        "key leaked: {result:?}"
    );
    result
}

#[tokio::test]
async fn place_sends_the_documented_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/calls/outbound"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_json(expected_body()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "call_id": "call-_+31612345678_abc", "status": "dialing"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let r = adapter(&server.uri()).place(&request().await).await;
    assert_eq!(
        r,
        PlaceResult::Placed {
            provider_call_id: "call-_+31612345678_abc".into(),
            provider_status: "dialing".into()
        }
    );
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body, expected_body());
}

#[tokio::test]
async fn rate_limited_with_retry_after_header() {
    let r = place_with(ResponseTemplate::new(429).insert_header("retry-after", "20")).await;
    match r {
        PlaceResult::NotPlaced { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(20)))
        }
        other => panic!("expected NotPlaced, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limited_with_retry_after_in_the_body() {
    let r = place_with(ResponseTemplate::new(429).set_body_json(
        json!({"error": "Rate limit exceeded", "message": "100 requests per minute", "retry_after": 42}),
    ))
    .await;
    match r {
        PlaceResult::NotPlaced { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(42)))
        }
        other => panic!("expected NotPlaced, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limited_with_rate_limit_reset() {
    let reset = (Utc::now() + chrono::Duration::seconds(50)).timestamp();
    let r = place_with(
        ResponseTemplate::new(429).insert_header("x-ratelimit-reset", reset.to_string()),
    )
    .await;
    match r {
        PlaceResult::NotPlaced {
            retry_after: Some(d),
            ..
        } => assert!(
            d > Duration::from_secs(40) && d <= Duration::from_secs(50),
            "{d:?}"
        ),
        other => panic!("expected NotPlaced with a delay, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_forbidden_and_payment_required_are_unusable() {
    for status in [401, 403, 402] {
        let r =
            place_with(ResponseTemplate::new(status).set_body_json(
                json!({"error": {"code": "err", "message": "nope", "type": "auth"}}),
            ))
            .await;
        assert!(matches!(r, PlaceResult::Unusable { .. }), "{status}: {r:?}");
    }
}

#[tokio::test]
async fn insufficient_credits_in_a_validation_answer_is_unusable() {
    let r = place_with(
        ResponseTemplate::new(400).set_body_json(json!({"error": "Insufficient credits"})),
    )
    .await;
    assert!(matches!(r, PlaceResult::Unusable { .. }), "{r:?}");
}

#[tokio::test]
async fn unknown_assistant_is_unusable() {
    let r = place_with(ResponseTemplate::new(404).set_body_json(
        json!({"error": {"code": "not_found", "message": "Assistant not found", "param": "assistant_id"}}),
    ))
    .await;
    assert!(matches!(r, PlaceResult::Unusable { .. }), "{r:?}");
}

#[tokio::test]
async fn invalid_destination_refuses_the_number() {
    let r = place_with(ResponseTemplate::new(422).set_body_json(
        json!({"error": "Validation failed", "details": {"destination": "not a valid phone number"}}),
    ))
    .await;
    assert!(
        matches!(
            r,
            PlaceResult::Rejected {
                number_refused: true,
                ..
            }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn other_validation_error_does_not_refuse_the_number() {
    let r = place_with(ResponseTemplate::new(422).set_body_json(
        json!({"error": {"code": "invalid", "message": "first_message too long", "param": "first_message"}}),
    ))
    .await;
    assert!(
        matches!(
            r,
            PlaceResult::Rejected {
                number_refused: false,
                ..
            }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn server_error_and_malformed_body_are_unknown() {
    let r = place_with(ResponseTemplate::new(503)).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
    let r = place_with(ResponseTemplate::new(200).set_body_string("<html>ok</html>")).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
}

#[tokio::test]
async fn a_response_that_never_comes_is_unknown_and_sent_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/calls/outbound"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true, "call_id": "late", "status": "dialing"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let p = provider::build(
        &config(&server.uri(), Duration::from_millis(300)),
        &Clock::system(),
    )
    .unwrap();
    let r = p.place(&request().await).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_not_placed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let r = adapter(&format!("http://127.0.0.1:{port}"))
        .place(&request().await)
        .await;
    assert!(matches!(r, PlaceResult::NotPlaced { .. }), "{r:?}");
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn poll_gets_by_id_and_lists_for_lost_ids() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls/call-1"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "call-1", "caller_phone": "+31600000001", "status": "ended",
            "started_at": "2026-11-21T10:00:05Z", "ended_at": "2026-11-21T10:03:05Z",
            "duration_seconds": 180, "summary": "Talked", "end_reason": "user_hangup",
            "messages": [{"role": "assistant", "content": "Hello"}],
            "updated_at": "2026-11-21T10:03:06Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls/call-gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "Call not found"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls"))
        .and(query_param("start_date", "2026-11-21T09:58:00Z"))
        .and(query_param("end_date", "2026-11-21T10:15:00Z"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "calls": [
                // Someone else's call to the same number, long before: not it.
                {"id": "old", "caller_phone": "+31600000002", "status": "ended",
                 "created_at": "2026-11-21T09:30:00Z", "duration_seconds": 0},
                // Echoes another attempt's id: never given to a target by number.
                {"id": "other", "caller_phone": "+31600000002", "status": "ringing",
                 "created_at": "2026-11-21T10:00:01Z", "metadata": {"dialer_attempt_id": "zzz"}},
                {"id": "by-number", "caller_phone": "+31600000002", "status": "ended",
                 "created_at": "2026-11-21T10:00:02Z", "duration_seconds": 0},
                {"id": "by-meta", "caller_phone": "+31600000009", "status": "in-progress",
                 "created_at": "2026-11-21T10:10:00Z", "metadata": {"dialer_attempt_id": "a4"}}
            ],
            "pagination": {"total": 4, "limit": 100, "offset": 0}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let p = adapter(&server.uri());
    let targets = [
        PollTarget {
            attempt_id: "a1".into(),
            provider_call_id: Some("call-1".into()),
            to_number: "+31600000001".into(),
            requested_at: at("2026-11-21T10:00:00Z"),
        },
        PollTarget {
            attempt_id: "a2".into(),
            provider_call_id: Some("call-gone".into()),
            to_number: "+31600000005".into(),
            requested_at: at("2026-11-21T10:00:00Z"),
        },
        PollTarget {
            attempt_id: "a3".into(),
            provider_call_id: None,
            to_number: "+31600000002".into(),
            requested_at: at("2026-11-21T10:00:00Z"),
        },
        PollTarget {
            attempt_id: "a4".into(),
            provider_call_id: None,
            to_number: "+31600000009".into(),
            requested_at: at("2026-11-21T10:10:00Z"),
        },
    ];
    let polled = p.poll(&targets).await.unwrap();
    server.verify().await;
    let find = |a: &str| polled.iter().find(|x| x.attempt_id == a).map(|x| &x.status);
    let s1 = find("a1").unwrap();
    assert_eq!(s1.outcome, Some(Outcome::Completed));
    assert_eq!(s1.hangup_cause.as_deref(), Some("user_hangup"));
    assert_eq!(s1.duration_seconds, Some(180));
    assert!(s1.transcript.is_some());
    assert_eq!(s1.status_at, Some(at("2026-11-21T10:03:06Z")));
    assert!(find("a2").is_none());
    let s3 = find("a3").unwrap();
    assert_eq!(s3.provider_call_id.as_deref(), Some("by-number"));
    assert_eq!(s3.outcome, Some(Outcome::NoAnswer));
    let s4 = find("a4").unwrap();
    assert_eq!(s4.provider_call_id.as_deref(), Some("by-meta"));
    assert_eq!(s4.outcome, None);
    assert_eq!(polled.len(), 3);
}

#[tokio::test]
async fn poll_rate_limited_and_payment_required() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls/c1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "5"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls/c1"))
        .respond_with(
            ResponseTemplate::new(402).set_body_json(json!({"error": "Insufficient credits"})),
        )
        .mount(&server)
        .await;
    let p = adapter(&server.uri());
    let targets = [PollTarget {
        attempt_id: "a1".into(),
        provider_call_id: Some("c1".into()),
        to_number: "+31600000001".into(),
        requested_at: Utc::now(),
    }];
    assert!(matches!(
        p.poll(&targets).await,
        Err(ProviderError::RateLimited(Some(d))) if d == Duration::from_secs(5)
    ));
    assert!(matches!(
        p.poll(&targets).await,
        Err(ProviderError::Unusable(_))
    ));
}

#[tokio::test]
async fn probe_lists_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls"))
        .and(query_param("limit", "1"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"calls": [], "pagination": {"total": 0, "limit": 1, "offset": 0}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    assert!(adapter(&server.uri()).probe().await.is_ok());
    server.verify().await;

    let broke = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(402).set_body_json(json!({"error": "Insufficient credits"})),
        )
        .mount(&broke)
        .await;
    assert!(matches!(
        adapter(&broke.uri()).probe().await,
        Err(ProviderError::Unusable(_))
    ));
}

/// Places against a server whose place endpoint answers `code` with a
/// `Location` on the same server or, with `other_host`, on a second server.
/// Both targets would accept the call, so following the redirect would place
/// it (again) and show the bearer token to whoever is behind `Location`.
async fn place_redirected(code: u16, other_host: bool) -> PlaceResult {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    let target = if other_host { &other } else { &server };
    let location = format!("{}/api/v1/calls/outbound-elsewhere", target.uri());
    Mock::given(method("POST"))
        .and(path("/api/v1/calls/outbound"))
        .respond_with(ResponseTemplate::new(code).insert_header("location", location.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/calls/outbound-elsewhere"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "call_id": "call-redirected", "status": "dialing"}),
        ))
        .expect(0)
        .mount(target)
        .await;
    let result = adapter(&server.uri()).place(&request().await).await;
    server.verify().await;
    other.verify().await;
    assert!(other.received_requests().await.unwrap().is_empty());
    assert!(
        !format!("{result:?}").contains(KEY),
        "key leaked: {result:?}"
    );
    result
}

#[tokio::test]
async fn a_redirected_place_is_unknown_and_not_followed() {
    for (code, other_host) in [(307, false), (308, false), (307, true), (308, true)] {
        let r = place_redirected(code, other_host).await;
        assert!(
            matches!(r, PlaceResult::Unknown { .. }),
            "{code} (other host: {other_host}): {r:?}"
        );
    }
}
