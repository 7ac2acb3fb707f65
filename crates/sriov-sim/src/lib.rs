//! A simulated SR-IOV host: a fake kernel that lays out a sysfs tree exactly as Linux
//! does and reacts to writes as the kernel does, so discovery, VF provisioning, driver
//! binding and the CNI run and are tested without SR-IOV hardware.
//!
//! Production code never knows it is simulated: it reads and writes files under a sysfs
//! root (`<dir>/sys` instead of `/sys`, `<dir>/dev` instead of `/dev`) and the sim
//! reacts.
//!
//! # Pieces
//!
//! * [`SimSpec`] describes the host (PFs with model, PCI address, netdev name, NUMA
//!   node, MACs, MTU, VF counts...). [`SimSpec::default_host`] is a realistic node.
//! * [`Sim`] is the model: devices, drivers, IOMMU groups, netdevs, plus the rendered
//!   tree. All kernel reactions are methods returning the kernel's errno
//!   ([`Sim::write`], [`Sim::set_num_vfs`], [`Sim::bind`], ...). Pure logic, no root.
//! * [`Sim::mount`] serves the model over FUSE ([`MountedSim`]); needs root (the mount
//!   is done directly with `mount(2)`, no fusermount or libfuse).
//! * [`Sim::export_static`] writes a plain directory tree (no reactions) for non-root
//!   tests and read benchmarks.
//! * [`Sim::with_netns`] backs netdevs with real veths in a given "node" netns, peers
//!   bridged per PF in a private wire netns; the sysfs netdev view then follows the
//!   real links (renames, netns moves, carrier). Needs root; never the root netns.
//! * [`Sim::with_uevents`] makes the sim broadcast kernel-format uevents for what it
//!   simulates (VFs added/removed, drivers bound/unbound, netdevs registered), on
//!   `NETLINK_KOBJECT_UEVENT` group 1 inside one private netns ([`UeventTarget`]), so
//!   consumers that listen as on a real host react without rescanning. Off by default;
//!   never in the root netns.
//!
//! # Example
//!
//! ```no_run
//! use sriov_sim::{Sim, SimSpec, MountOptions};
//! # fn main() -> Result<(), sriov_sim::SimError> {
//! let sim = Sim::new(SimSpec::default_host())?;
//! let mounted = sim.mount(std::path::Path::new("/tmp/sim"), &MountOptions::default())?;
//! let numvfs = mounted.sysfs_root().join("bus/pci/devices/0000:3b:00.0/sriov_numvfs");
//! std::fs::write(&numvfs, "4").expect("4 VFs");
//! let err = std::fs::write(&numvfs, "9").unwrap_err(); // EBUSY: 4 VFs already enabled
//! assert_eq!(err.raw_os_error(), Some(libc::EBUSY));
//! # Ok(()) }
//! ```
//!
//! # Running as a daemon
//!
//! [`serve_foreground`] mounts and serves until the mount goes away. A daemon writes a
//! pid file, calls it, and exits when it returns. Destroying the sim is
//! [`unmount`]`(dir)` followed by waiting for the pid to exit; the veth backing (if any)
//! is deleted when the model drops, and the wire netns vanishes with the process.
//!
//! # Layout and behaviour
//!
//! `crates/sriov-sim/README.md` lists the exact tree, every reaction with its errno, the
//! caching rules and the measured figures. Deliberate limits: netdev attributes are read-only
//! (links are changed over netlink), `/dev/vfio/*` nodes cannot be opened (ENXIO), and
//! the veth PFs do not implement `IFLA_VFINFO_LIST` (`ip link set <pf> vf N ...`).

mod backing;
mod error;
mod export;
mod fuse;
mod kstr;
mod model;
mod netns;
mod pci;
mod spec;
mod tree;
mod uevent;

use std::path::Path;

pub use error::SimError;
pub use fuse::{MountOptions, MountedSim, serve_foreground, unmount};
pub use model::{LinkInfo, OperState, Sim};
pub use nix::errno::Errno;
pub use pci::{PciAddr, PciAddrError};
pub use spec::{MacAddr, ModelInfo, NicModel, PfSpec, SimSpec, root_port_of, vf_netdev_name};
pub use uevent::UeventTarget;

/// `IFLA_IFALIAS` prefix (`sriov-sim:<pci address>`) carried by every backing veth.
pub const LINK_ALIAS_PREFIX: &str = backing::ALIAS_PREFIX;

impl Sim {
    /// Mounts the sim over FUSE at `dir` (created if missing) and serves it on
    /// background threads. Needs root.
    pub fn mount(self, dir: &Path, opts: &MountOptions) -> Result<MountedSim, SimError> {
        MountedSim::mount(self, dir, opts)
    }

    /// Backs every netdev (existing and future) with a real veth in the network
    /// namespace at `node_netns` (e.g. `/proc/<pid>/ns/net` or `/run/netns/<name>`),
    /// named, addressed and sized as the netdev. Each PF's ports are bridged in a
    /// private wire netns owned by the sim, so VF-to-VF traffic flows. Refuses the root
    /// netns. Needs root.
    pub fn with_netns(mut self, node_netns: &Path) -> Result<Self, SimError> {
        if let Some(u) = &self.uevents
            && !uevent::same_netns(u.netns(), node_netns)?
        {
            return Err(SimError::UeventNetnsMismatch {
                uevents: u.netns().to_owned(),
                node: node_netns.to_owned(),
            });
        }
        let backing = backing::Backing::new(node_netns)?;
        self.attach_backing(backing)?;
        Ok(self)
    }

    /// Sets where the simulated kernel broadcasts its uevents (see [`UeventTarget`]):
    /// from then on every reaction announces itself in the kernel's order and format (VF
    /// `add` + `change` per VF then `change` on the PF when VFs are enabled, `bind` with
    /// `DRIVER` after what the probe registered, net `add`/`remove` for netdevs in the node
    /// view, `unbind` then `remove` per VF when disabled, the vfio group node for
    /// `vfio-pci`). Devices that exist already are not announced (as after boot).
    ///
    /// [`UeventTarget::Netns`] opens one `NETLINK_KOBJECT_UEVENT` socket inside that
    /// namespace and keeps it; broadcasts reach only listeners there. Refuses the root
    /// network namespace ([`SimError::RootNetnsUevents`]) and, with a veth backing, any
    /// namespace but the backing's node netns ([`SimError::UeventNetnsMismatch`]). Needs
    /// root (CAP_NET_ADMIN in that namespace). [`UeventTarget::Off`] stops broadcasting.
    pub fn with_uevents(mut self, target: UeventTarget) -> Result<Self, SimError> {
        match target {
            UeventTarget::Off => self.detach_uevents(),
            UeventTarget::Netns(path) => {
                let sink = uevent::UeventSink::open(&path)?;
                self.attach_uevents(sink)?;
            }
        }
        Ok(self)
    }
}

/// Where to put an exported tree that tests or benchmarks read a lot: `/dev/shm` (a memory file
/// system, as sysfs is) when there is one, else the temp dir. A disk-backed `/tmp` is slow to
/// write a big tree to and not representative of sysfs.
pub fn memory_dir() -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm.to_owned() } else { std::env::temp_dir() }
}

/// Writes the sim's current tree under `dir` as plain files, directories and relative
/// symlinks (same as [`Sim::export_static`]).
pub fn export_static(sim: &mut Sim, dir: &Path) -> Result<(), SimError> {
    sim.export_static(dir)
}
