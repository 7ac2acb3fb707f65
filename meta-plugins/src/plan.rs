//! The pure planner: from the validated configuration, the CNI request and snapshots of the
//! pod and node namespaces, compute every object an attachment installs.
//!
//! [`plan_add`] produces [`Intent`]s in the order they must be applied; [`resolve`] turns them
//! into record [`Entry`]s by reading current sysctl values and other attachments' records
//! (shared objects, pre-existing objects, conflicts). Nothing here touches the kernel.
//!
//! # Node IPs
//!
//! The pod needs a route (and a static neighbour) for every address of the node, so replies
//! to the kubelet and node-local traffic take the veth (or overlay interface). They are
//! discovered from the node's addresses, not from interface names: every universe-scope
//! address of the node netns ([`discover_node_ips`]), excluding
//! - host-scope, link-local (169.254/16, fe80::/10), multicast and DAD-failed addresses,
//! - addresses inside the hijacked subnets (service VIPs on `kube-ipvs0`, overlay gateway
//!   addresses: those are routed through the node by the hijack routes already),
//! - the pod's own addresses,
//! - the host ends of pod veths: `/32` or `/128` addresses on a veth whose peer is in another
//!   netns (the `ptp`-style gateway addresses), and any address on a veth this plugin created,
//!
//! keeping only the families the pod uses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cni_spec::{CniResult, IpPrefix, Mac};
use tracing::warn;

use crate::config::{Config, Flavor, MigrateRoute};
use crate::model::{
    Action, Entry, FIRST_POD_TABLE, Family, LinkMacObj, NeighObj, Object, Origin,
    PRIO_NODE_HOST_TABLE, PRIO_POD_FROM, PRIO_POD_TO, Role, RouteObj, RuleObj, Side, SysctlObj,
    TABLE_MAIN, VethPair, host_prefix,
};
use crate::naming::{
    POD_VETH_NAME, host_veth_mac, host_veth_name, nic_order, pod_veth_mac, prefixed_mac,
};
use crate::state::Record;
use crate::view::{LinkView, RouteView, SCOPE_LINK, Snapshot};

/// `RTPROT_BOOT`: what `ip route add` uses.
const RTPROT_BOOT: u8 = 3;

/// Why an attachment cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An interface the plan needs is missing from the pod.
    #[error("interface {ifname} not found in the pod netns")]
    MissingInterface {
        /// The interface.
        ifname: String,
    },
    /// `CNI_IFNAME` has no global address (the previous plugin assigned none).
    #[error("interface {ifname} has no global IP address in the pod netns")]
    NoAddress {
        /// The interface.
        ifname: String,
    },
    /// `router`: `overlay_interface` is `CNI_IFNAME` itself.
    #[error("overlay_interface {ifname} is CNI_IFNAME: router runs on an additional interface")]
    OverlayIsIfname {
        /// The interface.
        ifname: String,
    },
    /// `router`: the overlay interface has no veth peer in the node netns.
    #[error(
        "overlay_interface {ifname} is not a veth whose peer is in the node netns (set \"sriov\": true to skip node-side routing)"
    )]
    OverlayNotVeth {
        /// The interface.
        ifname: String,
    },
    /// An object the plan would create exists already, differently, and no record made it.
    #[error("{side} {what} exists and was not made by this plugin")]
    Conflict {
        /// Where.
        side: Side,
        /// The existing object.
        what: String,
    },
    /// A sysctl needed for the plan was not read.
    #[error("{side} sysctl {key} was not read")]
    SysctlNotRead {
        /// Where.
        side: Side,
        /// The key.
        key: String,
    },
}

/// How a sysctl intent is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlMode {
    /// Key of an interface this plan creates: write, never restore.
    Fresh,
    /// Write if different; restore the previous value on undo.
    Set,
    /// Write only if the current value is higher (`conf/all/rp_filter`: the kernel uses the
    /// maximum of `all` and the interface's value, so only a higher `all` needs lowering).
    LowerTo,
}

/// One planned step before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Where.
    pub side: Side,
    /// Add or remove.
    pub action: Action,
    /// The object.
    pub object: Object,
    /// Per-container or per-attachment.
    pub role: Role,
    /// For sysctls: how to apply.
    pub sysctl: SysctlMode,
}

impl Intent {
    fn add(side: Side, role: Role, object: Object) -> Intent {
        Intent { side, action: Action::Add, object, role, sysctl: SysctlMode::Set }
    }

    fn sysctl(side: Side, role: Role, key: String, value: String, mode: SysctlMode) -> Intent {
        Intent {
            side,
            action: Action::Add,
            object: Object::Sysctl(SysctlObj { key, value, previous: None }),
            role,
            sysctl: mode,
        }
    }
}

/// An interface `ADD` reports in its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedInterface {
    /// Name.
    pub name: String,
    /// MAC.
    pub mac: Mac,
    /// MTU.
    pub mtu: u32,
    /// Whether it lives in the pod (reported with the netns as sandbox).
    pub in_pod: bool,
}

/// What `ADD` is about to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps in application order.
    pub intents: Vec<Intent>,
    /// Interfaces to report.
    pub created: Vec<CreatedInterface>,
    /// New MAC of `CNI_IFNAME` (`mac_prefix`).
    pub new_mac: Option<Mac>,
}

/// Inputs of [`plan_add`].
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// Validated configuration.
    pub config: &'a Config,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `prevResult` (gateways).
    pub prev: &'a CniResult,
    /// Pod netns snapshot.
    pub pod: &'a Snapshot,
    /// Node netns snapshot.
    pub node: &'a Snapshot,
    /// Other attachments' records that can matter: every record of this container and the
    /// node-wide entries of the others ([`crate::state::Store::list_related`]), without this
    /// attachment's own.
    pub records: &'a [Record],
}

/// Plans an `ADD`.
pub fn plan_add(inp: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let link = inp
        .pod
        .link(inp.ifname)
        .ok_or_else(|| PlanError::MissingInterface { ifname: inp.ifname.to_owned() })?;
    let own = inp.pod.global_addrs_of(inp.ifname);
    let mut plan = Plan::default();
    if let Some(prefix) = inp.config.mac_prefix {
        plan_mac(inp, link, &own, prefix, &mut plan)?;
    }
    if inp.config.only_op_mac {
        return Ok(plan);
    }
    if own.is_empty() {
        return Err(PlanError::NoAddress { ifname: inp.ifname.to_owned() });
    }
    match inp.config.flavor {
        Flavor::Veth => plan_veth(inp, link, &own, &mut plan)?,
        Flavor::Router => plan_router(inp, &own, &mut plan)?,
    }
    Ok(plan)
}

fn plan_mac(
    inp: &PlanInput<'_>,
    link: &LinkView,
    own: &[IpPrefix],
    prefix: [u8; 2],
    plan: &mut Plan,
) -> Result<(), PlanError> {
    // IPv4 when there is one, else IPv6: deterministic for dual-stack pods.
    let ip = own.iter().find(|p| p.is_ipv4()).or_else(|| own.first()).map(IpPrefix::addr);
    let Some(ip) = ip else {
        return Err(PlanError::NoAddress { ifname: inp.ifname.to_owned() });
    };
    let mac = prefixed_mac(prefix, ip);
    plan.new_mac = Some(mac);
    match link.mac {
        Some(cur) if cur != mac => plan.intents.push(Intent::add(
            Side::Pod,
            Role::Own,
            Object::LinkMac(LinkMacObj { dev: inp.ifname.to_owned(), mac, previous: cur }),
        )),
        _ => {}
    }
    Ok(())
}

fn families(addrs: &[IpPrefix]) -> BTreeSet<Family> {
    addrs.iter().map(|a| Family::of(a.addr())).collect()
}

fn first_v4(addrs: &[IpPrefix]) -> Option<IpAddr> {
    addrs.iter().find(|a| a.is_ipv4()).map(IpPrefix::addr)
}

fn rp_key(dev: &str) -> String {
    format!("net/ipv4/conf/{dev}/rp_filter")
}

/// A scope-link route to `dst` through `dev` (IPv4 gets link scope explicitly; IPv6 routes
/// have no scope).
fn dev_route(table: u32, dst: IpPrefix, dev: &str, src: Option<IpAddr>) -> RouteObj {
    let family = Family::of(dst.addr());
    RouteObj {
        table,
        dst,
        gw: None,
        dev: Some(dev.to_owned()),
        src: if family == Family::V4 { src } else { None },
        scope: (family == Family::V4).then_some(SCOPE_LINK),
        metric: family.default_metric(),
        protocol: RTPROT_BOOT,
    }
}

fn via_route(table: u32, dst: IpPrefix, gw: IpAddr, dev: &str, src: Option<IpAddr>) -> RouteObj {
    let family = Family::of(dst.addr());
    RouteObj {
        table,
        dst,
        gw: Some(gw),
        dev: Some(dev.to_owned()),
        src: if family == Family::V4 { src } else { None },
        scope: None,
        metric: family.default_metric(),
        protocol: RTPROT_BOOT,
    }
}

/// A copy of a route into `table`. An IPv6 `src` is dropped: the kernel rejects a route whose
/// source is still tentative, and IPv6 source selection prefers the outgoing interface's
/// address anyway.
fn copy_route(r: &RouteView, table: u32, pod: &Snapshot) -> Option<RouteObj> {
    Some(RouteObj {
        table,
        dst: r.dst,
        gw: r.gw,
        dev: Some(pod.name_of(r.oif?)?.to_owned()),
        src: r.src.filter(IpAddr::is_ipv4),
        scope: (r.family() == Family::V4).then_some(r.scope),
        metric: r.metric,
        protocol: r.protocol,
    })
}

/// Whether a route is worth copying into a policy table (not link-local or multicast).
fn copyable(r: &RouteView) -> bool {
    let a = r.dst.addr();
    r.dst.is_default() || crate::view::is_global_ip(a)
}

/// The node's addresses the pod must reach directly; see the module docs.
pub fn discover_node_ips(
    node: &Snapshot,
    hijack: &[IpPrefix],
    pod_ips: &[IpAddr],
    our_links: &BTreeSet<String>,
) -> Vec<IpPrefix> {
    let mut out: Vec<IpPrefix> = Vec::new();
    for a in node.addrs.iter().filter(|a| a.is_global()) {
        let ip = a.addr.addr();
        if pod_ips.contains(&ip) || hijack.iter().any(|h| h.contains(ip)) {
            continue;
        }
        let link = node.link_by_index(a.index);
        if link.is_some_and(|l| our_links.contains(&l.name)) {
            continue;
        }
        let host_len = if ip.is_ipv4() { 32 } else { 128 };
        if link.is_some_and(LinkView::is_veth_to_other_netns) && a.addr.prefix_len() == host_len {
            continue;
        }
        if !out.iter().any(|o| o.addr() == ip) {
            out.push(a.addr);
        }
    }
    out.sort_by_key(|p| (Family::of(p.addr()), p.addr()));
    out
}

/// The next hop of hijack routes for a family: the node address on the pod's subnet (the
/// source the node itself uses towards the pod), else the lowest node address.
pub fn pick_gateway(node_ips: &[IpPrefix], own: &[IpPrefix], family: Family) -> Option<IpAddr> {
    let of_family = || node_ips.iter().filter(move |n| Family::of(n.addr()) == family);
    of_family()
        .find(|n| own.iter().any(|o| n.contains(o.addr()) || o.contains(n.addr())))
        .or_else(|| of_family().next())
        .map(IpPrefix::addr)
}

/// Whether the node reaches `ip` on a connected subnet (so the node would try L2 delivery,
/// which macvlan's parent cannot do to its own children).
fn node_onlink(node: &Snapshot, own: &IpPrefix) -> bool {
    node.addrs
        .iter()
        .filter(|a| a.is_global())
        .any(|a| a.addr.contains(own.addr()) || own.contains(a.addr.addr()))
}

/// The lowest table ≥ 100 that no route or rule of the pod uses and no record of the same
/// container claims: deterministic for any interface name.
pub fn allocate_table(
    pod: &Snapshot,
    records: &[Record],
    container_id: &str,
    taken: &mut BTreeSet<u32>,
) -> u32 {
    let mut used = pod.tables_in_use();
    for r in records.iter().filter(|r| r.key.container_id == container_id) {
        for e in r.entries.iter().filter(|e| e.side == Side::Pod) {
            match &e.object {
                Object::Route(x) => {
                    used.insert(x.table);
                }
                Object::Rule(x) => {
                    used.insert(x.table);
                }
                _ => {}
            }
        }
    }
    let mut t = FIRST_POD_TABLE;
    while used.contains(&t) || taken.contains(&t) || (253..=255).contains(&t) {
        t += 1;
    }
    taken.insert(t);
    t
}

/// The infrastructure entries of another attachment of the same container and plugin.
fn inherited_infra<'a>(inp: &PlanInput<'a>) -> Option<Vec<&'a Entry>> {
    inp.records
        .iter()
        .filter(|r| r.key.container_id == inp.container_id && r.key.plugin == inp.config.flavor)
        .map(|r| r.entries.iter().filter(|e| e.role == Role::Infra).collect::<Vec<_>>())
        .find(|v| !v.is_empty())
}

fn inherit(entries: &[&Entry], plan: &mut Plan) {
    for e in entries {
        let sysctl = match &e.object {
            Object::Sysctl(s) if s.previous.is_none() => SysctlMode::Fresh,
            _ => SysctlMode::Set,
        };
        plan.intents.push(Intent {
            side: e.side,
            action: e.action,
            object: e.object.clone(),
            role: Role::Infra,
            sysctl,
        });
    }
}

/// Every veth this plugin created on the node (their addresses are not node IPs).
fn our_host_links(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .flat_map(|r| &r.entries)
        .filter_map(|e| match &e.object {
            Object::Veth(v) => Some(v.host.clone()),
            _ => None,
        })
        .collect()
}

fn all_pod_ips(pod: &Snapshot) -> Vec<IpAddr> {
    pod.addrs.iter().filter(|a| a.is_global()).map(|a| a.addr.addr()).collect()
}

fn plan_veth(
    inp: &PlanInput<'_>,
    link: &LinkView,
    own: &[IpPrefix],
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let cfg = inp.config;
    let fams = families(own);
    let src4 = first_v4(own);
    let rp = cfg.rp_filter.value.value().to_string();
    let inherited = inherited_infra(inp);
    let created_pair = inherited.is_none();
    let veth = match inherited {
        Some(entries) => {
            inherit(&entries, plan);
            entries
                .iter()
                .find_map(|e| match &e.object {
                    Object::Veth(v) => Some(v.clone()),
                    _ => None,
                })
                .ok_or_else(|| PlanError::Conflict {
                    side: Side::Node,
                    what: "veth infrastructure record without a veth pair".into(),
                })?
        }
        None => {
            let veth = VethPair {
                host: host_veth_name(inp.container_id),
                host_mac: host_veth_mac(inp.container_id),
                pod: POD_VETH_NAME.to_owned(),
                pod_mac: pod_veth_mac(inp.container_id),
                mtu: link.mtu,
            };
            let hijack = cfg.hijack_subnets();
            let mut ours = our_host_links(inp.records);
            ours.insert(veth.host.clone());
            let node_ips: Vec<IpPrefix> =
                discover_node_ips(inp.node, &hijack, &all_pod_ips(inp.pod), &ours)
                    .into_iter()
                    .filter(|n| fams.contains(&Family::of(n.addr())))
                    .collect();
            let infra = |object| Intent::add(Side::Pod, Role::Infra, object);
            plan.intents.push(Intent::add(Side::Node, Role::Infra, Object::Veth(veth.clone())));
            if fams.contains(&Family::V6) {
                plan.intents.push(Intent::sysctl(
                    Side::Pod,
                    Role::Infra,
                    format!("net/ipv6/conf/{}/disable_ipv6", veth.pod),
                    "0".into(),
                    SysctlMode::Fresh,
                ));
            }
            if fams.contains(&Family::V4) && cfg.rp_filter.set_host {
                plan.intents.push(Intent::sysctl(
                    Side::Node,
                    Role::Infra,
                    rp_key(&veth.host),
                    rp.clone(),
                    SysctlMode::Fresh,
                ));
            }
            for n in &node_ips {
                plan.intents.push(infra(Object::Neigh(NeighObj {
                    dev: veth.pod.clone(),
                    ip: n.addr(),
                    mac: veth.host_mac,
                })));
            }
            for n in &node_ips {
                plan.intents.push(infra(Object::Route(dev_route(
                    TABLE_MAIN,
                    host_prefix(n.addr()),
                    &veth.pod,
                    src4,
                ))));
            }
            for fam in &fams {
                let of_fam: Vec<&IpPrefix> =
                    hijack.iter().filter(|h| Family::of(h.addr()) == *fam).collect();
                if of_fam.is_empty() {
                    continue;
                }
                match pick_gateway(&node_ips, own, *fam) {
                    Some(gw) => {
                        for h in of_fam {
                            plan.intents.push(infra(Object::Route(via_route(
                                TABLE_MAIN, *h, gw, &veth.pod, src4,
                            ))));
                        }
                    }
                    None => {
                        warn!(family = ?fam, "no node address of this family: its hijack subnets are not routed via the node")
                    }
                }
            }
            plan.created.push(CreatedInterface {
                name: veth.host.clone(),
                mac: veth.host_mac,
                mtu: veth.mtu,
                in_pod: false,
            });
            plan.created.push(CreatedInterface {
                name: veth.pod.clone(),
                mac: veth.pod_mac,
                mtu: veth.mtu,
                in_pod: true,
            });
            veth
        }
    };
    for a in own {
        plan.intents.push(Intent::add(
            Side::Node,
            Role::Own,
            Object::Route(dev_route(TABLE_MAIN, host_prefix(a.addr()), &veth.host, None)),
        ));
        plan.intents.push(Intent::add(
            Side::Node,
            Role::Own,
            Object::Neigh(NeighObj { dev: veth.host.clone(), ip: a.addr(), mac: veth.pod_mac }),
        ));
    }
    // Pod sysctls last and together: one visit to the pod netns writes them all.
    if created_pair && fams.contains(&Family::V4) {
        plan.intents.push(Intent::sysctl(
            Side::Pod,
            Role::Infra,
            rp_key(&veth.pod),
            rp,
            SysctlMode::Fresh,
        ));
    }
    plan_rp_filter(inp, &fams, &[inp.ifname], plan);
    // Copies for a migrated interface's table: every main route via veth0 (node IPs and
    // hijacks), with the migrated interface's own source.
    let veth_routes: Vec<RouteObj> = plan
        .intents
        .iter()
        .filter_map(|i| match (&i.side, &i.action, &i.object) {
            (Side::Pod, Action::Add, Object::Route(r))
                if r.table == TABLE_MAIN && r.dev.as_deref() == Some(veth.pod.as_str()) =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .collect();
    plan_migration(inp, own, None, &veth_routes, plan);
    Ok(())
}

fn plan_rp_filter(
    inp: &PlanInput<'_>,
    fams: &BTreeSet<Family>,
    pod_devs: &[&str],
    plan: &mut Plan,
) {
    if !fams.contains(&Family::V4) {
        return;
    }
    let rp = inp.config.rp_filter.value.value().to_string();
    for dev in pod_devs {
        plan.intents.push(Intent::sysctl(
            Side::Pod,
            Role::Own,
            rp_key(dev),
            rp.clone(),
            SysctlMode::Set,
        ));
    }
    plan.intents.push(Intent::sysctl(
        Side::Pod,
        Role::Own,
        rp_key("all"),
        rp.clone(),
        SysctlMode::LowerTo,
    ));
    if inp.config.rp_filter.set_host {
        plan.intents.push(Intent::sysctl(
            Side::Node,
            Role::Own,
            rp_key("all"),
            rp,
            SysctlMode::LowerTo,
        ));
    }
}

/// The overlay interface's veth peer on the node: the node link whose index is the pod
/// link's `IFLA_LINK` and whose own `IFLA_LINK` points back at the pod link.
pub fn find_overlay_peer<'a>(
    pod: &Snapshot,
    node: &'a Snapshot,
    overlay: &str,
) -> Option<&'a LinkView> {
    let ov = pod.link(overlay)?;
    if !ov.is_veth_to_other_netns() {
        return None;
    }
    let peer = node.link_by_index(ov.peer_index?)?;
    (peer.kind.as_deref() == Some("veth")
        && peer.peer_index == Some(ov.index)
        && peer.peer_netnsid.is_some())
    .then_some(peer)
}

fn plan_router(inp: &PlanInput<'_>, own: &[IpPrefix], plan: &mut Plan) -> Result<(), PlanError> {
    let cfg = inp.config;
    let overlay = cfg.overlay_interface.as_str();
    if overlay == inp.ifname {
        return Err(PlanError::OverlayIsIfname { ifname: overlay.to_owned() });
    }
    let ov = inp
        .pod
        .link(overlay)
        .ok_or_else(|| PlanError::MissingInterface { ifname: overlay.to_owned() })?;
    let fams = families(own);
    let peer = if cfg.sriov {
        None
    } else {
        Some(
            find_overlay_peer(inp.pod, inp.node, overlay)
                .ok_or_else(|| PlanError::OverlayNotVeth { ifname: overlay.to_owned() })?,
        )
    };
    let mut taken = BTreeSet::new();
    let overlay_table = match inherited_infra(inp) {
        Some(entries) => {
            inherit(&entries, plan);
            entries.iter().find_map(|e| match &e.object {
                Object::Rule(r) if r.priority == PRIO_POD_TO => Some(r.table),
                Object::Route(r) if r.table != TABLE_MAIN => Some(r.table),
                _ => None,
            })
        }
        None => {
            let t = allocate_table(inp.pod, inp.records, inp.container_id, &mut taken);
            let infra = |object| Intent::add(Side::Pod, Role::Infra, object);
            let mut copies: Vec<&RouteView> =
                inp.pod.routes_via(TABLE_MAIN, overlay).filter(|r| copyable(r)).collect();
            // Gateways must be reachable when their route is added: link routes first.
            copies.sort_by_key(|r| r.dst.is_default());
            for r in copies {
                if let Some(c) = copy_route(r, t, inp.pod) {
                    plan.intents.push(infra(Object::Route(c)));
                }
            }
            let ov_fams = families(&inp.pod.global_addrs_of(overlay));
            for h in
                cfg.hijack_subnets().into_iter().filter(|h| ov_fams.contains(&Family::of(h.addr())))
            {
                plan.intents.push(infra(Object::Rule(RuleObj {
                    family: Family::of(h.addr()),
                    priority: PRIO_POD_TO,
                    table: t,
                    from: None,
                    to: Some(h),
                })));
            }
            if let Some(peer) = peer {
                let mut ours = our_host_links(inp.records);
                ours.insert(peer.name.clone());
                let node_ips: Vec<IpPrefix> = discover_node_ips(
                    inp.node,
                    &cfg.hijack_subnets(),
                    &all_pod_ips(inp.pod),
                    &ours,
                )
                .into_iter()
                .filter(|n| fams.contains(&Family::of(n.addr())))
                .collect();
                if let Some(peer_mac) = peer.mac {
                    for n in &node_ips {
                        plan.intents.push(infra(Object::Neigh(NeighObj {
                            dev: overlay.to_owned(),
                            ip: n.addr(),
                            mac: peer_mac,
                        })));
                    }
                }
                for n in &node_ips {
                    plan.intents.push(infra(Object::Route(dev_route(
                        TABLE_MAIN,
                        host_prefix(n.addr()),
                        overlay,
                        None,
                    ))));
                }
                if cfg.rp_filter.set_host && fams.contains(&Family::V4) {
                    plan.intents.push(Intent::sysctl(
                        Side::Node,
                        Role::Infra,
                        rp_key(&peer.name),
                        cfg.rp_filter.value.value().to_string(),
                        SysctlMode::Set,
                    ));
                }
            }
            Some(t)
        }
    };
    if let (Some(peer), Some(ov_mac)) = (peer, ov.mac) {
        let mut host_table_fams = BTreeSet::new();
        for a in own {
            plan.intents.push(Intent::add(
                Side::Node,
                Role::Own,
                Object::Neigh(NeighObj { dev: peer.name.clone(), ip: a.addr(), mac: ov_mac }),
            ));
            if node_onlink(inp.node, a) {
                plan.intents.push(Intent::add(
                    Side::Node,
                    Role::Own,
                    Object::Route(dev_route(
                        cfg.host_rule_table,
                        host_prefix(a.addr()),
                        &peer.name,
                        None,
                    )),
                ));
                host_table_fams.insert(Family::of(a.addr()));
            }
        }
        for family in host_table_fams {
            plan.intents.push(Intent::add(
                Side::Node,
                Role::Own,
                Object::Rule(RuleObj {
                    family,
                    priority: PRIO_NODE_HOST_TABLE,
                    table: cfg.host_rule_table,
                    from: None,
                    to: None,
                }),
            ));
        }
    }
    plan_rp_filter(inp, &fams, &[inp.ifname, overlay], plan);
    plan_migration(inp, own, overlay_table.map(|t| (overlay, t)), &[], plan);
    Ok(())
}

/// Which interface loses its place in `main` for one family, given the current owner of
/// `main`'s default route.
pub fn migration_victim(
    flavor: Flavor,
    mode: MigrateRoute,
    ifname: &str,
    owner: &str,
    first: &str,
) -> Option<String> {
    if owner == ifname {
        return None;
    }
    let newer = nic_order(ifname, owner, first) == std::cmp::Ordering::Greater;
    let victim = match (flavor, mode) {
        (_, MigrateRoute::Never) => return None,
        (Flavor::Veth, MigrateRoute::Always) => ifname,
        (Flavor::Router, MigrateRoute::Always) => owner,
        // veth: the earliest NIC keeps main; router: the latest.
        (Flavor::Veth, MigrateRoute::Auto) => {
            if newer {
                ifname
            } else {
                owner
            }
        }
        (Flavor::Router, MigrateRoute::Auto) => {
            if newer {
                owner
            } else {
                ifname
            }
        }
    };
    Some(victim.to_owned())
}

/// Moves the victim's default route(s) out of `main` into a policy table (copying its other
/// routes there too), adds `from <victim address> lookup <table>`, and, when `main` is left
/// without a default for a family, adds one via `CNI_IFNAME`'s gateway from `prevResult`.
fn plan_migration(
    inp: &PlanInput<'_>,
    own: &[IpPrefix],
    overlay_table: Option<(&str, u32)>,
    veth_routes: &[RouteObj],
    plan: &mut Plan,
) {
    let cfg = inp.config;
    let fams = families(own);
    let mut victims: BTreeMap<String, BTreeSet<Family>> = BTreeMap::new();
    for f in &fams {
        let owner =
            inp.pod.defaults(TABLE_MAIN, *f).find_map(|r| r.oif.and_then(|i| inp.pod.name_of(i)));
        if let Some(owner) = owner
            && let Some(v) = migration_victim(
                cfg.flavor,
                cfg.migrate_route,
                inp.ifname,
                owner,
                &cfg.overlay_interface,
            )
        {
            victims.entry(v).or_default().insert(*f);
        }
    }
    let mut taken: BTreeSet<u32> = plan
        .intents
        .iter()
        .filter_map(|i| match &i.object {
            Object::Route(r) if i.side == Side::Pod => Some(r.table),
            Object::Rule(r) if i.side == Side::Pod => Some(r.table),
            _ => None,
        })
        .collect();
    let mut emptied = BTreeSet::new();
    for (victim, vfams) in &victims {
        let reuse = overlay_table.filter(|(ov, _)| ov == victim).map(|(_, t)| t);
        let table = reuse
            .unwrap_or_else(|| allocate_table(inp.pod, inp.records, inp.container_id, &mut taken));
        let addrs: Vec<IpPrefix> = inp
            .pod
            .global_addrs_of(victim)
            .into_iter()
            .filter(|a| vfams.contains(&Family::of(a.addr())))
            .collect();
        let pod = |object| Intent::add(Side::Pod, Role::Own, object);
        if reuse.is_none() {
            let mut copies: Vec<&RouteView> = inp
                .pod
                .routes_via(TABLE_MAIN, victim)
                .filter(|r| vfams.contains(&r.family()) && copyable(r))
                .collect();
            copies.sort_by_key(|r| r.dst.is_default());
            for r in copies {
                if let Some(c) = copy_route(r, table, inp.pod) {
                    plan.intents.push(pod(Object::Route(c)));
                }
            }
            let src4 = first_v4(&addrs);
            for r in veth_routes.iter().filter(|r| vfams.contains(&r.family())) {
                let mut c = r.clone();
                c.table = table;
                if c.src.is_some() {
                    c.src = src4;
                }
                plan.intents.push(pod(Object::Route(c)));
            }
        }
        for a in &addrs {
            plan.intents.push(pod(Object::Rule(RuleObj {
                family: Family::of(a.addr()),
                priority: PRIO_POD_FROM,
                table,
                from: Some(host_prefix(a.addr())),
                to: None,
            })));
        }
        for f in vfams {
            let victim_index = inp.pod.link(victim).map(|l| l.index);
            for r in inp
                .pod
                .defaults(TABLE_MAIN, *f)
                .filter(|r| r.oif.is_some() && r.oif == victim_index)
            {
                if let Some(c) = copy_route(r, TABLE_MAIN, inp.pod) {
                    plan.intents.push(Intent { action: Action::Remove, ..pod(Object::Route(c)) });
                }
            }
            if victim != inp.ifname
                && inp.pod.defaults(TABLE_MAIN, *f).all(|r| r.oif == victim_index)
            {
                emptied.insert(*f);
            }
        }
    }
    for f in emptied {
        let gw = inp
            .prev
            .ips
            .iter()
            .filter(|ip| own.iter().any(|o| o.addr() == ip.address.addr()))
            .filter_map(|ip| ip.gateway)
            .find(|g| Family::of(*g) == f);
        match gw {
            Some(gw) => plan.intents.push(Intent::add(
                Side::Pod,
                Role::Own,
                Object::Route(via_route(TABLE_MAIN, f.default_dst(), gw, inp.ifname, None)),
            )),
            None => {
                warn!(family = ?f, ifname = inp.ifname, "main table left without a default route: prevResult has no gateway")
            }
        }
    }
}

/// Current values of the sysctls a plan reads, by side and key.
pub type SysctlValues = BTreeMap<(Side, String), String>;

/// The sysctl keys [`resolve`] needs read: the keys themselves, or for a
/// [`SysctlMode::Fresh`] key the `conf/default` value the new interface inherits.
pub fn sysctls_to_read(plan: &Plan) -> Vec<(Side, String)> {
    plan.intents
        .iter()
        .filter_map(|i| match (&i.object, i.sysctl) {
            (Object::Sysctl(s), SysctlMode::Fresh) => default_key(&s.key).map(|k| (i.side, k)),
            (Object::Sysctl(s), _) => Some((i.side, s.key.clone())),
            _ => None,
        })
        .collect()
}

/// `net/ipv4/conf/<dev>/x` → `net/ipv4/conf/default/x`: what a new interface starts with.
pub fn default_key(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["net", fam, "conf", _dev, rest @ ..] if !rest.is_empty() => {
            Some(format!("net/{fam}/conf/default/{}", rest.join("/")))
        }
        _ => None,
    }
}

/// Pod sysctls an `ADD` of this configuration may read, fetched while the pod netns is
/// entered anyway to open the route socket.
pub fn pod_sysctl_prefetch(config: &Config, ifname: &str) -> Vec<String> {
    let mut keys = vec![
        rp_key("all"),
        rp_key("default"),
        rp_key(ifname),
        "net/ipv6/conf/default/disable_ipv6".to_owned(),
    ];
    if config.flavor == Flavor::Router {
        keys.push(rp_key(&config.overlay_interface));
    }
    keys
}

fn shared_from<'a>(
    records: &'a [Record],
    container_id: &str,
    side: Side,
    action: Action,
    identity: &str,
) -> Option<&'a Entry> {
    records
        .iter()
        .filter(|r| side == Side::Node || r.key.container_id == container_id)
        .flat_map(|r| &r.entries)
        .find(|e| e.side == side && e.action == action && e.object.identity() == identity)
}

fn route_matches(obj: &RouteObj, live: &RouteView, snap: &Snapshot) -> bool {
    let dev_ok = match (&obj.dev, live.oif) {
        (Some(d), Some(i)) => snap.name_of(i) == Some(d.as_str()),
        (None, _) => true,
        (Some(_), None) => false,
    };
    dev_ok && obj.gw == live.gw && (obj.src.is_none() || obj.src == live.src)
}

/// Resolves intents into record entries.
pub fn resolve(
    plan: &Plan,
    sysctls: &SysctlValues,
    pod: &Snapshot,
    node: &Snapshot,
    records: &[Record],
    container_id: &str,
) -> Result<Vec<Entry>, PlanError> {
    let mut out = Vec::with_capacity(plan.intents.len());
    // Routes an earlier intent of this plan removes (a default moved out of main makes
    // room for the new one).
    let mut removed: Vec<(Side, u32, IpPrefix, u32)> = Vec::new();
    for i in &plan.intents {
        let identity = i.object.identity();
        let snap = match i.side {
            Side::Pod => pod,
            Side::Node => node,
        };
        let entry = |object: Object, origin: Origin| Entry {
            side: i.side,
            action: i.action,
            object,
            origin,
            role: i.role,
        };
        if let Some(theirs) = shared_from(records, container_id, i.side, i.action, &identity) {
            let origin = if theirs.origin == Origin::Preexisting {
                Origin::Preexisting
            } else {
                Origin::Shared
            };
            out.push(entry(theirs.object.clone(), origin));
            continue;
        }
        match (&i.action, &i.object) {
            (Action::Add, Object::Sysctl(s)) => {
                if i.sysctl == SysctlMode::Fresh {
                    // A new interface starts with conf/default: write only if that differs.
                    let inherited = default_key(&s.key).and_then(|k| sysctls.get(&(i.side, k)));
                    if inherited.is_none_or(|v| v.trim() != s.value) {
                        out.push(entry(i.object.clone(), Origin::Created));
                    }
                    continue;
                }
                let cur = sysctls
                    .get(&(i.side, s.key.clone()))
                    .ok_or_else(|| PlanError::SysctlNotRead { side: i.side, key: s.key.clone() })?;
                let needed = match i.sysctl {
                    SysctlMode::LowerTo => {
                        match (cur.trim().parse::<i64>(), s.value.parse::<i64>()) {
                            (Ok(c), Ok(v)) => c > v,
                            _ => cur.trim() != s.value,
                        }
                    }
                    _ => cur.trim() != s.value,
                };
                if needed {
                    let obj = SysctlObj {
                        key: s.key.clone(),
                        value: s.value.clone(),
                        previous: Some(cur.trim().to_owned()),
                    };
                    out.push(entry(Object::Sysctl(obj), Origin::Created));
                }
            }
            (Action::Add, Object::Veth(v)) => {
                if node.link(&v.host).is_some() {
                    return Err(PlanError::Conflict {
                        side: Side::Node,
                        what: format!("interface {}", v.host),
                    });
                }
                if pod.link(&v.pod).is_some() {
                    return Err(PlanError::Conflict {
                        side: Side::Pod,
                        what: format!("interface {}", v.pod),
                    });
                }
                out.push(entry(i.object.clone(), Origin::Created));
            }
            (Action::Add, Object::Route(r)) => {
                let live = snap.routes.iter().find(|l| {
                    l.table == r.table
                        && l.dst == r.dst
                        && l.metric == r.metric
                        && !removed.contains(&(i.side, l.table, l.dst, l.metric))
                });
                match live {
                    None => out.push(entry(i.object.clone(), Origin::Created)),
                    Some(l) if route_matches(r, l, snap) => {
                        out.push(entry(i.object.clone(), Origin::Preexisting))
                    }
                    Some(l) => {
                        let dev = l.oif.and_then(|x| snap.name_of(x)).unwrap_or("?");
                        let gw = l.gw.map(|g| format!(" via {g}")).unwrap_or_default();
                        return Err(PlanError::Conflict {
                            side: i.side,
                            what: format!(
                                "route {}{gw} dev {dev} table {} metric {}",
                                l.dst, l.table, l.metric
                            ),
                        });
                    }
                }
            }
            (Action::Remove, Object::Route(r)) => {
                if snap
                    .routes
                    .iter()
                    .any(|l| l.table == r.table && l.dst == r.dst && l.metric == r.metric)
                {
                    removed.push((i.side, r.table, r.dst, r.metric));
                    out.push(entry(i.object.clone(), Origin::Created));
                }
            }
            (Action::Add, Object::Rule(r)) => {
                let live = snap.rules.iter().any(|l| {
                    l.family == r.family
                        && l.priority == r.priority
                        && l.table == Some(r.table)
                        && l.from == r.from
                        && l.to == r.to
                        && !l.has_other_selectors
                });
                out.push(entry(
                    i.object.clone(),
                    if live { Origin::Preexisting } else { Origin::Created },
                ));
            }
            _ => out.push(entry(i.object.clone(), Origin::Created)),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
