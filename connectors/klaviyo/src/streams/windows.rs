//! Events read in date windows side by side, apart from the one read loop every stream shares.

use super::*;

/// Events are the one stream read in windows: they are by far the largest, and `/api/events` filters
/// `datetime` on both sides (`greater-or-equal`, `less-than`) and sorts by it. Other streams are small
/// or can only be filtered from below, so they are read in sequence.
///
/// Klaviyo gives no count, so one request — the first page of the whole range, sorted by `datetime` —
/// measures the range: if it is the only page, windows would only add requests; else its records'
/// spread estimates how many pages the rest holds, and the windows start at its first event (there is
/// none before it in the range). The engine asks only for first syncs and backfills, so an
/// incremental sync never pays for it.
pub(crate) async fn plan_windows(
    reader: &Reader,
    request: &ReadRequest,
) -> Result<Option<WindowPlan>> {
    let Some(spec) = Spec::of(&request.stream).filter(|s| s.def.name == "events") else {
        return Ok(None);
    };
    if reader.limiter.config().cap <= 1 {
        return Ok(None);
    }
    let Some(range) = ReadRange::of(
        request,
        || reader.incremental_start(&spec, request, false),
        reader.client.clock().utc_now(),
    )?
    else {
        return Ok(None);
    };
    let urls = reader.urls(&spec, &Reader::span_filters(range.span()));
    let Some(url) = urls.into_iter().next() else {
        return Ok(None);
    };
    let document = reader.get(url.clone(), spec.path).await?;
    let measured = measure(&spec, &document, range.since, range.until)?;
    let Some((first, pages, windows)) =
        measured.and_then(|(first, pages)| Some((first, pages, windows_for_pages(pages)?)))
    else {
        // Not worth windows: the read in sequence starts with the same URL and takes this page.
        reader
            .probed
            .lock()
            .expect("probe lock")
            .insert(url.to_string(), document);
        return Ok(None);
    };
    tracing::debug!(stream = spec.def.name, pages, windows, "reading in windows");
    Ok(Some(WindowPlan {
        since: first,
        until: range.until,
        windows,
        open_end: range.open_end,
        limiter: Some(reader.limiter.clone()),
    }))
}

/// Where the events of a range start and how many pages they fill, from the range's first page
/// (sorted by `datetime`): `None` when that page is the only one (the caller asks
/// [`windows_for_pages`] whether the pages are worth windows).
fn measure(
    spec: &Spec,
    document: &Value,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<(DateTime<Utc>, u64)>> {
    if !matches!(
        JsonCursor::url("/links/next").next_from(document),
        NextPage::Url(_)
    ) {
        return Ok(None);
    }
    let mut times = Vec::new();
    for item in join_included(&mut document.clone()) {
        if let Some(t) = to_record(spec, &item)?
            .cursor
            .as_deref()
            .and_then(growthflow_core::time::parse_utc)
        {
            times.push(t);
        }
    }
    let (Some(first), Some(last)) = (times.iter().min().copied(), times.iter().max().copied())
    else {
        return Ok(None);
    };
    // The events of the range lie in [first, until): the first page's spread says how many pages.
    let first = first.max(since);
    let spread = (last - first).num_seconds().max(1);
    let rest = (until - first).num_seconds().max(1);
    let pages = (rest as u64).div_ceil(spread as u64);
    Ok(Some((first, pages)))
}

/// Read the events of one window (see [`plan_windows`]), paged by `links.next` like a whole read.
pub(crate) fn read_window(
    reader: Arc<Reader>,
    request: ReadRequest,
    span: Span,
) -> BoxStream<'static, Result<Page>> {
    let Some(spec) = Spec::of(&request.stream).filter(|s| s.def.name == "events") else {
        let err = Error::Internal(format!(
            "Klaviyo reads only events in windows, not {:?}",
            request.stream
        ));
        return failed_read(err);
    };
    let urls = reader.urls(&spec, &Reader::span_filters(span));
    read_urls(reader, spec, urls, Keep::All)
}
