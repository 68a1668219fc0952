//! Deterministic generation of the simulated WooCommerce store.
//!
//! Everything is derived from the seed through [`SplitMix64`] sub-streams; no clock, no system
//! randomness, no hash-map iteration order. Records are built as `serde_json::Value`s in the exact shape
//! (and key order) the REST API serves them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value};

use crate::rendered::Rendered;
use crate::rng::SplitMix64;

mod people;
mod plan;
mod prices;
mod render;
mod vocabulary;

use prices::*;
use vocabulary::*;

/// The canonical site URL the simulated store believes it lives at. It appears in `_links`,
/// `permalink`, `payment_url` and attribution landing pages, so that the generated records do not
/// depend on the port the server happens to bind (like a store behind a proxy). Paging `Link` headers
/// use the address the client actually requested.
pub const SITE_URL: &str = "https://shop.sandbox.test";

/// Days of history before `end` that orders are spread over.
pub const WINDOW_DAYS: i64 = 180;

/// The store's fixed UTC offset in hours (site timezone `UTC-5`).
pub const UTC_OFFSET_HOURS: i32 = -5;

/// The simulated WooCommerce store: credentials and every record, exactly as the API serves them.
///
/// Records are sorted by ascending `id`. Dates follow WooCommerce: `date_created` is site-local time,
/// `date_created_gmt` UTC, both `YYYY-MM-DDTHH:MM:SS` without a zone suffix; money is a string with
/// 2 decimals (`line_items[].price` is a JSON number, `refunds[].total` a negative string).
///
/// Each record is held as its JSON text, which the routes serve as it is (or, with `_fields`, parse
/// for the page): as `serde_json::Value`s a scale-10 store took ≈ 135 MB. The collections below are
/// the same records as values, rendered from that text when first read (by tests).
pub struct WooStore {
    /// The canonical site URL used inside records ([`SITE_URL`]).
    pub site_url: String,
    /// REST API consumer key (`ck_…`), read permission.
    pub consumer_key: String,
    /// REST API consumer secret (`cs_…`).
    pub consumer_secret: String,
    /// The site's fixed offset from UTC in hours (`date_created = date_created_gmt + offset`).
    pub utc_offset_hours: i32,
    /// `GET /orders` records (guest orders have `customer_id` 0 and the email only in `billing`).
    pub orders: Rendered,
    /// `GET /customers?role=all` records: every WordPress user, including one administrator, one shop
    /// manager and a few subscribers; `role == "customer"` are the store's customers.
    pub customers: Rendered,
    /// `GET /products` records.
    pub products: Rendered,
    /// `GET /coupons` records.
    pub coupons: Rendered,
    /// `GET /refunds` records (the WC ≥ 9.0 global shape, with `parent_id` = the order id; the
    /// per-order endpoint serves the same objects without `parent_id`).
    pub refunds: Rendered,
    /// The records' JSON text, as served.
    texts: Arc<Texts>,
    /// Each order's buyer email ([`WooStore::order_email`]), in id order.
    order_emails: Vec<String>,
}

/// Every record's compact JSON text, by collection, in id order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Texts {
    pub(crate) orders: Vec<Box<str>>,
    pub(crate) customers: Vec<Box<str>>,
    pub(crate) products: Vec<Box<str>>,
    pub(crate) coupons: Vec<Box<str>>,
    pub(crate) refunds: Vec<Box<str>>,
}

impl Clone for WooStore {
    fn clone(&self) -> Self {
        WooStore {
            site_url: self.site_url.clone(),
            consumer_key: self.consumer_key.clone(),
            consumer_secret: self.consumer_secret.clone(),
            utc_offset_hours: self.utc_offset_hours,
            orders: self.orders.share(),
            customers: self.customers.share(),
            products: self.products.share(),
            coupons: self.coupons.share(),
            refunds: self.refunds.share(),
            texts: self.texts.clone(),
            order_emails: self.order_emails.clone(),
        }
    }
}

impl PartialEq for WooStore {
    /// Same credentials and the same bytes served (without rendering the records as values).
    fn eq(&self, other: &Self) -> bool {
        self.site_url == other.site_url
            && self.consumer_key == other.consumer_key
            && self.consumer_secret == other.consumer_secret
            && self.utc_offset_hours == other.utc_offset_hours
            && self.texts == other.texts
    }
}

/// One collection of `texts` as values, rendered when first read.
fn rendered(texts: &Arc<Texts>, of: fn(&Texts) -> &Vec<Box<str>>) -> Rendered {
    let texts = texts.clone();
    Rendered::new(of(&texts).len(), move || {
        of(&texts)
            .iter()
            .map(|t| serde_json::from_str(t).expect("the store's own JSON"))
            .collect()
    })
}

impl std::fmt::Debug for WooStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WooStore")
            .field("site_url", &self.site_url)
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"<redacted>")
            .field("utc_offset_hours", &self.utc_offset_hours)
            .field("orders", &self.orders.len())
            .field("customers", &self.customers.len())
            .field("products", &self.products.len())
            .field("coupons", &self.coupons.len())
            .field("refunds", &self.refunds.len())
            .finish()
    }
}

impl WooStore {
    /// Generate the store. Deterministic: the same `(seed, scale, end)` always gives byte-identical
    /// records. `scale` 0 is treated as 1; sub-second precision of `end` is ignored.
    ///
    /// At scale 1: 300 orders over the 180 days before `end`, 8 % of them (24) with one refund (a
    /// third of those full, status `refunded`), about a third guest orders; 120 customers (plus 1
    /// administrator, 1 shop manager and 4 subscribers), 25 products and 5 coupons. Orders, customers,
    /// subscribers, products and coupons scale linearly (staff stay 2).
    pub fn generate(seed: u64, scale: u32, end: DateTime<Utc>) -> WooStore {
        Generator::new(seed, scale.max(1), end, None).run()
    }

    /// A store with exactly `orders` orders, its customers, products and coupons sized like the
    /// scale that holds them (`ceil(orders / 300)`), so that a benchmark gets the store size it asks
    /// for without every other platform growing with it. Deterministic like [`generate`](Self::generate).
    pub fn generate_with_orders(seed: u64, orders: usize, end: DateTime<Utc>) -> WooStore {
        let scale = u32::try_from(orders.div_ceil(300))
            .unwrap_or(u32::MAX)
            .max(1);
        Generator::new(seed, scale, end, Some(orders)).run()
    }

    /// The order with this id.
    pub fn order(&self, id: u64) -> Option<&Value> {
        find_by_id(&self.orders, id)
    }

    /// The refunds of one order (global shape, with `parent_id`).
    pub fn refunds_of(&self, order_id: u64) -> impl Iterator<Item = &Value> {
        self.refunds
            .iter()
            .filter(move |r| r["parent_id"].as_u64() == Some(order_id))
    }

    /// The identity key the journey model uses for a person: the email trimmed and lower-cased.
    pub fn normalize_email(email: &str) -> String {
        email.trim().to_lowercase()
    }

    /// The email an order belongs to (its `billing.email`), normalised.
    pub fn order_email(order: &Value) -> String {
        Self::normalize_email(order["billing"]["email"].as_str().unwrap_or(""))
    }

    /// [`WooStore::order_email`] of every order, in id order, without rendering the orders.
    pub fn order_emails(&self) -> &[String] {
        &self.order_emails
    }

    /// The records' JSON text, as the routes serve it.
    pub(crate) fn texts(&self) -> &Texts {
        &self.texts
    }

    fn from_values(
        site_url: String,
        consumer_key: String,
        consumer_secret: String,
        mut lists: [Vec<(u64, Box<str>)>; 5],
        mut order_emails: Vec<(u64, String)>,
    ) -> WooStore {
        for list in &mut lists {
            list.sort_by_key(|(id, _)| *id);
        }
        order_emails.sort_by_key(|(id, _)| *id);
        let [orders, customers, products, coupons, refunds] =
            lists.map(|l| l.into_iter().map(|(_, t)| t).collect::<Vec<_>>());
        let texts = Arc::new(Texts {
            orders,
            customers,
            products,
            coupons,
            refunds,
        });
        WooStore {
            site_url,
            consumer_key,
            consumer_secret,
            utc_offset_hours: UTC_OFFSET_HOURS,
            orders: rendered(&texts, |t| &t.orders),
            customers: rendered(&texts, |t| &t.customers),
            products: rendered(&texts, |t| &t.products),
            coupons: rendered(&texts, |t| &t.coupons),
            refunds: rendered(&texts, |t| &t.refunds),
            texts,
            order_emails: order_emails.into_iter().map(|(_, e)| e).collect(),
        }
    }
}

/// A record's id and its JSON text.
fn text_of(value: &Value) -> (u64, Box<str>) {
    (
        value["id"].as_u64().unwrap_or(0),
        value.to_string().into_boxed_str(),
    )
}

fn find_by_id(records: &[Value], id: u64) -> Option<&Value> {
    records
        .binary_search_by_key(&id, |r| r["id"].as_u64().unwrap_or(0))
        .ok()
        .map(|i| &records[i])
}

// ---------------------------------------------------------------------------------------------------
// Plans (the structure of the store before it is rendered as JSON)
// ---------------------------------------------------------------------------------------------------

/// Times are UTC, whole seconds.
type Ts = NaiveDateTime;

#[derive(Debug, Clone)]
struct ProductPlan {
    name: String,
    slug: String,
    sku: String,
    category: usize,
    regular: Decimal,
    sale: Option<Decimal>,
    created: Ts,
    modified: Ts,
    id: u64,
    image_id: u64,
    total_sales: u64,
    popularity: u32,
}

impl ProductPlan {
    fn price(&self) -> Decimal {
        self.sale.unwrap_or(self.regular)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CouponKind {
    Percent,
    FixedCart,
    FreeShipping,
}

#[derive(Debug, Clone)]
struct CouponPlan {
    code: String,
    kind: CouponKind,
    amount: Decimal,
    minimum: Decimal,
    description: &'static str,
    first_order_only: bool,
    created: Ts,
    modified: Ts,
    /// Orders may use it until this time.
    active_until: Ts,
    id: u64,
    usage_count: u64,
    used_by: Vec<String>,
}

#[derive(Debug, Clone)]
struct Person {
    first: String,
    last: String,
    /// As stored (may have capitals; account emails never have surrounding whitespace).
    email: String,
    phone: String,
    street: String,
    city: usize,
    company: String,
}

#[derive(Debug, Clone)]
struct UserPlan {
    person: Person,
    role: &'static str,
    username: String,
    registered: Ts,
    /// `Some` when the account was created at checkout of this order (index into orders).
    registered_at_order: Option<usize>,
    id: u64,
    orders: Vec<usize>,
    avatar: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buyer {
    /// Index into the users list.
    Customer(usize),
    /// Index into the guest persons list.
    Guest(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Processing,
    OnHold,
    Completed,
    Cancelled,
    Refunded,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::OnHold => "on-hold",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
            Status::Failed => "failed",
        }
    }

    /// Statuses for which WooCommerce counts the coupon use and the product sales.
    fn counts_as_sale(self) -> bool {
        matches!(
            self,
            Status::Processing | Status::Completed | Status::OnHold | Status::Refunded
        )
    }
}

#[derive(Debug, Clone)]
enum Source {
    None,
    Admin,
    Typein,
    Organic {
        engine: &'static str,
        referrer: &'static str,
    },
    Referral {
        host: &'static str,
        referrer: &'static str,
    },
    Utm {
        source: &'static str,
        medium: &'static str,
        campaign: String,
        content: Option<&'static str>,
        term: Option<&'static str>,
        utm_id: Option<String>,
        referrer: Option<&'static str>,
    },
}

#[derive(Debug, Clone)]
struct Session {
    landing_path: String,
    start: Ts,
    pages: u32,
    count: u32,
    ua: (&'static str, &'static str),
}

#[derive(Debug, Clone, Copy)]
enum RefundKind {
    Full,
    /// One unit of this line.
    OneUnit(usize),
    /// A goodwill amount: this percentage of the order total, no line items.
    Goodwill(u32),
}

#[derive(Debug, Clone)]
struct RefundPlan {
    created: Ts,
    kind: RefundKind,
    reason: &'static str,
    refunded_by: u64,
    id: u64,
}

#[derive(Debug, Clone)]
struct OrderPlan {
    created: Ts,
    buyer: Buyer,
    billing_email: String,
    lines: Vec<(usize, u32)>,
    coupon: Option<usize>,
    source: Source,
    session: Session,
    status: Status,
    payment: &'static str,
    paid: Option<Ts>,
    completed: Option<Ts>,
    modified: Ts,
    refund: Option<RefundPlan>,
    express: bool,
    note: &'static str,
    id: u64,
}

/// An order's money, computed once.
#[derive(Debug, Clone)]
struct PricedLine {
    product: usize,
    qty: u32,
    subtotal: Decimal,
    subtotal_tax: Decimal,
    total: Decimal,
    total_tax: Decimal,
}

#[derive(Debug, Clone)]
struct Priced {
    lines: Vec<PricedLine>,
    discount_total: Decimal,
    discount_tax: Decimal,
    shipping_total: Decimal,
    shipping_tax: Decimal,
    shipping_method: (&'static str, &'static str, &'static str),
    cart_tax: Decimal,
    total_tax: Decimal,
    total: Decimal,
    rate: Decimal,
}

// ---------------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------------

struct Generator {
    rng: SplitMix64,
    scale: u32,
    /// Orders to generate instead of `300 × scale`.
    orders: Option<usize>,
    end: Ts,
    start: Ts,
    offset: TimeDelta,
    site: String,
    order_item_id: u64,
    post_meta_id: u64,
    user_meta_id: u64,
    used_emails: BTreeSet<String>,
    used_usernames: BTreeSet<String>,
}

impl Generator {
    fn new(seed: u64, scale: u32, end: DateTime<Utc>, orders: Option<usize>) -> Self {
        let end = end.naive_utc();
        let end = end - TimeDelta::nanoseconds(i64::from(end.and_utc().timestamp_subsec_nanos()));
        Self {
            rng: SplitMix64::new(seed ^ 0x6772_6F77_7468_666C), // "growthfl"
            scale,
            orders,
            end,
            start: end - TimeDelta::days(WINDOW_DAYS),
            offset: TimeDelta::hours(i64::from(UTC_OFFSET_HOURS)),
            site: SITE_URL.to_owned(),
            order_item_id: 0,
            post_meta_id: 0,
            user_meta_id: 0,
            used_emails: BTreeSet::new(),
            used_usernames: BTreeSet::new(),
        }
    }

    fn local(&self, t: Ts) -> String {
        (t + self.offset).format(WC_FORMAT).to_string()
    }

    fn gmt(t: Ts) -> String {
        t.format(WC_FORMAT).to_string()
    }

    fn next_item_id(&mut self) -> u64 {
        self.order_item_id += 1 + self.rng.below(2);
        self.order_item_id
    }

    fn next_post_meta(&mut self) -> u64 {
        self.post_meta_id += 1 + self.rng.below(3);
        self.post_meta_id
    }

    fn next_user_meta(&mut self) -> u64 {
        self.user_meta_id += 1 + self.rng.below(4);
        self.user_meta_id
    }

    /// A time uniformly within `[a, b]` (whole seconds).
    fn between(rng: &mut SplitMix64, a: Ts, b: Ts) -> Ts {
        let span = (b - a).num_seconds().max(0);
        a + TimeDelta::seconds(rng.range(0, span))
    }

    fn run(mut self) -> WooStore {
        let mut cred = self.rng.fork(1);
        let consumer_key = format!("ck_{}", cred.hex(40));
        let consumer_secret = format!("cs_{}", cred.hex(40));
        self.order_item_id = 40_000 + cred.below(5_000);
        self.post_meta_id = 900_000 + cred.below(50_000);
        self.user_meta_id = 50_000 + cred.below(5_000);

        let mut products = self.plan_products();
        let mut coupons = self.plan_coupons();
        let (mut users, guests, mut orders) = self.plan_people_and_orders(&products, &coupons);
        self.assign_post_ids(&mut products, &mut coupons, &mut orders);
        self.assign_user_ids(&mut users, &orders);

        let priced: Vec<Priced> = orders
            .iter()
            .map(|o| price_order(o, &products, &coupons, &users, &guests))
            .collect();

        // Derived counters.
        for (o, p) in orders.iter().zip(&priced) {
            if !o.status.counts_as_sale() {
                continue;
            }
            for l in &p.lines {
                products[l.product].total_sales += u64::from(l.qty);
            }
            if let Some(c) = o.coupon {
                coupons[c].usage_count += 1;
                let who = match o.buyer {
                    Buyer::Customer(u) => users[u].id.to_string(),
                    Buyer::Guest(_) => WooStore::normalize_email(&o.billing_email),
                };
                coupons[c].used_by.push(who);
            }
        }

        // Each record becomes its JSON text as soon as it is made: the store never holds them all as
        // values.
        let product_text: Vec<_> = products
            .iter()
            .map(|p| text_of(&self.product_json(p)))
            .collect();
        let coupon_text: Vec<_> = coupons
            .iter()
            .map(|c| text_of(&self.coupon_json(c)))
            .collect();
        let mut order_text = Vec::with_capacity(orders.len());
        let mut order_emails = Vec::with_capacity(orders.len());
        let mut refund_text = Vec::new();
        for (o, p) in orders.iter().zip(&priced) {
            let (order, refund) = self.order_json(o, p, &products, &coupons, &users, &guests);
            let (id, text) = text_of(&order);
            order_emails.push((id, WooStore::order_email(&order)));
            order_text.push((id, text));
            refund_text.extend(refund.as_ref().map(text_of));
        }
        let customer_text: Vec<_> = users
            .iter()
            .map(|u| text_of(&self.customer_json(u, &orders, &priced)))
            .collect();

        WooStore::from_values(
            self.site.clone(),
            consumer_key,
            consumer_secret,
            [
                order_text,
                customer_text,
                product_text,
                coupon_text,
                refund_text,
            ],
            order_emails,
        )
    }
}

/// Per-order refunds view of a global refund record: the same object without `parent_id`.
pub(crate) fn per_order_refund(refund: &Value) -> Value {
    let mut r = refund.clone();
    if let Some(m) = r.as_object_mut() {
        m.shift_remove("parent_id");
    }
    r
}

/// Group global refunds (their JSON text) by order id, in id order, as the per-order endpoint serves
/// them (without `parent_id`).
pub(crate) fn refunds_by_order(refunds: &[Box<str>]) -> BTreeMap<u64, Vec<Box<str>>> {
    let mut out: BTreeMap<u64, Vec<Box<str>>> = BTreeMap::new();
    for text in refunds {
        let r: Value = serde_json::from_str(text).expect("the store's own JSON");
        if let Some(parent) = r["parent_id"].as_u64() {
            out.entry(parent)
                .or_default()
                .push(per_order_refund(&r).to_string().into_boxed_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn money_formats_with_two_decimals() {
        assert_eq!(money(Decimal::new(24, 0)), "24.00");
        assert_eq!(money(Decimal::new(12345, 3)), "12.35");
        assert_eq!(money(Decimal::new(-1836, 2)), "-18.36");
        assert_eq!(tax_str(Decimal::new(960, 2)), "9.6");
        assert_eq!(number(Decimal::new(300, 2)), json!(3));
        assert_eq!(number(Decimal::new(2040, 2)), json!(20.4));
    }

    #[test]
    fn capitalisation_and_slugs() {
        assert_eq!(capitalised("jane.doe@example.com"), "Jane.Doe@Example.com");
        assert_eq!(slugify("Wool Socks 3-Pack"), "wool-socks-3-pack");
    }

    #[test]
    fn scale_two_doubles_the_store() {
        let end = Utc.with_ymd_and_hms(2025, 6, 30, 23, 59, 59).unwrap();
        let s = WooStore::generate(7, 2, end);
        assert_eq!(s.orders.len(), 600);
        assert_eq!(s.products.len(), 50);
        assert_eq!(s.coupons.len(), 10);
        let ids: BTreeSet<u64> = s
            .products
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), 50);
    }

    #[test]
    fn an_exact_order_count_sizes_the_rest_like_its_scale() {
        let end = Utc.with_ymd_and_hms(2025, 6, 30, 23, 59, 59).unwrap();
        let s = WooStore::generate_with_orders(7, 450, end);
        assert_eq!(s.orders.len(), 450);
        // ceil(450 / 300) = scale 2.
        assert_eq!(s.products.len(), 50);
        assert_eq!(s.coupons.len(), 10);
        assert_eq!(WooStore::generate_with_orders(7, 450, end), s);
    }
}
