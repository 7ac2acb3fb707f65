//! Netdev details from one rtnetlink dump equal the ones read attribute by attribute from sysfs,
//! and a dump that does not describe the tree's namespace is not used.
//!
//! The simulated host backs every netdev with a real veth in a private "node" netns (the sim's
//! veth backing) and is exported as a plain tree, so the same host can be read both ways: with the
//! dump of the node netns, and from the tree alone. Needs root (skips otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use sriov_host::{DiscoverOptions, Host, HostPaths, LinkType, NetdevFacts, NetdevTable, discover};
use sriov_netlink::{Netlink, OwnedNetns, run_in_netns};
use sriov_sim::{NicModel, PfSpec, Sim, SimSpec};

fn root() -> bool {
    if nix::unistd::Uid::effective().is_root() {
        true
    } else {
        eprintln!("skipped: needs root");
        false
    }
}

struct Fixture {
    node: OwnedNetns,
    _sim: Sim,
    _tree: tempfile::TempDir,
    paths: HostPaths,
}

/// Two PFs (Intel E810, NVIDIA ConnectX-5) with 4 and 3 VFs, veth-backed in a private netns.
/// The VFs are made to differ before the tree is exported: one admin up (so its carrier is
/// known), one with another MTU.
fn fixture() -> Fixture {
    let node = OwnedNetns::create_unique("sriov-host-nt").unwrap();
    let spec = SimSpec::empty()
        .pf(PfSpec::new(NicModel::IntelE810, "0000:17:00.0".parse().unwrap(), "ens1f0").num_vfs(4))
        .pf(PfSpec::new(NicModel::MellanoxConnectX5, "0000:3b:00.0".parse().unwrap(), "ens2f0")
            .num_vfs(3));
    let mut sim = Sim::new(spec).unwrap().with_netns(node.path()).unwrap();
    run_in_netns(node.netns(), || {
        let mut nl = Netlink::open().unwrap();
        nl.set_up("ens1f0v1").unwrap();
        nl.set_mtu("ens2f0v2", 9000).unwrap();
    })
    .unwrap();
    let tree = tempfile::tempdir().unwrap();
    sim.export_static(tree.path()).unwrap();
    let paths = HostPaths::new(tree.path().join("sys"), tree.path().join("dev"));
    Fixture { node, _sim: sim, _tree: tree, paths }
}

fn read(paths: &HostPaths, lean: bool, netdevs: Option<NetdevTable>) -> Host {
    let opts = DiscoverOptions {
        skip_vf_netdev_details: lean,
        netdevs: netdevs.map(Arc::new),
        ..Default::default()
    };
    discover(paths, &opts).unwrap()
}

#[test]
fn dump_gives_the_same_inventory_as_sysfs() {
    if !root() {
        return;
    }
    let f = fixture();
    run_in_netns(f.node.netns(), || {
        let f_sysfs = read(&f.paths, false, None);
        let f_dump = read(&f.paths, false, Some(NetdevTable::from_current_netns().unwrap()));
        assert_eq!(f_sysfs.vfs().count(), 7);
        pretty_assertions::assert_eq!(f_sysfs, f_dump);
        let vf = f_dump.vfs().find(|(_, v)| v.netdev.as_deref() == Some("ens2f0v2")).unwrap().1;
        assert_eq!(vf.link.as_ref().unwrap().mtu, Some(9000));
        let lean_sysfs = read(&f.paths, true, None);
        let lean_dump = read(&f.paths, true, Some(NetdevTable::from_current_netns().unwrap()));
        pretty_assertions::assert_eq!(lean_sysfs, lean_dump);
    })
    .unwrap();
}

#[test]
fn dump_of_another_namespace_is_not_used() {
    if !root() {
        return;
    }
    let f = fixture();
    let sysfs = run_in_netns(f.node.netns(), || read(&f.paths, false, None)).unwrap();
    // A table claiming the PF under another ifindex (another namespace's "ens1f0"), with a VF
    // whose facts are all wrong: discovery must ignore it for that PF.
    let mut table = NetdevTable::new();
    let bogus = |ifindex| NetdevFacts {
        ifindex,
        mac: Some("02:ba:d0:00:00:01".into()),
        mtu: Some(1234),
        oper_state: Some("up".into()),
        carrier: Some(true),
        link_type: LinkType::Other(776),
    };
    table.insert("ens1f0", bogus(999_999));
    table.insert("ens1f0v0", bogus(999_998));
    let read_back = read(&f.paths, false, Some(table));
    pretty_assertions::assert_eq!(sysfs, read_back);
}

#[test]
fn dump_that_agrees_is_what_discovery_reports() {
    if !root() {
        return;
    }
    let f = fixture();
    run_in_netns(f.node.netns(), || {
        let mut table = NetdevTable::from_current_netns().unwrap();
        let mut facts = table.get("ens1f0v3").unwrap().clone();
        facts.mtu = Some(4321);
        table.insert("ens1f0v3", facts);
        // A table that knows only the PFs: the VFs' netdevs are read from sysfs.
        let full = NetdevTable::from_current_netns().unwrap();
        let mut pfs_only = NetdevTable::new();
        for name in ["ens1f0", "ens2f0"] {
            pfs_only.insert(name, full.get(name).unwrap().clone());
        }
        let host = read(&f.paths, false, Some(table));
        let vf = host.vfs().find(|(_, v)| v.netdev.as_deref() == Some("ens1f0v3")).unwrap().1;
        assert_eq!(vf.link.as_ref().unwrap().mtu, Some(4321), "the table was not used");
        let sysfs = read(&f.paths, false, None);
        pretty_assertions::assert_eq!(sysfs, read(&f.paths, false, Some(pfs_only)));
    })
    .unwrap();
}
