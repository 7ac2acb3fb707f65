//! Network namespaces: the only place in the suite that calls `setns`.
//!
//! Namespace switches happen only on a fresh scoped thread that enters the
//! target netns, does its work and exits ([`run_in_netns`]); a pooled or
//! async thread is never switched, so no thread can be left behind in a pod
//! netns (the hazard described in containernetworking/plugins
//! `pkg/ns/README.md`). Sockets created on such a thread stay bound to that
//! netns for their whole life, so [`open_route_socket_in`] hands the caller a
//! socket for the pod netns while the caller itself never moves.
#![allow(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use tracing::{debug, warn};

use crate::client::Netlink;
use crate::error::{Error, Result};
use crate::events::LinkEvents;
use crate::transport::NetlinkSocket;

/// Where `ip netns add` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network-namespace file (`/proc/<pid>/ns/net`, `/run/netns/x`, or
/// any bind mount of one).
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: PathBuf,
}

/// Identity of a netns: device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetnsId {
    /// `st_dev` of the nsfs file.
    pub dev: u64,
    /// `st_ino`: the netns inode number (as in `net:[4026531840]`).
    pub ino: u64,
}

impl Netns {
    /// Opens a netns file and checks it really is one.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let err =
            |op: &'static str, source: io::Error| Error::Netns { op, path: path.clone(), source };
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| err("open netns", e))?;
        // NS_GET_NSTYPE (_IO(0xb7, 0x3)) tells a netns file from the other
        // namespace files and from everything else (ENOTTY).
        const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
        // SAFETY: NS_GET_NSTYPE takes no argument; the fd is open for the call.
        let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if nstype < 0 {
            let e = io::Error::last_os_error();
            let e = if e.raw_os_error() == Some(libc::ENOTTY) {
                io::Error::new(io::ErrorKind::InvalidInput, "not a namespace file")
            } else {
                e
            };
            return Err(err("check netns", e));
        }
        if nstype != libc::CLONE_NEWNET {
            return Err(err(
                "check netns",
                io::Error::new(io::ErrorKind::InvalidInput, "not a network namespace"),
            ));
        }
        Ok(Netns { fd: file.into(), path })
    }

    /// The calling thread's netns.
    pub fn current() -> Result<Self> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// The netns of this process's main thread (`/proc/self/ns/net`).
    pub fn process() -> Result<Self> {
        Self::open("/proc/self/ns/net")
    }

    /// The netns of PID 1 (the host's, unless we run in a container).
    /// Needs ptrace access to PID 1; sandboxes without `CAP_SYS_PTRACE`
    /// get `EACCES`.
    pub fn init() -> Result<Self> {
        Self::open("/proc/1/ns/net")
    }

    /// The netns of a process.
    pub fn of_pid(pid: u32) -> Result<Self> {
        Self::open(format!("/proc/{pid}/ns/net"))
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Device and inode: equal ids mean the same netns.
    pub fn id(&self) -> Result<NetnsId> {
        let m = File::from(self.fd.try_clone().map_err(|e| self.err("dup netns fd", e))?)
            .metadata()
            .map_err(|e| self.err("stat netns", e))?;
        Ok(NetnsId { dev: m.dev(), ino: m.ino() })
    }

    /// The netns inode number.
    pub fn inode(&self) -> Result<u64> {
        self.id().map(|i| i.ino)
    }

    /// Whether both refer to the same netns.
    pub fn same_as(&self, other: &Netns) -> Result<bool> {
        Ok(self.id()? == other.id()?)
    }

    /// A second handle to the same netns.
    pub fn try_clone(&self) -> Result<Netns> {
        Ok(Netns {
            fd: self.fd.try_clone().map_err(|e| self.err("dup netns fd", e))?,
            path: self.path.clone(),
        })
    }

    fn err(&self, op: &'static str, source: io::Error) -> Error {
        Error::Netns { op, path: self.path.clone(), source }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether two netns handles refer to the same namespace.
pub fn same_netns(a: &Netns, b: &Netns) -> Result<bool> {
    a.same_as(b)
}

/// Runs `f` on a fresh thread that has entered `ns`; the thread exits when
/// `f` returns, so no thread outlives its stay in the netns. A panic in `f`
/// is resumed on the caller.
pub fn run_in_netns<F, R>(ns: &Netns, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(scope, || -> Result<R> {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ns.err("setns into", e.into()))?;
                Ok(f())
            })
            .map_err(|e| Error::Thread { path: ns.path.clone(), source: e })?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// A route-netlink client bound to `ns`, usable from the calling thread.
pub fn open_route_socket_in(ns: &Netns) -> Result<Netlink<NetlinkSocket>> {
    run_in_netns(ns, Netlink::open)?
}

/// A link-event subscription in `ns`.
pub fn link_events_in(ns: &Netns) -> Result<LinkEvents<NetlinkSocket>> {
    run_in_netns(ns, LinkEvents::open)?
}

/// The netns a socket belongs to (`SIOCGSKNS`). Tests use it to prove a
/// socket is not in the host netns.
pub fn socket_netns(socket: BorrowedFd<'_>) -> Result<Netns> {
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    let path = PathBuf::from(format!("socket fd {}", socket.as_raw_fd()));
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd (or -1); the
    // fd passed in is valid for the duration of the call (borrowed).
    let fd = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSKNS as _) };
    if fd < 0 {
        return Err(Error::Netns { op: "get netns of", path, source: io::Error::last_os_error() });
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(Netns { fd, path })
}

fn check_sysctl_key(key: &str) -> Result<()> {
    let bad = |d: &str| Error::invalid("sysctl key", format!("{key:?}: {d}"));
    // Only net/ sysctls are per-netns; anything else would change the host.
    if !key.starts_with("net/") {
        return Err(bad("must start with net/ (only those are per network namespace)"));
    }
    if key.split('/').any(|c| c.is_empty() || c == "." || c == "..") || key.contains('\0') {
        return Err(bad("empty, '.' or '..' component"));
    }
    Ok(())
}

/// Writes `/proc/sys/<key>` inside `ns`, e.g.
/// `write_sysctl_in(&ns, "net/ipv4/conf/eth0/arp_notify", "1")`. Keys use
/// `/` separators (interface names may contain dots) and must start with
/// `net/`.
pub fn write_sysctl_in(ns: &Netns, key: &str, value: &str) -> Result<()> {
    check_sysctl_key(key)?;
    let path = Path::new("/proc/sys").join(key);
    debug!(netns = %ns.path.display(), key, value, "write sysctl");
    run_in_netns(ns, || fs::write(&path, value))?.map_err(|source| Error::Sysctl {
        op: "write",
        key: key.to_owned(),
        netns: ns.path.clone(),
        source,
    })
}

/// Reads `/proc/sys/<key>` inside `ns`, trailing newline removed.
pub fn read_sysctl_in(ns: &Netns, key: &str) -> Result<String> {
    check_sysctl_key(key)?;
    let path = Path::new("/proc/sys").join(key);
    run_in_netns(ns, || fs::read_to_string(&path))?
        .map(|s| s.trim_end_matches('\n').to_owned())
        .map_err(|source| Error::Sysctl {
            op: "read",
            key: key.to_owned(),
            netns: ns.path.clone(),
            source,
        })
}

/// A new, empty netns bound to a file, removed (unmount + unlink) on drop:
/// what `ip netns add` / `ip netns del` do. For tests and tools; a CNI
/// plugin never creates namespaces.
#[derive(Debug)]
pub struct OwnedNetns {
    ns: Netns,
    removed: bool,
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

impl OwnedNetns {
    /// Creates a netns and bind-mounts it on `path` (created, must not exist).
    pub fn create_at(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let err =
            |op: &'static str, source: io::Error| Error::Netns { op, path: path.clone(), source };
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| err("create netns file", e))?;
        // unshare() on a fresh thread so no existing thread changes netns;
        // the bind mount keeps the namespace alive after the thread exits.
        let made = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<()> {
                unshare(CloneFlags::CLONE_NEWNET)?;
                let tid = nix::unistd::gettid();
                let src = format!("/proc/self/task/{tid}/ns/net");
                mount(Some(src.as_str()), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
                Ok(())
            })
            .join()
        });
        let made = match made {
            Ok(r) => r,
            Err(_) => Err(io::Error::other("netns creation thread panicked")),
        };
        if let Err(e) = made {
            let _ = fs::remove_file(&path);
            return Err(err("create netns", e));
        }
        match Netns::open(&path) {
            Ok(ns) => {
                debug!(path = %path.display(), "created netns");
                Ok(OwnedNetns { ns, removed: false })
            }
            Err(e) => {
                let _ = umount2(&path, MntFlags::MNT_DETACH);
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Creates `/run/netns/<name>` (visible to `ip netns` / `ip -n <name>`).
    pub fn create_named(name: &str) -> Result<Self> {
        if name.is_empty()
            || name.len() > 255
            || name.contains(['/', '\0'])
            || name == "."
            || name == ".."
        {
            return Err(Error::invalid("netns name", format!("{name:?}")));
        }
        let dir = Path::new(NETNS_RUN_DIR);
        fs::create_dir_all(dir).map_err(|source| Error::Netns {
            op: "create netns directory",
            path: dir.to_path_buf(),
            source,
        })?;
        Self::create_at(dir.join(name))
    }

    /// Creates `/run/netns/<prefix>-<pid>-<n>`, unique within this process.
    pub fn create_unique(prefix: &str) -> Result<Self> {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        Self::create_named(&format!("{prefix}-{}-{n}", std::process::id()))
    }

    /// The netns.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The bind-mount path.
    pub fn path(&self) -> &Path {
        &self.ns.path
    }

    /// The file name (the `ip -n` name when created with [`Self::create_named`]).
    pub fn name(&self) -> &str {
        self.ns.path.file_name().and_then(|s| s.to_str()).unwrap_or("")
    }

    /// Unmounts and unlinks now, reporting errors (drop does it silently).
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_bind(&self.ns.path)
    }
}

fn remove_bind(path: &Path) -> Result<()> {
    let err =
        |op: &'static str, source: io::Error| Error::Netns { op, path: path.to_path_buf(), source };
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err("unmount netns", e.into())),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("remove netns file", e)),
    }
}

impl Drop for OwnedNetns {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Err(e) = remove_bind(&self.ns.path) {
            warn!(error = %e, "cannot remove netns");
        }
    }
}

impl std::ops::Deref for OwnedNetns {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

impl AsFd for OwnedNetns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ns.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_are_confined_to_net() {
        assert!(check_sysctl_key("net/ipv4/conf/eth0/arp_notify").is_ok());
        assert!(check_sysctl_key("net/ipv6/conf/eth0.100/disable_ipv6").is_ok());
        for bad in
            ["kernel/hostname", "/net/ipv4/ip_forward", "net/../kernel/x", "net//x", "net/ipv4/"]
        {
            assert!(check_sysctl_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn current_and_self_are_same() {
        let a = Netns::current().unwrap();
        let b = Netns::open("/proc/self/ns/net").unwrap();
        assert!(a.same_as(&b).unwrap());
        assert!(a.inode().unwrap() > 0);
    }

    #[test]
    fn non_netns_file_is_rejected() {
        let e = Netns::open("/proc/self/status").unwrap_err();
        assert!(e.to_string().contains("/proc/self/status"), "{e}");
        let e = Netns::open("/proc/self/ns/uts").unwrap_err();
        assert!(e.to_string().contains("check netns"), "{e}");
    }

    #[test]
    fn run_in_netns_returns_value_and_propagates_panic() {
        let me = Netns::current().unwrap();
        assert_eq!(run_in_netns(&me, || 41 + 1).unwrap(), 42);
        let r = std::panic::catch_unwind(|| run_in_netns(&me, || panic!("boom")));
        assert!(r.is_err());
    }
}
