//! Shared helpers for the black-box tests: simulated hosts, a running plugin process, and its
//! working directories.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sriov_sim::{MountOptions, MountedSim, NicModel, PfSpec, Sim, SimSpec};

pub const BIN: &str = env!("CARGO_BIN_EXE_sriov-device-plugin");
pub const WAIT: Duration = Duration::from_secs(10);
/// ListAndWatch health strings.
pub const H: &str = "Healthy";
pub const U: &str = "Unhealthy";

/// `(device ID, health)` pairs as the kubelet emulator reports them.
pub fn hv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

/// Writes a sysfs attribute of the simulated host, as `echo value > path` does.
pub fn write(path: &Path, value: &str) {
    std::fs::write(path, value)
        .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips (returns `None` and prints the reason) when not root.
#[macro_export]
macro_rules! need_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

pub fn addr(s: &str) -> sriov_sim::PciAddr {
    s.parse().unwrap()
}

/// Working directories of one plugin run.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub kubelet: PathBuf,
    pub devinfo: PathBuf,
    pub cdi: PathBuf,
    pub config: PathBuf,
}

impl Dirs {
    pub fn new(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let d = Self {
            kubelet: tmp.path().join("device-plugins"),
            devinfo: tmp.path().join("devinfo"),
            cdi: tmp.path().join("cdi"),
            config: tmp.path().join("pcidp/config.json"),
            tmp,
        };
        std::fs::create_dir_all(d.config.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&d.kubelet).unwrap();
        std::fs::write(&d.config, config).unwrap();
        d
    }

    /// Rewrites the config file the way an editor or a ConfigMap update does (write a temp file,
    /// rename it over the old one).
    pub fn write_config(&self, config: &str) {
        let tmp = self.config.with_extension("json.tmp");
        std::fs::write(&tmp, config).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }
}

/// A simulated host exported as a plain tree (no root needed, no reactions).
pub struct StaticHost {
    pub tmp: tempfile::TempDir,
    pub sysfs: PathBuf,
    pub dev: PathBuf,
}

pub fn static_host(spec: SimSpec, setup: impl FnOnce(&mut Sim)) -> StaticHost {
    let mut sim = Sim::new(spec).unwrap();
    setup(&mut sim);
    let tmp = tempfile::tempdir().unwrap();
    sim.export_static(tmp.path()).unwrap();
    StaticHost { sysfs: tmp.path().join("sys"), dev: tmp.path().join("dev"), tmp }
}

/// A simulated host mounted over FUSE (root only): it reacts to writes and model changes.
pub struct LiveHost {
    pub mounted: MountedSim,
    pub tmp: tempfile::TempDir,
}

impl LiveHost {
    pub fn sysfs(&self) -> PathBuf {
        self.mounted.sysfs_root()
    }
    pub fn dev(&self) -> PathBuf {
        self.mounted.dev_root()
    }
}

pub fn live_host(sim: Sim) -> LiveHost {
    let tmp = tempfile::tempdir().unwrap();
    let opts = MountOptions { cache_ttl: Duration::ZERO, ..MountOptions::default() };
    let mounted = sim.mount(&tmp.path().join("sim"), &opts).unwrap();
    LiveHost { mounted, tmp }
}

/// A PF spec.
pub fn pf(model: NicModel, a: &str, netdev: &str, numa: i32, vfs: u16) -> PfSpec {
    PfSpec::new(model, addr(a), netdev).numa_node(numa).num_vfs(vfs)
}

/// A running plugin; killed (by PID) on drop if still running.
pub struct Plugin {
    child: Child,
    pub log: Arc<Mutex<String>>,
    pub started: Instant,
}

impl Plugin {
    /// Starts the plugin with the directories' flags plus `extra`; `netns` runs it inside that
    /// network namespace (via nsenter, which execs the plugin under its own PID).
    pub fn start(
        dirs: &Dirs,
        sysfs: &Path,
        dev: &Path,
        extra: &[&str],
        netns: Option<&Path>,
    ) -> Self {
        let mut args: Vec<String> = vec![
            "--config-file".into(),
            dirs.config.display().to_string(),
            "--sysfs-root".into(),
            sysfs.display().to_string(),
            "--dev-root".into(),
            dev.display().to_string(),
            "--kubelet-dir".into(),
            dirs.kubelet.display().to_string(),
            "--devinfo-dir".into(),
            dirs.devinfo.display().to_string(),
            "--cdi-dir".into(),
            dirs.cdi.display().to_string(),
            "--log-level".into(),
            "debug".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("--").arg(BIN).args(&args);
                c
            }
            None => {
                let mut c = Command::new(BIN);
                c.args(&args);
                c
            }
        };
        cmd.env_remove("RUST_LOG").env_remove("SRIOV_SYSFS_ROOT").env_remove("SRIOV_DEV_ROOT");
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("plugin: {line}");
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Self { child, log, started }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(WAIT).unwrap_or_else(|| {
            let _ = self.child.kill();
            self.child.wait().unwrap()
        })
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the runtime-change tests run: a kubelet, the plugin (started with `extra`, in `netns`
/// if given) with two pools on the live host, a kernel pool `intel.com/net` (iavf) and a DPDK
/// pool `intel.com/dpdk` (vfio-pci), and both ListAndWatch streams past their first snapshot.
/// Fields drop in order: streams, plugin, kubelet, then the directories.
pub struct TwoPools {
    pub net: sriov_testkit::kubelet::DeviceStream,
    pub dpdk: sriov_testkit::kubelet::DeviceStream,
    pub plugin: Plugin,
    pub kubelet: sriov_testkit::kubelet::Kubelet,
    pub dirs: Dirs,
}

/// Starts [`TwoPools`] on a host with one PF and two iavf VFs (0000:3b:02.0 and .1), and checks
/// the first snapshots: both VFs Healthy in `net`, nothing in `dpdk`.
pub async fn two_pools(host: &LiveHost, extra: &[&str], netns: Option<&Path>) -> TwoPools {
    let dirs = Dirs::new(
        r#"{"resourceList": [{"resourceName": "net", "selectors": {"drivers": ["iavf"]}},
                             {"resourceName": "dpdk", "selectors": {"drivers": ["vfio-pci"]}}]}"#,
    );
    let kubelet = sriov_testkit::kubelet::Kubelet::start(&dirs.kubelet).await.unwrap();
    let plugin = Plugin::start(&dirs, &host.sysfs(), &host.dev(), extra, netns);
    let net_reg = kubelet.wait_registration("intel.com/net", WAIT).await.unwrap();
    let dpdk_reg = kubelet.wait_registration("intel.com/dpdk", WAIT).await.unwrap();
    let mut net = kubelet.connect(&net_reg).await.unwrap().list_and_watch().await.unwrap();
    let mut dpdk = kubelet.connect(&dpdk_reg).await.unwrap().list_and_watch().await.unwrap();
    assert_eq!(
        sriov_testkit::kubelet::health_of(&net.next(WAIT).await.unwrap()),
        hv(&[("0000:3b:02.0", H), ("0000:3b:02.1", H)])
    );
    assert!(dpdk.next(WAIT).await.unwrap().is_empty());
    TwoPools { net, dpdk, plugin, kubelet, dirs }
}
