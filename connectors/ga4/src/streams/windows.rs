//! Days read in windows side by side (when the daily token budget covers them), apart from `read`.

use super::*;

/// Up to this many days a read is not worth windows: three batches at most, read in sequence.
pub const WINDOWS_FROM_DAYS: i64 = 3 * MAX_BATCH as i64;

/// Days per window aimed at: four full batches, so that a window's first, one-day batch (when
/// nothing is known of the property's size yet) stays a small share.
pub const DAYS_PER_WINDOW: i64 = 4 * MAX_BATCH as i64;

/// The most windows one read is split into.
pub const MAX_WINDOWS: i64 = 64;

/// Whether to read `request` as windows of days side by side: only when it covers more than
/// [`WINDOWS_FROM_DAYS`] days (a first sync from `start_date`, a backfill); the engine asks only when
/// there is no saved cursor, so an incremental sync reads its lookback days in sequence — and only
/// when the property's daily token budget covers the read (see below).
pub(crate) async fn plan_windows(
    reader: &Reader,
    request: &ReadRequest,
) -> Result<Option<WindowPlan>> {
    let spec = reader.spec(&request.stream)?;
    if reader.limiter.config().cap <= 1 {
        return Ok(None);
    }
    let today = reader.client.clock().utc_now().date_naive();
    let (from, to) = days(request, reader.lookback_days, today)?;
    let n = (to - from).num_days() + 1;
    if n <= WINDOWS_FROM_DAYS {
        return Ok(None);
    }
    // The read's first request, made here: its day's cost and the property's daily budget say
    // whether the whole read fits in today's tokens. When it does not, the read goes in sequence,
    // so that a stop by the daily quota leaves the longest run of days committed, and no tokens are
    // spent on days past it that the next run would read again.
    reader.validate(&spec).await?;
    let first = reader
        .batch_run_reports(&spec, &[from])
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    reader.note_largest_day(&request.stream, row_count(&first).min(reader.page_size));
    let budget = daily_tokens(&first);
    reader
        .probed
        .lock()
        .expect("probe lock")
        .insert((request.stream.clone(), from), first);
    if let Some((cost, remaining)) = budget {
        if remaining < cost.max(1).saturating_mul((n - 1) as u64) {
            tracing::debug!(stream = %request.stream, days = n, remaining,
                "the daily token budget does not cover the read: in sequence");
            return Ok(None);
        }
    }
    let windows = n.div_euclid(DAYS_PER_WINDOW).clamp(2, MAX_WINDOWS) as usize;
    tracing::debug!(stream = %request.stream, days = n, windows, "reading in windows");
    Ok(Some(WindowPlan {
        since: start_of_day(from),
        until: start_of_day(to + Days::days(1)),
        windows,
        open_end: request.window.is_none(),
        limiter: Some(reader.limiter.clone()),
    }))
}

/// `(consumed, remaining)` of a report's daily token quota (`propertyQuota.tokensPerDay`), if sent.
pub fn daily_tokens(report: &Value) -> Option<(u64, u64)> {
    let q = report.pointer("/propertyQuota/tokensPerDay")?;
    let n = |k: &str| q.get(k).and_then(Value::as_u64);
    Some((n("consumed").unwrap_or(0), n("remaining")?))
}

/// The days of a window: those whose midnight (UTC, as the plan counts them) lies in `span`; an open
/// span reads on to today. Adjacent windows therefore share no day and leave none out.
pub fn span_days(span: Span, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let mut from = span.since.date_naive();
    if start_of_day(from) < span.since {
        from += Days::days(1);
    }
    let to = match span.until {
        Some(until) => (until - Days::seconds(1)).date_naive().min(today),
        None => today,
    };
    (from <= to).then_some((from, to))
}

/// Read the days of one window (see [`plan_windows`]) as [`read`] reads a range.
pub(crate) fn read_window(
    reader: Arc<Reader>,
    request: ReadRequest,
    span: Span,
) -> BoxStream<'static, Result<Page>> {
    let today = reader.client.clock().utc_now().date_naive();
    match span_days(span, today) {
        // A window of a first sync or a backfill: plan_windows checked the names (the metadata is
        // asked once per process), and core carries `checked` from the windows' checkpoints onto
        // the state it saves.
        Some((from, to)) => {
            let names = NameCheck {
                check: true,
                record: true,
            };
            read_days(reader, request.stream, from, to, true, names)
        }
        None => futures::stream::empty().boxed(),
    }
}
