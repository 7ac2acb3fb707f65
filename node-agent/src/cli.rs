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
    /// The simulated SR-IOV host (a fake kernel behind a FUSE sysfs; needs root).
    #[command(subcommand)]
    Sim(SimCommand),
    /// Run the main job end to end on a simulated SR-IOV host, then clean up (needs root).
    Demo(DemoArgs),
    /// Install the CNI plugin binaries into a CNI bin directory, atomically (temp file + rename),
    /// so a runtime never executes a half-written plugin.
    InstallCni(InstallCniArgs),
}

#[derive(Debug, Args)]
pub struct InstallCniArgs {
    /// Destination (the host's CNI bin directory, e.g. /host/opt/cni/bin in a DaemonSet).
    #[arg(long)]
    pub to: PathBuf,
    /// Where the plugins are (default: the directory holding sriov-agent).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Plugins to install.
    #[arg(long, value_delimiter = ',', default_value = "sriov,veth,router")]
    pub plugins: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Mount a simulated host at DIR (sysfs at DIR/sys, device nodes at DIR/dev) and serve it in
    /// the background until `sim destroy DIR`.
    Create(SimCreateArgs),
    /// Unmount a simulated host and stop its server.
    Destroy(SimDestroyArgs),
    /// Print the default simulated host's spec (YAML), a starting point for --spec.
    Spec,
}

#[derive(Debug, Args)]
pub struct SimCreateArgs {
    /// Mount point (created if missing).
    pub dir: PathBuf,
    /// Host description (YAML or JSON; see `sim spec`). Default: a node with 2x Intel X710,
    /// 1x Intel E810 and 2x NVIDIA ConnectX-5 ports.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Back every netdev with a real veth in this network namespace (a path such as
    /// /run/netns/NAME), and broadcast the kernel's uevents for simulated changes there.
    /// Never the root namespace.
    #[arg(long)]
    pub netns: Option<PathBuf>,
    /// Serve in the foreground instead of starting a background server.
    #[arg(long)]
    pub foreground: bool,
}

#[derive(Debug, Args)]
pub struct SimDestroyArgs {
    /// Mount point given to `sim create`.
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Host description for the simulated host (default: the built-in node).
    #[arg(long)]
    pub spec: Option<PathBuf>,
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
