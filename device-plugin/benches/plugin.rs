//! Device-plugin figures with 1024 simulated VFs in 8 pools (4 E810 PFs x 256 VFs, each PF split
//! into two pools by VF range). Prints figures; asserts nothing about time.
//!
//! Run: `cargo bench -p sriov-device-plugin --bench plugin` (as root for the live-host figures:
//! FUSE mount and a veth-backed host in its own network namespace).
//!
//! 1. scan + select in process, static tree: one host snapshot and the selection of 8 pools;
//! 2. start -> first ListAndWatch response: the real binary, from spawn until the emulated kubelet
//!    holds the first device list of a pool (the kubelet connects when the registration arrives);
//! 3. Allocate latency p50/p99 over 2000 calls, measured by the emulated kubelet;
//! 4. RSS of the plugin process (VmRSS and peak VmHWM) after all of the above;
//! 5. (root) health event -> ListAndWatch update: PF carrier drop on the veth-backed host until
//!    the stream shows the PF's VFs Unhealthy, and back.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sriov_device_plugin::config::Config;
use sriov_device_plugin::inventory;
use sriov_host::HostPaths;
use sriov_netlink::OwnedNetns;
use sriov_sim::{MountOptions, Sim, SimSpec};
use sriov_testkit::kubelet::Kubelet;

const BIN: &str = env!("CARGO_BIN_EXE_sriov-device-plugin");
const WAIT: Duration = Duration::from_secs(60);
/// The host: 4 Intel E810 PFs x 256 VFs (`SimSpec::bench_host`).
fn spec() -> SimSpec {
    SimSpec::bench_host()
}

fn config() -> String {
    let pools: Vec<String> = spec()
        .pfs
        .iter()
        .flat_map(|pf| {
            let name = &pf.netdev;
            [
                format!(r#"{{"resourceName": "{name}_lo", "selectors": {{"pfNames": ["{name}#0-127"]}}}}"#),
                format!(r#"{{"resourceName": "{name}_hi", "selectors": {{"pfNames": ["{name}#128-255"]}}}}"#),
            ]
        })
        .collect();
    format!(r#"{{"resourceList": [{}]}}"#, pools.join(","))
}

/// A temp dir on tmpfs when there is one: sysfs and `/var/run` are in-memory file systems, a
/// disk-backed `/tmp` is not representative of either.
fn memdir() -> tempfile::TempDir {
    tempfile::tempdir_in(sriov_sim::memory_dir()).expect("tempdir")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Run {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Run {
    fn rss(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
    }
}

/// Spawn -> first device list of the first pool to register (the emulated kubelet is up first,
/// as on a node).
async fn startup(sysfs: &Path, dev: &Path, netns: Option<&Path>) -> (Duration, Run, Kubelet) {
    let dir = memdir();
    let kubelet = Kubelet::start(dir.path().join("device-plugins")).await.expect("kubelet");
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, config()).expect("config");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("--").arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.arg("--config-file")
        .arg(&cfg_path)
        .arg("--sysfs-root")
        .arg(sysfs)
        .arg("--dev-root")
        .arg(dev)
        .arg("--kubelet-dir")
        .arg(kubelet.dir())
        .arg("--devinfo-dir")
        .arg(dir.path().join("devinfo"))
        .args(["--rescan-interval", "0", "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let t = Instant::now();
    let run = Run { child: cmd.spawn().expect("spawn plugin"), _dir: dir };
    let regs = kubelet.wait_registrations(1, WAIT).await.expect("registration");
    let mut c = kubelet.connect(&regs[0]).await.expect("connect");
    let first =
        c.list_and_watch().await.expect("ListAndWatch").next(WAIT).await.expect("first list");
    let took = t.elapsed();
    assert_eq!(first.len(), 128, "each pool holds 128 VFs");
    (took, run, kubelet)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench());
}

async fn bench() {
    println!("sriov-device-plugin benchmark: 1024 VFs (4 x E810, 256 VFs each), 8 pools");

    // 1. Scan + select in process on a static tree.
    let mut sim = Sim::new(spec()).expect("sim");
    let tree = memdir();
    sim.export_static(tree.path()).expect("export");
    println!(
        "(static tree and device-info files in {})",
        tree.path().parent().map_or("?".into(), |p| p.display().to_string())
    );
    let (sysfs, dev) = (tree.path().join("sys"), tree.path().join("dev"));
    let paths = HostPaths::new(&sysfs, &dev);
    let cfg =
        Config::parse(config().as_bytes(), Path::new("bench.json"), "intel.com").expect("config");
    let mut scans = Vec::new();
    let mut selects = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let scan = inventory::scan(&paths).expect("scan");
        let t1 = Instant::now();
        let pools = inventory::compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO);
        selects.push(t1.elapsed());
        scans.push(t.elapsed());
        assert_eq!(pools.iter().map(|p| p.len()).sum::<usize>(), 1024);
    }
    scans.sort();
    selects.sort();
    println!(
        "scan + select (static tree, in process): p50 {} max {}  (of which select {} p50)",
        ms(percentile(&scans, 0.5)),
        ms(*scans.last().expect("runs")),
        ms(percentile(&selects, 0.5))
    );

    // 2. Startup, static tree.
    let mut starts = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let (took, run, kubelet) = startup(&sysfs, &dev, None).await;
        starts.push(took);
        last = Some((run, kubelet));
    }
    starts.sort();
    println!(
        "start -> first ListAndWatch response (static tree): p50 {} max {}",
        ms(percentile(&starts, 0.5)),
        ms(*starts.last().expect("runs"))
    );

    // 3. Allocate latency.
    let (run, kubelet) = last.expect("a run");
    let regs = kubelet.wait_registrations(8, WAIT).await.expect("8 registrations");
    let mut c = kubelet.connect(&regs[0]).await.expect("connect");
    let ids: Vec<String> = c
        .list_and_watch()
        .await
        .expect("stream")
        .next(WAIT)
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.id)
        .collect();
    let mut lat = Vec::with_capacity(2000);
    for i in 0..2000 {
        let id = &ids[i % ids.len()];
        let t = Instant::now();
        let r = c.allocate(&[id]).await.expect("allocate");
        lat.push(t.elapsed());
        assert!(r.envs.values().any(|v| v == id));
    }
    lat.sort();
    println!(
        "Allocate (1 VF, incl. device-info file write; 2000 calls): p50 {} p99 {} max {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().expect("calls"))
    );

    // 4. RSS.
    let (rss, hwm) = run.rss();
    println!(
        "plugin RSS after start + 2000 Allocates: {:.1} MB (peak {:.1} MB)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    drop(run);
    drop(kubelet);

    // 5. Health events on a live, veth-backed host.
    if !nix::unistd::geteuid().is_root() {
        println!("health event -> ListAndWatch update: skipped: needs root");
        return;
    }
    let node = OwnedNetns::create_unique("dp-bench").expect("netns");
    let t = Instant::now();
    let sim = Sim::new(spec()).expect("sim").with_netns(node.path()).expect("veth backing");
    let mnt = tempfile::tempdir().expect("tempdir");
    let mounted = sim.mount(&mnt.path().join("sim"), &MountOptions::default()).expect("mount");
    println!("(live host: 1028 veth-backed netdevs ready in {})", ms(t.elapsed()));
    let live = HostPaths::new(mounted.sysfs_root(), mounted.dev_root());
    let mut fuse_scans = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        inventory::scan(&live).expect("scan over FUSE");
        fuse_scans.push(t.elapsed());
    }
    fuse_scans.sort();
    println!("scan over the FUSE-mounted simulator: p50 {}", ms(percentile(&fuse_scans, 0.5)));
    let (took, run, kubelet) =
        startup(&mounted.sysfs_root(), &mounted.dev_root(), Some(node.path())).await;
    println!("start -> first ListAndWatch response (FUSE simulator, in netns): {}", ms(took));
    let reg = kubelet.wait_registration("intel.com/ens1f0_lo", WAIT).await.expect("registration");
    let mut s =
        kubelet.connect(&reg).await.expect("connect").list_and_watch().await.expect("stream");
    s.wait_for(WAIT, |d| d.len() == 128 && d.iter().all(|x| x.health == "Healthy"))
        .await
        .expect("healthy");
    let pf0 = spec().pfs[0].clone();
    let pf0_addr = pf0.pci_address;
    let (mut down, mut up, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        let t = Instant::now();
        mounted.set_pf_carrier(pf0_addr, false).expect("carrier down");
        calls.push(t.elapsed());
        s.wait_for(WAIT, |d| d.iter().all(|x| x.health == "Unhealthy")).await.expect("unhealthy");
        down.push(t.elapsed());
        let t = Instant::now();
        mounted.set_pf_carrier(pf0_addr, true).expect("carrier up");
        calls.push(t.elapsed());
        s.wait_for(WAIT, |d| d.iter().all(|x| x.health == "Healthy")).await.expect("healthy");
        up.push(t.elapsed());
    }
    down.sort();
    up.sort();
    calls.sort();
    println!(
        "health event -> ListAndWatch update, PF carrier loss through the simulator (128 VFs flip): p50 {} max {}; carrier back: p50 {} max {}",
        ms(percentile(&down, 0.5)),
        ms(*down.last().expect("runs")),
        ms(percentile(&up, 0.5)),
        ms(*up.last().expect("runs"))
    );
    println!(
        "  (these include the simulator's own set_pf_carrier call, 257 veth ends: p50 {} max {})",
        ms(percentile(&calls, 0.5)),
        ms(*calls.last().expect("calls"))
    );
    // The plugin's own latency: one RTM_SETLINK (PF admin down/up) in the node netns, timed from
    // just before the request to the stream update.
    let mut nl =
        sriov_netlink::open_route_socket_in(node.netns()).expect("route socket in node netns");
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        nl.set_down(&pf0.netdev).expect("link down");
        s.wait_for(WAIT, |d| d.iter().all(|x| x.health == "Unhealthy")).await.expect("unhealthy");
        down.push(t.elapsed());
        let t = Instant::now();
        nl.set_up(&pf0.netdev).expect("link up");
        s.wait_for(WAIT, |d| d.iter().all(|x| x.health == "Healthy")).await.expect("healthy");
        up.push(t.elapsed());
    }
    down.sort();
    up.sort();
    println!(
        "health event -> ListAndWatch update, PF link down via netlink (128 VFs flip): p50 {} max {}; up: p50 {} max {}",
        ms(percentile(&down, 0.5)),
        ms(*down.last().expect("runs")),
        ms(percentile(&up, 0.5)),
        ms(*up.last().expect("runs"))
    );
    let (rss, hwm) = run.rss();
    println!(
        "plugin RSS on the live host: {:.1} MB (peak {:.1} MB)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    drop(run);
    drop(kubelet);
    drop(mounted);
}
