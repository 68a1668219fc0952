//! Shared pieces of the benchmark binaries (`cargo run --release -p growthflow-bench --bin …`).
//!
//! Benchmarks measure, they never assert: the figures go to the README with the command that made them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`), so a benchmark can
/// report memory next to speed; `None` where the kernel does not expose it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `bytes` as mebibytes with one decimal, for the printed tables.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
