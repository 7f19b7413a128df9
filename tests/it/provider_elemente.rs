//! Elemente adapter against a real HTTP server: the exact request sent, the
//! classification of every kind of answer, and polling by listing.

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

const PASSWORD: &str = "el-pass-123";
/// base64("acme:el-pass-123").
const BASIC: &str = "Basic YWNtZTplbC1wYXNzLTEyMw==";

fn config(base_url: &str, timeout: Duration) -> ProviderConfig {
    ProviderConfig {
        name: "elemente".into(),
        kind: ProviderKind::Elemente,
        base_url: base_url.into(),
        api_key: Some(Secret::new(PASSWORD)),
        webhook_secret: None,
        username: Some("acme".into()),
        requests_per_minute: 60,
        max_concurrent_calls: 5,
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
    variables.insert("first_name".into(), json!("Cy"));
    variables.insert("visits".into(), json!(3));
    PlaceRequest {
        attempt_id: "att-0003".into(),
        to: "+4915112345678".into(),
        from: None,
        agent_id: "agent-el".into(),
        skill_id: Some("skill-el".into()),
        customer_name: "Cy Doe".into(),
        variables,
        permit: Budget::unmetered().take().await,
    }
}

fn expected_body() -> Value {
    json!({
        "agentId": "agent-el",
        "channel": "call",
        "skillId": "skill-el",
        "customerName": "Cy Doe",
        "customerPhone": "+4915112345678",
        "customerOverride": {"customFields": {
            "first_name": "Cy", "visits": 3, "dialer_attempt_id": "att-0003"
        }}
    })
}

async fn place_with(response: ResponseTemplate) -> PlaceResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/calls"))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let result = adapter(&server.uri()).place(&request().await).await;
    server.verify().await;
    assert!(
        !format!("{result:?}").contains(PASSWORD),
        "password leaked: {result:?}"
    );
    result
}

#[tokio::test]
async fn place_sends_the_documented_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/calls"))
        .and(header("authorization", BASIC))
        .and(body_json(expected_body()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "el-1", "status": "queued", "agentPhone": "+4930000000",
            "customerPhone": "+4915112345678", "agentId": "agent-el", "customerId": "cu-1",
            "skillId": "skill-el", "customerName": "Cy Doe", "transcription": "", "recordingUrl": ""
        })))
        .expect(1)
        .mount(&server)
        .await;
    let r = adapter(&server.uri()).place(&request().await).await;
    assert_eq!(
        r,
        PlaceResult::Placed {
            provider_call_id: "el-1".into(),
            provider_status: "queued".into()
        }
    );
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body, expected_body());
}

#[tokio::test]
async fn missing_skill_is_unusable_without_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let mut req = request().await;
    req.skill_id = None;
    let r = adapter(&server.uri()).place(&req).await;
    assert!(matches!(r, PlaceResult::Unusable { .. }), "{r:?}");
    server.verify().await;
}

#[tokio::test]
async fn rate_limited_is_not_placed() {
    let r = place_with(ResponseTemplate::new(429).insert_header("retry-after", "3")).await;
    match r {
        PlaceResult::NotPlaced { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)))
        }
        other => panic!("expected NotPlaced, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_and_payment_required_are_unusable() {
    for status in [401, 402] {
        let r = place_with(
            ResponseTemplate::new(status)
                .set_body_json(json!({"error": "Unauthorized", "message": "bad credentials"})),
        )
        .await;
        assert!(matches!(r, PlaceResult::Unusable { .. }), "{status}: {r:?}");
    }
}

#[tokio::test]
async fn unknown_skill_is_unusable() {
    let r =
        place_with(ResponseTemplate::new(404).set_body_json(json!({"error": "Skill not found"})))
            .await;
    assert!(matches!(r, PlaceResult::Unusable { .. }), "{r:?}");
}

#[tokio::test]
async fn invalid_customer_phone_refuses_the_number() {
    let r = place_with(ResponseTemplate::new(422).set_body_json(json!({
        "error": {"code": "invalid", "message": "customerPhone is not a valid number", "param": "customerPhone"}
    })))
    .await;
    match r {
        PlaceResult::Rejected {
            number_refused,
            message,
        } => {
            assert!(number_refused);
            assert!(message.contains("customerPhone is not a valid number"));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn server_error_and_malformed_body_are_unknown() {
    let r = place_with(ResponseTemplate::new(500)).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
    let r = place_with(ResponseTemplate::new(200).set_body_string("{oops")).await;
    assert!(matches!(r, PlaceResult::Unknown { .. }), "{r:?}");
}

#[tokio::test]
async fn a_response_that_never_comes_is_unknown_and_sent_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/calls"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "late", "status": "queued"}))
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
async fn poll_lists_by_date_range_and_matches_by_id_and_number() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls"))
        .and(header("authorization", BASIC))
        .and(query_param("dateRange[from]", "2026-11-21T09:58:00Z"))
        .and(query_param("dateRange[to]", "2026-11-21T10:06:00Z"))
        .and(query_param("channel", "call"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": "el-1", "status": "completed", "customerPhone": "+4915100000001",
             "transcription": "Hallo", "recordingUrl": "https://rec/el-1",
             "updatedAt": "2026-11-21T10:04:00Z"},
            {"id": "el-2", "status": "expired", "customerPhone": "+4915100000002"},
            {"id": "el-3", "status": "ringing", "customerPhone": "+4915100000003",
             "createdAt": "2026-11-21T10:01:00Z"},
            {"id": "el-4", "status": "voicemail", "customerPhone": "+4915100000004",
             "createdAt": "2026-11-21T10:00:30Z",
             "customerOverride": {"customFields": {"dialer_attempt_id": "a4"}}}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let t = |attempt: &str, id: Option<&str>, to: &str, requested: &str| PollTarget {
        attempt_id: attempt.into(),
        provider_call_id: id.map(String::from),
        to_number: to.into(),
        requested_at: at(requested),
    };
    let targets = [
        t("a1", Some("el-1"), "+4915100000001", "2026-11-21T10:00:00Z"),
        t("a2", Some("el-2"), "+4915100000002", "2026-11-21T10:00:00Z"),
        t("a3", None, "+4915100000003", "2026-11-21T10:01:00Z"),
        t("a4", None, "+4915100000004", "2026-11-21T10:00:00Z"),
        t(
            "a5",
            Some("el-missing"),
            "+4915100000005",
            "2026-11-21T10:00:00Z",
        ),
    ];
    let polled = adapter(&server.uri()).poll(&targets).await.unwrap();
    server.verify().await;
    let find = |a: &str| polled.iter().find(|x| x.attempt_id == a).map(|x| &x.status);
    let s1 = find("a1").unwrap();
    assert_eq!(s1.outcome, Some(Outcome::Completed));
    assert_eq!(s1.recording_url.as_deref(), Some("https://rec/el-1"));
    assert_eq!(s1.transcript, Some(json!("Hallo")));
    assert_eq!(s1.status_at, Some(at("2026-11-21T10:04:00Z")));
    assert_eq!(find("a2").unwrap().outcome, Some(Outcome::NoAnswer));
    let s3 = find("a3").unwrap();
    assert_eq!(s3.provider_call_id.as_deref(), Some("el-3"));
    assert_eq!(s3.outcome, None);
    let s4 = find("a4").unwrap();
    assert_eq!(s4.provider_call_id.as_deref(), Some("el-4"));
    assert_eq!(s4.outcome, Some(Outcome::Voicemail));
    assert_eq!(s4.attempt_id.as_deref(), Some("a4"));
    assert!(find("a5").is_none());
    assert_eq!(polled.len(), 4);
}

#[tokio::test]
async fn poll_rate_limited_and_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "9"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let p = adapter(&server.uri());
    let targets = [PollTarget {
        attempt_id: "a1".into(),
        provider_call_id: Some("el-1".into()),
        to_number: "+4915100000001".into(),
        requested_at: Utc::now(),
    }];
    assert!(matches!(
        p.poll(&targets).await,
        Err(ProviderError::RateLimited(Some(d))) if d == Duration::from_secs(9)
    ));
    assert!(matches!(
        p.poll(&targets).await,
        Err(ProviderError::Unusable(_))
    ));
}

#[tokio::test]
async fn echoed_credentials_are_scrubbed_from_messages() {
    let r = place_with(ResponseTemplate::new(401).set_body_json(json!({
        "error": format!("bad header {BASIC} for password {PASSWORD}")
    })))
    .await;
    match r {
        PlaceResult::Unusable { message } => {
            assert!(!message.contains("YWNtZTplbC1wYXNzLTEyMw=="), "{message}");
            assert!(!message.contains(PASSWORD), "{message}");
        }
        other => panic!("expected Unusable, got {other:?}"),
    }
}

#[tokio::test]
async fn probe_lists_recent_calls() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/calls"))
        .and(header("authorization", BASIC))
        .and(query_param("channel", "call"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    assert!(adapter(&server.uri()).probe().await.is_ok());
    server.verify().await;

    let refused = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403))
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
/// it (again) and show the Basic credentials to whoever is behind `Location`.
async fn place_redirected(code: u16, other_host: bool) -> PlaceResult {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    let target = if other_host { &other } else { &server };
    let location = format!("{}/api/v1/calls-elsewhere", target.uri());
    Mock::given(method("POST"))
        .and(path("/api/v1/calls"))
        .respond_with(ResponseTemplate::new(code).insert_header("location", location.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/calls-elsewhere"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "call-redirected", "status": "queued"})),
        )
        .expect(0)
        .mount(target)
        .await;
    let result = adapter(&server.uri()).place(&request().await).await;
    server.verify().await;
    other.verify().await;
    assert!(other.received_requests().await.unwrap().is_empty());
    assert!(
        !format!("{result:?}").contains(PASSWORD),
        "password leaked: {result:?}"
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
