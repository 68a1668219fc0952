//! Where an incremental read starts.
//!
//! Every incremental stream starts from its saved cursor, moved back by two amounts: an *overlap* that
//! makes up for the platform's filter (an exclusive, whole-second `after` bound needs one second, or the
//! records of the cursor's own second are skipped) and a *lookback* of whole days for platforms that
//! restate recent data (GA4, Meta insights, Klaviyo events). With no saved cursor the read starts at the
//! configured `start_date`. Re-reading a record is an upsert; missing one is silent data loss — so this is
//! written once, here, and a cursor that cannot be read is an error that says how to recover, never a
//! silent restart from `start_date`.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::connector::ReadRequest;
use crate::time::{parse_date, parse_utc};
use crate::{Error, Result};

/// How far before the saved cursor a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewind {
    /// Makes up for the platform's filter bound (one second for an exclusive whole-second `after`).
    pub overlap: Duration,
    /// Whole days the platform may still restate.
    pub lookback_days: u32,
}

impl Rewind {
    /// No overlap, no lookback: an inclusive filter on data that never changes afterwards.
    pub const NONE: Rewind = Rewind {
        overlap: Duration::zero(),
        lookback_days: 0,
    };

    /// One second of overlap (exclusive, whole-second filters) plus `lookback_days`.
    pub fn exclusive_seconds(lookback_days: u32) -> Rewind {
        Rewind {
            overlap: Duration::seconds(1),
            lookback_days,
        }
    }

    /// No overlap, `lookback_days` only (inclusive filters, day-granular reads).
    pub fn days(lookback_days: u32) -> Rewind {
        Rewind {
            overlap: Duration::zero(),
            lookback_days,
        }
    }

    fn total(&self) -> Duration {
        self.overlap + Duration::days(i64::from(self.lookback_days))
    }
}

/// The error for a saved cursor that cannot be read: it names the stream and what to run, because
/// guessing (restarting from `start_date`, or from nothing) would silently re-read or skip data.
pub fn unreadable_cursor(request: &ReadRequest, cursor: &str, expected: &str) -> Error {
    Error::Config {
        key: format!("saved state of stream `{}`", request.stream),
        message: format!(
            "its cursor {cursor:?} is not {expected}; the state was written by another version or \
             edited by hand. Reset it by syncing the stream once from start_date: `growthflow sync \
             <source> --stream {} --full-refresh`",
            request.stream
        ),
    }
}

/// Where an incremental read of timestamps starts: the saved cursor less `rewind`, else the configured
/// start. An unreadable saved cursor is an error (see [`unreadable_cursor`]).
pub fn read_start(request: &ReadRequest, rewind: Rewind) -> Result<DateTime<Utc>> {
    let Some(cursor) = request.state_cursor() else {
        return Ok(request.start);
    };
    let saved =
        parse_utc(cursor).ok_or_else(|| unreadable_cursor(request, cursor, "a date-time"))?;
    Ok(saved
        .checked_sub_signed(rewind.total())
        .unwrap_or(DateTime::<Utc>::MIN_UTC))
}

/// Where an incremental read of whole days starts (GA4 days, Meta insights): the saved day less
/// `rewind`'s lookback days, else the configured start's day. An unreadable saved cursor is an error.
pub fn read_start_day(request: &ReadRequest, rewind: Rewind) -> Result<NaiveDate> {
    let Some(cursor) = request.state_cursor() else {
        return Ok(request.start.date_naive());
    };
    let saved = parse_date(cursor)
        .ok_or_else(|| unreadable_cursor(request, cursor, "a YYYY-MM-DD date"))?;
    Ok(saved
        .checked_sub_signed(rewind.total())
        .unwrap_or(NaiveDate::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn request(cursor: Option<&str>) -> ReadRequest {
        ReadRequest {
            stream: "orders".into(),
            state: cursor.map(|c| json!({ "cursor": c })),
            start: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
            window: None,
        }
    }

    #[test]
    fn without_a_cursor_the_read_starts_at_the_start_date() {
        let r = request(None);
        assert_eq!(
            read_start(&r, Rewind::exclusive_seconds(3)).unwrap(),
            r.start
        );
        assert_eq!(
            read_start_day(&r, Rewind::days(3)).unwrap(),
            NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
        );
    }

    #[test]
    fn the_cursor_is_moved_back_by_overlap_and_lookback() {
        let r = request(Some("2025-03-07T16:02:48Z"));
        assert_eq!(
            read_start(&r, Rewind::exclusive_seconds(0)).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 7, 16, 2, 47).unwrap()
        );
        assert_eq!(
            read_start(&r, Rewind::exclusive_seconds(3)).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 4, 16, 2, 47).unwrap()
        );
        assert_eq!(
            read_start(&r, Rewind::NONE).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 7, 16, 2, 48).unwrap()
        );
        let d = request(Some("2025-03-07"));
        assert_eq!(
            read_start_day(&d, Rewind::days(28)).unwrap(),
            NaiveDate::from_ymd_opt(2025, 2, 7).unwrap()
        );
        assert_eq!(
            read_start_day(&d, Rewind::NONE).unwrap(),
            NaiveDate::from_ymd_opt(2025, 3, 7).unwrap()
        );
    }

    #[test]
    fn an_unreadable_cursor_is_an_error_that_says_how_to_reset() {
        let r = request(Some("last tuesday"));
        for e in [
            read_start(&r, Rewind::NONE).unwrap_err(),
            read_start_day(&r, Rewind::NONE).unwrap_err(),
        ] {
            assert_eq!(e.kind(), crate::ErrorKind::Config);
            let text = e.to_string();
            assert!(text.contains("`orders`"), "{text}");
            assert!(text.contains("\"last tuesday\""), "{text}");
            assert!(text.contains("--stream orders --full-refresh"), "{text}");
        }
    }
}
