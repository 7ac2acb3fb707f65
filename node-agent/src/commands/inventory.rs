//! `sriov-agent inventory`.

use std::process::ExitCode;

use std::io::Write;

use anyhow::Context;
use sriov_host::{DiscoverOptions, HostPaths, PciIds, VfDetail, discover};

use crate::cli::{InventoryArgs, OutputFormat};
use crate::output;

pub fn run(paths: &HostPaths, args: &InventoryArgs) -> anyhow::Result<ExitCode> {
    // The table shows a summary of each VF, so only that is read; JSON and YAML carry everything.
    let table = matches!(args.output, OutputFormat::Table);
    let opts = DiscoverOptions {
        pf: args.pf.clone(),
        names: (!args.no_names && !table).then(PciIds::load),
        vf_detail: if table { VfDetail::Summary } else { VfDetail::Full },
    };
    let host = discover(paths, &opts).context("inventory")?;
    // stdout is line-buffered: without a BufWriter every JSON line would be its own write(2).
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let written = match args.output {
        OutputFormat::Table => output::table(&host, &mut out),
        OutputFormat::Json => output::json(&host, &mut out),
        OutputFormat::Yaml => output::yaml(&host, &mut out),
    }
    .and_then(|()| out.flush());
    match written {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing the inventory")?,
    }
    for w in &host.warnings {
        tracing::warn!(path = %w.path.display(), "{}", w.message);
    }
    // The process exits next, which hands all its memory back at once; freeing a big host's
    // tens of thousands of small allocations one by one first would only delay the exit
    // (1-3 ms for 1024 VFs, most of them allocated on the reader threads' heaps).
    std::mem::forget(host);
    std::mem::forget(opts);
    Ok(ExitCode::SUCCESS)
}
