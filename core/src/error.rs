//! One error type for every connector, classified so that the HTTP layer and the sync engine can decide
//! what to do without knowing the platform: retry a transient failure, wait out a throttle, stop and tell
//! the user to fix credentials, or report the platform's own message for a bad request.
//!
//! The platform's status and message are kept apart from transport and decode failures (as octocrab does),
//! because a user acts on them differently: a 400 with `rest_invalid_param` is a bug or bad config, a
//! connection reset is weather.

use std::time::Duration;

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure this is — the one question every caller asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying as is: 5xx, timeouts, dropped connections.
    Transient,
    /// The platform asked us to slow down; retry after the delay it gave.
    Throttled,
    /// Credentials are missing, wrong, expired or lack a permission: retrying will not help.
    Auth,
    /// The platform rejected the request (4xx) with its own message.
    Client,
    /// The response could not be read as what the platform documents.
    Decode,
    /// The user's configuration is wrong.
    Config,
    /// The local dataset failed.
    Destination,
    /// A daily or hourly quota is spent: stop now, the next run resumes.
    QuotaExhausted,
    /// The platform's host cannot be reached at all — its name does not resolve, its TLS certificate
    /// is refused, it does not speak TLS: asking again will not help, checking the URL will.
    Unreachable,
    /// A bug of growthflow's own (a state the code should never reach): report it, don't retry.
    Internal,
}

/// Every failure growthflow reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform answered with an error of its own (status, code and message as it sent them).
    #[error("{platform} API error {status}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        /// Platform name for the message (`WooCommerce`, `Shopify`, …).
        platform: &'static str,
        /// HTTP status.
        status: u16,
        /// The platform's machine-readable code, e.g. `rest_invalid_param`.
        code: Option<String>,
        /// The platform's human message.
        message: String,
    },
    /// Authentication or authorisation failed; `message` says what to do.
    #[error("authentication failed: {message}")]
    Auth {
        /// What went wrong and what the user should do about it.
        message: String,
    },
    /// Throttled by the platform.
    #[error("throttled: {message}")]
    Throttled {
        /// How long the platform asked us to wait, if it said.
        retry_after: Option<Duration>,
        /// What the platform said.
        message: String,
    },
    /// A failure worth retrying (5xx, timeout, connection dropped).
    #[error("temporary failure: {message}")]
    Transient {
        /// What happened.
        message: String,
    },
    /// A quota that will not refill soon is spent.
    #[error("quota exhausted: {message}")]
    QuotaExhausted {
        /// What is spent and when the next run can continue.
        message: String,
    },
    /// The body was not what the platform documents.
    #[error("could not decode the response: {message}")]
    Decode {
        /// Decoder message plus the start of the body.
        message: String,
    },
    /// Bad configuration; `key` names the config key.
    #[error("config error: {key}: {message}")]
    Config {
        /// The config key at fault, e.g. `sources.woo.url`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The dataset (SQLite or PostgreSQL) failed. The inner error is the store's own (a
    /// `rusqlite::Error`, a `postgres::Error`) or a message of ours, such as
    /// [`crate::destination::SchemaTooNew`]; callers that care can downcast it.
    #[error("dataset error: {0}")]
    Destination(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Anything else the platform side did that fits no other variant (a job the platform could not
    /// finish, an unexpected token-endpoint answer): classed with the platform's own refusals.
    #[error("{0}")]
    Other(String),
    /// The host cannot be reached (name, certificate, TLS); `message` says what to check.
    #[error("{message}")]
    Unreachable {
        /// What failed and which setting to check.
        message: String,
    },
    /// A bug of ours: a state the code should never reach. The message says where.
    #[error("internal error (a bug in growthflow, please report it): {0}")]
    Internal(String),
    /// A request, next-page link or redirect pointed away from the platform's origin. Refused rather
    /// than sent, because the source's credentials go with every request and must only reach the host
    /// they were issued for; retrying cannot help.
    #[error("refused {what} to {host}: this source's credentials are only sent to {allowed}")]
    OffOrigin {
        /// What was refused (`a request`, `a redirect`).
        what: &'static str,
        /// The other host (never the URL: its query may hold a token).
        host: String,
        /// The configured origin (`https://shop.myshopify.com`).
        allowed: String,
    },
    /// A response body grew past the client's cap; retrying would only read it again.
    #[error("{what} answered more than {limit} bytes, the most one response may hold (HttpConfig::max_response_bytes)")]
    ResponseTooLarge {
        /// Platform and path of the request.
        what: String,
        /// The cap in bytes.
        limit: u64,
    },
}

impl Error {
    /// Classify this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Api { .. } => ErrorKind::Client,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::Throttled { .. } => ErrorKind::Throttled,
            Error::Transient { .. } => ErrorKind::Transient,
            Error::QuotaExhausted { .. } => ErrorKind::QuotaExhausted,
            Error::Decode { .. } => ErrorKind::Decode,
            Error::Config { .. } => ErrorKind::Config,
            Error::Destination(_) => ErrorKind::Destination,
            Error::Other(_) => ErrorKind::Client,
            Error::Unreachable { .. } => ErrorKind::Unreachable,
            Error::Internal(_) => ErrorKind::Internal,
            Error::OffOrigin { .. } | Error::ResponseTooLarge { .. } => ErrorKind::Client,
        }
    }

    /// This error with every one of `secrets` in its text replaced by `[redacted]`. A platform may
    /// echo a credential it refused (Meta answers a malformed token with "Malformed access token"
    /// and the token), and an error's text goes to the logs and to the dataset's run history.
    pub fn without_secrets(self, secrets: &[String]) -> Error {
        if secrets.is_empty() {
            return self;
        }
        let scrub = |mut text: String| {
            for s in secrets {
                if text.contains(s.as_str()) {
                    text = text.replace(s.as_str(), "[redacted]");
                }
            }
            text
        };
        match self {
            Error::Api {
                platform,
                status,
                code,
                message,
            } => Error::Api {
                platform,
                status,
                code,
                message: scrub(message),
            },
            Error::Auth { message } => Error::Auth {
                message: scrub(message),
            },
            Error::Throttled {
                retry_after,
                message,
            } => Error::Throttled {
                retry_after,
                message: scrub(message),
            },
            Error::Transient { message } => Error::Transient {
                message: scrub(message),
            },
            Error::QuotaExhausted { message } => Error::QuotaExhausted {
                message: scrub(message),
            },
            Error::Decode { message } => Error::Decode {
                message: scrub(message),
            },
            Error::Other(message) => Error::Other(scrub(message)),
            Error::Unreachable { message } => Error::Unreachable {
                message: scrub(message),
            },
            other => other,
        }
    }

    /// True when retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transient | ErrorKind::Throttled)
    }

    /// The delay the platform asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A decode error. Non-JSON bodies (an HTML page from a proxy or WAF) are quoted — at most 200
    /// characters — so they are recognisable; JSON bodies are not, because they hold customer data
    /// that must not reach logs.
    pub fn decode(err: impl std::fmt::Display, body: &[u8]) -> Error {
        let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let message = if matches!(first, Some(b'{') | Some(b'[')) {
            format!(
                "{err}; the body is {} bytes of malformed or truncated JSON",
                body.len()
            )
        } else {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.chars().take(200).collect();
            format!("{err}; body starts with: {snippet:?}")
        };
        Error::Decode { message }
    }

    /// A dataset error with a message of ours.
    pub fn destination(message: impl Into<String>) -> Error {
        Error::Destination(message.into().into())
    }

    /// A config error for `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[cfg(feature = "dataset")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Destination(Box::new(e))
    }
}

#[cfg(feature = "dataset")]
impl From<postgres::Error> for Error {
    /// `postgres::Error` shows only its kind ("db error"); the server's message is its source, so
    /// the text carries the whole chain.
    fn from(e: postgres::Error) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        Error::destination(text)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Decode {
            message: e.to_string(),
        }
    }
}
