//! A connector's `base_url` setting (a platform's own host, a proxy, the sandbox), checked once for
//! every connector: an http(s) URL with a host and maybe a path prefix, nothing a request would carry
//! to the wrong place (a query, a fragment, credentials in the URL).

use url::Url;

use crate::error::{Error, Result};

/// `raw` (the value of config key `key`) as the root every request path is appended to: trimmed,
/// its path prefix kept without a trailing slash. Errors name `key` and what to write instead.
pub fn parse_base_url(key: &str, raw: &str) -> Result<Url> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::config(
            key,
            "is empty; leave it out to use the platform's own address",
        ));
    }
    let parsed = Url::parse(raw).map_err(|e| {
        Error::config(
            key,
            format!("is not a URL ({e}); write https://host[:port][/prefix]"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::config(
            key,
            format!(
                "must start with https:// (or http://), not {}://",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::config(key, "has no host name"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::config(
            key,
            "must not contain a query string or fragment",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::config(
            key,
            "must not contain credentials (user:password@); give them in the source's own keys",
        ));
    }
    let mut root = parsed.clone();
    root.set_path(parsed.path().trim_end_matches('/'));
    Ok(root)
}

/// `path` below `base`'s path (a root from [`parse_base_url`], whose prefix a proxy or the sandbox
/// may have set), with exactly one slash between: every connector builds its endpoint URLs this
/// way, so a prefix is kept the same for all of them.
pub fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> String {
        let e = parse_base_url("sources.x.base_url", raw).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        e.to_string()
    }

    #[test]
    fn paths_join_below_the_prefix_with_one_slash() {
        let root = parse_base_url("k", "http://127.0.0.1:9000/klaviyo/").unwrap();
        assert_eq!(
            join_path(&root, "api").as_str(),
            "http://127.0.0.1:9000/klaviyo/api"
        );
        let root = parse_base_url("k", "https://acme.myshopify.com").unwrap();
        assert_eq!(
            join_path(&root, "/admin/oauth/access_token").as_str(),
            "https://acme.myshopify.com/admin/oauth/access_token"
        );
    }

    #[test]
    fn keeps_the_prefix_without_a_trailing_slash() {
        let u = parse_base_url("k", " https://proxy.example.com:8443/shop/ ").unwrap();
        assert_eq!(u.as_str(), "https://proxy.example.com:8443/shop");
        let u = parse_base_url("k", "http://127.0.0.1:9000").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9000/");
    }

    #[test]
    fn refuses_what_would_send_requests_astray() {
        assert!(err("").contains("is empty"));
        assert!(err("not a url").contains("is not a URL"));
        assert!(err("ftp://example.com").contains("not ftp://"));
        assert!(err("https://example.com/?a=1").contains("query string"));
        assert!(err("https://example.com/#x").contains("fragment"));
        assert!(err("https://u:p@example.com").contains("credentials"));
        assert!(err("https://u:p@example.com").starts_with("config error: sources.x.base_url:"));
    }
}
