//! The streams a Meta ad account is read as, declared as data, and the read loops they share.
//!
//! - `ad_insights`: `GET /{version}/act_{id}/insights` at `level=ad`, one row per ad and day
//!   (`time_increment=1`), incremental by date. Insights are restated while conversions are attributed
//!   (up to 28 days), so every sync re-reads `lookback_days` before the saved cursor and each row's id
//!   `{ad_id}:{date_start}` makes a restated day replace its row. Ranges of up to
//!   [`INSIGHTS_CHUNK_DAYS`] days are one synchronous GET; longer ones (first syncs, backfills) are
//!   planned up front ([`plan`]) as asynchronous report jobs (`POST` → `report_run_id` → poll →
//!   `/{report_run_id}/insights`) of at most [`INSIGHTS_JOB_DAYS`] days each, because long
//!   synchronous ranges time out at Meta and big jobs fail there.
//!
//!   The slices wait in a queue in date order. Up to [`MAX_CONCURRENT_JOBS`] of their jobs run at
//!   once, started in queue order as slots free up; each polling round waits once on the client's
//!   clock ([`JOB_POLL_FIRST`], doubling to [`JOB_POLL_MAX`], back to the first when new jobs start)
//!   and then polls every running job. The head slice's pages are read as soon as its job completed,
//!   while the jobs behind it keep running, so records still come in date order, one page at a time.
//!   A failed, skipped or timed-out job ([`JOB_TIMEOUT`] after its own start) is split and its parts
//!   take its place in the queue, to get jobs like any other slice: first the window in halves down
//!   to single days, then a day by level — one job per campaign that delivered that day, and a
//!   campaign-day that fails again one job per ad set (see [`Reader::split`]).
//!
//!   Each slice is checkpointed as `{"cursor": "<last complete date>"}` once its last page is read,
//!   never past a day that a queued, running or unread slice still covers (see
//!   [`completed_through`]). "Today" is the client clock's, so tests pin it.
//! - `campaigns`, `adsets`, `ads`: `GET /act_{id}/{edge}` filtered on `updated_time` (unix seconds),
//!   unsorted, so the engine saves the cursor when the stream is done.
//!
//! Every page after the first is `paging.next` followed as given, except for its `access_token`, which
//! is removed (the authenticator adds the configured one back) so the token is never copied, stored or
//! sent twice; a `next` URL on another origin than the API root is refused by the core HTTP client's
//! origin rule rather than sent the token.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde_json::{json, Value};
use url::Url;

use growthflow_core::connector::{Page, ReadRequest, Record, StreamDef, SyncMode};
use growthflow_core::http::HttpClient;
use growthflow_core::paginate::{paged, JsonCursor, NextPage};
use growthflow_core::time::{format_utc, parse_date, parse_utc};
use growthflow_core::{Error, Result};

/// Daily ad-level insights.
pub const AD_INSIGHTS: StreamDef = StreamDef {
    name: "ad_insights",
    primary_key: &["ad_id", "date_start"],
    mode: SyncMode::Incremental {
        cursor_field: "date_start",
    },
    sorted: false,
    parent: None,
    description: "Daily ad-level insights (GET /act_{id}/insights?level=ad&time_increment=1), \
                  incremental on date_start with a 28-day lookback",
};

/// Campaigns.
pub const CAMPAIGNS: StreamDef = StreamDef {
    name: "campaigns",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated_time",
    },
    sorted: false,
    parent: None,
    description: "Campaigns (GET /act_{id}/campaigns), incremental on updated_time",
};

/// Ad sets.
pub const ADSETS: StreamDef = StreamDef {
    name: "adsets",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated_time",
    },
    sorted: false,
    parent: None,
    description: "Ad sets (GET /act_{id}/adsets), incremental on updated_time",
};

/// Ads.
pub const ADS: StreamDef = StreamDef {
    name: "ads",
    primary_key: &["id"],
    mode: SyncMode::Incremental {
        cursor_field: "updated_time",
    },
    sorted: false,
    parent: None,
    description: "Ads (GET /act_{id}/ads), incremental on updated_time",
};

/// Every stream, in the order `discover` lists and `sync` reads them.
pub fn stream_defs() -> Vec<StreamDef> {
    vec![AD_INSIGHTS, CAMPAIGNS, ADSETS, ADS]
}

/// Insights fields requested (metrics arrive as strings; `account_currency` says what `spend` is in).
pub const INSIGHTS_FIELDS: &str = "date_start,date_stop,account_id,account_currency,campaign_id,\
campaign_name,adset_id,adset_name,ad_id,ad_name,impressions,reach,clicks,inline_link_clicks,spend,\
actions,action_values";

/// Campaign fields.
pub const CAMPAIGN_FIELDS: &str = "id,account_id,name,status,configured_status,effective_status,\
objective,buying_type,bid_strategy,daily_budget,lifetime_budget,budget_remaining,start_time,stop_time,\
created_time,updated_time,special_ad_categories";

/// Ad set fields.
pub const ADSET_FIELDS: &str = "id,account_id,name,campaign_id,status,effective_status,\
optimization_goal,billing_event,bid_strategy,daily_budget,lifetime_budget,start_time,end_time,\
created_time,updated_time";

/// Ad fields.
pub const AD_FIELDS: &str =
    "id,account_id,name,adset_id,campaign_id,status,effective_status,creative{id},created_time,updated_time";

/// Insights page size.
pub const INSIGHTS_PAGE_SIZE: u32 = 500;

/// Object page size.
pub const OBJECTS_PAGE_SIZE: u32 = 100;

/// Longest range read synchronously: longer ranges time out or run out of memory at Meta, so they go
/// through an async report job.
pub const INSIGHTS_CHUNK_DAYS: i64 = 30;

/// Meta keeps insights for 37 months; an older `time_range` is a 400, so starts are clamped to this
/// many days before today (36 months, leaving a margin).
pub const INSIGHTS_RETENTION_DAYS: i64 = 1095;

/// What every read needs: the client and where the account lives.
#[derive(Debug)]
pub struct Reader {
    /// The shared client (policy, auth, clock).
    pub client: HttpClient,
    /// `{base}/{version}/`.
    pub api_root: Url,
    /// The ad account's numeric id.
    pub account_id: String,
    /// Days re-read before the saved cursor.
    pub lookback_days: u32,
    /// `action_attribution_windows`.
    pub attribution_windows: Vec<String>,
}

impl Reader {
    /// `{root}act_{id}/{edge}`.
    pub fn account_url(&self, edge: &str) -> Url {
        let mut url = self.api_root.clone();
        url.set_path(&format!(
            "{}act_{}/{edge}",
            self.api_root.path(),
            self.account_id
        ));
        url
    }

    /// GET `url` on `endpoint` and decode the JSON body.
    pub async fn get(&self, endpoint: &str, url: Url) -> Result<Value> {
        let resp = self
            .client
            .send(endpoint, self.client.reqwest().get(url))
            .await?;
        resp.json()
    }

    /// The `level=ad` insights request for `[since, until]` (both inclusive, account time zone),
    /// narrowed to `scope`.
    pub fn insights_url(&self, since: NaiveDate, until: NaiveDate, scope: &Scope) -> Url {
        let mut url = self.account_url("insights");
        url.query_pairs_mut()
            .append_pair("level", "ad")
            .append_pair("time_increment", "1")
            .append_pair("time_range", &time_range(since, until))
            .append_pair("fields", INSIGHTS_FIELDS)
            .append_pair(
                "action_attribution_windows",
                &Value::from(self.attribution_windows.clone()).to_string(),
            )
            .append_pair("limit", &INSIGHTS_PAGE_SIZE.to_string());
        if let Some(filter) = scope.filtering() {
            url.query_pairs_mut()
                .append_pair("filtering", &filter.to_string());
        }
        url
    }

    /// A `paging.next` URL made safe to follow: on the client's origin (the API root's scheme, host and
    /// port) and without its `access_token` (the authenticator adds the configured one).
    pub fn next_url(&self, next: &str) -> Result<Url> {
        let url = Url::parse(next).map_err(|e| Error::Decode {
            message: format!("Meta paging.next is not a URL: {e}"),
        })?;
        let mut url = strip_access_token(&url);
        // Core refuses it on sending anyway; refusing on reading keeps it out of any checkpoint.
        self.client.check_origin(&url)?;
        url.set_fragment(None);
        Ok(url)
    }
}

/// `url` without any `access_token` query parameter.
pub fn strip_access_token(url: &Url) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    if kept.is_empty() {
        out.set_query(None);
    } else {
        out.query_pairs_mut().clear().extend_pairs(kept);
    }
    out
}

/// Read `request.stream` as pages.
pub fn read(reader: Arc<Reader>, request: ReadRequest) -> BoxStream<'static, Result<Page>> {
    match request.stream.as_str() {
        "ad_insights" => {
            let today = reader.today();
            // A backfill's checkpoints are not saved, so only an incremental read has a floor.
            let floor = match request.window {
                Some(_) => None,
                None => request.state_cursor().and_then(parse_date),
            };
            match insights_range(&request, reader.lookback_days, today) {
                Ok(Some((since, until))) => read_insights(reader, plan(since, until), floor),
                Ok(None) => futures::stream::empty().boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            }
        }
        "campaigns" => read_objects(reader, "campaigns", "campaign", CAMPAIGN_FIELDS, &request),
        "adsets" => read_objects(reader, "adsets", "adset", ADSET_FIELDS, &request),
        "ads" => read_objects(reader, "ads", "ad", AD_FIELDS, &request),
        other => {
            let e = Error::Other(format!(
                "Meta Ads has no stream {other:?}; streams: ad_insights, campaigns, adsets, ads"
            ));
            futures::stream::once(async move { Err(e) }).boxed()
        }
    }
}

/// `{"since":"…","until":"…"}`, Meta's `time_range`.
fn time_range(since: NaiveDate, until: NaiveDate) -> String {
    json!({"since": since.to_string(), "until": until.to_string()}).to_string()
}

/// The dates to read: a backfill window's days; else from the saved cursor minus the lookback, or from
/// `start`; up to today. `None` when the range is empty.
pub fn insights_range(
    request: &ReadRequest,
    lookback_days: u32,
    today: NaiveDate,
) -> Result<Option<(NaiveDate, NaiveDate)>> {
    let (since, until) = if let Some(w) = request.window {
        (
            w.since.date_naive(),
            (w.until - Duration::nanoseconds(1)).date_naive(),
        )
    } else if let Some(cursor) = request.state_cursor() {
        let saved = parse_date(cursor).ok_or_else(|| Error::Decode {
            message: format!("saved ad_insights cursor {cursor:?} is not a YYYY-MM-DD date"),
        })?;
        (saved - Duration::days(i64::from(lookback_days)), today)
    } else {
        (request.start.date_naive(), today)
    };
    let since = since.max(today - Duration::days(INSIGHTS_RETENTION_DAYS));
    let until = until.min(today);
    Ok((since <= until).then_some((since, until)))
}

/// Longest range of one planned async job. Longer ranges are cut into several jobs up front rather
/// than sent as one: Meta fails or times out large jobs (and only then would they be split, after
/// waiting for them), small ones rarely fail, and several of them run side by side (see
/// [`MAX_CONCURRENT_JOBS`]) instead of one long job being waited for alone. 90 days keep a two-year
/// backfill to nine jobs, so few calls are spent starting and polling them.
pub const INSIGHTS_JOB_DAYS: i64 = 90;

/// How a range is read: up to [`INSIGHTS_CHUNK_DAYS`] days with one synchronous GET; longer ranges as
/// asynchronous report jobs of at most [`INSIGHTS_JOB_DAYS`] days each, in date order (each split if
/// Meta fails it).
///
/// The jobs are of even length (they differ by a day at most) rather than full 90-day jobs and a
/// short remainder, so that every part of a long range is longer than [`INSIGHTS_CHUNK_DAYS`]: over
/// 90 days, `n` jobs share more than `90 × (n - 1)` days, at least 45 each.
pub fn plan(since: NaiveDate, until: NaiveDate) -> VecDeque<Slice> {
    let days = (until - since).num_days() + 1;
    if days <= INSIGHTS_CHUNK_DAYS {
        return VecDeque::from([Slice {
            since,
            until,
            run_async: false,
            scope: Scope::Account,
        }]);
    }
    let jobs = (days + INSIGHTS_JOB_DAYS - 1) / INSIGHTS_JOB_DAYS;
    let mut out = VecDeque::new();
    let mut start = since;
    for k in 0..jobs {
        // The first `days % jobs` jobs take the extra day.
        let len = days / jobs + i64::from(k < days % jobs);
        let end = start + Duration::days(len - 1);
        out.push_back(Slice {
            since: start,
            until: end,
            run_async: true,
            scope: Scope::Account,
        });
        start = end + Duration::days(1);
    }
    out
}

/// Which of the account's ads a slice covers. Narrower scopes only exist for single days that Meta
/// failed at a wider one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every ad of the account.
    Account,
    /// The ads of one campaign (its id).
    Campaign(String),
    /// The ads of one ad set (its id).
    AdSet(String),
}

impl Scope {
    /// The `filtering` that narrows a request to this scope; none for the whole account.
    pub fn filtering(&self) -> Option<Value> {
        let (field, id) = match self {
            Scope::Account => return None,
            Scope::Campaign(id) => ("campaign.id", id),
            Scope::AdSet(id) => ("adset.id", id),
        };
        Some(json!([{"field": field, "operator": "IN", "value": [id]}]))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Account => f.write_str("the whole account"),
            Scope::Campaign(id) => write!(f, "campaign {id}"),
            Scope::AdSet(id) => write!(f, "ad set {id}"),
        }
    }
}

/// One range of days, for one scope, read by one request sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// First day, inclusive.
    pub since: NaiveDate,
    /// Last day, inclusive.
    pub until: NaiveDate,
    /// Read through an async report job.
    pub run_async: bool,
    /// The ads it covers.
    pub scope: Scope,
}

impl Slice {
    /// The two halves of a multi-day slice (still async, same scope), or `None` for a single day.
    pub fn halves(&self) -> Option<(Slice, Slice)> {
        let days = (self.until - self.since).num_days();
        if days < 1 {
            return None;
        }
        let mid = self.since + Duration::days((days - 1) / 2);
        Some((
            Slice {
                until: mid,
                ..self.clone()
            },
            Slice {
                since: mid + Duration::days(1),
                ..self.clone()
            },
        ))
    }
}

/// The last day a finished slice lets the cursor claim complete: its last day, but never a day that a
/// slice still in `pending` covers (queued, running or completed but not yet read: the other campaigns
/// of a split day, or an earlier part of the range), never today or later (today is still being
/// spent), and never before the saved cursor `floor` (re-reading the lookback does not make days
/// already complete incomplete again).
pub fn completed_through<'a>(
    slice: &Slice,
    pending: impl IntoIterator<Item = &'a Slice>,
    today: NaiveDate,
    floor: Option<NaiveDate>,
) -> NaiveDate {
    let mut done = slice.until.min(today - Duration::days(1));
    if let Some(next) = pending.into_iter().map(|s| s.since).min() {
        done = done.min(next - Duration::days(1));
    }
    floor.map_or(done, |f| done.max(f))
}

/// The wait before the first polling round after jobs are started, and the first of the doubling
/// waits between rounds: small jobs finish in seconds, so a short first wait saves most of a sync's
/// time; doubles up to [`JOB_POLL_MAX`].
pub const JOB_POLL_FIRST: std::time::Duration = std::time::Duration::from_secs(1);

/// Longest wait between two polling rounds (Airbyte polls about every 30 s); long jobs cost a poll
/// every 30 s.
pub const JOB_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// A job still running after this long (on the client's clock, since that job was started) is given
/// up and split, as Meta says jobs can take up to about an hour.
pub const JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Most async jobs one read has running at once (started and not yet seen to end).
///
/// Jobs run side by side so that a long range waits about as long as its slowest job rather than the
/// sum of all of them. The number stays small because every job start and every poll is an insights
/// call counted against the ad account's hourly `ads_insights` quota (reported in
/// `x-business-use-case-usage`, and throttled with codes 17/80000 when spent), and because a job can
/// run for up to an hour, so many at once mostly spend quota on polls. No fixed cap on concurrent
/// jobs is documented; the `x-fb-ads-insights-throttle` header is what a finer limit would be sized
/// from (not read yet, see the README's gaps), so a fixed four is a conservative guess.
pub const MAX_CONCURRENT_JOBS: usize = 4;

/// How an async job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// `Job Completed`: its rows are at `/{report_run_id}/insights`.
    Completed(String),
    /// `Job Failed`, `Job Skipped` or timed out, with the status seen.
    Failed(String),
}

/// An async report job that was started and has not been seen to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Meta's id for it, used to poll it and to read its rows.
    pub report_run_id: String,
    /// The `async_status` of its last poll (empty before the first), for the timeout's message.
    pub status: String,
    /// When it was started on the client's clock: [`JOB_TIMEOUT`] counts from here, so a job that
    /// waited behind others is not timed out for their waits.
    pub started: std::time::Instant,
}

impl Reader {
    /// Today's date on the client's clock (UTC), so that tests decide which days are "recent".
    pub fn today(&self) -> NaiveDate {
        self.client.clock().utc_now().date_naive()
    }

    /// Start an async insights job for `slice`: the synchronous request's URL, POSTed.
    pub async fn start_job(&self, slice: &Slice) -> Result<Job> {
        let url = self.insights_url(slice.since, slice.until, &slice.scope);
        let resp = self
            .client
            .send("insights", self.client.reqwest().post(url))
            .await?;
        let started: Value = resp.json()?;
        let id = started
            .get("report_run_id")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| Error::Decode {
                message: format!("Meta async insights answer without a report_run_id: {started}"),
            })?;
        tracing::debug!(report_run_id = %id, since = %slice.since, until = %slice.until,
            scope = %slice.scope, "insights job started");
        Ok(Job {
            report_run_id: id,
            status: String::new(),
            started: self.client.clock().now(),
        })
    }

    /// Poll `job` once (no wait: the caller waits once per round for all its jobs). `None` while it
    /// still runs. Only `Job Completed` counts as done: `async_percent_completion` can reach 100
    /// earlier. A job still running [`JOB_TIMEOUT`] after it was started counts as failed.
    pub async fn poll_job(&self, job: &mut Job) -> Result<Option<JobOutcome>> {
        let mut url = self.api_root.clone();
        url.set_path(&format!("{}{}", self.api_root.path(), job.report_run_id));
        let status = self.get("insights", url).await?;
        let state = status
            .get("async_status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match state.as_str() {
            "Job Completed" => return Ok(Some(JobOutcome::Completed(job.report_run_id.clone()))),
            "Job Failed" | "Job Skipped" => {
                let why = status
                    .get("error_message")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty());
                return Ok(Some(JobOutcome::Failed(match why {
                    Some(m) => format!("{state}: {m}"),
                    None => state,
                })));
            }
            _ => {}
        }
        job.status = state;
        let running = self
            .client
            .clock()
            .now()
            .saturating_duration_since(job.started);
        if running >= JOB_TIMEOUT {
            return Ok(Some(JobOutcome::Failed(format!(
                "{} after {}s",
                job.status,
                running.as_secs()
            ))));
        }
        Ok(None)
    }

    /// The first page of a completed job's rows.
    pub fn job_insights_url(&self, report_run_id: &str) -> Url {
        let mut url = self.api_root.clone();
        url.set_path(&format!("{}{report_run_id}/insights", self.api_root.path()));
        url.query_pairs_mut()
            .append_pair("limit", &INSIGHTS_PAGE_SIZE.to_string());
        url
    }

    /// The narrower scopes that delivered on `day` inside `scope`: the campaigns of the account, or the
    /// ad sets of a campaign.
    ///
    /// Asked with a synchronous, one-day, one-field insights GET at `level=campaign` (or `adset`)
    /// rather than from the campaigns edge: insights only have rows for what delivered that day, so no
    /// job is started for the paused or long-finished campaigns an old account lists by the thousand,
    /// and such a query is far smaller than the ad-level job Meta just failed.
    pub async fn delivered(&self, day: NaiveDate, scope: &Scope) -> Result<Vec<Scope>> {
        let (level, key) = match scope {
            Scope::Account => ("campaign", "campaign_id"),
            Scope::Campaign(_) => ("adset", "adset_id"),
            Scope::AdSet(_) => return Ok(Vec::new()),
        };
        let mut url = self.account_url("insights");
        url.query_pairs_mut()
            .append_pair("level", level)
            .append_pair("time_range", &time_range(day, day))
            .append_pair("fields", key)
            .append_pair("limit", &INSIGHTS_PAGE_SIZE.to_string());
        if let Some(filter) = scope.filtering() {
            url.query_pairs_mut()
                .append_pair("filtering", &filter.to_string());
        }
        let mut ids: Vec<String> = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let body = self.get("insights", url).await?;
            for row in data_array(&body, "insights")? {
                let id = row
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::Decode {
                        message: format!("Meta {level}-level insights row without {key}: {row}"),
                    })?;
                if !ids.iter().any(|i| i == id) {
                    ids.push(id.to_string());
                }
            }
            if let NextPage::Url(n) = JsonCursor::url("/paging/next").next_from(&body) {
                next = Some(self.next_url(&n)?);
            }
        }
        Ok(ids
            .into_iter()
            .map(|id| match scope {
                Scope::Account => Scope::Campaign(id),
                _ => Scope::AdSet(id),
            })
            .collect())
    }

    /// The parts a failed job's slice is run again as, in date order: the two halves of a multi-day
    /// slice; for a single day, one slice per campaign that delivered that day, and for a failed
    /// campaign-day one per ad set. An ad set's day is as small as a job gets, so its failure is an
    /// error. An empty list means nothing delivered in that scope that day.
    pub async fn split(&self, slice: &Slice, status: &str) -> Result<Vec<Slice>> {
        if let Some((a, b)) = slice.halves() {
            tracing::info!(since = %slice.since, until = %slice.until, %status, scope = %slice.scope,
                "insights job failed; splitting the range in halves");
            return Ok(vec![a, b]);
        }
        if let Scope::AdSet(id) = &slice.scope {
            return Err(Error::Other(format!(
                "Meta could not build the insights of {} for ad set {id} (job ended with {status:?}), even \
                 split by day, campaign and ad set; run again later",
                slice.since
            )));
        }
        let parts = self.delivered(slice.since, &slice.scope).await?;
        tracing::info!(day = %slice.since, %status, scope = %slice.scope, parts = parts.len(),
            "insights job for a single day failed; splitting it by level");
        Ok(parts
            .into_iter()
            .map(|scope| Slice {
                scope,
                ..slice.clone()
            })
            .collect())
    }
}

/// Where a queued slice stands.
#[derive(Debug)]
enum Work {
    /// Nothing started: a synchronous slice (read when it is the head), or an async one waiting for
    /// a free job slot.
    Waiting,
    /// Its job runs.
    Running(Job),
    /// Its job completed (this `report_run_id`); the rows are read when the slice is the head, so
    /// they come in date order.
    Completed(String),
    /// Its job failed and nothing delivered in its scope that day: read as an empty page, so that
    /// its day is still checkpointed in its turn.
    Nothing,
    /// Its job failed and could not be split further (or listing its parts failed). Kept in place
    /// rather than returned at once, so that the rows of the slices before it are read and
    /// checkpointed first; nothing after it is started or polled.
    Broken(Error),
}

#[derive(Debug)]
struct Queued {
    slice: Slice,
    work: Work,
}

/// The read's queue, in date order: the head is the slice read next; jobs are started in queue
/// order, at most [`MAX_CONCURRENT_JOBS`] of them running; a failed job's parts take its place and
/// wait for slots like the slices behind them.
#[derive(Debug)]
struct InsightsState {
    queue: VecDeque<Queued>,
    /// The slice being read and the URL of its next page.
    current: Option<(Slice, Url)>,
    /// The saved cursor, which checkpoints never go below.
    floor: Option<NaiveDate>,
    /// The wait before the next polling round.
    delay: std::time::Duration,
}

impl InsightsState {
    fn running(&self) -> usize {
        self.queue
            .iter()
            .filter(|q| matches!(q.work, Work::Running(_)))
            .count()
    }

    /// Start jobs for the first async slices without one, in queue order, while fewer than
    /// [`MAX_CONCURRENT_JOBS`] run. New jobs reset the wait to [`JOB_POLL_FIRST`], as small jobs
    /// finish in seconds.
    async fn start_jobs(&mut self, reader: &Reader) -> Result<()> {
        let mut running = self.running();
        let mut started = false;
        for q in self.queue.iter_mut() {
            if running >= MAX_CONCURRENT_JOBS || matches!(q.work, Work::Broken(_)) {
                break;
            }
            if q.slice.run_async && matches!(q.work, Work::Waiting) {
                q.work = Work::Running(reader.start_job(&q.slice).await?);
                running += 1;
                started = true;
            }
        }
        if started {
            self.delay = JOB_POLL_FIRST;
        }
        Ok(())
    }

    /// One polling round: a single wait on the client's clock for all running jobs, then one poll of
    /// each. A failed job is split and its parts take its place, waiting for slots.
    async fn poll_round(&mut self, reader: &Reader) -> Result<()> {
        tracing::debug!(
            delay_s = self.delay.as_secs(),
            running = self.running(),
            "waiting for the insights jobs"
        );
        reader.client.clock().sleep(self.delay).await;
        self.delay = (self.delay * 2).min(JOB_POLL_MAX);
        let mut i = 0;
        while i < self.queue.len() {
            let outcome = match &mut self.queue[i].work {
                Work::Broken(_) => break,
                Work::Running(job) => reader.poll_job(job).await?,
                _ => None,
            };
            match outcome {
                None => i += 1,
                Some(JobOutcome::Completed(id)) => {
                    self.queue[i].work = Work::Completed(id);
                    i += 1;
                }
                Some(JobOutcome::Failed(status)) => {
                    let slice = self.queue[i].slice.clone();
                    match reader.split(&slice, &status).await {
                        Ok(parts) if parts.is_empty() => {
                            self.queue[i].work = Work::Nothing;
                            i += 1;
                        }
                        Ok(parts) => {
                            self.queue.remove(i);
                            for part in parts {
                                let work = Work::Waiting;
                                self.queue.insert(i, Queued { slice: part, work });
                                i += 1;
                            }
                        }
                        Err(e) => {
                            self.queue[i].work = Work::Broken(e);
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The next slice to read and its first page's URL (`None` when nothing delivered in it): the
    /// head's synchronous GET, or its job's rows once it completed — polling in rounds meanwhile,
    /// while the jobs behind it run too.
    async fn next_slice(&mut self, reader: &Reader) -> Result<(Slice, Option<Url>)> {
        loop {
            self.start_jobs(reader).await?;
            let head = self
                .queue
                .pop_front()
                .ok_or_else(|| Error::Other("ad_insights: no date range left to read".into()))?;
            let slice = head.slice;
            match head.work {
                Work::Running(job) => {
                    let work = Work::Running(job);
                    self.queue.push_front(Queued { slice, work });
                    self.poll_round(reader).await?;
                }
                Work::Waiting if slice.run_async => {
                    return Err(Error::Other(format!(
                        "ad_insights: no job slot for {}..{} ({}); this is a bug",
                        slice.since, slice.until, slice.scope
                    )))
                }
                Work::Waiting => {
                    let url = reader.insights_url(slice.since, slice.until, &slice.scope);
                    return Ok((slice, Some(url)));
                }
                Work::Completed(id) => return Ok((slice, Some(reader.job_insights_url(&id)))),
                Work::Nothing => return Ok((slice, None)),
                Work::Broken(e) => return Err(e),
            }
        }
    }
}

fn read_insights(
    reader: Arc<Reader>,
    plan: VecDeque<Slice>,
    floor: Option<NaiveDate>,
) -> BoxStream<'static, Result<Page>> {
    let first = InsightsState {
        queue: plan
            .into_iter()
            .map(|slice| Queued {
                slice,
                work: Work::Waiting,
            })
            .collect(),
        current: None,
        floor,
        delay: JOB_POLL_FIRST,
    };
    paged(first, move |mut state: InsightsState| {
        let reader = reader.clone();
        async move {
            let (slice, url) = match state.current.take() {
                Some((slice, url)) => (slice, Some(url)),
                None => state.next_slice(&reader).await?,
            };
            let (records, next_url) = match url {
                Some(url) => {
                    let body = reader.get("insights", url).await?;
                    let next = match JsonCursor::url("/paging/next").next_from(&body) {
                        NextPage::Url(next) => Some(reader.next_url(&next)?),
                        _ => None,
                    };
                    (insight_records(&body)?, next)
                }
                None => (Vec::new(), None),
            };
            let (checkpoint, next) = match next_url {
                Some(next) => {
                    state.current = Some((slice, next));
                    (None, Some(state))
                }
                None => {
                    let pending = state.queue.iter().map(|q| &q.slice);
                    let done = completed_through(&slice, pending, reader.today(), state.floor);
                    let cp = Some(json!({ "cursor": done.to_string() }));
                    (cp, (!state.queue.is_empty()).then_some(state))
                }
            };
            Ok((
                Page {
                    records,
                    checkpoint,
                    replaces: None,
                },
                next,
            ))
        }
    })
    .boxed()
}

/// The records of an insights page: id `{ad_id}:{date_start}`, cursor `date_start`.
pub fn insight_records(body: &Value) -> Result<Vec<Record>> {
    let data = data_array(body, "insights")?;
    data.iter()
        .map(|row| {
            let field = |k: &str| {
                row.get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::Decode {
                        message: format!("Meta insights row without {k}: {row}"),
                    })
            };
            let ad_id = field("ad_id")?;
            let date = field("date_start")?;
            Ok(Record {
                id: format!("{ad_id}:{date}"),
                cursor: Some(date.to_string()),
                payload: row.clone(),
            })
        })
        .collect()
}

fn data_array<'a>(body: &'a Value, what: &str) -> Result<&'a Vec<Value>> {
    body.get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Decode {
            message: format!(
                "Meta {what} response without a data array: {}",
                body.to_string().chars().take(200).collect::<String>()
            ),
        })
}

/// Meta's object times (`2024-03-12T15:02:47-0700`, an offset without colon) as RFC 3339 UTC.
pub fn parse_meta_time(s: &str) -> Option<DateTime<Utc>> {
    parse_utc(s).or_else(|| {
        DateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%z")
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

fn read_objects(
    reader: Arc<Reader>,
    edge: &'static str,
    object: &'static str,
    fields: &'static str,
    request: &ReadRequest,
) -> BoxStream<'static, Result<Page>> {
    let mut url = reader.account_url(edge);
    url.query_pairs_mut()
        .append_pair("fields", fields)
        .append_pair("limit", &OBJECTS_PAGE_SIZE.to_string());
    // Backfills and first runs read every object (they are few and old campaigns still spend); later
    // runs only what changed, one second early so that an edit in the cursor's own second is kept.
    let since = match (request.window, request.state_cursor()) {
        (None, Some(cursor)) => parse_meta_time(cursor),
        _ => None,
    };
    if let Some(since) = since {
        let filter = json!([{
            "field": format!("{object}.updated_time"),
            "operator": "GREATER_THAN",
            "value": since.timestamp() - 1,
        }]);
        url.query_pairs_mut()
            .append_pair("filtering", &filter.to_string());
    }
    paged(url, move |url: Url| {
        let reader = reader.clone();
        async move {
            let body = reader.get(edge, url).await?;
            let records = data_array(&body, edge)?
                .iter()
                .map(|o| {
                    let id = o
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| Error::Decode {
                            message: format!("Meta {edge} item without id: {o}"),
                        })?;
                    let cursor = o
                        .get("updated_time")
                        .and_then(Value::as_str)
                        .and_then(parse_meta_time)
                        .map(format_utc);
                    Ok(Record {
                        id: id.to_string(),
                        cursor,
                        payload: o.clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let next = match JsonCursor::url("/paging/next").next_from(&body) {
                NextPage::Url(next) => Some(reader.next_url(&next)?),
                _ => None,
            };
            Ok((
                Page {
                    records,
                    checkpoint: None,
                    replaces: None,
                },
                next,
            ))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use growthflow_core::connector::Window;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn req(state: Option<Value>, window: Option<Window>) -> ReadRequest {
        ReadRequest {
            stream: "ad_insights".into(),
            state,
            start: parse_utc("2024-01-01T00:00:00Z").unwrap(),
            window,
        }
    }

    #[test]
    fn ranges_start_at_cursor_minus_lookback_and_split_in_30_days() {
        let today = d("2024-06-10");
        let r = insights_range(&req(Some(json!({"cursor": "2024-06-05"})), None), 28, today);
        assert_eq!(r.unwrap(), Some((d("2024-05-08"), today)));
        let r = insights_range(&req(None, None), 28, today)
            .unwrap()
            .unwrap();
        assert_eq!(r, (d("2024-01-01"), today));
        let w = Window {
            since: parse_utc("2024-03-01T00:00:00Z").unwrap(),
            until: parse_utc("2024-04-01T00:00:00Z").unwrap(),
        };
        let r = insights_range(&req(None, Some(w)), 28, today)
            .unwrap()
            .unwrap();
        assert_eq!(r, (d("2024-03-01"), d("2024-03-31")));
        let p = plan(d("2024-03-01"), d("2024-03-30"));
        assert!(!p[0].run_async, "30 days are read synchronously");
        let p = plan(d("2024-03-01"), d("2024-04-05"));
        assert!(p[0].run_async, "31+ days go through an async job");
        let (a, b) = p[0].halves().unwrap();
        assert_eq!((a.since, a.until), (d("2024-03-01"), d("2024-03-18")));
        assert_eq!((b.since, b.until), (d("2024-03-19"), d("2024-04-05")));
        assert!(a.run_async && b.run_async);
        assert_eq!(a.scope, Scope::Account);
        let one = Slice {
            since: d("2024-03-01"),
            until: d("2024-03-01"),
            run_async: true,
            scope: Scope::Account,
        };
        assert_eq!(one.halves(), None);
        assert!(insights_range(&req(Some(json!({"cursor": "x"})), None), 28, today).is_err());
    }

    #[test]
    fn long_ranges_are_planned_as_even_jobs_of_at_most_90_days() {
        let lens = |p: &VecDeque<Slice>| -> Vec<i64> {
            p.iter()
                .map(|s| (s.until - s.since).num_days() + 1)
                .collect()
        };
        let p = plan(d("2023-12-01"), d("2024-06-17"));
        assert_eq!(lens(&p), [67, 67, 66]);
        assert_eq!(p[0].since, d("2023-12-01"));
        assert_eq!(p[2].until, d("2024-06-17"));
        let one = plan(d("2024-01-01"), d("2024-03-30"));
        assert_eq!(lens(&one), [90], "90 days are one job");
        assert!(one[0].run_async);
        assert_eq!(lens(&plan(d("2024-01-01"), d("2024-03-31"))), [46, 45]);
        // A three-year range: 13 jobs tiling it, every one async and within bounds.
        let (since, until) = (d("2021-07-16"), d("2024-07-15"));
        let p = plan(since, until);
        assert_eq!(p.len(), 13);
        assert_eq!(lens(&p).iter().sum::<i64>(), (until - since).num_days() + 1);
        for w in p.iter().collect::<Vec<_>>().windows(2) {
            assert_eq!(w[1].since, w[0].until + Duration::days(1));
        }
        assert!(p.iter().all(|s| s.run_async && s.scope == Scope::Account));
        assert!(lens(&p)
            .iter()
            .all(|n| *n > INSIGHTS_CHUNK_DAYS && *n <= INSIGHTS_JOB_DAYS));
        assert_eq!((p[0].since, p[12].until), (since, until));
    }

    fn slice(since: &str, until: &str, scope: Scope) -> Slice {
        Slice {
            since: d(since),
            until: d(until),
            run_async: true,
            scope,
        }
    }

    #[test]
    fn checkpoints_never_claim_a_day_with_parts_pending() {
        let today = d("2024-06-10");
        let c = |id: &str| Scope::Campaign(id.into());
        let next_window = slice("2024-03-02", "2024-03-31", Scope::Account);
        // A campaign's part of 2024-03-01 while another campaign of that day is still to read.
        let pending = VecDeque::from([
            slice("2024-03-01", "2024-03-01", c("2")),
            next_window.clone(),
        ]);
        let part = slice("2024-03-01", "2024-03-01", c("1"));
        assert_eq!(
            completed_through(&part, &pending, today, None),
            d("2024-02-29")
        );
        // The day's last part completes it.
        let pending = VecDeque::from([next_window]);
        assert_eq!(
            completed_through(&part, &pending, today, None),
            d("2024-03-01")
        );
        // Never today, nor below the saved cursor.
        let whole = slice("2024-05-01", "2024-06-10", Scope::Account);
        assert_eq!(
            completed_through(&whole, &VecDeque::new(), today, None),
            d("2024-06-09")
        );
        assert_eq!(
            completed_through(&part, &VecDeque::new(), today, Some(d("2024-06-01"))),
            d("2024-06-01")
        );
        assert_eq!(
            c("7").filtering(),
            Some(json!([{"field": "campaign.id", "operator": "IN", "value": ["7"]}]))
        );
        assert_eq!(
            Scope::AdSet("8".into()).filtering(),
            Some(json!([{"field": "adset.id", "operator": "IN", "value": ["8"]}]))
        );
        assert_eq!(Scope::Account.filtering(), None);
    }

    #[test]
    fn meta_times_without_colon_parse() {
        assert_eq!(
            format_utc(parse_meta_time("2024-06-01T07:45:19-0700").unwrap()),
            "2024-06-01T14:45:19Z"
        );
    }

    #[test]
    fn strip_token_keeps_the_rest() {
        let u = Url::parse("https://graph.facebook.com/v25.0/act_1/insights?access_token=EAAB&fields=a%2Cb&after=MQ").unwrap();
        assert_eq!(
            strip_access_token(&u).as_str(),
            "https://graph.facebook.com/v25.0/act_1/insights?fields=a%2Cb&after=MQ"
        );
    }
}
