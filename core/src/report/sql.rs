//! Every piece of SQL text that depends on SQLite's dialect, in one place.
//!
//! The report's queries are otherwise plain SQL (`SELECT … GROUP BY`, `CASE`, `COALESCE`), so a port
//! to another store (PostgreSQL follows) replaces this module: JSON access, exact money scaling, dates
//! held as text, currency keys, and parameter placeholders.

/// Money is summed as integers of this many decimal places: the SQLite destination stores money as
/// REAL rounded to 6 decimals, so scaling by 10⁶ and rounding recovers each stored amount exactly and
/// the integer sum is exact (up to 9.2 × 10¹² currency units).
pub(super) const MONEY_SCALE: u32 = 6;

/// One money column as an exact integer of 10⁻⁶ units (NULL as 0).
pub(super) fn money_units(col: &str) -> String {
    format!("CAST(ROUND(COALESCE({col}, 0) * 1000000) AS INTEGER)")
}

/// `SUM` of a money column, exact, 0 for no rows.
pub(super) fn sum_money(col: &str) -> String {
    format!("COALESCE(SUM({}), 0)", money_units(col))
}

/// `SUM` of a count held as REAL (quantities), as an integer, 0 for no rows.
pub(super) fn sum_count(expr: &str) -> String {
    format!("CAST(ROUND(COALESCE(SUM({expr}), 0)) AS INTEGER)")
}

/// A top-level key of a JSON object column, as SQL's value.
pub(super) fn json_get(col: &str, key: &str) -> String {
    format!("json_extract({col}, '$.{key}')")
}

/// A JSON key holding a number (or a numeric string), as a number.
pub(super) fn json_number(col: &str, key: &str) -> String {
    format!("CAST({} AS REAL)", json_get(col, key))
}

/// A JSON key holding an id (number or string), as text.
pub(super) fn json_text(col: &str, key: &str) -> String {
    format!("CAST({} AS TEXT)", json_get(col, key))
}

/// True when a JSON key is `true` (SQLite's json_extract returns 1 for it).
pub(super) fn json_is_true(col: &str, key: &str) -> String {
    format!("{} IN (1, 'true')", json_get(col, key))
}

/// The `YYYY-MM-DD` date of an RFC 3339 time held as text.
pub(super) fn date_of(col: &str) -> String {
    format!("substr({col}, 1, 10)")
}

/// The key a currency column is grouped under: trimmed, upper-cased ISO 4217, or [`UNKNOWN`].
pub(super) fn currency_key(col: &str) -> String {
    format!("COALESCE(NULLIF(upper(trim({col})), ''), '{UNKNOWN}')")
}

/// The currency key of money recorded without a currency.
pub(crate) const UNKNOWN: &str = "unknown";

/// An order that counts (neither cancelled nor a test order); flags are 0/1 integers in SQLite.
pub(super) fn valid_order(alias: &str) -> String {
    let a = if alias.is_empty() {
        String::new()
    } else {
        format!("{alias}.")
    };
    format!("{a}cancelled = 0 AND {a}test = 0")
}

/// The `n`th (1-based) bound parameter.
pub(super) fn p(n: usize) -> String {
    format!("?{n}")
}
