//! Network namespace helpers. Namespaces are only ever entered on a fresh, short-lived
//! scoped thread, never on a serving thread.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{CloneFlags, setns, unshare};

use crate::error::SimError;

fn netns_err(what: String) -> impl FnOnce(std::io::Error) -> SimError {
    move |source| SimError::Netns { what, source }
}

/// Opens a netns file (`/proc/<pid>/ns/net`, `/run/netns/<name>`).
pub(crate) fn open_netns(path: &Path) -> Result<OwnedFd, SimError> {
    File::open(path).map(OwnedFd::from).map_err(netns_err(format!("open {}", path.display())))
}

/// Inode number of the initial network namespace (`PROC_NET_INIT_INO` in
/// include/linux/proc_ns.h): fixed by the kernel, so it identifies the root netns even
/// where `/proc/1/ns/net` is not readable.
pub(crate) const PROC_NET_INIT_INO: u64 = 0xEFFF_FFF9;

/// Whether the netns file `path` is the root (initial) network namespace.
pub(crate) fn is_root_netns(path: &Path) -> Result<bool, SimError> {
    let a = std::fs::metadata(path).map_err(netns_err(format!("stat {}", path.display())))?;
    if a.ino() == PROC_NET_INIT_INO {
        return Ok(true);
    }
    // Also compare with PID 1's netns when readable (a container's "root").
    Ok(std::fs::metadata("/proc/1/ns/net").is_ok_and(|b| a.dev() == b.dev() && a.ino() == b.ino()))
}

/// Runs `f` on a fresh thread that has entered the netns `ns`.
pub(crate) fn in_netns<T: Send>(
    ns: BorrowedFd<'_>,
    what: &str,
    f: impl FnOnce() -> Result<T, SimError> + Send,
) -> Result<T, SimError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| SimError::Netns {
                what: format!("setns into {what}"),
                source: e.into(),
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SimError::Netns {
                what: format!("thread in {what} panicked"),
                source: std::io::Error::other("panic"),
            })
        })
    })
}

/// Creates a new network namespace on a fresh thread, runs `f` inside it and returns an
/// fd that keeps the namespace alive (it is destroyed once the fd and everything else
/// referring to it are gone).
pub(crate) fn new_netns<T: Send>(
    f: impl FnOnce() -> Result<T, SimError> + Send,
) -> Result<(OwnedFd, T), SimError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| SimError::Netns {
                what: "unshare(CLONE_NEWNET) for the wire netns".to_owned(),
                source: e.into(),
            })?;
            let fd = File::open("/proc/thread-self/ns/net")
                .map(OwnedFd::from)
                .map_err(netns_err("open /proc/thread-self/ns/net".to_owned()))?;
            Ok((fd, f()?))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SimError::Netns {
                what: "wire netns thread panicked".to_owned(),
                source: std::io::Error::other("panic"),
            })
        })
    })
}
