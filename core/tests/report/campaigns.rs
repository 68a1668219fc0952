//! Campaigns: spellings, channels and placeholders joined, and Klaviyo campaigns joined by name.

use super::*;

#[test]
fn campaign_channel_falls_back_and_placeholders_are_ignored() {
    let c = db();
    // Orders only: most common channel of its orders.
    for (id, ch) in [
        ("1", "referral"),
        ("2", "referral"),
        ("3", "organic_social"),
    ] {
        order(
            &c,
            Order {
                id,
                utm_campaign: Some("Influencer"),
                channel: Some(ch),
                total: 10.0,
                ..Default::default()
            },
        );
    }
    // Placeholders and blanks never become campaigns, in any source.
    order(
        &c,
        Order {
            id: "4",
            utm_campaign: Some("(not set)"),
            total: 10.0,
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            id: "5",
            utm_campaign: Some("  "),
            total: 10.0,
            ..Default::default()
        },
    );
    for p in [
        "(direct)",
        "(organic)",
        "(referral)",
        "(not set)",
        "(Not Set)",
    ] {
        event(
            &c,
            Ev {
                event_type: "sessions",
                campaign: Some(p),
                channel: Some("direct"),
                quantity: 3.0,
                ..Default::default()
            },
        );
    }
    // GA4 campaign without a usable channel, with orders of another → orders decide.
    event(
        &c,
        Ev {
            event_type: "sessions",
            campaign: Some("Mystery"),
            channel: None,
            quantity: 7.0,
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            id: "6",
            utm_campaign: Some("mystery"),
            channel: Some("email"),
            total: 5.0,
            ..Default::default()
        },
    );
    // A campaign nobody can place.
    event(
        &c,
        Ev {
            event_type: "sessions",
            campaign: Some("Lonely"),
            channel: None,
            quantity: 1.0,
            ..Default::default()
        },
    );
    let r = build(&c, &window("2025-03-01", "2025-03-30")).unwrap();
    let got: Vec<(&str, &str, i64, i64)> = r
        .campaigns
        .iter()
        .map(|c| {
            (
                c.campaign.as_str(),
                c.channel.as_str(),
                c.orders,
                c.sessions,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Influencer", "referral", 3, 0),
            ("Mystery", "email", 1, 7),
            ("Lonely", "other", 0, 1),
        ]
    );
    assert_eq!(r.awareness.sessions, 15 + 7 + 1);
}

#[test]
fn klaviyo_campaigns_join_by_name_with_channel_email() {
    let c = db();
    // A Klaviyo campaign (name resolved by the rebuild), and a store order tagged with it.
    event(
        &c,
        Ev {
            source: "email",
            event_type: "email_clicked",
            channel: Some("email"),
            campaign: Some("Spring Launch"),
            ..Default::default()
        },
    );
    event(
        &c,
        Ev {
            source: "email",
            event_type: "placed_order",
            channel: Some("email"),
            campaign: Some("Spring Launch"),
            value: Some(25.0),
            currency: Some("USD"),
            attributes: json!({"attributed": true}),
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            id: "1",
            total: 25.0,
            utm_campaign: Some(" spring launch"),
            channel: Some("email"),
            ..Default::default()
        },
    );
    let j = build(&c, &window("2025-03-15", "2025-03-15"))
        .unwrap()
        .to_json();
    assert_eq!(
        j["campaigns"],
        json!([{"campaign": "Spring Launch", "channel": "email", "spend": 0, "impressions": 0,
                "clicks": 0, "sessions": 0, "orders": 1, "revenue": 25, "roas": null}])
    );
}
