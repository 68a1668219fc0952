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
//!
//! The GraphQL documents and their cost model are in `query`; backfills through bulk operations, sliced
//! by [`BULK_SLICE_DAYS`], in `backfill`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use url::Url;

use growthflow_core::connector::{
    failed_read, unknown_stream, Page, Payload, ReadRequest, Record, StreamDef, SyncMode, Window,
};
use growthflow_core::http::{HttpClient, Response};
use growthflow_core::paginate::{paged, JsonCursor, NextPage};
use growthflow_core::start::{read_start, Rewind};
use growthflow_core::time::{format_utc, parse_utc};
use growthflow_core::{Error, Result};

use crate::cost::CostBucket;
use crate::policy::{QueryCost, MAX_COST_EXCEEDED};

mod backfill;
mod query;

use backfill::bulk_pages;
pub use backfill::{slices, BULK_SLICE_DAYS, MIN_BULK_SLICE};
use query::fitting_page;
pub(crate) use query::Spec;
pub use query::{selection_cost, MAX_QUERY_COST};

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
        let (resp, (_, body)) = self
            .post_expecting(query, variables, 0.0, |resp| {
                let body: Value = graphql_json(resp)?;
                Ok((QueryCost::from_body(&body), Ok(body)))
            })
            .await?;
        Ok((resp, body))
    }

    /// [`Reader::post`] for a query whose cost is estimated at `estimate` until Shopify has reported
    /// one: reserving nothing for a query not seen yet let side-by-side streams overdraw the bucket.
    /// The body is decoded by `decode` (see [`Reader::send_graphql`]), which also reads the cost
    /// Shopify reported in it.
    async fn post_expecting<T, F>(
        &self,
        query: &str,
        variables: Value,
        estimate: f64,
        decode: F,
    ) -> Result<(Response, (Option<QueryCost>, T))>
    where
        T: Send + 'static,
        F: Fn(&Response) -> Result<Decoded<T>> + Send + Sync + 'static,
    {
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
        let result = self.send_graphql(query, variables, decode).await;
        let cost = result.as_ref().ok().and_then(|(_, (cost, _))| *cost);
        reservation.settle(clock.as_ref(), cost.as_ref());
        if let Some(c) = cost {
            self.costs
                .lock()
                .expect("costs lock")
                .insert(key, c.requested);
        }
        let (resp, (cost, then)) = result?;
        Ok((resp, (cost, then?)))
    }

    /// POST one GraphQL request; its body is parsed once, by `decode`, as part of the request
    /// ([`HttpClient::send_decoded`]: a body that is not well-formed JSON is asked for once
    /// more). `decode` gives the cost Shopify reported beside
    /// what it made of the page, even when it refuses the page, so that the bucket still learns what
    /// the page cost; its refusal is final.
    async fn send_graphql<T, F>(
        &self,
        query: &str,
        variables: Value,
        decode: F,
    ) -> Result<(Response, Decoded<T>)>
    where
        T: Send + 'static,
        F: Fn(&Response) -> Result<Decoded<T>> + Send + Sync + 'static,
    {
        let body = json!({ "query": query, "variables": variables });
        let request = self
            .client
            .reqwest()
            .post(self.api_base.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body);
        self.client.send_decoded(ENDPOINT, request, decode).await
    }

    /// After an answer, the largest page the cost Shopify reported for this one says will still fit its
    /// single-query limit (up to `page_size`): the first page's size is estimated on the safe side, and
    /// the platform's own number replaces the estimate. Proportional scaling over-counts the fixed part
    /// of the cost, so the new size cannot exceed the limit.
    fn grow(&self, plan: &Plan, cursor: &mut Cursor, cost: Option<QueryCost>) {
        let Some(cost) = cost else {
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

    /// One page of `plan` at `cursor`, shrinking the page size on `MAX_COST_EXCEEDED`: its records
    /// and where the next page is, made where the page is decoded ([`page_of`]).
    async fn page(&self, plan: &Plan, cursor: &mut Cursor) -> Result<(Vec<Record>, NextPage)> {
        loop {
            let variables = json!({
                "first": cursor.first,
                "after": cursor.after,
                "query": plan.filter,
                "sortKey": plan.sort_key,
            });
            let estimate = plan.spec.requested_cost(cursor.first) as f64;
            let spec = plan.spec.clone();
            match self
                .post_expecting(&plan.document, variables, estimate, move |resp| {
                    page_of(&spec, resp)
                })
                .await
            {
                Ok((_, (cost, page))) => {
                    self.grow(plan, cursor, cost);
                    return Ok(page);
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

/// What a GraphQL answer's decoder gives: the cost Shopify reported in it (when the body parsed),
/// and what it made of the page or why it refused it.
type Decoded<T> = (Option<QueryCost>, Result<T>);

/// A GraphQL answer parsed as JSON; a body that is not is a decode error naming where it came from.
fn graphql_json<T: serde::de::DeserializeOwned>(resp: &Response) -> Result<T> {
    resp.json().map_err(|e| match e {
        Error::Decode { message } => Error::Decode {
            message: format!("Shopify GraphQL response: {message}"),
        },
        other => other,
    })
}

/// A page of the read loop as parsed: each node's text is cut out as it is (it goes to the
/// dataset unparsed, see [`Payload`]); `errors`, when a field-level one let the page through, is
/// skipped.
#[derive(Deserialize)]
struct RawPage {
    data: Option<HashMap<String, Option<RawConnection>>>,
    extensions: Option<Value>,
}

#[derive(Deserialize)]
struct RawConnection {
    #[serde(default)]
    nodes: Option<Vec<Box<RawValue>>>,
    #[serde(rename = "pageInfo", default)]
    page_info: Option<Value>,
}

/// The records of one page of `spec`'s connection, in its order, where the next page is
/// (`pageInfo`) and the cost Shopify reported, all from the page's one parse. An answer without
/// the connection or with a node that is no record fails the page.
fn page_of(spec: &Spec, resp: &Response) -> Result<Decoded<(Vec<Record>, NextPage)>> {
    let body: RawPage = graphql_json(resp)?;
    let cost = body
        .extensions
        .as_ref()
        .and_then(QueryCost::from_extensions);
    Ok((cost, records_of(spec, body)))
}

fn records_of(spec: &Spec, body: RawPage) -> Result<(Vec<Record>, NextPage)> {
    let Some(connection) = body.data.and_then(|mut d| d.remove(spec.root)) else {
        return Err(Error::Decode {
            message: format!(
                "Shopify answered without data.{} (API version or permissions?)",
                spec.root
            ),
        });
    };
    // `data.<root>: null` is an empty last page.
    let Some(connection) = connection else {
        return Ok((Vec::new(), NextPage::Done));
    };
    let nodes = connection.nodes.unwrap_or_default();
    let mut records = Vec::with_capacity(nodes.len());
    for node in nodes {
        records.push(raw_record(spec.def.name, node)?);
    }
    let page_info = json!({ "pageInfo": connection.page_info });
    let paginator =
        JsonCursor::param("/pageInfo/endCursor", "after").with_has_more("/pageInfo/hasNextPage");
    Ok((records, paginator.next_from(&page_info)))
}

/// What [`raw_record`] reads of a node; the rest is skipped, not built.
#[derive(Deserialize)]
struct Head {
    id: Option<Value>,
    #[serde(rename = "updatedAt")]
    updated_at: Option<Value>,
}

/// [`to_record`] of a node kept as the text Shopify sent.
fn raw_record(stream: &str, node: Box<RawValue>) -> Result<Record> {
    let payload = Payload::from_raw(node);
    let head = payload.read_owned::<Head>().ok();
    let (id, cursor) = record_head(
        stream,
        head.as_ref().and_then(|h| h.id.as_ref()),
        head.as_ref().and_then(|h| h.updated_at.as_ref()),
    )?;
    Ok(Record {
        id,
        cursor,
        payload,
    })
}

/// A record's id (the gid's numeric tail) and cursor (`updatedAt` as RFC 3339 UTC).
fn record_head(
    stream: &str,
    id: Option<&Value>,
    updated_at: Option<&Value>,
) -> Result<(String, Option<String>)> {
    let Some(gid) = id.and_then(Value::as_str) else {
        return Err(Error::Decode {
            message: format!("Shopify {stream} record without an `id`"),
        });
    };
    let id = gid_tail(gid).to_string();
    let cursor = match updated_at {
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
    Ok((id, cursor.map(format_utc)))
}

/// A record with its id and cursor pulled out: the id is the gid's numeric tail (the gid stays in the
/// payload), the cursor `updatedAt` as RFC 3339 UTC.
pub(crate) fn to_record(stream: &str, node: Value) -> Result<Record> {
    let (id, cursor) = record_head(stream, node.get("id"), node.get("updatedAt"))?;
    Ok(Record {
        id,
        cursor,
        // Bulk nodes are reshaped (connections flattened), so printed once here.
        payload: Payload::from_value(&node),
    })
}

/// A record's `createdAt`, as UTC RFC 3339.
fn created_at(record: &Record) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Created<'a> {
        #[serde(rename = "createdAt", borrow)]
        created_at: Option<std::borrow::Cow<'a, str>>,
    }
    let head: Created<'_> = record.payload.read().ok()?;
    parse_utc(&head.created_at?).map(format_utc)
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
        return failed_read(unknown_stream("Shopify", &request.stream, &stream_defs()));
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
        Err(e) => return failed_read(e),
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
            let (records, next) = reader.page(&plan, &mut cursor).await?;
            // A backfill reads by creation time (`sortKey: CREATED_AT`): its last record's says how
            // far it got, for a backfill stopped later (its records' cursors, modification times,
            // cannot say it).
            let through = (plan.sort_key == "CREATED_AT")
                .then(|| records.last().and_then(created_at))
                .flatten()
                .map(|t| serde_json::json!({ "cursor": t }));
            let next = match next {
                NextPage::Params(p) => {
                    cursor.after = p.into_iter().next().map(|(_, v)| v);
                    Some(cursor)
                }
                NextPage::Url(_) | NextPage::Done => None,
            };
            Ok((Page::with_checkpoint(records, through), next))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_get_numeric_ids_and_utc_cursors() {
        let r = to_record(
            "orders",
            json!({"id": "gid://shopify/Order/6021883183294", "updatedAt": "2025-03-12T12:40:09-04:00"}),
        )
        .unwrap();
        assert_eq!(r.id, "6021883183294");
        assert_eq!(r.cursor.as_deref(), Some("2025-03-12T16:40:09Z"));
        assert_eq!(
            r.payload.to_value()["id"],
            "gid://shopify/Order/6021883183294"
        );
        assert!(to_record("orders", json!({"updatedAt": "2025-03-12T12:40:09Z"})).is_err());
        assert!(to_record(
            "orders",
            json!({"id": "gid://shopify/Order/1", "updatedAt": "soon"})
        )
        .is_err());
    }

    fn answer(body: &str) -> Response {
        Response {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// A page's nodes go to the dataset as Shopify sent them, escapes included; the cost and the
    /// next cursor come from the same parse.
    #[test]
    fn a_page_keeps_its_nodes_text_and_reads_cost_and_cursor_from_one_parse() {
        let spec = Spec::of("orders").unwrap();
        let body = r#"{"data":{"orders":{"nodes":[{"id":"gid://shopify/Order/7","note":"a \u0026 b","updatedAt":"2025-03-12T12:40:09-04:00"},
            {"updatedAt":null,"id":"gid://shopify/Order/8"}],"pageInfo":{"hasNextPage":true,"endCursor":"c2"}}},
            "extensions":{"cost":{"requestedQueryCost":400,"actualQueryCost":50,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":1600,"restoreRate":100.0}}}}"#;
        let (cost, page) = page_of(&spec, &answer(body)).unwrap();
        let (records, next) = page.unwrap();
        assert_eq!(
            cost.map(|c| (c.requested, c.available)),
            Some((400.0, 1600.0))
        );
        assert_eq!(next, NextPage::Params(vec![("after".into(), "c2".into())]));
        assert_eq!(
            records
                .iter()
                .map(|r| (r.id.as_str(), r.cursor.as_deref()))
                .collect::<Vec<_>>(),
            [("7", Some("2025-03-12T16:40:09Z")), ("8", None)]
        );
        assert_eq!(
            records[0].payload.as_str(),
            r#"{"id":"gid://shopify/Order/7","note":"a \u0026 b","updatedAt":"2025-03-12T12:40:09-04:00"}"#
        );
        assert_eq!(records[0].payload.to_value()["note"], "a & b");

        let (_, page) = page_of(&spec, &answer(r#"{"data":{"orders":null}}"#)).unwrap();
        assert_eq!(page.unwrap(), (Vec::new(), NextPage::Done));
        let (_, page) = page_of(&spec, &answer(r#"{"data":null,"errors":[]}"#)).unwrap();
        assert_eq!(
            page.unwrap_err().to_string(),
            "could not decode the response: Shopify answered without data.orders (API version or permissions?)"
        );
        let (_, page) = page_of(
            &spec,
            &answer(r#"{"data":{"orders":{"nodes":[{"id":7}]}}}"#),
        )
        .unwrap();
        assert_eq!(
            page.unwrap_err().to_string(),
            "could not decode the response: Shopify orders record without an `id`"
        );
        assert!(page_of(&spec, &answer(r#"{"data":{"orders":{"nod"#)).is_err());
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
}
