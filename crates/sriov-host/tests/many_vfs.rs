//! Discovery of hosts big enough to be read on several threads: every VF exactly once, under its
//! PF, in index order, with its own facts; the same whether VF addresses come from the kernel's
//! offset/stride rule or from the `virtfnN` links alone, and whether netdev and RDMA device names
//! come from the `class/` directories or from each device's own directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;

use sriov_host::{DiscoverOptions, Host, HostPaths, discover};
use sriov_sim::{NicModel, PfSpec, Sim, SimSpec, vf_netdev_name};

const PFS: [(&str, &str, u16); 4] = [
    ("0000:17:00.0", "ens1f0", 100),
    ("0000:17:00.1", "ens1f1", 7),
    ("0000:5e:00.0", "ens3f0np0", 16),
    ("0000:af:00.0", "ens2f0", 130),
];

fn host_tree() -> (tempfile::TempDir, HostPaths) {
    let mut spec = SimSpec::empty();
    for (addr, name, n) in PFS {
        let model =
            if name.ends_with("np0") { NicModel::MellanoxConnectX5 } else { NicModel::IntelE810 };
        spec = spec.pf(PfSpec::new(model, addr.parse().unwrap(), name).num_vfs(n));
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
            // The ConnectX-5 functions (PF and VFs) each have an RDMA device; the E810s none.
            assert_eq!(vf.pci.rdma_devices.len(), usize::from(name.ends_with("np0")), "{vf:?}");
            assert!(seen.insert(vf.pci_address), "{} listed twice", vf.pci_address);
        }
    }
}

/// A full discovery of the tree.
fn scan(paths: &HostPaths) -> Host {
    discover(paths, &DiscoverOptions::default()).unwrap()
}

/// `got` reports exactly what `expected` does.
fn assert_same_json(got: &Host, expected: &Host) {
    assert_eq!(serde_json::to_value(got).unwrap(), serde_json::to_value(expected).unwrap());
}

/// `got` passes [`check`] and reports exactly what `expected` does.
fn assert_same(got: &Host, expected: &Host) {
    check(got);
    assert_same_json(got, expected);
}

#[test]
fn every_vf_once_under_its_pf_in_order() {
    let (_tmp, paths) = host_tree();
    check(&scan(&paths));
}

#[test]
fn same_result_when_vf_addresses_come_from_links_only() {
    let (_tmp, paths) = host_tree();
    let expected = scan(&paths);
    for (addr, _, _) in PFS {
        std::fs::remove_file(paths.pci_device(addr.parse().unwrap()).join("sriov_offset")).unwrap();
    }
    assert_same(&scan(&paths), &expected);
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

/// Netdev and RDMA device names come from `class/net` and `class/infiniband` on a big host; without
/// them (a tree that lacks `class/net`, an unreadable `class/infiniband`) each device's own `net/`
/// and `infiniband/` are listed, with the same result.
#[test]
fn same_result_without_the_class_directories() {
    let (_tmp, paths) = host_tree();
    let expected = scan(&paths);
    check(&expected);
    let rdma: Vec<_> = expected.pfs[2].vfs.iter().map(|v| v.pci.rdma_devices.clone()).collect();
    assert!(rdma.iter().all(|names| names.len() == 1 && names[0].starts_with("mlx5_")), "{rdma:?}");
    std::fs::remove_dir_all(paths.sysfs().join("class/net")).unwrap();
    let ib = paths.sysfs().join("class/infiniband");
    std::fs::remove_dir_all(&ib).unwrap();
    std::fs::write(&ib, "not a directory").unwrap();
    assert_same(&scan(&paths), &expected);
}

/// A VF whose netdev was moved into a pod before the scan is listed with its netdev "not in this
/// namespace", also when names come from `class/net`.
#[test]
fn vf_netdev_in_another_namespace_on_a_big_host() {
    let (_tmp, paths) = host_tree();
    let vf = |host: &Host| host.pfs[3].vfs[5].clone();
    let before = vf(&scan(&paths));
    let name = before.netdev.clone().unwrap();
    // What the kernel shows once the netdev moved: gone from `class/net` and from the device.
    std::fs::remove_file(paths.sysfs().join("class/net").join(&name)).unwrap();
    let dev = paths.pci_device(before.pci_address);
    std::fs::remove_dir_all(dev.join("net").join(&name)).unwrap();
    let host = scan(&paths);
    assert!(host.warnings.is_empty(), "{:?}", host.warnings);
    let after = vf(&host);
    assert_eq!(after.netdev, None);
    assert_eq!(after.netdev_status, sriov_host::NetdevStatus::NotInNamespace);
    assert_eq!(host.vfs().count(), PFS.iter().map(|p| usize::from(p.2)).sum::<usize>());
    // A netdev still named in `class/net` whose files vanished mid-scan reads the same.
    let (_tmp2, paths2) = host_tree();
    let dev2 = paths2.pci_device(before.pci_address);
    std::fs::remove_dir_all(dev2.join("net").join(&name)).unwrap();
    let after2 = vf(&scan(&paths2));
    assert_eq!(after2.netdev_status, sriov_host::NetdevStatus::NotInNamespace);
}

/// Each VF is named by its own `uevent` (PCI_SLOT_NAME), not by the address the offset/stride rule
/// computes; without that key, by its `virtfnN` link. A PF whose `sriov_offset` is wrong (here:
/// one too high) still gets its own VFs, with the same result.
#[test]
fn vf_addresses_come_from_the_devices_not_the_rule() {
    let (_tmp, paths) = host_tree();
    let expected = scan(&paths);
    let pf = paths.pci_device(PFS[3].0.parse().unwrap());
    let offset: u32 =
        std::fs::read_to_string(pf.join("sriov_offset")).unwrap().trim().parse().unwrap();
    std::fs::write(pf.join("sriov_offset"), format!("{}\n", offset + 1)).unwrap();
    assert_same(&scan(&paths), &expected);
    // Now without PCI_SLOT_NAME in any VF's uevent: the links name them.
    for (_, vf) in expected.vfs() {
        let uevent = paths.pci_device(vf.pci_address).join("uevent");
        let text = std::fs::read_to_string(&uevent).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("PCI_SLOT_NAME="))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&uevent, kept).unwrap();
    }
    assert_same(&scan(&paths), &expected);
}

/// `VfDetail::Summary` and `VfDetail::Selection` read a subset: what they report equals the full
/// read with the facts they skip left unknown, and PFs are always read in full.
#[test]
fn lighter_vf_details_are_the_full_read_minus_what_they_skip() {
    use sriov_host::VfDetail;
    let (_tmp, paths) = host_tree();
    // Some VF netdevs up (with a speed), so the "up implies carrier" shortcut is covered too.
    for (_, name, _) in PFS {
        for i in [0u16, 3] {
            let dir = paths.sysfs().join("class/net").join(vf_netdev_name(name, i));
            std::fs::write(dir.join("operstate"), "up\n").unwrap();
            std::fs::write(dir.join("carrier"), "1\n").unwrap();
            std::fs::write(dir.join("speed"), "25000\n").unwrap();
        }
    }
    let read = |vf_detail| {
        discover(&paths, &DiscoverOptions { vf_detail, ..DiscoverOptions::default() }).unwrap()
    };
    let full = read(VfDetail::Full);
    check(&full);
    assert!(full.vfs().any(|(_, v)| v.link.as_ref().unwrap().speed_mbps == Some(25000)));

    let mut expected = full.clone();
    for pf in &mut expected.pfs {
        for vf in &mut pf.vfs {
            vf.pci.driver_override = None;
            let link = vf.link.as_mut().unwrap();
            link.mtu = None;
            link.link_type = None;
            link.ifindex = None;
            if link.oper_state.as_deref() != Some("up") {
                link.carrier = None;
            }
        }
    }
    let summary = read(VfDetail::Summary);
    assert_same_json(&summary, &expected);

    let mut expected = full.clone();
    for pf in &mut expected.pfs {
        for vf in &mut pf.vfs {
            vf.pci.driver_override = None;
            let link = vf.link.as_mut().unwrap();
            *link = sriov_host::Netdev::named(link.name.clone(), link.link_type);
        }
    }
    let selection = read(VfDetail::Selection);
    assert_same_json(&selection, &expected);
}
