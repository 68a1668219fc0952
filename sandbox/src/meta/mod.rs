//! A simulated Meta (Facebook) ad account: campaigns, ad sets, ads and daily ad-level insights, served
//! like the Graph API's Marketing endpoints under `/meta/{version}/…` (see [`routes`]).
//!
//! Every number in an insights row is a string, as Meta sends it; `actions`/`action_values` carry
//! `purchase`, `omni_purchase` and `offsite_conversion.fb_pixel_purchase` on days with purchases.
//!
//! The insights can change while the server runs, as Meta's do: [`AdAccount::restate_recent_days`]
//! attributes late conversions to recent days. Async report jobs over more rows than
//! [`AdAccount::job_row_limit`] fail, like Meta's do on large accounts, and
//! [`AdAccount::fail_account_jobs_on`] makes every account-wide job over a given day fail, so that a
//! connector's splitting by window and by level can be exercised. A job runs for
//! [`AdAccount::job_run_time`] ([`routes::JOB_RUN_TIME`] unless changed) on the sandbox's clock (real time unless the sandbox was started on a
//! test clock) however often it is polled, so jobs started side by side finish side by side, as at
//! Meta.

pub mod routes;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
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

/// Days of insights generated, ending on the `end` day: two years, so that a two-year backfill has
/// data on every day (and a single async job over all of it would be too big for
/// [`JOB_ROW_LIMIT`]; a connector planning jobs of a few months stays under it).
pub const INSIGHT_DAYS: i64 = 730;

/// Default of [`AdAccount::job_row_limit`]: the most rows an async report job completes with.
pub const JOB_ROW_LIMIT: usize = 10_000;

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
    /// Daily ad-level insights rows (`level=ad`, `time_increment=1`), ordered by date then ad; behind
    /// a lock because restatements change them while the server reads them. Kept as numbers and
    /// rendered as the API's JSON only when served ([`AdAccount::render`]): two years of a large
    /// account held as JSON values took most of the demo's memory.
    insights: RwLock<Vec<Insight>>,
    /// What every row of an ad repeats: its ids and names, as served.
    ad_info: Vec<AdInfo>,
    /// The first generated day (row `day` 0).
    first_day: NaiveDate,
    /// The last generated day (the `end` day).
    last_day: NaiveDate,
    seed: u64,
    restatements: AtomicU64,
    throttled: AtomicU64,
    job_row_limit: AtomicUsize,
    /// [`AdAccount::job_run_time`] in milliseconds.
    job_run_ms: AtomicU64,
    jobs_started: AtomicU64,
    jobs_failed: AtomicU64,
    failing_days: Mutex<Vec<NaiveDate>>,
}

/// One ad's day of insights, as numbers; [`AdAccount::render`] makes the API's row of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Insight {
    /// Days after the first generated day.
    pub(crate) day: u16,
    /// Index of the ad in [`AdAccount::ads`] (and `ad_info`).
    pub(crate) ad: u32,
    pub(crate) impressions: i64,
    pub(crate) reach: i64,
    pub(crate) clicks: i64,
    pub(crate) link_clicks: i64,
    /// Spend in cents.
    pub(crate) spend: i64,
    /// (count, value in cents) of each of [`PURCHASE_TYPES`], on days with purchases.
    pub(crate) purchases: Option<[(i64, i64); 3]>,
}

/// The ids and names an ad's insights rows carry.
#[derive(Debug, Clone)]
pub(crate) struct AdInfo {
    pub(crate) campaign_id: Value,
    pub(crate) campaign_name: Value,
    pub(crate) adset_id: Value,
    pub(crate) adset_name: Value,
    pub(crate) ad_id: Value,
    pub(crate) ad_name: Value,
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
        let ad_info: Vec<AdInfo> = ads
            .iter()
            .map(|ad| {
                let adset = adsets
                    .iter()
                    .find(|s| s["id"] == ad["adset_id"])
                    .expect("parent ad set");
                let campaign = campaigns
                    .iter()
                    .find(|c| c["id"] == ad["campaign_id"])
                    .expect("parent campaign");
                AdInfo {
                    campaign_id: campaign["id"].clone(),
                    campaign_name: campaign["name"].clone(),
                    adset_id: adset["id"].clone(),
                    adset_name: adset["name"].clone(),
                    ad_id: ad["id"].clone(),
                    ad_name: ad["name"].clone(),
                }
            })
            .collect();
        let mut insights = Vec::new();
        let first = end.date_naive() - Duration::days(INSIGHT_DAYS - 1);
        for d in 0..INSIGHT_DAYS {
            for ad in 0..ads.len() {
                if rng.chance(0.08) {
                    continue; // not delivering that day: Meta returns no row
                }
                let impressions = rng.range(200, 6000);
                let reach = impressions * rng.range(70, 96) / 100;
                let clicks = impressions * rng.range(5, 30) / 1000;
                let link_clicks = clicks * rng.range(50, 95) / 100;
                let cpm_cents = rng.range(500, 1500);
                let spend = impressions * cpm_cents / 1000;
                let purchases = rng.chance(0.3).then(|| {
                    let p = rng.range(1, 4);
                    let omni = p + rng.range(0, 2);
                    let v = p * rng.range(2500, 12000);
                    let omni_v = v + (omni - p) * rng.range(2500, 9000);
                    // In the order of PURCHASE_TYPES.
                    [(p, v), (omni, omni_v), (p, v)]
                });
                insights.push(Insight {
                    day: d as u16,
                    ad: ad as u32,
                    impressions,
                    reach,
                    clicks,
                    link_clicks,
                    spend,
                    purchases,
                });
            }
        }
        AdAccount {
            account_id,
            access_token,
            campaigns,
            adsets,
            ads,
            insights: RwLock::new(insights),
            ad_info,
            first_day: first,
            last_day: end.date_naive(),
            seed,
            restatements: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            job_row_limit: AtomicUsize::new(JOB_ROW_LIMIT),
            job_run_ms: AtomicU64::new(routes::JOB_RUN_TIME.as_millis() as u64),
            jobs_started: AtomicU64::new(0),
            jobs_failed: AtomicU64::new(0),
            failing_days: Mutex::new(Vec::new()),
        }
    }

    /// A copy of the insights rows as the API serves them now (restatements included), ordered by
    /// date then ad.
    pub fn insights(&self) -> Vec<Value> {
        self.rows().iter().map(|r| self.render(r)).collect()
    }

    /// The rows of the days `since..=until` (both included) as [`AdAccount::insights`] lists them,
    /// rendering only those: two years of rows take a debug build about half a second to render.
    pub fn insights_between(&self, since: NaiveDate, until: NaiveDate) -> Vec<Value> {
        let rows = self.rows();
        let lo = rows.partition_point(|r| self.date_of(r) < since);
        let hi = rows.partition_point(|r| self.date_of(r) <= until);
        rows[lo..hi.max(lo)]
            .iter()
            .map(|r| self.render(r))
            .collect()
    }

    /// How many rows [`AdAccount::insights`] lists, without rendering them.
    pub fn insight_count(&self) -> usize {
        self.rows().len()
    }

    /// The last day of insights: the simulated now's day (the first is [`INSIGHT_DAYS`] − 1 days
    /// before it).
    pub fn last_day(&self) -> NaiveDate {
        self.last_day
    }

    pub(crate) fn rows(&self) -> RwLockReadGuard<'_, Vec<Insight>> {
        // A poisoned lock only means a panicking test thread; the rows are still whole.
        self.insights.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The day of a row.
    pub(crate) fn date_of(&self, r: &Insight) -> NaiveDate {
        self.first_day + Duration::days(i64::from(r.day))
    }

    /// The ids and names of a row's ad.
    pub(crate) fn ad_info(&self, r: &Insight) -> &AdInfo {
        &self.ad_info[r.ad as usize]
    }

    /// A row as the API serves it: every number a string, `actions`/`action_values` only when the
    /// row has some.
    pub(crate) fn render(&self, r: &Insight) -> Value {
        let date = self.date_of(r).to_string();
        let a = self.ad_info(r);
        let mut row = json!({
            "date_start": date, "date_stop": date, "account_id": self.account_id,
            "account_currency": "USD",
            "campaign_id": a.campaign_id, "campaign_name": a.campaign_name,
            "adset_id": a.adset_id, "adset_name": a.adset_name,
            "ad_id": a.ad_id, "ad_name": a.ad_name,
            "impressions": r.impressions.to_string(), "reach": r.reach.to_string(),
            "clicks": r.clicks.to_string(), "inline_link_clicks": r.link_clicks.to_string(),
            "spend": money(r.spend),
        });
        let mut actions = Vec::new();
        let mut values = Vec::new();
        if r.link_clicks > 0 {
            actions.push(json!({"action_type": "link_click", "value": r.link_clicks.to_string()}));
        }
        if let Some(p) = &r.purchases {
            for (t, (n, v)) in PURCHASE_TYPES.iter().zip(p) {
                actions.push(json!({"action_type": t, "value": n.to_string()}));
                values.push(json!({"action_type": t, "value": money(*v)}));
            }
        }
        if !actions.is_empty() {
            row["actions"] = Value::Array(actions);
        }
        if !values.is_empty() {
            row["action_values"] = Value::Array(values);
        }
        row
    }

    /// Restate the last `days` days (up to the `end` day), as Meta does while conversions are still
    /// being attributed: every row of those days stays, with its spend a little higher (1–3 %) and,
    /// on about half of them, one or two late purchases added to `purchase`, `omni_purchase` and
    /// `offsite_conversion.fb_pixel_purchase` (counts and values). Deterministic: the same seed and
    /// the same sequence of calls give the same rows; each call restates again.
    pub fn restate_recent_days(&self, days: i64) {
        if days <= 0 {
            return;
        }
        let round = self.restatements.fetch_add(1, Ordering::SeqCst) + 1;
        let from = self.last_day - Duration::days(days - 1);
        let first_day = self.first_day;
        let mut rows = self.insights.write().unwrap_or_else(|e| e.into_inner());
        for (i, row) in rows.iter_mut().enumerate() {
            if first_day + Duration::days(i64::from(row.day)) < from {
                continue;
            }
            let mut rng = SplitMix64::new(
                self.seed
                    ^ round.wrapping_mul(0xA24B_AED4_963E_E407)
                    ^ (i as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25),
            );
            restate_row(row, &mut rng);
        }
    }

    /// The most rows an async report job completes with; a job over more ends `Job Failed`.
    pub fn job_row_limit(&self) -> usize {
        self.job_row_limit.load(Ordering::SeqCst)
    }

    /// Change [`AdAccount::job_row_limit`] for the jobs started from now on.
    pub fn set_job_row_limit(&self, rows: usize) {
        self.job_row_limit.store(rows, Ordering::SeqCst);
    }

    /// How long an async report job runs before it completes ([`routes::JOB_RUN_TIME`] unless
    /// changed), on the sandbox's clock.
    pub fn job_run_time(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.job_run_ms.load(Ordering::SeqCst))
    }

    /// Change [`AdAccount::job_run_time`] for the jobs started from now on (whole milliseconds).
    pub fn set_job_run_time(&self, run_time: std::time::Duration) {
        self.job_run_ms
            .store(run_time.as_millis() as u64, Ordering::SeqCst);
    }

    /// Async report jobs started so far (`POST act_{id}/insights`).
    pub fn jobs_started(&self) -> u64 {
        self.jobs_started.load(Ordering::SeqCst)
    }

    /// Async report jobs that ended `Job Failed` so far (counted when the status is first served).
    pub fn jobs_failed(&self) -> u64 {
        self.jobs_failed.load(Ordering::SeqCst)
    }

    /// Make every async job started from now on at account scope (without `filtering`) whose range
    /// covers `date` fail, whatever its size; jobs narrowed to a campaign or ad set still complete.
    pub fn fail_account_jobs_on(&self, date: NaiveDate) {
        self.failing_days
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(date);
    }

    pub(crate) fn fails_account_job(&self, since: NaiveDate, until: NaiveDate) -> bool {
        self.failing_days
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|d| (since..=until).contains(d))
    }

    pub(crate) fn count_job_started(&self) {
        self.jobs_started.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_job_failed(&self) {
        self.jobs_failed.fetch_add(1, Ordering::SeqCst);
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

/// Money as Meta writes it (`"12.34"`) in cents.
#[cfg(test)]
pub(crate) fn cents(s: &str) -> i64 {
    let (units, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(2).collect();
    units.parse::<i64>().unwrap_or(0) * 100 + frac.parse::<i64>().unwrap_or(0)
}

/// The purchase action types, in the order generated rows list them.
const PURCHASE_TYPES: [&str; 3] = [
    "offsite_conversion.fb_pixel_purchase",
    "omni_purchase",
    "purchase",
];

/// One row restated: spend up, and sometimes late purchases added to every purchase alias.
fn restate_row(row: &mut Insight, rng: &mut SplitMix64) {
    let up = (row.spend * rng.range(1, 3) / 100).max(1);
    row.spend += up;
    if !rng.chance(0.5) {
        return;
    }
    let extra = rng.range(1, 2);
    let value = extra * rng.range(2500, 12000);
    for (n, v) in row.purchases.get_or_insert([(0, 0); 3]).iter_mut() {
        *n += extra;
        *v += value;
    }
}

#[cfg(test)]
mod tests;
