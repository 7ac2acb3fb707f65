//! A small CNI plugin on top of `cni-spec`: a template for the suite's plugins and the
//! binary the crate's black-box tests drive.
//!
//! It touches no namespace: `ADD` delegates to IPAM, reports one sandbox interface named
//! `CNI_IFNAME` (plus any `prevResult` interfaces) and records the attachment in `stateDir`;
//! `DEL` releases IPAM and forgets the record; `CHECK` compares `prevResult` with the record
//! and asks IPAM; `GC` releases every recorded attachment that is not in
//! `cni.dev/valid-attachments` (IPAM `DEL` with the configuration recorded at `ADD`, which
//! also works with IPAM plugins older than 1.1.0) and forwards `GC`; `STATUS` checks that
//! `stateDir` is usable and asks IPAM.
//!
//! Plugin keys: `stateDir` (required), `logLevel`, `logFile`, and two test knobs:
//! `logBurst` (STATUS logs that many lines) and `failAfterIpam` (ADD fails after IPAM, to
//! exercise the release path).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cni_spec::{
    AddRequest, CheckRequest, CniError, CniResult, CniVersion, DelRequest, Delegate, DelegateEnv,
    ErrorCode, GcRequest, Interface, LogLevel, LogSettings, NetConf, Plugin, StatusRequest,
    parse_result,
};
use serde::{Deserialize, Serialize};

/// This plugin's own configuration keys.
#[derive(Debug, Deserialize)]
struct ExampleConf {
    #[serde(rename = "stateDir")]
    state_dir: PathBuf,
    #[serde(rename = "logLevel", default)]
    log_level: LogLevel,
    #[serde(rename = "logFile", default)]
    log_file: Option<PathBuf>,
    #[serde(rename = "logBurst", default)]
    log_burst: u32,
    #[serde(rename = "failAfterIpam", default)]
    fail_after_ipam: bool,
}

/// The attachment is not recorded (CHECK after DEL, or never added).
const NOT_RECORDED: ErrorCode = ErrorCode::plugin_specific(100);
/// `failAfterIpam` was set.
const INJECTED_FAILURE: ErrorCode = ErrorCode::plugin_specific(101);
/// `prevResult` and the record disagree.
const MISMATCH: ErrorCode = ErrorCode::plugin_specific(102);

/// One recorded attachment.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
    /// The configuration `ADD` received, for IPAM `DEL` during `GC`.
    config: serde_json::Value,
    /// The result `ADD` returned, as 1.1.0.
    result: serde_json::Value,
}

fn record_path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    // '%' appears in none of the three (spec identifiers and interface names exclude it).
    dir.join(format!("{network}%{container_id}%{ifname}.json"))
}

fn io_error(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> CniError {
    move |e| CniError::io(what, &e)
}

fn write_record(path: &Path, record: &Record) -> Result<(), CniError> {
    let bytes = serde_json::to_vec(record)
        .map_err(|e| CniError::internal("cannot encode state record", e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_error(format_args!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io_error(format_args!("renaming {}", tmp.display())))
}

fn read_record(path: &Path) -> Result<Option<Record>, CniError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CniError::decoding(format_args!("state record {}", path.display()), e.to_string())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CniError::io(format_args!("reading {}", path.display()), &e)),
    }
}

fn remove_record(path: &Path) -> Result<(), CniError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CniError::io(format_args!("removing {}", path.display()), &e))
        }
        _ => Ok(()),
    }
}

struct Example;

impl Plugin for Example {
    type Config = ExampleConf;

    fn logging(&self, config: &NetConf<ExampleConf>) -> Option<LogSettings> {
        Some(LogSettings { level: config.plugin.log_level, file: config.plugin.log_file.clone() })
    }

    fn add(&self, req: AddRequest<ExampleConf>) -> Result<CniResult, CniError> {
        let conf = &req.config;
        let mut result = conf.prev_result.clone().unwrap_or_default();
        let mut iface =
            Interface::new(req.ifname.as_str()).with_sandbox(req.netns.display().to_string());
        if let Some(mac) = conf.requested_mac(&req.args)? {
            iface = iface.with_mac(mac);
        }
        let index = result.push_interface(iface);

        let ipam = req.ipam_add()?;
        if let Some(ipam) = ipam {
            result.merge_ipam(ipam, index);
        }
        // From here on, a failure must give the address back.
        let finish = || -> Result<(), CniError> {
            if conf.plugin.fail_after_ipam {
                return Err(CniError::new(
                    INJECTED_FAILURE,
                    "injected failure after IPAM",
                    "failAfterIpam = true",
                ));
            }
            let config = serde_json::from_slice(req.stdin())
                .map_err(|e| CniError::decoding("network configuration", e.to_string()))?;
            let record = Record {
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
                config,
                result: result.to_json(CniVersion::V1_1_0),
            };
            write_record(
                &record_path(&conf.plugin.state_dir, &conf.name, &req.container_id, &req.ifname),
                &record,
            )
        };
        if let Err(e) = finish() {
            if let Err(release) = req.ipam_release() {
                tracing::error!(error = %release, "releasing the IPAM allocation after a failed ADD");
            }
            return Err(e);
        }
        tracing::info!(ips = result.ips.len(), "attached");
        Ok(result)
    }

    fn del(&self, req: DelRequest<ExampleConf>) -> Result<(), CniError> {
        // Best effort: do every step, report the first failure.
        let ipam = req.ipam_del();
        let path = record_path(
            &req.config.plugin.state_dir,
            &req.config.name,
            &req.container_id,
            &req.ifname,
        );
        let state = remove_record(&path);
        tracing::info!(netns_known = req.netns.is_some(), "detached");
        ipam.and(state)
    }

    fn check(&self, req: CheckRequest<ExampleConf>) -> Result<(), CniError> {
        let conf = &req.config;
        let prev = conf.prev_result.as_ref().ok_or_else(|| {
            CniError::invalid_config("prevResult", "null", "CHECK needs the result of ADD")
        })?;
        let path = record_path(&conf.plugin.state_dir, &conf.name, &req.container_id, &req.ifname);
        let record = read_record(&path)?.ok_or_else(|| {
            CniError::new(
                NOT_RECORDED,
                "attachment not recorded",
                format!("{} does not exist", path.display()),
            )
        })?;
        let recorded = parse_result(record.result.to_string().as_bytes(), CniVersion::V1_1_0)
            .map_err(|e| e.into_cni("state record result"))?
            .result;
        let mine = |r: &CniResult| -> Vec<String> {
            r.ips
                .iter()
                .filter(|ip| r.interface_of(ip).is_some_and(|i| i.name == req.ifname))
                .map(|ip| ip.address.to_string())
                .collect()
        };
        if mine(prev) != mine(&recorded) {
            return Err(CniError::new(
                MISMATCH,
                "prevResult does not match the recorded attachment",
                format!("prevResult has {:?}, recorded {:?}", mine(prev), mine(&recorded)),
            ));
        }
        req.ipam_check()
    }

    fn gc(&self, req: GcRequest<ExampleConf>) -> Result<(), CniError> {
        let dir = &req.config.plugin.state_dir;
        let prefix = format!("{}%", req.config.name);
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return req.ipam_gc(),
            Err(e) => return Err(CniError::io(format_args!("listing {}", dir.display()), &e)),
        };
        let mut first_error = None;
        let mut note = |r: Result<(), CniError>| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "GC step failed; continuing");
                first_error.get_or_insert(e);
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || !name.ends_with(".json") {
                continue;
            }
            let record = match read_record(&entry.path()) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    note(Err(e));
                    continue;
                }
            };
            if req.is_valid(&record.container_id, &record.ifname) {
                continue;
            }
            tracing::info!(container_id = %record.container_id, ifname = %record.ifname, "releasing stale attachment");
            if let Some(ipam) = &req.config.ipam {
                let env = DelegateEnv {
                    container_id: Some(record.container_id.clone()),
                    netns: None,
                    ifname: Some(record.ifname.clone()),
                    args: None,
                    path: req.cni_path.clone(),
                };
                let stdin = record.config.to_string();
                let version = record
                    .config
                    .get("cniVersion")
                    .and_then(|v| v.as_str())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(req.config.cni_version);
                let delegate = Delegate {
                    field: "ipam.type",
                    plugin_type: &ipam.plugin_type,
                    env: &env,
                    stdin: stdin.as_bytes(),
                    version,
                };
                note(delegate.del());
            }
            note(remove_record(&entry.path()));
        }
        note(req.ipam_gc());
        first_error.map_or(Ok(()), Err)
    }

    fn status(&self, req: StatusRequest<ExampleConf>) -> Result<(), CniError> {
        let dir = &req.config.plugin.state_dir;
        for i in 0..req.config.plugin.log_burst {
            tracing::info!(
                line = i,
                pid = std::process::id(),
                filler = "status line for concurrent append tests",
                "burst"
            );
        }
        let probe = dir.join(format!(".status-probe.{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| {
            CniError::plugin_not_available(
                "state directory is not writable",
                format!("stateDir = {}: {e}", dir.display()),
            )
        })?;
        remove_record(&probe)?;
        req.ipam_status()
    }
}

fn main() -> ExitCode {
    cni_spec::run(&Example)
}
