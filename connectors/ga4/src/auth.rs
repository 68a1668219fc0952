//! Google's two ways in: a service account's signed JWT exchanged for an access token (RFC 7523
//! jwt-bearer), or a user's OAuth refresh token. Both end up as `Authorization: Bearer …`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use growthflow_core::auth::{
    Authenticator, ClientAuth, HeaderAuth, OAuth2RefreshToken, TokenCache, TokenProvider,
    EXPIRY_MARGIN,
};
use growthflow_core::http::{ApiPolicy, ClientOptions, HttpClient, Response};
use growthflow_core::{Error, Result};

use crate::config::{Credentials, DEFAULT_TOKEN_URL};

/// The read-only Analytics scope requested.
pub const SCOPE: &str = "https://www.googleapis.com/auth/analytics.readonly";
/// The JWT-bearer grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime claimed by each assertion (Google's maximum).
pub const ASSERTION_LIFETIME_SECS: i64 = 3600;

/// The fields of a service-account key file growthflow uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// Must be `service_account`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// The account's email: the JWT's `iss`.
    pub client_email: String,
    /// PKCS#8 PEM private key.
    pub private_key: SecretString,
    /// Optional key id, sent as the JWT header's `kid`.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Token endpoint: the JWT's `aud` and where it is posted.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    DEFAULT_TOKEN_URL.to_string()
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Read and check a key file; errors name `key` (the config key).
    pub fn from_file(path: &Path, key: &str) -> Result<Self> {
        let raw = std::fs::read(path)
            .map_err(|e| Error::config(key, format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&raw, key)
    }

    /// Parse and check key JSON.
    pub fn from_json(raw: &[u8], key: &str) -> Result<Self> {
        let k: ServiceAccountKey = serde_json::from_slice(raw).map_err(|e| {
            Error::config(
                key,
                format!("not a Google service-account key file (JSON): {e}"),
            )
        })?;
        if k.key_type != "service_account" {
            return Err(Error::config(
                key,
                format!(
                    "key type is \"{}\", expected \"service_account\"",
                    k.key_type
                ),
            ));
        }
        Ok(k)
    }
}

/// Base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A service account's access tokens, from RS256-signed assertions, cached until shortly before expiry.
///
/// RSA signing is ring's (already linked through rustls), not a second RSA implementation.
pub struct ServiceAccountToken {
    client_email: String,
    key_id: Option<String>,
    token_uri: String,
    signer: RsaKeyPair,
    rng: SystemRandom,
    http: HttpClient,
    cached: TokenCache,
}

impl fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountToken")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct TokenPolicy;

impl ApiPolicy for TokenPolicy {
    fn platform(&self) -> &'static str {
        "Google OAuth"
    }

    fn classify(&self, resp: &Response) -> Option<Error> {
        if resp.status.is_success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let code = v.get("error").and_then(|e| e.as_str()).unwrap_or("");
        let desc = v
            .get("error_description")
            .and_then(|e| e.as_str())
            .unwrap_or("");
        if resp.status.is_server_error() || resp.status.as_u16() == 429 {
            return growthflow_core::http::default_classify(self, resp);
        }
        Some(Error::Auth {
            message: format!(
                "Google refused the service account's assertion ({} {code}: {desc}); check the key file \
                 (a deleted or rotated key gives \"Invalid JWT Signature\") and the machine's clock",
                resp.status.as_u16()
            ),
        })
    }
}

impl ServiceAccountToken {
    /// A provider for `key`, posting to its `token_uri` through a client built from `options`.
    pub fn new(key: &ServiceAccountKey, options: &ClientOptions, config_key: &str) -> Result<Self> {
        let pem = key.private_key.expose_secret();
        // The PEM parser's errors can quote bytes of the key: say which kind of fault, not its text.
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            let fault = match e {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "has no \"BEGIN PRIVATE KEY\" section"
                }
                _ => "is malformed PEM",
            };
            Error::config(
                config_key,
                format!("private_key {fault}; expected a PKCS#8 PEM key"),
            )
        })?;
        let private = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| {
            Error::config(
                config_key,
                format!("private_key is not a PKCS#8 RSA key: {e}"),
            )
        })?;
        url::Url::parse(&key.token_uri).map_err(|e| {
            Error::config(
                config_key,
                format!("token_uri \"{}\" is not a URL: {e}", key.token_uri),
            )
        })?;
        // One retry layer: the API request that needs the token retries it (honouring a Retry-After
        // the token endpoint sends); retrying inside as well would ask attempts × attempts times.
        let mut options = options.clone();
        options.config.retry.max_retries = 0;
        options.config.retry.max_throttle_waits = 0;
        let http = HttpClient::builder(Arc::new(TokenPolicy))
            .options(&options)
            .build()?;
        Ok(ServiceAccountToken {
            client_email: key.client_email.clone(),
            key_id: key.private_key_id.clone(),
            token_uri: key.token_uri.clone(),
            signer: private,
            rng: SystemRandom::new(),
            http,
            cached: TokenCache::default(),
        })
    }

    /// A signed assertion issued at `iat` (Unix seconds).
    ///
    /// # Panics
    /// Never in practice: RSASSA-PKCS1-v1_5 signing is deterministic and fails only if the output buffer
    /// is not the modulus' length, which it is by construction.
    pub fn assertion(&self, iat: i64) -> String {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.signer.public().modulus_len()];
        self.signer
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("the signature buffer is the modulus' length");
        format!("{signing_input}.{}", b64url(&signature))
    }

    async fn fetch(&self) -> Result<(SecretString, Option<Instant>)> {
        let iat = chrono::Utc::now().timestamp();
        let form = [
            ("grant_type", JWT_BEARER.to_string()),
            ("assertion", self.assertion(iat)),
        ];
        let req = self.http.reqwest().post(&self.token_uri).form(&form);
        let resp = self.http.send("token", req).await?;
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: TokenResponse = resp.json()?;
        let life = Duration::from_secs(t.expires_in.unwrap_or(3600)).saturating_sub(EXPIRY_MARGIN);
        Ok((
            SecretString::from(t.access_token),
            Some(self.http.clock().now() + life),
        ))
    }
}

#[async_trait]
impl TokenProvider for ServiceAccountToken {
    async fn token(&self) -> Result<SecretString> {
        self.cached
            .get_or_fetch(self.http.clock().now(), || self.fetch())
            .await
    }

    async fn invalidate(&self) -> Result<bool> {
        self.cached.clear().await;
        Ok(true)
    }
}

/// The token provider for `credentials`.
pub fn token_provider(
    source: &str,
    credentials: Credentials,
    options: &ClientOptions,
) -> Result<Arc<dyn TokenProvider>> {
    Ok(match credentials {
        Credentials::ServiceAccount(path) => {
            let key_name = format!("sources.{source}.credentials_file");
            let key = ServiceAccountKey::from_file(&path, &key_name)?;
            Arc::new(ServiceAccountToken::new(&key, options, &key_name)?)
        }
        Credentials::OAuth {
            client_id,
            client_secret,
            refresh_token,
            token_url,
        } => Arc::new(
            OAuth2RefreshToken::new(
                client_id,
                Some(client_secret),
                refresh_token,
                token_url,
                ClientAuth::RequestBody,
            )?
            .invalid_grant_hint(format!(
                " (GA4 source \"{source}\"); refresh tokens of Google OAuth apps in \"Testing\" publishing \
                 status expire after 7 days: publish the app (or authorise again) and set \
                 sources.{source}.refresh_token"
            )),
        ),
    })
}

/// The bearer authenticator for `credentials`.
pub fn authenticator(
    source: &str,
    credentials: Credentials,
    options: &ClientOptions,
) -> Result<Arc<dyn Authenticator>> {
    Ok(Arc::new(HeaderAuth::bearer(token_provider(
        source,
        credentials,
        options,
    )?)))
}
