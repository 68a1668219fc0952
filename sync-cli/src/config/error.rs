//! What can be wrong with a config file, said the way a user fixes it: every message names the key (a
//! dotted path such as `sources.shop.access_token`) or the environment variable at fault, and never
//! quotes a value that may be a secret. serde's own messages are translated here, once, for the file's
//! own tables and for every connector's settings alike.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::join_key;

/// A problem with the config file. `Display` is the complete message for the user; it always names the
/// key (as a dotted path such as `sources.shop.access_token`) or the environment variable at fault, and
/// never contains a value that came from the environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config error: cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("config error: {}line {line}, column {column}: {message}", file_prefix(file.as_deref()))]
    Syntax {
        /// The file, when the text came from one.
        file: Option<PathBuf>,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A `${VAR}` names an environment variable that is not set.
    #[error("config error: environment variable {var} is not set (used by {key})")]
    MissingEnvVar {
        /// The variable.
        var: String,
        /// The key whose value uses it.
        key: String,
    },
    /// A `${` that is not a well-formed `${NAME}`.
    #[error(
        "config error: {key}: malformed environment variable reference; write ${{NAME}} \
         (NAME: letters, digits and _) or $${{ for a literal ${{"
    )]
    MalformedEnvVar {
        /// The key whose value holds it.
        key: String,
    },
    /// A key that growthflow (or the source's connector) does not know.
    #[error("config error: unknown key {key}{}", expected_suffix(expected.as_deref()))]
    UnknownKey {
        /// The full path of the unknown key.
        key: String,
        /// The keys allowed in its place, when known (`` `a`, `b` `` style).
        expected: Option<String>,
    },
    /// A required key is absent.
    #[error("config error: missing key {key}")]
    MissingKey {
        /// The full path of the missing key.
        key: String,
    },
    /// A value of the wrong TOML type.
    #[error("config error: {key}: expected {expected}{}", found_suffix(found.as_deref()))]
    WrongType {
        /// The key.
        key: String,
        /// What was expected, e.g. `a string`.
        expected: String,
        /// What kind of value was found, e.g. `an integer` (never the value itself).
        found: Option<String>,
    },
    /// A source name outside `[a-z0-9_-]+`.
    #[error(
        "config error: sources.{name}: invalid source name; a source name uses only lowercase \
         letters, digits, `_` and `-`"
    )]
    InvalidSourceName {
        /// The name as written (TOML-quoted when it is not a bare key).
        name: String,
    },
    /// A source `type` that is not one of [`SOURCE_TYPES`](super::SOURCE_TYPES).
    #[error(
        "config error: {key}: unknown source type{}; expected one of shopify, woocommerce, \
         klaviyo, ga4, meta_ads",
        given.as_ref().map(|g| format!(" {g:?}")).unwrap_or_default()
    )]
    UnknownSourceType {
        /// The key, `sources.<name>.type`.
        key: String,
        /// The type as written; `None` when it came from an environment variable.
        given: Option<String>,
    },
    /// A source name given on the command line that the config does not define.
    #[error(
        "config error: no source named {name:?} in the config (configured: {})",
        list_or_none(known)
    )]
    UnknownSource {
        /// The name asked for.
        name: String,
        /// The configured source names, in file order.
        known: Vec<String>,
    },
    /// Any other invalid value.
    #[error("config error: {key}: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong with its value.
        message: String,
    },
}

fn file_prefix(file: Option<&Path>) -> String {
    file.map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

fn expected_suffix(expected: Option<&str>) -> String {
    expected.map(|e| format!(" ({e})")).unwrap_or_default()
}

fn found_suffix(found: Option<&str>) -> String {
    found.map(|f| format!(", found {f}")).unwrap_or_default()
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A serde error met while reading the table at `base` (`""` for the file, `sources.woo` for a
/// source) as a [`ConfigError`] naming the full key; `settings` are the table's values, scrubbed from
/// any message that might quote one.
pub(super) fn from_serde(
    err: &serde_path_to_error::Error<toml::de::Error>,
    base: &str,
    settings: &Table,
) -> ConfigError {
    let mut key = base.to_owned();
    let mut last_segment: Option<String> = None;
    for segment in err.path() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                key.push_str(&format!("[{index}]"));
                last_segment = None;
            }
            serde_path_to_error::Segment::Map { key: k } => {
                key = join_key(&key, k);
                last_segment = Some(k.clone());
            }
            serde_path_to_error::Segment::Enum { variant } => {
                key = join_key(&key, variant);
                last_segment = Some(variant.clone());
            }
            serde_path_to_error::Segment::Unknown => {
                key.push_str(".?");
                last_segment = None;
            }
        }
    }
    let message = err.inner().message().trim();
    translate_serde_message(message, key, last_segment.as_deref(), settings)
}

/// A value of the wrong TOML type at `key`, naming the kind found (never the value).
pub(super) fn wrong_type(key: &str, expected: &str, found: &Value) -> ConfigError {
    ConfigError::WrongType {
        key: key.to_owned(),
        expected: expected.to_owned(),
        found: Some(value_kind(found).to_owned()),
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date/time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// The range an integer type accepts, in the file's words (`u32` → `an integer from 0 to
/// 4294967295`), for a number that is out of it; other expectations as [`expected_in_toml_words`].
fn range_in_toml_words(expected: &str) -> String {
    let range = match expected {
        "u8" => Some((0, i128::from(u8::MAX))),
        "u16" => Some((0, i128::from(u16::MAX))),
        "u32" => Some((0, i128::from(u32::MAX))),
        "u64" | "usize" => Some((0, i128::from(u64::MAX))),
        "i8" => Some((i128::from(i8::MIN), i128::from(i8::MAX))),
        "i16" => Some((i128::from(i16::MIN), i128::from(i16::MAX))),
        "i32" => Some((i128::from(i32::MIN), i128::from(i32::MAX))),
        "i64" | "isize" => Some((i128::from(i64::MIN), i128::from(i64::MAX))),
        _ => None,
    };
    match range {
        Some((min, max)) => format!("an integer from {min} to {max}"),
        None => expected_in_toml_words(expected),
    }
}

/// serde's name for what it expected, in the file's words: Rust type names (`usize`, `struct
/// SyncShape`, `a map`) mean nothing to someone editing TOML.
fn expected_in_toml_words(expected: &str) -> String {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "an integer".to_owned()
        }
        "f32" | "f64" => "a number".to_owned(),
        "a map" | "map" => "a table".to_owned(),
        "a sequence" => "an array".to_owned(),
        e if e.starts_with("struct ") => "a table".to_owned(),
        e => e.to_owned(),
    }
}

/// Turns one of serde's standard error messages into a [`ConfigError`] that names `key` and carries no
/// string value; other (custom) messages are kept with the settings' string values scrubbed out.
pub(super) fn translate_serde_message(
    message: &str,
    key: String,
    last_segment: Option<&str>,
    settings: &Table,
) -> ConfigError {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let field = &rest[..end];
            let expected = rest[end + 1..]
                .strip_prefix(", ")
                .filter(|e| !e.is_empty())
                .map(str::to_owned);
            let key = if last_segment == Some(field) {
                key
            } else {
                join_key(&key, field)
            };
            return ConfigError::UnknownKey { key, expected };
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some(field) = rest.strip_suffix('`') {
            return ConfigError::MissingKey {
                key: join_key(&key, field),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some(i) = rest.rfind(", expected ") {
            return ConfigError::WrongType {
                key,
                expected: expected_in_toml_words(&rest[i + ", expected ".len()..]),
                found: Some(unexpected_kind(&rest[..i]).to_owned()),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some(i) = rest.rfind(", expected ") {
            let unexpected = &rest[..i];
            let expected = range_in_toml_words(&rest[i + ", expected ".len()..]);
            // Numbers and booleans cannot come from the environment (substitution yields strings).
            let shown = if unexpected.starts_with("string") || unexpected.starts_with("character") {
                unexpected_kind(unexpected).to_owned()
            } else {
                unexpected.to_owned()
            };
            return ConfigError::Invalid {
                key,
                message: format!("invalid value ({shown}), expected {expected}"),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some(end) = rest.find('`') {
            let expected = rest[end + 1..].trim_start_matches(", ");
            return ConfigError::Invalid {
                key,
                message: format!("unknown value, {expected}"),
            };
        }
    }
    ConfigError::Invalid {
        key,
        message: scrub(message, settings),
    }
}

/// The kind of value in serde's `Unexpected` text (`string "x"` → `a string`), without the value.
fn unexpected_kind(unexpected: &str) -> &'static str {
    const KINDS: [(&str, &str); 14] = [
        ("boolean", "a boolean"),
        ("integer", "an integer"),
        ("floating point", "a float"),
        ("character", "a string"),
        ("string", "a string"),
        ("byte array", "bytes"),
        ("unit value", "nothing"),
        ("Option value", "an optional value"),
        ("newtype struct", "a value"),
        ("sequence", "an array"),
        ("map", "a table"),
        ("enum", "an enum"),
        ("unit variant", "a value"),
        ("newtype variant", "a value"),
    ];
    KINDS
        .iter()
        .find(|(prefix, _)| unexpected.starts_with(prefix))
        .map_or("another type", |(_, kind)| kind)
}

/// Replaces every string value of `settings` (at any depth) found in `message` by `***`: values of 4 or
/// more characters wherever they occur, shorter ones where they appear quoted.
fn scrub(message: &str, settings: &Table) -> String {
    fn collect<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::String(s) if !s.is_empty() => out.push(s),
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            Value::Table(t) => t.values().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut values = Vec::new();
    settings.values().for_each(|v| collect(v, &mut values));
    scrub_values(message, values)
}

/// Replaces each of `values` found in `message` by `***`: values of 4 or more characters wherever
/// they occur, shorter ones where they appear quoted.
pub(super) fn scrub_values(message: &str, mut values: Vec<&str>) -> String {
    values.retain(|v| !v.is_empty());
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = message.to_owned();
    for value in values {
        if value.chars().count() >= 4 {
            out = out.replace(value, "***");
        } else {
            for (open, close) in [("\"", "\""), ("`", "`"), ("'", "'")] {
                out = out.replace(
                    &format!("{open}{value}{close}"),
                    &format!("{open}***{close}"),
                );
            }
            out = out.replace(&format!("{value:?}"), "\"***\"");
        }
    }
    out
}
