//! `kubelet-emu`: the kubelet's side of the device-plugin API, for shell scripts.
//!
//! One long-running `serve` process plays the kubelet's Registration service on
//! `<dir>/kubelet.sock` and records every registration in a state file (`<dir>/kubelet-emu.json`,
//! rewritten atomically). The other commands are short-lived: they find a resource's plugin socket
//! in that state file (waiting for the registration if it has not arrived yet) and make the calls
//! the kubelet makes — ListAndWatch, GetPreferredAllocation, Allocate, GetDevicePluginOptions —
//! printing what they get as JSON on stdout. Waits are inotify-driven (state file) or stream-driven
//! (ListAndWatch) and bounded by `--timeout`; a script never needs to sleep.
//!
//! Exit status: 0 on success, 1 when a call failed or a wait timed out (one line on stderr, with
//! the gRPC code and message, or the last ListAndWatch snapshot seen), 2 for bad usage.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use sriov_device_plugin::api::{ContainerAllocateResponse, Device, DevicePluginOptions};
use sriov_device_plugin::cli::parse_duration;
use sriov_device_plugin::kubelet::{DEFAULT_KUBELET_DIR, KUBELET_SOCKET};
use sriov_testkit::kubelet::{Kubelet, KubeletError, PluginClient, Registration};
use tokio::time::Instant;
use tokio_stream::StreamExt;

/// The state file's name inside the kubelet directory (kept across emulated kubelet restarts).
const STATE_FILE: &str = "kubelet-emu.json";

const AFTER_HELP: &str = "\
Examples (a script driving a device plugin):
  kubelet-emu --dir /run/dp serve > registrations.jsonl &          # the kubelet
  sriov-device-plugin --kubelet-dir /run/dp ... &
  kubelet-emu --dir /run/dp --wait-resources 2 registrations      # both pools registered
  kubelet-emu --dir /run/dp list -r intel.com/vf_net               # one snapshot, as JSON
  kubelet-emu --dir /run/dp --timeout 20s wait -r intel.com/vf_net --unhealthy 2 --healthy 0
  kubelet-emu --dir /run/dp allocate -r intel.com/vf_net 0000:01:10.0,0000:01:10.2
  kubelet-emu --dir /run/dp preferred -r intel.com/vf_net --size 2 --must-include 0000:01:10.2
  kubelet-emu --dir /run/dp --wait-resources 2 restart             # kubelet restart, re-registered

Output: one JSON object per line. A ListAndWatch snapshot is
  {\"resource\":R,\"seq\":N,\"time\":T,\"elapsedMs\":M,\"total\":N,\"healthy\":N,
   \"unhealthy\":N,\"devices\":[{\"id\":ID,\"health\":\"Healthy\"|\"Unhealthy\",\"numaNodes\":[0]|null}]}
(devices in the plugin's order; numaNodes null when the plugin sent no topology; seq counts the
snapshots of this stream from 0; time is the arrival in Unix seconds, comparable with bash's
$EPOCHREALTIME; elapsedMs is the time since the command started).
Exit status: 0 ok, 1 failed call or timed-out wait, 2 bad usage.";

/// The kubelet's side of the device-plugin API (v1beta1) for shell scripts: serve the
/// Registration socket, then list, watch, allocate and wait on registered plugins.
#[derive(Debug, Parser)]
#[command(name = "kubelet-emu", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// The kubelet's device-plugins directory: `kubelet.sock` is served there, plugins put their
    /// sockets there.
    #[arg(long, global = true, default_value = DEFAULT_KUBELET_DIR)]
    dir: PathBuf,
    /// The state file `serve` writes and the other commands read [default: DIR/kubelet-emu.json].
    #[arg(long, global = true)]
    state: Option<PathBuf>,
    /// Upper bound for every wait of the command (`30s`, `500ms`, `2m` or seconds): the
    /// registration, the connection, the ListAndWatch condition, the restart.
    #[arg(long, global = true, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// First wait until N distinct resources have registered with the current kubelet
    /// incarnation (for `restart`: with the new one).
    #[arg(long, global = true, value_name = "N")]
    wait_resources: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Be the kubelet: serve Registration on DIR/kubelet.sock until SIGTERM or SIGINT (then
    /// remove it and the state file). Prints each registration as a JSON line. SIGHUP restarts
    /// like a kubelet: every file in DIR except the checkpoint and the state file is removed, a
    /// fresh kubelet.sock is served and the epoch goes up by one. A stale kubelet.sock is
    /// replaced at start.
    Serve,
    /// Restart the running `serve` like a kubelet restart (SIGHUP to its pid) and wait for the
    /// new epoch; with --wait-resources N also for N re-registrations. Prints the new epoch's
    /// registrations.
    Restart,
    /// Print registrations as JSON lines: the latest one per resource in the current epoch,
    /// sorted by resource name.
    Registrations {
        /// Print every registration of every epoch instead, in arrival order.
        #[arg(long)]
        all: bool,
        /// Only registrations with a sequence number above SEQ (also for --wait-resources): to
        /// see re-registrations after a plugin restart.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// GetDevicePluginOptions; prints {"resource","preStartRequired",
    /// "getPreferredAllocationAvailable"}.
    Options(Target),
    /// Print ListAndWatch snapshots as JSON lines.
    List {
        #[command(flatten)]
        target: Target,
        /// Print the first N snapshots (a timeout before the Nth is an error).
        #[arg(long, default_value_t = 1, conflicts_with = "follow")]
        count: usize,
        /// Print every snapshot until the stream ends or --timeout passes (both exit 0).
        #[arg(long)]
        follow: bool,
    },
    /// Read ListAndWatch until every condition given holds in one snapshot; print that snapshot.
    Wait {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        cond: Condition,
    },
    /// Allocate; prints {"resource","containerResponses":[{"envs","mounts","devices",
    /// "annotations","cdiDevices"}]}.
    Allocate {
        #[command(flatten)]
        target: Target,
        /// One argument per container: its device IDs separated by commas.
        #[arg(required = true, value_name = "IDS")]
        containers: Vec<IdList>,
    },
    /// GetPreferredAllocation for one container; prints {"resource","deviceIds":[...]}.
    Preferred {
        #[command(flatten)]
        target: Target,
        /// Available device IDs, comma-separated [default: the Healthy devices of the first
        /// ListAndWatch snapshot].
        #[arg(long, value_name = "IDS")]
        available: Option<IdList>,
        /// Device IDs the allocation must include, comma-separated.
        #[arg(long, value_name = "IDS", default_value = "")]
        must_include: IdList,
        /// Allocation size.
        #[arg(long)]
        size: i32,
    },
}

/// Which plugin a command talks to.
#[derive(Debug, Clone, Args)]
struct Target {
    /// The resource name as registered (`intel.com/vf_net`); its socket is the endpoint of its
    /// latest registration in the current epoch (waited for).
    #[arg(short, long, required_unless_present = "socket")]
    resource: Option<String>,
    /// Talk to this plugin socket directly (no `serve` needed).
    #[arg(long, conflicts_with = "resource")]
    socket: Option<PathBuf>,
}

/// Conditions on one ListAndWatch snapshot; all given must hold.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = true)]
struct Condition {
    /// Exactly N devices listed.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// Exactly N devices Healthy.
    #[arg(long, value_name = "N")]
    healthy: Option<usize>,
    /// Exactly N devices Unhealthy.
    #[arg(long, value_name = "N")]
    unhealthy: Option<usize>,
    /// Exactly these devices listed, in any order (comma-separated; "" for none).
    #[arg(long, value_name = "IDS")]
    ids: Option<IdList>,
    /// These devices listed and Healthy.
    #[arg(long, value_name = "IDS")]
    healthy_ids: Option<IdList>,
    /// These devices listed and Unhealthy.
    #[arg(long, value_name = "IDS")]
    unhealthy_ids: Option<IdList>,
    /// These devices not listed.
    #[arg(long, value_name = "IDS")]
    absent: Option<IdList>,
}

/// A comma-separated list of device IDs (empty items dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct IdList(Vec<String>);

impl std::str::FromStr for IdList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ids: Vec<String> =
            s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect();
        let mut seen = BTreeSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(format!("device ID {dup:?} given twice"));
        }
        Ok(Self(ids))
    }
}

impl fmt::Display for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

const HEALTHY: &str = "Healthy";
const UNHEALTHY: &str = "Unhealthy";

impl Condition {
    fn holds(&self, devices: &[Device]) -> bool {
        let health: BTreeMap<&str, &str> =
            devices.iter().map(|d| (d.id.as_str(), d.health.as_str())).collect();
        let count = |h: &str| devices.iter().filter(|d| d.health == h).count();
        self.count.is_none_or(|n| devices.len() == n)
            && self.healthy.is_none_or(|n| count(HEALTHY) == n)
            && self.unhealthy.is_none_or(|n| count(UNHEALTHY) == n)
            && self.ids.as_ref().is_none_or(|ids| {
                let want: BTreeSet<&str> = ids.0.iter().map(String::as_str).collect();
                devices.len() == want.len() && want.iter().all(|id| health.contains_key(id))
            })
            && self
                .healthy_ids
                .as_ref()
                .is_none_or(|ids| ids.0.iter().all(|id| health.get(id.as_str()) == Some(&HEALTHY)))
            && self.unhealthy_ids.as_ref().is_none_or(|ids| {
                ids.0.iter().all(|id| health.get(id.as_str()) == Some(&UNHEALTHY))
            })
            && self
                .absent
                .as_ref()
                .is_none_or(|ids| ids.0.iter().all(|id| !health.contains_key(id.as_str())))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.count {
            parts.push(format!("count={n}"));
        }
        if let Some(n) = self.healthy {
            parts.push(format!("healthy={n}"));
        }
        if let Some(n) = self.unhealthy {
            parts.push(format!("unhealthy={n}"));
        }
        for (name, ids) in [
            ("ids", &self.ids),
            ("healthy-ids", &self.healthy_ids),
            ("unhealthy-ids", &self.unhealthy_ids),
            ("absent", &self.absent),
        ] {
            if let Some(ids) = ids {
                parts.push(format!("{name}=[{ids}]"));
            }
        }
        f.write_str(&parts.join(" "))
    }
}

/// What `serve` shares with the other commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    /// The `serve` process.
    pid: u32,
    /// The kubelet directory.
    dir: PathBuf,
    /// The current kubelet incarnation (0 at start, +1 per restart).
    epoch: u64,
    /// Every registration received, in order.
    registrations: Vec<RegistrationRecord>,
}

/// One registration, as printed and stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationRecord {
    /// Position in arrival order, from 0, over all epochs.
    seq: u64,
    /// The kubelet incarnation that received it.
    epoch: u64,
    /// Resource name.
    resource: String,
    /// Socket file name in the kubelet directory.
    endpoint: String,
    /// API version.
    version: String,
    /// Options sent (null when none).
    options: Option<OptionsJson>,
    /// Wall-clock arrival time, seconds since the Unix epoch.
    time: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptionsJson {
    pre_start_required: bool,
    get_preferred_allocation_available: bool,
}

impl From<&DevicePluginOptions> for OptionsJson {
    fn from(o: &DevicePluginOptions) -> Self {
        Self {
            pre_start_required: o.pre_start_required,
            get_preferred_allocation_available: o.get_preferred_allocation_available,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum EmuError {
    #[error(transparent)]
    Kubelet(#[from] KubeletError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse state file {path}")]
    StateParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("watch state file directory {path}")]
    Watch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signal kubelet-emu serve (pid {pid})")]
    Signal {
        pid: u32,
        #[source]
        source: nix::Error,
    },
    #[error("no `kubelet-emu serve` running for {dir} (no state file {path})")]
    NotServing { dir: PathBuf, path: PathBuf },
    #[error("{call} on {target}: {code:?}: {message}")]
    Rpc { call: &'static str, target: String, code: tonic::Code, message: String },
    #[error("timed out after {after:?} waiting for {what}{}", last_seen(.last))]
    Timeout { what: String, after: Duration, last: Option<String> },
    #[error("ListAndWatch stream of {target} ended while waiting for {what}{}", last_seen(.last))]
    StreamEnded { target: String, what: String, last: Option<String> },
    #[error("write to stdout")]
    Stdout(#[source] std::io::Error),
    #[error("start async runtime")]
    Runtime(#[source] std::io::Error),
}

fn last_seen(last: &Option<String>) -> String {
    last.as_ref().map(|l| format!("; last snapshot: {l}")).unwrap_or_default()
}

/// The error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Prints one JSON value as a line on stdout.
fn emit(v: &impl Serialize) -> Result<(), EmuError> {
    let line = serde_json::to_string(v).map_err(|e| EmuError::Stdout(e.into()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(EmuError::Stdout)
}

/// An overall deadline for one command.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    start: Instant,
    end: Instant,
    total: Duration,
}

impl Deadline {
    fn new(total: Duration) -> Self {
        let start = Instant::now();
        Self { start, end: start + total, total }
    }

    fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn timeout(&self, what: impl Into<String>, last: Option<String>) -> EmuError {
        EmuError::Timeout { what: what.into(), after: self.total, last }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// The state file

fn read_state(path: &Path) -> Result<Option<State>, EmuError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| EmuError::StateParse { path: path.to_owned(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EmuError::Io { op: "read", path: path.to_owned(), source }),
    }
}

/// Writes the state atomically (temp file in the same directory, then rename).
fn write_state(path: &Path, state: &State) -> Result<(), EmuError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let bytes = serde_json::to_vec(state).map_err(|e| EmuError::Io {
        op: "encode",
        path: path.to_owned(),
        source: e.into(),
    })?;
    std::fs::write(&tmp, bytes).map_err(|source| EmuError::Io {
        op: "write",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| EmuError::Io {
        op: "rename",
        path: path.to_owned(),
        source,
    })
}

/// Re-reads the state file each time it changes until `pred` yields a value.
struct StateWatch {
    path: PathBuf,
    dir: PathBuf,
    events: inotify::EventStream<[u8; 1024]>,
}

impl StateWatch {
    fn new(path: &Path, dir: &Path) -> Result<Self, EmuError> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let err = |source| EmuError::Watch { path: parent.clone(), source };
        if !parent.is_dir() {
            return Err(EmuError::NotServing { dir: dir.to_owned(), path: path.to_owned() });
        }
        let inotify = inotify::Inotify::init().map_err(err)?;
        inotify
            .watches()
            .add(
                &parent,
                inotify::WatchMask::MOVED_TO
                    | inotify::WatchMask::CLOSE_WRITE
                    | inotify::WatchMask::DELETE,
            )
            .map_err(err)?;
        let events = inotify.into_event_stream([0u8; 1024]).map_err(err)?;
        Ok(Self { path: path.to_owned(), dir: dir.to_owned(), events })
    }

    /// Waits until `pred` returns `Some` for the current state; `what` names the wait.
    async fn until<T>(
        &mut self,
        deadline: &Deadline,
        what: &str,
        mut pred: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, EmuError> {
        loop {
            let state = read_state(&self.path)?;
            if let Some(t) = state.as_ref().and_then(&mut pred) {
                return Ok(t);
            }
            let wait = async {
                loop {
                    match self.events.next().await {
                        Some(Ok(ev)) if ev.name.as_deref() == self.path.file_name() => {
                            return Ok(());
                        }
                        Some(Ok(_)) => {}
                        Some(Err(source)) => {
                            return Err(EmuError::Watch { path: self.path.clone(), source });
                        }
                        None => {
                            return Err(EmuError::Watch {
                                path: self.path.clone(),
                                source: std::io::ErrorKind::UnexpectedEof.into(),
                            });
                        }
                    }
                }
            };
            match tokio::time::timeout(deadline.left(), wait).await {
                Ok(r) => r?,
                Err(_) if state.is_none() => {
                    return Err(EmuError::NotServing {
                        dir: self.dir.clone(),
                        path: self.path.clone(),
                    });
                }
                Err(_) => return Err(deadline.timeout(what, None)),
            }
        }
    }
}

/// The latest registration per resource in `epoch` with a sequence number above `after`,
/// sorted by resource name.
fn latest_per_resource(state: &State, epoch: u64, after: Option<u64>) -> Vec<RegistrationRecord> {
    let mut by_name = BTreeMap::new();
    for r in
        state.registrations.iter().filter(|r| r.epoch == epoch && after.is_none_or(|a| r.seq > a))
    {
        by_name.insert(r.resource.clone(), r.clone());
    }
    by_name.into_values().collect()
}

// ---------------------------------------------------------------------------------------------
// Commands

struct Ctx {
    dir: PathBuf,
    state: PathBuf,
    deadline: Deadline,
    wait_resources: Option<usize>,
}

impl Ctx {
    fn watch(&self) -> Result<StateWatch, EmuError> {
        StateWatch::new(&self.state, &self.dir)
    }

    /// Waits for `n` distinct resources in the current epoch (above `after`); returns them.
    async fn wait_resources(
        &self,
        w: &mut StateWatch,
        n: usize,
        after: Option<u64>,
        epoch: Option<u64>,
    ) -> Result<Vec<RegistrationRecord>, EmuError> {
        let what = match after {
            Some(a) => format!("{n} resources to register after registration {a}"),
            None => format!("{n} resources to register"),
        };
        w.until(&self.deadline, &what, |s| {
            let epoch = epoch.unwrap_or(s.epoch);
            let regs = latest_per_resource(s, epoch, after);
            (s.epoch == epoch && regs.len() >= n).then_some(regs)
        })
        .await
    }

    /// The plugin socket of a target.
    async fn socket(&self, t: &Target) -> Result<(PathBuf, String), EmuError> {
        if let Some(s) = &t.socket {
            return Ok((s.clone(), s.display().to_string()));
        }
        let resource = t.resource.clone().unwrap_or_default();
        let mut w = self.watch()?;
        let what = format!("{resource} to register");
        let endpoint = w
            .until(&self.deadline, &what, |s| {
                s.registrations
                    .iter()
                    .rev()
                    .find(|r| r.epoch == s.epoch && r.resource == resource)
                    .map(|r| r.endpoint.clone())
            })
            .await?;
        Ok((self.dir.join(endpoint), resource))
    }

    async fn client(&self, t: &Target) -> Result<(PluginClient, String), EmuError> {
        let (path, name) = self.socket(t).await?;
        let client = tokio::time::timeout(self.deadline.left(), PluginClient::connect(&path))
            .await
            .map_err(|_| self.deadline.timeout(format!("connect to {}", path.display()), None))??;
        Ok((client, name))
    }
}

fn rpc(call: &'static str, target: &str) -> impl FnOnce(KubeletError) -> EmuError {
    let target = target.to_owned();
    move |e| match e.status() {
        Some(s) => EmuError::Rpc { call, target, code: s.code(), message: s.message().to_owned() },
        None => EmuError::Kubelet(e),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceJson<'a> {
    id: &'a str,
    health: &'a str,
    numa_nodes: Option<Vec<i64>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotJson<'a> {
    resource: &'a str,
    seq: u64,
    time: f64,
    elapsed_ms: u64,
    total: usize,
    healthy: usize,
    unhealthy: usize,
    devices: Vec<DeviceJson<'a>>,
}

fn snapshot<'a>(resource: &'a str, seq: u64, ms: u64, devices: &'a [Device]) -> SnapshotJson<'a> {
    let count = |h: &str| devices.iter().filter(|d| d.health == h).count();
    SnapshotJson {
        resource,
        seq,
        time: unix_now(),
        elapsed_ms: ms,
        total: devices.len(),
        healthy: count(HEALTHY),
        unhealthy: count(UNHEALTHY),
        devices: devices
            .iter()
            .map(|d| DeviceJson {
                id: &d.id,
                health: &d.health,
                numa_nodes: d.topology.as_ref().map(|t| t.nodes.iter().map(|n| n.id).collect()),
            })
            .collect(),
    }
}

fn snapshot_line(resource: &str, seq: u64, ms: u64, devices: &[Device]) -> String {
    serde_json::to_string(&snapshot(resource, seq, ms, devices)).unwrap_or_default()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MountJson {
    container_path: String,
    host_path: String,
    read_only: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceSpecJson {
    container_path: String,
    host_path: String,
    permissions: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerJson {
    envs: BTreeMap<String, String>,
    mounts: Vec<MountJson>,
    devices: Vec<DeviceSpecJson>,
    annotations: BTreeMap<String, String>,
    cdi_devices: Vec<String>,
}

impl From<ContainerAllocateResponse> for ContainerJson {
    fn from(c: ContainerAllocateResponse) -> Self {
        Self {
            envs: c.envs.into_iter().collect(),
            mounts: c
                .mounts
                .into_iter()
                .map(|m| MountJson {
                    container_path: m.container_path,
                    host_path: m.host_path,
                    read_only: m.read_only,
                })
                .collect(),
            devices: c
                .devices
                .into_iter()
                .map(|d| DeviceSpecJson {
                    container_path: d.container_path,
                    host_path: d.host_path,
                    permissions: d.permissions,
                })
                .collect(),
            annotations: c.annotations.into_iter().collect(),
            cdi_devices: c.cdi_devices.into_iter().map(|d| d.name).collect(),
        }
    }
}

async fn serve(ctx: &Ctx) -> Result<(), EmuError> {
    use tokio::signal::unix::{SignalKind, signal};
    let sig = |k| {
        signal(k).map_err(|source| EmuError::Io {
            op: "install signal handler for",
            path: PathBuf::from("kubelet-emu"),
            source,
        })
    };
    let (mut hup, mut term, mut int) =
        (sig(SignalKind::hangup())?, sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
    std::fs::create_dir_all(&ctx.dir).map_err(|source| EmuError::Io {
        op: "create",
        path: ctx.dir.clone(),
        source,
    })?;
    let sock = ctx.dir.join(KUBELET_SOCKET);
    if std::fs::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(&sock).map_err(|source| EmuError::Io {
            op: "remove stale",
            path: sock.clone(),
            source,
        })?;
    }
    let mut kubelet = Kubelet::start(&ctx.dir).await?;
    if ctx.state.parent() == Some(ctx.dir.as_path())
        && let Some(name) = ctx.state.file_name()
    {
        kubelet.keep_on_restart(OsString::from(name));
        let mut tmp = OsString::from(name);
        tmp.push(".tmp");
        kubelet.keep_on_restart(tmp);
    }
    let mut rx = kubelet.subscribe();
    let mut state = State {
        pid: std::process::id(),
        dir: ctx.dir.clone(),
        epoch: kubelet.epoch(),
        registrations: Vec::new(),
    };
    write_state(&ctx.state, &state)?;
    eprintln!("kubelet-emu: serving {} (state {})", sock.display(), ctx.state.display());
    let result = loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    break Ok(());
                }
                let all: Vec<Registration> = kubelet.registrations();
                let mut err = None;
                for r in all.iter().skip(state.registrations.len()) {
                    let rec = RegistrationRecord {
                        seq: state.registrations.len() as u64,
                        epoch: r.epoch,
                        resource: r.resource_name.clone(),
                        endpoint: r.endpoint.clone(),
                        version: r.version.clone(),
                        options: r.options.as_ref().map(OptionsJson::from),
                        time: unix_now(),
                    };
                    if let Err(e) = emit(&rec) {
                        err = Some(e);
                    }
                    state.registrations.push(rec);
                }
                if let Err(e) = write_state(&ctx.state, &state) {
                    break Err(e);
                }
                if let Some(e) = err {
                    eprintln!("kubelet-emu: cannot print registration: {}", chain(&e));
                }
            }
            _ = hup.recv() => {
                eprintln!("kubelet-emu: SIGHUP: restarting like a kubelet");
                if let Err(e) = kubelet.restart().await {
                    break Err(e.into());
                }
                state.epoch = kubelet.epoch();
                eprintln!("kubelet-emu: serving again, epoch {}", state.epoch);
                if let Err(e) = write_state(&ctx.state, &state) {
                    break Err(e);
                }
            }
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
        }
    };
    kubelet.stop().await;
    let _ = std::fs::remove_file(&ctx.state);
    result
}

async fn restart(ctx: &Ctx) -> Result<(), EmuError> {
    let mut w = ctx.watch()?;
    let state = read_state(&ctx.state)?
        .ok_or_else(|| EmuError::NotServing { dir: ctx.dir.clone(), path: ctx.state.clone() })?;
    let pid = i32::try_from(state.pid)
        .map_err(|_| EmuError::Signal { pid: state.pid, source: nix::Error::ESRCH })?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP)
        .map_err(|source| EmuError::Signal { pid: state.pid, source })?;
    let old = state.epoch;
    let epoch = w
        .until(&ctx.deadline, &format!("the kubelet restart (epoch {old} -> {})", old + 1), |s| {
            (s.epoch > old).then_some(s.epoch)
        })
        .await?;
    let regs = match ctx.wait_resources {
        Some(n) => ctx.wait_resources(&mut w, n, None, Some(epoch)).await?,
        None => read_state(&ctx.state)?
            .map(|s| latest_per_resource(&s, epoch, None))
            .unwrap_or_default(),
    };
    regs.iter().try_for_each(emit)
}

async fn run(cli: Cli) -> Result<(), EmuError> {
    let state = cli.state.clone().unwrap_or_else(|| cli.dir.join(STATE_FILE));
    let ctx = Ctx {
        dir: cli.dir.clone(),
        state,
        deadline: Deadline::new(cli.timeout),
        wait_resources: cli.wait_resources,
    };
    match &cli.command {
        Command::Serve => return serve(&ctx).await,
        Command::Restart => return restart(&ctx).await,
        Command::Registrations { all, after } => {
            let mut w = ctx.watch()?;
            if let Some(n) = ctx.wait_resources {
                ctx.wait_resources(&mut w, n, *after, None).await?;
            }
            let state = read_state(&ctx.state)?.ok_or_else(|| EmuError::NotServing {
                dir: ctx.dir.clone(),
                path: ctx.state.clone(),
            })?;
            let regs = if *all {
                state
                    .registrations
                    .iter()
                    .filter(|r| after.is_none_or(|a| r.seq > a))
                    .cloned()
                    .collect()
            } else {
                latest_per_resource(&state, state.epoch, *after)
            };
            return regs.iter().try_for_each(emit);
        }
        _ => {}
    }
    if let Some(n) = ctx.wait_resources {
        let mut w = ctx.watch()?;
        ctx.wait_resources(&mut w, n, None, None).await?;
    }
    match cli.command {
        Command::Serve | Command::Restart | Command::Registrations { .. } => Ok(()),
        Command::Options(target) => {
            let (mut c, name) = ctx.client(&target).await?;
            let o = with_deadline(&ctx.deadline, "GetDevicePluginOptions", c.options())
                .await?
                .map_err(rpc("GetDevicePluginOptions", &name))?;
            emit(&serde_json::json!({
                "resource": name,
                "preStartRequired": o.pre_start_required,
                "getPreferredAllocationAvailable": o.get_preferred_allocation_available,
            }))
        }
        Command::List { target, count, follow } => {
            let (mut c, name) = ctx.client(&target).await?;
            let mut stream = with_deadline(&ctx.deadline, "ListAndWatch", c.list_and_watch())
                .await?
                .map_err(rpc("ListAndWatch", &name))?;
            let mut seq = 0u64;
            while follow || seq < count as u64 {
                match stream.next(ctx.deadline.left()).await {
                    Ok(devices) => {
                        emit(&snapshot(&name, seq, ctx.deadline.elapsed_ms(), &devices))?;
                        seq += 1;
                    }
                    Err(KubeletError::Timeout { .. } | KubeletError::StreamEnded) if follow => {
                        break;
                    }
                    Err(KubeletError::Timeout { .. }) => {
                        return Err(ctx.deadline.timeout(
                            format!("ListAndWatch snapshot {} of {count} from {name}", seq + 1),
                            None,
                        ));
                    }
                    Err(e) => return Err(rpc("ListAndWatch", &name)(e)),
                }
            }
            Ok(())
        }
        Command::Wait { target, cond } => {
            let (mut c, name) = ctx.client(&target).await?;
            let mut stream = with_deadline(&ctx.deadline, "ListAndWatch", c.list_and_watch())
                .await?
                .map_err(rpc("ListAndWatch", &name))?;
            let what = format!("{cond} on {name}");
            let mut last = None;
            let mut seq = 0u64;
            loop {
                match stream.next(ctx.deadline.left()).await {
                    Ok(devices) => {
                        let ms = ctx.deadline.elapsed_ms();
                        if cond.holds(&devices) {
                            return emit(&snapshot(&name, seq, ms, &devices));
                        }
                        last = Some(snapshot_line(&name, seq, ms, &devices));
                        seq += 1;
                    }
                    Err(KubeletError::Timeout { .. }) => {
                        return Err(ctx.deadline.timeout(what, last));
                    }
                    Err(KubeletError::StreamEnded) => {
                        return Err(EmuError::StreamEnded { target: name, what, last });
                    }
                    Err(e) => return Err(rpc("ListAndWatch", &name)(e)),
                }
            }
        }
        Command::Allocate { target, containers } => {
            let (mut c, name) = ctx.client(&target).await?;
            let ids: Vec<Vec<&str>> =
                containers.iter().map(|l| l.0.iter().map(String::as_str).collect()).collect();
            let refs: Vec<&[&str]> = ids.iter().map(Vec::as_slice).collect();
            let r = with_deadline(&ctx.deadline, "Allocate", c.allocate_containers(&refs))
                .await?
                .map_err(rpc("Allocate", &name))?;
            let out: Vec<ContainerJson> =
                r.container_responses.into_iter().map(ContainerJson::from).collect();
            emit(&serde_json::json!({ "resource": name, "containerResponses": out }))
        }
        Command::Preferred { target, available, must_include, size } => {
            let (mut c, name) = ctx.client(&target).await?;
            let available = match available {
                Some(a) => a.0,
                None => {
                    let mut s = with_deadline(&ctx.deadline, "ListAndWatch", c.list_and_watch())
                        .await?
                        .map_err(rpc("ListAndWatch", &name))?;
                    let devices = s.next(ctx.deadline.left()).await.map_err(|e| match e {
                        KubeletError::Timeout { .. } => ctx
                            .deadline
                            .timeout(format!("a ListAndWatch snapshot from {name}"), None),
                        e => rpc("ListAndWatch", &name)(e),
                    })?;
                    devices.into_iter().filter(|d| d.health == HEALTHY).map(|d| d.id).collect()
                }
            };
            let ids = with_deadline(
                &ctx.deadline,
                "GetPreferredAllocation",
                c.preferred(&available, &must_include.0, size),
            )
            .await?
            .map_err(rpc("GetPreferredAllocation", &name))?;
            emit(&serde_json::json!({ "resource": name, "deviceIds": ids }))
        }
    }
}

/// Runs one call within the command's deadline.
async fn with_deadline<T>(
    deadline: &Deadline,
    call: &str,
    f: impl std::future::Future<Output = T>,
) -> Result<T, EmuError> {
    tokio::time::timeout(deadline.left(), f)
        .await
        .map_err(|_| deadline.timeout(format!("{call} to answer"), None))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubelet-emu: {}", chain(&EmuError::Runtime(e)));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubelet-emu: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}
