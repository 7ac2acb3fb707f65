//! IPAM delegation from a recorded call ([`IpamCall`]): `ADD` runs it, and the same record lets
//! a rollback, `GC` or a later `ADD` release the address without the runtime's original call.

use std::path::PathBuf;

use cni_spec::{CniPath, CniResult, CniVersion, Delegate, DelegateEnv};

use crate::error::Error;
use crate::journal::IpamCall;

fn env(call: &IpamCall, container_id: &str, ifname: &str, netns: Option<PathBuf>) -> DelegateEnv {
    DelegateEnv {
        container_id: Some(container_id.to_owned()),
        netns,
        ifname: Some(ifname.to_owned()),
        args: call.args.clone(),
        path: CniPath::parse(&call.cni_path),
    }
}

fn delegate<'a>(call: &'a IpamCall, env: &'a DelegateEnv) -> Delegate<'a> {
    Delegate {
        field: "ipam.type",
        plugin_type: &call.plugin,
        env,
        stdin: call.stdin.as_bytes(),
        version: call.cni_version.parse().unwrap_or(CniVersion::LATEST),
    }
}

/// IPAM `ADD`: the delegate's result in the configuration's version.
pub fn add(
    call: &IpamCall,
    container_id: &str,
    ifname: &str,
    netns: PathBuf,
) -> Result<CniResult, Error> {
    let env = env(call, container_id, ifname, Some(netns));
    delegate(call, &env).add().map_err(Error::Cni)
}

/// IPAM `DEL` (works without a netns; "unknown container" counts as done).
pub fn del(
    call: &IpamCall,
    container_id: &str,
    ifname: &str,
    netns: Option<PathBuf>,
) -> Result<(), Error> {
    let env = env(call, container_id, ifname, netns);
    delegate(call, &env).del().map_err(Error::Cni)
}

/// IPAM `CHECK`.
pub fn check(
    call: &IpamCall,
    container_id: &str,
    ifname: &str,
    netns: PathBuf,
) -> Result<(), Error> {
    let env = env(call, container_id, ifname, Some(netns));
    delegate(call, &env).check().map_err(Error::Cni)
}
