//! From one host snapshot to the device lists of every pool: scan, select, judge health.
//!
//! - [`scan`] reads the host once (one [`sriov_host::discover`] pass, plus the RDMA, uio and
//!   vhost device nodes of the functions that have them). It is the only step that touches sysfs.
//! - [`select`] assigns every VF to at most one pool, in memory: pools in config order, selectors in
//!   order, first match wins (the Go plugin's rule).
//! - [`compute`] turns the selection into [`PoolDevices`] with health, carrying over devices that
//!   left a pool as `Unhealthy` for a grace period.
//!
//! Health rules: a device is `Unhealthy` when its PF has no carrier (or its PF netdev is
//! administratively down), when the VF vanished from the host, or when it no longer matches its pool
//! (typically: rebound to a driver the pool does not select) and no other pool claimed it. The last
//! two keep the device listed as `Unhealthy` for `grace` after which it is dropped from the list.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sriov_host::devnodes::{self, RdmaNodes, VhostNodes};
use sriov_host::{DiscoverError, DiscoverOptions, Host, HostPaths, PciAddr, Pf, Vf, VfDetail};

use crate::config::{DeviceType, PoolConfig, Selector};

/// One read of the host: the snapshot and the device nodes Allocate needs.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The host model snapshot.
    pub host: Host,
    /// RDMA char devices of every function that has an RDMA device.
    pub rdma: HashMap<PciAddr, RdmaNodes>,
    /// `/dev/uioN` of every function bound to a uio driver.
    pub uio: HashMap<PciAddr, PathBuf>,
    /// `/dev/vhost-net` and `/dev/net/tun`, when both exist.
    pub vhost: Option<VhostNodes>,
}

/// Reads the host once. Failing to read an optional device node only logs a warning.
pub fn scan(paths: &HostPaths) -> Result<Scan, DiscoverError> {
    // Selection needs VF netdev names and link types, not their MAC/MTU/state: half the syscalls.
    let opts = DiscoverOptions { vf_detail: VfDetail::Selection, ..Default::default() };
    let host = sriov_host::discover(paths, &opts)?;
    let mut rdma = HashMap::new();
    let mut uio = HashMap::new();
    for (_, vf) in host.vfs() {
        if !vf.pci.rdma_devices.is_empty() {
            match devnodes::rdma_nodes(paths, vf.pci_address) {
                Ok(n) => {
                    rdma.insert(vf.pci_address, n);
                }
                Err(e) => {
                    tracing::warn!(vf = %vf.pci_address, error = %e, "cannot read RDMA device nodes")
                }
            }
        }
        if vf.userspace_driver && vf.pci.driver.as_deref() != Some("vfio-pci") {
            match devnodes::uio_node(paths, vf.pci_address) {
                Ok(Some(n)) => {
                    uio.insert(vf.pci_address, n);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(vf = %vf.pci_address, error = %e, "cannot read uio device node")
                }
            }
        }
    }
    Ok(Scan { host, rdma, uio, vhost: devnodes::vhost_nodes(paths) })
}

/// How a selected device is to be handed out (from the selector that matched it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    /// The matching selector asked for RDMA.
    pub is_rdma: bool,
    /// The matching selector asked for vhost-net.
    pub need_vhost_net: bool,
}

/// The PCI base class from the kernel's `class` attribute (`0x020000` gives `0x02`).
fn base_class(class: Option<&str>) -> Option<u8> {
    let c = class?.trim();
    let hex = c.strip_prefix("0x").unwrap_or(c);
    u32::from_str_radix(hex, 16).ok().map(|v| ((v >> 16) & 0xff) as u8)
}

/// Whether a selector matches a VF of `pf`.
pub fn selector_matches(sel: &Selector, pf: &Pf, vf: &Vf) -> bool {
    let p = &vf.pci;
    if !sel.vendors.is_empty() && !p.vendor_id.is_some_and(|v| sel.vendors.contains(&v)) {
        return false;
    }
    if !sel.devices.is_empty() && !p.device_id.is_some_and(|d| sel.devices.contains(&d)) {
        return false;
    }
    if !sel.drivers.is_empty() && !p.driver.as_ref().is_some_and(|d| sel.drivers.contains(d)) {
        return false;
    }
    if !sel.pci_addresses.is_empty() && !sel.pci_addresses.contains(&vf.pci_address) {
        return false;
    }
    if !sel.acpi_indexes.is_empty() && !p.acpi_index.is_some_and(|a| sel.acpi_indexes.contains(&a))
    {
        return false;
    }
    if !sel.pf_names.is_empty() {
        let Some(name) = pf.netdev.as_deref() else { return false };
        if !sel.pf_names.iter().any(|s| s.pf.eq_ignore_ascii_case(name) && s.has_vf(vf.vf_index)) {
            return false;
        }
    }
    if !sel.root_devices.is_empty()
        && !sel.root_devices.iter().any(|s| s.pf == vf.pf_pci_address && s.has_vf(vf.vf_index))
    {
        return false;
    }
    if !sel.link_types.is_empty() {
        // The VF's own link type, or the PF's when the VF has no netdev here (as the Go plugin).
        let lt = vf.link.as_ref().or(pf.link.as_ref()).and_then(|l| l.link_type);
        if !lt.is_some_and(|t| sel.link_types.iter().any(|s| *s == t.as_str())) {
            return false;
        }
    }
    if sel.is_rdma && p.rdma_devices.is_empty() {
        return false;
    }
    true
}

/// Assigns each VF to the first pool (config order) with a matching selector (selector order).
/// Returns one map per pool.
pub fn select(host: &Host, pools: &[PoolConfig]) -> Vec<BTreeMap<PciAddr, Selection>> {
    let mut out = vec![BTreeMap::new(); pools.len()];
    for (pf, vf) in host.vfs() {
        let class = base_class(vf.pci.class.as_deref());
        'pools: for (i, pool) in pools.iter().enumerate() {
            if class != Some(pool.device_type.pci_base_class()) {
                continue;
            }
            for sel in &pool.selectors {
                if selector_matches(sel, pf, vf) {
                    out[i].insert(
                        vf.pci_address,
                        Selection { is_rdma: sel.is_rdma, need_vhost_net: sel.need_vhost_net },
                    );
                    break 'pools;
                }
            }
        }
    }
    out
}

/// Why a device is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnhealthyReason {
    /// The PF has no carrier or is administratively down.
    PfLinkDown,
    /// The VF is no longer on the host.
    Vanished,
    /// The VF no longer matches the pool (e.g. its driver changed).
    NoLongerMatches,
}

impl UnhealthyReason {
    /// A short, stable description for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PfLinkDown => "pf link down",
            Self::Vanished => "vf vanished",
            Self::NoLongerMatches => "vf no longer matches the pool",
        }
    }
}

/// Everything about one advertised device that ListAndWatch and Allocate need.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// The VF's PCI address (the device ID).
    pub id: PciAddr,
    /// The PF's PCI address.
    pub pf: PciAddr,
    /// The VF index on its PF.
    pub vf_index: u32,
    /// NUMA node.
    pub numa_node: Option<u32>,
    /// Bound driver.
    pub driver: Option<String>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// VFIO group node on the host (`/dev/vfio/<group>` or `noiommu-<group>`), when on vfio-pci.
    pub vfio_node: Option<PathBuf>,
    /// `/dev/uioN` when on a uio driver.
    pub uio_node: Option<PathBuf>,
    /// RDMA device names (`mlx5_2`).
    pub rdma_devices: Vec<String>,
    /// RDMA char devices, when the pool's selector asked for RDMA.
    pub rdma_nodes: Option<RdmaNodes>,
    /// vhost-net and tun nodes, when the selector asked for them and they exist.
    pub vhost: Option<VhostNodes>,
    /// `None` when healthy.
    pub unhealthy: Option<UnhealthyReason>,
    /// When the device left the pool or the host (for the grace period).
    pub stale_since: Option<Instant>,
}

impl DeviceRecord {
    /// Whether the device is healthy.
    pub fn healthy(&self) -> bool {
        self.unhealthy.is_none()
    }
}

/// The devices of one pool, by ID.
pub type PoolDevices = BTreeMap<PciAddr, DeviceRecord>;

/// Whether a PF's link rules out its VFs passing traffic: no carrier, or administratively down
/// (the kernel then cannot report carrier and `operstate` is `down`). A PF whose netdev is not
/// visible here gives no verdict.
pub fn pf_link_down(pf: &Pf) -> bool {
    pf.link.as_ref().is_some_and(|l| match l.carrier {
        Some(c) => !c,
        None => l.oper_state.as_deref() == Some("down"),
    })
}

fn record(scan: &Scan, pf: &Pf, vf: &Vf, sel: Selection) -> DeviceRecord {
    DeviceRecord {
        id: vf.pci_address,
        pf: pf.pci_address,
        vf_index: vf.vf_index,
        numa_node: vf.pci.numa_node,
        driver: vf.pci.driver.clone(),
        iommu_group: vf.pci.iommu_group,
        vfio_node: vf.vfio_device.clone(),
        uio_node: scan.uio.get(&vf.pci_address).cloned(),
        rdma_devices: vf.pci.rdma_devices.clone(),
        rdma_nodes: sel
            .is_rdma
            .then(|| scan.rdma.get(&vf.pci_address).cloned().unwrap_or_default()),
        vhost: if sel.need_vhost_net { scan.vhost.clone() } else { None },
        unhealthy: pf_link_down(pf).then_some(UnhealthyReason::PfLinkDown),
        stale_since: None,
    }
}

/// Computes every pool's devices from a scan. `prev[i]` is pool `i`'s previous list (same pool
/// definition order as `pools`), used to keep departed devices as `Unhealthy` for `grace`.
pub fn compute(
    scan: &Scan,
    pools: &[PoolConfig],
    prev: &[Option<&PoolDevices>],
    now: Instant,
    grace: Duration,
) -> Vec<PoolDevices> {
    let selected = select(&scan.host, pools);
    let claimed: HashMap<PciAddr, usize> =
        selected.iter().enumerate().flat_map(|(i, m)| m.keys().map(move |k| (*k, i))).collect();
    let mut out = Vec::with_capacity(pools.len());
    for (i, sel) in selected.iter().enumerate() {
        let mut devices = PoolDevices::new();
        for (addr, s) in sel {
            if let Some((pf, vf)) = scan.host.find_vf(*addr) {
                devices.insert(*addr, record(scan, pf, vf, *s));
            }
        }
        if let Some(prev) = prev.get(i).copied().flatten() {
            for (addr, old) in prev {
                if devices.contains_key(addr) || claimed.contains_key(addr) {
                    continue;
                }
                let since = old.stale_since.unwrap_or(now);
                if now.saturating_duration_since(since) >= grace {
                    continue;
                }
                let reason = if scan.host.find_vf(*addr).is_some() {
                    UnhealthyReason::NoLongerMatches
                } else {
                    UnhealthyReason::Vanished
                };
                let mut kept = old.clone();
                kept.unhealthy = Some(reason);
                kept.stale_since = Some(since);
                devices.insert(*addr, kept);
            }
        }
        out.push(devices);
    }
    out
}

/// When the next departed device's grace period ends, if any.
pub fn next_expiry<'a>(
    pools: impl IntoIterator<Item = &'a PoolDevices>,
    grace: Duration,
) -> Option<Instant> {
    pools
        .into_iter()
        .flat_map(|p| p.values())
        .filter_map(|d| d.stale_since)
        .map(|s| s + grace)
        .min()
}

/// Helper for tests and tools: whether a device type's class matches a function's class string.
pub fn class_matches(device_type: DeviceType, class: Option<&str>) -> bool {
    base_class(class) == Some(device_type.pci_base_class())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use pretty_assertions::assert_eq;
    use sriov_host::{LinkType, Netdev, NetdevStatus, PciId, PciInfo};

    use super::*;
    use crate::config::Config;

    fn pci(
        vendor: u16,
        device: u16,
        class: &str,
        driver: Option<&str>,
        numa: Option<u32>,
    ) -> PciInfo {
        PciInfo {
            vendor_id: Some(PciId(vendor)),
            device_id: Some(PciId(device)),
            vendor_name: None,
            device_name: None,
            class: Some(class.into()),
            subsystem_vendor_id: None,
            subsystem_device_id: None,
            driver: driver.map(str::to_owned),
            driver_override: None,
            numa_node: numa,
            iommu_group: None,
            acpi_index: None,
            rdma_devices: vec![],
        }
    }

    fn link(name: &str, carrier: Option<bool>, oper: &str) -> Netdev {
        Netdev {
            name: name.into(),
            mac: None,
            mtu: Some(1500),
            oper_state: Some(oper.into()),
            carrier,
            speed_mbps: None,
            link_type: Some(LinkType::Ether),
            ifindex: None,
        }
    }

    /// A PF at `0000:<bus>:00.0` named `name` with `n` VFs at `0000:<bus>:02.<i>` / `03.<i-8>`.
    pub(crate) fn pf(bus: u8, name: &str, n: u32, vf_driver: &str, numa: Option<u32>) -> Pf {
        let pf_addr = PciAddr::new(0, bus, 0, 0).unwrap();
        let vfs = (0..n)
            .map(|i| {
                let addr = PciAddr::new(0, bus, 2 + (i / 8) as u8, (i % 8) as u8).unwrap();
                let mut p = pci(0x8086, 0x154c, "0x020000", Some(vf_driver), numa);
                p.iommu_group = Some(100 + i);
                Vf {
                    pci_address: addr,
                    vf_index: i,
                    pf_pci_address: pf_addr,
                    userspace_driver: vf_driver == "vfio-pci",
                    vfio_device: (vf_driver == "vfio-pci")
                        .then(|| PathBuf::from(format!("/dev/vfio/{}", 100 + i))),
                    netdev: None,
                    link: None,
                    netdev_status: NetdevStatus::NotInNamespace,
                    pci: p,
                }
            })
            .collect();
        Pf {
            pci_address: pf_addr,
            pci: pci(0x8086, 0x1572, "0x020000", Some("i40e"), numa),
            netdev: Some(name.into()),
            link: Some(link(name, Some(true), "up")),
            netdev_status: NetdevStatus::Present,
            total_vfs: 64,
            num_vfs: n,
            vf_device_id: Some(PciId(0x154c)),
            drivers_autoprobe: Some(true),
            vfs,
        }
    }

    pub(crate) fn host(pfs: Vec<Pf>) -> Scan {
        Scan {
            host: Host { schema_version: 1, sysfs_root: "/sys".into(), pfs, warnings: vec![] },
            rdma: HashMap::new(),
            uio: HashMap::new(),
            vhost: None,
        }
    }

    pub(crate) fn config(json: &str) -> Config {
        Config::parse(json.as_bytes(), Path::new("t.json"), "intel.com").unwrap()
    }

    fn ids(d: &PoolDevices) -> Vec<String> {
        d.keys().map(ToString::to_string).collect()
    }

    #[test]
    fn first_match_wins_across_pools_and_selectors() {
        let scan = host(vec![
            pf(0x3b, "ens1f0", 4, "iavf", Some(0)),
            pf(0x5e, "ens2f0", 2, "vfio-pci", Some(1)),
        ]);
        let c = config(
            r#"{"resourceList":[
                {"resourceName":"first","selectors":[{"pfNames":["ens1f0#0-1"]},{"drivers":["vfio-pci"]}]},
                {"resourceName":"rest","selectors":{"vendors":["8086"]}}
            ]}"#,
        );
        let r = compute(&scan, &c.pools, &[], Instant::now(), Duration::ZERO);
        assert_eq!(ids(&r[0]), ["0000:3b:02.0", "0000:3b:02.1", "0000:5e:02.0", "0000:5e:02.1"]);
        assert_eq!(ids(&r[1]), ["0000:3b:02.2", "0000:3b:02.3"]);
    }

    #[test]
    fn selectors_and_within_an_object() {
        let scan = host(vec![pf(0x3b, "ens1f0", 3, "iavf", None)]);
        let c = config(
            r#"{"resourceList":[{"resourceName":"a","selectors":{"vendors":["8086"],"drivers":["vfio-pci"]}},
                                 {"resourceName":"b","selectors":{"devices":["1889"]}},
                                 {"resourceName":"c","selectors":{"rootDevices":["0000:3b:00.0#2"],"linkTypes":["ether"]}},
                                 {"resourceName":"d","selectors":{"pciAddresses":["0000:3b:02.1"]}},
                                 {"resourceName":"e","selectors":{"PFNAMES":["ENS1F0"]}}]}"#,
        );
        let r = compute(&scan, &c.pools, &[], Instant::now(), Duration::ZERO);
        assert!(r[0].is_empty() && r[1].is_empty());
        assert_eq!(
            ids(&r[2]),
            ["0000:3b:02.2"],
            "link type comes from the PF when the VF has no netdev"
        );
        assert_eq!(ids(&r[3]), ["0000:3b:02.1"]);
        assert_eq!(ids(&r[4]), ["0000:3b:02.0"], "PF names match case-insensitively");
    }

    #[test]
    fn device_type_filters_by_class_and_rdma_selector() {
        let mut p = pf(0x3b, "ens1f0", 2, "mlx5_core", None);
        p.vfs[1].pci.rdma_devices = vec!["mlx5_3".into()];
        let mut accel = pf(0x5e, "qat0", 1, "4xxxvf", None);
        accel.vfs[0].pci.class = Some("0x120000".into());
        let mut scan = host(vec![p, accel]);
        let addr: PciAddr = "0000:3b:02.1".parse().unwrap();
        scan.rdma.insert(
            addr,
            RdmaNodes { uverbs: Some("/dev/infiniband/uverbs3".into()), ..Default::default() },
        );
        let c = config(
            r#"{"resourceList":[{"resourceName":"rdma","selectors":{"isRdma":true}},
                                 {"resourceName":"acc","deviceType":"accelerator"},
                                 {"resourceName":"net"}]}"#,
        );
        let r = compute(&scan, &c.pools, &[], Instant::now(), Duration::ZERO);
        assert_eq!(ids(&r[0]), ["0000:3b:02.1"]);
        assert_eq!(
            r[0][&addr].rdma_nodes.as_ref().unwrap().uverbs.as_deref(),
            Some(Path::new("/dev/infiniband/uverbs3"))
        );
        assert_eq!(ids(&r[1]), ["0000:5e:02.0"]);
        assert_eq!(ids(&r[2]), ["0000:3b:02.0"]);
        assert_eq!(r[2].values().next().unwrap().rdma_nodes, None);
    }

    #[test]
    fn pf_carrier_loss_and_admin_down_make_vfs_unhealthy() {
        let mut a = pf(0x3b, "ens1f0", 2, "iavf", None);
        a.link = Some(link("ens1f0", Some(false), "down"));
        let mut b = pf(0x5e, "ens2f0", 1, "iavf", None);
        b.link = Some(link("ens2f0", None, "down"));
        let mut c = pf(0x86, "ens3f0", 1, "iavf", None);
        c.link = None; // PF netdev not visible: no verdict
        let scan = host(vec![a, b, c]);
        let cfg = config(r#"{"resourceList":[{"resourceName":"a"}]}"#);
        let r = compute(&scan, &cfg.pools, &[], Instant::now(), Duration::ZERO);
        let health: Vec<_> = r[0].values().map(|d| (d.id.to_string(), d.unhealthy)).collect();
        assert_eq!(
            health,
            [
                ("0000:3b:02.0".to_string(), Some(UnhealthyReason::PfLinkDown)),
                ("0000:3b:02.1".to_string(), Some(UnhealthyReason::PfLinkDown)),
                ("0000:5e:02.0".to_string(), Some(UnhealthyReason::PfLinkDown)),
                ("0000:86:02.0".to_string(), None),
            ]
        );
    }

    #[test]
    fn departed_devices_stay_unhealthy_for_the_grace_period() {
        let cfg =
            config(r#"{"resourceList":[{"resourceName":"net","selectors":{"drivers":["iavf"]}}]}"#);
        let grace = Duration::from_secs(10);
        let t0 = Instant::now();
        let before =
            compute(&host(vec![pf(0x3b, "ens1f0", 3, "iavf", None)]), &cfg.pools, &[], t0, grace);
        assert_eq!(before[0].len(), 3);

        // VF 2 vanished (VF count 3 -> 2) and VF 1 was rebound to vfio-pci.
        let mut p = pf(0x3b, "ens1f0", 2, "iavf", None);
        p.vfs[1].pci.driver = Some("vfio-pci".into());
        let scan = host(vec![p]);
        let t1 = t0 + Duration::from_secs(1);
        let after = compute(&scan, &cfg.pools, &[Some(&before[0])], t1, grace);
        let got: Vec<_> = after[0].values().map(|d| (d.id.to_string(), d.unhealthy)).collect();
        assert_eq!(
            got,
            [
                ("0000:3b:02.0".to_string(), None),
                ("0000:3b:02.1".to_string(), Some(UnhealthyReason::NoLongerMatches)),
                ("0000:3b:02.2".to_string(), Some(UnhealthyReason::Vanished)),
            ]
        );
        assert_eq!(next_expiry([&after[0]], grace), Some(t1 + grace));

        // The stale-since time is kept, so the grace runs from the first departure.
        let t2 = t1 + Duration::from_secs(9);
        let still = compute(&scan, &cfg.pools, &[Some(&after[0])], t2, grace);
        assert_eq!(ids(&still[0]), ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2"]);
        let t3 = t1 + grace;
        let later = compute(&scan, &cfg.pools, &[Some(&still[0])], t3, grace);
        assert_eq!(ids(&later[0]), ["0000:3b:02.0"]);

        // Another pool claiming the device takes it over at once.
        let two = config(
            r#"{"resourceList":[{"resourceName":"net","selectors":{"drivers":["iavf"]}},
                                 {"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"]}}]}"#,
        );
        let moved = compute(&scan, &two.pools, &[Some(&before[0]), None], t1, grace);
        assert_eq!(ids(&moved[0]), ["0000:3b:02.0", "0000:3b:02.2"]);
        assert_eq!(ids(&moved[1]), ["0000:3b:02.1"]);
    }

    #[test]
    fn zero_grace_drops_departed_devices_at_once() {
        let cfg = config(r#"{"resourceList":[{"resourceName":"net"}]}"#);
        let t0 = Instant::now();
        let before = compute(
            &host(vec![pf(0x3b, "ens1f0", 3, "iavf", None)]),
            &cfg.pools,
            &[],
            t0,
            Duration::ZERO,
        );
        let after = compute(
            &host(vec![pf(0x3b, "ens1f0", 1, "iavf", None)]),
            &cfg.pools,
            &[Some(&before[0])],
            t0,
            Duration::ZERO,
        );
        assert_eq!(ids(&after[0]), ["0000:3b:02.0"]);
    }

    #[test]
    fn class_parsing() {
        assert!(class_matches(DeviceType::NetDevice, Some("0x020000")));
        assert!(class_matches(DeviceType::Accelerator, Some("0x120001")));
        assert!(!class_matches(DeviceType::NetDevice, Some("0x120000")));
        assert!(!class_matches(DeviceType::NetDevice, None));
        assert!(!class_matches(DeviceType::NetDevice, Some("garbage")));
    }
}
