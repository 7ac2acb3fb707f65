//! Uevents of a mounted sim, received by real `NETLINK_KOBJECT_UEVENT` listeners: the sim's
//! netns sees the kernel's sequence for each sysfs write, any other netns sees nothing,
//! and the root netns is refused. Needs root; skips otherwise. Every test makes its own
//! namespaces (`ip netns add`, removed by a Drop guard) and never touches the root netns.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Netns;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_KOBJECT_UEVENT};
use pretty_assertions::assert_eq;
use sriov_netlink::uevent::{Uevent, parse};
use sriov_sim::{MountOptions, MountedSim, NicModel, PfSpec, Sim, SimError, SimSpec, UeventTarget};

/// A group-1 uevent listener opened inside a netns.
struct Listener(Socket);

/// Devpaths the sim's devices live under (the host's own devices and the backing's
/// `/devices/virtual/net/*` veths are ignored).
fn from_sim(ev: &Uevent) -> bool {
    ev.devpath.starts_with("/devices/pci0000:3a/")
        || ev.devpath.starts_with("/devices/virtual/vfio/")
}

impl Listener {
    fn open(ns: &Path) -> Self {
        let ns = sriov_netlink::Netns::open(ns).unwrap();
        let sock = sriov_netlink::run_in_netns(&ns, || {
            let mut s = Socket::new(NETLINK_KOBJECT_UEVENT).unwrap();
            s.bind(&SocketAddr::new(0, 1)).unwrap();
            s
        })
        .unwrap();
        let tv = nix::sys::time::TimeVal::new(0, 100_000);
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .unwrap();
        Self(sock)
    }

    /// The sim's events until `n` arrived or `timeout` passed.
    fn collect(&mut self, n: usize, timeout: Duration) -> Vec<Uevent> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(8192);
        while out.len() < n && Instant::now() < deadline {
            buf.clear();
            match self.0.recv(&mut buf, 0) {
                Ok(_) => {
                    if let Ok(ev) = parse(&buf)
                        && from_sim(&ev)
                    {
                        out.push(ev);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("uevent recv: {e}"),
            }
        }
        out
    }

    /// Everything already queued (sends are synchronous: what a write announced is in the
    /// queue when the write returns).
    fn drain(&mut self) -> Vec<Uevent> {
        self.collect(usize::MAX, Duration::from_millis(200))
    }
}

/// `ACTION@DEVPATH` with the PCI tree prefix shortened to `…/`.
fn short(evs: &[Uevent]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            let action = e.get("ACTION").unwrap_or("?");
            let path = e.devpath.replace("/devices/pci0000:3a/0000:3a:00.0/", "…/");
            format!("{action}@{path}")
        })
        .collect()
}

fn spec(delay_ms: u64) -> SimSpec {
    SimSpec::empty()
        .pf(PfSpec::new(NicModel::IntelX710, "0000:3b:00.0".parse().unwrap(), "ens1f0"))
        .vf_netdev_delay_ms(delay_ms)
}

fn mount(sim: Sim, tmp: &tempfile::TempDir) -> MountedSim {
    sim.mount(&tmp.path().join("sim"), &MountOptions::default()).unwrap()
}

fn write(path: &Path, value: &str) {
    fs::write(path, value).unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
}

/// Numvfs 0 -> 2, a driver switch to vfio-pci, and 2 -> 0 through the FUSE mount of a
/// veth-backed sim: the node netns receives the kernel's sequence, another netns nothing.
#[test]
fn node_netns_receives_the_kernel_sequence_and_other_netns_nothing() {
    require_root!();
    let node = Netns::new("simue", "node");
    let other = Netns::new("simue", "other");
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::new(spec(0))
        .unwrap()
        .with_netns(&node.path())
        .unwrap()
        .with_uevents(UeventTarget::Netns(node.path()))
        .unwrap();
    let m = mount(sim, &tmp);
    let mut rx = Listener::open(&node.path());
    let mut elsewhere = Listener::open(&other.path());
    let sys = m.sysfs_root();
    let pf = sys.join("bus/pci/devices/0000:3b:00.0");

    write(&pf.join("sriov_numvfs"), "2");
    let evs = rx.collect(9, Duration::from_secs(10));
    assert_eq!(
        short(&evs),
        [
            "add@…/0000:3b:02.0",
            "change@…/0000:3b:02.0",
            "add@…/0000:3b:02.0/net/ens1f0v0",
            "bind@…/0000:3b:02.0",
            "add@…/0000:3b:02.1",
            "change@…/0000:3b:02.1",
            "add@…/0000:3b:02.1/net/ens1f0v1",
            "bind@…/0000:3b:02.1",
            "change@…/0000:3b:00.0",
        ]
    );
    let keys: Vec<&str> = evs[0].env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "ACTION",
            "DEVPATH",
            "SUBSYSTEM",
            "PCI_CLASS",
            "PCI_ID",
            "PCI_SUBSYS_ID",
            "PCI_SLOT_NAME",
            "MODALIAS",
            "SEQNUM"
        ]
    );
    assert_eq!(evs[3].driver.as_deref(), Some("iavf"));
    assert_eq!(evs[3].pci_slot_name.as_deref(), Some("0000:3b:02.0"));
    // The net event names the real backing veth: its interface index is the link's.
    assert_eq!(evs[2].interface.as_deref(), Some("ens1f0v0"));
    let ifindex =
        fs::read_to_string(sys.join("bus/pci/devices/0000:3b:02.0/net/ens1f0v0/ifindex")).unwrap();
    assert_eq!(evs[2].get("IFINDEX"), Some(ifindex.trim()));
    let seqs: Vec<u64> = evs.iter().map(|e| e.seqnum.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    // Driver switch of VF 1 to vfio-pci, as the device plugin's users do it.
    let vf1 = sys.join("bus/pci/devices/0000:3b:02.1");
    write(&vf1.join("driver_override"), "vfio-pci");
    write(&vf1.join("driver/unbind"), "0000:3b:02.1");
    write(&sys.join("bus/pci/drivers_probe"), "0000:3b:02.1");
    let group = fs::read_link(vf1.join("iommu_group")).unwrap();
    let group = group.file_name().unwrap().to_str().unwrap().to_owned();
    let evs = rx.collect(4, Duration::from_secs(10));
    assert_eq!(
        short(&evs),
        [
            "remove@…/0000:3b:02.1/net/ens1f0v1".to_owned(),
            "unbind@…/0000:3b:02.1".to_owned(),
            format!("add@/devices/virtual/vfio/{group}"),
            "bind@…/0000:3b:02.1".to_owned(),
        ]
    );
    assert_eq!(evs[1].driver, None, "unbind carries no DRIVER");
    assert_eq!(evs[1].get("MODALIAS"), None, "unbind carries no MODALIAS");
    assert_eq!(evs[3].driver.as_deref(), Some("vfio-pci"));

    write(&pf.join("sriov_numvfs"), "0");
    let evs = rx.collect(6, Duration::from_secs(10));
    assert_eq!(
        short(&evs),
        [
            "remove@…/0000:3b:02.0/net/ens1f0v0".to_owned(),
            "unbind@…/0000:3b:02.0".to_owned(),
            "remove@…/0000:3b:02.0".to_owned(),
            format!("remove@/devices/virtual/vfio/{group}"),
            "unbind@…/0000:3b:02.1".to_owned(),
            "remove@…/0000:3b:02.1".to_owned(),
        ]
    );
    assert!(rx.drain().is_empty(), "no further events");
    let leaked = elsewhere.drain();
    assert!(leaked.is_empty(), "another netns received {:?}", short(&leaked));
}

/// A VF netdev registered after a delay is announced when it appears, even though nobody
/// touches the mount (the timer thread applies it).
#[test]
fn delayed_netdev_is_announced_without_any_access() {
    require_root!();
    let node = Netns::new("simue", "delay");
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::new(spec(100)).unwrap().with_uevents(UeventTarget::Netns(node.path())).unwrap();
    let m = mount(sim, &tmp);
    let mut rx = Listener::open(&node.path());
    write(&m.sysfs_root().join("bus/pci/devices/0000:3b:00.0/sriov_numvfs"), "1");
    let t = Instant::now();
    let evs = rx.collect(5, Duration::from_secs(10));
    assert_eq!(
        short(&evs),
        [
            "add@…/0000:3b:02.0",
            "change@…/0000:3b:02.0",
            "bind@…/0000:3b:02.0",
            "change@…/0000:3b:00.0",
            "add@…/0000:3b:02.0/net/ens1f0v0",
        ]
    );
    println!("delayed netdev announced {:?} after the write (delay 100 ms)", t.elapsed());
}

#[test]
fn root_netns_is_refused() {
    require_root!();
    use std::os::unix::fs::MetadataExt;
    if fs::metadata("/proc/self/ns/net").unwrap().ino() != 0xEFFF_FFF9 {
        println!("skipped: test process is not in the root netns");
        return;
    }
    let err = Sim::new(spec(0))
        .unwrap()
        .with_uevents(UeventTarget::Netns("/proc/self/ns/net".into()))
        .unwrap_err();
    assert!(matches!(err, SimError::RootNetnsUevents { .. }), "{err}");
}

#[test]
fn uevents_must_go_to_the_backing_node_netns() {
    require_root!();
    let node = Netns::new("simue", "bk");
    let other = Netns::new("simue", "ot");
    let err = Sim::new(spec(0))
        .unwrap()
        .with_netns(&node.path())
        .unwrap()
        .with_uevents(UeventTarget::Netns(other.path()))
        .unwrap_err();
    assert!(matches!(err, SimError::UeventNetnsMismatch { .. }), "{err}");
    let err = Sim::new(spec(0))
        .unwrap()
        .with_uevents(UeventTarget::Netns(other.path()))
        .unwrap()
        .with_netns(&node.path())
        .unwrap_err();
    assert!(matches!(err, SimError::UeventNetnsMismatch { .. }), "{err}");
    // Off is always accepted, and broadcasts nothing.
    let sim = Sim::new(spec(0)).unwrap().with_uevents(UeventTarget::Off).unwrap();
    assert!(!sim.uevents_enabled());
}
