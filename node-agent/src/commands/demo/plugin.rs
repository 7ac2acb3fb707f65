//! The device-plugin part of the demo: `sriov-device-plugin` run in-process inside the node
//! network namespace (where its link-event and uevent sockets see the simulated host), talking
//! to an emulated kubelet over real unix sockets, as it does on a node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use sriov_device_plugin::allocate::{CdiMode, env_name};
use sriov_device_plugin::api::{ContainerAllocateResponse, Device};
use sriov_device_plugin::config::DEFAULT_RESOURCE_PREFIX;
use sriov_device_plugin::events::Event;
use sriov_device_plugin::manager::{self, Options};
use sriov_device_plugin::preferred::Policy;
use sriov_host::HostPaths;
use sriov_netlink::{Netns, run_in_netns};
use sriov_testkit::kubelet::{DeviceStream, Kubelet, PluginClient, numa_of};
use tokio::sync::mpsc;

/// The pool of kernel-driver VFs (the CNI plugin moves one into the pod).
pub const NET_POOL: &str = "intel_sriov_netdevice";
/// The pool of vfio-pci VFs (handed to DPDK applications as device nodes).
pub const DPDK_POOL: &str = "intel_sriov_dpdk";
/// How long any single step may take before the demo gives up.
pub const WAIT: Duration = Duration::from_secs(10);

const HEALTHY: &str = "Healthy";
const UNHEALTHY: &str = "Unhealthy";

/// `<prefix>/<pool>`.
pub fn resource(pool: &str) -> String {
    format!("{DEFAULT_RESOURCE_PREFIX}/{pool}")
}

/// The plugin config (the Go plugin's format): the kernel VFs of `kernel_pfs` in one pool, every
/// vfio-pci VF in another.
pub fn config(kernel_pfs: &[String]) -> serde_json::Value {
    json!({"resourceList": [
        {"resourceName": NET_POOL, "selectors": {"pfNames": kernel_pfs}},
        {"resourceName": DPDK_POOL, "selectors": {"drivers": ["vfio-pci"]}},
    ]})
}

/// Where the plugin keeps its files.
pub struct PluginDirs {
    /// The config file.
    pub config_file: PathBuf,
    /// The kubelet's device-plugins directory.
    pub kubelet_dir: PathBuf,
    /// Multus device-info files.
    pub devinfo_dir: PathBuf,
    /// CDI specs (unused: CDI is off).
    pub cdi_dir: PathBuf,
}

/// The plugin's options: the command-line defaults, with the demo's directories and host, and no
/// periodic rescan (events drive every update).
pub fn options(dirs: &PluginDirs, paths: &HostPaths) -> Options {
    Options {
        config_file: dirs.config_file.clone(),
        resource_prefix: DEFAULT_RESOURCE_PREFIX.to_owned(),
        paths: paths.clone(),
        kubelet_dir: dirs.kubelet_dir.clone(),
        cdi: CdiMode::Off,
        cdi_dir: dirs.cdi_dir.clone(),
        devinfo_dir: dirs.devinfo_dir.clone(),
        policy: Policy::Pack,
        rescan_interval: Duration::ZERO,
        removal_grace: Duration::from_secs(60),
        debounce: Duration::from_millis(10),
        uevents: true,
        link_events: true,
    }
}

/// The device plugin running on a thread of its own inside the node network namespace; stopped
/// (as by SIGTERM: sockets and device-info files removed) by [`RunningPlugin::stop`] or on drop.
pub struct RunningPlugin {
    events: mpsc::UnboundedSender<Event>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// When it was started.
    pub started: Instant,
}

impl RunningPlugin {
    /// Starts the plugin. Every thread it creates (its async runtime, its blocking scans, its
    /// event listeners) descends from a thread that entered `node`, so all of them are in it.
    pub fn start(node: &Netns, opts: Options) -> anyhow::Result<Self> {
        let ns = node.try_clone().context("duplicating the node netns handle")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let events = tx.clone();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("device-plugin".into())
            .spawn(move || -> anyhow::Result<()> {
                run_in_netns(&ns, move || -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("device-plugin-rt")
                        .enable_all()
                        .build()
                        .context("starting the device plugin's async runtime")?;
                    rt.block_on(manager::run_with_events(opts, tx, rx))
                        .map_err(|e| anyhow!("device plugin: {}", manager::chain(&e)))
                })
                .context("entering the node network namespace for the device plugin")?
            })
            .context("starting the device plugin thread")?;
        Ok(Self { events, thread: Some(thread), started })
    }

    /// Shuts the plugin down and reports how it ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        let Some(thread) = self.thread.take() else { return Ok(()) };
        // Fails only if the plugin already stopped; joining then reports why.
        let _ = self.events.send(Event::Shutdown);
        match thread.join() {
            Ok(r) => r,
            Err(_) => bail!("the device plugin thread panicked"),
        }
    }
}

impl Drop for RunningPlugin {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::warn!(error = %format!("{e:#}"), "device plugin stopped with an error");
        }
    }
}

/// What the kubelet side of the demo got from the plugin.
pub struct Allocated {
    /// The netdev pool's ListAndWatch stream, kept open to watch health.
    pub net_stream: DeviceStream,
    /// The netdev pool's devices as first listed.
    pub net_devices: Vec<Device>,
    /// The kernel VF allocated to the "pod" (what the CNI plugin gets as `deviceID`).
    pub net_device: String,
}

fn numa(d: &Device) -> String {
    let n = numa_of(d);
    if n.is_empty() {
        "NUMA -".to_owned()
    } else {
        format!("NUMA {}", n.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
    }
}

fn print_devices(devices: &[Device]) {
    let mut devices: Vec<&Device> = devices.iter().collect();
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    for d in devices {
        println!("    {}  {:<9}  {}", d.id, d.health, numa(d));
    }
}

fn print_allocation(r: &ContainerAllocateResponse) {
    let envs: BTreeMap<_, _> = r.envs.iter().collect();
    for (k, v) in envs {
        println!("    env     {k}={v}");
    }
    for d in &r.devices {
        println!("    device  {} (host {}, {})", d.container_path, d.host_path, d.permissions);
    }
    for m in &r.mounts {
        let ro = if m.read_only { "ro" } else { "rw" };
        println!("    mount   {} (host {}, {ro})", m.container_path, m.host_path);
    }
    let annotations: BTreeMap<_, _> = r.annotations.iter().collect();
    for (k, v) in annotations {
        println!("    annotation {k}={v}");
    }
    if r.devices.is_empty() && r.mounts.is_empty() {
        println!(
            "    (no device nodes: a kernel VF reaches the pod as a netdev, moved by the CNI plugin)"
        );
    }
}

async fn pool(
    kubelet: &Kubelet,
    plugin: &RunningPlugin,
    pool: &str,
) -> anyhow::Result<(PluginClient, DeviceStream, Vec<Device>)> {
    let name = resource(pool);
    let reg = kubelet
        .wait_registration(&name, WAIT)
        .await
        .with_context(|| format!("waiting for the device plugin to register {name}"))?;
    let preferred = reg.options.as_ref().is_some_and(|o| o.get_preferred_allocation_available);
    println!(
        "  registered {} after {:.1} ms: API {}, socket {}/{}, GetPreferredAllocation {}",
        reg.resource_name,
        reg.at.saturating_duration_since(plugin.started).as_secs_f64() * 1e3,
        reg.version,
        kubelet.dir().display(),
        reg.endpoint,
        if preferred { "yes" } else { "no" }
    );
    let mut client =
        kubelet.connect(&reg).await.with_context(|| format!("connecting to {name}"))?;
    let mut stream =
        client.list_and_watch().await.with_context(|| format!("ListAndWatch of {name}"))?;
    let devices =
        stream.next(WAIT).await.with_context(|| format!("first ListAndWatch list of {name}"))?;
    Ok((client, stream, devices))
}

/// Registration, the device lists, a preferred allocation and one Allocate per pool.
pub async fn show(kubelet: &Kubelet, plugin: &RunningPlugin) -> anyhow::Result<Allocated> {
    let (mut net, net_stream, net_devices) = pool(kubelet, plugin, NET_POOL).await?;
    let (mut dpdk, _dpdk_stream, dpdk_devices) = pool(kubelet, plugin, DPDK_POOL).await?;

    println!("  ListAndWatch {} ({} devices):", resource(NET_POOL), net_devices.len());
    print_devices(&net_devices);
    println!("  ListAndWatch {} ({} devices):", resource(DPDK_POOL), dpdk_devices.len());
    print_devices(&dpdk_devices);

    let available: Vec<String> =
        net_devices.iter().filter(|d| d.health == HEALTHY).map(|d| d.id.clone()).collect();
    if available.is_empty() {
        bail!("the device plugin lists no healthy device in {}", resource(NET_POOL));
    }
    let picked = net
        .preferred(&available, &[], 1)
        .await
        .with_context(|| format!("GetPreferredAllocation on {}", resource(NET_POOL)))?;
    let Some(net_device) = picked.first().cloned() else {
        bail!("GetPreferredAllocation on {} chose nothing", resource(NET_POOL));
    };
    println!(
        "  GetPreferredAllocation {}, 1 of {} (policy pack): {net_device}",
        resource(NET_POOL),
        available.len()
    );

    let r = net
        .allocate(&[net_device.as_str()])
        .await
        .with_context(|| format!("Allocate {net_device} on {}", resource(NET_POOL)))?;
    println!("  Allocate {} [{net_device}]:", resource(NET_POOL));
    print_allocation(&r);
    let var = env_name(DEFAULT_RESOURCE_PREFIX, NET_POOL);
    let Some(device_id) = r.envs.get(&var).cloned() else {
        bail!("the Allocate response for {net_device} has no {var}");
    };
    if device_id != net_device {
        bail!("Allocate of {net_device} returned {var}={device_id}");
    }

    match dpdk_devices.iter().find(|d| d.health == HEALTHY) {
        Some(d) => {
            let r = dpdk
                .allocate(&[d.id.as_str()])
                .await
                .with_context(|| format!("Allocate {} on {}", d.id, resource(DPDK_POOL)))?;
            println!("  Allocate {} [{}]:", resource(DPDK_POOL), d.id);
            print_allocation(&r);
        }
        None => println!("  (no vfio-pci VF on this host: no DPDK allocation to show)"),
    }
    Ok(Allocated { net_stream, net_devices, net_device })
}

/// One line per health value: `Unhealthy  a b c`.
pub fn print_health(devices: &[Device]) {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in devices {
        by.entry(d.health.as_str()).or_default().push(d.id.as_str());
    }
    for (health, mut ids) in by {
        ids.sort_unstable();
        println!("    {health:<9}  {}", ids.join(" "));
    }
}

/// Whether the list has exactly `down` Unhealthy and every other device Healthy.
pub fn health_is(devices: &[Device], down: &[String]) -> bool {
    devices.iter().all(|d| {
        let want = if down.contains(&d.id) { UNHEALTHY } else { HEALTHY };
        d.health == want
    })
}
