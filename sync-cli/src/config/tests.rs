//! The config file's parsing, its messages and its secrecy, held against every rule in the module docs.

use super::error::translate_serde_message;
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

const EXAMPLE: &str = include_str!("../../tests/fixtures/config/example.toml");

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
    let text = "[sources.s]\ntype = \"ga4\"\n[sources.s.oauth]\nscopes = [\"ok\", \"${NOPE}\"]\n";
    assert_eq!(
        err(text),
        "config error: environment variable NOPE is not set (used by sources.s.oauth.scopes[1])"
    );
    let text = "[sync]\nstart_date = \"${START}\"\n";
    assert!(err(text).contains("environment variable START is not set (used by sync.start_date)"));
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
    assert!(
        err("[sync]\nconcurency = 4\n").starts_with("config error: unknown key sync.concurency ")
    );
    assert!(err("[destination]\npath = \"x\"\n")
        .starts_with("config error: unknown key destination.path "));
    assert!(
        err("[sync]\n\"odd key\" = 1\n").starts_with("config error: unknown key sync.\"odd key\" ")
    );
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
    assert!(
        err("[destination]\nurl = \"sqlite://\"\n").starts_with("config error: destination.url: ")
    );
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
        "config error: sources.woo.lookback_days: expected an integer, found a string"
    );
    let entry = woo_entry(&format!("{WOO_KEYS}lookback_days = -2\n"));
    assert_eq!(
        entry.deserialize::<WooTest>().unwrap_err().to_string(),
        "config error: sources.woo.lookback_days: invalid value (integer `-2`), expected an integer from 0 to 4294967295"
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
