//! One module per subcommand.

mod demo;
mod install;
mod inventory;
mod sim;
mod vfs;

use std::process::ExitCode;

use sriov_host::HostPaths;

use crate::cli::{Cli, Command, GlobalArgs, SimCommand, VfsCommand};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let paths = host_paths(&cli.global);
    match cli.command {
        Command::Inventory(args) => inventory::run(&paths, &args),
        Command::Vfs(VfsCommand::Set(args)) => vfs::set(&paths, &args),
        Command::Sim(SimCommand::Create(args)) => sim::create(&args),
        Command::Sim(SimCommand::Destroy(args)) => sim::destroy(&args),
        Command::Sim(SimCommand::Spec) => sim::print_spec(),
        Command::Demo(args) => demo::run(&paths, &args),
        Command::InstallCni(args) => install::run(&args),
    }
}

pub fn host_paths(g: &GlobalArgs) -> HostPaths {
    HostPaths::new(&g.sysfs_root, &g.dev_root)
}
