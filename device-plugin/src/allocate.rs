//! What Allocate hands the container runtime, as pure functions of a pool's devices.
//!
//! Compatible with the Go plugin:
//! - `PCIDEVICE_<PREFIX>_<NAME>` = the device IDs, comma-joined in request order. The name is
//!   `PCIDEVICE_<prefix>_<name>` upper-cased with every character outside `[A-Z0-9_]` mapped to `_`
//!   (the Go plugin only maps `.`, so a `-` in a resource name gave an unusable variable name).
//! - `PCIDEVICE_<PREFIX>_<NAME>_INFO` = JSON `{ "<id>": { "<provider>": { ... } } }` with the
//!   providers `generic` (`deviceID`), `vfio` (`mount`, `dev-mount`), `uio` (`mount`), `rdma`
//!   (`uverbs`, `umad`, `issm`, `rdma_cm`, `rdma_dev`), `vhost` (`net-mount`, `tun-mount`) and
//!   `extra` (`additionalInfo`), keys sorted as Go's `encoding/json` sorts map keys.
//! - Device specs with permission `rw`, de-duplicated by host path; no mounts.
//! - A Multus device-info file per device, `<prefix>-<name>-<id>-device.json`.
//!
//! With CDI, the device nodes go into a CDI spec file per pool instead ([`cdi_spec`]) and the
//! response names the CDI devices (`cdi_devices`, or the `cdi.k8s.io/` annotation form).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sriov_host::devnodes;
use sriov_host::{HostPaths, PciAddr};

use crate::api::{CdiDevice, ContainerAllocateResponse, DeviceSpec};
use crate::config::PoolConfig;
use crate::inventory::{DeviceRecord, PoolDevices};

/// The Multus device-info spec version written to device-info files.
pub const DEVICE_INFO_VERSION: &str = "1.1.0";

/// Container annotation prefix for CDI devices.
pub const CDI_ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// CDI spec version written (the first with `hostPath` on device nodes).
pub const CDI_VERSION: &str = "0.5.0";

/// How CDI devices are handed to the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdiMode {
    /// No CDI: device specs in the response.
    Off,
    /// `ContainerAllocateResponse.cdi_devices` (kubelet 1.28+; the kubelet adds the annotations
    /// for runtimes that need them).
    Devices,
    /// `cdi.k8s.io/<prefix>_<name>` annotations only (as the Go plugin; for older kubelets).
    Annotations,
}

/// Why an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The ID is not a PCI address.
    #[error("device id {id:?} is not a PCI address")]
    BadId {
        /// The ID.
        id: String,
    },
    /// The ID is not a device of this pool.
    #[error("device {id} is not a device of resource {resource}")]
    Unknown {
        /// The ID.
        id: String,
        /// The pool.
        resource: String,
    },
    /// The device left the host.
    #[error("device {id} of resource {resource} is no longer on the host")]
    Vanished {
        /// The ID.
        id: String,
        /// The pool.
        resource: String,
    },
    /// The request named no device.
    #[error("allocate request for resource {resource} names no device")]
    Empty {
        /// The pool.
        resource: String,
    },
}

/// `PCIDEVICE_<PREFIX>_<NAME>`.
pub fn env_name(prefix: &str, name: &str) -> String {
    format!("PCIDEVICE_{prefix}_{name}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' { c } else { '_' }
        })
        .collect()
}

/// A device node: where it is on the host and where the container sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Host path (under the device root).
    pub host: PathBuf,
    /// Path inside the container.
    pub container: PathBuf,
}

/// The device nodes of one device, in a stable order: VFIO, uio, RDMA, vhost.
pub fn device_nodes(rec: &DeviceRecord, paths: &HostPaths) -> Vec<Node> {
    let mut out = Vec::new();
    let mut push =
        |host: &Path, container: PathBuf| out.push(Node { host: host.to_owned(), container });
    if let (Some(node), Some(group)) = (&rec.vfio_node, rec.iommu_group) {
        let vfio = devnodes::vfio_container_node(paths);
        push(&vfio, devnodes::container_path(paths, &vfio));
        // A no-IOMMU group's node is `noiommu-<group>` on the host; the container sees
        // `/dev/vfio/<group>` as with the Go plugin (DPDK tries both names).
        push(node, PathBuf::from(format!("/dev/vfio/{group}")));
    }
    if let Some(uio) = &rec.uio_node {
        push(uio, devnodes::container_path(paths, uio));
    }
    if let Some(rdma) = &rec.rdma_nodes {
        for n in rdma.all() {
            push(n, devnodes::container_path(paths, n));
        }
    }
    if let Some(v) = &rec.vhost {
        push(&v.vhost_net, devnodes::container_path(paths, &v.vhost_net));
        push(&v.tun, devnodes::container_path(paths, &v.tun));
    }
    out
}

type Info = BTreeMap<String, BTreeMap<String, String>>;

fn info(pool: &PoolConfig, rec: &DeviceRecord, paths: &HostPaths) -> Info {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut info = Info::new();
    info.insert("generic".into(), BTreeMap::from([("deviceID".into(), rec.id.to_string())]));
    if let (Some(_), Some(group)) = (&rec.vfio_node, rec.iommu_group) {
        let vfio = devnodes::container_path(paths, &devnodes::vfio_container_node(paths));
        info.insert(
            "vfio".into(),
            BTreeMap::from([
                ("mount".into(), s(&vfio)),
                ("dev-mount".into(), format!("/dev/vfio/{group}")),
            ]),
        );
    }
    if let Some(uio) = &rec.uio_node {
        info.insert(
            "uio".into(),
            BTreeMap::from([("mount".into(), s(&devnodes::container_path(paths, uio)))]),
        );
    }
    if let Some(rdma) = &rec.rdma_nodes {
        let mut m = BTreeMap::new();
        for (key, node) in [
            ("uverbs", &rdma.uverbs),
            ("umad", &rdma.umad),
            ("issm", &rdma.issm),
            ("rdma_cm", &rdma.rdma_cm),
        ] {
            if let Some(n) = node {
                m.insert(key.to_owned(), s(&devnodes::container_path(paths, n)));
            }
        }
        if let Some(dev) = rec.rdma_devices.first() {
            m.insert("rdma_dev".into(), dev.clone());
        }
        info.insert("rdma".into(), m);
    }
    if let Some(v) = &rec.vhost {
        info.insert(
            "vhost".into(),
            BTreeMap::from([
                ("net-mount".into(), s(&devnodes::container_path(paths, &v.vhost_net))),
                ("tun-mount".into(), s(&devnodes::container_path(paths, &v.tun))),
            ]),
        );
    }
    if let Some(extra) = pool.additional_info.for_device(rec.id)
        && !extra.is_empty()
    {
        info.insert("extra".into(), extra.clone());
    }
    info
}

/// The Multus device-info document for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Always `pci`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// [`DEVICE_INFO_VERSION`].
    pub version: &'static str,
    /// The PCI details.
    pub pci: PciDeviceInfo,
}

/// The `pci` part of a device-info document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDeviceInfo {
    /// The VF.
    #[serde(rename = "pci-address")]
    pub pci_address: String,
    /// `/dev/vhost-net` when handed out.
    #[serde(rename = "vhost-net", skip_serializing_if = "Option::is_none")]
    pub vhost_net: Option<String>,
    /// The RDMA device when handed out.
    #[serde(rename = "rdma-device", skip_serializing_if = "Option::is_none")]
    pub rdma_device: Option<String>,
    /// The PF.
    #[serde(rename = "pf-pci-address")]
    pub pf_pci_address: String,
}

/// The device-info file name for a device: `<prefix>-<name>-<id>-device.json` (the `/` of the
/// resource name becomes `-`, as Multus expects).
pub fn device_info_file_name(pool: &PoolConfig, id: PciAddr) -> String {
    format!("{}-{}-{id}-device.json", pool.prefix, pool.name)
}

/// The device-info file name prefix of a pool, for clean-up.
pub fn device_info_file_prefix(pool: &PoolConfig) -> String {
    format!("{}-{}-", pool.prefix, pool.name)
}

fn device_info(rec: &DeviceRecord, paths: &HostPaths) -> DeviceInfo {
    DeviceInfo {
        kind: "pci",
        version: DEVICE_INFO_VERSION,
        pci: PciDeviceInfo {
            pci_address: rec.id.to_string(),
            vhost_net: rec.vhost.as_ref().map(|v| {
                devnodes::container_path(paths, &v.vhost_net).to_string_lossy().into_owned()
            }),
            rdma_device: rec.rdma_nodes.as_ref().and_then(|_| rec.rdma_devices.first().cloned()),
            pf_pci_address: rec.pf.to_string(),
        },
    }
}

/// One container's allocation: the response and the device-info files to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The response for the kubelet.
    pub response: ContainerAllocateResponse,
    /// `(file name, JSON)` per device.
    pub device_info: Vec<(String, Vec<u8>)>,
}

/// The CDI kind of a pool (`<prefix>/net-pci`).
pub fn cdi_kind(pool: &PoolConfig) -> String {
    format!("{}/{}", pool.prefix, pool.device_type.cdi_class())
}

/// The CDI spec file name of a pool; every file this plugin writes starts with `sriov-dp-`.
pub fn cdi_spec_file_name(pool: &PoolConfig) -> String {
    format!("{CDI_SPEC_PREFIX}{}-{}.json", pool.prefix, pool.name)
}

/// Prefix of every CDI spec file this plugin writes.
pub const CDI_SPEC_PREFIX: &str = "sriov-dp-";

/// The CDI spec of a pool: one CDI device per device that has device nodes.
pub fn cdi_spec(pool: &PoolConfig, devices: &PoolDevices, paths: &HostPaths) -> serde_json::Value {
    let devs: Vec<serde_json::Value> = devices
        .values()
        .filter_map(|rec| {
            let nodes = device_nodes(rec, paths);
            (!nodes.is_empty()).then(|| {
                let nodes: Vec<_> = nodes
                    .iter()
                    .map(|n| {
                        serde_json::json!({
                            "path": n.container.to_string_lossy(),
                            "hostPath": n.host.to_string_lossy(),
                            "permissions": "rw",
                        })
                    })
                    .collect();
                serde_json::json!({"name": rec.id.to_string(), "containerEdits": {"deviceNodes": nodes}})
            })
        })
        .collect();
    serde_json::json!({"cdiVersion": CDI_VERSION, "kind": cdi_kind(pool), "devices": devs})
}

/// Builds one container's allocation.
pub fn allocate(
    pool: &PoolConfig,
    devices: &PoolDevices,
    ids: &[String],
    paths: &HostPaths,
    cdi: CdiMode,
) -> Result<Allocation, AllocError> {
    let resource = pool.resource_name();
    if ids.is_empty() {
        return Err(AllocError::Empty { resource });
    }
    let mut recs = Vec::with_capacity(ids.len());
    for id in ids {
        let addr: PciAddr = id.parse().map_err(|_| AllocError::BadId { id: id.clone() })?;
        let rec = devices
            .get(&addr)
            .ok_or_else(|| AllocError::Unknown { id: id.clone(), resource: resource.clone() })?;
        if rec.unhealthy == Some(crate::inventory::UnhealthyReason::Vanished) {
            return Err(AllocError::Vanished { id: id.clone(), resource });
        }
        recs.push(rec);
    }
    let env = env_name(&pool.prefix, &pool.name);
    let mut response = ContainerAllocateResponse::default();
    let joined: Vec<String> = recs.iter().map(|r| r.id.to_string()).collect();
    response.envs.insert(env.clone(), joined.join(","));
    let infos: BTreeMap<String, Info> =
        recs.iter().map(|r| (r.id.to_string(), info(pool, r, paths))).collect();
    // Serializing string maps cannot fail.
    let info_json = serde_json::to_string(&infos).unwrap_or_default();
    response.envs.insert(format!("{env}_INFO"), info_json);

    let mut seen = BTreeSet::new();
    let mut cdi_names = Vec::new();
    for rec in &recs {
        let nodes = device_nodes(rec, paths);
        if nodes.is_empty() {
            continue;
        }
        match cdi {
            CdiMode::Off => {
                for n in nodes {
                    if seen.insert(n.host.clone()) {
                        response.devices.push(DeviceSpec {
                            container_path: n.container.to_string_lossy().into_owned(),
                            host_path: n.host.to_string_lossy().into_owned(),
                            permissions: "rw".into(),
                        });
                    }
                }
            }
            CdiMode::Devices | CdiMode::Annotations => {
                cdi_names.push(format!("{}={}", cdi_kind(pool), rec.id))
            }
        }
    }
    match cdi {
        CdiMode::Devices => {
            response.cdi_devices = cdi_names.into_iter().map(|name| CdiDevice { name }).collect()
        }
        CdiMode::Annotations if !cdi_names.is_empty() => {
            response.annotations.insert(
                format!("{CDI_ANNOTATION_PREFIX}{}_{}", pool.prefix, pool.name),
                cdi_names.join(","),
            );
        }
        _ => {}
    }
    let device_info = recs
        .iter()
        .map(|r| {
            let body = serde_json::to_vec(&device_info(r, paths)).unwrap_or_default();
            (device_info_file_name(pool, r.id), body)
        })
        .collect();
    Ok(Allocation { response, device_info })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use pretty_assertions::assert_eq;
    use sriov_host::devnodes::{RdmaNodes, VhostNodes};

    use super::*;
    use crate::inventory::compute;
    use crate::inventory::tests::{config, host, pf};

    fn paths() -> HostPaths {
        HostPaths::new("/sys", "/dev")
    }

    #[test]
    fn env_names_upper_case_and_sanitize() {
        assert_eq!(
            env_name("intel.com", "intel_sriov_netdevice"),
            "PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE"
        );
        assert_eq!(env_name("openshift.io", "mlx-nics"), "PCIDEVICE_OPENSHIFT_IO_MLX_NICS");
        assert_eq!(env_name("a-b.example", "x9"), "PCIDEVICE_A_B_EXAMPLE_X9");
    }

    #[test]
    fn netdev_allocation_env_and_info_match_go() {
        let scan = host(vec![pf(0x3b, "ens1f0", 3, "iavf", Some(0))]);
        let cfg = config(
            r#"{"resourceList":[{"resourceName":"intel_sriov_netdevice",
                "additionalInfo":{"*":{"a":"1"},"0000:3b:02.2":{"b":"2"}}}]}"#,
        );
        let devs = compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO).remove(0);
        let ids = vec!["0000:3b:02.2".to_string(), "0000:3b:02.0".to_string()];
        let a = allocate(&cfg.pools[0], &devs, &ids, &paths(), CdiMode::Off).unwrap();
        let env = &a.response.envs;
        assert_eq!(env["PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE"], "0000:3b:02.2,0000:3b:02.0");
        assert_eq!(
            env["PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE_INFO"],
            r#"{"0000:3b:02.0":{"extra":{"a":"1"},"generic":{"deviceID":"0000:3b:02.0"}},"0000:3b:02.2":{"extra":{"b":"2"},"generic":{"deviceID":"0000:3b:02.2"}}}"#
        );
        assert!(a.response.devices.is_empty() && a.response.mounts.is_empty());
        assert_eq!(a.device_info[0].0, "intel.com-intel_sriov_netdevice-0000:3b:02.2-device.json");
        assert_eq!(
            String::from_utf8(a.device_info[0].1.clone()).unwrap(),
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.2","pf-pci-address":"0000:3b:00.0"}}"#
        );
    }

    #[test]
    fn vfio_allocation_gives_container_and_group_nodes_deduplicated() {
        let mut p = pf(0x3b, "ens1f0", 2, "vfio-pci", None);
        // No-IOMMU group on the host for VF 1.
        p.vfs[1].vfio_device = Some("/dev/vfio/noiommu-101".into());
        let scan = host(vec![p]);
        let cfg = config(
            r#"{"resourceList":[{"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"]}}]}"#,
        );
        let devs = compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO).remove(0);
        let ids = vec!["0000:3b:02.0".to_string(), "0000:3b:02.1".to_string()];
        let a = allocate(&cfg.pools[0], &devs, &ids, &paths(), CdiMode::Off).unwrap();
        let specs: Vec<(String, String, String)> = a
            .response
            .devices
            .iter()
            .map(|d| (d.host_path.clone(), d.container_path.clone(), d.permissions.clone()))
            .collect();
        let t = |h: &str, c: &str| (h.to_string(), c.to_string(), "rw".to_string());
        assert_eq!(
            specs,
            [
                t("/dev/vfio/vfio", "/dev/vfio/vfio"),
                t("/dev/vfio/100", "/dev/vfio/100"),
                t("/dev/vfio/noiommu-101", "/dev/vfio/101"),
            ]
        );
        let info: serde_json::Value =
            serde_json::from_str(&a.response.envs["PCIDEVICE_INTEL_COM_DPDK_INFO"]).unwrap();
        assert_eq!(
            info["0000:3b:02.1"]["vfio"],
            serde_json::json!({"mount": "/dev/vfio/vfio", "dev-mount": "/dev/vfio/101"})
        );
    }

    #[test]
    fn rdma_and_vhost_nodes_map_from_the_dev_root() {
        let mut p = pf(0x5e, "ens3f0np0", 1, "mlx5_core", Some(1));
        p.vfs[0].pci.rdma_devices = vec!["mlx5_2".into()];
        let mut scan = host(vec![p]);
        let root = HostPaths::new("/t/sys", "/t/dev");
        let ib = Path::new("/t/dev/infiniband");
        scan.rdma.insert(
            "0000:5e:02.0".parse().unwrap(),
            RdmaNodes {
                uverbs: Some(ib.join("uverbs2")),
                umad: Some(ib.join("umad2")),
                issm: Some(ib.join("issm2")),
                rdma_cm: Some(ib.join("rdma_cm")),
            },
        );
        scan.vhost =
            Some(VhostNodes { vhost_net: "/t/dev/vhost-net".into(), tun: "/t/dev/net/tun".into() });
        let cfg = config(
            r#"{"resourceList":[{"resourceName":"rdma","selectors":{"isRdma":true,"needVhostNet":true}}]}"#,
        );
        let devs = compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO).remove(0);
        let a =
            allocate(&cfg.pools[0], &devs, &["0000:5e:02.0".into()], &root, CdiMode::Off).unwrap();
        let specs: Vec<(&str, &str)> = a
            .response
            .devices
            .iter()
            .map(|d| (d.host_path.as_str(), d.container_path.as_str()))
            .collect();
        assert_eq!(
            specs,
            [
                ("/t/dev/infiniband/uverbs2", "/dev/infiniband/uverbs2"),
                ("/t/dev/infiniband/umad2", "/dev/infiniband/umad2"),
                ("/t/dev/infiniband/issm2", "/dev/infiniband/issm2"),
                ("/t/dev/infiniband/rdma_cm", "/dev/infiniband/rdma_cm"),
                ("/t/dev/vhost-net", "/dev/vhost-net"),
                ("/t/dev/net/tun", "/dev/net/tun"),
            ]
        );
        let info: serde_json::Value =
            serde_json::from_str(&a.response.envs["PCIDEVICE_INTEL_COM_RDMA_INFO"]).unwrap();
        assert_eq!(
            info["0000:5e:02.0"]["rdma"],
            serde_json::json!({"uverbs": "/dev/infiniband/uverbs2", "umad": "/dev/infiniband/umad2",
                "issm": "/dev/infiniband/issm2", "rdma_cm": "/dev/infiniband/rdma_cm", "rdma_dev": "mlx5_2"})
        );
        assert_eq!(
            info["0000:5e:02.0"]["vhost"],
            serde_json::json!({"net-mount": "/dev/vhost-net", "tun-mount": "/dev/net/tun"})
        );
        let di: serde_json::Value = serde_json::from_slice(&a.device_info[0].1).unwrap();
        assert_eq!(di["pci"]["rdma-device"], "mlx5_2");
        assert_eq!(di["pci"]["vhost-net"], "/dev/vhost-net");
    }

    #[test]
    fn cdi_modes_replace_device_specs() {
        let scan = host(vec![pf(0x3b, "ens1f0", 2, "vfio-pci", None)]);
        let cfg = config(r#"{"resourceList":[{"resourceName":"dpdk"}]}"#);
        let devs = compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO).remove(0);
        let ids = vec!["0000:3b:02.1".to_string()];
        let a = allocate(&cfg.pools[0], &devs, &ids, &paths(), CdiMode::Devices).unwrap();
        assert!(a.response.devices.is_empty());
        assert_eq!(
            a.response.cdi_devices,
            vec![CdiDevice { name: "intel.com/net-pci=0000:3b:02.1".into() }]
        );
        assert!(a.response.envs.contains_key("PCIDEVICE_INTEL_COM_DPDK"), "env stays with CDI");
        let b = allocate(&cfg.pools[0], &devs, &ids, &paths(), CdiMode::Annotations).unwrap();
        assert!(b.response.cdi_devices.is_empty());
        assert_eq!(
            b.response.annotations["cdi.k8s.io/intel.com_dpdk"],
            "intel.com/net-pci=0000:3b:02.1"
        );

        let spec = cdi_spec(&cfg.pools[0], &devs, &paths());
        assert_eq!(spec["kind"], "intel.com/net-pci");
        assert_eq!(spec["devices"][1]["name"], "0000:3b:02.1");
        assert_eq!(
            spec["devices"][1]["containerEdits"]["deviceNodes"][1],
            serde_json::json!({"path": "/dev/vfio/101", "hostPath": "/dev/vfio/101", "permissions": "rw"})
        );
        assert_eq!(cdi_spec_file_name(&cfg.pools[0]), "sriov-dp-intel.com-dpdk.json");
    }

    #[test]
    fn bad_requests_name_the_id() {
        let scan = host(vec![pf(0x3b, "ens1f0", 1, "iavf", None)]);
        let cfg = config(r#"{"resourceList":[{"resourceName":"net"}]}"#);
        let devs = compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO).remove(0);
        let e = allocate(&cfg.pools[0], &devs, &["0000:3b:02.7".into()], &paths(), CdiMode::Off)
            .unwrap_err();
        assert_eq!(e.to_string(), "device 0000:3b:02.7 is not a device of resource intel.com/net");
        let e =
            allocate(&cfg.pools[0], &devs, &["bogus".into()], &paths(), CdiMode::Off).unwrap_err();
        assert_eq!(e.to_string(), "device id \"bogus\" is not a PCI address");
        assert!(matches!(
            allocate(&cfg.pools[0], &devs, &[], &paths(), CdiMode::Off),
            Err(AllocError::Empty { .. })
        ));
    }
}
