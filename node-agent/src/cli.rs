//! Command-line definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// SR-IOV node agent: inspect and provision SR-IOV VFs.
#[derive(Debug, Parser)]
#[command(name = "sriov-agent", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Root of the sysfs tree to read and change.
    #[arg(long, global = true, env = "SRIOV_SYSFS_ROOT", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// Root of the device-node tree (for /dev/vfio).
    #[arg(long, global = true, env = "SRIOV_DEV_ROOT", default_value = "/dev")]
    pub dev_root: PathBuf,
    /// Log filter (error, warn, info, debug, trace or a tracing directive); logs go to stderr.
    #[arg(long, global = true, env = "SRIOV_LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List PFs and their VFs.
    Inventory(InventoryArgs),
    /// Manage VFs.
    #[command(subcommand)]
    Vfs(VfsCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum OutputFormat {
    /// kubectl-style table.
    #[default]
    Table,
    /// JSON (schemaVersion 1, documented in the README).
    Json,
    /// YAML, same schema as JSON.
    Yaml,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Only this PF (PCI address or netdev name).
    #[arg(long)]
    pub pf: Option<String>,
    /// Do not resolve vendor/device names.
    #[arg(long)]
    pub no_names: bool,
}

#[derive(Debug, Subcommand)]
pub enum VfsCommand {
    /// Set the number of VFs on a PF (through 0, as the kernel requires) and optionally their driver.
    Set(VfsSetArgs),
}

#[derive(Debug, Args)]
pub struct VfsSetArgs {
    /// The PF: PCI address (0000:3b:00.0) or netdev name (ens1f0).
    pub pf: String,
    /// Number of VFs.
    pub count: u32,
    /// Driver for the VFs: `kernel` (the default netdev driver) or a driver name such as vfio-pci.
    #[arg(long)]
    pub driver: Option<String>,
    /// Seconds to wait for the VFs to appear.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}
