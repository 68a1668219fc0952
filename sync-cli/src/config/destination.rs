//! `[destination]`: where the dataset is, a SQLite file or a PostgreSQL schema.

use std::fmt;
use std::path::PathBuf;

use growthflow_core::destination::postgres::{is_postgres_url, PostgresTarget};
use serde::Deserialize;

use super::{env, ConfigError, DEFAULT_DESTINATION_URL};

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

/// `[destination]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DestinationShape {
    url: Option<String>,
    schema: Option<String>,
}

impl DestinationShape {
    pub(super) fn resolve(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DestinationConfig, ConfigError> {
        let url = match self.url {
            Some(url) => env::substitute_str(&url, "destination.url", env)?,
            None => DEFAULT_DESTINATION_URL.to_owned(),
        };
        let schema = self
            .schema
            .map(|s| env::substitute_str(&s, "destination.schema", env))
            .transpose()?;
        let destination = DestinationConfig { url, schema };
        destination.target()?;
        Ok(destination)
    }
}
