//! Discovery: one pass over sysfs producing a [`Host`] snapshot.
//!
//! Every PF (a PCI function with `sriov_totalvfs`) is read once, and its VFs are found through its
//! `virtfnN` links — one readlink per VF, so the VF→index map is built in O(n) per PF rather than by
//! resolving every `virtfn*` link for every VF (the Go device plugin's O(n²)).
//!
//! Optional attributes that are missing or unreadable become `None` (unknown); garbage in them adds
//! a [`Warning`]. Garbage in what SR-IOV itself depends on (`sriov_totalvfs`, `sriov_numvfs`, a
//! `virtfnN` link) is an error naming the file.

use std::path::{Path, PathBuf};

use crate::ids::PciIds;
use crate::model::{
    Host, LinkType, Netdev, NetdevStatus, Pf, PciInfo, SCHEMA_VERSION, Vf, Warning,
};
use crate::paths::HostPaths;
use crate::pci::{PciAddr, PciId};
use crate::sysfs::{self, SysfsError};

/// What went wrong while discovering.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The PCI device directory is missing: not a sysfs root.
    #[error("{path} does not exist: is the sysfs root right (--sysfs-root / SRIOV_SYSFS_ROOT)?")]
    NoPciBus {
        /// The missing directory.
        path: PathBuf,
    },
    /// A sysfs file could not be read.
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    /// A file SR-IOV depends on holds something unexpected.
    #[error("{path}: found {value:?}, expected {expected}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it held.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `--pf` named nothing.
    #[error("no SR-IOV PF {key:?} (by PCI address or netdev name) under {sysfs}")]
    NoSuchPf {
        /// The PCI address or name asked for.
        key: String,
        /// The sysfs root searched.
        sysfs: PathBuf,
    },
}

/// Discovery options.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Only this PF (PCI address or netdev name).
    pub pf: Option<String>,
    /// Resolve vendor/device names with this database (names stay `None` otherwise).
    pub names: Option<PciIds>,
}

/// Reads the host's SR-IOV devices.
pub fn discover(paths: &HostPaths, opts: &DiscoverOptions) -> Result<Host, DiscoverError> {
    let devices_dir = paths.pci_devices();
    let Some(entries) = sysfs::list_dir(&devices_dir)? else {
        return Err(DiscoverError::NoPciBus { path: devices_dir });
    };
    let mut warnings = Vec::new();
    let mut pf_addrs = Vec::new();
    for name in entries {
        let Ok(addr) = name.parse::<PciAddr>() else {
            warnings.push(Warning {
                path: devices_dir.join(&name),
                message: "entry is not a PCI address; ignored".into(),
            });
            continue;
        };
        let dir = devices_dir.join(&name);
        if dir.join("sriov_totalvfs").exists() {
            pf_addrs.push(addr);
        } else if !dir.exists() {
            warnings.push(Warning { path: dir, message: "dangling device link; ignored".into() });
        }
    }
    pf_addrs.sort();

    let wanted: Option<PciAddr> = opts.pf.as_deref().and_then(|k| k.parse().ok());
    let mut pfs = Vec::with_capacity(pf_addrs.len());
    for addr in pf_addrs {
        if wanted.is_some_and(|w| w != addr) {
            continue;
        }
        let mut r = Reader { warnings: &mut warnings };
        let pf = r.pf(paths, addr)?;
        if let Some(key) = opts.pf.as_deref()
            && wanted.is_none()
            && pf.netdev.as_deref() != Some(key)
        {
            continue;
        }
        pfs.push(pf);
    }
    if let Some(key) = &opts.pf
        && pfs.is_empty()
    {
        return Err(DiscoverError::NoSuchPf { key: key.clone(), sysfs: paths.sysfs().to_owned() });
    }
    let mut host =
        Host { schema_version: SCHEMA_VERSION, sysfs_root: paths.sysfs().to_owned(), pfs, warnings };
    if let Some(ids) = &opts.names {
        fill_names(&mut host, ids);
    }
    Ok(host)
}

fn fill_names(host: &mut Host, ids: &PciIds) {
    let mut wanted = Vec::new();
    for pf in &host.pfs {
        wanted.extend(pf.pci.vendor_id.zip(pf.pci.device_id));
        for vf in &pf.vfs {
            wanted.extend(vf.pci.vendor_id.zip(vf.pci.device_id));
        }
    }
    wanted.sort();
    wanted.dedup();
    let names = ids.lookup(wanted);
    let fill = |p: &mut PciInfo| {
        if let Some(v) = p.vendor_id {
            p.vendor_name = names.vendor(v).map(str::to_owned);
            if let Some(d) = p.device_id {
                p.device_name = names.device(v, d).map(str::to_owned);
            }
        }
    };
    for pf in &mut host.pfs {
        fill(&mut pf.pci);
        for vf in &mut pf.vfs {
            fill(&mut vf.pci);
        }
    }
}

struct Reader<'w> {
    warnings: &'w mut Vec<Warning>,
}

impl Reader<'_> {
    fn warn(&mut self, path: &Path, message: impl Into<String>) {
        self.warnings.push(Warning { path: path.to_owned(), message: message.into() });
    }

    /// An optional attribute: missing or unreadable gives `None` (unreadable also warns).
    fn opt(&mut self, path: &Path) -> Option<String> {
        match sysfs::read_attr(path) {
            Ok(v) => v,
            Err(e) => {
                self.warn(path, format!("unreadable: {}", e.source));
                None
            }
        }
    }

    /// An optional parsed attribute: garbage gives `None` and a warning.
    fn parsed<T: std::str::FromStr>(&mut self, path: &Path, expected: &str) -> Option<T> {
        let raw = self.opt(path)?;
        match raw.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.warn(path, format!("found {raw:?}, expected {expected}"));
                None
            }
        }
    }

    fn link_name(&mut self, path: &Path) -> Option<String> {
        match sysfs::read_link_name(path) {
            Ok(v) => v,
            Err(e) => {
                self.warn(path, format!("unreadable link: {}", e.source));
                None
            }
        }
    }

    fn pci_info(&mut self, dir: &Path) -> PciInfo {
        let id = |r: &mut Self, f: &str| r.parsed::<PciId>(&dir.join(f), "a hex PCI ID");
        let vendor_id = id(self, "vendor");
        let device_id = id(self, "device");
        let subsystem_vendor_id = id(self, "subsystem_vendor");
        let subsystem_device_id = id(self, "subsystem_device");
        let class = self.opt(&dir.join("class"));
        let driver = self.link_name(&dir.join("driver"));
        let driver_override =
            self.opt(&dir.join("driver_override")).filter(|s| !s.is_empty() && s != "(null)");
        let numa_node = match self.parsed::<i64>(&dir.join("numa_node"), "an integer") {
            Some(n) if n >= 0 => u32::try_from(n).ok(),
            _ => None,
        };
        let iommu_group = self.link_name(&dir.join("iommu_group")).and_then(|g| {
            let parsed = g.parse::<u32>().ok();
            if parsed.is_none() {
                self.warn(&dir.join("iommu_group"), format!("group {g:?} is not a number"));
            }
            parsed
        });
        let acpi_index = self.parsed::<u32>(&dir.join("acpi_index"), "an integer");
        let rdma_devices = match sysfs::list_dir(&dir.join("infiniband")) {
            Ok(Some(mut v)) => {
                v.sort();
                v
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                self.warn(&dir.join("infiniband"), format!("unreadable: {}", e.source));
                Vec::new()
            }
        };
        PciInfo {
            vendor_id,
            device_id,
            vendor_name: None,
            device_name: None,
            class,
            subsystem_vendor_id,
            subsystem_device_id,
            driver,
            driver_override,
            numa_node,
            iommu_group,
            acpi_index,
            rdma_devices,
        }
    }

    fn netdev(&mut self, dir: &Path, pci: &PciInfo) -> (Option<Netdev>, NetdevStatus) {
        let net = dir.join("net");
        let mut names = match sysfs::list_dir(&net) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                self.warn(&net, format!("unreadable: {}", e.source));
                Vec::new()
            }
        };
        names.sort();
        let Some(name) = names.into_iter().next() else {
            let status = if pci.driver.is_none() {
                NetdevStatus::NoDriver
            } else if pci.userspace_driver() {
                NetdevStatus::Userspace
            } else {
                NetdevStatus::NotInNamespace
            };
            return (None, status);
        };
        let d = net.join(&name);
        let mac = self.opt(&d.join("address"));
        let mtu = self.parsed(&d.join("mtu"), "an integer");
        let oper_state = self.opt(&d.join("operstate"));
        // The kernel answers EINVAL for carrier and speed while the link is down: that is
        // "unknown", not a problem worth a warning.
        let carrier = sysfs::read_attr(&d.join("carrier")).ok().flatten().and_then(|c| match c.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        });
        let speed_mbps = sysfs::read_attr(&d.join("speed"))
            .ok()
            .flatten()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| u32::try_from(s).ok());
        let link_type = self.parsed::<u32>(&d.join("type"), "an integer").map(LinkType::from_arphrd);
        let ifindex = self.parsed(&d.join("ifindex"), "an integer");
        (
            Some(Netdev { name, mac, mtu, oper_state, carrier, speed_mbps, link_type, ifindex }),
            NetdevStatus::Present,
        )
    }

    fn required_u32(&mut self, path: &Path) -> Result<u32, DiscoverError> {
        let raw = sysfs::read_attr(path)?.ok_or_else(|| DiscoverError::Malformed {
            path: path.to_owned(),
            value: String::new(),
            expected: "the file to exist on an SR-IOV PF",
        })?;
        raw.parse().map_err(|_| DiscoverError::Malformed {
            path: path.to_owned(),
            value: raw,
            expected: "a non-negative integer",
        })
    }

    fn pf(&mut self, paths: &HostPaths, addr: PciAddr) -> Result<Pf, DiscoverError> {
        let dir = paths.pci_device(addr);
        let pci = self.pci_info(&dir);
        let (link, netdev_status) = self.netdev(&dir, &pci);
        let total_vfs = self.required_u32(&dir.join("sriov_totalvfs"))?;
        let num_vfs = self.required_u32(&dir.join("sriov_numvfs"))?;
        let vf_device_id = self.parsed(&dir.join("sriov_vf_device"), "a hex PCI ID");
        let drivers_autoprobe =
            self.parsed::<u8>(&dir.join("sriov_drivers_autoprobe"), "0 or 1").map(|v| v != 0);

        let mut vf_links = Vec::new();
        for name in sysfs::list_dir(&dir)?.unwrap_or_default() {
            let Some(index) = name.strip_prefix("virtfn") else { continue };
            let link = dir.join(&name);
            let index: u32 = index.parse().map_err(|_| DiscoverError::Malformed {
                path: link.clone(),
                value: name.clone(),
                expected: "virtfn<N>",
            })?;
            let target = sysfs::read_link_name(&link)?.unwrap_or_default();
            let vf_addr: PciAddr = target.parse().map_err(|_| DiscoverError::Malformed {
                path: link.clone(),
                value: target.clone(),
                expected: "a link to a PCI device",
            })?;
            vf_links.push((index, vf_addr, link));
        }
        vf_links.sort_by_key(|(i, _, _)| *i);
        let mut vfs = Vec::with_capacity(vf_links.len());
        for (vf_index, vf_addr, link) in vf_links {
            let vf_dir = paths.pci_device(vf_addr);
            if !vf_dir.exists() {
                return Err(DiscoverError::Malformed {
                    path: link,
                    value: vf_addr.to_string(),
                    expected: "a link to an existing PCI device",
                });
            }
            vfs.push(self.vf(paths, &vf_dir, vf_addr, vf_index, addr));
        }
        Ok(Pf {
            pci_address: addr,
            netdev: link.as_ref().map(|l| l.name.clone()),
            link,
            netdev_status,
            pci,
            total_vfs,
            num_vfs,
            vf_device_id,
            drivers_autoprobe,
            vfs,
        })
    }

    fn vf(&mut self, paths: &HostPaths, dir: &Path, addr: PciAddr, vf_index: u32, pf: PciAddr) -> Vf {
        let pci = self.pci_info(dir);
        let (link, netdev_status) = self.netdev(dir, &pci);
        let vfio_device = (pci.driver.as_deref() == Some("vfio-pci"))
            .then(|| pci.iommu_group.map(|g| vfio_node(paths, dir, g)))
            .flatten();
        Vf {
            pci_address: addr,
            vf_index,
            pf_pci_address: pf,
            userspace_driver: pci.userspace_driver(),
            pci,
            vfio_device,
            netdev: link.as_ref().map(|l| l.name.clone()),
            link,
            netdev_status,
        }
    }
}

/// The VFIO group node: `/dev/vfio/<group>`, or `/dev/vfio/noiommu-<group>` when the group is a
/// no-IOMMU one (its `name` file says `vfio-noiommu`).
fn vfio_node(paths: &HostPaths, dev_dir: &Path, group: u32) -> PathBuf {
    let noiommu = sysfs::read_attr(&dev_dir.join("iommu_group/name"))
        .ok()
        .flatten()
        .is_some_and(|n| n == "vfio-noiommu");
    if noiommu {
        paths.vfio_node(&format!("noiommu-{group}"))
    } else {
        paths.vfio_node(&group.to_string())
    }
}
