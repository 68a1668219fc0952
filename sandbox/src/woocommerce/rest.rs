//! WordPress REST conventions: the error shape, query-string reading and the validation of collection
//! parameters (with WordPress's own messages).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use serde_json::{json, Map, Value};

/// A WordPress REST error: `{"code", "message", "data": {"status", …}}` with the matching HTTP status.
#[derive(Debug, Clone)]
pub(crate) struct WpError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Extra members of `data` besides `status`.
    pub(crate) data: Map<String, Value>,
}

impl WpError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            data: Map::new(),
        }
    }

    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        )
    }

    pub(crate) fn body(&self) -> Value {
        let mut data = Map::new();
        data.insert("status".into(), json!(self.status));
        for (k, v) in &self.data {
            data.insert(k.clone(), v.clone());
        }
        json!({ "code": self.code, "message": self.message, "data": Value::Object(data) })
    }

    pub(crate) fn into_response(self) -> Response {
        json_response(self.status, self.body().to_string().into_bytes())
    }
}

/// A JSON response with WordPress's content type and the usual REST headers.
pub(crate) fn json_response(status: u16, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    add_rest_headers(resp.headers_mut());
    resp
}

pub(crate) fn add_rest_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    h.insert("X-Robots-Tag", HeaderValue::from_static("noindex"));
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "Access-Control-Expose-Headers",
        HeaderValue::from_static("X-WP-Total, X-WP-TotalPages, Link"),
    );
}

// ---------------------------------------------------------------------------------------------------
// Query string
// ---------------------------------------------------------------------------------------------------

/// The decoded query pairs of one request, in order (duplicates kept).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub(crate) pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self { pairs }
    }

    /// The last value given for `key` (PHP keeps the last of duplicate scalar keys).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A list parameter: `key=a,b`, `key[]=a&key[]=b` or `key[0]=a`; `None` when absent.
    pub(crate) fn list(&self, key: &str) -> Option<Vec<String>> {
        let mut found = false;
        let mut out = Vec::new();
        let mut scalar: Option<&str> = None;
        for (k, v) in &self.pairs {
            if k == key {
                found = true;
                scalar = Some(v);
            } else if let Some(rest) = k.strip_prefix(key) {
                if rest.starts_with('[') && rest.ends_with(']') {
                    found = true;
                    out.push(v.clone());
                }
            }
        }
        if !found {
            return None;
        }
        if let Some(s) = scalar {
            out.extend(
                s.split(',')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty()),
            );
        }
        Some(out)
    }
}

// ---------------------------------------------------------------------------------------------------
// Collection parameters
// ---------------------------------------------------------------------------------------------------

/// The collections served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collection {
    Orders,
    Customers,
    Products,
    Coupons,
    /// The global `GET /refunds` (WC ≥ 9.0) and `GET /orders/{id}/refunds`.
    Refunds,
}

impl Collection {
    fn orderby_values(self) -> &'static [&'static str] {
        match self {
            Collection::Customers => &["id", "include", "name", "registered_date"],
            Collection::Products => &[
                "date",
                "modified",
                "id",
                "include",
                "title",
                "slug",
                "price",
                "popularity",
                "rating",
            ],
            _ => &["date", "id", "include", "title", "slug", "modified"],
        }
    }

    fn has_date_filters(self) -> bool {
        self != Collection::Customers
    }
}

const ORDER_STATUSES: &[&str] = &[
    "any",
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
    "checkout-draft",
];
const PRODUCT_STATUSES: &[&str] = &[
    "any", "future", "trash", "draft", "pending", "private", "publish",
];
const PRODUCT_TYPES: &[&str] = &["simple", "grouped", "external", "variable"];
const ROLES: &[&str] = &[
    "all",
    "administrator",
    "editor",
    "author",
    "contributor",
    "subscriber",
    "customer",
    "shop_manager",
];

/// A date filter bound: naive, or with an explicit UTC offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DateBound {
    pub(crate) naive: NaiveDateTime,
    pub(crate) offset: Option<FixedOffset>,
}

impl DateBound {
    /// The bound expressed in the frame the records are compared in: UTC (`gmt`) or site-local time
    /// (`site_offset`). A naive bound is taken as already in that frame.
    pub(crate) fn in_frame(&self, gmt: bool, site_offset: TimeDelta) -> NaiveDateTime {
        match self.offset {
            None => self.naive,
            Some(off) => {
                let utc = self.naive - TimeDelta::seconds(i64::from(off.local_minus_utc()));
                if gmt {
                    utc
                } else {
                    utc + site_offset
                }
            }
        }
    }
}

/// Validated collection parameters.
#[derive(Debug, Clone)]
pub(crate) struct ListParams {
    pub(crate) page: u64,
    pub(crate) per_page: u64,
    pub(crate) offset: Option<u64>,
    pub(crate) orderby: String,
    pub(crate) desc: bool,
    pub(crate) include: Vec<u64>,
    pub(crate) exclude: Vec<u64>,
    pub(crate) after: Option<DateBound>,
    pub(crate) before: Option<DateBound>,
    pub(crate) modified_after: Option<DateBound>,
    pub(crate) modified_before: Option<DateBound>,
    pub(crate) dates_are_gmt: bool,
    pub(crate) status: Vec<String>,
    pub(crate) role: String,
    pub(crate) email: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) sku: Option<String>,
    pub(crate) product_type: Option<String>,
    pub(crate) customer: Option<u64>,
    pub(crate) product: Option<u64>,
    pub(crate) parent: Vec<u64>,
    pub(crate) fields: Option<Vec<String>>,
}

/// Collected validation failures, rendered as WordPress's `rest_invalid_param`.
#[derive(Debug, Default)]
struct Invalid {
    params: Vec<(String, &'static str, String)>,
}

impl Invalid {
    fn add(&mut self, param: &str, code: &'static str, message: String) {
        if !self.params.iter().any(|(p, _, _)| p == param) {
            self.params.push((param.to_owned(), code, message));
        }
    }

    fn into_error(self) -> Option<WpError> {
        if self.params.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.params.iter().map(|(p, _, _)| p.as_str()).collect();
        let mut err = WpError::new(
            400,
            "rest_invalid_param",
            format!("Invalid parameter(s): {}", names.join(", ")),
        );
        let mut params = Map::new();
        let mut details = Map::new();
        for (p, code, msg) in &self.params {
            params.insert(p.clone(), json!(msg));
            details.insert(
                p.clone(),
                json!({ "code": code, "message": msg, "data": Value::Null }),
            );
        }
        err.data.insert("params".into(), Value::Object(params));
        err.data.insert("details".into(), Value::Object(details));
        Some(err)
    }
}

/// WordPress `rest_is_integer` + parse.
fn int_param(q: &Query, name: &str, inv: &mut Invalid) -> Option<i64> {
    let raw = q.get(name)?;
    match parse_int(raw) {
        Some(n) => Some(n),
        None => {
            inv.add(
                name,
                "rest_invalid_type",
                format!("{name} is not of type integer."),
            );
            None
        }
    }
}

fn parse_int(raw: &str) -> Option<i64> {
    let t = raw.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    // "2.0" is an integer for WordPress.
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
        _ => None,
    }
}

fn int_list(q: &Query, name: &str, inv: &mut Invalid) -> Vec<u64> {
    let Some(items) = q.list(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_int(item) {
            Some(n) => out.push(n.unsigned_abs()),
            None => {
                inv.add(
                    name,
                    "rest_invalid_type",
                    format!("{name}[{i}] is not of type integer."),
                );
            }
        }
    }
    out
}

fn enum_param<'a>(
    q: &'a Query,
    name: &str,
    allowed: &[&str],
    inv: &mut Invalid,
) -> Option<&'a str> {
    let raw = q.get(name)?;
    if allowed.contains(&raw) {
        Some(raw)
    } else {
        inv.add(
            name,
            "rest_not_in_enum",
            format!("{name} is not one of {}.", allowed.join(", ")),
        );
        None
    }
}

fn bool_param(q: &Query, name: &str, inv: &mut Invalid) -> Option<bool> {
    let raw = q.get(name)?;
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" | "" => Some(false),
        _ => {
            inv.add(
                name,
                "rest_invalid_type",
                format!("{name} is not of type boolean."),
            );
            None
        }
    }
}

fn date_param(q: &Query, name: &str, inv: &mut Invalid) -> Option<DateBound> {
    let raw = q.get(name)?;
    match parse_rest_date(raw) {
        Some(d) => Some(d),
        None => {
            inv.add(name, "rest_invalid_date", "Invalid date.".to_owned());
            None
        }
    }
}

/// WordPress `rest_parse_date`: `YYYY-MM-DD[Tt ]HH:MM:SS[.frac][Z|±HH[:MM]]`; a date alone is invalid.
pub(crate) fn parse_rest_date(raw: &str) -> Option<DateBound> {
    let s = raw.trim();
    if s.len() < 19 || !s.is_char_boundary(19) {
        return None;
    }
    let (dt, mut rest) = s.split_at(19);
    let b = dt.as_bytes();
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let date = NaiveDate::parse_from_str(&dt[..10], "%Y-%m-%d").ok()?;
    if !dt[11..].bytes().enumerate().all(|(i, c)| {
        if i == 2 || i == 5 {
            c == b':'
        } else {
            c.is_ascii_digit()
        }
    }) {
        return None;
    }
    let time = NaiveTime::parse_from_str(&dt[11..], "%H:%M:%S").ok()?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" => None,
        "Z" | "z" => FixedOffset::east_opt(0),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let body = &rest[1..];
            let (h, m) = match body.len() {
                2 => (body, "00"),
                5 if body.as_bytes()[2] == b':' => (&body[..2], &body[3..]),
                _ => return None,
            };
            if !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
                return None;
            }
            let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
            Some(FixedOffset::east_opt(secs)?)
        }
    };
    Some(DateBound {
        naive: NaiveDateTime::new(date, time),
        offset,
    })
}

/// Validate the collection parameters WordPress/WooCommerce register for `kind`; unknown parameters
/// are ignored (as WordPress does).
pub(crate) fn parse_list_params(kind: Collection, q: &Query) -> Result<ListParams, WpError> {
    let mut inv = Invalid::default();

    let page = match int_param(q, "page", &mut inv) {
        Some(n) if n < 1 => {
            inv.add(
                "page",
                "rest_out_of_bounds",
                "page must be greater than or equal to 1".to_owned(),
            );
            1
        }
        Some(n) => n as u64,
        None => 1,
    };
    let per_page = match int_param(q, "per_page", &mut inv) {
        Some(n) if !(1..=100).contains(&n) => {
            inv.add(
                "per_page",
                "rest_out_of_bounds",
                "per_page must be between 1 (inclusive) and 100 (inclusive)".to_owned(),
            );
            10
        }
        Some(n) => n as u64,
        None => 10,
    };
    // `offset` is sanitised with absint.
    let offset = int_param(q, "offset", &mut inv).map(i64::unsigned_abs);

    let default_orderby = if kind == Collection::Customers {
        "name"
    } else {
        "date"
    };
    let orderby = enum_param(q, "orderby", kind.orderby_values(), &mut inv)
        .unwrap_or(default_orderby)
        .to_owned();
    let default_desc = kind != Collection::Customers;
    let desc = enum_param(q, "order", &["asc", "desc"], &mut inv)
        .map(|o| o == "desc")
        .unwrap_or(default_desc);
    let include = int_list(q, "include", &mut inv);
    let exclude = int_list(q, "exclude", &mut inv);

    let (mut after, mut before, mut modified_after, mut modified_before) = (None, None, None, None);
    let mut dates_are_gmt = false;
    if kind.has_date_filters() {
        after = date_param(q, "after", &mut inv);
        before = date_param(q, "before", &mut inv);
        modified_after = date_param(q, "modified_after", &mut inv);
        modified_before = date_param(q, "modified_before", &mut inv);
        dates_are_gmt = bool_param(q, "dates_are_gmt", &mut inv).unwrap_or(false);
    }

    let mut status = Vec::new();
    let mut role = "customer".to_owned();
    let (mut email, mut code, mut sku, mut product_type) = (None, None, None, None);
    let (mut customer, mut product) = (None, None);
    let mut parent = Vec::new();
    match kind {
        Collection::Orders => {
            if let Some(list) = q.list("status") {
                for (i, s) in list.iter().enumerate() {
                    if ORDER_STATUSES.contains(&s.as_str()) {
                        status.push(s.clone());
                    } else {
                        inv.add(
                            "status",
                            "rest_not_in_enum",
                            format!("status[{i}] is not one of {}.", ORDER_STATUSES.join(", ")),
                        );
                    }
                }
            }
            customer = int_param(q, "customer", &mut inv).map(i64::unsigned_abs);
            product = int_param(q, "product", &mut inv).map(i64::unsigned_abs);
            parent = int_list(q, "parent", &mut inv);
        }
        Collection::Products => {
            if let Some(s) = enum_param(q, "status", PRODUCT_STATUSES, &mut inv) {
                status.push(s.to_owned());
            }
            product_type = enum_param(q, "type", PRODUCT_TYPES, &mut inv).map(str::to_owned);
            sku = q.get("sku").map(str::to_owned);
        }
        Collection::Coupons => code = q.get("code").map(str::to_owned),
        Collection::Customers => {
            if let Some(r) = enum_param(q, "role", ROLES, &mut inv) {
                role = r.to_owned();
            }
            email = q.get("email").map(str::to_owned);
        }
        Collection::Refunds => parent = int_list(q, "parent", &mut inv),
    }
    let fields = q.get("_fields").map(|f| {
        f.split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    });

    if let Some(err) = inv.into_error() {
        return Err(err);
    }
    Ok(ListParams {
        page,
        per_page,
        offset,
        orderby,
        desc,
        include,
        exclude,
        after,
        before,
        modified_after,
        modified_before,
        dates_are_gmt,
        status,
        role,
        email,
        code,
        sku,
        product_type,
        customer,
        product,
        parent,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_dates() {
        assert!(parse_rest_date("2025-03-01T00:00:00").is_some());
        assert!(parse_rest_date("2025-03-01 00:00:00").is_some());
        assert!(parse_rest_date("2025-03-01T00:00:00.123Z").is_some());
        let d = parse_rest_date("2025-03-01T10:00:00+02:00").unwrap();
        assert_eq!(
            d.in_frame(true, TimeDelta::hours(-5)).to_string(),
            "2025-03-01 08:00:00"
        );
        assert_eq!(
            d.in_frame(false, TimeDelta::hours(-5)).to_string(),
            "2025-03-01 03:00:00"
        );
        assert!(parse_rest_date("2025-03-01").is_none());
        assert!(parse_rest_date("yesterday").is_none());
        assert!(parse_rest_date("2025-13-01T00:00:00").is_none());
    }

    #[test]
    fn invalid_params_are_collected() {
        let q = Query::parse(Some("per_page=101&page=0&orderby=price&after=nope"));
        let err = parse_list_params(Collection::Orders, &q).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(
            err.message,
            "Invalid parameter(s): page, per_page, orderby, after"
        );
        let body = err.body();
        assert_eq!(
            body["data"]["params"]["per_page"],
            "per_page must be between 1 (inclusive) and 100 (inclusive)"
        );
        assert_eq!(
            body["data"]["details"]["after"]["code"],
            "rest_invalid_date"
        );
    }

    #[test]
    fn list_forms() {
        let q = Query::parse(Some(
            "include=3,4&include[]=5&status[]=completed&status[]=processing",
        ));
        assert_eq!(q.list("include").unwrap(), vec!["5", "3", "4"]);
        let p = parse_list_params(Collection::Orders, &q).unwrap();
        assert_eq!(p.include, vec![5, 3, 4]);
        assert_eq!(p.status, vec!["completed", "processing"]);
        // Customers ignore date filters entirely, even malformed ones.
        let q = Query::parse(Some("after=garbage&role=all"));
        let p = parse_list_params(Collection::Customers, &q).unwrap();
        assert_eq!(p.role, "all");
        assert!(!p.desc);
        assert_eq!(p.orderby, "name");
    }
}
