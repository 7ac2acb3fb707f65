//! The [`Plugin`] trait and the runner that owns a plugin process's I/O.
//!
//! [`run`] reads the environment and stdin, validates them, dispatches to the plugin and
//! writes exactly one JSON document to stdout: the result (ADD), the version reply (VERSION),
//! an error, or nothing (DEL, CHECK, GC and STATUS success). It returns the [`ExitCode`] for
//! `main` to return; the library never exits the process.
//!
//! ```no_run
//! use cni_spec::{AddRequest, CheckRequest, CniError, CniResult, DelRequest, NoPluginConfig, Plugin};
//!
//! struct Noop;
//!
//! impl Plugin for Noop {
//!     type Config = NoPluginConfig;
//!     fn add(&self, req: AddRequest<NoPluginConfig>) -> Result<CniResult, CniError> {
//!         Ok(req.config.prev_result.clone().unwrap_or_default())
//!     }
//!     fn del(&self, _req: DelRequest<NoPluginConfig>) -> Result<(), CniError> {
//!         Ok(())
//!     }
//!     fn check(&self, _req: CheckRequest<NoPluginConfig>) -> Result<(), CniError> {
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     cni_spec::run(&Noop)
//! }
//! ```

use std::ffi::OsString;
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{NetConf, ValidAttachments};
use crate::delegate::{Delegate, DelegateEnv};
use crate::env::{CniArgs, CniEnv, CniPath, Command};
use crate::error::CniError;
use crate::logging::{LogSettings, init_logging};
use crate::result::CniResult;
use crate::version::{CniVersion, VersionInfo};

/// A CNI plugin: one method per operation.
///
/// The runner has already validated the environment for the command, parsed the
/// configuration (version negotiated, `prevResult` converted to the configuration's
/// version) and rejected commands the configuration's version does not define (CHECK before
/// 0.4.0, GC and STATUS before 1.1.0).
pub trait Plugin {
    /// The plugin's own configuration keys (flattened next to the spec's keys).
    type Config: DeserializeOwned;

    /// The spec versions this plugin accepts (all five by default).
    fn supported_versions(&self) -> &[CniVersion] {
        &CniVersion::ALL
    }

    /// Logging for this invocation, derived from the configuration (default: `info` to
    /// stderr). The runner installs it before dispatching; `None` means the plugin installed
    /// its own subscriber here and the runner builds none (a short-lived process should not
    /// pay for a second one).
    fn logging(&self, _config: &NetConf<Self::Config>) -> Option<LogSettings> {
        Some(LogSettings::default())
    }

    /// `ADD`: set up the attachment and return the result (written in the configuration's
    /// version).
    fn add(&self, req: AddRequest<Self::Config>) -> Result<CniResult, CniError>;

    /// `DEL`: undo `ADD`, best effort; succeed when things are already gone.
    fn del(&self, req: DelRequest<Self::Config>) -> Result<(), CniError>;

    /// `CHECK`: verify the attachment against `prevResult`.
    fn check(&self, req: CheckRequest<Self::Config>) -> Result<(), CniError>;

    /// `GC`: release resources of attachments not in the valid list. The default forwards
    /// GC to the IPAM plugin, if one is configured.
    fn gc(&self, req: GcRequest<Self::Config>) -> Result<(), CniError> {
        req.ipam_gc()
    }

    /// `STATUS`: `Ok` if ready for `ADD`, else code 50/51. The default asks the IPAM plugin,
    /// if one is configured.
    fn status(&self, req: StatusRequest<Self::Config>) -> Result<(), CniError> {
        req.ipam_status()
    }
}

/// What every request carries for delegation: the environment to pass on and the original
/// stdin.
#[derive(Debug, Clone)]
struct Call {
    env: DelegateEnv,
    stdin: Vec<u8>,
    version: CniVersion,
}

impl Call {
    fn ipam<'a, C>(&'a self, config: &'a NetConf<C>) -> Option<Delegate<'a>> {
        config.ipam.as_ref().map(|ipam| Delegate {
            field: "ipam.type",
            plugin_type: &ipam.plugin_type,
            env: &self.env,
            stdin: &self.stdin,
            version: self.version,
        })
    }

    fn delegate<'a>(&'a self, plugin_type: &'a str) -> Delegate<'a> {
        Delegate {
            field: "type",
            plugin_type,
            env: &self.env,
            stdin: &self.stdin,
            version: self.version,
        }
    }
}

/// An `ADD` invocation.
#[derive(Debug, Clone)]
pub struct AddRequest<C> {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`.
    pub cni_path: CniPath,
    /// The configuration.
    pub config: NetConf<C>,
    call: Call,
}

impl<C> AddRequest<C> {
    /// The configuration exactly as received on stdin.
    pub fn stdin(&self) -> &[u8] {
        &self.call.stdin
    }

    /// Runs IPAM `ADD`; `None` if no IPAM is configured.
    pub fn ipam_add(&self) -> Result<Option<CniResult>, CniError> {
        self.call.ipam(&self.config).map(|d| d.add()).transpose()
    }

    /// Runs IPAM `DEL` to release what [`AddRequest::ipam_add`] allocated when a later step
    /// of `ADD` fails.
    pub fn ipam_release(&self) -> Result<(), CniError> {
        self.call.ipam(&self.config).map_or(Ok(()), |d| d.del())
    }

    /// Another plugin executed with this invocation's environment and stdin.
    pub fn delegate<'a>(&'a self, plugin_type: &'a str) -> Delegate<'a> {
        self.call.delegate(plugin_type)
    }
}

/// A `CHECK` invocation.
#[derive(Debug, Clone)]
pub struct CheckRequest<C> {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`.
    pub cni_path: CniPath,
    /// The configuration (`prev_result` holds what `ADD` returned).
    pub config: NetConf<C>,
    call: Call,
}

impl<C> CheckRequest<C> {
    /// The configuration exactly as received on stdin.
    pub fn stdin(&self) -> &[u8] {
        &self.call.stdin
    }

    /// Runs IPAM `CHECK`; `Ok` if no IPAM is configured.
    pub fn ipam_check(&self) -> Result<(), CniError> {
        self.call.ipam(&self.config).map_or(Ok(()), |d| d.check())
    }

    /// Another plugin executed with this invocation's environment and stdin.
    pub fn delegate<'a>(&'a self, plugin_type: &'a str) -> Delegate<'a> {
        self.call.delegate(plugin_type)
    }
}

/// A `DEL` invocation.
#[derive(Debug, Clone)]
pub struct DelRequest<C> {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`; `None` when the runtime no longer has the namespace.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`.
    pub cni_path: CniPath,
    /// The configuration (`prev_result` may be absent).
    pub config: NetConf<C>,
    call: Call,
}

impl<C> DelRequest<C> {
    /// The configuration exactly as received on stdin.
    pub fn stdin(&self) -> &[u8] {
        &self.call.stdin
    }

    /// Runs IPAM `DEL` (works without a netns; "unknown container" counts as done); `Ok` if no
    /// IPAM is configured.
    pub fn ipam_del(&self) -> Result<(), CniError> {
        self.call.ipam(&self.config).map_or(Ok(()), |d| d.del())
    }

    /// Another plugin executed with this invocation's environment and stdin.
    pub fn delegate<'a>(&'a self, plugin_type: &'a str) -> Delegate<'a> {
        self.call.delegate(plugin_type)
    }
}

/// A `GC` invocation.
#[derive(Debug, Clone)]
pub struct GcRequest<C> {
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`.
    pub cni_path: CniPath,
    /// The configuration.
    pub config: NetConf<C>,
    /// The attachments whose resources must be kept.
    pub valid: ValidAttachments,
    call: Call,
}

impl<C> GcRequest<C> {
    /// The configuration exactly as received on stdin.
    pub fn stdin(&self) -> &[u8] {
        &self.call.stdin
    }

    /// Whether `(container_id, ifname)` is still valid.
    pub fn is_valid(&self, container_id: &str, ifname: &str) -> bool {
        self.valid.contains(container_id, ifname)
    }

    /// Forwards `GC` to the IPAM plugin (skipped if it predates 1.1.0); `Ok` if no IPAM is
    /// configured.
    pub fn ipam_gc(&self) -> Result<(), CniError> {
        self.call.ipam(&self.config).map_or(Ok(()), |d| d.gc())
    }

    /// Another plugin executed with this invocation's environment and stdin.
    pub fn delegate<'a>(&'a self, plugin_type: &'a str) -> Delegate<'a> {
        self.call.delegate(plugin_type)
    }
}

/// A `STATUS` invocation.
#[derive(Debug, Clone)]
pub struct StatusRequest<C> {
    /// `CNI_PATH`.
    pub cni_path: CniPath,
    /// The configuration.
    pub config: NetConf<C>,
    call: Call,
}

impl<C> StatusRequest<C> {
    /// The configuration exactly as received on stdin.
    pub fn stdin(&self) -> &[u8] {
        &self.call.stdin
    }

    /// Forwards `STATUS` to the IPAM plugin (skipped if it predates 1.1.0); `Ok` if no IPAM
    /// is configured.
    pub fn ipam_status(&self) -> Result<(), CniError> {
        self.call.ipam(&self.config).map_or(Ok(()), |d| d.status())
    }

    /// Another plugin executed with this invocation's environment and stdin.
    pub fn delegate<'a>(&'a self, plugin_type: &'a str) -> Delegate<'a> {
        self.call.delegate(plugin_type)
    }
}

/// Runs `plugin` against this process's environment, stdin and stdout.
pub fn run<P: Plugin>(plugin: &P) -> ExitCode {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    run_with(plugin, &|k| std::env::var_os(k), &mut stdin.lock(), &mut stdout.lock())
}

/// Runs `plugin` with an explicit environment lookup, stdin and stdout (for tests and
/// embedding). Delegates still inherit this process's environment, with the `CNI_*` variables
/// taken from `env`.
pub fn run_with<P: Plugin>(
    plugin: &P,
    env: &dyn Fn(&str) -> Option<OsString>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> ExitCode {
    let fallback = plugin.supported_versions().iter().max().copied().unwrap_or(CniVersion::LATEST);
    let (output, code) = match dispatch(plugin, env, stdin) {
        Ok(None) => (None, ExitCode::SUCCESS),
        Ok(Some(v)) => (Some(v), ExitCode::SUCCESS),
        Err(Failure { error, version }) => {
            tracing::error!(
                code = error.code().get(),
                details = error.details(),
                "{}",
                error.msg()
            );
            (Some(error.to_json(version.unwrap_or(fallback).as_str())), ExitCode::FAILURE)
        }
    };
    if let Some(v) = output {
        let written = serde_json::to_writer(&mut *stdout, &v)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush());
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write to stdout");
            return ExitCode::FAILURE;
        }
    }
    code
}

struct Failure {
    error: CniError,
    version: Option<CniVersion>,
}

impl From<CniError> for Failure {
    fn from(error: CniError) -> Failure {
        Failure { error, version: None }
    }
}

fn dispatch<P: Plugin>(
    plugin: &P,
    lookup: &dyn Fn(&str) -> Option<OsString>,
    stdin: &mut dyn Read,
) -> Result<Option<Value>, Failure> {
    let env = CniEnv::from_lookup(lookup)?;
    let mut input = Vec::new();
    stdin
        .read_to_end(&mut input)
        .map_err(|e| CniError::io("reading the network configuration from stdin", &e))?;

    if env.command == Command::Version {
        // Echo the requested version if stdin carries one; stdin may also be empty.
        let requested = serde_json::from_slice::<Value>(&input)
            .ok()
            .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_owned));
        let info = VersionInfo::new(requested.as_deref(), plugin.supported_versions());
        return serde_json::to_value(info).map(Some).map_err(|e| {
            CniError::internal("cannot encode the VERSION reply", e.to_string()).into()
        });
    }

    let config: NetConf<P::Config> = NetConf::parse(&input, plugin.supported_versions())?;
    let version = config.cni_version;
    let fail = |error: CniError| Failure { error, version: Some(version) };
    match env.command {
        Command::Check if !version.allows_check() => {
            return Err(fail(CniError::command_not_in_version("CHECK", version)));
        }
        Command::Gc | Command::Status if !version.allows_gc_and_status() => {
            return Err(fail(CniError::command_not_in_version(env.command.as_str(), version)));
        }
        _ => {}
    }

    if let Some(settings) = plugin.logging(&config) {
        install_logging(&settings);
    }

    let span = tracing::info_span!(
        "cni",
        command = %env.command,
        network = %config.name,
        container_id = %env.container_id.as_deref().unwrap_or(""),
        netns = %env.netns.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        ifname = %env.ifname.as_deref().unwrap_or(""),
    );
    let _entered = span.enter();
    tracing::debug!(cni_version = version.as_str(), "invoked");

    let call = Call {
        env: DelegateEnv {
            container_id: env.container_id.clone(),
            netns: env.netns.clone(),
            ifname: env.ifname.clone(),
            args: Some(env.args.raw().to_owned()).filter(|a| !a.is_empty()),
            path: env.path.clone(),
        },
        stdin: input,
        version,
    };
    // Required variables were checked by CniEnv for this command; these are never empty.
    let container_id = env.container_id.unwrap_or_default();
    let ifname = env.ifname.unwrap_or_default();
    let netns = env.netns;

    let outcome = guard(|| match env.command {
        Command::Add => plugin
            .add(AddRequest {
                container_id,
                netns: netns.unwrap_or_default(),
                ifname,
                args: env.args,
                cni_path: env.path,
                config,
                call,
            })
            .map(|r| Some(r.to_json(version))),
        Command::Check => plugin
            .check(CheckRequest {
                container_id,
                netns: netns.unwrap_or_default(),
                ifname,
                args: env.args,
                cni_path: env.path,
                config,
                call,
            })
            .map(|()| None),
        Command::Del => plugin
            .del(DelRequest {
                container_id,
                netns,
                ifname,
                args: env.args,
                cni_path: env.path,
                config,
                call,
            })
            .map(|()| None),
        Command::Gc => {
            if config.valid_attachments.is_none() {
                tracing::warn!(
                    "GC without cni.dev/valid-attachments: every attachment counts as stale"
                );
            }
            let valid = ValidAttachments::new(config.valid_attachments.as_deref().unwrap_or(&[]));
            plugin
                .gc(GcRequest { args: env.args, cni_path: env.path, config, valid, call })
                .map(|()| None)
        }
        Command::Status => {
            plugin.status(StatusRequest { cni_path: env.path, config, call }).map(|()| None)
        }
        Command::Version => Ok(None),
    });
    match &outcome {
        Ok(_) => tracing::debug!("succeeded"),
        Err(e) => tracing::debug!(code = e.code().get(), "failed"),
    }
    outcome.map_err(fail)
}

/// Runs the plugin, turning a panic into code 999 so the runtime still gets an error result.
fn guard(f: impl FnOnce() -> Result<Option<Value>, CniError>) -> Result<Option<Value>, CniError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        Err(CniError::internal("plugin panicked", what))
    })
}

fn install_logging(settings: &LogSettings) {
    match init_logging(settings.level, settings.file.as_deref()) {
        Ok(()) => {}
        Err(crate::logging::LoggingError::AlreadyInitialized) => {}
        Err(e) => {
            // Fall back to stderr rather than failing the operation over a log file.
            let fallback = init_logging(settings.level, None);
            let source = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
            tracing::warn!(error = %e, cause = %source, installed = fallback.is_ok(), "logging to stderr instead");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde::Deserialize;
    use serde_json::json;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    struct Conf {
        #[serde(default)]
        fail_with: Option<u32>,
        #[serde(default)]
        panic: bool,
    }

    /// Records what it was called with.
    #[derive(Default)]
    struct Recorder {
        seen: RefCell<Vec<String>>,
        versions: Option<Vec<CniVersion>>,
    }

    impl Recorder {
        fn outcome(&self, what: String, conf: &NetConf<Conf>) -> Result<(), CniError> {
            self.seen.borrow_mut().push(what);
            if conf.plugin.panic {
                panic!("boom in plugin");
            }
            match conf.plugin.fail_with {
                Some(code) => Err(CniError::new(
                    crate::ErrorCode::from_raw(code),
                    "asked to fail",
                    "fail_with",
                )),
                None => Ok(()),
            }
        }
    }

    impl Plugin for Recorder {
        type Config = Conf;

        fn supported_versions(&self) -> &[CniVersion] {
            self.versions.as_deref().unwrap_or(&CniVersion::ALL)
        }

        fn add(&self, req: AddRequest<Conf>) -> Result<CniResult, CniError> {
            self.outcome(
                format!("ADD {} {} {}", req.container_id, req.netns.display(), req.ifname),
                &req.config,
            )?;
            let mut r = req.config.prev_result.clone().unwrap_or_default();
            r.push_interface(
                crate::Interface::new(req.ifname.clone())
                    .with_sandbox(req.netns.display().to_string())
                    .with_mtu(1500),
            );
            Ok(r)
        }

        fn del(&self, req: DelRequest<Conf>) -> Result<(), CniError> {
            self.outcome(
                format!("DEL {} {:?} {}", req.container_id, req.netns, req.ifname),
                &req.config,
            )
        }

        fn check(&self, req: CheckRequest<Conf>) -> Result<(), CniError> {
            self.outcome(format!("CHECK {}", req.container_id), &req.config)
        }

        fn gc(&self, req: GcRequest<Conf>) -> Result<(), CniError> {
            let keep = req.is_valid("c1", "eth0");
            self.outcome(format!("GC valid={} c1/eth0={keep}", req.valid.len()), &req.config)
        }

        fn status(&self, req: StatusRequest<Conf>) -> Result<(), CniError> {
            self.outcome("STATUS".into(), &req.config)
        }
    }

    struct Outcome {
        code: ExitCode,
        stdout: String,
    }

    impl Outcome {
        fn json(&self) -> Value {
            serde_json::from_str(&self.stdout).unwrap()
        }
    }

    fn invoke(p: &Recorder, env: &[(&str, &str)], stdin: &str) -> Outcome {
        let map: HashMap<String, OsString> =
            env.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(*v))).collect();
        let mut out = Vec::new();
        let code = run_with(p, &|k| map.get(k).cloned(), &mut stdin.as_bytes(), &mut out);
        Outcome { code, stdout: String::from_utf8(out).unwrap() }
    }

    fn attach_env(cmd: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/p1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
        ]
    }

    fn conf(version: &str, extra: Value) -> String {
        let mut v = json!({"cniVersion": version, "name": "net", "type": "recorder"});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v.to_string()
    }

    #[test]
    fn version_command_needs_only_cni_command() {
        let p = Recorder {
            versions: Some(vec![CniVersion::V0_4_0, CniVersion::V1_0_0]),
            ..Default::default()
        };
        let o = invoke(&p, &[("CNI_COMMAND", "VERSION")], "");
        assert_eq!(o.code, ExitCode::SUCCESS);
        assert_eq!(
            o.json(),
            json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]})
        );
        let o = invoke(
            &Recorder::default(),
            &[("CNI_COMMAND", "VERSION")],
            r#"{"cniVersion":"0.4.0"}"#,
        );
        assert_eq!(
            o.json(),
            json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
        assert!(o.stdout.ends_with('\n') && o.stdout.lines().count() == 1);
    }

    #[test]
    fn add_prints_the_result_in_the_config_version() {
        let p = Recorder::default();
        let prev = json!({"prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "192.0.2.3/24", "interface": 0}],
                                         "interfaces": [{"name": "eth0", "pciID": "0000:3b:02.1"}]}});
        let o = invoke(&p, &attach_env("ADD"), &conf("0.4.0", prev.clone()));
        assert_eq!(o.code, ExitCode::SUCCESS, "{}", o.stdout);
        assert_eq!(
            o.json(),
            json!({"cniVersion": "0.4.0",
                   "interfaces": [{"name": "eth0"}, {"name": "eth0", "sandbox": "/run/netns/p1"}],
                   "ips": [{"version": "4", "address": "192.0.2.3/24", "interface": 0}]})
        );
        let o = invoke(&p, &attach_env("ADD"), &conf("1.1.0", prev));
        assert_eq!(
            o.json()["interfaces"][1],
            json!({"name": "eth0", "sandbox": "/run/netns/p1", "mtu": 1500})
        );
        assert_eq!(o.json()["interfaces"][0], json!({"name": "eth0", "pciID": "0000:3b:02.1"}));
        assert_eq!(p.seen.borrow()[0], "ADD c1 /run/netns/p1 eth0");
    }

    #[test]
    fn del_check_gc_status_print_nothing_on_success() {
        let p = Recorder::default();
        let mut del_env = attach_env("DEL");
        del_env.retain(|(k, _)| *k != "CNI_NETNS");
        for (env, stdin) in [
            (del_env, conf("1.0.0", json!({}))),
            (attach_env("CHECK"), conf("0.4.0", json!({}))),
            (
                vec![("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")],
                conf(
                    "1.1.0",
                    json!({"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}),
                ),
            ),
            (vec![("CNI_COMMAND", "STATUS")], conf("1.1.0", json!({}))),
        ] {
            let o = invoke(&p, &env, &stdin);
            assert_eq!(o.code, ExitCode::SUCCESS, "{}", o.stdout);
            assert_eq!(o.stdout, "");
        }
        assert_eq!(
            *p.seen.borrow(),
            vec!["DEL c1 None eth0", "CHECK c1", "GC valid=1 c1/eth0=true", "STATUS"]
        );
    }

    #[test]
    fn commands_the_config_version_lacks_are_code_1() {
        let p = Recorder::default();
        for (env, version, cmd) in [
            (attach_env("CHECK"), "0.3.1", "CHECK"),
            (vec![("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")], "1.0.0", "GC"),
            (vec![("CNI_COMMAND", "STATUS")], "0.4.0", "STATUS"),
        ] {
            let o = invoke(&p, &env, &conf(version, json!({})));
            assert_eq!(o.code, ExitCode::FAILURE);
            let v = o.json();
            assert_eq!(v["code"], 1);
            assert_eq!(v["msg"], format!("config version does not allow {cmd}"));
            assert_eq!(v["cniVersion"], version, "errors are stamped with the config's version");
        }
        assert!(p.seen.borrow().is_empty(), "the plugin was never called");
    }

    #[test]
    fn errors_reach_stdout_as_spec_json() {
        let p = Recorder { versions: Some(vec![CniVersion::V1_0_0]), ..Default::default() };
        // Plugin error, code passed through, stamped with the config version.
        let o = invoke(&p, &attach_env("ADD"), &conf("1.0.0", json!({"fail_with": 107})));
        assert_eq!(o.code, ExitCode::FAILURE);
        assert_eq!(
            o.json(),
            json!({"cniVersion": "1.0.0", "code": 107, "msg": "asked to fail", "details": "fail_with"})
        );
        // Incompatible version: stamped with the plugin's newest version.
        let o = invoke(&p, &attach_env("ADD"), &conf("1.1.0", json!({})));
        assert_eq!(o.json()["code"], 1);
        assert_eq!(o.json()["cniVersion"], "1.0.0");
        // Missing env.
        let o = invoke(&p, &[("CNI_COMMAND", "ADD")], &conf("1.0.0", json!({})));
        assert_eq!(o.json()["code"], 4);
        // Decode failure.
        let o = invoke(&p, &attach_env("ADD"), "{\"cniVersion\": \"1.0.0\",");
        assert_eq!(o.json()["code"], 6);
        // Invalid config.
        let o = invoke(&p, &attach_env("ADD"), r#"{"cniVersion": "1.0.0", "type": "x"}"#);
        assert_eq!(o.json()["code"], 7);
        assert!(o.json()["details"].as_str().unwrap().starts_with("name = "));
    }

    #[test]
    fn a_panic_becomes_code_999() {
        let p = Recorder::default();
        let o = invoke(&p, &attach_env("ADD"), &conf("1.0.0", json!({"panic": true})));
        assert_eq!(o.code, ExitCode::FAILURE);
        assert_eq!(o.json()["code"], 999);
        assert_eq!(o.json()["details"], "boom in plugin");
    }

    #[test]
    fn stdin_read_failure_is_code_5() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("stdin exploded"))
            }
        }
        let map: HashMap<String, OsString> =
            attach_env("ADD").into_iter().map(|(k, v)| (k.to_owned(), OsString::from(v))).collect();
        let mut out = Vec::new();
        let code = run_with(&Recorder::default(), &|k| map.get(k).cloned(), &mut Broken, &mut out);
        assert_eq!(code, ExitCode::FAILURE);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["code"], 5);
        assert!(v["details"].as_str().unwrap().contains("stdin exploded"));
    }

    #[test]
    fn requests_without_ipam_do_not_delegate() {
        #[derive(Default)]
        struct Ipamless;
        impl Plugin for Ipamless {
            type Config = crate::NoPluginConfig;
            fn add(&self, req: AddRequest<Self::Config>) -> Result<CniResult, CniError> {
                assert!(req.ipam_add()?.is_none());
                req.ipam_release()?;
                Ok(CniResult::default())
            }
            fn del(&self, req: DelRequest<Self::Config>) -> Result<(), CniError> {
                req.ipam_del()
            }
            fn check(&self, req: CheckRequest<Self::Config>) -> Result<(), CniError> {
                req.ipam_check()
            }
        }
        let map: HashMap<String, OsString> =
            attach_env("ADD").into_iter().map(|(k, v)| (k.to_owned(), OsString::from(v))).collect();
        let mut out = Vec::new();
        let stdin = conf("1.1.0", json!({"ipam": {}}));
        let code = run_with(&Ipamless, &|k| map.get(k).cloned(), &mut stdin.as_bytes(), &mut out);
        assert_eq!(code, ExitCode::SUCCESS, "{}", String::from_utf8_lossy(&out));
    }
}
