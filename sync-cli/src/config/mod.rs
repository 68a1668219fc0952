//! Loading and validating `growthflow.toml`, the config file of the command line.
//!
//! The file is found with [`resolve_path`], read with [`load`] (or parsed from text with [`parse`]) and
//! turned into a [`Config`]: a [`DestinationConfig`], a [`SyncConfig`] and the configured sources as
//! [`SourceEntry`] values in file order. A source's own settings are left as a TOML table; the code that
//! builds the connector turns them into the connector crate's typed config with
//! [`SourceEntry::deserialize`], which reports problems with the full key path (`sources.woo.url`).
//!
//! # Environment variables
//!
//! Before anything is validated, every `${NAME}` inside any string value — at any depth, in tables and
//! arrays, several per string (`"${A}-${B}"`) — is replaced by the value of the environment variable
//! `NAME` (`NAME` is an ASCII letter or `_` followed by letters, digits or `_`). A variable that is not set
//! is an error naming the variable and the key that uses it. Substituted text is not scanned again.
//!
//! Escape rule: `$${` stands for a literal `${` (so `"$${HOME}"` is the text `${HOME}`). Every other `$`
//! is kept as written: a lone `$`, `$$` not followed by `{`, `$5`, `pa$$word`. A `${` that is not a
//! well-formed `${NAME}` (no closing `}`, an empty or invalid name, `${A:-b}`) is an error naming the key.
//! Keys are never substituted.
//!
//! # Secrets
//!
//! No error message and no `{:?}` output contains a value that came from an environment variable:
//! messages name keys and variables only (a connector's validation error passes through
//! [`SourceEntry::connector_error`], which hides every value the environment supplied to that source), [`SourceEntry`]'s `Debug` shows the keys of its settings but
//! no values, and [`DestinationConfig`]'s `Debug` shows only the URL scheme.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::{Table, Value};

mod destination;
mod env;
mod error;
#[cfg(test)]
mod tests;

use destination::DestinationShape;
pub use destination::{DestinationConfig, DestinationTarget};
pub use error::ConfigError;
use error::{from_serde, scrub_values, wrong_type};

/// The file name used when neither `--config` nor `$GROWTHFLOW_CONFIG` is given.
pub const DEFAULT_CONFIG_FILE: &str = "growthflow.toml";

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV_VAR: &str = "GROWTHFLOW_CONFIG";

/// `[destination] url` when the file does not set it.
pub const DEFAULT_DESTINATION_URL: &str = "sqlite://growthflow.db";

/// `[sync] concurrency` when the file does not set it.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// `[sync] start_date`, when the file does not set it, is this many days before today (UTC).
pub const DEFAULT_START_DATE_DAYS_AGO: u64 = 365;

/// The allowed values of a source's `type`.
pub const SOURCE_TYPES: [&str; 5] = ["shopify", "woocommerce", "klaviyo", "ga4", "meta_ads"];

/// `[sync] max_wait` when the file does not set it: core's default, which admits waiting out an hourly
/// quota (GA4) but not a daily one.
pub const DEFAULT_MAX_WAIT: Duration = growthflow_core::http::DEFAULT_MAX_WAIT;

/// The earliest `start_date` accepted: none of the five platforms holds data from before it, so an
/// earlier date is a typo (`1025-01-01`) that would only make the first sync page through nothing.
pub const EARLIEST_START_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2005, 1, 1) {
    Some(d) => d,
    None => panic!("a valid date"),
};

/// The parsed, validated config file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `[destination]`.
    pub destination: DestinationConfig,
    /// `[sync]`.
    pub sync: SyncConfig,
    /// `[sources.<name>]`, in the order the file defines them.
    pub sources: Vec<SourceEntry>,
}

impl Config {
    /// The source called `name`, if configured.
    pub fn source(&self, name: &str) -> Option<&SourceEntry> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The sources named on the command line (`check shop woo`), in the order given and without
    /// duplicates, or every configured source (in file order) when `names` is empty. A name the config
    /// does not define is a [`ConfigError::UnknownSource`].
    pub fn select_sources<S: AsRef<str>>(
        &self,
        names: &[S],
    ) -> Result<Vec<&SourceEntry>, ConfigError> {
        if names.is_empty() {
            return Ok(self.sources.iter().collect());
        }
        let mut selected: Vec<&SourceEntry> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let entry = self
                .source(name)
                .ok_or_else(|| ConfigError::UnknownSource {
                    name: name.to_owned(),
                    known: self.sources.iter().map(|s| s.name.clone()).collect(),
                })?;
            if !selected.iter().any(|s| s.name == entry.name) {
                selected.push(entry);
            }
        }
        Ok(selected)
    }
}

/// `[sync]`: how sources are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Where a stream with no saved state begins. `YYYY-MM-DD`; when absent,
    /// [`DEFAULT_START_DATE_DAYS_AGO`] (365) days before today, UTC.
    pub start_date: NaiveDate,
    /// How many sources/streams are read at once; at least 1, default [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// The longest single wait a platform may ask for (Retry-After, a spent cost bucket) before the
    /// stream gives up instead; default [`DEFAULT_MAX_WAIT`]. A scheduled run should not sleep for
    /// hours because a platform said so.
    pub max_wait: Duration,
}

impl SyncConfig {
    /// The default `start_date`: 365 days before today (UTC).
    pub fn default_start_date() -> NaiveDate {
        chrono::Utc::now().date_naive() - chrono::Days::new(DEFAULT_START_DATE_DAYS_AGO)
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            start_date: Self::default_start_date(),
            concurrency: DEFAULT_CONCURRENCY,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// One `[sources.<name>]` table.
#[derive(Clone, PartialEq)]
pub struct SourceEntry {
    /// The user-chosen name (`[a-z0-9_-]+`), e.g. `shop`.
    pub name: String,
    /// The `type`: one of [`SOURCE_TYPES`].
    pub source_type: String,
    /// The rest of the table, after `${VAR}` substitution, without `type`.
    pub settings: Table,
    /// Every value an environment variable put into this table: what [`redact`](Self::redact) hides.
    from_env: Vec<String>,
}

impl fmt::Debug for SourceEntry {
    /// Shows the keys of `settings` but none of their values (they may be secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
        struct Keys<'a>(&'a Table);
        impl fmt::Debug for Keys<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.keys().map(|k| (k, Redacted)))
                    .finish()
            }
        }
        f.debug_struct("SourceEntry")
            .field("name", &self.name)
            .field("source_type", &self.source_type)
            .field("settings", &Keys(&self.settings))
            .finish()
    }
}

impl SourceEntry {
    /// The dotted path of this source's table, `sources.<name>`.
    pub fn key_path(&self) -> String {
        join_key("sources", &self.name)
    }

    /// Deserializes [`settings`](Self::settings) into the connector's typed config (usually a struct
    /// with `#[serde(deny_unknown_fields)]`). Errors name the full key: `unknown key
    /// sources.woo.consumer_keyy`, `missing key sources.woo.consumer_key`, `sources.web.property_id:
    /// expected a string, found an integer`. They never contain a string value of the settings (a
    /// connector's own custom error text has every such value of 4 or more characters, and every
    /// quoted shorter one, replaced by `***`).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let value = Value::Table(self.settings.clone());
        serde_path_to_error::deserialize(value)
            .map_err(|err| from_serde(&err, &self.key_path(), &self.settings))
    }

    /// `text` with every value that came from an environment variable replaced by `***`. The one
    /// place connector errors pass through on their way to the user, so a secret put under the wrong
    /// key (`shop = "${SHOPIFY_TOKEN}"`) is never quoted back, whichever key and connector it was.
    pub fn redact(&self, text: &str) -> String {
        scrub_values(text, self.from_env.iter().map(String::as_str).collect())
    }

    /// A connector's construction error as a [`ConfigError`] naming its key, with values from the
    /// environment redacted (connectors quote what they reject, which helps for values typed into the
    /// file but must not echo a secret).
    pub fn connector_error(&self, err: growthflow_core::Error) -> ConfigError {
        match err {
            growthflow_core::Error::Config { key, message } => ConfigError::Invalid {
                key,
                message: self.redact(&message),
            },
            other => ConfigError::Invalid {
                key: self.key_path(),
                message: self.redact(&other.to_string()),
            },
        }
    }
}

/// The config file to use: `--config PATH` when given, else `$GROWTHFLOW_CONFIG` when set and not
/// empty, else `./growthflow.toml`.
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    resolve_path_from(cli, std::env::var_os(CONFIG_ENV_VAR))
}

fn resolve_path_from(cli: Option<&Path>, env: Option<std::ffi::OsString>) -> PathBuf {
    if let Some(path) = cli {
        return path.to_owned();
    }
    match env {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_CONFIG_FILE),
    }
}

/// Reads and parses the config file at `path`, substituting `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &|name| std::env::var(name).ok()).map_err(|err| match err {
        ConfigError::Syntax {
            file: None,
            line,
            column,
            message,
        } => ConfigError::Syntax {
            file: Some(path.to_owned()),
            line,
            column,
            message,
        },
        other => other,
    })
}

/// Parses config text, looking `${VAR}` up with `env` (which returns `None` for a variable that is not
/// set), and validates everything except each source's connector-specific settings (see
/// [`SourceEntry::deserialize`]).
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let doc: Table = text
        .parse()
        .map_err(|err: toml::de::Error| syntax_error(text, &err))?;
    let source_order = source_order(text);
    // The file's shape first (unknown keys, wrong types), on the text as written: substitution comes
    // after, so a typo is reported as such even where a variable is also missing.
    let file: FileShape = serde_path_to_error::deserialize(Value::Table(doc.clone()))
        .map_err(|err| from_serde(&err, "", &doc))?;
    let destination = match file.destination {
        None => DestinationConfig::default(),
        Some(shape) => shape.resolve(env)?,
    };
    let sync = match file.sync {
        None => SyncConfig::default(),
        Some(shape) => shape.resolve(env)?,
    };
    let sources = match file.sources {
        None => Vec::new(),
        Some(table) => parse_sources(table, &source_order, env)?,
    };
    Ok(Config {
        destination,
        sync,
        sources,
    })
}

/// The file's top level as written, before `${VAR}` substitution. `[sources]` stays a table: its
/// keys are the user's source names, and each source's settings belong to its connector.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    destination: Option<DestinationShape>,
    sync: Option<SyncShape>,
    sources: Option<Table>,
}

/// `[sync]` as written. `start_date` is a string or a bare TOML date; `max_wait` a duration string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncShape {
    start_date: Option<Value>,
    concurrency: Option<i64>,
    max_wait: Option<DurationText>,
}

impl SyncShape {
    fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> Result<SyncConfig, ConfigError> {
        let start_date = match self.start_date {
            None => SyncConfig::default_start_date(),
            Some(mut value) => {
                env::substitute_value(&mut value, "sync.start_date", env)?;
                parse_date(&value).ok_or_else(|| ConfigError::Invalid {
                    key: "sync.start_date".to_owned(),
                    message: "expected a date YYYY-MM-DD, e.g. \"2024-01-01\"".to_owned(),
                })?
            }
        };
        let today = chrono::Utc::now().date_naive();
        if start_date < EARLIEST_START_DATE || start_date > today {
            return Err(ConfigError::Invalid {
                key: "sync.start_date".to_owned(),
                message: format!(
                    "{start_date} is out of range: must be between {EARLIEST_START_DATE} and \
                     today ({today}, UTC)"
                ),
            });
        }
        let max_wait = match self.max_wait {
            None => DEFAULT_MAX_WAIT,
            Some(DurationText(text)) => {
                let text = env::substitute_str(&text, "sync.max_wait", env)?;
                parse_duration(&text).map_err(|message| ConfigError::Invalid {
                    key: "sync.max_wait".to_owned(),
                    message,
                })?
            }
        };
        let concurrency =
            match self.concurrency {
                None => DEFAULT_CONCURRENCY,
                Some(n) => usize::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ConfigError::Invalid {
                        key: "sync.concurrency".to_owned(),
                        message: "must be at least 1".to_owned(),
                    }
                })?,
            };
        Ok(SyncConfig {
            start_date,
            concurrency,
            max_wait,
        })
    }
}

/// A duration as written (`"90s"`, `"1h30m"`), parsed by [`parse_duration`] once substituted; its
/// own type so that a number in its place reads "expected a duration string".
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

fn syntax_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let (line, column) = match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            (line, before[line_start..].chars().count() + 1)
        }
        None => (1, 1),
    };
    let mut message = err
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    // Name the repeated key (a key, never a value).
    if message == "duplicate key" {
        if let Some(key) = err
            .span()
            .and_then(|span| text.get(span))
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 100 && !k.contains('\n'))
        {
            message = format!("duplicate key {key}");
        }
    }
    ConfigError::Syntax {
        file: None,
        line,
        column,
        message,
    }
}

/// The names of `[sources.*]` in the order the file first mentions them.
fn source_order(text: &str) -> Vec<String> {
    let Ok(doc) = toml::de::DeTable::parse(text) else {
        return Vec::new();
    };
    let Some(sources) = doc
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == "sources")
        .and_then(|(_, v)| v.get_ref().as_table())
    else {
        return Vec::new();
    };
    let mut names: Vec<(usize, String)> = sources
        .iter()
        .map(|(k, _)| (k.span().start, k.get_ref().to_string()))
        .collect();
    names.sort();
    names.into_iter().map(|(_, name)| name).collect()
}

/// A date as `"YYYY-MM-DD"` or as a bare TOML local date (`start_date = 2024-01-01`).
fn parse_date(value: &Value) -> Option<NaiveDate> {
    match value {
        Value::String(s) => parse_ymd(s),
        Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
            let d = dt.date?;
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        }
        _ => None,
    }
}

/// A duration as `90s`, `30m`, `2h` or `1h30m` (a positive whole number before each unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const HINT: &str = "expected a duration such as 90s, 30m, 2h or 1h30m";
    let s = s.trim();
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(HINT.to_owned()),
        };
        let n: u64 = digits.parse().map_err(|_| HINT.to_owned())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| HINT.to_owned())?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(if total == 0 && digits.is_empty() && !s.is_empty() {
            "must be longer than 0s".to_owned()
        } else {
            HINT.to_owned()
        });
    }
    Ok(Duration::from_secs(total))
}

/// Strict `YYYY-MM-DD` (exactly four, two and two digits).
pub(crate) fn parse_ymd(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn parse_sources(
    mut table: Table,
    order: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<SourceEntry>, ConfigError> {
    let mut names: Vec<String> = order
        .iter()
        .filter(|n| table.contains_key(n.as_str()))
        .cloned()
        .collect();
    // Anything the ordering pass missed (it should not) comes last, alphabetically.
    for name in table.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let mut sources = Vec::with_capacity(names.len());
    for name in names {
        let Some(value) = table.remove(&name) else {
            continue;
        };
        if !is_valid_source_name(&name) {
            return Err(ConfigError::InvalidSourceName {
                name: quote_key(&name),
            });
        }
        let path = join_key("sources", &name);
        let mut settings = match value {
            Value::Table(t) => t,
            other => return Err(wrong_type(&path, "a table", &other)),
        };
        // Record what the environment supplies, so that errors about this source can hide it.
        let from_env = std::cell::RefCell::new(Vec::new());
        let recording = |var: &str| {
            let value = env(var);
            if let Some(v) = &value {
                from_env.borrow_mut().push(v.clone());
            }
            value
        };
        let env: &dyn Fn(&str) -> Option<String> = &recording;
        let type_key = join_key(&path, "type");
        let source_type = match settings.remove("type") {
            None => return Err(ConfigError::MissingKey { key: type_key }),
            Some(Value::String(raw)) => {
                let from_env = raw.contains("${");
                let resolved = env::substitute_str(&raw, &type_key, env)?;
                if !SOURCE_TYPES.contains(&resolved.as_str()) {
                    return Err(ConfigError::UnknownSourceType {
                        key: type_key,
                        given: (!from_env).then_some(resolved),
                    });
                }
                resolved
            }
            Some(other) => return Err(wrong_type(&type_key, "a string", &other)),
        };
        env::substitute_table(&mut settings, &path, env)?;
        sources.push(SourceEntry {
            name,
            source_type,
            settings,
            from_env: from_env.take(),
        });
    }
    Ok(sources)
}

fn is_valid_source_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `parent.key`, with `key` TOML-quoted when it is not a bare key.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        quote_key(key)
    } else {
        format!("{parent}.{}", quote_key(key))
    }
}

fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
