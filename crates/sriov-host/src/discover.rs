//! Discovery: one pass over sysfs producing a [`Host`] snapshot.
//!
//! Every PF (a PCI function with `sriov_totalvfs`) is read once, and VF N is reached through its
//! `virtfnN` link, so the VF→index map is built in O(n) per PF rather than by resolving every
//! `virtfn*` link for every VF (the Go device plugin's O(n²)); each VF names itself in its `uevent`,
//! so the links are only read where the PF lacks `sriov_offset`/`sriov_stride`. Netdev and RDMA
//! device names come from the `class/` directories in one pass. The PFs, then all their VFs in
//! blocks, are read on one thread per core: a big host is syscall-bound.
//!
//! Optional attributes that are missing or unreadable become `None` (unknown); garbage in them adds
//! a [`Warning`]. Garbage in what SR-IOV itself depends on (`sriov_totalvfs`, `sriov_numvfs`, a
//! `virtfnN` link) is an error naming the file.

use std::collections::{HashMap, HashSet};
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
    /// How much to read about each VF (PFs are always read in full).
    pub vf_detail: VfDetail,
}

/// How much discovery reads about each VF: reading a VF is a dozen small files, so a caller that
/// shows or uses only some of its facts asks for only those. What is not read is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VfDetail {
    /// Every fact of the model.
    #[default]
    Full,
    /// What a one-line summary shows (`sriov-agent inventory`'s table): the PCI facts without
    /// `driver_override`, and of the netdev its name, MAC, operstate and speed (no MTU, link type
    /// or ifindex, and carrier only as far as operstate `up` implies it). About half the files of
    /// [`VfDetail::Full`].
    Summary,
    /// What device selection needs (the device plugin): the PCI facts without `driver_override`,
    /// and of the netdev its name and link type.
    Selection,
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
    // are computed from `sriov_offset`/`sriov_stride` (the kernel's own rule), and each VF is then
    // reached through its `virtfnN` link and named by its own `uevent` (PCI_SLOT_NAME), so the
    // links need no reading of their own. A tree without those files gets its links read here.
    addrs.sort();
    let wanted: Option<PciAddr> = opts.pf.as_deref().and_then(|k| k.parse().ok());
    let mut known_vfs = HashSet::new();
    let mut wanted_vfs = 0;
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
            let vfs = match vf_addrs_by_rule(&dir, addr) {
                Some(vfs) => vfs
                    .into_iter()
                    .zip(0..)
                    .map(|(addr, index)| VfRef {
                        index,
                        addr,
                        link: format!("virtfn{index}"),
                        addr_from_link: false,
                    })
                    .collect(),
                None => vf_links(&dir)?,
            };
            known_vfs.extend(vfs.iter().map(|v| v.addr));
            if wanted.is_none_or(|w| w == addr) {
                wanted_vfs += vfs.len();
                found.push((addr, dir, vfs));
            }
        } else {
            others.push(addr);
        }
    }

    // Two rounds spread over the cores (reading a device is a few dozen small syscalls, so a big
    // host is syscall-bound): the PFs together with the `class/` indexes, then all their VFs.
    let detail = opts.vf_detail;
    let many = wanted_vfs >= PARALLEL_FROM;
    // The class indexes pay off from a handful of VFs on (see `ClassScan::list`), not only on big
    // hosts.
    let scan =
        if wanted_vfs > 0 { ClassScan::list(paths, wanted_vfs) } else { ClassScan::default() };
    let no_index = ClassIndexes::default();
    let mut first: Vec<FirstRound<'_>> = found.iter().map(FirstRound::Pf).collect();
    first.extend(scan.blocks().map(|(class, dir, names)| FirstRound::Class(class, dir, names)));
    let first = par_map(&first, many, |job| match job {
        FirstRound::Pf((addr, dir, _)) => {
            // PFs are few: each looks into its own `net/` and `infiniband/`.
            let mut warnings = Vec::new();
            let pf = Reader { warnings: &mut warnings, detail, classes: &no_index }.pf(*addr, dir);
            FirstDone::Pf(Box::new(pf.map(|pf| (pf, warnings))))
        }
        FirstRound::Class(class, dir, names) => {
            FirstDone::Class(*class, read_class(*class, dir, names))
        }
    });
    let mut read_pfs = Vec::with_capacity(found.len());
    let mut class_parts = Vec::new();
    for done in first {
        match done {
            FirstDone::Pf(pf) => read_pfs.push(*pf),
            FirstDone::Class(class, part) => class_parts.push((class, part)),
        }
    }
    let classes = &scan.finish(class_parts);
    let mut pfs = Vec::with_capacity(found.len());
    let mut jobs = Vec::new();
    for (read, (_, dir, vfs)) in read_pfs.into_iter().zip(&found) {
        let (pf, w) = read?;
        warnings.extend(w);
        if let Some(key) = opts.pf.as_deref()
            && wanted.is_none()
            && pf.netdev.as_deref() != Some(key)
        {
            continue;
        }
        jobs.extend(vfs.iter().map(|vf| (pfs.len(), dir, pf.pci_address, vf)));
        pfs.push(pf);
    }
    let blocks: Vec<_> = jobs.chunks(VF_BLOCK).collect();
    let read_vfs = par_map(&blocks, many, |block| -> ChunkResult {
        let mut warnings = Vec::new();
        let mut r = Reader { warnings: &mut warnings, detail, classes };
        let mut out = Vec::with_capacity(block.len());
        for (pf_i, pf_dir, pf, vf) in block.iter() {
            if let Some(vf) = r.vf_via_link(paths, pf_dir, *pf, vf)? {
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
/// included), each claiming the next item as it finishes one. The helper threads read with their
/// own file descriptor tables ([`crate::sysfs::own_fd_table`]), so `f` must not return a file
/// descriptor it opened.
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
        let helpers: Vec<_> = (1..threads)
            .map(|_| {
                s.spawn(|| {
                    crate::sysfs::own_fd_table();
                    work()
                })
            })
            .collect();
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

/// A VF as its PF knows it: index N, the `virtfnN` link, and its address.
#[derive(Debug, Clone)]
struct VfRef {
    index: u32,
    addr: PciAddr,
    link: String,
    /// Whether `addr` was read from the link (else computed by the offset/stride rule, and
    /// confirmed by the VF's own `uevent` when it is read).
    addr_from_link: bool,
}

/// A PF found in the device listing: its address, directory and VFs.
type FoundPf = (PciAddr, Dir, Vec<VfRef>);

/// The first parallel round: PFs, and blocks of class entries to index.
enum FirstRound<'a> {
    Pf(&'a FoundPf),
    Class(usize, &'a Dir, &'a [String]),
}

/// What a [`FirstRound`] job gives.
enum FirstDone<'a> {
    Pf(Box<Result<(Pf, Vec<Warning>), DiscoverError>>),
    Class(usize, ClassPart<'a>),
}

/// Reads a PF's `virtfnN` links (one readlink per VF), sorted by N.
fn vf_links(dir: &Dir) -> Result<Vec<VfRef>, DiscoverError> {
    let mut links = Vec::new();
    for name in dir.list(".")?.unwrap_or_default() {
        let Some(index) = name.strip_prefix("virtfn") else { continue };
        let link = dir.join(&name);
        let index: u32 = index.parse().map_err(|_| DiscoverError::Malformed {
            path: link.clone(),
            value: name.clone(),
            expected: "virtfn<N>",
        })?;
        let addr = vf_link_addr(dir, &name)?;
        links.push(VfRef { index, addr, link: name, addr_from_link: true });
    }
    links.sort_by_key(|v| v.index);
    Ok(links)
}

/// The address a PF's `virtfnN` link leads to.
fn vf_link_addr(pf_dir: &Dir, link: &str) -> Result<PciAddr, DiscoverError> {
    let target = pf_dir.link_name(link)?.unwrap_or_default();
    target.parse().map_err(|_| DiscoverError::Malformed {
        path: pf_dir.join(link),
        value: target,
        expected: "a link to a PCI device",
    })
}

/// The entries a device class holds for each PCI device, from one listing of the class directory
/// and one readlink per entry (`class/net/ens1f0v3 ->
/// ../../devices/pci0000:16/0000:16:00.0/0000:17:01.3/net/ens1f0v3`), instead of looking into
/// every device's own `net/` or `infiniband/` directory: listing one is four syscalls (open, two
/// getdents, close), finding it absent costs a failed lookup. Both are the same view: sysfs shows
/// a network namespace's netdevs (and, in exclusive mode, RDMA devices) in the class directory and
/// under their devices alike.
#[derive(Debug, Default)]
struct ClassIndex(HashMap<PciAddr, Vec<String>>);

/// What discovery takes from the class directories, when reading them is worth it.
#[derive(Debug, Default)]
struct ClassIndexes {
    /// Netdev names by device (`class/net`).
    net: Option<ClassIndex>,
    /// RDMA device names by device (`class/infiniband`).
    rdma: Option<ClassIndex>,
}

/// The listings of the class directories, before their links are read.
#[derive(Debug, Default)]
struct ClassScan {
    /// Per class in [`CLASSES`].
    listings: [Listing; 2],
}

/// How the entries of one class are found.
#[derive(Debug, Default)]
enum Listing {
    /// By looking into each device (the class directory is unreadable, or too big to pay off).
    #[default]
    PerDevice,
    /// Nowhere: the class directory does not exist, so no entry of the class does.
    Absent,
    /// From the class directory's entries, whose links are read in blocks.
    Read(Dir, Vec<String>),
}

/// The classes indexed, in [`ClassScan`] order. Each class's entries live in a directory of the
/// same name under their device (`class/net/X` -> `.../<device>/net/X`).
const CLASSES: [&str; 2] = ["net", "infiniband"];

/// Entries of one block of a class listing, with their devices; `None` when a link could not be
/// read (the whole class then falls back to looking into each device).
type ClassPart<'a> = Option<Vec<(PciAddr, &'a String)>>;

impl ClassScan {
    /// Lists the class directories for a scan of `devices` devices. `net` is left out when the
    /// node has many more netdevs than that (hundreds of pod veths, say): listing each device's
    /// `net/` is cheaper then. `class/net` missing or unreadable leaves it out too (each device's
    /// `net/` is listed); `class/infiniband` missing means no RDMA device exists (the kernel
    /// creates it with the first), so its index is empty.
    fn list(paths: &HostPaths, devices: usize) -> Self {
        let listing = |class: &str| match Dir::open(&paths.sysfs().join("class").join(class)) {
            Ok(Some(dir)) => match dir.list(".") {
                Ok(Some(names)) => Listing::Read(dir, names),
                _ => Listing::PerDevice,
            },
            Ok(None) => Listing::Absent,
            Err(_) => Listing::PerDevice,
        };
        let net = match listing(CLASSES[0]) {
            Listing::Read(dir, names) if names.len() <= devices.saturating_mul(3) => {
                Listing::Read(dir, names)
            }
            _ => Listing::PerDevice,
        };
        Self { listings: [net, listing(CLASSES[1])] }
    }

    /// The listings in blocks for parallel reading: (class, class directory, names).
    fn blocks(&self) -> impl Iterator<Item = (usize, &Dir, &[String])> {
        self.listings.iter().enumerate().flat_map(|(class, listing)| {
            let (dir, names) = match listing {
                Listing::Read(dir, names) => (Some(dir), names.as_slice()),
                _ => (None, &[][..]),
            };
            names.chunks(CLASS_BLOCK).filter_map(move |block| Some((class, dir?, block)))
        })
    }

    /// The indexes from all blocks' [`read_class`] results.
    fn finish<'a>(&self, parts: Vec<(usize, ClassPart<'a>)>) -> ClassIndexes {
        let mut indexes = [0, 1].map(|i| match self.listings[i] {
            Listing::PerDevice => None,
            Listing::Absent | Listing::Read(..) => Some(ClassIndex::default()),
        });
        for (class, part) in parts {
            match part {
                Some(entries) => {
                    if let Some(index) = &mut indexes[class] {
                        for (addr, name) in entries {
                            index.0.entry(addr).or_default().push(name.clone());
                        }
                    }
                }
                // An unreadable link: look into each device for that class instead.
                None => indexes[class] = None,
            }
        }
        let [net, rdma] = indexes.map(|index| {
            index.map(|mut index| {
                index.0.values_mut().for_each(|names| names.sort());
                index
            })
        });
        ClassIndexes { net, rdma }
    }
}

/// Reads the links of one block of class entries.
fn read_class<'a>(class: usize, dir: &Dir, names: &'a [String]) -> ClassPart<'a> {
    let mut part = Vec::with_capacity(names.len());
    for name in names {
        // An entry gone since the listing has no link any more: it is simply not here.
        let target = dir.link_target(name).ok()?;
        part.extend(target.and_then(|t| pci_parent(&t, CLASSES[class])).map(|addr| (addr, name)));
    }
    Some(part)
}

impl ClassIndex {
    /// The device's entries, sorted by name.
    fn of(&self, addr: PciAddr) -> &[String] {
        self.0.get(&addr).map_or(&[], Vec::as_slice)
    }
}

/// Class entries per unit of parallel work when reading the [`ClassScan`].
const CLASS_BLOCK: usize = 128;

/// The PCI device a class entry's link leads to: the directory holding its `subdir`
/// (`.../0000:17:01.3/net/ens1f0v3`). `None` for entries not on a PCI device (virtual netdevs live
/// under `devices/virtual/net`, USB ones under a USB interface).
fn pci_parent(target: &str, subdir: &str) -> Option<PciAddr> {
    let mut parts = target.rsplit('/');
    let _name = parts.next()?;
    if parts.next()? != subdir {
        return None;
    }
    parts.next()?.parse().ok()
}

struct Reader<'w> {
    warnings: &'w mut Vec<Warning>,
    /// How much to read about VFs ([`DiscoverOptions::vf_detail`]).
    detail: VfDetail,
    /// Class entries by device, where read; else each device's `net/` and `infiniband/` are listed.
    classes: &'w ClassIndexes,
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

    /// The device's `uevent`: its IDs, class, driver and name in one read (the kernel's pci_uevent
    /// + dev_uevent).
    fn uevent(&mut self, dir: &Dir) -> Uevent {
        Uevent::parse(self.opt(dir, "uevent").as_deref().unwrap_or(""))
    }

    /// A device's PCI facts. `pf` reads what only matters for (or only exists on) a PF's own
    /// function: `acpi_index` (VFs are never described by firmware); `driver_override` is read for
    /// VFs only at [`VfDetail::Full`].
    fn pci_info(&mut self, dir: &Dir, ev: &Uevent, addr: PciAddr, pf: bool) -> PciInfo {
        // From the `uevent`; the individual files are read only when it lacks a key.
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
        let driver_override = if pf || self.detail == VfDetail::Full {
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
        let rdma_devices = match &self.classes.rdma {
            Some(index) => index.of(addr).to_vec(),
            None => self.list(dir, "infiniband"),
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

    fn netdev(
        &mut self,
        dir: &Dir,
        addr: PciAddr,
        pci: &PciInfo,
        detail: VfDetail,
    ) -> (Option<Netdev>, NetdevStatus) {
        // A device with several netdevs (a dual-port function) is listed by its first by name.
        let name = match &self.classes.net {
            Some(index) => index.of(addr).first().cloned(),
            None => self.list(dir, "net").into_iter().next(),
        };
        let Some(name) = name else {
            let status = if pci.driver.is_none() {
                NetdevStatus::NoDriver
            } else if pci.userspace_driver() {
                NetdevStatus::Userspace
            } else {
                NetdevStatus::NotInNamespace
            };
            return (None, status);
        };
        if detail == VfDetail::Selection {
            // One read through the relative path (no open of the netdev directory): selection's
            // only netdev attribute.
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
        let full = detail == VfDetail::Full;
        let mtu = if full { self.parsed(dir, &attr("mtu"), "an integer") } else { None };
        let oper_state = self.opt(dir, &attr("operstate"));
        // operstate "up" implies carrier (the kernel only reports IF_OPER_UP with carrier), so the
        // file is read only otherwise. The kernel answers EINVAL for carrier and speed while the
        // link is admin down: that is "unknown", not a problem worth a warning.
        let carrier = if oper_state.as_deref() == Some("up") {
            Some(true)
        } else if full {
            dir.read(&attr("carrier")).ok().flatten().and_then(|c| match c.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            })
        } else {
            None
        };
        let speed_mbps = if may_know_speed(oper_state.as_deref()) {
            read_speed(dir, &attr("speed"))
        } else {
            None
        };
        let (link_type, ifindex) = if full {
            let link_type =
                self.parsed::<u32>(dir, &attr("type"), "an integer").map(LinkType::from_arphrd);
            (link_type, self.parsed(dir, &attr("ifindex"), "an integer"))
        } else {
            (None, None)
        };
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
        let ev = self.uevent(dir);
        let pci = self.pci_info(dir, &ev, addr, true);
        let (link, netdev_status) = self.netdev(dir, addr, &pci, VfDetail::Full);
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
        vf: &VfRef,
    ) -> Result<Option<Vf>, DiscoverError> {
        let Some(vf_dir) = pf_dir.open_at(&vf.link, paths.pci_device(vf.addr))? else {
            // The kernel removes `virtfnN` before the VF itself, so a link that is gone now means
            // the VF was removed while we read (VF count going down): skip it. A link that is
            // still there but leads nowhere is a broken tree.
            if pf_dir.link_name(&vf.link)?.is_none() {
                self.warn(&pf_dir.join(&vf.link), "VF removed while being read; skipped");
                return Ok(None);
            }
            return Err(DiscoverError::Malformed {
                path: pf_dir.join(&vf.link),
                value: vf.addr.to_string(),
                expected: "a link to an existing PCI device",
            });
        };
        // The device's own name for itself: its uevent's PCI_SLOT_NAME (always there on a real
        // kernel); without it, a computed address is checked against the link.
        let ev = self.uevent(&vf_dir);
        let addr = match ev.slot() {
            Some(addr) => addr,
            None if vf.addr_from_link => vf.addr,
            None => vf_link_addr(pf_dir, &vf.link)?,
        };
        Ok(Some(self.vf(paths, &vf_dir, &ev, addr, vf.index, pf)))
    }

    fn vf(
        &mut self,
        paths: &HostPaths,
        dir: &Dir,
        ev: &Uevent,
        addr: PciAddr,
        vf_index: u32,
        pf: PciAddr,
    ) -> Vf {
        let pci = self.pci_info(dir, ev, addr, false);
        let (link, netdev_status) = self.netdev(dir, addr, &pci, self.detail);
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
    slot: Option<String>,
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
                "PCI_SLOT_NAME" => ev.slot = v,
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

    /// The device's address (`PCI_SLOT_NAME`), when present and well formed.
    fn slot(&self) -> Option<PciAddr> {
        self.slot.as_deref()?.parse().ok()
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

    #[test]
    fn class_links_lead_to_their_pci_device() {
        let vf: PciAddr = "0000:17:01.3".parse().unwrap_or_else(|e| panic!("{e}"));
        let net = "../../devices/pci0000:16/0000:16:00.0/0000:17:01.3/net/ens1f0v3";
        assert_eq!(pci_parent(net, "net"), Some(vf));
        let ib = "../../devices/pci0000:16/0000:16:00.0/0000:17:01.3/infiniband/mlx5_3";
        assert_eq!(pci_parent(ib, "infiniband"), Some(vf));
        assert_eq!(pci_parent(ib, "net"), None);
        assert_eq!(pci_parent("../../devices/virtual/net/lo", "net"), None);
        let usb = "../../devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/net/usb0";
        assert_eq!(pci_parent(usb, "net"), None);
        assert_eq!(pci_parent("eth0", "net"), None);
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
            let mut r =
                Reader { warnings, detail: VfDetail::Full, classes: &ClassIndexes::default() };
            let mut vfs = Vec::new();
            for vf in &links {
                vfs.extend(r.vf_via_link(&paths, &pf_dir, pf_addr, vf)?);
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
