//! Time parsing shared by every connector. Platforms disagree on formats — WooCommerce sends `_gmt` times
//! without a zone suffix, Shopify RFC 3339 with an offset, GA4 `YYYYMMDD` — and the dataset stores one:
//! RFC 3339 UTC with a `Z`, so that text order is time order.

use std::sync::LazyLock;

use chrono::format::{parse, Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// The naive forms [`parse_utc`] accepts, as chrono's parse items, read from their format strings
/// once: `NaiveDateTime::parse_from_str` reads its format string again on every call, which was about
/// 2 % of the CPU of the thread that decodes pages (every WooCommerce record's `_gmt` times) and of
/// the rebuild's mapping threads at 100,000 orders.
static NAIVE_FORMATS: LazyLock<[Vec<Item<'static>>; 2]> = LazyLock::new(|| {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"].map(|fmt| StrftimeItems::new(fmt).collect())
});

/// Parse a timestamp: RFC 3339 with any offset, or a naive `YYYY-MM-DDTHH:MM:SS[.fff]` / `YYYY-MM-DD
/// HH:MM:SS` taken as UTC (callers pass the `_gmt` variant of naive times).
pub fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    NAIVE_FORMATS.iter().find_map(|items| {
        // What `NaiveDateTime::parse_from_str` does, with the items read once.
        let mut parsed = Parsed::new();
        parse(&mut parsed, s, items.iter()).ok()?;
        parsed
            .to_naive_datetime_with_offset(0)
            .ok()
            .map(|n: NaiveDateTime| n.and_utc())
    })
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
        assert_eq!(
            format_utc(parse_utc(" 2025-03-05T14:22:31.250 ").unwrap()),
            "2025-03-05T14:22:31Z"
        );
        assert_eq!(parse_date("20250305"), parse_date("2025-03-05"));
    }

    /// The items read once parse exactly what `NaiveDateTime::parse_from_str` parses with the same
    /// format strings, refusals included.
    #[test]
    fn naive_times_parse_as_chronos_own_parse_from_str_does() {
        // `parse_utc` as it was, reading the format strings on every call.
        let old = |s: &str| {
            let s = s.trim();
            if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
                return Some(dt.with_timezone(&Utc));
            }
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .map(|n| n.and_utc())
        };
        for s in [
            "2025-03-07T16:02:48",
            "2025-03-07 16:02:48",
            "2025-03-07T16:02:48.123456",
            "2025-3-7T6:2:8",
            "2025-03-07T16:02",
            "2025-03-07T16:02:48Z",
            "2025-03-07T24:00:00",
            "2025-02-29T10:00:00",
            "2024-02-29T10:00:00",
            "0000-01-01T00:00:00",
            "+12345-01-01T00:00:00",
            "2025-03-07t16:02:48",
            "2025-03-07T16:02:60",
            "2025-03-07T16:02:48 ",
            "",
            "0",
        ] {
            assert_eq!(parse_utc(s), old(s), "{s:?}");
        }
    }

    /// The rebuild writes an event's day with `Display`: the same text as `%Y-%m-%d`, signed years
    /// included.
    #[test]
    fn a_days_display_is_its_iso_format() {
        for (y, m, d) in [
            (2025, 3, 7),
            (0, 1, 1),
            (999, 12, 31),
            (9999, 12, 31),
            (10000, 1, 1),
            (-1, 6, 30),
        ] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(day.to_string(), day.format("%Y-%m-%d").to_string());
        }
    }
}
