//! A simulated Google Analytics 4 property: daily traffic rows by session source, medium, campaign and
//! default channel group, served like the Data API v1beta under `/ga4` (a token endpoint for the
//! service account's JWT and a user grant's refresh token, metadata, `runReport` and
//! `batchRunReports`). Like GA4, it can restate its recent days
//! ([`Property::restate_recent_days`]): late hits raise their metrics and a row can vanish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use ring::signature::{KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Value};

use crate::rng::SplitMix64;

/// Path prefix of the simulated Data API.
pub const PREFIX: &str = "ga4";

/// Days of rows generated, ending on the `end` day.
pub const DAYS: i64 = 180;

/// The test-only key the service account signs with (never a real secret).
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("TEST_ONLY_not_a_secret_rsa_key.pem");

/// Reports one batchRunReports request may carry.
pub const MAX_BATCH_REQUESTS: usize = 5;

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
    /// The last day with rows (the simulated now's date); restatements count back from it.
    pub end_date: NaiveDate,
    /// Daily rows, ordered by date then combo; behind a lock because a restatement changes them while
    /// the server runs.
    rows: RwLock<Vec<Row>>,
    tokens_used: AtomicU64,
    /// The daily token budget: once the tokens used reach it, reports are answered 429
    /// `RESOURCE_EXHAUSTED` for the day, as GA4 does.
    daily_tokens: AtomicU64,
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
            end_date: last,
            rows: RwLock::new(rows),
            tokens_used: AtomicU64::new(0),
            daily_tokens: AtomicU64::new(TOKENS_PER_DAY as u64),
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

    /// The public key that verifies the account's assertions: DER `RSAPublicKey` (PKCS#1), the form
    /// ring's `RSA_PKCS1_2048_8192_SHA256` verifier takes.
    pub fn public_key() -> Vec<u8> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_PRIVATE_KEY_PEM.as_bytes())
            .expect("the test key is PKCS#8 PEM");
        RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .expect("the test key is an RSA key")
            .public_key()
            .as_ref()
            .to_vec()
    }

    /// A snapshot of the rows the property serves now (restatements included), ordered by date then
    /// combo.
    pub fn rows(&self) -> Vec<Row> {
        self.rows.read().expect("rows lock").clone()
    }

    /// The rows of `day` as served now, in generation order.
    pub fn rows_on(&self, day: NaiveDate) -> Vec<Row> {
        self.rows
            .read()
            .expect("rows lock")
            .iter()
            .filter(|r| r.date == day)
            .cloned()
            .collect()
    }

    /// Restate the last `days` days up to [`end_date`](Self::end_date), as GA4 does while late hits
    /// arrive: on the oldest of those days the last row vanishes (GA4 reclassified its traffic), and
    /// every remaining row of those days gains sessions, new and engaged sessions, add-to-carts,
    /// checkouts, purchases and revenue. Deterministic: the same calls give the same rows. Returns the
    /// row that vanished (none when `days` < 1 or the day had no rows).
    pub fn restate_recent_days(&self, days: i64) -> Option<Row> {
        if days < 1 {
            return None;
        }
        let first = self.end_date - Duration::days(days - 1);
        let mut rows = self.rows.write().expect("rows lock");
        let vanished = rows
            .iter()
            .rposition(|r| r.date == first)
            .map(|i| rows.remove(i));
        for (i, r) in rows
            .iter_mut()
            .filter(|r| r.date >= first && r.date <= self.end_date)
            .enumerate()
        {
            let late = 1 + (i as i64 % 3);
            r.sessions += 3 * late;
            r.new_users += late;
            r.engaged_sessions += 2 * late;
            r.add_to_carts += late;
            r.checkouts += late;
            r.ecommerce_purchases += late;
            r.purchase_revenue_cents += 2_499 * late;
        }
        vanished
    }

    /// The OAuth client of a user's grant (the web-app flow's `client_id`, `client_secret` and the
    /// `refresh_token` it produced), accepted by the token endpoint's `refresh_token` grant beside the
    /// service account's JWT. Derived from the key id so that generating it draws nothing from the
    /// generator and the rows stay the same.
    pub fn oauth_client(&self) -> (String, String, String) {
        let k = &self.private_key_id;
        (
            format!("{}-sandbox.apps.googleusercontent.com", &k[..12]),
            format!("GOCSPX-{}", &k[12..36]),
            format!("1//0sandbox{}", &k[4..40]),
        )
    }

    /// Tokens charged so far.
    pub fn tokens_used(&self) -> u64 {
        self.tokens_used.load(Ordering::SeqCst)
    }

    /// Set the daily token budget (200,000 on a standard property): once the tokens used reach it,
    /// every report is answered 429 `RESOURCE_EXHAUSTED`; raising it again is the next day's refill.
    pub fn set_daily_tokens(&self, tokens: u64) {
        self.daily_tokens.store(tokens, Ordering::SeqCst);
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
            get(metadata).post(report),
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
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, Property::public_key())
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .ok()?;
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

/// The client credentials of a token request: HTTP Basic (RFC 6749 §2.3.1, what the `oauth2` crate
/// sends by default) or `client_id`/`client_secret` in the body; Google accepts both.
fn client_credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) {
        return Some((id, secret));
    }
    let basic = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(basic)
            .ok()?,
    )
    .ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// Google's answer to a refresh-token grant: an access token for the right client and refresh token,
/// `invalid_client` (401) for an unknown client, `invalid_grant` for a revoked or expired token.
fn refresh_grant(state: &GState, headers: &HeaderMap, form: &[(String, String)]) -> Response {
    let (client_id, client_secret, refresh_token) = state.property.oauth_client();
    if client_credentials(headers, form) != Some((client_id, client_secret)) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Unauthorized"})),
        )
            .into_response();
    }
    let given = form
        .iter()
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v);
    if given != Some(&refresh_token) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})),
        )
            .into_response();
    }
    issue(state)
}

fn issue(state: &GState) -> Response {
    state.property.issued.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "access_token": format!("ya29.sandbox{}", state.property.private_key_id),
        "expires_in": 3599,
        "scope": "https://www.googleapis.com/auth/analytics.readonly",
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn token(State(state): State<Arc<GState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let grant = field("grant_type");
    let assertion = field("assertion");
    if grant.as_deref() == Some("refresh_token") {
        return refresh_grant(&state, &headers, &form);
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
    issue(&state)
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

/// `POST …:runReport` and `POST …:batchRunReports`.
async fn report(
    State(state): State<Arc<GState>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = authorized(&state, &headers) {
        return r;
    }
    let (id, batch) = if let Some(id) = rest.strip_suffix(":runReport") {
        (id, false)
    } else if let Some(id) = rest.strip_suffix(":batchRunReports") {
        (id, true)
    } else {
        return status(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found");
    };
    let p = &state.property;
    if id != p.property_id {
        return wrong_property(id);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    if p.tokens_used() >= p.daily_tokens.load(Ordering::SeqCst) {
        return status(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Exhausted property tokens per day for this property. Retry after the quota resets.",
        );
    }
    let answer = if batch {
        batch_run_reports(p, &body)
    } else {
        run_report(p, &body)
    };
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(message) => bad_request(&message),
    }
}

/// A batch of 1 to [`MAX_BATCH_REQUESTS`] reports; one bad report fails the whole batch, as in GA4.
/// Each report is charged its own tokens. The error is an `INVALID_ARGUMENT` message.
fn batch_run_reports(p: &Property, body: &Value) -> Result<Value, String> {
    let requests = body
        .get("requests")
        .and_then(|r| r.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    if requests.is_empty() || requests.len() > MAX_BATCH_REQUESTS {
        return Err(format!(
            "requests must contain between 1 and {MAX_BATCH_REQUESTS} RunReportRequests; {} given.",
            requests.len()
        ));
    }
    let own = format!("properties/{}", p.property_id);
    let mut reports = Vec::with_capacity(requests.len());
    for r in requests {
        if let Some(other) = r.get("property").and_then(|v| v.as_str()) {
            if other != own {
                return Err(format!(
                    "The property in a batched request ({other}) must match the batch's ({own})."
                ));
            }
        }
        reports.push(run_report(p, r)?);
    }
    Ok(json!({"reports": reports, "kind": "analyticsData#batchRunReports"}))
}

/// One report over the rows served now; the error is an `INVALID_ARGUMENT` message.
fn run_report(p: &Property, body: &Value) -> Result<Value, String> {
    let ranges = body.get("dateRanges").and_then(|v| v.as_array());
    let Some([range]) = ranges.map(|r| r.as_slice()) else {
        return Err("The simulated property answers exactly one dateRange.".to_string());
    };
    let date = |k: &str| {
        range
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let (Some(since), Some(until)) = (date("startDate"), date("endDate")) else {
        return Err("Invalid dateRange: use YYYY-MM-DD startDate and endDate.".to_string());
    };
    let dims = names(body, "dimensions");
    let mets = names(body, "metrics");
    if mets.is_empty() {
        return Err("At least one metric is required.".to_string());
    }
    for d in &dims {
        if !DIMENSIONS.contains(&d.as_str()) {
            return Err(format!("Field {d} is not a valid dimension."));
        }
    }
    for m in &mets {
        if !METRICS.iter().any(|(n, _)| n == m) {
            return Err(format!("Field {m} is not a valid metric."));
        }
    }
    let (Some(limit), Some(offset)) = (
        int_field(body, "limit", 10_000),
        int_field(body, "offset", 0),
    ) else {
        return Err("limit and offset must be integers.".to_string());
    };
    if limit == 0 || limit > 250_000 {
        return Err("limit must be between 1 and 250000.".to_string());
    }
    // Aggregate the rows of the range over the requested dimensions.
    let mut groups: Vec<(Vec<String>, Vec<i64>)> = Vec::new();
    let rows = p.rows.read().expect("rows lock");
    for r in rows.iter().filter(|r| r.date >= since && r.date <= until) {
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
            "tokensPerDay": {"consumed": cost,
                "remaining": (p.daily_tokens.load(Ordering::SeqCst) as i64 - used).max(0)},
            "tokensPerHour": {"consumed": cost, "remaining": (TOKENS_PER_HOUR - used).max(0)},
            "concurrentRequests": {"consumed": 0, "remaining": 10},
            "serverErrorsPerProjectPerHour": {"consumed": 0, "remaining": 10},
            "potentiallyThresholdedRequestsPerHour": {"consumed": 0, "remaining": 120},
            "tokensPerProjectPerHour": {"consumed": cost, "remaining": (14_000 - used).max(0)},
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sandbox, SandboxConfig};

    fn sessions(rows: &[Row]) -> i64 {
        rows.iter().map(|r| r.sessions).sum()
    }

    #[test]
    fn restating_raises_recent_days_and_drops_one_row() {
        let end = Utc::now();
        let p = Property::generate(7, 1, end);
        let before = p.rows();
        let (today, yesterday) = (p.end_date, p.end_date - Duration::days(1));
        assert_eq!(today, end.date_naive());
        let vanished = p.restate_recent_days(2).expect("a row vanished");
        let after = p.rows();
        assert_eq!(
            vanished.date, yesterday,
            "the oldest restated day loses a row"
        );
        assert_eq!(after.len(), before.len() - 1);
        assert!(!after.contains(&vanished));
        // Older days are untouched; the restated days keep their combos (but one) with more of everything.
        let old = |rows: &[Row]| -> Vec<Row> {
            rows.iter()
                .filter(|r| r.date < yesterday)
                .cloned()
                .collect()
        };
        assert_eq!(old(&after), old(&before));
        for day in [yesterday, today] {
            for a in after.iter().filter(|r| r.date == day) {
                let b = before
                    .iter()
                    .find(|b| {
                        b.date == day
                            && b.dimension("sessionCampaignName")
                                == a.dimension("sessionCampaignName")
                            && b.source == a.source
                    })
                    .unwrap();
                assert!(a.sessions > b.sessions && a.engaged_sessions > b.engaged_sessions);
                assert!(a.ecommerce_purchases > b.ecommerce_purchases);
                assert!(a.purchase_revenue_cents > b.purchase_revenue_cents);
                assert!(a.new_users > b.new_users);
            }
        }
        assert_eq!(
            p.rows_on(yesterday).len(),
            before.iter().filter(|r| r.date == yesterday).count() - 1
        );
        // Deterministic: the same property restated the same way gives the same rows.
        let q = Property::generate(7, 1, end);
        q.restate_recent_days(2);
        assert_eq!(q.rows(), after);
        assert_eq!(p.restate_recent_days(0), None);
    }

    async fn post(sandbox: &Sandbox, op: &str, body: Value) -> (u16, Value) {
        let p = sandbox.ga4();
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/v1beta/properties/{}:{op}",
                sandbox.ga4_url(),
                p.property_id
            ))
            .bearer_auth(format!("ya29.sandbox{}", p.private_key_id))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    fn day_request(day: &str) -> Value {
        json!({
            "dateRanges": [{"startDate": day, "endDate": day}],
            "dimensions": [{"name":"date"},{"name":"sessionSource"},{"name":"sessionCampaignName"}],
            "metrics": [{"name":"sessions"}],
            "limit": "250000",
            "offset": "0",
            "returnPropertyQuota": true,
        })
    }

    fn served_sessions(report: &Value) -> i64 {
        report["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r["metricValues"][0]["value"]
                    .as_str()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .sum()
    }

    #[tokio::test]
    async fn batches_of_up_to_five_reports_are_served_and_charged_per_report() {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let p = sandbox.ga4();
        let day = p.end_date;
        let days: Vec<String> = (0..5)
            .map(|d| (day - Duration::days(4 - d)).format("%Y-%m-%d").to_string())
            .collect();
        let mut requests: Vec<Value> = days.iter().map(|d| day_request(d)).collect();
        requests.push(day_request("2020-01-01"));
        let (code, err) = post(&sandbox, "batchRunReports", json!({ "requests": requests })).await;
        assert_eq!(code, 400, "{err}");
        assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
        let (code, err) = post(&sandbox, "batchRunReports", json!({ "requests": [] })).await;
        assert_eq!(code, 400, "{err}");

        requests.truncate(4);
        requests.push(day_request("2020-01-01"));
        let (code, batch) =
            post(&sandbox, "batchRunReports", json!({ "requests": requests })).await;
        assert_eq!(code, 200, "{batch}");
        assert_eq!(batch["kind"], "analyticsData#batchRunReports");
        let reports = batch["reports"].as_array().unwrap();
        assert_eq!(reports.len(), 5);
        for (report, d) in reports.iter().zip(&days[..4]) {
            let rows = p.rows_on(d.parse().unwrap());
            assert_eq!(report["rowCount"], rows.len());
            assert_eq!(served_sessions(report), sessions(&rows));
        }
        assert!(reports[4].get("rows").is_none(), "{}", reports[4]);
        // Each report is charged on its own: the hourly tokens left fall from one report to the next.
        let left: Vec<i64> = reports
            .iter()
            .map(|r| {
                r["propertyQuota"]["tokensPerHour"]["remaining"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert!(left.windows(2).all(|w| w[1] < w[0]), "{left:?}");

        // runReport serves the rows as restated.
        let vanished = p.restate_recent_days(2).unwrap();
        let d = vanished.date.format("%Y-%m-%d").to_string();
        let (code, report) = post(&sandbox, "runReport", day_request(&d)).await;
        assert_eq!(code, 200, "{report}");
        let rows = p.rows_on(vanished.date);
        assert_eq!(report["rowCount"], rows.len());
        assert_eq!(served_sessions(&report), sessions(&rows));
        sandbox.shutdown().await;
    }
}
