//! Fault injection at every step of ADD and DEL, in the built binary (tests build it with the
//! `failpoints` feature): an error or a panic is rolled back by ADD itself; a `kill -9` leaves
//! the journal, and the next DEL restores the VF to the node with its original name, MAC, MTU,
//! state and altnames, and releases the address and the device-info file. Needs root (skips otherwise).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::sim::*;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use sriov_cni::failpoint::{ADD_STEPS, ENV};

/// Steps a veth-backed VF reaches with [`conf`]: no PF-side settings can succeed on a veth
/// "PF", and the MAC is one of them (`add:vf-settings-applied`, `add:mac-set` are covered by
/// the fake-transport tests in `tests/engine.rs`).
const REACHED: &[&str] = &[
    "add:journal-written",
    "add:altnames-dropped",
    "add:moved",
    "add:mtu-set",
    "add:up",
    "add:ipam",
    "add:addresses",
    "add:device-info",
    "add:complete",
];

#[derive(Debug, PartialEq)]
struct Home {
    name: String,
    mac: Option<String>,
    mtu: Option<u32>,
    up: bool,
    altnames: Vec<String>,
}

fn home(node: &Node, vf: u32) -> Option<Home> {
    node.vf_link(vf).map(|l| {
        let mut altnames = l.alt_names.clone();
        altnames.sort();
        Home {
            name: l.name.clone(),
            mac: l.mac.map(|m| m.to_string()),
            mtu: l.mtu,
            up: l.is_up(),
            altnames,
        }
    })
}

fn setup() -> (Node, Value, Home) {
    let node = Node::new(2);
    node.nl().add_altnames(vf_name(1).as_str(), &["enp59s2f1"]).unwrap();
    let conf = node.conf("1.0.0", 1, json!({"mtu": 1400, "ipam": node.host_local()}));
    let before = home(&node, 1).unwrap();
    (node, conf, before)
}

fn assert_home(node: &Node, before: &Home, what: &str) {
    assert_eq!(home(node, 1).as_ref(), Some(before), "{what}: VF not restored");
    assert_eq!(node.journals(), Vec::<String>::new(), "{what}: journal left");
    assert_eq!(node.leases(), Vec::<String>::new(), "{what}: address leaked");
    assert_eq!(node.devinfo_files(), Vec::<String>::new(), "{what}: device-info file left");
}

/// Steps only reached when a PF-side setting succeeds, which a veth "PF" never lets happen.
const UNREACHABLE_ON_VETH: &[&str] = &["add:vf-settings-applied", "add:mac-set"];

#[test]
fn every_add_step_is_covered_here_or_by_the_engine_tests() {
    // A new step in ADD must be added to one of the lists (and so get tested).
    let mut covered: Vec<&str> = REACHED.iter().chain(UNREACHABLE_ON_VETH).copied().collect();
    covered.push("add:vf-settings"); // reached with a PF-side setting, before the message
    covered.sort();
    let mut all = ADD_STEPS.to_vec();
    all.sort();
    assert_eq!(covered, all);
}

#[test]
fn an_error_or_panic_at_any_add_step_is_rolled_back_by_add() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let (node, conf, before) = setup();
    let pod = node.pod();
    for step in REACHED {
        for (action, code) in [("error", 100), ("panic", 999)] {
            let what = format!("{step}:{action}");
            let call = Call::new("ADD", "fault", Some(pod.path())).env(ENV, &what);
            let r = node.run(&call, &conf);
            assert_eq!(r.error_code(), code, "{what}: {r:#?}");
            assert!(r.stderr.contains("rolled back"), "{what}: {}", r.stderr);
            assert!(link_in(&pod, "net1").is_none(), "{what}: left in the pod");
            assert_home(&node, &before, &what);
        }
    }
    // A failpoint before the VF message (only reached with PF-side settings).
    let vlan = node.conf("1.0.0", 1, json!({"vlan": 10}));
    let r =
        node.run(&Call::new("ADD", "fault", Some(pod.path())).env(ENV, "add:vf-settings"), &vlan);
    assert_eq!(r.error_code(), 100, "{r:#?}");
    assert!(r.json()["details"].as_str().unwrap().contains("failpoint add:vf-settings"), "{r:#?}");
    assert_home(&node, &before, "add:vf-settings");
}

#[test]
fn kill_9_between_any_two_add_steps_is_repaired_by_the_next_del() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let (node, conf, before) = setup();
    let pod = node.pod();
    for step in REACHED {
        let call = Call::new("ADD", "killed", Some(pod.path())).env(ENV, &format!("{step}:pause"));
        let mut child = node.spawn(&call, &conf);
        let seen = read_stderr_until(&mut child, &format!("failpoint {step} paused"));
        assert!(seen.contains("paused"), "{step}: never paused: {seen}");
        child.kill().unwrap(); // SIGKILL: no unwinding, no rollback
        child.wait().unwrap();
        assert_eq!(node.journals().len(), 1, "{step}: the journal survives the kill");
        // The runtime's DEL (CNI_NETNS still set) finishes the job.
        node.run(&call.with_command("DEL").env(ENV, ""), &conf).must();
        assert!(link_in(&pod, "net1").is_none(), "{step}");
        assert_home(&node, &before, step);
    }
}

#[test]
fn killed_add_then_a_retried_add_for_the_same_attachment_recovers_first() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let (node, conf, before) = setup();
    let pod = node.pod();
    let call = Call::new("ADD", "retry", Some(pod.path()));
    let mut child = node.spawn(&call.clone().env(ENV, "add:addresses:pause"), &conf);
    read_stderr_until(&mut child, "paused");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(node.journals().len(), 1);
    assert_eq!(node.leases().len(), 1);
    // A retried ADD of the same attachment restores the half-done one, then attaches.
    let res = node.run(&call, &conf).must().json();
    assert!(link_in(&pod, "net1").is_some());
    assert_eq!(node.leases().len(), 1, "the aborted run's address was released: {res}");
    node.run(&call.with_command("DEL"), &conf).must();
    assert_home(&node, &before, "after retry");
}

#[test]
fn del_failures_keep_the_journal_and_a_retry_finishes() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    let (node, conf, before) = setup();
    let pod = node.pod();
    let call = Call::new("ADD", "delfail", Some(pod.path()));
    node.run(&call, &conf).must();
    for fp in ["del:locked", "del:undo"] {
        let r = node.run(&call.with_command("DEL").env(ENV, fp), &conf);
        assert!(!r.ok(), "{fp}: {r:#?}");
        assert_eq!(node.journals().len(), 1, "{fp}: journal kept for the retry");
    }
    // kill -9 in the middle of DEL's undo replay.
    let mut child = node.spawn(&call.with_command("DEL").env(ENV, "del:undo:pause"), &conf);
    read_stderr_until(&mut child, "failpoint del:undo paused");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(node.journals().len(), 1);
    node.run(&call.with_command("DEL"), &conf).must();
    assert_home(&node, &before, "DEL retry");
}

#[test]
fn the_plugin_runs_in_the_node_netns_never_the_root_one() {
    if skip_unless_root() {
        return;
    }
    let (node, conf, _) = setup();
    let pod = node.pod();
    let call = Call::new("ADD", "where", Some(pod.path())).env(ENV, "add:journal-written:pause");
    let mut child = node.spawn(&call, &json!(conf));
    read_stderr_until(&mut child, "paused");
    let ino =
        |p: String| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let plugin = ino(format!("/proc/{}/ns/net", child.id()));
    let node_ino = node.netns.inode().unwrap();
    let ours = ino("/proc/self/ns/net".into());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(plugin, node_ino, "plugin runs in the node netns");
    assert_ne!(plugin, ours, "and not in the test's own netns");
    node.run(&call.with_command("DEL").env(ENV, ""), &conf).must();
}
