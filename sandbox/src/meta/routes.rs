//! The Graph API routes: `act_{id}/insights` (GET, and POST for async report jobs), `{report_run_id}`
//! and `{report_run_id}/insights`, `act_{id}/campaigns|adsets|ads`; token check, cursor paging,
//! usage headers and a sliding-window code-17 throttle.
//!
//! Insights are served at `level=ad` (the generated rows), `campaign` or `adset` (their sums per day:
//! impressions, reach, clicks, inline link clicks and spend; no actions), with `time_increment=1`,
//! and narrowed by `filtering` on `campaign.id` or `adset.id` (`IN` a list, or `EQUAL` one id); any
//! other level, increment or filter is a Graph-shaped 400 (code 100).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine;
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::{AdAccount, Insight, PREFIX};
use crate::clock::Time;
use crate::faults::{self, FaultLayer, Faults};

/// Requests allowed in any [`RATE_WINDOW`] before code 17 is answered.
pub const RATE_LIMIT: usize = 600;

/// The sliding window the rate is measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// How long a report job runs before it is `Job Completed`, by default ([`AdAccount::job_run_time`]
/// changes it): like Meta's, a job advances with time, not with polls, so jobs started side by side
/// finish side by side. A client polling after 1 s and then 2 s more sees `Job Running` first and
/// `Job Completed` on its second poll.
pub const JOB_RUN_TIME: Duration = Duration::from_millis(1500);

/// How long a job stays `Job Not Started`.
pub const JOB_QUEUED_TIME: Duration = Duration::from_millis(200);

/// When a job that cannot be built says `Job Failed`.
pub const JOB_FAIL_TIME: Duration = Duration::from_millis(800);

struct Job {
    query: InsightsQuery,
    started: Instant,
    /// How long it runs ([`AdAccount::job_run_time`] when it started).
    run_time: Duration,
    /// Too big, or over a day set to fail: ends `Job Failed`.
    fails: bool,
    failure_counted: bool,
}

/// What an insights request selects.
#[derive(Clone)]
struct InsightsQuery {
    since: NaiveDate,
    until: NaiveDate,
    level: Level,
    /// Campaign ids and ad set ids the rows must be in (`None`: not filtered on that field).
    campaigns: Option<Vec<String>>,
    adsets: Option<Vec<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ad,
    AdSet,
    Campaign,
}

struct MState {
    account: Arc<AdAccount>,
    recent: Mutex<VecDeque<Instant>>,
    jobs: Mutex<HashMap<String, Job>>,
    next_job: AtomicU64,
    traces: AtomicU64,
    /// The rate window's and the report jobs' clock.
    time: Time,
}

pub(crate) fn router(account: Arc<AdAccount>, faults: Faults, time: Time) -> Router {
    let state = Arc::new(MState {
        account,
        recent: Mutex::new(VecDeque::new()),
        jobs: Mutex::new(HashMap::new()),
        next_job: AtomicU64::new(0),
        traces: AtomicU64::new(0),
        time,
    });
    let prefix = format!("/{PREFIX}");
    Router::new()
        .route(&format!("{prefix}/{{*rest}}"), any(handle))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            FaultLayer {
                faults,
                platform: PREFIX,
            },
            faults::middleware,
        ))
}

fn json_response(status: StatusCode, body: &Value, usage: f64, regain: u64, id: &str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    let pct = (usage * 100.0).round() / 100.0;
    let buc = json!({ id: [{
        "type": "ads_insights", "call_count": pct, "total_cputime": (pct / 2.0).round(),
        "total_time": (pct / 2.0).round(), "estimated_time_to_regain_access": regain,
        "ads_api_access_tier": "standard_access"
    }]});
    let acc = json!({"acc_id_util_pct": pct, "reset_time_duration": regain * 60,
        "ads_api_access_tier": "standard_access"});
    if let Ok(v) = HeaderValue::from_str(&buc.to_string()) {
        h.insert("x-business-use-case-usage", v);
    }
    if let Ok(v) = HeaderValue::from_str(&acc.to_string()) {
        h.insert("x-ad-account-usage", v);
    }
    resp
}

impl MState {
    fn trace(&self) -> String {
        let n = self.traces.fetch_add(1, Ordering::SeqCst);
        format!("A{:022x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn error(
        &self,
        usage: f64,
        code: i64,
        typ: &str,
        message: &str,
        subcode: Option<i64>,
    ) -> Response {
        let mut err = json!({"message": message, "type": typ, "code": code,
            "fbtrace_id": self.trace()});
        if let Some(s) = subcode {
            err["error_subcode"] = json!(s);
        }
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": err }),
            usage,
            0,
            &self.account.account_id,
        )
    }

    fn unsupported(&self, usage: f64, method: &Method, object: &str) -> Response {
        let m = method.as_str().to_lowercase();
        self.error(
            usage,
            100,
            "GraphMethodException",
            &format!("Unsupported {m} request. Object with ID '{object}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"),
            Some(33),
        )
    }

    fn invalid_param(&self, usage: f64, message: &str) -> Response {
        self.error(
            usage,
            100,
            "OAuthException",
            &format!("(#100) {message}"),
            None,
        )
    }
}

async fn handle(State(state): State<Arc<MState>>, req: Request) -> Response {
    let method = req.method().clone();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    // The sliding-window rate and the usage it reports.
    let (usage, over) = {
        let now = state.time.now();
        let mut recent = state.recent.lock().expect("rate lock");
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
        {
            recent.pop_front();
        }
        recent.push_back(now);
        let n = recent.len();
        (
            (n as f64 * 100.0 / RATE_LIMIT as f64).min(100.0),
            n > RATE_LIMIT,
        )
    };
    let account = &state.account;
    if param("access_token").as_deref() != Some(account.access_token.as_str()) {
        return state.error(
            usage,
            190,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
            None,
        );
    }
    if over {
        account.count_throttle();
        let body = json!({"error": {"message": "User request limit reached", "type": "OAuthException",
            "is_transient": true, "code": 17, "error_subcode": 2_446_079,
            "fbtrace_id": state.trace()}});
        return json_response(
            StatusCode::BAD_REQUEST,
            &body,
            100.0,
            1,
            &account.account_id,
        );
    }
    let rest = path
        .strip_prefix(&format!("/{PREFIX}/"))
        .unwrap_or("")
        .trim_end_matches('/');
    let segments: Vec<&str> = rest.split('/').collect();
    let (version, object, edge) = match segments.as_slice() {
        [v, o] => (*v, *o, None),
        [v, o, e] => (*v, *o, Some(*e)),
        _ => return state.unsupported(usage, &method, rest),
    };
    if !version.starts_with('v') {
        return state.unsupported(usage, &method, version);
    }
    if let Some(w) = param("action_attribution_windows") {
        let ok = matches!(serde_json::from_str::<Value>(&w), Ok(Value::Array(a)) if a.iter().all(|x| {
            matches!(x.as_str(), Some("1d_click" | "7d_click" | "28d_click" | "1d_view" | "1d_ev" | "default" | "dda"))
        }));
        if !ok {
            return state.invalid_param(
                usage,
                "Param action_attribution_windows must be an array of 1d_click, 7d_click, 28d_click, 1d_view, 1d_ev, default, dda",
            );
        }
    }
    let act = format!("act_{}", account.account_id);
    let id = &account.account_id;
    match (&method, object, edge) {
        (&Method::GET, o, Some("insights")) if o == act => {
            let q = match insights_query(&param) {
                Ok(q) => q,
                Err(message) => return state.invalid_param(usage, &message),
            };
            let all = account.rows();
            let rows = select(account, &all, &q);
            page(
                &state,
                &rows,
                |r| r.render(account),
                &query,
                &host,
                &path,
                usage,
            )
        }
        (&Method::POST, o, Some("insights")) if o == act => {
            let q = match insights_query(&param) {
                Ok(q) => q,
                Err(message) => return state.invalid_param(usage, &message),
            };
            let account_wide = q.campaigns.is_none() && q.adsets.is_none();
            let fails = select(account, &account.rows(), &q).len() > account.job_row_limit()
                || (account_wide && account.fails_account_job(q.since, q.until));
            account.count_job_started();
            let n = state.next_job.fetch_add(1, Ordering::SeqCst);
            let run_id = format!("{}", 6_120_000_000_000_000u64 + n * 7919 + 1);
            state.jobs.lock().expect("jobs lock").insert(
                run_id.clone(),
                Job {
                    query: q,
                    started: state.time.now(),
                    run_time: account.job_run_time(),
                    fails,
                    failure_counted: false,
                },
            );
            json_response(
                StatusCode::OK,
                &json!({"report_run_id": run_id}),
                usage,
                0,
                id,
            )
        }
        (&Method::GET, o, Some(e)) if o == act && matches!(e, "campaigns" | "adsets" | "ads") => {
            let (items, object_name) = match e {
                "campaigns" => (&account.campaigns, "campaign"),
                "adsets" => (&account.adsets, "adset"),
                _ => (&account.ads, "ad"),
            };
            let mut selected: Vec<Value> = Vec::new();
            let filters = match param("filtering").map(|f| serde_json::from_str::<Value>(&f)) {
                None => Vec::new(),
                Some(Ok(Value::Array(a))) => a,
                Some(_) => return state.invalid_param(usage, "Param filtering must be an array"),
            };
            for item in items {
                let mut keep = true;
                for f in &filters {
                    let field = f["field"].as_str().unwrap_or("");
                    let short = field.rsplit('.').next().unwrap_or("");
                    if short != "updated_time"
                        || !(field == short || field == format!("{object_name}.{short}"))
                    {
                        return state
                            .invalid_param(usage, &format!("Filtering field {field} is invalid"));
                    }
                    let value = f["value"]
                        .as_i64()
                        .or_else(|| f["value"].as_str().and_then(|s| s.parse().ok()));
                    let Some(value) = value else {
                        return state
                            .invalid_param(usage, "Filtering value must be a unix timestamp");
                    };
                    let t = item["updated_time"]
                        .as_str()
                        .and_then(|s| {
                            chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z").ok()
                        })
                        .map(|t| t.timestamp())
                        .unwrap_or(0);
                    keep &= match f["operator"].as_str() {
                        Some("GREATER_THAN") => t > value,
                        Some("LESS_THAN") => t < value,
                        Some("GREATER_THAN_OR_EQUAL") => t >= value,
                        Some("LESS_THAN_OR_EQUAL") => t <= value,
                        _ => return state.invalid_param(usage, "Filtering operator is invalid"),
                    };
                }
                if keep {
                    selected.push(project(item.clone(), param("fields").as_deref(), &["id"]));
                }
            }
            page(&state, &selected, Value::clone, &query, &host, &path, usage)
        }
        (&Method::GET, run_id, edge) if run_id.chars().all(|c| c.is_ascii_digit()) => {
            let mut jobs = state.jobs.lock().expect("jobs lock");
            let Some(job) = jobs.get_mut(run_id) else {
                drop(jobs);
                return state.unsupported(usage, &method, run_id);
            };
            match edge {
                None => {
                    let age = state.time.now().saturating_duration_since(job.started);
                    let (status, pct) = if age < JOB_QUEUED_TIME {
                        ("Job Not Started", 0)
                    } else if job.fails && age >= JOB_FAIL_TIME {
                        ("Job Failed", 0)
                    } else if age < job.run_time {
                        let pct = 100 * age.as_millis() / job.run_time.as_millis().max(1);
                        ("Job Running", pct as u32)
                    } else {
                        ("Job Completed", 100)
                    };
                    let mut body = json!({"id": run_id, "account_id": id, "async_status": status,
                        "async_percent_completion": pct,
                        "date_start": job.query.since.to_string(),
                        "date_stop": job.query.until.to_string()});
                    if status == "Job Failed" {
                        body["error_code"] = json!(1);
                        body["error_message"] = json!(
                            "Please reduce the amount of data you're asking for, then retry your request"
                        );
                        if !job.failure_counted {
                            job.failure_counted = true;
                            account.count_job_failed();
                        }
                    }
                    drop(jobs);
                    json_response(StatusCode::OK, &body, usage, 0, id)
                }
                Some("insights") => {
                    if job.fails {
                        drop(jobs);
                        return state
                            .invalid_param(usage, "The report failed; start a smaller one");
                    }
                    if state.time.now().saturating_duration_since(job.started) < job.run_time {
                        drop(jobs);
                        return state.invalid_param(usage, "The report is not ready yet");
                    }
                    let q = job.query.clone();
                    drop(jobs);
                    let all = account.rows();
                    let rows = select(account, &all, &q);
                    page(
                        &state,
                        &rows,
                        |r| r.render(account),
                        &query,
                        &host,
                        &path,
                        usage,
                    )
                }
                Some(_) => {
                    drop(jobs);
                    state.unsupported(usage, &method, rest)
                }
            }
        }
        _ => state.unsupported(usage, &method, object),
    }
}

fn time_range(param: &impl Fn(&str) -> Option<String>) -> Option<(NaiveDate, NaiveDate)> {
    let v: Value = serde_json::from_str(&param("time_range")?).ok()?;
    let d = |k: &str| NaiveDate::parse_from_str(v.get(k)?.as_str()?, "%Y-%m-%d").ok();
    let (since, until) = (d("since")?, d("until")?);
    (since <= until).then_some((since, until))
}

/// The insights parameters the sandbox understands, or the message of the 400 for the others.
fn insights_query(param: &impl Fn(&str) -> Option<String>) -> Result<InsightsQuery, String> {
    let (since, until) = time_range(param).ok_or_else(|| {
        "time_range must be {\"since\":\"YYYY-MM-DD\",\"until\":\"YYYY-MM-DD\"}".to_string()
    })?;
    let level = match param("level").as_deref().unwrap_or("ad") {
        "ad" => Level::Ad,
        "adset" => Level::AdSet,
        "campaign" => Level::Campaign,
        other => {
            return Err(format!(
                "the sandbox serves level=ad, adset or campaign, not {other:?}"
            ))
        }
    };
    if param("time_increment").as_deref().unwrap_or("1") != "1" {
        return Err("the sandbox serves time_increment=1 only".into());
    }
    let mut q = InsightsQuery {
        since,
        until,
        level,
        campaigns: None,
        adsets: None,
    };
    let Some(filtering) = param("filtering") else {
        return Ok(q);
    };
    let Ok(Value::Array(filters)) = serde_json::from_str::<Value>(&filtering) else {
        return Err("Param filtering must be an array".into());
    };
    for f in &filters {
        let field = f["field"].as_str().unwrap_or("");
        let id = |v: &Value| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        };
        let ids: Vec<String> = match (f["operator"].as_str(), &f["value"]) {
            (Some("IN"), Value::Array(values)) => values.iter().filter_map(id).collect(),
            (Some("EQUAL"), v) => id(v).into_iter().collect(),
            _ => {
                return Err(format!(
                    "Filtering operator {} with value {} is invalid for {field}; the sandbox knows IN [ids] and EQUAL id",
                    f["operator"], f["value"]
                ))
            }
        };
        let slot = match field {
            "campaign.id" => &mut q.campaigns,
            "adset.id" => &mut q.adsets,
            _ => return Err(format!("Filtering field {field} is invalid")),
        };
        // Two filters on one field both apply.
        *slot = Some(match slot.take() {
            Some(old) => old.into_iter().filter(|i| ids.contains(i)).collect(),
            None => ids,
        });
    }
    Ok(q)
}

/// A row `select` picked: an ad's day (rendered only when its page is served), or a day's sum at a
/// wider level.
enum Picked<'a> {
    Ad(&'a Insight),
    Sum(Value),
}

impl Picked<'_> {
    fn render(&self, account: &AdAccount) -> Value {
        match self {
            Picked::Ad(r) => account.render(r),
            Picked::Sum(v) => v.clone(),
        }
    }
}

/// The rows `q` selects from `rows` (the account's): ad-level rows in its range and filters, summed
/// per day and campaign or ad set at the wider levels.
fn select<'a>(account: &AdAccount, rows: &'a [Insight], q: &InsightsQuery) -> Vec<Picked<'a>> {
    let in_list = |list: &Option<Vec<String>>, v: &Value| {
        list.as_ref()
            .is_none_or(|ids| ids.iter().any(|i| Some(i.as_str()) == v.as_str()))
    };
    // Rows are ordered by date: find the range instead of scanning two years for every page.
    let lo = rows.partition_point(|r| account.date_of(r) < q.since);
    let hi = rows.partition_point(|r| account.date_of(r) <= q.until);
    let ad_rows = rows[lo..hi.max(lo)].iter().filter(|r| {
        let a = account.ad_info(r);
        in_list(&q.campaigns, &a.campaign_id) && in_list(&q.adsets, &a.adset_id)
    });
    let (key, keep): (&str, &[&str]) = match q.level {
        Level::Ad => return ad_rows.map(Picked::Ad).collect(),
        Level::Campaign => ("campaign_id", &["campaign_id", "campaign_name"]),
        Level::AdSet => (
            "adset_id",
            &["campaign_id", "campaign_name", "adset_id", "adset_name"],
        ),
    };
    let mut out: Vec<Value> = Vec::new();
    let mut sums: Vec<[i64; 5]> = Vec::new();
    let mut index: HashMap<(u16, String), usize> = HashMap::new();
    for r in ad_rows {
        let a = account.ad_info(r);
        let id = if key == "campaign_id" {
            &a.campaign_id
        } else {
            &a.adset_id
        };
        let group = (r.day, id.to_string());
        let i = match index.get(&group) {
            Some(i) => *i,
            None => {
                index.insert(group, out.len());
                let row = account.render(r);
                let mut o = json!({"date_start": row["date_start"], "date_stop": row["date_stop"],
                    "account_id": row["account_id"], "account_currency": row["account_currency"]});
                for k in keep {
                    o[*k] = row[*k].clone();
                }
                out.push(o);
                sums.push([0; 5]);
                out.len() - 1
            }
        };
        let add = [r.impressions, r.reach, r.clicks, r.link_clicks, r.spend];
        for (total, a) in sums[i].iter_mut().zip(add) {
            *total += a;
        }
    }
    for (o, [impressions, reach, clicks, link, spend]) in out.iter_mut().zip(sums) {
        o["impressions"] = json!(impressions.to_string());
        o["reach"] = json!(reach.to_string());
        o["clicks"] = json!(clicks.to_string());
        o["inline_link_clicks"] = json!(link.to_string());
        o["spend"] = json!(format!("{}.{:02}", spend / 100, spend % 100));
    }
    out.into_iter().map(Picked::Sum).collect()
}

/// Only the requested fields (plus `always`), in that order; every field when none are named.
fn project(item: Value, fields: Option<&str>, always: &[&str]) -> Value {
    let Some(fields) = fields else {
        return item;
    };
    let Value::Object(mut item) = item else {
        return item;
    };
    let mut out = Map::new();
    let names = fields
        .split(',')
        .map(|f| f.split('{').next().unwrap_or("").trim())
        .chain(always.iter().copied());
    for name in names {
        // Moved, not copied: a name given twice is kept where it first came.
        if let Some(v) = item.remove(name) {
            out.insert(name.to_string(), v);
        }
    }
    Value::Object(out)
}

/// Rows per page when the request names no `limit` (the Graph API's default).
const DEFAULT_LIMIT: usize = 25;

/// One page of `rows` after the `after` cursor, `limit` long; `paging.next` is a full URL carrying
/// every query parameter of this request (the access token included) with the new `after`.
fn page<R>(
    state: &MState,
    rows: &[R],
    render: impl Fn(&R) -> Value,
    query: &[(String, String)],
    host: &str,
    path: &str,
    usage: f64,
) -> Response {
    let b64 = base64::engine::general_purpose::STANDARD;
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit = get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT)
        .min(5000);
    let start = match get("after") {
        None => 0,
        Some(a) => match b64
            .decode(a)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(i) => i + 1,
            None => return state.invalid_param(usage, "Invalid cursor for after"),
        },
    };
    let fields = get("fields");
    let end = (start + limit).min(rows.len());
    let data: Vec<Value> = rows
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .map(|r| {
            let r = render(r);
            if r.get("date_start").is_some() {
                project(r, fields, &["date_start", "date_stop"])
            } else {
                r
            }
        })
        .collect();
    let mut body = json!({ "data": data });
    if !data.is_empty() {
        let before = b64.encode(start.to_string());
        let after = b64.encode((end - 1).to_string());
        let mut paging = json!({"cursors": {"before": before, "after": after}});
        if end < rows.len() {
            let mut next = url::Url::parse(&format!("http://{host}{path}")).expect("valid url");
            {
                let mut q = next.query_pairs_mut();
                for (k, v) in query.iter().filter(|(k, _)| k != "after") {
                    q.append_pair(k, v);
                }
                q.append_pair("after", &after);
            }
            paging["next"] = Value::String(next.to_string());
        }
        body["paging"] = paging;
    }
    json_response(StatusCode::OK, &body, usage, 0, &state.account.account_id)
}
