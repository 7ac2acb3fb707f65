//! The `sriov` plugin behind the [`cni_spec::Plugin`] runner: validates the configuration and
//! hands each operation to the engine with the real kernel.

use std::path::PathBuf;

use cni_spec::{
    AddRequest, CheckRequest, CniArgs, CniError, CniPath, CniResult, DelRequest, GcRequest,
    LogSettings, NetConf, Plugin, StatusRequest,
};
use sriov_host::HostPaths;
use tracing::warn;

use crate::add::{AddParams, add};
use crate::check::{CheckParams, check};
use crate::config::{RawConf, SriovConf, effective_mac, log_settings, state_dir};
use crate::del::{DelParams, del, gc};
use crate::journal::IpamCall;
use crate::state::StateDir;
use crate::system::KernelPlatform;

/// The plugin.
#[derive(Debug, Default)]
pub struct SriovPlugin {
    paths: Option<HostPaths>,
}

impl SriovPlugin {
    /// The plugin against an explicit sysfs root (default: `SRIOV_SYSFS_ROOT` or `/sys`).
    pub fn with_paths(paths: HostPaths) -> SriovPlugin {
        SriovPlugin { paths: Some(paths) }
    }

    fn platform(&self) -> Result<KernelPlatform, CniError> {
        let paths = self.paths.clone().unwrap_or_else(HostPaths::from_env);
        KernelPlatform::new(paths).map_err(|e| {
            crate::error::Error::kernel("open a netlink socket in the host netns", e).to_cni()
        })
    }
}

/// The IPAM delegation of this call, as the journal records it.
fn ipam_call<C>(
    conf: &NetConf<C>,
    stdin: &[u8],
    args: &CniArgs,
    path: &CniPath,
) -> Option<IpamCall> {
    conf.ipam.as_ref().map(|ipam| IpamCall {
        plugin: ipam.plugin_type.clone(),
        stdin: String::from_utf8_lossy(stdin).into_owned(),
        args: Some(args.raw().to_owned()).filter(|a| !a.is_empty()),
        cni_path: path.to_env_string(),
        cni_version: conf.cni_version.as_str().to_owned(),
    })
}

/// Validation for the commands that must not fail on a bad configuration (`DEL`, `GC`,
/// `STATUS`): the invalid parts are logged and ignored, the rest is used.
fn lenient(config: &NetConf<RawConf>) -> SriovConf {
    let runtime_device = config.runtime_config.device_id.as_deref();
    match SriovConf::validate(&config.plugin, runtime_device) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "invalid configuration; using only deviceID, stateDir and perPfLock");
            let only = RawConf {
                device_id: config.plugin.device_id.clone(),
                pci_bus_id: config.plugin.pci_bus_id.clone(),
                state_dir: config.plugin.state_dir.clone(),
                per_pf_lock: config.plugin.per_pf_lock.clone(),
                ..RawConf::default()
            };
            SriovConf::validate(&only, runtime_device).unwrap_or(SriovConf {
                device: None,
                vf: Default::default(),
                mtu: None,
                log: log_settings(&config.plugin),
                state_dir: None,
                per_pf_lock: false,
                device_info_dir: None,
            })
        }
    }
}

/// The device-information file of this attachment: `runtimeConfig.CNIDeviceInfoFile` (what
/// Multus passes), else `<deviceInfoDir>/cni/<network>-<containerID>_<ifname>`.
fn device_info_path(
    config: &NetConf<RawConf>,
    conf: &SriovConf,
    container_id: &str,
    ifname: &str,
) -> Result<PathBuf, CniError> {
    match &config.runtime_config.cni_device_info_file {
        Some(p) if p.is_absolute() => Ok(p.clone()),
        Some(p) => Err(CniError::invalid_config(
            "runtimeConfig.CNIDeviceInfoFile",
            format_args!("\"{}\"", p.display()),
            "must be an absolute path",
        )),
        None => Ok(crate::devinfo::default_path(
            &crate::devinfo::base_dir(conf.device_info_dir.as_deref()),
            &config.name,
            container_id,
            ifname,
        )),
    }
}

fn strict(config: &NetConf<RawConf>) -> Result<SriovConf, CniError> {
    SriovConf::validate(&config.plugin, config.runtime_config.device_id.as_deref())
}

impl Plugin for SriovPlugin {
    type Config = RawConf;

    fn logging(&self, config: &NetConf<RawConf>) -> Option<LogSettings> {
        Some(log_settings(&config.plugin))
    }

    fn add(&self, req: AddRequest<RawConf>) -> Result<CniResult, CniError> {
        let conf = strict(&req.config)?;
        let device = conf.require_device()?;
        let mut settings = conf.vf;
        settings.mac = effective_mac(&req.config, &req.args, conf.vf.mac)?;
        let device_info = device_info_path(&req.config, &conf, &req.container_id, &req.ifname)?;
        let root = state_dir(conf.state_dir.as_deref());
        let state = StateDir::open(&root).map_err(|e| crate::error::Error::from(e).to_cni())?;
        let mut plat = self.platform()?;
        tracing::debug!("platform ready");
        let params = AddParams {
            container_id: &req.container_id,
            ifname: &req.ifname,
            netns: &req.netns,
            network: &req.config.name,
            device,
            settings,
            mtu: conf.mtu,
            per_pf_lock: conf.per_pf_lock,
            ipam: ipam_call(&req.config, req.stdin(), &req.args, &req.cni_path),
            prev_result: req.config.prev_result.clone(),
            device_info: Some(device_info),
        };
        add(&mut plat, &state, &params).map_err(|e| e.to_cni())
    }

    fn del(&self, req: DelRequest<RawConf>) -> Result<(), CniError> {
        let conf = lenient(&req.config);
        let root = state_dir(conf.state_dir.as_deref());
        let mut plat = self.platform()?;
        let params = DelParams {
            container_id: &req.container_id,
            ifname: &req.ifname,
            netns: req.netns.as_deref(),
            device: conf.device,
            per_pf_lock: conf.per_pf_lock,
            ipam: ipam_call(&req.config, req.stdin(), &req.args, &req.cni_path),
        };
        del(&mut plat, &root, &params).map_err(|e| e.to_cni())
    }

    fn check(&self, req: CheckRequest<RawConf>) -> Result<(), CniError> {
        let conf = strict(&req.config)?;
        let device = conf.require_device()?;
        let root = state_dir(conf.state_dir.as_deref());
        let mut plat = self.platform()?;
        let params = CheckParams {
            container_id: &req.container_id,
            ifname: &req.ifname,
            netns: &req.netns,
            device,
            prev_result: req.config.prev_result.as_ref(),
            ipam: ipam_call(&req.config, req.stdin(), &req.args, &req.cni_path),
        };
        check(&mut plat, &root, &params).map_err(|e| e.to_cni())
    }

    fn gc(&self, req: GcRequest<RawConf>) -> Result<(), CniError> {
        let conf = lenient(&req.config);
        let root = state_dir(conf.state_dir.as_deref());
        let mut plat = self.platform()?;
        let ours = gc(&mut plat, &root, &req.valid, conf.per_pf_lock).map_err(|e| e.to_cni());
        // The IPAM plugin gets its own GC even if ours did not finish.
        let ipam = req.ipam_gc();
        ours?;
        ipam
    }

    fn status(&self, req: StatusRequest<RawConf>) -> Result<(), CniError> {
        let conf = lenient(&req.config);
        let root: PathBuf = state_dir(conf.state_dir.as_deref());
        StateDir::check_usable(&root).map_err(|e| {
            CniError::plugin_not_available(
                "the sriov plugin cannot record attachments",
                crate::error::chain(&e),
            )
        })?;
        req.ipam_status()
    }
}
