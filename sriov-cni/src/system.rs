//! The plugin's seams to the kernel: everything the engine does to the outside world goes
//! through a [`Platform`].
//!
//! - sysfs is reached through a [`HostPaths`] root (a real `/sys`, the simulated host, or a
//!   fixture tree);
//! - netlink goes through [`Netlink`] clients, generic over the [`Transport`], so tests use the
//!   recording [`sriov_netlink::FakeTransport`];
//! - the few things that are neither (opening the pod's netns, per-netns sysctls, gratuitous
//!   ARP / unsolicited NA) are the [`Platform`] methods, real in [`KernelPlatform`].
//!
//! The plugin never switches its own threads between namespaces: sockets for the pod are
//! created on a scoped thread inside it (see [`sriov_netlink::netns`]).

use std::net::IpAddr;
use std::path::Path;

use sriov_host::HostPaths;
use sriov_netlink::{Netlink, NetlinkSocket, Netns, Transport};

/// The pod's network namespace: an open handle (its fd is what a netns move carries) and a
/// netlink client bound inside it.
#[derive(Debug)]
pub struct Pod<T: Transport> {
    /// The namespace.
    pub netns: Netns,
    /// A route-netlink client inside it.
    pub nl: Netlink<T>,
}

/// Why a pod netns could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The path names no network namespace (any more).
    #[error("network namespace {path} does not exist")]
    Gone {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: sriov_netlink::Error,
    },
    /// The path is the plugin's own network namespace.
    #[error("network namespace {path} is the plugin's own (host) namespace")]
    IsHost {
        /// The path.
        path: String,
    },
    /// Something else failed.
    #[error(transparent)]
    Other(#[from] sriov_netlink::Error),
}

/// The kernel as the engine sees it.
pub trait Platform {
    /// The netlink transport.
    type T: Transport;

    /// The sysfs (and /dev) roots.
    fn paths(&self) -> &HostPaths;

    /// The netlink client in the plugin's (host) netns.
    fn host(&mut self) -> &mut Netlink<Self::T>;

    /// The plugin's own (host) netns, to move links back into.
    fn host_netns(&self) -> &Netns;

    /// Opens the pod netns at `path`.
    fn open_pod(&mut self, path: &Path) -> Result<Pod<Self::T>, PodError>;

    /// Writes `/proc/sys/<key>` inside `pod`.
    fn write_sysctl(
        &mut self,
        pod: &Netns,
        key: &str,
        value: &str,
    ) -> Result<(), sriov_netlink::Error>;

    /// Announces `ips` on `ifname` inside `pod` (gratuitous ARP / unsolicited NA).
    fn announce(
        &mut self,
        pod: &Netns,
        ifname: &str,
        ips: &[IpAddr],
    ) -> Result<(), sriov_netlink::Error>;

    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), `None` if unreadable.
    fn boot_id(&self) -> Option<String>;
}

/// The real kernel.
#[derive(Debug)]
pub struct KernelPlatform {
    paths: HostPaths,
    host: Netlink<NetlinkSocket>,
    host_netns: Netns,
}

impl KernelPlatform {
    /// Opens a netlink socket and a handle on the calling thread's netns.
    pub fn new(paths: HostPaths) -> Result<KernelPlatform, sriov_netlink::Error> {
        Ok(KernelPlatform { paths, host: Netlink::open()?, host_netns: Netns::current()? })
    }
}

/// Opens a netns file for a pod: gone (missing, or no longer a netns) is its own error, and the
/// caller's own namespace is refused (moving a VF "into" it would do nothing useful and hide a
/// runtime bug).
pub fn open_pod_netns(path: &Path, host: &Netns) -> Result<Netns, PodError> {
    let shown = path.display().to_string();
    let ns = match Netns::open(path) {
        Ok(ns) => ns,
        Err(e @ sriov_netlink::Error::Netns { .. }) => {
            return Err(PodError::Gone { path: shown, source: e });
        }
        Err(e) => return Err(e.into()),
    };
    if ns.same_as(host)? {
        return Err(PodError::IsHost { path: shown });
    }
    Ok(ns)
}

impl Platform for KernelPlatform {
    type T = NetlinkSocket;

    fn paths(&self) -> &HostPaths {
        &self.paths
    }

    fn host(&mut self) -> &mut Netlink<NetlinkSocket> {
        &mut self.host
    }

    fn host_netns(&self) -> &Netns {
        &self.host_netns
    }

    fn open_pod(&mut self, path: &Path) -> Result<Pod<NetlinkSocket>, PodError> {
        let netns = open_pod_netns(path, &self.host_netns)?;
        let nl = sriov_netlink::open_route_socket_in(&netns)?;
        Ok(Pod { netns, nl })
    }

    fn write_sysctl(
        &mut self,
        pod: &Netns,
        key: &str,
        value: &str,
    ) -> Result<(), sriov_netlink::Error> {
        sriov_netlink::write_sysctl_in(pod, key, value)
    }

    fn announce(
        &mut self,
        pod: &Netns,
        ifname: &str,
        ips: &[IpAddr],
    ) -> Result<(), sriov_netlink::Error> {
        let mut first_err = None;
        for ip in ips {
            let r = match ip {
                IpAddr::V4(v4) => sriov_netlink::garp::send_gratuitous_arp(pod, ifname, *v4),
                IpAddr::V6(v6) => sriov_netlink::garp::send_unsolicited_na(pod, ifname, *v6),
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn boot_id(&self) -> Option<String> {
        std::fs::read_to_string(BOOT_ID).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }
}

/// Where the kernel publishes its boot id.
pub const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
