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
//! created on a scoped thread inside it (see [`sriov_netlink::netns`]). Entering a netns costs a
//! thread start, and on a busy machine a new thread waits for a CPU (milliseconds, far more
//! than the work it does), so `ADD` enters the pod once ([`Platform::enter_pod`]) and does all
//! its pod-side work up to IPAM on that one thread: the pod's socket, the move (through the
//! host's socket, which works from any thread), MAC, MTU, sysctls and link up.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::thread::ThreadId;

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

    /// Opens the pod's netns file at `path` without entering it: gone, or the plugin's own
    /// netns, is refused here, before anything else happens.
    fn open_pod_netns(&mut self, path: &Path) -> Result<Netns, PodError>;

    /// Enters `netns` once, opens the pod's netlink client there and runs `f` on that thread:
    /// [`Platform::write_sysctl`] calls for this pod made by `f` need no further netns entry.
    /// Returns the pod (its client stays usable from any thread) and `f`'s value. A panic in
    /// `f` is resumed on the caller.
    fn enter_pod<R, F>(&mut self, netns: Netns, f: F) -> Result<(Pod<Self::T>, R), PodError>
    where
        R: Send,
        F: FnOnce(&mut Self, &mut Pod<Self::T>) -> R + Send;

    /// Runs `f` inside `pod`'s netns (one entry for several sysctls). The default runs `f`
    /// on the calling thread, for platforms without namespaces (fakes).
    fn in_pod<R, F>(&mut self, pod: &mut Pod<Self::T>, f: F) -> Result<R, sriov_netlink::Error>
    where
        R: Send,
        F: FnOnce(&mut Self, &mut Pod<Self::T>) -> R + Send,
    {
        Ok(f(self, pod))
    }

    /// Writes `/proc/sys/<key>` inside `pod` (directly when called inside
    /// [`Platform::enter_pod`] or [`Platform::in_pod`] for the same pod, else by entering it).
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
    /// The thread currently inside a pod netns for [`Platform::enter_pod`]/[`Platform::in_pod`],
    /// and that netns's fd: only that thread may write the pod's sysctls directly. Thread ids
    /// are never reused, so a stale entry can never match another thread.
    inside: Option<(ThreadId, RawFd)>,
}

impl KernelPlatform {
    /// Opens a netlink socket and a handle on the calling thread's netns.
    pub fn new(paths: HostPaths) -> Result<KernelPlatform, sriov_netlink::Error> {
        Ok(KernelPlatform {
            paths,
            host: Netlink::open()?,
            host_netns: Netns::current()?,
            inside: None,
        })
    }

    /// Whether the calling thread is inside `pod` (entered by this platform).
    fn is_inside(&self, pod: &Netns) -> bool {
        self.inside == Some((std::thread::current().id(), pod.as_fd().as_raw_fd()))
    }
}

/// Checks a sysctl key before it is joined to `/proc/sys`: only per-netns (`net/`) keys, no
/// empty, `.` or `..` component.
fn check_sysctl_key(key: &str) -> Result<(), sriov_netlink::Error> {
    let ok = key.starts_with("net/")
        && !key.contains('\0')
        && key.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(sriov_netlink::Error::Invalid {
            what: "sysctl key",
            detail: format!("{key:?}: must be net/... without empty, '.' or '..' components"),
        })
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

    fn open_pod_netns(&mut self, path: &Path) -> Result<Netns, PodError> {
        open_pod_netns(path, &self.host_netns)
    }

    fn enter_pod<R, F>(&mut self, netns: Netns, f: F) -> Result<(Pod<NetlinkSocket>, R), PodError>
    where
        R: Send,
        F: FnOnce(&mut Self, &mut Pod<NetlinkSocket>) -> R + Send,
    {
        let entry = netns.try_clone()?;
        let done = sriov_netlink::run_in_netns(&entry, move || {
            let nl = Netlink::open()?;
            let mut pod = Pod { netns, nl };
            self.inside = Some((std::thread::current().id(), pod.netns.as_fd().as_raw_fd()));
            let r = f(self, &mut pod);
            self.inside = None;
            Ok::<_, sriov_netlink::Error>((pod, r))
        })?;
        Ok(done?)
    }

    fn in_pod<R, F>(
        &mut self,
        pod: &mut Pod<NetlinkSocket>,
        f: F,
    ) -> Result<R, sriov_netlink::Error>
    where
        R: Send,
        F: FnOnce(&mut Self, &mut Pod<NetlinkSocket>) -> R + Send,
    {
        let entry = pod.netns.try_clone()?;
        sriov_netlink::run_in_netns(&entry, move || {
            self.inside = Some((std::thread::current().id(), pod.netns.as_fd().as_raw_fd()));
            let r = f(self, pod);
            self.inside = None;
            r
        })
    }

    fn write_sysctl(
        &mut self,
        pod: &Netns,
        key: &str,
        value: &str,
    ) -> Result<(), sriov_netlink::Error> {
        if !self.is_inside(pod) {
            return sriov_netlink::write_sysctl_in(pod, key, value);
        }
        // This thread entered the pod's netns: /proc/sys/net is the pod's.
        check_sysctl_key(key)?;
        tracing::debug!(netns = %pod.path().display(), key, value, "write sysctl (inside the pod)");
        std::fs::write(Path::new("/proc/sys").join(key), value).map_err(|source| {
            sriov_netlink::Error::Sysctl {
                op: "write",
                key: key.to_owned(),
                netns: pod.path().to_owned(),
                source,
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_are_confined_to_net() {
        assert!(check_sysctl_key("net/ipv4/conf/net1/arp_notify").is_ok());
        assert!(check_sysctl_key("net/ipv6/conf/eth0.100/disable_ipv6").is_ok());
        for bad in
            ["kernel/hostname", "/net/ipv4/x", "net/../kernel/x", "net//x", "net/ipv4/", "net/./x"]
        {
            assert!(check_sysctl_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_thread_that_entered_the_pod_writes_directly() {
        let Ok(mut plat) = KernelPlatform::new(HostPaths::from_env()) else { return };
        let me = Netns::current().unwrap();
        // Outside any visit: never "inside", so writes go through a netns entry.
        assert!(!plat.is_inside(&me));
        plat.inside = Some((std::thread::current().id(), me.as_fd().as_raw_fd()));
        assert!(plat.is_inside(&me));
        // Another thread with the same fd is not inside.
        let other = std::thread::scope(|s| s.spawn(|| plat.is_inside(&me)).join().unwrap());
        assert!(!other);
    }
}
