//! `sriov-agent demo`: the main job end to end on a simulated SR-IOV host.
//!
//! A private "node" network namespace, a simulated host whose netdevs are real veths in it, then
//! the whole suite at work on it:
//!
//! 1. what a node operator does: look at the inventory, create VFs (some for kernel networking,
//!    some on vfio-pci for DPDK), see a refused request leave the PF untouched, and look again;
//! 2. the device plugin (in-process, inside the node namespace) registering two pools with an
//!    emulated kubelet, listing them with health and NUMA, answering a preferred allocation and
//!    Allocate, then marking a PF's VFs Unhealthy when its carrier drops and Healthy when it
//!    returns;
//! 3. the `sriov` CNI plugin (in-process, invoked as a runtime invokes it) moving the allocated VF
//!    into a pod namespace with static IPAM, and DEL returning it unchanged; then VF settings the
//!    simulated PF cannot apply, refused without changing anything.
//!
//! Everything is removed at the end, also when a step fails (drop guards). Real SR-IOV hardware,
//! if present, is only read, never changed.

mod cni;
mod plugin;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use sriov_host::provision::{self, DriverTarget, ProvisionOptions};
use sriov_host::{DiscoverOptions, HostPaths, NetdevStatus, PciAddr, discover};
use sriov_netlink::OwnedNetns;
use sriov_sim::{MountOptions, Sim, UeventTarget};
use sriov_testkit::kubelet::Kubelet;

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

/// The demo's private directory (`$TMPDIR/sriov-demo-<pid>`), removed on drop. Only the plain
/// subdirectories are removed recursively; the simulated host's mount point is removed with
/// rmdir, which leaves it alone while it is still mounted.
struct WorkDir {
    root: PathBuf,
    removed: bool,
}

/// Subdirectories holding ordinary files only.
const PLAIN_DIRS: &[&str] = &["pcidp", "kubelet", "devinfo", "cdi", "cni-state", "cni-devinfo"];
/// The simulated host's mount point.
const HOST_DIR: &str = "host";

impl WorkDir {
    fn create() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(format!("sriov-demo-{}", std::process::id()));
        std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
        Ok(Self { root, removed: false })
    }

    fn join(&self, sub: &str) -> PathBuf {
        self.root.join(sub)
    }

    fn clean(&self) -> std::io::Result<()> {
        for d in PLAIN_DIRS {
            match std::fs::remove_dir_all(self.root.join(d)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match std::fs::remove_dir(self.root.join(HOST_DIR)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::remove_dir(&self.root)
    }

    /// Removes everything now, reporting what could not be removed.
    fn remove(mut self) -> anyhow::Result<()> {
        self.removed = true;
        self.clean().with_context(|| format!("removing {}", self.root.display()))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Err(e) = self.clean() {
            tracing::warn!(dir = %self.root.display(), error = %e, "cleanup: cannot remove the demo directory");
        }
    }
}

/// One VF as the inventory shows it: `0000:3b:02.0 netdev ens1f0v0` or `... <other netns>`.
fn vf_view(paths: &HostPaths, pf: PciAddr, vf: PciAddr) -> anyhow::Result<String> {
    let host = discover(
        paths,
        &DiscoverOptions { pf: Some(pf.to_string()), names: None, ..Default::default() },
    )
    .with_context(|| format!("inventory of {pf}"))?;
    let found = host.pfs.iter().flat_map(|p| &p.vfs).find(|v| v.pci_address == vf);
    let Some(v) = found else { bail!("{vf} is not a VF of {pf}") };
    let netdev = match (&v.netdev, v.netdev_status) {
        (Some(n), _) => n.clone(),
        (None, NetdevStatus::NotInNamespace) => "<other netns>".to_owned(),
        (None, NetdevStatus::Userspace) => "<userspace>".to_owned(),
        (None, _) => "-".to_owned(),
    };
    Ok(format!("{vf} netdev {netdev}"))
}

/// The error to report when a device-plugin step failed: the plugin's own failure, if it
/// stopped, explains it better than a timeout waiting for it.
fn plugin_failure(plugin: plugin::RunningPlugin, step: anyhow::Error) -> anyhow::Error {
    match plugin.stop() {
        Err(e) => e.context(format!("{step:#}")),
        Ok(()) => step,
    }
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

    // Guards in declaration order; they drop in reverse, so the pod namespace goes first and the
    // directory last, also when a step fails.
    let spec = load_spec(args.spec.as_deref())?;
    let work = WorkDir::create()?;
    let node =
        OwnedNetns::create_unique("sriov-demo").context("creating the node network namespace")?;
    let sim = Sim::new(spec.clone())
        .context("building the simulated host")?
        .with_netns(node.path())
        .context("backing netdevs with veths")?
        .with_uevents(UeventTarget::Netns(node.path().to_owned()))
        .context("uevents in the node namespace")?;
    let mounted = sim
        .mount(&work.join(HOST_DIR), &MountOptions::default())
        .context("mounting the simulated host")?;
    let paths = HostPaths::new(mounted.sysfs_root(), mounted.dev_root());
    heading(&format!(
        "simulated SR-IOV host at {} (sysfs root {}), netdevs are veths in network namespace {}",
        mounted.root().display(),
        paths.sysfs().display(),
        node.name()
    ));
    show(&paths)?;

    let host = discover(&paths, &DiscoverOptions::default())?;
    let Some(first) = host.pfs.first() else {
        bail!("the simulated host has no SR-IOV PF");
    };
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
    let too_many = first.total_vfs + 1;
    heading(&format!(
        "a refused request: {too_many} VFs on {} (sriov_totalvfs is {})",
        first.pci_address, first.total_vfs
    ));
    match provision::configure_vfs(&paths, first.pci_address, too_many, None, &opts) {
        Ok(_) => {
            bail!("the simulated kernel accepted {too_many} VFs on {}", first.pci_address)
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
    let host = discover(&paths, &DiscoverOptions::default())?;

    // The device plugin: two pools, an emulated kubelet, real unix sockets and gRPC.
    let kernel_pfs: Vec<String> = plan
        .iter()
        .filter(|(_, _, driver)| driver.is_none())
        .filter_map(|(i, _, _)| host.pfs[*i].netdev.clone())
        .take(2)
        .collect();
    let dirs = plugin::PluginDirs {
        config_file: work.join("pcidp").join("config.json"),
        kubelet_dir: work.join("kubelet"),
        devinfo_dir: work.join("devinfo"),
        cdi_dir: work.join("cdi"),
    };
    let config = plugin::config(&kernel_pfs);
    std::fs::create_dir_all(work.join("pcidp")).context("creating the config directory")?;
    std::fs::write(&dirs.config_file, config.to_string())
        .with_context(|| format!("writing {}", dirs.config_file.display()))?;
    heading(&format!(
        "device plugin: sriov-device-plugin in the node namespace, kubelet emulated at {}",
        dirs.kubelet_dir.display()
    ));
    println!("  config {}:", dirs.config_file.display());
    if let Some(pools) = config["resourceList"].as_array() {
        for p in pools {
            println!("    {p}");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kubelet-emu")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let kubelet = rt.block_on(Kubelet::start(&dirs.kubelet_dir)).context("emulated kubelet")?;
    let device_plugin = plugin::RunningPlugin::start(node.netns(), plugin::options(&dirs, &paths))?;
    let mut allocated = match rt.block_on(plugin::show(&kubelet, &device_plugin)) {
        Ok(a) => a,
        Err(e) => return Err(plugin_failure(device_plugin, e)),
    };

    // Health: the PF's link goes down (the sim sets its veth's peer down) and comes back.
    let pf0 = &host.pfs[0];
    let pf0_name = pf0.netdev.clone().unwrap_or_else(|| pf0.pci_address.to_string());
    let pf0_sim: sriov_sim::PciAddr =
        pf0.pci_address.to_string().parse().context("PF address for the simulator")?;
    let pf0_vfs: Vec<String> = pf0
        .vfs
        .iter()
        .map(|v| v.pci_address.to_string())
        .filter(|a| allocated.net_devices.iter().any(|d| &d.id == a))
        .collect();
    heading(&format!(
        "health: PF {pf0_name} ({}) loses carrier, then gets it back (link events, no rescan)",
        pf0.pci_address
    ));
    for (up, down) in [(false, pf0_vfs.as_slice()), (true, &[][..])] {
        let t = Instant::now();
        mounted
            .set_pf_carrier(pf0_sim, up)
            .with_context(|| format!("setting the carrier of {pf0_name}"))?;
        let devices = match rt
            .block_on(allocated.net_stream.wait_for(plugin::WAIT, |d| plugin::health_is(d, down)))
        {
            Ok(d) => d,
            Err(e) => {
                return Err(plugin_failure(
                    device_plugin,
                    anyhow::Error::new(e)
                        .context(format!("waiting for the health of {pf0_name}'s VFs")),
                ));
            }
        };
        println!(
            "  carrier {}: ListAndWatch {} after {:.1} ms",
            if up { "up" } else { "down" },
            plugin::resource(plugin::NET_POOL),
            t.elapsed().as_secs_f64() * 1e3
        );
        plugin::print_health(&devices);
    }

    // The CNI plugin on the allocated VF.
    let vf_pci: PciAddr = allocated
        .net_device
        .parse()
        .with_context(|| format!("allocated device {:?}", allocated.net_device))?;
    let (vf_pf, vf_name) = host
        .pfs
        .iter()
        .find_map(|p| {
            p.vfs
                .iter()
                .find(|v| v.pci_address == vf_pci)
                .and_then(|v| v.netdev.clone().map(|n| (p.pci_address, n)))
        })
        .with_context(|| format!("{vf_pci} has no netdev in the node"))?;
    let pod = OwnedNetns::create_unique("sriov-demo-pod")
        .context("creating the pod network namespace")?;
    let cni = cni::Cni {
        node: node.netns().try_clone().context("duplicating the node netns handle")?,
        paths: paths.clone(),
        state_dir: work.join("cni-state"),
        devinfo_dir: work.join("cni-devinfo"),
    };
    let host_view = || vf_view(&paths, vf_pf, vf_pci);
    cni::show(&cni, &pod, &cni::HomeVf { pci: vf_pci.to_string(), name: vf_name }, &host_view)?;

    // Orderly teardown, reporting failures (the guards above do the same silently on error).
    drop(cni);
    pod.remove().context("removing the pod network namespace")?;
    drop(allocated);
    device_plugin.stop()?;
    drop(kubelet);
    drop(rt);
    mounted.shutdown().context("unmounting the simulated host")?;
    node.remove().context("removing the node network namespace")?;
    work.remove()?;
    heading(&format!(
        "done in {:.2} s; device plugin stopped, simulated host unmounted, namespaces removed",
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dir_removes_plain_dirs_but_only_rmdirs_the_mount_point() {
        let tmp = tempfile::tempdir().unwrap();
        let w = WorkDir { root: tmp.path().join("demo"), removed: false };
        std::fs::create_dir_all(w.join("kubelet")).unwrap();
        std::fs::write(w.join("kubelet").join("kubelet.sock"), "").unwrap();
        std::fs::create_dir_all(w.join(HOST_DIR)).unwrap();
        // A file under the mount point stands for a still-mounted tree: it must survive.
        std::fs::write(w.join(HOST_DIR).join("sys"), "").unwrap();
        let root = w.root.clone();
        assert!(w.remove().is_err(), "a non-empty mount point is not removed");
        assert!(root.join(HOST_DIR).join("sys").exists());
        assert!(!root.join("kubelet").exists());
        std::fs::remove_file(root.join(HOST_DIR).join("sys")).unwrap();
        let w = WorkDir { root: root.clone(), removed: false };
        w.remove().unwrap();
        assert!(!root.exists());
    }
}
