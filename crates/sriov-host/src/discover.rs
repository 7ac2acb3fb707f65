//! Discovery: one pass over sysfs producing a [`Host`] snapshot.
//!
//! Every PF (a PCI function with `sriov_totalvfs`) is read once, and its VFs are found through its
//! `virtfnN` links — one readlink per VF, so the VF→index map is built in O(n) per PF rather than by
//! resolving every `virtfn*` link for every VF (the Go device plugin's O(n²)). The PFs, then all
//! their VFs in blocks, are read on one thread per core: a big host is syscall-bound.
//!
//! Optional attributes that are missing or unreadable become `None` (unknown); garbage in them adds
//! a [`Warning`]. Garbage in what SR-IOV itself depends on (`sriov_totalvfs`, `sriov_numvfs`, a
//! `virtfnN` link) is an error naming the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ids::PciIds;
use crate::model::{
    Host, LinkType, Netdev, NetdevStatus, PciInfo, Pf, SCHEMA_VERSION, Vf, Warning,
};
use crate::paths::HostPaths;
use crate::pci::{PciAddr, PciId};
use crate::sysfs::{Dir, SysfsError};

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
    /// Read only the name and link type of VF netdevs (no MAC, MTU, state, speed, ifindex) and no
    /// VF `driver_override`: what device selection needs, at about half the syscalls per VF. PFs
    /// are always read in full.
    pub skip_vf_netdev_details: bool,
}

/// Reads the host's SR-IOV devices.
pub fn discover(paths: &HostPaths, opts: &DiscoverOptions) -> Result<Host, DiscoverError> {
    let devices_path = paths.pci_devices();
    let no_bus = || DiscoverError::NoPciBus { path: paths.pci_devices() };
    let devices = Dir::open(&devices_path)?.ok_or_else(no_bus)?;
    let entries = devices.list(".")?.ok_or_else(no_bus)?;
    let mut warnings = Vec::new();
    let mut addrs = Vec::with_capacity(entries.len());
    for name in entries {
        match name.parse::<PciAddr>() {
            Ok(addr) => addrs.push(addr),
            Err(_) => warnings.push(Warning {
                path: devices_path.join(&name),
                message: "entry is not a PCI address; ignored".into(),
            }),
        }
    }
    // In address order a PF comes before its VFs (a VF's routing ID is the PF's plus a positive
    // offset), so once a PF's VF addresses are known its VFs need no "is this a PF?" probe. They
    // are computed from `sriov_offset`/`sriov_stride` (the kernel's own rule); the `virtfnN` links,
    // which are authoritative, are read later in parallel. A tree without those files gets its
    // links read here instead.
    addrs.sort();
    let wanted: Option<PciAddr> = opts.pf.as_deref().and_then(|k| k.parse().ok());
    let mut known_vfs = HashSet::new();
    let mut found = Vec::new();
    let mut others = Vec::new();
    for addr in addrs {
        if known_vfs.contains(&addr) {
            continue;
        }
        let name = addr.to_string();
        if devices.exists(&format!("{name}/sriov_totalvfs")) {
            let dir = devices.open_at(&name, devices_path.join(&name))?.ok_or_else(|| {
                DiscoverError::Malformed {
                    path: devices_path.join(&name),
                    value: String::new(),
                    expected: "a device directory",
                }
            })?;
            let links = match vf_addrs_by_rule(&dir, addr) {
                Some(vfs) => {
                    known_vfs.extend(vfs);
                    None
                }
                None => {
                    let links = vf_links(&dir)?;
                    known_vfs.extend(links.iter().map(|(_, a, _)| *a));
                    Some(links)
                }
            };
            if wanted.is_none_or(|w| w == addr) {
                found.push((addr, dir, links));
            }
        } else {
            others.push(addr);
        }
    }

    // The PFs themselves (and their `virtfnN` links), then all their VFs, each spread over the
    // cores: reading a device is a few dozen small syscalls, so a big host is syscall-bound.
    let lean = opts.skip_vf_netdev_details;
    let many = known_vfs.len() >= PARALLEL_FROM;
    let read_pfs = par_map(&found, many, |(addr, dir, links)| {
        let links = match links {
            Some(l) => l.clone(),
            None => vf_links(dir)?,
        };
        let mut warnings = Vec::new();
        let pf = Reader { warnings: &mut warnings, lean }.pf(*addr, dir)?;
        Ok::<_, DiscoverError>((pf, links, warnings))
    });
    let mut pfs = Vec::with_capacity(found.len());
    let mut jobs = Vec::new();
    for (read, (_, dir, _)) in read_pfs.into_iter().zip(&found) {
        let (pf, links, w) = read?;
        warnings.extend(w);
        if let Some(key) = opts.pf.as_deref()
            && wanted.is_none()
            && pf.netdev.as_deref() != Some(key)
        {
            continue;
        }
        jobs.extend(links.into_iter().map(|link| (pfs.len(), dir, pf.pci_address, link)));
        pfs.push(pf);
    }
    let blocks: Vec<_> = jobs.chunks(VF_BLOCK).collect();
    let read_vfs = par_map(&blocks, many, |block| -> ChunkResult {
        let mut warnings = Vec::new();
        let mut r = Reader { warnings: &mut warnings, lean };
        let mut out = Vec::with_capacity(block.len());
        for (pf_i, pf_dir, pf, (vf_index, vf_addr, link)) in block.iter() {
            if let Some(vf) = r.vf_via_link(paths, pf_dir, *pf, *vf_index, *vf_addr, link)? {
                out.push((*pf_i, vf));
            }
        }
        Ok((out, warnings))
    });
    for part in read_vfs {
        let (vfs, w) = part?;
        warnings.extend(w);
        for (pf_i, vf) in vfs {
            pfs[pf_i].vfs.push(vf);
        }
    }
    // Devices that are neither a PF nor one of their VFs are of no interest, except that a link
    // that leads nowhere means a broken tree; checked here, off the per-VF path.
    if opts.pf.is_none() {
        let vfs: HashSet<PciAddr> =
            pfs.iter().flat_map(|pf| pf.vfs.iter().map(|vf| vf.pci_address)).collect();
        for addr in others.into_iter().filter(|a| !vfs.contains(a)) {
            let dir = paths.pci_device(addr);
            if !dir.exists() {
                warnings
                    .push(Warning { path: dir, message: "dangling device link; ignored".into() });
            }
        }
    }
    if let Some(key) = &opts.pf
        && pfs.is_empty()
    {
        return Err(DiscoverError::NoSuchPf { key: key.clone(), sysfs: paths.sysfs().to_owned() });
    }
    let mut host = Host {
        schema_version: SCHEMA_VERSION,
        sysfs_root: paths.sysfs().to_owned(),
        pfs,
        warnings,
    };
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

/// From this many VFs on, discovery reads on several threads (below, a thread costs more than it
/// saves).
const PARALLEL_FROM: usize = 64;

/// VFs per unit of parallel work: small enough to balance the threads, big enough that claiming
/// one is noise.
const VF_BLOCK: usize = 32;

/// VFs read from one block (with the index of their PF), with the block's warnings.
type ChunkResult = Result<(Vec<(usize, Vf)>, Vec<Warning>), DiscoverError>;

/// `f` over `items`, results in order; with `parallel`, on up to one thread per core (this one
/// included), each claiming the next item as it finishes one.
fn par_map<T: Sync, R: Send>(items: &[T], parallel: bool, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let threads = threads.min(items.len());
    if !parallel || threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(item)));
        }
        done
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            // A reader thread only panics on a bug; surface it rather than hide it.
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        for (i, r) in all {
            slots[i] = Some(r);
        }
    });
    // Every index below items.len() was claimed exactly once.
    slots.into_iter().flatten().collect()
}

/// The addresses of a PF's VFs by the kernel's rule (`sriov_numvfs`, `sriov_offset`,
/// `sriov_stride`); `None` when the tree lacks or garbles one of them (the links are read then).
fn vf_addrs_by_rule(dir: &Dir, pf: PciAddr) -> Option<Vec<PciAddr>> {
    let num = |name| dir.read(name).ok().flatten().and_then(|v| v.parse::<u32>().ok());
    let (n, offset, stride) = (num("sriov_numvfs")?, num("sriov_offset")?, num("sriov_stride")?);
    (0..n).map(|i| pf.vf(offset, stride, i)).collect()
}

/// A PF's `virtfnN` links: (N, VF address, link name), sorted by N.
type VfLinks = Vec<(u32, PciAddr, String)>;

/// Reads a PF's `virtfnN` links (one readlink per VF).
fn vf_links(dir: &Dir) -> Result<VfLinks, DiscoverError> {
    let mut links = Vec::new();
    for name in dir.list(".")?.unwrap_or_default() {
        let Some(index) = name.strip_prefix("virtfn") else { continue };
        let link = dir.join(&name);
        let index: u32 = index.parse().map_err(|_| DiscoverError::Malformed {
            path: link.clone(),
            value: name.clone(),
            expected: "virtfn<N>",
        })?;
        let target = dir.link_name(&name)?.unwrap_or_default();
        let vf_addr: PciAddr = target.parse().map_err(|_| DiscoverError::Malformed {
            path: link.clone(),
            value: target.clone(),
            expected: "a link to a PCI device",
        })?;
        links.push((index, vf_addr, name));
    }
    links.sort_by_key(|(i, _, _)| *i);
    Ok(links)
}

struct Reader<'w> {
    warnings: &'w mut Vec<Warning>,
    /// Skip VF netdev details ([`DiscoverOptions::skip_vf_netdev_details`]).
    lean: bool,
}

impl Reader<'_> {
    fn warn(&mut self, path: &Path, message: impl Into<String>) {
        self.warnings.push(Warning { path: path.to_owned(), message: message.into() });
    }

    /// An optional attribute: missing or unreadable gives `None` (unreadable also warns).
    fn opt(&mut self, dir: &Dir, name: &str) -> Option<String> {
        match dir.read(name) {
            Ok(v) => v,
            Err(e) => {
                self.warn(&e.path, format!("unreadable: {}", e.source));
                None
            }
        }
    }

    /// An optional parsed attribute: garbage gives `None` and a warning.
    fn parsed<T: std::str::FromStr>(&mut self, dir: &Dir, name: &str, expected: &str) -> Option<T> {
        let raw = self.opt(dir, name)?;
        match raw.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.warn(&dir.join(name), format!("found {raw:?}, expected {expected}"));
                None
            }
        }
    }

    fn link_name(&mut self, dir: &Dir, name: &str) -> Option<String> {
        match dir.link_name(name) {
            Ok(v) => v,
            Err(e) => {
                self.warn(&e.path, format!("unreadable link: {}", e.source));
                None
            }
        }
    }

    fn list(&mut self, dir: &Dir, name: &str) -> Vec<String> {
        match dir.list(name) {
            Ok(v) => {
                let mut v = v.unwrap_or_default();
                v.sort();
                v
            }
            Err(e) => {
                self.warn(&e.path, format!("unreadable: {}", e.source));
                Vec::new()
            }
        }
    }

    /// A device's PCI facts. `pf` reads what only matters for (or only exists on) a PF's own
    /// function: `acpi_index` (VFs are never described by firmware); `driver_override` is skipped
    /// for VFs in lean mode (selection never looks at it).
    fn pci_info(&mut self, dir: &Dir, pf: bool) -> PciInfo {
        // The device's `uevent` carries its IDs, class and driver in one read (the kernel's
        // pci_uevent + dev_uevent); the individual files are read only when it lacks a key.
        let ev = Uevent::parse(self.opt(dir, "uevent").as_deref().unwrap_or(""));
        let id = |r: &mut Self, f: &str| r.parsed::<PciId>(dir, f, "a hex PCI ID");
        let (vendor_id, device_id) = match ev.pair("PCI_ID") {
            Some((v, d)) => (Some(v), Some(d)),
            None => (id(self, "vendor"), id(self, "device")),
        };
        let (subsystem_vendor_id, subsystem_device_id) = match ev.pair("PCI_SUBSYS_ID") {
            Some((v, d)) => (Some(v), Some(d)),
            None => (id(self, "subsystem_vendor"), id(self, "subsystem_device")),
        };
        let class = match ev.class() {
            Some(c) => Some(c),
            None => self.opt(dir, "class"),
        };
        let driver = if ev.complete() { ev.driver.clone() } else { self.link_name(dir, "driver") };
        let driver_override = if pf || !self.lean {
            self.opt(dir, "driver_override").filter(|s| !s.is_empty() && s != "(null)")
        } else {
            None
        };
        let numa_node = match self.parsed::<i64>(dir, "numa_node", "an integer") {
            Some(n) if n >= 0 => u32::try_from(n).ok(),
            _ => None,
        };
        let iommu_group = self.link_name(dir, "iommu_group").and_then(|g| {
            let parsed = g.parse::<u32>().ok();
            if parsed.is_none() {
                self.warn(&dir.join("iommu_group"), format!("group {g:?} is not a number"));
            }
            parsed
        });
        // Only functions described by ACPI firmware (physical slots) have an index; VFs never do,
        // so they skip the lookup.
        let acpi_index =
            if pf { self.parsed::<u32>(dir, "acpi_index", "an integer") } else { None };
        let rdma_devices = self.list(dir, "infiniband");
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

    fn netdev(&mut self, dir: &Dir, pci: &PciInfo, full: bool) -> (Option<Netdev>, NetdevStatus) {
        let names = self.list(dir, "net");
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
        if !full {
            // One read through the relative path (no open of the netdev directory): the lean
            // scan's only netdev attribute.
            let path = format!("net/{name}/type");
            let link_type = match dir.read(&path) {
                Ok(Some(raw)) => match raw.parse::<u32>() {
                    Ok(v) => Some(LinkType::from_arphrd(v)),
                    Err(_) => {
                        self.warn(&dir.join(&path), format!("found {raw:?}, expected an integer"));
                        None
                    }
                },
                // No `type`: either the netdev just left this namespace or the tree lacks it.
                Ok(None) => match dir.sub(&format!("net/{name}")) {
                    Ok(Some(_)) => None,
                    _ => return (None, NetdevStatus::NotInNamespace),
                },
                Err(e) => {
                    self.warn(&e.path, format!("unreadable: {}", e.source));
                    None
                }
            };
            return (Some(Netdev::named(name, link_type)), NetdevStatus::Present);
        }
        // Attributes through relative paths (`net/<name>/address`): no open of the netdev
        // directory itself, two syscalls fewer per device.
        let attr = |a: &str| format!("net/{name}/{a}");
        let mac = self.opt(dir, &attr("address"));
        // Every netdev has an `address`: none means the netdev left this namespace between the
        // listing and now (or the tree lacks it, which the directory tells apart).
        if mac.is_none() && !dir.exists(&format!("net/{name}")) {
            return (None, NetdevStatus::NotInNamespace);
        }
        let mtu = self.parsed(dir, &attr("mtu"), "an integer");
        let oper_state = self.opt(dir, &attr("operstate"));
        // operstate "up" implies carrier (the kernel only reports IF_OPER_UP with carrier), so the
        // file is read only otherwise. The kernel answers EINVAL for carrier and speed while the
        // link is admin down: that is "unknown", not a problem worth a warning.
        let carrier = if oper_state.as_deref() == Some("up") {
            Some(true)
        } else {
            dir.read(&attr("carrier")).ok().flatten().and_then(|c| match c.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            })
        };
        let speed_mbps = if may_know_speed(oper_state.as_deref()) {
            read_speed(dir, &attr("speed"))
        } else {
            None
        };
        let link_type =
            self.parsed::<u32>(dir, &attr("type"), "an integer").map(LinkType::from_arphrd);
        let ifindex = self.parsed(dir, &attr("ifindex"), "an integer");
        (
            Some(Netdev { name, mac, mtu, oper_state, carrier, speed_mbps, link_type, ifindex }),
            NetdevStatus::Present,
        )
    }

    fn required_u32(&mut self, dir: &Dir, name: &str) -> Result<u32, DiscoverError> {
        let path = dir.join(name);
        let raw = dir.read(name)?.ok_or_else(|| DiscoverError::Malformed {
            path: path.clone(),
            value: String::new(),
            expected: "the file to exist on an SR-IOV PF",
        })?;
        raw.parse().map_err(|_| DiscoverError::Malformed {
            path,
            value: raw,
            expected: "a non-negative integer",
        })
    }

    /// A PF's own facts; its `vfs` are filled in afterwards.
    fn pf(&mut self, addr: PciAddr, dir: &Dir) -> Result<Pf, DiscoverError> {
        let pci = self.pci_info(dir, true);
        let (link, netdev_status) = self.netdev(dir, &pci, true);
        let total_vfs = self.required_u32(dir, "sriov_totalvfs")?;
        let num_vfs = self.required_u32(dir, "sriov_numvfs")?;
        let vf_device_id = self.parsed(dir, "sriov_vf_device", "a hex PCI ID");
        let drivers_autoprobe =
            self.parsed::<u8>(dir, "sriov_drivers_autoprobe", "0 or 1").map(|v| v != 0);
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
            vfs: Vec::with_capacity(num_vfs as usize),
        })
    }

    /// Reads the VF behind the PF's `virtfnN` link (a short walk), naming it by its own bus path so
    /// messages name the VF. `Ok(None)` when it was removed while being read.
    fn vf_via_link(
        &mut self,
        paths: &HostPaths,
        pf_dir: &Dir,
        pf: PciAddr,
        vf_index: u32,
        vf_addr: PciAddr,
        link: &str,
    ) -> Result<Option<Vf>, DiscoverError> {
        let Some(vf_dir) = pf_dir.open_at(link, paths.pci_device(vf_addr))? else {
            // The kernel removes `virtfnN` before the VF itself, so a link that is gone now means
            // the VF was removed while we read (VF count going down): skip it. A link that is
            // still there but leads nowhere is a broken tree.
            if pf_dir.link_name(link)?.is_none() {
                self.warn(&pf_dir.join(link), "VF removed while being read; skipped");
                return Ok(None);
            }
            return Err(DiscoverError::Malformed {
                path: pf_dir.join(link),
                value: vf_addr.to_string(),
                expected: "a link to an existing PCI device",
            });
        };
        Ok(Some(self.vf(paths, &vf_dir, vf_addr, vf_index, pf)))
    }

    fn vf(
        &mut self,
        paths: &HostPaths,
        dir: &Dir,
        addr: PciAddr,
        vf_index: u32,
        pf: PciAddr,
    ) -> Vf {
        let pci = self.pci_info(dir, false);
        let (link, netdev_status) = self.netdev(dir, &pci, !self.lean);
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

/// Whether a netdev in this operational state can report a speed. The kernel answers EINVAL (not
/// running) or -1 (SPEED_UNKNOWN, no link) for a link that is down, so reading is skipped.
fn may_know_speed(oper_state: Option<&str>) -> bool {
    !matches!(oper_state, Some("down" | "lowerlayerdown" | "notpresent"))
}

/// A netdev's `speed` in Mb/s; unreadable or negative is unknown.
fn read_speed(dir: &Dir, name: &str) -> Option<u32> {
    dir.read(name)
        .ok()
        .flatten()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| u32::try_from(s).ok())
}

/// The VFIO group node: `/dev/vfio/<group>`, or `/dev/vfio/noiommu-<group>` when the group is a
/// no-IOMMU one (its `name` file says `vfio-noiommu`).
fn vfio_node(paths: &HostPaths, dev_dir: &Dir, group: u32) -> PathBuf {
    let noiommu =
        dev_dir.read("iommu_group/name").ok().flatten().is_some_and(|n| n == "vfio-noiommu");
    if noiommu {
        paths.vfio_node(&format!("noiommu-{group}"))
    } else {
        paths.vfio_node(&group.to_string())
    }
}

/// The keys of a device's `uevent` file that discovery uses.
#[derive(Debug, Default)]
struct Uevent {
    driver: Option<String>,
    pci_id: Option<String>,
    subsys: Option<String>,
    class: Option<String>,
}

impl Uevent {
    fn parse(text: &str) -> Self {
        let mut ev = Self::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            let v = Some(v.to_owned());
            match k {
                "DRIVER" => ev.driver = v,
                "PCI_ID" => ev.pci_id = v,
                "PCI_SUBSYS_ID" => ev.subsys = v,
                "PCI_CLASS" => ev.class = v,
                _ => {}
            }
        }
        ev
    }

    /// A PCI uevent always has PCI_ID; when it does, the absence of DRIVER means "unbound".
    fn complete(&self) -> bool {
        self.pair("PCI_ID").is_some()
    }

    fn pair(&self, key: &str) -> Option<(PciId, PciId)> {
        let raw = match key {
            "PCI_ID" => self.pci_id.as_deref()?,
            _ => self.subsys.as_deref()?,
        };
        let (a, b) = raw.split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// `PCI_CLASS=20000` in the sysfs `class` format (`0x020000`).
    fn class(&self) -> Option<String> {
        let c = u32::from_str_radix(self.class.as_deref()?, 16).ok()?;
        Some(format!("0x{c:06x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevent_keys() {
        let ev = Uevent::parse(
            "DRIVER=iavf\nPCI_CLASS=20000\nPCI_ID=8086:1889\nPCI_SUBSYS_ID=8086:0000\nPCI_SLOT_NAME=0000:3b:01.0\n",
        );
        assert!(ev.complete());
        assert_eq!(ev.pair("PCI_ID"), Some((PciId(0x8086), PciId(0x1889))));
        assert_eq!(ev.pair("PCI_SUBSYS_ID"), Some((PciId(0x8086), PciId(0))));
        assert_eq!(ev.class().as_deref(), Some("0x020000"));
        assert_eq!(ev.driver.as_deref(), Some("iavf"));
        let unbound = Uevent::parse("PCI_CLASS=20000\nPCI_ID=8086:1889\n");
        assert!(unbound.complete() && unbound.driver.is_none());
        let garbage = Uevent::parse("PCI_ID=zz\n");
        assert!(!garbage.complete());
    }

    /// The state a reader racing `sriov_numvfs` going down is in: the PF's `virtfnN` links were
    /// listed, then the kernel removed one link and its VF before the VF was read.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn vf_removed_after_listing_is_skipped_but_a_dangling_link_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let pf = tmp.path().join("0000:01:00.0");
        let vf0 = tmp.path().join("0000:01:02.0");
        std::fs::create_dir_all(&pf).unwrap();
        std::fs::create_dir_all(&vf0).unwrap();
        std::os::unix::fs::symlink("../0000:01:02.0", pf.join("virtfn0")).unwrap();
        std::os::unix::fs::symlink("../0000:01:02.1", pf.join("virtfn1")).unwrap();
        let links = vf_links(&Dir::open(&pf).unwrap().unwrap()).unwrap();
        assert_eq!(links.len(), 2);
        let paths = HostPaths::new(tmp.path(), tmp.path());
        let pf_addr: PciAddr = "0000:01:00.0".parse().unwrap();
        let read = |warnings: &mut Vec<Warning>| {
            let pf_dir = Dir::open(&pf).unwrap().unwrap();
            let mut r = Reader { warnings, lean: false };
            let mut vfs = Vec::new();
            for (index, addr, link) in &links {
                vfs.extend(r.vf_via_link(&paths, &pf_dir, pf_addr, *index, *addr, link)?);
            }
            Ok::<_, DiscoverError>(vfs)
        };
        // virtfn1 still there, leading nowhere: a broken tree.
        let err = read(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("virtfn1"), "{err}");
        // virtfn1 gone since the listing: the VF was removed meanwhile.
        std::fs::remove_file(pf.join("virtfn1")).unwrap();
        let mut warnings = Vec::new();
        let vfs = read(&mut warnings).unwrap();
        assert_eq!(vfs.len(), 1);
        assert_eq!(vfs[0].vf_index, 0);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].path.ends_with("virtfn1"));
    }
}
