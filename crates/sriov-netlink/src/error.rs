//! Typed errors for every netlink, netns and packet operation.
//!
//! Each error names the operation and the object it acted on (for example
//! `setlink vf 3 mac on pf ens1f0 (ifindex 4)`); the errno is kept in the
//! `#[source]` [`std::io::Error`] and never repeated in the message, so a
//! chain printer shows `setlink vf 3 on pf ens1f0 (ifindex 4): Operation not
//! supported (os error 95)`.

use std::io;
use std::path::PathBuf;

use crate::vf::VfAttr;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong at the kernel boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel answered a netlink request with a negative errno.
    #[error("{op}{}", ext_ack.as_deref().map(|m| format!(" (kernel: {m})")).unwrap_or_default())]
    Kernel {
        /// The operation and its object, e.g. `dellink veth0 (ifindex 5)`.
        op: String,
        /// For per-attribute VF requests: the VF attribute that failed.
        vf_attr: Option<VfAttr>,
        /// The kernel's extended-ACK message, when it sent one.
        ext_ack: Option<String>,
        /// The errno as an I/O error (`raw_os_error()` is the positive errno).
        #[source]
        source: io::Error,
    },
    /// A socket call (create, bind, send, recv, poll) failed.
    #[error("{op}: netlink socket i/o")]
    Socket {
        /// The operation in progress.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A reply could not be decoded.
    #[error("{op}: cannot decode netlink reply")]
    Decode {
        /// The operation in progress.
        op: String,
        /// The decoder's error.
        #[source]
        source: netlink_packet_core::DecodeError,
    },
    /// The kernel's reply did not have the expected shape.
    #[error("{op}: unexpected netlink reply: {detail}")]
    Protocol {
        /// The operation in progress.
        op: String,
        /// What was wrong.
        detail: String,
    },
    /// A value was rejected before anything was sent to the kernel.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being validated (`vf vlan id`, `interface name`, ...).
        what: &'static str,
        /// Why it was rejected.
        detail: String,
    },
    /// A network-namespace operation failed.
    #[error("{op} {}", path.display())]
    Netns {
        /// The operation, e.g. `open netns`, `setns into`.
        op: &'static str,
        /// The netns file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A sysctl read or write failed.
    #[error("{op} sysctl {key} in netns {}", netns.display())]
    Sysctl {
        /// `read` or `write`.
        op: &'static str,
        /// The key below `/proc/sys`, e.g. `net/ipv4/conf/eth0/arp_notify`.
        key: String,
        /// The netns file the sysctl was accessed in.
        netns: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A raw packet socket operation failed.
    #[error("{op} on {ifname}")]
    Packet {
        /// The operation, e.g. `send gratuitous arp`.
        op: String,
        /// The interface.
        ifname: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A thread that was entering a netns could not be spawned.
    #[error("spawn thread to enter netns {}", path.display())]
    Thread {
        /// The netns file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

const NOT_FOUND_ERRNOS: [i32; 4] = [libc::ENODEV, libc::ENOENT, libc::ESRCH, libc::EADDRNOTAVAIL];

impl Error {
    /// The positive errno behind this error, if there is one (kernel NACKs,
    /// socket, netns, sysctl and packet errors).
    pub fn errno(&self) -> Option<i32> {
        self.io_source().and_then(io::Error::raw_os_error)
    }

    /// The underlying I/O error, when the error has one.
    pub fn io_source(&self) -> Option<&io::Error> {
        match self {
            Error::Kernel { source, .. }
            | Error::Socket { source, .. }
            | Error::Netns { source, .. }
            | Error::Sysctl { source, .. }
            | Error::Packet { source, .. }
            | Error::Thread { source, .. } => Some(source),
            Error::Decode { .. } | Error::Protocol { .. } | Error::Invalid { .. } => None,
        }
    }

    /// True when the errno says the object is already gone: `ENODEV` (link),
    /// `ENOENT` (rule, neighbour, altname, netns file), `ESRCH` (route) or
    /// `EADDRNOTAVAIL` (address). CNI DEL and rollback treat these as success.
    pub fn is_not_found(&self) -> bool {
        self.errno().is_some_and(|e| NOT_FOUND_ERRNOS.contains(&e))
    }

    /// True when the device itself is gone (`ENODEV`, `ENOENT`): narrower than
    /// [`Self::is_not_found`], for changes of a link's own attributes, where
    /// `EADDRNOTAVAIL` is a refusal (e.g. a MAC change the driver rejects), not "gone".
    pub fn is_no_device(&self) -> bool {
        matches!(self.errno(), Some(libc::ENODEV | libc::ENOENT))
    }

    /// True when the kernel answered `EEXIST` (object already present).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the kernel answered `EOPNOTSUPP` (e.g. a VF setting the
    /// driver does not implement).
    pub fn is_not_supported(&self) -> bool {
        self.errno() == Some(libc::EOPNOTSUPP)
    }

    /// For a failed per-attribute VF request, the attribute that failed.
    pub fn vf_attr(&self) -> Option<VfAttr> {
        match self {
            Error::Kernel { vf_attr, .. } => *vf_attr,
            _ => None,
        }
    }

    /// The kernel's extended-ACK text, if it sent one.
    pub fn ext_ack(&self) -> Option<&str> {
        match self {
            Error::Kernel { ext_ack, .. } => ext_ack.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid { what, detail: detail.into() }
    }

    pub(crate) fn protocol(op: &str, detail: impl Into<String>) -> Self {
        Error::Protocol { op: op.to_owned(), detail: detail.into() }
    }

    pub(crate) fn socket(op: &str, source: io::Error) -> Self {
        Error::Socket { op: op.to_owned(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn kernel(errno: i32) -> Error {
        Error::Kernel {
            op: "setlink vf 3 on pf ens1f0 (ifindex 4)".into(),
            vf_attr: None,
            ext_ack: None,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn display_names_op_and_source_is_errno() {
        let e = kernel(libc::EOPNOTSUPP);
        assert_eq!(e.to_string(), "setlink vf 3 on pf ens1f0 (ifindex 4)");
        let src = e.source().map(ToString::to_string).unwrap_or_default();
        assert_eq!(src, "Operation not supported (os error 95)");
        assert_eq!(e.errno(), Some(95));
        assert!(e.is_not_supported());
        assert!(!e.is_not_found());
    }

    #[test]
    fn not_found_set() {
        for errno in [libc::ENODEV, libc::ENOENT, libc::ESRCH, libc::EADDRNOTAVAIL] {
            assert!(kernel(errno).is_not_found(), "errno {errno}");
        }
        for errno in [libc::EPERM, libc::EEXIST, libc::EINVAL, libc::EBUSY] {
            assert!(!kernel(errno).is_not_found(), "errno {errno}");
        }
        assert!(kernel(libc::EEXIST).is_exists());
        assert!(!Error::invalid("x", "y").is_not_found());
    }

    #[test]
    fn ext_ack_is_shown() {
        let e = Error::Kernel {
            op: "newlink veth0".into(),
            vf_attr: None,
            ext_ack: Some("Invalid MTU".into()),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(e.to_string(), "newlink veth0 (kernel: Invalid MTU)");
        assert_eq!(e.ext_ack(), Some("Invalid MTU"));
    }
}
