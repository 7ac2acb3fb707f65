//! Black-box harness: a simulated SR-IOV host whose VF netdevs are real veths in a test-owned
//! "node" netns, pods as test-owned netns, and the built `sriov` binary run exactly as a
//! runtime runs it (env + stdin JSON), from inside the node netns.
//!
//! Everything lives in namespaces the test created (removed on drop, also on failure); the root
//! netns is never touched. Addresses are TEST-NET only.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};
use sriov_netlink::{Link, Netlink, NetlinkSocket, OwnedNetns, open_route_socket_in, run_in_netns};
use sriov_sim::{MountOptions, MountedSim, NicModel, PfSpec, Sim, SimSpec};

/// The plugin binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sriov");
/// Debian's reference plugins (`containernetworking-plugins`).
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

pub const PF_PCI: &str = "0000:3b:00.0";
pub const PF_NAME: &str = "ens1f0";

/// True (after printing why) when the calling test must skip: it needs root for namespaces
/// and the FUSE mount.
pub fn skip_unless_root() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        println!("skipped: needs root");
    }
    !root
}

/// Whether Debian's `host-local` / `static` plugins are installed.
pub fn have_reference_plugins() -> bool {
    ["host-local", "static", "host-device"].iter().all(|p| Path::new(CNI_BIN_DIR).join(p).exists())
}

/// VF `i` of the simulated PF (an X710 function 0: first VF offset 16, stride 1).
pub fn vf_pci(i: u32) -> String {
    let devfn = 16 + i;
    format!("0000:3b:{:02x}.{}", devfn / 8, devfn % 8)
}

/// VF `i`'s netdev name in the node.
pub fn vf_name(i: u32) -> String {
    sriov_sim::vf_netdev_name(PF_NAME, i as u16)
}

/// A simulated node: its netns, the mounted sim and a private state directory.
pub struct Node {
    pub sim: MountedSim,
    pub netns: OwnedNetns,
    pub tmp: tempfile::TempDir,
}

/// One invocation's outcome.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Panics with everything the plugin said unless it succeeded.
    pub fn must(self) -> Run {
        assert!(self.ok(), "plugin failed: {self:#?}");
        self
    }

    /// The CNI error code (panics if it succeeded).
    pub fn error_code(&self) -> u64 {
        assert!(!self.ok(), "plugin succeeded unexpectedly: {self:#?}");
        self.json()["code"].as_u64().unwrap_or_else(|| panic!("no code: {self:#?}"))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The CNI call's environment.
#[derive(Debug, Clone)]
pub struct Call {
    pub command: &'static str,
    pub container_id: String,
    pub ifname: String,
    pub netns: Option<PathBuf>,
    pub args: Option<String>,
    pub extra_env: Vec<(String, String)>,
}

impl Call {
    pub fn new(command: &'static str, container_id: &str, netns: Option<&Path>) -> Call {
        Call {
            command,
            container_id: container_id.to_owned(),
            ifname: "net1".into(),
            netns: netns.map(Path::to_path_buf),
            args: Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p".into()),
            extra_env: Vec::new(),
        }
    }

    pub fn with_command(&self, command: &'static str) -> Call {
        Call { command, ..self.clone() }
    }

    pub fn env(mut self, k: &str, v: &str) -> Call {
        self.extra_env.push((k.to_owned(), v.to_owned()));
        self
    }
}

impl Node {
    /// A node with one X710 PF and `num_vfs` VFs backed by veths (needs root).
    pub fn new(num_vfs: u16) -> Node {
        let netns = OwnedNetns::create_unique("sriovcni-node").expect("create node netns");
        let spec =
            SimSpec::empty()
                .pf(PfSpec::new(NicModel::IntelX710, PF_PCI.parse().unwrap(), PF_NAME)
                    .num_vfs(num_vfs));
        let sim = Sim::new(spec).unwrap().with_netns(netns.path()).expect("veth backing");
        let tmp = tempfile::tempdir().unwrap();
        let sim = sim.mount(&tmp.path().join("sim"), &MountOptions::default()).expect("mount sim");
        Node { sim, netns, tmp }
    }

    pub fn sysfs(&self) -> PathBuf {
        self.sim.sysfs_root()
    }

    /// The state directory the tests pass as `stateDir`.
    pub fn state_dir(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// The device-information base directory the tests pass as `deviceInfoDir` (never the
    /// host's /var/run).
    pub fn devinfo_dir(&self) -> PathBuf {
        self.tmp.path().join("devinfo")
    }

    /// The device-information file of an attachment with the default name.
    pub fn devinfo_file(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.devinfo_dir().join("cni").join(format!("sriov-test-{container_id}_{ifname}"))
    }

    /// Device-information files under [`Node::devinfo_dir`]`/cni`.
    pub fn devinfo_files(&self) -> Vec<String> {
        sorted_names(&self.devinfo_dir().join("cni"))
    }

    /// host-local's data directory.
    pub fn ipam_dir(&self) -> PathBuf {
        self.tmp.path().join("ipam")
    }

    /// A fresh pod netns.
    pub fn pod(&self) -> OwnedNetns {
        OwnedNetns::create_unique("sriovcni-pod").expect("create pod netns")
    }

    /// A config for VF `vf` at `version` with `extra` keys merged in.
    pub fn conf(&self, version: &str, vf: u32, extra: Value) -> Value {
        let mut v = json!({
            "cniVersion": version,
            "name": "sriov-test",
            "type": "sriov",
            "deviceID": vf_pci(vf),
            "stateDir": self.state_dir(),
            "deviceInfoDir": self.devinfo_dir(),
            "logLevel": "debug",
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    /// host-local IPAM in 192.0.2.0/24 with a private data dir.
    pub fn host_local(&self) -> Value {
        json!({"type": "host-local", "subnet": "192.0.2.0/24", "gateway": "192.0.2.1",
               "routes": [{"dst": "203.0.113.0/24"}], "dataDir": self.ipam_dir()})
    }

    /// Starts the plugin inside the node netns (the child inherits the netns of the scoped
    /// thread that forks it; the test's own threads never switch).
    pub fn spawn(&self, call: &Call, stdin: &Value) -> Child {
        self.spawn_bin(BIN, call, stdin)
    }

    /// [`Node::spawn`] for any plugin binary.
    pub fn spawn_bin(&self, bin: &str, call: &Call, stdin: &Value) -> Child {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", call.command)
            .env("CNI_CONTAINERID", &call.container_id)
            .env("CNI_IFNAME", &call.ifname)
            .env("CNI_PATH", CNI_BIN_DIR)
            .env("SRIOV_SYSFS_ROOT", self.sysfs())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = &call.netns {
            cmd.env("CNI_NETNS", n);
        }
        if let Some(a) = &call.args {
            cmd.env("CNI_ARGS", a);
        }
        for (k, v) in &call.extra_env {
            cmd.env(k, v);
        }
        let mut child = run_in_netns(self.netns.netns(), || cmd.spawn())
            .expect("enter node netns")
            .expect("spawn plugin");
        let input = stdin.to_string();
        if let Some(mut s) = child.stdin.take() {
            // A process may exit without reading its stdin (an env error, /bin/true).
            match s.write_all(input.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.expect("write stdin"),
            }
        }
        child
    }

    /// Runs the plugin to completion.
    pub fn run(&self, call: &Call, stdin: &Value) -> Run {
        self.spawn(call, stdin).wait_with_output().expect("wait for sriov").into()
    }

    /// A netlink client in the node netns.
    pub fn nl(&self) -> Netlink<NetlinkSocket> {
        open_route_socket_in(self.netns.netns()).unwrap()
    }

    /// The node-side link of VF `i` under its original name, if it is there.
    pub fn vf_link(&self, i: u32) -> Option<Link> {
        self.nl().get_link(vf_name(i).as_str()).ok()
    }

    /// Journals left in the state directory.
    pub fn journals(&self) -> Vec<String> {
        sorted_names(&self.state_dir().join("journal"))
    }

    /// Addresses leased by host-local (files named like IPs).
    pub fn leases(&self) -> Vec<String> {
        let mut v = sorted_names(&self.ipam_dir().join("sriov-test"));
        v.retain(|n| n.parse::<std::net::IpAddr>().is_ok());
        v
    }
}

/// The entry names in `dir`, sorted (none when it does not exist).
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A netlink client in `ns`.
pub fn nl_in(ns: &OwnedNetns) -> Netlink<NetlinkSocket> {
    open_route_socket_in(ns.netns()).unwrap()
}

/// `ifname`'s link in `ns`, if present.
pub fn link_in(ns: &OwnedNetns, ifname: &str) -> Option<Link> {
    nl_in(ns).get_link(ifname).ok()
}

/// Reads stderr of a child until `needle` appears (or EOF); returns everything read.
pub fn read_stderr_until(child: &mut Child, needle: &str) -> String {
    let mut err = child.stderr.take().expect("stderr piped");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match err.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if String::from_utf8_lossy(&buf).contains(needle) {
                    break;
                }
            }
            Err(e) => panic!("read stderr: {e}"),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
