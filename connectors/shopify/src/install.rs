//! The authorization-code install flow, for library users building a Shopify app around growthflow.
//!
//! Shopify sends the merchant to the app's URL, the app redirects them to [`authorize_url`], Shopify
//! calls back with `code`, `hmac`, `shop`, `state` and `timestamp`; the app checks the callback with
//! [`verify_callback`] (HMAC-SHA256 of the other parameters under the client secret, and the `state` it
//! issued) and trades the code for an expiring offline token with [`exchange_code`]. The resulting
//! refresh token goes into [`ShopifyConfig::refresh_token`](crate::ShopifyConfig).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use url::Url;

use growthflow_core::http::{ClientOptions, DefaultPolicy, HttpClient};
use growthflow_core::{Error, Result};

use crate::config::ShopifyConfig;

/// Where to send the merchant to grant `scopes` (offline access: no `grant_options[]`).
pub fn authorize_url(
    config: &ShopifyConfig,
    source: &str,
    client_id: &str,
    scopes: &[&str],
    redirect_uri: &str,
    state: &str,
) -> Result<Url> {
    let mut url = config.origin(source)?;
    url.set_path(&format!(
        "{}/admin/oauth/authorize",
        url.path().trim_end_matches('/')
    ));
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("scope", &scopes.join(","))
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state);
    Ok(url)
}

/// The HMAC-SHA256 (lower-case hex) Shopify computes over a callback's parameters: every parameter but
/// `hmac` and `signature`, sorted by name, joined as `name=value` with `&`.
pub fn callback_hmac(params: &[(String, String)], client_secret: &SecretString) -> String {
    hex::encode(callback_mac(params, client_secret).finalize().into_bytes())
}

/// The MAC over the signed part of a callback, left open so the caller can finalize or verify it.
fn callback_mac(params: &[(String, String)], client_secret: &SecretString) -> Hmac<Sha256> {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .collect();
    kept.sort();
    let message = kept
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac
}

/// What a verified callback carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The authorization code to exchange.
    pub code: String,
    /// The shop, `acme.myshopify.com`.
    pub shop: String,
}

/// Check a callback's HMAC (in constant time), its `state` and its shop host; a forged or replayed
/// callback is an [`Error::Auth`].
pub fn verify_callback(
    params: &[(String, String)],
    client_secret: &SecretString,
    expected_state: &str,
) -> Result<Callback> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let bad = |why: &str| Error::Auth {
        message: format!("the Shopify install callback is not genuine: {why}"),
    };
    let given = get("hmac").ok_or_else(|| bad("it has no hmac"))?;
    // Shopify sends lower-case hex; the hex crate also takes upper case, which is the same MAC.
    let given = hex::decode(given).map_err(|_| bad("its hmac is not hex"))?;
    callback_mac(params, client_secret)
        .verify_slice(&given)
        .map_err(|_| bad("its hmac does not match"))?;
    if get("state") != Some(expected_state) {
        return Err(bad("its state is not the one this app issued"));
    }
    let shop = get("shop").ok_or_else(|| bad("it names no shop"))?;
    let valid_host = shop
        .strip_suffix(".myshopify.com")
        .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid_host {
        return Err(bad("its shop is not a myshopify.com host"));
    }
    let code = get("code").ok_or_else(|| bad("it has no code"))?;
    Ok(Callback {
        code: code.to_string(),
        shop: shop.to_string(),
    })
}

/// The token Shopify issues for an install.
#[derive(Clone, Deserialize)]
pub struct InstallToken {
    /// The access token (60 minutes when expiring).
    #[serde(deserialize_with = "secret")]
    pub access_token: SecretString,
    /// Granted scopes, comma-separated.
    #[serde(default)]
    pub scope: String,
    /// Seconds until the access token expires (absent for non-expiring tokens).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// The refresh token of an expiring offline token.
    #[serde(default, deserialize_with = "opt_secret")]
    pub refresh_token: Option<SecretString>,
}

impl std::fmt::Debug for InstallToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallToken")
            .field("access_token", &"[REDACTED]")
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

fn opt_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<SecretString>, D::Error> {
    Option::<String>::deserialize(d).map(|o| o.map(SecretString::from))
}

/// Trade a verified callback's code for an expiring offline token (`expiring: 1`).
///
/// Posted by hand through core's client rather than with the `oauth2` crate core uses elsewhere:
/// Shopify's exchange is not RFC 6749's. The request is a JSON body with no `grant_type` (oauth2 sends a
/// form with `grant_type=authorization_code`), and the answer has no `token_type` and a comma-separated
/// `scope`, which oauth2's `StandardTokenResponse` rejects (`token_type` is required) or misreads
/// (scopes split on spaces).
pub async fn exchange_code(
    config: &ShopifyConfig,
    source: &str,
    client_id: &str,
    client_secret: &SecretString,
    code: &str,
    options: &ClientOptions,
) -> Result<InstallToken> {
    let client = HttpClient::builder(Arc::new(DefaultPolicy("Shopify")))
        .options(options)
        .build()?;
    let body = json!({
        "client_id": client_id,
        "client_secret": client_secret.expose_secret(),
        "code": code,
        "expiring": 1,
    });
    let resp = client
        .send(
            "oauth",
            client.reqwest().post(config.token_url(source)?).json(&body),
        )
        .await?;
    resp.json()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hmac_known_answer() {
        // The example from Shopify's OAuth docs (also recomputed with Python's hmac module).
        let p = params(&[
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("hmac", "ignored"),
            ("shop", "some-shop.myshopify.com"),
            ("state", "0.6784241404160823"),
            ("timestamp", "1337178173"),
        ]);
        assert_eq!(
            callback_hmac(&p, &SecretString::from("hush")),
            "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
        );
    }

    #[test]
    fn a_genuine_callback_is_accepted_and_forgeries_are_not() {
        let secret = SecretString::from("hush");
        let mut p = params(&[
            ("code", "abc"),
            ("shop", "acme.myshopify.com"),
            ("state", "nonce-1"),
            ("timestamp", "1337178173"),
            ("host", "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvYWNtZQ"),
        ]);
        let mac = callback_hmac(&p, &secret);
        p.push(("hmac".into(), mac));
        let ok = verify_callback(&p, &secret, "nonce-1").unwrap();
        assert_eq!(ok.code, "abc");
        assert_eq!(ok.shop, "acme.myshopify.com");
        assert!(verify_callback(&p, &secret, "nonce-2").is_err());
        assert!(verify_callback(&p, &SecretString::from("other"), "nonce-1").is_err());
        let mut tampered = p.clone();
        tampered[0].1 = "xyz".into();
        assert!(verify_callback(&tampered, &secret, "nonce-1").is_err());
        let mut evil = p.clone();
        evil[1].1 = "evil.example.com".into();
        let mac = callback_hmac(&evil, &secret);
        evil.retain(|(k, _)| k != "hmac");
        evil.push(("hmac".into(), mac));
        assert!(verify_callback(&evil, &secret, "nonce-1").is_err());
        let with_hmac = |mac: String| {
            let mut q = p.clone();
            q.retain(|(k, _)| k != "hmac");
            q.push(("hmac".into(), mac));
            verify_callback(&q, &secret, "nonce-1").map_err(|e| e.to_string())
        };
        let genuine = callback_hmac(&p, &secret);
        assert!(
            with_hmac(genuine.to_uppercase()).is_ok(),
            "same MAC in upper-case hex"
        );
        let short = with_hmac(genuine[..62].to_string()).unwrap_err();
        assert!(short.contains("does not match"), "{short}");
        let not_hex = with_hmac(format!("{}zz", &genuine[..62])).unwrap_err();
        assert!(not_hex.contains("not hex"), "{not_hex}");
        let mut none = p.clone();
        none.retain(|(k, _)| k != "hmac");
        let missing = verify_callback(&none, &secret, "nonce-1").unwrap_err();
        assert!(missing.to_string().contains("no hmac"), "{missing}");
    }

    #[test]
    fn authorize_url_asks_for_offline_access() {
        let c = ShopifyConfig::new("acme", "x");
        let u = authorize_url(
            &c,
            "shop",
            "cid",
            &["read_orders", "read_all_orders"],
            "https://app.example/cb",
            "n1",
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://acme.myshopify.com/admin/oauth/authorize?client_id=cid&scope=read_orders%2Cread_all_orders&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=n1"
        );
    }
}
