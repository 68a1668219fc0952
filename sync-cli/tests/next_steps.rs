//! A newcomer's path through the command line: `demo` leaves a config for its dataset and says what to
//! run next; `init` writes a starter config and never overwrites one.

use std::path::Path;
use std::sync::Arc;

use growthflow_cli::app;
use growthflow_cli::cli::Cli;
use growthflow_cli::config;
use growthflow_core::http::{Clock, TestClock, TokioClock};

async fn run(args: &[&str]) -> (i32, String) {
    run_on(Arc::new(TokioClock), args).await
}

/// [`run`] timed on `clock`: the demo's simulated platforms and its sync share it.
async fn run_on(clock: Arc<dyn Clock>, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["growthflow", "-q"];
    argv.extend_from_slice(args);
    let parsed = Cli::try_parse_args_from(argv).expect("valid command line");
    let mut out = Vec::new();
    let code = app::run_with_clock(parsed, &mut out, clock).await;
    (code, String::from_utf8(out).unwrap())
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn init_writes_a_starter_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growthflow.toml");
    let (code, out) = run(&["--config", arg(&path), "init"]).await;
    assert_eq!(code, 0, "{out}");
    let starter = std::fs::read_to_string(&path).unwrap();
    assert_eq!(starter, growthflow_cli::init::STARTER);
    assert!(out.contains("wrote"), "{out}");

    std::fs::write(&path, "[sync]\nconcurrency = 2\n").unwrap();
    let (code, out) = run(&["--config", arg(&path), "init"]).await;
    assert_eq!(code, 0, "refusing is not an error: {out}");
    assert!(out.contains("already exists"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[sync]\nconcurrency = 2\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_writes_a_config_for_its_dataset_and_the_next_commands() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    // On virtual time: the simulated Shopify's throttle and Meta's report jobs are waited out at once.
    let clock = Arc::new(TestClock::yielding());
    let (code, out) = run_on(clock.clone(), &["demo", "--dir", arg(&demo_dir)]).await;
    assert!(
        clock.elapsed() > std::time::Duration::ZERO,
        "the demo's waits went to the clock it was given"
    );
    assert_eq!(code, 0, "{out}");
    let written = demo_dir.canonicalize().unwrap().join("growthflow.toml");
    let c = written.display().to_string();
    assert!(out.contains("Next steps"), "{out}");
    assert!(
        out.contains(&format!("growthflow --config {c} report")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "growthflow demo --serve --dir {}",
            written.parent().unwrap().display()
        )),
        "{out}"
    );
    assert!(out.contains("growthflow init"), "{out}");

    // The platforms stopped with the demo: the file keeps their sources only as comments, and its
    // destination is the demo's dataset, so `report` works from anywhere.
    let cfg = config::load(&written).unwrap();
    assert!(cfg.sources.is_empty());
    let text = std::fs::read_to_string(&written).unwrap();
    for ty in ["woocommerce", "shopify", "klaviyo", "ga4", "meta_ads"] {
        assert!(text.contains(&format!("# type = \"{ty}\"")), "{ty}: {text}");
    }
    let (code, report) = run(&["--config", &c, "report", "--format", "json"]).await;
    assert_eq!(code, 0, "{report}");
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(json.is_object(), "{report}");
    assert!(demo_dir.join("growthflow.db").exists());
}

#[tokio::test]
async fn completions_cover_every_command() {
    for (shell, marker) in [
        ("bash", "_growthflow()"),
        ("zsh", "#compdef growthflow"),
        ("fish", "complete -c growthflow"),
    ] {
        let (code, script) = run(&["completions", shell]).await;
        assert_eq!(code, 0, "{shell}");
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["sync", "backfill", "report", "demo", "init", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
}
