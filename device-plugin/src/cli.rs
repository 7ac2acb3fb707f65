//! The command line (flag names follow the Go plugin where it has them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sriov_host::HostPaths;

use crate::allocate::CdiMode;
use crate::config::{self, DEFAULT_RESOURCE_PREFIX};
use crate::kubelet::DEFAULT_KUBELET_DIR;
use crate::manager::{self, Options};
use crate::preferred::Policy;

/// Kubelet device plugin advertising SR-IOV VF pools (compatible with the Go SR-IOV network device
/// plugin's config file).
#[derive(Debug, Clone, Parser)]
#[command(name = "sriov-device-plugin", version, about)]
pub struct Cli {
    /// The resource pool config (JSON, Go plugin format).
    #[arg(long, default_value = "/etc/pcidp/config.json")]
    pub config_file: PathBuf,
    /// Resource prefix for pools without `resourcePrefix`.
    #[arg(long, default_value = DEFAULT_RESOURCE_PREFIX)]
    pub resource_prefix: String,
    /// sysfs root.
    #[arg(long, env = sriov_host::paths::SYSFS_ROOT_ENV, default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// Device-node root (device specs name nodes under it; containers see them under /dev).
    #[arg(long, env = sriov_host::paths::DEV_ROOT_ENV, default_value = "/dev")]
    pub dev_root: PathBuf,
    /// The kubelet's device-plugins directory.
    #[arg(long, default_value = DEFAULT_KUBELET_DIR)]
    pub kubelet_dir: PathBuf,
    /// Hand device nodes out through CDI specs instead of device specs.
    #[arg(long)]
    pub use_cdi: bool,
    /// With --use-cdi: answer with `cdi.k8s.io/` container annotations (as the Go plugin, for
    /// kubelets before 1.28) instead of the `cdi_devices` field.
    #[arg(long, requires = "use_cdi")]
    pub cdi_annotations: bool,
    /// Where CDI spec files are written.
    #[arg(long, default_value = "/var/run/cdi")]
    pub cdi_dir: PathBuf,
    /// Where Multus device-info files are written.
    #[arg(long, default_value = "/var/run/k8s.cni.cncf.io/devinfo/dp")]
    pub devinfo_dir: PathBuf,
    /// GetPreferredAllocation policy.
    #[arg(long, value_enum, default_value_t = Policy::Pack)]
    pub allocation_policy: Policy,
    /// Safety-net rescan interval (`30s`, `500ms`, `0` to disable); events drive updates.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub rescan_interval: Duration,
    /// How long a vanished or no-longer-matching device stays listed as Unhealthy.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub removal_grace: Duration,
    /// How long bursts of host events are coalesced before a rescan.
    #[arg(long, value_parser = parse_duration, default_value = "10ms")]
    pub event_coalesce: Duration,
    /// Do not listen to kernel uevents (rely on link events and the rescan interval).
    #[arg(long)]
    pub no_uevents: bool,
    /// Do not listen to netlink link events.
    #[arg(long)]
    pub no_link_events: bool,
    /// Log level: error, warn, info, debug, trace, or a Go plugin verbosity number (0-2 info,
    /// 3 and above debug). `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// Parses `250ms`, `30s`, `2m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 =
        num.parse().map_err(|_| format!("{s:?} is not a duration like 500ms, 30s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// The tracing filter for a level: the level for the suite's crates, at most `info` for the
/// libraries underneath (their debug output is per-frame gRPC noise).
fn log_filter(level: &str) -> Result<String, String> {
    let level = match level {
        "error" | "warn" | "info" | "debug" | "trace" => level,
        n => match n.parse::<u32>() {
            Ok(0..=2) => "info",
            Ok(_) => "debug",
            Err(_) => {
                return Err(format!(
                    "--log-level {n:?}: expected error, warn, info, debug, trace or a number"
                ));
            }
        },
    };
    let libs = if matches!(level, "error" | "warn") { level } else { "info" };
    Ok(format!("{libs},sriov_device_plugin={level},sriov_host={level},sriov_netlink={level}"))
}

impl Cli {
    /// The run options these flags describe.
    pub fn options(&self) -> Options {
        Options {
            config_file: self.config_file.clone(),
            resource_prefix: self.resource_prefix.clone(),
            paths: HostPaths::new(&self.sysfs_root, &self.dev_root),
            kubelet_dir: self.kubelet_dir.clone(),
            cdi: match (self.use_cdi, self.cdi_annotations) {
                (false, _) => CdiMode::Off,
                (true, false) => CdiMode::Devices,
                (true, true) => CdiMode::Annotations,
            },
            cdi_dir: self.cdi_dir.clone(),
            devinfo_dir: self.devinfo_dir.clone(),
            policy: self.allocation_policy,
            rescan_interval: self.rescan_interval,
            removal_grace: self.removal_grace,
            debounce: self.event_coalesce,
            uevents: !self.no_uevents,
            link_events: !self.no_link_events,
        }
    }
}

/// Runs the plugin: sets up logging, validates flags, runs until SIGTERM. Errors go to stderr as
/// one line with their causes; the exit code is 1 (2 for bad flags, from clap).
pub fn main(cli: Cli) -> ExitCode {
    let filter = match log_filter(&cli.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sriov-device-plugin: {e}");
            return ExitCode::from(2);
        }
    };
    let env_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr).init();
    if let Err(e) = config::check_prefix(&cli.resource_prefix) {
        eprintln!("sriov-device-plugin: --resource-prefix {:?}: {e}", cli.resource_prefix);
        return ExitCode::from(2);
    }
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("sriov-device-plugin: start async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(manager::run(cli.options())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %manager::chain(&e), "fatal");
            eprintln!("sriov-device-plugin: {}", manager::chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn log_levels() {
        assert_eq!(
            log_filter("debug").unwrap(),
            "info,sriov_device_plugin=debug,sriov_host=debug,sriov_netlink=debug"
        );
        assert_eq!(log_filter("10").unwrap(), log_filter("debug").unwrap());
        assert_eq!(log_filter("1").unwrap(), log_filter("info").unwrap());
        assert!(log_filter("warn").unwrap().starts_with("warn,"));
        assert!(log_filter("loud").is_err());
    }

    #[test]
    fn flags_map_to_options() {
        let cli = Cli::parse_from([
            "sriov-device-plugin",
            "--use-cdi",
            "--cdi-annotations",
            "--allocation-policy",
            "spread",
            "--sysfs-root",
            "/tmp/sys",
        ]);
        let o = cli.options();
        assert_eq!(o.cdi, CdiMode::Annotations);
        assert_eq!(o.policy, Policy::Spread);
        assert_eq!(o.paths.sysfs(), std::path::Path::new("/tmp/sys"));
        assert_eq!(o.resource_prefix, "intel.com");
        assert!(Cli::try_parse_from(["sriov-device-plugin", "--cdi-annotations"]).is_err());
    }
}
