//! Errors of the simulator's own API (kernel reactions return [`nix::errno::Errno`]).

use std::io;
use std::path::PathBuf;

/// What can go wrong setting up, mounting, exporting or backing a simulated host.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The spec is inconsistent or unparsable.
    #[error("invalid sim spec: {0}")]
    InvalidSpec(String),
    /// A file operation failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Mounting the FUSE filesystem failed.
    #[error("cannot mount sim filesystem at {dir}")]
    Mount {
        /// Mount point.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A netlink request failed.
    #[error("netlink {op} for {name} failed")]
    Netlink {
        /// The netlink operation (e.g. `RTM_NEWLINK veth`).
        op: &'static str,
        /// The link or object concerned.
        name: String,
        /// The OS error (from the kernel's NLMSG_ERROR or the socket).
        #[source]
        source: io::Error,
    },
    /// Entering or creating a network namespace failed.
    #[error("netns {what} failed")]
    Netns {
        /// What was attempted, naming the namespace.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Veth backing was asked for in the root network namespace, which is never touched.
    #[error("refusing to create links in the root network namespace ({path})")]
    RootNetns {
        /// The netns path given.
        path: PathBuf,
    },
    /// Uevents were asked for in the root network namespace, where the host's udevd
    /// would process them.
    #[error("refusing to broadcast uevents in the root network namespace ({path})")]
    RootNetnsUevents {
        /// The netns path given.
        path: PathBuf,
    },
    /// Uevents and the veth backing were given different network namespaces: net device
    /// uevents belong to the namespace that holds the netdevs.
    #[error("uevent netns {uevents} is not the veth backing's node netns {node}")]
    UeventNetnsMismatch {
        /// The uevent target.
        uevents: PathBuf,
        /// The backing's node netns.
        node: PathBuf,
    },
    /// No PF with that address exists.
    #[error("no simulated pf {0}")]
    UnknownPf(String),
    /// No device with that address exists.
    #[error("no simulated device {0}")]
    UnknownDevice(String),
    /// A kernel reaction returned an error where the API expected success.
    #[error("simulated kernel refused {what}: {errno}")]
    Kernel {
        /// The operation.
        what: String,
        /// The errno the kernel would return.
        errno: nix::errno::Errno,
    },
}
