//! The host's SR-IOV state as plain data: one snapshot per discovery.
//!
//! These types are also the stable JSON/YAML schema of `sriov-agent inventory -o json|yaml`
//! (`schemaVersion` 1, camelCase keys). `null` means "unknown or not applicable"; adding fields is
//! a compatible change, renaming or removing one needs a new schema version.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::pci::{PciAddr, PciId};

/// Version of the serialized [`Host`] schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Drivers that hand a device to userspace (DPDK, VMs) instead of creating a netdev.
pub const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// A snapshot of the host's SR-IOV devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The sysfs root this snapshot was read from.
    pub sysfs_root: PathBuf,
    /// Physical functions, sorted by PCI address.
    pub pfs: Vec<Pf>,
    /// Problems that did not stop discovery (unreadable or garbage optional attributes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

impl Host {
    /// Finds a PF by PCI address or netdev name.
    pub fn find_pf(&self, key: &str) -> Option<&Pf> {
        let addr: Option<PciAddr> = key.parse().ok();
        self.pfs.iter().find(|pf| Some(pf.pci_address) == addr || pf.netdev.as_deref() == Some(key))
    }

    /// Finds a VF (and its PF) by PCI address.
    pub fn find_vf(&self, addr: PciAddr) -> Option<(&Pf, &Vf)> {
        self.pfs
            .iter()
            .find_map(|pf| pf.vfs.iter().find(|vf| vf.pci_address == addr).map(|vf| (pf, vf)))
    }

    /// Iterates over every VF with its PF.
    pub fn vfs(&self) -> impl Iterator<Item = (&Pf, &Vf)> {
        self.pfs.iter().flat_map(|pf| pf.vfs.iter().map(move |vf| (pf, vf)))
    }
}

/// A discovery problem that left a value unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The file concerned.
    pub path: PathBuf,
    /// What was wrong.
    pub message: String,
}

/// Fields common to PFs and VFs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PciInfo {
    /// Vendor ID (`8086`).
    pub vendor_id: Option<PciId>,
    /// Device ID (`154c`).
    pub device_id: Option<PciId>,
    /// Vendor name from the PCI ID database.
    pub vendor_name: Option<String>,
    /// Device name from the PCI ID database.
    pub device_name: Option<String>,
    /// Class code as the kernel shows it (`0x020000`).
    pub class: Option<String>,
    /// Subsystem vendor ID.
    pub subsystem_vendor_id: Option<PciId>,
    /// Subsystem device ID.
    pub subsystem_device_id: Option<PciId>,
    /// Bound driver, `None` when unbound.
    pub driver: Option<String>,
    /// `driver_override`, `None` when unset.
    pub driver_override: Option<String>,
    /// NUMA node, `None` when the kernel says -1 or it is unknown.
    pub numa_node: Option<u32>,
    /// IOMMU group number.
    pub iommu_group: Option<u32>,
    /// ACPI index (firmware slot naming), when present.
    pub acpi_index: Option<u32>,
    /// RDMA (infiniband verbs) devices on this function, e.g. `mlx5_2`.
    #[serde(default)]
    pub rdma_devices: Vec<String>,
}

impl PciInfo {
    /// Whether the bound driver hands the device to userspace (vfio-pci, uio).
    pub fn userspace_driver(&self) -> bool {
        self.driver.as_deref().is_some_and(|d| USERSPACE_DRIVERS.contains(&d))
    }
}

/// A network interface as seen from the reader's network namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Netdev {
    /// Interface name.
    pub name: String,
    /// MAC address (`address`).
    pub mac: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// `operstate` (`up`, `down`, `lowerlayerdown`, ...).
    pub oper_state: Option<String>,
    /// Carrier, `None` when unreadable (the kernel refuses it while the link is admin down).
    pub carrier: Option<bool>,
    /// Speed in Mb/s, `None` when unknown.
    pub speed_mbps: Option<u32>,
    /// Link type from `type`.
    pub link_type: Option<LinkType>,
    /// Interface index.
    pub ifindex: Option<u32>,
}

impl Netdev {
    /// A netdev known only by name and link type (the rest unknown).
    pub fn named(name: String, link_type: Option<LinkType>) -> Self {
        Self {
            name,
            mac: None,
            mtu: None,
            oper_state: None,
            carrier: None,
            speed_mbps: None,
            link_type,
            ifindex: None,
        }
    }
}

/// Link layer type (the netdev's ARPHRD `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    /// ARPHRD_ETHER (1).
    Ether,
    /// ARPHRD_INFINIBAND (32).
    Infiniband,
    /// Anything else, by number.
    #[serde(untagged)]
    Other(u32),
}

impl LinkType {
    /// From the kernel's numeric `type`.
    pub fn from_arphrd(v: u32) -> Self {
        match v {
            1 => Self::Ether,
            32 => Self::Infiniband,
            n => Self::Other(n),
        }
    }

    /// The name used by selectors (`ether`, `infiniband`).
    pub fn as_str(&self) -> Cow<'static, str> {
        match self {
            Self::Ether => Cow::Borrowed("ether"),
            Self::Infiniband => Cow::Borrowed("infiniband"),
            Self::Other(n) => Cow::Owned(n.to_string()),
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// Where a function's netdev is, as seen from this network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetdevStatus {
    /// The netdev is in this namespace ([`Pf::netdev`]/[`Vf::netdev`] names it).
    Present,
    /// Bound to a kernel driver but no netdev is visible here: the netdev lives in another network
    /// namespace (a pod's), because sysfs only lists netdevs of the reader's namespace.
    NotInNamespace,
    /// Bound to a userspace driver (vfio-pci, uio): no netdev by design.
    Userspace,
    /// No driver bound.
    NoDriver,
}

/// A physical function: a PCI function with `sriov_totalvfs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pf {
    /// PCI address.
    pub pci_address: PciAddr,
    /// IDs, names, driver, NUMA, IOMMU.
    #[serde(flatten)]
    pub pci: PciInfo,
    /// First netdev name, when present in this namespace.
    pub netdev: Option<String>,
    /// Netdev details.
    pub link: Option<Netdev>,
    /// Where the netdev is.
    pub netdev_status: NetdevStatus,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
    /// `sriov_vf_device`: the device ID VFs get.
    pub vf_device_id: Option<PciId>,
    /// `sriov_drivers_autoprobe`.
    pub drivers_autoprobe: Option<bool>,
    /// Virtual functions, by VF index.
    pub vfs: Vec<Vf>,
}

/// A virtual function: a PCI function with a `physfn` link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vf {
    /// PCI address.
    pub pci_address: PciAddr,
    /// VF index N of the PF's `virtfnN` link.
    pub vf_index: u32,
    /// The PF's PCI address.
    pub pf_pci_address: PciAddr,
    /// IDs, names, driver, NUMA, IOMMU.
    #[serde(flatten)]
    pub pci: PciInfo,
    /// Whether the driver is a userspace one (vfio-pci, uio_pci_generic, igb_uio).
    pub userspace_driver: bool,
    /// `/dev/vfio/<group>` (or `noiommu-<group>`) when bound to vfio-pci.
    pub vfio_device: Option<PathBuf>,
    /// Netdev name, when present in this namespace.
    pub netdev: Option<String>,
    /// Netdev details.
    pub link: Option<Netdev>,
    /// Where the netdev is.
    pub netdev_status: NetdevStatus,
}
