//! Windowed reads: one stream read as date windows side by side.
//!
//! A host that builds one page in 500 ms but eight at once serves a sequential reader at an eighth of
//! what it can. When a connector's API filters a stream on its cursor (WooCommerce's
//! `modified_after`/`modified_before`, Klaviyo's event filters, GA4 days, Meta insights ranges), the
//! framework splits the range to read into windows, reads as many of them at once as the source's
//! [`AdaptiveLimiter`] allows, each window paged in order, and hands the engine the pages as they come
//! — records of different windows interleave.
//!
//! State stays exact because windows finish out of order: the cursor saved with a page is a
//! *low-water mark* ([`LowWater`]) — the newest cursor of the finished windows *before* the first
//! unfinished one and of that window's pages so far (they come in cursor order), never a cursor of a
//! window further on. A run killed at any point therefore resumes from a cursor below every record it
//! did not commit: it re-reads some records (an upsert), it never skips one.
//!
//! Day-granular streams (GA4 days) keep `YYYY-MM-DD` cursors: a day reads as its
//! midnight UTC for the mark, and the mark is saved back as a day, so their state keeps its form. A
//! window's page may also carry the connector's own `{"cursor": …}` checkpoint (a day it finished,
//! an empty one included): it counts like a record's cursor of that window, and the page is sent on
//! with the low-water mark instead.
//!
//! The connector decides whether a request is worth windows ([`Connector::plan_windows`], e.g. only a
//! first sync or backfill over many pages, so a no-change incremental sync still makes one request)
//! and reads one window ([`Connector::read_window`]); the split, the concurrency and the state are
//! the framework's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::stream::{BoxStream, SelectAll, StreamExt};
use serde_json::json;

use crate::adaptive::AdaptiveLimiter;
use crate::connector::{Connector, Page, ReadRequest};
use crate::time::{format_utc, parse_date, parse_utc, start_of_day};

/// A cursor's time: an RFC 3339 time, or a `YYYY-MM-DD` day as its midnight UTC (and `true`).
fn cursor_time(s: &str) -> Option<(DateTime<Utc>, bool)> {
    parse_utc(s)
        .map(|t| (t, false))
        .or_else(|| parse_date(s).map(|d| (start_of_day(d), true)))
}

/// `t` as a cursor of the stream's form: a day for day cursors, else RFC 3339 UTC.
fn cursor_text(t: DateTime<Utc>, days: bool) -> String {
    if days {
        t.date_naive().format("%Y-%m-%d").to_string()
    } else {
        format_utc(t)
    }
}

/// One window of the cursor's time line: `since` inclusive, `until` exclusive; `None` reads on to
/// whatever is newest (the last window of an incremental read, so nothing modified while the sync
/// runs falls between two runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Inclusive start.
    pub since: DateTime<Utc>,
    /// Exclusive end, or open.
    pub until: Option<DateTime<Utc>>,
}

/// A connector's answer to "read this request in windows?".
#[derive(Debug, Clone)]
pub struct WindowPlan {
    /// Where the read starts (the saved cursor less the connector's overlap, `start_date`, or a
    /// backfill's start).
    pub since: DateTime<Utc>,
    /// Where the windows end: now for an incremental read, the backfill's end otherwise.
    pub until: DateTime<Utc>,
    /// How many windows to split into (a connector sizes them from the pages the range holds).
    pub windows: usize,
    /// True when the last window reads on past `until` (incremental reads); false for a backfill,
    /// whose end is a bound.
    pub open_end: bool,
    /// The source's limiter: windows are opened as it allows requests in flight. Without one, at
    /// most [`DEFAULT_WINDOWS_IN_FLIGHT`] windows are read at once.
    pub limiter: Option<Arc<AdaptiveLimiter>>,
}

/// Windows in flight when a plan names no limiter.
pub const DEFAULT_WINDOWS_IN_FLIGHT: usize = 4;

/// Below this many pages a read is not worth windows: a few sequential pages are quick, and every
/// window costs a request or two of its own. For connectors that size their plans in pages
/// (WooCommerce, Klaviyo), so that both decide alike.
pub const WINDOWS_FROM_PAGES: u64 = 8;

/// Pages per window aimed at: enough that a window's extra requests (its short last page, a
/// re-read of its newest second) stay a small share, few enough that there are windows to spread.
pub const PAGES_PER_WINDOW: u64 = 4;

/// The most windows one read of pages is split into.
pub const MAX_WINDOWS: u64 = 64;

/// How many windows a read of about `pages` pages is split into, or `None` when it is at most
/// [`WINDOWS_FROM_PAGES`] pages and windows would only add requests: one rule for every connector
/// that measures its ranges in pages.
pub fn windows_for_pages(pages: u64) -> Option<usize> {
    (pages > WINDOWS_FROM_PAGES).then(|| (pages / PAGES_PER_WINDOW).clamp(2, MAX_WINDOWS) as usize)
}

/// The time range a plan for `request` covers: a backfill's window (a bound at both ends), or an
/// incremental read from its start to now, whose end stays open so that nothing modified while the
/// sync runs falls between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    /// Inclusive start.
    pub since: DateTime<Utc>,
    /// The backfill's end, or now.
    pub until: DateTime<Utc>,
    /// True for an incremental read (see [`WindowPlan::open_end`]).
    pub open_end: bool,
}

impl ReadRange {
    /// The range of `request`: its backfill window, else `start()` (the connector's incremental
    /// start: saved cursor less its overlap and lookback) to `now`. `None` when the range is empty,
    /// so there is nothing to plan.
    pub fn of(
        request: &ReadRequest,
        start: impl FnOnce() -> crate::Result<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> crate::Result<Option<ReadRange>> {
        let range = match request.window {
            Some(w) => ReadRange {
                since: w.since,
                until: w.until,
                open_end: false,
            },
            None => ReadRange {
                since: start()?,
                until: now,
                open_end: true,
            },
        };
        Ok((range.since < range.until).then_some(range))
    }

    /// The whole range as one span, for a connector's measuring request.
    pub fn span(&self) -> Span {
        Span {
            since: self.since,
            until: (!self.open_end).then_some(self.until),
        }
    }
}

/// Split a plan into windows of equal, whole-second width, in order; the last ends at `until` (or is
/// open). A range shorter than the window count gives fewer, one-second windows.
pub fn split(plan: &WindowPlan) -> Vec<Span> {
    let total = (plan.until - plan.since).num_seconds().max(1);
    let n = (plan.windows.max(1) as i64).min(total);
    let width = (total + n - 1) / n;
    let mut spans = Vec::with_capacity(n as usize);
    let mut since = plan.since;
    for i in 0..n {
        let until = if i == n - 1 {
            plan.until
        } else {
            (since + Duration::seconds(width)).min(plan.until)
        };
        spans.push(Span {
            since,
            until: Some(until),
        });
        since = until;
        if since >= plan.until {
            break;
        }
    }
    if plan.open_end {
        if let Some(last) = spans.last_mut() {
            last.until = None;
        }
    }
    spans
}

/// The cursor that is safe to save while windows finish out of order.
#[derive(Debug, Clone)]
pub struct LowWater {
    spans: Vec<Span>,
    finished: Vec<bool>,
    newest: Vec<Option<DateTime<Utc>>>,
    floor: Option<DateTime<Utc>>,
}

impl LowWater {
    /// Track `spans`; `floor` is the cursor already saved (never moved backwards).
    pub fn new(spans: Vec<Span>, floor: Option<DateTime<Utc>>) -> LowWater {
        let n = spans.len();
        LowWater {
            spans,
            finished: vec![false; n],
            newest: vec![None; n],
            floor,
        }
    }

    /// Records of window `window` with these cursors are committed (a window's pages come in cursor
    /// order).
    pub fn committed(&mut self, window: usize, cursors: impl IntoIterator<Item = DateTime<Utc>>) {
        if let Some(slot) = self.newest.get_mut(window) {
            for c in cursors {
                if slot.is_none_or(|n| c > n) {
                    *slot = Some(c);
                }
            }
        }
    }

    /// Window `window` has read its last page.
    pub fn finished(&mut self, window: usize) {
        if let Some(f) = self.finished.get_mut(window) {
            *f = true;
        }
    }

    /// Window `window` ends at `at` (it has read its records before `at`, and some at `at`) and is
    /// finished; `parts`, which cover from `at` to where it ended, follow it as new, unfinished
    /// windows. The split of a window that turned out big, read on side by side.
    pub fn split(&mut self, window: usize, at: DateTime<Utc>, parts: &[Span]) {
        let Some(span) = self.spans.get_mut(window) else {
            return;
        };
        span.until = Some(at);
        self.finished[window] = true;
        let after = window + 1;
        self.spans.splice(after..after, parts.iter().copied());
        self.finished
            .splice(after..after, std::iter::repeat_n(false, parts.len()));
        self.newest
            .splice(after..after, std::iter::repeat_n(None, parts.len()));
    }

    /// The first window not finished, if any.
    fn first_open(&self) -> Option<usize> {
        self.finished.iter().position(|f| !f)
    }

    /// True when every window is finished.
    pub fn all_finished(&self) -> bool {
        self.first_open().is_none()
    }

    /// The cursor safe to save: the newest committed cursor of the finished prefix and of the first
    /// unfinished window (clamped below that window's end), never below the floor; `None` when
    /// nothing is known yet.
    pub fn cursor(&self) -> Option<DateTime<Utc>> {
        let upto = self
            .first_open()
            .unwrap_or(self.spans.len().saturating_sub(1));
        let mut c = self.newest.iter().take(upto + 1).flatten().max().copied();
        if let (Some(open), Some(v)) = (self.first_open(), c) {
            if let Some(end) = self.spans[open].until {
                c = Some(v.min(end));
            }
        }
        match (c, self.floor) {
            (Some(c), Some(f)) => Some(c.max(f)),
            (c, f) => c.or(f),
        }
    }

    /// Where everything before is read: the start of the first unfinished window (the end of the last
    /// when all are finished). What a failed backfill reports as done.
    pub fn through(&self) -> Option<DateTime<Utc>> {
        match self.first_open() {
            Some(i) => Some(self.spans[i].since),
            None => self.spans.last().and_then(|s| s.until),
        }
    }
}

/// The key of a window page's own checkpoint saying how many records of the window its platform
/// still counted after that page: `{"remaining": n}`. A connector whose windows' pages say so, and
/// read no page before it is asked for (a dropped window has no request in flight), lets a window
/// that turns out big be split (see [`read_windowed`]).
pub const REMAINING: &str = "remaining";

/// Where a window stands, for splitting it: its newest cursor so far and the ids read at it.
#[derive(Debug, Default, Clone)]
struct Tail {
    at: Option<DateTime<Utc>>,
    ids: std::collections::HashSet<String>,
}

impl Tail {
    /// Take in the records of a page (in cursor order) with their cursors.
    fn read<'r>(&mut self, records: impl IntoIterator<Item = (&'r str, DateTime<Utc>)>) {
        for (id, t) in records {
            if self.at.is_none_or(|at| t > at) {
                self.at = Some(t);
                self.ids.clear();
            }
            if self.at == Some(t) {
                self.ids.insert(id.to_string());
            }
        }
    }
}

/// A window being read: what it has read, and the switch that ends it early when it is split.
#[derive(Debug, Default)]
struct Reading {
    stop: Arc<AtomicBool>,
    tail: Tail,
    /// Records of its first second that the window it was split from had already read.
    skip: Tail,
}

/// `inner` until `stop` is set: checked before each item is asked for, so a window whose reader asks
/// for nothing ahead has no request in flight when it is stopped.
fn stoppable<'a, T: Send + 'a>(inner: BoxStream<'a, T>, stop: Arc<AtomicBool>) -> BoxStream<'a, T> {
    futures::stream::unfold(Some(inner), move |inner| {
        let stop = stop.clone();
        async move {
            let mut inner = inner?;
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            let item = inner.next().await?;
            Some((item, Some(inner)))
        }
    })
    .boxed()
}

/// How to split what is left of a window, `[at, until)` (`until` the plan's end for the open last
/// window, which stays open), into at most `parts` windows of equal, whole-second width: `None`
/// when it is too short to split.
fn split_rest(
    at: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    nominal_end: DateTime<Utc>,
    parts: usize,
) -> Option<Vec<Span>> {
    let end = until.unwrap_or(nominal_end);
    let seconds = (end - at).num_seconds();
    let n = (parts as i64).min(seconds);
    if n < 2 {
        return None;
    }
    let width = seconds / n;
    let mut spans: Vec<Span> = (0..n)
        .map(|k| Span {
            since: at + Duration::seconds(k * width),
            until: Some(at + Duration::seconds((k + 1) * width)),
        })
        .collect();
    if let Some(last) = spans.last_mut() {
        last.until = until;
    }
    Some(spans)
}

/// Read `request` as the windows of `plan`, side by side, as one stream of pages for the engine.
///
/// Every page carries the low-water mark as its checkpoint (`{"cursor": …}`; for a backfill, which
/// saves no state, the start of the first unfinished window, for the "committed through" message),
/// or none while nothing is known; a window's end that moves the mark sends an empty page with the
/// new checkpoint. The first error ends the stream (windows in flight are dropped).
///
/// Windows are planned before anything is known of how their records spread: one may hold many
/// more pages than the others and, read page after page, be all that is left at the end while the
/// host could build more at once. So once every window is started and the limiter has room that no
/// request uses or waits for (the source's other streams included), a window whose page says that more than another page is left
/// ([`REMAINING`]) is split: it ends at its newest cursor, and the rest of its range is read as new
/// windows side by side (the first re-reads that second, dropping the records it already gave). Only
/// an incremental read is split (a backfill's windows bound a date its records' cursors may not be).
pub fn read_windowed<'a>(
    connector: &'a dyn Connector,
    request: ReadRequest,
    plan: WindowPlan,
) -> BoxStream<'a, crate::Result<Page>> {
    let backfill = request.window.is_some();
    let saved = request.state_cursor().and_then(cursor_time);
    let floor = saved.map(|(t, _)| t);
    // A day stream's mark is written as a day; known from its saved cursor or its first cursors.
    let mut days = saved.is_some_and(|(_, d)| d);
    let spans = split(&plan);
    tracing::debug!(
        stream = %request.stream,
        windows = spans.len(),
        since = %format_utc(plan.since),
        "reading in windows"
    );
    let mark = move |lw: &LowWater, days: bool| {
        if backfill {
            // What a stopped backfill reports as done: for days, the last day before the mark.
            lw.through().filter(|t| *t > plan.since).map(|t| {
                let t = if days { t - Duration::seconds(1) } else { t };
                json!({ "cursor": cursor_text(t, days) })
            })
        } else {
            lw.cursor()
                .map(|c| json!({ "cursor": cursor_text(c, days) }))
        }
    };
    // The connector's own checkpoint keys other than the cursor (GA4's `checked`: which names were
    // checked against the property) ride on every mark, so the state a windowed read saves records
    // them as a sequential read's would; `remaining` is about one window and stays out.
    let with = |m: Option<serde_json::Value>,
                extra: &serde_json::Map<String, serde_json::Value>| {
        m.map(|mut m| {
            for (k, v) in extra {
                m[k] = v.clone();
            }
            m
        })
    };
    let limiter = plan.limiter.clone();
    let nominal_end = plan.until;
    Box::pin(async_stream::stream! {
        let mut extra = serde_json::Map::new();
        let mut lw = LowWater::new(spans.clone(), floor);
        // The window ids at `lw`'s positions (windows split off get new ids after the plan's).
        let mut order: Vec<usize> = (0..spans.len()).collect();
        let mut reading: HashMap<usize, Reading> = HashMap::new();
        let mut active: SelectAll<BoxStream<'a, (usize, Option<crate::Result<Page>>)>> =
            SelectAll::new();
        let open = |id: usize, span: Span, stop: Arc<AtomicBool>| {
            stoppable(connector.read_window(request.clone(), span), stop)
                .map(move |p| (id, Some(p)))
                .chain(futures::stream::once(async move { (id, None) }))
                .boxed()
        };
        let mut next = 0usize;
        let mut next_id = spans.len();
        let mut running = 0usize;
        let mut sent = with(mark(&lw, days), &extra);
        loop {
            let room = limiter
                .as_ref()
                .map_or(DEFAULT_WINDOWS_IN_FLIGHT, |l| l.limit())
                .max(1);
            while running < room && next < spans.len() {
                let i = next;
                next += 1;
                running += 1;
                let r = Reading::default();
                active.push(open(i, spans[i], r.stop.clone()));
                reading.insert(i, r);
            }
            let Some((i, item)) = active.next().await else { break };
            let Some(at) = order.iter().position(|id| *id == i) else { continue };
            match item {
                Some(Ok(mut page)) => {
                    let own = page.checkpoint.as_ref();
                    let remaining = own.and_then(|c| c.get(REMAINING)).and_then(|n| n.as_u64());
                    if let Some(serde_json::Value::Object(o)) = own {
                        for (k, v) in o {
                            if k != "cursor" && k != REMAINING {
                                extra.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    let own = own
                        .and_then(|c| c.get("cursor"))
                        .and_then(|c| c.as_str())
                        .and_then(cursor_time);
                    let asked = page.records.len();
                    let state = reading.entry(i).or_default();
                    if let Some(first) = state.skip.at {
                        // Records of the split point's second the window split from already gave.
                        page.records.retain(|r| {
                            r.cursor.as_deref().and_then(cursor_time).is_none_or(|(t, _)| {
                                t != first || !state.skip.ids.contains(&r.id)
                            })
                        });
                    }
                    let seen: Vec<(DateTime<Utc>, bool)> = page
                        .records
                        .iter()
                        .filter_map(|r| r.cursor.as_deref().and_then(cursor_time))
                        .chain(own)
                        .collect();
                    days |= seen.iter().any(|(_, d)| *d);
                    state.tail.read(page.records.iter().filter_map(|r| {
                        r.cursor.as_deref().and_then(cursor_time).map(|(t, _)| (r.id.as_str(), t))
                    }));
                    lw.committed(at, seen.into_iter().map(|(t, _)| t));
                    let now = with(mark(&lw, days), &extra);
                    if now.is_some() {
                        sent = now.clone();
                    }
                    page.checkpoint = now;
                    yield Ok(page);
                    // Room that nothing uses (this window's next request aside), and this one has
                    // more than a page to go: split what is left of it.
                    let spare = match &limiter {
                        Some(l) => l.idle().saturating_sub(1),
                        None => room.saturating_sub(running),
                    };
                    let pages_left = remaining
                        .map_or(0, |n| n.div_ceil(asked.max(1) as u64) as usize);
                    if backfill || next < spans.len() || spare == 0 || pages_left < 2 {
                        continue;
                    }
                    let state = reading.entry(i).or_default();
                    let Some(from) = state.tail.at else { continue };
                    let Some(parts) =
                        split_rest(from, lw.spans[at].until, nominal_end, pages_left.min(spare + 1))
                    else {
                        continue;
                    };
                    tracing::debug!(
                        stream = %request.stream,
                        from = %format_utc(from),
                        parts = parts.len(),
                        remaining,
                        "splitting a window that turned out big"
                    );
                    state.stop.store(true, Ordering::SeqCst);
                    let tail = std::mem::take(&mut state.tail);
                    running -= 1;
                    lw.split(at, from, &parts);
                    for (k, span) in parts.into_iter().enumerate() {
                        let id = next_id;
                        next_id += 1;
                        order.insert(at + 1 + k, id);
                        let mut r = Reading::default();
                        if k == 0 {
                            r.skip = tail.clone();
                            r.tail = tail.clone();
                        }
                        active.push(open(id, span, r.stop.clone()));
                        reading.insert(id, r);
                        running += 1;
                    }
                }
                Some(Err(e)) => {
                    yield Err(e);
                    break;
                }
                None => {
                    let Some(state) = reading.remove(&i) else { continue };
                    if state.stop.load(Ordering::SeqCst) {
                        // Split: already counted as finished where it was split.
                        continue;
                    }
                    running -= 1;
                    lw.finished(at);
                    let now = with(mark(&lw, days), &extra);
                    if now.is_some() && now != sent {
                        sent = now.clone();
                        yield Ok(Page { records: Vec::new(), checkpoint: now, replaces: None });
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn split_covers_the_range_without_gaps() {
        let plan = WindowPlan {
            since: t(1),
            until: t(11),
            windows: 3,
            open_end: false,
            limiter: None,
        };
        let spans = split(&plan);
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[0].since, t(1));
        assert_eq!(spans[2].until, Some(t(11)));
        for w in spans.windows(2) {
            assert_eq!(w[0].until, Some(w[1].since));
        }
        let open = split(&WindowPlan {
            open_end: true,
            ..plan
        });
        assert_eq!(open[2].until, None);
    }

    #[test]
    fn pages_size_the_plan_between_two_and_the_most_windows() {
        assert_eq!(windows_for_pages(WINDOWS_FROM_PAGES), None);
        assert_eq!(windows_for_pages(WINDOWS_FROM_PAGES + 1), Some(2));
        assert_eq!(windows_for_pages(40), Some(10));
        assert_eq!(windows_for_pages(100_000), Some(MAX_WINDOWS as usize));
    }

    #[test]
    fn a_backfill_is_bounded_an_incremental_read_open_and_an_empty_range_none() {
        let mut request = ReadRequest {
            stream: "s".into(),
            state: None,
            start: t(1),
            window: None,
        };
        let range = ReadRange::of(&request, || Ok(t(2)), t(5)).unwrap().unwrap();
        assert!(range.open_end);
        assert_eq!(
            range.span(),
            Span {
                since: t(2),
                until: None
            }
        );
        assert_eq!(ReadRange::of(&request, || Ok(t(5)), t(5)).unwrap(), None);
        request.window = Some(crate::connector::Window {
            since: t(3),
            until: t(4),
        });
        let range = ReadRange::of(&request, || panic!("a backfill has no start"), t(9))
            .unwrap()
            .unwrap();
        assert_eq!(
            (range.since, range.until, range.open_end),
            (t(3), t(4), false)
        );
        assert_eq!(range.span().until, Some(t(4)));
    }

    #[test]
    fn day_cursors_read_as_midnight_and_are_written_back_as_days() {
        assert_eq!(cursor_time("2025-03-04"), Some((t(4), true)));
        assert_eq!(cursor_time("2025-03-04T00:00:00Z"), Some((t(4), false)));
        assert_eq!(cursor_time("x"), None);
        assert_eq!(cursor_text(t(4) + Duration::hours(5), true), "2025-03-04");
        assert_eq!(cursor_text(t(4), false), "2025-03-04T00:00:00Z");
    }
}
