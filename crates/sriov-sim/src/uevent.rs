//! Kernel uevents of the simulated host: the `NETLINK_KOBJECT_UEVENT` broadcasts a real
//! kernel sends when PCI devices come and go, drivers bind and unbind, and netdevs are
//! registered or unregistered, built exactly as `lib/kobject_uevent.c` builds them and
//! sent to multicast group 1 inside the sim's own network namespace.
//!
//! Datagram layout (`kobject_uevent_env()` + `alloc_uevent_skb()`):
//! `ACTION@DEVPATH\0ACTION=..\0DEVPATH=..\0SUBSYSTEM=..\0` then the caller's extra keys,
//! then the subsystem's keys (`dev_uevent()`: `MAJOR`/`MINOR`/`DEVNAME` for device nodes,
//! `DRIVER` when bound, then the bus or class callback: `pci_uevent()`'s `PCI_CLASS`,
//! `PCI_ID`, `PCI_SUBSYS_ID`, `PCI_SLOT_NAME`, `MODALIAS`; `netdev_uevent()`'s
//! `INTERFACE`, `IFINDEX`), `MODALIAS` dropped on `unbind` (`zap_modalias_env()`), and
//! `SEQNUM` last.
//!
//! # Safety
//!
//! A userspace broadcast on group 1 reaches only listeners in the sender's network
//! namespace, so the socket is created inside the target namespace (on a short-lived
//! thread that entered it) and kept. The root network namespace is refused twice: by the
//! namespace file's inode before entering it, and by the entered thread's own namespace
//! before the socket is opened. The host's udevd therefore never sees these events (and
//! would drop them anyway: libudev ignores group-1 messages whose sender port id is not 0,
//! the kernel's).

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_KOBJECT_UEVENT};

use crate::error::SimError;
use crate::netns;

/// The kernel's uevent multicast group (udevd re-broadcasts on group 2).
const KERNEL_GROUP_MASK: u32 = 1;

/// Where the simulated kernel broadcasts its uevents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UeventTarget {
    /// No uevents at all (the default): consumers must rescan to see changes.
    #[default]
    Off,
    /// Broadcast on `NETLINK_KOBJECT_UEVENT` group 1 inside the network namespace at this
    /// path (`/run/netns/<name>`, `/proc/<pid>/ns/net`): only listeners in that namespace
    /// receive them. Never the root network namespace. With a veth backing
    /// ([`crate::Sim::with_netns`]) it must be the backing's node namespace.
    Netns(PathBuf),
}

/// What happened to a kobject (`enum kobject_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Add,
    Remove,
    Change,
    Move,
    Bind,
    Unbind,
}

impl Action {
    /// `kobject_actions[]` spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Change => "change",
            Self::Move => "move",
            Self::Bind => "bind",
            Self::Unbind => "unbind",
        }
    }
}

/// One uevent before its sequence number is assigned (pure data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Uevent {
    pub(crate) action: Action,
    /// `DEVPATH`, starting with `/devices/`.
    pub(crate) devpath: String,
    pub(crate) subsystem: &'static str,
    /// `KEY=VALUE` pairs after `SUBSYSTEM`, in the kernel's order, without `SEQNUM`.
    pub(crate) vars: Vec<String>,
}

impl Uevent {
    /// The datagram the kernel sends for this event with sequence number `seqnum`.
    pub(crate) fn datagram(&self, seqnum: u64) -> Vec<u8> {
        let action = self.action.as_str();
        let mut out = Vec::with_capacity(256);
        let mut push = |s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        push(&format!("{action}@{}", self.devpath));
        push(&format!("ACTION={action}"));
        push(&format!("DEVPATH={}", self.devpath));
        push(&format!("SUBSYSTEM={}", self.subsystem));
        for v in &self.vars {
            push(v);
        }
        push(&format!("SEQNUM={seqnum}"));
        out
    }
}

enum Out {
    /// A `NETLINK_KOBJECT_UEVENT` socket created in the target netns.
    Socket(Socket),
    /// Unit tests: keep the datagrams.
    #[cfg(test)]
    Record(Vec<Vec<u8>>),
}

/// The sending end: one socket in the target netns, and the sequence counter.
pub(crate) struct UeventSink {
    out: Out,
    netns: PathBuf,
    seqnum: u64,
}

impl std::fmt::Debug for UeventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UeventSink")
            .field("netns", &self.netns)
            .field("seqnum", &self.seqnum)
            .finish()
    }
}

impl UeventSink {
    /// Opens the sending socket inside the netns at `path`. Refuses the root netns.
    pub(crate) fn open(path: &Path) -> Result<Self, SimError> {
        if netns::is_root_netns(path)? {
            return Err(SimError::RootNetnsUevents { path: path.to_owned() });
        }
        let fd = netns::open_netns(path)?;
        let what = format!("uevent netns {}", path.display());
        let socket = netns::in_netns(fd.as_fd(), &what, || {
            // Belt and braces: check the namespace this thread is really in.
            let own = fs::metadata("/proc/thread-self/ns/net").map_err(|source| {
                SimError::Netns { what: "stat /proc/thread-self/ns/net".to_owned(), source }
            })?;
            if own.ino() == netns::PROC_NET_INIT_INO {
                return Err(SimError::RootNetnsUevents { path: path.to_owned() });
            }
            let mut s =
                Socket::new(NETLINK_KOBJECT_UEVENT).map_err(|source| SimError::Netlink {
                    op: "socket NETLINK_KOBJECT_UEVENT",
                    name: what.clone(),
                    source,
                })?;
            s.bind_auto().map_err(|source| SimError::Netlink {
                op: "bind NETLINK_KOBJECT_UEVENT",
                name: what.clone(),
                source,
            })?;
            Ok(s)
        })?;
        tracing::info!(netns = %path.display(), "sim: broadcasting uevents");
        Ok(Self { out: Out::Socket(socket), netns: path.to_owned(), seqnum: 0 })
    }

    /// A sink that records datagrams instead of sending them.
    #[cfg(test)]
    pub(crate) fn recording() -> Self {
        Self { out: Out::Record(Vec::new()), netns: PathBuf::new(), seqnum: 0 }
    }

    /// The recorded datagrams (recording sinks only), emptying the record.
    #[cfg(test)]
    pub(crate) fn take_recorded(&mut self) -> Vec<Vec<u8>> {
        match &mut self.out {
            Out::Record(v) => std::mem::take(v),
            Out::Socket(_) => Vec::new(),
        }
    }

    /// The namespace the events go to.
    pub(crate) fn netns(&self) -> &Path {
        &self.netns
    }

    /// Sends one event with the next sequence number. A failed send is logged, never
    /// fatal: the kernel does not fail the sysfs write that caused a uevent either.
    pub(crate) fn send(&mut self, ev: &Uevent) {
        self.seqnum += 1;
        let d = ev.datagram(self.seqnum);
        match &mut self.out {
            Out::Socket(s) => {
                // Port 0 + group mask: multicast to group 1 of this netns (the copy
                // unicast to the kernel's uevent socket is ignored there: our header is
                // not a netlink message).
                if let Err(e) = s.send_to(&d, &SocketAddr::new(0, KERNEL_GROUP_MASK), 0) {
                    tracing::warn!(
                        devpath = %ev.devpath,
                        action = ev.action.as_str(),
                        error = %e,
                        "sim: cannot broadcast uevent"
                    );
                }
            }
            #[cfg(test)]
            Out::Record(v) => v.push(d),
        }
        tracing::trace!(devpath = %ev.devpath, action = ev.action.as_str(), seqnum = self.seqnum, "sim: uevent");
    }
}

/// Whether two namespace files name the same namespace.
pub(crate) fn same_netns(a: &Path, b: &Path) -> Result<bool, SimError> {
    let stat = |p: &Path| {
        fs::metadata(p)
            .map_err(|source| SimError::Netns { what: format!("stat {}", p.display()), source })
    };
    let (a, b) = (stat(a)?, stat(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_has_header_defaults_vars_and_seqnum_last() {
        let ev = Uevent {
            action: Action::Unbind,
            devpath: "/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0".into(),
            subsystem: "pci",
            vars: vec!["PCI_CLASS=20000".into(), "PCI_SLOT_NAME=0000:3b:02.0".into()],
        };
        let d = ev.datagram(7);
        let fields: Vec<&[u8]> = d.split(|b| *b == 0).collect();
        assert_eq!(
            fields,
            [
                &b"unbind@/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0"[..],
                b"ACTION=unbind",
                b"DEVPATH=/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0",
                b"SUBSYSTEM=pci",
                b"PCI_CLASS=20000",
                b"PCI_SLOT_NAME=0000:3b:02.0",
                b"SEQNUM=7",
                b"",
            ]
        );
        assert_eq!(d.last(), Some(&0));
    }

    #[test]
    fn recording_sink_numbers_events() {
        let mut s = UeventSink::recording();
        let ev = Uevent {
            action: Action::Add,
            devpath: "/devices/x".into(),
            subsystem: "pci",
            vars: Vec::new(),
        };
        s.send(&ev);
        s.send(&ev);
        let got = s.take_recorded();
        assert!(got[0].ends_with(b"SEQNUM=1\0") && got[1].ends_with(b"SEQNUM=2\0"));
        assert!(s.take_recorded().is_empty());
    }
}
