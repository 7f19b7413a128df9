//! RevRing adapter against a real HTTP server: the exact request sent, the
//! classification of every kind of answer, and polling by batch-get.

use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use dialer::config::{ProviderConfig, ProviderKind, Secret};
use dialer::domain::Outcome;
use dialer::pacing::Budget;
use dialer::provider::{self, PlaceRequest, PlaceResult, PollTarget, Provider, ProviderError};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "rr-secret-key-0001";

fn config(base_url: &str, timeout: Duration) -> ProviderConfig {
    ProviderConfig {
        name: "revring".into(),
        kind: ProviderKind::RevRing,
        base_url: base_url.into(),
        api_key: Some(Secret::new(KEY)),
        webhook_secret: Some(Secret::new("hook-token")),
        username: None,
        requests_per_minute: 600,
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
    variables.insert("first_name".into(), json!("Ann"));
    variables.insert("plan".into(), json!("gold"));
    PlaceRequest {
        attempt_id: "att-0001".into(),
        to: "+15551230100".into(),
        from: Some("+15551230001".into()),
        agent_id: "agent-42".into(),
        skill_id: None,
        customer_name: "Ann".into(),
        variables,
        permit: Budget::unmetered().take().await,
    }
}

fn expected_body() -> Value {
    json!({
        "agentId": "agent-42",
        "toNumber": "+15551230100",
        "fromNumber": "+15551230001",
        "variables": {"first_name": "Ann", "plan": "gold", "dialer_attempt_id": "att-0001"},
        "skipQueue": true
    })
}

/// Places against a server answering every request with `response`, checks
/// the server got exactly one request, and returns the classification.
async fn place_with(response: ResponseTemplate) -> PlaceResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/calls"))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let result = adapter(&server.uri()).place(&request().await).await;
    server.verify().await;
    assert_no_key(&format!("{result:?}"));
    result
}

fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "api key leaked: {text}");
}

#[tokio::test]
async fn place_sends_the_documented_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/calls"))
        .and(header("x-api-key", KEY))
        .and(header("content-type", "application/json"))
        .and(body_json(expected_body()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"data": {"id": "call-1", "status": "QUEUED"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let result = adapter(&server.uri()).place(&request().await).await;
    assert_eq!(
        result,
        PlaceResult::Placed {
            provider_call_id: "call-1".into(),
            provider_status: "QUEUED".into()
        }
    );
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert!(received[0].headers.get("authorization").is_none());
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body, expected_body());
}

#[tokio::test]
async fn rate_limited_with_retry_after_seconds_is_not_placed() {
    let r = place_with(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "12")
            .set_body_json(json!({"error": "Concurrency limit reached"})),
    )
    .await;
    match r {
        PlaceResult::NotPlaced { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(12)))
        }
        other => panic!("expected NotPlaced, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limited_with_retry_after_date_is_not_placed() {
    let at = Utc::now() + chrono::Duration::seconds(90);
    let r = place_with(ResponseTemplate::new(429).insert_header(
        "retry-after",
        at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    ))
    .await;
    match r {
        PlaceResult::NotPlaced {
            retry_after: Some(d),
            ..
        } => assert!(
            d > Duration::from_secs(80) && d <= Duration::from_secs(90),
            "{d:?}"
        ),
        other => panic!("expected NotPlaced with a delay, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_is_unusable_and_hides_the_key() {
    // The body echoes the key: it must not reach the message.
    let r = place_with(ResponseTemplate::new(401).set_body_json(
        json!({"error": {"code": "unauthorized", "message": format!("invalid key {KEY}")}}),
    ))
    .await;
    assert!(matches!(r, PlaceResult::Unusable { .. }), "{r:?}");
}

#[tokio::test]
async fn payment_required_is_unusable() {
    let r = place_with(
        ResponseTemplate::new(402).set_body_json(json!({"error": "Insufficient credits"})),
    )
    .await;
    assert!(matches!(r, PlaceResult::Unusable { .. }), "{r:?}");
}

#[tokio::test]
async fn unknown_agent_is_unusable() {
    let r =
        place_with(ResponseTemplate::new(404).set_body_json(json!({"error": "Agent not found"})))
            .await;
    assert!(matches!(r, PlaceResult::Unusable { .. }), "{r:?}");
}

#[tokio::test]
async fn validation_error_on_the_number_refuses_the_number() {
    let r = place_with(ResponseTemplate::new(422).set_body_json(json!({
        "error": {"code": "invalid_param", "message": "must be E.164", "param": "toNumber", "type": "validation"}
    })))
    .await;
    match r {
        PlaceResult::Rejected {
            message,
            number_refused,
        } => {
            assert!(number_refused);
            assert!(message.contains("must be E.164"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn validation_error_elsewhere_rejects_without_refusing_the_number() {
    let r =
        place_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "Bad Request", "message": "variables must be an object"}),
        ))
        .await;
    match r {
        PlaceResult::Rejected {
            message,
            number_refused,
        } => {
            assert!(!number_refused);
            assert!(message.contains("variables must be an object"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn server_error_is_unknown() {
    let r = place_with(ResponseTemplate::new(500).set_body_string("boom")).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
}

#[tokio::test]
async fn malformed_success_body_is_unknown() {
    let r = place_with(ResponseTemplate::new(200).set_body_string("{\"data\": {\"id\": ")).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
}

#[tokio::test]
async fn success_without_an_id_is_unknown() {
    let r = place_with(ResponseTemplate::new(200).set_body_json(json!({"data": {}}))).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
}

#[tokio::test]
async fn a_response_that_never_comes_is_unknown_and_sent_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/calls"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"id": "late", "status": "QUEUED"}}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let p = provider::build(
        &config(&server.uri(), Duration::from_millis(300)),
        &Clock::system(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let r = p.place(&request().await).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Give a re-send the chance to show up before counting.
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
    assert_no_key(&format!("{r:?}"));
}

fn target(attempt: &str, id: Option<&str>) -> PollTarget {
    PollTarget {
        attempt_id: attempt.into(),
        provider_call_id: id.map(String::from),
        to_number: "+15551230100".into(),
        requested_at: Utc::now(),
    }
}

#[tokio::test]
async fn poll_uses_batch_get_and_maps_statuses() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/calls/batch-get"))
        .and(header("x-api-key", KEY))
        .and(body_json(
            json!({"ids": ["c1", "c2", "c3"], "minimal": false}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": "c1", "status": "COMPLETED", "startedAt": "2026-11-21T10:00:00Z",
             "endedAt": "2026-11-21T10:02:00Z", "updatedAt": "2026-11-21T10:02:01Z",
             "durationSeconds": 120, "hangupCause": "USER_ENDED", "summary": "Fine",
             "variables": {"dialer_attempt_id": "a1"}},
            {"id": "c2", "status": "COMPLETED", "startedAt": null, "durationSeconds": null,
             "hangupCause": "SILENCE_TIMEOUT", "variables": {"dialer_attempt_id": "a2"}},
            {"id": "c3", "status": "ONGOING", "startedAt": "2026-11-21T10:00:00Z"}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let p = adapter(&server.uri());
    assert_eq!(p.poll_batch_size(), 100);
    let targets = [
        target("a1", Some("c1")),
        target("a2", Some("c2")),
        target("lost", None),
        target("a3", Some("c3")),
    ];
    let polled = p.poll(&targets).await.unwrap();
    server.verify().await;
    let find = |a: &str| polled.iter().find(|x| x.attempt_id == a).map(|x| &x.status);
    let s1 = find("a1").unwrap();
    assert_eq!(s1.outcome, Some(Outcome::Completed));
    assert_eq!(s1.duration_seconds, Some(120));
    assert_eq!(s1.attempt_id.as_deref(), Some("a1"));
    assert_eq!(
        s1.status_at,
        Some("2026-11-21T10:02:01Z".parse::<DateTime<Utc>>().unwrap())
    );
    assert_eq!(find("a2").unwrap().outcome, Some(Outcome::NoAnswer));
    assert_eq!(find("a3").unwrap().outcome, None);
    assert_eq!(find("a3").unwrap().provider_status, "ONGOING");
    assert!(find("lost").is_none());
    assert_eq!(polled.len(), 3);
}

#[tokio::test]
async fn poll_without_ids_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .expect(0)
        .mount(&server)
        .await;
    let polled = adapter(&server.uri())
        .poll(&[target("lost", None)])
        .await
        .unwrap();
    assert!(polled.is_empty());
    server.verify().await;
}

#[tokio::test]
async fn poll_rate_limited_and_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/calls/batch-get"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/calls/batch-get"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "Unauthorized"})))
        .mount(&server)
        .await;
    let p = adapter(&server.uri());
    let targets = [target("a1", Some("c1"))];
    match p.poll(&targets).await {
        Err(ProviderError::RateLimited(d)) => assert_eq!(d, Some(Duration::from_secs(30))),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    match p.poll(&targets).await {
        Err(ProviderError::Unusable(m)) => assert_no_key(&m),
        other => panic!("expected Unusable, got {other:?}"),
    }
}

#[tokio::test]
async fn probe_asks_for_a_call_that_cannot_exist() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/calls/00000000-0000-0000-0000-000000000000"))
        .and(header("x-api-key", KEY))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "Call not found"})))
        .expect(1)
        .mount(&server)
        .await;
    assert!(adapter(&server.uri()).probe().await.is_ok());
    server.verify().await;

    let refused = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&refused)
        .await;
    assert!(matches!(
        adapter(&refused.uri()).probe().await,
        Err(ProviderError::Unusable(_))
    ));
}

/// Places against a server whose place endpoint answers `code` with a
/// `Location` on the same server or, with `other_host`, on a second server.
/// Both targets would accept the call, so following the redirect would place
/// it (again) and show the key to whoever is behind `Location`.
async fn place_redirected(code: u16, other_host: bool) -> PlaceResult {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    let target = if other_host { &other } else { &server };
    let location = format!("{}/v1/calls-elsewhere", target.uri());
    Mock::given(method("POST"))
        .and(path("/v1/calls"))
        .respond_with(ResponseTemplate::new(code).insert_header("location", location.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/calls-elsewhere"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"data": {"id": "call-redirected", "status": "QUEUED"}})),
        )
        .expect(0)
        .mount(target)
        .await;
    let result = adapter(&server.uri()).place(&request().await).await;
    server.verify().await;
    other.verify().await;
    assert!(other.received_requests().await.unwrap().is_empty());
    assert_no_key(&format!("{result:?}"));
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

#[tokio::test]
async fn a_redirected_probe_or_poll_is_an_error() {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/calls/00000000-0000-0000-0000-000000000000"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/v1/calls/x", other.uri()).as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/calls/batch-get"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            format!("{}/v1/calls/batch-get", other.uri()).as_str(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    // Answers as a healthy account would, so a followed redirect would pass.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "Call not found"})))
        .mount(&other)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(&other)
        .await;
    let p = adapter(&server.uri());
    let probed = p.probe().await;
    assert!(matches!(probed, Err(ProviderError::Other(_))), "{probed:?}");
    let polled = p.poll(&[target("a1", Some("c1"))]).await;
    assert!(matches!(polled, Err(ProviderError::Other(_))), "{polled:?}");
    server.verify().await;
    assert!(other.received_requests().await.unwrap().is_empty());
}
