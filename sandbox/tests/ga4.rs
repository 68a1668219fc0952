//! The simulated GA4 property: the service account's token exchange and runReport paging.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use growthflow_sandbox::ga4::TEST_PRIVATE_KEY_PEM;
use growthflow_sandbox::{Sandbox, SandboxConfig};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Value};

fn assertion(iss: &str, aud: &str, tamper: bool) -> String {
    let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let header = URL_SAFE_NO_PAD.encode(json!({"alg":"RS256","typ":"JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": iss, "aud": aud, "scope": "https://www.googleapis.com/auth/analytics.readonly",
               "iat": now, "exp": now + 3600})
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    if tamper {
        sig[10] ^= 1;
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn token(sandbox: &Sandbox, assertion: &str) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", assertion)
        .finish();
    let resp = reqwest::Client::new()
        .post(format!("{}/token", sandbox.ga4_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn token_endpoint_checks_the_jwt_signature_and_claims() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let iss = sandbox.ga4().client_email.clone();
    let aud = format!("{}/token", sandbox.ga4_url());
    let (code, body) = token(&sandbox, &assertion(&iss, &aud, false)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["access_token"]
        .as_str()
        .unwrap()
        .starts_with("ya29.sandbox"));
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    let (code, body) = token(&sandbox, &assertion(&iss, &aud, true)).await;
    assert_eq!(code, 400);
    assert_eq!(body["error"], "invalid_grant");
    let (code, _) = token(&sandbox, &assertion("someone@else.com", &aud, false)).await;
    assert_eq!(code, 400);
    sandbox.shutdown().await;
}

async fn report(sandbox: &Sandbox, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!(
            "{}/v1beta/properties/{}:runReport",
            sandbox.ga4_url(),
            sandbox.ga4().property_id
        ))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn body(day: &str, limit: u64, offset: u64) -> Value {
    json!({
        "dateRanges": [{"startDate": day, "endDate": day}],
        "dimensions": [{"name":"date"},{"name":"sessionSource"},{"name":"sessionMedium"},
                       {"name":"sessionCampaignName"},{"name":"sessionDefaultChannelGroup"}],
        "metrics": [{"name":"sessions"},{"name":"purchaseRevenue"}],
        "limit": limit.to_string(),
        "offset": offset.to_string(),
        "returnPropertyQuota": true,
    })
}

#[tokio::test]
async fn run_report_pages_by_offset_and_empty_days_have_no_rows() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let iss = sandbox.ga4().client_email.clone();
    let aud = format!("{}/token", sandbox.ga4_url());
    let (_, tok) = token(&sandbox, &assertion(&iss, &aud, false)).await;
    let tok = tok["access_token"].as_str().unwrap().to_string();

    let (code, err) = report(&sandbox, None, body("2025-06-01", 2, 0)).await;
    assert_eq!(code, 401);
    assert_eq!(err["error"]["status"], "UNAUTHENTICATED");

    let want = sandbox.ga4().rows_on("2025-06-01".parse().unwrap()).len();
    assert!(want >= 3);
    let mut seen = HashSet::new();
    let mut offset = 0;
    let mut remaining = None;
    loop {
        let (code, page) = report(&sandbox, Some(&tok), body("2025-06-01", 2, offset)).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["rowCount"], want);
        assert_eq!(page["metricHeaders"][1]["type"], "TYPE_CURRENCY");
        assert_eq!(page["metadata"]["currencyCode"], "USD");
        let left = page["propertyQuota"]["tokensPerHour"]["remaining"]
            .as_i64()
            .unwrap();
        assert!(remaining.is_none_or(|r| left < r));
        remaining = Some(left);
        let rows = page["rows"].as_array().unwrap();
        for r in rows {
            assert_eq!(r["dimensionValues"][0]["value"], "20250601");
            assert!(r["metricValues"][0]["value"].is_string());
            assert!(
                seen.insert(r["dimensionValues"].to_string()),
                "row twice: {r}"
            );
        }
        offset += rows.len() as u64;
        if offset >= want as u64 {
            break;
        }
    }
    assert_eq!(seen.len(), want);

    let (code, empty) = report(&sandbox, Some(&tok), body("2020-01-01", 10, 0)).await;
    assert_eq!(code, 200);
    assert!(empty.get("rows").is_none(), "{empty}");
    assert_eq!(empty["rowCount"], 0);
    sandbox.shutdown().await;
}
