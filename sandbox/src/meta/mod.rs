//! A simulated Meta (Facebook) ad account: campaigns, ad sets, ads and daily ad-level insights, served
//! like the Graph API's Marketing endpoints under `/meta/{version}/…` (see [`routes`]).
//!
//! Every number in an insights row is a string, as Meta sends it; `actions`/`action_values` carry
//! `purchase`, `omni_purchase` and `offsite_conversion.fb_pixel_purchase` on days with purchases.

pub mod routes;

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde_json::{json, Value};

use crate::rng::SplitMix64;

pub(crate) use routes::router;

/// Path prefix of the simulated Graph API.
pub const PREFIX: &str = "meta";

/// Campaign names: most match the stores' paid-social `utm_campaign` values so spend joins revenue.
const CAMPAIGN_NAMES: [&str; 6] = [
    "spring_sale",
    "fall_sale",
    "retargeting_always_on",
    "prospecting_lookalike",
    "summer_sale",
    "brand_video_awareness",
];

/// Days of insights generated, ending on the `end` day.
pub const INSIGHT_DAYS: i64 = 180;

/// The generated ad account.
#[derive(Debug)]
pub struct AdAccount {
    /// The numeric account id (without `act_`).
    pub account_id: String,
    /// The only access token accepted.
    pub access_token: String,
    /// Campaign objects as the API serves them.
    pub campaigns: Vec<Value>,
    /// Ad set objects.
    pub adsets: Vec<Value>,
    /// Ad objects.
    pub ads: Vec<Value>,
    /// Daily ad-level insights rows (`level=ad`, `time_increment=1`), ordered by date then ad.
    pub insights: Vec<Value>,
    throttled: AtomicU64,
}

fn meta_time(t: DateTime<Utc>) -> String {
    let tz = FixedOffset::west_opt(7 * 3600).expect("valid offset");
    t.with_timezone(&tz)
        .format("%Y-%m-%dT%H:%M:%S%z")
        .to_string()
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl AdAccount {
    /// Generate the account deterministically from `seed`, `scale` (0 is 1) and the simulated now.
    pub fn generate(seed: u64, scale: u32, end: DateTime<Utc>) -> AdAccount {
        let mut rng = SplitMix64::new(seed).fork(0x4d45_5441);
        let scale = scale.max(1);
        let account_id = format!("{}", rng.range(100_000_000_000_000, 999_999_999_999_999));
        let access_token = format!("EAAB{}", rng.alnum(60));
        let start = end - Duration::days(INSIGHT_DAYS);
        let mut next_id = rng.range(10_000_000_000_000, 19_999_999_999_999);
        let mut new_id = |rng: &mut SplitMix64| {
            next_id += rng.range(1, 5000);
            format!("1202{next_id}")
        };
        let mut campaigns = Vec::new();
        let mut adsets = Vec::new();
        let mut ads = Vec::new();
        for k in 0..scale {
            for name in CAMPAIGN_NAMES {
                let name = if k == 0 {
                    name.to_string()
                } else {
                    format!("{name}_{k}")
                };
                let cid = new_id(&mut rng);
                let created = start - Duration::seconds(rng.range(86_400, 60 * 86_400));
                let updated = end - Duration::seconds(rng.range(0, 170 * 86_400));
                let budget = rng.range(20, 200) * 100;
                let status = if rng.chance(0.8) { "ACTIVE" } else { "PAUSED" };
                campaigns.push(json!({
                    "id": cid, "account_id": account_id, "name": name, "status": status,
                    "configured_status": status, "effective_status": status,
                    "objective": "OUTCOME_SALES", "buying_type": "AUCTION",
                    "bid_strategy": "LOWEST_COST_WITHOUT_CAP", "daily_budget": budget.to_string(),
                    "budget_remaining": (budget / 2).to_string(),
                    "start_time": meta_time(created), "created_time": meta_time(created),
                    "updated_time": meta_time(updated), "special_ad_categories": [],
                }));
                for a in 0..2 {
                    let sid = new_id(&mut rng);
                    let s_created = created + Duration::seconds(rng.range(60, 3600));
                    let s_updated = end - Duration::seconds(rng.range(0, 170 * 86_400));
                    let audience = if a == 0 { "broad" } else { "lookalike_1pct" };
                    adsets.push(json!({
                        "id": sid, "account_id": account_id, "name": format!("{name} - {audience}"),
                        "campaign_id": cid, "status": "ACTIVE", "effective_status": "ACTIVE",
                        "optimization_goal": "OFFSITE_CONVERSIONS", "billing_event": "IMPRESSIONS",
                        "bid_strategy": "LOWEST_COST_WITHOUT_CAP",
                        "start_time": meta_time(s_created), "created_time": meta_time(s_created),
                        "updated_time": meta_time(s_updated),
                    }));
                    for c in 0..2 {
                        let aid = new_id(&mut rng);
                        let a_created = s_created + Duration::seconds(rng.range(60, 3600));
                        let a_updated = end - Duration::seconds(rng.range(0, 170 * 86_400));
                        let creative = if c == 0 { "video_15s" } else { "carousel_v2" };
                        ads.push(json!({
                            "id": aid, "account_id": account_id,
                            "name": format!("{name} - {audience} - {creative}"),
                            "adset_id": sid, "campaign_id": cid, "status": "ACTIVE",
                            "effective_status": "ACTIVE", "creative": {"id": new_id(&mut rng)},
                            "created_time": meta_time(a_created), "updated_time": meta_time(a_updated),
                        }));
                    }
                }
            }
        }
        let mut insights = Vec::new();
        let first = end.date_naive() - Duration::days(INSIGHT_DAYS - 1);
        for d in 0..INSIGHT_DAYS {
            let date = (first + Duration::days(d)).to_string();
            for ad in &ads {
                if rng.chance(0.08) {
                    continue; // not delivering that day: Meta returns no row
                }
                let adset = adsets
                    .iter()
                    .find(|s| s["id"] == ad["adset_id"])
                    .expect("parent ad set");
                let campaign = campaigns
                    .iter()
                    .find(|c| c["id"] == ad["campaign_id"])
                    .expect("parent campaign");
                let impressions = rng.range(200, 6000);
                let reach = impressions * rng.range(70, 96) / 100;
                let clicks = impressions * rng.range(5, 30) / 1000;
                let link = clicks * rng.range(50, 95) / 100;
                let cpm_cents = rng.range(500, 1500);
                let spend = impressions * cpm_cents / 1000;
                let mut row = json!({
                    "date_start": date, "date_stop": date, "account_id": account_id,
                    "account_currency": "USD",
                    "campaign_id": campaign["id"], "campaign_name": campaign["name"],
                    "adset_id": adset["id"], "adset_name": adset["name"],
                    "ad_id": ad["id"], "ad_name": ad["name"],
                    "impressions": impressions.to_string(), "reach": reach.to_string(),
                    "clicks": clicks.to_string(), "inline_link_clicks": link.to_string(),
                    "spend": money(spend),
                });
                let mut actions = Vec::new();
                let mut values = Vec::new();
                if link > 0 {
                    actions.push(json!({"action_type": "link_click", "value": link.to_string()}));
                }
                if rng.chance(0.3) {
                    let p = rng.range(1, 4);
                    let omni = p + rng.range(0, 2);
                    let v = p * rng.range(2500, 12000);
                    let omni_v = v + (omni - p) * rng.range(2500, 9000);
                    for (t, n, val) in [
                        ("offsite_conversion.fb_pixel_purchase", p, v),
                        ("omni_purchase", omni, omni_v),
                        ("purchase", p, v),
                    ] {
                        actions.push(json!({"action_type": t, "value": n.to_string()}));
                        values.push(json!({"action_type": t, "value": money(val)}));
                    }
                }
                if !actions.is_empty() {
                    row["actions"] = Value::Array(actions);
                }
                if !values.is_empty() {
                    row["action_values"] = Value::Array(values);
                }
                insights.push(row);
            }
        }
        AdAccount {
            account_id,
            access_token,
            campaigns,
            adsets,
            ads,
            insights,
            throttled: AtomicU64::new(0),
        }
    }

    /// How many code-17 "User request limit reached" answers were served so far.
    pub fn throttled_count(&self) -> u64 {
        self.throttled.load(Ordering::SeqCst)
    }

    pub(crate) fn count_throttle(&self) {
        self.throttled.fetch_add(1, Ordering::SeqCst);
    }

    /// The `value` of `action` in a row's `actions` (or `action_values` with `values`), if present.
    pub fn action(row: &Value, list: &str, action: &str) -> Option<String> {
        row.get(list)?
            .as_array()?
            .iter()
            .find(|a| a["action_type"] == action)
            .and_then(|a| a["value"].as_str())
            .map(str::to_string)
    }
}
