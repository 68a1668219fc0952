//! The HTTP side of the simulated store: routing, authentication, filtering, ordering and paging, as
//! WooCommerce's REST controllers do them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{Map, Value};

use super::auth::{self, AuthOutcome, NonceCache, SignedRequest};
use super::data::{refunds_by_order, WooStore};
use super::rest::{
    add_rest_headers, json_response, parse_list_params, Collection, DateBound, ListParams, Query,
    WpError,
};
use super::PREFIX;
use crate::faults::{self, FaultLayer, Faults};

const WC_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// One record with the values the filters and orderings need, parsed once. The JSON text itself stays
/// in the store (`pos` points at it): the routes keep no second copy of the records.
#[derive(Debug)]
struct Rec {
    /// Position of the record's JSON text in its collection.
    pos: usize,
    id: u64,
    created: NaiveDateTime,
    created_gmt: NaiveDateTime,
    modified: NaiveDateTime,
    modified_gmt: NaiveDateTime,
    /// Lower-cased sort title (product name, coupon code, customer display name).
    title: String,
    slug: String,
    status: String,
    customer_id: u64,
    parent: u64,
    role: String,
    email: String,
    sku: String,
    product_type: String,
    price: f64,
    total_sales: u64,
    product_ids: Vec<u64>,
}

impl Rec {
    fn new(pos: usize, value: &Value, kind: Collection) -> Self {
        let s = |k: &str| value[k].as_str().unwrap_or("").to_owned();
        let dt = |k: &str| {
            NaiveDateTime::parse_from_str(value[k].as_str().unwrap_or(""), WC_FORMAT)
                .unwrap_or_default()
        };
        let created = dt("date_created");
        let created_gmt = dt("date_created_gmt");
        let (modified, modified_gmt) = if value.get("date_modified").is_some() {
            (dt("date_modified"), dt("date_modified_gmt"))
        } else {
            (created, created_gmt)
        };
        let title = match kind {
            Collection::Products => s("name"),
            Collection::Coupons => s("code"),
            Collection::Customers => format!("{} {}", s("first_name"), s("last_name")),
            _ => String::new(),
        }
        .to_lowercase();
        let slug = match kind {
            Collection::Coupons => s("code"),
            _ => s("slug"),
        };
        let product_ids = value["line_items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["product_id"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        Rec {
            pos,
            id: value["id"].as_u64().unwrap_or(0),
            created,
            created_gmt,
            modified,
            modified_gmt,
            title,
            slug,
            status: s("status"),
            customer_id: value["customer_id"].as_u64().unwrap_or(0),
            parent: value["parent_id"].as_u64().unwrap_or(0),
            role: s("role"),
            email: s("email").trim().to_lowercase(),
            sku: s("sku"),
            product_type: s("type"),
            price: s("price").parse().unwrap_or(0.0),
            total_sales: value["total_sales"].as_u64().unwrap_or(0),
            product_ids,
        }
    }

    /// The creation or modification time in the frame a filter compares in.
    fn time(&self, key: Key, gmt: bool) -> NaiveDateTime {
        match (key, gmt) {
            (Key::Modified, true) => self.modified_gmt,
            (Key::Modified, false) => self.modified,
            (_, true) => self.created_gmt,
            (_, false) => self.created,
        }
    }
}

/// The orderings a collection is indexed by, so that a page is found without sorting the collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Created,
    Modified,
}

/// One collection's records (in id order) and its orderings by date: a page is a slice of one of
/// them, found by binary search on the date bounds, so its cost does not grow with the store.
#[derive(Debug)]
struct Coll {
    recs: Vec<Rec>,
    /// Positions in `recs` sorted by (`created_gmt`, id).
    by_created: Vec<u32>,
    /// Positions in `recs` sorted by (`modified_gmt`, id).
    by_modified: Vec<u32>,
    /// Whether the site-local times are ordered like the GMT ones along both indexes (a fixed site
    /// offset), so that a site-local bound can be binary searched too.
    local_ordered: bool,
}

impl Coll {
    /// The index of records given as JSON text (each parsed once, one at a time).
    fn new(texts: &[Box<str>], kind: Collection) -> Self {
        let recs: Vec<Rec> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v: Value = serde_json::from_str(t).expect("the store's own JSON");
                Rec::new(i, &v, kind)
            })
            .collect();
        let sorted = |key: Key| {
            let mut idx: Vec<u32> = (0..recs.len() as u32).collect();
            idx.sort_by_key(|&i| {
                let r = &recs[i as usize];
                (r.time(key, true), r.id)
            });
            idx
        };
        let by_created = sorted(Key::Created);
        let by_modified = sorted(Key::Modified);
        let ordered = |idx: &[u32], key: Key| {
            idx.windows(2).all(|w| {
                recs[w[0] as usize].time(key, false) <= recs[w[1] as usize].time(key, false)
            })
        };
        let local_ordered =
            ordered(&by_created, Key::Created) && ordered(&by_modified, Key::Modified);
        Coll {
            recs,
            by_created,
            by_modified,
            local_ordered,
        }
    }

    fn find(&self, id: u64) -> Option<&Rec> {
        self.recs
            .binary_search_by_key(&id, |r| r.id)
            .ok()
            .map(|i| &self.recs[i])
    }

    /// The `i`-th record in ascending `key` order.
    fn nth(&self, key: Key, i: usize) -> &Rec {
        match key {
            Key::Id => &self.recs[i],
            Key::Created => &self.recs[self.by_created[i] as usize],
            Key::Modified => &self.recs[self.by_modified[i] as usize],
        }
    }

    /// The positions (in ascending `key` order) whose time is strictly inside the bounds.
    fn range(
        &self,
        key: Key,
        gmt: bool,
        after: Option<NaiveDateTime>,
        before: Option<NaiveDateTime>,
    ) -> std::ops::Range<usize> {
        let n = self.recs.len();
        let idx = match key {
            Key::Id => return 0..n,
            Key::Created => &self.by_created,
            Key::Modified => &self.by_modified,
        };
        let time = |i: &u32| self.recs[*i as usize].time(key, gmt);
        let lo = after.map_or(0, |b| idx.partition_point(|i| time(i) <= b));
        let hi = before.map_or(n, |b| idx.partition_point(|i| time(i) < b));
        lo..hi.max(lo)
    }
}

/// Parsed records of every collection.
#[derive(Debug)]
struct Index {
    orders: Coll,
    customers: Coll,
    products: Coll,
    coupons: Coll,
    refunds: Coll,
    /// Per-order refunds (their JSON text without `parent_id`, as that endpoint serves them), keyed
    /// by order id.
    order_refunds: BTreeMap<u64, (Vec<Box<str>>, Coll)>,
}

impl Index {
    fn new(store: &WooStore) -> Self {
        let texts = store.texts();
        let order_refunds = refunds_by_order(&texts.refunds)
            .into_iter()
            .map(|(order, list)| {
                let mut coll = Coll::new(&list, Collection::Refunds);
                // Served without `parent_id`, but keep the parent for filtering.
                for rec in &mut coll.recs {
                    rec.parent = order;
                }
                (order, (list, coll))
            })
            .collect();
        Index {
            orders: Coll::new(&texts.orders, Collection::Orders),
            customers: Coll::new(&texts.customers, Collection::Customers),
            products: Coll::new(&texts.products, Collection::Products),
            coupons: Coll::new(&texts.coupons, Collection::Coupons),
            refunds: Coll::new(&texts.refunds, Collection::Refunds),
            order_refunds,
        }
    }

    fn collection(&self, kind: Collection) -> &Coll {
        match kind {
            Collection::Orders => &self.orders,
            Collection::Customers => &self.customers,
            Collection::Products => &self.products,
            Collection::Coupons => &self.coupons,
            Collection::Refunds => &self.refunds,
        }
    }
}

/// Shared state of the WooCommerce routes.
#[derive(Debug)]
struct WooState {
    store: Arc<WooStore>,
    index: Index,
    /// The per-order refunds of an order without any.
    no_refunds: Coll,
    nonces: NonceCache,
    faults: Faults,
    site_offset: TimeDelta,
    /// `Host` to assume when a request has none.
    fallback_host: String,
    /// The site is HTTPS behind a proxy that ends TLS (see [`crate::SandboxConfig`]): requests are
    /// authenticated by HTTP Basic or the key pair in the query, not by OAuth 1.0a.
    behind_tls: bool,
}

/// The WooCommerce routes (everything under `/woocommerce`), wrapped by the fault layer.
pub(crate) fn router(
    store: Arc<WooStore>,
    faults: Faults,
    fallback_host: String,
    behind_tls: bool,
) -> Router {
    let state = Arc::new(WooState {
        index: Index::new(&store),
        no_refunds: Coll::new(&[], Collection::Refunds),
        site_offset: TimeDelta::hours(i64::from(store.utc_offset_hours)),
        store,
        nonces: NonceCache::default(),
        faults: faults.clone(),
        fallback_host,
        behind_tls,
    });
    let prefix = format!("/{PREFIX}");
    Router::new()
        .route(&prefix, any(handle))
        .route(&format!("{prefix}/"), any(handle))
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

#[derive(Debug, Clone, Copy)]
enum Route {
    /// A collection; for refunds, `Some(order_id)` is `/orders/{id}/refunds`.
    List(Collection, Option<u64>),
    Get(Collection, u64),
    OrderRefund(u64, u64),
}

fn parse_route(rest: &str) -> Option<Route> {
    let r = rest.strip_prefix("/wp-json/wc/v3/")?.trim_end_matches('/');
    let id = |s: &str| -> Option<u64> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let segs: Vec<&str> = r.split('/').collect();
    Some(match segs.as_slice() {
        ["orders"] => Route::List(Collection::Orders, None),
        ["orders", i] => Route::Get(Collection::Orders, id(i)?),
        ["orders", i, "refunds"] => Route::List(Collection::Refunds, Some(id(i)?)),
        ["orders", i, "refunds", r] => Route::OrderRefund(id(i)?, id(r)?),
        ["refunds"] => Route::List(Collection::Refunds, None),
        ["customers"] => Route::List(Collection::Customers, None),
        ["customers", i] => Route::Get(Collection::Customers, id(i)?),
        ["products"] => Route::List(Collection::Products, None),
        ["products", i] => Route::Get(Collection::Products, id(i)?),
        ["coupons"] => Route::List(Collection::Coupons, None),
        ["coupons", i] => Route::Get(Collection::Coupons, id(i)?),
        _ => return None,
    })
}

async fn handle(State(st): State<Arc<WooState>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = header_str(header::HOST).unwrap_or_else(|| st.fallback_host.clone());
    let authorization = header_str(header::AUTHORIZATION);
    let path = uri.path().to_owned();
    let rest = path
        .strip_prefix(&format!("/{PREFIX}"))
        .unwrap_or(&path)
        .to_owned();
    let query = Query::parse(uri.query());

    // WooCommerce authenticates only requests to its own namespaces, before routing.
    let mut authenticated = false;
    if rest.starts_with("/wp-json/wc/") {
        let signed = SignedRequest {
            method: method.as_str(),
            host: &host,
            path: &path,
            query: &query.pairs,
            authorization: authorization.as_deref(),
        };
        let now = chrono::Utc::now().timestamp();
        let outcome = if st.behind_tls {
            auth::authenticate_basic(
                authorization.as_deref(),
                &query.pairs,
                &st.store.consumer_key,
                &st.store.consumer_secret,
            )
        } else {
            auth::authenticate(
                &signed,
                &st.store.consumer_key,
                &st.store.consumer_secret,
                now,
                &st.nonces,
            )
        };
        match outcome {
            AuthOutcome::Failed(e) => {
                let mut resp = e.into_response();
                if st.behind_tls {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(auth::BASIC_CHALLENGE),
                    );
                }
                return resp;
            }
            AuthOutcome::Authenticated => authenticated = true,
            AuthOutcome::Anonymous => {}
        }
    }

    if method != Method::GET && method != Method::HEAD {
        return WpError::no_route().into_response();
    }
    let Some(route) = parse_route(&rest) else {
        return WpError::no_route().into_response();
    };
    match route {
        Route::List(kind, scope) => {
            // WordPress validates parameters before the permission check.
            let params = match parse_list_params(kind, &query) {
                Ok(p) => p,
                Err(e) => return e.into_response(),
            };
            if !authenticated {
                return WpError::new(
                    401,
                    "woocommerce_rest_cannot_view",
                    "Sorry, you cannot list resources.",
                )
                .into_response();
            }
            let link_base = format!("http://{host}{path}");
            st.list(kind, scope, &params, &link_base, &query)
        }
        Route::Get(kind, id) => {
            if !authenticated {
                return cannot_view_one();
            }
            let found = st.index.collection(kind).find(id);
            match found {
                Some(rec) => single(&st.values(kind)[rec.pos], &query),
                None => {
                    let (code, message) = match kind {
                        Collection::Orders => {
                            ("woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
                        }
                        Collection::Products => {
                            ("woocommerce_rest_product_invalid_id", "Invalid ID.")
                        }
                        Collection::Coupons => {
                            ("woocommerce_rest_shop_coupon_invalid_id", "Invalid ID.")
                        }
                        _ => ("woocommerce_rest_invalid_id", "Invalid resource ID."),
                    };
                    WpError::new(404, code, message).into_response()
                }
            }
        }
        Route::OrderRefund(order_id, refund_id) => {
            if !authenticated {
                return cannot_view_one();
            }
            if st.index.orders.find(order_id).is_none() {
                return invalid_order_id();
            }
            let found = st
                .index
                .order_refunds
                .get(&order_id)
                .and_then(|(values, coll)| coll.find(refund_id).map(|r| &values[r.pos]));
            match found {
                Some(value) => single(value, &query),
                None => {
                    WpError::new(404, "woocommerce_rest_invalid_id", "Invalid ID.").into_response()
                }
            }
        }
    }
}

fn cannot_view_one() -> Response {
    WpError::new(
        401,
        "woocommerce_rest_cannot_view",
        "Sorry, you cannot view this resource.",
    )
    .into_response()
}

fn invalid_order_id() -> Response {
    WpError::new(
        404,
        "woocommerce_rest_invalid_order_id",
        "Invalid order ID.",
    )
    .into_response()
}

/// One record, given as its JSON text: served as it is, or parsed and projected for `_fields`.
fn single(text: &str, query: &Query) -> Response {
    let fields = query.get("_fields").map(|f| {
        f.split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
    });
    let body = match fields {
        None => text.as_bytes().to_vec(),
        Some(fields) => {
            let value: Value = serde_json::from_str(text).expect("the store's own JSON");
            serde_json::to_vec(&project(&value, Some(&fields))).unwrap_or_default()
        }
    };
    let mut resp = json_response(200, body);
    resp.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
    );
    resp
}

/// `_fields`: keep only the named top-level members (`a.b` keeps `a`).
fn project(value: &Value, fields: Option<&[String]>) -> Value {
    let (Some(fields), Some(obj)) = (fields, value.as_object()) else {
        return value.clone();
    };
    let wanted: Vec<&str> = fields
        .iter()
        .map(|f| f.split('.').next().unwrap_or(f))
        .collect();
    let mut out = Map::new();
    for (k, v) in obj {
        if wanted.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

impl WooState {
    /// The JSON text of a collection's records, as [`Rec::pos`] points into it.
    fn values(&self, kind: Collection) -> &[Box<str>] {
        let texts = self.store.texts();
        match kind {
            Collection::Orders => &texts.orders,
            Collection::Customers => &texts.customers,
            Collection::Products => &texts.products,
            Collection::Coupons => &texts.coupons,
            Collection::Refunds => &texts.refunds,
        }
    }

    /// How many records a list request matches, and the requested page of them in order. Orderings
    /// by id and dates walk the collection's index from the binary-searched date bounds: when no other
    /// filter is set, the page is a slice of it and the total its length, whatever the store's size.
    /// Orderings by name or price (products, coupons, customers: small collections) filter and sort.
    fn select<'a>(&self, coll: &'a Coll, kind: Collection, p: &ListParams) -> (u64, Vec<&'a Rec>) {
        let start = usize::try_from(p.offset.unwrap_or((p.page - 1).saturating_mul(p.per_page)))
            .unwrap_or(usize::MAX);
        let take = usize::try_from(p.per_page).unwrap_or(usize::MAX);
        let key = match p.orderby.as_str() {
            "include" if !p.include.is_empty() => None,
            "date" | "registered_date" => Some(Key::Created),
            "modified" => Some(Key::Modified),
            "title" | "name" | "slug" | "price" | "popularity" => None,
            _ => Some(Key::Id), // id, include without a list, rating (no ratings)
        };
        let Some(key) = key else {
            let mut matched: Vec<&Rec> = coll
                .recs
                .iter()
                .filter(|r| self.matches(r, kind, p))
                .collect();
            matched.sort_by(|a, b| Self::compare(p, a, b));
            let total = matched.len() as u64;
            let page = matched.into_iter().skip(start).take(take).collect();
            return (total, page);
        };
        let gmt = p.dates_are_gmt;
        let frame = |b: Option<DateBound>| b.map(|b| b.in_frame(gmt, self.site_offset));
        let (after, before) = match key {
            Key::Created => (p.after, p.before),
            Key::Modified => (p.modified_after, p.modified_before),
            Key::Id => (None, None),
        };
        let searchable = gmt || coll.local_ordered;
        let range = if searchable {
            coll.range(key, gmt, frame(after), frame(before))
        } else {
            0..coll.recs.len()
        };
        let len = range.len();
        let at = |i: usize| {
            if p.desc {
                coll.nth(key, range.end - 1 - i)
            } else {
                coll.nth(key, range.start + i)
            }
        };
        if searchable && Self::only_range_filters(kind, key, p) {
            let page = (start.min(len)..start.saturating_add(take).min(len))
                .map(at)
                .collect();
            return (len as u64, page);
        }
        let mut total = 0usize;
        let mut page = Vec::new();
        for i in 0..len {
            let r = at(i);
            if self.matches(r, kind, p) {
                if total >= start && page.len() < take {
                    page.push(r);
                }
                total += 1;
            }
        }
        (total as u64, page)
    }

    /// Whether every filter of `p` is either unset or the date bounds of `key` (which the index range
    /// already applies). Destructured field by field so that a new filter cannot be forgotten here.
    fn only_range_filters(kind: Collection, key: Key, p: &ListParams) -> bool {
        let ListParams {
            page: _,
            per_page: _,
            offset: _,
            orderby: _,
            desc: _,
            dates_are_gmt: _,
            fields: _,
            include,
            exclude,
            after,
            before,
            modified_after,
            modified_before,
            status,
            role,
            email,
            code,
            sku,
            product_type,
            customer,
            product,
            parent,
        } = p;
        let created_free = key == Key::Created || (after.is_none() && before.is_none());
        let modified_free =
            key == Key::Modified || (modified_after.is_none() && modified_before.is_none());
        include.is_empty()
            && exclude.is_empty()
            && created_free
            && modified_free
            && (status.is_empty() || status.iter().any(|s| s == "any"))
            && (kind != Collection::Customers || role == "all")
            && email.is_none()
            && code.is_none()
            && sku.is_none()
            && product_type.is_none()
            && customer.is_none()
            && product.is_none()
            && parent.is_empty()
    }

    fn matches(&self, r: &Rec, kind: Collection, p: &ListParams) -> bool {
        if !p.include.is_empty() && !p.include.contains(&r.id) {
            return false;
        }
        if p.exclude.contains(&r.id) {
            return false;
        }
        let gmt = p.dates_are_gmt;
        let bound = |b: &Option<DateBound>| b.map(|b| b.in_frame(gmt, self.site_offset));
        let (created, modified) = if gmt {
            (r.created_gmt, r.modified_gmt)
        } else {
            (r.created, r.modified)
        };
        // Date bounds are exclusive (WP_Query date_query after/before).
        if bound(&p.after).is_some_and(|b| created <= b)
            || bound(&p.before).is_some_and(|b| created >= b)
            || bound(&p.modified_after).is_some_and(|b| modified <= b)
            || bound(&p.modified_before).is_some_and(|b| modified >= b)
        {
            return false;
        }
        match kind {
            Collection::Orders => {
                if !p.status.is_empty()
                    && !p.status.iter().any(|s| s == "any")
                    && !p.status.contains(&r.status)
                {
                    return false;
                }
                if p.customer.is_some_and(|c| c != r.customer_id) {
                    return false;
                }
                if p.product.is_some_and(|pid| !r.product_ids.contains(&pid)) {
                    return false;
                }
                if !p.parent.is_empty() && !p.parent.contains(&r.parent) {
                    return false;
                }
            }
            Collection::Products => {
                if let Some(s) = p.status.first() {
                    if s != "any" && s != &r.status {
                        return false;
                    }
                }
                if p.product_type
                    .as_ref()
                    .is_some_and(|t| t != &r.product_type)
                {
                    return false;
                }
                if p.sku
                    .as_ref()
                    .is_some_and(|s| !s.split(',').any(|one| one.trim() == r.sku))
                {
                    return false;
                }
            }
            Collection::Coupons => {
                if p.code
                    .as_ref()
                    .is_some_and(|c| c.to_lowercase() != r.slug.to_lowercase())
                {
                    return false;
                }
            }
            Collection::Customers => {
                if p.role != "all" && p.role != r.role {
                    return false;
                }
                if p.email
                    .as_ref()
                    .is_some_and(|e| e.trim().to_lowercase() != r.email)
                {
                    return false;
                }
            }
            Collection::Refunds => {
                if !p.parent.is_empty() && !p.parent.contains(&r.parent) {
                    return false;
                }
            }
        }
        true
    }

    fn compare(p: &ListParams, a: &Rec, b: &Rec) -> Ordering {
        if p.orderby == "include" && !p.include.is_empty() {
            // post__in keeps the requested order whatever `order` says.
            let pos = |r: &Rec| {
                p.include
                    .iter()
                    .position(|&i| i == r.id)
                    .unwrap_or(usize::MAX)
            };
            return pos(a).cmp(&pos(b));
        }
        let primary = match p.orderby.as_str() {
            "date" | "registered_date" => a.created_gmt.cmp(&b.created_gmt),
            "modified" => a.modified_gmt.cmp(&b.modified_gmt),
            "title" | "name" => a.title.cmp(&b.title),
            "slug" => a.slug.cmp(&b.slug),
            "price" => a.price.partial_cmp(&b.price).unwrap_or(Ordering::Equal),
            "popularity" => a.total_sales.cmp(&b.total_sales),
            _ => Ordering::Equal, // id, include without a list, rating (no ratings)
        };
        let ord = primary.then(a.id.cmp(&b.id));
        if p.desc {
            ord.reverse()
        } else {
            ord
        }
    }

    fn list(
        &self,
        kind: Collection,
        scope: Option<u64>,
        p: &ListParams,
        link_base: &str,
        query: &Query,
    ) -> Response {
        let (values, coll): (&[Box<str>], &Coll) = match scope {
            Some(order_id) => {
                if self.index.orders.find(order_id).is_none() {
                    return invalid_order_id();
                }
                match self.index.order_refunds.get(&order_id) {
                    Some((values, coll)) => (values, coll),
                    None => (&[], &self.no_refunds),
                }
            }
            None => (self.values(kind), self.index.collection(kind)),
        };
        let (total, page) = self.select(coll, kind, p);
        let total_pages = total.div_ceil(p.per_page);
        let mut body = Vec::with_capacity(page.len() * 2048 + 2);
        body.push(b'[');
        for (i, rec) in page.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let text = &values[rec.pos];
            match p.fields.as_deref() {
                // The record's JSON text is what serialising its value wrote.
                None => body.extend_from_slice(text.as_bytes()),
                Some(f) => {
                    let value: Value = serde_json::from_str(text).expect("the store's own JSON");
                    serde_json::to_writer(&mut body, &project(&value, Some(f)))
                        .expect("a JSON value serialises");
                }
            }
        }
        body.push(b']');

        let mut links = Vec::new();
        if p.page > 1 {
            let prev = (p.page - 1).min(total_pages.max(1));
            links.push(format!(
                "<{}>; rel=\"prev\"",
                page_url(link_base, query, prev)
            ));
        }
        if total_pages > p.page {
            links.push(format!(
                "<{}>; rel=\"next\"",
                page_url(link_base, query, p.page + 1)
            ));
        }

        let mut resp = if self.faults.take_list_drop(PREFIX) {
            let (body, full_len) = faults::truncated_body(body);
            let mut resp = Response::new(body);
            add_rest_headers(resp.headers_mut());
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full_len));
            resp
        } else {
            json_response(200, body)
        };
        let h = resp.headers_mut();
        h.insert("X-WP-Total", HeaderValue::from(total));
        h.insert("X-WP-TotalPages", HeaderValue::from(total_pages));
        for l in links {
            if let Ok(v) = HeaderValue::from_str(&l) {
                h.append(header::LINK, v);
            }
        }
        h.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        resp
    }
}

/// The collection URL with `page` set, like `add_query_arg('page', n, $base)`: every query parameter
/// the client sent is kept (OAuth ones included, as WordPress does), `page` replaced in place or
/// appended.
fn page_url(base: &str, query: &Query, page: u64) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut replaced = false;
    for (k, v) in &query.pairs {
        if k == "page" {
            if !replaced {
                ser.append_pair("page", &page.to_string());
                replaced = true;
            }
        } else {
            ser.append_pair(k, v);
        }
    }
    if !replaced {
        ser.append_pair("page", &page.to_string());
    }
    format!("{base}?{}", ser.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(
            parse_route("/wp-json/wc/v3/orders"),
            Some(Route::List(Collection::Orders, None))
        ));
        assert!(matches!(
            parse_route("/wp-json/wc/v3/orders/12/refunds/"),
            Some(Route::List(Collection::Refunds, Some(12)))
        ));
        assert!(parse_route("/wp-json/wc/v3/orders/abc").is_none());
        assert!(parse_route("/wp-json/wc/v3/webhooks").is_none());
        assert!(parse_route("/wp-json/wc/v2/orders").is_none());
    }

    /// The indexed pages are exactly what filtering and sorting the whole collection gives, for every
    /// ordering, direction, date frame and bound the index narrows on, with and without other filters.
    #[test]
    fn indexed_pages_equal_filtering_and_sorting_everything() {
        let end =
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2025, 6, 30, 23, 59, 59).unwrap();
        let store = Arc::new(WooStore::generate(3, 1, end));
        let st = WooState {
            index: Index::new(&store),
            no_refunds: Coll::new(&[], Collection::Refunds),
            site_offset: TimeDelta::hours(i64::from(store.utc_offset_hours)),
            store,
            nonces: NonceCache::default(),
            faults: Faults::new(),
            fallback_host: String::new(),
            behind_tls: false,
        };
        let mut checked = 0;
        for kind in [
            Collection::Orders,
            Collection::Refunds,
            Collection::Products,
        ] {
            let coll = st.index.collection(kind);
            for orderby in ["date", "modified", "id", "title"] {
                for order in ["asc", "desc"] {
                    for gmt in ["true", "false"] {
                        for bounds in [
                            "",
                            "&after=2025-03-01T00:00:00",
                            "&after=2025-03-01T00:00:00&before=2025-05-01T12:00:00Z",
                            "&modified_after=2025-04-01T00:00:00",
                            "&modified_after=2025-02-01T00:00:00&modified_before=2025-06-01T00:00:00-02:00",
                            "&before=2025-01-15T00:00:00&modified_after=2025-01-01T00:00:00",
                        ] {
                            // A status the collection knows: products have their own (publish, draft, ...).
                            let status = if matches!(kind, Collection::Products) {
                                "&status=publish"
                            } else {
                                "&status=completed"
                            };
                            for extra in ["", status, "&exclude=5,9", "&offset=7"] {
                                for page in [1, 2, 5] {
                                    let q = Query::parse(Some(&format!(
                                        "orderby={orderby}&order={order}&dates_are_gmt={gmt}&per_page=13&page={page}{bounds}{extra}"
                                    )));
                                    let p = parse_list_params(kind, &q).unwrap();
                                    let mut all: Vec<&Rec> =
                                        coll.recs.iter().filter(|r| st.matches(r, kind, &p)).collect();
                                    all.sort_by(|a, b| WooState::compare(&p, a, b));
                                    let start = p.offset.unwrap_or((p.page - 1) * p.per_page) as usize;
                                    let want: Vec<u64> =
                                        all.iter().skip(start).take(13).map(|r| r.id).collect();
                                    let (total, got) = st.select(coll, kind, &p);
                                    let got: Vec<u64> = got.iter().map(|r| r.id).collect();
                                    assert_eq!(total, all.len() as u64, "{q:?}");
                                    assert_eq!(got, want, "{q:?}");
                                    checked += usize::from(!want.is_empty());
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked} non-empty pages compared");
    }

    #[test]
    fn page_url_replaces_page_in_place() {
        let q = Query::parse(Some("per_page=5&page=2&after=2025-01-01T00:00:00"));
        assert_eq!(
            page_url("http://h/x", &q, 3),
            "http://h/x?per_page=5&page=3&after=2025-01-01T00%3A00%3A00"
        );
        let q = Query::parse(Some("per_page=5"));
        assert_eq!(
            page_url("http://h/x", &q, 2),
            "http://h/x?per_page=5&page=2"
        );
    }
}
