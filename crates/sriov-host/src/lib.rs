//! SR-IOV host model over sysfs.
//!
//! - [`pci`]: the [`PciAddr`] and [`PciId`] types everything is keyed on.
//! - [`paths`]: injectable sysfs and `/dev` roots ([`HostPaths`]).
//! - [`discover`]: one snapshot of every PF and VF ([`Host`]).
//! - [`provision`]: VF count changes and driver binding, the way the kernel requires them.
//! - [`ids`]: vendor and device names (`pci.ids`), offline.
//!
//! Only [`sysfs`] touches the file system; everything else is plain logic over its results.

pub mod devnodes;
pub mod discover;
pub mod ids;
pub mod model;
pub mod paths;
pub mod pci;
pub mod provision;
pub mod sysfs;
pub mod vf_lookup;

pub use discover::{DiscoverError, DiscoverOptions, VfDetail, discover};
pub use ids::PciIds;
pub use model::{Host, LinkType, Netdev, NetdevStatus, PciInfo, Pf, Vf, Warning};
pub use paths::HostPaths;
pub use pci::{PciAddr, PciId};
