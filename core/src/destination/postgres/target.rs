//! Where a PostgreSQL dataset lives: libpq's URI form parsed (user, password, host, port, database,
//! `sslmode`, `sslrootcert`), connections made with TLS as libpq would, and errors that name the
//! setting to fix and never the password.

use super::*;

/// How the connection is encrypted, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (without verifying its certificate), else plain. The default.
    Prefer,
    /// TLS, without verifying the certificate: encrypted, not authenticated.
    Require,
    /// TLS, the certificate chain verified against the trusted roots; any host name accepted.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ))
            }
        })
    }
}

/// Where a PostgreSQL dataset lives: the parsed `[destination] url` and `schema`. Its `Debug` and
/// [`PostgresTarget::display`] never show the password.
#[derive(Clone)]
pub struct PostgresTarget {
    pub(super) config: postgres::Config,
    pub(super) ssl: SslMode,
    pub(super) root_cert: Option<PathBuf>,
    pub(super) schema: String,
    pub(super) display: String,
}

impl fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("server", &self.display)
            .field("sslmode", &self.ssl)
            .field("schema", &self.schema)
            .finish()
    }
}

/// Is `url` one of PostgreSQL's URI forms?
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PostgresTarget {
    /// Parse libpq's URI form (`postgres://` or `postgresql://`, user, password, host, port, database
    /// and query options; `sslmode` disable/prefer/require/verify-ca/verify-full, default prefer;
    /// `sslrootcert=PATH` adds a CA bundle to the trusted roots). The error is a config error for
    /// `destination.url` (or `destination.schema`) that never repeats the password.
    pub fn parse(url: &str, schema: Option<&str>) -> Result<Self> {
        let bad = |m: String| Error::config("destination.url", m);
        if !is_postgres_url(url) {
            return Err(bad(
                "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE".into()
            ));
        }
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut ssl = SslMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let value: String = url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            match k {
                "sslmode" => ssl = value.parse().map_err(bad)?,
                "sslrootcert" => root_cert = Some(PathBuf::from(value)),
                _ => kept.push(part),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = postgres::Config::from_str(&rebuilt).map_err(|e| {
            bad(format!(
                "not a valid PostgreSQL URL: {}",
                scrub(&e.to_string(), url)
            ))
        })?;
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".into());
            config.user(&user);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("growthflow");
        }
        config.ssl_mode(match ssl {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        let schema = schema.unwrap_or(DEFAULT_SCHEMA).to_string();
        if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
            return Err(Error::config(
                "destination.schema",
                "a schema name is 1 to 63 characters",
            ));
        }
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let display = format!(
            "postgres://{}@{host}:{port}/{}",
            config.get_user().unwrap_or_default(),
            config
                .get_dbname()
                .unwrap_or(config.get_user().unwrap_or_default())
        );
        Ok(PostgresTarget {
            config,
            ssl,
            root_cert,
            schema,
            display,
        })
    }

    /// The server, user and database, for messages: `postgres://USER@HOST:PORT/DATABASE`, no password.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The `sslmode`.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    /// A new connection with `search_path` set to the schema (which may not exist yet). Blocking: call
    /// it from a thread that is not running an async runtime.
    pub fn connect(&self) -> Result<Client> {
        let result = match self.ssl {
            SslMode::Disable => self.config.connect(NoTls),
            mode => self
                .config
                .connect(tls::connector(mode, self.root_cert.as_deref())?),
        };
        let mut client = result.map_err(|e| self.connect_error(&e))?;
        client
            .batch_execute(&format!("SET search_path TO {}", quote_ident(&self.schema)))
            .map_err(|e| self.error("cannot select the schema (destination.schema)", &e))?;
        Ok(client)
    }

    fn connect_error(&self, e: &postgres::Error) -> Error {
        let hint = match e.as_db_error().map(|d| d.code().clone()) {
            Some(c) if c == SqlState::INVALID_PASSWORD => {
                "authentication failed: check the user and password in destination.url"
            }
            Some(c) if c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                "the server refused this user (destination.url)"
            }
            Some(c) if c == SqlState::INVALID_CATALOG_NAME => {
                "the database does not exist (destination.url)"
            }
            Some(_) => "the server refused the connection (destination.url)",
            None if self.ssl >= SslMode::Require && e.to_string().contains("TLS") => {
                "the TLS handshake failed (destination.url's sslmode)"
            }
            None => "the server did not answer: check the host and port in destination.url",
        };
        self.error(&format!("cannot connect: {hint}"), e)
    }

    /// A dataset error naming the server (never the password) and what failed.
    pub(super) fn error(&self, what: &str, e: &dyn std::error::Error) -> Error {
        let mut detail = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !detail.contains(&text) {
                detail = format!("{detail}: {text}");
            }
            source = s.source();
        }
        let password = self
            .config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            detail = detail.replace(&p, "***");
        }
        Error::destination(format!("PostgreSQL {}: {what}: {detail}", self.display))
    }
}

impl PartialOrd for SslMode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some((*self as u8).cmp(&(*other as u8)))
    }
}

/// Take a URL's password out of a message that might quote the URL.
pub(super) fn scrub(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|auth| auth.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_string(),
    }
}

/// `"name"` with inner quotes doubled: any schema name is safe to splice into SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
