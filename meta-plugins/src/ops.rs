//! The CNI operations of `veth` and `router` as a [`cni_spec::Plugin`].
//!
//! - `ADD`: validate, snapshot both namespaces, plan, resolve, write the record (status
//!   `pending`: the undo log is on disk before the first mutation), apply, mark `committed`.
//!   Any failure replays the applied entries in reverse and removes the record.
//! - `DEL`: replay the record in reverse, skipping objects another record still uses and
//!   objects that existed before us; works without the netns and when repeated.
//! - `CHECK`: verify every recorded object (fails on tampering).
//! - `GC`: tear down records of this network whose attachment is not in
//!   `cni.dev/valid-attachments`.
//!
//! Every operation holds the node-wide state lock from its first read to its last write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cni_spec::{
    AddRequest, CheckRequest, CniError, CniResult, DelRequest, GcRequest, Interface, LogSettings,
    NetConf, Plugin, StatusRequest,
};
use serde_json::{Map, Value};
use sriov_netlink::Transport;
use tracing::{debug, info, warn};

use crate::config::{Config, DEFAULT_STATE_DIR, Flavor, RawKeys};
use crate::kernel::{Executor, KernelError, PodVisit, Sysctls};
use crate::model::{Action, Entry, Object, Origin, Side};
use crate::naming::host_veth_name;
use crate::plan::{
    Plan, PlanError, PlanInput, plan_add, pod_sysctl_prefetch, resolve, sysctls_to_read,
};
use crate::state::{AttachmentKey, RECORD_FORMAT, Record, StateError, Status, Store};

/// Plugin-specific CNI error codes (the spec reserves 0–99).
pub mod codes {
    use cni_spec::ErrorCode;

    /// A kernel (netlink or sysctl) operation failed; `ADD` was rolled back.
    pub const KERNEL: ErrorCode = ErrorCode::plugin_specific(100);
    /// `CHECK` found the attachment different from its record.
    pub const CHECK_FAILED: ErrorCode = ErrorCode::plugin_specific(101);
    /// The pod or node is not in a state the plugin can work with (interface or address
    /// missing, a conflicting object not made by this plugin, netns unusable).
    pub const UNEXPECTED_STATE: ErrorCode = ErrorCode::plugin_specific(102);
}

/// `veth` or `router`.
#[derive(Debug, Clone, Copy)]
pub struct MetaPlugin {
    flavor: Flavor,
}

impl MetaPlugin {
    /// The plugin of the given flavor.
    pub const fn new(flavor: Flavor) -> MetaPlugin {
        MetaPlugin { flavor }
    }
}

/// The error and its causes, `: `-separated.
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

fn kernel_err(flavor: Flavor, e: &KernelError) -> CniError {
    if let KernelError::PodIsNode { path } = e {
        return CniError::invalid_env(
            "CNI_NETNS",
            &path.display().to_string(),
            "is the plugin's own (node) network namespace",
        );
    }
    let code = match e {
        KernelError::PodNetns { .. } | KernelError::NoPodNetns { .. } => codes::UNEXPECTED_STATE,
        _ => codes::KERNEL,
    };
    CniError::new(code, format!("{}: kernel operation failed", flavor.as_str()), chain(e))
}

fn state_err(e: &StateError) -> CniError {
    let io = match e {
        StateError::Io { source, .. } => std::io::Error::new(source.kind(), chain(e)),
        StateError::Encode { .. } => std::io::Error::other(chain(e)),
    };
    CniError::io("attachment state", &io)
}

fn plan_err(flavor: Flavor, e: &PlanError) -> CniError {
    match e {
        PlanError::OverlayIsIfname { ifname } | PlanError::OverlayNotVeth { ifname } => {
            CniError::invalid_config("overlay_interface", format_args!("{ifname:?}"), e)
        }
        PlanError::SysctlNotRead { .. } => CniError::new(
            codes::KERNEL,
            format!("{}: internal error", flavor.as_str()),
            e.to_string(),
        ),
        _ => CniError::new(
            codes::UNEXPECTED_STATE,
            format!("{}: cannot set up the attachment", flavor.as_str()),
            e.to_string(),
        ),
    }
}

/// The state directory even when the rest of the configuration is invalid (DEL and GC
/// must still find their records).
fn lenient_state_dir(flavor: Flavor, keys: &Map<String, Value>) -> PathBuf {
    match Config::from_keys(flavor, keys) {
        Ok(c) => c.state_dir,
        Err(e) => {
            warn!(error = %e, "invalid configuration; cleaning up with the state_dir alone");
            keys.get("state_dir")
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
        }
    }
}

/// The interface an entry's object sits on, if any (`net/ipv4/conf/<dev>/…` for sysctls).
fn entry_dev(e: &Entry) -> Option<&str> {
    match &e.object {
        Object::Route(r) => r.dev.as_deref(),
        Object::Neigh(n) => Some(&n.dev),
        Object::LinkMac(m) => Some(&m.dev),
        Object::Sysctl(s) => {
            let mut parts = s.key.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("net"), Some(_), Some("conf"), Some(dev)) => Some(dev),
                _ => None,
            }
        }
        _ => None,
    }
}

/// What tearing a record down has to undo, newest first: not objects that existed before
/// us, not objects another record still uses, and not objects on a veth this teardown
/// deletes (they vanish with it).
pub fn undo_list<'a>(rec: &'a Record, others: &[Record]) -> Vec<&'a Entry> {
    let undoable =
        |e: &Entry| e.origin != Origin::Preexisting && !rec.referenced_elsewhere(e, others);
    let mut doomed: BTreeSet<(Side, String)> = BTreeSet::new();
    for e in rec.entries.iter().filter(|e| undoable(e)) {
        if let (Action::Add, Object::Veth(v)) = (e.action, &e.object) {
            doomed.insert((Side::Node, v.host.clone()));
            doomed.insert((Side::Pod, v.pod.clone()));
        }
    }
    rec.entries
        .iter()
        .rev()
        .filter(|e| undoable(e))
        .filter(|e| {
            matches!(e.object, Object::Veth(_))
                || !entry_dev(e).is_some_and(|d| doomed.contains(&(e.side, d.to_owned())))
        })
        .collect()
}

/// Undoes a record's entries in reverse (pod-side ones only if the executor has the pod).
/// Returns the failures (empty: fully torn down).
pub fn teardown<T: Transport, S: Sysctls>(
    exec: &mut Executor<T, S>,
    rec: &Record,
    others: &[Record],
) -> Vec<String> {
    let todo: Vec<&Entry> = undo_list(rec, others)
        .into_iter()
        .filter(|e| e.side == Side::Node || exec.has_pod())
        .collect();
    let mut failures = Vec::new();
    for (i, err) in exec.undo_all(&todo) {
        warn!(entry = %todo[i], error = %chain(&err), "undo failed");
        failures.push(chain(&err));
    }
    failures
}

/// An executor for tearing `rec` down: it enters the pod netns only when something there
/// needs undoing and `netns` is usable (otherwise the pod's objects died with it).
fn teardown_executor(
    f: Flavor,
    rec: &Record,
    others: &[Record],
    netns: Option<&Path>,
) -> Result<Executor, CniError> {
    let needs_pod = undo_list(rec, others).iter().any(|e| e.side == Side::Pod);
    if let Some(path) = netns.filter(|p| needs_pod && !p.as_os_str().is_empty()) {
        match Executor::open(Some(path), &[]) {
            Ok(x) => return Ok(x),
            Err(e) => info!(error = %chain(&e), "pod netns unusable; cleaning the node side only"),
        }
    }
    Executor::open(None, &[]).map_err(|e| kernel_err(f, &e))
}

/// A failed `ADD` after its rollback.
#[derive(Debug)]
pub struct RolledBack {
    /// The step that failed.
    pub error: KernelError,
    /// Undo steps that failed in turn (empty: the node and pod are as before).
    pub rollback_failures: Vec<String>,
}

/// Applies the entries this attachment created, in order. On failure, undoes what was
/// applied, in reverse, and returns the error with the rollback's own failures.
pub fn apply_transaction<T: Transport, S: Sysctls>(
    exec: &mut Executor<T, S>,
    record: &Record,
    others: &[Record],
) -> Result<(), Box<RolledBack>> {
    // Only what this ADD creates: shared objects belong to their other records.
    let created: Vec<&Entry> =
        record.entries.iter().filter(|e| e.origin == Origin::Created).collect();
    if let Err(failed) = exec.apply_all(&created) {
        let crate::kernel::ApplyFailure { failed, undo_upto, error } = failed;
        warn!(entry = %created[failed], error = %chain(&error), "ADD failed; rolling back");
        let applied = Record {
            entries: created[..undo_upto].iter().map(|e| (*e).clone()).collect(),
            ..record.clone()
        };
        let rollback_failures = teardown(exec, &applied, others);
        return Err(Box::new(RolledBack { error, rollback_failures }));
    }
    Ok(())
}

fn key_of(flavor: Flavor, network: &str, container_id: &str, ifname: &str) -> AttachmentKey {
    AttachmentKey {
        plugin: flavor,
        network: network.to_owned(),
        container_id: container_id.to_owned(),
        ifname: ifname.to_owned(),
    }
}

fn others(all: Vec<Record>, key: &AttachmentKey) -> Vec<Record> {
    all.into_iter().filter(|r| &r.key != key).collect()
}

fn build_result(mut result: CniResult, plan: &Plan, ifname: &str, netns: &Path) -> CniResult {
    if let Some(mac) = plan.new_mac {
        for i in result.interfaces.iter_mut().filter(|i| i.name == ifname && i.sandbox.is_some()) {
            i.mac = Some(mac.to_string());
        }
    }
    for c in &plan.created {
        let mut i = Interface::new(c.name.clone()).with_mac(c.mac).with_mtu(c.mtu);
        if c.in_pod {
            i = i.with_sandbox(netns.display().to_string());
        }
        result.push_interface(i);
    }
    result
}

impl MetaPlugin {
    fn add_locked(
        &self,
        req: &AddRequest<RawKeys>,
        cfg: &Config,
        prev: CniResult,
        store: &Store,
    ) -> Result<CniResult, CniError> {
        let f = self.flavor;
        let key = key_of(f, &req.config.name, &req.container_id, &req.ifname);
        let prefetch = pod_sysctl_prefetch(cfg, &req.ifname);
        // Only `router` plans node rules; `veth` never reads the node's.
        let node_rules = f == Flavor::Router;
        let mut exec = Executor::open_node().map_err(|e| kernel_err(f, &e))?;
        // Entering the pod netns costs a thread hand-off (a new thread waiting for a time
        // slice): the records and the node are read on a second thread meanwhile, so the two
        // halves overlap instead of adding up.
        let span = tracing::Span::current();
        let (visit, (all, node)) = std::thread::scope(|s| {
            let node_side = s.spawn(|| {
                // Its log lines (an unreadable record) carry the call's identity too.
                let _entered = span.enter();
                (store.list_related(&req.container_id), exec.snapshot(Side::Node, node_rules))
            });
            let visit = PodVisit::open(&req.netns, &prefetch, true);
            let node_side =
                node_side.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (visit, node_side)
        });
        let visit = visit.map_err(|e| kernel_err(f, &e))?;
        let mut pod = exec.attach_pod(visit).map_err(|e| kernel_err(f, &e))?;
        let all = all.map_err(|e| state_err(&e))?;
        let mut node = node.map_err(|e| kernel_err(f, &e))?;
        if let Some(old) = all.iter().find(|r| r.key == key) {
            // A repeated ADD (or one after a crash): start from a clean slate.
            info!(status = ?old.status, "an earlier ADD of this attachment is recorded; undoing it first");
            let failures = teardown(&mut exec, old, &others(all.clone(), &key));
            if !failures.is_empty() {
                return Err(CniError::new(
                    codes::KERNEL,
                    format!("{}: cannot undo the earlier ADD", f.as_str()),
                    failures.join("; "),
                ));
            }
            store.remove(&key).map_err(|e| state_err(&e))?;
            // The snapshots predate the teardown: read both sides again.
            exec.forget();
            pod = None;
            node = exec.snapshot(Side::Node, node_rules).map_err(|e| kernel_err(f, &e))?;
        }
        let records = others(all, &key);
        let pod = match pod {
            Some(p) => p,
            None => exec.snapshot(Side::Pod, true).map_err(|e| kernel_err(f, &e))?,
        };
        let input = PlanInput {
            config: cfg,
            container_id: &req.container_id,
            ifname: &req.ifname,
            prev: &prev,
            pod: &pod,
            node: &node,
            records: &records,
        };
        let plan = plan_add(&input).map_err(|e| plan_err(f, &e))?;
        let values = exec.read_sysctls(&sysctls_to_read(&plan)).map_err(|e| kernel_err(f, &e))?;
        let entries = resolve(&plan, &values, &pod, &node, &records, &req.container_id)
            .map_err(|e| plan_err(f, &e))?;
        let mut record = Record {
            format: RECORD_FORMAT,
            key: key.clone(),
            netns: req.netns.clone(),
            status: Status::Pending,
            entries,
        };
        store.save(&record).map_err(|e| state_err(&e))?;
        if let Err(failed) = apply_transaction(&mut exec, &record, &records) {
            if failed.rollback_failures.is_empty() {
                store.remove(&key).map_err(|e| state_err(&e))?;
            } else {
                warn!(failures = ?failed.rollback_failures, "rollback incomplete; the pending record stays for DEL or GC");
            }
            return Err(kernel_err(f, &failed.error));
        }
        record.status = Status::Committed;
        store.update(&record).map_err(|e| state_err(&e))?;
        info!(
            entries = record.entries.len(),
            created = record.entries.iter().filter(|e| e.origin == Origin::Created).count(),
            "attachment set up"
        );
        Ok(build_result(prev, &plan, &req.ifname, &req.netns))
    }

    /// `DEL` of an attachment without a record: the original `veth` plugin's pods (and
    /// attachments whose `ADD` failed before writing one). Only `veth` has something to find:
    /// the node end named after the container, unless another record uses it.
    fn del_without_record(
        &self,
        exec: &mut Executor,
        container_id: &str,
        records: &[Record],
    ) -> Result<(), CniError> {
        if self.flavor != Flavor::Veth {
            return Ok(());
        }
        let name = host_veth_name(container_id);
        let used = records
            .iter()
            .flat_map(|r| &r.entries)
            .any(|e| matches!(&e.object, Object::Veth(v) if v.host == name));
        if used {
            return Ok(());
        }
        match exec.link(Side::Node, &name).map_err(|e| kernel_err(self.flavor, &e))? {
            Some(l) if l.kind.as_deref() == Some("veth") => {
                info!(
                    link = name,
                    "no record; deleting the node end left by an earlier veth plugin"
                );
                exec.delete_link(Side::Node, &name).map_err(|e| kernel_err(self.flavor, &e))
            }
            _ => Ok(()),
        }
    }
}

impl Plugin for MetaPlugin {
    type Config = RawKeys;

    fn logging(&self, config: &NetConf<RawKeys>) -> Option<LogSettings> {
        match Config::log_options_of(self.flavor, &config.plugin.keys) {
            // The rotating JSON-lines file of `log_options`, installed here.
            Some(opts) => {
                crate::logging::init(&opts);
                None
            }
            None => Some(LogSettings::default()),
        }
    }

    fn add(&self, req: AddRequest<RawKeys>) -> Result<CniResult, CniError> {
        let f = self.flavor;
        let cfg = Config::from_keys(f, &req.config.plugin.keys)?;
        let k8s = req.args.k8s();
        debug!(
            pod = k8s.pod_name.as_deref().unwrap_or(""),
            namespace = k8s.pod_namespace.as_deref().unwrap_or(""),
            "ADD"
        );
        let prev = req.config.prev_result.clone().ok_or_else(|| {
            CniError::invalid_config(
                "prevResult",
                "null",
                format_args!(
                    "{} must run chained after a plugin that creates the interface",
                    f.as_str()
                ),
            )
        })?;
        if cfg.skip_call {
            info!("skip_call: passing prevResult through");
            return Ok(prev);
        }
        let store = Store::new(&cfg.state_dir);
        let _lock = store.lock().map_err(|e| state_err(&e))?;
        self.add_locked(&req, &cfg, prev, &store)
    }

    fn del(&self, req: DelRequest<RawKeys>) -> Result<(), CniError> {
        let f = self.flavor;
        let store = Store::new(lenient_state_dir(f, &req.config.plugin.keys));
        let _lock = store.lock().map_err(|e| state_err(&e))?;
        let key = key_of(f, &req.config.name, &req.container_id, &req.ifname);
        let mut all = store.list_related(&req.container_id).map_err(|e| state_err(&e))?;
        // The container's records include this one (read once); `load` only runs to move an
        // unreadable record aside.
        let record = match all.iter().position(|r| r.key == key) {
            Some(i) => Some(all.remove(i)),
            None => store.load(&key).map_err(|e| state_err(&e))?,
        };
        let records = others(all, &key);
        let Some(record) = record else {
            let mut exec = Executor::open(None, &[]).map_err(|e| kernel_err(f, &e))?;
            return self.del_without_record(&mut exec, &req.container_id, &records);
        };
        let mut exec = teardown_executor(f, &record, &records, req.netns.as_deref())?;
        let failures = teardown(&mut exec, &record, &records);
        if !failures.is_empty() {
            return Err(CniError::new(
                codes::KERNEL,
                format!("{}: DEL incomplete", f.as_str()),
                failures.join("; "),
            ));
        }
        store.remove(&key).map_err(|e| state_err(&e))?;
        info!(entries = record.entries.len(), "attachment removed");
        Ok(())
    }

    fn check(&self, req: CheckRequest<RawKeys>) -> Result<(), CniError> {
        let f = self.flavor;
        let cfg = Config::from_keys(f, &req.config.plugin.keys)?;
        if req.config.prev_result.is_none() {
            return Err(CniError::invalid_config(
                "prevResult",
                "null",
                "CHECK needs the ADD result",
            ));
        }
        if cfg.skip_call {
            return Ok(());
        }
        let store = Store::new(&cfg.state_dir);
        let _lock = store.lock().map_err(|e| state_err(&e))?;
        let key = key_of(f, &req.config.name, &req.container_id, &req.ifname);
        let failed = |details: String| {
            CniError::new(
                codes::CHECK_FAILED,
                format!("{}: attachment does not match its record", f.as_str()),
                details,
            )
        };
        let record = store
            .load(&key)
            .map_err(|e| state_err(&e))?
            .ok_or_else(|| failed("no record of this attachment".into()))?;
        if record.status != Status::Committed {
            return Err(failed("its ADD did not complete".into()));
        }
        let records =
            others(store.list_related(&req.container_id).map_err(|e| state_err(&e))?, &key);
        // Objects another attachment of the pod moved away since (a default route) are fine.
        let moved: BTreeSet<String> = records
            .iter()
            .filter(|r| r.same_container(&record))
            .flat_map(|r| &r.entries)
            .filter(|e| e.action == Action::Remove)
            .map(|e| e.object.identity())
            .collect();
        let mut exec = Executor::open(Some(&req.netns), &[]).map_err(|e| kernel_err(f, &e))?;
        let mut problems = Vec::new();
        for e in &record.entries {
            if e.side == Side::Pod
                && e.action == Action::Add
                && moved.contains(&e.object.identity())
            {
                continue;
            }
            if let Some(p) = exec.check(e).map_err(|err| kernel_err(f, &err))? {
                problems.push(p);
            }
        }
        if problems.is_empty() {
            debug!(entries = record.entries.len(), "CHECK passed");
            Ok(())
        } else {
            Err(failed(problems.join("; ")))
        }
    }

    fn gc(&self, req: GcRequest<RawKeys>) -> Result<(), CniError> {
        let f = self.flavor;
        let store = Store::new(lenient_state_dir(f, &req.config.plugin.keys));
        let _lock = store.lock().map_err(|e| state_err(&e))?;
        let mut remaining = store.list_all().map_err(|e| state_err(&e))?;
        let stale: Vec<Record> = remaining
            .iter()
            .filter(|r| {
                r.key.plugin == f
                    && r.key.network == req.config.name
                    && !req.is_valid(&r.key.container_id, &r.key.ifname)
            })
            .cloned()
            .collect();
        let mut errors = Vec::new();
        for rec in stale {
            remaining.retain(|r| r.key != rec.key);
            let pod = Some(rec.netns.as_path()).filter(|p| p.exists());
            let failures = match teardown_executor(f, &rec, &remaining, pod) {
                Ok(mut exec) => teardown(&mut exec, &rec, &remaining),
                Err(e) => vec![e.to_string()],
            };
            if failures.is_empty() {
                info!(
                    container_id = rec.key.container_id,
                    ifname = rec.key.ifname,
                    "GC removed a stale attachment"
                );
                store.remove(&rec.key).map_err(|e| state_err(&e))?;
            } else {
                errors.push(format!(
                    "{}/{}: {}",
                    rec.key.container_id,
                    rec.key.ifname,
                    failures.join("; ")
                ));
                remaining.push(rec);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CniError::new(
                codes::KERNEL,
                format!("{}: GC incomplete", f.as_str()),
                errors.join("; "),
            ))
        }
    }

    fn status(&self, req: StatusRequest<RawKeys>) -> Result<(), CniError> {
        let store = Store::new(lenient_state_dir(self.flavor, &req.config.plugin.keys));
        match store.lock() {
            Ok(_) => Ok(()),
            Err(e) => Err(CniError::plugin_not_available(
                format!("{}: state directory unusable", self.flavor.as_str()),
                chain(&e),
            )),
        }
    }
}

/// Runs the plugin of `flavor` against this process's environment and stdio.
pub fn main(flavor: Flavor) -> std::process::ExitCode {
    cni_spec::run(&MetaPlugin::new(flavor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NeighObj, Role, RouteObj, SysctlObj};
    use cni_spec::ErrorCode;

    use crate::model::{Family, RuleObj, VethPair};
    use crate::state::{AttachmentKey, RECORD_FORMAT, Status};
    use sriov_netlink::raw::route::RouteNetlinkMessage;
    use sriov_netlink::raw::route::link::{LinkAttribute, LinkMessage};
    use sriov_netlink::{FakeReply, FakeTransport, Netlink};
    use std::collections::BTreeMap;

    /// Sysctls in memory.
    #[derive(Default)]
    struct MemSysctls(BTreeMap<(Side, String), String>);

    impl Sysctls for MemSysctls {
        fn read_many(&mut self, side: Side, keys: &[String]) -> Result<Vec<String>, KernelError> {
            keys.iter()
                .map(|k| {
                    self.0.get(&(side, k.clone())).cloned().ok_or_else(|| KernelError::Sysctl {
                        side,
                        op: "read",
                        key: k.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    })
                })
                .collect()
        }
        fn write_many(
            &mut self,
            side: Side,
            kv: &[(String, String)],
        ) -> Result<(), (usize, KernelError)> {
            for (k, v) in kv {
                self.0.insert((side, k.clone()), v.clone());
            }
            Ok(())
        }
        fn restore_many(
            &mut self,
            side: Side,
            items: &[(String, String, String)],
        ) -> Vec<(usize, KernelError)> {
            for (k, ours, prev) in items {
                if self.0.get(&(side, k.clone())) == Some(ours) {
                    self.0.insert((side, k.clone()), prev.clone());
                }
            }
            Vec::new()
        }
    }

    fn link_reply(index: u32, name: &str) -> FakeReply {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.to_owned()));
        FakeReply::Message(RouteNetlinkMessage::NewLink(m))
    }

    fn entry(side: Side, object: Object, origin: Origin) -> Entry {
        Entry { side, action: Action::Add, object, origin, role: Role::Own }
    }

    fn record(cid: &str, entries: Vec<Entry>) -> Record {
        Record {
            format: RECORD_FORMAT,
            key: AttachmentKey {
                plugin: Flavor::Veth,
                network: "n".into(),
                container_id: cid.into(),
                ifname: "eth0".into(),
            },
            netns: "/run/netns/p".into(),
            status: Status::Pending,
            entries,
        }
    }

    fn summary(fake: &FakeTransport) -> Vec<String> {
        fake.sent_summary()
            .iter()
            .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
            .collect()
    }

    /// A failing step rolls back exactly what was applied, newest first; shared entries are
    /// neither applied nor undone.
    #[test]
    fn failed_add_rolls_back_in_reverse() {
        let (node, pod) = (FakeTransport::new(), FakeTransport::new());
        let mut sys = MemSysctls::default();
        sys.0.insert((Side::Node, "net/ipv4/conf/all/rp_filter".into()), "1".into());
        let mut exec =
            Executor::new(Netlink::new(node.clone()), Some(Netlink::new(pod.clone())), None, sys);
        let rule = RuleObj { family: Family::V4, priority: 1000, table: 500, from: None, to: None };
        let rec = record(
            "c1",
            vec![
                entry(
                    Side::Node,
                    Object::Sysctl(SysctlObj {
                        key: "net/ipv4/conf/all/rp_filter".into(),
                        value: "2".into(),
                        previous: Some("1".into()),
                    }),
                    Origin::Created,
                ),
                entry(
                    Side::Pod,
                    Object::Route(RouteObj {
                        table: 254,
                        dst: "198.51.100.0/25".parse().unwrap(),
                        gw: Some("192.0.2.10".parse().unwrap()),
                        dev: Some("veth0".into()),
                        src: None,
                        scope: None,
                        metric: 0,
                        protocol: 3,
                    }),
                    Origin::Created,
                ),
                entry(Side::Node, Object::Rule(rule), Origin::Shared),
                entry(
                    Side::Node,
                    Object::Neigh(NeighObj {
                        dev: "vethx".into(),
                        ip: "192.0.2.50".parse().unwrap(),
                        mac: "02:00:00:00:00:01".parse().unwrap(),
                    }),
                    Origin::Created,
                ),
            ],
        );
        pod.replies([link_reply(7, "veth0"), FakeReply::Ack, FakeReply::Ack]);
        node.replies([link_reply(9, "vethx"), FakeReply::Errno(libc_einval())]);
        let failed = apply_transaction(&mut exec, &rec, &[]).unwrap_err();
        assert!(failed.rollback_failures.is_empty(), "{:?}", failed.rollback_failures);
        assert!(chain(&failed.error).contains("add neigh 192.0.2.50"), "{}", chain(&failed.error));
        assert_eq!(summary(&pod), vec!["getlink", "newroute", "delroute"]);
        assert_eq!(summary(&node), vec!["getlink", "newneigh"], "no rule: it is shared");
        assert_eq!(
            exec.sysctls().0[&(Side::Node, "net/ipv4/conf/all/rp_filter".to_owned())],
            "1",
            "restored"
        );
        assert_eq!(pod.unused_replies() + node.unused_replies(), 0);
    }

    fn libc_einval() -> i32 {
        22
    }

    /// DEL skips pre-existing objects, objects another record still uses, and objects on the
    /// veth it deletes; "already gone" is success.
    #[test]
    fn teardown_skips_shared_preexisting_and_doomed() {
        let (node, pod) = (FakeTransport::new(), FakeTransport::new());
        let mut exec = Executor::new(
            Netlink::new(node.clone()),
            Some(Netlink::new(pod.clone())),
            None,
            MemSysctls::default(),
        );
        let veth = VethPair {
            host: "vethx".into(),
            host_mac: "02:00:00:00:00:01".parse().unwrap(),
            pod: "veth0".into(),
            pod_mac: "02:00:00:00:00:02".parse().unwrap(),
            mtu: 1500,
        };
        let on_veth0 = Object::Route(RouteObj {
            table: 254,
            dst: "198.51.100.0/25".parse().unwrap(),
            gw: None,
            dev: Some("veth0".into()),
            src: None,
            scope: None,
            metric: 0,
            protocol: 3,
        });
        let shared_rule =
            RuleObj { family: Family::V4, priority: 1000, table: 500, from: None, to: None };
        let own_rule =
            RuleObj { family: Family::V6, priority: 1000, table: 500, from: None, to: None };
        let rec = record(
            "c1",
            vec![
                entry(Side::Node, Object::Veth(veth), Origin::Created),
                entry(Side::Pod, on_veth0, Origin::Created),
                entry(Side::Node, Object::Rule(shared_rule.clone()), Origin::Created),
                entry(Side::Node, Object::Rule(own_rule), Origin::Created),
                entry(
                    Side::Pod,
                    Object::Rule(RuleObj {
                        family: Family::V4,
                        priority: 5,
                        table: 100,
                        from: None,
                        to: None,
                    }),
                    Origin::Preexisting,
                ),
            ],
        );
        let other =
            record("c2", vec![entry(Side::Node, Object::Rule(shared_rule), Origin::Shared)]);
        // own_rule: already gone (ENOENT); the veth: getlink + dellink.
        node.replies([FakeReply::Errno(2), link_reply(5, "vethx"), FakeReply::Ack]);
        let failures = teardown(&mut exec, &rec, &[other]);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(summary(&node), vec!["delrule", "getlink", "dellink"]);
        assert!(pod.sent().is_empty(), "everything on veth0 goes with the veth");
    }

    #[test]
    fn entry_devices() {
        let sysctl = |key: &str| Entry {
            side: Side::Pod,
            action: Action::Add,
            object: Object::Sysctl(SysctlObj {
                key: key.into(),
                value: "0".into(),
                previous: None,
            }),
            origin: Origin::Created,
            role: Role::Own,
        };
        assert_eq!(entry_dev(&sysctl("net/ipv6/conf/veth0/disable_ipv6")), Some("veth0"));
        assert_eq!(entry_dev(&sysctl("net/ipv4/conf/all/rp_filter")), Some("all"));
        assert_eq!(entry_dev(&sysctl("net/ipv4/ip_forward")), None);
        let neigh = Entry {
            object: Object::Neigh(NeighObj {
                dev: "vethx".into(),
                ip: "192.0.2.1".parse().unwrap(),
                mac: "02:00:00:00:00:01".parse().unwrap(),
            }),
            ..sysctl("x")
        };
        assert_eq!(entry_dev(&neigh), Some("vethx"));
        let route = Entry {
            object: Object::Route(RouteObj {
                table: 254,
                dst: "192.0.2.0/24".parse().unwrap(),
                gw: None,
                dev: None,
                src: None,
                scope: None,
                metric: 0,
                protocol: 3,
            }),
            ..sysctl("x")
        };
        assert_eq!(entry_dev(&route), None);
    }

    #[test]
    fn errors_map_to_codes_and_keys() {
        let e = plan_err(Flavor::Router, &PlanError::OverlayNotVeth { ifname: "eth0".into() });
        assert_eq!(e.code().get(), 7);
        assert_eq!(e.msg(), "invalid network configuration: overlay_interface");
        let e = plan_err(Flavor::Veth, &PlanError::NoAddress { ifname: "eth0".into() });
        assert_eq!(e.code(), codes::UNEXPECTED_STATE);
        assert_eq!(e.details(), "interface eth0 has no global IP address in the pod netns");
        let e = state_err(&StateError::Io {
            op: "lock",
            path: "/x/.lock".into(),
            source: std::io::Error::other("boom"),
        });
        assert_eq!(e.code().get(), 5);
        assert!(e.details().contains("lock /x/.lock: boom"), "{}", e.details());
        assert_eq!(ErrorCode::from_raw(102), codes::UNEXPECTED_STATE);
    }
}
