//! One VF, cheaply: its PF, VF index, driver and netdev without scanning the host.
//!
//! [`discover`](crate::discover()) reads every PF and VF; a CNI `ADD` needs one VF and must not pay
//! for the whole host. [`lookup_vf`] reads a handful of files:
//!
//! - `<vf>/physfn` gives the PF;
//! - the VF index comes from PCI routing-ID arithmetic (`vf_rid = pf_rid + offset + index *
//!   stride`, the SR-IOV capability's rule), with offset and stride taken from the `virtfn0` and
//!   `virtfn1` links, and is confirmed with one `readlink` of `<pf>/virtfn<index>`: at most
//!   three `readlink`s (one for VF 0, two for VF 1), no file reads (on a FUSE-served tree a file
//!   read costs several round trips, a cached `readlink` one). Only when the links disagree with
//!   the arithmetic are the `virtfn*` links scanned;
//! - `<vf>/driver` and `<vf>/net/` give the driver and the netdev name; the PF's netdev name is
//!   read only by callers that need it ([`first_netdev`] of [`VfLocation::pf`]).
//!
//! sysfs lists only the netdevs of the reader's network namespace, so a VF whose netdev has been
//! moved into a pod shows an empty `net/` here ([`VfLocation::netdev`] is `None`) although it is
//! bound to a kernel driver.

use std::path::PathBuf;

use crate::model::USERSPACE_DRIVERS;
use crate::paths::HostPaths;
use crate::pci::PciAddr;
use crate::sysfs::{self, SysfsError};

/// Where one VF sits and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfLocation {
    /// The VF's PCI address.
    pub vf: PciAddr,
    /// Its PF's PCI address.
    pub pf: PciAddr,
    /// The VF index N of the PF's `virtfnN` link (what netlink VF settings are keyed on).
    pub vf_index: u32,
    /// The bound driver, `None` when unbound.
    pub driver: Option<String>,
    /// The VF's netdev name in this network namespace, when it has one here.
    pub netdev: Option<String>,
}

impl VfLocation {
    /// Whether the bound driver hands the VF to userspace (vfio-pci, uio): no netdev by design.
    pub fn userspace_driver(&self) -> bool {
        self.driver.as_deref().is_some_and(|d| USERSPACE_DRIVERS.contains(&d))
    }
}

/// Why a VF could not be located.
#[derive(Debug, thiserror::Error)]
pub enum VfLookupError {
    /// No such PCI device.
    #[error("no PCI device {vf}: {} does not exist", path.display())]
    NoSuchDevice {
        /// The address asked for.
        vf: PciAddr,
        /// Its missing sysfs directory.
        path: PathBuf,
    },
    /// The device has no `physfn` link: it is not a VF.
    #[error("PCI device {vf} is not an SR-IOV VF: {} does not exist", path.display())]
    NotAVf {
        /// The device.
        vf: PciAddr,
        /// The missing `physfn` link.
        path: PathBuf,
    },
    /// A link or file holds something that is not what the kernel writes.
    #[error("{}: found {value:?}, expected {expected}", path.display())]
    Malformed {
        /// The file or link.
        path: PathBuf,
        /// What it held.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The PF has no `virtfnN` link pointing at the VF.
    #[error("VF {vf} is not listed by its PF {pf} (no virtfnN link points to it)")]
    NotListed {
        /// The VF.
        vf: PciAddr,
        /// The PF its `physfn` names.
        pf: PciAddr,
    },
    /// A sysfs read failed.
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
}

/// Locates one VF: PF, VF index, driver and netdev name (see the module docs for the cost).
pub fn lookup_vf(paths: &HostPaths, vf: PciAddr) -> Result<VfLocation, VfLookupError> {
    let dir = paths.pci_device(vf);
    let physfn = dir.join("physfn");
    let Some(pf_name) = sysfs::read_link_name(&physfn)? else {
        return Err(if sysfs::exists(&dir) {
            VfLookupError::NotAVf { vf, path: physfn }
        } else {
            VfLookupError::NoSuchDevice { vf, path: dir }
        });
    };
    let pf: PciAddr = pf_name.parse().map_err(|_| VfLookupError::Malformed {
        path: physfn.clone(),
        value: pf_name.clone(),
        expected: "a link to a PCI device",
    })?;
    let vf_index = vf_index(paths, pf, vf)?;
    Ok(VfLocation {
        vf,
        pf,
        vf_index,
        driver: sysfs::read_link_name(&dir.join("driver"))?,
        netdev: first_netdev(paths, vf)?,
    })
}

/// The first netdev name under `<dev>/net/` (sorted), as seen from this network namespace.
///
/// This is the cheap re-read a CNI `DEL` needs to find a VF netdev that came back to the host.
pub fn first_netdev(paths: &HostPaths, dev: PciAddr) -> Result<Option<String>, SysfsError> {
    let names = sysfs::list_dir(&paths.pci_device(dev).join("net"))?.unwrap_or_default();
    Ok(names.into_iter().min())
}

fn vf_index(paths: &HostPaths, pf: PciAddr, vf: PciAddr) -> Result<u32, VfLookupError> {
    let pf_dir = paths.pci_device(pf);
    let link = |i: u32| -> Result<Option<PciAddr>, VfLookupError> {
        Ok(sysfs::read_link_name(&pf_dir.join(format!("virtfn{i}")))?.and_then(|t| t.parse().ok()))
    };
    // Each link is read at most once: VF 0 and VF 1 are confirmed by the reads that give the
    // layout, any other index by one more readlink.
    let first = link(0)?;
    if first == Some(vf) {
        return Ok(0);
    }
    let second = link(1)?;
    if second == Some(vf) {
        return Ok(1);
    }
    if let Some(index) = computed_index(first, second, vf)
        && index > 1
        && link(index)? == Some(vf)
    {
        return Ok(index);
    }
    // Not a regular layout (or a hand-made tree): scan.
    for name in sysfs::list_dir(&pf_dir)?.unwrap_or_default() {
        let Some(index) = name.strip_prefix("virtfn").and_then(|i| i.parse::<u32>().ok()) else {
            continue;
        };
        if link(index)? == Some(vf) {
            return Ok(index);
        }
    }
    Err(VfLookupError::NotListed { vf, pf })
}

/// `(vf_rid - first_rid) / stride`, with the first VF and the stride read off `virtfn0` and
/// `virtfn1`, when the arithmetic is exact.
fn computed_index(first: Option<PciAddr>, second: Option<PciAddr>, vf: PciAddr) -> Option<u32> {
    let first = first?;
    if first.domain() != vf.domain() {
        return None;
    }
    let stride = second?.routing_id().checked_sub(first.routing_id()).filter(|s| *s > 0)?;
    let delta = vf.routing_id().checked_sub(first.routing_id())?;
    (delta % stride == 0).then_some(delta / stride)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::*;

    const PF: &str = "0000:3b:00.0";

    fn write(p: &Path, v: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("{v}\n")).unwrap();
    }

    /// A PF whose `virtfnN` links point at `vfs` (X710 function 0 puts VF i at devfn 16 + i).
    fn tree(vfs: &[(u32, &str)]) -> (tempfile::TempDir, HostPaths) {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let root = sys.join("devices/pci0000:3a/0000:3a:00.0");
        let devices = sys.join("bus/pci/devices");
        fs::create_dir_all(&devices).unwrap();
        fs::create_dir_all(sys.join("bus/pci/drivers/iavf")).unwrap();
        fs::create_dir_all(sys.join("bus/pci/drivers/vfio-pci")).unwrap();
        let pf = root.join(PF);
        write(&pf.join("sriov_totalvfs"), "64");
        write(&pf.join("sriov_numvfs"), &vfs.len().to_string());
        write(&pf.join("sriov_offset"), "16");
        write(&pf.join("sriov_stride"), "1");
        write(&pf.join("net/ens1f0/mtu"), "9000");
        symlink(format!("../../../devices/pci0000:3a/0000:3a:00.0/{PF}"), devices.join(PF))
            .unwrap();
        for (i, addr) in vfs {
            let d = root.join(addr);
            fs::create_dir_all(&d).unwrap();
            symlink(format!("../{PF}"), d.join("physfn")).unwrap();
            symlink(format!("../{addr}"), pf.join(format!("virtfn{i}"))).unwrap();
            symlink(format!("../../../devices/pci0000:3a/0000:3a:00.0/{addr}"), devices.join(addr))
                .unwrap();
        }
        (dir, HostPaths::new(sys, "/nonexistent-dev"))
    }

    fn addr(s: &str) -> PciAddr {
        s.parse().unwrap()
    }

    #[test]
    fn index_from_virtfn_links_driver_and_netdevs() {
        let (dir, paths) = tree(&[(0, "0000:3b:02.0"), (1, "0000:3b:02.1"), (9, "0000:3b:03.1")]);
        let root = dir.path().join("sys/devices/pci0000:3a/0000:3a:00.0");
        symlink("../../../../bus/pci/drivers/iavf", root.join("0000:3b:03.1/driver")).unwrap();
        write(&root.join("0000:3b:03.1/net/ens1f0v9/mtu"), "1500");
        let loc = lookup_vf(&paths, addr("0000:3b:03.1")).unwrap();
        assert_eq!(loc.vf_index, 9);
        assert_eq!(loc.pf, addr(PF));
        assert_eq!(first_netdev(&paths, loc.pf).unwrap().as_deref(), Some("ens1f0"));
        assert_eq!(loc.driver.as_deref(), Some("iavf"));
        assert_eq!(loc.netdev.as_deref(), Some("ens1f0v9"));
        assert!(!loc.userspace_driver());
        let one = lookup_vf(&paths, addr("0000:3b:02.1")).unwrap();
        assert_eq!((one.vf_index, one.driver, one.netdev), (1, None, None));
    }

    #[test]
    fn computed_index_follows_first_vf_and_stride() {
        let (a, b) = (Some(addr("0000:3b:02.0")), Some(addr("0000:3b:02.2")));
        assert_eq!(computed_index(a, b, addr("0000:3b:02.0")), Some(0));
        assert_eq!(computed_index(a, b, addr("0000:3b:03.0")), Some(4));
        assert_eq!(computed_index(a, b, addr("0000:3b:02.1")), None, "off-stride");
        assert_eq!(computed_index(a, None, addr("0000:3b:02.2")), None, "one VF: no stride");
        assert_eq!(computed_index(b, a, addr("0000:3b:03.0")), None, "negative stride");
        assert_eq!(computed_index(a, b, addr("0000:3a:1f.0")), None, "below the first VF");
    }

    #[test]
    fn scans_links_when_the_layout_is_irregular() {
        // virtfn1 is missing: no stride, found by scanning.
        let (_d, paths) = tree(&[(0, "0000:3b:02.0"), (5, "0000:3b:07.7")]);
        assert_eq!(lookup_vf(&paths, addr("0000:3b:07.7")).unwrap().vf_index, 5);
        // The arithmetic from virtfn0/1 says index 3, but virtfn3 points elsewhere.
        let (_d, paths) = tree(&[
            (0, "0000:3b:02.0"),
            (1, "0000:3b:02.1"),
            (3, "0000:3b:05.0"),
            (7, "0000:3b:02.3"),
        ]);
        assert_eq!(lookup_vf(&paths, addr("0000:3b:02.3")).unwrap().vf_index, 7);
    }

    #[test]
    fn userspace_driver_is_detected() {
        let (dir, paths) = tree(&[(2, "0000:3b:02.2")]);
        let vf = dir.path().join("sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.2");
        symlink("../../../../bus/pci/drivers/vfio-pci", vf.join("driver")).unwrap();
        let loc = lookup_vf(&paths, addr("0000:3b:02.2")).unwrap();
        assert!(loc.userspace_driver());
        assert_eq!(loc.netdev, None);
    }

    #[test]
    fn errors_name_the_device() {
        let (dir, paths) = tree(&[(0, "0000:3b:02.0")]);
        let e = lookup_vf(&paths, addr("0000:3b:09.0")).unwrap_err();
        assert!(matches!(e, VfLookupError::NoSuchDevice { .. }), "{e}");
        assert!(e.to_string().contains("0000:3b:09.0"), "{e}");
        let e = lookup_vf(&paths, addr(PF)).unwrap_err();
        assert!(matches!(e, VfLookupError::NotAVf { .. }), "{e}");
        assert!(e.to_string().contains("physfn"), "{e}");
        // A VF whose PF does not list it.
        fs::remove_file(
            dir.path().join("sys/devices/pci0000:3a/0000:3a:00.0").join(PF).join("virtfn0"),
        )
        .unwrap();
        let e = lookup_vf(&paths, addr("0000:3b:02.0")).unwrap_err();
        assert!(matches!(e, VfLookupError::NotListed { .. }), "{e}");
    }

    #[test]
    fn first_netdev_is_sorted_and_absent_dir_is_none() {
        let (dir, paths) = tree(&[(0, "0000:3b:02.0")]);
        assert_eq!(first_netdev(&paths, addr("0000:3b:02.0")).unwrap(), None);
        let vf = dir.path().join("sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0");
        write(&vf.join("net/zz/mtu"), "1500");
        write(&vf.join("net/aa/mtu"), "1500");
        assert_eq!(first_netdev(&paths, addr("0000:3b:02.0")).unwrap().as_deref(), Some("aa"));
    }
}
