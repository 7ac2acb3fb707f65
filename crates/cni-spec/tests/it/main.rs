//! Black-box tests: the example plugin binary driven with environment and stdin, as a
//! container runtime would, delegating IPAM to fake plugins and to Debian's real `host-local`.
#![allow(clippy::unwrap_used)]

mod blackbox;
mod host_local;
mod util;
