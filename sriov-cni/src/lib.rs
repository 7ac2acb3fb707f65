//! The `sriov` CNI plugin: moves an SR-IOV VF into a pod (or hands a vfio/uio VF to it),
//! applies its settings through the PF, and undoes all of it exactly.
//!
//! Every change is journaled before it is made ([`journal`], [`state`]): `ADD` writes a
//! snapshot of the VF's full state, then appends the inverse of each step before running it;
//! a failure, a panic or a `kill -9` at any point is undone by replaying that log
//! ([`restore`]), by the rollback itself or by the next `DEL`/`GC`/`ADD` of the VF.
//!
//! - [`config`]: configuration keys (compatible with the Go sriov-cni), validated once;
//! - [`add`], [`del`], [`check`]: the operations; [`plugin`] wires them to the CNI runner;
//! - [`devinfo`]: the NPWG device-information file Multus reads;
//! - [`system`]: the seams to the kernel (sysfs root, netlink, pod netns), replaced by fakes in
//!   tests;
//! - [`failpoint`]: fault injection between steps (feature `failpoints`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod add;
pub mod check;
pub mod config;
pub mod del;
pub mod devinfo;
pub mod error;
pub mod failpoint;
pub mod ipam;
pub mod journal;
pub mod plugin;
pub mod restore;
pub mod state;
pub mod system;

pub use error::Error;
pub use plugin::SriovPlugin;
