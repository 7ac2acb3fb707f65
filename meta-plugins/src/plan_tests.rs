//! Golden desired-state tables for the planner.

use super::*;
use crate::config::{Config, Flavor};
use crate::model::Role;
use crate::state::{AttachmentKey, RECORD_FORMAT, Record, Status};
use crate::view::{AddrView, LinkView, RouteView, RuleView, SCOPE_LINK, SCOPE_UNIVERSE, Snapshot};
use pretty_assertions::assert_eq;
use serde_json::json;

const KERNEL: u8 = 2;
const BOOT: u8 = 3;

fn config(flavor: Flavor, extra: serde_json::Value) -> Config {
    let mut v = json!({
        "service_hijack_subnet": ["198.51.100.0/25", "2001:db8:5::/112"],
        "overlay_hijack_subnet": ["198.51.100.128/25", "2001:db8:6::/64"],
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    match v {
        serde_json::Value::Object(m) => Config::from_keys(flavor, &m).unwrap(),
        _ => unreachable!(),
    }
}

fn link(index: u32, name: &str, kind: Option<&str>, mac: &str) -> LinkView {
    LinkView {
        index,
        name: name.into(),
        mac: Some(mac.parse().unwrap()),
        mtu: 1500,
        kind: kind.map(Into::into),
        peer_index: None,
        peer_netnsid: None,
    }
}

fn veth_link(index: u32, name: &str, mac: &str, peer: u32, netnsid: Option<i32>) -> LinkView {
    LinkView {
        peer_index: Some(peer),
        peer_netnsid: netnsid,
        ..link(index, name, Some("veth"), mac)
    }
}

fn addr(index: u32, a: &str) -> AddrView {
    let addr: cni_spec::IpPrefix = a.parse().unwrap();
    let scope = if crate::view::is_global_ip(addr.addr()) { SCOPE_UNIVERSE } else { SCOPE_LINK };
    AddrView { index, addr, scope, dad_failed: false }
}

fn host_scoped(index: u32, a: &str) -> AddrView {
    AddrView { scope: 254, ..addr(index, a) }
}

fn route(table: u32, dst: &str, gw: Option<&str>, oif: u32, metric: u32) -> RouteView {
    let dst: cni_spec::IpPrefix = dst.parse().unwrap();
    let link_scope = gw.is_none() && dst.is_ipv4();
    RouteView {
        table,
        dst,
        gw: gw.map(|g| g.parse().unwrap()),
        oif: Some(oif),
        src: None,
        scope: if link_scope { SCOPE_LINK } else { SCOPE_UNIVERSE },
        metric,
        protocol: if gw.is_none() { KERNEL } else { BOOT },
    }
}

/// A pod whose `eth0` (macvlan) is on the underlay 192.0.2.0/24 and 2001:db8:1::/64.
fn underlay_pod() -> Snapshot {
    Snapshot {
        links: vec![
            link(1, "lo", None, "00:00:00:00:00:00"),
            link(2, "eth0", Some("macvlan"), "02:00:00:00:00:50"),
        ],
        addrs: vec![
            host_scoped(1, "127.0.0.1/8"),
            addr(2, "192.0.2.50/24"),
            addr(2, "2001:db8:1::50/64"),
            addr(2, "fe80::50/64"),
        ],
        routes: vec![
            route(254, "192.0.2.0/24", None, 2, 0),
            route(254, "0.0.0.0/0", Some("192.0.2.1"), 2, 0),
            route(254, "2001:db8:1::/64", None, 2, 256),
            route(254, "fe80::/64", None, 2, 256),
            route(254, "::/0", Some("2001:db8:1::1"), 2, 1024),
        ],
        rules: vec![],
    }
}

/// The node: an uplink veth (peer in the switch), a link to the endpoint, a ptp host end,
/// kube-ipvs0 with a service VIP, and a global address on lo.
fn node() -> Snapshot {
    Snapshot {
        links: vec![
            link(1, "lo", None, "00:00:00:00:00:00"),
            veth_link(2, "uplink", "02:00:00:00:00:10", 2, Some(0)),
            veth_link(3, "toep", "02:00:00:00:00:11", 2, Some(1)),
            veth_link(4, "vethptp", "02:00:00:00:00:12", 2, Some(2)),
            link(5, "kube-ipvs0", Some("dummy"), "02:00:00:00:00:13"),
        ],
        addrs: vec![
            host_scoped(1, "127.0.0.1/8"),
            addr(1, "203.0.113.250/32"),
            addr(2, "192.0.2.10/24"),
            addr(2, "2001:db8:1::10/64"),
            addr(2, "fe80::10/64"),
            addr(3, "203.0.113.129/30"),
            addr(3, "2001:db8:f::1/64"),
            addr(4, "203.0.113.200/32"),
            addr(5, "198.51.100.10/32"),
            addr(2, "169.254.3.3/16"),
        ],
        routes: vec![
            route(254, "192.0.2.0/24", None, 2, 0),
            route(254, "0.0.0.0/0", Some("192.0.2.1"), 2, 0),
        ],
        rules: vec![],
    }
}

fn lines(plan: &Plan) -> Vec<String> {
    plan.intents
        .iter()
        .map(|i| {
            let role = match i.role {
                Role::Infra => "infra",
                Role::Own => "own",
            };
            let verb = match i.action {
                Action::Add => "add",
                Action::Remove => "remove",
            };
            format!("[{role}] {} {verb} {}", i.side, i.object)
        })
        .collect()
}

fn input<'a>(
    config: &'a Config,
    ifname: &'a str,
    prev: &'a CniResult,
    pod: &'a Snapshot,
    node: &'a Snapshot,
    records: &'a [Record],
) -> PlanInput<'a> {
    PlanInput { config, container_id: "c1", ifname, prev, pod, node, records }
}

fn record_of(flavor: Flavor, cid: &str, ifname: &str, entries: Vec<Entry>) -> Record {
    Record {
        format: RECORD_FORMAT,
        key: AttachmentKey {
            plugin: flavor,
            network: "n".into(),
            container_id: cid.into(),
            ifname: ifname.into(),
        },
        netns: "/run/netns/p".into(),
        status: Status::Committed,
        entries,
    }
}

fn resolve_all(plan: &Plan, pod: &Snapshot, node: &Snapshot, records: &[Record]) -> Vec<Entry> {
    let values: SysctlValues =
        sysctls_to_read(plan).into_iter().map(|k| (k, "1".to_owned())).collect();
    resolve(plan, &values, pod, node, records, "c1").unwrap()
}

#[test]
fn node_ips_come_from_addresses_not_names() {
    let hijack = config(Flavor::Veth, json!({})).hijack_subnets();
    let ips =
        discover_node_ips(&node(), &hijack, &["192.0.2.50".parse().unwrap()], &BTreeSet::new());
    let got: Vec<String> = ips.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        vec![
            "192.0.2.10/24",
            "203.0.113.129/30",
            "203.0.113.250/32",
            "2001:db8:1::10/64",
            "2001:db8:f::1/64"
        ]
    );
    // The plugin's own host veths never contribute, whatever their addresses.
    let ours: BTreeSet<String> = ["toep".to_owned()].into();
    let ips = discover_node_ips(&node(), &hijack, &[], &ours);
    assert!(ips.iter().all(|p| p.addr().to_string() != "203.0.113.129"));
    // A node address equal to a pod address is skipped.
    let ips =
        discover_node_ips(&node(), &hijack, &["203.0.113.250".parse().unwrap()], &BTreeSet::new());
    assert!(ips.iter().all(|p| p.addr().to_string() != "203.0.113.250"));
}

#[test]
fn gateway_prefers_the_node_address_on_the_pods_subnet() {
    let ips: Vec<cni_spec::IpPrefix> = ["10.9.0.1/8", "192.0.2.10/24", "2001:db8:f::1/64"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let own: Vec<cni_spec::IpPrefix> =
        vec!["192.0.2.50/24".parse().unwrap(), "2001:db8:1::50/64".parse().unwrap()];
    assert_eq!(pick_gateway(&ips, &own, Family::V4), Some("192.0.2.10".parse().unwrap()));
    assert_eq!(
        pick_gateway(&ips, &own, Family::V6),
        Some("2001:db8:f::1".parse().unwrap()),
        "falls back to the first"
    );
    assert_eq!(pick_gateway(&ips[..1], &own, Family::V6), None);
}

#[test]
fn tables_are_the_lowest_free_for_any_interface_name() {
    let mut pod = underlay_pod();
    let mut taken = BTreeSet::new();
    assert_eq!(allocate_table(&pod, &[], "c1", &mut taken), 100);
    assert_eq!(allocate_table(&pod, &[], "c1", &mut taken), 101, "taken in this plan");
    pod.routes.push(route(100, "0.0.0.0/0", Some("192.0.2.1"), 2, 0));
    pod.rules.push(RuleView {
        family: Family::V4,
        priority: 5,
        table: Some(102),
        from: None,
        to: None,
        has_other_selectors: false,
    });
    let rec = record_of(
        Flavor::Router,
        "c1",
        "weird-name.7",
        vec![Entry {
            side: Side::Pod,
            action: Action::Add,
            object: Object::Rule(RuleObj {
                family: Family::V4,
                priority: 1,
                table: 103,
                from: None,
                to: None,
            }),
            origin: Origin::Created,
            role: Role::Own,
        }],
    );
    let other_pod = record_of(
        Flavor::Router,
        "c2",
        "net1",
        rec.entries
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Object::Rule(r) = &mut e.object {
                    r.table = 104;
                }
                e
            })
            .collect(),
    );
    let mut taken = BTreeSet::new();
    let records = [rec, other_pod];
    assert_eq!(allocate_table(&pod, &records, "c1", &mut taken), 101);
    assert_eq!(
        allocate_table(&pod, &records, "c1", &mut taken),
        104,
        "other containers' tables do not count"
    );
}

#[test]
fn migration_victims_follow_nic_order() {
    use MigrateRoute::*;
    let v = |f, m, new: &str, owner: &str| migration_victim(f, m, new, owner, "eth0");
    assert_eq!(
        v(Flavor::Veth, Auto, "net1", "eth0").as_deref(),
        Some("net1"),
        "veth: earliest keeps main"
    );
    assert_eq!(
        v(Flavor::Veth, Auto, "net1", "net2").as_deref(),
        Some("net2"),
        "out-of-order attach"
    );
    assert_eq!(v(Flavor::Veth, Always, "net1", "net2").as_deref(), Some("net1"));
    assert_eq!(
        v(Flavor::Router, Auto, "net1", "eth0").as_deref(),
        Some("eth0"),
        "router: latest keeps main"
    );
    assert_eq!(
        v(Flavor::Router, Auto, "net2", "net10").as_deref(),
        Some("net2"),
        "natural order: net10 is later"
    );
    assert_eq!(v(Flavor::Router, Always, "net2", "net10").as_deref(), Some("net10"));
    assert_eq!(v(Flavor::Router, Never, "net1", "eth0"), None);
    assert_eq!(v(Flavor::Veth, Auto, "eth0", "eth0"), None, "owner is the interface itself");
}

#[test]
fn veth_first_attachment_dual_stack() {
    let cfg = config(Flavor::Veth, json!({}));
    let (pod, node) = (underlay_pod(), node());
    let prev = CniResult::default();
    let plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    let h = host_veth_name("c1");
    let (hm, pm) = (host_veth_mac("c1"), pod_veth_mac("c1"));
    let expected = vec![
        format!("[infra] node add veth {h} ({hm}) <-> veth0 ({pm}) mtu 1500"),
        "[infra] pod add sysctl net/ipv6/conf/veth0/disable_ipv6 = 0".to_owned(),
        format!("[infra] node add sysctl net/ipv4/conf/{h}/rp_filter = 2"),
        format!("[infra] pod add neigh 192.0.2.10 lladdr {hm} dev veth0 permanent"),
        format!("[infra] pod add neigh 203.0.113.129 lladdr {hm} dev veth0 permanent"),
        format!("[infra] pod add neigh 203.0.113.250 lladdr {hm} dev veth0 permanent"),
        format!("[infra] pod add neigh 2001:db8:1::10 lladdr {hm} dev veth0 permanent"),
        format!("[infra] pod add neigh 2001:db8:f::1 lladdr {hm} dev veth0 permanent"),
        "[infra] pod add route 192.0.2.10/32 dev veth0 src 192.0.2.50 table 254 metric 0".to_owned(),
        "[infra] pod add route 203.0.113.129/32 dev veth0 src 192.0.2.50 table 254 metric 0".to_owned(),
        "[infra] pod add route 203.0.113.250/32 dev veth0 src 192.0.2.50 table 254 metric 0".to_owned(),
        "[infra] pod add route 2001:db8:1::10/128 dev veth0 table 254 metric 1024".to_owned(),
        "[infra] pod add route 2001:db8:f::1/128 dev veth0 table 254 metric 1024".to_owned(),
        "[infra] pod add route 198.51.100.0/25 via 192.0.2.10 dev veth0 src 192.0.2.50 table 254 metric 0".to_owned(),
        "[infra] pod add route 198.51.100.128/25 via 192.0.2.10 dev veth0 src 192.0.2.50 table 254 metric 0".to_owned(),
        "[infra] pod add route 2001:db8:5::/112 via 2001:db8:1::10 dev veth0 table 254 metric 1024".to_owned(),
        "[infra] pod add route 2001:db8:6::/64 via 2001:db8:1::10 dev veth0 table 254 metric 1024".to_owned(),
        format!("[own] node add route 192.0.2.50/32 dev {h} table 254 metric 0"),
        format!("[own] node add neigh 192.0.2.50 lladdr {pm} dev {h} permanent"),
        format!("[own] node add route 2001:db8:1::50/128 dev {h} table 254 metric 1024"),
        format!("[own] node add neigh 2001:db8:1::50 lladdr {pm} dev {h} permanent"),
        "[infra] pod add sysctl net/ipv4/conf/veth0/rp_filter = 2".to_owned(),
        "[own] pod add sysctl net/ipv4/conf/eth0/rp_filter = 2".to_owned(),
        "[own] pod add sysctl net/ipv4/conf/all/rp_filter = 2".to_owned(),
        "[own] node add sysctl net/ipv4/conf/all/rp_filter = 2".to_owned(),
    ];
    assert_eq!(lines(&plan), expected);
    assert_eq!(plan.created.len(), 2);
    assert!(plan.created[1].in_pod && plan.created[1].name == "veth0" && plan.created[1].mac == pm);
    assert_eq!(plan.new_mac, None);
}

#[test]
fn veth_ipv4_only_without_host_side_rp_filter() {
    let cfg = config(Flavor::Veth, json!({"rp_filter": {"set_host": false, "value": 0}}));
    let mut pod = underlay_pod();
    pod.addrs.retain(|a| a.addr.is_ipv4());
    pod.routes.retain(|r| r.dst.is_ipv4());
    let node = node();
    let prev = CniResult::default();
    let plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    let l = lines(&plan);
    assert!(l.iter().all(|x| !x.contains("2001:db8") && !x.contains("ipv6")), "{l:#?}");
    assert!(
        l.iter().all(|x| !x.starts_with("[own] node add sysctl")
            && !x.starts_with("[infra] node add sysctl")),
        "{l:#?}"
    );
    assert!(l.contains(&"[own] pod add sysctl net/ipv4/conf/eth0/rp_filter = 0".to_owned()));
}

#[test]
fn veth_second_attachment_inherits_and_migrates() {
    let cfg = config(Flavor::Veth, json!({}));
    let node = node();
    let prev = CniResult::default();
    // First attachment on eth0.
    let pod = underlay_pod();
    let first_plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    let first = record_of(Flavor::Veth, "c1", "eth0", resolve_all(&first_plan, &pod, &node, &[]));
    // Then net1 (another macvlan, IPv4 only, with its own default route at a higher metric).
    let mut pod = pod;
    pod.links.push(link(3, "veth0", Some("veth"), &pod_veth_mac("c1").to_string()));
    pod.links.push(link(4, "net1", Some("macvlan"), "02:00:00:00:00:60"));
    pod.addrs.push(addr(4, "203.0.113.60/26"));
    pod.routes.push(route(254, "203.0.113.0/26", None, 4, 0));
    pod.routes.push(route(254, "0.0.0.0/0", Some("203.0.113.1"), 4, 100));
    let records = vec![first];
    let plan = plan_add(&input(&cfg, "net1", &prev, &pod, &node, &records)).unwrap();
    assert!(plan.created.is_empty(), "the pair belongs to the first attachment");
    let l = lines(&plan);
    let infra: Vec<&String> = l.iter().filter(|x| x.starts_with("[infra]")).collect();
    assert_eq!(infra.len(), 18, "every infra entry of the first record is inherited: {l:#?}");
    let own: Vec<&str> = l.iter().filter(|x| x.starts_with("[own]")).map(String::as_str).collect();
    let h = host_veth_name("c1");
    let pm = pod_veth_mac("c1");
    assert_eq!(
        own,
        vec![
            format!("[own] node add route 203.0.113.60/32 dev {h} table 254 metric 0").as_str(),
            format!("[own] node add neigh 203.0.113.60 lladdr {pm} dev {h} permanent").as_str(),
            "[own] pod add sysctl net/ipv4/conf/net1/rp_filter = 2",
            "[own] pod add sysctl net/ipv4/conf/all/rp_filter = 2",
            "[own] node add sysctl net/ipv4/conf/all/rp_filter = 2",
            // net1 sorts after eth0: its routes move to table 100.
            "[own] pod add route 203.0.113.0/26 dev net1 table 100 metric 0",
            "[own] pod add route 0.0.0.0/0 via 203.0.113.1 dev net1 table 100 metric 100",
            "[own] pod add route 192.0.2.10/32 dev veth0 src 203.0.113.60 table 100 metric 0",
            "[own] pod add route 203.0.113.129/32 dev veth0 src 203.0.113.60 table 100 metric 0",
            "[own] pod add route 203.0.113.250/32 dev veth0 src 203.0.113.60 table 100 metric 0",
            "[own] pod add route 198.51.100.0/25 via 192.0.2.10 dev veth0 src 203.0.113.60 table 100 metric 0",
            "[own] pod add route 198.51.100.128/25 via 192.0.2.10 dev veth0 src 203.0.113.60 table 100 metric 0",
            "[own] pod add rule V4 pref 31100 from 203.0.113.60/32 to all lookup 100",
            "[own] pod remove route 0.0.0.0/0 via 203.0.113.1 dev net1 table 254 metric 100",
        ],
    );
    // The resolved inherited entries are shared, not created again.
    let entries = resolve_all(&plan, &pod, &node, &records);
    assert!(entries.iter().filter(|e| e.role == Role::Infra).all(|e| e.origin == Origin::Shared));
}

#[test]
fn veth_out_of_order_attachment_moves_the_owner() {
    // net1 owns main's default; eth0 arrives later with migrate_route -1.
    let cfg = config(Flavor::Veth, json!({}));
    let node = node();
    let mut pod = underlay_pod();
    pod.routes.retain(|r| !(r.dst.is_default() && r.dst.is_ipv4()));
    pod.links.push(link(4, "net1", Some("macvlan"), "02:00:00:00:00:60"));
    pod.addrs.push(addr(4, "203.0.113.60/26"));
    pod.routes.push(route(254, "0.0.0.0/0", Some("203.0.113.1"), 4, 0));
    let prev: CniResult = cni_spec::parse_result(
        json!({"cniVersion": "1.0.0", "ips": [{"address": "192.0.2.50/24", "gateway": "192.0.2.1"}]}).to_string().as_bytes(),
        cni_spec::CniVersion::V1_0_0,
    )
    .unwrap()
    .result;
    let plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    let l = lines(&plan);
    assert!(
        l.contains(
            &"[own] pod add rule V4 pref 31100 from 203.0.113.60/32 to all lookup 100".to_owned()
        ),
        "{l:#?}"
    );
    assert!(
        l.contains(
            &"[own] pod remove route 0.0.0.0/0 via 203.0.113.1 dev net1 table 254 metric 0"
                .to_owned()
        ),
        "{l:#?}"
    );
    assert!(
        l.contains(
            &"[own] pod add route 0.0.0.0/0 via 192.0.2.1 dev eth0 table 254 metric 0".to_owned()
        ),
        "{l:#?}"
    );
    // With migrate_route 0 nothing moves.
    let never = config(Flavor::Veth, json!({"migrate_route": 0}));
    let plan = plan_add(&input(&never, "eth0", &prev, &pod, &node, &[])).unwrap();
    assert!(lines(&plan).iter().all(|x| !x.contains("lookup 100") && !x.contains("remove")));
}

/// eth0 from ptp (198.51.100.140/25 via 198.51.100.129), net1 macvlan 192.0.2.60/24.
fn overlay_pod() -> Snapshot {
    Snapshot {
        links: vec![
            link(1, "lo", None, "00:00:00:00:00:00"),
            veth_link(2, "eth0", "02:00:00:00:00:40", 6, Some(0)),
            link(3, "net1", Some("macvlan"), "02:00:00:00:00:60"),
        ],
        addrs: vec![
            addr(2, "198.51.100.140/25"),
            addr(3, "192.0.2.60/24"),
            addr(3, "2001:db8:1::60/64"),
        ],
        routes: vec![
            route(254, "198.51.100.129/32", None, 2, 0),
            route(254, "198.51.100.128/25", Some("198.51.100.129"), 2, 0),
            route(254, "0.0.0.0/0", Some("198.51.100.129"), 2, 0),
            route(254, "192.0.2.0/24", None, 3, 0),
            route(254, "2001:db8:1::/64", None, 3, 256),
            route(254, "fe80::/64", None, 2, 256),
        ],
        rules: vec![],
    }
}

fn overlay_node() -> Snapshot {
    let mut n = node();
    n.links.push(veth_link(6, "vethptp0", "02:00:00:00:00:66", 2, Some(3)));
    n.addrs.push(addr(6, "198.51.100.129/32"));
    n
}

fn net1_prev() -> CniResult {
    cni_spec::parse_result(
        json!({"cniVersion": "1.0.0",
               "interfaces": [{"name": "net1", "sandbox": "/run/netns/p"}],
               "ips": [{"address": "192.0.2.60/24", "gateway": "192.0.2.1", "interface": 0},
                       {"address": "2001:db8:1::60/64", "gateway": "2001:db8:1::1", "interface": 0}]})
        .to_string()
        .as_bytes(),
        cni_spec::CniVersion::V1_0_0,
    )
    .unwrap()
    .result
}

#[test]
fn router_first_attachment() {
    let cfg = config(Flavor::Router, json!({"additional_hijack_subnet": ["203.0.113.64/26"]}));
    let (pod, node, prev) = (overlay_pod(), overlay_node(), net1_prev());
    let plan = plan_add(&input(&cfg, "net1", &prev, &pod, &node, &[])).unwrap();
    let nm = "02:00:00:00:00:66";
    let expected = vec![
        "[infra] pod add route 198.51.100.129/32 dev eth0 table 100 metric 0".to_owned(),
        "[infra] pod add route 198.51.100.128/25 via 198.51.100.129 dev eth0 table 100 metric 0"
            .to_owned(),
        "[infra] pod add route 0.0.0.0/0 via 198.51.100.129 dev eth0 table 100 metric 0".to_owned(),
        "[infra] pod add rule V4 pref 31000 from all to 198.51.100.0/25 lookup 100".to_owned(),
        "[infra] pod add rule V4 pref 31000 from all to 198.51.100.128/25 lookup 100".to_owned(),
        "[infra] pod add rule V4 pref 31000 from all to 203.0.113.64/26 lookup 100".to_owned(),
        format!("[infra] pod add neigh 192.0.2.10 lladdr {nm} dev eth0 permanent"),
        format!("[infra] pod add neigh 203.0.113.129 lladdr {nm} dev eth0 permanent"),
        format!("[infra] pod add neigh 203.0.113.250 lladdr {nm} dev eth0 permanent"),
        format!("[infra] pod add neigh 2001:db8:1::10 lladdr {nm} dev eth0 permanent"),
        format!("[infra] pod add neigh 2001:db8:f::1 lladdr {nm} dev eth0 permanent"),
        "[infra] pod add route 192.0.2.10/32 dev eth0 table 254 metric 0".to_owned(),
        "[infra] pod add route 203.0.113.129/32 dev eth0 table 254 metric 0".to_owned(),
        "[infra] pod add route 203.0.113.250/32 dev eth0 table 254 metric 0".to_owned(),
        "[infra] pod add route 2001:db8:1::10/128 dev eth0 table 254 metric 1024".to_owned(),
        "[infra] pod add route 2001:db8:f::1/128 dev eth0 table 254 metric 1024".to_owned(),
        "[infra] node add sysctl net/ipv4/conf/vethptp0/rp_filter = 2".to_owned(),
        "[own] node add neigh 192.0.2.60 lladdr 02:00:00:00:00:40 dev vethptp0 permanent"
            .to_owned(),
        "[own] node add route 192.0.2.60/32 dev vethptp0 table 500 metric 0".to_owned(),
        "[own] node add neigh 2001:db8:1::60 lladdr 02:00:00:00:00:40 dev vethptp0 permanent"
            .to_owned(),
        "[own] node add route 2001:db8:1::60/128 dev vethptp0 table 500 metric 1024".to_owned(),
        "[own] node add rule V4 pref 1000 from all to all lookup 500".to_owned(),
        "[own] node add rule V6 pref 1000 from all to all lookup 500".to_owned(),
        "[own] pod add sysctl net/ipv4/conf/net1/rp_filter = 2".to_owned(),
        "[own] pod add sysctl net/ipv4/conf/eth0/rp_filter = 2".to_owned(),
        "[own] pod add sysctl net/ipv4/conf/all/rp_filter = 2".to_owned(),
        "[own] node add sysctl net/ipv4/conf/all/rp_filter = 2".to_owned(),
        "[own] pod add rule V4 pref 31100 from 198.51.100.140/32 to all lookup 100".to_owned(),
        "[own] pod remove route 0.0.0.0/0 via 198.51.100.129 dev eth0 table 254 metric 0"
            .to_owned(),
        "[own] pod add route 0.0.0.0/0 via 192.0.2.1 dev net1 table 254 metric 0".to_owned(),
    ];
    assert_eq!(lines(&plan), expected);
    assert!(plan.created.is_empty());
}

#[test]
fn router_sriov_skips_the_node_and_off_link_skips_table_500() {
    let cfg = config(Flavor::Router, json!({"sriov": true, "rp_filter": {"set_host": false}}));
    let mut pod = overlay_pod();
    // The overlay need not be a veth with sriov: true.
    pod.links[1] = link(2, "eth0", Some("ipvlan"), "02:00:00:00:00:40");
    let (node, prev) = (overlay_node(), net1_prev());
    let plan = plan_add(&input(&cfg, "net1", &prev, &pod, &node, &[])).unwrap();
    assert!(plan.intents.iter().all(|i| i.side == Side::Pod), "{:#?}", lines(&plan));
    assert!(lines(&plan).iter().all(|l| !l.contains("neigh")));

    // Off-link underlay address: neighbour yes, table 500 no.
    let cfg = config(Flavor::Router, json!({}));
    let mut pod = overlay_pod();
    pod.addrs = vec![addr(2, "198.51.100.140/25"), addr(3, "203.0.113.70/26")];
    let plan = plan_add(&input(&cfg, "net1", &prev, &pod, &overlay_node(), &[])).unwrap();
    let l = lines(&plan);
    assert!(
        l.contains(
            &"[own] node add neigh 203.0.113.70 lladdr 02:00:00:00:00:40 dev vethptp0 permanent"
                .to_owned()
        )
    );
    assert!(l.iter().all(|x| !x.contains("table 500") && !x.contains("lookup 500")), "{l:#?}");
}

#[test]
fn router_second_attachment_moves_the_previous_underlay() {
    let cfg = config(Flavor::Router, json!({}));
    let (pod, node, prev) = (overlay_pod(), overlay_node(), net1_prev());
    let plan = plan_add(&input(&cfg, "net1", &prev, &pod, &node, &[])).unwrap();
    let first = record_of(Flavor::Router, "c1", "net1", resolve_all(&plan, &pod, &node, &[]));
    // After net1: main's default is via net1; net2 arrives.
    let mut pod = pod;
    pod.routes.retain(|r| !(r.dst.is_default() && r.oif == Some(2)));
    pod.routes.push(route(254, "0.0.0.0/0", Some("192.0.2.1"), 3, 0));
    pod.links.push(link(4, "net2", Some("macvlan"), "02:00:00:00:00:70"));
    pod.addrs.push(addr(4, "203.0.113.70/26"));
    pod.routes.push(route(254, "203.0.113.64/26", None, 4, 0));
    let prev2 = cni_spec::parse_result(
        json!({"cniVersion": "1.0.0", "ips": [{"address": "203.0.113.70/26", "gateway": "203.0.113.65"}]}).to_string().as_bytes(),
        cni_spec::CniVersion::V1_0_0,
    )
    .unwrap()
    .result;
    let records = vec![first];
    let plan = plan_add(&input(&cfg, "net2", &prev2, &pod, &node, &records)).unwrap();
    let l = lines(&plan);
    for want in [
        "[own] pod add route 192.0.2.0/24 dev net1 table 101 metric 0",
        "[own] pod add route 0.0.0.0/0 via 192.0.2.1 dev net1 table 101 metric 0",
        "[own] pod add rule V4 pref 31100 from 192.0.2.60/32 to all lookup 101",
        "[own] pod remove route 0.0.0.0/0 via 192.0.2.1 dev net1 table 254 metric 0",
        "[own] pod add route 0.0.0.0/0 via 203.0.113.65 dev net2 table 254 metric 0",
    ] {
        assert!(l.contains(&want.to_owned()), "missing {want}: {l:#?}");
    }
    assert_eq!(l.iter().filter(|x| x.starts_with("[infra]")).count(), 16);
}

#[test]
fn router_errors() {
    let (pod, node, prev) = (overlay_pod(), overlay_node(), net1_prev());
    let cfg = config(Flavor::Router, json!({"overlay_interface": "net1"}));
    assert_eq!(
        plan_add(&input(&cfg, "net1", &prev, &pod, &node, &[])),
        Err(PlanError::OverlayIsIfname { ifname: "net1".into() })
    );
    let cfg = config(Flavor::Router, json!({"overlay_interface": "eth9"}));
    assert_eq!(
        plan_add(&input(&cfg, "net1", &prev, &pod, &node, &[])),
        Err(PlanError::MissingInterface { ifname: "eth9".into() })
    );
    let cfg = config(Flavor::Router, json!({}));
    let mut no_peer = overlay_pod();
    no_peer.links[1].peer_netnsid = None;
    assert_eq!(
        plan_add(&input(&cfg, "net1", &prev, &no_peer, &node, &[])),
        Err(PlanError::OverlayNotVeth { ifname: "eth0".into() })
    );
    assert_eq!(
        plan_add(&input(&cfg, "net9", &prev, &pod, &node, &[])),
        Err(PlanError::MissingInterface { ifname: "net9".into() })
    );
    let mut bare = overlay_pod();
    bare.addrs.retain(|a| a.index != 3);
    assert_eq!(
        plan_add(&input(&cfg, "net1", &prev, &bare, &node, &[])),
        Err(PlanError::NoAddress { ifname: "net1".into() })
    );
}

#[test]
fn mac_prefix_rewrites_and_only_op_mac_stops() {
    let cfg = config(Flavor::Veth, json!({"mac_prefix": "0a:1b"}));
    let (pod, node, prev) = (underlay_pod(), node(), CniResult::default());
    let plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    assert_eq!(
        lines(&plan)[0],
        "[own] pod add mac of eth0 = 0a:1b:c0:00:02:32 (was 02:00:00:00:00:50)"
    );
    assert_eq!(plan.new_mac, Some("0a:1b:c0:00:02:32".parse().unwrap()));
    let cfg = config(Flavor::Router, json!({"mac_prefix": "0a:1b", "only_op_mac": true}));
    let plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    assert_eq!(plan.intents.len(), 1);
}

#[test]
fn resolve_shares_adopts_conflicts_and_skips() {
    let cfg = config(Flavor::Router, json!({}));
    let (pod, mut node, prev) = (overlay_pod(), overlay_node(), net1_prev());
    // The node already has the host-table rule for IPv4 (e.g. left by the original plugin).
    node.rules.push(RuleView {
        family: Family::V4,
        priority: 1000,
        table: Some(500),
        from: None,
        to: None,
        has_other_selectors: false,
    });
    let plan = plan_add(&input(&cfg, "net1", &prev, &pod, &node, &[])).unwrap();
    let mut values: SysctlValues =
        sysctls_to_read(&plan).into_iter().map(|k| (k, "0".to_owned())).collect();
    values.insert((Side::Node, "net/ipv4/conf/all/rp_filter".into()), "1".into());
    let entries = resolve(&plan, &values, &pod, &node, &[], "c1").unwrap();
    let rule = |f: Family| {
        entries
            .iter()
            .find(|e| matches!(&e.object, Object::Rule(r) if r.priority == 1000 && r.family == f))
            .unwrap()
    };
    assert_eq!(rule(Family::V4).origin, Origin::Preexisting);
    assert_eq!(rule(Family::V6).origin, Origin::Created);
    // all/rp_filter: the node's 1 is below 2: nothing to lower; the pod's 0 likewise.
    assert!(
        !entries
            .iter()
            .any(|e| matches!(&e.object, Object::Sysctl(s) if s.key.ends_with("all/rp_filter"))),
        "{entries:#?}"
    );
    // Per-interface values differ (0 -> 2): written, previous recorded.
    let eth0 = entries
        .iter()
        .find(|e| matches!(&e.object, Object::Sysctl(s) if s.key == "net/ipv4/conf/eth0/rp_filter"))
        .unwrap();
    assert_eq!(
        eth0.object,
        Object::Sysctl(SysctlObj {
            key: "net/ipv4/conf/eth0/rp_filter".into(),
            value: "2".into(),
            previous: Some("0".into())
        })
    );

    // A second container's attachment shares the node rules.
    let rec = record_of(Flavor::Router, "c1", "net1", entries.clone());
    let entries2 = resolve(&plan, &values, &pod, &node, std::slice::from_ref(&rec), "c2").unwrap();
    assert_eq!(rule(Family::V6).origin, Origin::Created);
    let r6 = entries2.iter().find(|e| matches!(&e.object, Object::Rule(r) if r.priority == 1000 && r.family == Family::V6)).unwrap();
    assert_eq!(r6.origin, Origin::Shared);
    let r4 = entries2.iter().find(|e| matches!(&e.object, Object::Rule(r) if r.priority == 1000 && r.family == Family::V4)).unwrap();
    assert_eq!(r4.origin, Origin::Preexisting, "pre-existing stays pre-existing when shared");
    // ... but not pod objects of another container.
    assert!(entries2.iter().filter(|e| e.side == Side::Pod).all(|e| e.origin != Origin::Shared));

    // A different route where ours would go is a conflict.
    let mut stale = node.clone();
    stale.routes.push(RouteView { table: 500, ..route(500, "192.0.2.60/32", None, 3, 0) });
    let err = resolve(&plan, &values, &pod, &stale, &[], "c1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "node route 192.0.2.60/32 dev toep table 500 metric 0 exists and was not made by this plugin"
    );
    // An identical one is adopted.
    let mut same = node.clone();
    same.routes.push(route(500, "192.0.2.60/32", None, 6, 0));
    let e = resolve(&plan, &values, &pod, &same, &[], "c1").unwrap();
    assert!(
        e.iter()
            .any(|e| matches!(&e.object, Object::Route(r) if r.table == 500 && r.dst.is_ipv4())
                && e.origin == Origin::Preexisting)
    );

    // Missing sysctl values are a bug, reported.
    let err = resolve(&plan, &SysctlValues::new(), &pod, &node, &[], "c1").unwrap_err();
    assert!(matches!(err, PlanError::SysctlNotRead { .. }));

    // Removing a route that is gone already is dropped.
    let mut gone = pod.clone();
    gone.routes.retain(|r| !r.dst.is_default());
    let e = resolve(&plan, &values, &gone, &node, &[], "c1").unwrap();
    assert!(!e.iter().any(|e| e.action == Action::Remove));
}

#[test]
fn resolve_rejects_existing_interfaces() {
    let cfg = config(Flavor::Veth, json!({}));
    let (mut pod, node, prev) = (underlay_pod(), node(), CniResult::default());
    let plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    pod.links.push(link(9, "veth0", Some("veth"), "02:00:00:00:00:99"));
    let values: SysctlValues =
        sysctls_to_read(&plan).into_iter().map(|k| (k, "2".to_owned())).collect();
    let err = resolve(&plan, &values, &pod, &node, &[], "c1").unwrap_err();
    assert_eq!(err, PlanError::Conflict { side: Side::Pod, what: "interface veth0".into() });
}

#[test]
fn fresh_interface_sysctls_are_written_only_when_the_default_differs() {
    assert_eq!(
        default_key("net/ipv4/conf/veth0/rp_filter").as_deref(),
        Some("net/ipv4/conf/default/rp_filter")
    );
    assert_eq!(
        default_key("net/ipv6/conf/veth0/disable_ipv6").as_deref(),
        Some("net/ipv6/conf/default/disable_ipv6")
    );
    assert_eq!(default_key("net/ipv4/ip_forward"), None);
    let cfg = config(Flavor::Veth, json!({}));
    let (pod, node, prev) = (underlay_pod(), node(), CniResult::default());
    let plan = plan_add(&input(&cfg, "eth0", &prev, &pod, &node, &[])).unwrap();
    let keys = sysctls_to_read(&plan);
    assert!(
        keys.contains(&(Side::Pod, "net/ipv6/conf/default/disable_ipv6".to_owned())),
        "{keys:?}"
    );
    assert!(keys.contains(&(Side::Pod, "net/ipv4/conf/default/rp_filter".to_owned())), "{keys:?}");
    let fresh = |values: &SysctlValues| -> Vec<String> {
        resolve(&plan, values, &pod, &node, &[], "c1")
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.object {
                Object::Sysctl(s) if s.previous.is_none() => Some(format!("{} {}", e.side, s.key)),
                _ => None,
            })
            .collect()
    };
    let mut values: SysctlValues = keys.iter().map(|k| (k.clone(), "2".to_owned())).collect();
    values.insert((Side::Pod, "net/ipv6/conf/default/disable_ipv6".into()), "0".into());
    assert!(fresh(&values).is_empty(), "defaults already right: nothing to write");
    values.insert((Side::Pod, "net/ipv6/conf/default/disable_ipv6".into()), "1".into());
    values.insert((Side::Node, "net/ipv4/conf/default/rp_filter".into()), "0".into());
    let h = host_veth_name("c1");
    assert_eq!(
        fresh(&values),
        vec![
            "pod net/ipv6/conf/veth0/disable_ipv6".to_owned(),
            format!("node net/ipv4/conf/{h}/rp_filter")
        ]
    );
}
