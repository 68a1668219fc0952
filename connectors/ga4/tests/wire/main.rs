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
use growthflow_ga4::streams::CHECKED;
use growthflow_ga4::{Ga4, Ga4Config};

mod names;
mod quotas_and_errors;
mod reports;
mod service_account;
mod user_oauth;
mod windows;

const PEM: &str = include_str!("../fixtures/TEST_ONLY_not_a_secret_rsa_key.pem");
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

/// Each page's records, the day it replaces and its checkpoint, the checkpoint without the digest of
/// the names it records as checked (`streams::CHECKED`, tested in `names`), which must be one when
/// there.
fn summary(pages: &[Page]) -> Vec<(usize, Option<String>, Option<Value>)> {
    pages
        .iter()
        .map(|p| {
            let checkpoint = p.checkpoint.clone().map(|mut c| {
                if let Some(checked) = c.as_object_mut().unwrap().remove(CHECKED) {
                    let digest = checked.as_str().unwrap_or_default();
                    assert!(digest.len() == 16, "a digest: {checked}");
                }
                c
            });
            (p.records.len(), p.replaces.clone(), checkpoint)
        })
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
