//! The NPWG device-information file for the attachment (device-info-spec 1.1.0).
//!
//! Multus passes `runtimeConfig.CNIDeviceInfoFile`
//! (`/var/run/k8s.cni.cncf.io/devinfo/cni/<network>-<containerID>_<ifname>`) and reads the file
//! after `ADD` for the pod's `network-status` annotation. When it finds the device plugin's
//! file it copies that one there first; this plugin then leaves it alone (it is Multus's to
//! remove). Otherwise, and for runtimes without Multus (at the same path under the configured
//! base directory), `ADD` writes
//!
//! ```json
//! {"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","pf-pci-address":"0000:3b:00.0"}}
//! ```
//!
//! as the Go `network-attachment-definition-client` does (`SaveDeviceInfoForCNI`: mode 0444,
//! an existing file is never replaced), atomically (temporary file in the same directory,
//! rename), with its removal journaled first, so a rollback, `DEL` or `GC` removes it.

use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use cni_spec::{DeviceInfo, PciDeviceInfo};
use sriov_host::PciAddr;

/// Default base directory (the NPWG one); files go to its `cni/` subdirectory.
pub const DEFAULT_BASE_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo";
/// Environment variable overriding [`DEFAULT_BASE_DIR`] (the `deviceInfoDir` key wins).
pub const BASE_DIR_ENV: &str = "SRIOV_CNI_DEVINFO_DIR";
/// Mode of the file (the Go library's).
pub const FILE_MODE: u32 = 0o444;

/// The file name Multus derives for an attachment: `<network>-<containerID>_<ifname>`, with
/// every `/` replaced by `-` (the Go `GetCNIDeviceInfoPath` rule), so no part can leave the
/// directory.
pub fn file_name(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}-{container_id}_{ifname}").replace('/', "-")
}

/// `<base>/cni/<file_name>`.
pub fn default_path(base: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    base.join("cni").join(file_name(network, container_id, ifname))
}

/// The base directory: `deviceInfoDir`, else `$SRIOV_CNI_DEVINFO_DIR`, else
/// [`DEFAULT_BASE_DIR`].
pub fn base_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_owned();
    }
    match std::env::var_os(BASE_DIR_ENV) {
        Some(v) if v.to_string_lossy().starts_with('/') => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_BASE_DIR),
    }
}

/// The document for a VF.
pub fn for_vf(vf: PciAddr, pf: PciAddr) -> DeviceInfo {
    DeviceInfo::pci(PciDeviceInfo {
        pci_address: vf.to_string(),
        pf_pci_address: Some(pf.to_string()),
        ..PciDeviceInfo::default()
    })
}

/// Writes `info` to `path` unless a file is already there. `Ok(false)`: it was there (left
/// alone). Missing directories are created (0755).
pub fn save_new(path: &Path, info: &DeviceInfo) -> io::Result<bool> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    let bytes = serde_json::to_vec(info).map_err(io::Error::other)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    // No fsync: the file lives on a runtime tmpfs and describes a pod that a crash ends.
    cni_spec::write_atomic(path, FILE_MODE, cni_spec::Durability::None, |f| f.write_all(&bytes))
        .map_err(|e| e.source)?;
    Ok(true)
}

/// Removes the file; absent is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn names_follow_multus_and_cannot_escape_the_directory() {
        assert_eq!(file_name("sriov-net", "c0ffee", "net1"), "sriov-net-c0ffee_net1");
        let p = default_path(Path::new("/b"), "ns/net", "../../x", "net1");
        assert_eq!(p, PathBuf::from("/b/cni/ns-net-..-..-x_net1"));
        assert_eq!(p.parent(), Some(Path::new("/b/cni")));
        assert_eq!(base_dir(Some(Path::new("/tmp/d"))), PathBuf::from("/tmp/d"));
    }

    #[test]
    fn writes_once_read_only_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni/net-c_net1");
        let info = for_vf("0000:3b:02.1".parse().unwrap(), "0000:3b:00.0".parse().unwrap());
        assert!(save_new(&path, &info).unwrap());
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "pci", "version": "1.1.0",
                "pci": {"pci-address": "0000:3b:02.1", "pf-pci-address": "0000:3b:00.0"}})
        );
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, FILE_MODE);
        let other = for_vf("0000:3b:02.2".parse().unwrap(), "0000:3b:00.0".parse().unwrap());
        assert!(!save_new(&path, &other).unwrap());
        assert_eq!(DeviceInfo::load(&path).unwrap(), info);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path().join("cni")).unwrap().count(), 1);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
    }
}
