//! Time parsing shared by every connector. Platforms disagree on formats — WooCommerce sends `_gmt` times
//! without a zone suffix, Shopify RFC 3339 with an offset, GA4 `YYYYMMDD` — and the dataset stores one:
//! RFC 3339 UTC with a `Z`, so that text order is time order.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Parse a timestamp: RFC 3339 with any offset, or a naive `YYYY-MM-DDTHH:MM:SS[.fff]` / `YYYY-MM-DD
/// HH:MM:SS` taken as UTC (callers pass the `_gmt` variant of naive times).
pub fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc());
        }
    }
    None
}

/// Parse a date in `YYYY-MM-DD` or `YYYYMMDD` (GA4) form.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y%m%d"))
        .ok()
}

/// The dataset's timestamp format: RFC 3339, UTC, whole seconds, `Z`.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Midnight UTC at the start of `d`.
pub fn start_of_day(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_times_are_utc_and_offsets_are_converted() {
        assert_eq!(
            format_utc(parse_utc("2025-03-05T14:22:31").unwrap()),
            "2025-03-05T14:22:31Z"
        );
        assert_eq!(
            format_utc(parse_utc("2025-03-05T09:22:31-05:00").unwrap()),
            "2025-03-05T14:22:31Z"
        );
        assert_eq!(
            format_utc(parse_utc("2025-03-05 14:09:52").unwrap()),
            "2025-03-05T14:09:52Z"
        );
        assert!(parse_utc("yesterday").is_none());
        assert_eq!(parse_date("20250305"), parse_date("2025-03-05"));
    }
}
