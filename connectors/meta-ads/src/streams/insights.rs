//! `ad_insights`: which days a read covers, how they are planned as slices (one synchronous GET, or
//! async report jobs of at most [`INSIGHTS_JOB_DAYS`] days), the queue that runs the jobs side by side
//! and reads their rows in date order, and the checkpoints it is safe to save. The jobs themselves
//! (start, poll, split) are in [`jobs`](super::jobs).

use super::*;
use growthflow_core::poll::PollBackoff;

/// The dates to read: a backfill window's days; else core's [`read_start_day`] (the saved day less the
/// lookback, or `start`; an unreadable cursor is an error saying how to reset it) up to today. `None`
/// when the range is empty.
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
    } else {
        (read_start_day(request, Rewind::days(lookback_days))?, today)
    };
    let since = since.max(today - Duration::days(INSIGHTS_RETENTION_DAYS));
    let until = until.min(today);
    Ok((since <= until).then_some((since, until)))
}

/// Longest range of one planned async job. Longer ranges are cut into several jobs up front rather
/// than sent as one: Meta fails or times out large jobs (and only then would they be split, after
/// waiting for them), small ones rarely fail, and several of them run side by side (see
/// [`JobSlots`]) instead of one long job being waited for alone. 90 days keep a two-year
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
/// order, as many running as [`JobSlots`] allows; a failed job's parts take its place and
/// wait for slots like the slices behind them.
#[derive(Debug)]
struct InsightsState {
    queue: VecDeque<Queued>,
    /// The slice being read and the URL of its next page.
    current: Option<(Slice, Url)>,
    /// The saved cursor, which checkpoints never go below.
    floor: Option<NaiveDate>,
    /// The waits between polling rounds.
    backoff: PollBackoff,
    /// How many jobs may run, sized from Meta's insights throttle.
    slots: JobSlots,
}

impl InsightsState {
    fn running(&self) -> usize {
        self.queue
            .iter()
            .filter(|q| matches!(q.work, Work::Running(_)))
            .count()
    }

    /// Start jobs for the first async slices without one, in queue order, while [`JobSlots`]
    /// allows. New jobs reset the wait to [`JOB_POLL_FIRST`], as small jobs finish in seconds.
    async fn start_jobs(&mut self, reader: &Reader) -> Result<()> {
        let mut running = self.running();
        let mut started = false;
        for (i, q) in self.queue.iter_mut().enumerate() {
            let pct = reader.insights_throttle.pct();
            if matches!(q.work, Work::Broken(_)) || !self.slots.may_start(running, pct, i == 0) {
                break;
            }
            if q.slice.run_async && matches!(q.work, Work::Waiting) {
                q.work = Work::Running(reader.start_job(&q.slice).await?);
                running += 1;
                started = true;
            }
        }
        if started {
            self.backoff.reset();
        }
        Ok(())
    }

    /// One polling round: a single wait on the client's clock for all running jobs, then one poll of
    /// each. A failed job is split and its parts take its place, waiting for slots.
    async fn poll_round(&mut self, reader: &Reader) -> Result<()> {
        tracing::debug!(
            delay_s = self.backoff.next_delay().as_secs(),
            running = self.running(),
            "waiting for the insights jobs"
        );
        self.backoff.wait(reader.client.clock().as_ref()).await;
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
                    self.slots.completed(reader.insights_throttle.pct());
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
        self.slots.round_ended(reader.insights_throttle.pct());
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
                    return Err(Error::Internal(format!(
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

pub(super) fn read_insights(
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
        backoff: PollBackoff::new(JOB_POLL_FIRST, JOB_POLL_MAX),
        slots: JobSlots::default(),
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
                    // Rows and `paging.next` from one parse, made where the page is decoded.
                    let (records, next) = match reader.get_rows("insights", url, insight_rows).await
                    {
                        // A synchronous read Meta finds too large is asked again as an async job
                        // (split further if that fails too); its rows so far are upserted again.
                        Err(e) if !slice.run_async && crate::policy::asks_for_less_data(&e) => {
                            tracing::info!(
                                since = %slice.since,
                                until = %slice.until,
                                "Meta asked for less data at once: reading these days as an async report job"
                            );
                            let slice = Slice {
                                run_async: true,
                                ..slice
                            };
                            state.queue.push_front(Queued {
                                slice,
                                work: Work::Waiting,
                            });
                            return Ok((Page::new(Vec::new()), Some(state)));
                        }
                        other => other?,
                    };
                    let next = match next {
                        NextPage::Url(next) => Some(reader.next_url(&next)?),
                        _ => None,
                    };
                    (records?, next)
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
            Ok((Page::with_checkpoint(records, checkpoint), next))
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
                payload: Payload::from_value(row),
            })
        })
        .collect()
}

/// What [`insight_rows`] reads of a row; the rest is skipped, not built.
#[derive(Deserialize)]
struct InsightHead {
    ad_id: Option<Value>,
    date_start: Option<Value>,
}

/// [`insight_records`] of rows kept as the text Meta sent.
fn insight_rows(rows: Vec<Box<RawValue>>) -> Result<Vec<Record>> {
    rows.into_iter()
        .map(|row| {
            let head: Option<InsightHead> = serde_json::from_str(row.get()).ok();
            let field = |k: &str, v: Option<&Value>| {
                v.and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| Error::Decode {
                        message: format!("Meta insights row without {k}: {}", row.get()),
                    })
            };
            let ad_id = field("ad_id", head.as_ref().and_then(|h| h.ad_id.as_ref()))?;
            let date = field(
                "date_start",
                head.as_ref().and_then(|h| h.date_start.as_ref()),
            )?;
            Ok(Record {
                id: format!("{ad_id}:{date}"),
                cursor: Some(date),
                payload: Payload::from_raw(row),
            })
        })
        .collect()
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
    fn an_unreadable_cursor_says_how_to_reset_it() {
        // core's read_start_day decides, as for every stream: the error names the stream and the fix.
        let e = insights_range(
            &req(Some(json!({"cursor": "x"})), None),
            28,
            d("2024-06-10"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ad_insights"), "{e}");
        assert!(e.contains("--full-refresh"), "{e}");
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
}
