//! The binary's logs as a log aggregator reads them: `--log-format json` writes one JSON object per
//! stderr line (results stay on stdout), with no colour codes.

use std::process::Command;

#[test]
fn json_logs_are_one_object_per_stderr_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("growthflow.toml");
    // Nothing listens on port 9: `check` fails at once and logs why.
    std::fs::write(
        &config,
        format!(
            "[destination]\nurl = \"sqlite://{}\"\n\n[sources.woo]\ntype = \"woocommerce\"\n\
             url = \"http://127.0.0.1:9\"\nconsumer_key = \"ck_x\"\nconsumer_secret = \"cs_x\"\n",
            dir.path().join("gf.db").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_growthflow"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "-v",
            "--log-format",
            "json",
            "check",
        ])
        .env_remove("RUST_LOG")
        .env_remove("GROWTHFLOW_LOG_FORMAT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("woo"), "the result on stdout: {stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "something was logged at -v");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{v}");
        assert!(!line.contains('\u{1b}'), "colour codes: {line:?}");
    }
}
