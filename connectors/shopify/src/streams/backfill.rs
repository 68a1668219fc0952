//! Backfills through bulk operations: a window cut into slices of at most [`BULK_SLICE_DAYS`] days, one
//! bulk operation each ([`crate::bulk`]), read back a page at a time; a slice whose operation fails is
//! split in halves down to [`MIN_BULK_SLICE`] rather than failing the whole backfill.

use super::*;

/// The longest window one bulk operation covers: a one-year backfill becomes four operations, so a
/// failure costs a quarter, not the year.
pub const BULK_SLICE_DAYS: i64 = 92;

/// A failed slice is split in halves and retried down to this length before the error is final.
pub const MIN_BULK_SLICE: Duration = Duration::days(1);

/// `window` cut into consecutive slices of at most `days` days.
pub fn slices(window: Window, days: i64) -> VecDeque<Window> {
    let mut out = VecDeque::new();
    let mut since = window.since;
    while since < window.until {
        let until = (since + Duration::days(days.max(1))).min(window.until);
        out.push_back(Window { since, until });
        since = until;
    }
    out
}

/// Whether a failed bulk operation is worth retrying over a smaller window: the operation itself failed
/// or timed out (too much data, an internal error), not our credentials or query.
fn retry_smaller(e: &Error) -> bool {
    match e {
        Error::Api { code: Some(c), .. } => {
            matches!(
                c.as_str(),
                "BULK_FAILED" | "BULK_TIMEOUT" | "BULK_EXPIRED" | "BULK_CANCELED"
            )
        }
        Error::Transient { .. } => true,
        _ => false,
    }
}

/// Where a sliced bulk backfill stands.
struct BulkState {
    reader: Arc<Reader>,
    pending: VecDeque<Window>,
    current: Option<crate::bulk::Roots>,
    /// The end of the slice being read (or just read without records), said once it is whole.
    finished: Option<DateTime<Utc>>,
}

/// A backfill window read through bulk operations, one slice at a time, handed out in pages of
/// `page_size` records read back from the spilled result (one page in memory at a time). A slice whose
/// operation fails is split in halves and the halves retried, not the whole backfill.
pub(super) fn bulk_pages(
    reader: Arc<Reader>,
    spec: Spec,
    window: Window,
) -> BoxStream<'static, Result<Page>> {
    let size = reader.page_size.max(1) as usize;
    let stream = spec.def.name;
    let state = BulkState {
        reader,
        pending: slices(window, BULK_SLICE_DAYS),
        current: None,
        finished: None,
    };
    futures::stream::try_unfold(state, move |mut st| async move {
        loop {
            if let Some(roots) = st.current.as_mut() {
                let records = crate::bulk::next_records(roots, stream, size)?;
                if !records.is_empty() {
                    return Ok(Some((Page::new(records), st)));
                }
                st.current = None;
            }
            // A whole slice, and every one before it (slices are read in date order): a backfill
            // stopped later is told it got this far (the engine saves no state for a backfill). The
            // records' own cursors cannot say it: they are modification times, the slices creation
            // times.
            if let Some(until) = st.finished.take() {
                let through = json!({ "cursor": format_utc(until) });
                return Ok(Some((Page::with_checkpoint(Vec::new(), Some(through)), st)));
            }
            let Some(slice) = st.pending.pop_front() else {
                return Ok(None);
            };
            match st.reader.bulk_read(stream, slice).await {
                Ok(roots) => {
                    st.current = roots;
                    st.finished = Some(slice.until);
                }
                Err(e) if retry_smaller(&e) && slice.until - slice.since > MIN_BULK_SLICE => {
                    let mid = slice.since + (slice.until - slice.since) / 2;
                    tracing::warn!(
                        stream,
                        since = %slice.since,
                        until = %slice.until,
                        error = %e,
                        "bulk operation failed; retrying the slice in two halves"
                    );
                    st.pending.push_front(Window {
                        since: mid,
                        until: slice.until,
                    });
                    st.pending.push_front(Window {
                        since: slice.since,
                        until: mid,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_year_is_cut_into_quarters_without_gaps() {
        let w = Window {
            since: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        };
        let s = slices(w, BULK_SLICE_DAYS);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].since, w.since);
        assert_eq!(s[3].until, w.until);
        assert!(s
            .iter()
            .zip(s.iter().skip(1))
            .all(|(a, b)| a.until == b.since));
        assert!(s
            .iter()
            .all(|x| x.until - x.since <= Duration::days(BULK_SLICE_DAYS)));
    }
}
