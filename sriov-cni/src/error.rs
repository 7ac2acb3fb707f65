//! The plugin's errors and their CNI codes.
//!
//! | code | when |
//! |---|---|
//! | 4 | `CNI_NETNS` is not a usable netns, or `CNI_IFNAME` already exists in it |
//! | 5 | the state directory or the device-info file cannot be used |
//! | 7 | invalid configuration (names the key), including `mtu` above the PF's and a `deviceID` that is not a VF |
//! | 11 | the VF is held by another live pod, or a restore must be retried |
//! | 100 | a kernel operation failed (the message names it) |
//! | 101 | the PF driver rejected a VF setting (the message names the configuration key) |
//! | 102 | the VF cannot be used (no driver, netdev missing from the host) |
//! | 103 | `CHECK` found a difference |
//! | 999 | the plugin panicked |

use std::path::PathBuf;

use cni_spec::{CniError, ErrorCode};
use sriov_host::PciAddr;
use sriov_host::vf_lookup::VfLookupError;

use crate::state::StateError;
use crate::system::PodError;

/// A kernel operation failed.
pub const KERNEL_FAILURE: ErrorCode = ErrorCode::plugin_specific(100);
/// The PF driver rejected a VF setting.
pub const VF_SETTING_REJECTED: ErrorCode = ErrorCode::plugin_specific(101);
/// The VF cannot be used.
pub const VF_UNAVAILABLE: ErrorCode = ErrorCode::plugin_specific(102);
/// `CHECK` found a difference.
pub const CHECK_MISMATCH: ErrorCode = ErrorCode::plugin_specific(103);

/// Everything the plugin's operations can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Already in CNI form (configuration, IPAM delegate).
    #[error("{0}")]
    Cni(#[from] CniError),
    /// The VF could not be located in sysfs.
    #[error("look up VF {vf} in sysfs")]
    Lookup {
        /// The VF.
        vf: PciAddr,
        /// The cause.
        #[source]
        source: VfLookupError,
    },
    /// A netlink, netns or sysctl operation failed.
    #[error("{op}")]
    Kernel {
        /// What was being done, with the device (`move ens1f0v1 into the pod as net1`).
        op: String,
        /// The cause (boxed: netlink errors are large).
        #[source]
        source: Box<sriov_netlink::Error>,
    },
    /// The PF refused a VF setting.
    #[error("PF {pf} rejected {key} = {value} for VF {vf_index} ({vf})")]
    VfSetting {
        /// The configuration key.
        key: &'static str,
        /// The requested value.
        value: String,
        /// The PF netdev.
        pf: String,
        /// The VF index.
        vf_index: u32,
        /// The VF.
        vf: PciAddr,
        /// The kernel's answer.
        #[source]
        source: Box<sriov_netlink::Error>,
    },
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The pod's netns cannot be used.
    #[error("CNI_NETNS: {0}")]
    Pod(#[from] PodError),
    /// `CNI_IFNAME` is taken in the pod.
    #[error("an interface named {ifname} already exists in {netns}")]
    IfnameExists {
        /// The name.
        ifname: String,
        /// The pod netns.
        netns: PathBuf,
    },
    /// Another live attachment holds the VF.
    #[error("VF {vf} is in use by container {container_id} (interface {ifname} in {netns})")]
    Busy {
        /// The VF.
        vf: PciAddr,
        /// The holder's container id.
        container_id: String,
        /// The holder's ifname.
        ifname: String,
        /// The holder's netns.
        netns: PathBuf,
    },
    /// The VF exists but cannot be attached.
    #[error("VF {vf} cannot be used: {detail}")]
    Unavailable {
        /// The VF.
        vf: PciAddr,
        /// Why.
        detail: String,
    },
    /// The PF's MTU is below the configured one.
    #[error("mtu {mtu} exceeds the MTU {pf_mtu} of PF {pf}")]
    MtuAbovePf {
        /// Configured.
        mtu: u32,
        /// The PF's.
        pf_mtu: u32,
        /// The PF netdev.
        pf: String,
    },
    /// `CHECK` found a difference.
    #[error("{what}: expected {expected}, found {found}")]
    Mismatch {
        /// What was compared.
        what: String,
        /// The expected value.
        expected: String,
        /// The value found.
        found: String,
    },
    /// `ADD` failed and its rollback did not finish: the journal is kept for `DEL`.
    #[error("{error}; rollback incomplete ({rollback}); journal {} kept for DEL", journal.display())]
    RollbackIncomplete {
        /// The original failure.
        error: Box<Error>,
        /// What could not be undone.
        rollback: String,
        /// The journal.
        journal: PathBuf,
    },
    /// `DEL` (or `GC`) could not restore everything; the journal is kept for a retry.
    #[error("restore of VF {vf} incomplete ({failed}); journal {} kept, DEL can be retried", journal.display())]
    RestoreIncomplete {
        /// The VF.
        vf: PciAddr,
        /// What failed.
        failed: String,
        /// The journal.
        journal: PathBuf,
    },
    /// `GC` could not restore every stale attachment; their journals are kept.
    #[error("{count} stale attachment(s) not fully restored: {failed}")]
    GcIncomplete {
        /// How many.
        count: usize,
        /// What failed.
        failed: String,
    },
    /// A step panicked (the rollback ran).
    #[error("panic during {step}: {message}")]
    Panic {
        /// The step.
        step: String,
        /// The panic payload.
        message: String,
    },
    /// The device-information file could not be written or removed.
    #[error("cannot {op} device-info file {}", path.display())]
    DeviceInfo {
        /// `write` or `remove`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An injected fault (tests).
    #[error("failpoint {0} triggered")]
    Failpoint(String),
}

impl Error {
    /// A kernel error with its operation.
    pub fn kernel(op: impl Into<String>, source: sriov_netlink::Error) -> Error {
        Error::Kernel { op: op.into(), source: Box::new(source) }
    }

    /// The CNI code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Cni(e) => e.code(),
            Error::Lookup { source, .. } => match source {
                VfLookupError::NoSuchDevice { .. }
                | VfLookupError::NotAVf { .. }
                | VfLookupError::NotListed { .. } => ErrorCode::INVALID_NETWORK_CONFIG,
                VfLookupError::Malformed { .. } | VfLookupError::Sysfs(_) => KERNEL_FAILURE,
            },
            Error::Kernel { .. } => KERNEL_FAILURE,
            Error::VfSetting { .. } => VF_SETTING_REJECTED,
            Error::State(_) => ErrorCode::IO_FAILURE,
            Error::Pod(_) | Error::IfnameExists { .. } => ErrorCode::INVALID_ENVIRONMENT,
            Error::Busy { .. } | Error::RestoreIncomplete { .. } | Error::GcIncomplete { .. } => {
                ErrorCode::TRY_AGAIN_LATER
            }
            Error::Unavailable { .. } => VF_UNAVAILABLE,
            Error::MtuAbovePf { .. } => ErrorCode::INVALID_NETWORK_CONFIG,
            Error::Mismatch { .. } => CHECK_MISMATCH,
            Error::RollbackIncomplete { error, .. } => error.code(),
            Error::Panic { .. } => ErrorCode::INTERNAL,
            Error::DeviceInfo { .. } => ErrorCode::IO_FAILURE,
            Error::Failpoint(_) => KERNEL_FAILURE,
        }
    }

    /// The short message: the configuration key for key-related errors, else the top line.
    fn msg(&self) -> String {
        match self {
            Error::Cni(e) => e.msg().to_owned(),
            Error::VfSetting { key, .. } => format!("VF setting rejected: {key}"),
            Error::MtuAbovePf { .. } => "invalid network configuration: mtu".to_owned(),
            Error::Lookup { vf, .. } if self.code() == ErrorCode::INVALID_NETWORK_CONFIG => {
                format!("invalid network configuration: deviceID {vf}")
            }
            Error::RollbackIncomplete { error, .. } => {
                format!("{}; rollback incomplete", error.msg())
            }
            other => other.to_string(),
        }
    }

    /// Converts to the spec's error: code, short message, and the whole cause chain as details.
    pub fn to_cni(&self) -> CniError {
        if let Error::Cni(e) = self {
            return e.clone();
        }
        CniError::new(self.code(), self.msg(), chain(self))
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> CniError {
        e.to_cni()
    }
}

/// `top: cause: cause` for any error.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eopnotsupp() -> sriov_netlink::Error {
        sriov_netlink::Error::Kernel {
            op: "setlink vf 3 on pf ens1f0 (ifindex 4)".into(),
            vf_attr: None,
            ext_ack: None,
            source: std::io::Error::from_raw_os_error(95),
        }
    }

    #[test]
    fn vf_setting_error_names_key_and_errno() {
        let e = Error::VfSetting {
            key: "vlan",
            value: "100".into(),
            pf: "ens1f0".into(),
            vf_index: 3,
            vf: "0000:3b:02.3".parse().unwrap(),
            source: Box::new(eopnotsupp()),
        };
        let c = e.to_cni();
        assert_eq!(c.code(), VF_SETTING_REJECTED);
        assert_eq!(c.msg(), "VF setting rejected: vlan");
        assert_eq!(
            c.details(),
            "PF ens1f0 rejected vlan = 100 for VF 3 (0000:3b:02.3): setlink vf 3 on pf ens1f0 (ifindex 4): \
             Operation not supported (os error 95)"
        );
    }

    #[test]
    fn rollback_incomplete_keeps_the_original_code() {
        let inner = Error::MtuAbovePf { mtu: 9000, pf_mtu: 1500, pf: "ens1f0".into() };
        let e = Error::RollbackIncomplete {
            error: Box::new(inner),
            rollback: "move back to host: EBUSY".into(),
            journal: "/var/lib/cni/sriov/journal/x.jsonl".into(),
        };
        let c = e.to_cni();
        assert_eq!(c.code(), ErrorCode::INVALID_NETWORK_CONFIG);
        assert!(
            c.details().contains("journal /var/lib/cni/sriov/journal/x.jsonl kept for DEL"),
            "{}",
            c.details()
        );
        let busy = Error::Busy {
            vf: "0000:3b:02.3".parse().unwrap(),
            container_id: "abc".into(),
            ifname: "net1".into(),
            netns: "/run/netns/x".into(),
        };
        assert_eq!(busy.to_cni().code(), ErrorCode::TRY_AGAIN_LATER);
        assert!(busy.to_cni().msg().contains("in use by container abc"));
    }
}
