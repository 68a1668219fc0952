//! Wire tests against wiremock: the token exchange, report paging, metadata validation, quota and errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::Verifier;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use growthflow_core::auth::TokenProvider;
use growthflow_core::connector::{Connector, ReadRequest, Window};
use growthflow_core::http::{ClientOptions, TestClock};
use growthflow_core::testing::{assert_no_unexpected, mount_catch_all, read_pages};
use growthflow_core::Error;
use growthflow_ga4::auth::{ServiceAccountKey, ServiceAccountToken};
use growthflow_ga4::config::ReportConfig;
use growthflow_ga4::{Ga4, Ga4Config};

const PEM: &str = include_str!("fixtures/TEST_ONLY_not_a_secret_rsa_key.pem");
const RUN: &str = "/v1beta/properties/123456789:runReport";
const META: &str = "/v1beta/properties/123456789/metadata";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key_json(server: &MockServer) -> Value {
    json!({
        "type": "service_account",
        "project_id": "growthflow-test",
        "private_key_id": "kid-1",
        "private_key": PEM,
        "client_email": "sync@growthflow-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{}/token", server.uri()),
    })
}

fn key_file(server: &MockServer, test: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ga4-{test}-key.json"));
    std::fs::write(&path, key_json(server).to_string()).unwrap();
    path
}

async fn mount_token(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token":"ya29.c.mock","expires_in":3599,"token_type":"Bearer"}),
        ))
        .mount(server)
        .await;
}

async fn mount_metadata(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(META))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("metadata.json")))
        .mount(server)
        .await;
}

fn connector(server: &MockServer, test: &str, clock: &TestClock) -> Ga4 {
    let mut config =
        Ga4Config::with_service_account("properties/123456789", key_file(server, test));
    config.base_url = Some(server.uri());
    Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(clock.clone())),
    )
    .unwrap()
}

fn one_day(day: u32) -> ReadRequest {
    ReadRequest {
        stream: "traffic_daily".into(),
        state: None,
        start: Utc.with_ymd_and_hms(2024, 6, day, 0, 0, 0).unwrap(),
        window: Some(Window {
            since: Utc.with_ymd_and_hms(2024, 6, day, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2024, 6, day + 1, 0, 0, 0).unwrap(),
        }),
    }
}

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn jwt_is_signed_with_the_right_claims_and_the_token_is_cached() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let catch_all = mount_catch_all(&server).await;
    let key = ServiceAccountKey::from_json(key_json(&server).to_string().as_bytes(), "k").unwrap();
    let clock = TestClock::new();
    let provider =
        ServiceAccountToken::new(&key, &ClientOptions::with_clock(Arc::new(clock)), "k").unwrap();
    assert!(!format!("{provider:?}").contains("PRIVATE KEY"));

    use secrecy::ExposeSecret;
    assert_eq!(
        provider.token().await.unwrap().expose_secret(),
        "ya29.c.mock"
    );
    assert_eq!(
        provider.token().await.unwrap().expose_secret(),
        "ya29.c.mock"
    );
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1, "the token is cached");

    let form: Vec<(String, String)> = url::form_urlencoded::parse(&reqs[0].body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        form[0],
        (
            "grant_type".into(),
            "urn:ietf:params:oauth:grant-type:jwt-bearer".into()
        )
    );
    assert_eq!(form[1].0, "assertion");
    let jwt = &form[1].1;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        b64_json(parts[0]),
        json!({"alg":"RS256","typ":"JWT","kid":"kid-1"})
    );
    let claims = b64_json(parts[1]);
    assert_eq!(
        claims["iss"],
        "sync@growthflow-test.iam.gserviceaccount.com"
    );
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/analytics.readonly"
    );
    assert_eq!(claims["aud"], format!("{}/token", server.uri()));
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > iat && exp - iat <= 3600);
    assert!((Utc::now().timestamp() - iat).abs() < 120);

    let public = RsaPrivateKey::from_pkcs8_pem(PEM).unwrap().to_public_key();
    let verifier = VerifyingKey::<Sha256>::new(public);
    let sig = Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
    verifier
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("signature verifies with the public key");

    assert!(provider.invalidate().await.unwrap());
    provider.token().await.unwrap();
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "refetched after invalidate"
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn reports_page_by_offset_and_parse_typed_metrics() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .and(header("authorization", "Bearer ya29.c.mock"))
        .and(body_partial_json(
            json!({"offset":"0","limit":"2","returnPropertyQuota":true,
            "dateRanges":[{"startDate":"2024-06-01","endDate":"2024-06-01"}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("run_report_page1.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .and(body_partial_json(json!({"offset":"2","limit":"2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("run_report_page2.json")))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::new();
    let ga4 = connector(&server, "paging", &clock).with_page_size(2);
    let pages = read_pages(&ga4, one_day(1)).await.unwrap();
    assert_eq!(pages.len(), 2);
    let records: Vec<_> = pages.iter().flat_map(|p| p.records.clone()).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0].id,
        "123456789:2024-06-01:(direct)\u{1f}(none)\u{1f}(direct)\u{1f}Direct"
    );
    assert_eq!(records[0].cursor.as_deref(), Some("2024-06-01"));
    assert_eq!(records[0].payload["metrics"]["purchaseRevenue"], "842.4");
    assert_eq!(records[2].payload["metrics"]["ecommercePurchases"], "58.5");
    assert_eq!(records[2].payload["metrics"]["purchaseRevenue"], "6720.9");
    assert_eq!(
        records[2].payload["dimensions"]["sessionDefaultChannelGroup"],
        "Email"
    );
    assert_eq!(records[2].payload["metadata"]["currencyCode"], "USD");
    assert!(clock.sleeps().is_empty());
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn incremental_reads_checkpoint_each_day_and_restated_days_keep_ids() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "dimensionHeaders":[{"name":"date"},{"name":"sessionSource"}],
            "metricHeaders":[{"name":"sessions","type":"TYPE_INTEGER"}],
            "metadata":{"currencyCode":"USD"}})))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let ga4 = connector(&server, "incremental", &TestClock::new());
    let today = Utc::now().date_naive();
    let cursor = (today - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let pages = read_pages(
        &ga4,
        ReadRequest {
            stream: "traffic_daily".into(),
            state: Some(json!({ "cursor": cursor })),
            start: Utc::now(),
            window: None,
        },
    )
    .await
    .unwrap();
    // cursor − 3 days of lookback, through today: 5 days, one empty page each, each checkpointed.
    assert_eq!(pages.len(), 5);
    let first = (today - chrono::Duration::days(4))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(pages[0].checkpoint, Some(json!({ "cursor": first })));
    assert_eq!(
        pages[4].checkpoint,
        Some(json!({ "cursor": today.format("%Y-%m-%d").to_string() }))
    );
    assert!(pages.iter().all(|p| p.records.is_empty()));
    assert_no_unexpected(catch_all).await;

    // A restated day gives the same ids with new values, so the upsert replaces the rows.
    let mut restated = fixture("run_report_page1.json");
    restated["rows"][0]["metricValues"][0]["value"] = "530".into();
    let before = growthflow_ga4::streams::records("1", &fixture("run_report_page1.json")).unwrap();
    let after = growthflow_ga4::streams::records("1", &restated).unwrap();
    assert_eq!(before[0].id, after[0].id);
    assert_eq!(after[0].payload["metrics"]["sessions"], "530");
}

#[tokio::test]
async fn metadata_validation_names_the_wrong_metric() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let catch_all = mount_catch_all(&server).await;
    let mut config = Ga4Config::with_service_account("123456789", key_file(&server, "metadata"));
    config.base_url = Some(server.uri());
    config.reports = vec![ReportConfig {
        name: "by_country".into(),
        dimensions: vec!["country".into()],
        metrics: vec!["sessions".into(), "conversions".into()],
        dimension_filter: None,
    }];
    let ga4 = Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(TestClock::new())),
    )
    .unwrap();
    assert!(ga4.streams().iter().any(|s| s.name == "report_by_country"));
    let mut req = one_day(1);
    req.stream = "report_by_country".into();
    let err = read_pages(&ga4, req).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{msg}");
    assert!(msg.contains("sources.web.reports[0].metrics"), "{msg}");
    assert!(
        msg.contains("\"conversions\"") && msg.contains("keyEvents"),
        "{msg}"
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn low_hourly_quota_slows_down() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let mut low = fixture("run_report_page2.json");
    low["rowCount"] = 1.into();
    low["propertyQuota"] = json!({"tokensPerHour":{"consumed":12,"remaining":900},"tokensPerDay":{"consumed":12,"remaining":150000}});
    Mock::given(method("POST"))
        .and(path(RUN))
        .respond_with(ResponseTemplate::new(200).set_body_json(low))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::new();
    let ga4 = connector(&server, "hourly", &clock);
    let mut req = one_day(1);
    req.window.as_mut().unwrap().until = Utc.with_ymd_and_hms(2024, 6, 3, 0, 0, 0).unwrap();
    let pages = read_pages(&ga4, req).await.unwrap();
    assert_eq!(pages.len(), 2);
    assert!(
        clock.sleeps().contains(&Duration::from_secs(300)),
        "{:?}",
        clock.sleeps()
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn daily_quota_stops_and_429_backs_off() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .and(body_partial_json(
            json!({"dateRanges":[{"startDate":"2024-06-01"}]}),
        ))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"code":429,
            "message":"Exhausted property tokens per day quota.","status":"RESOURCE_EXHAUSTED"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .and(body_partial_json(
            json!({"dateRanges":[{"startDate":"2024-06-02"}]}),
        ))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"code":429,
            "message":"Exhausted concurrent requests quota.","status":"RESOURCE_EXHAUSTED"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let mut one_row = fixture("run_report_page2.json");
    one_row["rowCount"] = 1.into();
    Mock::given(method("POST"))
        .and(path(RUN))
        .and(body_partial_json(
            json!({"dateRanges":[{"startDate":"2024-06-02"}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(one_row))
        .with_priority(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::new();
    let ga4 = connector(&server, "quota", &clock);
    let err = read_pages(&ga4, one_day(1)).await.unwrap_err();
    assert!(matches!(err, Error::QuotaExhausted { .. }), "{err}");
    assert!(err.to_string().contains("123456789"), "{err}");

    let mut second = one_day(2);
    second.window.as_mut().unwrap().until = Utc.with_ymd_and_hms(2024, 6, 3, 0, 0, 0).unwrap();
    let pages = read_pages(&ga4, second).await.unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 1);
    assert!(
        clock.sleeps().contains(&Duration::from_secs(30)),
        "{:?}",
        clock.sleeps()
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_403_says_to_add_the_account_as_viewer() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path(META))
        .respond_with(ResponseTemplate::new(403).set_body_json(fixture("error_403.json")))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let ga4 = connector(&server, "forbidden", &TestClock::new());
    let err = ga4.check().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{msg}");
    assert!(
        msg.contains("property 123456789") && msg.contains("Viewer"),
        "{msg}"
    );
    assert!(
        msg.contains("source \"web\"") && msg.contains("PERMISSION_DENIED"),
        "{msg}"
    );
    assert_no_unexpected(catch_all).await;
}
