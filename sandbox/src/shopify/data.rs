//! Deterministic generation of the simulated Shopify shop, as the GraphQL Admin API returns its nodes.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};

use crate::rng::SplitMix64;

/// Days of history before `end` that orders and checkouts are spread over.
pub const WINDOW_DAYS: i64 = 180;

/// The storefront domain used in landing pages and checkout URLs.
pub const STOREFRONT: &str = "https://northpeak-outfitters.example.com";

const FIRST: &[&str] = &[
    "Maya", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Zoe", "Lucas", "Priya", "Kenji", "Sofia",
    "Omar", "Hannah", "Mateo", "Leah", "Wei", "Nora", "Kwame", "Ines", "Felix",
];
const LAST: &[&str] = &[
    "Okafor", "Smith", "Garcia", "Chen", "Novak", "Rossi", "Nair", "Tanaka", "Silva", "Fischer",
    "Haddad", "Brown", "Lopez", "Kowalski", "Walker", "Young",
];
/// (title, product type, price in cents, variant names)
const CATALOG: &[(&str, &str, i64, &[&str])] = &[
    (
        "Merino Crew Sock",
        "Socks",
        1800,
        &["Charcoal / M", "Charcoal / L", "Oat / M"],
    ),
    (
        "Trail Runner 2",
        "Shoes",
        12900,
        &["Slate / 9", "Slate / 10"],
    ),
    (
        "Packable Down Vest",
        "Outerwear",
        14900,
        &["Black / M", "Olive / L"],
    ),
    (
        "Ridge Fleece Pullover",
        "Tops",
        7900,
        &["Navy / M", "Rust / M"],
    ),
    ("Summit Beanie", "Accessories", 2600, &["Default Title"]),
    (
        "Alpine Rain Shell",
        "Outerwear",
        18900,
        &["Black / S", "Black / M", "Sky / M"],
    ),
    ("Canvas Daypack 22L", "Bags", 8900, &["Sand", "Black"]),
    ("Trail Shorts", "Bottoms", 5400, &["Olive / M", "Black / L"]),
    ("Insulated Bottle", "Accessories", 3200, &["Default Title"]),
    (
        "Base Layer Tee",
        "Tops",
        4400,
        &["Heather / S", "Heather / M"],
    ),
    (
        "Hiking Pant",
        "Bottoms",
        9800,
        &["Khaki / 32", "Khaki / 34"],
    ),
    ("Wool Glove Liner", "Accessories", 2200, &["S/M", "L/XL"]),
];
const CAMPAIGNS: &[&str] = &[
    "spring_restock_2025",
    "summer_trail_launch",
    "winback_q2",
    "vip_early_access",
];

/// The generated shop: its data, exactly as the GraphQL Admin API serves each node, and the
/// credentials it accepts.
#[derive(Debug, Clone)]
pub struct ShopData {
    /// The Admin API access token the shop accepts (`X-Shopify-Access-Token`).
    pub access_token: String,
    /// The shop's name (`shop { name }`).
    pub shop_name: String,
    /// `Order` nodes, ascending by `createdAt` (and id).
    pub orders: Vec<Value>,
    /// `Customer` nodes, ascending by id.
    pub customers: Vec<Value>,
    /// `Product` nodes, ascending by id.
    pub products: Vec<Value>,
    /// `AbandonedCheckout` nodes, ascending by `createdAt` (and id).
    pub abandoned_checkouts: Vec<Value>,
    /// The per-shop query cost bucket (shared by clones).
    pub(crate) meter: super::cost::Meter,
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Shopify's decimal string: no trailing zeros, but at least one decimal (`"129.0"`, `"148.5"`).
pub(crate) fn amount(d: Decimal) -> String {
    let s = d.normalize().to_string();
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn money(d: Decimal) -> Value {
    json!({ "shopMoney": { "amount": amount(d), "currencyCode": "USD" } })
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn between(rng: &mut SplitMix64, lo: DateTime<Utc>, hi: DateTime<Utc>) -> DateTime<Utc> {
    let span = (hi - lo).num_seconds().max(0);
    lo + TimeDelta::seconds(rng.range(0, span))
}

struct Variant {
    gid: String,
    title: String,
    price: Decimal,
    product_gid: String,
    product_title: String,
    sku: String,
}

impl ShopData {
    /// Generate the shop deterministically: the same `(seed, scale, end)` gives identical data.
    ///
    /// At scale 1: 200 orders over the 180 days before `end` (≈ 6 % cancelled, ≈ 3 % test orders,
    /// ≈ 8 % of the others refunded, ≈ 10 % guest checkouts, many repeat buyers), 100 customers, 12
    /// products and 60 abandoned checkouts (about a quarter later completed). Everything scales
    /// linearly with `scale` (0 is treated as 1).
    pub fn generate(seed: u64, scale: u32, end: DateTime<Utc>) -> ShopData {
        let scale = scale.max(1) as usize;
        let end = end.with_nanosecond(0).unwrap_or(end);
        let start = end - TimeDelta::days(WINDOW_DAYS);
        let mut root = SplitMix64::new(seed ^ 0x5407_1F1E_0000_0001);
        let mut prng = root.fork(1);
        let mut crng = root.fork(2);
        let mut orng = root.fork(3);
        let mut arng = root.fork(4);

        // Products and variants.
        let mut products = Vec::new();
        let mut variants: Vec<Variant> = Vec::new();
        for i in 0..CATALOG.len() * scale {
            let (title, kind, cents, names) = CATALOG[i % CATALOG.len()];
            let title = if i < CATALOG.len() {
                title.to_string()
            } else {
                format!("{title} {}", i / CATALOG.len() + 1)
            };
            let pid = 8_812_364_700_000u64 + i as u64 * 1013;
            let gid = format!("gid://shopify/Product/{pid}");
            let handle = title.to_lowercase().replace(' ', "-");
            let created = start - TimeDelta::days(prng.range(30, 400));
            let updated = between(&mut prng, created, end);
            let mut nodes = Vec::new();
            for (j, name) in names.iter().enumerate() {
                let vid = 46_201_998_500_000u64 + (i * 8 + j) as u64 * 31;
                let price = Decimal::new(cents + j as i64 * 100 * (i64::from(j > 1)), 2);
                let sku = format!(
                    "{}-{}{j}",
                    title
                        .split(' ')
                        .map(|w| w.chars().next().unwrap_or('X'))
                        .collect::<String>()
                        .to_uppercase(),
                    i
                );
                let compare =
                    (prng.chance(0.2)).then(|| amount(round2(price * Decimal::new(125, 2))));
                nodes.push(json!({
                    "id": format!("gid://shopify/ProductVariant/{vid}"),
                    "sku": sku,
                    "title": name,
                    "price": amount(price),
                    "compareAtPrice": compare,
                }));
                variants.push(Variant {
                    gid: format!("gid://shopify/ProductVariant/{vid}"),
                    title: (*name).to_string(),
                    price,
                    product_gid: gid.clone(),
                    product_title: title.clone(),
                    sku,
                });
            }
            products.push(json!({
                "id": gid,
                "legacyResourceId": pid.to_string(),
                "title": title,
                "handle": handle,
                "status": if prng.chance(0.9) { "ACTIVE" } else { "DRAFT" },
                "vendor": "NorthPeak",
                "productType": kind,
                "tags": [kind.to_lowercase()],
                "createdAt": ts(created),
                "updatedAt": ts(updated),
                "publishedAt": ts(created + TimeDelta::minutes(5)),
                "variants": { "nodes": nodes },
            }));
        }

        // Customers (people); orders are attached below.
        let n_customers = 100 * scale;
        struct Person {
            gid: String,
            first: String,
            last: String,
            email: String,
            created: DateTime<Utc>,
            subscribed: bool,
        }
        let mut people: Vec<Person> = (0..n_customers)
            .map(|i| {
                let first = (*crng.pick(FIRST)).to_string();
                let last = (*crng.pick(LAST)).to_string();
                let email = format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i
                );
                Person {
                    gid: format!(
                        "gid://shopify/Customer/{}",
                        7_391_920_500_000u64 + i as u64 * 977
                    ),
                    first,
                    last,
                    email,
                    created: between(
                        &mut crng,
                        start - TimeDelta::days(60),
                        end - TimeDelta::days(1),
                    ),
                    subscribed: crng.chance(0.6),
                }
            })
            .collect();

        // Orders.
        let n_orders = 200 * scale;
        let mut created: Vec<DateTime<Utc>> = (0..n_orders)
            .map(|_| between(&mut orng, start, end - TimeDelta::hours(1)))
            .collect();
        created.sort();
        // customer index per order (None: guest)
        let mut order_customer: Vec<Option<usize>> = Vec::new();
        for _ in 0..n_orders {
            if orng.chance(0.1) {
                order_customer.push(None);
            } else {
                // Skewed towards low indices, so that some people buy again and again.
                let a = orng.below(n_customers as u64);
                let b = orng.below(n_customers as u64);
                order_customer.push(Some(a.min(b) as usize));
            }
        }
        let mut orders = Vec::new();
        let mut index_of: Vec<u32> = vec![0; n_customers];
        let mut spent: Vec<(u32, Decimal, Option<DateTime<Utc>>)> =
            vec![(0, Decimal::ZERO, None); n_customers];
        for (i, &at) in created.iter().enumerate() {
            let oid = 6_021_883_100_000u64 + i as u64 * 4093;
            let gid = format!("gid://shopify/Order/{oid}");
            let cust = order_customer[i];
            if let Some(c) = cust {
                // A customer exists before their first order.
                if people[c].created > at {
                    people[c].created = at - TimeDelta::seconds(orng.range(5, 120));
                }
            }
            let test = orng.chance(0.03);
            let cancelled = !test && orng.chance(0.06);
            // Lines.
            let n_lines = orng.range(1, 3) as usize;
            let mut lines = Vec::new();
            let mut subtotal = Decimal::ZERO;
            let mut first_unit = Decimal::ZERO;
            for l in 0..n_lines {
                let v = &variants[orng.below(variants.len() as u64) as usize];
                let qty = orng.range(1, 3);
                let line_total = v.price * Decimal::from(qty);
                if l == 0 {
                    first_unit = v.price;
                }
                subtotal += line_total;
                lines.push(json!({
                    "id": format!("gid://shopify/LineItem/{}", 15_497_838_000_000u64 + (i * 4 + l) as u64 * 17),
                    "name": format!("{} - {}", v.product_title, v.title),
                    "sku": v.sku,
                    "quantity": qty,
                    "currentQuantity": qty,
                    "originalUnitPriceSet": money(v.price),
                    "discountedTotalSet": money(line_total),
                    "product": { "id": v.product_gid },
                    "variant": { "id": v.gid },
                }));
            }
            let discount_code = orng.chance(0.2);
            let discount = if discount_code {
                round2(subtotal / Decimal::TEN)
            } else {
                Decimal::ZERO
            };
            let net = subtotal - discount;
            let tax = round2(net * Decimal::new(8, 2));
            let shipping = if net >= Decimal::from(75) {
                Decimal::ZERO
            } else {
                Decimal::new(695, 2)
            };
            let total = net + shipping + tax;
            let mut updated = at + TimeDelta::seconds(orng.range(3, 600));
            let cancelled_at =
                cancelled.then(|| (at + TimeDelta::minutes(orng.range(30, 2880))).min(end));
            if let Some(c) = cancelled_at {
                updated = updated.max(c);
            }
            // Refunds.
            let mut refunds = Vec::new();
            let mut refunded = Decimal::ZERO;
            let mut status = if orng.chance(0.03) { "PENDING" } else { "PAID" };
            if cancelled {
                status = "VOIDED";
            } else if !test && orng.chance(0.085) {
                let rat = at + TimeDelta::minutes(orng.range(2 * 1440, 20 * 1440));
                if rat < end {
                    let full = orng.chance(0.33);
                    let amt = if full {
                        total
                    } else {
                        first_unit + round2(first_unit * Decimal::new(8, 2))
                    }
                    .min(total);
                    refunded = amt;
                    status = if full {
                        "REFUNDED"
                    } else {
                        "PARTIALLY_REFUNDED"
                    };
                    refunds.push(json!({
                        "id": format!("gid://shopify/Refund/{}", 954_287_600_000u64 + i as u64 * 7),
                        "createdAt": ts(rat),
                        "note": if full { "Customer changed mind" } else { "Wrong size" },
                        "totalRefundedSet": money(amt),
                    }));
                    updated = updated.max(rat + TimeDelta::seconds(4));
                }
            }
            let updated = updated.min(end);
            // Attribution.
            let pos = orng.chance(0.06);
            let summary = if pos {
                Value::Null
            } else {
                let k = orng.below(6);
                let campaign = *orng.pick(CAMPAIGNS);
                let path = format!(
                    "/products/{}",
                    orng.pick(CATALOG).0.to_lowercase().replace(' ', "-")
                );
                let (source, source_type, referrer, utm, landing): (&str, Value, Value, Value, String) = match k {
                    0 => (
                        "Klaviyo",
                        Value::Null,
                        Value::Null,
                        json!({"source":"klaviyo","medium":"email","campaign":campaign,"content":null,"term":null}),
                        format!("{STOREFRONT}{path}?utm_source=klaviyo&utm_medium=email&utm_campaign={campaign}"),
                    ),
                    1 => (
                        "Facebook",
                        json!("AD"),
                        json!("https://m.facebook.com/"),
                        json!({"source":"facebook","medium":"paid_social","campaign":campaign,"content":null,"term":null}),
                        format!("{STOREFRONT}{path}?utm_source=facebook&utm_medium=paid_social&utm_campaign={campaign}"),
                    ),
                    2 => (
                        "Google",
                        json!("SEO"),
                        json!("https://www.google.com/"),
                        Value::Null,
                        format!("{STOREFRONT}{path}"),
                    ),
                    3 => (
                        // UTM only in the landing page (Shopify left utmParameters null).
                        "Google",
                        json!("AD"),
                        json!("https://www.google.com/"),
                        Value::Null,
                        format!("{STOREFRONT}{path}?utm_source=google&utm_medium=cpc&utm_campaign={campaign}"),
                    ),
                    4 => (
                        "Instagram",
                        Value::Null,
                        json!("https://l.instagram.com/"),
                        Value::Null,
                        format!("{STOREFRONT}{path}"),
                    ),
                    _ => ("direct", Value::Null, Value::Null, Value::Null, format!("{STOREFRONT}/")),
                };
                let visit_at = at - TimeDelta::minutes(orng.range(3, 90));
                let first_at = visit_at - TimeDelta::days(orng.range(0, 10));
                let index = cust.map(|c| index_of[c] + u32::from(!test));
                json!({
                    "ready": true,
                    "customerOrderIndex": index.unwrap_or(1),
                    "daysToConversion": (at - first_at).num_days(),
                    "firstVisit": {
                        "id": format!("gid://shopify/CustomerVisit/{}", 3_391_871_900_000u64 + i as u64 * 2),
                        "occurredAt": ts(first_at),
                        "source": "Google",
                        "sourceType": "SEO",
                        "sourceDescription": null,
                        "landingPage": format!("{STOREFRONT}/"),
                        "referrerUrl": "https://www.google.com/",
                        "referralCode": null,
                        "utmParameters": null,
                    },
                    "lastVisit": {
                        "id": format!("gid://shopify/CustomerVisit/{}", 3_391_871_900_001u64 + i as u64 * 2),
                        "occurredAt": ts(visit_at),
                        "source": source,
                        "sourceType": source_type,
                        "sourceDescription": null,
                        "landingPage": landing,
                        "referrerUrl": referrer,
                        "referralCode": null,
                        "utmParameters": utm,
                    },
                })
            };
            let (email, customer) = match cust {
                Some(c) => {
                    let p = &people[c];
                    // A few orders carry the email as typed, with capitals.
                    let typed = if orng.chance(0.05) {
                        let mut e = p.email.clone();
                        e[..1].make_ascii_uppercase();
                        e
                    } else {
                        p.email.clone()
                    };
                    if !test {
                        index_of[c] += 1;
                        spent[c].0 += 1;
                        if !cancelled {
                            spent[c].1 += total - refunded;
                        }
                    }
                    spent[c].2 = Some(
                        spent[c]
                            .2
                            .map_or(updated, |u: DateTime<Utc>| u.max(updated)),
                    );
                    (
                        json!(typed),
                        json!({ "id": p.gid, "defaultEmailAddress": { "emailAddress": p.email } }),
                    )
                }
                None => (json!(format!("guest{i}@example.com")), Value::Null),
            };
            let fulfillment = if cancelled || refunded == total && !refunds.is_empty() {
                "UNFULFILLED"
            } else if updated < end - TimeDelta::days(3) {
                "FULFILLED"
            } else {
                "UNFULFILLED"
            };
            orders.push(json!({
                "id": gid,
                "legacyResourceId": oid.to_string(),
                "name": format!("#{}", 1001 + i),
                "createdAt": ts(at),
                "updatedAt": ts(updated),
                "processedAt": ts(at - TimeDelta::seconds(2)),
                "cancelledAt": cancelled_at.map(ts),
                "cancelReason": if cancelled { json!(*orng.pick(&["CUSTOMER", "INVENTORY", "FRAUD"])) } else { Value::Null },
                "email": email,
                "test": test,
                "tags": if test { json!(["test"]) } else { json!([]) },
                "sourceName": if pos { "pos" } else { "web" },
                "currencyCode": "USD",
                "presentmentCurrencyCode": "USD",
                "discountCodes": if discount_code { json!(["WELCOME10"]) } else { json!([]) },
                "displayFinancialStatus": status,
                "displayFulfillmentStatus": fulfillment,
                "customer": customer,
                "totalPriceSet": money(total),
                "subtotalPriceSet": money(net),
                "totalDiscountsSet": money(discount),
                "totalTaxSet": money(tax),
                "totalShippingPriceSet": money(shipping),
                "totalRefundedSet": money(refunded),
                "lineItems": { "nodes": lines },
                "refunds": refunds,
                "customerJourneySummary": summary,
            }));
        }

        let customers = people
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (n, amt, last) = spent[i];
                let updated = last
                    .map_or(p.created + TimeDelta::minutes(1), |l| l.max(p.created) + TimeDelta::seconds(3))
                    .min(end);
                json!({
                    "id": p.gid,
                    // What the connector selects: `email` is deprecated in its favour since 2025-04.
                    "defaultEmailAddress": { "emailAddress": p.email },
                    "firstName": p.first,
                    "lastName": p.last,
                    "state": if n > 0 { "ENABLED" } else { "DISABLED" },
                    "tags": if p.subscribed { json!(["newsletter"]) } else { json!([]) },
                    "createdAt": ts(p.created),
                    "updatedAt": ts(updated),
                    "numberOfOrders": n.to_string(),
                    "amountSpent": { "amount": amount(amt), "currencyCode": "USD" },
                    "emailMarketingConsent": {
                        "marketingState": if p.subscribed { "SUBSCRIBED" } else { "NOT_SUBSCRIBED" },
                        "marketingOptInLevel": if p.subscribed { json!("SINGLE_OPT_IN") } else { Value::Null },
                        "consentUpdatedAt": if p.subscribed { json!(ts(p.created)) } else { Value::Null },
                    },
                })
            })
            .collect();

        // Abandoned checkouts.
        let n_checkouts = 60 * scale;
        let mut times: Vec<DateTime<Utc>> = (0..n_checkouts)
            .map(|_| between(&mut arng, start, end - TimeDelta::hours(1)))
            .collect();
        times.sort();
        let abandoned_checkouts = times
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                let cid = 38_720_911_200_000u64 + i as u64 * 7;
                let mut updated = at + TimeDelta::seconds(arng.range(5, 900));
                let completed = arng.chance(0.25).then(|| (at + TimeDelta::minutes(arng.range(10, 2880))).min(end));
                if let Some(c) = completed {
                    updated = updated.max(c);
                }
                let updated = updated.min(end);
                let customer = if arng.chance(0.9) {
                    let p = &people[arng.below(n_customers as u64) as usize];
                    json!({ "id": p.gid, "defaultEmailAddress": { "emailAddress": p.email } })
                } else {
                    Value::Null
                };
                let mut subtotal = Decimal::ZERO;
                let lines: Vec<Value> = (0..arng.range(1, 2))
                    .map(|l| {
                        let v = &variants[arng.below(variants.len() as u64) as usize];
                        let qty = arng.range(1, 2);
                        subtotal += v.price * Decimal::from(qty);
                        json!({
                            "id": format!("gid://shopify/AbandonedCheckoutLineItem/{}", 9_000_000 + i * 3 + l as usize),
                            "title": v.product_title,
                            "quantity": qty,
                            "variant": { "id": v.gid },
                        })
                    })
                    .collect();
                let tax = round2(subtotal * Decimal::new(8, 2));
                json!({
                    "id": format!("gid://shopify/AbandonedCheckout/{cid}"),
                    "name": format!("#{cid}"),
                    "createdAt": ts(at),
                    "updatedAt": ts(updated),
                    "completedAt": completed.map(ts),
                    "abandonedCheckoutUrl": format!("{STOREFRONT}/61923819710/checkouts/ac/{}/recover?key={}", arng.alnum(24), arng.hex(12)),
                    "discountCodes": [],
                    "customer": customer,
                    "subtotalPriceSet": money(subtotal),
                    "totalDiscountSet": money(Decimal::ZERO),
                    "totalPriceSet": money(subtotal + tax),
                    "lineItems": { "nodes": lines },
                })
            })
            .collect();

        ShopData {
            access_token: format!("shpat_{}", root.hex(32)),
            shop_name: "NorthPeak Outfitters (sandbox)".into(),
            orders,
            customers,
            products,
            abandoned_checkouts,
            meter: super::cost::Meter::default(),
        }
    }

    /// A full cost bucket of `plan`, refilled on `time`.
    pub(crate) fn set_meter(&mut self, time: crate::clock::Time, plan: super::ShopifyPlan) {
        self.meter = super::cost::Meter::new(time, plan);
    }

    /// The shop's plan, which sets its cost bucket ([`SandboxConfig::shopify_plan`](crate::SandboxConfig::shopify_plan)).
    pub fn plan(&self) -> super::ShopifyPlan {
        self.meter.plan()
    }

    /// Throttled (`THROTTLED`) responses served so far.
    pub fn throttled_count(&self) -> u64 {
        self.meter.throttled()
    }

    /// Queries refused as `MAX_COST_EXCEEDED` (requested cost over 1000) so far.
    pub fn max_cost_exceeded_count(&self) -> u64 {
        self.meter.over_cost()
    }

    /// Set the cost bucket's points (clamped to the plan's bucket, 0..=2000 on the Standard plan), e.g.
    /// to start a test with a drained bucket.
    pub fn set_bucket_available(&self, points: f64) {
        self.meter.set(points);
    }

    /// Points currently in the cost bucket (restored up to now).
    pub fn bucket_available(&self) -> f64 {
        self.meter.available()
    }
}
