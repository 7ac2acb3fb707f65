//! Kernel tests: every test creates its own network namespaces (bind-mounted
//! under /run/netns, removed on drop, even when the test fails) and talks to
//! them only through sockets created inside them. Only TEST-NET addresses
//! are used. Without root each test prints "skipped: needs root".

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use sriov_netlink::garp::{self, FrameCapture};
use sriov_netlink::neigh::nud;
use sriov_netlink::raw::core::{DefaultNla, NLA_F_NESTED, NLM_F_ACK, NLM_F_REQUEST};
use sriov_netlink::raw::route::RouteNetlinkMessage;
use sriov_netlink::raw::route::link::{LinkAttribute, LinkMessage};
use sriov_netlink::*;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// The netns the tests must never touch: PID 1's where we may read it,
/// else this process's (where the test harness started, the host's here).
fn host() -> Netns {
    Netns::init().or_else(|_| Netns::process()).expect("open host netns")
}

/// A fresh netns plus a route socket inside it; asserts the socket really
/// lives in that netns and not in the initial one.
fn fresh() -> (OwnedNetns, Netlink) {
    let ns = OwnedNetns::create_unique("snl-test").expect("create netns");
    let nl = open_route_socket_in(&ns).expect("socket in netns");
    let sock_ns = socket_netns(nl.transport().as_fd()).expect("SIOCGSKNS");
    assert!(sock_ns.same_as(&ns).unwrap(), "socket is not in the test netns");
    assert!(!sock_ns.same_as(&host()).unwrap(), "socket is in the host netns");
    (ns, nl)
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

#[test]
fn guard_tests_never_run_in_the_initial_netns() {
    needs_root!();
    let init = host();
    assert!(init.same_as(&Netns::process().unwrap()).unwrap() || Netns::init().is_ok());
    let (ns, nl) = fresh();
    assert!(!ns.same_as(&init).unwrap());
    // Code run "in" the netns really is in it...
    let inside = run_in_netns(&ns, || Netns::current().unwrap().inode().unwrap()).unwrap();
    assert_eq!(inside, ns.inode().unwrap());
    assert_ne!(inside, init.inode().unwrap());
    // ...the calling thread never moved...
    assert!(!Netns::current().unwrap().same_as(&ns).unwrap());
    // ...and the socket check above can fail: a socket made on this thread
    // is in this thread's netns, not the test's.
    let host = Netlink::open().unwrap();
    let host_ns = socket_netns(host.transport().as_fd()).unwrap();
    assert!(host_ns.same_as(&Netns::current().unwrap()).unwrap());
    assert!(!host_ns.same_as(&ns).unwrap());
    // A fresh netns holds only lo.
    let mut nl = nl;
    let names: Vec<String> = nl.list_links().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["lo"]);
}

#[test]
fn owned_netns_is_removed() {
    needs_root!();
    let ns = OwnedNetns::create_unique("snl-test").unwrap();
    let path = ns.path().to_path_buf();
    assert!(path.starts_with("/run/netns"));
    assert!(Netns::open(&path).is_ok());
    ns.remove().unwrap();
    assert!(!path.exists());
    let e = Netns::open(&path).unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn veth_create_configure_move_rename_delete() {
    needs_root!();
    let (ns1, mut nl1) = fresh();
    let (ns2, mut nl2) = fresh();
    let mut spec = VethSpec::new("vA", "vB");
    spec.mac = Some(mac("02:00:5e:00:53:a1"));
    spec.peer_mac = Some(mac("02:00:5e:00:53:b1"));
    spec.mtu = Some(1400);
    spec.peer_netns = Some(ns2.as_fd());
    nl1.create_veth(&spec).unwrap();

    let a = nl1.get_link("vA").unwrap();
    let b = nl2.get_link("vB").unwrap();
    assert_eq!((a.mac, a.mtu, a.kind.as_deref()), (spec.mac, Some(1400), Some("veth")));
    assert_eq!((b.mac, b.mtu), (spec.peer_mac, Some(1400)));
    assert!(nl1.get_link("vB").unwrap_err().is_not_found(), "peer must be in ns2 only");
    assert!(!a.is_up());

    nl1.set_up("vA").unwrap();
    assert!(nl1.get_link(a.index).unwrap().is_up());
    nl1.set_down(a.index).unwrap();
    assert!(!nl1.get_link(a.index).unwrap().is_up());

    nl1.rename(a.index, "vA2").unwrap();
    nl1.set_mac("vA2", mac("02:00:5e:00:53:a2")).unwrap();
    nl1.set_mtu("vA2", 1300).unwrap();
    nl1.set_alias("vA2", "sriov-netlink test").unwrap();
    let a2 = nl1.get_link("vA2").unwrap();
    assert_eq!(a2.index, a.index);
    assert_eq!(a2.mac, Some(mac("02:00:5e:00:53:a2")));
    assert_eq!(a2.mtu, Some(1300));
    assert_eq!(a2.alias.as_deref(), Some("sriov-netlink test"));
    nl1.set_alias("vA2", "").unwrap();
    assert_eq!(nl1.get_link("vA2").unwrap().alias, None);

    // Rename-on-move: vB comes back into ns1 as "eth0" in one message.
    nl2.move_to_netns("vB", ns1.as_fd(), Some("eth0")).unwrap();
    assert!(nl2.get_link("vB").unwrap_err().is_not_found());
    let moved = nl1.get_link("eth0").unwrap();
    assert_eq!(moved.mac, spec.peer_mac);

    nl1.delete_link("vA2").unwrap();
    assert!(nl1.get_link("eth0").unwrap_err().is_not_found(), "deleting one end removes the peer");
    let e = nl1.delete_link(a.index).unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn move_collides_without_rename_and_succeeds_with_it() {
    needs_root!();
    let (_ns1, mut nl1) = fresh();
    let (ns2, mut nl2) = fresh();
    nl1.create_veth(&VethSpec::new("eth0", "x0")).unwrap();
    nl2.create_veth(&VethSpec::new("eth0", "y0")).unwrap();
    let e = nl1.move_to_netns("eth0", ns2.as_fd(), None).unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    nl1.move_to_netns("eth0", ns2.as_fd(), Some("eth1")).unwrap();
    assert!(nl2.get_link("eth1").is_ok());
}

#[test]
fn altnames_add_lookup_delete_and_block_moves() {
    needs_root!();
    let (_ns1, mut nl1) = fresh();
    let (ns2, mut nl2) = fresh();
    nl1.create_veth(&VethSpec::new("vf0", "vf0p")).unwrap();
    nl1.add_altnames("vf0", &["enp59s0f0v0"]).unwrap();
    let l = nl1.get_link("vf0").unwrap();
    assert_eq!(l.alt_names, ["enp59s0f0v0"]);
    assert_eq!(nl1.link_index("enp59s0f0v0").unwrap(), l.index, "lookup by altname");

    // The target netns has a device named like the altname: the kernel
    // refuses the move. Deleting the altname first lets it through.
    nl2.create_veth(&VethSpec::new("enp59s0f0v0", "zz0")).unwrap();
    let e = nl1.move_to_netns(l.index, ns2.as_fd(), Some("net1")).unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    nl1.del_altname(l.index, "enp59s0f0v0").unwrap();
    assert!(nl1.get_link(l.index).unwrap().alt_names.is_empty());
    let e = nl1.del_altname(l.index, "enp59s0f0v0").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    nl1.move_to_netns(l.index, ns2.as_fd(), Some("net1")).unwrap();
    assert!(nl2.get_link("net1").is_ok());
}

fn veth_up(nl: &mut Netlink, name: &str, peer: &str) -> u32 {
    nl.create_veth(&VethSpec::new(name, peer)).unwrap();
    nl.set_up(name).unwrap();
    nl.set_up(peer).unwrap();
    nl.link_index(name).unwrap()
}

#[test]
fn addresses_v4_v6() {
    needs_root!();
    let (_ns, mut nl) = fresh();
    let idx = veth_up(&mut nl, "a0", "a1");
    let v4 = p("192.0.2.10/24");
    let v6 = p("2001:db8:1::10/64");
    nl.add_address(idx, v4, AddressOptions::default()).unwrap();
    nl.add_address("a0", v6, AddressOptions { nodad: true, ..Default::default() }).unwrap();
    assert!(nl.add_address(idx, v4, AddressOptions::default()).unwrap_err().is_exists());

    let got = nl.list_addresses(Some(LinkId::Index(idx)), None).unwrap();
    let a4 = got.iter().find(|a| a.prefix == v4).expect("v4 listed");
    let a6 = got.iter().find(|a| a.prefix == v6).expect("v6 listed");
    assert_eq!(a4.index, idx);
    assert!(!a6.is_tentative(), "nodad address must not be tentative");
    assert!(a6.flags & sriov_netlink::addr::ifa::NODAD != 0);
    let only6 = nl.list_addresses(Some(LinkId::Index(idx)), Some(IpFamily::V6)).unwrap();
    assert!(only6.iter().all(|a| a.prefix.family() == IpFamily::V6));
    // The connected route came with the v4 address.
    let routes = nl.list_routes(IpFamily::V4, Some(254)).unwrap();
    assert!(routes.iter().any(|r| r.dst == p("192.0.2.0/24") && r.oif == Some(idx)));

    nl.del_address(idx, v4).unwrap();
    nl.del_address(idx, v6).unwrap();
    let left = nl.list_addresses(Some(LinkId::Index(idx)), None).unwrap();
    assert!(left.iter().all(|a| a.prefix != v4 && a.prefix != v6), "{left:?}");
    assert!(nl.del_address(idx, v4).unwrap_err().is_not_found());
}

#[test]
fn routes_v4_v6_custom_table() {
    needs_root!();
    let (_ns, mut nl) = fresh();
    let idx = veth_up(&mut nl, "r0", "r1");
    nl.add_address(idx, p("192.0.2.1/24"), AddressOptions::default()).unwrap();
    nl.add_address(
        idx,
        p("2001:db8:2::1/64"),
        AddressOptions { nodad: true, ..Default::default() },
    )
    .unwrap();

    let via4 = RouteSpec::new(p("198.51.100.0/24"))
        .via("192.0.2.254".parse().unwrap())
        .dev(idx)
        .table(1000)
        .metric(50);
    let dev4 = RouteSpec::new(p("203.0.113.7/32")).dev(idx).table(1000);
    let via6 = RouteSpec::new(p("2001:db8:99::/48"))
        .via("2001:db8:2::fe".parse().unwrap())
        .dev(idx)
        .table(1000);
    let def4 =
        RouteSpec::new(IpPrefix::default_route(IpFamily::V4)).via("192.0.2.254".parse().unwrap());
    // A /32 gateway outside any subnet needs onlink.
    let mut onlink = RouteSpec::new(p("203.0.113.0/24"))
        .via("169.254.1.1".parse().unwrap())
        .dev(idx)
        .table(1001);
    assert!(nl.add_route(&onlink).is_err(), "gateway unreachable without onlink");
    onlink.onlink = true;
    for r in [&via4, &dev4, &via6, &def4, &onlink] {
        nl.add_route(r).unwrap();
    }
    assert!(nl.add_route(&via4).unwrap_err().is_exists());

    let t4 = nl.list_routes(IpFamily::V4, Some(1000)).unwrap();
    let r = t4.iter().find(|r| r.dst == p("198.51.100.0/24")).expect("via route");
    assert_eq!(
        (r.gateway, r.oif, r.metric, r.table),
        (Some("192.0.2.254".parse().unwrap()), Some(idx), Some(50), 1000)
    );
    let r = t4.iter().find(|r| r.dst == p("203.0.113.7/32")).expect("dev route");
    assert_eq!((r.gateway, r.scope), (None, Scope::Link));
    assert!(t4.iter().all(|r| r.table == 1000));
    let t6 = nl.list_routes(IpFamily::V6, Some(1000)).unwrap();
    assert!(
        t6.iter().any(|r| r.dst == p("2001:db8:99::/48")
            && r.gateway == Some("2001:db8:2::fe".parse().unwrap()))
    );
    let main = nl.list_routes(IpFamily::V4, Some(254)).unwrap();
    assert!(
        main.iter().any(|r| r.dst.is_empty() && r.gateway == Some("192.0.2.254".parse().unwrap()))
    );
    let t1001 = nl.list_routes(IpFamily::V4, Some(1001)).unwrap();
    assert!(t1001.iter().any(|r| r.onlink));

    for r in [&via4, &dev4, &via6, &def4, &onlink] {
        nl.del_route(r).unwrap();
    }
    assert!(nl.list_routes(IpFamily::V4, Some(1000)).unwrap().is_empty());
    assert!(nl.del_route(&via4).unwrap_err().is_not_found());
}

#[test]
fn rules_v4_v6() {
    needs_root!();
    let (_ns, mut nl) = fresh();
    veth_up(&mut nl, "p0", "p1");
    let r4 = RuleSpec {
        priority: Some(1000),
        from: Some(p("192.0.2.0/24")),
        to: Some(p("198.51.100.0/24")),
        iif: Some("p0".into()),
        ..RuleSpec::lookup(IpFamily::V4, 100)
    };
    let r6 = RuleSpec {
        priority: Some(1001),
        from: Some(p("2001:db8::/32")),
        oif: Some("p1".into()),
        ..RuleSpec::lookup(IpFamily::V6, 300)
    };
    nl.add_rule(&r4).unwrap();
    nl.add_rule(&r6).unwrap();
    assert!(nl.add_rule(&r4).unwrap_err().is_exists());

    let l4 = nl.list_rules(IpFamily::V4).unwrap();
    let got = l4.iter().find(|r| r.priority == 1000).expect("v4 rule listed");
    assert_eq!(got.from, r4.from);
    assert_eq!(got.to, r4.to);
    assert_eq!(got.iif.as_deref(), Some("p0"));
    assert_eq!(got.action, Some(RuleAction::Table(100)));
    let l6 = nl.list_rules(IpFamily::V6).unwrap();
    let got = l6.iter().find(|r| r.priority == 1001).expect("v6 rule listed");
    assert_eq!((got.oif.as_deref(), got.action), (Some("p1"), Some(RuleAction::Table(300))));
    assert!(l6.iter().all(|r| r.family == IpFamily::V6));

    nl.del_rule(&r4).unwrap();
    nl.del_rule(&r6).unwrap();
    assert!(!nl.list_rules(IpFamily::V4).unwrap().iter().any(|r| r.priority == 1000));
    assert!(nl.del_rule(&r4).unwrap_err().is_not_found());
}

#[test]
fn neighbours_permanent_and_proxy() {
    needs_root!();
    let (_ns, mut nl) = fresh();
    let idx = veth_up(&mut nl, "n0", "n1");
    let perm4 = NeighbourSpec {
        ifindex: idx,
        ip: "192.0.2.20".parse().unwrap(),
        mac: Some(mac("02:00:5e:00:53:20")),
        kind: NeighbourKind::Permanent,
    };
    let perm6 = NeighbourSpec { ip: "2001:db8::20".parse().unwrap(), ..perm4.clone() };
    let proxy4 = NeighbourSpec {
        ifindex: idx,
        ip: "192.0.2.21".parse().unwrap(),
        mac: None,
        kind: NeighbourKind::Proxy,
    };
    let proxy6 = NeighbourSpec { ip: "2001:db8::21".parse().unwrap(), ..proxy4.clone() };
    for n in [&perm4, &perm6, &proxy4, &proxy6] {
        nl.add_neighbour(n).unwrap();
    }
    let n4 = nl.list_neighbours(IpFamily::V4, Some(idx), false).unwrap();
    let e = n4.iter().find(|n| n.ip == perm4.ip).expect("permanent v4");
    assert_eq!((e.mac, e.state & nud::PERMANENT != 0), (perm4.mac, true));
    let n6 = nl.list_neighbours(IpFamily::V6, Some(idx), false).unwrap();
    assert!(n6.iter().any(|n| n.ip == perm6.ip && n.mac == perm6.mac));
    let p4 = nl.list_neighbours(IpFamily::V4, Some(idx), true).unwrap();
    assert!(p4.iter().any(|n| n.ip == proxy4.ip && n.proxy));
    assert!(!n4.iter().any(|n| n.ip == proxy4.ip), "proxies are listed separately");
    let p6 = nl.list_neighbours(IpFamily::V6, Some(idx), true).unwrap();
    assert!(p6.iter().any(|n| n.ip == proxy6.ip));

    for n in [&perm4, &perm6, &proxy4, &proxy6] {
        nl.del_neighbour(n).unwrap();
    }
    assert!(
        nl.list_neighbours(IpFamily::V4, Some(idx), false)
            .unwrap()
            .iter()
            .all(|n| n.ip != perm4.ip)
    );
    assert!(nl.list_neighbours(IpFamily::V6, Some(idx), true).unwrap().is_empty());
    assert!(nl.del_neighbour(&perm4).unwrap_err().is_not_found());
}

#[test]
fn link_events_report_carrier_change() {
    needs_root!();
    let (ns1, mut nl1) = fresh();
    let (ns2, mut nl2) = fresh();
    let mut events = link_events_in(&ns1).unwrap();
    let mut spec = VethSpec::new("ev0", "ev1");
    spec.peer_netns = Some(ns2.as_fd());
    nl1.create_veth(&spec).unwrap();
    let idx = nl1.link_index("ev0").unwrap();
    nl1.set_up(idx).unwrap();
    // Without the peer up there is no carrier; then the peer comes up.
    assert!(!nl1.get_link(idx).unwrap().has_lower_up());
    nl2.set_up("ev1").unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen_new = false;
    let mut seen_carrier = false;
    while !(seen_new && seen_carrier) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(ev) = events.next_event_timeout(left).unwrap() else { break };
        if ev.index() != idx {
            continue;
        }
        assert_eq!(ev.name(), "ev0");
        seen_new |= ev.kind == LinkEventKind::New;
        seen_carrier |= ev.carrier() && ev.link.has_lower_up() && ev.oper_state() == OperState::Up;
    }
    assert!(seen_new, "no RTM_NEWLINK for ev0");
    assert!(seen_carrier, "no carrier-up event for ev0");

    nl1.delete_link(idx).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = events.next_event_timeout(left).unwrap().expect("no RTM_DELLINK for ev0");
        if ev.index() == idx && ev.kind == LinkEventKind::Del {
            break;
        }
    }
    drop(ns2);
}

#[test]
fn vf_message_reaches_the_kernel_and_errors_are_distinguishable() {
    needs_root!();
    let (_ns, mut nl) = fresh();
    nl.create_veth(&VethSpec::new("pf0", "pf0p")).unwrap();
    let pf = nl.get_link("pf0").unwrap();
    assert!(pf.vfs.is_empty(), "a veth has no VFs");

    let cfg = VfConfig::new(3)
        .with_mac(mac("02:00:5e:00:53:03"))
        .with_vlan(VfVlan::new(100, 3, VlanProto::Dot1Ad).unwrap())
        .with_spoofchk(false)
        .with_trust(true)
        .with_link_state(VfLinkState::Enable)
        .with_rate(VfRate::new(100, 1000).unwrap());
    // The kernel parsed every nested attribute and then found no
    // ndo_set_vf_* on the veth: EOPNOTSUPP.
    let e = nl.set_vf("pf0", &cfg).unwrap_err();
    assert!(e.is_not_supported(), "{e:?}");
    assert_eq!(e.to_string(), format!("setlink vf 3 on pf pf0 (ifindex {})", pf.index));
    // Per attribute: the first one (MAC) already fails and is named.
    let e = nl.set_vf_each(pf.index, &cfg).unwrap_err();
    assert_eq!((e.vf_attr(), e.errno()), (Some(VfAttr::Mac), Some(libc_eopnotsupp())));

    // Malformed: an IFLA_VF_MAC shorter than struct ifla_vf_mac. The
    // kernel's policy check rejects it before looking at the driver.
    let mut short_mac = Vec::new();
    short_mac.extend_from_slice(&8u16.to_ne_bytes());
    short_mac.extend_from_slice(&1u16.to_ne_bytes());
    short_mac.extend_from_slice(&3u32.to_ne_bytes());
    let e = send_vfinfo(&mut nl, pf.index, 1, short_mac.clone()).unwrap_err();
    let errno = e.errno().unwrap();
    assert_ne!(errno, libc_eopnotsupp(), "a malformed nest must not reach the driver");
    // Malformed: the list holds something other than IFLA_VF_INFO.
    let e = send_vfinfo(&mut nl, pf.index, 2, short_mac).unwrap_err();
    assert_ne!(e.errno(), Some(libc_eopnotsupp()));
    eprintln!("malformed VF attribute -> errno {errno} ({e})");
}

fn libc_eopnotsupp() -> i32 {
    95
}

/// Sends IFLA_VFINFO_LIST { <info_type> { raw } } to the PF.
fn send_vfinfo(nl: &mut Netlink, index: u32, info_type: u16, raw: Vec<u8>) -> Result<()> {
    let mut info = Vec::new();
    info.extend_from_slice(&((4 + raw.len()) as u16).to_ne_bytes());
    info.extend_from_slice(&(info_type | NLA_F_NESTED).to_ne_bytes());
    info.extend(raw);
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes.push(LinkAttribute::Other(DefaultNla::new(22 | NLA_F_NESTED, info)));
    nl.send_request(
        "malformed vf request",
        request(RouteNetlinkMessage::NewLink(m), NLM_F_REQUEST | NLM_F_ACK),
    )
    .map(drop)
}

#[test]
fn sysctls_are_per_netns() {
    needs_root!();
    let (ns, mut nl) = fresh();
    nl.create_veth(&VethSpec::new("s0", "s1")).unwrap();
    let key = "net/ipv4/conf/s0/arp_notify";
    assert_eq!(read_sysctl_in(&ns, key).unwrap(), "0");
    write_sysctl_in(&ns, key, "1").unwrap();
    assert_eq!(read_sysctl_in(&ns, key).unwrap(), "1");
    // The interface does not exist in the host netns: nothing leaked there.
    assert!(!std::path::Path::new("/proc/sys/net/ipv4/conf/s0").exists());
    let e = write_sysctl_in(&ns, "net/ipv4/conf/nosuch0/arp_notify", "1").unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(write_sysctl_in(&ns, "kernel/hostname", "x").is_err(), "non-net sysctls are refused");
}

fn wait_neighbour(nl: &mut Netlink, fam: IpFamily, idx: u32, ip: IpAddr, want: Mac) -> bool {
    // The kernel updates its table in the receive softirq; allow a short,
    // bounded wait after the frame was seen on the wire.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if nl
            .list_neighbours(fam, Some(idx), false)
            .unwrap()
            .iter()
            .any(|n| n.ip == ip && n.mac == Some(want))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn gratuitous_arp_and_unsolicited_na_reach_the_peer() {
    needs_root!();
    let (ns1, mut nl1) = fresh();
    let (ns2, mut nl2) = fresh();
    let mut spec = VethSpec::new("pod0", "peer0");
    spec.mac = Some(mac("02:00:5e:00:53:c1"));
    spec.peer_netns = Some(ns2.as_fd());
    nl1.create_veth(&spec).unwrap();
    let v4 = Ipv4Addr::new(192, 0, 2, 1);
    let v6: Ipv6Addr = "2001:db8:3::1".parse().unwrap();
    let nodad = AddressOptions { nodad: true, ..Default::default() };
    nl1.add_address("pod0", p("192.0.2.1/24"), nodad).unwrap();
    nl1.add_address("pod0", p("2001:db8:3::1/64"), nodad).unwrap();
    nl2.add_address("peer0", p("192.0.2.2/24"), nodad).unwrap();
    nl2.add_address("peer0", p("2001:db8:3::2/64"), nodad).unwrap();
    // Let the peer learn neighbours from unsolicited announcements.
    write_sysctl_in(&ns2, "net/ipv4/conf/peer0/arp_accept", "1").unwrap();
    write_sysctl_in(&ns2, "net/ipv6/conf/peer0/forwarding", "1").unwrap();
    write_sysctl_in(&ns2, "net/ipv6/conf/peer0/accept_untracked_na", "1").unwrap();
    nl1.set_up("pod0").unwrap();
    nl2.set_up("peer0").unwrap();
    let peer = nl2.link_index("peer0").unwrap();
    let pod_mac = spec.mac.unwrap();

    let arp = FrameCapture::open_in(&ns2, "peer0", garp::ETH_P_ARP).unwrap();
    garp::send_gratuitous_arp(&ns1, "pod0", v4).unwrap();
    let frame = arp
        .recv_matching(Duration::from_secs(5), |f| f.len() >= 42 && f[28..32] == v4.octets())
        .unwrap();
    assert_eq!(frame.as_deref(), Some(&garp::build_garp_frame(pod_mac, v4)[..]));
    assert!(
        wait_neighbour(&mut nl2, IpFamily::V4, peer, IpAddr::V4(v4), pod_mac),
        "peer did not learn 192.0.2.1"
    );

    let ip6 = FrameCapture::open_in(&ns2, "peer0", garp::ETH_P_IPV6).unwrap();
    garp::send_unsolicited_na(&ns1, "pod0", v6).unwrap();
    let frame = ip6
        .recv_matching(Duration::from_secs(5), |f| {
            f.len() >= 86 && f[20] == 58 && f[54] == 136 && f[62..78] == v6.octets()
        })
        .unwrap();
    assert_eq!(frame.as_deref(), Some(&garp::build_unsolicited_na_frame(pod_mac, v6)[..]));
    // The peer's kernel accepted it (it drops NAs with a bad checksum).
    assert!(
        wait_neighbour(&mut nl2, IpFamily::V6, peer, IpAddr::V6(v6), pod_mac),
        "peer did not learn 2001:db8:3::1"
    );
}
