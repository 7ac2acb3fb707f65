//! The thin layer that talks to the kernel: namespace snapshots, and applying, undoing and
//! checking record entries, over `sriov-netlink` (the suite's only netlink/netns code).
//!
//! The node side is the netns the plugin runs in; the pod side is a route socket opened in
//! `CNI_NETNS` on a scoped thread (`sriov_netlink::open_route_socket_in`), so this thread never
//! changes namespace. Sysctls go through [`Sysctls`]: the real one reads `/proc/sys` in the
//! node directly and in the pod on a scoped thread that entered it.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use sriov_netlink::raw::route::RouteNetlinkMessage;
use sriov_netlink::{
    IpFamily, Link, NeighbourKind, NeighbourSpec, Netlink, NetlinkSocket, Netns, RouteKind,
    RouteSpec, RuleAction, RuleSpec, Scope, Transport, VethSpec, neigh::nud, run_in_netns,
};
use tracing::debug;

use crate::devconf::{
    Ipv4Knob, build_get_link, build_link_dump, build_set_inet_conf, knob_value, netlink_knob,
};

use crate::model::{
    Action, Entry, Family, NeighObj, Object, RouteObj, RuleObj, Side, SysctlObj, VethPair,
};
use crate::view::{AddrView, LinkView, RouteView, RuleView, Snapshot};

/// `RT_TABLE_LOCAL`: never snapshotted (addresses, not routing decisions).
const TABLE_LOCAL: u32 = 255;

/// A kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A netlink request failed.
    #[error("{side} netns: {what}")]
    Netlink {
        /// Where.
        side: Side,
        /// What was attempted.
        what: String,
        /// The netlink error (names the op and errno).
        #[source]
        source: sriov_netlink::Error,
    },
    /// A sysctl could not be read or written.
    #[error("{side} netns: {op} sysctl {key}")]
    Sysctl {
        /// Where.
        side: Side,
        /// `read` or `write`.
        op: &'static str,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The pod netns could not be opened or entered.
    #[error("pod netns {}", path.display())]
    PodNetns {
        /// `CNI_NETNS`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sriov_netlink::Error,
    },
    /// `CNI_NETNS` is the netns the plugin runs in.
    #[error("pod netns {} is the plugin's own (node) network namespace", path.display())]
    PodIsNode {
        /// `CNI_NETNS`.
        path: PathBuf,
    },
    /// An entry this executor cannot act on (a record written by a newer version).
    #[error("unsupported entry: {what}")]
    Unsupported {
        /// The entry.
        what: String,
    },
    /// A pod-side operation was requested without a pod netns.
    #[error("no pod netns to {what}")]
    NoPodNetns {
        /// What was attempted.
        what: String,
    },
}

impl KernelError {
    /// Whether the error means "the object (or its interface) is already gone".
    pub fn is_gone(&self) -> bool {
        match self {
            KernelError::Netlink { source, .. } => source.is_not_found(),
            KernelError::Sysctl { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    fn is_exists(&self) -> bool {
        matches!(self, KernelError::Netlink { source, .. } if source.is_exists())
    }
}

/// Sysctl access per side.
///
/// Entering the pod netns costs a thread hand-off, so pod sysctls are read and written in
/// batches: one hand-off per batch.
pub trait Sysctls {
    /// Reads keys (below `/proc/sys`, `/`-separated), in order.
    fn read_many(&mut self, side: Side, keys: &[String]) -> Result<Vec<String>, KernelError>;
    /// Writes keys in order; on failure, the index of the failing key (earlier ones were
    /// written).
    fn write_many(
        &mut self,
        side: Side,
        kv: &[(String, String)],
    ) -> Result<(), (usize, KernelError)>;
    /// For each `(key, ours, previous)`: if the key still holds `ours`, writes `previous`
    /// back (someone else may have changed it since). A key that no longer exists is fine.
    /// Returns the failures by index.
    fn restore_many(
        &mut self,
        side: Side,
        items: &[(String, String, String)],
    ) -> Vec<(usize, KernelError)>;
    /// Reads one key.
    fn read(&mut self, side: Side, key: &str) -> Result<String, KernelError> {
        let mut v = self.read_many(side, &[key.to_owned()])?;
        v.pop().ok_or_else(|| KernelError::Sysctl {
            side,
            op: "read",
            key: key.to_owned(),
            source: io::Error::other("no value"),
        })
    }
}

/// `/proc/sys` of the current (node) netns and of the pod netns.
#[derive(Debug)]
pub struct ProcSysctls {
    pod: Option<Netns>,
}

impl ProcSysctls {
    /// Sysctls for the node (the current netns) and, if given, the pod.
    pub fn new(pod: Option<Netns>) -> ProcSysctls {
        ProcSysctls { pod }
    }

    fn pod_ns(&self, what: &str) -> Result<&Netns, KernelError> {
        self.pod.as_ref().ok_or_else(|| KernelError::NoPodNetns { what: what.to_owned() })
    }

    /// Runs `f` where `side`'s `/proc/sys/net` is visible: here for the node, on a scoped
    /// thread inside the pod netns for the pod.
    fn in_side<R: Send>(
        &self,
        side: Side,
        what: &str,
        f: impl FnOnce() -> R + Send,
    ) -> Result<R, KernelError> {
        match side {
            Side::Node => Ok(f()),
            Side::Pod => {
                let ns = self.pod_ns(what)?;
                run_in_netns(ns, f)
                    .map_err(|source| KernelError::PodNetns { path: ns.path().to_owned(), source })
            }
        }
    }
}

fn sysctl_path(side: Side, op: &'static str, key: &str) -> Result<PathBuf, KernelError> {
    // Only per-netns keys, and no way out of /proc/sys/net.
    if !key.starts_with("net/") || key.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(KernelError::Sysctl {
            side,
            op,
            key: key.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a net/ sysctl key"),
        });
    }
    Ok(Path::new("/proc/sys").join(key))
}

fn read_path(p: &Path) -> io::Result<String> {
    fs::read_to_string(p).map(|s| s.trim_end().to_owned())
}

fn read_keys(keys: &[PathBuf]) -> Vec<io::Result<String>> {
    keys.iter().map(|p| read_path(p)).collect()
}

/// Writes in order, stopping at the first failure.
fn write_paths(items: &[(PathBuf, &str)]) -> Result<(), (usize, io::Error)> {
    for (i, (p, v)) in items.iter().enumerate() {
        fs::write(p, v).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Restores each path still holding `ours` to `previous`.
fn restore_paths(items: &[(PathBuf, &str, &str)]) -> Vec<(usize, io::Error)> {
    let mut failures = Vec::new();
    for (i, (p, ours, prev)) in items.iter().enumerate() {
        match read_path(p) {
            Ok(cur) if cur == *ours => {
                if let Err(e) = fs::write(p, prev) {
                    failures.push((i, e));
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => failures.push((i, e)),
        }
    }
    failures
}

impl Sysctls for ProcSysctls {
    fn read_many(&mut self, side: Side, keys: &[String]) -> Result<Vec<String>, KernelError> {
        let paths =
            keys.iter().map(|k| sysctl_path(side, "read", k)).collect::<Result<Vec<_>, _>>()?;
        let results = self.in_side(side, "read sysctls", || read_keys(&paths))?;
        results
            .into_iter()
            .zip(keys)
            .map(|(r, k)| {
                r.map_err(|source| KernelError::Sysctl { side, op: "read", key: k.clone(), source })
            })
            .collect()
    }

    fn write_many(
        &mut self,
        side: Side,
        kv: &[(String, String)],
    ) -> Result<(), (usize, KernelError)> {
        let mut items = Vec::with_capacity(kv.len());
        for (i, (k, v)) in kv.iter().enumerate() {
            debug!(%side, key = k, value = v, "write sysctl");
            items.push((sysctl_path(side, "write", k).map_err(|e| (i, e))?, v.as_str()));
        }
        self.in_side(side, "write sysctls", || write_paths(&items)).map_err(|e| (0, e))?.map_err(
            |(i, source)| {
                (i, KernelError::Sysctl { side, op: "write", key: kv[i].0.clone(), source })
            },
        )
    }

    fn restore_many(
        &mut self,
        side: Side,
        items: &[(String, String, String)],
    ) -> Vec<(usize, KernelError)> {
        let mut paths = Vec::with_capacity(items.len());
        for (i, (k, ours, prev)) in items.iter().enumerate() {
            match sysctl_path(side, "restore", k) {
                Ok(p) => paths.push((p, ours.as_str(), prev.as_str())),
                Err(e) => return vec![(i, e)],
            }
        }
        match self.in_side(side, "restore sysctls", || restore_paths(&paths)) {
            Ok(failures) => failures
                .into_iter()
                .map(|(i, source)| {
                    (
                        i,
                        KernelError::Sysctl {
                            side,
                            op: "restore",
                            key: items[i].0.clone(),
                            source,
                        },
                    )
                })
                .collect(),
            Err(e) => vec![(0, e)],
        }
    }
}

/// The end of the run of consecutive `Add` sysctl entries of one side starting at `start`
/// whose object satisfies `pred` (`start` itself if there is none).
fn sysctl_run(entries: &[&Entry], start: usize, pred: impl Fn(&SysctlObj) -> bool) -> usize {
    let Some(first) = entries.get(start) else { return start };
    let mut end = start;
    while let Some(e) = entries.get(end) {
        match (&e.action, &e.object) {
            (Action::Add, Object::Sysctl(s)) if e.side == first.side && pred(s) => end += 1,
            _ => break,
        }
    }
    end
}

/// Applies, undoes and checks entries; takes snapshots.
#[derive(Debug)]
pub struct Executor<T: Transport = NetlinkSocket, S: Sysctls = ProcSysctls> {
    node: Netlink<T>,
    pod: Option<Netlink<T>>,
    pod_ns: Option<Netns>,
    sysctls: S,
    index: HashMap<(Side, String), u32>,
    route_cache: HashMap<(Side, Family), Vec<sriov_netlink::RouteInfo>>,
    /// Sysctl values read during this operation (prefetch, link dumps, own writes).
    sysctl_cache: BTreeMap<(Side, String), String>,
}

/// Why [`Executor::apply_all`] stopped.
#[derive(Debug)]
pub struct ApplyFailure {
    /// Index of the entry that failed.
    pub failed: usize,
    /// Entries before this index may have been applied and must be undone (beyond `failed`
    /// when the failure hit a batch of sysctls: their undo compares before restoring, so an
    /// entry that was never written is left alone).
    pub undo_upto: usize,
    /// The error.
    pub error: KernelError,
}

/// One visit of the pod netns (on a fresh thread that then exits): a route socket that stays
/// bound to the pod, prefetched sysctls and, if asked, a snapshot. [`PodVisit::open`] blocks
/// only its caller, so the node side can be read meanwhile on another thread.
#[derive(Debug)]
pub struct PodVisit {
    ns: Netns,
    sock: Netlink<NetlinkSocket>,
    prefetched: Vec<(String, String)>,
    snapshot: Option<Result<SnapshotRead, KernelError>>,
}

impl PodVisit {
    /// Opens `pod_netns` (refusing the plugin's own netns) and, during one visit, opens a
    /// route socket there, reads `prefetch` (pod sysctl keys; missing ones are skipped) and,
    /// if `snapshot`, reads the pod netns like [`Executor::snapshot`] (with rules).
    pub fn open(
        pod_netns: &Path,
        prefetch: &[String],
        snapshot: bool,
    ) -> Result<Self, KernelError> {
        let err = |source| KernelError::PodNetns { path: pod_netns.to_owned(), source };
        let ns = Netns::open(pod_netns).map_err(err)?;
        if Netns::current().and_then(|own| own.same_as(&ns)).map_err(err)? {
            return Err(KernelError::PodIsNode { path: pod_netns.to_owned() });
        }
        let paths: Vec<PathBuf> =
            prefetch.iter().filter_map(|k| sysctl_path(Side::Pod, "read", k).ok()).collect();
        // One visit: the socket stays bound to the pod netns after the thread leaves.
        let (sock, values, snap) = run_in_netns(&ns, || {
            let values = read_keys(&paths);
            match Netlink::open() {
                Ok(mut sock) => {
                    let snap = snapshot.then(|| read_snapshot(&mut sock, Side::Pod, true));
                    (Ok(sock), values, snap)
                }
                Err(e) => (Err(e), values, None),
            }
        })
        .map_err(err)?;
        let sock = sock.map_err(err)?;
        let prefetched = prefetch
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.ok().map(|v| (k.clone(), v)))
            .collect();
        Ok(PodVisit { ns, sock, prefetched, snapshot: snap })
    }
}

impl Executor<NetlinkSocket, ProcSysctls> {
    /// Opens route sockets in the current (node) netns and, if given, the pod netns, where
    /// it also reads `prefetch` (pod sysctl keys; missing ones are skipped) during the same
    /// visit.
    pub fn open(pod_netns: Option<&Path>, prefetch: &[String]) -> Result<Self, KernelError> {
        let mut exec = Executor::open_node()?;
        if let Some(path) = pod_netns {
            exec.attach_pod(PodVisit::open(path, prefetch, false)?)?;
        }
        Ok(exec)
    }

    /// An executor for the node (the current netns) only; see [`Executor::attach_pod`].
    pub fn open_node() -> Result<Self, KernelError> {
        let node = Netlink::open().map_err(|source| KernelError::Netlink {
            side: Side::Node,
            what: "open route socket".into(),
            source,
        })?;
        Ok(Executor::new(node, None, None, ProcSysctls::new(None)))
    }

    /// Adds the pod side from a visit; returns the visit's pod snapshot if it took one.
    pub fn attach_pod(&mut self, visit: PodVisit) -> Result<Option<Snapshot>, KernelError> {
        let PodVisit { ns, sock, prefetched, snapshot } = visit;
        let sysctl_ns = ns
            .try_clone()
            .map_err(|source| KernelError::PodNetns { path: ns.path().to_owned(), source })?;
        self.sysctls = ProcSysctls::new(Some(sysctl_ns));
        self.pod = Some(sock);
        self.pod_ns = Some(ns);
        for (k, v) in prefetched {
            self.sysctl_cache.insert((Side::Pod, k), v);
        }
        match snapshot {
            Some(read) => Ok(Some(self.adopt(Side::Pod, read?))),
            None => Ok(None),
        }
    }
}

fn to_sn_prefix(p: cni_spec::IpPrefix) -> sriov_netlink::IpPrefix {
    // cni-spec prefixes are already length-checked for their family.
    sriov_netlink::IpPrefix::new(p.addr(), p.prefix_len())
        .unwrap_or_else(|_| sriov_netlink::IpPrefix::host(p.addr()))
}

fn from_sn_prefix(p: sriov_netlink::IpPrefix) -> Option<cni_spec::IpPrefix> {
    cni_spec::IpPrefix::new(p.addr(), p.len()).ok()
}

fn sn_family(f: Family) -> IpFamily {
    match f {
        Family::V4 => IpFamily::V4,
        Family::V6 => IpFamily::V6,
    }
}

fn scope_raw(s: Scope) -> u8 {
    match s {
        Scope::Universe => 0,
        Scope::Site => 200,
        Scope::Link => 253,
        Scope::Host => 254,
        Scope::Nowhere => 255,
        Scope::Other(v) => v,
    }
}

fn scope_of(v: u8) -> Scope {
    match v {
        0 => Scope::Universe,
        200 => Scope::Site,
        253 => Scope::Link,
        254 => Scope::Host,
        255 => Scope::Nowhere,
        v => Scope::Other(v),
    }
}

fn sn_mac(m: cni_spec::Mac) -> sriov_netlink::Mac {
    sriov_netlink::Mac(m.octets())
}

fn link_view(l: &Link) -> LinkView {
    LinkView {
        index: l.index,
        name: l.name.clone(),
        mac: l.mac.map(|m| cni_spec::Mac::new(m.octets())),
        mtu: l.mtu.unwrap_or(0),
        kind: l.kind.clone(),
        peer_index: l.link,
        peer_netnsid: l.link_netnsid,
    }
}

fn rule_spec(r: &RuleObj) -> RuleSpec {
    RuleSpec {
        priority: Some(r.priority),
        from: r.from.map(to_sn_prefix),
        to: r.to.map(to_sn_prefix),
        ..RuleSpec::lookup(sn_family(r.family), r.table)
    }
}

/// A snapshot and the per-interface `rp_filter` values its link dump carried.
#[derive(Debug)]
struct SnapshotRead {
    snapshot: Snapshot,
    rp_filter: Vec<(String, String)>,
}

/// Reads a netns over `sock` (see [`Executor::snapshot`]).
fn read_snapshot<T: Transport>(
    sock: &mut Netlink<T>,
    side: Side,
    with_rules: bool,
) -> Result<SnapshotRead, KernelError> {
    let nl_err = |what: String| move |source| KernelError::Netlink { side, what, source };
    let replies =
        sock.send_request("dump links", build_link_dump()).map_err(nl_err("list links".into()))?;
    let mut rp_filter = Vec::new();
    let mut links = Vec::with_capacity(replies.len());
    for r in &replies {
        if let RouteNetlinkMessage::NewLink(m) = r {
            let link = Link::from_message(m, None).map_err(nl_err("parse link".into()))?;
            // The dump carries each interface's IPv4 knobs: no /proc visit needed.
            if let Some(v) = knob_value(m, Ipv4Knob::RpFilter) {
                rp_filter.push((format!("net/ipv4/conf/{}/rp_filter", link.name), v.to_string()));
            }
            links.push(link);
        }
    }
    let addrs = sock.list_addresses(None, None).map_err(nl_err("list addresses".into()))?;
    let mut snap = Snapshot {
        links: links.iter().map(link_view).collect(),
        addrs: addrs
            .iter()
            .filter_map(|a| {
                Some(AddrView {
                    index: a.index,
                    addr: from_sn_prefix(a.prefix)?,
                    scope: a.scope,
                    dad_failed: a.is_dad_failed(),
                })
            })
            .collect(),
        routes: Vec::new(),
        rules: Vec::new(),
    };
    for fam in [IpFamily::V4, IpFamily::V6] {
        let routes = sock.list_routes(fam, None).map_err(nl_err(format!("list {fam} routes")))?;
        snap.routes.extend(
            routes
                .iter()
                .filter(|r| r.kind == RouteKind::Unicast && r.table != TABLE_LOCAL)
                .filter_map(|r| {
                    Some(RouteView {
                        table: r.table,
                        dst: from_sn_prefix(r.dst.network())?,
                        gw: r.gateway,
                        oif: r.oif,
                        src: r.src,
                        scope: scope_raw(r.scope),
                        metric: r.metric.unwrap_or(0),
                        protocol: r.protocol,
                    })
                }),
        );
        if !with_rules {
            continue;
        }
        let rules = sock.list_rules(fam).map_err(nl_err(format!("list {fam} rules")))?;
        snap.rules.extend(rules.iter().map(|r| RuleView {
            family: if fam == IpFamily::V4 { Family::V4 } else { Family::V6 },
            priority: r.priority,
            table: match r.action {
                Some(RuleAction::Table(t)) => Some(t),
                _ => None,
            },
            from: r.from.and_then(|p| from_sn_prefix(p.network())),
            to: r.to.and_then(|p| from_sn_prefix(p.network())),
            has_other_selectors: r.iif.is_some() || r.oif.is_some(),
        }));
    }
    Ok(SnapshotRead { snapshot: snap, rp_filter })
}

impl<T: Transport, S: Sysctls> Executor<T, S> {
    /// An executor over given sockets (tests use fake transports).
    pub fn new(
        node: Netlink<T>,
        pod: Option<Netlink<T>>,
        pod_ns: Option<Netns>,
        sysctls: S,
    ) -> Self {
        Executor {
            node,
            pod,
            pod_ns,
            sysctls,
            index: HashMap::new(),
            route_cache: HashMap::new(),
            sysctl_cache: BTreeMap::new(),
        }
    }

    /// Whether a pod netns is open.
    pub fn has_pod(&self) -> bool {
        self.pod.is_some()
    }

    /// The sysctl access.
    pub fn sysctls(&mut self) -> &mut S {
        &mut self.sysctls
    }

    fn sock(&mut self, side: Side) -> Result<&mut Netlink<T>, KernelError> {
        match side {
            Side::Node => Ok(&mut self.node),
            Side::Pod => self
                .pod
                .as_mut()
                .ok_or_else(|| KernelError::NoPodNetns { what: "use the pod route socket".into() }),
        }
    }

    fn nl<R>(
        &mut self,
        side: Side,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&mut Netlink<T>) -> sriov_netlink::Result<R>,
    ) -> Result<R, KernelError> {
        let sock = self.sock(side)?;
        f(sock).map_err(|source| KernelError::Netlink { side, what: what(), source })
    }

    fn ifindex(&mut self, side: Side, name: &str) -> Result<u32, KernelError> {
        if let Some(i) = self.index.get(&(side, name.to_owned())) {
            return Ok(*i);
        }
        let i = self.nl(side, || format!("find interface {name}"), |s| s.link_index(name))?;
        self.index.insert((side, name.to_owned()), i);
        Ok(i)
    }

    /// Reads a netns: links, addresses, unicast routes of every table but `local`, and (if
    /// `rules`) policy rules. The interface indexes and the `rp_filter` values the link dump
    /// carries are kept for the rest of the operation.
    pub fn snapshot(&mut self, side: Side, rules: bool) -> Result<Snapshot, KernelError> {
        let read = read_snapshot(self.sock(side)?, side, rules)?;
        Ok(self.adopt(side, read))
    }

    /// Keeps what a snapshot taught (indexes, `rp_filter` values) and returns the snapshot.
    fn adopt(&mut self, side: Side, read: SnapshotRead) -> Snapshot {
        for l in &read.snapshot.links {
            self.index.insert((side, l.name.clone()), l.index);
        }
        for (k, v) in read.rp_filter {
            self.sysctl_cache.insert((side, k), v);
        }
        read.snapshot
    }

    /// Forgets everything learned during this operation (interface indexes, routes,
    /// sysctl values): after a teardown, before reading the namespaces again.
    pub fn forget(&mut self) {
        self.index.clear();
        self.route_cache.clear();
        self.sysctl_cache.clear();
    }

    /// Reads sysctls of both sides (from what this operation already knows when it can).
    pub fn read_sysctls(
        &mut self,
        keys: &[(Side, String)],
    ) -> Result<BTreeMap<(Side, String), String>, KernelError> {
        let mut out = BTreeMap::new();
        for side in [Side::Node, Side::Pod] {
            let mut missing = Vec::new();
            for (_, k) in keys.iter().filter(|(s, _)| *s == side) {
                match self.sysctl_cache.get(&(side, k.clone())) {
                    Some(v) => {
                        out.insert((side, k.clone()), v.clone());
                    }
                    None => missing.push(k.clone()),
                }
            }
            if missing.is_empty() {
                continue;
            }
            let vals = self.sysctls.read_many(side, &missing)?;
            for (k, v) in missing.into_iter().zip(vals) {
                self.sysctl_cache.insert((side, k.clone()), v.clone());
                out.insert((side, k), v);
            }
        }
        Ok(out)
    }

    fn knob_read(
        &mut self,
        side: Side,
        dev: &str,
        knob: Ipv4Knob,
    ) -> Result<Option<i32>, KernelError> {
        let i = self.ifindex(side, dev)?;
        let replies = self.nl(
            side,
            || format!("look up {dev}"),
            |s| s.send_request("getlink", build_get_link(i)),
        )?;
        Ok(replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(m) => knob_value(m, knob),
            _ => None,
        }))
    }

    fn knob_write(
        &mut self,
        side: Side,
        key: &str,
        dev: &str,
        knob: Ipv4Knob,
        value: &str,
    ) -> Result<(), KernelError> {
        let v: u32 = value.trim().parse().map_err(|_| KernelError::Sysctl {
            side,
            op: "write",
            key: key.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{value:?} is not a number"),
            ),
        })?;
        let i = self.ifindex(side, dev)?;
        debug!(%side, key, value, "set over netlink");
        self.nl(
            side,
            || format!("set {key} to {value}"),
            |s| s.send_request("setlink inet conf", build_set_inet_conf(i, knob, v)),
        )
        .map(drop)
    }

    /// Reads one sysctl now (per-interface IPv4 knobs over netlink).
    fn read_sysctl_now(&mut self, side: Side, key: &str) -> Result<String, KernelError> {
        match netlink_knob(key) {
            Some((dev, knob)) => self
                .knob_read(side, dev, knob)?
                .map(|v| v.to_string())
                .ok_or_else(|| KernelError::Sysctl {
                    side,
                    op: "read",
                    key: key.to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        "no IPv4 settings on the interface",
                    ),
                }),
            None => self.sysctls.read(side, key),
        }
    }

    /// Writes sysctls of one side: per-interface IPv4 knobs over netlink, the rest in one
    /// `/proc/sys` batch. On failure, the index of the failing item.
    fn write_sysctls(
        &mut self,
        side: Side,
        kv: &[(String, String)],
    ) -> Result<(), (usize, KernelError)> {
        let (proc_idx, nl_idx): (Vec<usize>, Vec<usize>) =
            (0..kv.len()).partition(|i| netlink_knob(&kv[*i].0).is_none());
        if !proc_idx.is_empty() {
            let batch: Vec<(String, String)> = proc_idx.iter().map(|i| kv[*i].clone()).collect();
            self.sysctls.write_many(side, &batch).map_err(|(k, e)| (proc_idx[k], e))?;
        }
        for i in nl_idx {
            let (k, v) = &kv[i];
            if let Some((dev, knob)) = netlink_knob(k) {
                self.knob_write(side, k, dev, knob, v).map_err(|e| (i, e))?;
            }
        }
        for (k, v) in kv {
            self.sysctl_cache.insert((side, k.clone()), v.clone());
        }
        Ok(())
    }

    /// Compare-and-restore of sysctls of one side; failures by index ("gone" is fine).
    fn restore_sysctls(
        &mut self,
        side: Side,
        items: &[(String, String, String)],
    ) -> Vec<(usize, KernelError)> {
        let mut failures = Vec::new();
        let mut batch = Vec::new();
        let mut batch_idx = Vec::new();
        for (i, (k, ours, prev)) in items.iter().enumerate() {
            self.sysctl_cache.remove(&(side, k.clone()));
            let Some((dev, knob)) = netlink_knob(k) else {
                batch.push((k.clone(), ours.clone(), prev.clone()));
                batch_idx.push(i);
                continue;
            };
            let r = match self.knob_read(side, dev, knob) {
                Ok(Some(cur)) if cur.to_string() == *ours => {
                    self.knob_write(side, k, dev, knob, prev)
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            match r {
                Err(e) if !e.is_gone() => failures.push((i, e)),
                _ => {}
            }
        }
        if !batch.is_empty() {
            for (k, e) in self.sysctls.restore_many(side, &batch) {
                if !e.is_gone() {
                    failures.push((batch_idx[k], e));
                }
            }
        }
        failures
    }

    fn route_spec(&mut self, side: Side, r: &RouteObj) -> Result<RouteSpec, KernelError> {
        let oif = match &r.dev {
            Some(d) => Some(self.ifindex(side, d)?),
            None => None,
        };
        Ok(RouteSpec {
            dst: to_sn_prefix(r.dst),
            gateway: r.gw,
            oif,
            src: r.src,
            table: r.table,
            scope: r.scope.map(scope_of),
            metric: Some(r.metric),
            kind: RouteKind::Unicast,
            onlink: false,
            protocol: r.protocol,
        })
    }

    fn neigh_spec(&mut self, side: Side, n: &NeighObj) -> Result<NeighbourSpec, KernelError> {
        Ok(NeighbourSpec {
            ifindex: self.ifindex(side, &n.dev)?,
            ip: n.ip,
            mac: Some(sn_mac(n.mac)),
            kind: NeighbourKind::Permanent,
        })
    }

    fn create_veth(&mut self, v: &VethPair) -> Result<(), KernelError> {
        let Some(pod_ns) = self.pod_ns.as_ref() else {
            return Err(KernelError::NoPodNetns { what: format!("create the peer of {}", v.host) });
        };
        let spec = VethSpec {
            name: v.host.clone(),
            mac: Some(sn_mac(v.host_mac)),
            mtu: Some(v.mtu),
            peer_name: v.pod.clone(),
            peer_mac: Some(sn_mac(v.pod_mac)),
            peer_netns: Some(pod_ns.as_fd()),
        };
        self.node.create_veth(&spec).map_err(|source| KernelError::Netlink {
            side: Side::Node,
            what: format!("create veth {} <-> {}", v.host, v.pod),
            source,
        })?;
        let h = self.ifindex(Side::Node, &v.host)?;
        self.nl(Side::Node, || format!("set {} up", v.host), |s| s.set_up(h))?;
        let p = self.ifindex(Side::Pod, &v.pod)?;
        self.nl(Side::Pod, || format!("set {} up", v.pod), |s| s.set_up(p))
    }

    /// Applies one entry (only entries this attachment created are applied).
    pub fn apply(&mut self, e: &Entry) -> Result<(), KernelError> {
        debug!(entry = %e, "apply");
        let side = e.side;
        match (e.action, &e.object) {
            (Action::Add, Object::Veth(v)) => self.create_veth(v),
            (Action::Add, Object::Route(r)) => {
                let spec = self.route_spec(side, r)?;
                self.nl(side, || format!("add {}", e.object), |s| s.add_route(&spec))
            }
            (Action::Remove, Object::Route(r)) => {
                let spec = self.route_spec(side, r)?;
                self.nl(side, || format!("remove {}", e.object), |s| s.del_route(&spec))
            }
            (Action::Add, Object::Rule(r)) => {
                let spec = rule_spec(r);
                self.nl(side, || format!("add {}", e.object), |s| s.add_rule(&spec))
            }
            (Action::Add, Object::Neigh(n)) => {
                let spec = self.neigh_spec(side, n)?;
                self.nl(side, || format!("add {}", e.object), |s| s.add_neighbour(&spec))
            }
            (Action::Add, Object::Sysctl(s)) => {
                self.write_sysctls(side, &[(s.key.clone(), s.value.clone())]).map_err(|(_, e)| e)
            }
            (Action::Add, Object::LinkMac(m)) => {
                let i = self.ifindex(side, &m.dev)?;
                self.nl(
                    side,
                    || format!("set mac of {} to {}", m.dev, m.mac),
                    |s| s.set_mac(i, sn_mac(m.mac)),
                )
            }
            (Action::Remove, _) => Err(KernelError::Unsupported { what: e.to_string() }),
        }
    }

    /// Applies entries in order, writing runs of consecutive sysctls of one side together
    /// (one pod visit at most).
    pub fn apply_all(&mut self, entries: &[&Entry]) -> Result<(), ApplyFailure> {
        let mut i = 0;
        while i < entries.len() {
            let run = sysctl_run(entries, i, |_| true);
            if run > i {
                let kv: Vec<(String, String)> = entries[i..run]
                    .iter()
                    .filter_map(|e| match &e.object {
                        Object::Sysctl(s) => Some((s.key.clone(), s.value.clone())),
                        _ => None,
                    })
                    .collect();
                for e in &entries[i..run] {
                    debug!(entry = %e, "apply");
                }
                self.write_sysctls(entries[i].side, &kv).map_err(|(k, error)| ApplyFailure {
                    failed: i + k,
                    undo_upto: run,
                    error,
                })?;
                i = run;
            } else {
                self.apply(entries[i]).map_err(|error| ApplyFailure {
                    failed: i,
                    undo_upto: i,
                    error,
                })?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Undoes entries in the order given (callers pass them newest first), restoring runs of
    /// consecutive sysctls of one side in one batch. Returns the failures by index;
    /// "already gone" is success.
    pub fn undo_all(&mut self, entries: &[&Entry]) -> Vec<(usize, KernelError)> {
        let mut failures = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            let run = sysctl_run(entries, i, |s| s.previous.is_some());
            if run > i {
                let items: Vec<(String, String, String)> = entries[i..run]
                    .iter()
                    .filter_map(|e| match &e.object {
                        Object::Sysctl(SysctlObj { key, value, previous: Some(p) }) => {
                            Some((key.clone(), value.clone(), p.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                for e in &entries[i..run] {
                    debug!(entry = %e, "undo");
                }
                for (k, e) in self.restore_sysctls(entries[i].side, &items) {
                    failures.push((i + k, e));
                }
                i = run;
            } else {
                if let Err(e) = self.undo(entries[i]) {
                    failures.push((i, e));
                }
                i += 1;
            }
        }
        failures
    }

    /// Undoes one entry; "already gone" counts as done.
    pub fn undo(&mut self, e: &Entry) -> Result<(), KernelError> {
        debug!(entry = %e, "undo");
        let r = self.undo_inner(e);
        match r {
            Err(err) if err.is_gone() => {
                debug!(entry = %e, error = %err, "already gone");
                Ok(())
            }
            other => other,
        }
    }

    fn undo_inner(&mut self, e: &Entry) -> Result<(), KernelError> {
        let side = e.side;
        match (e.action, &e.object) {
            (Action::Add, Object::Veth(v)) => {
                let r = self.nl(
                    side,
                    || format!("delete {}", v.host),
                    |s| s.delete_link(v.host.as_str()),
                );
                self.index.remove(&(Side::Node, v.host.clone()));
                self.index.remove(&(Side::Pod, v.pod.clone()));
                r
            }
            (Action::Add, Object::Route(r)) => {
                let spec = self.route_spec(side, r)?;
                self.nl(side, || format!("delete {}", e.object), |s| s.del_route(&spec))
            }
            (Action::Remove, Object::Route(r)) => {
                let spec = self.route_spec(side, r)?;
                match self.nl(side, || format!("restore {}", e.object), |s| s.add_route(&spec)) {
                    Err(err) if err.is_exists() => Ok(()),
                    other => other,
                }
            }
            (Action::Add, Object::Rule(r)) => {
                let spec = rule_spec(r);
                self.nl(side, || format!("delete {}", e.object), |s| s.del_rule(&spec))
            }
            (Action::Add, Object::Neigh(n)) => {
                let spec = self.neigh_spec(side, n)?;
                self.nl(side, || format!("delete {}", e.object), |s| s.del_neighbour(&spec))
            }
            (Action::Add, Object::Sysctl(SysctlObj { key, value, previous: Some(prev) })) => {
                match self
                    .restore_sysctls(side, &[(key.clone(), value.clone(), prev.clone())])
                    .pop()
                {
                    Some((_, e)) => Err(e),
                    None => Ok(()),
                }
            }
            (Action::Add, Object::Sysctl(_)) => Ok(()),
            (Action::Add, Object::LinkMac(m)) => {
                let link =
                    self.nl(side, || format!("look up {}", m.dev), |s| s.get_link(m.dev.as_str()))?;
                if link.mac.map(|x| x.octets()) == Some(m.mac.octets()) {
                    let i = link.index;
                    self.nl(
                        side,
                        || format!("restore mac of {} to {}", m.dev, m.previous),
                        |s| s.set_mac(i, sn_mac(m.previous)),
                    )?;
                }
                Ok(())
            }
            (Action::Remove, _) => Ok(()),
        }
    }

    fn routes(
        &mut self,
        side: Side,
        fam: Family,
    ) -> Result<&Vec<sriov_netlink::RouteInfo>, KernelError> {
        if !self.route_cache.contains_key(&(side, fam)) {
            let v = self.nl(
                side,
                || format!("list {fam:?} routes"),
                |s| s.list_routes(sn_family(fam), None),
            )?;
            self.route_cache.insert((side, fam), v);
        }
        self.route_cache
            .get(&(side, fam))
            .ok_or_else(|| KernelError::Unsupported { what: "route cache".into() })
    }

    fn route_present(&mut self, side: Side, r: &RouteObj) -> Result<bool, KernelError> {
        let oif = match &r.dev {
            Some(d) => match self.ifindex(side, d) {
                Ok(i) => Some(i),
                Err(e) if e.is_gone() => return Ok(false),
                Err(e) => return Err(e),
            },
            None => None,
        };
        let dst = to_sn_prefix(r.dst);
        Ok(self.routes(side, r.family())?.iter().any(|l| {
            l.table == r.table
                && l.dst.network() == dst.network()
                && l.metric.unwrap_or(0) == r.metric
                && l.gateway == r.gw
                && (oif.is_none() || l.oif == oif)
                && (r.src.is_none() || l.src == r.src)
        }))
    }

    /// Verifies one entry; `Ok(None)` if it holds, `Ok(Some(problem))` if not.
    pub fn check(&mut self, e: &Entry) -> Result<Option<String>, KernelError> {
        let side = e.side;
        let missing = |what: &dyn std::fmt::Display| Some(format!("{side}: {what} is missing"));
        Ok(match (e.action, &e.object) {
            (Action::Add, Object::Veth(v)) => {
                let mut problem = None;
                for (s, name, mac) in
                    [(Side::Node, &v.host, v.host_mac), (Side::Pod, &v.pod, v.pod_mac)]
                {
                    match self.nl(s, || format!("look up {name}"), |x| x.get_link(name.as_str())) {
                        Ok(l) if l.kind.as_deref() != Some("veth") => {
                            problem = Some(format!("{s}: {name} is not a veth"))
                        }
                        Ok(l) if l.mac.map(|m| m.octets()) != Some(mac.octets()) => {
                            problem = Some(format!(
                                "{s}: {name} has mac {:?}, expected {mac}",
                                l.mac.map(|m| m.to_string())
                            ));
                        }
                        Ok(l) if !l.is_up() => problem = Some(format!("{s}: {name} is down")),
                        Ok(_) => {}
                        Err(err) if err.is_gone() => {
                            problem = Some(format!("{s}: interface {name} is missing"))
                        }
                        Err(err) => return Err(err),
                    }
                    if problem.is_some() {
                        break;
                    }
                }
                problem
            }
            (Action::Add, Object::Route(r)) => {
                (!self.route_present(side, r)?).then(|| format!("{side}: {} is missing", e.object))
            }
            (Action::Remove, Object::Route(r)) => self
                .route_present(side, r)?
                .then(|| format!("{side}: {} is back although it was moved", e.object)),
            (Action::Add, Object::Rule(r)) => {
                let want = rule_spec(r);
                let rules = self.nl(
                    side,
                    || format!("list {:?} rules", r.family),
                    |s| s.list_rules(want.family),
                )?;
                let found = rules.iter().any(|l| {
                    l.priority == r.priority
                        && l.action == Some(RuleAction::Table(r.table))
                        && l.from.map(|p| p.network()) == want.from.map(|p| p.network())
                        && l.to.map(|p| p.network()) == want.to.map(|p| p.network())
                });
                if found { None } else { missing(&e.object) }
            }
            (Action::Add, Object::Neigh(n)) => match self.ifindex(side, &n.dev) {
                Err(err) if err.is_gone() => missing(&e.object),
                Err(err) => return Err(err),
                Ok(i) => {
                    let fam = if n.ip.is_ipv4() { IpFamily::V4 } else { IpFamily::V6 };
                    let all = self.nl(
                        side,
                        || format!("list neighbours of {}", n.dev),
                        |s| s.list_neighbours(fam, Some(i), false),
                    )?;
                    let ok = all.iter().any(|x| {
                        x.ip == n.ip
                            && x.mac.map(|m| m.octets()) == Some(n.mac.octets())
                            && x.state & nud::PERMANENT != 0
                    });
                    if ok { None } else { missing(&e.object) }
                }
            },
            (Action::Add, Object::Sysctl(s)) => match self.read_sysctl_now(side, &s.key) {
                Ok(v) if v.trim() == s.value => None,
                Ok(v) => {
                    Some(format!("{side}: sysctl {} is {}, expected {}", s.key, v.trim(), s.value))
                }
                Err(err) if err.is_gone() => missing(&format_args!("sysctl {}", s.key)),
                Err(err) => return Err(err),
            },
            (Action::Add, Object::LinkMac(m)) => {
                match self.nl(side, || format!("look up {}", m.dev), |s| s.get_link(m.dev.as_str()))
                {
                    Ok(l) if l.mac.map(|x| x.octets()) == Some(m.mac.octets()) => None,
                    Ok(l) => Some(format!(
                        "{side}: {} has mac {:?}, expected {}",
                        m.dev,
                        l.mac.map(|x| x.to_string()),
                        m.mac
                    )),
                    Err(err) if err.is_gone() => missing(&format_args!("interface {}", m.dev)),
                    Err(err) => return Err(err),
                }
            }
            (Action::Remove, _) => None,
        })
    }

    /// Whether a link exists on a side (DEL's record-less fallback).
    pub fn link(&mut self, side: Side, name: &str) -> Result<Option<LinkView>, KernelError> {
        match self.nl(side, || format!("look up {name}"), |s| s.get_link(name)) {
            Ok(l) => Ok(Some(link_view(&l))),
            Err(e) if e.is_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a link by name ("already gone" counts as done).
    pub fn delete_link(&mut self, side: Side, name: &str) -> Result<(), KernelError> {
        match self.nl(side, || format!("delete {name}"), |s| s.delete_link(name)) {
            Err(e) if e.is_gone() => Ok(()),
            other => other,
        }
    }
}
