//! The JSON:API routes of the simulated Klaviyo account.

use std::borrow::Cow;
use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};

use super::{EventData, KlaviyoAccount, PREFIX};
use crate::clock::Time;
use crate::faults::{self, FaultLayer, Faults};

const JSON_API: &str = "application/vnd.api+json";

/// The first revision whose `/api/events` takes `page[size]`.
const EVENTS_PAGE_SIZE_SINCE: &str = "2026-01-15";

const EQ: &str = "equals";
const GT: &str = "greater-than";
const GTE: &str = "greater-or-equal";
const LT: &str = "less-than";
const LTE: &str = "less-or-equal";
const CMP: &[&str] = &[GT, GTE, LT, LTE];
const CMP_EQ: &[&str] = &[EQ, GT, GTE, LT, LTE];

/// What one collection endpoint accepts.
struct Endpoint {
    name: &'static str,
    /// (burst per second, steady per minute).
    tier: (u32, u32),
    default_size: usize,
    /// `None`: the endpoint takes no `page[size]`.
    max_size: Option<usize>,
    filters: &'static [(&'static str, &'static [&'static str])],
    sorts: &'static [&'static str],
    includes: &'static [&'static str],
}

const ENDPOINTS: [Endpoint; 6] = [
    Endpoint {
        name: "events",
        tier: (350, 3500),
        default_size: 200,
        max_size: Some(1000),
        filters: &[
            ("datetime", CMP),
            ("timestamp", CMP),
            ("metric_id", &[EQ]),
            ("profile_id", &[EQ]),
        ],
        sorts: &["datetime", "timestamp"],
        includes: &["attributions", "metric", "profile"],
    },
    Endpoint {
        name: "metrics",
        tier: (10, 150),
        default_size: 200,
        max_size: None,
        filters: &[("integration.name", &[EQ]), ("integration.category", &[EQ])],
        sorts: &[],
        includes: &["flow-triggers"],
    },
    Endpoint {
        name: "profiles",
        tier: (75, 750),
        default_size: 20,
        max_size: Some(100),
        filters: &[
            ("id", &[EQ]),
            ("email", &[EQ]),
            ("created", &[GT, LT]),
            ("updated", &[GT, LT]),
        ],
        sorts: &["created", "email", "id", "updated"],
        includes: &[],
    },
    Endpoint {
        name: "campaigns",
        tier: (10, 150),
        default_size: 100,
        max_size: Some(100),
        filters: &[
            ("messages.channel", &[EQ]),
            ("id", &[EQ]),
            ("archived", &[EQ]),
            ("created_at", CMP),
            ("scheduled_at", CMP),
            ("updated_at", CMP),
        ],
        sorts: &["created_at", "id", "name", "scheduled_at", "updated_at"],
        includes: &[],
    },
    Endpoint {
        name: "flows",
        tier: (3, 60),
        default_size: 50,
        max_size: Some(50),
        filters: &[
            ("id", &[EQ]),
            ("status", &[EQ]),
            ("archived", &[EQ]),
            ("created", CMP_EQ),
            ("updated", CMP_EQ),
        ],
        sorts: &["created", "id", "name", "status", "trigger_type", "updated"],
        includes: &[],
    },
    Endpoint {
        name: "lists",
        tier: (75, 750),
        default_size: 10,
        max_size: Some(10),
        filters: &[
            ("id", &[EQ]),
            ("name", &[EQ]),
            ("created", &[GT]),
            ("updated", &[GT]),
        ],
        sorts: &["created", "id", "name", "updated"],
        includes: &[],
    },
];

/// The (burst per second, steady per minute) limits of an endpoint (`None` for endpoints the sandbox does not serve).
pub fn tier_of(endpoint: &str) -> Option<(u32, u32)> {
    ENDPOINTS
        .iter()
        .find(|e| e.name == endpoint)
        .map(|e| e.tier)
}

struct KState {
    account: Arc<KlaviyoAccount>,
    /// (type, id) → position in the account's list of that type (no second copy of the resources).
    index: HashMap<(&'static str, String), usize>,
    errors: AtomicU64,
    /// The rate windows' clock.
    time: Time,
}

pub(crate) fn router(account: Arc<KlaviyoAccount>, faults: Faults, time: Time) -> Router {
    let mut index = HashMap::new();
    for (t, items) in [
        ("metric", &account.metrics),
        ("profile", &account.profiles),
        ("attribution", &account.attributions),
    ] {
        for (i, item) in items.iter().enumerate() {
            index.insert((t, item["id"].as_str().unwrap_or("").to_string()), i);
        }
    }
    let state = Arc::new(KState {
        account,
        index,
        errors: AtomicU64::new(0),
        time,
    });
    let prefix = format!("/{PREFIX}");
    Router::new()
        .route(&prefix, any(handle))
        .route(&format!("{prefix}/{{*rest}}"), any(handle))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            FaultLayer {
                faults,
                platform: PREFIX,
            },
            faults::middleware,
        ))
}

impl KState {
    /// A metric, profile or attribution by id, for `included`.
    fn resource(&self, t: &'static str, id: &str) -> Option<&Value> {
        let list = match t {
            "metric" => &self.account.metrics,
            "profile" => &self.account.profiles,
            _ => &self.account.attributions,
        };
        self.index.get(&(t, id.to_string())).map(|&i| &list[i])
    }
}

fn error(
    state: &KState,
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    source: Value,
) -> Response {
    let n = state.errors.fetch_add(1, Ordering::SeqCst);
    let body = json!({"errors": [{
        "id": format!("8c8f4aea-7289-4a13-b697-{n:012x}"),
        "status": status.as_u16(), "code": code, "title": title, "detail": detail,
        "source": source, "meta": {}}]});
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    resp
}

fn invalid(state: &KState, detail: &str, parameter: &str) -> Response {
    error(
        state,
        StatusCode::BAD_REQUEST,
        "invalid",
        "Invalid input.",
        detail,
        json!({"parameter": parameter}),
    )
}

async fn handle(
    State(state): State<Arc<KState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let st = &*state;
    let path = uri.path().to_string();
    let rest = path
        .strip_prefix(&format!("/{PREFIX}/api/"))
        .map(|r| r.trim_end_matches('/'));
    let endpoint = rest.and_then(|r| ENDPOINTS.iter().find(|e| e.name == r));
    let Some(endpoint) = endpoint else {
        return error(
            st,
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found.",
            &format!("No route matches {path}."),
            json!({"pointer": "/data/"}),
        );
    };
    if method != Method::GET {
        return error(
            st,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed.",
            &format!("Method \"{method}\" not allowed."),
            json!({"pointer": "/data/"}),
        );
    }
    // Authentication first: limits are per account.
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match auth {
        None | Some("") => {
            return error(
                st,
                StatusCode::UNAUTHORIZED,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
                json!({"pointer": "/data/"}),
            )
        }
        Some(a) if a != format!("Klaviyo-API-Key {}", st.account.api_key) => {
            return error(
                st,
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "Incorrect authentication credentials.",
                "Incorrect authentication credentials.",
                json!({"pointer": "/data/"}),
            )
        }
        Some(_) => {}
    }
    let revision = headers
        .get("revision")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if revision.is_empty() {
        return invalid(st, "Missing required header 'revision'.", "revision");
    }
    let date = revision.split('.').next().unwrap_or("");
    if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() || date.len() != 10 {
        return invalid(
            st,
            &format!("Invalid revision '{revision}'. Revisions look like YYYY-MM-DD[.suffix]."),
            "revision",
        );
    }
    let (remaining, reset) =
        match st
            .account
            .limiter()
            .admit(endpoint.name, endpoint.tier, st.time.unix_ms())
        {
            Ok(r) => r,
            Err(retry) => {
                let mut resp = error(
                    st,
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "Request was throttled.",
                    &format!(
                        "Request was throttled. Expected available in {retry} second{}.",
                        if retry == 1 { "" } else { "s" }
                    ),
                    json!({"pointer": "/data/"}),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry));
                return resp;
            }
        };
    let mut resp = match serve(st, endpoint, revision, &uri, &headers) {
        Ok(doc) => {
            let mut resp = Response::new(Body::from(doc.to_string()));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
            resp
        }
        Err(resp) => resp,
    };
    let h = resp.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(endpoint.tier.1));
    h.insert("ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("ratelimit-reset", HeaderValue::from(reset));
    resp
}

/// A filter value.
#[derive(Debug, Clone)]
enum Operand {
    Str(String),
    Bool(bool),
    Num(f64),
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone)]
struct Condition {
    op: String,
    field: String,
    value: Operand,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Split at top-level commas (outside parentheses, brackets and quotes).
fn split_top(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut cur = String::new();
    for c in s.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                cur.push(c);
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '(' | '[' => {
                    depth += 1;
                    cur.push(c);
                }
                ')' | ']' => {
                    depth -= 1;
                    if depth < 0 {
                        return None;
                    }
                    cur.push(c);
                }
                ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            },
        }
    }
    if depth != 0 || quote.is_some() {
        return None;
    }
    parts.push(cur);
    Some(parts.into_iter().map(|p| p.trim().to_string()).collect())
}

fn parse_filter(s: &str, out: &mut Vec<Condition>) -> Result<(), String> {
    for expr in split_top(s).ok_or_else(|| format!("Invalid filter provided: {s}"))? {
        let open = expr
            .find('(')
            .filter(|_| expr.ends_with(')'))
            .ok_or_else(|| format!("Invalid filter provided: {expr}"))?;
        let op = expr[..open].trim();
        let inner = &expr[open + 1..expr.len() - 1];
        if op == "and" {
            parse_filter(inner, out)?;
            continue;
        }
        let args = split_top(inner).ok_or_else(|| format!("Invalid filter provided: {expr}"))?;
        let [field, value] = args.as_slice() else {
            return Err(format!("Invalid filter provided: {expr}"));
        };
        let value = if (value.starts_with('\'') && value.ends_with('\'')
            || value.starts_with('"') && value.ends_with('"'))
            && value.len() >= 2
        {
            Operand::Str(value[1..value.len() - 1].to_string())
        } else if value == "true" || value == "false" {
            Operand::Bool(value == "true")
        } else if let Some(t) = value.contains('-').then(|| parse_time(value)).flatten() {
            Operand::Time(t)
        } else if let Ok(n) = value.parse::<f64>() {
            Operand::Num(n)
        } else {
            return Err(format!("Invalid value {value:?} in filter {expr}"));
        };
        out.push(Condition {
            op: op.to_string(),
            field: field.clone(),
            value,
        });
    }
    Ok(())
}

/// The value of a filter or sort field on a resource other than an event ([`event_matches`]).
fn field_value(st: &KState, endpoint: &str, item: &Value, field: &str) -> Value {
    match (endpoint, field) {
        (_, "id") => item["id"].clone(),
        ("campaigns", "messages.channel") => {
            Value::String(st.account.campaign_channel(item).to_string())
        }
        ("metrics", f) if f.starts_with("integration.") => {
            item["attributes"]["integration"][&f["integration.".len()..]].clone()
        }
        (_, f) => item["attributes"][f].clone(),
    }
}

/// Whether the `i`-th event meets a condition: what [`matches`] says of the field's JSON value, read
/// from the event's numbers (a time bound on `datetime` compares the time itself, which is what
/// parsing the rendered `datetime` gave).
fn event_matches(data: &EventData, i: usize, c: &Condition) -> bool {
    let e = &data.events[i];
    let actual = match c.field.as_str() {
        "datetime" => {
            if let Operand::Time(t) = &c.value {
                let at = DateTime::from_timestamp(e.at, 0).expect("a generated time");
                return compare(at.cmp(t), &c.op);
            }
            Value::String(super::ts(
                DateTime::from_timestamp(e.at, 0).expect("a generated time"),
            ))
        }
        "timestamp" => Value::from(e.at),
        "metric_id" => Value::String(data.metric_ids[e.metric as usize].clone()),
        "profile_id" => Value::String(data.profile_ids[e.profile as usize].clone()),
        "id" => Value::String(e.id().to_string()),
        _ => Value::Null,
    };
    matches(&actual, c)
}

fn compare(ord: CmpOrdering, op: &str) -> bool {
    match op {
        EQ => ord == CmpOrdering::Equal,
        GT => ord == CmpOrdering::Greater,
        GTE => ord != CmpOrdering::Less,
        LT => ord == CmpOrdering::Less,
        LTE => ord != CmpOrdering::Greater,
        _ => false,
    }
}

fn matches(actual: &Value, c: &Condition) -> bool {
    let ord: Option<CmpOrdering> = match &c.value {
        Operand::Time(t) => actual.as_str().and_then(parse_time).map(|a| a.cmp(t)),
        Operand::Num(n) => actual.as_f64().and_then(|a| a.partial_cmp(n)),
        Operand::Str(s) => actual.as_str().map(|a| a.cmp(s.as_str())),
        Operand::Bool(b) => actual.as_bool().map(|a| a.cmp(b)),
    };
    let Some(ord) = ord else {
        return false;
    };
    compare(ord, &c.op)
}

fn compare_values(a: &Value, b: &Value) -> CmpOrdering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(CmpOrdering::Equal),
        (Value::String(x), Value::String(y)) => match (parse_time(x), parse_time(y)) {
            (Some(tx), Some(ty)) => tx.cmp(&ty),
            _ => x.cmp(y),
        },
        (Value::Null, Value::Null) => CmpOrdering::Equal,
        (Value::Null, _) => CmpOrdering::Less,
        (_, Value::Null) => CmpOrdering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("next::offset::{offset}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("next::offset::")?
        .parse()
        .ok()
}

/// Apply `fields[type]` to a resource's attributes.
fn sparse(item: &mut Value, fields: &HashMap<String, Vec<String>>) {
    let Some(t) = item["type"].as_str() else {
        return;
    };
    let Some(keep) = fields.get(t) else {
        return;
    };
    if let Some(attrs) = item.get_mut("attributes").and_then(Value::as_object_mut) {
        attrs.retain(|k, _| keep.iter().any(|f| f == k));
    }
}

// The error is the response to send, built once and returned once per request.
#[allow(clippy::result_large_err)]
fn serve(
    st: &KState,
    endpoint: &Endpoint,
    revision: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Value, Response> {
    let query = uri.query().unwrap_or("");
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());

    // Filter.
    let mut conditions = Vec::new();
    if let Some(f) = get("filter") {
        parse_filter(f, &mut conditions).map_err(|d| invalid(st, &d, "filter"))?;
    }
    for c in &conditions {
        let allowed = endpoint
            .filters
            .iter()
            .find(|(f, _)| *f == c.field)
            .map(|(_, ops)| *ops);
        match allowed {
            Some(ops) if ops.contains(&c.op.as_str()) => {}
            Some(_) => {
                return Err(invalid(
                    st,
                    &format!(
                        "'{}' operation is not allowed for field '{}'.",
                        c.op, c.field
                    ),
                    "filter",
                ))
            }
            None => {
                return Err(invalid(
                    st,
                    &format!(
                        "'{}' is not a valid field for the resource '{}'.",
                        c.field, endpoint.name
                    ),
                    "filter",
                ))
            }
        }
    }
    if endpoint.name == "campaigns" && !conditions.iter().any(|c| c.field == "messages.channel") {
        return Err(invalid(
            st,
            "A channel filter is required to list campaigns. Please try adding either \
             equals(messages.channel,'email') or equals(messages.channel,'sms') to your filter.",
            "filter",
        ));
    }

    // Sort.
    let sort = match get("sort") {
        None | Some("") => None,
        Some(s) => {
            let (desc, field) = match s.strip_prefix('-') {
                Some(f) => (true, f),
                None => (false, s),
            };
            if !endpoint.sorts.contains(&field) {
                return Err(invalid(
                    st,
                    &format!("'{s}' is not a valid sort field."),
                    "sort",
                ));
            }
            Some((desc, field.to_string()))
        }
    };

    // Page size.
    let size = match get("page[size]") {
        None => endpoint.default_size,
        Some(raw) => {
            let Some(max) = endpoint.max_size else {
                return Err(invalid(
                    st,
                    "'page[size]' is not a valid parameter for this endpoint.",
                    "page[size]",
                ));
            };
            if endpoint.name == "events"
                && revision.get(..10).unwrap_or(revision) < EVENTS_PAGE_SIZE_SINCE
            {
                return Err(invalid(
                    st,
                    &format!(
                        "'page[size]' is not supported on this endpoint in revision {revision}."
                    ),
                    "page[size]",
                ));
            }
            match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        st,
                        &format!("Page size must be an integer between 1 and {max}."),
                        "page[size]",
                    ))
                }
            }
        }
    };

    // Includes.
    let includes: Vec<String> = match get("include") {
        None | Some("") => Vec::new(),
        Some(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
    };
    for inc in &includes {
        if !endpoint.includes.contains(&inc.as_str()) {
            return Err(invalid(
                st,
                &format!("'{inc}' is not an allowed include parameter for this resource."),
                "include",
            ));
        }
    }
    let fields: HashMap<String, Vec<String>> = params
        .iter()
        .filter_map(|(k, v)| {
            let t = k.strip_prefix("fields[")?.strip_suffix(']')?;
            Some((
                t.to_string(),
                v.split(',').map(|f| f.trim().to_string()).collect(),
            ))
        })
        .collect();

    let offset = match get("page[cursor]") {
        None => 0,
        Some(c) => {
            decode_cursor(c).ok_or_else(|| invalid(st, "Invalid page cursor.", "page[cursor]"))?
        }
    };

    let account = &st.account;
    // Events are held compactly and in (datetime, id) order: filtered on their numbers, sorted by
    // that order, and rendered for the page only. Other resources are few and kept as values.
    let (total, page): (usize, Vec<Cow<'_, Value>>) = if endpoint.name == "events" {
        let data = &account.event_data;
        let mut selected: Vec<usize> = (0..data.events.len())
            .filter(|&i| conditions.iter().all(|c| event_matches(data, i, c)))
            .collect();
        // The only sorts are `datetime` and `timestamp`: the order held, or its reverse (ties by
        // id, as the held order breaks them).
        if sort.as_ref().is_some_and(|(desc, _)| *desc) {
            selected.reverse();
        }
        let page = selected
            .iter()
            .skip(offset)
            .take(size)
            .map(|&i| Cow::Owned(data.render(i)))
            .collect();
        (selected.len(), page)
    } else {
        let source: &Vec<Value> = match endpoint.name {
            "metrics" => &account.metrics,
            "profiles" => &account.profiles,
            "campaigns" => &account.campaigns,
            "flows" => &account.flows,
            _ => &account.lists,
        };
        let mut selected: Vec<&Value> = source
            .iter()
            .filter(|item| {
                conditions
                    .iter()
                    .all(|c| matches(&field_value(st, endpoint.name, item, &c.field), c))
            })
            .collect();
        if let Some((desc, field)) = &sort {
            selected.sort_by(|a, b| {
                let o = compare_values(
                    &field_value(st, endpoint.name, a, field),
                    &field_value(st, endpoint.name, b, field),
                )
                .then_with(|| a["id"].as_str().cmp(&b["id"].as_str()));
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let page = selected
            .iter()
            .skip(offset)
            .take(size)
            .map(|v| Cow::Borrowed(*v))
            .collect();
        (selected.len(), page)
    };
    let next_offset = offset + page.len();

    let mut included = Vec::new();
    let mut seen = HashSet::new();
    let mut data = Vec::with_capacity(page.len());
    for item in page {
        let item = &*item;
        for inc in &includes {
            let (t, linkages): (&'static str, Vec<&Value>) = match inc.as_str() {
                "metric" => (
                    "metric",
                    item.pointer("/relationships/metric/data")
                        .into_iter()
                        .collect(),
                ),
                "profile" => (
                    "profile",
                    item.pointer("/relationships/profile/data")
                        .into_iter()
                        .collect(),
                ),
                "attributions" => (
                    "attribution",
                    item.pointer("/relationships/attributions/data")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().collect())
                        .unwrap_or_default(),
                ),
                _ => continue,
            };
            for link in linkages {
                let Some(id) = link["id"].as_str() else {
                    continue;
                };
                if !seen.insert((t, id.to_string())) {
                    continue;
                }
                if let Some(r) = st.resource(t, id) {
                    let mut r = r.clone();
                    sparse(&mut r, &fields);
                    included.push(r);
                }
            }
        }
        let mut d = item.clone();
        sparse(&mut d, &fields);
        data.push(d);
    }

    // Links: full URLs on the host the client used.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let base = format!("http://{host}{}", uri.path());
    let with_cursor = |cursor: Option<usize>| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "page[cursor]") {
            ser.append_pair(k, v);
        }
        if let Some(c) = cursor {
            ser.append_pair("page[cursor]", &encode_cursor(c));
        }
        let q = ser.finish();
        if q.is_empty() {
            base.clone()
        } else {
            format!("{base}?{q}")
        }
    };
    let next = (next_offset < total).then(|| with_cursor(Some(next_offset)));
    let prev = (offset > 0).then(|| with_cursor(Some(offset.saturating_sub(size))));
    let mut doc = json!({
        "data": data,
        "links": {"self": with_cursor((offset > 0).then_some(offset)), "next": next, "prev": prev},
    });
    if !includes.is_empty() {
        doc["included"] = Value::Array(included);
    }
    Ok(doc)
}
