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
use growthflow_core::destination::postgres::{is_postgres_url, PostgresTarget};
use serde::de::DeserializeOwned;
use toml::{Table, Value};

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

const TOP_LEVEL_KEYS: [&str; 3] = ["destination", "sync", "sources"];
const DESTINATION_KEYS: [&str; 2] = ["url", "schema"];
const SYNC_KEYS: [&str; 3] = ["start_date", "concurrency", "max_wait"];

/// `[sync] max_wait` when the file does not set it: core's default, which admits waiting out an hourly
/// quota (GA4) but not a daily one.
pub const DEFAULT_MAX_WAIT: Duration = growthflow_core::http::DEFAULT_MAX_WAIT;

/// The earliest `start_date` accepted: none of the five platforms holds data from before it, so an
/// earlier date is a typo (`1025-01-01`) that would only make the first sync page through nothing.
pub const EARLIEST_START_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2005, 1, 1) {
    Some(d) => d,
    None => panic!("a valid date"),
};

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
    /// A source `type` that is not one of [`SOURCE_TYPES`].
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

/// `[destination]`: where the dataset is written.
#[derive(Clone, PartialEq, Eq)]
pub struct DestinationConfig {
    /// `sqlite://PATH`, relative to the working directory (`sqlite://growthflow.db`) or absolute
    /// (`sqlite:///var/lib/growthflow/growthflow.db`), or `postgres://` / `postgresql://` in libpq's
    /// URI form. Default [`DEFAULT_DESTINATION_URL`].
    pub url: String,
    /// PostgreSQL only: the schema the tables live in (default `growthflow`).
    pub schema: Option<String>,
}

impl Default for DestinationConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_DESTINATION_URL.to_owned(),
            schema: None,
        }
    }
}

/// Where the dataset is, once `[destination]` is read.
#[derive(Debug, Clone)]
pub enum DestinationTarget {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A schema of a PostgreSQL database.
    Postgres(Box<PostgresTarget>),
}

impl fmt::Debug for DestinationConfig {
    /// Shows only the URL's scheme: the rest may have come from an environment variable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match self.url.find("://") {
            Some(i) => format!("{}://<redacted>", &self.url[..i]),
            None => "<redacted>".to_owned(),
        };
        f.debug_struct("DestinationConfig")
            .field("url", &shown)
            .field("schema", &self.schema)
            .finish()
    }
}

impl DestinationConfig {
    /// The store [`url`](Self::url) names: a SQLite file (see [`sqlite_path`](Self::sqlite_path)) or a
    /// PostgreSQL database and [`schema`](Self::schema). Errors name `destination.url` or
    /// `destination.schema` and never repeat a password.
    pub fn target(&self) -> Result<DestinationTarget, ConfigError> {
        if is_postgres_url(self.url.trim()) {
            return PostgresTarget::parse(self.url.trim(), self.schema.as_deref())
                .map(|t| DestinationTarget::Postgres(Box::new(t)))
                .map_err(|e| match e {
                    growthflow_core::Error::Config { key, message } => {
                        ConfigError::Invalid { key, message }
                    }
                    other => ConfigError::Invalid {
                        key: "destination.url".to_owned(),
                        message: other.to_string(),
                    },
                });
        }
        if self.schema.is_some() {
            return Err(ConfigError::Invalid {
                key: "destination.schema".to_owned(),
                message: "only a postgres:// destination has a schema".to_owned(),
            });
        }
        self.sqlite_path().map(DestinationTarget::Sqlite)
    }

    /// The SQLite database file named by [`url`](Self::url): `sqlite://growthflow.db` →
    /// `growthflow.db`, `sqlite:///abs/path.db` → `/abs/path.db`. A `postgres://` URL, any other scheme
    /// or an empty path is a [`ConfigError::Invalid`] for `destination.url`.
    pub fn sqlite_path(&self) -> Result<PathBuf, ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            key: "destination.url".to_owned(),
            message: message.to_owned(),
        };
        let url = self.url.trim();
        let (scheme, rest) = match url.find("://") {
            Some(i) => (url[..i].to_ascii_lowercase(), &url[i + 3..]),
            None => {
                return Err(invalid(
                    "expected sqlite://PATH, e.g. sqlite://growthflow.db or \
                     sqlite:///var/lib/growthflow/growthflow.db",
                ))
            }
        };
        match scheme.as_str() {
            "sqlite" if rest.is_empty() => Err(invalid(
                "sqlite:// needs a file path, e.g. sqlite://growthflow.db",
            )),
            "sqlite" => Ok(PathBuf::from(rest)),
            "postgres" | "postgresql" => Err(invalid("a PostgreSQL destination has no file path")),
            _ => Err(invalid(
                "unsupported destination; expected sqlite://PATH (e.g. sqlite://growthflow.db) or \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            )),
        }
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
        serde_path_to_error::deserialize(value).map_err(|err| self.translate_error(&err))
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

    fn translate_error(&self, err: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
        let mut key = self.key_path();
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
        translate_serde_message(message, key, last_segment.as_deref(), &self.settings)
    }
}

/// Turns one of serde's standard error messages into a [`ConfigError`] that names `key` and carries no
/// string value; other (custom) messages are kept with the settings' string values scrubbed out.
fn translate_serde_message(
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
                expected: rest[i + ", expected ".len()..].to_owned(),
                found: Some(unexpected_kind(&rest[..i]).to_owned()),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some(i) = rest.rfind(", expected ") {
            let unexpected = &rest[..i];
            let expected = &rest[i + ", expected ".len()..];
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
fn scrub_values(message: &str, mut values: Vec<&str>) -> String {
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
    let mut doc: Table = text
        .parse()
        .map_err(|err: toml::de::Error| syntax_error(text, &err))?;
    let source_order = source_order(text);

    check_keys(&doc, "", &TOP_LEVEL_KEYS)?;

    let destination = parse_destination(doc.remove("destination"), env)?;
    let sync = parse_sync(doc.remove("sync"), env)?;
    let sources = match doc.remove("sources") {
        None => Vec::new(),
        Some(Value::Table(table)) => parse_sources(table, &source_order, env)?,
        Some(other) => return Err(wrong_type("sources", "a table", &other)),
    };
    Ok(Config {
        destination,
        sync,
        sources,
    })
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

fn parse_destination(
    value: Option<Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DestinationConfig, ConfigError> {
    let mut table = match value {
        None => return Ok(DestinationConfig::default()),
        Some(Value::Table(table)) => table,
        Some(other) => return Err(wrong_type("destination", "a table", &other)),
    };
    check_keys(&table, "destination", &DESTINATION_KEYS)?;
    substitute_table(&mut table, "destination", env)?;
    let mut destination = match table.remove("url") {
        None => DestinationConfig::default(),
        Some(Value::String(url)) => DestinationConfig { url, schema: None },
        Some(other) => return Err(wrong_type("destination.url", "a string", &other)),
    };
    destination.schema = match table.remove("schema") {
        None => None,
        Some(Value::String(schema)) => Some(schema),
        Some(other) => return Err(wrong_type("destination.schema", "a string", &other)),
    };
    destination.target()?;
    Ok(destination)
}

fn parse_sync(
    value: Option<Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SyncConfig, ConfigError> {
    let mut table = match value {
        None => return Ok(SyncConfig::default()),
        Some(Value::Table(table)) => table,
        Some(other) => return Err(wrong_type("sync", "a table", &other)),
    };
    check_keys(&table, "sync", &SYNC_KEYS)?;
    substitute_table(&mut table, "sync", env)?;
    let start_date = match table.remove("start_date") {
        None => SyncConfig::default_start_date(),
        Some(value) => parse_date(&value).ok_or_else(|| ConfigError::Invalid {
            key: "sync.start_date".to_owned(),
            message: "expected a date YYYY-MM-DD, e.g. \"2024-01-01\"".to_owned(),
        })?,
    };
    let today = chrono::Utc::now().date_naive();
    if start_date < EARLIEST_START_DATE || start_date > today {
        return Err(ConfigError::Invalid {
            key: "sync.start_date".to_owned(),
            message: format!(
                "{start_date} is out of range: must be between {EARLIEST_START_DATE} and today \
                 ({today}, UTC)"
            ),
        });
    }
    let max_wait = match table.remove("max_wait") {
        None => DEFAULT_MAX_WAIT,
        Some(Value::String(s)) => parse_duration(&s).map_err(|message| ConfigError::Invalid {
            key: "sync.max_wait".to_owned(),
            message,
        })?,
        Some(other) => return Err(wrong_type("sync.max_wait", "a duration string", &other)),
    };
    let concurrency = match table.remove("concurrency") {
        None => DEFAULT_CONCURRENCY,
        Some(Value::Integer(n)) => {
            usize::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ConfigError::Invalid {
                    key: "sync.concurrency".to_owned(),
                    message: "must be at least 1".to_owned(),
                })?
        }
        Some(other) => return Err(wrong_type("sync.concurrency", "an integer", &other)),
    };
    Ok(SyncConfig {
        start_date,
        concurrency,
        max_wait,
    })
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
                let resolved = substitute_str(&raw, &type_key, env)?;
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
        substitute_table(&mut settings, &path, env)?;
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

fn check_keys(table: &Table, path: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    match table.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ConfigError::UnknownKey {
            key: join_key(path, unknown),
            expected: Some(format!(
                "expected one of {}",
                allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }),
        None => Ok(()),
    }
}

fn wrong_type(key: &str, expected: &str, found: &Value) -> ConfigError {
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

/// `parent.key`, with `key` TOML-quoted when it is not a bare key.
fn join_key(parent: &str, key: &str) -> String {
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

fn substitute_table(
    table: &mut Table,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        substitute_value(value, &join_key(path, key), env)?;
    }
    Ok(())
}

fn substitute_value(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = substitute_str(s, path, env)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Table(table) => substitute_table(table, path, env)?,
        Value::Integer(_) | Value::Float(_) | Value::Boolean(_) | Value::Datetime(_) => {}
    }
    Ok(())
}

/// Replaces each `${NAME}` in `s`; see the module docs for the escape rule.
fn substitute_str(
    s: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let malformed = || ConfigError::MalformedEnvVar {
                key: key.to_owned(),
            };
            let end = body.find('}').ok_or_else(malformed)?;
            let name = &body[..end];
            if !is_valid_var_name(name) {
                return Err(malformed());
            }
            let value = env(name).ok_or_else(|| ConfigError::MissingEnvVar {
                var: name.to_owned(),
                key: key.to_owned(),
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_valid_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};
    use serde::Deserialize;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str) -> String {
        parse(text, &no_env).unwrap_err().to_string()
    }

    const EXAMPLE: &str = include_str!("../tests/fixtures/config/example.toml");

    const SECRETS: [(&str, &str); 5] = [
        ("SHOPIFY_ACCESS_TOKEN", "shpat_SECRET_shopify_0001"),
        ("WC_CONSUMER_KEY", "ck_SECRET_woo_key_0002"),
        ("WC_CONSUMER_SECRET", "cs_SECRET_woo_secret_0003"),
        ("KLAVIYO_API_KEY", "pk_SECRET_klaviyo_0004"),
        ("META_ACCESS_TOKEN", "EAAB_SECRET_meta_0005"),
    ];

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct WooTest {
        url: String,
        consumer_key: SecretString,
        consumer_secret: SecretString,
        #[serde(default)]
        base_url: Option<String>,
        #[serde(default)]
        lookback_days: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Ga4Test {
        property_id: String,
        #[serde(default)]
        credentials_file: Option<String>,
        #[serde(default)]
        lookback_days: Option<u32>,
    }

    #[test]
    fn example_config_parses_with_all_five_sources() {
        let config = parse(EXAMPLE, &env_of(&SECRETS)).unwrap();
        assert_eq!(config.destination.url, "sqlite://growthflow.db");
        assert_eq!(
            config.destination.sqlite_path().unwrap(),
            PathBuf::from("growthflow.db")
        );
        assert_eq!(
            config.sync.start_date,
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
        );
        assert_eq!(config.sync.concurrency, DEFAULT_CONCURRENCY);
        let names: Vec<_> = config.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["shop", "woo", "email", "web", "ads"]);
        let types: Vec<_> = config
            .sources
            .iter()
            .map(|s| s.source_type.as_str())
            .collect();
        assert_eq!(types, SOURCE_TYPES);
        let shop = config.source("shop").unwrap();
        assert_eq!(shop.settings["shop"].as_str(), Some("acme"));
        assert_eq!(
            shop.settings["access_token"].as_str(),
            Some("shpat_SECRET_shopify_0001")
        );
        assert!(!shop.settings.contains_key("type"));
        let woo: WooTest = config.source("woo").unwrap().deserialize().unwrap();
        assert_eq!(woo.url, "https://store.example.com");
        assert_eq!(woo.consumer_key.expose_secret(), "ck_SECRET_woo_key_0002");
        assert_eq!(
            woo.consumer_secret.expose_secret(),
            "cs_SECRET_woo_secret_0003"
        );
        let web: Ga4Test = config.source("web").unwrap().deserialize().unwrap();
        assert_eq!(web.property_id, "123456789");
        assert_eq!(
            web.credentials_file.as_deref(),
            Some("service-account.json")
        );
    }

    #[test]
    fn sources_keep_file_order_not_alphabetical() {
        let text = r#"
[sources.zeta]
type = "ga4"
property_id = "1"

[sources.alpha]
type = "klaviyo"

[sources]
mid = { type = "shopify" }
"#;
        let config = parse(text, &no_env).unwrap();
        let names: Vec<_> = config.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("", &no_env).unwrap();
        assert_eq!(config.destination.url, DEFAULT_DESTINATION_URL);
        assert_eq!(config.sync.concurrency, 4);
        let expected = chrono::Utc::now().date_naive() - chrono::Days::new(365);
        // Allow for the date turning over between the two calls.
        assert!((config.sync.start_date - expected).num_days().abs() <= 1);
        assert!(config.sources.is_empty());
    }

    #[test]
    fn missing_env_var_names_variable_and_key() {
        let text = EXAMPLE;
        let only_some = env_of(&SECRETS[1..]);
        let e = parse(text, &only_some).unwrap_err().to_string();
        assert_eq!(
            e,
            "config error: environment variable SHOPIFY_ACCESS_TOKEN is not set (used by \
             sources.shop.access_token)"
        );
    }

    #[test]
    fn substitution_in_nested_tables_and_arrays_and_several_per_string() {
        let text = r#"
[destination]
url = "sqlite://${DATA_DIR}/gf.db"

[sync]
start_date = "${START}"

[sources.web]
type = "${KIND}"
property_id = "${A}-${B}-${A}"
scopes = ["x", "${A}", ["${B}"]]
lonely = "cost: $5, pa$$word, $ end, $"
escaped = "$${A} and $${NOT_SET}"
[sources.web.oauth]
client_id = "id-${A}"
deep = { list = [{ v = "${B}" }] }
"#;
        let env = env_of(&[
            ("DATA_DIR", "/data"),
            ("START", "2023-06-30"),
            ("KIND", "ga4"),
            ("A", "aa"),
            ("B", "bb"),
        ]);
        let config = parse(text, &env).unwrap();
        assert_eq!(
            config.destination.sqlite_path().unwrap(),
            PathBuf::from("/data/gf.db")
        );
        assert_eq!(
            config.sync.start_date,
            NaiveDate::from_ymd_opt(2023, 6, 30).unwrap()
        );
        let web = &config.sources[0];
        assert_eq!(web.source_type, "ga4");
        let s = &web.settings;
        assert_eq!(s["property_id"].as_str(), Some("aa-bb-aa"));
        let scopes = s["scopes"].as_array().unwrap();
        assert_eq!(scopes[1].as_str(), Some("aa"));
        assert_eq!(scopes[2].as_array().unwrap()[0].as_str(), Some("bb"));
        assert_eq!(s["lonely"].as_str(), Some("cost: $5, pa$$word, $ end, $"));
        assert_eq!(s["escaped"].as_str(), Some("${A} and ${NOT_SET}"));
        let oauth = s["oauth"].as_table().unwrap();
        assert_eq!(oauth["client_id"].as_str(), Some("id-aa"));
        let deep = oauth["deep"]["list"][0]["v"].as_str();
        assert_eq!(deep, Some("bb"));
    }

    #[test]
    fn substituted_text_is_not_rescanned() {
        let text = "[sources.s]\ntype = \"klaviyo\"\napi_key = \"${K}\"\n";
        let config = parse(text, &env_of(&[("K", "x${OTHER}y")])).unwrap();
        assert_eq!(
            config.sources[0].settings["api_key"].as_str(),
            Some("x${OTHER}y")
        );
    }

    #[test]
    fn missing_env_var_in_nested_array_names_the_element() {
        let text =
            "[sources.s]\ntype = \"ga4\"\n[sources.s.oauth]\nscopes = [\"ok\", \"${NOPE}\"]\n";
        assert_eq!(
            err(text),
            "config error: environment variable NOPE is not set (used by sources.s.oauth.scopes[1])"
        );
        let text = "[sync]\nstart_date = \"${START}\"\n";
        assert!(
            err(text).contains("environment variable START is not set (used by sync.start_date)")
        );
        let text = "[destination]\nurl = \"sqlite://${DIR}/x.db\"\n";
        assert!(err(text).contains("variable DIR is not set (used by destination.url)"));
        let text = "[sources.s]\ntype = \"${KIND}\"\n";
        assert!(err(text).contains("variable KIND is not set (used by sources.s.type)"));
    }

    #[test]
    fn malformed_references_name_the_key() {
        for bad in ["${", "${}", "${A", "${1A}", "${A:-x}", "a ${B C} d"] {
            let text = format!("[sources.s]\ntype = \"klaviyo\"\napi_key = \"{bad}\"\n");
            let e = err(&text);
            assert!(
                e.starts_with("config error: sources.s.api_key: malformed environment variable"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_keys_name_their_full_path() {
        assert_eq!(
            err("[destinaton]\nurl = \"sqlite://x.db\"\n"),
            "config error: unknown key destinaton (expected one of `destination`, `sync`, `sources`)"
        );
        assert!(err("title = \"x\"\n").starts_with("config error: unknown key title "));
        assert!(err("[sync]\nconcurency = 4\n")
            .starts_with("config error: unknown key sync.concurency "));
        assert!(err("[destination]\npath = \"x\"\n")
            .starts_with("config error: unknown key destination.path "));
        assert!(err("[sync]\n\"odd key\" = 1\n")
            .starts_with("config error: unknown key sync.\"odd key\" "));
    }

    #[test]
    fn wrong_types_name_the_key() {
        assert_eq!(
            err("destination = 5\n"),
            "config error: destination: expected a table, found an integer"
        );
        assert_eq!(
            err("[destination]\nurl = 5\n"),
            "config error: destination.url: expected a string, found an integer"
        );
        assert_eq!(
            err("[sync]\nconcurrency = \"4\"\n"),
            "config error: sync.concurrency: expected an integer, found a string"
        );
        assert_eq!(
            err("sources = []\n"),
            "config error: sources: expected a table, found an array"
        );
        assert_eq!(
            err("[sources]\nshop = \"x\"\n"),
            "config error: sources.shop: expected a table, found a string"
        );
        assert_eq!(
            err("[sources.shop]\ntype = 1\n"),
            "config error: sources.shop.type: expected a string, found an integer"
        );
    }

    #[test]
    fn start_date_must_be_plausible() {
        assert_eq!(
            err("[sync]\nstart_date = \"2004-12-31\"\n"),
            format!(
                "config error: sync.start_date: 2004-12-31 is out of range: must be between \
                 2005-01-01 and today ({}, UTC)",
                chrono::Utc::now().date_naive()
            )
        );
        let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(2);
        assert!(err(&format!("[sync]\nstart_date = \"{tomorrow}\"\n"))
            .starts_with("config error: sync.start_date: "));
        let config = parse("[sync]\nstart_date = \"2005-01-01\"\n", &no_env).unwrap();
        assert_eq!(config.sync.start_date, EARLIEST_START_DATE);
    }

    #[test]
    fn max_wait() {
        assert_eq!(parse("", &no_env).unwrap().sync.max_wait, DEFAULT_MAX_WAIT);
        let config = parse("[sync]\nmax_wait = \"2m\"\n", &no_env).unwrap();
        assert_eq!(config.sync.max_wait, Duration::from_secs(120));
        assert_eq!(
            err("[sync]\nmax_wait = \"soon\"\n"),
            "config error: sync.max_wait: expected a duration such as 90s, 30m, 2h or 1h30m"
        );
        assert_eq!(
            err("[sync]\nmax_wait = 5\n"),
            "config error: sync.max_wait: expected a duration string, found an integer"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "30", "m", "1.5h", "-5m", "5 m", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn concurrency_must_be_positive() {
        assert_eq!(
            err("[sync]\nconcurrency = 0\n"),
            "config error: sync.concurrency: must be at least 1"
        );
        assert!(err("[sync]\nconcurrency = -3\n").contains("sync.concurrency: must be at least 1"));
        let config = parse("[sync]\nconcurrency = 16\n", &no_env).unwrap();
        assert_eq!(config.sync.concurrency, 16);
    }

    #[test]
    fn start_date_formats() {
        for bad in [
            "\"2024-13-01\"",
            "\"2024-1-1\"",
            "\"01/02/2024\"",
            "\"2024-02-30\"",
            "20240101",
            "2024-01-01T00:00:00Z",
            "\"\"",
        ] {
            let e = err(&format!("[sync]\nstart_date = {bad}\n"));
            assert_eq!(
                e, "config error: sync.start_date: expected a date YYYY-MM-DD, e.g. \"2024-01-01\"",
                "{bad}"
            );
        }
        // A bare TOML date works too.
        let config = parse("[sync]\nstart_date = 2024-02-29\n", &no_env).unwrap();
        assert_eq!(
            config.sync.start_date,
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn destination_urls() {
        let dest = |url: &str| {
            DestinationConfig {
                url: url.to_owned(),
                schema: None,
            }
            .sqlite_path()
        };
        assert_eq!(
            dest("sqlite://growthflow.db").unwrap(),
            PathBuf::from("growthflow.db")
        );
        assert_eq!(
            dest("sqlite://data/gf.db").unwrap(),
            PathBuf::from("data/gf.db")
        );
        assert_eq!(
            dest("sqlite:///var/lib/growthflow/growthflow.db").unwrap(),
            PathBuf::from("/var/lib/growthflow/growthflow.db")
        );
        assert_eq!(
            dest("postgres://u:pw@host/db").unwrap_err().to_string(),
            "config error: destination.url: a PostgreSQL destination has no file path"
        );
        assert!(dest("sqlite://")
            .unwrap_err()
            .to_string()
            .starts_with("config error: destination.url: "));
        assert!(dest("mysql://x")
            .unwrap_err()
            .to_string()
            .starts_with("config error: destination.url: "));
        assert!(dest("growthflow.db")
            .unwrap_err()
            .to_string()
            .starts_with("config error: destination.url: "));
        // Validated while parsing, too.
        assert!(err("[destination]\nurl = \"sqlite://\"\n")
            .starts_with("config error: destination.url: "));
    }

    #[test]
    fn postgres_destinations() {
        let config = parse(
            "[destination]\nurl = \"postgresql://gf:${PW}@db.internal:6543/analytics?sslmode=verify-full\"\n\
             schema = \"warehouse\"\n",
            &env_of(&[("PW", "s3cret")]),
        )
        .unwrap();
        match config.destination.target().unwrap() {
            DestinationTarget::Postgres(t) => {
                assert_eq!(t.display(), "postgres://gf@db.internal:6543/analytics");
                assert_eq!(t.schema(), "warehouse");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{config:?}").contains("s3cret"));
        // The default schema.
        let config = parse("[destination]\nurl = \"postgres://h/db\"\n", &no_env).unwrap();
        match config.destination.target().unwrap() {
            DestinationTarget::Postgres(t) => assert_eq!(t.schema(), "growthflow"),
            other => panic!("{other:?}"),
        }
        // A bad sslmode names the key and never the password.
        let e = err("[destination]\nurl = \"postgres://u:s3cret@h/db?sslmode=sometimes\"\n");
        assert!(e.starts_with("config error: destination.url: "), "{e}");
        assert!(
            e.contains("sslmode=sometimes") && !e.contains("s3cret"),
            "{e}"
        );
        assert_eq!(
            err("[destination]\nurl = \"sqlite://x.db\"\nschema = \"s\"\n"),
            "config error: destination.schema: only a postgres:// destination has a schema"
        );
        assert!(err("[destination]\nschema = 3\n").starts_with("config error: destination.schema"));
    }

    /// A secret put under the wrong key through `${VAR}` is never quoted back by a connector's
    /// validation, whichever key it is; the message still names the key. Typed into the file, the same
    /// value is quoted (the user sees what they wrote), which shows the redaction is what hides it.
    #[test]
    fn a_secret_from_the_environment_under_the_wrong_key_is_not_echoed() {
        const SECRET: &str = "shpat_0123456789abcdef";
        let env = env_of(&[("SECRET", SECRET)]);
        let dir = tempfile::tempdir().unwrap();
        let tokens = crate::tokens::TokenStore::beside(&dir.path().join("gf.db"));
        let options = growthflow_core::http::ClientOptions::default();
        let cases = [
            (
                "shopify",
                "shop = \"${SECRET}\"\naccess_token = \"t\"",
                "shop",
            ),
            (
                "meta_ads",
                "ad_account_id = \"${SECRET}\"\naccess_token = \"t\"",
                "ad_account_id",
            ),
            (
                "ga4",
                "property_id = \"${SECRET}\"\ncredentials_file = \"sa.json\"",
                "property_id",
            ),
            (
                "klaviyo",
                "api_key = \"k\"\nrevision = \"${SECRET}\"",
                "revision",
            ),
            (
                "ga4",
                "property_id = \"123\"\ncredentials_file = \"/nonexistent/${SECRET}\"",
                "credentials_file",
            ),
        ];
        for (kind, body, key) in cases {
            let text = format!("[sources.s]\ntype = \"{kind}\"\n{body}\n");
            let message = |env: &dyn Fn(&str) -> Option<String>| {
                // Without the variable, the value is typed into the file as is.
                let text = match env("SECRET") {
                    Some(_) => text.clone(),
                    None => text.replace("${SECRET}", SECRET),
                };
                let config = parse(&text, env).unwrap();
                crate::registry::build(&config.sources[0], &options, &tokens)
                    .err()
                    .unwrap_or_else(|| panic!("{key}: expected an error"))
                    .to_string()
            };
            let from_env = message(&env);
            assert!(
                from_env.starts_with(&format!("config error: sources.s.{key}: ")),
                "{from_env}"
            );
            assert!(!from_env.contains("shpat_"), "{key}: {from_env}");
            assert!(from_env.contains("***"), "{key}: {from_env}");
            let literal = message(&env_of(&[]));
            assert!(literal.contains(SECRET), "{key}: {literal}");
        }
    }

    #[test]
    fn source_names_and_types() {
        assert_eq!(
            err("[sources.Shop]\ntype = \"shopify\"\n"),
            "config error: sources.Shop: invalid source name; a source name uses only lowercase letters, \
             digits, `_` and `-`"
        );
        assert!(err("[sources.\"my shop\"]\ntype = \"shopify\"\n")
            .starts_with("config error: sources.\"my shop\": invalid source name"));
        assert!(parse("[sources.shop_2-eu]\ntype = \"shopify\"\n", &no_env).is_ok());
        assert_eq!(
            err("[sources.shop]\nshop = \"acme\"\n"),
            "config error: missing key sources.shop.type"
        );
        assert_eq!(
            err("[sources.shop]\ntype = \"shopfy\"\n"),
            "config error: sources.shop.type: unknown source type \"shopfy\"; expected one of shopify, \
             woocommerce, klaviyo, ga4, meta_ads"
        );
        // A type from the environment is not echoed.
        let e = parse(
            "[sources.shop]\ntype = \"${T}\"\n",
            &env_of(&[("T", "SECRETTYPE")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "config error: sources.shop.type: unknown source type; expected one of shopify, woocommerce, \
             klaviyo, ga4, meta_ads"
        );
    }

    fn woo_entry(extra: &str) -> SourceEntry {
        let text = format!(
            "[sources.woo]\ntype = \"woocommerce\"\nurl = \"https://store.example.com\"\n{extra}"
        );
        let env = env_of(&SECRETS);
        parse(&text, &env).unwrap().sources.remove(0)
    }

    const WOO_KEYS: &str =
        "consumer_key = \"${WC_CONSUMER_KEY}\"\nconsumer_secret = \"${WC_CONSUMER_SECRET}\"\n";

    #[test]
    fn typed_source_config_errors_name_the_key() {
        let entry = woo_entry(&format!(
            "{WOO_KEYS}consumer_keyy = \"${{WC_CONSUMER_KEY}}\"\n"
        ));
        let e = entry.deserialize::<WooTest>().unwrap_err().to_string();
        assert!(
            e.starts_with("config error: unknown key sources.woo.consumer_keyy"),
            "{e}"
        );
        assert!(e.contains("`consumer_key`"), "{e}");

        let entry = woo_entry("consumer_secret = \"${WC_CONSUMER_SECRET}\"\n");
        assert_eq!(
            entry.deserialize::<WooTest>().unwrap_err().to_string(),
            "config error: missing key sources.woo.consumer_key"
        );

        let entry = woo_entry(&format!("{WOO_KEYS}lookback_days = \"3\"\n"));
        assert_eq!(
            entry.deserialize::<WooTest>().unwrap_err().to_string(),
            "config error: sources.woo.lookback_days: expected u32, found a string"
        );
        let entry = woo_entry(&format!("{WOO_KEYS}lookback_days = -2\n"));
        assert_eq!(
            entry.deserialize::<WooTest>().unwrap_err().to_string(),
            "config error: sources.woo.lookback_days: invalid value (integer `-2`), expected u32"
        );

        let text = "[sources.web]\ntype = \"ga4\"\nproperty_id = 123456789\n";
        let entry = parse(text, &no_env).unwrap().sources.remove(0);
        assert_eq!(
            entry.deserialize::<Ga4Test>().unwrap_err().to_string(),
            "config error: sources.web.property_id: expected a string, found an integer"
        );
    }

    #[test]
    fn nested_typed_errors_name_the_nested_key() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            id: String,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Inner>,
        }
        let text = "[sources.s]\ntype = \"ga4\"\n[[sources.s.items]]\nid = \"a\"\n[[sources.s.items]]\nidd = \"b\"\n";
        let entry = parse(text, &no_env).unwrap().sources.remove(0);
        let e = entry.deserialize::<Outer>().unwrap_err().to_string();
        assert!(
            e.starts_with("config error: unknown key sources.s.items[1].idd"),
            "{e}"
        );
        let text = "[sources.s]\ntype = \"ga4\"\n[[sources.s.items]]\n";
        let entry = parse(text, &no_env).unwrap().sources.remove(0);
        assert_eq!(
            entry.deserialize::<Outer>().unwrap_err().to_string(),
            "config error: missing key sources.s.items[0].id"
        );
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let env = env_of(&SECRETS);
        let config = parse(EXAMPLE, &env).unwrap();
        let debug = format!("{config:?} {config:#?}");
        for (_, secret) in SECRETS {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("access_token"), "{debug}");

        // Type errors on a secret-valued key do not echo it.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WantsNumber {
            access_token: u64,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum Version {
            V1,
            V2,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WantsEnum {
            access_token: Version,
        }
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Custom(String);
        impl<'de> Deserialize<'de> for Custom {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Err(serde::de::Error::custom(format!("token {s} is not valid")))
            }
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WantsCustom {
            access_token: Custom,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WantsChar {
            access_token: char,
        }
        let shop = config.source("shop").unwrap();
        let mut messages = vec![
            shop.deserialize::<WantsNumber>().unwrap_err().to_string(),
            shop.deserialize::<WantsEnum>().unwrap_err().to_string(),
            shop.deserialize::<WantsCustom>().unwrap_err().to_string(),
            shop.deserialize::<WantsChar>().unwrap_err().to_string(),
        ];
        for m in &messages {
            assert!(m.contains("sources.shop.access_token"), "{m}");
        }
        assert!(
            messages[2].contains("token *** is not valid"),
            "{}",
            messages[2]
        );
        // Unknown keys next to secrets, missing vars, unknown types from env.
        messages.push(
            parse("[sources.shop]\ntype = \"${SHOPIFY_ACCESS_TOKEN}\"\n", &env)
                .unwrap_err()
                .to_string(),
        );
        messages.push(
            parse("[destination]\nurl = \"${SHOPIFY_ACCESS_TOKEN}\"\n", &env)
                .unwrap_err()
                .to_string(),
        );
        messages.push(
            parse("[sync]\nstart_date = \"${SHOPIFY_ACCESS_TOKEN}\"\n", &env)
                .unwrap_err()
                .to_string(),
        );
        let dest = parse(
            "[destination]\nurl = \"sqlite://${SHOPIFY_ACCESS_TOKEN}\"\n",
            &env,
        )
        .unwrap();
        messages.push(format!("{dest:?}"));
        for m in &messages {
            for (_, secret) in SECRETS {
                assert!(!m.contains(secret), "{m}");
            }
        }
    }

    #[test]
    fn short_secret_in_custom_message_is_scrubbed_when_quoted() {
        let mut settings = Table::new();
        settings.insert("k".into(), Value::String("ab".into()));
        let e = translate_serde_message(
            "bad value \"ab\" or `ab`",
            "sources.s.k".into(),
            Some("k"),
            &settings,
        );
        assert_eq!(
            e.to_string(),
            "config error: sources.s.k: bad value \"***\" or `***`"
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let e = parse(
            "[sync]\nstart_date = \"2024-01-01\nconcurrency = 2\n",
            &no_env,
        )
        .unwrap_err();
        match &e {
            ConfigError::Syntax { line, .. } => assert_eq!(*line, 2),
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string().starts_with("config error: line 2, column "),
            "{e}"
        );
        // Duplicate keys are syntax errors, not silently merged.
        let e = err("[sources.a]\ntype = \"ga4\"\ntype = \"klaviyo\"\n");
        assert_eq!(e, "config error: line 3, column 1: duplicate key type");
    }

    #[test]
    fn load_reads_files_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = load(&missing).unwrap_err().to_string();
        assert!(e.starts_with("config error: cannot read "), "{e}");
        assert!(e.contains("nope.toml"), "{e}");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[sync\n").unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.toml: line 1, column"), "{e}");

        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "[sync]\nconcurrency = 2\n[sources.s]\ntype = \"ga4\"\n",
        )
        .unwrap();
        let config = load(&good).unwrap();
        assert_eq!(config.sync.concurrency, 2);
        assert_eq!(config.sources[0].key_path(), "sources.s");
    }

    #[test]
    fn config_path_resolution() {
        let cli = PathBuf::from("/etc/gf.toml");
        assert_eq!(resolve_path_from(Some(&cli), Some("/env.toml".into())), cli);
        assert_eq!(
            resolve_path_from(None, Some("/env.toml".into())),
            PathBuf::from("/env.toml")
        );
        assert_eq!(
            resolve_path_from(None, Some("".into())),
            PathBuf::from("growthflow.toml")
        );
        assert_eq!(
            resolve_path_from(None, None),
            PathBuf::from("growthflow.toml")
        );
        assert_eq!(resolve_path(Some(&cli)), cli);
    }

    #[test]
    fn select_sources_by_name() {
        let config = parse(EXAMPLE, &env_of(&SECRETS)).unwrap();
        let all = config.select_sources::<&str>(&[]).unwrap();
        assert_eq!(all.len(), 5);
        let some = config.select_sources(&["ads", "shop", "ads"]).unwrap();
        let names: Vec<_> = some.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ads", "shop"]);
        assert_eq!(
            config.select_sources(&["shopp"]).unwrap_err().to_string(),
            "config error: no source named \"shopp\" in the config (configured: shop, woo, email, web, ads)"
        );
    }
}
