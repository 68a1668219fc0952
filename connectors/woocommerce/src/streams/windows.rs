//! A stream read in date windows side by side, apart from the one read loop every stream shares.

use super::*;

/// Below this many pages a read is not worth windows: a few sequential pages are quick, and every
/// window costs a request or two of its own.
pub const WINDOWS_FROM_PAGES: u64 = 8;

/// Pages per window aimed at: enough that a window's extra requests (its short last page, a keyset
/// re-read of its newest second) stay a small share, few enough that there are windows to spread.
pub const PAGES_PER_WINDOW: u64 = 4;

/// The most windows one read is split into.
pub const MAX_WINDOWS: u64 = 64;

/// Whether to read `request` in windows: only streams with a server-side date filter, and only when
/// one cheap request (`per_page=1`, reading `X-WP-Total`) says the range holds more than
/// [`WINDOWS_FROM_PAGES`] pages. The engine asks only for first syncs and backfills, so an
/// incremental sync never pays for it.
pub(crate) async fn plan_windows(
    reader: &Reader,
    request: &ReadRequest,
) -> Result<Option<WindowPlan>> {
    let spec = Spec::of(&request.stream).ok_or_else(|| unknown_stream(&request.stream))?;
    if spec.filter == Filter::ClientSide || reader.limiter.config().cap <= 1 {
        // No date filter, or one request at a time configured: windows would only add requests.
        return Ok(None);
    }
    let (since, until, open_end) = match request.window {
        Some(w) => (w.since, w.until, false),
        None => (
            reader.incremental_start(request)?,
            reader.client.clock().utc_now(),
            true,
        ),
    };
    if until <= since {
        return Ok(None);
    }
    let span = Span {
        since,
        until: (!open_end).then_some(until),
    };
    let plan = reader.span_plan(spec, request, span)?;
    let mut url = plan.url.clone();
    set_query(&mut url, &plan.params);
    set_query(&mut url, &[param("page", "1"), param("per_page", "1")]);
    let (resp, _) = reader.get_list(url, plan.spec.path).await?;
    let Some(total) = resp
        .header("X-WP-Total")
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return Ok(None);
    };
    let pages = total.div_ceil(u64::from(reader.per_page.max(1)));
    if pages <= WINDOWS_FROM_PAGES {
        return Ok(None);
    }
    let windows = (pages / PAGES_PER_WINDOW).clamp(2, MAX_WINDOWS) as usize;
    tracing::debug!(
        stream = plan.spec.def.name,
        total,
        windows,
        "reading in windows"
    );
    Ok(Some(WindowPlan {
        since,
        until,
        windows,
        open_end,
        limiter: Some(reader.limiter.clone()),
    }))
}

/// Read one window of a stream (see [`plan_windows`]), paged like a whole read.
pub(crate) fn read_window(
    reader: Arc<Reader>,
    request: ReadRequest,
    span: Span,
) -> BoxStream<'static, Result<Page>> {
    let plan = Spec::of(&request.stream)
        .ok_or_else(|| unknown_stream(&request.stream))
        .and_then(|spec| reader.span_plan(spec, &request, span));
    match plan {
        Ok(plan) => read_plan(reader, Arc::new(plan)),
        Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
    }
}
