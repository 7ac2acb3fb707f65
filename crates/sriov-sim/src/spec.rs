//! The host description ([`SimSpec`]): which SR-IOV NICs sit where, with what settings.
//!
//! A spec is YAML/JSON friendly (camelCase keys). Example:
//!
//! ```yaml
//! vfNetdevDelayMs: 0
//! pfs:
//!   - model: x710
//!     pciAddress: "0000:3b:00.0"
//!     netdev: ens1f0
//!     numaNode: 0
//!     numVfs: 4
//!   - model: connectx5
//!     pciAddress: "0000:5e:00.0"
//!     netdev: ens3f0np0
//!     totalVfs: 8
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::SimError;
use crate::pci::PciAddr;

/// A NIC model the simulator knows, with real PCI IDs (checked against pci.ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NicModel {
    /// Intel Ethernet Controller X710 for 10GbE SFP+ (8086:1572), VF 8086:154c, i40e/iavf.
    #[serde(rename = "x710", alias = "intelX710")]
    IntelX710,
    /// Intel Ethernet Controller E810-C for QSFP (8086:1592), VF 8086:1889, ice/iavf.
    #[serde(rename = "e810", alias = "intelE810")]
    IntelE810,
    /// Mellanox MT27800 Family ConnectX-5 (15b3:1017), VF 15b3:1018, mlx5_core, RDMA.
    #[serde(rename = "connectx5", alias = "cx5", alias = "mellanoxConnectX5")]
    MellanoxConnectX5,
    /// Intel 82576 Gigabit Network Connection (8086:10c9), VF 8086:10ca, igb/igbvf
    /// (what QEMU's `-device igb` emulates).
    #[serde(rename = "82576", alias = "igb", alias = "intel82576")]
    Intel82576,
}

/// Static facts about a [`NicModel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// PF vendor ID.
    pub vendor: u16,
    /// PF device ID.
    pub device: u16,
    /// PF subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// PF subsystem device ID.
    pub subsystem_device: u16,
    /// PF revision.
    pub revision: u8,
    /// VF device ID (`sriov_vf_device`).
    pub vf_device: u16,
    /// VF subsystem vendor ID.
    pub vf_subsystem_vendor: u16,
    /// VF subsystem device ID.
    pub vf_subsystem_device: u16,
    /// PF kernel driver.
    pub pf_driver: &'static str,
    /// VF kernel driver.
    pub vf_driver: &'static str,
    /// Default `sriov_totalvfs`.
    pub total_vfs: u16,
    /// First-VF offset of function 0 (`sriov_offset`).
    pub vf_offset_base: u16,
    /// Whether higher functions' offsets skip the VFs of lower functions
    /// (multi-function NICs) or all functions use the same offset (one device per port).
    pub offset_per_function: bool,
    /// `sriov_stride`.
    pub vf_stride: u16,
    /// Link speed in Mb/s when the link is up.
    pub speed_mbps: u32,
    /// The model exposes RDMA (`infiniband/mlx5_N`).
    pub rdma: bool,
    /// The PF netdev has a devlink port, so `phys_port_name` reads `p<port>`; otherwise
    /// reading it fails with EOPNOTSUPP (i40e, igb, and all VFs in legacy mode).
    pub phys_port_name: bool,
}

impl NicModel {
    /// Static facts (IDs, drivers, SR-IOV geometry) of this model.
    pub fn info(self) -> ModelInfo {
        match self {
            // lspci -vv of a 2-port X710-DA2: "VF offset: 16, stride: 1, Device ID: 154c"
            // for function 0, 79 for function 1 (16 + 64 - 1).
            Self::IntelX710 => ModelInfo {
                vendor: 0x8086,
                device: 0x1572,
                subsystem_vendor: 0x8086,
                subsystem_device: 0x0007,
                revision: 0x02,
                vf_device: 0x154c,
                vf_subsystem_vendor: 0x8086,
                vf_subsystem_device: 0x0000,
                pf_driver: "i40e",
                vf_driver: "iavf",
                total_vfs: 64,
                vf_offset_base: 16,
                offset_per_function: true,
                vf_stride: 1,
                speed_mbps: 10_000,
                rdma: false,
                phys_port_name: false,
            },
            Self::IntelE810 => ModelInfo {
                vendor: 0x8086,
                device: 0x1592,
                subsystem_vendor: 0x8086,
                subsystem_device: 0x0002,
                revision: 0x02,
                vf_device: 0x1889,
                vf_subsystem_vendor: 0x8086,
                vf_subsystem_device: 0x0000,
                pf_driver: "ice",
                vf_driver: "iavf",
                total_vfs: 256,
                vf_offset_base: 8,
                offset_per_function: true,
                vf_stride: 1,
                speed_mbps: 100_000,
                rdma: false,
                phys_port_name: true,
            },
            // ConnectX-5 with NUM_OF_VFS=16: function 0 offset 2, function 1 offset 17.
            Self::MellanoxConnectX5 => ModelInfo {
                vendor: 0x15b3,
                device: 0x1017,
                subsystem_vendor: 0x15b3,
                subsystem_device: 0x0020,
                revision: 0x00,
                vf_device: 0x1018,
                vf_subsystem_vendor: 0x15b3,
                vf_subsystem_device: 0x0020,
                pf_driver: "mlx5_core",
                vf_driver: "mlx5_core",
                total_vfs: 16,
                vf_offset_base: 2,
                offset_per_function: true,
                vf_stride: 1,
                speed_mbps: 25_000,
                rdma: true,
                phys_port_name: true,
            },
            // QEMU igb: "Initial VFs: 8, Total VFs: 8, VF offset 128, stride 2"; the igb
            // driver caps sriov_totalvfs at 7. Each port is its own device (function 0).
            Self::Intel82576 => ModelInfo {
                vendor: 0x8086,
                device: 0x10c9,
                subsystem_vendor: 0x8086,
                subsystem_device: 0x0000,
                revision: 0x01,
                vf_device: 0x10ca,
                vf_subsystem_vendor: 0x8086,
                vf_subsystem_device: 0x0000,
                pf_driver: "igb",
                vf_driver: "igbvf",
                total_vfs: 7,
                vf_offset_base: 128,
                offset_per_function: false,
                vf_stride: 2,
                speed_mbps: 1000,
                rdma: false,
                phys_port_name: false,
            },
        }
    }

    /// All models.
    pub const ALL: [NicModel; 4] =
        [Self::IntelX710, Self::IntelE810, Self::MellanoxConnectX5, Self::Intel82576];
}

/// A MAC address (`aa:bb:cc:dd:ee:ff` in text form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The address with `n` added to its last two bytes (wrapping within them).
    pub fn offset(self, n: u16) -> Self {
        let mut b = self.0;
        let low = u16::from_be_bytes([b[4], b[5]]).wrapping_add(n);
        [b[4], b[5]] = low.to_be_bytes();
        Self(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl FromStr for MacAddr {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SimError::InvalidSpec(format!("invalid mac address {s:?}"));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn default_true() -> bool {
    true
}
fn default_numa() -> i32 {
    -1
}
fn default_mtu() -> u32 {
    1500
}

/// One physical function (one NIC port) of the simulated host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PfSpec {
    /// NIC model.
    pub model: NicModel,
    /// PCI address of the PF. Bus 0 places it directly on the root bus; any other bus
    /// places it behind a root port `DDDD:<bus-1>:00.0` on root bus `pciDDDD:<bus-1>`.
    pub pci_address: PciAddr,
    /// PF netdev name (as udev would have named it, e.g. `ens1f0`).
    pub netdev: String,
    /// NUMA node (`-1` = none, as `numa_node` prints on single-node hosts).
    #[serde(default = "default_numa")]
    pub numa_node: i32,
    /// MAC of the PF; VF `n` gets this + n + 1 in the last two bytes. Defaults to a
    /// deterministic locally administered address derived from the PF's position.
    #[serde(default)]
    pub mac_base: Option<MacAddr>,
    /// MTU of the PF and of its VF netdevs.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// VFs created at start (as if `sriov_numvfs` had been written).
    #[serde(default)]
    pub num_vfs: u16,
    /// Overrides the model's `sriov_totalvfs`.
    #[serde(default)]
    pub total_vfs: Option<u16>,
    /// Overrides `sriov_offset`.
    #[serde(default)]
    pub vf_offset: Option<u16>,
    /// Overrides `sriov_stride`.
    #[serde(default)]
    pub vf_stride: Option<u16>,
    /// Whether the PF driver is bound at start (if not, `sriov_numvfs` writes fail with ENOENT).
    #[serde(default = "default_true")]
    pub driver_bound: bool,
    /// Physical link (cable) state at start.
    #[serde(default = "default_true")]
    pub carrier: bool,
    /// PF netdev administratively up at start (VF netdevs always start down, as the
    /// kernel registers them).
    #[serde(default = "default_true")]
    pub admin_up: bool,
    /// Initial `sriov_drivers_autoprobe`.
    #[serde(default = "default_true")]
    pub drivers_autoprobe: bool,
    /// `acpi_index` of the PF (only onboard NICs have one; absent by default).
    #[serde(default)]
    pub acpi_index: Option<u32>,
    /// Port number used for `phys_port_name` (`p<port>`) and `dev_port`; defaults to the
    /// PCI function number.
    #[serde(default)]
    pub port: Option<u8>,
}

impl PfSpec {
    /// A PF with defaults: driver bound, carrier up, no VFs, MTU 1500, NUMA node -1.
    pub fn new(model: NicModel, pci_address: PciAddr, netdev: impl Into<String>) -> Self {
        Self {
            model,
            pci_address,
            netdev: netdev.into(),
            numa_node: -1,
            mac_base: None,
            mtu: 1500,
            num_vfs: 0,
            total_vfs: None,
            vf_offset: None,
            vf_stride: None,
            driver_bound: true,
            carrier: true,
            admin_up: true,
            drivers_autoprobe: true,
            acpi_index: None,
            port: None,
        }
    }

    /// Sets the NUMA node.
    pub fn numa_node(mut self, node: i32) -> Self {
        self.numa_node = node;
        self
    }

    /// Sets the initial VF count.
    pub fn num_vfs(mut self, n: u16) -> Self {
        self.num_vfs = n;
        self
    }

    /// Overrides `sriov_totalvfs`.
    pub fn total_vfs(mut self, n: u16) -> Self {
        self.total_vfs = Some(n);
        self
    }

    /// Sets the PF MAC (VF MACs derive from it).
    pub fn mac_base(mut self, mac: MacAddr) -> Self {
        self.mac_base = Some(mac);
        self
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    /// Starts with the PF driver unbound.
    pub fn driver_bound(mut self, bound: bool) -> Self {
        self.driver_bound = bound;
        self
    }

    /// Sets the initial physical link state.
    pub fn carrier(mut self, carrier: bool) -> Self {
        self.carrier = carrier;
        self
    }

    /// Sets the initial `sriov_drivers_autoprobe`.
    pub fn drivers_autoprobe(mut self, on: bool) -> Self {
        self.drivers_autoprobe = on;
        self
    }

    /// Effective `sriov_totalvfs`.
    pub fn effective_total_vfs(&self) -> u16 {
        self.total_vfs.unwrap_or(self.model.info().total_vfs)
    }

    /// Effective `sriov_stride`.
    pub fn effective_stride(&self) -> u16 {
        self.vf_stride.unwrap_or(self.model.info().vf_stride)
    }

    /// Effective `sriov_offset`: for multi-function NICs function `f` skips the VFs of
    /// the lower functions, like the firmware does (X710 port 1: 16 + 64 - 1 = 79).
    pub fn effective_offset(&self) -> u16 {
        self.vf_offset.unwrap_or_else(|| {
            let info = self.model.info();
            if info.offset_per_function {
                let f = u16::from(self.pci_address.function);
                info.vf_offset_base + f * self.effective_total_vfs().saturating_sub(1)
            } else {
                info.vf_offset_base
            }
        })
    }

    /// Effective port number.
    pub fn effective_port(&self) -> u8 {
        self.port.unwrap_or(self.pci_address.function)
    }
}

fn default_cpus_per_node() -> u32 {
    16
}
fn default_numa_nodes() -> u32 {
    2
}
fn default_iommu_base() -> u32 {
    20
}

/// The whole simulated host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimSpec {
    /// The SR-IOV PFs.
    pub pfs: Vec<PfSpec>,
    /// NUMA nodes of the host (for `local_cpulist`).
    #[serde(default = "default_numa_nodes")]
    pub numa_nodes: u32,
    /// Physical cores per NUMA node; each has an SMT sibling, so node `n` owns CPUs
    /// `n*c..(n+1)*c-1` and `N*c + n*c..`.
    #[serde(default = "default_cpus_per_node")]
    pub cpus_per_node: u32,
    /// First IOMMU group number; PFs (and their root ports) get groups from here in
    /// order, VFs get the lowest free numbers above when created.
    #[serde(default = "default_iommu_base")]
    pub iommu_group_base: u32,
    /// Delay between a VF binding to its netdev driver and its netdev appearing (iavf
    /// registers its netdev asynchronously after the PF mailbox handshake). 0 = immediate.
    #[serde(default)]
    pub vf_netdev_delay_ms: u64,
    /// How long a successful `sriov_numvfs` write blocks before returning (igb under
    /// QEMU: about 1.2 s for 7 VFs). Only applies to the FUSE mount.
    #[serde(default)]
    pub vf_create_delay_ms: u64,
}

impl Default for SimSpec {
    fn default() -> Self {
        Self::default_host()
    }
}

impl SimSpec {
    /// An empty host with default topology settings; add PFs with [`SimSpec::pf`].
    pub fn empty() -> Self {
        Self {
            pfs: Vec::new(),
            numa_nodes: default_numa_nodes(),
            cpus_per_node: default_cpus_per_node(),
            iommu_group_base: default_iommu_base(),
            vf_netdev_delay_ms: 0,
            vf_create_delay_ms: 0,
        }
    }

    /// Adds a PF (builder style).
    pub fn pf(mut self, pf: PfSpec) -> Self {
        self.pfs.push(pf);
        self
    }

    /// Sets the VF netdev delay (builder style).
    pub fn vf_netdev_delay_ms(mut self, ms: u64) -> Self {
        self.vf_netdev_delay_ms = ms;
        self
    }

    /// Sets the blocking delay of `sriov_numvfs` writes (builder style).
    pub fn vf_create_delay_ms(mut self, ms: u64) -> Self {
        self.vf_create_delay_ms = ms;
        self
    }

    /// A realistic dual-socket node: two X710 ports (`ens1f0`, `ens1f1`, NUMA 0), one
    /// E810-C port (`ens2f0`, NUMA 1) and two ConnectX-5 ports (`ens3f0np0`, `ens3f1np1`,
    /// NUMA 1), all PF drivers bound, no VFs yet.
    pub fn default_host() -> Self {
        let addr = |s: &str| {
            // The literals below are valid; fall back to a distinct address rather than panic.
            s.parse::<PciAddr>().unwrap_or(PciAddr {
                domain: 0xffff,
                bus: 0,
                device: 0,
                function: 0,
            })
        };
        Self::empty()
            .pf(PfSpec::new(NicModel::IntelX710, addr("0000:3b:00.0"), "ens1f0").numa_node(0))
            .pf(PfSpec::new(NicModel::IntelX710, addr("0000:3b:00.1"), "ens1f1").numa_node(0))
            .pf(PfSpec::new(NicModel::IntelE810, addr("0000:af:00.0"), "ens2f0").numa_node(1))
            .pf(PfSpec::new(NicModel::MellanoxConnectX5, addr("0000:d8:00.0"), "ens3f0np0")
                .numa_node(1))
            .pf(PfSpec::new(NicModel::MellanoxConnectX5, addr("0000:d8:00.1"), "ens3f1np1")
                .numa_node(1))
    }

    /// The benchmarks' big host: four Intel E810-C PFs (`ens1f0` to `ens4f0` on buses 17, 3b, 86
    /// and af; NUMA 0, 0, 1, 1), each with 256 VFs: 1024 VFs in all.
    pub fn bench_host() -> Self {
        let mut spec = Self::empty();
        for (i, (bus, numa)) in [(0x17, 0), (0x3b, 0), (0x86, 1), (0xaf, 1)].into_iter().enumerate()
        {
            let addr = PciAddr { domain: 0, bus, device: 0, function: 0 };
            spec = spec.pf(PfSpec::new(NicModel::IntelE810, addr, format!("ens{}f0", i + 1))
                .numa_node(numa)
                .num_vfs(256));
        }
        spec
    }

    /// Parses a spec from YAML or JSON text (JSON is valid YAML) and validates it.
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let spec: Self = serde_yaml_ng::from_str(text)
            .map_err(|e| SimError::InvalidSpec(format!("cannot parse spec: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads and parses a spec file (YAML or JSON).
    pub fn from_file(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            op: "read spec",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Checks the spec for conflicts: duplicate addresses or names, VF address ranges that
    /// collide with other devices, names too long for the kernel, impossible VF counts.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::InvalidSpec(m));
        let mut addrs = BTreeSet::new();
        let mut names = BTreeSet::new();
        let root_ports: BTreeSet<PciAddr> =
            self.pfs.iter().filter_map(|pf| root_port_of(pf.pci_address)).collect();
        for pf in &self.pfs {
            if root_ports.contains(&pf.pci_address) {
                return bad(format!("pf {} sits where a root port must be", pf.pci_address));
            }
            if !addrs.insert(pf.pci_address) {
                return bad(format!("duplicate pci address {}", pf.pci_address));
            }
            if !names.insert(pf.netdev.clone()) {
                return bad(format!("duplicate netdev name {}", pf.netdev));
            }
        }
        for pf in &self.pfs {
            let total = pf.effective_total_vfs();
            let last_vf_name = vf_netdev_name(&pf.netdev, total.saturating_sub(1));
            if pf.netdev.is_empty() || last_vf_name.len() > 15 || pf.netdev.contains(['/', ' ']) {
                return bad(format!(
                    "netdev name {:?} unusable: VF names like {last_vf_name:?} must fit 15 bytes",
                    pf.netdev
                ));
            }
            if pf.num_vfs > total {
                return bad(format!(
                    "pf {}: numVfs {} exceeds totalVfs {total}",
                    pf.pci_address, pf.num_vfs
                ));
            }
            if pf.num_vfs > 0 && !pf.driver_bound {
                return bad(format!("pf {}: numVfs needs driverBound", pf.pci_address));
            }
            if !(68..=9702).contains(&pf.mtu) {
                return bad(format!("pf {}: mtu {} out of range", pf.pci_address, pf.mtu));
            }
            if pf.numa_node < -1 || pf.numa_node >= self.numa_nodes as i32 {
                return bad(format!(
                    "pf {}: numaNode {} outside -1..{}",
                    pf.pci_address, pf.numa_node, self.numa_nodes
                ));
            }
            if total > 0 && pf.effective_stride() == 0 {
                return bad(format!("pf {}: vfStride must not be 0", pf.pci_address));
            }
            for i in 0..total {
                let stride = pf.effective_stride();
                let Some(vf) = pf.pci_address.vf_addr(pf.effective_offset(), stride, i) else {
                    return bad(format!("pf {}: VF {i} beyond bus ff", pf.pci_address));
                };
                if root_ports.contains(&vf) || !addrs.insert(vf) {
                    return bad(format!(
                        "pf {}: VF {i} address {vf} collides with another device",
                        pf.pci_address
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The root port a PF at `pf` sits behind: `DDDD:<bus-1>:00.0`, or none on bus 0.
pub fn root_port_of(pf: PciAddr) -> Option<PciAddr> {
    (pf.bus > 0).then(|| PciAddr { domain: pf.domain, bus: pf.bus - 1, device: 0, function: 0 })
}

/// The VF netdev name the kernel + udev give VF `index` of PF netdev `pf`:
/// `<pf>v<index>`, where a trailing `np<N>` (phys_port_name suffix) is dropped first,
/// as udev names VFs after their own slot (`ens3f0np0` -> `ens3f0v2`).
pub fn vf_netdev_name(pf: &str, index: u16) -> String {
    let base = match pf.rfind("np") {
        Some(pos)
            if pos > 0
                && pf.len() > pos + 2
                && pf[pos + 2..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &pf[..pos]
        }
        _ => pf,
    };
    format!("{base}v{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_host_is_valid_and_has_1024_vfs() {
        let spec = SimSpec::bench_host();
        spec.validate().unwrap();
        let names: Vec<_> = spec.pfs.iter().map(|p| p.netdev.as_str()).collect();
        assert_eq!(names, ["ens1f0", "ens2f0", "ens3f0", "ens4f0"]);
        assert_eq!(spec.pfs[1].pci_address.to_string(), "0000:3b:00.0");
        assert_eq!(spec.pfs.iter().map(|p| p.numa_node).collect::<Vec<_>>(), [0, 0, 1, 1]);
        assert_eq!(spec.pfs.iter().map(|p| u32::from(p.num_vfs)).sum::<u32>(), 1024);
    }

    #[test]
    fn default_host_is_valid_and_matches_description() {
        let spec = SimSpec::default_host();
        spec.validate().unwrap();
        let models: Vec<_> = spec.pfs.iter().map(|p| p.model).collect();
        assert_eq!(
            models,
            [
                NicModel::IntelX710,
                NicModel::IntelX710,
                NicModel::IntelE810,
                NicModel::MellanoxConnectX5,
                NicModel::MellanoxConnectX5
            ]
        );
        assert_eq!(spec.pfs[1].effective_offset(), 79);
        assert_eq!(spec.pfs[4].effective_offset(), 17);
    }

    #[test]
    fn yaml_and_json_parse() {
        let yaml = r#"
pfs:
  - model: x710
    pciAddress: "0000:3b:00.0"
    netdev: ens1f0
    numVfs: 4
    macBase: "02:00:00:00:01:00"
  - model: igb
    pciAddress: "0000:01:00.0"
    netdev: eth0
    totalVfs: 7
vfNetdevDelayMs: 50
"#;
        let spec = SimSpec::parse(yaml).unwrap();
        assert_eq!(spec.pfs[0].num_vfs, 4);
        assert_eq!(spec.pfs[1].model, NicModel::Intel82576);
        assert_eq!(spec.vf_netdev_delay_ms, 50);
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.contains("\"pciAddress\":\"0000:3b:00.0\""), "{json}");
        assert_eq!(SimSpec::parse(&json).unwrap(), spec);
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let base = SimSpec::empty().pf(PfSpec::new(
            NicModel::IntelX710,
            "0000:3b:00.0".parse().unwrap(),
            "ens1f0",
        ));
        base.validate().unwrap();
        let mut dup = base.clone();
        dup.pfs.push(dup.pfs[0].clone());
        assert!(dup.validate().is_err());
        let mut too_many = base.clone();
        too_many.pfs[0].num_vfs = 65;
        assert!(too_many.validate().is_err());
        let mut long = base.clone();
        long.pfs[0].netdev = "averyverylongn".into();
        assert!(long.validate().is_err());
        // A device sitting where X710 VF 0 would land.
        let clash = base.clone().pf(PfSpec::new(
            NicModel::IntelX710,
            "0000:3b:02.0".parse().unwrap(),
            "ens9",
        ));
        assert!(clash.validate().is_err());
        assert!(SimSpec::parse("pfs: [{model: x999}]").is_err());
    }

    #[test]
    fn vf_names_follow_udev() {
        assert_eq!(vf_netdev_name("ens1f0", 3), "ens1f0v3");
        assert_eq!(vf_netdev_name("ens3f0np0", 2), "ens3f0v2");
        assert_eq!(vf_netdev_name("np0", 1), "np0v1");
    }

    #[test]
    fn mac_offset_and_parse() {
        let m: MacAddr = "02:00:00:00:01:ff".parse().unwrap();
        assert_eq!(m.offset(1).to_string(), "02:00:00:00:02:00");
        assert!("02:00:00:00:01".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:01:zz".parse::<MacAddr>().is_err());
    }
}
