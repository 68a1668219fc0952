//! A newcomer's first files: `init`'s commented starter config, and the config `demo` leaves beside its
//! dataset with the commands to try next. Both are plain text so that a user can read and edit them.

use std::io::Write;
use std::path::Path;

/// The starter `growthflow.toml` that `init` writes: every setting commented, one commented-out source of
/// each type, so that the file parses as it is and each source is one uncommented block away.
pub const STARTER: &str = r#"# growthflow configuration. Every string may use ${VAR}, replaced from the environment: keep secrets
# there, not in this file. Unknown keys are errors that name the key. Reference: docs/configuration.md.

[destination]
url = "sqlite://growthflow.db"        # relative to the working directory, or sqlite:///abs/path.db
# url = "postgres://growthflow:${PGPASSWORD}@db.internal:5432/analytics?sslmode=verify-full"
# schema = "growthflow"               # PostgreSQL only: where the tables live

[sync]
# start_date = "2024-01-01"           # where a stream with no saved state begins (default: a year ago)
# concurrency = 4                     # streams read at once

# Sources: uncomment the ones you use. A source's name ([sources.NAME]) is yours: [a-z0-9_-]+, and
# several sources of one type are fine. Check them with `growthflow check`, then run `growthflow sync`.

# [sources.woo]
# type = "woocommerce"
# url = "https://store.example.com"
# consumer_key = "${WC_CONSUMER_KEY}"
# consumer_secret = "${WC_CONSUMER_SECRET}"

# [sources.shop]
# type = "shopify"
# shop = "acme"                       # or acme.myshopify.com
# access_token = "${SHOPIFY_ACCESS_TOKEN}"

# [sources.email]
# type = "klaviyo"
# api_key = "${KLAVIYO_API_KEY}"

# [sources.web]
# type = "ga4"
# property_id = "123456789"
# credentials_file = "service-account.json"   # a service-account key; or client_id/client_secret/refresh_token
# lookback_days = 3                   # GA4 restates recent days

# [sources.ads]
# type = "meta_ads"
# ad_account_id = "act_1234567890"
# access_token = "${META_ACCESS_TOKEN}"
# lookback_days = 28                  # Meta restates recent days
"#;

/// `init`: write [`STARTER`] at `path`, never over an existing file (a config holds a user's work).
/// Returns whether the file was written; either way a line on `out` says what happened.
pub fn init(path: &Path, out: &mut dyn Write) -> std::io::Result<bool> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    match file {
        Ok(mut f) => {
            f.write_all(STARTER.as_bytes())?;
            writeln!(
                out,
                "wrote {}: uncomment your sources, then run `growthflow check`",
                path.display()
            )?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            writeln!(
                out,
                "{} already exists; left it as it is (remove it first for a fresh starter)",
                path.display()
            )?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The config `demo` writes beside its dataset, from the config it ran with. Its sources are the
/// simulated platforms on loopback ports that only answer while that demo runs: kept as they are for
/// `demo --serve`, commented out otherwise, so that the file still serves `report` after the demo ends.
pub fn demo_file(config: &str, serving: bool) -> String {
    let config = config.trim_start();
    let (head, sources) = match config.find("[sources.") {
        Some(at) => config.split_at(at),
        None => (config, ""),
    };
    let mut text = String::from(
        "# Written by `growthflow demo`: its dataset and the simulated platforms it synced.\n",
    );
    if serving {
        text.push_str(
            "# The sources below answer only while that `growthflow demo --serve` runs.\n\n",
        );
        text.push_str(config);
        return text;
    }
    text.push_str(
        "# The sources below were the simulated platforms of that run, now stopped: `report` works on \
         the\n# dataset; for `check` and `sync`, run `growthflow demo --serve` and use the config it \
         writes.\n\n",
    );
    text.push_str(head);
    for line in sources.lines() {
        if line.is_empty() {
            text.push('\n');
        } else {
            text.push_str("# ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// What to try after the demo, with the config it wrote (in the demo's directory).
pub fn next_steps(config: &Path, serving: bool) -> String {
    let c = config.display();
    if serving {
        format!(
            "Next steps: the simulated platforms stay up until Ctrl-C. In another terminal:\n\
             \x20 each source answers:      growthflow --config {c} check\n\
             \x20 their streams:            growthflow --config {c} discover\n\
             \x20 only what changed:        growthflow --config {c} sync\n\
             \x20 the report, as JSON:      growthflow --config {c} report --format json\n"
        )
    } else {
        let dir = config.parent().unwrap_or(Path::new(".")).display();
        format!(
            "Next steps (the config of this dataset is {c}):\n\
             \x20 the report, as JSON:      growthflow --config {c} report --format json\n\
             \x20 try check and sync:       growthflow demo --serve --dir {dir}\n\
             \x20 set up your own store:    growthflow init\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn the_starter_parses_and_names_every_source_type() {
        let cfg = config::parse(STARTER, &|_| None).unwrap();
        assert!(cfg.sources.is_empty(), "every source starts commented out");
        for ty in config::SOURCE_TYPES {
            let uncommented = format!("\n# type = \"{ty}\"\n");
            assert!(STARTER.contains(&uncommented), "{ty} is missing");
        }
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growthflow.toml");
        let mut out = Vec::new();
        assert!(init(&path, &mut out).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), STARTER);
        std::fs::write(&path, "[sync]\n").unwrap();
        let mut out = Vec::new();
        assert!(!init(&path, &mut out).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[sync]\n");
        assert!(String::from_utf8(out).unwrap().contains("already exists"));
    }

    const RUN: &str = "\n[destination]\nurl = \"sqlite:///d/growthflow.db\"\n\n[sync]\nstart_date = \
                       \"2024-01-01\"\n\n[sources.woo]\ntype = \"woocommerce\"\nurl = \
                       \"http://127.0.0.1:9/woocommerce\"\nconsumer_key = \"ck\"\nconsumer_secret = \"cs\"\n";

    #[test]
    fn the_demo_file_keeps_its_sources_only_while_they_serve() {
        let stopped = config::parse(&demo_file(RUN, false), &|_| None).unwrap();
        assert!(stopped.sources.is_empty());
        assert_eq!(
            stopped.destination,
            config::parse(RUN, &|_| None).unwrap().destination
        );
        let serving = config::parse(&demo_file(RUN, true), &|_| None).unwrap();
        assert_eq!(serving.sources.len(), 1);
        assert_eq!(serving.sources[0].name, "woo");
    }
}
