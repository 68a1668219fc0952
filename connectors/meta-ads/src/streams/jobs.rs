//! Meta's asynchronous insights report jobs: starting one for a slice, polling it, reading a completed
//! job's rows, and splitting the slice of a job Meta failed (in halves, then a day by campaign and ad
//! set). The queue that decides which jobs run is in [`insights`](super::insights).

use super::*;

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

/// The async jobs a read runs at once when it starts, and keeps to while Meta sends no
/// `x-fb-ads-insights-throttle` header.
///
/// Jobs run side by side so that a long range waits about as long as its slowest job rather than the
/// sum of all of them. Every job start and every poll is an insights call counted against the ad
/// account's `ads_insights` quota (reported in `x-business-use-case-usage`, throttled with codes
/// 17/80000 when spent), and a job can run for up to an hour, so many at once mostly spend quota on
/// polls. No fixed cap on concurrent jobs is documented; [`JobSlots`] sizes the number from the
/// insights throttle Meta reports on each insights call.
pub const FIRST_CONCURRENT_JOBS: usize = 4;

/// The most async jobs one read runs at once, however low the insights throttle.
pub const MAX_CONCURRENT_JOBS: usize = 10;

/// An insights throttle (the higher of `app_id_util_pct` and `acc_id_util_pct`) below this lets each
/// completed job make room for one more.
pub const THROTTLE_GROW_BELOW: f64 = 50.0;

/// An insights throttle at or above this halves the jobs a read runs, and starts no new job while one
/// runs: Meta throttles insights calls at 100.
pub const THROTTLE_SHRINK_AT: f64 = 75.0;

/// The latest insights throttle Meta reported to this connector, shared by its reads: the throttle is
/// the app's and the ad account's, not one read's.
#[derive(Debug)]
pub(crate) struct InsightsThrottle(std::sync::atomic::AtomicU64);

/// [`InsightsThrottle`]'s "nothing reported yet".
const NO_THROTTLE: u64 = u64::MAX;

impl Default for InsightsThrottle {
    fn default() -> Self {
        InsightsThrottle(std::sync::atomic::AtomicU64::new(NO_THROTTLE))
    }
}

impl InsightsThrottle {
    /// Keep the throttle an insights answer reports, if it reports one.
    pub(crate) fn note(&self, resp: &growthflow_core::http::Response) {
        if let Some(pct) = crate::policy::insights_throttle_pct(resp) {
            self.0
                .store(pct.to_bits(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The last throttle reported, in percent.
    pub(crate) fn pct(&self) -> Option<f64> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            NO_THROTTLE => None,
            bits => Some(f64::from_bits(bits)),
        }
    }
}

/// How many async jobs a read may run: additive increase while Meta's insights throttle is low,
/// halving when it is high (as TCP sizes its window), between one and [`MAX_CONCURRENT_JOBS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSlots {
    limit: usize,
}

impl Default for JobSlots {
    fn default() -> Self {
        JobSlots {
            limit: FIRST_CONCURRENT_JOBS,
        }
    }
}

impl JobSlots {
    /// The jobs that may run now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether one more job may start while `running` run, the throttle last reported being `pct`.
    /// The queue's head may always start: everything behind it waits for its rows.
    pub fn may_start(&self, running: usize, pct: Option<f64>, head: bool) -> bool {
        head || (running < self.limit && pct.is_none_or(|p| p < THROTTLE_SHRINK_AT))
    }

    /// A job completed: with the throttle low, one more may run.
    pub fn completed(&mut self, pct: Option<f64>) {
        if pct.is_some_and(|p| p < THROTTLE_GROW_BELOW) {
            self.limit = (self.limit + 1).min(MAX_CONCURRENT_JOBS);
        }
    }

    /// A polling round ended, the throttle last reported being `pct`: a high one halves the jobs.
    pub fn round_ended(&mut self, pct: Option<f64>) {
        if pct.is_some_and(|p| p >= THROTTLE_SHRINK_AT) {
            self.limit = (self.limit / 2).max(1);
        }
    }
}

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

    /// A job's start or poll, its answer's insights throttle noted for [`JobSlots`].
    async fn job_call(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let (resp, body) = self
            .client
            .send_decoded("insights", request, |resp| resp.json::<Value>())
            .await?;
        self.insights_throttle.note(&resp);
        Ok(body)
    }

    /// Start an async insights job for `slice`: the synchronous request's URL, POSTed.
    pub async fn start_job(&self, slice: &Slice) -> Result<Job> {
        let url = self.insights_url(slice.since, slice.until, &slice.scope);
        let started = self.job_call(self.client.reqwest().post(url)).await?;
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
        let mut url = self.api_base.clone();
        url.set_path(&format!("{}{}", self.api_base.path(), job.report_run_id));
        let status = self.job_call(self.client.reqwest().get(url)).await?;
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
        let mut url = self.api_base.clone();
        url.set_path(&format!("{}{report_run_id}/insights", self.api_base.path()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_grow_while_the_throttle_is_low_and_halve_when_it_is_high() {
        let mut slots = JobSlots::default();
        assert_eq!(slots.limit(), FIRST_CONCURRENT_JOBS);
        // No header seen: nothing changes.
        slots.completed(None);
        slots.round_ended(None);
        assert_eq!(slots.limit(), 4);
        // Between the two bounds: hold.
        slots.completed(Some(60.0));
        slots.round_ended(Some(60.0));
        assert_eq!(slots.limit(), 4);
        for _ in 0..20 {
            slots.completed(Some(10.0));
        }
        assert_eq!(slots.limit(), MAX_CONCURRENT_JOBS);
        slots.round_ended(Some(80.0));
        assert_eq!(slots.limit(), 5);
        for _ in 0..5 {
            slots.round_ended(Some(99.0));
        }
        assert_eq!(slots.limit(), 1);
    }

    #[test]
    fn a_high_throttle_starts_nothing_beside_a_running_job_but_the_head() {
        let slots = JobSlots::default();
        assert!(slots.may_start(3, None, false));
        assert!(!slots.may_start(4, None, false));
        assert!(slots.may_start(3, Some(74.9), false));
        assert!(!slots.may_start(0, Some(75.0), false));
        assert!(slots.may_start(9, Some(100.0), true));
    }
}
