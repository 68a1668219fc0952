//! Wire tests against wiremock: both token exchanges, batched reads and runReport paging, replaced days,
//! metadata validation, quota and errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use ring::signature::{KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use growthflow_core::auth::TokenProvider;
use growthflow_core::connector::{Connector, Page, ReadRequest, Window};
use growthflow_core::http::{ClientOptions, TestClock};
use growthflow_core::testing::{assert_no_unexpected, mount_catch_all, read_pages};
use growthflow_core::Error;
use growthflow_ga4::auth::{ServiceAccountKey, ServiceAccountToken};
use growthflow_ga4::config::ReportConfig;
use growthflow_ga4::{Ga4, Ga4Config};

const PEM: &str = include_str!("fixtures/TEST_ONLY_not_a_secret_rsa_key.pem");
const RUN: &str = "/v1beta/properties/123456789:runReport";
const BATCH: &str = "/v1beta/properties/123456789:batchRunReports";
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

/// Answers runReport and batchRunReports alike from one function of `(day, offset, limit)`, so a test
/// describes each day's rows once whichever request asks for them.
struct Reports<F>(F);

impl<F: Fn(&str, u64, u64) -> Value + Send + Sync + 'static> Respond for Reports<F> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let one = |r: &Value| {
            let n = |k: &str| r[k].as_str().unwrap().parse::<u64>().unwrap();
            (self.0)(
                r["dateRanges"][0]["startDate"].as_str().unwrap(),
                n("offset"),
                n("limit"),
            )
        };
        if req.url.path().ends_with(":batchRunReports") {
            let reports: Vec<Value> = body["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(one)
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"reports": reports, "kind": "analyticsData#batchRunReports"}))
        } else {
            ResponseTemplate::new(200).set_body_json(one(&body))
        }
    }
}

/// A report of `sessionSource` rows `sources[offset..offset+limit]` of `day` (`YYYY-MM-DD`), with
/// `rowCount` the day's total; no `rows` and no `rowCount` when the day is empty, as GA4 sends it.
fn day_report(day: &str, sources: &[&str], offset: u64, limit: u64) -> Value {
    let compact = day.replace('-', "");
    let rows: Vec<Value> = sources
        .iter()
        .enumerate()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|(i, s)| {
            json!({"dimensionValues":[{"value": compact},{"value": s}],
                   "metricValues":[{"value": (10 + i).to_string()}]})
        })
        .collect();
    let mut out = json!({
        "dimensionHeaders":[{"name":"date"},{"name":"sessionSource"}],
        "metricHeaders":[{"name":"sessions","type":"TYPE_INTEGER"}],
        "metadata":{"currencyCode":"USD","timeZone":"Etc/UTC"},
        "kind":"analyticsData#runReport"});
    if !sources.is_empty() {
        out["rowCount"] = sources.len().into();
    }
    if !rows.is_empty() {
        out["rows"] = rows.into();
    }
    out
}

/// The bodies of the requests received on `p`.
async fn bodies(server: &MockServer, p: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == p)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// The `startDate` of each inner request of a batchRunReports body.
fn batch_days(body: &Value) -> Vec<String> {
    body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["dateRanges"][0]["startDate"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn summary(pages: &[Page]) -> Vec<(usize, Option<String>, Option<Value>)> {
    pages
        .iter()
        .map(|p| (p.records.len(), p.replaces.clone(), p.checkpoint.clone()))
        .collect()
}

fn window(since: (u32, u32), until: (u32, u32)) -> ReadRequest {
    ReadRequest {
        stream: "traffic_daily".into(),
        state: None,
        start: Utc
            .with_ymd_and_hms(2024, since.0, since.1, 0, 0, 0)
            .unwrap(),
        window: Some(Window {
            since: Utc
                .with_ymd_and_hms(2024, since.0, since.1, 0, 0, 0)
                .unwrap(),
            until: Utc
                .with_ymd_and_hms(2024, until.0, until.1, 0, 0, 0)
                .unwrap(),
        }),
    }
}

#[tokio::test]
async fn a_key_that_is_not_pkcs8_rsa_pem_is_a_config_error_that_quotes_none_of_it() {
    let server = MockServer::start().await;
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ";
    let cases = [
        (
            format!("-----BEGIN PRIVATE KEY-----\n{body}*\n-----END PRIVATE KEY-----\n"),
            "malformed PEM",
        ),
        (body.to_string(), "no \"BEGIN PRIVATE KEY\" section"),
        (
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
            "not a PKCS#8 RSA key",
        ),
    ];
    for (pem, says) in cases {
        let mut json = key_json(&server);
        json["private_key"] = pem.into();
        let key = ServiceAccountKey::from_json(json.to_string().as_bytes(), "k").unwrap();
        let err = ServiceAccountToken::new(&key, &ClientOptions::default(), "k").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{text}");
        assert!(text.contains(says), "{text}");
        assert!(!text.contains("MIIE") && !text.contains('*'), "{text}");
    }
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

    let der = PrivatePkcs8KeyDer::from_pem_slice(PEM.as_bytes()).unwrap();
    let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref());
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    verifier
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("signature verifies with the public key");
    let mut tampered = sig.clone();
    tampered[10] ^= 1;
    assert!(
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &tampered)
            .is_err(),
        "a changed signature does not verify"
    );

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
    // The day's first page comes in a batch of one; its rowCount (3) exceeds the 2 rows sent, so the
    // day goes on with runReport at offset 2.
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.c.mock"))
        .and(body_partial_json(json!({"requests":[
            {"offset":"0","limit":"2","returnPropertyQuota":true,
             "dateRanges":[{"startDate":"2024-06-01","endDate":"2024-06-01"}]}]})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"reports":[fixture("run_report_page1.json")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .and(header("authorization", "Bearer ya29.c.mock"))
        .and(body_partial_json(json!({"offset":"2","limit":"2",
            "dateRanges":[{"startDate":"2024-06-01","endDate":"2024-06-01"}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("run_report_page2.json")))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 8, 0, 0).unwrap());
    let ga4 = connector(&server, "paging", &clock).with_page_size(2);
    let pages = read_pages(&ga4, one_day(1)).await.unwrap();
    // Only the day's first page replaces the day; its last one checkpoints it (a backfill's
    // checkpoints are not saved, they say how far it got).
    assert_eq!(
        summary(&pages),
        vec![
            (2, Some("2024-06-01".into()), None),
            (1, None, Some(json!({"cursor": "2024-06-01"})))
        ]
    );
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
async fn incremental_reads_run_from_the_lookback_to_the_clocks_today() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, _, _| day_report(day, &[], 0, 0)))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    // "Today" is the client's clock's: 2024-06-10, whatever day the tests run on.
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 10, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "incremental", &clock);
    let pages = read_pages(
        &ga4,
        ReadRequest {
            stream: "traffic_daily".into(),
            state: Some(json!({ "cursor": "2024-06-09" })),
            start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            window: None,
        },
    )
    .await
    .unwrap();
    // cursor − 3 days of lookback, through today: 5 empty days, each one empty page that replaces the
    // day (so a day whose rows all vanished is emptied) and checkpoints it.
    let days = [
        "2024-06-06",
        "2024-06-07",
        "2024-06-08",
        "2024-06-09",
        "2024-06-10",
    ];
    assert_eq!(
        summary(&pages),
        days.iter()
            .map(|d| (0, Some(d.to_string()), Some(json!({ "cursor": d }))))
            .collect::<Vec<_>>()
    );
    // The first request asks for one day; empty days are small, so the rest go in one batch.
    let batches = bodies(&server, BATCH).await;
    assert_eq!(batches.len(), 2);
    assert_eq!(batch_days(&batches[0]), days[..1]);
    assert_eq!(batch_days(&batches[1]), days[1..]);
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
async fn re_read_days_replace_their_rows_and_an_empty_day_is_emptied() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let rows = |day: &str| -> &'static [&'static str] {
        match day {
            "2024-05-31" => &["google"],
            "2024-06-01" => &["bing", "google", "newsletter"],
            "2024-06-02" => &[],
            "2024-06-03" => &["bing", "google"],
            other => panic!("unexpected day {other}"),
        }
    };
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(move |day: &str, offset, limit| {
            day_report(day, rows(day), offset, limit)
        }))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .respond_with(Reports(move |day: &str, offset, limit| {
            day_report(day, rows(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 3, 18, 0, 0).unwrap());
    let ga4 = connector(&server, "replaces", &clock).with_page_size(2);
    let pages = read_pages(
        &ga4,
        ReadRequest {
            stream: "traffic_daily".into(),
            state: Some(json!({ "cursor": "2024-06-03" })),
            start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            window: None,
        },
    )
    .await
    .unwrap();
    let day = |d: &str| Some(d.to_string());
    let cp = |d: &str| Some(json!({ "cursor": d }));
    assert_eq!(
        summary(&pages),
        vec![
            (1, day("2024-05-31"), cp("2024-05-31")),
            // 2024-06-01 overflows its page: the first page replaces the day, the rest only add to it.
            (2, day("2024-06-01"), None),
            (1, None, cp("2024-06-01")),
            // No rows left on 2024-06-02: an empty page still replaces (empties) the day.
            (0, day("2024-06-02"), cp("2024-06-02")),
            (2, day("2024-06-03"), cp("2024-06-03")),
        ]
    );
    // `replaces` is exactly the cursor the day's records carry, which is what the destination deletes by.
    for p in &pages {
        if let Some(r) = &p.replaces {
            assert!(p.records.iter().all(|rec| rec.cursor.as_ref() == Some(r)));
        }
    }
    let ids: Vec<_> = pages[1..3]
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        ids,
        ["bing", "google", "newsletter"].map(|s| format!("123456789:2024-06-01:{s}"))
    );
    let runs = bodies(&server, RUN).await;
    assert_eq!(runs.len(), 1, "only the overflowing day pages on");
    assert_eq!(runs[0]["offset"], "2");
    assert_eq!(runs[0]["dateRanges"][0]["startDate"], "2024-06-01");
    assert_no_unexpected(catch_all).await;
}

/// Seven one-row days read with `page_size` rows allowed per answer: the batches asked for, as days.
async fn batches_for_seven_days(page_size: u64) -> Vec<Vec<String>> {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.c.mock"))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, &["google"], offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "batches", &clock).with_page_size(page_size);
    let pages = read_pages(&ga4, window((6, 1), (6, 8))).await.unwrap();
    let days: Vec<String> = (1..=7).map(|d| format!("2024-06-{d:02}")).collect();
    assert_eq!(
        summary(&pages),
        days.iter()
            .map(|d| (1, Some(d.clone()), Some(json!({ "cursor": d }))))
            .collect::<Vec<_>>(),
        "one page per day, in date order, however the days were batched"
    );
    let batches = bodies(&server, BATCH).await;
    for inner in batches
        .iter()
        .flat_map(|b| b["requests"].as_array().unwrap())
    {
        assert_eq!(inner["offset"], "0");
        assert_eq!(inner["limit"], page_size.to_string());
        assert_eq!(inner["returnPropertyQuota"], true);
        assert_eq!(
            inner["dateRanges"][0]["startDate"],
            inner["dateRanges"][0]["endDate"]
        );
        assert_eq!(inner["dimensions"][0]["name"], "date");
    }
    assert!(clock.sleeps().is_empty());
    assert_no_unexpected(catch_all).await;
    batches.iter().map(batch_days).collect()
}

#[tokio::test]
async fn batches_grow_to_five_days_while_days_stay_small() {
    let d =
        |days: &[u32]| -> Vec<String> { days.iter().map(|n| format!("2024-06-{n:02}")).collect() };
    // One day first (nothing is known yet), then five small ones at a time.
    assert_eq!(
        batches_for_seven_days(growthflow_ga4::streams::DEFAULT_PAGE_SIZE).await,
        vec![d(&[1]), d(&[2, 3, 4, 5, 6]), d(&[7])]
    );
    // Answers are kept to about page_size rows: with two rows allowed, one-row days go two by two.
    assert_eq!(
        batches_for_seven_days(2).await,
        vec![d(&[1]), d(&[2, 3]), d(&[4, 5]), d(&[6, 7])]
    );
    use growthflow_ga4::streams::next_batch;
    assert_eq!(next_batch(100_000, None), 1);
    assert_eq!(next_batch(100_000, Some(0)), 5);
    assert_eq!(next_batch(100_000, Some(30_000)), 3);
    assert_eq!(next_batch(100_000, Some(100_000)), 1);
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
async fn low_hourly_quota_in_a_batch_slows_down() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            let mut r = day_report(day, &["google"], offset, limit);
            r["propertyQuota"] = json!({"tokensPerHour":{"consumed":12,"remaining":900},
                "tokensPerDay":{"consumed":12,"remaining":150000}});
            r
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "hourly", &clock);
    // Six days: two batches; the quota the first batch's reports carry pauses the second.
    let pages = read_pages(&ga4, window((6, 1), (6, 7))).await.unwrap();
    assert_eq!(pages.len(), 6);
    assert_eq!(bodies(&server, BATCH).await.len(), 2);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(300)]);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn daily_quota_stops_and_429_backs_off() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(body_partial_json(
            json!({"requests":[{"dateRanges":[{"startDate":"2024-06-01"}]}]}),
        ))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"code":429,
            "message":"Exhausted property tokens per day quota.","status":"RESOURCE_EXHAUSTED"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(body_partial_json(
            json!({"requests":[{"dateRanges":[{"startDate":"2024-06-02"}]}]}),
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
        .and(path(BATCH))
        .and(body_partial_json(
            json!({"requests":[{"dateRanges":[{"startDate":"2024-06-02"}]}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"reports":[one_row]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "quota", &clock);
    let err = read_pages(&ga4, one_day(1)).await.unwrap_err();
    assert!(matches!(err, Error::QuotaExhausted { .. }), "{err}");
    assert!(err.to_string().contains("123456789"), "{err}");

    let pages = read_pages(&ga4, one_day(2)).await.unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 1);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(30)]);
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

const CLIENT_SECRET: &str = "GOCSPX-not-a-real-client-secret";
const REFRESH_TOKEN: &str = "1//0g-not-a-real-refresh-token";

fn oauth_connector(server: &MockServer, clock: &TestClock) -> Ga4 {
    let config: Ga4Config = serde_json::from_value(json!({
        "property_id": "123456789",
        "client_id": "1234-abc.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "token_url": format!("{}/oauth/token", server.uri()),
        "base_url": server.uri(),
    }))
    .unwrap();
    Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(clock.clone())),
    )
    .unwrap()
}

fn user_token(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer",
               "scope": "https://www.googleapis.com/auth/analytics.readonly"}),
    )
}

fn form(req: &Request) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn token_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .collect()
}

#[tokio::test]
async fn user_oauth_posts_the_refresh_grant_and_reuses_the_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-1"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(META))
        .and(header("authorization", "Bearer ya29.user-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("metadata.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.user-1"))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, &["google"], offset, limit)
        }))
        .expect(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = oauth_connector(&server, &clock);
    ga4.check().await.unwrap();
    assert_eq!(read_pages(&ga4, one_day(1)).await.unwrap().len(), 1);
    assert_eq!(read_pages(&ga4, one_day(2)).await.unwrap().len(), 1);

    let tokens = token_requests(&server).await;
    assert_eq!(
        tokens.len(),
        1,
        "the access token is cached across requests"
    );
    let f = form(&tokens[0]);
    assert_eq!(
        f.get("grant_type").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(
        f.get("refresh_token").map(String::as_str),
        Some(REFRESH_TOKEN)
    );
    assert_eq!(
        f.get("client_id").map(String::as_str),
        Some("1234-abc.apps.googleusercontent.com")
    );
    assert_eq!(
        f.get("client_secret").map(String::as_str),
        Some(CLIENT_SECRET)
    );
    assert!(
        !tokens[0].headers.contains_key("authorization"),
        "client credentials go in the body"
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_401_refreshes_the_user_token_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-2"))
        .with_priority(2)
        .mount(&server)
        .await;
    mount_metadata(&server).await;
    let unauthenticated = ResponseTemplate::new(401).set_body_json(json!({"error":{"code":401,
        "message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}));
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.user-1"))
        .respond_with(unauthenticated.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.user-2"))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, &["google"], offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = oauth_connector(&server, &clock);
    let pages = read_pages(&ga4, one_day(1)).await.unwrap();
    assert_eq!(pages[0].records.len(), 1);
    assert_eq!(
        token_requests(&server).await.len(),
        2,
        "refreshed after the 401"
    );
    assert_eq!(
        bodies(&server, BATCH).await.len(),
        2,
        "the report was replayed once"
    );
    assert_no_unexpected(catch_all).await;

    // A token the API keeps refusing is refreshed once, then the source fails on auth.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(user_token("ya29.user-1"))
        .mount(&server)
        .await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(unauthenticated)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let ga4 = oauth_connector(&server, &clock);
    let err = read_pages(&ga4, one_day(1)).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().contains("source \"web\""), "{err}");
    assert_eq!(token_requests(&server).await.len(), 2);
    assert_eq!(bodies(&server, BATCH).await.len(), 2);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn invalid_grant_names_the_source_and_the_testing_apps_7_day_expiry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error":"invalid_grant","error_description":"Token has been expired or revoked."}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::new();
    let ga4 = oauth_connector(&server, &clock);
    let err = ga4.check().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{msg}");
    assert!(msg.contains("invalid_grant"), "{msg}");
    assert!(msg.contains("source \"web\""), "{msg}");
    assert!(msg.contains("sources.web.refresh_token"), "{msg}");
    assert!(
        msg.contains("\"Testing\"") && msg.contains("7 days"),
        "{msg}"
    );
    for shown in [msg, format!("{err:?}"), format!("{ga4:?}")] {
        assert!(
            !shown.contains(CLIENT_SECRET) && !shown.contains(REFRESH_TOKEN),
            "a secret leaked: {shown}"
        );
    }
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn user_reports_are_batched_and_replace_their_days_too() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            let sources: &[&str] = if day == "2024-06-01" {
                &["DE", "FR"]
            } else {
                &[]
            };
            day_report(day, sources, offset, limit)
        }))
        .expect(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let mut config = Ga4Config::with_service_account("123456789", key_file(&server, "user-report"));
    config.base_url = Some(server.uri());
    config.reports = vec![ReportConfig {
        name: "by_country".into(),
        dimensions: vec!["country".into()],
        metrics: vec!["sessions".into()],
        dimension_filter: Some(json!({"filter":{"fieldName":"country",
            "inListFilter":{"values":["DE","FR"]}}})),
    }];
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(clock.clone())),
    )
    .unwrap();
    let mut req = window((6, 1), (6, 3));
    req.stream = "report_by_country".into();
    let pages = read_pages(&ga4, req).await.unwrap();
    assert_eq!(
        summary(&pages),
        vec![
            (
                2,
                Some("2024-06-01".into()),
                Some(json!({"cursor": "2024-06-01"}))
            ),
            (
                0,
                Some("2024-06-02".into()),
                Some(json!({"cursor": "2024-06-02"}))
            )
        ]
    );
    let batches = bodies(&server, BATCH).await;
    let asked: Vec<Vec<String>> = batches.iter().map(batch_days).collect();
    assert_eq!(asked, [vec!["2024-06-01"], vec!["2024-06-02"]]);
    for inner in batches
        .iter()
        .flat_map(|b| b["requests"].as_array().unwrap())
    {
        assert_eq!(
            inner["dimensions"],
            json!([{"name":"date"},{"name":"country"}])
        );
        assert_eq!(inner["dimensionFilter"]["filter"]["fieldName"], "country");
    }
    assert_no_unexpected(catch_all).await;
}

/// A saved cursor that is not a date used to be ignored: the stream silently restarted from
/// `start_date`, re-reading (and spending quota on) the whole history. It is an error that names the
/// stream and says how to reset it, sent before any request.
#[tokio::test]
async fn an_unreadable_saved_cursor_fails_clearly_instead_of_restarting() {
    let server = MockServer::start().await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 10, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "unreadable-cursor", &clock);
    let err = read_pages(
        &ga4,
        ReadRequest {
            stream: "traffic_daily".into(),
            state: Some(json!({ "cursor": "June 9th" })),
            start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            window: None,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("`traffic_daily`"), "{text}");
    assert!(text.contains("\"June 9th\""), "{text}");
    assert!(
        text.contains("--stream traffic_daily --full-refresh"),
        "{text}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_no_unexpected(catch_all).await;
}

/// The hourly token quota used to fail the stream ("asked to wait 1800s, longer than the 900s we wait")
/// although a wait was promised: the wait now runs until the next full hour by the client's clock, which
/// core's default `max_wait` admits, and the stream completes.
#[tokio::test]
async fn a_spent_hourly_quota_is_waited_out_until_the_next_hour() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"code":429,
            "message":"Exhausted property tokens for a project per hour.","status":"RESOURCE_EXHAUSTED"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let mut one_row = fixture("run_report_page2.json");
    one_row["rowCount"] = 1.into();
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"reports":[one_row]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    // 10:15:30 by the client's clock: the quota refills at 11:00.
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 10, 15, 30).unwrap());
    let ga4 = connector(&server, "hourly-429", &clock);
    let pages = read_pages(&ga4, one_day(2)).await.unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 1);
    let wait = Duration::from_secs(44 * 60 + 30 + 10);
    assert_eq!(clock.sleeps(), vec![wait]);
    assert_eq!(clock.elapsed(), wait);
    assert_eq!(bodies(&server, BATCH).await.len(), 2);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retried_by_one_layer_only() {
    // The token request runs inside each attempt at the API request. Were it retried inside too, a
    // token endpoint that keeps failing would be asked attempts × attempts times (49 by default).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "token_503", &clock);
    let err = read_pages(&ga4, one_day(1)).await.unwrap_err();
    assert!(err.is_retryable(), "a 503 stays a temporary failure: {err}");
    let token_requests = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/token")
        .count();
    let attempts = 1 + growthflow_core::http::RetryPolicy::default().max_retries as usize;
    assert_eq!(token_requests, attempts);
    assert_eq!(clock.sleeps().len(), attempts - 1, "{:?}", clock.sleeps());
    assert_no_unexpected(catch_all).await;
}

// ---------------------------------------------------------------------------------------------------
// Long first syncs and backfills read windows of days side by side.

use growthflow_core::engine::{sync_stream, NoProgress, SyncOptions};
use growthflow_core::testing::{recording_writer, Commit, CommitLog};

/// The property's days: every seventh day has no rows, the others two sources.
fn sources_of(day: &str) -> &'static [&'static str] {
    let n: u32 = day[8..10].parse().unwrap();
    if n % 7 == 0 {
        &[]
    } else {
        &["google", "newsletter"]
    }
}

fn ymd(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// 2024-04-01 through 2024-05-30, the clock's today.
fn sixty_days() -> Vec<String> {
    let first = chrono::NaiveDate::from_ymd_opt(2024, 4, 1).unwrap();
    first.iter_days().take(60).map(ymd).collect()
}

fn day_options(window: Option<Window>) -> SyncOptions {
    SyncOptions {
        start: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        streams: Vec::new(),
        full_refresh: false,
        window,
        concurrency: 1,
    }
}

/// At every commit that saved a cursor (a day), every day before it was committed whole: a run killed
/// then resumes from that day (less the lookback) without losing one. Returns the saved cursors.
fn assert_cursor_never_passes_an_unread_day(log: &CommitLog) -> Vec<String> {
    let mut rows: std::collections::HashSet<String> = Default::default();
    let mut cursors = Vec::new();
    for Commit { ids, state, .. } in log.commits().iter() {
        rows.extend(ids.iter().cloned());
        let Some(cursor) = state.as_ref().and_then(|s| s["cursor"].as_str()) else {
            continue;
        };
        assert_eq!(
            cursor.len(),
            10,
            "a day, as a sequential read saves: {cursor}"
        );
        for day in sixty_days().iter().filter(|d| d.as_str() < cursor) {
            for source in sources_of(day) {
                let id = format!("123456789:{day}:{source}");
                assert!(
                    rows.contains(&id),
                    "cursor {cursor} saved before {id} was committed"
                );
            }
        }
        cursors.push(cursor.to_string());
    }
    cursors
}

#[tokio::test]
async fn a_long_first_sync_reads_windows_of_days_side_by_side_and_each_day_once() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, sources_of(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 5, 30, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "windows", &clock);
    let (writer, log) = recording_writer();
    let def = ga4.streams().remove(0);
    let outcome = sync_stream(&ga4, &def, &writer, &day_options(None), &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let rows: usize = sixty_days().iter().map(|d| sources_of(d).len()).sum();
    assert_eq!(outcome.records as usize, rows, "every row once");

    // Every day was asked for once — no gap, no overlap between windows — and replaced once.
    let mut asked: Vec<String> = bodies(&server, BATCH)
        .await
        .iter()
        .flat_map(batch_days)
        .collect();
    asked.sort();
    assert_eq!(asked, sixty_days());
    let mut replaced: Vec<String> = log
        .commits()
        .into_iter()
        .filter_map(|c| c.replaces)
        .collect();
    replaced.sort();
    assert_eq!(replaced, sixty_days(), "each day's first page replaces it");
    assert!(ga4.limiter().peak_in_flight() >= 2, "windows side by side");
    assert!(ga4.limiter().peak_in_flight() <= growthflow_ga4::limits::MAX_CONCURRENT_REQUESTS);

    // The state is a day, as a sequential read saves it, and ends at today (an empty day counts).
    let cursors = assert_cursor_never_passes_an_unread_day(&log);
    assert_eq!(cursors.last().map(String::as_str), Some("2024-05-30"));
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        Some(json!({ "cursor": "2024-05-30" }))
    );
    assert_no_unexpected(catch_all).await;

    // Nothing changed since: the next sync re-reads only the lookback days (in sequence, no windows),
    // in two requests (one day, then the rest batched), and no metadata again.
    let before = server.received_requests().await.unwrap().len();
    let again = sync_stream(&ga4, &def, &writer, &day_options(None), &NoProgress).await;
    assert_eq!(again.status, "ok", "{:?}", again.error);
    let all = server.received_requests().await.unwrap();
    let new: Vec<Value> = all[before..]
        .iter()
        .map(|r| {
            assert_eq!(r.url.path(), BATCH, "only the lookback's reports");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    assert_eq!(
        new.iter().map(batch_days).collect::<Vec<_>>(),
        vec![
            vec!["2024-05-27".to_string()],
            vec![
                "2024-05-28".into(),
                "2024-05-29".into(),
                "2024-05-30".into()
            ]
        ]
    );
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        Some(json!({ "cursor": "2024-05-30" }))
    );
}

#[tokio::test]
async fn a_long_backfill_reads_windows_of_days_and_saves_no_state() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, sources_of(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 30, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "windowed-backfill", &clock);
    let (writer, _log) = recording_writer();
    let def = ga4.streams().remove(0);
    let window = Window {
        since: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2024, 5, 31, 0, 0, 0).unwrap(),
    };
    let outcome = sync_stream(&ga4, &def, &writer, &day_options(Some(window)), &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let mut asked: Vec<String> = bodies(&server, BATCH)
        .await
        .iter()
        .flat_map(batch_days)
        .collect();
    asked.sort();
    assert_eq!(asked, sixty_days(), "the window's days, each once");
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        None
    );
    assert!(ga4.limiter().peak_in_flight() >= 2, "windows side by side");
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_windowed_first_sync_killed_midway_resumes_without_losing_a_day() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killed = Arc::new(tokio::sync::Notify::new());
    let (seen, kill) = (requests.clone(), killed.clone());
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(move |day: &str, offset, limit| {
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 12 {
                kill.notify_one();
            }
            day_report(day, sources_of(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 5, 30, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "windowed-kill", &clock);
    let (writer, log) = recording_writer();
    let def = ga4.streams().remove(0);
    let options = day_options(None);
    tokio::select! {
        o = sync_stream(&ga4, &def, &writer, &options, &NoProgress) => {
            panic!("the sync finished before the kill: {o:?}")
        }
        () = killed.notified() => {}
    }
    let saved = writer.load_state("web", "traffic_daily").await.unwrap();
    let cursors = assert_cursor_never_passes_an_unread_day(&log);
    assert_eq!(
        saved.map(|s| s["cursor"].as_str().unwrap().to_string()),
        cursors.last().cloned()
    );

    let outcome = sync_stream(&ga4, &def, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let all: std::collections::HashSet<String> = log.ids().into_iter().collect();
    let rows: usize = sixty_days().iter().map(|d| sources_of(d).len()).sum();
    // The resumed run re-reads the lookback before its saved day, which may reach before start_date.
    let in_range = all
        .iter()
        .filter(|id| sixty_days().iter().any(|d| id.contains(d.as_str())))
        .count();
    assert_eq!(in_range, rows, "no row lost");
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        Some(json!({ "cursor": "2024-05-30" }))
    );
    assert_cursor_never_passes_an_unread_day(&log);
}
