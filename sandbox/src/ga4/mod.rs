//! A simulated Google Analytics 4 property: daily traffic rows by session source, medium, campaign and
//! default channel group, served like the Data API v1beta under `/ga4` (token endpoint, metadata and
//! `runReport`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::rng::SplitMix64;

/// Path prefix of the simulated Data API.
pub const PREFIX: &str = "ga4";

/// Days of rows generated, ending on the `end` day.
pub const DAYS: i64 = 180;

/// The test-only key the service account signs with (never a real secret).
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("TEST_ONLY_not_a_secret_rsa_key.pem");

/// Hourly and daily token budgets of a standard property.
const TOKENS_PER_HOUR: i64 = 40_000;
const TOKENS_PER_DAY: i64 = 200_000;

/// `(sessionSource, sessionMedium, sessionCampaignName, sessionDefaultChannelGroup)` combos.
const COMBOS: [(&str, &str, &str, &str); 6] = [
    ("(direct)", "(none)", "(direct)", "Direct"),
    ("google", "organic", "(organic)", "Organic Search"),
    ("facebook", "paid_social", "spring_sale", "Paid Social"),
    ("facebook", "paid_social", "fall_sale", "Paid Social"),
    ("klaviyo", "email", "weekly_newsletter", "Email"),
    ("blog.example.com", "referral", "(referral)", "Referral"),
];

/// The dimensions the property knows.
pub const DIMENSIONS: [&str; 5] = [
    "date",
    "sessionSource",
    "sessionMedium",
    "sessionCampaignName",
    "sessionDefaultChannelGroup",
];

/// The metrics the property knows, with their `metricHeaders[].type`.
pub const METRICS: [(&str, &str); 7] = [
    ("sessions", "TYPE_INTEGER"),
    ("newUsers", "TYPE_INTEGER"),
    ("engagedSessions", "TYPE_INTEGER"),
    ("addToCarts", "TYPE_INTEGER"),
    ("checkouts", "TYPE_INTEGER"),
    ("ecommercePurchases", "TYPE_INTEGER"),
    ("purchaseRevenue", "TYPE_CURRENCY"),
];

/// One day's row for one dimension combo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The day the property reports the row under.
    pub date: NaiveDate,
    /// `sessionSource`.
    pub source: String,
    /// `sessionMedium`.
    pub medium: String,
    /// `sessionCampaignName` (placeholders such as `(direct)` included).
    pub campaign: String,
    /// `sessionDefaultChannelGroup`.
    pub channel_group: String,
    /// `sessions`.
    pub sessions: i64,
    /// `newUsers`.
    pub new_users: i64,
    /// `engagedSessions`.
    pub engaged_sessions: i64,
    /// `addToCarts`.
    pub add_to_carts: i64,
    /// `checkouts`.
    pub checkouts: i64,
    /// `ecommercePurchases`.
    pub ecommerce_purchases: i64,
    /// `purchaseRevenue` in cents (served with 2 decimals).
    pub purchase_revenue_cents: i64,
}

impl Row {
    /// The value of dimension `name` (`date` as `YYYYMMDD`).
    pub fn dimension(&self, name: &str) -> Option<String> {
        Some(match name {
            "date" => self.date.format("%Y%m%d").to_string(),
            "sessionSource" => self.source.clone(),
            "sessionMedium" => self.medium.clone(),
            "sessionCampaignName" => self.campaign.clone(),
            "sessionDefaultChannelGroup" => self.channel_group.clone(),
            _ => return None,
        })
    }

    /// The value of metric `name`, as the API sends it.
    pub fn metric(&self, name: &str) -> Option<String> {
        Some(match name {
            "sessions" => self.sessions.to_string(),
            "newUsers" => self.new_users.to_string(),
            "engagedSessions" => self.engaged_sessions.to_string(),
            "addToCarts" => self.add_to_carts.to_string(),
            "checkouts" => self.checkouts.to_string(),
            "ecommercePurchases" => self.ecommerce_purchases.to_string(),
            "purchaseRevenue" => format!(
                "{}.{:02}",
                self.purchase_revenue_cents / 100,
                self.purchase_revenue_cents % 100
            ),
            _ => return None,
        })
    }
}

/// The generated property.
#[derive(Debug)]
pub struct Property {
    /// The property id's digits.
    pub property_id: String,
    /// The service account's email (the JWT's `iss`).
    pub client_email: String,
    /// The key id (`private_key_id`).
    pub private_key_id: String,
    /// The report currency.
    pub currency: String,
    /// Daily rows, ordered by date then combo.
    pub rows: Vec<Row>,
    tokens_used: AtomicU64,
    issued: AtomicU64,
}

impl Property {
    /// Generate the property deterministically from `seed`, `scale` (0 is 1) and the simulated now.
    pub fn generate(seed: u64, scale: u32, end: DateTime<Utc>) -> Property {
        let mut rng = SplitMix64::new(seed).fork(0x4741_3400);
        let scale = scale.max(1) as i64;
        let property_id = format!("{}", rng.range(100_000_000, 999_999_999));
        let client_email = format!(
            "growthflow-{}@sandbox-project.iam.gserviceaccount.com",
            rng.hex(6)
        );
        let private_key_id = rng.hex(40);
        let last = end.date_naive();
        let mut rows = Vec::new();
        for d in (0..DAYS).rev() {
            let date = last - Duration::days(d);
            for (i, (source, medium, campaign, group)) in COMBOS.iter().enumerate() {
                // Some combos skip some days: campaigns do not run every day.
                if i >= 2 && rng.chance(0.25) {
                    continue;
                }
                let sessions = rng.range(5, 120) * scale;
                let new_users = rng.range(0, sessions);
                let engaged_sessions = rng.range(0, sessions);
                let add_to_carts = rng.range(0, sessions / 4 + 1);
                let checkouts = rng.range(0, add_to_carts);
                let ecommerce_purchases = rng.range(0, checkouts);
                let purchase_revenue_cents = ecommerce_purchases * rng.range(1_500, 12_000);
                rows.push(Row {
                    date,
                    source: source.to_string(),
                    medium: medium.to_string(),
                    campaign: campaign.to_string(),
                    channel_group: group.to_string(),
                    sessions,
                    new_users,
                    engaged_sessions,
                    add_to_carts,
                    checkouts,
                    ecommerce_purchases,
                    purchase_revenue_cents,
                });
            }
        }
        Property {
            property_id,
            client_email,
            private_key_id,
            currency: "USD".to_string(),
            rows,
            tokens_used: AtomicU64::new(0),
            issued: AtomicU64::new(0),
        }
    }

    /// The service-account key file (JSON) whose `token_uri` is `token_uri`.
    pub fn service_account_json(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "sandbox-project",
            "private_key_id": self.private_key_id,
            "private_key": TEST_PRIVATE_KEY_PEM,
            "client_email": self.client_email,
            "client_id": "100000000000000000000",
            "token_uri": token_uri,
        })
        .to_string()
    }

    /// The public key that verifies the account's assertions.
    pub fn public_key() -> RsaPublicKey {
        RsaPrivateKey::from_pkcs8_pem(TEST_PRIVATE_KEY_PEM)
            .expect("the test key parses")
            .to_public_key()
    }

    /// The generated rows of `day`, in generation order.
    pub fn rows_on(&self, day: NaiveDate) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.date == day).collect()
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }
}

struct GState {
    property: Arc<Property>,
    token_uri: String,
}

/// The routes under `/ga4`; `base_url` is `http://HOST:PORT` (the token endpoint's own URL is the
/// assertion's required `aud`).
pub(crate) fn router(property: Arc<Property>, base_url: String) -> Router {
    let state = Arc::new(GState {
        property,
        token_uri: format!("{base_url}/{PREFIX}/token"),
    });
    Router::new()
        .route(&format!("/{PREFIX}/token"), post(token))
        .route(
            &format!("/{PREFIX}/v1beta/properties/{{*rest}}"),
            get(metadata).post(run_report),
        )
        .with_state(state)
}

fn status(code: StatusCode, status: &str, message: &str) -> Response {
    (
        code,
        Json(json!({"error": {"code": code.as_u16(), "message": message, "status": status}})),
    )
        .into_response()
}

fn invalid_grant() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
    )
        .into_response()
}

/// Verify an RS256 assertion's signature and claims; `Some(())` when valid.
fn verify_assertion(state: &GState, assertion: &str) -> Option<()> {
    let mut parts = assertion.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "RS256" {
        return None;
    }
    let sig = Signature::try_from(URL_SAFE_NO_PAD.decode(s).ok()?.as_slice()).ok()?;
    let key = VerifyingKey::<Sha256>::new(Property::public_key());
    key.verify(format!("{h}.{c}").as_bytes(), &sig).ok()?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let p = &state.property;
    let now = Utc::now().timestamp();
    let iat = claims.get("iat")?.as_i64()?;
    let exp = claims.get("exp")?.as_i64()?;
    let ok = claims.get("iss")?.as_str()? == p.client_email
        && claims.get("aud")?.as_str()? == state.token_uri
        && claims
            .get("scope")?
            .as_str()?
            .split(' ')
            .any(|s| s.ends_with("analytics.readonly"))
        && exp <= iat + 3600
        && exp > now
        && iat <= now + 300;
    ok.then_some(())
}

async fn token(State(state): State<Arc<GState>>, body: Bytes) -> Response {
    let mut grant = None;
    let mut assertion = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "grant_type" => grant = Some(v.into_owned()),
            "assertion" => assertion = Some(v.into_owned()),
            _ => {}
        }
    }
    if grant.as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})),
        )
            .into_response();
    }
    if assertion
        .as_deref()
        .and_then(|a| verify_assertion(&state, a))
        .is_none()
    {
        return invalid_grant();
    }
    state.property.issued.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "access_token": format!("ya29.sandbox{}", state.property.private_key_id),
        "expires_in": 3599,
        "token_type": "Bearer",
    }))
    .into_response()
}

fn authorized(state: &GState, headers: &HeaderMap) -> Option<Response> {
    let want = format!("Bearer ya29.sandbox{}", state.property.private_key_id);
    let got = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (got != want).then(|| {
        status(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    })
}

fn wrong_property(id: &str) -> Response {
    status(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        &format!("User does not have sufficient permissions for this property. To learn more about Property ID, see https://developers.google.com/analytics/devguides/reporting/data/v1/property-id. (property {id})"),
    )
}

async fn metadata(
    State(state): State<Arc<GState>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = authorized(&state, &headers) {
        return r;
    }
    let Some(id) = rest.strip_suffix("/metadata") else {
        return status(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found");
    };
    if id != state.property.property_id {
        return wrong_property(id);
    }
    Json(json!({
        "name": format!("properties/{id}/metadata"),
        "dimensions": DIMENSIONS.iter().map(|d| json!({"apiName": d, "uiName": d, "category": "Traffic source"})).collect::<Vec<_>>(),
        "metrics": METRICS.iter().map(|(m, t)| json!({"apiName": m, "uiName": m, "type": t, "category": "Ecommerce"})).collect::<Vec<_>>(),
    }))
    .into_response()
}

fn bad_request(message: &str) -> Response {
    status(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

fn names(body: &Value, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .collect()
}

fn int_field(body: &Value, key: &str, default: u64) -> Option<u64> {
    match body.get(key) {
        None | Some(Value::Null) => Some(default),
        Some(Value::String(s)) => s.parse().ok(),
        Some(v) => v.as_u64(),
    }
}

async fn run_report(
    State(state): State<Arc<GState>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = authorized(&state, &headers) {
        return r;
    }
    let Some(id) = rest.strip_suffix(":runReport") else {
        return status(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found");
    };
    let p = &state.property;
    if id != p.property_id {
        return wrong_property(id);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let ranges = body.get("dateRanges").and_then(|v| v.as_array());
    let Some([range]) = ranges.map(|r| r.as_slice()) else {
        return bad_request("The simulated property answers exactly one dateRange.");
    };
    let date = |k: &str| {
        range
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let (Some(since), Some(until)) = (date("startDate"), date("endDate")) else {
        return bad_request("Invalid dateRange: use YYYY-MM-DD startDate and endDate.");
    };
    let dims = names(&body, "dimensions");
    let mets = names(&body, "metrics");
    if mets.is_empty() {
        return bad_request("At least one metric is required.");
    }
    for d in &dims {
        if !DIMENSIONS.contains(&d.as_str()) {
            return bad_request(&format!("Field {d} is not a valid dimension."));
        }
    }
    for m in &mets {
        if !METRICS.iter().any(|(n, _)| n == m) {
            return bad_request(&format!("Field {m} is not a valid metric."));
        }
    }
    let (Some(limit), Some(offset)) = (
        int_field(&body, "limit", 10_000),
        int_field(&body, "offset", 0),
    ) else {
        return bad_request("limit and offset must be integers.");
    };
    if limit == 0 || limit > 250_000 {
        return bad_request("limit must be between 1 and 250000.");
    }
    // Aggregate the rows of the range over the requested dimensions.
    let mut groups: Vec<(Vec<String>, Vec<i64>)> = Vec::new();
    for r in p.rows.iter().filter(|r| r.date >= since && r.date <= until) {
        let key: Vec<String> = dims.iter().filter_map(|d| r.dimension(d)).collect();
        let vals: Vec<i64> = mets
            .iter()
            .map(|m| match m.as_str() {
                "purchaseRevenue" => r.purchase_revenue_cents,
                other => r.metric(other).and_then(|v| v.parse().ok()).unwrap_or(0),
            })
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, acc)) => acc.iter_mut().zip(&vals).for_each(|(a, v)| *a += v),
            None => groups.push((key, vals)),
        }
    }
    groups.sort();
    let row_count = groups.len();
    let page: Vec<Value> = groups
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|(key, vals)| {
            json!({
                "dimensionValues": key.iter().map(|v| json!({"value": v})).collect::<Vec<_>>(),
                "metricValues": mets.iter().zip(vals).map(|(m, v)| {
                    let s = if m == "purchaseRevenue" { format!("{}.{:02}", v / 100, v % 100) } else { v.to_string() };
                    json!({"value": s})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({
        "dimensionHeaders": dims.iter().map(|d| json!({"name": d})).collect::<Vec<_>>(),
        "metricHeaders": mets.iter().map(|m| {
            let t = METRICS.iter().find(|(n, _)| n == m).map(|(_, t)| *t).unwrap_or("TYPE_INTEGER");
            json!({"name": m, "type": t})
        }).collect::<Vec<_>>(),
        "rowCount": row_count,
        "metadata": {"currencyCode": p.currency, "timeZone": "Etc/UTC"},
        "kind": "analyticsData#runReport",
    });
    if !page.is_empty() {
        out["rows"] = Value::Array(page);
    }
    let cost = 1 + (row_count as u64) / 1000;
    let used = p.tokens_used.fetch_add(cost, Ordering::SeqCst) + cost;
    if body.get("returnPropertyQuota").and_then(|v| v.as_bool()) == Some(true) {
        let used = used as i64;
        out["propertyQuota"] = json!({
            "tokensPerDay": {"consumed": cost, "remaining": (TOKENS_PER_DAY - used).max(0)},
            "tokensPerHour": {"consumed": cost, "remaining": (TOKENS_PER_HOUR - used).max(0)},
            "concurrentRequests": {"consumed": 0, "remaining": 10},
            "serverErrorsPerProjectPerHour": {"consumed": 0, "remaining": 10},
            "potentiallyThresholdedRequestsPerHour": {"consumed": 0, "remaining": 120},
            "tokensPerProjectPerHour": {"consumed": cost, "remaining": (14_000 - used).max(0)},
        });
    }
    Json(out).into_response()
}
