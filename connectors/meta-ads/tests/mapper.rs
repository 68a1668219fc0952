//! The journey mapper against insights rows (tests/fixtures, based on the reference's §3.9 page).

use std::str::FromStr;

use chrono::NaiveDate;
use growthflow_core::model::{Channel, JourneyMapper, Stage};
use growthflow_meta_ads::MetaAdsMapper;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn rows() -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/insights_page1.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["data"].as_array().unwrap().clone()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn source_type_is_meta_ads() {
    assert_eq!(MetaAdsMapper.source_type(), "meta_ads");
}

#[test]
fn an_insights_row_is_awareness_with_exact_impressions_and_spend() {
    let out = MetaAdsMapper.map("ad_insights", &rows()[0]).unwrap();
    assert!(out.orders.is_empty() && out.customers.is_empty());
    assert_eq!(out.events.len(), 2, "{out:?}");
    let e = &out.events[0];
    let date = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
    assert_eq!(e.key, "ad:120208765432100789:2024-06-01");
    assert_eq!(e.date, date);
    assert_eq!(e.occurred_at.to_rfc3339(), "2024-06-01T00:00:00+00:00");
    assert_eq!(e.stage, Stage::Awareness);
    assert_eq!(e.event_type, "ad_insights");
    assert_eq!(e.channel, Some(Channel::PaidSocial));
    assert_eq!(e.campaign.as_deref(), Some("Prospecting | Summer 2024"));
    assert_eq!(e.quantity, dec("18234"));
    assert_eq!(e.value, Some(dec("212.47")));
    assert_eq!(e.value.unwrap().to_string(), "212.47");
    assert_eq!(e.currency.as_deref(), Some("USD"));
    assert_eq!(
        e.attributes,
        json!({
            "clicks": 402,
            "inline_link_clicks": 311,
            "reach": 15102,
            "campaign_id": "120208765432100123",
            "adset_id": "120208765432100456",
            "ad_id": "120208765432100789"
        })
    );
}

#[test]
fn reported_purchases_use_the_purchase_action_only() {
    let out = MetaAdsMapper.map("ad_insights", &rows()[0]).unwrap();
    let p = &out.events[1];
    assert_eq!(p.key, "purchase:120208765432100789:2024-06-01");
    assert_eq!(p.stage, Stage::Feedback);
    assert_eq!(p.event_type, "reported_purchases");
    // `purchase` is 9 / 734.12; omni_purchase (11 / 801.50) and the pixel purchase (12) are ignored,
    // never summed.
    assert_eq!(p.quantity, dec("9"));
    assert_eq!(p.value, Some(dec("734.12")));
    assert_eq!(p.attributes, json!({"platform": "meta_ads"}));
    assert_eq!(p.channel, Some(Channel::PaidSocial));
}

#[test]
fn rows_without_purchases_and_tiny_spend() {
    let out = MetaAdsMapper.map("ad_insights", &rows()[1]).unwrap();
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].value, Some(dec("0.10")));
    assert_eq!(out.events[0].value.unwrap().to_string(), "0.10");
    assert_eq!(out.events[0].quantity, dec("5120"));
}

#[test]
fn objects_map_to_nothing_and_bad_numbers_fail() {
    assert!(MetaAdsMapper
        .map("campaigns", &json!({"id": "1"}))
        .unwrap()
        .is_empty());
    let mut bad = rows()[0].clone();
    bad["spend"] = json!("12,5");
    assert!(MetaAdsMapper.map("ad_insights", &bad).is_err());
}
