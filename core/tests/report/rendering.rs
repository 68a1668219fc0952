//! The report rendered: the CSV's two tables and its quoting, and the terminal table.

use super::*;

#[test]
fn csv_has_a_metrics_table_and_one_row_per_campaign() {
    let conn = fixture();
    let r = build(&conn, &window("2025-03-01", "2025-03-30")).unwrap();
    let csv = r.to_csv();
    let (lines, campaigns) = csv_tables(&csv);
    assert_eq!(lines[0], "section,metric,value");
    for line in [
        "report,since,2025-03-01",
        "report,until,2025-03-30",
        "report,currency,USD",
        "awareness,impressions,17000",
        "awareness,clicks,310",
        "awareness,ctr,0.018235294117647058",
        "awareness,spend,220",
        "awareness,cpm,12.941176470588236",
        "awareness,sessions,205",
        "consideration,engagement_rate,0.5853658536585366",
        "conversion,orders,5",
        "conversion,revenue,120.1",
        "conversion,aov,30.025",
        "conversion,cart_abandonment_rate,0.2857142857142857",
        "retention,repeat_purchase_rate,0.6666666666666666",
        "retention,ltv,73.36666666666666",
        "retention,email_attributed_revenue,70.1",
        "feedback,refunds,4",
        "feedback,refunded_amount,18.05",
        "feedback,refund_rate,0.15029142381348876",
        "feedback,reported_purchases.meta_ads,6",
        "feedback,reported_purchases.ga4,5",
        "feedback,reported_purchases.klaviyo,3",
        "feedback,reported_purchases.store,5",
        "other_currencies,EUR.orders,1",
        "other_currencies,EUR.revenue,10",
        "other_currencies,EUR.refunded_amount,2.5",
        "other_currencies,EUR.email_attributed_revenue,30",
    ] {
        assert!(lines.contains(&line), "missing {line:?} in\n{csv}");
    }
    // 3 report rows + 31 metrics + 1 other currency × 6 fields, plus the header.
    assert_eq!(lines.len(), 1 + 3 + 31 + 6);
    assert!(lines.iter().all(|l| l.split(',').count() == 3), "{csv}");

    assert_eq!(
        campaigns[0],
        [
            "campaign",
            "channel",
            "spend",
            "impressions",
            "clicks",
            "sessions",
            "orders",
            "revenue",
            "roas"
        ]
    );
    // One row per campaign, in the JSON's order, each with every column.
    assert_eq!(campaigns.len(), 1 + 4, "{csv}");
    let json = r.to_json();
    let names: Vec<&str> = json["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign"].as_str().unwrap())
        .collect();
    assert_eq!(
        campaigns[1..]
            .iter()
            .map(|c| c[0].as_str())
            .collect::<Vec<_>>(),
        names
    );
    let row = |name: &str| campaigns.iter().find(|c| c[0] == name).unwrap().clone();
    let spring = row("Spring Sale");
    assert_eq!(spring[1], "paid_social");
    assert_eq!(spring[2], "200");
    assert_eq!(spring[7], "70.09");
    assert_eq!(spring[8], "0.35045");
    let brand = row("Google Brand");
    assert_eq!(brand[5], "35");
    assert_eq!(brand[8], "", "unknown roas is empty");
}

#[test]
fn csv_quotes_awkward_campaign_names() {
    let c = db();
    order(
        &c,
        Order {
            id: "1",
            utm_campaign: Some("Sale, \"50%\" off\nnow"),
            total: 10.0,
            ..Default::default()
        },
    );
    let csv = build(&c, &window("2025-03-01", "2025-03-30"))
        .unwrap()
        .to_csv();
    assert!(csv.contains("\n\"Sale, \"\"50%\"\" off\nnow\","), "{csv}");
    let (_, campaigns) = csv_tables(&csv);
    assert_eq!(campaigns.len(), 2, "{csv}");
    assert_eq!(campaigns[1][0], "Sale, \"50%\" off\nnow");
    assert_eq!(campaigns[1][6], "1");
    assert_eq!(campaigns[1][7], "10");
}

#[test]
fn table_shows_every_stage_and_the_campaigns() {
    let conn = fixture();
    let table = build(&conn, &window("2025-03-01", "2025-03-30"))
        .unwrap()
        .to_table();
    assert!(table.contains("2025-03-01 .. 2025-03-30 (USD)"), "{table}");
    for heading in [
        "AWARENESS",
        "CONSIDERATION",
        "CONVERSION",
        "RETENTION",
        "FEEDBACK",
        "CAMPAIGNS",
    ] {
        assert!(table.contains(heading), "{heading} missing in\n{table}");
    }
    let line = |metric: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(metric))
            .unwrap_or_else(|| panic!("no {metric} line in\n{table}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    assert_eq!(line("impressions"), "17000");
    assert_eq!(line("ctr"), "1.82%");
    assert_eq!(line("spend"), "220.00");
    // The table alone rounds, for display.
    assert_eq!(line("revenue"), "120.10");
    assert_eq!(line("aov"), "30.03");
    assert_eq!(line("ltv"), "73.37");
    assert_eq!(line("refund_rate"), "15.03%");
    assert!(table.contains("OTHER CURRENCIES"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["EUR", "revenue", "10.00"]),
        "{table}"
    );
    assert_eq!(line("reported_purchases.meta_ads"), "6");
    let spring = table.lines().find(|l| l.contains("Spring Sale")).unwrap();
    let cols: Vec<&str> = spring.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "Spring",
            "Sale",
            "paid_social",
            "200.00",
            "15000",
            "300",
            "40",
            "2",
            "70.09",
            "0.35x"
        ]
    );
    let brand = table.lines().find(|l| l.contains("Google Brand")).unwrap();
    assert!(brand.trim_end().ends_with('-'), "{brand}");
    // Columns line up: every campaign row is as wide as the header.
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| *l != "CAMPAIGNS")
        .skip(1)
        .collect();
    let width = rows[0].chars().count();
    assert!(rows.iter().all(|r| r.chars().count() == width), "{table}");
}
