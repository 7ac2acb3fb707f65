//! `sriov-agent demo`: the main job end to end on a simulated SR-IOV host.
//!
//! A private "node" network namespace, a simulated host whose netdevs are real veths in it, then
//! what a node operator does: look at the inventory, create VFs (some for kernel networking, some
//! on vfio-pci for DPDK), see a refused request leave the PF untouched, and look again. Everything
//! is removed at the end. Real SR-IOV hardware, if present, is only read, never changed.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use sriov_host::provision::{self, DriverTarget, ProvisionOptions};
use sriov_host::{DiscoverOptions, HostPaths, discover};
use sriov_netlink::OwnedNetns;
use sriov_sim::{MountOptions, Sim};

use crate::cli::DemoArgs;
use crate::commands::sim::{load_spec, require_root};
use crate::output;

fn heading(text: &str) {
    println!("\n== {text}");
}

fn show(paths: &HostPaths) -> anyhow::Result<()> {
    let host = discover(paths, &DiscoverOptions::default()).context("inventory")?;
    output::table(&host, &mut std::io::stdout().lock()).context("writing the inventory")?;
    Ok(())
}

pub fn run(real: &HostPaths, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    require_root("the demo")?;
    let started = Instant::now();
    if let Ok(host) = discover(real, &DiscoverOptions::default())
        && !host.pfs.is_empty()
    {
        heading(&format!(
            "this machine has {} SR-IOV PF(s) under {} (shown read-only; the demo does not touch them)",
            host.pfs.len(),
            real.sysfs().display()
        ));
        output::table(&host, &mut std::io::stdout().lock())?;
    }

    let spec = load_spec(args.spec.as_deref())?;
    let node =
        OwnedNetns::create_unique("sriov-demo").context("creating the node network namespace")?;
    let dir = std::env::temp_dir().join(format!("sriov-demo-{}", std::process::id()));
    let sim = Sim::new(spec.clone())
        .context("building the simulated host")?
        .with_netns(node.path())
        .context("backing netdevs with veths")?;
    let mounted =
        sim.mount(&dir, &MountOptions::default()).context("mounting the simulated host")?;
    let paths = HostPaths::new(mounted.sysfs_root(), mounted.dev_root());
    heading(&format!(
        "simulated SR-IOV host at {} (sysfs root {}), netdevs are veths in network namespace {}",
        dir.display(),
        paths.sysfs().display(),
        node.name()
    ));
    show(&paths)?;

    let host = discover(&paths, &DiscoverOptions::default())?;
    let opts = ProvisionOptions::default();
    // What a node operator typically asks for: kernel VFs on the first ports, DPDK (vfio-pci) VFs
    // on one port, and a request the hardware cannot satisfy.
    let mut plan: Vec<(usize, u32, Option<DriverTarget>)> = vec![(0, 4, None)];
    if host.pfs.len() > 1 {
        plan.push((1, 2, Some(DriverTarget::Named("vfio-pci".into()))));
    }
    for i in 2..host.pfs.len() {
        plan.push((i, 4, None));
    }
    heading("creating VFs (sriov-agent vfs set <pf> <count> [--driver vfio-pci])");
    for (i, count, driver) in &plan {
        let pf = &host.pfs[*i];
        let t = Instant::now();
        provision::configure_vfs(&paths, pf.pci_address, *count, driver.as_ref(), &opts)
            .with_context(|| format!("vfs set {} {count}", pf.pci_address))?;
        let on = match driver {
            Some(DriverTarget::Named(d)) => format!(" on {d}"),
            _ => String::new(),
        };
        println!(
            "  {} ({}): {count} VFs{on} in {:.1} ms",
            pf.pci_address,
            pf.netdev.as_deref().unwrap_or("-"),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let first = &host.pfs[0];
    let too_many = first.total_vfs + 1;
    heading(&format!(
        "a refused request: {too_many} VFs on {} (sriov_totalvfs is {})",
        first.pci_address, first.total_vfs
    ));
    match provision::configure_vfs(&paths, first.pci_address, too_many, None, &opts) {
        Ok(_) => {
            anyhow::bail!("the simulated kernel accepted {too_many} VFs on {}", first.pci_address)
        }
        Err(e) => println!("  refused: {e}"),
    }
    let after = discover(
        &paths,
        &DiscoverOptions {
            pf: Some(first.pci_address.to_string()),
            names: None,
            ..Default::default()
        },
    )?;
    println!("  {} still has {} VFs", first.pci_address, after.pfs[0].num_vfs);

    heading("inventory after provisioning (sriov-agent inventory)");
    show(&paths)?;

    drop(mounted);
    node.remove().context("removing the node network namespace")?;
    let _ = std::fs::remove_dir(&dir);
    heading(&format!(
        "done in {:.2} s; simulated host unmounted, namespace removed",
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}
