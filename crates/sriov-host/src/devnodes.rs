//! Device nodes a function hands to a container, found through sysfs: RDMA character devices,
//! `/dev/uioN`, and the vhost-net and tun nodes.
//!
//! sysfs names the nodes; the returned paths are under the [`HostPaths`] device root, so the same
//! code serves the real `/dev` and a test tree. Callers that need the path as seen inside a
//! container use [`container_path`].

use std::path::{Path, PathBuf};

use crate::paths::HostPaths;
use crate::pci::PciAddr;
use crate::sysfs::{self, SysfsError};

/// The RDMA character devices of one PCI function (what `rdmamap` calls its char devices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdmaNodes {
    /// `<dev>/infiniband/uverbsN` (verbs), from the function's `infiniband_verbs/uverbsN`.
    pub uverbs: Option<PathBuf>,
    /// `<dev>/infiniband/umadN` (management datagrams), from `infiniband_mad/umadN`.
    pub umad: Option<PathBuf>,
    /// `<dev>/infiniband/issmN` (subnet manager), from `infiniband_mad/issmN`.
    pub issm: Option<PathBuf>,
    /// `<dev>/infiniband/rdma_cm`, the connection manager shared by all RDMA devices, when the
    /// node exists (the `rdma_ucm` module is loaded).
    pub rdma_cm: Option<PathBuf>,
}

impl RdmaNodes {
    /// Every node found, in the order uverbs, umad, issm, rdma_cm.
    pub fn all(&self) -> impl Iterator<Item = &Path> {
        [&self.uverbs, &self.umad, &self.issm, &self.rdma_cm]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// Whether no node was found.
    pub fn is_empty(&self) -> bool {
        self.all().next().is_none()
    }
}

/// Finds the RDMA character devices of a PCI function.
///
/// The kernel parents the `uverbsN`, `umadN` and `issmN` class devices on the PCI function of their
/// RDMA device, so they appear as `<pci dev>/infiniband_verbs/uverbsN` and
/// `<pci dev>/infiniband_mad/{umadN,issmN}`. A function without RDMA gives an empty
/// [`RdmaNodes`] (except `rdma_cm` when that node exists).
pub fn rdma_nodes(paths: &HostPaths, addr: PciAddr) -> Result<RdmaNodes, SysfsError> {
    let dir = paths.pci_device(addr);
    let node = |name: &str| paths.dev().join("infiniband").join(name);
    let first = |names: &[String], prefix: &str| {
        let mut matching: Vec<&String> = names
            .iter()
            .filter(|n| {
                n.strip_prefix(prefix)
                    .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        matching.sort();
        matching.first().map(|n| node(n))
    };
    let verbs = sysfs::list_dir(&dir.join("infiniband_verbs"))?.unwrap_or_default();
    let mad = sysfs::list_dir(&dir.join("infiniband_mad"))?.unwrap_or_default();
    let rdma_cm = node("rdma_cm");
    Ok(RdmaNodes {
        uverbs: first(&verbs, "uverbs"),
        umad: first(&mad, "umad"),
        issm: first(&mad, "issm"),
        rdma_cm: sysfs::exists(&rdma_cm).then_some(rdma_cm),
    })
}

/// The `/dev/uioN` node of a function bound to a uio driver (`uio_pci_generic`, `igb_uio`), from
/// its `uio/uioN` directory; `None` when it has none.
pub fn uio_node(paths: &HostPaths, addr: PciAddr) -> Result<Option<PathBuf>, SysfsError> {
    let mut names = sysfs::list_dir(&paths.pci_device(addr).join("uio"))?.unwrap_or_default();
    names.retain(|n| {
        n.strip_prefix("uio")
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
    });
    names.sort();
    Ok(names.first().map(|n| paths.dev().join(n)))
}

/// The nodes a vhost-net user needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostNodes {
    /// `<dev>/vhost-net`.
    pub vhost_net: PathBuf,
    /// `<dev>/net/tun`.
    pub tun: PathBuf,
}

/// `<dev>/vhost-net` and `<dev>/net/tun`, when both exist.
pub fn vhost_nodes(paths: &HostPaths) -> Option<VhostNodes> {
    let vhost_net = paths.dev().join("vhost-net");
    let tun = paths.dev().join("net/tun");
    (sysfs::exists(&vhost_net) && sysfs::exists(&tun)).then_some(VhostNodes { vhost_net, tun })
}

/// The VFIO container node, `<dev>/vfio/vfio`.
pub fn vfio_container_node(paths: &HostPaths) -> PathBuf {
    paths.vfio_node("vfio")
}

/// Where a node under the device root appears inside a container: the same path relative to
/// `/dev` (`<dev root>/vfio/12` gives `/dev/vfio/12`). A path outside the device root is returned
/// unchanged.
pub fn container_path(paths: &HostPaths, host: &Path) -> PathBuf {
    match host.strip_prefix(paths.dev()) {
        Ok(rel) => Path::new("/dev").join(rel),
        Err(_) => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn tree() -> (tempfile::TempDir, HostPaths, PciAddr) {
        let t = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(t.path().join("sys"), t.path().join("dev"));
        let addr: PciAddr = "0000:d8:00.2".parse().unwrap();
        fs::create_dir_all(paths.pci_device(addr)).unwrap();
        fs::create_dir_all(paths.dev()).unwrap();
        (t, paths, addr)
    }

    #[test]
    fn rdma_nodes_from_verbs_and_mad_dirs() {
        let (_t, paths, addr) = tree();
        let dir = paths.pci_device(addr);
        fs::create_dir_all(dir.join("infiniband_verbs/uverbs3")).unwrap();
        fs::create_dir_all(dir.join("infiniband_mad/umad3")).unwrap();
        fs::create_dir_all(dir.join("infiniband_mad/issm3")).unwrap();
        fs::create_dir_all(dir.join("infiniband_mad/garbage")).unwrap();
        let n = rdma_nodes(&paths, addr).unwrap();
        let ib = paths.dev().join("infiniband");
        assert_eq!(n.uverbs, Some(ib.join("uverbs3")));
        assert_eq!(n.umad, Some(ib.join("umad3")));
        assert_eq!(n.issm, Some(ib.join("issm3")));
        assert_eq!(n.rdma_cm, None, "no rdma_cm node in the dev tree");
        fs::create_dir_all(&ib).unwrap();
        fs::write(ib.join("rdma_cm"), "").unwrap();
        let n = rdma_nodes(&paths, addr).unwrap();
        assert_eq!(n.rdma_cm, Some(ib.join("rdma_cm")));
        assert_eq!(n.all().count(), 4);
    }

    #[test]
    fn no_rdma_gives_empty() {
        let (_t, paths, addr) = tree();
        let n = rdma_nodes(&paths, addr).unwrap();
        assert!(n.is_empty());
    }

    #[test]
    fn uio_and_vhost_and_container_paths() {
        let (_t, paths, addr) = tree();
        assert_eq!(uio_node(&paths, addr).unwrap(), None);
        fs::create_dir_all(paths.pci_device(addr).join("uio/uio7")).unwrap();
        assert_eq!(uio_node(&paths, addr).unwrap(), Some(paths.dev().join("uio7")));

        assert_eq!(vhost_nodes(&paths), None);
        fs::write(paths.dev().join("vhost-net"), "").unwrap();
        assert_eq!(vhost_nodes(&paths), None, "tun missing");
        fs::create_dir_all(paths.dev().join("net")).unwrap();
        fs::write(paths.dev().join("net/tun"), "").unwrap();
        let v = vhost_nodes(&paths).unwrap();
        assert_eq!(container_path(&paths, &v.tun), Path::new("/dev/net/tun"));
        assert_eq!(
            container_path(&paths, &vfio_container_node(&paths)),
            Path::new("/dev/vfio/vfio")
        );
        assert_eq!(container_path(&paths, Path::new("/elsewhere/x")), Path::new("/elsewhere/x"));
    }
}
