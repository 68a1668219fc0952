//! The command line: `growthflow [--config PATH] [-v|-q] <command>`.
//!
//! [`Cli::parse_args`] parses `std::env::args`, printing help/usage and exiting on a usage error (exit
//! code 2, clap's own). [`Cli::try_parse_args_from`] does the same without exiting, for tests. Both add
//! the checks clap cannot express (`--since` not after `--until`, `-v` with `-q` on different levels) on top of clap's `Parser` methods,
//! which `Cli` also implements.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};

pub use crate::logging::LogFormat;

/// `growthflow`: one journey-model dataset from Shopify, WooCommerce, Klaviyo, GA4 and Meta Ads.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "growthflow",
    version,
    about = "Sync Shopify, WooCommerce, Klaviyo, GA4 and Meta Ads into one journey-model dataset",
    long_about = "Sync Shopify, WooCommerce, Klaviyo, GA4 and Meta Ads into one journey-model dataset.\n\n\
        growthflow reads the sources configured in growthflow.toml (see --config), stores their records \
        in a SQLite dataset and rebuilds the journey model that the Growth Flow report is computed from. \
        Logs go to stderr (RUST_LOG overrides -v/-q); results go to stdout.",
    after_help = "Exit status: 0 ok, 1 a source failed, 2 bad usage or config."
)]
pub struct Cli {
    /// Config file [default: $GROWTHFLOW_CONFIG, else ./growthflow.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More log output on stderr: -v debug, -vv trace
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log lines on stderr as text, or as one JSON object per line for a log aggregator
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GROWTHFLOW_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Check that each source's credentials work
    #[command(long_about = "Check that each source's credentials work.\n\n\
            Authenticates to every selected source (all configured sources when none are named) and reads \
            one small page from it, printing one line per source: `ok` or the reason it failed. Exits 1 \
            when any source failed.")]
    Check(CheckArgs),

    /// List each source's streams
    #[command(long_about = "List each source's streams.\n\n\
            Shows, for every selected source, the streams it can read with their primary key and their \
            incremental cursor (or `full refresh`). Makes no network calls.")]
    Discover(DiscoverArgs),

    /// Incremental sync, then rebuild the journey model
    #[command(long_about = "Incremental sync, then rebuild the journey model.\n\n\
            Reads every selected source from its saved state (the first run starts at [sync] start_date), \
            upserts the records, saves the new state once they are committed and rebuilds the journey \
            model. A failing source does not stop the others; the exit status is then 1.")]
    Sync(SyncArgs),

    /// Re-read a date window without moving saved cursors back
    #[command(
        long_about = "Re-read a date window without moving saved cursors back.\n\n\
            Reads the selected sources again for --since..--until (until defaults to today), upserts the \
            records and rebuilds the journey model. Saved cursors never move backwards."
    )]
    Backfill(BackfillArgs),

    /// Print the Growth Flow report from the dataset
    #[command(long_about = "Print the Growth Flow report from the dataset.\n\n\
            Computes awareness, consideration, conversion, retention and feedback metrics and the \
            campaign table over --since..--until (inclusive; default: the last 30 days of data) from the \
            local dataset only — no network.")]
    Report(ReportArgs),

    /// Show or reset where each stream's next sync resumes
    #[command(
        long_about = "Show or reset where each stream's next sync resumes.\n\n\
            `state show [SOURCE]` lists every saved stream state (the source's type, the state, when it \
            was saved and how long ago). `state reset SOURCE [--stream NAME] --yes` forgets it, so the \
            next sync reads that source (or stream) from [sync] start_date again; resetting a whole \
            source also forgets its connector type, so the name can be used for another platform. The \
            records already read stay in the dataset."
    )]
    State(StateArgs),

    /// Show the last runs and where each stream stands
    #[command(long_about = "Show the last runs and where each stream stands.\n\n\
            Lists the last 10 sync and backfill runs recorded in the dataset (newest first: run id, \
            command, host, start, duration, status, records), then each stream's saved cursor and how \
            long ago it was saved. With SOURCE names, only the runs that read one of them and only \
            their streams. Reads the dataset only; exits 2 when there is none yet.")]
    Status(StatusArgs),

    /// Run against simulated platforms, no credentials needed
    #[command(
        long_about = "Run against simulated platforms, no credentials needed.\n\n\
            Starts the sandbox's simulated Shopify, WooCommerce, Klaviyo, GA4 and Meta Ads on loopback, \
            syncs all five into DIR/growthflow.db, prints the report, and writes DIR/growthflow.toml (a \
            config for that dataset) with the commands to try next. --serve keeps the simulated platforms \
            up until Ctrl-C, so that the config's sources answer check and sync."
    )]
    Demo(DemoArgs),

    /// Write a commented starter growthflow.toml
    #[command(long_about = "Write a commented starter growthflow.toml.\n\n\
            Writes it at --config (or $GROWTHFLOW_CONFIG, else ./growthflow.toml), with every source type \
            commented out; an existing file is left as it is.")]
    Init,

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(long_about = "Print a shell completion script.\n\n\
            e.g. `growthflow completions bash > ~/.local/share/bash-completion/completions/growthflow`, \
            `growthflow completions zsh > ~/.zfunc/_growthflow`, or \
            `growthflow completions fish > ~/.config/fish/completions/growthflow.fish`.")]
    Completions(CompletionsArgs),
}

/// `completions SHELL`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `check [SOURCE…]`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CheckArgs {
    /// Sources to check, by name [default: all configured sources]
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
}

/// `discover [SOURCE…] [--json]`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DiscoverArgs {
    /// Sources to list, by name [default: all configured sources]
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// Print one JSON object on stdout instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `sync [SOURCE…] [--stream NAME…] [--full-refresh] [--json]`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SyncArgs {
    /// Sources to sync, by name [default: all configured sources]
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// Only these streams (repeat the flag or separate names with commas) [default: all]
    #[arg(long = "stream", value_name = "NAME", action = ArgAction::Append, value_delimiter = ',')]
    pub streams: Vec<String>,

    /// Ignore saved state and read everything from start_date
    #[arg(long)]
    pub full_refresh: bool,

    /// Print one JSON object with per-stream results on stdout
    #[arg(long)]
    pub json: bool,

    /// Stop after this long (e.g. 90s, 30m, 2h): what was read is committed, unfinished streams fail
    /// with "deadline passed" and the exit status is 1 [default: no limit]
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub deadline: Option<Duration>,

    /// Take only shard I of N of the selected sources (e.g. 2/3): sources sorted by name, every Nth
    /// one from the Ith, so N replicas started with 1/N … N/N share the work without overlap
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,

    /// Wait up to this long (e.g. 10m) for a source another run holds, instead of skipping it as
    /// `locked`; the other sources are synced meanwhile
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub wait: Option<Duration>,
}

/// `backfill --since DATE [--until DATE] [SOURCE…] [--json]`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct BackfillArgs {
    /// First day to re-read (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: NaiveDate,

    /// Last day to re-read, inclusive (YYYY-MM-DD) [default: today]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<NaiveDate>,

    /// Sources to backfill, by name [default: all configured sources]
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// Print one JSON object with per-stream results on stdout
    #[arg(long)]
    pub json: bool,

    /// Stop after this long (e.g. 90s, 30m, 2h): what was read is committed, unfinished streams fail
    /// with "deadline passed" and the exit status is 1 [default: no limit]
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub deadline: Option<Duration>,

    /// Take only shard I of N of the selected sources (e.g. 2/3): sources sorted by name, every Nth
    /// one from the Ith, so N replicas started with 1/N … N/N share the work without overlap
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,

    /// Wait up to this long (e.g. 10m) for a source another run holds, instead of skipping it as
    /// `locked`; the other sources are synced meanwhile
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub wait: Option<Duration>,
}

/// `report [--since DATE] [--until DATE] [--currency XXX] [--format table|json|csv]`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ReportArgs {
    /// First day of the report (YYYY-MM-DD) [default: 29 days before --until]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<NaiveDate>,

    /// Last day of the report, inclusive (YYYY-MM-DD) [default: the last day with data]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<NaiveDate>,

    /// Report money in this currency (ISO 4217, e.g. EUR); money in other currencies is listed
    /// apart, never added in [default: the most frequent currency of the window's store orders]
    #[arg(long, value_name = "XXX", value_parser = parse_currency)]
    pub currency: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

/// `--currency`: three letters, stored upper-cased as the dataset's currency codes are compared.
fn parse_currency(s: &str) -> Result<String, String> {
    let code = s.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(format!(
            "{s:?} is not a three-letter ISO 4217 currency code"
        ))
    }
}

/// `report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ReportFormat {
    /// Human-readable tables.
    #[default]
    Table,
    /// One JSON object (the contract's report shape).
    Json,
    /// CSV rows.
    Csv,
}

/// `demo [--dir DIR] [--scale N] [--destination URL]`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DemoArgs {
    /// Directory for the demo's dataset (DIR/growthflow.db)
    #[arg(long, value_name = "DIR", default_value = "growthflow-demo")]
    pub dir: PathBuf,

    /// Size of the simulated shop's history (1 = the default amount of data)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub scale: u32,

    /// Sync into this dataset instead of DIR/growthflow.db (e.g. postgres://USER@HOST/DATABASE)
    #[arg(long, value_name = "URL")]
    pub destination: Option<String>,

    /// Keep the simulated platforms up until Ctrl-C, for check, sync and discover with DIR/growthflow.toml
    #[arg(long)]
    pub serve: bool,
}

/// `status [SOURCE…] [--json]`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StatusArgs {
    /// Only these sources [default: every source in the dataset]
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// Print one JSON object on stdout instead of tables
    #[arg(long)]
    pub json: bool,
}

/// `state show|reset`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StateArgs {
    /// What to do with the saved state.
    #[command(subcommand)]
    pub action: StateAction,
}

/// `state show [SOURCE] [--json]` / `state reset SOURCE [--stream NAME] --yes`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StateAction {
    /// List the saved stream states
    Show {
        /// Only this source [default: every source in the dataset]
        #[arg(value_name = "SOURCE")]
        source: Option<String>,
        /// Print one JSON object on stdout instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Forget a source's (or one stream's) saved state
    Reset {
        /// The source, by name (it need not be configured any more)
        #[arg(value_name = "SOURCE")]
        source: String,
        /// Only this stream [default: every stream of the source, and its remembered type]
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// Really do it: without it nothing is changed (exit 2)
        #[arg(long)]
        yes: bool,
    },
}

/// `--shard I/N`: this run takes the `index`-th (1-based) of `count` static shares of the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, 1..=count.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl Shard {
    /// The names among `names` this shard takes: sorted by name, every `count`-th from the
    /// `index`-th. The split depends on the names only, not on the order of the config file.
    pub fn take<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        sorted
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index - 1)
            .map(|(_, n)| n)
            .collect()
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let bad = || format!("expected I/N with 1 <= I <= N, e.g. 2/3, not {s:?}");
    let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
    let (index, count) = (
        i.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if index == 0 || count == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// Parses a `--since`/`--until` value; clap adds the flag's name to the error.
fn parse_date(s: &str) -> Result<NaiveDate, String> {
    crate::config::parse_ymd(s.trim())
        .ok_or_else(|| "expected a date YYYY-MM-DD, e.g. 2024-01-31".to_owned())
}

impl Cli {
    /// Parses `std::env::args`; on `--help`/`--version` prints and exits 0, on a usage error prints the
    /// message and exits 2.
    pub fn parse_args() -> Self {
        match Self::try_parse_args_from(std::env::args_os()) {
            Ok(cli) => cli,
            Err(err) => err.exit(),
        }
    }

    /// Like [`Parser::try_parse_from`], plus the checks clap cannot express: `--since` must not be
    /// after `--until`, and `-v`/`-q` conflict even when given on different levels (`-v sync -q`). Every error's `exit_code()` is 2 (0 for `--help`/`--version`).
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Self::try_parse_from(args)?;
        cli.validate()?;
        Ok(cli)
    }

    /// The post-parse checks of [`try_parse_args_from`](Self::try_parse_args_from).
    pub fn validate(&self) -> Result<(), clap::Error> {
        // clap misses the conflict when the two global flags sit on different levels (`-v sync -q`).
        if self.quiet && self.verbose > 0 {
            return Err(Self::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "the argument '--verbose' cannot be used with '--quiet'",
            ));
        }
        let (name, since, until) = match &self.command {
            Command::Backfill(a) => ("backfill", Some(a.since), a.until),
            Command::Report(a) => ("report", a.since, a.until),
            _ => return Ok(()),
        };
        let conflict = |msg: String| {
            let mut cmd = Self::command();
            cmd.build();
            match cmd.find_subcommand_mut(name) {
                Some(sub) => sub.error(clap::error::ErrorKind::ArgumentConflict, msg),
                None => cmd.error(clap::error::ErrorKind::ArgumentConflict, msg),
            }
        };
        if let (Some(since), Some(until)) = (since, until) {
            if since > until {
                return Err(conflict(format!(
                    "--since {since} is after --until {until}"
                )));
            }
        }
        // A backfill of the future reads nothing and would only look like a sync that lost data.
        let today = chrono::Utc::now().date_naive();
        if let (Command::Backfill(_), Some(since)) = (&self.command, since) {
            if since > today {
                return Err(conflict(format!(
                    "--since {since} is in the future (today is {today}, UTC)"
                )));
            }
        }
        Ok(())
    }

    /// The `tracing` filter (an `EnvFilter` directive string) for `-v`/`-q`, used when `RUST_LOG` is not
    /// set. growthflow's own crates (every target starting with `growthflow`) log at `info` by default,
    /// other crates at `warn`; `-q` → only errors; `-v` → growthflow at `debug`; `-vv` → growthflow at
    /// `trace` and other crates at `info`; `-vvv` or more → everything at `trace`.
    pub fn verbosity(&self) -> &'static str {
        if self.quiet {
            return "error";
        }
        match self.verbose {
            0 => "warn,growthflow=info",
            1 => "warn,growthflow=debug",
            2 => "info,growthflow=trace",
            _ => "trace",
        }
    }

    /// `--json` of the commands that have it (`discover`, `sync`, `backfill`).
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Discover(a) => a.json,
            Command::Sync(a) => a.json,
            Command::Backfill(a) => a.json,
            Command::State(a) => matches!(a.action, StateAction::Show { json: true, .. }),
            Command::Status(a) => a.json,
            Command::Check(_)
            | Command::Report(_)
            | Command::Demo(_)
            | Command::Init
            | Command::Completions(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Cli {
        let mut full = vec!["growthflow"];
        full.extend_from_slice(args);
        Cli::try_parse_args_from(full).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        let mut full = vec!["growthflow"];
        full.extend_from_slice(args);
        match Cli::try_parse_args_from(full) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(e) => e,
        }
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check() {
        let cli = parse(&["check"]);
        assert_eq!(cli.command, Command::Check(CheckArgs { sources: vec![] }));
        assert_eq!(cli.config, None);
        let cli = parse(&["--config", "/etc/gf.toml", "check", "shop", "woo"]);
        assert_eq!(cli.config, Some(PathBuf::from("/etc/gf.toml")));
        assert_eq!(
            cli.command,
            Command::Check(CheckArgs {
                sources: strings(&["shop", "woo"])
            })
        );
        assert!(!cli.json());
    }

    #[test]
    fn discover() {
        let cli = parse(&["discover", "web", "--json"]);
        assert_eq!(
            cli.command,
            Command::Discover(DiscoverArgs {
                sources: strings(&["web"]),
                json: true
            })
        );
        assert!(cli.json());
        let cli = parse(&["discover"]);
        assert_eq!(
            cli.command,
            Command::Discover(DiscoverArgs {
                sources: vec![],
                json: false
            })
        );
    }

    #[test]
    fn sync_with_repeated_streams() {
        let cli = parse(&[
            "sync",
            "shop",
            "--stream",
            "orders",
            "--stream",
            "customers",
            "woo",
            "--full-refresh",
            "--json",
        ]);
        assert_eq!(
            cli.command,
            Command::Sync(SyncArgs {
                sources: strings(&["shop", "woo"]),
                streams: strings(&["orders", "customers"]),
                full_refresh: true,
                json: true,
                deadline: None,
                shard: None,
                wait: None,
            })
        );
        let cli = parse(&["sync", "--stream=orders,refunds"]);
        let Command::Sync(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.streams, strings(&["orders", "refunds"]));
        assert!(args.sources.is_empty());
        assert!(!args.full_refresh && !args.json);
        assert_eq!(
            parse_err(&["sync", "--stream"]).kind(),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn backfill() {
        let cli = parse(&[
            "backfill",
            "--since",
            "2024-01-01",
            "--until",
            "2024-01-31",
            "ads",
            "--json",
        ]);
        assert_eq!(
            cli.command,
            Command::Backfill(BackfillArgs {
                since: date("2024-01-01"),
                until: Some(date("2024-01-31")),
                sources: strings(&["ads"]),
                json: true,
                deadline: None,
                shard: None,
                wait: None,
            })
        );
        let cli = parse(&["backfill", "--since=2024-03-01"]);
        assert_eq!(
            cli.command,
            Command::Backfill(BackfillArgs {
                since: date("2024-03-01"),
                until: None,
                sources: vec![],
                json: false,
                deadline: None,
                shard: None,
                wait: None,
            })
        );
        // Same day both ends is a one-day window.
        parse(&["backfill", "--since", "2024-03-01", "--until", "2024-03-01"]);
    }

    #[test]
    fn deadline() {
        let Command::Sync(a) = parse(&["sync", "--deadline", "30m"]).command else {
            panic!()
        };
        assert_eq!(a.deadline, Some(Duration::from_secs(1800)));
        let Command::Backfill(a) =
            parse(&["backfill", "--since", "2024-01-01", "--deadline=1h30m"]).command
        else {
            panic!()
        };
        assert_eq!(a.deadline, Some(Duration::from_secs(5400)));
        let e = parse_err(&["sync", "--deadline", "soon"]);
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("expected a duration such as 90s"),
            "{e}"
        );
    }

    #[test]
    fn backfill_since_must_not_be_in_the_future() {
        let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(2);
        let e = parse_err(&["backfill", "--since", &tomorrow.to_string()]);
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains(&format!("--since {tomorrow} is in the future")),
            "{e}"
        );
    }

    #[test]
    fn backfill_requires_since() {
        let e = parse_err(&["backfill", "shop"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--since <DATE>"), "{e}");
    }

    #[test]
    fn bad_dates_name_the_flag() {
        for (args, flag) in [
            (vec!["backfill", "--since", "2024-13-01"], "--since"),
            (
                vec!["backfill", "--since", "2024-01-01", "--until", "yesterday"],
                "--until",
            ),
            (vec!["report", "--since", "01/02/2024"], "--since"),
            (vec!["report", "--until", "2024-1-5"], "--until"),
        ] {
            let e = parse_err(&args);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}");
            assert_eq!(e.exit_code(), 2);
            let text = e.to_string();
            assert!(text.contains(flag), "{text}");
            assert!(text.contains("YYYY-MM-DD"), "{text}");
        }
    }

    #[test]
    fn since_after_until_is_a_usage_error() {
        for cmd in ["backfill", "report"] {
            let e = parse_err(&[cmd, "--since", "2024-02-01", "--until", "2024-01-01"]);
            assert_eq!(e.exit_code(), 2);
            assert!(
                e.to_string()
                    .contains("--since 2024-02-01 is after --until 2024-01-01"),
                "{e}"
            );
        }
    }

    #[test]
    fn report() {
        let cli = parse(&["report"]);
        assert_eq!(
            cli.command,
            Command::Report(ReportArgs {
                since: None,
                until: None,
                currency: None,
                format: ReportFormat::Table
            })
        );
        let cli = parse(&[
            "report",
            "--since",
            "2024-01-01",
            "--until",
            "2024-01-31",
            "--currency",
            "eur",
            "--format",
            "json",
        ]);
        assert_eq!(
            cli.command,
            Command::Report(ReportArgs {
                since: Some(date("2024-01-01")),
                until: Some(date("2024-01-31")),
                currency: Some("EUR".into()),
                format: ReportFormat::Json
            })
        );
        for bad in ["EURO", "€", "", "E1R"] {
            let e = parse_err(&["report", "--currency", bad]);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad:?}");
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("ISO 4217"), "{e}");
        }
        let cli = parse(&["report", "--format=csv"]);
        let Command::Report(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.format, ReportFormat::Csv);
        let e = parse_err(&["report", "--format", "xml"]);
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("table, json, csv"), "{e}");
    }

    #[test]
    fn shard() {
        let cli = parse(&["sync", "--shard", "2/3"]);
        let Command::Sync(a) = cli.command else {
            panic!()
        };
        let shard = a.shard.unwrap();
        assert_eq!(shard, Shard { index: 2, count: 3 });
        assert_eq!(a.wait, None);
        let Command::Sync(a) = parse(&["sync", "--wait", "10m"]).command else {
            panic!()
        };
        assert_eq!(a.wait, Some(Duration::from_secs(600)));
        let names = ["woo", "ads", "shop", "email", "web"];
        // Sorted: ads, email, shop, web, woo.
        assert_eq!(shard.take(&names), vec!["email", "woo"]);
        let mut all: Vec<&str> = (1..=3)
            .flat_map(|index| Shard { index, count: 3 }.take(&names))
            .collect();
        all.sort_unstable();
        assert_eq!(all, vec!["ads", "email", "shop", "web", "woo"]);
        // The config's order does not matter.
        assert_eq!(
            shard.take(&["web", "woo", "email", "shop", "ads"]),
            vec!["email", "woo"]
        );
        assert!(!parse(&["backfill", "--since", "2024-01-01", "--shard", "1/1"]).json());
        for bad in ["0/2", "3/2", "1/0", "2", "a/b", "1/2/3"] {
            assert_eq!(
                parse_err(&["sync", "--shard", bad]).kind(),
                ErrorKind::ValueValidation,
                "{bad}"
            );
        }
    }

    #[test]
    fn status() {
        assert_eq!(
            parse(&["status"]).command,
            Command::Status(StatusArgs {
                sources: vec![],
                json: false
            })
        );
        let both = parse(&["status", "shop", "ads", "--json"]);
        assert!(both.json());
        assert_eq!(
            both.command,
            Command::Status(StatusArgs {
                sources: vec!["shop".into(), "ads".into()],
                json: true
            })
        );
    }

    #[test]
    fn state() {
        assert_eq!(
            parse(&["state", "show"]).command,
            Command::State(StateArgs {
                action: StateAction::Show {
                    source: None,
                    json: false
                }
            })
        );
        assert!(parse(&["state", "show", "shop", "--json"]).json());
        assert_eq!(
            parse(&["state", "reset", "shop", "--stream", "orders", "--yes"]).command,
            Command::State(StateArgs {
                action: StateAction::Reset {
                    source: "shop".into(),
                    stream: Some("orders".into()),
                    yes: true
                }
            })
        );
        assert_eq!(
            parse_err(&["state", "reset"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn demo() {
        let cli = parse(&["demo"]);
        assert_eq!(
            cli.command,
            Command::Demo(DemoArgs {
                dir: PathBuf::from("growthflow-demo"),
                scale: 1,
                destination: None,
                serve: false,
            })
        );
        let cli = parse(&["demo", "--dir", "/tmp/x", "--scale", "3"]);
        assert_eq!(
            cli.command,
            Command::Demo(DemoArgs {
                dir: PathBuf::from("/tmp/x"),
                scale: 3,
                destination: None,
                serve: false,
            })
        );
        let cli = parse(&["demo", "--destination", "postgres://root@127.0.0.1/test"]);
        assert_eq!(
            cli.command,
            Command::Demo(DemoArgs {
                dir: PathBuf::from("growthflow-demo"),
                scale: 1,
                destination: Some("postgres://root@127.0.0.1/test".into()),
                serve: false,
            })
        );
        let Command::Demo(args) = parse(&["demo", "--serve"]).command else {
            panic!("not demo");
        };
        assert!(args.serve);
        assert_eq!(parse(&["init"]).command, Command::Init);
        assert_eq!(parse_err(&["init", "x"]).exit_code(), 2);
        assert_eq!(
            parse(&["completions", "zsh"]).command,
            Command::Completions(CompletionsArgs {
                shell: clap_complete::Shell::Zsh
            })
        );
        assert_eq!(parse_err(&["completions", "tcsh"]).exit_code(), 2);
        assert_eq!(parse_err(&["demo", "--scale", "0"]).exit_code(), 2);
        assert_eq!(parse_err(&["demo", "--scale", "many"]).exit_code(), 2);
    }

    #[test]
    fn log_format_flag() {
        assert_eq!(parse(&["check"]).log_format, LogFormat::Text);
        assert_eq!(
            parse(&["--log-format", "json", "sync"]).log_format,
            LogFormat::Json
        );
        assert_eq!(
            parse(&["sync", "--log-format", "json"]).log_format,
            LogFormat::Json,
            "a global flag, after the command too"
        );
        assert!(Cli::try_parse_args_from(["growthflow", "--log-format", "xml", "check"]).is_err());
    }

    #[test]
    fn verbosity_flags() {
        assert_eq!(parse(&["check"]).verbosity(), "warn,growthflow=info");
        assert_eq!(parse(&["-q", "check"]).verbosity(), "error");
        assert_eq!(parse(&["--quiet", "check"]).verbosity(), "error");
        assert_eq!(parse(&["-v", "check"]).verbosity(), "warn,growthflow=debug");
        assert_eq!(
            parse(&["-vv", "check"]).verbosity(),
            "info,growthflow=trace"
        );
        assert_eq!(
            parse(&["-v", "-v", "check"]).verbosity(),
            "info,growthflow=trace"
        );
        assert_eq!(parse(&["-vvv", "check"]).verbosity(), "trace");
        // Global flags also work after the subcommand.
        let cli = parse(&["sync", "-v", "--config", "x.toml"]);
        assert_eq!(cli.verbose, 1);
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn verbose_and_quiet_conflict() {
        for args in [
            vec!["-v", "-q", "check"],
            vec!["-q", "-vv", "check"],
            vec!["check", "-v", "-q"],
            vec!["-v", "sync", "-q"],
        ] {
            let e = parse_err(&args);
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{args:?}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            vec![],
            vec!["frobnicate"],
            vec!["check", "--bogus"],
            vec!["report", "--json"],
            vec!["--config"],
        ] {
            let e = parse_err(&args);
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }

    #[test]
    fn help_exits_0_and_describes_each_command() {
        let e = parse_err(&["--help"]);
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        assert_eq!(e.exit_code(), 0);
        let text = e.to_string();
        for cmd in [
            "check",
            "discover",
            "sync",
            "backfill",
            "report",
            "demo",
            "--config",
            "--verbose",
            "--quiet",
        ] {
            assert!(text.contains(cmd), "{cmd}: {text}");
        }
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            assert!(sub.get_about().is_some(), "{}", sub.get_name());
            assert!(sub.get_long_about().is_some(), "{}", sub.get_name());
        }
        let text = parse_err(&["sync", "--help"]).to_string();
        assert!(
            text.contains("--full-refresh") && text.contains("--stream <NAME>"),
            "{text}"
        );
        assert_eq!(parse_err(&["--version"]).exit_code(), 0);
    }
}
