//! `growthflow`: sync store and marketing platforms into one journey model.

use std::io::IsTerminal;

use growthflow_cli::cli::Cli;
use growthflow_cli::logging::{self, Stderr};
use growthflow_cli::progress;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse_args();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cli.verbosity()));
    // Bars only for people at a terminal: not with -q, --json or JSON logs.
    progress::init_terminal(cli.quiet || cli.json() || cli.log_format == logging::LogFormat::Json);
    let color = logging::use_color(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let subscriber = logging::subscriber(filter, cli.log_format, color, Stderr);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("warning: a logger was already installed; growthflow's logs may not show");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        let mut stdout = std::io::stdout();
        growthflow_cli::app::run(cli, &mut stdout).await
    });
    std::process::exit(code);
}
