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

/// CPU time (user + system) a process has used, from `/proc/PID/stat`: on a machine shared with
/// other work the wall clock stretches, the CPU time a sync needs does not. `pid` `None`: this process.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; in clock ticks,
    // which Linux reports at 100 per second.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
