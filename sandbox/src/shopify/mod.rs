//! A simulated Shopify shop speaking the GraphQL Admin API under `/shopify`.
//!
//! | route | serves |
//! | --- | --- |
//! | `POST /shopify/admin/api/{version}/graphql.json` | GraphQL: `orders`, `customers`, `products`, `abandonedCheckouts` connections, `shop { name }`, `bulkOperationRunQuery`, `node(id:)` / `currentBulkOperation` polls |
//! | `GET /shopify/bulk/{id}.jsonl` | a completed bulk operation's JSONL (pre-signed: no token needed) |
//!
//! This is not a GraphQL server: the operation is recognised by its root field in the query text and
//! the arguments `first`, `after`, `query`, `sortKey`, `reverse` are read from the variables (or the
//! literal argument text). Nodes are returned whole — every field the generator made, whatever the
//! selection — in both `nodes` and `edges { cursor node }`.
//!
//! - Auth: `X-Shopify-Access-Token` must equal [`ShopData::access_token`], else HTTP 401 with
//!   `{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}`.
//! - Search syntax: `updated_at` / `created_at` with `>`, `>=`, `<`, `<=`, `:` (quoted or bare RFC 3339
//!   times or dates), terms joined by spaces or `AND`; other terms are ignored.
//! - Sort keys `CREATED_AT`, `UPDATED_AT`, `ID` (ties by id), `reverse`; cursors are base64 JSON of
//!   the last node's `(sort value, id)`; `first` is 1..=250.
//! - Cost: a connection costs `2 + first × (1 + Σ nested (2 + their first))` requested; actual cost
//!   uses the numbers returned. Each shop has a 2000-point bucket restored at 100 points/s (the
//!   Standard plan; [`ShopifyPlan`] for larger ones, `SandboxConfig::shopify_plan`); a query
//!   the bucket cannot cover is answered HTTP 200 `THROTTLED`; a requested cost over 1000 is
//!   `MAX_COST_EXCEEDED` (without `extensions`). Every other response carries `extensions.cost`.
//! - Bulk: `bulkOperationRunQuery` → `CREATED`; the first poll says `RUNNING`, the second `COMPLETED`
//!   with a `url`. The file flattens nested connections (line items, variants) into child lines with
//!   `__parentId`; every other parent has its children *before* it (as `groupObjects: false` allows).

mod cost;
mod data;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use crate::faults::{self, FaultLayer, Faults};

pub use cost::{ShopifyPlan, MAXIMUM_AVAILABLE, MAX_QUERY_COST, RESTORE_RATE};
pub use data::{ShopData, STOREFRONT, WINDOW_DAYS};

/// Path prefix of the simulated shop: the client's `base_url` is `http://HOST:PORT/shopify`.
pub const PREFIX: &str = "shopify";

/// The body of a 401.
pub const INVALID_TOKEN: &str =
    "[API] Invalid API key or access token (unrecognized login or wrong password)";

#[derive(Debug, Clone)]
struct BulkOp {
    id: u64,
    root: &'static str,
    filter: String,
    polls: u32,
    created_at: DateTime<Utc>,
}

#[derive(Debug)]
struct ShopState {
    shop: Arc<ShopData>,
    bulk: Mutex<Vec<BulkOp>>,
}

/// The shop's routes, under `/shopify`.
pub(crate) fn router(shop: Arc<ShopData>, faults: Faults) -> Router {
    let state = Arc::new(ShopState {
        shop,
        bulk: Mutex::new(Vec::new()),
    });
    Router::new()
        .route(
            &format!("/{PREFIX}/admin/api/{{version}}/graphql.json"),
            post(graphql),
        )
        .route(&format!("/{PREFIX}/bulk/{{file}}"), get(bulk_file))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            FaultLayer {
                faults,
                platform: PREFIX,
            },
            faults::middleware,
        ))
}

fn respond(status: StatusCode, body: &Value, version: Option<&str>) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert("x-shopify-api-version", v);
    }
    resp
}

fn is_version(v: &str) -> bool {
    if v == "unstable" {
        return true;
    }
    let b = v.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().all(u8::is_ascii_digit)
        && matches!(&v[5..], "01" | "04" | "07" | "10")
}

fn gql_error(message: &str, code: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// The five connection roots, as `(field in the query text, ShopData collection)`.
const ROOTS: [&str; 4] = ["abandonedCheckouts", "orders", "customers", "products"];

fn collection<'a>(shop: &'a ShopData, root: &str) -> &'a [Value] {
    match root {
        "orders" => &shop.orders,
        "customers" => &shop.customers,
        "products" => &shop.products,
        _ => &shop.abandoned_checkouts,
    }
}

/// The nested connection of a root's nodes, flattened into child lines in bulk files.
fn child_connection(root: &str) -> Option<(&'static str, &'static str)> {
    match root {
        "orders" => Some(("lineItems", "LineItem")),
        "products" => Some(("variants", "ProductVariant")),
        "abandonedCheckouts" => Some(("lineItems", "AbandonedCheckoutLineItem")),
        _ => None,
    }
}

fn typename(root: &str) -> &'static str {
    match root {
        "orders" => "Order",
        "customers" => "Customer",
        "products" => "Product",
        _ => "AbandonedCheckout",
    }
}

/// The earliest connection root field (`name(`) in `text`, with its position.
fn find_root(text: &str) -> Option<(&'static str, usize)> {
    ROOTS
        .iter()
        .filter_map(|r| {
            let pat = format!("{r}(");
            // Must not be part of a longer name (`customer(` vs `customers(` is already distinct).
            text.match_indices(&pat)
                .find(|(i, _)| *i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric())
                .map(|(i, _)| (*r, i))
        })
        .min_by_key(|(_, i)| *i)
}

/// The text between the `(` at `open` and its matching `)`.
fn args_text(text: &str, open: usize) -> &str {
    let mut depth = 0;
    let mut in_str = false;
    let bytes = text.as_bytes();
    let mut i = open;
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'(' {
            depth += 1;
        } else if c == b')' {
            depth -= 1;
            if depth == 0 {
                return &text[open + 1..i];
            }
        }
        i += 1;
    }
    &text[open + 1..]
}

/// Arguments of a field: `name: value` with `$var`, strings, numbers, enums, booleans and null.
fn parse_args(args: &str, variables: &Value) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    let b = args.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let name = &args[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if name.is_empty() || i >= b.len() || b[i] != b':' {
            // Not an argument list we understand; skip a character and go on.
            i = i.max(start + 1);
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let value = if b[i] == b'"' {
            let s = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            serde_json::from_str(&args[s..i.min(b.len())]).unwrap_or(Value::Null)
        } else {
            let s = i;
            while i < b.len() && !(b[i].is_ascii_whitespace() || b[i] == b',' || b[i] == b')') {
                i += 1;
            }
            let raw = &args[s..i];
            if let Some(var) = raw.strip_prefix('$') {
                variables.get(var).cloned().unwrap_or(Value::Null)
            } else if let Ok(n) = raw.parse::<i64>() {
                json!(n)
            } else {
                match raw {
                    "true" => json!(true),
                    "false" => json!(false),
                    "null" => Value::Null,
                    other => json!(other),
                }
            }
        };
        out.insert(name.to_string(), value);
    }
    out
}

/// `first:` values of the nested connections selected inside the root's selection.
fn nested_firsts(selection: &str, variables: &Value) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, _) in selection.match_indices('(') {
        let args = parse_args(args_text(selection, i), variables);
        if let Some(n) = args.get("first").and_then(Value::as_u64) {
            out.push(n);
        }
    }
    out
}

/// One search term's bound on a time field.
#[derive(Debug, Clone)]
struct Term {
    field: String,
    op: &'static str,
    at: DateTime<Utc>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim().trim_matches(|c| c == '\'' || c == '"');
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Shopify's search syntax, the part the connector uses.
fn parse_search(q: &str) -> Vec<Term> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in q.chars() {
        match quote {
            Some(qc) => {
                cur.push(c);
                if c == qc {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut out = Vec::new();
    for t in tokens {
        if t.eq_ignore_ascii_case("AND") {
            continue;
        }
        let Some((field, rest)) = t.split_once(':') else {
            continue;
        };
        let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
            (">=", v)
        } else if let Some(v) = rest.strip_prefix("<=") {
            ("<=", v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (">", v)
        } else if let Some(v) = rest.strip_prefix('<') {
            ("<", v)
        } else {
            ("=", rest)
        };
        if let Some(at) = parse_time(value) {
            out.push(Term {
                field: field.to_lowercase(),
                op,
                at,
            });
        }
    }
    out
}

fn node_time(node: &Value, field: &str) -> Option<DateTime<Utc>> {
    node.get(field).and_then(Value::as_str).and_then(parse_time)
}

fn matches(node: &Value, terms: &[Term]) -> bool {
    terms.iter().all(|t| {
        let field = match t.field.as_str() {
            "updated_at" => "updatedAt",
            "created_at" => "createdAt",
            _ => return true,
        };
        let Some(v) = node_time(node, field) else {
            return false;
        };
        match t.op {
            ">=" => v >= t.at,
            "<=" => v <= t.at,
            ">" => v > t.at,
            "<" => v < t.at,
            _ => v == t.at,
        }
    })
}

fn numeric_id(node: &Value) -> u64 {
    node["id"]
        .as_str()
        .and_then(|g| g.rsplit('/').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The sort value of a node under `sort_key`: a timestamp string or "" for ID.
fn sort_value(node: &Value, sort_key: &str) -> String {
    match sort_key {
        "CREATED_AT" => node["createdAt"].as_str().unwrap_or("").to_string(),
        "UPDATED_AT" => node["updatedAt"].as_str().unwrap_or("").to_string(),
        _ => String::new(),
    }
}

fn encode_cursor(value: &str, id: u64) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({ "last_id": id, "last_value": value }).to_string())
}

fn decode_cursor(cursor: &str) -> Option<(String, u64)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cursor.trim())
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v["last_value"].as_str()?.to_string(),
        v["last_id"].as_u64()?,
    ))
}

/// Nodes of `root` matching `filter`, sorted by `sort_key` (then id), reversed when asked.
fn select<'a>(
    shop: &'a ShopData,
    root: &str,
    filter: &str,
    sort_key: &str,
    reverse: bool,
) -> Vec<(String, u64, &'a Value)> {
    let terms = parse_search(filter);
    let mut rows: Vec<(String, u64, &Value)> = collection(shop, root)
        .iter()
        .filter(|n| matches(n, &terms))
        .map(|n| (sort_value(n, sort_key), numeric_id(n), n))
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    if reverse {
        rows.reverse();
    }
    rows
}

async fn graphql(
    State(st): State<Arc<ShopState>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_version(&version) {
        return respond(
            StatusCode::NOT_FOUND,
            &json!({ "errors": "Not Found" }),
            None,
        );
    }
    let v = Some(version.as_str());
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if token != st.shop.access_token {
        return respond(
            StatusCode::UNAUTHORIZED,
            &json!({ "errors": INVALID_TOKEN }),
            v,
        );
    }
    let is_graphql = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.starts_with("application/graphql"));
    let (query, variables) = if is_graphql {
        (String::from_utf8_lossy(&body).into_owned(), json!({}))
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(b) => (
                b["query"].as_str().unwrap_or("").to_string(),
                b.get("variables")
                    .filter(|v| v.is_object())
                    .cloned()
                    .unwrap_or(json!({})),
            ),
            Err(_) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    &json!({ "errors": { "query": "Required parameter missing or invalid" } }),
                    v,
                )
            }
        }
    };
    if query.trim().is_empty() {
        return respond(
            StatusCode::BAD_REQUEST,
            &json!({ "errors": { "query": "Required parameter missing or invalid" } }),
            v,
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let (status, body) = st.execute(&query, &variables, &host);
    respond(status, &body, v)
}

/// What a query asks for and costs, decided before charging it.
enum Op {
    Connection {
        root: &'static str,
        first: u64,
        after: Option<String>,
        filter: String,
        sort_key: String,
        reverse: bool,
        nested: Vec<u64>,
        with_shop: bool,
    },
    Shop,
    BulkRun(String),
    BulkPoll(Option<String>),
}

impl ShopState {
    fn execute(&self, query: &str, variables: &Value, host: &str) -> (StatusCode, Value) {
        let op = match self.plan(query, variables) {
            Ok(op) => op,
            Err(e) => return (StatusCode::OK, e),
        };
        let requested: u64 = match &op {
            Op::Connection { first, nested, .. } => {
                2 + first * (1 + nested.iter().map(|n| 2 + n).sum::<u64>())
            }
            Op::Shop => 1,
            Op::BulkRun(_) => 10,
            Op::BulkPoll(_) => 1,
        };
        if requested > MAX_QUERY_COST {
            self.shop.meter.refuse_over_cost();
            let message = format!(
                "Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\n\
                 See https://shopify.dev/docs/api/usage/rate-limits for more information on how the\n\
                 cost of a query is calculated.\n\n\
                 To query larger amounts of data with fewer limits, bulk operations should be used instead.\n\
                 See https://shopify.dev/docs/api/usage/bulk-operations/queries for usage details.\n"
            );
            return (
                StatusCode::OK,
                json!({ "errors": [{ "message": message, "extensions": {
                    "code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST,
                    "documentation": "https://shopify.dev/api/usage/rate-limits" } }] }),
            );
        }
        let meter = &self.shop.meter;
        if let cost::Charge::Throttled(available) = meter.charge(requested) {
            return (
                StatusCode::OK,
                json!({
                    "errors": [{ "message": "Throttled", "extensions": {
                        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits" } }],
                    "extensions": meter.extensions(requested, None, available),
                }),
            );
        }
        let (data, actual) = match op {
            Op::Connection {
                root,
                first,
                after,
                filter,
                sort_key,
                reverse,
                nested: _,
                with_shop,
            } => {
                let (conn, actual) =
                    self.connection(root, first, after.as_deref(), &filter, &sort_key, reverse);
                let mut data = Map::new();
                if with_shop {
                    data.insert("shop".into(), json!({ "name": self.shop.shop_name }));
                }
                data.insert(root.into(), conn);
                (Value::Object(data), actual)
            }
            Op::Shop => (json!({ "shop": { "name": self.shop.shop_name } }), 1),
            Op::BulkRun(inner) => (self.bulk_run(&inner), 10),
            Op::BulkPoll(id) => (self.bulk_poll(id.as_deref(), host, query), 1),
        };
        let available = meter.settle(requested, actual.min(requested));
        (
            StatusCode::OK,
            json!({ "data": data, "extensions": meter.extensions(requested, Some(actual.min(requested)), available) }),
        )
    }

    fn plan(&self, query: &str, variables: &Value) -> Result<Op, Value> {
        if let Some(i) = query.find("bulkOperationRunQuery") {
            let open = query[i..].find('(').map(|j| i + j);
            let args = open
                .map(|o| parse_args(args_text(query, o), variables))
                .unwrap_or_default();
            let inner = args
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return Ok(Op::BulkRun(inner));
        }
        if query.contains("currentBulkOperation") {
            return Ok(Op::BulkPoll(None));
        }
        if let Some(i) = query.find("node(") {
            let args = parse_args(args_text(query, i + 4), variables);
            return Ok(Op::BulkPoll(Some(
                args.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )));
        }
        let Some((root, at)) = find_root(query) else {
            if query.contains("shop") {
                return Ok(Op::Shop);
            }
            return Err(
                json!({ "errors": [{ "message": "Field or operation not supported by the growthflow sandbox",
                "extensions": { "code": "undefinedField" } }] }),
            );
        };
        let open = at + root.len();
        let args_raw = args_text(query, open);
        let args = parse_args(args_raw, variables);
        let Some(first) = args.get("first").and_then(Value::as_u64) else {
            return Err(gql_error(
                "you must provide one of first or last",
                "BAD_REQUEST",
            ));
        };
        if first > 250 {
            return Err(gql_error(
                "The first argument cannot exceed 250. To query larger amounts of data, use bulk operations instead.",
                "BAD_REQUEST",
            ));
        }
        let selection = &query[(open + args_raw.len() + 1).min(query.len())..];
        let with_shop = query[..at].contains("shop");
        Ok(Op::Connection {
            root,
            first,
            after: args
                .get("after")
                .and_then(Value::as_str)
                .map(str::to_string),
            filter: args
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            sort_key: args
                .get("sortKey")
                .and_then(Value::as_str)
                .unwrap_or("ID")
                .to_string(),
            reverse: args
                .get("reverse")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            nested: nested_firsts(selection, variables),
            with_shop,
        })
    }

    /// One page of a connection and its actual cost.
    fn connection(
        &self,
        root: &'static str,
        first: u64,
        after: Option<&str>,
        filter: &str,
        sort_key: &str,
        reverse: bool,
    ) -> (Value, u64) {
        let rows = select(&self.shop, root, filter, sort_key, reverse);
        let start = match after.and_then(decode_cursor) {
            Some((value, id)) => rows
                .iter()
                .position(|(v, i, _)| {
                    let key = (v.as_str(), *i);
                    if reverse {
                        key < (value.as_str(), id)
                    } else {
                        key > (value.as_str(), id)
                    }
                })
                .unwrap_or(rows.len()),
            None => 0,
        };
        let page: Vec<&(String, u64, &Value)> = rows[start..].iter().take(first as usize).collect();
        let has_next = start + page.len() < rows.len();
        let mut actual = 2u64;
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for (v, id, node) in &page {
            actual += 1;
            if let Some((field, _)) = child_connection(root) {
                let n = node[field]["nodes"].as_array().map_or(0, Vec::len) as u64;
                actual += 2 + n;
            }
            nodes.push((*node).clone());
            edges.push(json!({ "cursor": encode_cursor(v, *id), "node": node }));
        }
        let end_cursor = page.last().map(|(v, id, _)| encode_cursor(v, *id));
        let start_cursor = page.first().map(|(v, id, _)| encode_cursor(v, *id));
        (
            json!({
                "pageInfo": {
                    "hasNextPage": has_next,
                    "hasPreviousPage": start > 0,
                    "startCursor": start_cursor,
                    "endCursor": end_cursor,
                },
                "nodes": nodes,
                "edges": edges,
            }),
            actual,
        )
    }

    fn bulk_run(&self, inner: &str) -> Value {
        let Some((root, at)) = find_root(inner) else {
            return json!({ "bulkOperationRunQuery": { "bulkOperation": null, "userErrors": [
                { "code": "INVALID", "field": ["query"], "message": "Bulk queries must contain at least one connection." }] } });
        };
        let args = parse_args(args_text(inner, at + root.len()), &json!({}));
        let mut ops = self.bulk.lock().unwrap_or_else(|e| e.into_inner());
        // API 2026-01 and later: up to five bulk queries at a time per shop and app.
        let running: Vec<&BulkOp> = ops.iter().filter(|o| o.polls < 2).collect();
        if let Some(running) = running.get(4) {
            return json!({ "bulkOperationRunQuery": { "bulkOperation": null, "userErrors": [{
                "code": "OPERATION_IN_PROGRESS", "field": null,
                "message": format!("A bulk query operation for this app and shop is already in progress: gid://shopify/BulkOperation/{}.", running.id) }] } });
        }
        let op = BulkOp {
            id: 5_732_981_489_000 + ops.len() as u64 + 1,
            root,
            filter: args
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            polls: 0,
            created_at: Utc::now(),
        };
        let v = json!({ "bulkOperationRunQuery": { "bulkOperation": {
            "id": format!("gid://shopify/BulkOperation/{}", op.id),
            "status": "CREATED",
            "createdAt": op.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }, "userErrors": [] } });
        ops.push(op);
        v
    }

    fn bulk_poll(&self, id: Option<&str>, host: &str, query: &str) -> Value {
        let field = if query.contains("currentBulkOperation") {
            "currentBulkOperation"
        } else {
            "node"
        };
        let mut ops = self.bulk.lock().unwrap_or_else(|e| e.into_inner());
        let op = match id {
            None => ops.last_mut(),
            Some(gid) => {
                let n: u64 = gid
                    .rsplit('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                ops.iter_mut().find(|o| o.id == n)
            }
        };
        let Some(op) = op else {
            return json!({ field: null });
        };
        op.polls += 1;
        let done = op.polls >= 2;
        let rows = select(&self.shop, op.root, &op.filter, "CREATED_AT", false).len();
        let created = op.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        json!({ field: {
            "id": format!("gid://shopify/BulkOperation/{}", op.id),
            "status": if done { "COMPLETED" } else { "RUNNING" },
            "errorCode": null,
            "type": "QUERY",
            "createdAt": created,
            "completedAt": if done { json!(Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()) } else { Value::Null },
            "objectCount": if done { rows.to_string() } else { "0".to_string() },
            "rootObjectCount": if done { rows.to_string() } else { "0".to_string() },
            "url": if done && rows > 0 {
                json!(format!("http://{host}/{PREFIX}/bulk/{}.jsonl?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Expires=604800&X-Goog-Signature=sandbox", op.id))
            } else { Value::Null },
            "partialDataUrl": null,
        } })
    }
}

/// The JSONL lines of one bulk operation.
fn bulk_lines(shop: &ShopData, op: &BulkOp) -> String {
    let mut out = String::new();
    let rows = select(shop, op.root, &op.filter, "CREATED_AT", false);
    for (k, (_, _, node)) in rows.iter().enumerate() {
        let mut parent = node.as_object().cloned().unwrap_or_default();
        let mut children = Vec::new();
        if let Some((field, tn)) = child_connection(op.root) {
            if let Some(Value::Object(conn)) = parent.shift_remove(field) {
                for child in conn
                    .get("nodes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let mut c = Map::new();
                    c.insert("__typename".into(), json!(tn));
                    if let Some(o) = child.as_object() {
                        c.extend(o.clone());
                    }
                    c.insert("__parentId".into(), node["id"].clone());
                    children.push(Value::Object(c).to_string());
                }
            }
        }
        let mut p = Map::new();
        p.insert("__typename".into(), json!(typename(op.root)));
        p.extend(parent);
        let parent_line = Value::Object(p).to_string();
        // groupObjects: false — children of every other parent come before it.
        if k % 2 == 1 {
            for c in &children {
                out.push_str(c);
                out.push('\n');
            }
            out.push_str(&parent_line);
            out.push('\n');
        } else {
            out.push_str(&parent_line);
            out.push('\n');
            for c in &children {
                out.push_str(c);
                out.push('\n');
            }
        }
    }
    out
}

async fn bulk_file(State(st): State<Arc<ShopState>>, Path(file): Path<String>) -> Response {
    let id: Option<u64> = file.strip_suffix(".jsonl").and_then(|s| s.parse().ok());
    let op = {
        let ops = st.bulk.lock().unwrap_or_else(|e| e.into_inner());
        id.and_then(|id| ops.iter().find(|o| o.id == id && o.polls >= 2).cloned())
    };
    let Some(op) = op else {
        let mut resp = Response::new(Body::from(
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        ));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=UTF-8"),
        );
        return resp;
    };
    let body = bulk_lines(&st.shop, &op);
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_and_arguments() {
        let t = parse_search("updated_at:>='2025-03-01T00:00:00Z' AND created_at:<2025-04-01");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].op, ">=");
        assert_eq!(t[1].field, "created_at");
        let a = parse_args(
            r#"first: $first, after: null, query: "created_at:>='x'", sortKey: UPDATED_AT, reverse: true"#,
            &json!({"first": 7}),
        );
        assert_eq!(a["first"], 7);
        assert_eq!(a["query"], "created_at:>='x'");
        assert_eq!(a["sortKey"], "UPDATED_AT");
        assert_eq!(a["reverse"], true);
        assert!(is_version("2026-10") && !is_version("2026-11"));
        assert_eq!(decode_cursor(&encode_cursor("v", 3)), Some(("v".into(), 3)));
    }
}
