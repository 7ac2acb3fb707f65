//! `sriov-agent vfs set`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sriov_host::provision::{self, Change, DriverTarget, ProvisionOptions};
use sriov_host::{DiscoverOptions, HostPaths, PciAddr, discover};

use crate::cli::VfsSetArgs;

/// Resolves a PF given by PCI address or netdev name.
pub fn resolve_pf(paths: &HostPaths, key: &str) -> anyhow::Result<PciAddr> {
    if let Ok(addr) = key.parse::<PciAddr>() {
        return Ok(addr);
    }
    let host = discover(
        paths,
        &DiscoverOptions { pf: Some(key.to_owned()), names: None, ..Default::default() },
    )?;
    host.pfs.first().map(|pf| pf.pci_address).context("no PF found")
}

pub fn set(paths: &HostPaths, args: &VfsSetArgs) -> anyhow::Result<ExitCode> {
    let pf = resolve_pf(paths, &args.pf)?;
    let driver = args.driver.as_deref().map(DriverTarget::parse);
    let opts = ProvisionOptions { timeout: Duration::from_secs(args.timeout) };
    let change = provision::configure_vfs(paths, pf, args.count, driver.as_ref(), &opts)
        .with_context(|| format!("vfs set {pf} {}", args.count))?;
    let what = match &driver {
        Some(DriverTarget::Named(d)) => format!(" on {d}"),
        Some(DriverTarget::Kernel) => " on their kernel driver".to_owned(),
        None => String::new(),
    };
    match change {
        Change::Unchanged => eprintln!("PF {pf}: already {} VFs{what}", args.count),
        Change::Changed { from } => eprintln!("PF {pf}: {} VFs{what} (was {from})", args.count),
    }
    Ok(ExitCode::SUCCESS)
}
