//! Kernel uevents without libudev: a `NETLINK_KOBJECT_UEVENT` socket bound to multicast group 1
//! (the kernel's group; udevd re-broadcasts on group 2, which we do not join).
//!
//! A kernel uevent datagram is `ACTION@DEVPATH\0` followed by `KEY=VALUE\0` pairs (`ACTION`,
//! `DEVPATH`, `SUBSYSTEM`, `SEQNUM`, and per subsystem `PCI_SLOT_NAME`, `DRIVER`, `INTERFACE`, ...).
//! [`parse`] is pure; [`UeventSocket`] is the thin receiving layer.
//!
//! Why this is enough for SR-IOV: creating or removing VFs emits `add`/`remove` for each VF's PCI
//! device, and (re)binding a driver emits `bind`/`unbind` with `DRIVER`. PCI devices carry no
//! network-namespace tag, so the kernel delivers their uevents to every network namespace of the
//! initial user namespace: a listener inside a pod-like netns still sees them. Net devices are
//! tagged, so their uevents only reach the netns that owns the device.
//!
//! Only privileged processes can send to group 1, but the sender is not checked: consumers should
//! treat a uevent as a hint to re-read sysfs, never as the truth.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_KOBJECT_UEVENT};

use crate::transport::wait_fd_readable;

/// The kernel's uevent multicast group.
pub const KERNEL_GROUP: u32 = 1;

/// Receive buffer requested for the socket: a burst of VF creations (three or four uevents per VF)
/// must not overflow it.
const RCVBUF_BYTES: usize = 4 << 20;

/// The largest uevent the kernel sends (`UEVENT_BUFFER_SIZE`).
const MAX_UEVENT: usize = 2048;

/// What happened to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UeventAction {
    /// The device appeared.
    Add,
    /// The device disappeared.
    Remove,
    /// An attribute changed.
    Change,
    /// The device was renamed or moved (net devices changing namespace or name).
    Move,
    /// The device came online (CPUs, memory).
    Online,
    /// The device went offline.
    Offline,
    /// A driver bound to the device (`DRIVER` names it).
    Bind,
    /// The driver unbound from the device.
    Unbind,
    /// An action this parser does not know, verbatim.
    Other(String),
}

impl UeventAction {
    fn parse(s: &str) -> Self {
        match s {
            "add" => Self::Add,
            "remove" => Self::Remove,
            "change" => Self::Change,
            "move" => Self::Move,
            "online" => Self::Online,
            "offline" => Self::Offline,
            "bind" => Self::Bind,
            "unbind" => Self::Unbind,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `ACTION`.
    pub action: UeventAction,
    /// `DEVPATH`, relative to the sysfs root (`/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0`).
    pub devpath: String,
    /// `SUBSYSTEM` (`pci`, `net`, `infiniband`, ...).
    pub subsystem: Option<String>,
    /// `PCI_SLOT_NAME` (`0000:3b:02.0`) for PCI devices.
    pub pci_slot_name: Option<String>,
    /// `DRIVER`, on `bind` and for bound devices.
    pub driver: Option<String>,
    /// `INTERFACE`, for net devices.
    pub interface: Option<String>,
    /// `SEQNUM`.
    pub seqnum: Option<u64>,
    /// Every `KEY=VALUE` pair, in order (including the ones above).
    pub env: Vec<(String, String)>,
}

impl Uevent {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Why a datagram is not a kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UeventParseError {
    /// A udevd message (`libudev\0` magic), which is not for group 1 listeners.
    #[error("message is a libudev broadcast, not a kernel uevent")]
    Libudev,
    /// The `ACTION@DEVPATH` header is missing or malformed.
    #[error("uevent header {0:?} is not ACTION@DEVPATH")]
    BadHeader(String),
    /// `ACTION` or `DEVPATH` is missing from the pairs.
    #[error("uevent for {devpath:?} lacks {key}")]
    Missing {
        /// The header's DEVPATH.
        devpath: String,
        /// The missing key.
        key: &'static str,
    },
}

/// Parses one kernel uevent datagram.
pub fn parse(buf: &[u8]) -> Result<Uevent, UeventParseError> {
    if buf.starts_with(b"libudev\0") {
        return Err(UeventParseError::Libudev);
    }
    let mut fields = buf.split(|b| *b == 0).filter(|f| !f.is_empty());
    let header = fields.next().map(|h| String::from_utf8_lossy(h).into_owned()).unwrap_or_default();
    let Some((_, header_path)) =
        header.split_once('@').filter(|(a, p)| !a.is_empty() && p.starts_with('/'))
    else {
        return Err(UeventParseError::BadHeader(header));
    };
    let header_path = header_path.to_owned();
    let env: Vec<(String, String)> = fields
        .filter_map(|f| {
            let s = String::from_utf8_lossy(f);
            s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let action = get("ACTION")
        .ok_or(UeventParseError::Missing { devpath: header_path.clone(), key: "ACTION" })?;
    let devpath =
        get("DEVPATH").ok_or(UeventParseError::Missing { devpath: header_path, key: "DEVPATH" })?;
    Ok(Uevent {
        action: UeventAction::parse(&action),
        devpath,
        subsystem: get("SUBSYSTEM"),
        pci_slot_name: get("PCI_SLOT_NAME"),
        driver: get("DRIVER"),
        interface: get("INTERFACE"),
        seqnum: get("SEQNUM").and_then(|s| s.parse().ok()),
        env,
    })
}

/// A failure of the uevent socket.
#[derive(Debug, thiserror::Error)]
pub enum UeventError {
    /// Opening or binding the socket failed.
    #[error("open NETLINK_KOBJECT_UEVENT socket (group {KERNEL_GROUP})")]
    Open(#[source] io::Error),
    /// The kernel dropped uevents because the receive buffer overflowed: the caller missed events
    /// and should re-read its state.
    #[error("uevent socket overrun: events were lost")]
    Overrun(#[source] io::Error),
    /// Receiving failed.
    #[error("receive from uevent socket")]
    Recv(#[source] io::Error),
}

/// A blocking listener for kernel uevents in the calling thread's network namespace.
#[derive(Debug)]
pub struct UeventSocket {
    socket: Socket,
    buf: Vec<u8>,
}

impl UeventSocket {
    /// Opens a socket bound to the kernel group, in the current thread's network namespace.
    pub fn open() -> Result<Self, UeventError> {
        let mut socket = Socket::new(NETLINK_KOBJECT_UEVENT).map_err(UeventError::Open)?;
        socket.bind(&SocketAddr::new(0, 1 << (KERNEL_GROUP - 1))).map_err(UeventError::Open)?;
        // Best effort: an unprivileged process may be capped at rmem_max, which still works.
        if let Err(e) = socket.set_rx_buf_sz(RCVBUF_BYTES) {
            tracing::debug!(error = %e, "cannot enlarge the uevent receive buffer");
        }
        Ok(Self { socket, buf: Vec::with_capacity(MAX_UEVENT * 4) })
    }

    /// Waits for the next kernel uevent. Datagrams that are not kernel uevents are skipped.
    pub fn recv(&mut self) -> Result<Uevent, UeventError> {
        loop {
            if let Some(ev) = self.recv_one()? {
                return Ok(ev);
            }
        }
    }

    /// Waits up to `timeout` for the next kernel uevent; `Ok(None)` when none came (so a
    /// listener thread can check whether anyone still wants its events).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Uevent>, UeventError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !wait_fd_readable(self.socket.as_fd(), Some(left)).map_err(UeventError::Recv)? {
                return Ok(None);
            }
            if let Some(ev) = self.recv_one()? {
                return Ok(Some(ev));
            }
        }
    }

    /// Receives one datagram: `None` when it is not a kernel uevent (skipped).
    fn recv_one(&mut self) -> Result<Option<Uevent>, UeventError> {
        self.buf.clear();
        loop {
            match self.socket.recv_from(&mut self.buf, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(UeventError::Overrun(e));
                }
                Err(e) => return Err(UeventError::Recv(e)),
            }
        }
        match parse(&self.buf) {
            Ok(ev) => Ok(Some(ev)),
            Err(e) => {
                tracing::trace!(error = %e, "skipping datagram on uevent socket");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(header: &str, pairs: &[&str]) -> Vec<u8> {
        let mut v = header.as_bytes().to_vec();
        v.push(0);
        for p in pairs {
            v.extend_from_slice(p.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_pci_bind() {
        let d = datagram(
            "bind@/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0",
            &[
                "ACTION=bind",
                "DEVPATH=/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0",
                "SUBSYSTEM=pci",
                "DRIVER=vfio-pci",
                "PCI_CLASS=20000",
                "PCI_ID=8086:154C",
                "PCI_SLOT_NAME=0000:3b:02.0",
                "MODALIAS=pci:v00008086d0000154Csv00008086sd00000000bc02sc00i00",
                "SEQNUM=4242",
            ],
        );
        let ev = parse(&d).unwrap();
        assert_eq!(ev.action, UeventAction::Bind);
        assert_eq!(ev.devpath, "/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0");
        assert_eq!(ev.subsystem.as_deref(), Some("pci"));
        assert_eq!(ev.driver.as_deref(), Some("vfio-pci"));
        assert_eq!(ev.pci_slot_name.as_deref(), Some("0000:3b:02.0"));
        assert_eq!(ev.seqnum, Some(4242));
        assert_eq!(ev.get("PCI_ID"), Some("8086:154C"));
        assert_eq!(ev.interface, None);
    }

    #[test]
    fn parses_net_remove_and_unknown_action() {
        let d = datagram(
            "remove@/devices/virtual/net/veth0",
            &[
                "ACTION=remove",
                "DEVPATH=/devices/virtual/net/veth0",
                "SUBSYSTEM=net",
                "INTERFACE=veth0",
                "IFINDEX=7",
            ],
        );
        let ev = parse(&d).unwrap();
        assert_eq!(ev.action, UeventAction::Remove);
        assert_eq!(ev.interface.as_deref(), Some("veth0"));
        let d = datagram("frob@/devices/x", &["ACTION=frob", "DEVPATH=/devices/x"]);
        assert_eq!(parse(&d).unwrap().action, UeventAction::Other("frob".into()));
    }

    #[test]
    fn rejects_libudev_and_garbage() {
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe"), Err(UeventParseError::Libudev));
        assert!(matches!(
            parse(b"no header here\0ACTION=add\0"),
            Err(UeventParseError::BadHeader(_))
        ));
        assert!(matches!(parse(b""), Err(UeventParseError::BadHeader(_))));
        let d = datagram("add@/devices/x", &["DEVPATH=/devices/x"]);
        assert_eq!(
            parse(&d),
            Err(UeventParseError::Missing { devpath: "/devices/x".into(), key: "ACTION" })
        );
    }

    /// Sends a kernel-format uevent to group 1 from a second socket (root only) and receives it.
    /// Both sockets live in a fresh network namespace: userspace broadcasts stay in the sender's
    /// netns, so nothing reaches the host's udevd or other listeners.
    #[test]
    fn socket_receives_group_broadcast() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = crate::OwnedNetns::create_unique("uevent-test").unwrap();
        let (mut rx, tx) = crate::run_in_netns(ns.netns(), || {
            let rx = UeventSocket::open().unwrap();
            let mut tx = Socket::new(NETLINK_KOBJECT_UEVENT).unwrap();
            tx.bind_auto().unwrap();
            (rx, tx)
        })
        .unwrap();
        // A unique devpath so unrelated uevents on a busy host cannot satisfy the test.
        let path = format!("/devices/sriov-netlink-test/{}", std::process::id());
        let d = datagram(
            &format!("add@{path}"),
            &[
                "ACTION=add",
                &format!("DEVPATH={path}"),
                "SUBSYSTEM=pci",
                "PCI_SLOT_NAME=0000:99:00.1",
            ],
        );
        // Nothing sent yet: the bounded wait comes back empty.
        let t = Instant::now();
        assert!(rx.recv_timeout(Duration::from_millis(50)).unwrap().is_none());
        assert!(t.elapsed() >= Duration::from_millis(40), "waited {:?}", t.elapsed());
        tx.send_to(&d, &SocketAddr::new(0, 1), 0).unwrap();
        loop {
            let ev = rx.recv_timeout(Duration::from_secs(10)).unwrap().expect("the uevent sent");
            if ev.devpath == path {
                assert_eq!(ev.pci_slot_name.as_deref(), Some("0000:99:00.1"));
                break;
            }
        }
    }
}
