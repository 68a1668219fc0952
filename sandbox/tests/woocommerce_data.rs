//! The generated WooCommerce store: deterministic, in WooCommerce's shape, and internally consistent.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{NaiveDateTime, TimeDelta, TimeZone, Utc};
use growthflow_sandbox::{SandboxConfig, WooStore};
use rust_decimal::Decimal;
use serde_json::Value;

fn default_store() -> WooStore {
    let c = SandboxConfig::default();
    WooStore::generate(c.seed, c.scale, c.end)
}

fn dec(v: &Value) -> Decimal {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("money must be a string: {v}"));
    let (_, frac) = s
        .split_once('.')
        .unwrap_or_else(|| panic!("2 decimals: {s}"));
    assert_eq!(frac.len(), 2, "money with exactly 2 decimals: {s}");
    Decimal::from_str(s).unwrap()
}

fn ts(v: &Value) -> NaiveDateTime {
    let s = v.as_str().unwrap();
    assert_eq!(s.len(), 19, "no zone suffix: {s}");
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

fn meta<'a>(order: &'a Value, key: &str) -> Option<&'a str> {
    order["meta_data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == key)
        .and_then(|m| m["value"].as_str())
}

#[test]
fn generation_is_deterministic() {
    let c = SandboxConfig::default();
    let a = WooStore::generate(c.seed, c.scale, c.end);
    let b = WooStore::generate(c.seed, c.scale, c.end);
    assert!(a == b);
    for (x, y) in [
        (&a.orders, &b.orders),
        (&a.customers, &b.customers),
        (&a.products, &b.products),
        (&a.coupons, &b.coupons),
        (&a.refunds, &b.refunds),
    ] {
        assert_eq!(
            serde_json::to_string(x).unwrap(),
            serde_json::to_string(y).unwrap()
        );
    }
    let other = WooStore::generate(c.seed + 1, c.scale, c.end);
    assert_ne!(
        serde_json::to_string(&a.orders).unwrap(),
        serde_json::to_string(&other.orders).unwrap()
    );
    assert_ne!(a.consumer_secret, other.consumer_secret);
}

#[test]
fn volumes_at_scale_one() {
    let s = default_store();
    assert_eq!(s.orders.len(), 300);
    assert_eq!(s.products.len(), 25);
    assert_eq!(s.coupons.len(), 5);
    let customers = s
        .customers
        .iter()
        .filter(|c| c["role"] == "customer")
        .count();
    assert_eq!(customers, 120);
    assert!(s.customers.iter().any(|c| c["role"] == "administrator"));
    assert!(s.customers.iter().any(|c| c["role"] == "subscriber"));
    let refunded_orders: BTreeSet<u64> = s
        .refunds
        .iter()
        .map(|r| r["parent_id"].as_u64().unwrap())
        .collect();
    let share = refunded_orders.len() as f64 / s.orders.len() as f64;
    assert!((0.04..=0.13).contains(&share), "refund share {share}");
    assert!(s.consumer_key.starts_with("ck_") && s.consumer_secret.starts_with("cs_"));
}

#[test]
fn orders_add_up_and_dates_are_consistent() {
    let s = default_store();
    let end = SandboxConfig::default().end.naive_utc();
    let start = end - TimeDelta::days(180);
    let offset = TimeDelta::hours(i64::from(s.utc_offset_hours));
    let ids: BTreeSet<u64> = s.orders.iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), s.orders.len(), "unique order ids");

    for o in &s.orders {
        let id = o["id"].as_u64().unwrap();
        assert_eq!(o["number"], Value::String(id.to_string()));
        assert_eq!(o["currency"], "USD");
        let lines = o["line_items"].as_array().unwrap();
        assert!(!lines.is_empty());
        let mut subtotal = Decimal::ZERO;
        let mut line_total = Decimal::ZERO;
        let mut line_tax = Decimal::ZERO;
        for l in lines {
            assert!(l["price"].is_number(), "line price is a number");
            let q = Decimal::from(l["quantity"].as_u64().unwrap());
            subtotal += dec(&l["subtotal"]);
            line_total += dec(&l["total"]);
            line_tax += dec(&l["total_tax"]);
            let unit = Decimal::from_str(&l["price"].to_string()).unwrap();
            assert!((unit * q - dec(&l["total"])).abs() < Decimal::new(1, 2));
        }
        let discount = dec(&o["discount_total"]);
        let shipping = dec(&o["shipping_total"]);
        let tax = dec(&o["total_tax"]);
        let total = dec(&o["total"]);
        assert_eq!(subtotal - discount, line_total, "order {id}: discount");
        assert_eq!(dec(&o["cart_tax"]), line_tax, "order {id}: cart tax");
        assert_eq!(
            dec(&o["cart_tax"]) + dec(&o["shipping_tax"]),
            tax,
            "order {id}: tax"
        );
        assert_eq!(
            subtotal - discount + shipping + tax,
            total,
            "order {id}: total"
        );
        if let Some(c) = o["coupon_lines"].as_array().unwrap().first() {
            assert_eq!(dec(&c["discount"]), discount);
        } else {
            assert_eq!(discount, Decimal::ZERO);
        }

        // Dates: local = gmt + offset; modified ≥ created; inside the window.
        let created_gmt = ts(&o["date_created_gmt"]);
        let modified_gmt = ts(&o["date_modified_gmt"]);
        assert_eq!(ts(&o["date_created"]), created_gmt + offset);
        assert_eq!(ts(&o["date_modified"]), modified_gmt + offset);
        assert!(modified_gmt >= created_gmt);
        assert!(created_gmt > start && created_gmt <= end);
        assert!(modified_gmt <= end);
        if !o["date_paid_gmt"].is_null() {
            assert!(ts(&o["date_paid_gmt"]) >= created_gmt);
        }

        // Refunds: negative totals in the order, positive amounts in /refunds, sums ≤ total.
        let mut refunded = Decimal::ZERO;
        for r in o["refunds"].as_array().unwrap() {
            let t = dec(&r["total"]);
            assert!(t < Decimal::ZERO, "refunds[].total is negative");
            refunded -= t;
            let full = s
                .refunds
                .iter()
                .find(|x| x["id"] == r["id"])
                .expect("order refund is served by /refunds");
            assert_eq!(full["parent_id"], o["id"]);
            assert_eq!(dec(&full["amount"]), -t);
            let refund_at = ts(&full["date_created_gmt"]);
            assert!(refund_at > created_gmt && refund_at <= end);
            assert!(
                modified_gmt >= refund_at,
                "order {id} modified after its refund"
            );
        }
        assert!(refunded <= total, "order {id}: refunds exceed total");
        if o["status"] == "refunded" {
            assert_eq!(
                refunded, total,
                "order {id}: refunded status means full refund"
            );
        }
        let customer_id = o["customer_id"].as_u64().unwrap();
        if customer_id > 0 {
            assert!(s.customers.iter().any(|c| c["id"] == customer_id));
        }
    }
    for r in &s.refunds {
        assert!(s.order(r["parent_id"].as_u64().unwrap()).is_some());
    }
}

#[test]
fn data_has_the_mix_the_journey_model_needs() {
    let s = default_store();
    let mut statuses = BTreeMap::new();
    let mut source_types = BTreeMap::new();
    let mut utm_sources = BTreeSet::new();
    let mut per_email: BTreeMap<String, usize> = BTreeMap::new();
    let mut guests = 0;
    let mut odd_emails = 0;
    let mut spring_sale = 0;
    for o in &s.orders {
        *statuses
            .entry(o["status"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        let st = meta(o, "_wc_order_attribution_source_type").unwrap_or("(none)");
        *source_types.entry(st.to_owned()).or_insert(0) += 1;
        if let Some(src) = meta(o, "_wc_order_attribution_utm_source") {
            let medium = meta(o, "_wc_order_attribution_utm_medium").unwrap_or("");
            utm_sources.insert(format!("{src}/{medium}"));
        }
        if meta(o, "_wc_order_attribution_utm_campaign") == Some("spring_sale") {
            spring_sale += 1;
        }
        let email = o["billing"]["email"].as_str().unwrap();
        if email != email.trim() || email != email.to_lowercase() {
            odd_emails += 1;
        }
        *per_email.entry(WooStore::order_email(o)).or_insert(0) += 1;
        if o["customer_id"] == 0 {
            guests += 1;
            assert!(
                !email.trim().is_empty(),
                "guest orders carry the email in billing"
            );
        }
    }
    for st in ["processing", "completed", "cancelled", "refunded"] {
        assert!(
            statuses.get(st).copied().unwrap_or(0) > 0,
            "status {st}: {statuses:?}"
        );
    }
    assert!(statuses["processing"] + statuses["completed"] > 200);
    for t in ["utm", "organic", "referral", "typein", "admin", "(none)"] {
        assert!(
            source_types.contains_key(t),
            "source type {t}: {source_types:?}"
        );
    }
    for sm in [
        "facebook/paid_social",
        "instagram/paid_social",
        "google/cpc",
        "klaviyo/email",
        "google/organic",
        "(direct)/",
    ] {
        assert!(utm_sources.contains(sm), "{sm} in {utm_sources:?}");
    }
    assert!(spring_sale > 5, "spring_sale orders: {spring_sale}");
    assert!(guests > 30, "guest orders: {guests}");
    assert!(
        odd_emails > 5,
        "emails with capitals/whitespace: {odd_emails}"
    );
    let repeaters = per_email.values().filter(|&&n| n >= 2).count();
    assert!(repeaters > 20, "repeat purchasers: {repeaters}");
    // A person whose emails differ only by case/whitespace is the same person.
    let raw: BTreeSet<&str> = s
        .orders
        .iter()
        .map(|o| o["billing"]["email"].as_str().unwrap())
        .collect();
    assert!(
        raw.len() > per_email.len(),
        "some people use several spellings"
    );
}

#[test]
fn customers_products_and_coupons_have_the_api_shape() {
    let s = default_store();
    for c in &s.customers {
        for k in [
            "id",
            "date_created",
            "date_created_gmt",
            "date_modified",
            "date_modified_gmt",
            "email",
            "first_name",
            "last_name",
            "role",
            "username",
            "billing",
            "shipping",
            "is_paying_customer",
            "avatar_url",
            "meta_data",
            "_links",
        ] {
            assert!(c.get(k).is_some(), "customer field {k}");
        }
        assert!(ts(&c["date_modified_gmt"]) >= ts(&c["date_created_gmt"]));
    }
    for p in &s.products {
        dec(&p["price"]);
        dec(&p["regular_price"]);
        assert!(p["total_sales"].is_u64());
        assert!(p["_links"]["self"][0]["href"].is_string());
    }
    let used: u64 = s
        .coupons
        .iter()
        .map(|c| c["usage_count"].as_u64().unwrap())
        .sum();
    assert!(used > 0);
    for c in &s.coupons {
        dec(&c["amount"]);
        assert!(["percent", "fixed_cart", "fixed_product"]
            .contains(&c["discount_type"].as_str().unwrap()));
    }
}

#[test]
fn end_moves_the_window() {
    let end = Utc.with_ymd_and_hms(2024, 12, 31, 12, 0, 0).unwrap();
    let s = WooStore::generate(42, 1, end);
    let last = s
        .orders
        .iter()
        .map(|o| ts(&o["date_created_gmt"]))
        .max()
        .unwrap();
    assert!(last <= end.naive_utc());
    assert!(last > end.naive_utc() - TimeDelta::days(10));
}
