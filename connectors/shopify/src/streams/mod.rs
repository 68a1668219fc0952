//! The streams Shopify is read as, declared as data, and the one GraphQL read loop they share.
//!
//! Every stream is a connection of the GraphQL Admin API paged with `first`/`after` and
//! `pageInfo { hasNextPage endCursor }`, filtered with Shopify's search syntax in `query:`:
//!
//! - incremental reads ask for `updated_at:>='<saved cursor − 1 s − lookback>'` sorted by `UPDATED_AT`,
//!   so orders, customers and products can be checkpointed after every page;
//! - abandoned checkouts cannot be sorted by update time (their sort keys are `CREATED_AT`, `ID`, …), so
//!   that stream is read by id and only checkpointed once it is complete;
//! - backfill windows ask for `created_at:>='<since>' created_at:<'<until>'` sorted by creation time.
//!
//! A stream's first page asks for as many records as its query's estimated worst-case cost allows under
//! Shopify's single-query limit ([`selection_cost`]), later pages as many as the cost Shopify reported
//! allows; a page still refused (`MAX_COST_EXCEEDED`) is asked again smaller, and the smaller size is kept
//! for the rest of the stream. Pacing on the cost
//! bucket and retries on `THROTTLED` are the HTTP layer's, through [`ShopifyPolicy`](crate::ShopifyPolicy).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde_json::{json, Value};
use url::Url;

use growthflow_core::connector::{Page, ReadRequest, Record, StreamDef, SyncMode, Window};
use growthflow_core::http::{HttpClient, Response};
use growthflow_core::paginate::{paged, JsonCursor, NextPage};
use growthflow_core::start::{read_start, Rewind};
use growthflow_core::time::{format_utc, parse_utc};
use growthflow_core::{Error, Result};

use crate::cost::CostBucket;
use crate::policy::{QueryCost, MAX_COST_EXCEEDED};

/// The rate-limit and pause key of every GraphQL request: Shopify's cost bucket is shared by the whole
/// app installation, so a pause learnt on one stream must hold for all of them.
pub const ENDPOINT: &str = "graphql";

/// Orders with money, line items, refunds and the customer journey summary.
pub const ORDERS: StreamDef = StreamDef {
    name: "orders",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updatedAt",
    },
    sorted: true,
    parent: None,
    description: "Orders (GraphQL orders, sortKey UPDATED_AT) with line items, refunds and customerJourneySummary",
};

/// Customers with lifetime order count and spend.
pub const CUSTOMERS: StreamDef = StreamDef {
    name: "customers",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updatedAt",
    },
    sorted: true,
    parent: None,
    description: "Customers (GraphQL customers, sortKey UPDATED_AT)",
};

/// Products with their first 50 variants.
pub const PRODUCTS: StreamDef = StreamDef {
    name: "products",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updatedAt",
    },
    sorted: true,
    parent: None,
    description: "Products with variants (GraphQL products, sortKey UPDATED_AT)",
};

/// Abandoned checkouts (needs the staff permission to manage abandoned checkouts).
pub const ABANDONED_CHECKOUTS: StreamDef = StreamDef {
    name: "abandoned_checkouts",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updatedAt",
    },
    sorted: false,
    parent: None,
    description: "Abandoned checkouts (GraphQL abandonedCheckouts); Shopify cannot sort them by update time, \
                  so the cursor is saved when the stream completes",
};

/// Every stream, in the order `discover` lists and `sync` reads them.
pub fn stream_defs() -> Vec<StreamDef> {
    vec![ORDERS, CUSTOMERS, PRODUCTS, ABANDONED_CHECKOUTS]
}

/// The fields of an order. `refunds` is a plain list, not a connection.
const ORDER_FIELDS: &str =
    "id legacyResourceId name createdAt updatedAt processedAt cancelledAt cancelReason
      email test tags sourceName currencyCode presentmentCurrencyCode discountCodes
      displayFinancialStatus displayFulfillmentStatus
      customer { id email }
      totalPriceSet { shopMoney { amount currencyCode } }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      totalDiscountsSet { shopMoney { amount currencyCode } }
      totalTaxSet { shopMoney { amount currencyCode } }
      totalShippingPriceSet { shopMoney { amount currencyCode } }
      totalRefundedSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) { nodes { id name sku quantity currentQuantity
        originalUnitPriceSet { shopMoney { amount currencyCode } }
        discountedTotalSet { shopMoney { amount currencyCode } }
        product { id } variant { id } } }
      refunds { id createdAt note totalRefundedSet { shopMoney { amount currencyCode } } }
      customerJourneySummary { ready customerOrderIndex daysToConversion
        firstVisit { ...Visit } lastVisit { ...Visit } }";

const VISIT_FRAGMENT: &str = "fragment Visit on CustomerVisit { id occurredAt source sourceType \
     sourceDescription landingPage referrerUrl referralCode utmParameters { source medium campaign content term } }";

const CUSTOMER_FIELDS: &str =
    "id email firstName lastName state tags createdAt updatedAt numberOfOrders
      amountSpent { amount currencyCode }
      emailMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt }";

const PRODUCT_FIELDS: &str =
    "id legacyResourceId title handle status vendor productType tags createdAt updatedAt
      publishedAt variants(first: 50) { nodes { id sku title price compareAtPrice } }";

const CHECKOUT_FIELDS: &str =
    "id name createdAt updatedAt completedAt abandonedCheckoutUrl discountCodes
      customer { id email }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      totalDiscountSet { shopMoney { amount currencyCode } }
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) { nodes { id title quantity variant { id } } }";

/// What the read loop needs to know about a stream beyond its [`StreamDef`].
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    def: StreamDef,
    /// The root connection field.
    root: &'static str,
    /// The GraphQL type of its `sortKey` argument.
    sort_type: &'static str,
    /// Sort key of incremental reads.
    incremental_sort: &'static str,
    fields: &'static str,
    fragment: &'static str,
}

impl Spec {
    pub(crate) fn of(name: &str) -> Option<Spec> {
        let spec = match name {
            "orders" => Spec {
                def: ORDERS,
                root: "orders",
                sort_type: "OrderSortKeys",
                incremental_sort: "UPDATED_AT",
                fields: ORDER_FIELDS,
                fragment: VISIT_FRAGMENT,
            },
            "customers" => Spec {
                def: CUSTOMERS,
                root: "customers",
                sort_type: "CustomerSortKeys",
                incremental_sort: "UPDATED_AT",
                fields: CUSTOMER_FIELDS,
                fragment: "",
            },
            "products" => Spec {
                def: PRODUCTS,
                root: "products",
                sort_type: "ProductSortKeys",
                incremental_sort: "UPDATED_AT",
                fields: PRODUCT_FIELDS,
                fragment: "",
            },
            "abandoned_checkouts" => Spec {
                def: ABANDONED_CHECKOUTS,
                root: "abandonedCheckouts",
                sort_type: "AbandonedCheckoutSortKeys",
                incremental_sort: "ID",
                fields: CHECKOUT_FIELDS,
                fragment: "",
            },
            _ => return None,
        };
        Some(spec)
    }

    /// The worst-case cost Shopify requests for one page of `first` records, by its documented model:
    /// a connection costs 2 plus `first` times its node, an object 1, a scalar 0 (see [`selection_cost`]).
    pub(crate) fn requested_cost(&self, first: u32) -> u64 {
        2 + u64::from(first) * (1 + selection_cost(self.fields, self.fragment))
    }

    /// The largest page, up to `max`, whose requested cost fits Shopify's single-query limit — so the
    /// first page of a stream is never answered `MAX_COST_EXCEEDED` (at least 1).
    pub(crate) fn fitting_first(&self, max: u32) -> u32 {
        let per_node = 1 + selection_cost(self.fields, self.fragment);
        let fit = (MAX_QUERY_COST.saturating_sub(2) / per_node).min(u64::from(max));
        u32::try_from(fit).unwrap_or(max).max(1)
    }

    /// The page query, with the page size, cursor, filter and sort key as variables.
    pub(crate) fn document(&self) -> String {
        format!(
            "query Page($first: Int!, $after: String, $query: String, $sortKey: {sort}) {{\n  \
             {root}(first: $first, after: $after, query: $query, sortKey: $sortKey) {{\n    \
             pageInfo {{ hasNextPage endCursor }}\n    nodes {{ {fields} }}\n  }}\n}}\n{fragment}",
            sort = self.sort_type,
            root = self.root,
            fields = self.fields,
            fragment = self.fragment,
        )
    }
}

/// Shopify's single-query cost limit: a query whose requested cost is above it is answered
/// `MAX_COST_EXCEEDED` without being run.
pub const MAX_QUERY_COST: u64 = 1000;

/// The requested cost of one node's selection (`fields`, with `fragment`'s definitions for spreads),
/// following Shopify's documented cost model: a scalar costs 0, an object 1 plus its fields, a connection
/// (`name(first: N) { nodes { … } }`) 2 plus N times (1 + its node's fields). Plain lists are counted once,
/// as Shopify does not say how long they are. An upper bound to start from; the costs Shopify reports
/// afterwards refine it.
pub fn selection_cost(fields: &str, fragment: &str) -> u64 {
    let fragments = parse_fragments(fragment);
    let tokens = tokenize(fields);
    let mut at = 0;
    cost_of(&tokens, &mut at, &fragments)
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if matches!(c, '{' | '}' | '(' | ')' | ':') {
                out.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// `fragment Name on Type { … }` definitions, as token lists of their selections.
fn parse_fragments(text: &str) -> HashMap<String, Vec<String>> {
    let tokens = tokenize(text);
    let mut out = HashMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "fragment" && i + 4 < tokens.len() && tokens[i + 4] == "{" {
            let name = tokens[i + 1].clone();
            let start = i + 5;
            let mut depth = 1;
            let mut j = start;
            while j < tokens.len() && depth > 0 {
                match tokens[j].as_str() {
                    "{" => depth += 1,
                    "}" => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            out.insert(name, tokens[start..j.saturating_sub(1)].to_vec());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The cost of the selection starting at `tokens[*at]`, up to its closing `}` (consumed) or the end.
fn cost_of(tokens: &[String], at: &mut usize, fragments: &HashMap<String, Vec<String>>) -> u64 {
    let mut total = 0u64;
    while *at < tokens.len() {
        let token = tokens[*at].as_str();
        *at += 1;
        if token == "}" {
            break;
        }
        if let Some(name) = token.strip_prefix("...") {
            if let Some(selection) = fragments.get(name) {
                let mut i = 0;
                total += cost_of(selection, &mut i, fragments);
            }
            continue;
        }
        // A field: optional arguments, optional selection.
        let mut first: Option<u64> = None;
        if tokens.get(*at).map(String::as_str) == Some("(") {
            while *at < tokens.len() && tokens[*at] != ")" {
                if tokens[*at] == "first" && tokens.get(*at + 1).map(String::as_str) == Some(":") {
                    first = tokens.get(*at + 2).and_then(|n| n.parse().ok());
                }
                *at += 1;
            }
            *at += 1;
        }
        if tokens.get(*at).map(String::as_str) != Some("{") {
            continue; // a scalar
        }
        *at += 1;
        match first {
            Some(n) => {
                // A connection: its `nodes` selection is what is multiplied; `pageInfo` is not.
                let inner = connection_node_cost(tokens, at, fragments);
                total += 2 + n * (1 + inner);
            }
            None => total += 1 + cost_of(tokens, at, fragments),
        }
    }
    total
}

/// Inside a connection's braces: the cost of its `nodes { … }` (or `edges { node { … } }`) fields.
fn connection_node_cost(
    tokens: &[String],
    at: &mut usize,
    fragments: &HashMap<String, Vec<String>>,
) -> u64 {
    let mut node = 0;
    while *at < tokens.len() {
        let token = tokens[*at].clone();
        *at += 1;
        match token.as_str() {
            "}" => break,
            "nodes" | "node" if tokens.get(*at).map(String::as_str) == Some("{") => {
                *at += 1;
                node += cost_of(tokens, at, fragments);
            }
            "edges" if tokens.get(*at).map(String::as_str) == Some("{") => {
                *at += 1;
                node += connection_node_cost(tokens, at, fragments);
            }
            _ if tokens.get(*at).map(String::as_str) == Some("{") => {
                *at += 1;
                cost_of(tokens, at, fragments); // pageInfo and the like: not per node
            }
            _ => {}
        }
    }
    node
}

/// The connector's reading half: client, endpoint and paging settings. Shared by the streams it reads.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) client: HttpClient,
    pub(crate) api_base: Url,
    pub(crate) page_size: u32,
    pub(crate) lookback_days: u32,
    /// Backfill windows longer than this many days are read with a bulk operation.
    pub(crate) bulk_threshold_days: u32,
    /// The source's name, for messages.
    pub(crate) source: String,
    /// The shop's cost bucket as every stream of this connector sees it.
    pub(crate) bucket: CostBucket,
    /// The requested cost last reported per query and page size, reserved before the next one.
    pub(crate) costs: Mutex<HashMap<(String, Option<u64>), f64>>,
}

/// A time as Shopify's search syntax takes it: quoted RFC 3339 UTC.
pub fn search_time(t: DateTime<Utc>) -> String {
    format!("'{}'", format_utc(t))
}

/// The numeric tail of a global id (`gid://shopify/Order/123` → `123`); other ids are returned as they are.
pub fn gid_tail(gid: &str) -> &str {
    let gid = gid.split('?').next().unwrap_or(gid);
    gid.rsplit('/').next().unwrap_or(gid)
}

/// One read, fully decided before the first request.
#[derive(Debug, Clone)]
struct Plan {
    spec: Spec,
    document: String,
    filter: String,
    sort_key: &'static str,
}

impl Reader {
    /// Where an incremental read starts: the saved cursor less one second and the lookback, else the
    /// configured start date.
    fn incremental_start(&self, request: &ReadRequest) -> Result<DateTime<Utc>> {
        read_start(request, Rewind::exclusive_seconds(self.lookback_days))
    }

    fn plan(&self, spec: Spec, request: &ReadRequest) -> Result<Plan> {
        let (filter, sort_key) = match request.window {
            Some(w) => (
                format!(
                    "created_at:>={} created_at:<{}",
                    search_time(w.since),
                    search_time(w.until)
                ),
                "CREATED_AT",
            ),
            None => (
                format!(
                    "updated_at:>={}",
                    search_time(self.incremental_start(request)?)
                ),
                spec.incremental_sort,
            ),
        };
        Ok(Plan {
            document: spec.document(),
            spec,
            filter,
            sort_key,
        })
    }

    /// POST one GraphQL request and return the parsed body, after reserving its expected cost in the
    /// shared bucket (the cost Shopify reported for the same query and page size last time).
    pub(crate) async fn post(&self, query: &str, variables: Value) -> Result<(Response, Value)> {
        self.post_expecting(query, variables, 0.0).await
    }

    /// [`Reader::post`] for a query whose cost is estimated at `estimate` until Shopify has reported
    /// one: reserving nothing for a query not seen yet let side-by-side streams overdraw the bucket.
    async fn post_expecting(
        &self,
        query: &str,
        variables: Value,
        estimate: f64,
    ) -> Result<(Response, Value)> {
        let key = (
            query.to_string(),
            variables.get("first").and_then(Value::as_u64),
        );
        let expected = self
            .costs
            .lock()
            .expect("costs lock")
            .get(&key)
            .copied()
            .unwrap_or(estimate);
        let clock = self.client.clock().clone();
        let reservation = self.bucket.reserve(clock.as_ref(), expected).await;
        let result = self.send_graphql(query, variables).await;
        let cost = result
            .as_ref()
            .ok()
            .and_then(|(_, body)| QueryCost::from_body(body));
        reservation.settle(clock.as_ref(), cost.as_ref());
        if let Some(c) = cost {
            self.costs
                .lock()
                .expect("costs lock")
                .insert(key, c.requested);
        }
        result
    }

    async fn send_graphql(&self, query: &str, variables: Value) -> Result<(Response, Value)> {
        let body = json!({ "query": query, "variables": variables });
        let request = self
            .client
            .reqwest()
            .post(self.api_base.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body);
        let resp = self.client.send(ENDPOINT, request).await?;
        let parsed: Value = resp.json().map_err(|e| match e {
            Error::Decode { message } => Error::Decode {
                message: format!("Shopify GraphQL response: {message}"),
            },
            other => other,
        })?;
        Ok((resp, parsed))
    }

    /// After an answer, the largest page the cost Shopify reported for this one says will still fit its
    /// single-query limit (up to `page_size`): the first page's size is estimated on the safe side, and
    /// the platform's own number replaces the estimate. Proportional scaling over-counts the fixed part
    /// of the cost, so the new size cannot exceed the limit.
    fn grow(&self, plan: &Plan, cursor: &mut Cursor, body: &Value) {
        let Some(cost) = QueryCost::from_body(body) else {
            return;
        };
        if cursor.refused || cost.requested <= 0.0 {
            return;
        }
        let fit = (f64::from(cursor.first) * MAX_QUERY_COST as f64 / cost.requested).floor();
        let fit = (fit.min(f64::from(self.page_size))) as u32;
        if fit > cursor.first {
            // Until Shopify reports the larger page's cost, reserve this one's scaled up.
            let key = (plan.document.clone(), Some(u64::from(fit)));
            let scaled = cost.requested * f64::from(fit) / f64::from(cursor.first);
            self.costs
                .lock()
                .expect("costs lock")
                .entry(key)
                .or_insert(scaled);
            tracing::debug!(
                stream = plan.spec.def.name,
                from = cursor.first,
                to = fit,
                "larger pages fit Shopify's query cost limit"
            );
            cursor.first = fit;
        }
    }

    /// One page of `plan` at `cursor`, shrinking the page size on `MAX_COST_EXCEEDED`.
    async fn page(&self, plan: &Plan, cursor: &mut Cursor) -> Result<Value> {
        loop {
            let variables = json!({
                "first": cursor.first,
                "after": cursor.after,
                "query": plan.filter,
                "sortKey": plan.sort_key,
            });
            let estimate = plan.spec.requested_cost(cursor.first) as f64;
            match self
                .post_expecting(&plan.document, variables, estimate)
                .await
            {
                Ok((_, body)) => {
                    self.grow(plan, cursor, &body);
                    return Ok(body);
                }
                Err(Error::Api {
                    code: Some(code),
                    message,
                    ..
                }) if code == MAX_COST_EXCEEDED && cursor.first > 1 => {
                    let smaller = fitting_page(cursor.first, &message);
                    tracing::info!(
                        stream = plan.spec.def.name,
                        from = cursor.first,
                        to = smaller,
                        "query cost over Shopify's limit; asking for smaller pages"
                    );
                    cursor.first = smaller;
                    cursor.refused = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The page size that fits under Shopify's single-query limit. The query's cost grows linearly with
/// `first`, so when the message gives the cost ("Query cost is 5302, which exceeds the single query max
/// cost limit (1000)") the page is scaled down in one step instead of halving blindly three times;
/// otherwise it is halved.
fn fitting_page(first: u32, message: &str) -> u32 {
    let number_after = |marker: &str| -> Option<u64> {
        let rest = &message[message.find(marker)? + marker.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    let half = (first / 2).max(1);
    match (
        number_after("Query cost is "),
        number_after("max cost limit ("),
    ) {
        (Some(cost), Some(max)) if cost > max && max > 0 => {
            // A little headroom: the fixed part of the cost does not shrink with `first`.
            let scaled = u64::from(first) * max * 9 / (cost * 10);
            (scaled as u32).clamp(1, half)
        }
        _ => half,
    }
}

/// A record with its id and cursor pulled out: the id is the gid's numeric tail (the gid stays in the
/// payload), the cursor `updatedAt` as RFC 3339 UTC.
pub(crate) fn to_record(stream: &str, node: Value) -> Result<Record> {
    let Some(gid) = node.get("id").and_then(Value::as_str) else {
        return Err(Error::Decode {
            message: format!("Shopify {stream} record without an `id`"),
        });
    };
    let id = gid_tail(gid).to_string();
    let cursor = match node.get("updatedAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_utc(s).ok_or_else(|| Error::Decode {
            message: format!("Shopify {stream} record {id}: `updatedAt` is not a date-time: {s:?}"),
        })?),
        Some(other) => {
            return Err(Error::Decode {
                message: format!(
                    "Shopify {stream} record {id}: `updatedAt` is not a date-time: {other}"
                ),
            })
        }
    };
    Ok(Record {
        id,
        cursor: cursor.map(format_utc),
        payload: node,
    })
}

/// The paging state between two requests: the `after` cursor and the (possibly shrunk) page size.
#[derive(Debug, Clone)]
struct Cursor {
    after: Option<String>,
    first: u32,
    /// Shopify refused a larger page (`MAX_COST_EXCEEDED`): its word stands, the page does not grow.
    refused: bool,
}

/// Read one stream lazily, one page in memory at a time.
pub(crate) fn read(reader: Arc<Reader>, request: ReadRequest) -> BoxStream<'static, Result<Page>> {
    let Some(spec) = Spec::of(&request.stream) else {
        let names: Vec<&str> = stream_defs().iter().map(|d| d.name).collect();
        let err = Error::Other(format!(
            "Shopify has no stream {:?} (streams: {})",
            request.stream,
            names.join(", ")
        ));
        return futures::stream::once(async move { Err(err) }).boxed();
    };
    if let Some(window) = request.window {
        if window.until - window.since > Duration::days(i64::from(reader.bulk_threshold_days)) {
            return bulk_pages(reader, spec, window);
        }
    }
    let plan = match reader.plan(spec, &request) {
        Ok(p) => {
            tracing::debug!(stream = p.spec.def.name, filter = %p.filter, "reading");
            Arc::new(p)
        }
        Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
    };
    let first = Cursor {
        after: None,
        first: plan.spec.fitting_first(reader.page_size),
        refused: false,
    };
    paged(first, move |mut cursor: Cursor| {
        let reader = reader.clone();
        let plan = plan.clone();
        async move {
            let body = reader.page(&plan, &mut cursor).await?;
            let root = format!("/data/{}", plan.spec.root);
            let connection = body.pointer(&root).ok_or_else(|| Error::Decode {
                message: format!(
                    "Shopify answered without data.{} (API version or permissions?)",
                    plan.spec.root
                ),
            })?;
            let nodes = connection
                .get("nodes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut records = Vec::with_capacity(nodes.len());
            for node in nodes {
                records.push(to_record(plan.spec.def.name, node)?);
            }
            let paginator = JsonCursor::param("/pageInfo/endCursor", "after")
                .with_has_more("/pageInfo/hasNextPage");
            let next = match paginator.next_from(connection) {
                NextPage::Params(p) => {
                    cursor.after = p.into_iter().next().map(|(_, v)| v);
                    Some(cursor)
                }
                NextPage::Url(_) | NextPage::Done => None,
            };
            Ok((
                Page {
                    records,
                    checkpoint: None,
                    replaces: None,
                },
                next,
            ))
        }
    })
    .boxed()
}

/// The longest window one bulk operation covers: a one-year backfill becomes four operations, so a
/// failure costs a quarter, not the year.
pub const BULK_SLICE_DAYS: i64 = 92;

/// A failed slice is split in halves and retried down to this length before the error is final.
pub const MIN_BULK_SLICE: Duration = Duration::days(1);

/// `window` cut into consecutive slices of at most `days` days.
pub fn slices(window: Window, days: i64) -> VecDeque<Window> {
    let mut out = VecDeque::new();
    let mut since = window.since;
    while since < window.until {
        let until = (since + Duration::days(days.max(1))).min(window.until);
        out.push_back(Window { since, until });
        since = until;
    }
    out
}

/// Whether a failed bulk operation is worth retrying over a smaller window: the operation itself failed
/// or timed out (too much data, an internal error), not our credentials or query.
fn retry_smaller(e: &Error) -> bool {
    match e {
        Error::Api { code: Some(c), .. } => {
            matches!(
                c.as_str(),
                "BULK_FAILED" | "BULK_TIMEOUT" | "BULK_EXPIRED" | "BULK_CANCELED"
            )
        }
        Error::Transient { .. } => true,
        _ => false,
    }
}

/// Where a sliced bulk backfill stands.
struct BulkState {
    reader: Arc<Reader>,
    pending: VecDeque<Window>,
    current: Option<crate::bulk::Roots>,
}

/// A backfill window read through bulk operations, one slice at a time, handed out in pages of
/// `page_size` records read back from the spilled result (one page in memory at a time). A slice whose
/// operation fails is split in halves and the halves retried, not the whole backfill.
fn bulk_pages(reader: Arc<Reader>, spec: Spec, window: Window) -> BoxStream<'static, Result<Page>> {
    let size = reader.page_size.max(1) as usize;
    let stream = spec.def.name;
    let state = BulkState {
        reader,
        pending: slices(window, BULK_SLICE_DAYS),
        current: None,
    };
    futures::stream::try_unfold(state, move |mut st| async move {
        loop {
            if let Some(roots) = st.current.as_mut() {
                let records = crate::bulk::next_records(roots, stream, size)?;
                if !records.is_empty() {
                    let page = Page {
                        records,
                        checkpoint: None,
                        replaces: None,
                    };
                    return Ok(Some((page, st)));
                }
                st.current = None;
            }
            let Some(slice) = st.pending.pop_front() else {
                return Ok(None);
            };
            match st.reader.bulk_read(stream, slice).await {
                Ok(roots) => st.current = roots,
                Err(e) if retry_smaller(&e) && slice.until - slice.since > MIN_BULK_SLICE => {
                    let mid = slice.since + (slice.until - slice.since) / 2;
                    tracing::warn!(
                        stream,
                        since = %slice.since,
                        until = %slice.until,
                        error = %e,
                        "bulk operation failed; retrying the slice in two halves"
                    );
                    st.pending.push_front(Window {
                        since: mid,
                        until: slice.until,
                    });
                    st.pending.push_front(Window {
                        since: slice.since,
                        until: mid,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn default_pages_fit_the_single_query_cost_limit() {
        // Worked by hand from the queries: an order is 1 + customer 1 + six money bags of 2 + line items
        // (2 + 50 × (1 + 2 + 2 + 1 + 1)) + refunds 3 + journey summary 5.
        assert_eq!(selection_cost(ORDER_FIELDS, VISIT_FRAGMENT), 373);
        assert_eq!(selection_cost(CUSTOMER_FIELDS, ""), 2);
        assert_eq!(selection_cost(PRODUCT_FIELDS, ""), 52);
        assert_eq!(selection_cost(CHECKOUT_FIELDS, ""), 109);
        let sizes: Vec<(&str, u32)> = stream_defs()
            .iter()
            .map(|d| {
                let spec = Spec::of(d.name).unwrap();
                (
                    d.name,
                    spec.fitting_first(crate::config::default_page_size()),
                )
            })
            .collect();
        assert_eq!(
            sizes,
            [
                ("orders", 2),
                ("customers", 100),
                ("products", 18),
                ("abandoned_checkouts", 9)
            ]
        );
        for d in stream_defs() {
            let spec = Spec::of(d.name).unwrap();
            let first = spec.fitting_first(250);
            assert!(spec.requested_cost(first) <= MAX_QUERY_COST, "{}", d.name);
            assert!(
                spec.requested_cost(first + 1) > MAX_QUERY_COST || first == 250,
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn an_over_cost_page_is_scaled_to_fit_in_one_step() {
        let msg = "Query cost is 5302, which exceeds the single query max cost limit (1000).";
        assert_eq!(fitting_page(100, msg), 16);
        assert_eq!(fitting_page(100, "Query cost is 1293"), 50);
        assert_eq!(fitting_page(2, msg), 1);
        assert_eq!(
            fitting_page(
                100,
                "Query cost is 1100, which exceeds the single query max cost limit (1000)."
            ),
            50
        );
    }

    #[test]
    fn a_year_is_cut_into_quarters_without_gaps() {
        let w = Window {
            since: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        };
        let s = slices(w, BULK_SLICE_DAYS);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].since, w.since);
        assert_eq!(s[3].until, w.until);
        assert!(s
            .iter()
            .zip(s.iter().skip(1))
            .all(|(a, b)| a.until == b.since));
        assert!(s
            .iter()
            .all(|x| x.until - x.since <= Duration::days(BULK_SLICE_DAYS)));
    }

    #[test]
    fn records_get_numeric_ids_and_utc_cursors() {
        let r = to_record(
            "orders",
            json!({"id": "gid://shopify/Order/6021883183294", "updatedAt": "2025-03-12T12:40:09-04:00"}),
        )
        .unwrap();
        assert_eq!(r.id, "6021883183294");
        assert_eq!(r.cursor.as_deref(), Some("2025-03-12T16:40:09Z"));
        assert_eq!(r.payload["id"], "gid://shopify/Order/6021883183294");
        assert!(to_record("orders", json!({"updatedAt": "2025-03-12T12:40:09Z"})).is_err());
        assert!(to_record(
            "orders",
            json!({"id": "gid://shopify/Order/1", "updatedAt": "soon"})
        )
        .is_err());
    }

    #[test]
    fn gid_tails() {
        assert_eq!(
            gid_tail("gid://shopify/Refund/954287620286"),
            "954287620286"
        );
        assert_eq!(
            gid_tail("gid://shopify/AbandonedCheckout/1?checkout=x"),
            "1"
        );
        assert_eq!(gid_tail("42"), "42");
    }

    #[test]
    fn documents_name_the_root_and_sort_type() {
        for def in stream_defs() {
            let spec = Spec::of(def.name).unwrap();
            assert_eq!(spec.def, def);
            let doc = spec.document();
            assert!(
                doc.contains(&format!("{}(first: $first", spec.root)),
                "{doc}"
            );
            assert!(doc.contains(spec.sort_type), "{doc}");
            assert!(doc.contains("pageInfo { hasNextPage endCursor }"), "{doc}");
        }
        assert!(Spec::of("orders")
            .unwrap()
            .document()
            .contains("fragment Visit"));
        let t = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(search_time(t), "'2025-03-01T00:00:00Z'");
    }
}
