//! Discovery of hosts big enough to be read on several threads: every VF exactly once, under its
//! PF, in index order, with its own facts; the same whether VF addresses come from the kernel's
//! offset/stride rule or from the `virtfnN` links alone.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;

use sriov_host::{DiscoverOptions, Host, HostPaths, discover};
use sriov_sim::{NicModel, PfSpec, Sim, SimSpec, vf_netdev_name};

const PFS: [(&str, &str, u16); 3] = [
    ("0000:17:00.0", "ens1f0", 100),
    ("0000:17:00.1", "ens1f1", 7),
    ("0000:af:00.0", "ens2f0", 130),
];

fn host_tree() -> (tempfile::TempDir, HostPaths) {
    let mut spec = SimSpec::empty();
    for (addr, name, n) in PFS {
        spec = spec.pf(PfSpec::new(NicModel::IntelE810, addr.parse().unwrap(), name).num_vfs(n));
    }
    let mut sim = Sim::new(spec).unwrap();
    let tmp = tempfile::tempdir_in(sriov_sim::memory_dir()).unwrap();
    sim.export_static(tmp.path()).unwrap();
    let paths = HostPaths::new(tmp.path().join("sys"), tmp.path().join("dev"));
    (tmp, paths)
}

fn check(host: &Host) {
    assert!(host.warnings.is_empty(), "{:?}", host.warnings);
    let got: Vec<_> = host.pfs.iter().map(|p| p.pci_address.to_string()).collect();
    assert_eq!(got, PFS.map(|(a, _, _)| a.to_string()));
    let mut seen = HashSet::new();
    for (pf, (_, name, n)) in host.pfs.iter().zip(PFS) {
        assert_eq!(pf.vfs.len(), usize::from(n), "{name}");
        for (i, vf) in pf.vfs.iter().enumerate() {
            assert_eq!(vf.vf_index as usize, i, "{name}: VFs in index order");
            assert_eq!(vf.pf_pci_address, pf.pci_address);
            let index = u16::try_from(i).unwrap();
            assert_eq!(vf.netdev.as_deref(), Some(vf_netdev_name(name, index).as_str()));
            let link = vf.link.as_ref().unwrap();
            assert!(link.mac.is_some() && link.mtu.is_some() && link.ifindex.is_some(), "{vf:?}");
            assert!(seen.insert(vf.pci_address), "{} listed twice", vf.pci_address);
        }
    }
}

#[test]
fn every_vf_once_under_its_pf_in_order() {
    let (_tmp, paths) = host_tree();
    check(&discover(&paths, &DiscoverOptions::default()).unwrap());
}

#[test]
fn same_result_when_vf_addresses_come_from_links_only() {
    let (_tmp, paths) = host_tree();
    let expected = discover(&paths, &DiscoverOptions::default()).unwrap();
    for (addr, _, _) in PFS {
        std::fs::remove_file(paths.pci_device(addr.parse().unwrap()).join("sriov_offset")).unwrap();
    }
    let got = discover(&paths, &DiscoverOptions::default()).unwrap();
    check(&got);
    assert_eq!(serde_json::to_value(&got).unwrap(), serde_json::to_value(&expected).unwrap());
}

#[test]
fn pf_filter_by_name_reads_only_that_pf() {
    let (_tmp, paths) = host_tree();
    let opts = DiscoverOptions { pf: Some("ens2f0".into()), ..DiscoverOptions::default() };
    let host = discover(&paths, &opts).unwrap();
    assert_eq!(host.pfs.len(), 1);
    assert_eq!(host.pfs[0].vfs.len(), 130);
    assert!(host.pfs[0].vfs.iter().all(|v| v.pf_pci_address == host.pfs[0].pci_address));
}
