//! The NPWG device-info file (k8snetworkplumbingwg device-info-spec).
//!
//! A device plugin writes one per allocated device; Multus copies it to the path it passes as
//! `runtimeConfig.CNIDeviceInfoFile` before calling the CNI, and reads it back afterwards for
//! the pod's network-status annotation:
//!
//! ```json
//! {"type": "pci", "version": "1.1.0",
//!  "pci": {"pci-address": "0000:3b:02.1", "pf-pci-address": "0000:3b:00.0",
//!          "rdma-device": "mlx5_3", "vhost-net": "/dev/vhost-net"}}
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The device-info spec version this crate writes.
pub const DEVICE_INFO_VERSION: &str = "1.1.0";

/// The kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceType {
    /// A PCI device (VF, PF, SF).
    Pci,
    /// A vDPA device.
    Vdpa,
    /// A vhost-user socket.
    VhostUser,
    /// A memif socket.
    Memif,
}

/// A device-info file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device kind.
    #[serde(rename = "type")]
    pub device_type: DeviceType,
    /// The device-info spec version.
    pub version: String,
    /// PCI details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciDeviceInfo>,
    /// vDPA details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaDeviceInfo>,
}

/// `pci` details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDeviceInfo {
    /// The device's PCI address.
    #[serde(rename = "pci-address")]
    pub pci_address: String,
    /// The parent PF's PCI address (for VFs).
    #[serde(rename = "pf-pci-address", default, skip_serializing_if = "Option::is_none")]
    pub pf_pci_address: Option<String>,
    /// The RDMA device name.
    #[serde(rename = "rdma-device", default, skip_serializing_if = "Option::is_none")]
    pub rdma_device: Option<String>,
    /// The vhost-net device path.
    #[serde(rename = "vhost-net", default, skip_serializing_if = "Option::is_none")]
    pub vhost_net: Option<String>,
    /// The switchdev representor netdev.
    #[serde(rename = "representor-device", default, skip_serializing_if = "Option::is_none")]
    pub representor_device: Option<String>,
}

/// `vdpa` details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VdpaDeviceInfo {
    /// The parent device.
    #[serde(rename = "parent-device", default, skip_serializing_if = "Option::is_none")]
    pub parent_device: Option<String>,
    /// The vDPA bus driver (`vhost` or `virtio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The character device path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The device's PCI address.
    #[serde(rename = "pci-address", default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    /// The parent PF's PCI address.
    #[serde(rename = "pf-pci-address", default, skip_serializing_if = "Option::is_none")]
    pub pf_pci_address: Option<String>,
    /// The switchdev representor netdev.
    #[serde(rename = "representor-device", default, skip_serializing_if = "Option::is_none")]
    pub representor_device: Option<String>,
}

/// Why a device-info file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DeviceInfoError {
    /// Reading failed.
    #[error("cannot read device-info file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a device-info document.
    #[error("invalid device-info file {path}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot write device-info file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl DeviceInfo {
    /// A PCI device-info document for `pci_address`.
    pub fn pci(pci: PciDeviceInfo) -> DeviceInfo {
        DeviceInfo {
            device_type: DeviceType::Pci,
            version: DEVICE_INFO_VERSION.to_owned(),
            pci: Some(pci),
            vdpa: None,
        }
    }

    /// Reads a device-info file.
    pub fn load(path: &Path) -> Result<DeviceInfo, DeviceInfoError> {
        let bytes = std::fs::read(path)
            .map_err(|source| DeviceInfoError::Read { path: path.to_owned(), source })?;
        serde_json::from_slice(&bytes)
            .map_err(|source| DeviceInfoError::Decode { path: path.to_owned(), source })
    }

    /// Writes the file atomically (0644): a temporary file in the same directory, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), DeviceInfoError> {
        let err = |source| DeviceInfoError::Write { path: path.to_owned(), source };
        let bytes = serde_json::to_vec(self).map_err(|e| err(std::io::Error::other(e)))?;
        crate::atomic::write_atomic(path, 0o644, crate::atomic::Durability::File, |f| {
            f.write_all(&bytes)
        })
        .map_err(|e| err(e.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn pci_round_trip_matches_the_spec_shape() {
        let info = DeviceInfo::pci(PciDeviceInfo {
            pci_address: "0000:3b:02.1".into(),
            pf_pci_address: Some("0000:3b:00.0".into()),
            rdma_device: Some("mlx5_3".into()),
            vhost_net: Some("/dev/vhost-net".into()),
            representor_device: None,
        });
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(
            v,
            json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:3b:02.1",
                   "pf-pci-address": "0000:3b:00.0", "rdma-device": "mlx5_3", "vhost-net": "/dev/vhost-net"}})
        );
        let back: DeviceInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn reads_other_writers_files() {
        // As written by the SR-IOV device plugin (version 1.0.0, minimal pci block).
        let v = json!({"type": "pci", "version": "1.0.0", "pci": {"pci-address": "0000:d8:00.2"}});
        let info: DeviceInfo = serde_json::from_value(v).unwrap();
        assert_eq!(info.pci.unwrap().pci_address, "0000:d8:00.2");
        let vdpa = json!({"type": "vdpa", "version": "1.1.0",
            "vdpa": {"parent-device": "vdpa:0000:65:00.3", "driver": "vhost", "path": "/dev/vhost-vdpa-1"}});
        let info: DeviceInfo = serde_json::from_value(vdpa).unwrap();
        assert_eq!(info.device_type, DeviceType::Vdpa);
        assert!(
            serde_json::from_value::<DeviceInfo>(json!({"type": "usb", "version": "1.1.0"}))
                .is_err()
        );
    }

    #[test]
    fn save_and_load_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.json");
        let info = DeviceInfo::pci(PciDeviceInfo {
            pci_address: "0000:3b:02.1".into(),
            ..Default::default()
        });
        info.save(&path).unwrap();
        assert_eq!(DeviceInfo::load(&path).unwrap(), info);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");

        std::fs::write(&path, "{").unwrap();
        let e = DeviceInfo::load(&path).unwrap_err();
        assert!(matches!(e, DeviceInfoError::Decode { .. }));
        assert!(e.to_string().contains("dev.json"));
        let e = DeviceInfo::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(matches!(e, DeviceInfoError::Read { .. }));
        let e = info.save(&dir.path().join("no/such/dir.json")).unwrap_err();
        assert!(matches!(e, DeviceInfoError::Write { .. }));
    }
}
