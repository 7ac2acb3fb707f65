//! The CNI specification layer shared by the suite's plugins (`sriov`, `veth`, `router`).
//!
//! Pure Rust: no netlink, no namespaces. It covers spec versions 0.3.0, 0.3.1, 0.4.0, 1.0.0
//! and 1.1.0:
//!
//! - [`env`](mod@env): the `CNI_*` variables, validated per command ([`CniEnv`], [`CniArgs`],
//!   [`CniPath`]).
//! - [`config`]: the plugin configuration ([`NetConf<T>`] with the plugin's keys flattened in,
//!   `runtimeConfig`, `args`, `ipam`, `prevResult`, GC attachments, `cniVersions`).
//! - [`result`]: results ([`CniResult`]) and their conversions between versions, matching the
//!   Go library's converters.
//! - [`error`]: the spec's error JSON ([`CniError`], [`ErrorCode`]).
//! - [`delegate`]: running IPAM (or other) plugins from `CNI_PATH`.
//! - [`plugin`]: the [`Plugin`] trait and the [`run`] runner returning an
//!   [`ExitCode`](std::process::ExitCode).
//! - [`logging`]: [`init_logging`] for short-lived processes sharing a log file.
//! - [`net`]: [`IpPrefix`], [`RequestedIp`], [`Mac`]; [`device_info`]: the Multus
//!   device-info file.
//!
//! The runner writes only the result or error JSON to stdout; logs go to stderr or a file.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod atomic;
pub mod config;
pub mod delegate;
pub mod device_info;
pub mod env;
pub mod error;
pub mod logging;
pub mod net;
pub mod plugin;
pub mod result;
pub mod version;

pub use atomic::{AtomicWriteError, Durability, write_atomic};
pub use config::{
    Args, ArgsCni, GcAttachment, IpamConf, NetConf, NoPluginConfig, RuntimeConfig,
    ValidAttachments, resolve_version,
};
pub use delegate::{Delegate, DelegateEnv, ExecOutput, exec_plugin, find_plugin};
pub use device_info::{
    DEVICE_INFO_VERSION, DeviceInfo, DeviceInfoError, DeviceType, PciDeviceInfo, VdpaDeviceInfo,
};
pub use env::{CniArgs, CniEnv, CniPath, Command, K8sArgs, validate_container_id, validate_ifname};
pub use error::{CniError, ErrorCode};
pub use logging::{LogLevel, LogSettings, LoggingError, init_logging};
pub use net::{AddrParseError, IpPrefix, Mac, RequestedIp};
pub use plugin::{
    AddRequest, CheckRequest, DelRequest, GcRequest, Plugin, StatusRequest, run, run_with,
};
pub use result::{
    CniResult, Dns, Interface, IpConfig, ResultError, Route, VersionedResult, parse_result,
    result_from_value,
};
pub use version::{CniVersion, UnsupportedVersion, VersionInfo};
