//! Veth backing: real links in a test-owned "node" netns, followed live by the mounted
//! sysfs view. Needs root; skips otherwise. Every test makes its own namespaces
//! (`ip netns add`, removed by a Drop guard) and never touches the root netns.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::fs;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Netns;
use sriov_sim::{MountOptions, MountedSim, NicModel, PciAddr, PfSpec, Sim, SimError, SimSpec};

fn spec() -> SimSpec {
    SimSpec::empty()
        .pf(PfSpec::new(NicModel::IntelX710, "0000:3b:00.0".parse().unwrap(), "ens1f0").num_vfs(2))
}

fn mount(sim: Sim, tmp: &tempfile::TempDir) -> MountedSim {
    sim.mount(&tmp.path().join("sim"), &MountOptions::default()).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// Bounded wait for a sysfs file to read `want` (operstate follows linkwatch, which
/// runs asynchronously in the kernel).
fn wait_for(path: &Path, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = fs::read_to_string(path).unwrap_or_default();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{} is {got:?}, want {want:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn root_netns_is_refused() {
    require_root!();
    let sim = Sim::new(spec()).unwrap();
    use std::os::unix::fs::MetadataExt;
    if fs::metadata("/proc/self/ns/net").unwrap().ino() != 0xEFFF_FFF9 {
        println!("skipped: test process is not in the root netns");
        return;
    }
    let err = sim.with_netns(Path::new("/proc/self/ns/net")).unwrap_err();
    assert!(matches!(err, SimError::RootNetns { .. }), "{err}");
    // No link leaked into the root netns.
    let out = Command::new("ip").args(["link", "show", "ens1f0"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn sysfs_view_follows_real_links() {
    require_root!();
    let node = Netns::new("sim", "node");
    let pod = Netns::new("sim", "pod");
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::new(spec()).unwrap().with_netns(&node.path()).unwrap();
    let m = mount(sim, &tmp);
    let sys = m.sysfs_root();
    let vf1 = sys.join("bus/pci/devices/0000:3b:02.1");

    // The links exist in the node netns with the netdevs' names and MACs.
    let links = node.must(&["-o", "link", "show"]);
    for n in ["ens1f0", "ens1f0v0", "ens1f0v1"] {
        assert!(links.contains(&format!(": {n}@")), "{n} missing: {links}");
    }
    assert!(links.contains("02:5e:00:00:00:00"), "{links}");
    let show = node.must(&["-o", "link", "show", "ens1f0"]);
    let ifindex: String = show.chars().take_while(|c| c.is_ascii_digit()).collect();
    assert_eq!(
        fs::read_to_string(sys.join("class/net/ens1f0/ifindex")).unwrap(),
        format!("{ifindex}\n")
    );
    assert_eq!(
        fs::read_to_string(sys.join("class/net/ens1f0/address")).unwrap(),
        "02:5e:00:00:00:00\n"
    );
    assert_eq!(fs::read_to_string(sys.join("class/net/ens1f0v1/mtu")).unwrap(), "1500\n");
    // Nothing in the root netns.
    assert!(
        !Command::new("ip").args(["link", "show", "ens1f0"]).output().unwrap().status.success()
    );

    // CNI ADD: move into the pod and rename -> gone from the node's sysfs.
    node.must(&["link", "set", "ens1f0v1", "netns", &pod.0]);
    pod.must(&["link", "set", "ens1f0v1", "name", "net1"]);
    assert_eq!(names(&vf1.join("net")), Vec::<String>::new());
    assert!(!sys.join("class/net/ens1f0v1").exists());
    assert!(!sys.join("class/net/net1").exists());
    // CNI DEL: move back and rename -> listed under the new name.
    pod.must(&["link", "set", "net1", "netns", &node.0]);
    node.must(&["link", "set", "net1", "name", "ens1f0v1r"]);
    assert_eq!(names(&vf1.join("net")), ["ens1f0v1r"]);
    assert_eq!(
        fs::canonicalize(sys.join("class/net/ens1f0v1r/device")).unwrap(),
        fs::canonicalize(&vf1).unwrap()
    );

    // Carrier follows the PF's wire end.
    let pf: PciAddr = "0000:3b:00.0".parse().unwrap();
    wait_for(&sys.join("class/net/ens1f0/operstate"), "up\n");
    m.set_pf_carrier(pf, false).unwrap();
    assert_eq!(fs::read_to_string(sys.join("class/net/ens1f0/carrier")).unwrap(), "0\n");
    wait_for(&sys.join("class/net/ens1f0/operstate"), "down\n");
    assert!(node.must(&["link", "show", "ens1f0"]).contains("NO-CARRIER"));
    m.set_pf_carrier(pf, true).unwrap();
    assert_eq!(fs::read_to_string(sys.join("class/net/ens1f0/carrier")).unwrap(), "1\n");
    wait_for(&sys.join("class/net/ens1f0/operstate"), "up\n");

    // Unbind VF 0 to vfio-pci: its link is deleted, /dev/vfio/<group> appears.
    let vf0 = "0000:3b:02.0";
    let dev0 = sys.join(format!("bus/pci/devices/{vf0}"));
    let group = fs::read_link(dev0.join("iommu_group")).unwrap();
    let group = group.file_name().unwrap().to_str().unwrap().to_owned();
    fs::write(dev0.join("driver_override"), "vfio-pci").unwrap();
    fs::write(dev0.join("driver/unbind"), vf0).unwrap();
    fs::write(sys.join("bus/pci/drivers_probe"), vf0).unwrap();
    assert!(node.ip(&["link", "show", "ens1f0v0"]).is_err());
    assert!(m.dev_root().join(format!("vfio/{group}")).exists());
    // And back to iavf: the link is recreated.
    fs::write(dev0.join("driver_override"), "\n").unwrap();
    fs::write(sys.join("bus/pci/drivers/vfio-pci/unbind"), vf0).unwrap();
    fs::write(sys.join("bus/pci/drivers_probe"), vf0).unwrap();
    assert!(node.ip(&["link", "show", "ens1f0v0"]).is_ok());
    assert_eq!(names(&dev0.join("net")), ["ens1f0v0"]);
    assert!(!m.dev_root().join(format!("vfio/{group}")).exists());

    // sriov_numvfs 0 deletes every VF link (including the renamed one).
    fs::write(sys.join("bus/pci/devices/0000:3b:00.0/sriov_numvfs"), "0").unwrap();
    let links = node.must(&["-o", "link", "show"]);
    assert!(!links.contains("ens1f0v"), "{links}");
    assert!(links.contains(": ens1f0@"), "{links}");

    // Teardown deletes the PF link too.
    drop(m);
    assert!(node.ip(&["link", "show", "ens1f0"]).is_err());
}

/// Sends one UDP datagram from `from` netns to `to_addr` in `to` netns.
fn udp_between(from: &Netns, to: &Netns, to_addr: &str) -> Vec<u8> {
    let enter = |ns: &Netns| {
        let f = fs::File::open(ns.path()).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            enter(to);
            let sock = UdpSocket::bind(format!("{to_addr}:4789")).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 64];
            let got = sock.recv_from(&mut buf).map(|(n, _)| buf[..n].to_vec());
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            got.unwrap()
        });
        rx.recv().unwrap();
        s.spawn(|| {
            enter(from);
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            // The first datagram may be dropped while ARP resolves; resend a few times.
            for _ in 0..20 {
                sock.send_to(b"hello vf", format!("{to_addr}:4789")).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
            }
        });
        server.join().unwrap()
    })
}

#[test]
fn vf_to_vf_traffic_crosses_the_embedded_switch() {
    require_root!();
    let node = Netns::new("sim", "n2");
    let pod1 = Netns::new("sim", "p1");
    let pod2 = Netns::new("sim", "p2");
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::new(spec()).unwrap().with_netns(&node.path()).unwrap();
    let _m = mount(sim, &tmp);
    for (vf, pod, ip) in [("ens1f0v0", &pod1, "192.0.2.1/24"), ("ens1f0v1", &pod2, "192.0.2.2/24")]
    {
        node.must(&["link", "set", vf, "netns", &pod.0]);
        pod.must(&["link", "set", vf, "name", "net1"]);
        pod.must(&["addr", "add", ip, "dev", "net1"]);
        pod.must(&["link", "set", "net1", "up"]);
    }
    assert_eq!(udp_between(&pod1, &pod2, "192.0.2.2"), b"hello vf");
}
