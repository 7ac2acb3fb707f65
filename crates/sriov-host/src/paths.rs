//! Where the host's kernel interfaces live.
//!
//! Nothing in the suite hard-codes `/sys` or `/dev`: every binary takes `--sysfs-root` /
//! `SRIOV_SYSFS_ROOT` (default `/sys`) and `--dev-root` / `SRIOV_DEV_ROOT` (default `/dev`), so the
//! same code runs against the real kernel, a simulated SR-IOV host, or a test fixture.

use std::path::{Path, PathBuf};

use crate::pci::PciAddr;

/// Environment variable naming the sysfs root.
pub const SYSFS_ROOT_ENV: &str = "SRIOV_SYSFS_ROOT";
/// Environment variable naming the device-node root.
pub const DEV_ROOT_ENV: &str = "SRIOV_DEV_ROOT";

/// The roots of the host's sysfs and device-node trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    sysfs: PathBuf,
    dev: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self { sysfs: PathBuf::from("/sys"), dev: PathBuf::from("/dev") }
    }
}

impl HostPaths {
    /// Paths with explicit roots.
    pub fn new(sysfs: impl Into<PathBuf>, dev: impl Into<PathBuf>) -> Self {
        Self { sysfs: sysfs.into(), dev: dev.into() }
    }

    /// Roots from `SRIOV_SYSFS_ROOT` / `SRIOV_DEV_ROOT`, defaulting to `/sys` and `/dev`.
    pub fn from_env() -> Self {
        let get = |k: &str, d: &str| {
            std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or(d.into())
        };
        Self { sysfs: get(SYSFS_ROOT_ENV, "/sys"), dev: get(DEV_ROOT_ENV, "/dev") }
    }

    /// The sysfs root (`/sys` on a real host).
    pub fn sysfs(&self) -> &Path {
        &self.sysfs
    }

    /// The device-node root (`/dev` on a real host).
    pub fn dev(&self) -> &Path {
        &self.dev
    }

    /// `<sysfs>/bus/pci/devices`.
    pub fn pci_devices(&self) -> PathBuf {
        self.sysfs.join("bus/pci/devices")
    }

    /// `<sysfs>/bus/pci/devices/<addr>`.
    pub fn pci_device(&self, addr: PciAddr) -> PathBuf {
        self.pci_devices().join(addr.to_string())
    }

    /// `<sysfs>/bus/pci/drivers`.
    pub fn pci_drivers(&self) -> PathBuf {
        self.sysfs.join("bus/pci/drivers")
    }

    /// `<sysfs>/bus/pci/drivers_probe`.
    pub fn pci_drivers_probe(&self) -> PathBuf {
        self.sysfs.join("bus/pci/drivers_probe")
    }

    /// `<sysfs>/class/net`.
    pub fn class_net(&self) -> PathBuf {
        self.sysfs.join("class/net")
    }

    /// `<dev>/vfio/<name>`.
    pub fn vfio_node(&self, name: &str) -> PathBuf {
        self.dev.join("vfio").join(name)
    }
}
