//! `sriov-device-plugin`: see the library crate and `README.md`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sriov_device_plugin::cli::Cli::parse();
    sriov_device_plugin::cli::main(cli)
}
