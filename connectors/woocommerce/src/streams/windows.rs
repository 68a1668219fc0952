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
    let (resp, items) = reader.get_list(url.clone(), plan.spec.path).await?;
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
    // No more windows than can be read at once: every window ends on a short page, a request of its
    // own, and a window that turns out big is split once the others leave room (core's windows).
    let windows = windows.min(reader.limiter.config().cap.max(2));
    tracing::debug!(
        stream = plan.spec.def.name,
        total,
        windows,
        "reading in windows"
    );
    // The count's one record is the range's oldest (the query sorts ascending on the windows' date).
    // When more than a window's width lies before it, the windows start at it instead of at
    // `start_date`: years before a store's first order are otherwise split into windows of nothing
    // (an empty request each) while all the orders crowd into the last few, read page after page.
    // Nothing can appear before it later: a record modified meanwhile moves to now (the open last
    // window), and creation dates do not change.
    let width = (range.until - range.since) / windows.max(1) as i32;
    let first = date_of(&plan, items.first().map(|b| &**b));
    let since = first
        .filter(|t| *t - range.since > width && *t < range.until)
        .unwrap_or(range.since);
    // Likewise at the other end of an incremental read: months between the newest record and now
    // would be windows of nothing. The last window reads on past `until` whatever it is, so ending
    // the split at the newest record (one more request: the same query, newest first) skips nothing.
    let mut until = range.until;
    if range.open_end {
        if let Some(first) = first {
            set_query(&mut url, &[param("order", "desc")]);
            let (_, items) = reader.get_list(url, plan.spec.path).await?;
            if let Some(newest) = date_of(&plan, items.first().map(|b| &**b)) {
                let end = newest + Duration::seconds(1);
                if newest > first && end > since && range.until - newest > width {
                    until = end;
                }
            }
        }
    }
    Ok(Some(WindowPlan {
        since,
        until,
        windows,
        open_end: range.open_end,
        limiter: Some(reader.limiter.clone()),
    }))
}

/// The date the windows of `plan` split on, of a record its query listed first: the modification
/// time for reads by modification (keyset), else the creation time.
fn date_of(plan: &Plan, first: Option<&RawValue>) -> Option<DateTime<Utc>> {
    let field = if plan.keyset {
        plan.spec.cursor_field()
    } else {
        "date_created_gmt"
    };
    let head: Head = serde_json::from_str(first?.get()).ok()?;
    gmt_value(head.field(field), field, "count").ok().flatten()
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
