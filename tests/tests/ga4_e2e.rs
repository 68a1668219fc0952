//! End to end: `growthflow sync` and `report` against the sandbox's simulated GA4 property, authenticated
//! with a service-account key file, checked against values computed independently from the generated rows.

use growthflow_tests::{cli, db, dec, snapshot};
use std::collections::BTreeMap;

use growthflow_sandbox::{Sandbox, SandboxConfig};
use rust_decimal::Decimal;
use serde_json::Value;

fn close(got: &Value, want: Decimal, what: &str) {
    let got = dec(got);
    assert!(
        (got - want).abs() <= Decimal::new(1, 4),
        "{what}: report {got}, expected {want}"
    );
}

#[tokio::test]
async fn sync_and_report_give_the_generated_ga4_values() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let property = sandbox.ga4();
    let key = dir.path().join("service-account.json");
    std::fs::write(
        &key,
        property.service_account_json(&format!("{}/token", sandbox.ga4_url())),
    )
    .unwrap();
    let config = dir.path().join("growthflow.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[destination]
url = "sqlite://{db}"

[sync]
start_date = "2024-12-15"

[sources.web]
type = "ga4"
property_id = "{id}"
credentials_file = "{key}"
base_url = "{url}"
"#,
            db = dir.path().join("gf.db").display(),
            id = property.property_id,
            key = key.display(),
            url = sandbox.ga4_url(),
        ),
    )
    .unwrap();

    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let source = &summary["sources"][0];
    assert_eq!(source["source"], "web");
    assert_eq!(source["type"], "ga4");
    assert_eq!(source["status"], "ok", "{source}");
    assert!(property.tokens_issued() >= 1);

    let conn = db(&config);
    let raw: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM raw_records WHERE source='web' AND stream='traffic_daily'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raw, property.rows.len() as i64, "one raw record per row");

    let (since, until) = ("2025-03-01", "2025-06-15");
    let (code, out) = cli(
        &config,
        &[
            "report", "--since", since, "--until", until, "--format", "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();

    let (s, u) = (since.parse().unwrap(), until.parse().unwrap());
    let rows: Vec<_> = property
        .rows
        .iter()
        .filter(|row| row.date >= s && row.date <= u)
        .collect();
    let sum = |f: fn(&growthflow_sandbox::ga4::Row) -> i64| -> Decimal {
        rows.iter().map(|row| Decimal::from(f(row))).sum()
    };
    let sessions = sum(|r| r.sessions);
    let engaged = sum(|r| r.engaged_sessions);
    assert!(sessions > Decimal::ZERO);
    assert_eq!(dec(&r["awareness"]["sessions"]), sessions);
    assert_eq!(dec(&r["awareness"]["new_users"]), sum(|r| r.new_users));
    let c = &r["consideration"];
    assert_eq!(dec(&c["engaged_sessions"]), engaged);
    close(&c["engagement_rate"], engaged / sessions, "engagement_rate");
    assert_eq!(dec(&c["add_to_carts"]), sum(|r| r.add_to_carts));
    assert_eq!(dec(&c["checkouts_started"]), sum(|r| r.checkouts));
    assert_eq!(
        dec(&r["feedback"]["reported_purchases"]["ga4"]),
        sum(|r| r.ecommerce_purchases)
    );

    let mut per_campaign: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in &rows {
        if !["(direct)", "(organic)", "(referral)", "(not set)"].contains(&row.campaign.as_str()) {
            *per_campaign.entry(row.campaign.clone()).or_default() += Decimal::from(row.sessions);
        }
    }
    let campaigns = r["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), per_campaign.len(), "{campaigns:?}");
    for (name, want) in &per_campaign {
        let row = campaigns
            .iter()
            .find(|c| c["campaign"] == name.as_str())
            .unwrap_or_else(|| panic!("campaign {name} in {campaigns:?}"));
        assert_eq!(dec(&row["sessions"]), *want, "{name} sessions");
    }

    let before = snapshot(&conn);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        snapshot(&db(&config)),
        before,
        "a second sync changes nothing"
    );
    sandbox.shutdown().await;
}
