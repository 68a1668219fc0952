//! A simulated WooCommerce store (REST API v3) under `/woocommerce`.
//!
//! The store URL is `http://127.0.0.1:PORT/woocommerce`; the API lives at
//! `/woocommerce/wp-json/wc/v3/`:
//!
//! | route | serves |
//! | --- | --- |
//! | `GET orders`, `GET orders/{id}` | [`WooStore::orders`] |
//! | `GET orders/{id}/refunds`, `GET orders/{id}/refunds/{refund_id}` | that order's refunds, without `parent_id` |
//! | `GET refunds` | [`WooStore::refunds`] (the WC ≥ 9.0 global endpoint, with `parent_id`) |
//! | `GET customers`, `GET customers/{id}` | [`WooStore::customers`] (`role` defaults to `customer`; `role=all` for every user) |
//! | `GET products`, `GET products/{id}` | [`WooStore::products`] |
//! | `GET coupons`, `GET coupons/{id}` | [`WooStore::coupons`] |
//!
//! Anything else is `404 rest_no_route`. Like WooCommerce on a plain-HTTP site, only one-legged OAuth
//! 1.0a is accepted (query string or `Authorization: OAuth` header; HMAC-SHA1 or HMAC-SHA256, timestamp
//! within ±15 minutes, nonces single use); HTTP Basic and `consumer_key`/`consumer_secret` query
//! parameters are ignored, so such requests are anonymous and get `401 woocommerce_rest_cannot_view`.
//!
//! Signature base string: `GET&` + pct(`http://{Host header}{path}`) + `&` + pct(the query parameters
//! and `oauth_*` header parameters except `oauth_signature`, each as `pct(key)=pct(value)`, sorted,
//! joined with `&`), where pct is RFC 3986 encoding leaving only `A-Z a-z 0-9 - . _ ~`; key =
//! `consumer_secret + "&"`; signature = base64 of the HMAC.
//!
//! Collections support `page`, `per_page` (1..=100, default 10), `offset`, `order`, `orderby`,
//! `include`, `exclude`, `_fields`, and (except customers) `after`, `before`, `modified_after`,
//! `modified_before` (exclusive) with `dates_are_gmt`; orders also `status`, `customer`, `product`;
//! products `status`, `type`, `sku`; coupons `code`; customers `role`, `email`; refunds `parent`.
//! List responses carry `X-WP-Total`, `X-WP-TotalPages` and one `Link` header per `rel="prev"` /
//! `rel="next"`; as in WordPress, those links repeat every query parameter the client sent (OAuth ones
//! included), so a client must re-sign them rather than follow them verbatim.

mod auth;
mod data;
mod rest;
mod routes;

pub use data::{WooStore, SITE_URL, UTC_OFFSET_HOURS, WINDOW_DAYS};
pub(crate) use routes::router;

/// The path prefix (without slashes) the store is served under.
pub const PREFIX: &str = "woocommerce";

/// The REST API root relative to the store URL.
pub const API_ROOT: &str = "/wp-json/wc/v3";
