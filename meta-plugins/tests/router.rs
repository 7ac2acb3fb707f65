//! `router` with Debian's `ptp` as the default CNI (`eth0`) and macvlan as `net1`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const CID: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const POD_OVERLAY_V4: &str = "198.51.100.140";
const POD_OVERLAY_V6: &str = "2001:db8:6::140";
const UNDERLAY_V4: &str = "192.0.2.60";
const UNDERLAY_V6: &str = "2001:db8:1::60";

fn net1() -> Value {
    macvlan("uplink", &[("192.0.2.60/24", GW_V4), ("2001:db8:1::60/64", GW_V6)], &[])
}

fn overlay() -> Chain {
    Chain::new("default-cni", "1.0.0", vec![ptp_overlay()])
}

fn chain(t: &Topology, keys: Value) -> Chain {
    let mut k = hijack_keys();
    merge(&mut k, keys);
    Chain::new("macvlan-overlay", "1.0.0", vec![net1(), t.ours("router", k)])
}

/// The name of ptp's node end (from its result).
fn ptp_host(r: &Value) -> String {
    r["interfaces"][0]["name"].as_str().unwrap().to_owned()
}

/// eth0 from ptp, then net1 (macvlan) with or without router; returns (ptp result, net1
/// result).
fn attach(t: &Topology, c: &Chain) -> (Value, Value) {
    let r0 = overlay().add_ok(&t.node, CID, t.pod.path(), "eth0");
    let r1 = c.add_ok(&t.node, CID, t.pod.path(), "net1");
    (r0, r1)
}

fn detach(t: &Topology, c: &Chain, netns: Option<&std::path::Path>, r0: &Value, r1: &Value) {
    c.del_ok(&t.node, CID, netns, "net1", Some(r1));
    overlay().del_ok(&t.node, CID, netns, "eth0", Some(r0));
}

#[test]
fn four_paths_dual_stack() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    // Without router: the node cannot reach net1's address (macvlan parent isolation).
    let plain = Chain::new("plain", "1.0.0", vec![net1()]);
    let (r0, r1) = attach(&t, &plain);
    tcp_fails(&t.node, &t.pod, UNDERLAY_V4);
    tcp_fails(&t.node, &t.pod, UNDERLAY_V6);
    assert!(
        t.pod.routes("main").contains("default via 198.51.100.129 dev eth0"),
        "external traffic would take the overlay"
    );
    detach(&t, &plain, Some(t.pod.path()), &r0, &r1);

    let c = chain(&t, json!({}));
    let (r0, r1) = attach(&t, &c);
    let host = ptp_host(&r0);
    assert_eq!(r1["interfaces"].as_array().unwrap().len(), 1, "router creates no interface");

    // kubelet -> underlay address, through the overlay veth (the node picks the source
    // address of that veth, ptp's gateway address).
    let (rx0, tx0) = t.node.packets(&host);
    assert_eq!(tcp_ok(&t.node, &t.pod, UNDERLAY_V4).to_string(), "198.51.100.129");
    assert_eq!(tcp_ok(&t.node, &t.pod, UNDERLAY_V6).to_string(), "2001:db8:6::1");
    let (rx1, tx1) = t.node.packets(&host);
    assert!(rx1 > rx0 && tx1 > tx0, "both directions on the overlay veth");

    // Services and overlay pods through eth0 (source: the overlay address), routed by the node.
    let fwd0 = t.node.forwarded();
    for dst in [SERVICE_V4, OVERLAY_V4] {
        assert_eq!(tcp_ok(&t.pod, &t.endpoint, dst).to_string(), POD_OVERLAY_V4, "{dst}");
    }
    for dst in [SERVICE_V6, OVERLAY_V6] {
        assert_eq!(tcp_ok(&t.pod, &t.endpoint, dst).to_string(), POD_OVERLAY_V6, "{dst}");
    }
    assert!(t.node.forwarded() > fwd0, "service traffic is routed by the node");
    // External through net1 (the default moved there), not the overlay: the node, which
    // would route it from the overlay veth, forwards nothing. (Counting packets on the veth
    // is not enough: the pod's IPv6 housekeeping, RS and MLD reports, arrives there too.)
    let fwd = t.node.forwarded();
    assert_eq!(tcp_ok(&t.pod, &t.switch, EXTERNAL_V4).to_string(), UNDERLAY_V4);
    assert_eq!(tcp_ok(&t.pod, &t.switch, EXTERNAL_V6).to_string(), UNDERLAY_V6);
    assert_eq!(t.node.forwarded(), fwd, "the node routed external traffic (overlay veth)");

    // State: pod rules and tables, node rule and host table.
    let rules = t.pod.ip("rule show");
    assert!(rules.contains("31000:\tfrom all to 198.51.100.0/25 lookup 100"), "{rules}");
    assert!(rules.contains("31100:\tfrom 198.51.100.140 lookup 100"), "{rules}");
    assert!(t.pod.routes("100").contains("default via 198.51.100.129 dev eth0"));
    let main = t.pod.routes("main");
    assert!(main.contains(&format!("default via {GW_V4} dev net1")), "{main}");
    assert!(main.contains(&format!("{NODE_V4} dev eth0 scope link")), "{main}");
    assert!(t.node.ip("rule show").contains("1000:\tfrom all lookup 500"));
    assert!(t.node.ip("-6 rule show").contains("1000:\tfrom all lookup 500"));
    assert!(t.node.routes("500").contains(&format!("{UNDERLAY_V4} dev {host} scope link")));
    assert_eq!(t.records(), 1);
    assert_eq!(t.node_indexes(), 1, "the node rules are indexed for other pods");

    c.check(&t.node, CID, t.pod.path(), "net1", &r1).unwrap_or_else(|o| panic!("{}", o.stdout));
    c.del_ok(&t.node, CID, Some(t.pod.path()), "net1", Some(&r1));
    // DEL put eth0's default back and removed the node rule and host routes.
    assert!(
        t.pod.routes("main").contains("default via 198.51.100.129 dev eth0"),
        "{}",
        t.pod.routes("main")
    );
    assert!(!t.pod.ip("rule show").contains("lookup 100"));
    assert!(!t.node.ip("rule show").contains("lookup 500"));
    assert_eq!(t.node.routes("500"), "");
    overlay().del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r0));
    assert_eq!(t.records(), 0);
    assert_eq!(t.node_indexes(), 0);
}

/// The pod netns disappears before DEL: the node-side rule (which outlives the overlay veth)
/// is still removed; DEL twice succeeds.
#[test]
fn del_after_netns_is_gone_and_twice() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, json!({}));
    let (r0, r1) = attach(&t, &c);
    let host = ptp_host(&r0);
    let gone = t.pod.path().to_path_buf();
    let Topology { node, switch: _switch, endpoint: _ep, pod, dir: _dir } = t;
    pod.owned.remove().unwrap();
    wait_until("the overlay veth to die with the netns", || !node.has_link(&host));
    assert!(node.ip("rule show").contains("lookup 500"), "the rule survives the netns");
    for _ in 0..2 {
        c.del_ok(&node, CID, Some(&gone), "net1", Some(&r1));
        overlay().del_ok(&node, CID, Some(&gone), "eth0", Some(&r0));
        c.del_ok(&node, CID, None, "net1", Some(&r1));
    }
    assert!(!node.ip("rule show").contains("lookup 500"));
    assert!(!node.ip("-6 rule show").contains("lookup 500"));
}

/// `sriov: true` leaves the node alone; `host_rule_table`, `overlay_interface` and
/// `migrate_route: 0` are honoured.
#[test]
fn config_keys_take_effect() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, json!({"sriov": true, "rp_filter": {"set_host": false, "value": 0}}));
    let node_rules = t.node.ip("rule show");
    let (r0, r1) = attach(&t, &c);
    assert_eq!(t.node.ip("rule show"), node_rules, "no node-side rule with sriov");
    assert_eq!(t.node.routes("500"), "");
    assert!(
        !t.pod.routes("main").contains(&format!("{NODE_V4} dev eth0")),
        "no node routes with sriov"
    );
    assert!(t.pod.ip("rule show").contains("lookup 100"), "pod policy routing still happens");
    assert_eq!(t.pod.read_sysctl("net/ipv4/conf/net1/rp_filter"), "0");
    detach(&t, &c, Some(t.pod.path()), &r0, &r1);

    // A default CNI interface named ovl0, host table 600, no migration.
    let ovl = Chain::new("default-cni", "1.0.0", vec![ptp_overlay()]);
    let r0 = ovl.add_ok(&t.node, CID, t.pod.path(), "ovl0");
    let c =
        chain(&t, json!({"overlay_interface": "ovl0", "host_rule_table": 600, "migrate_route": 0}));
    let r1 = c.add_ok(&t.node, CID, t.pod.path(), "net1");
    assert!(t.node.ip("rule show").contains("1000:\tfrom all lookup 600"));
    assert!(t.node.routes("600").contains(UNDERLAY_V4));
    let main = t.pod.routes("main");
    assert!(
        main.contains("default via 198.51.100.129 dev ovl0"),
        "migrate_route 0 keeps the default:\n{main}"
    );
    assert!(!main.contains(&format!("default via {GW_V4} dev net1")), "{main}");
    assert!(!t.pod.ip("rule show").contains("from 198.51.100.140"));
    tcp_ok(&t.node, &t.pod, UNDERLAY_V4);
    tcp_ok(&t.pod, &t.endpoint, SERVICE_V4);
    c.del_ok(&t.node, CID, Some(t.pod.path()), "net1", Some(&r1));
    ovl.del_ok(&t.node, CID, Some(t.pod.path()), "ovl0", Some(&r0));
    assert_eq!(t.records(), 0);

    // overlay_interface that is not a veth to the node: code 7 naming the key.
    let plain = Chain::new("plain", "1.0.0", vec![net1()]);
    let r1 = plain.add_ok(&t.node, CID, t.pod.path(), "net1");
    let bad = Chain::new(
        "bad",
        "1.0.0",
        vec![
            macvlan("uplink", &[("192.0.2.61/24", GW_V4)], &[]),
            t.ours("router", {
                let mut k = hijack_keys();
                merge(&mut k, json!({"overlay_interface": "net1"}));
                k
            }),
        ],
    );
    let o = bad.add(&t.node, CID, t.pod.path(), "net2").unwrap_err();
    assert_eq!(o.code(), Some(7), "{}", o.stdout);
    assert_eq!(o.json()["msg"], "invalid network configuration: overlay_interface");
    bad.del_ok(&t.node, CID, Some(t.pod.path()), "net2", None);
    plain.del_ok(&t.node, CID, Some(t.pod.path()), "net1", Some(&r1));
}

/// Two underlay NICs: the later one takes main's default, the earlier one's routes move to
/// their own table; the node reaches both underlay addresses.
#[test]
fn two_underlay_nics() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    t.add_second_uplink();
    let c1 = chain(&t, json!({}));
    let (r0, r1) = attach(&t, &c1);
    let c2 = Chain::new(
        "macvlan-overlay-2",
        "1.0.0",
        vec![macvlan("uplink2", &[("203.0.113.70/26", GW2_V4)], &[]), c1.plugins[1].clone()],
    );
    let r2 = c2.add_ok(&t.node, CID, t.pod.path(), "net2");
    let main = t.pod.routes("main");
    assert!(main.contains(&format!("default via {GW2_V4} dev net2")), "{main}");
    assert!(
        t.pod.routes("101").contains(&format!("default via {GW_V4} dev net1")),
        "{}",
        t.pod.routes("101")
    );
    assert!(t.pod.ip("rule show").contains("31100:\tfrom 192.0.2.60 lookup 101"));
    tcp_ok(&t.node, &t.pod, UNDERLAY_V4);
    tcp_ok(&t.node, &t.pod, "203.0.113.70");
    tcp_ok(&t.pod, &t.endpoint, SERVICE_V4);
    assert_eq!(
        udp(&t.pod, &t.switch, None, EXTERNAL_V4, 9000).unwrap().to_string(),
        "203.0.113.70"
    );
    assert_eq!(
        udp(&t.pod, &t.switch, Some(UNDERLAY_V4), EXTERNAL_V4, 9001).unwrap().to_string(),
        UNDERLAY_V4
    );
    c1.check(&t.node, CID, t.pod.path(), "net1", &r1).unwrap_or_else(|o| panic!("{}", o.stdout));
    c2.check(&t.node, CID, t.pod.path(), "net2", &r2).unwrap_or_else(|o| panic!("{}", o.stdout));
    c2.del_ok(&t.node, CID, Some(t.pod.path()), "net2", Some(&r2));
    assert!(t.pod.routes("main").contains(&format!("default via {GW_V4} dev net1")));
    assert!(t.node.ip("rule show").contains("lookup 500"), "still used by net1");
    tcp_ok(&t.node, &t.pod, UNDERLAY_V4);
    detach(&t, &c1, Some(t.pod.path()), &r0, &r1);
    assert!(!t.node.ip("rule show").contains("lookup 500"));
    assert_eq!(t.records(), 0);
}

/// CHECK fails after the node rule or a pod rule is removed; GC removes a forgotten
/// attachment's node objects.
#[test]
fn check_and_gc() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, json!({}));
    let (_r0, r1) = attach(&t, &c);
    c.check(&t.node, CID, t.pod.path(), "net1", &r1).unwrap_or_else(|o| panic!("{}", o.stdout));
    t.node.ip("rule del pref 1000 lookup 500");
    let o = c.check(&t.node, CID, t.pod.path(), "net1", &r1).unwrap_err();
    assert_eq!(o.code(), Some(101));
    assert!(o.stdout.contains("rule V4 pref 1000"), "{}", o.stdout);
    t.node.ip("rule add pref 1000 lookup 500");
    t.pod.ip("rule del pref 31000 to 198.51.100.0/25");
    let o = c.check(&t.node, CID, t.pod.path(), "net1", &r1).unwrap_err();
    assert!(o.stdout.contains("to 198.51.100.0/25 lookup 100"), "{}", o.stdout);

    // The runtime forgets the attachment: GC with an empty valid list.
    c.gc(&t.node, 1, &[]).expect_ok("GC");
    assert!(!t.node.ip("rule show").contains("lookup 500"));
    assert_eq!(t.node.routes("500"), "");
    assert!(
        !t.pod.ip("rule show").contains("lookup 100"),
        "the netns still existed: pod side cleaned too"
    );
    assert!(t.pod.routes("main").contains("default via 198.51.100.129 dev eth0"));
    assert_eq!(t.records(), 0);
}
