//! Reading fields out of a platform's JSON the one way every mapper needs: money exact (platforms send
//! amounts as strings, or as numbers that must not pass through `f64`), text trimmed with blanks as
//! absent, times in whatever form the platform writes them, and every unreadable value a
//! [`Error::Decode`] that names the platform, the record and the field — never silently zero.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::time::parse_utc;

/// The field readers of one platform: its name starts every decode message, so a user reading "could
/// not decode" knows which source sent what.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    platform: &'static str,
}

impl Fields {
    /// Readers whose errors name `platform` (`"WooCommerce"`, `"Shopify"`, …).
    pub const fn new(platform: &'static str) -> Fields {
        Fields { platform }
    }

    /// A decode error about `what` (`"order 1234"`, `"event"`): `"{platform} {what}: {message}"`.
    pub fn decode(&self, what: &str, message: impl std::fmt::Display) -> Error {
        Error::Decode {
            message: format!("{} {what}: {message}", self.platform),
        }
    }

    /// The record as a JSON object.
    pub fn object<'a>(&self, record: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
        record
            .as_object()
            .ok_or_else(|| self.decode(what, "is not a JSON object"))
    }

    /// A money or other decimal field `field` of `what`: a decimal string (`"12.50"`, `"1e3"`), or a
    /// JSON number read from its written form. Absent, `null` or blank is `None`; anything else that
    /// is not a number is an error.
    pub fn money(&self, v: Option<&Value>, field: &str, what: &str) -> Result<Option<Decimal>> {
        let parse = |s: &str| {
            parse_decimal(s).ok_or_else(|| {
                self.decode(what, format!("`{field}` is not a decimal amount: {s:?}"))
            })
        };
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => parse(s).map(Some),
            Some(Value::Number(n)) => parse(&n.to_string()).map(Some),
            Some(other) => {
                Err(self.decode(what, format!("`{field}` is not a decimal amount: {other}")))
            }
        }
    }

    /// [`money`](Self::money) that must be there.
    pub fn required_money(&self, v: Option<&Value>, field: &str, what: &str) -> Result<Decimal> {
        self.money(v, field, what)?
            .ok_or_else(|| self.decode(what, format!("`{field}` is missing")))
    }

    /// A date-time field: RFC 3339 with any offset, or a naive time taken as UTC (see
    /// [`parse_utc`]); with `epoch` also whole epoch seconds as a JSON number. Absent, `null` or blank
    /// is `None`.
    pub fn time(
        &self,
        v: Option<&Value>,
        field: &str,
        what: &str,
        epoch: bool,
    ) -> Result<Option<DateTime<Utc>>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => parse_utc(s)
                .map(Some)
                .ok_or_else(|| self.decode(what, format!("`{field}` is not a date-time: {s:?}"))),
            Some(Value::Number(n)) if epoch => n
                .as_i64()
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .map(Some)
                .ok_or_else(|| self.decode(what, format!("`{field}` is not a timestamp: {n}"))),
            Some(other) => Err(self.decode(what, format!("`{field}` is not a date-time: {other}"))),
        }
    }

    /// [`time`](Self::time) (without epoch seconds) that must be there.
    pub fn required_time(
        &self,
        v: Option<&Value>,
        field: &str,
        what: &str,
    ) -> Result<DateTime<Utc>> {
        self.time(v, field, what, false)?
            .ok_or_else(|| self.decode(what, format!("`{field}` is missing")))
    }
}

/// A decimal written as text, plain or scientific, surrounding blanks ignored.
fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// A non-blank string field, trimmed; anything else (numbers included) is `None`.
pub fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A non-blank string, trimmed, or a number as its text: for ids that some integrations send as
/// numbers.
pub fn text_or_number(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const F: Fields = Fields::new("Shop");

    #[test]
    fn money_is_exact_from_strings_and_numbers() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(
            F.money(Some(&json!("12.50")), "t", "o").unwrap(),
            Some(d("12.50"))
        );
        assert_eq!(
            F.money(Some(&json!(" 7 ")), "t", "o").unwrap(),
            Some(d("7"))
        );
        assert_eq!(
            F.money(Some(&json!(0.1)), "t", "o").unwrap(),
            Some(d("0.1"))
        );
        assert_eq!(
            F.money(Some(&json!("1e3")), "t", "o").unwrap(),
            Some(d("1000"))
        );
        for absent in [None, Some(&json!(null)), Some(&json!("  "))] {
            assert_eq!(F.money(absent, "t", "o").unwrap(), None);
        }
        let err = F
            .money(Some(&json!("abc")), "total", "order 7")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not decode the response: Shop order 7: `total` is not a decimal amount: \"abc\""
        );
        assert!(F.money(Some(&json!([1])), "t", "o").is_err());
        let missing = F.required_money(None, "total", "order 7").unwrap_err();
        assert!(
            missing.to_string().contains("`total` is missing"),
            "{missing}"
        );
    }

    #[test]
    fn times_take_offsets_naive_utc_and_epoch_seconds_where_asked() {
        let t = F
            .time(Some(&json!("2025-03-05T14:22:31+02:00")), "at", "o", false)
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-05T12:22:31+00:00");
        let naive = F
            .time(Some(&json!("2025-03-05T14:22:31")), "at", "o", false)
            .unwrap()
            .unwrap();
        assert_eq!(naive.to_rfc3339(), "2025-03-05T14:22:31+00:00");
        let epoch = F
            .time(Some(&json!(1_700_000_000)), "at", "o", true)
            .unwrap()
            .unwrap();
        assert_eq!(epoch.timestamp(), 1_700_000_000);
        assert!(F
            .time(Some(&json!(1_700_000_000)), "at", "o", false)
            .is_err());
        assert!(F.time(Some(&json!("yesterday")), "at", "o", false).is_err());
        assert_eq!(F.time(Some(&json!("")), "at", "o", false).unwrap(), None);
        assert!(F.required_time(None, "at", "o").is_err());
    }

    #[test]
    fn text_trims_and_drops_blanks() {
        assert_eq!(text(Some(&json!("  a "))), Some("a".into()));
        assert_eq!(text(Some(&json!("   "))), None);
        assert_eq!(text(Some(&json!(5))), None);
        assert_eq!(text_or_number(Some(&json!(5))), Some("5".into()));
        assert_eq!(text_or_number(Some(&json!(" b "))), Some("b".into()));
        assert_eq!(text_or_number(Some(&json!(true))), None);
    }
}
