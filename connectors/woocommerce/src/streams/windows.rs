//! A stream read in date windows side by side, apart from the one read loop every stream shares.

use super::*;

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
    let Some(range) = ReadRange::of(
        request,
        || reader.incremental_start(request),
        reader.client.clock().utc_now(),
    )?
    else {
        return Ok(None);
    };
    let plan = reader.span_plan(spec, request, range.span())?;
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
    let Some(windows) = windows_for_pages(pages) else {
        return Ok(None);
    };
    tracing::debug!(
        stream = plan.spec.def.name,
        total,
        windows,
        "reading in windows"
    );
    Ok(Some(WindowPlan {
        since: range.since,
        until: range.until,
        windows,
        open_end: range.open_end,
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
        Err(e) => failed_read(e),
    }
}
