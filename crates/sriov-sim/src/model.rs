//! The simulated kernel: PCI devices, drivers, SR-IOV state, IOMMU groups and netdevs,
//! the sysfs/devfs layout rendered from them, and the kernel's reactions to writes.
//!
//! Everything here is pure logic (no syscalls) unless a veth [`Backing`] is attached.
//! Reactions return the errno the kernel returns for the same write; comments cite the
//! kernel function whose behaviour is reproduced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;

use crate::backing::{Backing, LinkSpec};
use crate::error::SimError;
use crate::kstr::{kstrtobool, kstrtoint, kstrtou16, sysfs_streq};
use crate::pci::PciAddr;
use crate::spec::{MacAddr, ModelInfo, NicModel, SimSpec, root_port_of, vf_netdev_name};
use crate::tree::{Ino, NodeKind, Removed, Render, Section, Tree};
use crate::uevent::{Action, Uevent, UeventSink};

/// PCI class of an Ethernet controller.
const CLASS_ETHERNET: u32 = 0x02_0000;
/// PCI class of a PCIe root port (PCI-to-PCI bridge).
const CLASS_BRIDGE: u32 = 0x06_0400;
/// `PCI_ANY_ID` in dynamic IDs.
const ANY_ID: u32 = !0;
/// Major number used for `/dev/vfio/<group>` nodes (dynamically allocated in the kernel;
/// 242 is a typical value).
const VFIO_GROUP_MAJOR: u32 = 242;
/// `/dev/vfio/vfio` is misc device 10:196.
const VFIO_CONTAINER_RDEV: u32 = (10 << 8) | 196;
/// Prefix of every sysfs path.
const DEVICES: &str = "sys/devices";
/// The driver that gives a device to userspace through a `/dev/vfio/<group>` node.
const VFIO_PCI: &str = "vfio-pci";

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;

/// Where a file's content comes from and where its writes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Src {
    /// Fixed text.
    Text(String),
    /// A PCI device attribute.
    Dev(PciAddr, DevAttr),
    /// A PCI driver attribute.
    Drv(String, DrvAttr),
    /// A PCI bus attribute.
    Bus(BusAttr),
    /// A netdev attribute of the device's netdev.
    Net(PciAddr, NetAttr),
}

/// PCI device attributes (drivers/pci/pci-sysfs.c, drivers/pci/iov.c).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevAttr {
    Vendor,
    Device,
    SubsystemVendor,
    SubsystemDevice,
    Class,
    Revision,
    NumaNode,
    LocalCpulist,
    DriverOverride,
    Enable,
    Modalias,
    Uevent,
    Reset,
    AcpiIndex,
    SriovTotalVfs,
    SriovNumVfs,
    SriovOffset,
    SriovStride,
    SriovVfDevice,
    SriovDriversAutoprobe,
    /// `infiniband/mlx5_N/ports/1/state`
    IbPortState,
    /// `infiniband/mlx5_N/ports/1/phys_state`
    IbPortPhysState,
}

/// PCI driver attributes (drivers/base/bus.c, drivers/pci/pci-driver.c).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrvAttr {
    Bind,
    Unbind,
    NewId,
    RemoveId,
    Uevent,
}

/// PCI bus attributes (drivers/base/bus.c, drivers/pci/pci-sysfs.c).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusAttr {
    DriversProbe,
    DriversAutoprobe,
    Rescan,
    Uevent,
}

/// Netdev attributes (net/core/net-sysfs.c).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetAttr {
    Address,
    Broadcast,
    AddrLen,
    AddrAssignType,
    Type,
    Ifindex,
    Iflink,
    DevId,
    DevPort,
    Mtu,
    Flags,
    Operstate,
    Carrier,
    Speed,
    Duplex,
    TxQueueLen,
    Ifalias,
    NameAssignType,
    PhysPortName,
    PhysSwitchId,
    Uevent,
}

/// RFC 2863 operational state, as `operstate` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperState {
    /// `unknown`
    Unknown,
    /// `notpresent`
    NotPresent,
    /// `down`
    Down,
    /// `lowerlayerdown`
    LowerLayerDown,
    /// `testing`
    Testing,
    /// `dormant`
    Dormant,
    /// `up`
    Up,
}

impl OperState {
    /// The sysfs spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::NotPresent => "notpresent",
            Self::Down => "down",
            Self::LowerLayerDown => "lowerlayerdown",
            Self::Testing => "testing",
            Self::Dormant => "dormant",
            Self::Up => "up",
        }
    }
}

/// The state of a netdev as seen from the node network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Current name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// MAC address.
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// `IFF_UP`.
    pub admin_up: bool,
    /// Carrier (lower layer up).
    pub carrier: bool,
    /// Operational state.
    pub operstate: OperState,
    /// `dev->flags` as `flags` prints them (no RUNNING/LOWER_UP bits).
    pub flags: u32,
}

const IFF_UP: u32 = 0x1;
const IFF_BROADCAST: u32 = 0x2;
const IFF_MULTICAST: u32 = 0x1000;

/// A netdev owned by a device bound to a netdev driver.
#[derive(Clone, Debug)]
struct Netdev {
    name: String,
    mac: MacAddr,
    mtu: u32,
    ifindex: u32,
    admin_up: bool,
    /// Unbacked only: whether the link is in the node netns (tests can pretend a CNI
    /// moved it away).
    in_node_netns: bool,
}

#[derive(Clone, Debug)]
struct PfState {
    index: usize,
    model: NicModel,
    total_vfs: u16,
    offset: u16,
    stride: u16,
    num_vfs: u16,
    drivers_autoprobe: bool,
    carrier: bool,
    admin_up: bool,
    mac: MacAddr,
    mtu: u32,
    netdev_name: String,
    port: u8,
    acpi_index: Option<u32>,
}

#[derive(Clone, Debug)]
enum DevKind {
    RootPort,
    Pf(Box<PfState>),
    Vf { pf: PciAddr, index: u16 },
}

#[derive(Clone, Debug)]
struct Device {
    addr: PciAddr,
    /// Root-relative directory (`sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0`).
    dir: String,
    kind: DevKind,
    vendor: u16,
    device: u16,
    subsystem_vendor: u16,
    subsystem_device: u16,
    revision: u8,
    class: u32,
    numa_node: i32,
    driver: Option<String>,
    driver_override: Option<String>,
    /// Enabled through the `enable` attribute while unbound.
    manually_enabled: bool,
    iommu_group: u32,
    netdev: Option<Netdev>,
    rdma: Option<u32>,
    /// Bumped on every bind/unbind so stale delayed events are dropped.
    bind_gen: u64,
}

impl Device {
    /// A function as `pci_device_add()` leaves it: no IDs yet (the caller sets them), unbound,
    /// no override, not enabled by hand, no netdev or RDMA device.
    fn added(addr: PciAddr, dir: String, kind: DevKind, numa_node: i32, iommu_group: u32) -> Self {
        Device {
            addr,
            dir,
            kind,
            vendor: 0,
            device: 0,
            subsystem_vendor: 0,
            subsystem_device: 0,
            revision: 0,
            class: 0,
            numa_node,
            driver: None,
            driver_override: None,
            manually_enabled: false,
            iommu_group,
            netdev: None,
            rdma: None,
            bind_gen: 0,
        }
    }

    fn is_vf(&self) -> bool {
        matches!(self.kind, DevKind::Vf { .. })
    }
    fn pf_state(&self) -> Option<&PfState> {
        match &self.kind {
            DevKind::Pf(p) => Some(p),
            _ => None,
        }
    }
}

/// A dynamic ID added through `new_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DynId {
    vendor: u32,
    device: u32,
    subvendor: u32,
    subdevice: u32,
    class: u32,
    class_mask: u32,
}

impl DynId {
    /// `pci_match_one_device()`.
    fn matches(&self, d: &Device) -> bool {
        let m = |id: u32, v: u16| id == ANY_ID || id == u32::from(v);
        m(self.vendor, d.vendor)
            && m(self.device, d.device)
            && m(self.subvendor, d.subsystem_vendor)
            && m(self.subdevice, d.subsystem_device)
            && (self.class ^ d.class) & self.class_mask == 0
    }
}

#[derive(Clone, Debug)]
struct Driver {
    name: String,
    /// Static `id_table` entries (vendor, device).
    ids: Vec<(u16, u16)>,
    /// Static class match (pcieport).
    class: Option<u32>,
    dyn_ids: Vec<DynId>,
    /// Binding creates a netdev.
    netdev: bool,
    /// Binding creates an RDMA device.
    rdma: bool,
}

impl Driver {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ids: Vec::new(),
            class: None,
            dyn_ids: Vec::new(),
            netdev: false,
            rdma: false,
        }
    }
}

/// The simulated host. See the crate docs for the overall picture.
#[derive(Debug)]
pub struct Sim {
    spec: SimSpec,
    devices: BTreeMap<PciAddr, Device>,
    /// In registration (module load) order: the kernel's `device_attach()` tries
    /// drivers in this order.
    drivers: Vec<Driver>,
    bus_autoprobe: bool,
    next_ifindex: u32,
    pending_netdevs: Vec<(Instant, PciAddr, u64)>,
    tree: Tree,
    /// Re-render everything at the next sync.
    full_render: bool,
    /// Devices whose section must be re-rendered at the next sync.
    dirty_devs: BTreeSet<PciAddr>,
    removed: Vec<Removed>,
    created: SystemTime,
    pub(crate) backing: Option<Backing>,
    /// Where uevents go (`None`: nowhere).
    pub(crate) uevents: Option<UeventSink>,
}

fn dev_dir_of(addr: PciAddr) -> String {
    match root_port_of(addr) {
        Some(rp) => format!("{DEVICES}/pci{:04x}:{:02x}/{rp}/{addr}", rp.domain, rp.bus),
        None => format!("{DEVICES}/pci{:04x}:00/{addr}", addr.domain),
    }
}

fn parent_dir(dir: &str) -> &str {
    dir.rsplit_once('/').map_or("", |(p, _)| p)
}

impl Sim {
    /// Builds the host described by `spec`: root ports, PFs (bound to their drivers if
    /// `driverBound`), and `numVfs` VFs per PF, as if written to `sriov_numvfs`.
    pub fn new(spec: SimSpec) -> Result<Self, SimError> {
        spec.validate()?;
        let mut sim = Self {
            spec: spec.clone(),
            devices: BTreeMap::new(),
            drivers: Vec::new(),
            bus_autoprobe: true,
            next_ifindex: 2,
            pending_netdevs: Vec::new(),
            tree: Tree::new(),
            full_render: true,
            dirty_devs: BTreeSet::new(),
            removed: Vec::new(),
            created: SystemTime::now(),
            backing: None,
            uevents: None,
        };
        sim.register_drivers();
        let mut next_group = spec.iommu_group_base;
        for (index, pf) in spec.pfs.iter().enumerate() {
            let info = pf.model.info();
            if let Some(rp) = root_port_of(pf.pci_address)
                && !sim.devices.contains_key(&rp)
            {
                sim.devices.insert(
                    rp,
                    Device {
                        // Intel Sky Lake-E PCI Express Root Port A.
                        vendor: 0x8086,
                        device: 0x2030,
                        subsystem_vendor: 0x8086,
                        subsystem_device: 0x0000,
                        revision: 0x04,
                        class: CLASS_BRIDGE,
                        ..Device::added(
                            rp,
                            format!("{DEVICES}/pci{:04x}:{:02x}/{rp}", rp.domain, rp.bus),
                            DevKind::RootPort,
                            pf.numa_node,
                            next_group,
                        )
                    },
                );
                next_group += 1;
                sim.probe(rp);
            }
            let mac = pf.mac_base.unwrap_or(MacAddr([0x02, 0x5e, 0x00, index as u8, 0, 0]));
            let state = PfState {
                index,
                model: pf.model,
                total_vfs: pf.effective_total_vfs(),
                offset: pf.effective_offset(),
                stride: pf.effective_stride(),
                num_vfs: 0,
                drivers_autoprobe: pf.drivers_autoprobe,
                carrier: pf.carrier,
                admin_up: pf.admin_up,
                mac,
                mtu: pf.mtu,
                netdev_name: pf.netdev.clone(),
                port: pf.effective_port(),
                acpi_index: pf.acpi_index,
            };
            sim.devices.insert(
                pf.pci_address,
                Device {
                    vendor: info.vendor,
                    device: info.device,
                    subsystem_vendor: info.subsystem_vendor,
                    subsystem_device: info.subsystem_device,
                    revision: info.revision,
                    class: CLASS_ETHERNET,
                    ..Device::added(
                        pf.pci_address,
                        dev_dir_of(pf.pci_address),
                        DevKind::Pf(Box::new(state)),
                        pf.numa_node,
                        next_group,
                    )
                },
            );
            next_group += 1;
            if pf.driver_bound {
                sim.probe(pf.pci_address);
            }
        }
        for pf in &spec.pfs {
            if pf.num_vfs > 0 {
                sim.set_num_vfs(pf.pci_address, pf.num_vfs).map_err(|errno| SimError::Kernel {
                    what: format!("creating {} VFs on {}", pf.num_vfs, pf.pci_address),
                    errno,
                })?;
            }
        }
        Ok(sim)
    }

    fn register_drivers(&mut self) {
        let mut pcieport = Driver::new("pcieport");
        pcieport.class = Some(CLASS_BRIDGE);
        self.drivers.push(pcieport);
        let mut models: Vec<NicModel> = self.spec.pfs.iter().map(|p| p.model).collect();
        models.dedup();
        for model in NicModel::ALL {
            if !models.contains(&model) {
                continue;
            }
            let info = model.info();
            for (name, id, rdma) in [
                (info.pf_driver, info.device, info.rdma),
                (info.vf_driver, info.vf_device, info.rdma),
            ] {
                let idx = match self.drivers.iter().position(|d| d.name == name) {
                    Some(i) => i,
                    None => {
                        let mut d = Driver::new(name);
                        d.netdev = true;
                        d.rdma = rdma;
                        self.drivers.push(d);
                        self.drivers.len() - 1
                    }
                };
                let ids = &mut self.drivers[idx].ids;
                if !ids.contains(&(info.vendor, id)) {
                    ids.push((info.vendor, id));
                }
            }
        }
        // vfio-pci's table only has an override-only wildcard entry: it matches a device
        // only through driver_override or a dynamic ID (new_id).
        self.drivers.push(Driver::new(VFIO_PCI));
    }

    /// The spec this host was built from.
    pub fn spec(&self) -> &SimSpec {
        &self.spec
    }

    /// Creation time (used as every node's timestamp).
    pub fn created(&self) -> SystemTime {
        self.created
    }

    // ------------------------------------------------------------------ queries

    /// Addresses of the PFs, in spec order.
    pub fn pfs(&self) -> Vec<PciAddr> {
        let mut pfs: Vec<(usize, PciAddr)> =
            self.devices.values().filter_map(|d| d.pf_state().map(|p| (p.index, d.addr))).collect();
        pfs.sort();
        pfs.into_iter().map(|(_, a)| a).collect()
    }

    /// Addresses of the existing VFs of `pf`, by VF index.
    pub fn vfs(&self, pf: PciAddr) -> Vec<PciAddr> {
        let mut vfs: Vec<(u16, PciAddr)> = self
            .devices
            .values()
            .filter_map(|d| match d.kind {
                DevKind::Vf { pf: p, index } if p == pf => Some((index, d.addr)),
                _ => None,
            })
            .collect();
        vfs.sort();
        vfs.into_iter().map(|(_, a)| a).collect()
    }

    /// Driver bound to `addr`, if any.
    pub fn driver_of(&self, addr: PciAddr) -> Option<&str> {
        self.devices.get(&addr)?.driver.as_deref()
    }

    /// IOMMU group of `addr`.
    pub fn iommu_group_of(&self, addr: PciAddr) -> Option<u32> {
        self.devices.get(&addr).map(|d| d.iommu_group)
    }

    /// Root-relative sysfs directory of `addr` (e.g.
    /// `sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0`).
    pub fn device_dir(&self, addr: PciAddr) -> Option<&str> {
        self.devices.get(&addr).map(|d| d.dir.as_str())
    }

    /// The name the device's netdev was registered with (which is its current name
    /// unless something renamed the backing link), if it has one.
    pub fn netdev_name(&self, addr: PciAddr) -> Option<&str> {
        self.devices.get(&addr)?.netdev.as_ref().map(|n| n.name.as_str())
    }

    /// The device's link as the node netns sees it now (`None` when it has no netdev or
    /// the link is elsewhere, e.g. moved into a pod netns).
    pub fn link_info(&self, addr: PciAddr) -> Option<LinkInfo> {
        let dev = self.devices.get(&addr)?;
        let nd = dev.netdev.as_ref()?;
        if let Some(b) = &self.backing {
            return b.link(addr).cloned();
        }
        if !nd.in_node_netns {
            return None;
        }
        let carrier = self.device_carrier(dev);
        let running = nd.admin_up;
        Some(LinkInfo {
            name: nd.name.clone(),
            ifindex: nd.ifindex,
            mac: nd.mac,
            mtu: nd.mtu,
            admin_up: nd.admin_up,
            carrier: running && carrier,
            operstate: if running && carrier { OperState::Up } else { OperState::Down },
            flags: IFF_BROADCAST | IFF_MULTICAST | if nd.admin_up { IFF_UP } else { 0 },
        })
    }

    /// Physical link state of the PF a device belongs to (VFs follow their PF, as with
    /// `link-state auto`).
    fn device_carrier(&self, dev: &Device) -> bool {
        let pf = match dev.kind {
            DevKind::Pf(ref p) => return p.carrier,
            DevKind::Vf { pf, .. } => pf,
            DevKind::RootPort => return false,
        };
        self.devices.get(&pf).and_then(|d| d.pf_state()).is_some_and(|p| p.carrier)
    }

    // ------------------------------------------------------------------ path API

    /// Brings the rendered tree up to date: applies due delayed events, refreshes the
    /// backing link cache and re-renders if anything changed. Every access calls it.
    pub fn sync(&mut self) {
        if !self.pending_netdevs.is_empty() {
            let now = Instant::now();
            let (due, later): (Vec<_>, Vec<_>) =
                self.pending_netdevs.drain(..).partition(|(at, _, _)| *at <= now);
            self.pending_netdevs = later;
            for (_, addr, generation) in due {
                if self.devices.get(&addr).is_some_and(|d| d.bind_gen == generation) {
                    self.create_netdev(addr);
                }
            }
        }
        if let Some(b) = &mut self.backing {
            let changed = b.refresh();
            self.dirty_devs.extend(changed);
        }
        if self.full_render {
            self.full_render = false;
            self.dirty_devs.clear();
            let removed = self.tree.apply(Section::Global, self.render_global());
            self.removed.extend(removed);
            for d in self.devices.values() {
                let removed = self.tree.apply(Section::Device(d.addr), self.render_device(d));
                self.removed.extend(removed);
            }
        } else if !self.dirty_devs.is_empty() {
            for addr in std::mem::take(&mut self.dirty_devs) {
                let render = match self.devices.get(&addr) {
                    Some(d) => self.render_device(d),
                    // Removed device: drop its section.
                    None => Render::new(),
                };
                let removed = self.tree.apply(Section::Device(addr), render);
                self.removed.extend(removed);
            }
        }
    }

    /// The time until the next delayed event (VF netdev appearing), if any.
    pub fn next_event_in(&self) -> Option<Duration> {
        let now = Instant::now();
        self.pending_netdevs.iter().map(|(at, _, _)| at.saturating_duration_since(now)).min()
    }

    /// Takes the list of cacheable nodes removed since the last call.
    pub(crate) fn take_removed(&mut self) -> Vec<Removed> {
        std::mem::take(&mut self.removed)
    }

    /// The rendered tree (call [`Sim::sync`] first).
    pub(crate) fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Resolves a root-relative path, following symlinks (also in the last component
    /// when `follow_last`). ENOENT if absent, ENOTDIR/ELOOP as the VFS would.
    pub(crate) fn resolve(&self, path: &str, follow_last: bool) -> Result<Ino, Errno> {
        let mut todo: Vec<String> =
            path.split('/').filter(|c| !c.is_empty()).rev().map(str::to_owned).collect();
        let mut cur = crate::tree::ROOT_INO;
        let mut hops = 0;
        while let Some(comp) = todo.pop() {
            let node = self.tree.get(cur).ok_or(Errno::ENOENT)?;
            if node.kind != NodeKind::Dir {
                return Err(Errno::ENOTDIR);
            }
            match comp.as_str() {
                "." => continue,
                ".." => {
                    cur = node.parent;
                    continue;
                }
                _ => {}
            }
            let child = self.tree.child(cur, &comp).ok_or(Errno::ENOENT)?;
            let is_last = todo.is_empty();
            match &self.tree.get(child).ok_or(Errno::ENOENT)?.kind {
                NodeKind::Link(target) if !is_last || follow_last => {
                    hops += 1;
                    if hops > 40 {
                        return Err(Errno::ELOOP);
                    }
                    for c in target.split('/').filter(|c| !c.is_empty()).rev() {
                        todo.push(c.to_owned());
                    }
                }
                _ => cur = child,
            }
        }
        Ok(cur)
    }

    /// Reads a file like `cat` would (following symlinks). Errors are the kernel's:
    /// EACCES for write-only attributes, EINVAL for `carrier` of a down link, ...
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, Errno> {
        self.sync();
        let ino = self.resolve(path, true)?;
        self.check_open(ino, true, false)?;
        self.read_ino(ino)
    }

    /// [`Sim::read`] as a string.
    pub fn read_string(&mut self, path: &str) -> Result<String, Errno> {
        self.read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Writes a file like `echo -n DATA > path` (following symlinks) and runs the
    /// kernel's reaction. Errors are the kernel's errno for that write.
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<(), Errno> {
        self.sync();
        let ino = self.resolve(path, true)?;
        self.check_open(ino, false, true)?;
        self.write_ino(ino, data)?;
        self.sync();
        Ok(())
    }

    /// Target of a symlink (not following a link in the last component).
    pub fn read_link(&mut self, path: &str) -> Result<String, Errno> {
        self.sync();
        let ino = self.resolve(path, false)?;
        match &self.tree.get(ino).ok_or(Errno::ENOENT)?.kind {
            NodeKind::Link(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Sorted names in a directory (following symlinks).
    pub fn list_dir(&mut self, path: &str) -> Result<Vec<String>, Errno> {
        self.sync();
        let ino = self.resolve(path, true)?;
        let node = self.tree.get(ino).ok_or(Errno::ENOENT)?;
        if node.kind != NodeKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(node.children.keys().cloned().collect())
    }

    /// Whether a path exists (following symlinks).
    pub fn exists(&mut self, path: &str) -> bool {
        self.sync();
        self.resolve(path, true).is_ok()
    }

    /// kernfs_fop_open(): opening for write needs a write bit and a store method,
    /// opening for read needs a read bit; otherwise EACCES, even for root.
    pub(crate) fn check_open(&self, ino: Ino, read: bool, write: bool) -> Result<(), Errno> {
        match &self.tree.get(ino).ok_or(Errno::ENOENT)?.kind {
            NodeKind::File { mode, .. } => {
                if (write && mode & 0o222 == 0) || (read && mode & 0o444 == 0) {
                    Err(Errno::EACCES)
                } else {
                    Ok(())
                }
            }
            NodeKind::Dir if write => Err(Errno::EISDIR),
            // Opening a /dev/vfio node for real I/O is beyond the sim.
            NodeKind::CharDev { .. } => Err(Errno::ENXIO),
            _ => Ok(()),
        }
    }

    /// Content of a file node.
    pub(crate) fn read_ino(&self, ino: Ino) -> Result<Vec<u8>, Errno> {
        match &self.tree.get(ino).ok_or(Errno::ENOENT)?.kind {
            NodeKind::File { src, .. } => self.show(src).map(String::into_bytes),
            NodeKind::Dir => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Runs the store reaction of a file node.
    pub(crate) fn write_ino(&mut self, ino: Ino, data: &[u8]) -> Result<(), Errno> {
        let src = match &self.tree.get(ino).ok_or(Errno::ENOENT)?.kind {
            NodeKind::File { src, .. } => src.clone(),
            NodeKind::Dir => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        };
        // sysfs_kf_write(): an empty write stores nothing and succeeds.
        if data.is_empty() {
            return Ok(());
        }
        // kernfs copies at most PAGE_SIZE - 1 bytes.
        let data = &data[..data.len().min(4095)];
        self.store(&src, data)
    }

    // ------------------------------------------------------------------ show

    fn show(&self, src: &Src) -> Result<String, Errno> {
        match src {
            Src::Text(t) => Ok(t.clone()),
            Src::Dev(addr, attr) => self.show_dev(*addr, *attr),
            Src::Drv(_, _) => Err(Errno::EACCES),
            Src::Bus(BusAttr::DriversAutoprobe) => {
                Ok(format!("{}\n", u8::from(self.bus_autoprobe)))
            }
            Src::Bus(_) => Err(Errno::EACCES),
            Src::Net(addr, attr) => self.show_net(*addr, *attr),
        }
    }

    fn show_dev(&self, addr: PciAddr, attr: DevAttr) -> Result<String, Errno> {
        let d = self.devices.get(&addr).ok_or(Errno::ENODEV)?;
        let pf = d.pf_state();
        let need_pf = || pf.ok_or(Errno::ENOENT);
        Ok(match attr {
            DevAttr::Vendor => format!("{:#06x}\n", d.vendor),
            DevAttr::Device => format!("{:#06x}\n", d.device),
            DevAttr::SubsystemVendor => format!("{:#06x}\n", d.subsystem_vendor),
            DevAttr::SubsystemDevice => format!("{:#06x}\n", d.subsystem_device),
            DevAttr::Class => format!("{:#08x}\n", d.class),
            DevAttr::Revision => format!("{:#04x}\n", d.revision),
            DevAttr::NumaNode => format!("{}\n", d.numa_node),
            DevAttr::LocalCpulist => format!("{}\n", self.cpulist(d.numa_node)),
            DevAttr::DriverOverride => match &d.driver_override {
                Some(o) => format!("{o}\n"),
                // driver_override_show() prints "%s\n" of a NULL pointer.
                None => "(null)\n".to_owned(),
            },
            DevAttr::Enable => format!("{}\n", u8::from(d.driver.is_some() || d.manually_enabled)),
            DevAttr::Modalias => format!("{}\n", modalias(d)),
            DevAttr::Uevent => {
                let mut s = String::new();
                if let Some(drv) = &d.driver {
                    s.push_str(&format!("DRIVER={drv}\n"));
                }
                s.push_str(&format!(
                    "PCI_CLASS={:X}\nPCI_ID={:04X}:{:04X}\nPCI_SUBSYS_ID={:04X}:{:04X}\nPCI_SLOT_NAME={}\nMODALIAS={}\n",
                    d.class,
                    d.vendor,
                    d.device,
                    d.subsystem_vendor,
                    d.subsystem_device,
                    d.addr,
                    modalias(d)
                ));
                s
            }
            DevAttr::Reset => return Err(Errno::EACCES),
            DevAttr::AcpiIndex => format!("{}\n", need_pf()?.acpi_index.unwrap_or(0)),
            DevAttr::SriovTotalVfs => format!("{}\n", need_pf()?.total_vfs),
            DevAttr::SriovNumVfs => format!("{}\n", need_pf()?.num_vfs),
            DevAttr::SriovOffset => format!("{}\n", need_pf()?.offset),
            DevAttr::SriovStride => format!("{}\n", need_pf()?.stride),
            // sriov_vf_device_show(): "%x\n", no 0x prefix.
            DevAttr::SriovVfDevice => format!("{:x}\n", need_pf()?.model.info().vf_device),
            DevAttr::SriovDriversAutoprobe => {
                format!("{}\n", u8::from(need_pf()?.drivers_autoprobe))
            }
            DevAttr::IbPortState if self.device_carrier(d) => "4: ACTIVE\n".to_owned(),
            DevAttr::IbPortState => "1: DOWN\n".to_owned(),
            DevAttr::IbPortPhysState if self.device_carrier(d) => "5: LinkUp\n".to_owned(),
            DevAttr::IbPortPhysState => "3: Disabled\n".to_owned(),
        })
    }

    fn cpulist(&self, node: i32) -> String {
        let c = self.spec.cpus_per_node;
        let n = self.spec.numa_nodes;
        match u32::try_from(node) {
            Ok(node) if c > 0 => {
                let a = node * c;
                let b = n * c + node * c;
                format!("{}-{},{}-{}", a, a + c - 1, b, b + c - 1)
            }
            _ => format!("0-{}", (2 * n * c).saturating_sub(1)),
        }
    }

    fn show_net(&self, addr: PciAddr, attr: NetAttr) -> Result<String, Errno> {
        let li = self.link_info(addr).ok_or(Errno::ENODEV)?;
        let dev = self.devices.get(&addr).ok_or(Errno::ENODEV)?;
        let running = li.admin_up;
        Ok(match attr {
            NetAttr::Address => format!("{}\n", li.mac),
            NetAttr::Broadcast => "ff:ff:ff:ff:ff:ff\n".to_owned(),
            NetAttr::AddrLen => "6\n".to_owned(),
            NetAttr::AddrAssignType => "0\n".to_owned(),
            NetAttr::Type => "1\n".to_owned(),
            NetAttr::Ifindex | NetAttr::Iflink => format!("{}\n", li.ifindex),
            NetAttr::DevId => "0x0\n".to_owned(),
            NetAttr::DevPort => format!("{}\n", dev.pf_state().map_or(0, |p| p.port)),
            NetAttr::Mtu => format!("{}\n", li.mtu),
            NetAttr::Flags => format!("{:#x}\n", li.flags),
            NetAttr::Operstate => format!("{}\n", li.operstate.as_str()),
            // carrier_show()/speed_show()/duplex_show(): EINVAL unless netif_running().
            NetAttr::Carrier if !running => return Err(Errno::EINVAL),
            NetAttr::Carrier => format!("{}\n", u8::from(li.carrier)),
            NetAttr::Speed if !running => return Err(Errno::EINVAL),
            NetAttr::Speed => {
                if li.carrier {
                    format!("{}\n", self.model_of(dev).map_or(0, |m| m.speed_mbps))
                } else {
                    "-1\n".to_owned()
                }
            }
            NetAttr::Duplex if !running => return Err(Errno::EINVAL),
            NetAttr::Duplex => if li.carrier { "full\n" } else { "unknown\n" }.to_owned(),
            NetAttr::TxQueueLen => "1000\n".to_owned(),
            // ifalias_show() prints nothing for an empty alias (the backing's tag is hidden).
            NetAttr::Ifalias => String::new(),
            // NET_NAME_RENAMED: udev renamed it.
            NetAttr::NameAssignType => "4\n".to_owned(),
            NetAttr::PhysPortName => match (dev.pf_state(), self.model_of(dev)) {
                (Some(p), Some(m)) if m.phys_port_name => format!("p{}\n", p.port),
                _ => return Err(Errno::EOPNOTSUPP),
            },
            NetAttr::PhysSwitchId => return Err(Errno::EOPNOTSUPP),
            NetAttr::Uevent => format!("INTERFACE={}\nIFINDEX={}\n", li.name, li.ifindex),
        })
    }

    fn model_of(&self, dev: &Device) -> Option<ModelInfo> {
        match &dev.kind {
            DevKind::Pf(p) => Some(p.model.info()),
            DevKind::Vf { pf, .. } => {
                self.devices.get(pf).and_then(|d| d.pf_state()).map(|p| p.model.info())
            }
            DevKind::RootPort => None,
        }
    }

    // ------------------------------------------------------------------ store

    fn store(&mut self, src: &Src, data: &[u8]) -> Result<(), Errno> {
        match src {
            Src::Text(_) => Err(Errno::EACCES),
            Src::Dev(addr, attr) => self.store_dev(*addr, *attr, data),
            Src::Drv(drv, attr) => self.store_drv(&drv.clone(), *attr, data),
            Src::Bus(attr) => self.store_bus(*attr, data),
            // The sim serves netdev attributes read-only; use netlink to change links.
            Src::Net(_, _) => Err(Errno::EOPNOTSUPP),
        }
    }

    fn store_dev(&mut self, addr: PciAddr, attr: DevAttr, data: &[u8]) -> Result<(), Errno> {
        match attr {
            DevAttr::SriovNumVfs => {
                // sriov_numvfs_store(): any kstrtou16 failure is EINVAL.
                let n = kstrtou16(data).map_err(|_| Errno::EINVAL)?;
                self.set_num_vfs(addr, n)
            }
            DevAttr::SriovDriversAutoprobe => {
                let v = kstrtobool(data)?;
                match self.devices.get_mut(&addr).map(|d| &mut d.kind) {
                    Some(DevKind::Pf(p)) => {
                        p.drivers_autoprobe = v;
                        Ok(())
                    }
                    _ => Err(Errno::ENODEV),
                }
            }
            DevAttr::DriverOverride => {
                // driver_set_override(): up to the first newline; empty clears.
                let s = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
                let s = s.split('\n').next().unwrap_or("");
                let d = self.devices.get_mut(&addr).ok_or(Errno::ENODEV)?;
                d.driver_override = (!s.is_empty()).then(|| s.to_owned());

                Ok(())
            }
            DevAttr::NumaNode => {
                // numa_node_store(): node must be NUMA_NO_NODE or online.
                let node = kstrtoint(data)?;
                if node != -1 && !(0..self.spec.numa_nodes as i32).contains(&node) {
                    return Err(Errno::EINVAL);
                }
                let d = self.devices.get_mut(&addr).ok_or(Errno::ENODEV)?;
                d.numa_node = node;
                Ok(())
            }
            DevAttr::Enable => {
                // enable_store(): EBUSY while a driver is bound; disabling a disabled
                // device is EIO.
                let v = kstrtobool(data)?;
                let d = self.devices.get_mut(&addr).ok_or(Errno::ENODEV)?;
                if d.driver.is_some() {
                    return Err(Errno::EBUSY);
                }
                if !v && !d.manually_enabled {
                    return Err(Errno::EIO);
                }
                d.manually_enabled = v;
                Ok(())
            }
            DevAttr::Reset => {
                // reset_store(): only "1" resets.
                if crate::kstr::kstrtoull(data)? != 1 {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            }
            DevAttr::Uevent => {
                let action = synth_uevent(data)?;
                // kobject_synth_uevent() without arguments tags the event SYNTH_UUID=0.
                if let Some(action) = action {
                    self.emit_pci(addr, action, &["SYNTH_UUID=0"]);
                }
                Ok(())
            }
            _ => Err(Errno::EACCES),
        }
    }

    fn find_device_by_name(&self, data: &[u8]) -> Option<PciAddr> {
        let s = std::str::from_utf8(data).ok()?;
        let s = s.strip_suffix('\n').unwrap_or(s);
        let addr: PciAddr = s.parse().ok()?;
        // bus_find_device_by_name() compares with sysfs_streq(), so only the canonical
        // spelling matches.
        (self.devices.contains_key(&addr) && sysfs_streq(addr.to_string().as_bytes(), data))
            .then_some(addr)
    }

    fn store_drv(&mut self, drv: &str, attr: DrvAttr, data: &[u8]) -> Result<(), Errno> {
        match attr {
            // bind_store(): ENODEV unless the device exists and driver_match_device();
            // then device_driver_attach(): EBUSY if already bound, ENODEV if the probe
            // declined (pci_device_can_probe() false for VFs with autoprobe off).
            DrvAttr::Bind => {
                let addr = self.find_device_by_name(data).ok_or(Errno::ENODEV)?;
                if !self.driver_matches(drv, addr) {
                    return Err(Errno::ENODEV);
                }
                if self.devices.get(&addr).is_some_and(|d| d.driver.is_some()) {
                    return Err(Errno::EBUSY);
                }
                if !self.can_probe(addr) {
                    return Err(Errno::ENODEV);
                }
                self.bind_driver(addr, drv);
                Ok(())
            }
            // unbind_store(): ENODEV unless bound to this very driver.
            DrvAttr::Unbind => {
                let addr = self.find_device_by_name(data).ok_or(Errno::ENODEV)?;
                if self.driver_of(addr) != Some(drv) {
                    return Err(Errno::ENODEV);
                }
                self.unbind_driver(addr);
                Ok(())
            }
            DrvAttr::NewId => self.new_id(drv, data),
            DrvAttr::RemoveId => self.remove_id(drv, data),
            DrvAttr::Uevent => synth_uevent(data).map(|_| ()),
        }
    }

    fn store_bus(&mut self, attr: BusAttr, data: &[u8]) -> Result<(), Errno> {
        match attr {
            // drivers_probe_store(): ENODEV for an unknown device; otherwise attach if
            // unbound, and succeed whether or not a driver took it.
            BusAttr::DriversProbe => {
                let addr = self.find_device_by_name(data).ok_or(Errno::ENODEV)?;
                if self.devices.get(&addr).is_some_and(|d| d.driver.is_none()) {
                    self.probe(addr);
                }
                Ok(())
            }
            // drivers_autoprobe_store(): '0' disables, anything else enables.
            BusAttr::DriversAutoprobe => {
                self.bus_autoprobe = data.first() != Some(&b'0');
                Ok(())
            }
            BusAttr::Rescan => crate::kstr::kstrtoull(data).map(|_| ()),
            BusAttr::Uevent => synth_uevent(data).map(|_| ()),
        }
    }

    /// `new_id_store()`: "vendor device [subvendor subdevice class class_mask
    /// driver_data]" in hex; EINVAL with fewer than two fields, EEXIST when the driver
    /// already matches that ID; then `pci_add_dynid()` -> `driver_attach()` binds every
    /// unbound matching device.
    fn new_id(&mut self, drv: &str, data: &[u8]) -> Result<(), Errno> {
        let fields = scan_hex_fields(data, 7);
        if fields.len() < 2 {
            return Err(Errno::EINVAL);
        }
        let get = |i: usize, default: u32| fields.get(i).copied().unwrap_or(default);
        let id = DynId {
            vendor: get(0, 0),
            device: get(1, 0),
            subvendor: get(2, ANY_ID),
            subdevice: get(3, ANY_ID),
            class: get(4, 0),
            class_mask: get(5, 0),
        };
        let di = self.driver_index(drv).ok_or(Errno::ENODEV)?;
        if fields.len() != 7 {
            let probe_dev = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
            let fake = Device {
                vendor: probe_dev(id.vendor),
                device: probe_dev(id.device),
                subsystem_vendor: probe_dev(id.subvendor),
                subsystem_device: probe_dev(id.subdevice),
                class: id.class,
                ..Device::added(
                    PciAddr::from_routing_id(0, 0),
                    String::new(),
                    DevKind::RootPort,
                    -1,
                    0,
                )
            };
            if self.driver_matches_dev(&self.drivers[di], &fake) {
                return Err(Errno::EEXIST);
            }
        }
        self.drivers[di].dyn_ids.push(id);
        // driver_attach(): try every unbound device.
        let unbound: Vec<PciAddr> =
            self.devices.values().filter(|d| d.driver.is_none()).map(|d| d.addr).collect();
        for addr in unbound {
            if self.driver_matches(drv, addr) && self.can_probe(addr) {
                self.bind_driver(addr, drv);
            }
        }
        Ok(())
    }

    /// `remove_id_store()`: EINVAL with fewer than two fields, ENODEV if no such
    /// dynamic ID.
    fn remove_id(&mut self, drv: &str, data: &[u8]) -> Result<(), Errno> {
        let fields = scan_hex_fields(data, 6);
        if fields.len() < 2 {
            return Err(Errno::EINVAL);
        }
        let get = |i: usize, default: u32| fields.get(i).copied().unwrap_or(default);
        let (vendor, device) = (get(0, 0), get(1, 0));
        let (subvendor, subdevice) = (get(2, ANY_ID), get(3, ANY_ID));
        let (class, class_mask) = (get(4, 0), get(5, 0));
        let di = self.driver_index(drv).ok_or(Errno::ENODEV)?;
        let ids = &mut self.drivers[di].dyn_ids;
        let pos = ids
            .iter()
            .position(|id| {
                id.vendor == vendor
                    && id.device == device
                    && (subvendor == ANY_ID || id.subvendor == subvendor)
                    && (subdevice == ANY_ID || id.subdevice == subdevice)
                    && (class_mask == 0 || (id.class ^ class) & id.class_mask == 0)
            })
            .ok_or(Errno::ENODEV)?;
        ids.remove(pos);
        Ok(())
    }

    // ------------------------------------------------------------------ driver core

    fn driver_index(&self, name: &str) -> Option<usize> {
        self.drivers.iter().position(|d| d.name == name)
    }

    /// `pci_match_device()`: driver_override restricts to that driver name; dynamic IDs,
    /// then the static table; a set override always matches (dummy ID).
    fn driver_matches_dev(&self, drv: &Driver, d: &Device) -> bool {
        if let Some(o) = &d.driver_override
            && *o != drv.name
        {
            return false;
        }
        drv.dyn_ids.iter().any(|id| id.matches(d))
            || drv.ids.contains(&(d.vendor, d.device))
            || drv.class.is_some_and(|c| c == d.class)
            || d.driver_override.is_some()
    }

    fn driver_matches(&self, drv: &str, addr: PciAddr) -> bool {
        match (self.driver_index(drv), self.devices.get(&addr)) {
            (Some(i), Some(d)) => self.driver_matches_dev(&self.drivers[i], d),
            _ => false,
        }
    }

    /// `pci_device_can_probe()`: a VF probes only if its PF has
    /// `sriov_drivers_autoprobe` set or the VF has a driver_override.
    fn can_probe(&self, addr: PciAddr) -> bool {
        let Some(d) = self.devices.get(&addr) else {
            return false;
        };
        match d.kind {
            DevKind::Vf { pf, .. } => {
                d.driver_override.is_some()
                    || self
                        .devices
                        .get(&pf)
                        .and_then(|p| p.pf_state())
                        .is_some_and(|p| p.drivers_autoprobe)
            }
            _ => true,
        }
    }

    /// `device_attach()`: bind the first matching driver (in registration order) that
    /// accepts the device. Returns whether one did.
    fn probe(&mut self, addr: PciAddr) -> bool {
        if !self.can_probe(addr) {
            return false;
        }
        let Some(dev) = self.devices.get(&addr) else {
            return false;
        };
        let found = self
            .drivers
            .iter()
            .find(|drv| self.driver_matches_dev(drv, dev))
            .map(|d| d.name.clone());
        match found {
            Some(name) => {
                self.bind_driver(addr, &name);
                true
            }
            None => false,
        }
    }

    fn bind_driver(&mut self, addr: PciAddr, drv: &str) {
        let Some(di) = self.driver_index(drv) else { return };
        let (netdev, rdma) = (self.drivers[di].netdev, self.drivers[di].rdma);
        let delay = Duration::from_millis(self.spec.vf_netdev_delay_ms);
        let rdma_index = rdma.then(|| self.free_rdma_index());
        let Some(d) = self.devices.get_mut(&addr) else { return };
        d.driver = Some(drv.to_owned());
        d.bind_gen += 1;
        d.rdma = rdma_index;
        let generation = d.bind_gen;
        let is_vf = d.is_vf();
        let group = d.iommu_group;
        self.dirty_devs.insert(addr);
        tracing::debug!(device = %addr, driver = drv, "sim: bound");
        // Everything the probe creates (vfio group node, a netdev registered in probe)
        // is announced before driver_bound() sends the bind uevent.
        if drv == VFIO_PCI {
            self.emit_vfio_group(Action::Add, group);
        }
        if netdev {
            if is_vf && !delay.is_zero() {
                self.pending_netdevs.push((Instant::now() + delay, addr, generation));
            } else {
                self.create_netdev(addr);
            }
        }
        self.emit_pci(addr, Action::Bind, &[]);
    }

    fn unbind_driver(&mut self, addr: PciAddr) {
        // A PF driver's remove() disables SR-IOV first (i40e_remove -> i40e_free_vfs,
        // igb_remove -> igb_disable_sriov, mlx5 -> mlx5_sriov_detach).
        if self.devices.get(&addr).and_then(|d| d.pf_state()).is_some_and(|p| p.num_vfs > 0) {
            self.remove_vfs(addr);
        }
        // The driver's remove() unregisters what probe created; then
        // __device_release_driver() clears dev->driver and sends unbind (without DRIVER).
        self.destroy_netdev(addr);
        if let Some(d) = self.devices.get(&addr)
            && d.driver.as_deref() == Some(VFIO_PCI)
        {
            let group = d.iommu_group;
            self.emit_vfio_group(Action::Remove, group);
        }
        let mut unbound = false;
        if let Some(d) = self.devices.get_mut(&addr) {
            tracing::debug!(device = %addr, driver = ?d.driver, "sim: unbound");
            unbound = d.driver.take().is_some();
            d.rdma = None;
            d.bind_gen += 1;
        }
        if unbound {
            self.emit_pci(addr, Action::Unbind, &[]);
        }
        self.dirty_devs.insert(addr);
    }

    fn free_rdma_index(&self) -> u32 {
        let used: BTreeSet<u32> = self.devices.values().filter_map(|d| d.rdma).collect();
        (0..).find(|i| !used.contains(i)).unwrap_or(0)
    }

    fn free_iommu_group(&self) -> u32 {
        let used: BTreeSet<u32> = self.devices.values().map(|d| d.iommu_group).collect();
        (self.spec.iommu_group_base..).find(|g| !used.contains(g)).unwrap_or(u32::MAX)
    }

    /// What the netdev of `addr` is (or would be) when created.
    fn netdev_plan(&self, addr: PciAddr) -> Option<LinkSpec> {
        let d = self.devices.get(&addr)?;
        Some(match &d.kind {
            DevKind::Pf(p) => LinkSpec {
                addr,
                name: p.netdev_name.clone(),
                mac: p.mac,
                mtu: p.mtu,
                admin_up: p.admin_up,
                pf_index: p.index,
                vf_index: None,
                carrier: p.carrier,
            },
            DevKind::Vf { pf, index } => {
                let p = self.devices.get(pf).and_then(|d| d.pf_state())?;
                LinkSpec {
                    addr,
                    name: vf_netdev_name(&p.netdev_name, *index),
                    mac: p.mac.offset(index + 1),
                    mtu: p.mtu,
                    // The kernel registers netdevs administratively down.
                    admin_up: false,
                    pf_index: p.index,
                    vf_index: Some(*index),
                    carrier: p.carrier,
                }
            }
            DevKind::RootPort => return None,
        })
    }

    fn create_netdev(&mut self, addr: PciAddr) {
        if self.devices.get(&addr).is_none_or(|d| d.netdev.is_some()) {
            return;
        }
        let Some(plan) = self.netdev_plan(addr) else { return };
        let mut ifindex = self.next_ifindex;
        self.next_ifindex += 1;
        let mut visible = true;
        if let Some(b) = &mut self.backing {
            match b.create_link(&plan) {
                Ok(real) => ifindex = real,
                Err(e) => {
                    visible = false;
                    tracing::warn!(device = %addr, error = %e, "sim: cannot create backing veth");
                }
            }
        }
        if visible {
            self.emit_net(addr, Action::Add, &plan.name, ifindex, &[]);
        }
        if let Some(d) = self.devices.get_mut(&addr) {
            d.netdev = Some(Netdev {
                name: plan.name,
                mac: plan.mac,
                mtu: plan.mtu,
                ifindex,
                admin_up: plan.admin_up,
                in_node_netns: true,
            });
        }
        self.dirty_devs.insert(addr);
    }

    /// Attaches a veth backing and creates veths for all existing netdevs.
    pub(crate) fn attach_backing(&mut self, mut backing: Backing) -> Result<(), SimError> {
        let with_netdev: Vec<PciAddr> =
            self.devices.values().filter(|d| d.netdev.is_some()).map(|d| d.addr).collect();
        for addr in with_netdev {
            if let Some(plan) = self.netdev_plan(addr) {
                backing.create_link(&plan)?;
            }
        }
        self.backing = Some(backing);
        self.full_render = true;
        Ok(())
    }

    fn destroy_netdev(&mut self, addr: PciAddr) {
        // Net uevents are tagged with the netdev's namespace: only a netdev the node
        // netns holds announces its removal there (one moved into a pod says so in the pod).
        if let Some(li) = self.link_info(addr) {
            self.emit_net(addr, Action::Remove, &li.name, li.ifindex, &[]);
        }
        let Some(d) = self.devices.get_mut(&addr) else { return };
        if d.netdev.take().is_some()
            && let Some(b) = &mut self.backing
            && let Err(e) = b.delete_link(addr)
        {
            tracing::warn!(device = %addr, error = %e, "sim: cannot delete backing veth");
        }
        self.dirty_devs.insert(addr);
    }

    // ------------------------------------------------------------------ uevents

    /// Starts broadcasting uevents through `sink` (see [`crate::UeventTarget`]).
    pub(crate) fn attach_uevents(&mut self, sink: UeventSink) -> Result<(), SimError> {
        if let Some(b) = &self.backing
            && !crate::uevent::same_netns(sink.netns(), b.node_netns())?
        {
            return Err(SimError::UeventNetnsMismatch {
                uevents: sink.netns().to_owned(),
                node: b.node_netns().to_owned(),
            });
        }
        self.uevents = Some(sink);
        Ok(())
    }

    /// Stops broadcasting uevents.
    pub(crate) fn detach_uevents(&mut self) {
        self.uevents = None;
    }

    /// Whether uevents are broadcast.
    pub fn uevents_enabled(&self) -> bool {
        self.uevents.is_some()
    }

    fn send_uevent(&mut self, ev: &Uevent) {
        if let Some(s) = &mut self.uevents {
            s.send(ev);
        }
    }

    /// Announces a PCI device event (nothing is built when uevents are off).
    fn emit_pci(&mut self, addr: PciAddr, action: Action, extra: &[&str]) {
        if self.uevents.is_none() {
            return;
        }
        if let Some(d) = self.devices.get(&addr) {
            let ev = pci_uevent(d, action, extra);
            self.send_uevent(&ev);
        }
    }

    /// Announces a net device event of the netdev `name` of `addr` (`netdev_uevent()`:
    /// `INTERFACE`, `IFINDEX`; no driver or bus keys).
    fn emit_net(
        &mut self,
        addr: PciAddr,
        action: Action,
        name: &str,
        ifindex: u32,
        extra: &[&str],
    ) {
        if self.uevents.is_none() {
            return;
        }
        let Some(d) = self.devices.get(&addr) else { return };
        let mut vars: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        vars.push(format!("INTERFACE={name}"));
        vars.push(format!("IFINDEX={ifindex}"));
        let ev = Uevent {
            action,
            devpath: format!("{}/net/{name}", devpath_of(&d.dir)),
            subsystem: "net",
            vars,
        };
        self.send_uevent(&ev);
    }

    /// Announces the `/dev/vfio/<group>` node appearing or going (a `vfio` class device
    /// under `/devices/virtual/vfio`; `dev_uevent()` gives `MAJOR`, `MINOR`, `DEVNAME`).
    fn emit_vfio_group(&mut self, action: Action, group: u32) {
        if self.uevents.is_none() {
            return;
        }
        let ev = Uevent {
            action,
            devpath: format!("/devices/virtual/vfio/{group}"),
            subsystem: "vfio",
            vars: vec![
                format!("MAJOR={VFIO_GROUP_MAJOR}"),
                format!("MINOR={}", group & 0xff),
                format!("DEVNAME=vfio/{group}"),
            ],
        };
        self.send_uevent(&ev);
    }

    // ------------------------------------------------------------------ SR-IOV

    /// The `sriov_numvfs` store (drivers/pci/iov.c `sriov_numvfs_store()`), after
    /// parsing: ERANGE above `sriov_totalvfs`; no-op if unchanged; ENOENT without a
    /// bound PF driver; 0 disables; EBUSY when changing a non-zero count to another
    /// non-zero count.
    pub fn set_num_vfs(&mut self, pf: PciAddr, n: u16) -> Result<(), Errno> {
        let dev = self.devices.get(&pf).ok_or(Errno::ENODEV)?;
        let state = dev.pf_state().ok_or(Errno::ENOENT)?;
        if n > state.total_vfs {
            return Err(Errno::ERANGE);
        }
        if n == state.num_vfs {
            return Ok(());
        }
        if dev.driver.is_none() {
            return Err(Errno::ENOENT);
        }
        if n == 0 {
            self.remove_vfs(pf);
            return Ok(());
        }
        if state.num_vfs != 0 {
            return Err(Errno::EBUSY);
        }
        let (offset, stride) = (state.offset, state.stride);
        let info = state.model.info();
        let numa = dev.numa_node;
        let dir_parent = parent_dir(&dev.dir).to_owned();
        let addrs = (0..n)
            .map(|i| pf.vf_addr(offset, stride, i).ok_or(Errno::ERANGE))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(DevKind::Pf(p)) = self.devices.get_mut(&pf).map(|d| &mut d.kind) {
            p.num_vfs = n;
        }
        // sriov_add_vfs(): one VF at a time, pci_iov_add_virtfn() adds the device (add),
        // links physfn/virtfnN (change), then pci_bus_add_device() probes it:
        // pci_device_can_probe() needs the bus-wide drivers_autoprobe and the PF's
        // sriov_drivers_autoprobe.
        for (i, addr) in (0..n).zip(addrs) {
            let group = self.free_iommu_group();
            self.devices.insert(
                addr,
                Device {
                    vendor: info.vendor,
                    device: info.vf_device,
                    subsystem_vendor: info.vf_subsystem_vendor,
                    subsystem_device: info.vf_subsystem_device,
                    revision: info.revision,
                    class: CLASS_ETHERNET,
                    ..Device::added(
                        addr,
                        format!("{dir_parent}/{addr}"),
                        DevKind::Vf { pf, index: i },
                        numa,
                        group,
                    )
                },
            );
            self.dirty_devs.insert(addr);
            self.emit_pci(addr, Action::Add, &[]);
            self.emit_pci(addr, Action::Change, &[]);
            if self.bus_autoprobe {
                self.probe(addr);
            }
        }
        self.dirty_devs.insert(pf);
        // sriov_enable() ends with a change uevent on the PF.
        self.emit_pci(pf, Action::Change, &[]);
        tracing::debug!(pf = %pf, num_vfs = n, "sim: VFs created");
        Ok(())
    }

    fn remove_vfs(&mut self, pf: PciAddr) {
        // sriov_del_vfs(): VF by VF, pci_stop_and_remove_bus_device() releases the
        // driver (unbind) and then deletes the device (remove).
        for vf in self.vfs(pf) {
            if self.devices.get(&vf).is_some_and(|d| d.driver.is_some()) {
                self.unbind_driver(vf);
            }
            self.emit_pci(vf, Action::Remove, &[]);
            self.devices.remove(&vf);
        }
        if let Some(DevKind::Pf(p)) = self.devices.get_mut(&pf).map(|d| &mut d.kind) {
            p.num_vfs = 0;
        }
        self.dirty_devs.insert(pf);
        tracing::debug!(pf = %pf, "sim: VFs removed");
    }

    // ------------------------------------------------------------------ helpers for callers

    /// Writes the address to `drivers/<driver>/bind`.
    pub fn bind(&mut self, driver: &str, addr: PciAddr) -> Result<(), Errno> {
        self.store_drv(driver, DrvAttr::Bind, addr.to_string().as_bytes()).inspect(|_| self.sync())
    }

    /// Writes the address to `drivers/<driver>/unbind`.
    pub fn unbind(&mut self, driver: &str, addr: PciAddr) -> Result<(), Errno> {
        self.store_drv(driver, DrvAttr::Unbind, addr.to_string().as_bytes())
            .inspect(|_| self.sync())
    }

    /// Writes (or clears with `None`) the device's `driver_override`.
    pub fn set_driver_override(&mut self, addr: PciAddr, drv: Option<&str>) -> Result<(), Errno> {
        self.store_dev(addr, DevAttr::DriverOverride, drv.unwrap_or("\n").as_bytes())
            .inspect(|_| self.sync())
    }

    /// Writes the address to `bus/pci/drivers_probe`.
    pub fn drivers_probe(&mut self, addr: PciAddr) -> Result<(), Errno> {
        self.store_bus(BusAttr::DriversProbe, addr.to_string().as_bytes()).inspect(|_| self.sync())
    }

    /// Sets the PF's physical link state (cable plugged or not). VFs follow (link-state
    /// auto). With veth backing the PF's and its VFs' wire ends go down/up.
    pub fn set_pf_carrier(&mut self, pf: PciAddr, up: bool) -> Result<(), SimError> {
        let dev = self.devices.get_mut(&pf).ok_or_else(|| SimError::UnknownPf(pf.to_string()))?;
        let DevKind::Pf(p) = &mut dev.kind else {
            return Err(SimError::UnknownPf(pf.to_string()));
        };
        p.carrier = up;
        let index = p.index;
        if let Some(b) = &mut self.backing {
            b.set_pf_carrier(index, up)?;
        }

        Ok(())
    }

    /// Unbacked hosts only: pretend the device's netdev left (`false`) or came back to
    /// (`true`) the node netns, optionally under a new name, as the CNI does when it
    /// moves a VF into a pod and back. With veth backing, move the real link instead.
    pub fn set_netdev_presence(
        &mut self,
        addr: PciAddr,
        in_node_netns: bool,
        new_name: Option<&str>,
    ) -> Result<(), SimError> {
        if self.backing.is_some() {
            return Err(SimError::Kernel {
                what: format!("faking netdev presence of {addr} on a veth-backed host"),
                errno: Errno::EOPNOTSUPP,
            });
        }
        let before = self.link_info(addr);
        let Some(nd) = self.devices.get_mut(&addr).and_then(|d| d.netdev.as_mut()) else {
            return Err(SimError::UnknownDevice(addr.to_string()));
        };
        nd.in_node_netns = in_node_netns;
        if let Some(n) = new_name {
            nd.name = n.to_owned();
        }
        self.dirty_devs.insert(addr);
        // dev_change_net_namespace(): remove in the old netns, add in the new one;
        // dev_change_name(): move with DEVPATH_OLD.
        match (before, self.link_info(addr)) {
            (Some(old), None) => self.emit_net(addr, Action::Remove, &old.name, old.ifindex, &[]),
            (None, Some(new)) => self.emit_net(addr, Action::Add, &new.name, new.ifindex, &[]),
            (Some(old), Some(new)) if old.name != new.name => {
                let dir = self.devices.get(&addr).map(|d| devpath_of(&d.dir)).unwrap_or_default();
                let old_path = format!("DEVPATH_OLD={dir}/net/{}", old.name);
                self.emit_net(addr, Action::Move, &new.name, new.ifindex, &[&old_path]);
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the current tree as a plain directory tree under `dir` (see
    /// [`crate::export_static`]).
    pub fn export_static(&mut self, dir: &Path) -> Result<(), SimError> {
        self.sync();
        crate::export::export(self, dir)
    }

    /// Total number of nodes in the rendered tree.
    pub fn node_count(&mut self) -> usize {
        self.sync();
        self.tree.len()
    }

    // ------------------------------------------------------------------ rendering

    /// Renders the global section: bus and driver files, fixed directories.
    fn render_global(&self) -> Render {
        let mut r = Render::new();
        r.dir("sys/class/net");
        r.dir("sys/kernel/iommu_groups");
        r.dir("sys/bus/pci/devices");
        r.chardev("dev/vfio/vfio".into(), VFIO_CONTAINER_RDEV);
        let bus = "sys/bus/pci";
        r.file(format!("{bus}/drivers_probe"), 0o200, Src::Bus(BusAttr::DriversProbe));
        r.file(format!("{bus}/drivers_autoprobe"), 0o644, Src::Bus(BusAttr::DriversAutoprobe));
        r.file(format!("{bus}/rescan"), 0o200, Src::Bus(BusAttr::Rescan));
        r.file(format!("{bus}/uevent"), 0o200, Src::Bus(BusAttr::Uevent));
        for drv in &self.drivers {
            let base = format!("{bus}/drivers/{}", drv.name);
            for (name, attr) in [
                ("bind", DrvAttr::Bind),
                ("unbind", DrvAttr::Unbind),
                ("new_id", DrvAttr::NewId),
                ("remove_id", DrvAttr::RemoveId),
                ("uevent", DrvAttr::Uevent),
            ] {
                r.file(format!("{base}/{name}"), 0o200, Src::Drv(drv.name.clone(), attr));
            }
        }
        r
    }

    /// Renders one device's section: its directory, and every link or node elsewhere
    /// that exists because of it (bus and driver links, IOMMU group, class entries,
    /// `/dev/vfio/<group>`).
    fn render_device(&self, d: &Device) -> Render {
        let mut out = Render::new();
        let r = &mut out;
        let dir = &d.dir;
        let a = d.addr;
        let dev = |attr| Src::Dev(a, attr);
        for (name, mode, attr) in [
            ("vendor", 0o444, DevAttr::Vendor),
            ("device", 0o444, DevAttr::Device),
            ("subsystem_vendor", 0o444, DevAttr::SubsystemVendor),
            ("subsystem_device", 0o444, DevAttr::SubsystemDevice),
            ("class", 0o444, DevAttr::Class),
            ("revision", 0o444, DevAttr::Revision),
            ("numa_node", 0o644, DevAttr::NumaNode),
            ("local_cpulist", 0o444, DevAttr::LocalCpulist),
            ("driver_override", 0o644, DevAttr::DriverOverride),
            ("enable", 0o644, DevAttr::Enable),
            ("modalias", 0o444, DevAttr::Modalias),
            ("uevent", 0o644, DevAttr::Uevent),
            ("reset", 0o200, DevAttr::Reset),
        ] {
            r.file(format!("{dir}/{name}"), mode, dev(attr));
        }
        r.link(format!("{dir}/subsystem"), "sys/bus/pci");
        let group = format!("sys/kernel/iommu_groups/{}", d.iommu_group);
        r.link(format!("{dir}/iommu_group"), &group);
        r.link(format!("{group}/devices/{a}"), dir);
        r.file(format!("{group}/type"), 0o644, Src::Text("DMA\n".into()));
        r.file(
            format!("{group}/reserved_regions"),
            0o444,
            Src::Text("0x00000000fee00000 0x00000000feefffff msi\n".into()),
        );
        r.link(format!("sys/bus/pci/devices/{a}"), dir);
        if let Some(drv) = &d.driver {
            let drv_dir = format!("sys/bus/pci/drivers/{drv}");
            r.link(format!("{dir}/driver"), &drv_dir);
            r.link(format!("{drv_dir}/{a}"), dir);
        }
        match &d.kind {
            DevKind::Pf(p) => {
                for (name, mode, attr) in [
                    ("sriov_totalvfs", 0o444, DevAttr::SriovTotalVfs),
                    ("sriov_numvfs", 0o644, DevAttr::SriovNumVfs),
                    ("sriov_offset", 0o444, DevAttr::SriovOffset),
                    ("sriov_stride", 0o444, DevAttr::SriovStride),
                    ("sriov_vf_device", 0o444, DevAttr::SriovVfDevice),
                    ("sriov_drivers_autoprobe", 0o644, DevAttr::SriovDriversAutoprobe),
                ] {
                    r.file(format!("{dir}/{name}"), mode, dev(attr));
                }
                if p.acpi_index.is_some() {
                    r.file(format!("{dir}/acpi_index"), 0o444, dev(DevAttr::AcpiIndex));
                }
                let parent = parent_dir(dir);
                for (i, vf) in self.vfs(a).iter().enumerate() {
                    r.link(format!("{dir}/virtfn{i}"), &format!("{parent}/{vf}"));
                }
            }
            DevKind::Vf { pf, .. } => {
                r.link(format!("{dir}/physfn"), &format!("{}/{pf}", parent_dir(dir)));
            }
            DevKind::RootPort => {}
        }
        if d.netdev.is_some() {
            r.dir(&format!("{dir}/net"));
            if let Some(li) = self.link_info(a) {
                // Netdev views follow live link state (renames, netns moves) that reach the
                // sim without a write: never cacheable.
                r.set_volatile(true);
                let nd = format!("{dir}/net/{}", li.name);
                let net = |attr| Src::Net(a, attr);
                for (name, mode, attr) in [
                    ("address", 0o444, NetAttr::Address),
                    ("broadcast", 0o444, NetAttr::Broadcast),
                    ("addr_len", 0o444, NetAttr::AddrLen),
                    ("addr_assign_type", 0o444, NetAttr::AddrAssignType),
                    ("type", 0o444, NetAttr::Type),
                    ("ifindex", 0o444, NetAttr::Ifindex),
                    ("iflink", 0o444, NetAttr::Iflink),
                    ("dev_id", 0o444, NetAttr::DevId),
                    ("dev_port", 0o444, NetAttr::DevPort),
                    ("mtu", 0o644, NetAttr::Mtu),
                    ("flags", 0o644, NetAttr::Flags),
                    ("operstate", 0o444, NetAttr::Operstate),
                    ("carrier", 0o644, NetAttr::Carrier),
                    ("speed", 0o444, NetAttr::Speed),
                    ("duplex", 0o444, NetAttr::Duplex),
                    ("tx_queue_len", 0o644, NetAttr::TxQueueLen),
                    ("ifalias", 0o644, NetAttr::Ifalias),
                    ("name_assign_type", 0o444, NetAttr::NameAssignType),
                    ("phys_port_name", 0o444, NetAttr::PhysPortName),
                    ("phys_switch_id", 0o444, NetAttr::PhysSwitchId),
                    ("uevent", 0o644, NetAttr::Uevent),
                ] {
                    r.file(format!("{nd}/{name}"), mode, net(attr));
                }
                r.link(format!("{nd}/device"), dir);
                r.link(format!("{nd}/subsystem"), "sys/class/net");
                r.link(format!("sys/class/net/{}", li.name), &nd);
                r.set_volatile(false);
            }
        }
        if let Some(idx) = d.rdma {
            let ib = format!("{dir}/infiniband/mlx5_{idx}");
            let mac = self.link_mac(d);
            let guid = format!(
                "{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}",
                mac.0[0] ^ 2,
                mac.0[1],
                mac.0[2],
                mac.0[3],
                mac.0[4],
                mac.0[5]
            );
            let hca = if d.is_vf() { "MT4120" } else { "MT4119" };
            for (name, text) in [
                ("node_type", "1: CA\n".to_owned()),
                ("node_guid", format!("{guid}\n")),
                ("sys_image_guid", format!("{guid}\n")),
                ("fw_ver", "16.35.2000\n".to_owned()),
                ("hca_type", format!("{hca}\n")),
                ("board_id", "MT_0000000080\n".to_owned()),
                ("ports/1/link_layer", "Ethernet\n".to_owned()),
            ] {
                r.file(format!("{ib}/{name}"), 0o444, Src::Text(text));
            }
            r.file(format!("{ib}/ports/1/state"), 0o444, dev(DevAttr::IbPortState));
            r.file(format!("{ib}/ports/1/phys_state"), 0o444, dev(DevAttr::IbPortPhysState));
            r.link(format!("{ib}/device"), dir);
            r.link(format!("sys/class/infiniband/mlx5_{idx}"), &ib);
        }
        if d.driver.as_deref() == Some(VFIO_PCI) {
            let g = d.iommu_group;
            r.chardev(format!("dev/vfio/{g}"), (VFIO_GROUP_MAJOR << 8) | (g & 0xff));
        }
        out
    }

    fn link_mac(&self, d: &Device) -> MacAddr {
        d.netdev.as_ref().map_or(MacAddr([0; 6]), |n| n.mac)
    }
}

fn modalias(d: &Device) -> String {
    format!(
        "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}",
        d.vendor,
        d.device,
        d.subsystem_vendor,
        d.subsystem_device,
        (d.class >> 16) & 0xff,
        (d.class >> 8) & 0xff,
        d.class & 0xff
    )
}

/// `kobject_synth_uevent()`: the first word must be a known action. Returns the action
/// to announce when the sim models it and the write carries no UUID/arguments (the
/// sim announces only the plain form; `online`/`offline` do not apply to PCI functions).
fn synth_uevent(data: &[u8]) -> Result<Option<Action>, Errno> {
    let s = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
    let mut words = s.split_whitespace();
    let action = match words.next().unwrap_or("") {
        "add" => Some(Action::Add),
        "remove" => Some(Action::Remove),
        "change" => Some(Action::Change),
        "move" => Some(Action::Move),
        "bind" => Some(Action::Bind),
        "unbind" => Some(Action::Unbind),
        "online" | "offline" => None,
        _ => return Err(Errno::EINVAL),
    };
    Ok(action.filter(|_| words.next().is_none()))
}

/// `DEVPATH` of a root-relative `sys/devices/...` directory.
fn devpath_of(dir: &str) -> String {
    format!("/{}", dir.strip_prefix("sys/").unwrap_or(dir))
}

/// A PCI device's uevent: `extra` (the caller's keys), `DRIVER` when bound
/// (`dev_uevent()`), then `pci_uevent()`'s keys; `unbind` drops `MODALIAS`
/// (`zap_modalias_env()`).
fn pci_uevent(d: &Device, action: Action, extra: &[&str]) -> Uevent {
    let mut vars: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    if let Some(drv) = &d.driver {
        vars.push(format!("DRIVER={drv}"));
    }
    vars.push(format!("PCI_CLASS={:04X}", d.class));
    vars.push(format!("PCI_ID={:04X}:{:04X}", d.vendor, d.device));
    vars.push(format!("PCI_SUBSYS_ID={:04X}:{:04X}", d.subsystem_vendor, d.subsystem_device));
    vars.push(format!("PCI_SLOT_NAME={}", d.addr));
    if action != Action::Unbind {
        vars.push(format!("MODALIAS={}", modalias(d)));
    }
    Uevent { action, devpath: devpath_of(&d.dir), subsystem: "pci", vars }
}

/// `sscanf(buf, "%x %x ...")`: leading hex fields, stopping at the first non-field.
fn scan_hex_fields(data: &[u8], max: usize) -> Vec<u32> {
    let s = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    for tok in s.split_ascii_whitespace().take(max) {
        let t = tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X")).unwrap_or(tok);
        let end = t.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(t.len());
        match u32::from_str_radix(&t[..end], 16) {
            Ok(v) => out.push(v),
            Err(_) => break,
        }
        if end != t.len() {
            break;
        }
    }
    out
}
