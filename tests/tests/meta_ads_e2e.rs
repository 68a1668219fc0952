//! End to end: `growthflow sync` and `report` against the sandbox's simulated Meta ad account (beside
//! its WooCommerce store, so campaigns join spend with revenue), checked against values computed
//! independently from the generated data.

use growthflow_tests::{cents, cli, db, dec, snapshot};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use growthflow_sandbox::{AdAccount, Sandbox, SandboxConfig};
use rust_decimal::Decimal;
use serde_json::Value;

struct Env {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        Env {
            sandbox: Sandbox::start(SandboxConfig::default()).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn account(&self) -> &AdAccount {
        self.sandbox.meta()
    }

    /// A config with the sandbox's WooCommerce store and Meta ad account, in `sub/`.
    fn config(&self, sub: &str) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let store = self.sandbox.woocommerce();
        let text = format!(
            r#"
[destination]
url = "sqlite://{db}"

[sync]
start_date = "2024-06-01"

[sources.woo]
type = "woocommerce"
url = "{woo_url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"

[sources.ads]
type = "meta_ads"
ad_account_id = "{id}"
access_token = "{token}"
base_url = "{meta_url}"
"#,
            db = dir.join("gf.db").display(),
            woo_url = self.sandbox.woocommerce_url(),
            ck = store.consumer_key,
            cs = store.consumer_secret,
            id = self.account().account_id,
            token = self.account().access_token,
            meta_url = self.sandbox.meta_url(),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn close(got: &Value, want: Decimal, what: &str) {
    let got = dec(got);
    let diff = (got - want).abs();
    assert!(
        diff <= Decimal::new(1, 4),
        "{what}: report {got}, expected {want}"
    );
}

#[tokio::test]
async fn sync_and_report_give_the_generated_meta_values() {
    let env = Env::start().await;
    let config = env.config("a");
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let source = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "ads")
        .expect("the meta_ads source is in the summary");
    assert_eq!(source["type"], "meta_ads");
    assert_eq!(source["status"], "ok", "{source}");
    let account = env.account();
    assert_eq!(account.throttled_count(), 0, "no code 17 during the sync");

    let conn = db(&config);
    let count = |stream: &str| -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM raw_records WHERE source='ads' AND stream=?1",
            [stream],
            |r| r.get(0),
        )
        .unwrap()
    };
    for (stream, n) in [
        ("ad_insights", account.insights.len()),
        ("campaigns", account.campaigns.len()),
        ("adsets", account.adsets.len()),
        ("ads", account.ads.len()),
    ] {
        assert_eq!(count(stream), n as i64, "{stream} in raw_records");
    }

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

    let rows: Vec<&Value> = account
        .insights
        .iter()
        .filter(|row| (since..=until).contains(&row["date_start"].as_str().unwrap()))
        .collect();
    let (mut impressions, mut clicks, mut spend, mut purchases) =
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut per_campaign: BTreeMap<String, (Decimal, Decimal, Decimal)> = BTreeMap::new();
    for row in &rows {
        let (i, c, s) = (
            dec(&row["impressions"]),
            dec(&row["clicks"]),
            dec(&row["spend"]),
        );
        impressions += i;
        clicks += c;
        spend += s;
        if let Some(p) = AdAccount::action(row, "actions", "purchase") {
            purchases += dec(&Value::String(p));
        }
        let e = per_campaign
            .entry(row["campaign_name"].as_str().unwrap().to_lowercase())
            .or_default();
        e.0 += s;
        e.1 += i;
        e.2 += c;
    }
    assert!(impressions > Decimal::ZERO && purchases > Decimal::ZERO);
    let a = &r["awareness"];
    assert_eq!(dec(&a["impressions"]), impressions);
    assert_eq!(dec(&a["clicks"]), clicks);
    assert_eq!(cents(dec(&a["spend"])), cents(spend));
    close(&a["ctr"], clicks / impressions, "ctr");
    assert_eq!(
        cents(dec(&a["cpm"])),
        cents(spend / impressions * Decimal::from(1000)),
        "cpm"
    );
    assert_eq!(
        dec(&r["feedback"]["reported_purchases"]["meta_ads"]),
        purchases,
        "the purchase action only, not omni_purchase or the pixel alias"
    );

    let campaigns: HashMap<String, &Value> = r["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["campaign"].as_str().unwrap().trim().to_lowercase(), c))
        .collect();
    let mut joined = 0;
    for (name, (s, i, c)) in &per_campaign {
        let row = campaigns
            .get(name)
            .unwrap_or_else(|| panic!("campaign {name} in the report: {}", r["campaigns"]));
        assert_eq!(row["channel"], "paid_social", "{row}");
        assert_eq!(cents(dec(&row["spend"])), cents(*s), "{name} spend");
        assert_eq!(dec(&row["impressions"]), *i, "{name} impressions");
        assert_eq!(dec(&row["clicks"]), *c, "{name} clicks");
        let revenue = dec(&row["revenue"]);
        if revenue > Decimal::ZERO {
            joined += 1;
            let roas = dec(&row["roas"]);
            assert!(
                (roas - revenue / *s).abs() <= Decimal::new(5, 3),
                "{name} roas: report {roas}, expected {}",
                revenue / *s
            );
        }
    }
    assert!(joined >= 2, "spend joins store revenue: {}", r["campaigns"]);

    let before = snapshot(&conn);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        snapshot(&db(&config)),
        before,
        "a second sync changes nothing"
    );
    assert_eq!(
        account.throttled_count(),
        0,
        "no code 17 during the second sync"
    );
}
