//! `sriov-device-plugin`: a kubelet device plugin advertising SR-IOV VF pools.
//!
//! A drop-in replacement for the Go SR-IOV network device plugin (its config file works
//! unchanged), with a live inventory driven by kernel events, real health, preferred allocation
//! and live config reload.
//!
//! - [`config`]: the Go-compatible config file, parsed once into validated types.
//! - [`inventory`]: one host snapshot per scan, selection and health in memory.
//! - [`allocate`]: env vars, device specs, device-info files and CDI for Allocate.
//! - [`preferred`]: the GetPreferredAllocation policy.
//! - [`service`]: the kubelet `DevicePlugin` gRPC service of one pool.
//! - [`kubelet`]: registration with the kubelet over its unix socket.
//! - [`events`]: inotify, uevent, link-event and signal sources.
//! - [`manager`]: the task tying it together.
//! - [`cli`]: the command line.
//!
//! The device-plugin API ([`api`]) is generated at build time from the vendored
//! `proto/api.proto` with protox and tonic-prost-build; no `protoc` is needed.

pub mod allocate;
pub mod cli;
pub mod config;
pub mod events;
pub mod inventory;
pub mod kubelet;
pub mod manager;
pub mod preferred;
pub mod service;

/// The kubelet device-plugin API v1beta1 (messages, `Registration` and `DevicePlugin` clients
/// and servers), generated from `proto/api.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic, rust_2018_idioms)]
pub mod api {
    tonic::include_proto!("v1beta1");
}
