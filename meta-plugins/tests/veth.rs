//! `veth` after Debian's macvlan plugin, in a namespace topology (see `common`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const POD_V4: &str = "192.0.2.50";
const POD_V6: &str = "2001:db8:1::50";

fn underlay() -> Value {
    macvlan(
        "uplink",
        &[("192.0.2.50/24", GW_V4), ("2001:db8:1::50/64", GW_V6)],
        &["0.0.0.0/0", "::/0"],
    )
}

fn chain(t: &Topology, version: &str, keys: Value) -> Chain {
    let mut k = hijack_keys();
    merge(&mut k, keys);
    Chain::new("macvlan-standalone", version, vec![underlay(), t.ours("veth", k)])
}

fn host_veth() -> String {
    format!("veth{}", &CID[..11])
}

#[test]
fn runs_outside_the_root_netns() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    for ns in [&t.node, &t.switch, &t.endpoint, &t.pod] {
        assert_not_root_netns(ns);
    }
    // The plugin processes run where the test says: nsenter into the node netns.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", t.node.path().display()))
        .args(["readlink", "/proc/self/ns/net"])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains(&t.node.netns().inode().unwrap().to_string()), "{seen}");
}

/// The four paths, dual stack, against plain macvlan first.
#[test]
fn four_paths_dual_stack() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    // Plain macvlan: the node cannot reach its own child, the pod cannot reach services.
    let plain = Chain::new("plain", "1.0.0", vec![underlay()]);
    let r = plain.add_ok(&t.node, "plain1", t.pod.path(), "eth0");
    tcp_fails(&t.node, &t.pod, POD_V4);
    tcp_fails(&t.node, &t.pod, POD_V6);
    tcp_fails(&t.pod, &t.endpoint, SERVICE_V4);
    tcp_fails(&t.pod, &t.endpoint, OVERLAY_V6);
    plain.del_ok(&t.node, "plain1", Some(t.pod.path()), "eth0", Some(&r));
    assert!(!t.pod.has_link("eth0"));

    let c = chain(&t, "1.0.0", json!({}));
    let result = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    let h = host_veth();

    // The result reports the macvlan and both veth ends.
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["eth0", h.as_str(), "veth0"]);
    assert_eq!(result["interfaces"][2]["sandbox"], json!(t.pod.path()));
    assert_eq!(result["interfaces"][2]["mtu"], 1500);
    assert!(result["interfaces"][1].get("sandbox").is_none());
    let host_mac =
        t.node.ip_json(&format!("link show dev {h}"))[0]["address"].as_str().unwrap().to_owned();
    assert_eq!(result["interfaces"][1]["mac"], json!(host_mac));

    // kubelet -> pod underlay address (the health-check path), both families.
    let (rx0, _) = t.node.packets(&h);
    assert_eq!(tcp_ok(&t.node, &t.pod, POD_V4).to_string(), NODE_V4);
    assert_eq!(tcp_ok(&t.node, &t.pod, POD_V6).to_string(), NODE_V6);
    let (rx1, _) = t.node.packets(&h);
    assert!(rx1 > rx0, "replies come back over the veth");

    // pod -> service and pod -> overlay go through the node (the switch has no route there).
    for dst in [SERVICE_V4, OVERLAY_V4] {
        assert_eq!(tcp_ok(&t.pod, &t.endpoint, dst).to_string(), POD_V4, "{dst}");
    }
    for dst in [SERVICE_V6, OVERLAY_V6] {
        assert_eq!(tcp_ok(&t.pod, &t.endpoint, dst).to_string(), POD_V6, "{dst}");
    }
    let (rx2, _) = t.node.packets(&h);
    assert!(rx2 >= rx1 + 4 * 2, "service and overlay traffic entered the node by the veth");

    // pod -> external leaves by the underlay, not the veth.
    let (_, pod_tx0) = t.pod.packets("eth0");
    assert_eq!(tcp_ok(&t.pod, &t.switch, EXTERNAL_V4).to_string(), POD_V4);
    assert_eq!(tcp_ok(&t.pod, &t.switch, EXTERNAL_V6).to_string(), POD_V6);
    let (rx3, _) = t.node.packets(&h);
    let (_, pod_tx1) = t.pod.packets("eth0");
    assert_eq!(rx3, rx2, "nothing went through the veth");
    assert!(pod_tx1 >= pod_tx0 + 4, "north-south used the macvlan");

    // The routes the pod got.
    let main = t.pod.routes("main");
    for want in [
        format!("198.51.100.0/25 via {NODE_V4} dev veth0 src {POD_V4}"),
        format!("{NODE_V4} dev veth0 scope link src {POD_V4}"),
        format!("2001:db8:5::/112 via {NODE_V6} dev veth0"),
        format!("default via {GW_V4} dev eth0"),
    ] {
        assert!(main.contains(&want), "missing {want:?} in\n{main}");
    }
    assert_eq!(t.records(), 1);

    c.check(&t.node, CID, t.pod.path(), "eth0", &result).unwrap();
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&result));
    assert!(!t.node.has_link(&h));
    assert!(!t.pod.has_link("veth0"));
    assert_eq!(t.records(), 0);
    assert!(!t.node.routes("main").contains(POD_V4));
}

/// DEL twice; DEL without CNI_NETNS while the netns still exists (node side only); DEL after
/// the netns is gone.
#[test]
fn del_twice_and_without_netns() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, "1.0.0", json!({}));
    let h = host_veth();
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    assert!(t.node.has_link(&h));
    // No CNI_NETNS: the node side is cleaned (deleting the node end removes veth0 too).
    c.del_ok(&t.node, CID, None, "eth0", Some(&r));
    assert!(!t.node.has_link(&h));
    assert!(!t.pod.has_link("veth0"));
    assert_eq!(t.records(), 0);
    c.del_ok(&t.node, CID, None, "eth0", Some(&r));
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", None);

    // Again, then the runtime removes the netns before DEL.
    let pod2 = Ns::new("pod2");
    pod2.ip("link set lo up");
    let r = c.add_ok(&t.node, CID, pod2.path(), "eth0");
    let gone = pod2.path().to_path_buf();
    pod2.owned.remove().unwrap();
    wait_until("the pair to die with the netns", || !t.node.has_link(&h));
    c.del_ok(&t.node, CID, Some(&gone), "eth0", Some(&r));
    c.del_ok(&t.node, CID, Some(&gone), "eth0", Some(&r));
    assert_eq!(t.records(), 0);
    assert!(!t.node.routes("main").contains(POD_V4), "{}", t.node.routes("main"));
}

/// CHECK passes on a fresh attachment and fails (code 101, naming the object) after each
/// kind of tampering.
#[test]
fn check_detects_tampering() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, "0.4.0", json!({}));
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    c.check(&t.node, CID, t.pod.path(), "eth0", &r).unwrap();
    let h = host_veth();
    let fails = |what: &str| {
        let o = c.check(&t.node, CID, t.pod.path(), "eth0", &r).expect_err(what);
        assert_eq!(o.code(), Some(101), "{what}: {}", o.stdout);
        o.json()["details"].as_str().unwrap().to_owned()
    };
    t.pod.ip("route del 198.51.100.0/25");
    assert!(fails("pod hijack route").contains("route 198.51.100.0/25 via 192.0.2.10 dev veth0"));
    t.pod.ip(&format!("route add 198.51.100.0/25 via {NODE_V4} dev veth0 src {POD_V4}"));
    c.check(&t.node, CID, t.pod.path(), "eth0", &r).unwrap();

    t.node.ip(&format!("neigh del {POD_V4} dev {h}"));
    assert!(fails("node neighbour").contains(&format!("neigh {POD_V4}")));
    t.node.ip(&format!(
        "neigh replace {POD_V4} lladdr {} dev {h} nud permanent",
        r["interfaces"][2]["mac"].as_str().unwrap()
    ));
    c.check(&t.node, CID, t.pod.path(), "eth0", &r).unwrap();

    t.pod.sysctl("net/ipv4/conf/veth0/rp_filter", "1");
    assert!(fails("sysctl").contains("sysctl net/ipv4/conf/veth0/rp_filter is 1, expected 2"));
    t.pod.sysctl("net/ipv4/conf/veth0/rp_filter", "2");

    t.node.ip(&format!("link set {h} address 02:11:22:33:44:55"));
    assert!(fails("mac").contains(&format!("{h} has mac")));

    t.pod.ip("link del veth0");
    let d = fails("veth gone");
    assert!(
        d.contains("interface veth0 is missing")
            || d.contains(&format!("interface {h} is missing")),
        "{d}"
    );
    // DEL still cleans up what is left.
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r));
    assert_eq!(t.records(), 0);
    // CHECK without a record fails too.
    let o = c.check(&t.node, CID, t.pod.path(), "eth0", &r).unwrap_err();
    assert!(
        o.stdout.contains("no record of this attachment") || o.code() != Some(0),
        "{}",
        o.stdout
    );
}

/// GC removes the node side of attachments missing from cni.dev/valid-attachments and
/// keeps the valid ones.
#[test]
fn gc_removes_vanished_attachments() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, "1.0.0", json!({}));
    let keep = "aaaaaaaaaaaa1111111111111111";
    let stale = "bbbbbbbbbbbb2222222222222222";
    let pod2 = Ns::new("pod2");
    pod2.ip("link set lo up");
    c.add_ok(&t.node, keep, t.pod.path(), "eth0");
    let second = Chain::new(
        "macvlan-standalone",
        "1.0.0",
        vec![macvlan("uplink", &[("192.0.2.51/24", GW_V4)], &[]), c.plugins[1].clone()],
    );
    second.add_ok(&t.node, stale, pod2.path(), "eth0");
    assert_eq!(t.records(), 2);
    let stale_veth = format!("veth{}", &stale[..11]);
    assert!(t.node.has_link(&stale_veth));
    // The runtime forgot the second pod (no DEL); GC with only the first still valid.
    let o = c.gc(&t.node, 1, &[(keep, "eth0")]);
    o.expect_ok("GC");
    assert!(!t.node.has_link(&stale_veth));
    assert!(!t.node.routes("main").contains("192.0.2.51"));
    assert!(t.node.has_link(&format!("veth{}", &keep[..11])));
    assert_eq!(t.records(), 1);
    tcp_ok(&t.node, &t.pod, POD_V4);
    // A GC of another network leaves these records alone.
    let other = Chain::new("other-net", "1.0.0", c.plugins.clone());
    other.gc(&t.node, 1, &[]).expect_ok("GC other");
    assert_eq!(t.records(), 1);
    c.gc(&t.node, 1, &[]).expect_ok("GC all");
    assert_eq!(t.records(), 0);
    assert!(!t.node.has_link(&format!("veth{}", &keep[..11])));
}

/// rp_filter, mac_prefix, additional_hijack_subnet, log_options and state_dir do what they
/// say; the result carries the new MAC.
#[test]
fn config_keys_take_effect() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    t.node.sysctl("net/ipv4/conf/all/rp_filter", "2");
    let c = chain(
        &t,
        "1.0.0",
        json!({
            "rp_filter": {"set_host": true, "value": 1},
            "mac_prefix": "0a:1b",
            "additional_hijack_subnet": ["203.0.113.128/25"],
            "migrate_route": 0,
        }),
    );
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    let h = host_veth();
    // rp_filter: node side only where needed (our veth; `all` lowered from 2 to 1).
    assert_eq!(t.node.read_sysctl(&format!("net/ipv4/conf/{h}/rp_filter")), "1");
    assert_eq!(t.node.read_sysctl("net/ipv4/conf/all/rp_filter"), "1");
    assert_eq!(
        t.node.read_sysctl("net/ipv4/conf/uplink/rp_filter"),
        "0",
        "other node interfaces untouched"
    );
    assert_eq!(t.pod.read_sysctl("net/ipv4/conf/eth0/rp_filter"), "1");
    assert_eq!(t.pod.read_sysctl("net/ipv4/conf/veth0/rp_filter"), "1");
    // mac_prefix: 0a:1b + 192.0.2.50.
    let mac = t.pod.ip_json("link show dev eth0")[0]["address"].as_str().unwrap().to_owned();
    assert_eq!(mac, "0a:1b:c0:00:02:32");
    assert_eq!(r["interfaces"][0]["mac"], json!(mac));
    // additional_hijack_subnet: the node-to-endpoint link is reached via the node.
    assert!(
        t.pod.routes("main").contains("203.0.113.128/25 via 192.0.2.10 dev veth0"),
        "{}",
        t.pod.routes("main")
    );
    assert_eq!(tcp_ok(&t.pod, &t.endpoint, "203.0.113.130").to_string(), POD_V4);
    // log_options: JSON lines in our file; state_dir: the record is there.
    let log = std::fs::read_to_string(t.log_file("veth.log")).unwrap();
    assert!(log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "{log}");
    assert!(log.contains("attachment set up"), "{log}");
    assert_eq!(t.records(), 1);
    // DEL restores what it changed on the node and in the pod.
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r));
    assert_eq!(t.node.read_sysctl("net/ipv4/conf/all/rp_filter"), "2");
    assert!(!t.pod.has_link("eth0"));
}

/// skip_call passes prevResult through and installs nothing; only_op_mac only rewrites the
/// MAC.
#[test]
fn skip_call_and_only_op_mac() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, "1.0.0", json!({"skip_call": true}));
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 1);
    assert!(!t.pod.has_link("veth0"));
    assert_eq!(t.records(), 0);
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r));

    let c = Chain::new(
        "mac-only",
        "1.0.0",
        vec![underlay(), t.ours("veth", json!({"mac_prefix": "02:42", "only_op_mac": true}))],
    );
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    assert_eq!(r["interfaces"][0]["mac"], "02:42:c0:00:02:32");
    assert!(!t.pod.has_link("veth0"));
    c.check(&t.node, CID, t.pod.path(), "eth0", &r).unwrap();
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r));
    assert_eq!(t.records(), 0);
}

/// Two underlay NICs on two parents, the seed's 0.3.1: net1's default moves to a policy
/// table with a `from` rule, main keeps eth0's; both addresses are reachable from the node.
#[test]
fn two_underlay_nics() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    t.add_second_uplink();
    let first = chain(&t, "0.3.1", json!({}));
    let r1 = first.add_ok(&t.node, CID, t.pod.path(), "eth0");
    let second = Chain::new(
        "macvlan-standalone-2",
        "0.3.1",
        vec![macvlan("uplink2", &[("203.0.113.70/26", GW2_V4)], &[]), first.plugins[1].clone()],
    );
    // Its IPAM's default route, at a higher metric (what spiderpool-style IPAM installs).
    let r2 = second
        .add_with(&t.node, CID, t.pod.path(), "net1", |_| {
            t.pod.ip(&format!("route add default via {GW2_V4} dev net1 metric 100")).truncate(0)
        })
        .unwrap();
    assert_eq!(
        r2["interfaces"].as_array().unwrap().len(),
        1,
        "the pair is reported once, by eth0's attachment"
    );
    let rules = t.pod.ip("rule show");
    assert!(rules.contains("31100:\tfrom 203.0.113.70 lookup 100"), "{rules}");
    let t100 = t.pod.routes("100");
    assert!(t100.contains("default via 203.0.113.65 dev net1 metric 100"), "{t100}");
    assert!(t100.contains("198.51.100.0/25 via 192.0.2.10 dev veth0 src 203.0.113.70"), "{t100}");
    let main = t.pod.routes("main");
    assert!(!main.contains("dev net1 metric 100"), "net1's default left main:\n{main}");
    assert!(main.contains(&format!("default via {GW_V4} dev eth0")));
    // Node reaches both addresses over the veth; external traffic from each address leaves by
    // its own NIC.
    tcp_ok(&t.node, &t.pod, POD_V4);
    tcp_ok(&t.node, &t.pod, "203.0.113.70");
    let (_, tx0) = t.pod.packets("net1");
    assert_eq!(
        udp(&t.pod, &t.switch, Some("203.0.113.70"), EXTERNAL_V4, 9000).unwrap().to_string(),
        "203.0.113.70"
    );
    let (_, tx1) = t.pod.packets("net1");
    assert!(tx1 > tx0, "left by net1");
    assert_eq!(udp(&t.pod, &t.switch, None, EXTERNAL_V4, 9001).unwrap().to_string(), POD_V4);
    assert_eq!(t.records(), 2);
    // 0.3.1 has no CHECK: refused with code 1, as the spec says.
    let o = exec_plugin(&t.node, &our_bin("veth"), "CHECK", CID, Some(t.pod.path()), "eth0", &{
        let mut c = first.plugins[1].clone();
        merge(
            &mut c,
            json!({"cniVersion": "0.3.1", "name": "macvlan-standalone", "prevResult": r1}),
        );
        c
    });
    assert_eq!(o.code(), Some(1), "{}", o.stdout);
    // DEL in the runtime's order (last attachment first).
    second.del_ok(&t.node, CID, Some(t.pod.path()), "net1", Some(&r2));
    assert!(t.pod.has_link("veth0"), "still used by eth0's attachment");
    assert!(!t.pod.ip("rule show").contains("lookup 100"));
    tcp_ok(&t.node, &t.pod, POD_V4);
    first.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r1));
    assert!(!t.node.has_link(&host_veth()));
    assert_eq!(t.records(), 0);
}

/// Bad configurations fail with code 7 naming the key, before anything is touched.
#[test]
fn bad_configs_name_the_key_and_change_nothing() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let before = (t.node.ip("-d link show"), t.node.routes("main"));
    let cases = [
        (json!({"service_hijack_subnet": []}), "service_hijack_subnet"),
        (
            json!({"overlay_hijack_subnet": ["198.51.100.128/25", "not-a-cidr"]}),
            "overlay_hijack_subnet[1]",
        ),
        (json!({"rp_filter": {"set_host": true, "value": 5}}), "rp_filter.value"),
        (json!({"migrate_route": 3}), "migrate_route"),
        (json!({"mac_prefix": "01:00"}), "mac_prefix"),
        (json!({"log_options": {"log_level": "chatty"}}), "log_options.log_level"),
        (json!({"host_rule_table": "five hundred"}), "host_rule_table"),
    ];
    for (keys, key) in cases {
        let c = chain(&t, "1.0.0", keys.clone());
        let o = c.add(&t.node, CID, t.pod.path(), "eth0").unwrap_err();
        assert_eq!(o.code(), Some(7), "{keys}: {}", o.stdout);
        assert_eq!(o.json()["msg"], format!("invalid network configuration: {key}"), "{keys}");
        assert!(!t.pod.has_link("veth0"));
        // The runtime calls DEL after a failed ADD; it must succeed.
        c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", None);
    }
    // Not chained: prevResult is required.
    let lone = Chain::new("lone", "1.0.0", vec![t.ours("veth", hijack_keys())]);
    let o = lone.add(&t.node, CID, t.pod.path(), "eth0").unwrap_err();
    assert_eq!(
        (o.code(), o.json()["msg"].as_str()),
        (Some(7), Some("invalid network configuration: prevResult"))
    );
    // CNI_NETNS naming the node itself: code 4, nothing touched.
    let c = chain(&t, "1.0.0", json!({}));
    let mut conf = c.plugins[1].clone();
    merge(
        &mut conf,
        json!({"cniVersion": "1.0.0", "name": "n", "prevResult": {"cniVersion": "1.0.0"}}),
    );
    let o =
        exec_plugin(&t.node, &our_bin("veth"), "ADD", CID, Some(t.node.path()), "uplink", &conf);
    assert_eq!(o.code(), Some(4), "{}", o.stdout);
    assert!(o.stdout.contains("CNI_NETNS"), "{}", o.stdout);
    assert_eq!(before, (t.node.ip("-d link show"), t.node.routes("main")));
    assert_eq!(t.records(), 0);
}

/// A failure half-way through ADD (the node refuses IPv6 on new interfaces) rolls back
/// everything applied before it.
#[test]
fn failed_add_rolls_back() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    t.node.sysctl("net/ipv6/conf/default/disable_ipv6", "1");
    let c = chain(&t, "1.0.0", json!({}));
    let pod_routes_before = {
        let plain = Chain::new("plain", "1.0.0", vec![underlay()]);
        let r = plain.add_ok(&t.node, "probe", t.pod.path(), "eth0");
        let routes = t.pod.routes("main");
        plain.del_ok(&t.node, "probe", Some(t.pod.path()), "eth0", Some(&r));
        routes
    };
    let o = c.add(&t.node, CID, t.pod.path(), "eth0").unwrap_err();
    assert_eq!(o.code(), Some(100), "{}", o.stdout);
    assert!(o.json()["details"].as_str().unwrap().contains("2001:db8:1::50/128"), "{}", o.stdout);
    assert!(!t.node.has_link(&host_veth()));
    assert!(!t.pod.has_link("veth0"));
    assert_eq!(t.pod.routes("main"), pod_routes_before, "pod routes as the macvlan left them");
    assert!(!t.node.routes("main").contains(POD_V4));
    assert_eq!(t.records(), 0);
    // The runtime's DEL after the failed ADD.
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", None);
    // With IPv6 allowed again the same ADD succeeds.
    t.node.sysctl("net/ipv6/conf/default/disable_ipv6", "0");
    let plain_left = t.pod.has_link("eth0");
    assert!(!plain_left);
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    tcp_ok(&t.node, &t.pod, POD_V6);
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r));
}

/// An ADD repeated without DEL (e.g. after a runtime crash) replaces the first cleanly.
#[test]
fn repeated_add_is_clean() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let c = chain(&t, "1.0.0", json!({}));
    let r = c.add_ok(&t.node, CID, t.pod.path(), "eth0");
    let veth = Chain::new("macvlan-standalone", "1.0.0", vec![c.plugins[1].clone()]);
    // Only the veth step again, with the same prevResult.
    let again = exec_plugin(&t.node, &our_bin("veth"), "ADD", CID, Some(t.pod.path()), "eth0", &{
        let mut conf = veth.plugins[0].clone();
        let mut prev = r.clone();
        prev["interfaces"] = json!([r["interfaces"][0]]);
        merge(
            &mut conf,
            json!({"cniVersion": "1.0.0", "name": "macvlan-standalone", "prevResult": prev}),
        );
        conf
    });
    let r2 = again.expect_ok("second ADD");
    assert_eq!(r2["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(t.records(), 1);
    tcp_ok(&t.node, &t.pod, POD_V4);
    tcp_ok(&t.pod, &t.endpoint, SERVICE_V4);
    c.check(&t.node, CID, t.pod.path(), "eth0", &r2).unwrap();
    c.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", Some(&r2));
    assert_eq!(t.records(), 0);
}

/// A pod set up by the original plugin has no record: DEL still removes the node end named
/// after the container, and only that.
#[test]
fn del_without_record_removes_the_original_plugins_node_end() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let h = host_veth();
    t.node.ip(&format!("link add {h} type veth peer name veth0 netns {}", t.pod.name()));
    t.node.ip("link add vethunrelated type veth peer name x0");
    let c = chain(&t, "1.0.0", json!({}));
    exec_plugin(&t.node, &our_bin("veth"), "DEL", CID, Some(t.pod.path()), "eth0", &{
        let mut conf = c.plugins[1].clone();
        merge(&mut conf, json!({"cniVersion": "1.0.0", "name": "macvlan-standalone"}));
        conf
    })
    .expect_ok("DEL without record");
    assert!(!t.node.has_link(&h));
    assert!(t.node.has_link("vethunrelated"));
}

/// STATUS (1.1.0): fine with a usable state directory, code 50 otherwise.
#[test]
fn status_reports_an_unusable_state_dir() {
    if !require_root() {
        return;
    }
    let t = Topology::build();
    let run = |state_dir: &std::path::Path| {
        let mut conf = t.ours("veth", hijack_keys());
        merge(&mut conf, json!({"cniVersion": "1.1.0", "name": "n", "state_dir": state_dir}));
        exec_plugin(&t.node, &our_bin("veth"), "STATUS", CID, None, "eth0", &conf)
    };
    run(&t.state_dir()).expect_ok("STATUS");
    let file = t.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let o = run(&file.join("state"));
    assert_eq!(o.code(), Some(50), "{}", o.stdout);
}
