//! `veth` chained after the suite's `sriov` plugin, on a simulated SR-IOV host (`sriov-sim`:
//! the VFs are real veths in the node netns whose far ends share a bridge, the NIC's
//! e-switch; sysfs is served over FUSE). Needs root and the `sriov` binary
//! (`cargo build -p sriov-cni`); skips with a notice otherwise.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use sriov_sim::{MountOptions, NicModel, PfSpec, Sim, SimSpec};

const PF_PCI: &str = "0000:3b:00.0";
const PF_NAME: &str = "ens1f0";
const CID: &str = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";
const NODE_PF_V4: &str = "203.0.113.193";
const VF_V4: &str = "203.0.113.200";
const UNDERLAY_PEER_V4: &str = "203.0.113.194";

/// VF `i` of an X710 function 0 (first VF offset 16, stride 1).
fn vf_pci(i: u32) -> String {
    let devfn = 16 + i;
    format!("0000:3b:{:02x}.{}", devfn / 8, devfn % 8)
}

#[test]
fn veth_after_sriov_paths() {
    if !require_root() {
        return;
    }
    let sriov = our_bin("sriov");
    if !sriov.exists() {
        println!("skipped: {} not built (cargo build -p sriov-cni)", sriov.display());
        return;
    }
    let t = Topology::build();
    let spec =
        SimSpec::empty()
            .pf(PfSpec::new(NicModel::IntelX710, PF_PCI.parse().unwrap(), PF_NAME).num_vfs(2));
    let sim = Sim::new(spec).unwrap().with_netns(t.node.path()).unwrap();
    let sim = sim.mount(&t.dir.path().join("sim"), &MountOptions::default()).unwrap();
    t.node.ip(&format!("link set {PF_NAME} up"));
    t.node.ip(&format!("addr add {NODE_PF_V4}/26 dev {PF_NAME}"));
    // VF 0 becomes an "external" host on the underlay L2 (behind the same e-switch).
    let vf0 = sriov_sim::vf_netdev_name(PF_NAME, 0);
    t.node.ip(&format!("link set {vf0} netns {}", t.switch.name()));
    t.switch.ip(&format!("link set {vf0} up"));
    t.switch.ip(&format!("addr add {UNDERLAY_PEER_V4}/26 dev {vf0}"));

    let vf = json!({"type": "sriov", "deviceID": vf_pci(1), "stateDir": t.dir.path().join("sriov-state"), "deviceInfoDir": t.dir.path().join("devinfo"),
                    "ipam": {"type": "static", "addresses": [{"address": format!("{VF_V4}/26")}]}});
    let mut c = Chain::new("sriov-veth", "1.0.0", vec![vf, t.ours("veth", hijack_keys())]);
    c.env.push(("SRIOV_SYSFS_ROOT".into(), sim.sysfs_root().display().to_string()));
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    let names: Vec<&str> =
        r["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    let host = format!("veth{}", &CID[..11]);
    assert_eq!(names, vec!["eth0", host.as_str(), "veth0"], "{r}");

    // kubelet -> the VF's address over the veth (not the e-switch).
    let (rx0, _) = t.node.packets(&host);
    tcp_ok(&t.node, &t.pod, VF_V4);
    assert!(t.node.packets(&host).0 > rx0, "the reply came back over the veth");
    // Services and overlay pods through the node, sourced from the VF's address.
    assert_eq!(tcp_ok(&t.pod, &t.endpoint, SERVICE_V4).to_string(), VF_V4);
    assert_eq!(tcp_ok(&t.pod, &t.endpoint, OVERLAY_V4).to_string(), VF_V4);
    // North-south stays on the VF: a host on the underlay is reached through the e-switch.
    // (The node forwards nothing; packet counts on the veth would also see IPv6 housekeeping.)
    let fwd = t.node.forwarded();
    let (_, vf_tx0) = t.pod.packets("eth0");
    assert_eq!(tcp_ok(&t.pod, &t.switch, UNDERLAY_PEER_V4).to_string(), VF_V4);
    assert_eq!(t.node.forwarded(), fwd, "the node routed it: it went through the veth");
    assert!(t.pod.packets("eth0").1 > vf_tx0, "left by the VF");
    let main = t.pod.routes("main");
    assert!(main.contains("203.0.113.192/26 dev eth0"), "{main}");
    assert!(
        main.contains(&format!("{NODE_PF_V4} dev veth0")),
        "node addresses via the veth:\n{main}"
    );

    c.check(&t.node, CID, t.pod.path(), "eth0", &r).unwrap_or_else(|o| panic!("{}", o.stdout));
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r));
    assert!(!t.node.has_link(&host));
    assert!(!t.pod.has_link("eth0"), "the VF went home");
    assert_eq!(t.records(), 0);
    drop(sim);
}
