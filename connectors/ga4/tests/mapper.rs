//! The mapper's exact rows for a traffic_daily record.

use rust_decimal::Decimal;
use serde_json::json;

use growthflow_core::model::{Channel, JourneyMapper, Stage};
use growthflow_ga4::Ga4Mapper;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn a_row_becomes_daily_events() {
    let record = json!({
        "property": "123456789",
        "date": "2024-06-01",
        "dimensions": {"date":"20240601","sessionSource":"facebook","sessionMedium":"paid_social",
                       "sessionCampaignName":"summer_launch_2024","sessionDefaultChannelGroup":"Paid Social"},
        "metrics": {"sessions":"1204","newUsers":"941","engagedSessions":"618","addToCarts":"0",
                    "checkouts":"30","ecommercePurchases":"12","purchaseRevenue":"1390.15"},
        "metadata": {"currencyCode":"USD"}
    });
    let m = Ga4Mapper;
    assert_eq!(m.source_type(), "ga4");
    let rows = m.map("traffic_daily", &record).unwrap();
    let got: Vec<_> = rows
        .events
        .iter()
        .map(|e| (e.event_type.as_str(), e.stage, e.quantity))
        .collect();
    assert_eq!(
        got,
        vec![
            ("sessions", Stage::Awareness, d("1204")),
            ("new_users", Stage::Awareness, d("941")),
            ("engaged_sessions", Stage::Consideration, d("618")),
            ("checkouts_started", Stage::Consideration, d("30")),
            ("reported_purchases", Stage::Feedback, d("12")),
        ]
    );
    for e in &rows.events {
        assert_eq!(e.date.to_string(), "2024-06-01");
        assert_eq!(e.occurred_at.to_rfc3339(), "2024-06-01T00:00:00+00:00");
        assert_eq!(e.campaign.as_deref(), Some("summer_launch_2024"));
        assert_eq!(e.channel, Some(Channel::PaidSocial));
    }
    let p = rows.events.last().unwrap();
    assert_eq!(p.value, Some(d("1390.15")));
    assert_eq!(p.currency.as_deref(), Some("USD"));
    assert_eq!(p.attributes, json!({"platform":"ga4"}));
    let keys: std::collections::HashSet<_> = rows.events.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys.len(), rows.events.len());
}

#[test]
fn placeholders_are_no_campaign_and_other_streams_map_nothing() {
    let record = json!({
        "date": "2024-06-01",
        "dimensions": {"sessionCampaignName":"(direct)","sessionDefaultChannelGroup":"Direct"},
        "metrics": {"sessions":"511","ecommercePurchases":"0","purchaseRevenue":"0"}
    });
    let rows = Ga4Mapper.map("traffic_daily", &record).unwrap();
    assert_eq!(rows.events.len(), 1);
    assert_eq!(rows.events[0].campaign, None);
    assert_eq!(rows.events[0].channel, Some(Channel::Direct));
    assert!(Ga4Mapper.map("report_x", &record).unwrap().is_empty());
}
