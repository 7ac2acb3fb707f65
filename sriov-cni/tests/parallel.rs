//! 32 VFs attached and detached in parallel, by 32 concurrent plugin processes: every ADD and
//! DEL succeeds, every VF comes home as it was, nothing leaks (links, journals, addresses).
//! Needs root (skips otherwise).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::sim::*;
use pretty_assertions::assert_eq;
use serde_json::json;

const N: u32 = 32;

fn run_32(per_pf_lock: bool) {
    let node = Node::new(N as u16);
    let names_before: Vec<_> =
        (0..N).map(|i| node.vf_link(i).map(|l| (l.name, l.mac, l.mtu))).collect();
    assert!(names_before.iter().all(Option::is_some));
    let links_before = node.nl().list_links().unwrap().len();
    let pods: Vec<_> = (0..N).map(|_| node.pod()).collect();
    let conf = |i: u32| {
        node.conf("1.0.0", i, json!({"ipam": node.host_local(), "perPfLock": per_pf_lock}))
    };
    let calls: Vec<_> = (0..N)
        .map(|i| Call::new("ADD", &format!("par{i}"), Some(pods[i as usize].path())))
        .collect();

    let children: Vec<_> = (0..N).map(|i| node.spawn(&calls[i as usize], &conf(i))).collect();
    for (i, c) in children.into_iter().enumerate() {
        let r: Run = c.wait_with_output().unwrap().into();
        assert!(r.ok(), "ADD {i}: {r:#?}");
    }
    for (i, pod) in pods.iter().enumerate() {
        assert!(link_in(pod, "net1").is_some(), "pod {i} has its VF");
    }
    assert_eq!(node.journals().len(), N as usize);
    assert_eq!(node.leases().len(), N as usize);
    assert_eq!(node.nl().list_links().unwrap().len(), links_before - N as usize);

    let children: Vec<_> =
        (0..N).map(|i| node.spawn(&calls[i as usize].with_command("DEL"), &conf(i))).collect();
    for (i, c) in children.into_iter().enumerate() {
        let r: Run = c.wait_with_output().unwrap().into();
        assert!(r.ok(), "DEL {i}: {r:#?}");
    }
    let names_after: Vec<_> =
        (0..N).map(|i| node.vf_link(i).map(|l| (l.name, l.mac, l.mtu))).collect();
    assert_eq!(names_after, names_before);
    assert_eq!(node.nl().list_links().unwrap().len(), links_before, "no link leaked or lost");
    for pod in &pods {
        assert_eq!(nl_in(pod).list_links().unwrap().len(), 1, "only lo left in the pod");
    }
    assert_eq!(node.journals(), Vec::<String>::new());
    assert_eq!(node.leases(), Vec::<String>::new());
}

#[test]
fn thirty_two_vfs_add_and_del_in_parallel() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    run_32(false);
}

#[test]
fn thirty_two_vfs_in_parallel_with_the_per_pf_lock() {
    if skip_unless_root() || !have_reference_plugins() {
        return;
    }
    run_32(true);
}
