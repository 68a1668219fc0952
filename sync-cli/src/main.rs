//! `growthflow`: sync store and marketing platforms into one journey model.

use std::io::IsTerminal;

use growthflow_cli::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse_args();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cli.verbosity()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
