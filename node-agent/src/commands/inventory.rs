//! `sriov-agent inventory`.

use std::process::ExitCode;

use anyhow::Context;
use sriov_host::{DiscoverOptions, HostPaths, PciIds, discover};

use crate::cli::{InventoryArgs, OutputFormat};
use crate::output;

pub fn run(paths: &HostPaths, args: &InventoryArgs) -> anyhow::Result<ExitCode> {
    let opts = DiscoverOptions {
        pf: args.pf.clone(),
        names: (!args.no_names && !matches!(args.output, OutputFormat::Table)).then(PciIds::load),
    };
    let host = discover(paths, &opts).context("inventory")?;
    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Table => output::table(&host, &mut out),
        OutputFormat::Json => output::json(&host, &mut out),
        OutputFormat::Yaml => output::yaml(&host, &mut out),
    }
    .context("writing the inventory")?;
    for w in &host.warnings {
        tracing::warn!(path = %w.path.display(), "{}", w.message);
    }
    Ok(ExitCode::SUCCESS)
}
