//! The streams WooCommerce is read as, declared as data, and the one read loop they share.
//!
//! Every stream is a list endpoint paged with `page`/`per_page` and `X-WP-TotalPages`; they differ only in
//! which date the server can filter and sort on:
//!
//! - orders, products and coupons are filtered and sorted by modification time (`modified_after`,
//!   `orderby=modified`), so their cursor can be checkpointed after every page;
//! - refunds are immutable, so creation time is their cursor (`after`, `orderby=date`);
//! - customers have no date filter at all: every sync reads them all by id and drops the unchanged ones
//!   client-side, which is why that stream is unsorted and only checkpoints at its end.
//!
//! WooCommerce's `after`/`modified_after` are exclusive and second-granular, so an incremental read starts
//! one second before the saved cursor (plus `lookback_days`): re-reading a record is an upsert, missing one
//! is silent data loss.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use url::Url;

use growthflow_core::adaptive::AdaptiveLimiter;
use growthflow_core::connector::{
    failed_read, Page, Payload, ReadRequest, Record, StreamDef, SyncMode, Window,
};
use growthflow_core::http::{join_path, HttpClient, Response};
use growthflow_core::paginate::{paged, param, set_query, NextPage, PageNumber, Paginator};
use growthflow_core::payload::read_array;
use growthflow_core::start::{read_start, Rewind};
use growthflow_core::time::{format_utc, parse_utc};
use growthflow_core::window::{windows_for_pages, ReadRange, Span, WindowPlan, REMAINING};
use growthflow_core::{Error, Result};

mod customers;
mod windows;

/// WooCommerce sizes its windows by core's page rule, under the names it has always exported.
pub use growthflow_core::window::{MAX_WINDOWS, PAGES_PER_WINDOW, WINDOWS_FROM_PAGES};
pub(crate) use windows::{plan_windows, read_window};

/// The rate-limit and pause key of every request: WooCommerce's limits are the host's, shared by all
/// endpoints, so a throttle on one endpoint must slow them all.
pub const ENDPOINT: &str = "wc/v3";

/// The header WordPress puts the page count in.
pub const TOTAL_PAGES_HEADER: &str = "X-WP-TotalPages";

/// Orders, with line items, refund summaries and the order-attribution meta.
pub const ORDERS: StreamDef = StreamDef {
    name: "orders",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "date_modified_gmt",
    },
    sorted: true,
    parent: None,
    description: "Orders (GET /orders), incremental on date_modified_gmt",
};

/// Refunds of every order through the global endpoint (WooCommerce 9.0+).
pub const REFUNDS: StreamDef = StreamDef {
    name: "refunds",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "date_created_gmt",
    },
    sorted: true,
    parent: None,
    description:
        "Refunds of all orders (GET /refunds, WooCommerce 9.0+), incremental on date_created_gmt",
};

/// Registered customers of any role (guests exist only on orders).
pub const CUSTOMERS: StreamDef = StreamDef {
    name: "customers",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "date_modified_gmt",
    },
    sorted: false,
    parent: None,
    description:
        "Registered customers (GET /customers?role=all); no server-side date filter, so every sync \
                  scans all and keeps those modified since the cursor",
};

/// Products (variations are not read).
pub const PRODUCTS: StreamDef = StreamDef {
    name: "products",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "date_modified_gmt",
    },
    sorted: true,
    parent: None,
    description: "Products (GET /products), incremental on date_modified_gmt",
};

/// Coupons.
pub const COUPONS: StreamDef = StreamDef {
    name: "coupons",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "date_modified_gmt",
    },
    sorted: true,
    parent: None,
    description: "Coupons (GET /coupons), incremental on date_modified_gmt",
};

/// Every stream, in the order `discover` lists and `sync` reads them.
pub fn stream_defs() -> Vec<StreamDef> {
    vec![ORDERS, REFUNDS, CUSTOMERS, PRODUCTS, COUPONS]
}

/// How a stream's incremental reads are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    /// `modified_after` + `orderby=modified`.
    Modified,
    /// `after` + `orderby=date` (records that never change).
    Created,
    /// No server-side filter: read all by id, filter here.
    ClientSide,
}

/// What the read loop needs to know about a stream beyond its [`StreamDef`].
#[derive(Debug, Clone)]
struct Spec {
    def: StreamDef,
    /// Path below the API root.
    path: &'static str,
    filter: Filter,
}

impl Spec {
    fn of(name: &str) -> Option<Spec> {
        let (def, path, filter) = match name {
            "orders" => (ORDERS, "orders", Filter::Modified),
            "refunds" => (REFUNDS, "refunds", Filter::Created),
            "customers" => (CUSTOMERS, "customers", Filter::ClientSide),
            "products" => (PRODUCTS, "products", Filter::Modified),
            "coupons" => (COUPONS, "coupons", Filter::Modified),
            _ => return None,
        };
        Some(Spec { def, path, filter })
    }

    fn cursor_field(&self) -> &'static str {
        self.def.cursor_field().unwrap_or("date_modified_gmt")
    }
}

/// Which records of a page to keep, for filters the server cannot apply.
#[derive(Debug, Clone, Copy)]
enum Keep {
    All,
    /// Cursor at or after this time (records without a cursor are kept: we cannot tell).
    CursorSince(DateTime<Utc>),
    /// Created inside the window.
    CreatedIn(Window),
}

/// One read, fully decided before the first request.
#[derive(Debug, Clone)]
struct Plan {
    spec: Spec,
    url: Url,
    params: Vec<(String, String)>,
    keep: Keep,
    /// Page by modification time instead of page number (see [`Anchor`]).
    keyset: bool,
    /// One window of an incremental windowed read, on its records' cursor: its pages say how many
    /// of its records are still to come (see [`REMAINING`]).
    window: bool,
}

/// The connector's reading half: client, API root and paging settings. Shared by the streams it reads.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) client: HttpClient,
    pub(crate) api_base: Url,
    pub(crate) per_page: u32,
    pub(crate) lookback_days: u32,
    pub(crate) limiter: Arc<AdaptiveLimiter>,
}

/// A date as WooCommerce's filters take it with `dates_are_gmt=true`: no zone suffix.
pub fn wc_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl Reader {
    /// The URL of an endpoint below the API root.
    pub(crate) fn endpoint_url(&self, path: &str) -> Url {
        join_path(&self.api_base, path)
    }

    /// Where an incremental read starts: the saved cursor less the overlap and lookback, else the
    /// configured start date.
    fn incremental_start(&self, request: &ReadRequest) -> Result<DateTime<Utc>> {
        read_start(request, Rewind::exclusive_seconds(self.lookback_days))
    }

    fn plan(&self, spec: Spec, request: &ReadRequest) -> Result<Plan> {
        let gmt = param("dates_are_gmt", "true");
        let (params, keep) = match (request.window, spec.filter) {
            (Some(w), Filter::ClientSide) => (
                vec![
                    param("role", "all"),
                    param("orderby", "id"),
                    param("order", "asc"),
                ],
                Keep::CreatedIn(w),
            ),
            (Some(w), _) => (
                vec![
                    // `after` is exclusive, the window's start is not.
                    param("after", wc_date(w.since - Duration::seconds(1))),
                    param("before", wc_date(w.until)),
                    gmt,
                    param("orderby", "date"),
                    param("order", "asc"),
                ],
                Keep::All,
            ),
            (None, Filter::Modified) => (
                vec![
                    param("orderby", "modified"),
                    param("order", "asc"),
                    param("modified_after", wc_date(self.incremental_start(request)?)),
                    gmt,
                ],
                Keep::All,
            ),
            (None, Filter::Created) => (
                vec![
                    param("after", wc_date(self.incremental_start(request)?)),
                    gmt,
                    param("orderby", "date"),
                    param("order", "asc"),
                ],
                Keep::All,
            ),
            (None, Filter::ClientSide) => (
                vec![
                    param("role", "all"),
                    param("orderby", "id"),
                    param("order", "asc"),
                ],
                Keep::CursorSince(self.incremental_start(request)?),
            ),
        };
        let keyset = request.window.is_none() && matches!(spec.filter, Filter::Modified);
        Ok(Plan {
            url: self.endpoint_url(spec.path),
            spec,
            params,
            keep,
            keyset,
            window: false,
        })
    }

    /// The read of one window: the stream's date filter bounded on both sides (`…_after` is exclusive,
    /// hence one second earlier; `…_before` is exclusive too, so adjacent windows neither overlap nor
    /// leave a gap), ordered by that date. A backfill's windows bound the creation date, an
    /// incremental read's the cursor's date.
    fn span_plan(&self, spec: Spec, request: &ReadRequest, span: Span) -> Result<Plan> {
        let (after, before, orderby, keyset) = match (request.window.is_some(), spec.filter) {
            (_, Filter::ClientSide) => {
                return Err(Error::Other(format!(
                    "WooCommerce {} have no date filter to read in windows",
                    spec.def.name
                )))
            }
            (true, _) | (false, Filter::Created) => ("after", "before", "date", false),
            (false, Filter::Modified) => ("modified_after", "modified_before", "modified", true),
        };
        let mut params = vec![
            param("orderby", orderby),
            param("order", "asc"),
            param(after, wc_date(span.since - Duration::seconds(1))),
            param("dates_are_gmt", "true"),
        ];
        if let Some(until) = span.until {
            params.push(param(before, wc_date(until)));
        }
        Ok(Plan {
            url: self.endpoint_url(spec.path),
            spec,
            params,
            keep: Keep::All,
            keyset,
            // An incremental read's window is split along its records' own cursor; a backfill's
            // window bounds another date (creation), so its pages say nothing to split on.
            window: request.window.is_none(),
        })
    }

    /// GET one list page and make records of its items, in the page's order, with what was read of
    /// each to decide on it. The items are read where the page is decoded; an item that is no record
    /// (no `id`, an unreadable time) fails the page at once.
    async fn get_records(&self, url: Url, spec: &Spec) -> Result<(Response, Vec<(Record, Head)>)> {
        let path = spec.path;
        let spec = spec.clone();
        self.client
            .send_decoded(ENDPOINT, self.client.reqwest().get(url), move |resp| {
                decode_records(resp, spec.path)?
                    .into_iter()
                    .map(|(payload, head)| to_record(&spec, payload, head.unwrap_or_default()))
                    .collect()
            })
            .await
            .map_err(|e| explain(e, path))
    }

    /// GET one list page and decode it as a JSON array.
    pub(crate) async fn get_list(
        &self,
        url: Url,
        path: &str,
    ) -> Result<(Response, Vec<Box<RawValue>>)> {
        // Decoded as part of the request: the page is parsed once, and a truncated one is asked
        // for again.
        let owned = path.to_string();
        self.client
            .send_decoded(ENDPOINT, self.client.reqwest().get(url), move |resp| {
                decode_list(resp, &owned)
            })
            .await
            .map_err(|e| explain(e, path))
    }
}

/// Add what the user needs to know to a 404 `rest_no_route`: which WooCommerce the refunds endpoint
/// needs, or that the URL does not point at a WordPress site with WooCommerce.
fn explain(e: Error, path: &str) -> Error {
    match e {
        Error::Api {
            platform,
            status: 404,
            code: Some(code),
            message,
        } if code == "rest_no_route" => {
            let message = if path == "refunds" {
                format!(
                    "{message} The global /wp-json/wc/v3/refunds endpoint needs WooCommerce 9.0 or later: \
                     update WooCommerce, or sync this source without the refunds stream"
                )
            } else {
                format!(
                    "{message} No /wp-json/wc/v3/{path} here: check that `url` is the WordPress site's address \
                     and that WooCommerce is active"
                )
            };
            Error::Api {
                platform,
                status: 404,
                code: Some(code),
                message,
            }
        }
        other => other,
    }
}

/// A page body as a JSON array of items cut out as they are (the window planner's one-record pages).
fn decode_list(resp: &Response, path: &str) -> Result<Vec<Box<RawValue>>> {
    not_html(resp, path)?;
    resp.json::<Vec<Box<RawValue>>>()
        .map_err(|e| in_path(e, path))
}

/// A list page's records as payloads, each with its [`Head`] (`None` for an item that is no
/// object): one scan of the page reads both, see [`read_array`].
fn decode_records(resp: &Response, path: &str) -> Result<Vec<(Payload, Option<Head>)>> {
    not_html(resp, path)?;
    // Each record's text is cut out of the page as it is: it goes to the dataset unparsed.
    read_array(&resp.body).map_err(|e| in_path(Error::decode(e, &resp.body), path))
}

/// A 200 HTML page refused. It is what WordPress serves for `/wp-json/…` when pretty permalinks are
/// off (or what a caching layer serves by mistake); retrying will not change it, so it is a decode
/// error that says where to look.
fn not_html(resp: &Response, path: &str) -> Result<()> {
    if resp.is_html() {
        return Err(Error::Decode {
            message: format!(
                "WooCommerce answered /wp-json/wc/v3/{path} with an HTML page instead of JSON: check that `url` \
                 is the site's address and that WordPress permalinks are not set to \"Plain\""
            ),
        });
    }
    Ok(())
}

/// A decode error that names the endpoint.
fn in_path(e: Error, path: &str) -> Error {
    match e {
        Error::Decode { message } => Error::Decode {
            message: format!("WooCommerce /wp-json/wc/v3/{path}: {message}"),
        },
        other => other,
    }
}

/// A JSON id (number or string) as text.
pub(crate) fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A `*_gmt` time field: `Ok(None)` when absent or null, a decode error naming the field when present but
/// unreadable.
pub(crate) fn gmt_field(item: &Value, field: &str, what: &str) -> Result<Option<DateTime<Utc>>> {
    gmt_value(item.get(field), field, what)
}

/// [`gmt_field`] of a value already taken out of its record.
fn gmt_value(value: Option<&Value>, field: &str, what: &str) -> Result<Option<DateTime<Utc>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_utc(s).map(Some).ok_or_else(|| Error::Decode {
            message: format!("WooCommerce {what}: `{field}` is not a date-time: {s:?}"),
        }),
        Some(other) => Err(Error::Decode {
            message: format!("WooCommerce {what}: `{field}` is not a date-time: {other}"),
        }),
    }
}

/// What a page's item is read for before it is kept as text: its id and its two times. Everything
/// else is skipped, not built.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Head {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    date_modified_gmt: Option<Value>,
    #[serde(default)]
    date_created_gmt: Option<Value>,
}

impl Head {
    fn field(&self, name: &str) -> Option<&Value> {
        match name {
            "date_modified_gmt" => self.date_modified_gmt.as_ref(),
            "date_created_gmt" => self.date_created_gmt.as_ref(),
            _ => None,
        }
    }
}

/// A record with its id and cursor pulled out, its text kept as the page had it. A record whose
/// cursor field is null (customers created before WooCommerce tracked modification) falls back to
/// its creation time, so it still has a place in time order.
fn to_record(spec: &Spec, payload: Payload, head: Head) -> Result<(Record, Head)> {
    let stream = spec.def.name;
    // Not an object (or one naming a field twice): a default head, no id, refused below.
    let Some(id) = id_text(head.id.as_ref()) else {
        return Err(Error::Decode {
            message: format!("WooCommerce {stream} record without an `id`"),
        });
    };
    let what = format!("{stream} record {id}");
    let field = spec.cursor_field();
    let cursor = match gmt_value(head.field(field), field, &what)? {
        Some(t) => Some(t),
        None => gmt_value(head.date_created_gmt.as_ref(), "date_created_gmt", &what)?,
    };
    let record = Record {
        id,
        cursor: cursor.map(format_utc),
        payload,
    };
    Ok((record, head))
}

fn kept(keep: &Keep, record: &Record, head: &Head) -> Result<bool> {
    Ok(match keep {
        Keep::All => true,
        Keep::CursorSince(start) => match record.cursor.as_deref().and_then(parse_utc) {
            Some(c) => c >= *start,
            None => true,
        },
        Keep::CreatedIn(w) => {
            match gmt_value(
                head.date_created_gmt.as_ref(),
                "date_created_gmt",
                "customer",
            )? {
                Some(c) => c >= w.since && c < w.until,
                None => false,
            }
        }
    })
}

/// Where a modification-ordered read stands: the newest modification time read so far and the ids
/// already emitted at exactly that second.
///
/// Page numbers over a list ordered by modification time are unsafe while the store is live: an order
/// modified mid-sync jumps to the end of the list, every later record shifts one place towards the
/// front, and the record that slides onto an already-read page is never read — while the saved cursor
/// moves past it. So these streams re-anchor every request on the last modification time instead
/// (`modified_after` = that time − 1 s, because WooCommerce's bound is exclusive and whole-second),
/// drop the records of that second already emitted, and fall back to the next page number only when a
/// whole page shares one second.
#[derive(Debug, Default)]
struct Anchor {
    at: Option<DateTime<Utc>>,
    seen: HashSet<String>,
}

/// The paging state between two requests: the paginator (and anchor), never the records.
struct Cursor {
    paginator: PageNumber,
    page_params: Vec<(String, String)>,
    anchor: Anchor,
    /// `per_page` of the next request when it is known to be the last and fewer than a page are
    /// left (keyset reads, on page 1 of a new anchor): a host builds a page in time that grows with
    /// the records asked for, so the short last page of every window is asked for as short.
    size: Option<u32>,
}

/// `X-WP-Total`: how many records the request's filters match.
fn total_of(resp: &Response) -> Option<u64> {
    resp.header("X-WP-Total")
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The next page number after `resp`, or `None` at the end.
fn page_on(mut cursor: Cursor, resp: &Response, count: usize) -> Result<Option<Cursor>> {
    Ok(match cursor.paginator.next(resp, count)? {
        NextPage::Params(p) => {
            cursor.page_params = p;
            Some(cursor)
        }
        NextPage::Url(_) | NextPage::Done => None,
    })
}

fn unknown_stream(name: &str) -> Error {
    growthflow_core::connector::unknown_stream("WooCommerce", name, &stream_defs())
}

/// Read one stream lazily, one page in memory at a time.
pub(crate) fn read(reader: Arc<Reader>, request: ReadRequest) -> BoxStream<'static, Result<Page>> {
    let Some(spec) = Spec::of(&request.stream) else {
        let err = unknown_stream(&request.stream);
        return failed_read(err);
    };
    let plan = match reader.plan(spec, &request) {
        Ok(p) => {
            // The filter parameters carry no credentials (those are added per request), so they can be logged.
            tracing::debug!(stream = p.spec.def.name, params = ?p.params, "reading");
            Arc::new(p)
        }
        Err(e) => return failed_read(e),
    };
    if plan.spec.filter == Filter::ClientSide {
        return customers::scan(reader, plan);
    }
    read_plan(reader, plan)
}

/// The error for a site that listed a record modified at `at` in answer to `modified_after = bound`:
/// WooCommerce before 5.8 (2021) has no such filter and ignores it, so every re-anchored request
/// would list the store from its first record again, n²/2 requests for n pages.
fn ignored_filter(spec: &Spec, at: DateTime<Utc>, bound: DateTime<Utc>) -> Error {
    Error::Other(format!(
        "WooCommerce ignored modified_after on {}: it listed a record modified at {} for \
         modified_after={}. Filtering by modification time needs WooCommerce 5.8 or later: update \
         WooCommerce on the site",
        spec.path,
        wc_date(at),
        wc_date(bound)
    ))
}

/// Page through one planned read.
fn read_plan(reader: Arc<Reader>, plan: Arc<Plan>) -> BoxStream<'static, Result<Page>> {
    let paginator = PageNumber::new(
        "page",
        "per_page",
        reader.per_page,
        Some(TOTAL_PAGES_HEADER),
    );
    let first = Cursor {
        page_params: paginator.first(),
        paginator,
        anchor: Anchor::default(),
        size: None,
    };
    let per_page = reader.per_page as usize;
    paged(first, move |mut cursor: Cursor| {
        let reader = reader.clone();
        let plan = plan.clone();
        async move {
            let mut url = plan.url.clone();
            set_query(&mut url, &plan.params);
            if let Some(at) = cursor.anchor.at {
                set_query(
                    &mut url,
                    &[param("modified_after", wc_date(at - Duration::seconds(1)))],
                );
            }
            set_query(&mut url, &cursor.page_params);
            let asked = match cursor.size.take() {
                Some(n) => {
                    set_query(&mut url, &[param("per_page", n.to_string())]);
                    n as usize
                }
                None => per_page,
            };
            // Page 1 of its query (a keyset read's every re-anchored request): `X-WP-Total` less this
            // page is what is left after it.
            let first_page = cursor.paginator.page() == 1;
            let (resp, items) = reader.get_records(url, &plan.spec).await?;
            let count = items.len();
            let left = total_of(&resp)
                .filter(|_| first_page)
                .map(|t| t.saturating_sub(count as u64));
            let mut records = Vec::with_capacity(count);
            let mut newest: Option<DateTime<Utc>> = None;
            let mut at_newest: Vec<String> = Vec::new();
            // The exclusive bound this request sent: a record modified at or before it means the
            // site ignores the filter (see `ignored_filter`).
            let bound = match cursor.anchor.at {
                Some(at) => Some(at - Duration::seconds(1)),
                None => plan
                    .params
                    .iter()
                    .find(|(k, _)| k == "modified_after")
                    .and_then(|(_, v)| parse_utc(v)),
            };
            for (record, head) in items {
                if plan.keyset {
                    let t = record.cursor.as_deref().and_then(parse_utc);
                    if let (Some(t), Some(b)) = (t, bound) {
                        if t <= b {
                            return Err(ignored_filter(&plan.spec, t, b));
                        }
                    }
                    if t > newest {
                        newest = t;
                        at_newest.clear();
                    }
                    if t == newest {
                        at_newest.push(record.id.clone());
                    }
                    if t == cursor.anchor.at && cursor.anchor.seen.contains(&record.id) {
                        continue;
                    }
                }
                if kept(&plan.keep, &record, &head)? {
                    records.push(record);
                }
            }
            let next = if plan.keyset {
                if count < asked || left == Some(0) {
                    // A short page, or one the count says holds all that was left.
                    None
                } else if newest > cursor.anchor.at {
                    // Progress: re-anchor on the newest second and start again at page 1. The next
                    // request lists the records of that second again (dropped as seen) and what
                    // was left: when that is less than a page, only as many are asked for.
                    let again = (at_newest.len() as u64).saturating_add(left.unwrap_or(u64::MAX));
                    cursor.size = (again < per_page as u64).then_some(again.max(1) as u32);
                    cursor.anchor = Anchor {
                        at: newest,
                        seen: at_newest.into_iter().collect(),
                    };
                    cursor.page_params = cursor.paginator.reset();
                    Some(cursor)
                } else if asked < per_page {
                    // A short request filled within one second (the listing grew meanwhile): ask
                    // again for a whole page 1, dropping what was seen, rather than page on with
                    // another page size.
                    cursor.anchor.seen.extend(at_newest);
                    cursor.page_params = cursor.paginator.reset();
                    Some(cursor)
                } else {
                    // A whole page within one second: page on within it.
                    cursor.anchor.seen.extend(at_newest);
                    page_on(cursor, &resp, count)?
                }
            } else {
                page_on(cursor, &resp, count)?
            };
            let mut page = Page::new(records);
            // How much of the window is left after this page (`X-WP-Total` less the page): core
            // splits a window that turns out big once the others leave room.
            if plan.window && next.is_some() {
                if let Some(left) = left {
                    page.checkpoint = Some(serde_json::json!({ REMAINING: left }));
                }
            }
            Ok((page, next))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    /// The record `item` makes, read out of a page that holds it, as a sync reads it.
    fn to_record(spec: &Spec, item: Value) -> Result<Record> {
        let page = serde_json::to_vec(&json!([item])).unwrap();
        let (payload, head) = read_array::<Head>(&page).unwrap().pop().unwrap();
        super::to_record(spec, payload, head.unwrap_or_default()).map(|(r, _)| r)
    }

    #[test]
    fn records_get_string_ids_and_utc_cursors() {
        let spec = Spec::of("orders").unwrap();
        let r = to_record(
            &spec,
            json!({"id": 48213, "date_modified_gmt": "2025-03-07T16:02:48", "extra": {"kept": true}}),
        )
        .unwrap();
        assert_eq!(r.id, "48213");
        assert_eq!(r.cursor.as_deref(), Some("2025-03-07T16:02:48Z"));
        assert_eq!(r.payload.to_value()["extra"]["kept"], json!(true));

        let customers = Spec::of("customers").unwrap();
        let r = to_record(
            &customers,
            json!({"id": 7, "date_modified_gmt": null, "date_created_gmt": "2024-11-28T21:14:05"}),
        )
        .unwrap();
        assert_eq!(r.cursor.as_deref(), Some("2024-11-28T21:14:05Z"));

        let bad = to_record(&spec, json!({"id": 1, "date_modified_gmt": "yesterday"})).unwrap_err();
        assert!(
            matches!(&bad, Error::Decode { message } if message.contains("date_modified_gmt")),
            "{bad}"
        );
        let no_id =
            to_record(&spec, json!({"date_modified_gmt": "2025-03-07T16:02:48"})).unwrap_err();
        assert!(
            matches!(&no_id, Error::Decode { message } if message.contains("`id`")),
            "{no_id}"
        );
        // An item that is no object is read the two-scan way, and refused the same way.
        let not_object = to_record(&spec, json!(7)).unwrap_err();
        assert_eq!(not_object.to_string(), no_id.to_string(), "{not_object}");
    }

    #[test]
    fn a_page_is_decoded_in_order_and_a_broken_one_names_its_endpoint() {
        let resp = |body: &str| Response {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        };
        let items = decode_records(
            &resp(r#"[{"id":2,"date_modified_gmt":"2025-03-07T16:02:48"}, 5, {"id":"3"}]"#),
            "orders",
        )
        .unwrap();
        let ids: Vec<Option<String>> = items
            .iter()
            .map(|(_, h)| h.as_ref().and_then(|h| id_text(h.id.as_ref())))
            .collect();
        assert_eq!(ids, [Some("2".to_string()), None, Some("3".to_string())]);
        assert_eq!(items[1].0.as_str(), "5");
        let broken = decode_records(&resp(r#"[{"id":2},"#), "orders").unwrap_err();
        assert!(
            matches!(&broken, Error::Decode { message }
                if message.starts_with("WooCommerce /wp-json/wc/v3/orders: ")),
            "{broken}"
        );
    }

    #[test]
    fn dates_are_sent_without_zone() {
        let t = Utc.with_ymd_and_hms(2025, 3, 7, 16, 2, 47).unwrap();
        assert_eq!(wc_date(t), "2025-03-07T16:02:47");
    }

    #[test]
    fn streams_are_declared_once_each() {
        let defs = stream_defs();
        for d in &defs {
            let spec = Spec::of(d.name).unwrap();
            assert_eq!(&spec.def, d);
        }
        // Only customers lack a server-side sort on their cursor.
        let unsorted: Vec<&str> = defs.iter().filter(|d| !d.sorted).map(|d| d.name).collect();
        assert_eq!(unsorted, ["customers"]);
        let names: Vec<&str> = defs.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            ["orders", "refunds", "customers", "products", "coupons"]
        );
    }

    #[test]
    fn rest_no_route_on_refunds_names_the_version() {
        let e = explain(
            Error::Api {
                platform: "WooCommerce",
                status: 404,
                code: Some("rest_no_route".into()),
                message: "No route was found matching the URL and request method.".into(),
            },
            "refunds",
        );
        assert!(e.to_string().contains("WooCommerce 9.0"), "{e}");
    }
}
