//! Prints how long the kernel-boundary steps of a CNI ADD take here:
//! entering a netns for a socket, a VF message build, and a veth
//! create/move/rename/delete cycle, each in a throwaway netns.
//!
//! `cargo run --release -p sriov-netlink --example netns_latency` (root).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use sriov_netlink::vf::build_vf_message;
use sriov_netlink::{
    Mac, OwnedNetns, VethSpec, VfConfig, VfLinkState, VfRate, VfVlan, VlanProto,
    open_route_socket_in, serialize,
};

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let n = v.len();
    let total: Duration = v.iter().sum();
    println!(
        "{name:<40} n={n:<5} mean={:>9.1?} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        total / n as u32,
        v[n / 2],
        v[(n * 99) / 100],
        v[n - 1]
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = VfConfig::new(3)
        .with_mac("02:00:5e:00:53:03".parse::<Mac>()?)
        .with_vlan(VfVlan::new(100, 3, VlanProto::Dot1Ad)?)
        .with_spoofchk(false)
        .with_trust(true)
        .with_link_state(VfLinkState::Enable)
        .with_rate(VfRate::new(100, 1000)?);
    let mut build = Vec::new();
    for _ in 0..10_000 {
        let t = Instant::now();
        let bytes = serialize(&build_vf_message(4, &cfg)?);
        std::hint::black_box(bytes);
        build.push(t.elapsed());
    }
    stats("build+serialize full VF message", build);

    let pod = match OwnedNetns::create_unique("snl-bench") {
        Ok(ns) => ns,
        Err(e) => {
            println!("skipped netns figures (needs root): {e}");
            return Ok(());
        }
    };
    let host = OwnedNetns::create_unique("snl-bench")?;
    let mut sock = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let nl = open_route_socket_in(&pod)?;
        sock.push(t.elapsed());
        drop(nl);
    }
    stats("open_route_socket_in (thread+setns+socket)", sock);

    let mut nl_host = open_route_socket_in(&host)?;
    let mut nl_pod = open_route_socket_in(&pod)?;
    let mut cycle = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        nl_host.create_veth(&VethSpec::new("vf0", "vf0p"))?;
        nl_host.move_to_netns("vf0", pod.as_fd(), Some("net1"))?;
        nl_pod.set_up("net1")?;
        nl_pod.delete_link("net1")?;
        cycle.push(t.elapsed());
        if i == 0 {
            println!("first cycle: {:?}", cycle[0]);
        }
    }
    stats("veth create+move/rename+up+delete", cycle);
    Ok(())
}
