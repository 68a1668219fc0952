//! Deterministic generation of the simulated WooCommerce store.
//!
//! Everything is derived from the seed through [`SplitMix64`] sub-streams; no clock, no system
//! randomness, no hash-map iteration order. Records are built as `serde_json::Value`s in the exact shape
//! (and key order) the REST API serves them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value};

use crate::rng::SplitMix64;

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
/// Records are `serde_json::Value`s sorted by ascending `id`. Dates follow WooCommerce: `date_created`
/// is site-local time, `date_created_gmt` UTC, both `YYYY-MM-DDTHH:MM:SS` without a zone suffix; money
/// is a string with 2 decimals (`line_items[].price` is a JSON number, `refunds[].total` a negative
/// string).
#[derive(Clone, PartialEq)]
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
    pub orders: Vec<Value>,
    /// `GET /customers?role=all` records: every WordPress user, including one administrator, one shop
    /// manager and a few subscribers; `role == "customer"` are the store's customers.
    pub customers: Vec<Value>,
    /// `GET /products` records.
    pub products: Vec<Value>,
    /// `GET /coupons` records.
    pub coupons: Vec<Value>,
    /// `GET /refunds` records (the WC ≥ 9.0 global shape, with `parent_id` = the order id; the
    /// per-order endpoint serves the same objects without `parent_id`).
    pub refunds: Vec<Value>,
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
        Generator::new(seed, scale.max(1), end).run()
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
}

fn find_by_id(records: &[Value], id: u64) -> Option<&Value> {
    records
        .binary_search_by_key(&id, |r| r["id"].as_u64().unwrap_or(0))
        .ok()
        .map(|i| &records[i])
}

// ---------------------------------------------------------------------------------------------------
// Static tables
// ---------------------------------------------------------------------------------------------------

const FIRST_NAMES: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mateo",
    "Amelia",
    "Benjamin",
    "Harper",
    "Henry",
    "Evelyn",
    "Theodore",
    "Abigail",
    "Levi",
    "Emily",
    "Sebastian",
    "Ella",
    "Jack",
    "Elizabeth",
    "Owen",
    "Sofia",
    "Samuel",
    "Avery",
    "Wyatt",
    "Scarlett",
    "Julian",
    "Grace",
    "Leo",
    "Chloe",
    "Ezra",
    "Priya",
    "Daniel",
    "Layla",
    "Aiden",
    "Zoe",
    "Nora",
    "Hiroshi",
    "Lily",
    "Carlos",
    "Hannah",
    "Ananya",
    "Gabriel",
    "Aaliyah",
    "David",
    "Leah",
    "Omar",
    "Maya",
    "Isaac",
    "Stella",
    "Luis",
    "Aurora",
    "Wei",
    "Naomi",
    "Kwame",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Nair",
    "Okafor",
    "Tanaka",
    "Kowalski",
    "Novak",
    "Silva",
    "Fischer",
    "Rossi",
    "Haddad",
    "Chen",
];

const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "mail.example.com",
    "inbox.example.net",
];

const STREETS: &[&str] = &[
    "Maple Ave",
    "Oak St",
    "Cedar Ln",
    "Pine St",
    "Elm St",
    "Washington Ave",
    "Lake Dr",
    "Hillcrest Rd",
    "Park Pl",
    "River Rd",
    "Sunset Blvd",
    "Main St",
    "2nd Ave",
    "Highland Ave",
];

/// (city, state, postcode, sales tax rate in percent as hundredths, tax rate id)
const CITIES: &[(&str, &str, &str, i64, u64)] = &[
    ("New York", "NY", "10001", 8875, 1),
    ("Brooklyn", "NY", "11201", 8875, 1),
    ("Los Angeles", "CA", "90012", 9500, 2),
    ("San Francisco", "CA", "94103", 8625, 3),
    ("Austin", "TX", "78701", 8250, 4),
    ("Chicago", "IL", "60601", 10250, 5),
    ("Seattle", "WA", "98101", 10350, 6),
    ("Portland", "OR", "97205", 0, 0),
    ("Denver", "CO", "80202", 8810, 7),
    ("Boston", "MA", "02108", 6250, 8),
    ("Miami", "FL", "33131", 7000, 9),
    ("Atlanta", "GA", "30303", 8900, 10),
    ("Phoenix", "AZ", "85004", 8600, 11),
    ("Minneapolis", "MN", "55401", 9025, 12),
    ("Wilmington", "DE", "19801", 0, 0),
    ("Philadelphia", "PA", "19103", 8000, 13),
];

/// (category id, name, slug)
const CATEGORIES: &[(u64, &str, &str)] = &[
    (15, "Tops", "tops"),
    (16, "Bags", "bags"),
    (17, "Accessories", "accessories"),
    (18, "Home", "home"),
    (19, "Footwear", "footwear"),
    (20, "Outdoor", "outdoor"),
];

/// (name, category index, regular price in cents, sale price in cents or 0)
const CATALOG: &[(&str, usize, i64, i64)] = &[
    ("Organic Cotton Tee", 0, 2400, 0),
    ("Heavyweight Pocket Tee", 0, 3200, 0),
    ("Linen Button Shirt", 0, 5800, 4900),
    ("Merino Crew Sweater", 0, 8900, 0),
    ("Fleece Hoodie", 0, 6400, 0),
    ("Canvas Tote", 1, 1800, 0),
    ("Waxed Backpack", 1, 12000, 0),
    ("Crossbody Sling", 1, 4500, 3900),
    ("Merino Beanie", 2, 2200, 0),
    ("Wool Scarf", 2, 3800, 0),
    ("Leather Card Wallet", 2, 3500, 0),
    ("Enamel Pin Set", 2, 1200, 0),
    ("Canvas Cap", 2, 2600, 0),
    ("Ceramic Mug", 3, 1600, 0),
    ("Stoneware Planter", 3, 2900, 0),
    ("Linen Napkin Set", 3, 3400, 2900),
    ("Soy Candle", 3, 2150, 0),
    ("Cotton Throw Blanket", 3, 7900, 0),
    ("Canvas Sneakers", 4, 6900, 0),
    ("Wool Socks 3-Pack", 4, 1999, 0),
    ("Suede Slippers", 4, 4900, 0),
    ("Insulated Bottle", 5, 2750, 2400),
    ("Packable Rain Jacket", 5, 9800, 0),
    ("Trail Shorts", 5, 4200, 0),
    ("Sun Hat", 5, 3100, 0),
];

const VARIANT_PREFIXES: &[&str] = &[
    "Sage", "Ink", "Sand", "Rust", "Olive", "Slate", "Cream", "Plum", "Ochre", "Indigo",
];

/// (user agent, device type)
const USER_AGENTS: &[(&str, &str)] = &[
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Mobile/15E148 Safari/604.1", "Mobile"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "Mobile"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36", "Desktop"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36", "Desktop"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", "Desktop"),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Tablet"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Desktop"),
];

const FB_IN_APP_UA: (&str, &str) = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/463.0.0.41.104;FBBV/608012345;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/18.3;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]", "Mobile");

const REFUND_REASONS: &[&str] = &[
    "Damaged in transit",
    "Wrong size",
    "Customer changed mind",
    "Item not as described",
    "Arrived late",
    "",
];

const CUSTOMER_NOTES: &[&str] = &[
    "Please leave the parcel at the front desk.",
    "It's a gift - no invoice in the box please.",
    "Ring the bell twice.",
];

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
// Helpers
// ---------------------------------------------------------------------------------------------------

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Money as WooCommerce sends it: a string with exactly 2 decimals.
fn money(d: Decimal) -> String {
    let mut r = round2(d);
    r.rescale(2);
    r.to_string()
}

/// A tax amount in a `taxes[]` entry: WooCommerce sends these unpadded (`"9.6"`).
fn tax_str(d: Decimal) -> String {
    round2(d).normalize().to_string()
}

/// A JSON number for a decimal: an integer when whole (`3`), else a float (`20.4`).
fn number(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0 {
        if let Some(i) = d.to_i64() {
            return Value::from(i);
        }
    }
    d.to_f64()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

const WC_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

fn slugify(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

fn link(href: String) -> Value {
    json!([{ "href": href }])
}

/// Email capitalised the way people type it: `Jane.Doe@Example.com`.
fn capitalised(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let mut out = String::with_capacity(email.len());
    let mut up = true;
    for ch in local.chars() {
        if up {
            out.extend(ch.to_uppercase());
        } else {
            out.push(ch);
        }
        up = matches!(ch, '.' | '_');
    }
    if !domain.is_empty() {
        out.push('@');
        let mut chars = domain.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
        }
        out.extend(chars);
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------------

struct Generator {
    rng: SplitMix64,
    scale: u32,
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
    fn new(seed: u64, scale: u32, end: DateTime<Utc>) -> Self {
        let end = end.naive_utc();
        let end = end - TimeDelta::nanoseconds(i64::from(end.and_utc().timestamp_subsec_nanos()));
        Self {
            rng: SplitMix64::new(seed ^ 0x6772_6F77_7468_666C), // "growthfl"
            scale,
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

        let product_json: Vec<Value> = products.iter().map(|p| self.product_json(p)).collect();
        let coupon_json: Vec<Value> = coupons.iter().map(|c| self.coupon_json(c)).collect();
        let mut order_json = Vec::with_capacity(orders.len());
        let mut refund_json = Vec::new();
        for (o, p) in orders.iter().zip(&priced) {
            let (order, refund) = self.order_json(o, p, &products, &coupons, &users, &guests);
            order_json.push(order);
            refund_json.extend(refund);
        }
        let customer_json: Vec<Value> = users
            .iter()
            .map(|u| self.customer_json(u, &orders, &priced))
            .collect();

        let mut store = WooStore {
            site_url: self.site.clone(),
            consumer_key,
            consumer_secret,
            utc_offset_hours: UTC_OFFSET_HOURS,
            orders: order_json,
            customers: customer_json,
            products: product_json,
            coupons: coupon_json,
            refunds: refund_json,
        };
        for list in [
            &mut store.orders,
            &mut store.customers,
            &mut store.products,
            &mut store.coupons,
            &mut store.refunds,
        ] {
            list.sort_by_key(|v| v["id"].as_u64().unwrap_or(0));
        }
        store
    }

    // ----- products & coupons -----

    fn plan_products(&mut self) -> Vec<ProductPlan> {
        let mut rng = self.rng.fork(2);
        let n = CATALOG.len() * self.scale as usize;
        let mut out = Vec::with_capacity(n);
        let mut skus = BTreeSet::new();
        for i in 0..n {
            let (base, category, regular, sale) = CATALOG[i % CATALOG.len()];
            let block = i / CATALOG.len();
            let name = if block == 0 {
                base.to_owned()
            } else {
                let prefix = VARIANT_PREFIXES[(block - 1) % VARIANT_PREFIXES.len()];
                let round = (block - 1) / VARIANT_PREFIXES.len();
                if round == 0 {
                    format!("{prefix} {base}")
                } else {
                    format!("{prefix} {base} {}", round + 1)
                }
            };
            let slug = slugify(&name);
            let initials: String = name
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter_map(|w| w.chars().next())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            let mut sku = format!("{initials}-{:03}", 100 + i);
            while !skus.insert(sku.clone()) {
                sku.push('X');
            }
            let jitter = if block == 0 {
                0
            } else {
                rng.range(-3, 6) * 100
            };
            let regular = cents((regular + jitter).max(900));
            let sale = (sale > 0).then(|| cents(sale + jitter));
            // The last 3 of each catalogue block launch inside the window; the rest already exist.
            let created = if i % CATALOG.len() >= CATALOG.len() - 3 {
                Self::between(
                    &mut rng,
                    self.start + TimeDelta::days(10),
                    self.start + TimeDelta::days(120),
                )
            } else {
                Self::between(
                    &mut rng,
                    self.start - TimeDelta::days(400),
                    self.start - TimeDelta::days(10),
                )
            };
            let modified = if rng.chance(0.3) {
                created
            } else {
                let hi = (created + TimeDelta::days(200)).min(self.end);
                let lo = (created + TimeDelta::seconds(600)).min(hi);
                Self::between(&mut rng, lo, hi)
            };
            out.push(ProductPlan {
                name,
                slug,
                sku,
                category,
                regular,
                sale,
                created,
                modified,
                id: 0,
                image_id: 0,
                total_sales: 0,
                popularity: (CATALOG.len() - i % CATALOG.len()) as u32 + 4,
            });
        }
        out
    }

    fn plan_coupons(&mut self) -> Vec<CouponPlan> {
        let mut rng = self.rng.fork(3);
        // (code, kind, amount cents, minimum cents, first order only, description, created offset days
        // from window start (negative = before), active days (0 = forever))
        #[allow(clippy::type_complexity)]
        let base: [(&str, CouponKind, i64, i64, bool, &str, i64, i64); 5] = [
            (
                "welcome10",
                CouponKind::Percent,
                1000,
                0,
                true,
                "10% off a first order (newsletter sign-up).",
                -300,
                0,
            ),
            (
                "spring15",
                CouponKind::Percent,
                1500,
                0,
                false,
                "Spring sale.",
                60,
                60,
            ),
            (
                "freeship",
                CouponKind::FreeShipping,
                0,
                0,
                false,
                "Free shipping, any order.",
                -200,
                0,
            ),
            (
                "save5",
                CouponKind::FixedCart,
                500,
                3000,
                false,
                "$5 off orders over $30.",
                -150,
                0,
            ),
            (
                "vip20",
                CouponKind::Percent,
                2000,
                0,
                false,
                "VIP customers.",
                -90,
                0,
            ),
        ];
        let mut out = Vec::new();
        for block in 0..self.scale as usize {
            for &(code, kind, amount, minimum, first_only, description, created_at, active) in &base
            {
                let code = if block == 0 {
                    code.to_owned()
                } else {
                    format!("{code}_{}", block + 1)
                };
                let created = self.start
                    + TimeDelta::days(created_at + rng.range(-5, 5))
                    + TimeDelta::seconds(rng.range(0, 86_399));
                let active_until = if active == 0 {
                    self.end
                } else {
                    (created + TimeDelta::days(active)).min(self.end)
                };
                let modified =
                    (created + TimeDelta::seconds(rng.range(0, 3 * 86_400))).min(self.end);
                out.push(CouponPlan {
                    code,
                    kind,
                    amount: cents(amount),
                    minimum: cents(minimum),
                    description,
                    first_order_only: first_only,
                    created,
                    modified,
                    active_until,
                    id: 0,
                    usage_count: 0,
                    used_by: Vec::new(),
                });
            }
        }
        out
    }

    // ----- people & orders -----

    fn new_person(&mut self, rng: &mut SplitMix64, capitalise_p: f64) -> Person {
        let first = (*rng.pick(FIRST_NAMES)).to_owned();
        let last = (*rng.pick(LAST_NAMES)).to_owned();
        let domain = *rng.pick(EMAIL_DOMAINS);
        let (f, l) = (first.to_lowercase(), last.to_lowercase());
        let local = match rng.below(4) {
            0 => format!("{f}.{l}"),
            1 => format!("{f}{l}"),
            2 => format!("{}.{l}", &f[..1]),
            _ => format!("{f}_{l}{}", rng.range(1, 99)),
        };
        let mut email = format!("{local}@{domain}");
        let mut n = 2;
        while self.used_emails.contains(&email) {
            email = format!("{local}{n}@{domain}");
            n += 1;
        }
        self.used_emails.insert(email.clone());
        if rng.chance(capitalise_p) {
            email = capitalised(&email);
        }
        let company = if rng.chance(0.08) {
            format!("{last} & Co")
        } else {
            String::new()
        };
        Person {
            first,
            last,
            email,
            phone: format!("+1 {} 555 01{:02}", rng.range(201, 989), rng.range(0, 99)),
            street: format!("{} {}", rng.range(1, 2400), rng.pick(STREETS)),
            city: rng.below(CITIES.len() as u64) as usize,
            company,
        }
    }

    fn username_for(&mut self, email: &str) -> String {
        let base: String = email
            .trim()
            .to_lowercase()
            .split('@')
            .next()
            .unwrap_or("user")
            .to_owned();
        let mut name = base.clone();
        let mut n = 2;
        while !self.used_usernames.insert(name.clone()) {
            name = format!("{base}{n}");
            n += 1;
        }
        name
    }

    #[allow(clippy::type_complexity)]
    fn plan_people_and_orders(
        &mut self,
        products: &[ProductPlan],
        coupons: &[CouponPlan],
    ) -> (Vec<UserPlan>, Vec<Person>, Vec<OrderPlan>) {
        let mut rng = self.rng.fork(4);
        let scale = self.scale as usize;
        let n_orders = 300 * scale;

        // Staff and subscribers first (they never order).
        let mut users: Vec<UserPlan> = Vec::new();
        let staff: [(&str, &str, &str, &str, i64); 2] = [
            (
                "Morgan",
                "Reyes",
                "admin@shop.sandbox.test",
                "administrator",
                800,
            ),
            (
                "Sam",
                "Okoro",
                "sam.okoro@shop.sandbox.test",
                "shop_manager",
                700,
            ),
        ];
        for (first, last, email, role, days_before) in staff {
            self.used_emails.insert(email.to_owned());
            let person = Person {
                first: first.to_owned(),
                last: last.to_owned(),
                email: email.to_owned(),
                phone: String::new(),
                street: String::new(),
                city: 0,
                company: String::new(),
            };
            let username = self.username_for(email);
            users.push(UserPlan {
                person,
                role,
                username,
                registered: self.start - TimeDelta::days(days_before),
                registered_at_order: None,
                id: 0,
                orders: Vec::new(),
                avatar: rng.hex(32),
            });
        }
        for _ in 0..4 * scale {
            let person = self.new_person(&mut rng, 0.05);
            let username = self.username_for(&person.email);
            let registered = Self::between(&mut rng, self.start - TimeDelta::days(300), self.end);
            users.push(UserPlan {
                person,
                role: "subscriber",
                username,
                registered,
                registered_at_order: None,
                id: 0,
                orders: Vec::new(),
                avatar: rng.hex(32),
            });
        }

        // Customers and how many orders each places (repeat purchases).
        let first_customer = users.len();
        let mut slots: Vec<Buyer> = Vec::new();
        for i in 0..120 * scale {
            let person = self.new_person(&mut rng, 0.08);
            let username = self.username_for(&person.email);
            users.push(UserPlan {
                person,
                role: "customer",
                username,
                registered: self.start,
                registered_at_order: None,
                id: 0,
                orders: Vec::new(),
                avatar: rng.hex(32),
            });
            const COUNTS: [u32; 9] = [0, 1, 2, 3, 4, 5, 6, 8, 12];
            const WEIGHTS: [u32; 9] = [200, 350, 200, 120, 60, 30, 20, 15, 5];
            let k = COUNTS[rng.weighted(&WEIGHTS)];
            for _ in 0..k {
                slots.push(Buyer::Customer(first_customer + i));
            }
        }
        slots.truncate(n_orders);

        // Guests fill the rest: mostly one-off, some repeat, a few are registered customers checking
        // out without logging in.
        let mut guests: Vec<Person> = Vec::new();
        let mut guest_slots = Vec::new();
        while slots.len() + guest_slots.len() < n_orders {
            let r = rng.unit();
            if r < 0.12 && !guests.is_empty() {
                let g = rng.below(guests.len() as u64) as usize;
                guest_slots.push(Buyer::Guest(g));
            } else if r < 0.16 {
                // Same person as a registered customer, email typed differently.
                let u = first_customer + rng.below((users.len() - first_customer) as u64) as usize;
                let mut p = users[u].person.clone();
                p.email = if p.email.chars().any(|c| c.is_ascii_uppercase()) {
                    p.email.to_lowercase()
                } else {
                    capitalised(&p.email)
                };
                guests.push(p);
                guest_slots.push(Buyer::Guest(guests.len() - 1));
            } else {
                let mut p = self.new_person(&mut rng, 0.07);
                if rng.chance(0.04) {
                    p.email = format!(" {} ", p.email);
                }
                guests.push(p);
                guest_slots.push(Buyer::Guest(guests.len() - 1));
            }
        }
        slots.extend(guest_slots);
        // Fisher–Yates shuffle so repeat orders spread over the window.
        for i in (1..slots.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            slots.swap(i, j);
        }

        // Order times: a daily profile (weekends and a sale fortnight are busier), local-hour profile.
        let days = WINDOW_DAYS as usize;
        let sale_start = 75;
        let day_weights: Vec<u32> = (0..days)
            .map(|d| {
                let weekday = (self.start + TimeDelta::days(d as i64))
                    .and_utc()
                    .timestamp()
                    / 86_400;
                let weekend = matches!((weekday + 4) % 7, 0 | 6);
                let mut w = 10;
                if weekend {
                    w += 3;
                }
                if (sale_start..sale_start + 14).contains(&d) {
                    w += 12;
                }
                w
            })
            .collect();
        const HOUR_WEIGHTS: [u32; 24] = [
            2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 10, 11, 10, 9, 9, 10, 11, 13, 14, 13, 10, 7, 4,
        ];
        let local_midnight = (self.start + self.offset)
            .date()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default();
        let mut times: Vec<Ts> = Vec::with_capacity(n_orders);
        while times.len() < n_orders {
            let day = rng.weighted(&day_weights) as i64;
            let hour = rng.weighted(&HOUR_WEIGHTS) as i64;
            let local = local_midnight
                + TimeDelta::days(day + 1)
                + TimeDelta::hours(hour)
                + TimeDelta::seconds(rng.range(0, 3599));
            let t = local - self.offset;
            // The first and last local days are cut by the window; draw again outside it.
            if t > self.start && t < self.end {
                times.push(t);
            }
        }
        times.sort();

        let mut orders = Vec::with_capacity(n_orders);
        let mut bought_before: BTreeSet<usize> = BTreeSet::new();
        for (idx, (created, buyer)) in times.into_iter().zip(slots).enumerate() {
            let first_order_of_customer = match buyer {
                Buyer::Customer(u) => bought_before.insert(u),
                Buyer::Guest(_) => false,
            };
            let billing_email = match buyer {
                Buyer::Customer(u) => {
                    let e = &users[u].person.email;
                    let r = rng.unit();
                    if r < 0.06 {
                        e.to_lowercase()
                    } else if r < 0.085 {
                        capitalised(e)
                    } else {
                        e.clone()
                    }
                }
                Buyer::Guest(g) => guests[g].email.clone(),
            };
            if let Buyer::Customer(u) = buyer {
                users[u].orders.push(idx);
            }
            let order = self.plan_order(
                &mut rng,
                created,
                buyer,
                billing_email,
                first_order_of_customer,
                products,
                coupons,
            );
            orders.push(order);
        }
        self.plan_refunds(&mut rng, &mut orders);

        // Registration times: before the window, or at the first order's checkout; no orders → any time.
        for u in users.iter_mut().skip(first_customer) {
            match u.orders.first() {
                Some(&first) => {
                    let first_at = orders[first].created;
                    if rng.chance(0.45) {
                        u.registered = Self::between(
                            &mut rng,
                            self.start - TimeDelta::days(400),
                            (self.start).min(first_at - TimeDelta::minutes(30)),
                        );
                    } else {
                        u.registered = first_at - TimeDelta::seconds(rng.range(30, 600));
                        u.registered_at_order = Some(first);
                    }
                }
                None => {
                    u.registered =
                        Self::between(&mut rng, self.start - TimeDelta::days(400), self.end);
                }
            }
        }
        (users, guests, orders)
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_order(
        &mut self,
        rng: &mut SplitMix64,
        created: Ts,
        buyer: Buyer,
        billing_email: String,
        first_order_of_customer: bool,
        products: &[ProductPlan],
        coupons: &[CouponPlan],
    ) -> OrderPlan {
        // Lines: distinct products that exist at order time, popular ones more often.
        let available: Vec<usize> = (0..products.len())
            .filter(|&i| products[i].created < created)
            .collect();
        let n_lines = [1usize, 2, 3, 4][rng.weighted(&[55, 30, 12, 3])].min(available.len());
        let mut lines: Vec<(usize, u32)> = Vec::new();
        let weights: Vec<u32> = available.iter().map(|&i| products[i].popularity).collect();
        while lines.len() < n_lines {
            let p = available[rng.weighted(&weights)];
            if lines.iter().any(|&(q, _)| q == p) {
                continue;
            }
            let qty = [1u32, 2, 3][rng.weighted(&[75, 18, 7])];
            lines.push((p, qty));
        }
        let subtotal: Decimal = lines
            .iter()
            .map(|&(p, q)| products[p].price() * Decimal::from(q))
            .sum();

        // Coupon.
        let mut coupon = None;
        if rng.chance(0.22) {
            let eligible: Vec<usize> = (0..coupons.len())
                .filter(|&c| {
                    let cp = &coupons[c];
                    cp.created < created
                        && created <= cp.active_until
                        && (!cp.first_order_only || first_order_of_customer)
                        && subtotal >= cp.minimum
                        && (cp.kind != CouponKind::FixedCart
                            || subtotal >= cp.amount * Decimal::TWO)
                })
                .collect();
            if !eligible.is_empty() {
                coupon = Some(*rng.pick(&eligible));
            }
        }

        let (source, session) = self.plan_source(rng, created, products, &lines);

        // Status and its timeline.
        let age = self.end - created;
        let r = rng.unit();
        let mut status = if r < 0.055 {
            Status::Cancelled
        } else if r < 0.085 {
            Status::Failed
        } else if r < 0.105 {
            Status::OnHold
        } else if age < TimeDelta::days(2) && r < 0.16 {
            Status::Pending
        } else {
            Status::Processing
        };
        let payment = match status {
            Status::OnHold => "bacs",
            _ if rng.chance(0.7) => "stripe",
            _ => "ppcp-gateway",
        };
        let mut paid = None;
        let mut completed = None;
        let mut modified = created;
        match status {
            Status::Cancelled => {
                modified = if rng.chance(0.6) {
                    created + TimeDelta::minutes(60) // unpaid order cancelled - time limit reached
                } else {
                    created + TimeDelta::seconds(rng.range(3_600, 3 * 86_400))
                };
            }
            Status::Failed => modified = created + TimeDelta::seconds(rng.range(20, 240)),
            Status::OnHold | Status::Pending => {}
            _ => {
                let p = created + TimeDelta::seconds(rng.range(4, 40));
                paid = Some(p);
                modified = p + TimeDelta::seconds(rng.range(1, 5));
                let done = created + TimeDelta::seconds(rng.range(86_400, 4 * 86_400));
                if done <= self.end - TimeDelta::minutes(1) && rng.chance(0.9) {
                    status = Status::Completed;
                    completed = Some(done);
                    modified = done;
                }
            }
        }
        modified = modified.min(self.end);

        let refund = None;

        OrderPlan {
            created,
            buyer,
            billing_email,
            lines,
            coupon,
            source,
            session,
            status,
            payment,
            paid,
            completed,
            modified,
            refund,
            express: rng.chance(0.12),
            note: if rng.chance(0.05) {
                CUSTOMER_NOTES[rng.below(CUSTOMER_NOTES.len() as u64) as usize]
            } else {
                ""
            },
            id: 0,
        }
    }

    /// Refunds: 8 % of all orders (about a third of them full refunds), chosen among paid orders at
    /// least three days old.
    fn plan_refunds(&mut self, rng: &mut SplitMix64, orders: &mut [OrderPlan]) {
        let latest = self.end - TimeDelta::minutes(2);
        let mut eligible: Vec<usize> = (0..orders.len())
            .filter(|&i| {
                let o = &orders[i];
                o.paid.is_some() && self.end - o.created > TimeDelta::days(3)
            })
            .collect();
        // Fisher–Yates, then take the first ones.
        for i in (1..eligible.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            eligible.swap(i, j);
        }
        let wanted = orders.len() * 8 / 100;
        let full = wanted * 35 / 100;
        eligible.truncate(wanted);
        eligible.sort_unstable();
        for (n, i) in eligible.into_iter().enumerate() {
            let o = &mut orders[i];
            let Some(paid_at) = o.paid else { continue };
            let earliest = o.completed.unwrap_or(paid_at) + TimeDelta::minutes(10);
            if earliest > latest {
                continue;
            }
            let drawn = o.created
                + TimeDelta::days(rng.range(1, 20))
                + TimeDelta::seconds(rng.range(0, 86_399));
            let at = if drawn > latest {
                // Too late for the window: some time between the earliest moment and "now".
                Self::between(rng, earliest, latest)
            } else {
                drawn.max(earliest)
            };
            let kind = if n % 3 == 0 && n / 3 < full {
                RefundKind::Full
            } else if rng.chance(0.5) {
                RefundKind::OneUnit(rng.below(o.lines.len() as u64) as usize)
            } else {
                RefundKind::Goodwill([10u32, 15, 20, 25][rng.below(4) as usize])
            };
            if matches!(kind, RefundKind::Full) {
                o.status = Status::Refunded;
            }
            o.modified = o.modified.max(at + TimeDelta::seconds(7)).min(self.end);
            o.refund = Some(RefundPlan {
                created: at,
                kind,
                reason: REFUND_REASONS[rng.below(REFUND_REASONS.len() as u64) as usize],
                refunded_by: if rng.chance(0.7) { 2 } else { 1 },
                id: 0,
            });
        }
    }

    fn seasonal_campaign(&self, t: Ts) -> &'static str {
        use chrono::Datelike;
        match (t + self.offset).month() {
            12 | 1 | 2 => "winter_sale",
            3..=5 => "spring_sale",
            6..=8 => "summer_sale",
            _ => "fall_sale",
        }
    }

    fn plan_source(
        &mut self,
        rng: &mut SplitMix64,
        created: Ts,
        products: &[ProductPlan],
        lines: &[(usize, u32)],
    ) -> (Source, Session) {
        let in_sale = {
            let d = (created - self.start).num_days();
            (75..89).contains(&d)
        };
        let seasonal = self.seasonal_campaign(created);
        // paid social, google cpc, email, organic, referral, typein, admin, none
        let weights: [u32; 8] = if in_sale {
            [32, 12, 18, 12, 5, 12, 3, 6]
        } else {
            [22, 14, 15, 16, 7, 16, 3, 7]
        };
        let mut ua = *rng.pick(USER_AGENTS);
        let source = match rng.weighted(&weights) {
            0 => {
                let instagram = rng.chance(0.4);
                let campaign = if in_sale || rng.chance(0.3) {
                    seasonal.to_owned()
                } else {
                    (*rng.pick(&[
                        "prospecting_lookalike",
                        "retargeting_always_on",
                        "ugc_creators",
                    ]))
                    .to_owned()
                };
                if rng.chance(0.6) {
                    ua = FB_IN_APP_UA;
                }
                Source::Utm {
                    source: if instagram { "instagram" } else { "facebook" },
                    medium: if rng.chance(0.8) {
                        "paid_social"
                    } else {
                        "cpc"
                    },
                    campaign,
                    content: Some(*rng.pick(&["carousel_v2", "video_15s", "static_a", "reel_b"])),
                    term: None,
                    utm_id: Some(format!("1202{}", rng.range(10_000_000, 99_999_999))),
                    referrer: Some(if instagram {
                        "https://l.instagram.com/"
                    } else {
                        "https://l.facebook.com/"
                    }),
                }
            }
            1 => Source::Utm {
                source: "google",
                medium: "cpc",
                campaign: if in_sale && rng.chance(0.5) {
                    seasonal.to_owned()
                } else {
                    (*rng.pick(&["brand_search", "shopping_pmax", "generic_search"])).to_owned()
                },
                content: None,
                term: Some(*rng.pick(&[
                    "organic cotton tee",
                    "canvas tote bag",
                    "merino beanie",
                    "rain jacket",
                ])),
                utm_id: Some(format!("{}", rng.range(20_000_000_000, 21_999_999_999))),
                referrer: Some("https://www.google.com/"),
            },
            2 => Source::Utm {
                source: "klaviyo",
                medium: "email",
                campaign: if in_sale && rng.chance(0.6) {
                    format!("{seasonal}_email")
                } else {
                    (*rng.pick(&[
                        "welcome_series",
                        "abandoned_cart_flow",
                        "monthly_newsletter",
                        "winback_flow",
                    ]))
                    .to_owned()
                },
                content: None,
                term: None,
                utm_id: None,
                referrer: None,
            },
            3 => {
                if rng.chance(0.85) {
                    Source::Organic {
                        engine: "google",
                        referrer: "https://www.google.com/",
                    }
                } else {
                    Source::Organic {
                        engine: "bing",
                        referrer: "https://www.bing.com/",
                    }
                }
            }
            4 => {
                let (host, referrer) = *rng.pick(&[
                    (
                        "blog.example.org",
                        "https://blog.example.org/best-sustainable-basics-2025/",
                    ),
                    ("www.reddit.com", "https://www.reddit.com/"),
                    ("news.example.net", "https://news.example.net/gift-guide/"),
                    ("l.facebook.com", "https://l.facebook.com/"),
                ]);
                Source::Referral { host, referrer }
            }
            5 => Source::Typein,
            6 => Source::Admin,
            _ => Source::None,
        };
        let landing_path = match rng.below(3) {
            0 => "/".to_owned(),
            1 => "/shop/".to_owned(),
            _ => format!("/product/{}/", products[lines[0].0].slug),
        };
        let session = Session {
            landing_path,
            start: created - TimeDelta::seconds(rng.range(90, 2_400)),
            pages: rng.range(1, 14) as u32,
            count: rng.range(1, 6) as u32,
            ua,
        };
        (source, session)
    }

    // ----- ids -----

    /// Products, coupons, orders and refunds share WordPress's post id sequence, allocated in order of
    /// creation with occasional gaps (drafts, revisions, other post types).
    fn assign_post_ids(
        &mut self,
        products: &mut [ProductPlan],
        coupons: &mut [CouponPlan],
        orders: &mut [OrderPlan],
    ) {
        let mut rng = self.rng.fork(5);
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Kind {
            Product(usize),
            Coupon(usize),
            Order(usize),
            Refund(usize),
        }
        let mut timeline: Vec<(Ts, Kind)> = Vec::new();
        timeline.extend(
            products
                .iter()
                .enumerate()
                .map(|(i, p)| (p.created, Kind::Product(i))),
        );
        timeline.extend(
            coupons
                .iter()
                .enumerate()
                .map(|(i, c)| (c.created, Kind::Coupon(i))),
        );
        for (i, o) in orders.iter().enumerate() {
            timeline.push((o.created, Kind::Order(i)));
            if let Some(r) = &o.refund {
                timeline.push((r.created, Kind::Refund(i)));
            }
        }
        timeline.sort();
        let mut next = 1_000 + rng.below(500);
        for (_, kind) in timeline {
            next += 1 + if rng.chance(0.25) { rng.below(4) } else { 0 };
            match kind {
                Kind::Product(i) => {
                    products[i].id = next;
                    next += 1;
                    products[i].image_id = next; // the product image attachment
                }
                Kind::Coupon(i) => coupons[i].id = next,
                Kind::Order(i) => orders[i].id = next,
                Kind::Refund(i) => {
                    if let Some(r) = orders[i].refund.as_mut() {
                        r.id = next;
                    }
                }
            }
        }
    }

    fn assign_user_ids(&mut self, users: &mut [UserPlan], _orders: &[OrderPlan]) {
        let mut rng = self.rng.fork(6);
        let mut order: Vec<usize> = (0..users.len()).collect();
        // Staff keep ids 1 and 2; everyone else by registration time.
        order.sort_by_key(|&i| {
            (
                users[i].role == "customer" || users[i].role == "subscriber",
                users[i].registered,
                i,
            )
        });
        let mut next = 0;
        for i in order {
            next += 1 + if next > 2 && rng.chance(0.05) {
                rng.below(3)
            } else {
                0
            };
            users[i].id = next;
        }
    }

    // ----- JSON -----

    fn product_json(&self, p: &ProductPlan) -> Value {
        let (cat_id, cat_name, cat_slug) = CATEGORIES[p.category];
        let permalink = format!("{}/product/{}/", self.site, p.slug);
        let image_src = format!(
            "{}/wp-content/uploads/{}/{}.jpg",
            self.site,
            (p.created + self.offset).format("%Y/%m"),
            p.slug
        );
        obj(vec![
            ("id", json!(p.id)),
            ("name", json!(p.name)),
            ("slug", json!(p.slug)),
            ("permalink", json!(permalink)),
            ("date_created", json!(self.local(p.created))),
            ("date_created_gmt", json!(Self::gmt(p.created))),
            ("date_modified", json!(self.local(p.modified))),
            ("date_modified_gmt", json!(Self::gmt(p.modified))),
            ("type", json!("simple")),
            ("status", json!("publish")),
            ("featured", json!(p.popularity > 26)),
            ("catalog_visibility", json!("visible")),
            (
                "description",
                json!(format!("<p>{} — made to last.</p>", p.name)),
            ),
            ("short_description", json!("")),
            ("sku", json!(p.sku)),
            ("price", json!(money(p.price()))),
            ("regular_price", json!(money(p.regular))),
            ("sale_price", json!(p.sale.map(money).unwrap_or_default())),
            ("date_on_sale_from", Value::Null),
            ("date_on_sale_from_gmt", Value::Null),
            ("date_on_sale_to", Value::Null),
            ("date_on_sale_to_gmt", Value::Null),
            ("on_sale", json!(p.sale.is_some())),
            ("purchasable", json!(true)),
            ("total_sales", json!(p.total_sales)),
            ("virtual", json!(false)),
            ("downloadable", json!(false)),
            ("tax_status", json!("taxable")),
            ("tax_class", json!("")),
            ("manage_stock", json!(false)),
            ("stock_quantity", Value::Null),
            ("stock_status", json!("instock")),
            ("backorders", json!("no")),
            ("weight", json!("")),
            (
                "dimensions",
                json!({ "length": "", "width": "", "height": "" }),
            ),
            ("shipping_required", json!(true)),
            ("reviews_allowed", json!(true)),
            ("average_rating", json!("0.00")),
            ("rating_count", json!(0)),
            ("parent_id", json!(0)),
            (
                "categories",
                json!([{ "id": cat_id, "name": cat_name, "slug": cat_slug }]),
            ),
            ("tags", json!([])),
            (
                "images",
                json!([{ "id": p.image_id, "src": image_src, "name": p.slug, "alt": "" }]),
            ),
            ("attributes", json!([])),
            ("default_attributes", json!([])),
            ("variations", json!([])),
            ("menu_order", json!(0)),
            ("meta_data", json!([])),
            (
                "_links",
                json!({
                    "self": link(format!("{}/wp-json/wc/v3/products/{}", self.site, p.id)),
                    "collection": link(format!("{}/wp-json/wc/v3/products", self.site)),
                }),
            ),
        ])
    }

    fn coupon_json(&self, c: &CouponPlan) -> Value {
        let discount_type = match c.kind {
            CouponKind::Percent => "percent",
            CouponKind::FixedCart | CouponKind::FreeShipping => "fixed_cart",
        };
        let expires = (c.active_until < self.end).then_some(c.active_until);
        obj(vec![
            ("id", json!(c.id)),
            ("code", json!(c.code)),
            ("amount", json!(money(c.amount))),
            ("status", json!("publish")),
            ("date_created", json!(self.local(c.created))),
            ("date_created_gmt", json!(Self::gmt(c.created))),
            ("date_modified", json!(self.local(c.modified))),
            ("date_modified_gmt", json!(Self::gmt(c.modified))),
            ("discount_type", json!(discount_type)),
            ("description", json!(c.description)),
            ("date_expires", json!(expires.map(|t| self.local(t)))),
            ("date_expires_gmt", json!(expires.map(Self::gmt))),
            ("usage_count", json!(c.usage_count)),
            ("individual_use", json!(c.first_order_only)),
            ("product_ids", json!([])),
            ("excluded_product_ids", json!([])),
            ("usage_limit", Value::Null),
            (
                "usage_limit_per_user",
                if c.first_order_only {
                    json!(1)
                } else {
                    Value::Null
                },
            ),
            ("limit_usage_to_x_items", Value::Null),
            ("free_shipping", json!(c.kind == CouponKind::FreeShipping)),
            ("product_categories", json!([])),
            ("excluded_product_categories", json!([])),
            ("exclude_sale_items", json!(false)),
            ("minimum_amount", json!(money(c.minimum))),
            ("maximum_amount", json!("0.00")),
            ("email_restrictions", json!([])),
            ("used_by", json!(c.used_by)),
            ("meta_data", json!([])),
            (
                "_links",
                json!({
                    "self": link(format!("{}/wp-json/wc/v3/coupons/{}", self.site, c.id)),
                    "collection": link(format!("{}/wp-json/wc/v3/coupons", self.site)),
                }),
            ),
        ])
    }

    fn address(p: &Person, with_email: bool) -> Value {
        let (city, state, postcode, _, _) = CITIES[p.city];
        let mut pairs = vec![
            ("first_name", json!(p.first)),
            ("last_name", json!(p.last)),
            ("company", json!(p.company)),
            ("address_1", json!(p.street)),
            ("address_2", json!("")),
            ("city", json!(if p.street.is_empty() { "" } else { city })),
            ("state", json!(if p.street.is_empty() { "" } else { state })),
            (
                "postcode",
                json!(if p.street.is_empty() { "" } else { postcode }),
            ),
            (
                "country",
                json!(if p.street.is_empty() { "" } else { "US" }),
            ),
        ];
        if with_email {
            pairs.push(("email", json!(p.email)));
        }
        pairs.push(("phone", json!(p.phone)));
        obj(pairs)
    }

    fn attribution_meta(&self, source: &Source, session: &Session) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        let entry_with = |query: &str| {
            if query.is_empty() {
                format!("{}{}", self.site, session.landing_path)
            } else {
                format!("{}{}?{}", self.site, session.landing_path, query)
            }
        };
        let session_fields = |out: &mut Vec<(&'static str, String)>, entry: String| {
            out.push(("_wc_order_attribution_session_entry", entry));
            out.push((
                "_wc_order_attribution_session_start_time",
                session.start.format("%Y-%m-%d %H:%M:%S").to_string(),
            ));
            out.push((
                "_wc_order_attribution_session_pages",
                session.pages.to_string(),
            ));
            out.push((
                "_wc_order_attribution_session_count",
                session.count.to_string(),
            ));
            out.push(("_wc_order_attribution_user_agent", session.ua.0.to_owned()));
            out.push(("_wc_order_attribution_device_type", session.ua.1.to_owned()));
        };
        match source {
            Source::None => {}
            Source::Admin => out.push(("_wc_order_attribution_source_type", "admin".to_owned())),
            Source::Typein => {
                out.push(("_wc_order_attribution_source_type", "typein".to_owned()));
                out.push(("_wc_order_attribution_utm_source", "(direct)".to_owned()));
                session_fields(&mut out, entry_with(""));
            }
            Source::Organic { engine, referrer } => {
                out.push(("_wc_order_attribution_source_type", "organic".to_owned()));
                out.push(("_wc_order_attribution_referrer", (*referrer).to_owned()));
                out.push(("_wc_order_attribution_utm_source", (*engine).to_owned()));
                out.push(("_wc_order_attribution_utm_medium", "organic".to_owned()));
                session_fields(&mut out, entry_with(""));
            }
            Source::Referral { host, referrer } => {
                out.push(("_wc_order_attribution_source_type", "referral".to_owned()));
                out.push(("_wc_order_attribution_referrer", (*referrer).to_owned()));
                out.push(("_wc_order_attribution_utm_source", (*host).to_owned()));
                out.push(("_wc_order_attribution_utm_medium", "referral".to_owned()));
                session_fields(&mut out, entry_with(""));
            }
            Source::Utm {
                source,
                medium,
                campaign,
                content,
                term,
                utm_id,
                referrer,
            } => {
                out.push(("_wc_order_attribution_source_type", "utm".to_owned()));
                if let Some(r) = referrer {
                    out.push(("_wc_order_attribution_referrer", (*r).to_owned()));
                }
                out.push(("_wc_order_attribution_utm_campaign", campaign.clone()));
                out.push(("_wc_order_attribution_utm_source", (*source).to_owned()));
                out.push(("_wc_order_attribution_utm_medium", (*medium).to_owned()));
                let mut query =
                    format!("utm_source={source}&utm_medium={medium}&utm_campaign={campaign}");
                if let Some(c) = content {
                    out.push(("_wc_order_attribution_utm_content", (*c).to_owned()));
                    query.push_str(&format!("&utm_content={c}"));
                }
                if let Some(id) = utm_id {
                    out.push(("_wc_order_attribution_utm_id", id.clone()));
                    query.push_str(&format!("&utm_id={id}"));
                }
                if let Some(t) = term {
                    out.push(("_wc_order_attribution_utm_term", (*t).to_owned()));
                    query.push_str(&format!("&utm_term={}", t.replace(' ', "+")));
                }
                session_fields(&mut out, entry_with(&query));
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn order_json(
        &mut self,
        o: &OrderPlan,
        p: &Priced,
        products: &[ProductPlan],
        coupons: &[CouponPlan],
        users: &[UserPlan],
        guests: &[Person],
    ) -> (Value, Option<Value>) {
        let mut rng = SplitMix64::new(o.id.wrapping_mul(0x9E37_79B9) ^ self.rng.clone().next_u64());
        let (customer_id, person) = match o.buyer {
            Buyer::Customer(u) => (users[u].id, users[u].person.clone()),
            Buyer::Guest(g) => (0, guests[g].clone()),
        };
        let mut billing_person = person.clone();
        billing_person.email = o.billing_email.clone();
        let billing = Self::address(&billing_person, true);
        let mut shipping_person = person.clone();
        shipping_person.phone = String::new();
        let shipping = Self::address(&shipping_person, false);
        let (_, state, _, _, rate_id) = CITIES[person.city];

        let is_paid = o.paid.is_some();
        let (payment_title, transaction_id) = match o.payment {
            "bacs" => ("Direct bank transfer", String::new()),
            "ppcp-gateway" => (
                "PayPal",
                if is_paid {
                    rng.string_from(b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789", 17)
                } else {
                    String::new()
                },
            ),
            _ => (
                "Credit / Debit Card",
                if is_paid {
                    format!("pi_{}", rng.alnum(24))
                } else {
                    String::new()
                },
            ),
        };
        let created_via = match o.source {
            Source::Admin => "admin",
            Source::None => "rest-api",
            _ if rng.chance(0.3) => "store-api",
            _ => "checkout",
        };
        let user_agent = match o.source {
            Source::Admin | Source::None => String::new(),
            _ => o.session.ua.0.to_owned(),
        };
        let ip = if matches!(o.source, Source::Admin) {
            String::new()
        } else {
            match rng.below(3) {
                0 => format!("192.0.2.{}", rng.range(1, 254)),
                1 => format!("198.51.100.{}", rng.range(1, 254)),
                _ => format!("203.0.113.{}", rng.range(1, 254)),
            }
        };
        let order_key = format!("wc_order_{}", rng.alnum(13));

        // meta_data
        let mut meta =
            vec![json!({ "id": self.next_post_meta(), "key": "is_vat_exempt", "value": "no" })];
        for (k, v) in self.attribution_meta(&o.source, &o.session) {
            meta.push(json!({ "id": self.next_post_meta(), "key": k, "value": v }));
        }
        if o.payment == "stripe" && is_paid {
            meta.push(
                json!({ "id": self.next_post_meta(), "key": "_stripe_currency", "value": "USD" }),
            );
        }

        // line items
        let mut line_ids = Vec::new();
        let mut line_items = Vec::new();
        for l in &p.lines {
            let prod = &products[l.product];
            let id = self.next_item_id();
            line_ids.push(id);
            let taxes = if p.rate.is_zero() {
                json!([])
            } else {
                json!([{ "id": rate_id, "total": tax_str(l.total_tax), "subtotal": tax_str(l.subtotal_tax) }])
            };
            line_items.push(obj(vec![
                ("id", json!(id)),
                ("name", json!(prod.name)),
                ("product_id", json!(prod.id)),
                ("variation_id", json!(0)),
                ("quantity", json!(l.qty)),
                ("tax_class", json!("")),
                ("subtotal", json!(money(l.subtotal))),
                ("subtotal_tax", json!(money(l.subtotal_tax))),
                ("total", json!(money(l.total))),
                ("total_tax", json!(money(l.total_tax))),
                ("taxes", taxes),
                ("meta_data", json!([])),
                ("sku", json!(prod.sku)),
                ("price", number(l.total / Decimal::from(l.qty))),
                (
                    "image",
                    json!({
                        "id": prod.image_id.to_string(),
                        "src": format!("{}/wp-content/uploads/{}/{}.jpg", self.site, (prod.created + self.offset).format("%Y/%m"), prod.slug),
                    }),
                ),
                ("parent_name", Value::Null),
            ]));
        }
        let tax_lines = if p.rate.is_zero() {
            json!([])
        } else {
            let pct = p.rate * Decimal::ONE_HUNDRED;
            json!([{
                "id": self.next_item_id(),
                "rate_code": format!("US-{state}-{state} TAX-1"),
                "rate_id": rate_id,
                "label": format!("{state} Tax"),
                "compound": false,
                "tax_total": money(p.cart_tax),
                "shipping_tax_total": money(p.shipping_tax),
                "rate_percent": number(pct),
                "meta_data": []
            }])
        };
        let (method_title, method_id, instance) = p.shipping_method;
        let shipping_taxes = if p.rate.is_zero() {
            json!([])
        } else {
            json!([{ "id": rate_id, "total": tax_str(p.shipping_tax), "subtotal": "" }])
        };
        let shipping_lines = json!([{
            "id": self.next_item_id(),
            "method_title": method_title,
            "method_id": method_id,
            "instance_id": instance,
            "total": money(p.shipping_total),
            "total_tax": money(p.shipping_tax),
            "taxes": shipping_taxes,
            "meta_data": []
        }]);
        let coupon_lines = match o.coupon {
            Some(c) => json!([{
                "id": self.next_item_id(),
                "code": coupons[c].code,
                "discount": money(p.discount_total),
                "discount_tax": money(p.discount_tax),
                "meta_data": []
            }]),
            None => json!([]),
        };

        // refund
        let mut refunds_summary = json!([]);
        let mut refund_json = None;
        if let Some(r) = &o.refund {
            let (amount, items) = self.refund_lines(r, p, products, &line_ids, rate_id);
            refunds_summary =
                json!([{ "id": r.id, "reason": r.reason, "total": format!("-{}", money(amount)) }]);
            refund_json = Some(obj(vec![
                ("id", json!(r.id)),
                ("parent_id", json!(o.id)),
                ("date_created", json!(self.local(r.created))),
                ("date_created_gmt", json!(Self::gmt(r.created))),
                ("amount", json!(money(amount))),
                ("reason", json!(r.reason)),
                ("refunded_by", json!(r.refunded_by)),
                ("refunded_payment", json!(o.payment != "bacs")),
                ("meta_data", json!([])),
                ("line_items", Value::Array(items)),
                (
                    "_links",
                    json!({
                        "self": link(format!("{}/wp-json/wc/v3/orders/{}/refunds/{}", self.site, o.id, r.id)),
                        "collection": link(format!("{}/wp-json/wc/v3/orders/{}/refunds", self.site, o.id)),
                        "up": link(format!("{}/wp-json/wc/v3/orders/{}", self.site, o.id)),
                        "refunded_by": [{ "href": format!("{}/wp-json/wp/v2/users/{}", self.site, r.refunded_by), "embeddable": true }],
                    }),
                ),
            ]));
        }

        let fmt_opt_local = |t: Option<Ts>| t.map(|t| self.local(t));
        let fmt_opt_gmt = |t: Option<Ts>| t.map(Self::gmt);
        let version = if o.created < self.start + TimeDelta::days(90) {
            "9.6.2"
        } else {
            "9.8.5"
        };
        let needs_payment = matches!(o.status, Status::Pending | Status::Failed);
        let mut links = Map::new();
        links.insert(
            "self".into(),
            link(format!("{}/wp-json/wc/v3/orders/{}", self.site, o.id)),
        );
        links.insert(
            "collection".into(),
            link(format!("{}/wp-json/wc/v3/orders", self.site)),
        );
        if customer_id > 0 {
            links.insert(
                "customer".into(),
                link(format!(
                    "{}/wp-json/wc/v3/customers/{}",
                    self.site, customer_id
                )),
            );
        }
        let order = obj(vec![
            ("id", json!(o.id)),
            ("parent_id", json!(0)),
            ("status", json!(o.status.as_str())),
            ("currency", json!("USD")),
            ("version", json!(version)),
            ("prices_include_tax", json!(false)),
            ("date_created", json!(self.local(o.created))),
            ("date_modified", json!(self.local(o.modified))),
            ("discount_total", json!(money(p.discount_total))),
            ("discount_tax", json!(money(p.discount_tax))),
            ("shipping_total", json!(money(p.shipping_total))),
            ("shipping_tax", json!(money(p.shipping_tax))),
            ("cart_tax", json!(money(p.cart_tax))),
            ("total", json!(money(p.total))),
            ("total_tax", json!(money(p.total_tax))),
            ("customer_id", json!(customer_id)),
            ("order_key", json!(order_key)),
            ("billing", billing),
            ("shipping", shipping),
            ("payment_method", json!(o.payment)),
            ("payment_method_title", json!(payment_title)),
            ("transaction_id", json!(transaction_id)),
            ("customer_ip_address", json!(ip)),
            ("customer_user_agent", json!(user_agent)),
            ("created_via", json!(created_via)),
            ("customer_note", json!(o.note)),
            ("date_completed", json!(fmt_opt_local(o.completed))),
            ("date_paid", json!(fmt_opt_local(o.paid))),
            ("cart_hash", json!(rng.hex(32))),
            ("number", json!(o.id.to_string())),
            ("meta_data", Value::Array(meta)),
            ("line_items", Value::Array(line_items)),
            ("tax_lines", tax_lines),
            ("shipping_lines", shipping_lines),
            ("fee_lines", json!([])),
            ("coupon_lines", coupon_lines),
            ("refunds", refunds_summary),
            (
                "payment_url",
                json!(format!(
                    "{}/checkout/order-pay/{}/?pay_for_order=true&key={}",
                    self.site, o.id, order_key
                )),
            ),
            (
                "is_editable",
                json!(matches!(
                    o.status,
                    Status::Pending | Status::OnHold | Status::Failed
                )),
            ),
            ("needs_payment", json!(needs_payment)),
            ("needs_processing", json!(true)),
            ("date_created_gmt", json!(Self::gmt(o.created))),
            ("date_modified_gmt", json!(Self::gmt(o.modified))),
            ("date_completed_gmt", json!(fmt_opt_gmt(o.completed))),
            ("date_paid_gmt", json!(fmt_opt_gmt(o.paid))),
            ("currency_symbol", json!("$")),
            ("_links", Value::Object(links)),
        ]);
        (order, refund_json)
    }

    /// The refund's amount and its (negative) line items.
    fn refund_lines(
        &mut self,
        r: &RefundPlan,
        p: &Priced,
        products: &[ProductPlan],
        line_ids: &[u64],
        rate_id: u64,
    ) -> (Decimal, Vec<Value>) {
        let mut items = Vec::new();
        let mut refund_item = |gen: &mut Self,
                               li: usize,
                               qty: u32,
                               total: Decimal,
                               tax: Decimal| {
            let l = &p.lines[li];
            let prod = &products[l.product];
            let taxes = if p.rate.is_zero() {
                json!([])
            } else {
                json!([{ "id": rate_id, "total": tax_str(-tax), "subtotal": tax_str(-tax) }])
            };
            items.push(obj(vec![
                ("id", json!(gen.next_item_id())),
                ("name", json!(prod.name)),
                ("product_id", json!(prod.id)),
                ("variation_id", json!(0)),
                ("quantity", json!(-i64::from(qty))),
                ("tax_class", json!("")),
                ("subtotal", json!(money(-total))),
                ("subtotal_tax", json!(money(-tax))),
                ("total", json!(money(-total))),
                ("total_tax", json!(money(-tax))),
                ("taxes", taxes),
                (
                    "meta_data",
                    json!([{ "id": gen.next_post_meta(), "key": "_refunded_item_id", "value": line_ids[li].to_string() }]),
                ),
                ("sku", json!(prod.sku)),
                ("price", number(-(total / Decimal::from(qty)))),
            ]));
        };
        let amount = match r.kind {
            RefundKind::Full => {
                for (li, l) in p.lines.iter().enumerate() {
                    refund_item(self, li, l.qty, l.total, l.total_tax);
                }
                p.total
            }
            RefundKind::OneUnit(li) => {
                let l = &p.lines[li];
                let q = Decimal::from(l.qty);
                let total = round2(l.total / q);
                let tax = round2(l.total_tax / q);
                refund_item(self, li, 1, total, tax);
                total + tax
            }
            RefundKind::Goodwill(pct) => {
                round2(p.total * Decimal::from(pct) / Decimal::ONE_HUNDRED).max(cents(1))
            }
        };
        (amount.min(p.total), items)
    }

    fn customer_json(&mut self, u: &UserPlan, orders: &[OrderPlan], priced: &[Priced]) -> Value {
        let mut rng = SplitMix64::new(u.id.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x5151);
        let last_order = u.orders.last().map(|&i| orders[i].created);
        let modified = match last_order {
            Some(t) => (t + TimeDelta::seconds(rng.range(20, 300))).min(self.end),
            None if rng.chance(0.5) => u.registered,
            None => {
                let hi = (u.registered + TimeDelta::days(60)).min(self.end);
                Self::between(&mut rng, u.registered.min(hi), hi)
            }
        }
        .max(u.registered);
        let is_paying = u
            .orders
            .iter()
            .any(|&i| orders[i].paid.is_some() && !priced[i].lines.is_empty());
        let mut meta = Vec::new();
        if let Some(first) = u.registered_at_order {
            for (k, v) in self.attribution_meta(&orders[first].source, &orders[first].session) {
                meta.push(json!({ "id": self.next_user_meta(), "key": k, "value": v }));
            }
        }
        if u.role == "customer" {
            let active = last_order.unwrap_or(u.registered);
            let day = active.and_utc().timestamp() / 86_400 * 86_400;
            meta.push(json!({ "id": self.next_user_meta(), "key": "wc_last_active", "value": day.to_string() }));
        }
        let billing = if u.role == "customer" {
            Self::address(&u.person, true)
        } else {
            let mut blank = u.person.clone();
            blank.street.clear();
            blank.phone.clear();
            blank.company.clear();
            blank.email.clear();
            Self::address(&blank, true)
        };
        let mut ship_person = u.person.clone();
        ship_person.phone = String::new();
        if u.role != "customer" {
            ship_person.street.clear();
            ship_person.company.clear();
        }
        let shipping = Self::address(&ship_person, false);
        obj(vec![
            ("id", json!(u.id)),
            ("date_created", json!(self.local(u.registered))),
            ("date_created_gmt", json!(Self::gmt(u.registered))),
            ("date_modified", json!(self.local(modified))),
            ("date_modified_gmt", json!(Self::gmt(modified))),
            ("email", json!(u.person.email)),
            ("first_name", json!(u.person.first)),
            ("last_name", json!(u.person.last)),
            ("role", json!(u.role)),
            ("username", json!(u.username)),
            ("billing", billing),
            ("shipping", shipping),
            ("is_paying_customer", json!(is_paying)),
            (
                "avatar_url",
                json!(format!(
                    "https://secure.gravatar.com/avatar/{}?s=96&d=mm&r=g",
                    u.avatar
                )),
            ),
            ("meta_data", Value::Array(meta)),
            (
                "_links",
                json!({
                    "self": link(format!("{}/wp-json/wc/v3/customers/{}", self.site, u.id)),
                    "collection": link(format!("{}/wp-json/wc/v3/customers", self.site)),
                }),
            ),
        ])
    }
}

/// Compute an order's money: line subtotals, coupon discount, shipping and tax, all rounded to cents
/// per line like WooCommerce, so that `total = Σ subtotal − discount_total + shipping_total + total_tax`
/// holds exactly.
fn price_order(
    o: &OrderPlan,
    products: &[ProductPlan],
    coupons: &[CouponPlan],
    users: &[UserPlan],
    guests: &[Person],
) -> Priced {
    let city = match o.buyer {
        Buyer::Customer(u) => users[u].person.city,
        Buyer::Guest(g) => guests[g].city,
    };
    let rate = Decimal::new(CITIES[city].3, 5); // hundredths of a percent → fraction
    let coupon = o.coupon.map(|c| &coupons[c]);
    let subtotals: Vec<Decimal> = o
        .lines
        .iter()
        .map(|&(p, q)| products[p].price() * Decimal::from(q))
        .collect();
    let cart_subtotal: Decimal = subtotals.iter().copied().sum();
    let mut discounts: Vec<Decimal> = vec![Decimal::ZERO; subtotals.len()];
    match coupon.map(|c| (c.kind, c.amount)) {
        Some((CouponKind::Percent, pct)) => {
            for (d, s) in discounts.iter_mut().zip(&subtotals) {
                *d = round2(*s * pct / Decimal::ONE_HUNDRED);
            }
        }
        Some((CouponKind::FixedCart, amount)) => {
            let amount = amount.min(cart_subtotal);
            let mut left = amount;
            let n = subtotals.len();
            for i in 0..n {
                let share = if i + 1 == n {
                    left
                } else {
                    round2(amount * subtotals[i] / cart_subtotal)
                };
                discounts[i] = share.min(subtotals[i]);
                left -= discounts[i];
            }
        }
        Some((CouponKind::FreeShipping, _)) | None => {}
    }
    let lines: Vec<PricedLine> = o
        .lines
        .iter()
        .zip(subtotals.iter().zip(&discounts))
        .map(|(&(product, qty), (&subtotal, &discount))| {
            let total = subtotal - discount;
            PricedLine {
                product,
                qty,
                subtotal,
                subtotal_tax: round2(subtotal * rate),
                total,
                total_tax: round2(total * rate),
            }
        })
        .collect();
    let items_total: Decimal = lines.iter().map(|l| l.total).sum();
    let free_coupon = coupon.is_some_and(|c| c.kind == CouponKind::FreeShipping);
    let (shipping_total, shipping_method) = if free_coupon || items_total >= cents(7500) {
        (Decimal::ZERO, ("Free shipping", "free_shipping", "2"))
    } else if o.express {
        (cents(1200), ("Express (1-2 days)", "flat_rate", "3"))
    } else {
        (cents(500), ("Flat rate", "flat_rate", "1"))
    };
    let shipping_tax = round2(shipping_total * rate);
    let discount_total: Decimal = discounts.iter().copied().sum();
    let discount_tax: Decimal = lines.iter().map(|l| l.subtotal_tax - l.total_tax).sum();
    let cart_tax: Decimal = lines.iter().map(|l| l.total_tax).sum();
    let total_tax = cart_tax + shipping_tax;
    let total = items_total + shipping_total + total_tax;
    Priced {
        lines,
        discount_total,
        discount_tax,
        shipping_total,
        shipping_tax,
        shipping_method,
        cart_tax,
        total_tax,
        total,
        rate,
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

/// Group global refunds by order id, in id order.
pub(crate) fn refunds_by_order(refunds: &[Value]) -> BTreeMap<u64, Vec<Value>> {
    let mut out: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for r in refunds {
        if let Some(parent) = r["parent_id"].as_u64() {
            out.entry(parent).or_default().push(per_order_refund(r));
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
}
