//! `sriov-agent`: the node agent's command line.
//!
//! Thin glue: argument parsing and output formatting live here; everything that reads or changes
//! the host is in the `sriov-host` library, the simulated host in `sriov-sim`.
//!
//! Exit codes: 0 success, 1 the operation failed (device, kernel or I/O error; one line on stderr
//! names the device or file and what was expected), 2 bad command line.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(&cli.global.log_level);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line: the chain of contexts down to the root cause.
            eprintln!("sriov-agent: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
