//! A simulated Klaviyo account speaking the JSON:API under `/klaviyo` (being written).

use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Utc};

use crate::faults::Faults;

/// Path prefix of the simulated account: the client's `base_url` is `http://HOST:PORT/klaviyo`.
pub const PREFIX: &str = "klaviyo";

/// The generated account: its data and the key it accepts.
#[derive(Debug, Clone)]
pub struct KlaviyoAccount {
    /// The private API key the account accepts (`Authorization: Klaviyo-API-Key …`).
    pub api_key: String,
}

impl KlaviyoAccount {
    /// Generate the account deterministically; `emails` are the store's customers (normalised), so
    /// that profiles join the store's customers on email.
    pub fn generate(
        seed: u64,
        scale: u32,
        end: DateTime<Utc>,
        emails: &[String],
    ) -> KlaviyoAccount {
        let _ = (seed, scale, end, emails);
        KlaviyoAccount {
            api_key: "pk_sandbox".into(),
        }
    }
}

/// The account's routes, under `/klaviyo`.
pub(crate) fn router(account: Arc<KlaviyoAccount>, faults: Faults) -> Router {
    let _ = (account, faults);
    Router::new()
}
