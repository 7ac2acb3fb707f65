//! One module per subcommand.

mod inventory;
mod vfs;

use std::process::ExitCode;

use sriov_host::HostPaths;

use crate::cli::{Cli, Command, GlobalArgs, VfsCommand};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let paths = host_paths(&cli.global);
    match cli.command {
        Command::Inventory(args) => inventory::run(&paths, &args),
        Command::Vfs(VfsCommand::Set(args)) => vfs::set(&paths, &args),
    }
}

pub fn host_paths(g: &GlobalArgs) -> HostPaths {
    HostPaths::new(&g.sysfs_root, &g.dev_root)
}
