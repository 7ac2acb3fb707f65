//! The built `sriov` binary, run as a runtime runs it, in a node netns whose simulated VFs are
//! real veths, against pod netns made by the test. Needs root (skips otherwise).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::sim::*;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// Node-side facts about a VF netdev that DEL must restore.
#[derive(Debug, PartialEq)]
struct Home {
    name: String,
    mac: Option<String>,
    mtu: Option<u32>,
    up: bool,
    altnames: Vec<String>,
}

fn home(node: &Node, vf: u32) -> Option<Home> {
    node.vf_link(vf).map(|l| Home {
        name: l.name.clone(),
        mac: l.mac.map(|m| m.to_string()),
        mtu: l.mtu,
        up: l.is_up(),
        altnames: l.alt_names.clone(),
    })
}

/// The `prevResult` a runtime passes to CHECK/DEL: the ADD result as printed.
fn with_prev(conf: &Value, result: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = result.clone();
    c
}

#[test]
fn add_check_del_in_every_spec_version_with_host_local() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let node = Node::new(2);
    let before = home(&node, 1).expect("VF 1 in the node");
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let pod = node.pod();
        // Debian's host-local (1.1.1) predates spec 1.1.0: the 1.1.0 run has no IPAM.
        let ipam = if version == "1.1.0" { json!({}) } else { node.host_local() };
        let conf = node.conf(version, 1, json!({"ipam": ipam, "mtu": 1400}));
        let call = Call::new("ADD", &format!("c-{}", version.replace('.', "")), Some(pod.path()));
        let r = node.run(&call, &conf).must();
        let res = r.json();
        assert_eq!(res["cniVersion"], version, "{res}");
        let iface = &res["interfaces"][0];
        assert_eq!(iface["name"], "net1");
        assert_eq!(iface["sandbox"], pod.path().display().to_string());
        if !version.starts_with("0.") {
            assert_eq!(iface["pciID"], vf_pci(1), "{res}");
            assert_eq!(iface["mtu"], 1400, "{res}");
        } else {
            assert!(iface.get("pciID").is_none() && iface.get("mtu").is_none(), "{res}");
        }
        let ip = res["ips"][0]["address"].as_str().unwrap_or("").to_owned();
        if version == "1.1.0" {
            assert!(res.get("ips").is_none(), "{res}");
        } else {
            assert!(ip.starts_with("192.0.2."), "{res}");
        }
        if version.starts_with("0.") {
            assert_eq!(res["ips"][0]["version"], "4");
        } else {
            assert!(res["ips"][0].get("version").is_none());
        }

        // The VF is in the pod as net1 with the address, the MTU and the route; gone from the node.
        let l = link_in(&pod, "net1").expect("net1 in the pod");
        assert!(l.is_up());
        assert_eq!(l.mtu, Some(1400));
        assert_eq!(l.mac.map(|m| m.to_string()), before.mac, "MAC kept when none is requested");
        assert!(node.vf_link(1).is_none());
        assert!(
            !node
                .sysfs()
                .join(format!("bus/pci/devices/{}/net", vf_pci(1)))
                .read_dir()
                .unwrap()
                .any(|_| true)
        );
        if version != "1.1.0" {
            let addrs = nl_in(&pod).list_addresses(Some(l.index.into()), None).unwrap();
            assert!(addrs.iter().any(|a| a.prefix.to_string() == ip), "{addrs:?}");
            let routes = nl_in(&pod).list_routes(sriov_netlink::IpFamily::V4, None).unwrap();
            assert!(routes.iter().any(|r| r.dst.to_string() == "203.0.113.0/24"), "{routes:?}");
            assert_eq!(node.leases().len(), 1);
        }
        assert_eq!(node.journals(), vec![format!("{}.jsonl", vf_pci(1))]);

        if version != "0.3.0" && version != "0.3.1" {
            node.run(&call.with_command("CHECK"), &with_prev(&conf, &res)).must();
        }
        node.run(&call.with_command("DEL"), &with_prev(&conf, &res)).must();
        assert_eq!(home(&node, 1).as_ref(), Some(&before), "VF back home as it was ({version})");
        assert!(link_in(&pod, "net1").is_none());
        assert_eq!(node.journals(), Vec::<String>::new());
        assert_eq!(node.leases(), Vec::<String>::new(), "address released");
    }
}

#[test]
fn dual_stack_static_ipam_enables_ipv6_inside_the_pod() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let node = Node::new(2);
    let pod = node.pod();
    // The pod's default disables IPv6, so the VF arrives with disable_ipv6 = 1 and the plugin
    // must turn it on (from its one netns entry for the IPv6 sysctls and addresses).
    sriov_netlink::write_sysctl_in(pod.netns(), "net/ipv6/conf/default/disable_ipv6", "1").unwrap();
    let ipam = json!({"type": "static", "addresses": [{"address": "2001:db8::5/64"},
                                                      {"address": "192.0.2.5/24"}]});
    let conf = node.conf("1.0.0", 1, json!({"ipam": ipam}));
    let call = Call::new("ADD", "dual", Some(pod.path()));
    let res = node.run(&call, &conf).must().json();
    assert_eq!(res["ips"].as_array().map(Vec::len), Some(2), "{res}");
    let sysctl = |k: &str| sriov_netlink::read_sysctl_in(pod.netns(), k).unwrap();
    assert_eq!(sysctl("net/ipv6/conf/net1/disable_ipv6"), "0");
    assert_eq!(sysctl("net/ipv6/conf/net1/optimistic_dad"), "1");
    assert_eq!(sysctl("net/ipv4/conf/net1/arp_notify"), "1");
    assert_eq!(sysctl("net/ipv6/conf/net1/ndisc_notify"), "1");
    let mut nl = nl_in(&pod);
    let idx = nl.get_link("net1").unwrap().index;
    let addrs: Vec<String> = nl
        .list_addresses(Some(idx.into()), None)
        .unwrap()
        .iter()
        .map(|a| a.prefix.to_string())
        .collect();
    for want in ["2001:db8::5/64", "192.0.2.5/24"] {
        assert!(addrs.iter().any(|a| a == want), "{want} missing: {addrs:?}");
    }
    node.run(&call.with_command("DEL"), &conf).must();
    assert!(node.vf_link(1).is_some(), "VF home");
    assert_eq!(node.journals(), Vec::<String>::new());
}

#[test]
fn static_ipam_and_mac_in_result_and_checks_fail_on_drift() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let node = Node::new(2);
    let pod = node.pod();
    let ipam = json!({"type": "static", "addresses": [{"address": "198.51.100.10/24", "gateway": "198.51.100.1"}],
                      "routes": [{"dst": "0.0.0.0/0"}]});
    let conf = node.conf("1.0.0", 0, json!({"ipam": ipam}));
    let call = Call::new("ADD", "static1", Some(pod.path()));
    let res = node.run(&call, &conf).must().json();
    assert_eq!(res["ips"][0]["address"], "198.51.100.10/24");
    assert_eq!(res["ips"][0]["interface"], 0);
    let routes = nl_in(&pod).list_routes(sriov_netlink::IpFamily::V4, None).unwrap();
    let default = routes.iter().find(|r| r.dst.is_empty()).expect("default route");
    assert_eq!(default.gateway.map(|g| g.to_string()).as_deref(), Some("198.51.100.1"));
    node.run(&call.with_command("CHECK"), &with_prev(&conf, &res)).must();

    // Drift: the address disappears, then the interface goes down.
    let mut nl = nl_in(&pod);
    let idx = nl.get_link("net1").unwrap().index;
    nl.del_address(idx, "198.51.100.10/24".parse().unwrap()).unwrap();
    let r = node.run(&call.with_command("CHECK"), &with_prev(&conf, &res));
    assert_eq!(r.error_code(), 103, "{r:#?}");
    assert!(r.json()["msg"].as_str().unwrap().contains("198.51.100.10/24"), "{r:#?}");
    nl.set_down(idx).unwrap();
    let r = node.run(&call.with_command("CHECK"), &with_prev(&conf, &res));
    assert!(r.json()["msg"].as_str().unwrap().contains("state of net1"), "{r:#?}");

    node.run(&call.with_command("DEL"), &with_prev(&conf, &res)).must();
    assert!(node.vf_link(0).is_some());
}

#[test]
fn vf_settings_on_a_pf_without_vf_support_fail_cleanly_and_change_nothing() {
    if skip_unless_root() {
        return;
    }
    let node = Node::new(2);
    let before = home(&node, 1).unwrap();
    let pod = node.pod();
    for (extra, key) in [
        (json!({"vlan": 100, "vlanQoS": 2}), "vlan"),
        (json!({"spoofchk": "off"}), "spoofchk"),
        (json!({"trust": "on"}), "trust"),
        (json!({"link_state": "enable"}), "link_state"),
        (json!({"max_tx_rate": 1000}), "max_tx_rate"),
        (json!({"mac": "02:00:5e:00:53:42"}), "mac"),
        (json!({"runtimeConfig": {"mac": "02:00:5e:00:53:43"}, "mtu": 1400}), "mac"),
    ] {
        let conf = node.conf("1.1.0", 1, extra.clone());
        let r = node.run(&Call::new("ADD", "settings", Some(pod.path())), &conf);
        assert_eq!(r.error_code(), 101, "{extra}: {r:#?}");
        let err = r.json();
        assert_eq!(err["msg"], format!("VF setting rejected: {key}"), "{err}");
        assert!(err["details"].as_str().unwrap().contains("Operation not supported"), "{err}");
        // Exactly as before: in the node, same name, MAC, MTU, state; nothing in the pod; no journal.
        assert_eq!(home(&node, 1).as_ref(), Some(&before), "{extra}");
        assert!(link_in(&pod, "net1").is_none());
        assert_eq!(node.journals(), Vec::<String>::new());
    }
}

#[test]
fn bad_config_values_are_code_7_naming_the_key_and_touch_nothing() {
    if skip_unless_root() {
        return;
    }
    let node = Node::new(1);
    let pod = node.pod();
    for (extra, key) in [
        (json!({"vlan": 5000}), "vlan"),
        (json!({"vlanProto": "802.1ad"}), "vlanProto"),
        (json!({"link_state": "sometimes"}), "link_state"),
        (json!({"deviceID": "0000:3b:00.0"}), "deviceID"),
        (json!({"mtu": 9000}), "mtu"),
    ] {
        let conf = node.conf("1.0.0", 0, extra.clone());
        let r = node.run(&Call::new("ADD", "bad", Some(pod.path())), &conf);
        assert_eq!(r.error_code(), 7, "{extra}: {r:#?}");
        assert!(r.json()["msg"].as_str().unwrap().contains(key), "{extra}: {r:#?}");
    }
    assert!(node.vf_link(0).is_some());
    assert_eq!(node.journals(), Vec::<String>::new());

    // DEL never fails over a bad configuration: it restores from the journal.
    let call = Call::new("ADD", "lenient", Some(pod.path()));
    node.run(&call, &node.conf("1.0.0", 0, json!({}))).must();
    let bad = node.conf("1.0.0", 0, json!({"vlan": 5000, "link_state": "sometimes"}));
    node.run(&call.with_command("DEL"), &bad).must();
    assert!(node.vf_link(0).is_some());
    assert_eq!(node.journals(), Vec::<String>::new());
}

#[test]
fn dpdk_mode_keeps_the_vf_on_vfio_and_reports_its_pci_address() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let node = Node::new(2);
    let paths = sriov_host::HostPaths::new(node.sysfs(), node.sim.dev_root());
    let vf: sriov_host::PciAddr = vf_pci(0).parse().unwrap();
    sriov_host::provision::bind_driver(
        &paths,
        vf,
        &sriov_host::provision::DriverTarget::Named("vfio-pci".into()),
    )
    .unwrap();
    let pod = node.pod();
    let conf = node.conf("1.0.0", 0, json!({"ipam": node.host_local()}));
    let call = Call::new("ADD", "dpdk", Some(pod.path()));
    let res = node.run(&call, &conf).must().json();
    assert_eq!(res["interfaces"][0]["pciID"], vf_pci(0), "{res}");
    assert_eq!(res["interfaces"][0]["name"], "net1");
    assert!(res["ips"][0]["address"].as_str().unwrap().starts_with("192.0.2."), "allocated: {res}");
    assert!(link_in(&pod, "net1").is_none(), "nothing is moved in userspace mode");
    let journal =
        std::fs::read_to_string(node.state_dir().join(format!("journal/{}.jsonl", vf_pci(0))))
            .unwrap();
    assert!(journal.lines().next().unwrap().contains("\"mode\":\"userspace\""), "{journal}");
    node.run(&call.with_command("CHECK"), &with_prev(&conf, &res)).must();
    node.run(&call.with_command("DEL"), &with_prev(&conf, &res)).must();
    assert_eq!(node.journals(), Vec::<String>::new());
    assert_eq!(node.leases(), Vec::<String>::new());
    // Still on vfio-pci: the plugin does not rebind drivers.
    let b = sriov_host::provision::binding(&paths, vf).unwrap();
    assert_eq!(b.driver.as_deref(), Some("vfio-pci"));
}

#[test]
fn del_is_idempotent_without_netns_and_after_the_netns_is_gone() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let node = Node::new(2);
    let before = home(&node, 0).unwrap();
    // DEL without CNI_NETNS: the journal knows the pod, the VF comes home.
    let pod = node.pod();
    let conf = node.conf("1.0.0", 0, json!({"ipam": node.host_local()}));
    let call = Call::new("ADD", "nonetns", Some(pod.path()));
    node.run(&call, &conf).must();
    let del = Call::new("DEL", "nonetns", None);
    node.run(&del, &conf).must();
    assert_eq!(home(&node, 0).as_ref(), Some(&before));
    assert_eq!(node.leases(), Vec::<String>::new());
    // Twice, and with a netns path that no longer exists.
    node.run(&del, &conf).must();
    node.run(
        &Call::new("DEL", "nonetns", Some(std::path::Path::new("/run/netns/does-not-exist"))),
        &conf,
    )
    .must();

    // The pod's netns vanishes with the VF inside (the simulator's veth dies with it; real
    // VFs return to the initial netns): DEL still succeeds, releases IPAM and the journal.
    let pod2 = node.pod();
    let pod2_path = pod2.path().to_owned();
    let call = Call::new("ADD", "gone", Some(&pod2_path));
    node.run(&call, &conf).must();
    assert_eq!(node.leases().len(), 1);
    pod2.remove().unwrap();
    node.run(&call.with_command("DEL"), &conf).must();
    assert_eq!(node.journals(), Vec::<String>::new());
    assert_eq!(node.leases(), Vec::<String>::new());
    node.run(&call.with_command("DEL"), &conf).must();
}

#[test]
fn altnames_are_dropped_in_the_pod_and_restored_at_home() {
    if skip_unless_root() {
        return;
    }
    let node = Node::new(2);
    let mut nl = node.nl();
    // A stale altname equal to the pod ifname (what systemd leaves after a rename, #445) and a
    // predictable name.
    nl.add_altnames(vf_name(1).as_str(), &["net1", "enp59s2f1"]).unwrap();
    let before = home(&node, 1).unwrap();
    assert_eq!(before.altnames.len(), 2);
    let pod = node.pod();
    let conf = node.conf("1.1.0", 1, json!({}));
    let call = Call::new("ADD", "alt", Some(pod.path()));
    node.run(&call, &conf).must();
    let l = link_in(&pod, "net1").unwrap();
    assert_eq!(l.alt_names, Vec::<String>::new());
    node.run(&call.with_command("DEL"), &conf).must();
    let after = home(&node, 1).unwrap();
    let mut a = after.altnames.clone();
    a.sort();
    assert_eq!(a, vec!["enp59s2f1".to_owned(), "net1".to_owned()]);
    assert_eq!(Home { altnames: before.altnames.clone(), ..after }, before);
}

#[test]
fn a_vf_held_by_a_live_pod_is_refused_until_that_pod_is_gone() {
    if skip_unless_root() {
        return;
    }
    let node = Node::new(1);
    let conf = node.conf("1.0.0", 0, json!({}));
    let pod_a = node.pod();
    let a = Call::new("ADD", "holder", Some(pod_a.path()));
    node.run(&a, &conf).must();
    let pod_b = node.pod();
    let b = Call::new("ADD", "newcomer", Some(pod_b.path()));
    let r = node.run(&b, &conf);
    assert_eq!(r.error_code(), 11, "{r:#?}");
    assert!(r.json()["msg"].as_str().unwrap().contains("in use by container holder"), "{r:#?}");
    assert!(link_in(&pod_a, "net1").is_some(), "the holder keeps its VF");
    // The holder's pod dies without a DEL: the next ADD clears the stale attachment. (The
    // simulator's veth died with the pod, so there is no netdev to hand over any more.)
    pod_a.remove().unwrap();
    let r = node.run(&b, &conf);
    assert_eq!(r.error_code(), 102, "{r:#?}");
    assert!(r.json()["details"].as_str().unwrap().contains("no netdev"), "{r:#?}");
    assert_eq!(node.journals(), Vec::<String>::new(), "stale journal cleared");
}

#[test]
fn gc_restores_attachments_missing_from_the_valid_list() {
    if skip_unless_root() {
        return;
    }
    let node = Node::new(3);
    let pods: Vec<_> = (0..3).map(|_| node.pod()).collect();
    for (i, pod) in pods.iter().enumerate() {
        let c = node.conf("1.1.0", i as u32, json!({"mtu": 1300}));
        node.run(&Call::new("ADD", &format!("gc{i}"), Some(pod.path())), &c).must();
    }
    assert_eq!(node.journals().len(), 3);
    let before: Vec<_> = (0..3).map(|i| node.vf_link(i)).collect();
    assert!(before.iter().all(Option::is_none), "all in pods");
    let mut gc = node.conf("1.1.0", 0, json!({}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc1", "ifname": "net1"}]);
    let call = Call { netns: None, ..Call::new("GC", "", None) };
    node.run(&call, &gc).must();
    assert_eq!(node.journals(), vec![format!("{}.jsonl", vf_pci(1))]);
    for i in [0, 2] {
        let l = node.vf_link(i).expect("collected VF is home");
        assert_eq!(l.mtu, Some(1500), "MTU restored");
    }
    assert!(link_in(&pods[0], "net1").is_none());
    assert!(link_in(&pods[1], "net1").is_some(), "the valid attachment is untouched");
    assert_eq!(node.devinfo_files(), vec!["sriov-test-gc1_net1".to_owned()]);
}

#[test]
fn device_info_file_is_written_on_add_and_removed_on_del() {
    use std::os::unix::fs::PermissionsExt;
    if skip_unless_root() {
        return;
    }
    let node = Node::new(2);
    let pod = node.pod();
    // Kernel (netdev) mode, at the default name under the configured base directory.
    let conf = node.conf("1.0.0", 1, json!({}));
    let call = Call::new("ADD", "devinfo", Some(pod.path()));
    node.run(&call, &conf).must();
    let file = node.devinfo_file("devinfo", "net1");
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        doc,
        json!({"type": "pci", "version": "1.1.0",
               "pci": {"pci-address": vf_pci(1), "pf-pci-address": PF_PCI}})
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444, "read-only, as the Go library writes it");
    let journal = std::fs::read_to_string(
        node.state_dir().join("journal").join(format!("{}.jsonl", vf_pci(1))),
    )
    .unwrap();
    assert!(journal.contains("removeDeviceInfo"), "its removal is journaled: {journal}");
    node.run(&call.with_command("DEL"), &conf).must();
    assert!(!file.exists(), "removed by DEL");
    assert_eq!(node.devinfo_files(), Vec::<String>::new());

    // Multus passes the path; the file does not exist yet: written there, removed by DEL.
    let multus = node.tmp.path().join("multus/devinfo/cni/sriov-test-m1_net1");
    let mut with_path = conf.clone();
    with_path["runtimeConfig"] = json!({"CNIDeviceInfoFile": multus});
    let m1 = Call::new("ADD", "m1", Some(pod.path()));
    node.run(&m1, &with_path).must();
    let doc: Value = serde_json::from_slice(&std::fs::read(&multus).unwrap()).unwrap();
    assert_eq!(doc["pci"]["pci-address"], json!(vf_pci(1)));
    assert_eq!(node.devinfo_files(), Vec::<String>::new(), "only the given path is written");
    node.run(&m1.with_command("DEL"), &with_path).must();
    assert!(!multus.exists());

    // Multus already copied the device plugin's file there: left alone by ADD and DEL.
    let dp = r#"{"type":"pci","version":"1.0.0","pci":{"pci-address":"0000:3b:02.1","rdma-device":"mlx5_9"}}"#;
    std::fs::write(&multus, dp).unwrap();
    node.run(&m1, &with_path).must();
    assert_eq!(std::fs::read_to_string(&multus).unwrap(), dp);
    node.run(&m1.with_command("DEL"), &with_path).must();
    assert_eq!(std::fs::read_to_string(&multus).unwrap(), dp, "not ours to remove");

    // Userspace (DPDK) mode writes it too.
    let paths = sriov_host::HostPaths::new(node.sysfs(), node.sim.dev_root());
    sriov_host::provision::bind_driver(
        &paths,
        vf_pci(0).parse().unwrap(),
        &sriov_host::provision::DriverTarget::Named("vfio-pci".into()),
    )
    .unwrap();
    let dpdk = node.conf("1.0.0", 0, json!({}));
    let d = Call::new("ADD", "dpdk", Some(pod.path()));
    node.run(&d, &dpdk).must();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(node.devinfo_file("dpdk", "net1")).unwrap()).unwrap();
    assert_eq!(doc["pci"]["pci-address"], json!(vf_pci(0)));
    node.run(&d.with_command("DEL"), &dpdk).must();
    assert_eq!(node.devinfo_files(), Vec::<String>::new());

    // A relative runtimeConfig path is a configuration error, before anything changes.
    let mut rel = conf.clone();
    rel["runtimeConfig"] = json!({"CNIDeviceInfoFile": "devinfo/x"});
    let r = node.run(&Call::new("ADD", "rel", Some(pod.path())), &rel);
    assert_eq!(r.error_code(), 7, "{r:#?}");
    assert!(node.vf_link(1).is_some(), "nothing moved");
}

#[test]
fn status_and_version() {
    if skip_unless_root() {
        return;
    }
    let node = Node::new(1);
    let conf = node.conf("1.1.0", 0, json!({}));
    let call = Call { netns: None, ..Call::new("STATUS", "", None) };
    let r = node.run(&call, &conf).must();
    assert_eq!(r.stdout, "");
    std::fs::write(node.tmp.path().join("not-a-dir"), "x").unwrap();
    let bad = node.conf("1.1.0", 0, json!({"stateDir": node.tmp.path().join("not-a-dir")}));
    let r = node.run(&call, &bad);
    assert_eq!(r.error_code(), 50, "{r:#?}");
    assert!(r.json()["details"].as_str().unwrap().contains("not-a-dir"), "{r:#?}");
    let r = node
        .run(
            &Call { netns: None, ..Call::new("VERSION", "", None) },
            &json!({"cniVersion": "1.0.0"}),
        )
        .must();
    assert_eq!(r.json()["supportedVersions"], json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
}
