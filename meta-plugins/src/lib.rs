//! The CNI meta-plugins `veth` and `router`.
//!
//! Chained after an underlay plugin (macvlan, `sriov`), they make underlay pods reach
//! cluster services and pass kubelet health checks:
//!
//! - `veth`: a veth pair between the pod (`veth0`) and the node; the pod routes the node's
//!   addresses and the hijacked subnets (services, overlay pods, extras) through it, the node
//!   routes each pod address back through it. North-south traffic stays on the underlay NIC.
//! - `router`: policy routing in the pod sends the hijacked subnets through the default CNI's
//!   interface (`overlay_interface`, `eth0`); the rest leaves by the underlay NIC. The node
//!   reaches the pod's underlay address through the overlay veth (`host_rule_table`).
//!
//! Layers: [`config`] (keys → validated [`config::Config`]), [`plan`] (pure: what to
//! install, from namespace snapshots [`view`]), [`model`] (the objects and record entries),
//! [`state`] (records on disk, node-wide lock), [`kernel`] (snapshots, apply, undo, check over
//! `sriov-netlink`), [`devconf`] (per-interface IPv4 knobs over netlink), [`ops`] (ADD, DEL,
//! CHECK, GC, STATUS as a [`cni_spec::Plugin`]), [`logging`] (rotating log file), [`naming`]
//! (deterministic names, MACs, NIC order).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod devconf;
pub mod kernel;
pub mod logging;
pub mod model;
pub mod naming;
pub mod ops;
pub mod plan;
pub mod state;
pub mod view;
