//! Discovery on malformed trees: missing files, dangling links, garbage values.
//!
//! These trees are hand-built on purpose (the simulated host only builds well-formed ones).

#![allow(clippy::unwrap_used)] // test fixture code: a panic is the failure report

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sriov_host::{DiscoverError, DiscoverOptions, HostPaths, NetdevStatus, discover};

struct Tree {
    _dir: tempfile::TempDir,
    sys: PathBuf,
}

const PF: &str = "0000:01:00.0";
const VF0: &str = "0000:01:02.0";
const VF1: &str = "0000:01:02.1";

fn write(p: &Path, v: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, format!("{v}\n")).unwrap();
}

/// One PF with two VFs, well formed; tests then break one thing.
fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let root = sys.join("devices/pci0000:00/0000:00:01.0");
    fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
    fs::create_dir_all(sys.join("bus/pci/drivers/iavf")).unwrap();
    fs::create_dir_all(sys.join("bus/pci/drivers/i40e")).unwrap();
    for (addr, dev, drv) in
        [(PF, "0x1572", "i40e"), (VF0, "0x154c", "iavf"), (VF1, "0x154c", "iavf")]
    {
        let d = root.join(addr);
        write(&d.join("vendor"), "0x8086");
        write(&d.join("device"), dev);
        write(&d.join("class"), "0x020000");
        write(&d.join("numa_node"), "1");
        symlink(format!("../../../../bus/pci/drivers/{drv}"), d.join("driver")).unwrap();
        symlink(
            format!("../../../devices/pci0000:00/0000:00:01.0/{addr}"),
            sys.join("bus/pci/devices").join(addr),
        )
        .unwrap();
    }
    let pf = root.join(PF);
    write(&pf.join("sriov_totalvfs"), "64");
    write(&pf.join("sriov_numvfs"), "2");
    write(&pf.join("net/ens1f0/address"), "02:00:00:00:00:01");
    write(&pf.join("net/ens1f0/operstate"), "up");
    symlink(format!("../{VF0}"), pf.join("virtfn0")).unwrap();
    symlink(format!("../{VF1}"), pf.join("virtfn1")).unwrap();
    symlink(format!("../{PF}"), root.join(VF0).join("physfn")).unwrap();
    symlink(format!("../{PF}"), root.join(VF1).join("physfn")).unwrap();
    write(&root.join(VF0).join("net/ens1f0v0/mtu"), "1500");
    Tree { _dir: dir, sys }
}

impl Tree {
    fn paths(&self) -> HostPaths {
        HostPaths::new(&self.sys, self.sys.join("../dev"))
    }
    fn dev(&self, addr: &str) -> PathBuf {
        self.sys.join("devices/pci0000:00/0000:00:01.0").join(addr)
    }
}

#[test]
fn well_formed_baseline() {
    let t = tree();
    let host = discover(&t.paths(), &DiscoverOptions::default()).unwrap();
    assert_eq!(host.pfs.len(), 1);
    let pf = &host.pfs[0];
    assert_eq!(pf.pci_address.to_string(), PF);
    assert_eq!((pf.total_vfs, pf.num_vfs), (64, 2));
    assert_eq!(pf.netdev.as_deref(), Some("ens1f0"));
    assert_eq!(pf.vfs.len(), 2);
    assert_eq!(pf.vfs[0].netdev.as_deref(), Some("ens1f0v0"));
    assert_eq!(pf.vfs[0].link.as_ref().unwrap().mtu, Some(1500));
    // VF1 is on a netdev driver but shows no netdev here: it lives in another namespace.
    assert_eq!(pf.vfs[1].netdev, None);
    assert_eq!(pf.vfs[1].netdev_status, NetdevStatus::NotInNamespace);
    assert_eq!(pf.vfs[1].vf_index, 1);
    assert!(host.warnings.is_empty(), "{:?}", host.warnings);
}

#[test]
fn missing_optional_files_are_unknown() {
    let t = tree();
    fs::remove_file(t.dev(VF0).join("numa_node")).unwrap();
    fs::remove_file(t.dev(VF0).join("vendor")).unwrap();
    fs::remove_file(t.dev(VF0).join("driver")).unwrap();
    let host = discover(&t.paths(), &DiscoverOptions::default()).unwrap();
    let vf = &host.pfs[0].vfs[0];
    assert_eq!(vf.pci.numa_node, None);
    assert_eq!(vf.pci.vendor_id, None);
    assert_eq!(vf.pci.driver, None);
    assert!(host.warnings.is_empty(), "missing files are not problems: {:?}", host.warnings);
}

#[test]
fn garbage_in_optional_attribute_warns_with_path() {
    let t = tree();
    write(&t.dev(VF0).join("numa_node"), "banana");
    write(&t.dev(VF1).join("device"), "0xzzzz");
    let host = discover(&t.paths(), &DiscoverOptions::default()).unwrap();
    assert_eq!(host.pfs[0].vfs[0].pci.numa_node, None);
    assert_eq!(host.pfs[0].vfs[1].pci.device_id, None);
    let paths: Vec<_> = host.warnings.iter().map(|w| w.path.clone()).collect();
    assert!(paths.iter().any(|p| p.ends_with(format!("{VF0}/numa_node"))), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with(format!("{VF1}/device"))), "{paths:?}");
    assert!(host.warnings.iter().any(|w| w.message.contains("\"banana\"")));
}

#[test]
fn numa_minus_one_is_none_without_warning() {
    let t = tree();
    write(&t.dev(VF0).join("numa_node"), "-1");
    let host = discover(&t.paths(), &DiscoverOptions::default()).unwrap();
    assert_eq!(host.pfs[0].vfs[0].pci.numa_node, None);
    assert!(host.warnings.is_empty());
}

#[test]
fn garbage_numvfs_is_an_error_naming_the_file() {
    let t = tree();
    write(&t.dev(PF).join("sriov_numvfs"), "two");
    let err = discover(&t.paths(), &DiscoverOptions::default()).unwrap_err();
    assert!(matches!(err, DiscoverError::Malformed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{PF}/sriov_numvfs")) && msg.contains("\"two\""), "{msg}");
}

#[test]
fn dangling_virtfn_is_an_error_naming_the_link() {
    let t = tree();
    fs::remove_file(t.sys.join("bus/pci/devices").join(VF1)).unwrap();
    fs::remove_dir_all(t.dev(VF1)).unwrap();
    let err = discover(&t.paths(), &DiscoverOptions::default()).unwrap_err();
    assert!(err.to_string().contains(&format!("{PF}/virtfn1")), "{err}");
}

#[test]
fn virtfn_pointing_at_garbage_is_an_error() {
    let t = tree();
    fs::remove_file(t.dev(PF).join("virtfn1")).unwrap();
    symlink("../not-a-device", t.dev(PF).join("virtfn1")).unwrap();
    let err = discover(&t.paths(), &DiscoverOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("virtfn1") && msg.contains("not-a-device"), "{msg}");
}

#[test]
fn dangling_device_link_warns_and_is_skipped() {
    let t = tree();
    symlink(
        "../../../devices/pci0000:00/0000:00:01.0/0000:09:00.0",
        t.sys.join("bus/pci/devices/0000:09:00.0"),
    )
    .unwrap();
    fs::create_dir_all(t.sys.join("bus/pci/devices/junk")).unwrap();
    let host = discover(&t.paths(), &DiscoverOptions::default()).unwrap();
    assert_eq!(host.pfs.len(), 1);
    assert!(
        host.warnings
            .iter()
            .any(|w| w.path.ends_with("0000:09:00.0") && w.message.contains("dangling"))
    );
    assert!(host.warnings.iter().any(|w| w.path.ends_with("junk")));
}

#[test]
fn missing_bus_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        discover(&HostPaths::new(dir.path(), "/dev"), &DiscoverOptions::default()).unwrap_err();
    assert!(err.to_string().contains("bus/pci/devices does not exist"), "{err}");
}

#[test]
fn pf_filter_by_name_and_address() {
    let t = tree();
    let by_name = discover(
        &t.paths(),
        &DiscoverOptions { pf: Some("ens1f0".into()), names: None, ..Default::default() },
    )
    .unwrap();
    assert_eq!(by_name.pfs.len(), 1);
    let by_addr = discover(
        &t.paths(),
        &DiscoverOptions { pf: Some(PF.into()), names: None, ..Default::default() },
    )
    .unwrap();
    assert_eq!(by_addr.pfs.len(), 1);
    let err = discover(
        &t.paths(),
        &DiscoverOptions { pf: Some("ens9".into()), names: None, ..Default::default() },
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"ens9\""));
}

#[test]
fn unreadable_attribute_is_unknown_with_warning() {
    // A directory where a file is expected makes read(2) fail with EISDIR.
    let t = tree();
    fs::create_dir_all(t.dev(VF0).join("subsystem_vendor")).unwrap();
    let host = discover(&t.paths(), &DiscoverOptions::default()).unwrap();
    assert_eq!(host.pfs[0].vfs[0].pci.subsystem_vendor_id, None);
    assert!(
        host.warnings
            .iter()
            .any(|w| w.path.ends_with("subsystem_vendor") && w.message.contains("unreadable"))
    );
}
