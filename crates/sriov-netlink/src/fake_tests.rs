//! Tests of the client over the recording fake transport: request shapes,
//! ACK/error/dump handling, VF parsing, and a rollback sequence.

use netlink_packet_core::{Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    LinkAttribute, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac, VfInfoRate,
    VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState as NlState, VfVlan as NlVfVlan,
    VfVlanInfo, VlanProtocol,
};
use pretty_assertions::assert_eq;

use crate::transport::{FakeReply, FakeTransport, NetlinkSocket, Transport};
use crate::types::Mac;
use crate::vf::{
    VfAttr, VfConfig, VfLinkState, VfRate, VfState, VfVlan, VlanProto, parse_vf_info_list,
};
use crate::{IpPrefix, Netlink, RouteSpec};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;

fn link_reply(index: u32, name: &str) -> FakeReply {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes.push(LinkAttribute::IfName(name.into()));
    FakeReply::Message(RouteNetlinkMessage::NewLink(m))
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn client() -> (FakeTransport, Netlink<FakeTransport>) {
    let fake = FakeTransport::new();
    (fake.clone(), Netlink::new(fake))
}

#[test]
fn set_up_by_name_resolves_then_sends_newlink() {
    let (fake, mut nl) = client();
    fake.replies([link_reply(4, "ens1f0"), FakeReply::Ack]);
    nl.set_up("ens1f0").unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].message_type(), RTM_GETLINK);
    assert_eq!(sent[1].message_type(), RTM_NEWLINK);
    assert_eq!(sent[1].flags(), NLM_F_REQUEST | NLM_F_ACK);
    assert_eq!(fake.sent_summary()[1], "newlink ifindex=4 up");
    // Sequence numbers increase per request.
    assert!(sent[1].message.header.sequence_number > sent[0].message.header.sequence_number);
    assert_eq!(fake.unused_replies(), 0);
}

#[test]
fn kernel_error_keeps_errno_op_and_ext_ack() {
    let (fake, mut nl) = client();
    fake.replies([
        link_reply(4, "ens1f0"),
        FakeReply::ErrnoWithMessage(libc::EOPNOTSUPP, "VF setting not supported".into()),
    ]);
    let e = nl.set_vf("ens1f0", &VfConfig::new(3).with_trust(true)).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
    assert!(e.is_not_supported());
    assert_eq!(e.ext_ack(), Some("VF setting not supported"));
    assert_eq!(
        e.to_string(),
        "setlink vf 3 on pf ens1f0 (ifindex 4) (kernel: VF setting not supported)"
    );
    let chain = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
    assert_eq!(chain, "Operation not supported (os error 95)");
}

#[test]
fn not_found_on_missing_link() {
    let (fake, mut nl) = client();
    fake.reply(FakeReply::Errno(libc::ENODEV));
    let e = nl.get_link("gone0").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.to_string(), "getlink gone0");
}

#[test]
fn set_vf_each_names_the_failing_attribute_and_stops() {
    let (fake, mut nl) = client();
    // MAC ok, VLAN fails; rate, spoofchk, trust must not be sent.
    fake.replies([FakeReply::Ack, FakeReply::Errno(libc::EINVAL)]);
    let cfg = VfConfig::new(2)
        .with_trust(true)
        .with_spoofchk(false)
        .with_rate(VfRate::new(0, 500).unwrap())
        .with_vlan(VfVlan::new(10, 0, VlanProto::Dot1Q).unwrap())
        .with_mac(mac("02:00:5e:00:53:22"));
    let e = nl.set_vf_each(9u32, &cfg).unwrap_err();
    assert_eq!(e.vf_attr(), Some(VfAttr::Vlan));
    assert_eq!(e.to_string(), "setlink vf 2 vlan on pf ifindex 9");
    assert_eq!(
        fake.sent_summary(),
        vec!["newlink ifindex=9 vf=2[mac]", "newlink ifindex=9 vf=2[vlan]"]
    );
}

#[test]
fn set_vf_each_applies_all_in_kernel_order() {
    let (fake, mut nl) = client();
    fake.replies(std::iter::repeat_n(FakeReply::Ack, 6));
    let cfg = VfConfig::new(1)
        .with_trust(false)
        .with_link_state(VfLinkState::Auto)
        .with_spoofchk(true)
        .with_rate(VfRate::new(10, 20).unwrap())
        .with_vlan(VfVlan::new(5, 1, VlanProto::Dot1Ad).unwrap())
        .with_mac(mac("02:00:5e:00:53:21"));
    let done = nl.set_vf_each(9u32, &cfg).unwrap();
    assert_eq!(done, VfAttr::KERNEL_ORDER.to_vec());
    assert_eq!(
        fake.sent_summary(),
        vec![
            "newlink ifindex=9 vf=1[mac]",
            "newlink ifindex=9 vf=1[vlan]",
            "newlink ifindex=9 vf=1[rate]",
            "newlink ifindex=9 vf=1[spoofchk]",
            "newlink ifindex=9 vf=1[state]",
            "newlink ifindex=9 vf=1[trust]",
        ]
    );
}

#[test]
fn vf_validation() {
    assert!(VfVlan::new(4095, 0, VlanProto::Dot1Q).is_err());
    assert!(VfVlan::new(4094, 8, VlanProto::Dot1Q).is_err());
    assert!(VfVlan::new(0, 3, VlanProto::Dot1Q).is_err(), "qos without vlan");
    assert!(VfVlan::new(4094, 7, VlanProto::Dot1Ad).is_ok());
    assert!(VfRate::new(200, 100).is_err());
    assert!(VfRate::new(200, 0).is_ok(), "max 0 = unlimited");
    assert!(crate::vf::build_vf_message(4, &VfConfig::new(1)).is_err(), "empty config");
    assert!(
        crate::vf::build_vf_message(0, &VfConfig::new(1).with_trust(true)).is_err(),
        "ifindex 0"
    );
    assert!(
        crate::vf::build_vf_message(4, &VfConfig::new(i32::MAX as u32).with_trust(true)).is_err()
    );
}

/// `IFLA_VF_INFO` bytes in the order and sizes the kernel's
/// `rtnl_fill_vfinfo` writes them (MAC, BROADCAST, VLAN, RATE, TX_RATE,
/// SPOOFCHK, LINK_STATE, RSS_QUERY_EN, TRUST, VLAN_LIST, STATS), written out
/// by hand from `include/uapi/linux/if_link.h`, independent of our parser.
#[allow(clippy::too_many_arguments)]
fn kernel_vf_info(
    vf: u32,
    mac: [u8; 6],
    vlan: u32,
    qos: u32,
    proto: u16,
    spoof: u32,
    trust: u32,
    state: u32,
    rate: (u32, u32),
    stats: bool,
) -> Vec<u8> {
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }
    let u = |xs: &[u32]| xs.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
    let mut mac32 = [0u8; 32];
    mac32[..6].copy_from_slice(&mac);
    let mut body = Vec::new();
    body.extend(nla(1, &[&vf.to_ne_bytes()[..], &mac32].concat()));
    body.extend(nla(13, &[0xff; 32]));
    body.extend(nla(2, &u(&[vf, vlan, qos])));
    body.extend(nla(6, &u(&[vf, rate.0, rate.1])));
    body.extend(nla(3, &u(&[vf, rate.1])));
    body.extend(nla(4, &u(&[vf, spoof])));
    body.extend(nla(5, &u(&[vf, state])));
    body.extend(nla(7, &u(&[vf, u32::MAX])));
    body.extend(nla(9, &u(&[vf, trust])));
    let mut vinfo = u(&[vf, vlan, qos]);
    vinfo.extend_from_slice(&proto.to_be_bytes());
    vinfo.extend_from_slice(&[0, 0]);
    body.extend(nla(12, &nla(1, &vinfo)));
    if stats {
        let s: Vec<u8> = (0u16..8).flat_map(|k| nla(k, &7u64.to_ne_bytes())).collect();
        body.extend(nla(8, &s));
    }
    nla(1, &body)
}

#[test]
fn parses_kernel_layout_including_unreported_settings() {
    let mut list = kernel_vf_info(
        0,
        [2, 0, 0x5e, 0, 0x53, 0x30],
        100,
        3,
        0x88a8,
        1,
        u32::MAX,
        1,
        (10, 100),
        true,
    );
    list.extend(kernel_vf_info(1, [0; 6], 0, 0, 0x8100, u32::MAX, 0, 2, (0, 0), false));
    let vfs = parse_vf_info_list(&list).unwrap();
    assert_eq!(
        vfs,
        vec![
            VfState {
                vf: 0,
                mac: mac("02:00:5e:00:53:30"),
                vlan: 100,
                qos: 3,
                vlan_proto: Some(VlanProto::Dot1Ad),
                spoofchk: Some(true),
                trust: None,
                link_state: Some(VfLinkState::Enable),
                min_tx_rate: 10,
                max_tx_rate: 100,
                rss_query_en: None,
            },
            VfState {
                vf: 1,
                mac: Mac::ZERO,
                vlan: 0,
                qos: 0,
                vlan_proto: Some(VlanProto::Dot1Q),
                spoofchk: None,
                trust: Some(false),
                link_state: Some(VfLinkState::Disable),
                min_tx_rate: 0,
                max_tx_rate: 0,
                rss_query_en: None,
            },
        ]
    );
    // The snapshot restores only what the driver reports.
    let cfg = vfs[1].to_config().unwrap();
    assert_eq!(cfg.spoofchk, None);
    assert_eq!(cfg.trust, Some(false));
    assert_eq!(cfg.vlan, Some(VfVlan::none()));
}

#[test]
fn parses_what_netlink_packet_route_emits() {
    let infos = vec![
        LinkVfInfo(vec![
            VfInfo::Mac(VfInfoMac::new(5, &[2, 0, 0x5e, 0, 0x53, 0x55])),
            VfInfo::Vlan(VfInfoVlan::new(5, 42, 2)),
            VfInfo::VlanList(vec![NlVfVlan::Info(VfVlanInfo::new(
                5,
                42,
                2,
                VlanProtocol::Ieee8021Q,
            ))]),
            VfInfo::Rate(VfInfoRate::new(5, 1, 2)),
            VfInfo::SpoofCheck(VfInfoSpoofCheck::new(5, false)),
            VfInfo::LinkState(VfInfoLinkState::new(5, NlState::Auto)),
            VfInfo::Trust(VfInfoTrust::new(5, true)),
        ]),
        LinkVfInfo(vec![
            VfInfo::Mac(VfInfoMac::new(6, &[0; 6])),
            VfInfo::Trust(VfInfoTrust::new(6, false)),
        ]),
    ];
    let attr = LinkAttribute::VfInfoList(infos);
    let mut buf = vec![0u8; attr.buffer_len()];
    attr.emit(&mut buf);
    let vfs = parse_vf_info_list(&buf[4..]).unwrap();
    assert_eq!(vfs.len(), 2);
    assert_eq!((vfs[0].vf, vfs[0].vlan, vfs[0].qos), (5, 42, 2));
    assert_eq!(vfs[0].mac, mac("02:00:5e:00:53:55"));
    assert_eq!((vfs[0].min_tx_rate, vfs[0].max_tx_rate), (1, 2));
    assert_eq!((vfs[0].spoofchk, vfs[0].trust), (Some(false), Some(true)));
    assert_eq!(vfs[0].link_state, Some(VfLinkState::Auto));
    assert_eq!((vfs[1].vf, vfs[1].trust, vfs[1].spoofchk), (6, Some(false), None));
}

/// A GETLINK reply for a PF with `n` VFs, laid out as the kernel answers our
/// request (`RTEXT_FILTER_SKIP_STATS`: no per-VF stats, 196 bytes per VF;
/// with stats a VF takes 296 bytes and 256 of them would overflow the u16
/// attribute length, which is why iproute2 and we skip them).
fn pf_reply_with_vfs(index: u32, name: &str, n: u32) -> Vec<u8> {
    let mut list = Vec::new();
    for vf in 0..n {
        list.extend(kernel_vf_info(
            vf,
            [2, 0, 0x5e, 0, (vf >> 8) as u8, vf as u8],
            vf % 4095,
            0,
            0x8100,
            1,
            0,
            0,
            (0, 0),
            false,
        ));
    }
    let mut attrs = Vec::new();
    let mut put = |kind: u16, value: &[u8]| {
        attrs.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        attrs.extend_from_slice(&kind.to_ne_bytes());
        attrs.extend_from_slice(value);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
    };
    put(3, &[name.as_bytes(), &[0]].concat());
    put(21, &n.to_ne_bytes()); // IFLA_NUM_VF
    put(22, &list); // IFLA_VFINFO_LIST
    let mut msg = Vec::new();
    msg.extend_from_slice(&((32 + attrs.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]); // seq, pid
    msg.extend_from_slice(&[0, 0, 1, 0]); // family, pad, type ARPHRD_ETHER
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]); // flags, change
    msg.extend(attrs);
    msg
}

#[test]
fn big_vf_list_through_client() {
    let (fake, mut nl) = client();
    let dg = pf_reply_with_vfs(4, "ens1f0", 256);
    assert!(dg.len() > 48 * 1024, "reply is {} bytes", dg.len());
    fake.reply(FakeReply::Raw(vec![dg]));
    let pf = nl.get_link(4u32).unwrap();
    assert_eq!(pf.name, "ens1f0");
    assert_eq!(pf.num_vf, Some(256));
    assert_eq!(pf.vfs.len(), 256);
    assert_eq!(pf.vfs[255].vf, 255);
    assert_eq!(pf.vfs[255].mac, mac("02:00:5e:00:00:ff"));
    assert_eq!(pf.vfs[17].vlan, 17);
    // The request asked for VF info (ext mask VF|SKIP_STATS = 9).
    let sent = &fake.sent()[0];
    assert_eq!(&sent.bytes[16 + 16..16 + 24], &[8, 0, 0x1d, 0, 9, 0, 0, 0]);
}

/// The real socket returns a datagram larger than its initial buffer in
/// full: a second socket sends it to our port id (user-to-user unicast needs
/// no privilege), no root or netns needed.
#[test]
fn real_socket_receives_datagrams_bigger_than_its_buffer() {
    // A connected socket only accepts datagrams from the kernel, so the
    // receiver here is left unconnected.
    let mut rx = NetlinkSocket::open_unconnected().unwrap();
    let tx = NetlinkSocket::open().unwrap();
    let big: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
    assert!(big.len() > crate::transport::MIN_RECV_BUFFER);
    tx.send_to_port(rx.port_id(), &big).unwrap();
    assert!(rx.wait_readable(Some(std::time::Duration::from_secs(5))).unwrap());
    let got = rx.recv().unwrap();
    assert_eq!(got.len(), big.len());
    assert_eq!(got, &big[..]);
}

#[test]
fn dumps_collect_until_done_and_filter() {
    let (fake, mut nl) = client();
    let mk = |i: u32, n: &str| {
        let mut m = LinkMessage::default();
        m.header.index = i;
        m.attributes.push(LinkAttribute::IfName(n.into()));
        RouteNetlinkMessage::NewLink(m)
    };
    fake.reply(FakeReply::Dump(vec![mk(1, "lo"), mk(2, "eth0"), mk(3, "eth1")]));
    let links = nl.list_links().unwrap();
    assert_eq!(links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["lo", "eth0", "eth1"]);
    assert_eq!(fake.sent()[0].flags(), NLM_F_REQUEST | NLM_F_DUMP);
}

#[test]
fn no_scripted_reply_is_an_error_not_a_hang() {
    let (_fake, mut nl) = client();
    let e = nl.set_down(3u32).unwrap_err();
    assert!(e.to_string().starts_with("set down ifindex 3"), "{e}");
}

#[test]
fn route_requests_carry_table_and_scope() {
    let (fake, mut nl) = client();
    fake.replies([FakeReply::Ack, FakeReply::Errno(libc::ESRCH)]);
    let spec = RouteSpec::new("198.51.100.0/24".parse::<IpPrefix>().unwrap()).dev(3).table(1000);
    nl.add_route(&spec).unwrap();
    let e = nl.del_route(&spec).unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(
        fake.sent_summary(),
        vec![
            "newroute table=1000 198.51.100.0/24 oif=3",
            "delroute table=1000 198.51.100.0/24 oif=3",
        ]
    );
    let RouteNetlinkMessage::NewRoute(r) = fake.sent()[0].inner().cloned().unwrap() else {
        panic!("not a route")
    };
    assert_eq!(u8::from(r.header.scope), 253, "link scope without gateway");
    assert_eq!(r.header.table, 0, "table > 255 goes in RTA_TABLE only");
}

/// The pattern a CNI ADD uses: snapshot the VF, apply, and on failure
/// restore the snapshot. The fake shows the exact order on the wire.
#[test]
fn rollback_sequence_is_visible_on_the_fake() {
    let (fake, mut nl) = client();
    let snapshot = pf_reply_with_vfs(4, "ens1f0", 4);
    fake.replies([
        FakeReply::Raw(vec![snapshot]),     // get_link(pf) for the snapshot
        FakeReply::Ack,                     // mac
        FakeReply::Errno(libc::EOPNOTSUPP), // vlan
        FakeReply::Ack,                     // restore
    ]);
    let before = nl.vf_states(4u32).unwrap();
    let cfg = VfConfig::new(2)
        .with_mac(mac("02:00:5e:00:53:99"))
        .with_vlan(VfVlan::new(7, 0, VlanProto::Dot1Q).unwrap());
    let err = nl.set_vf_each(4u32, &cfg).unwrap_err();
    assert_eq!(err.vf_attr(), Some(VfAttr::Vlan));
    let restore = before[2].to_config().unwrap();
    nl.set_vf(4u32, &restore).unwrap();
    assert_eq!(
        fake.sent_summary(),
        vec![
            "getlink ifindex=4",
            "newlink ifindex=4 vf=2[mac]",
            "newlink ifindex=4 vf=2[vlan]",
            "newlink ifindex=4 vf=2[mac,vlan,spoofchk,trust,state,rate]",
        ]
    );
}

#[test]
fn link_events_parse_and_skip_foreign_messages() {
    use crate::events::{LinkEventKind, LinkEvents};
    use netlink_packet_route::link::{LinkFlags, State};
    let fake = FakeTransport::new();
    let mut up = LinkMessage::default();
    up.header.index = 7;
    up.header.flags = LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp;
    up.attributes.push(LinkAttribute::IfName("ens1f0v3".into()));
    up.attributes.push(LinkAttribute::OperState(State::Up));
    up.attributes.push(LinkAttribute::Carrier(1));
    let mut gone = LinkMessage::default();
    gone.header.index = 7;
    gone.attributes.push(LinkAttribute::IfName("ens1f0v3".into()));
    fake.push_event(RouteNetlinkMessage::NewLink(up));
    fake.push_event(RouteNetlinkMessage::NewAddress(Default::default()));
    fake.push_event(RouteNetlinkMessage::DelLink(gone));
    let mut ev = LinkEvents::new(fake.clone());
    let a = ev.next_event_timeout(std::time::Duration::ZERO).unwrap().unwrap();
    assert_eq!((a.kind, a.index(), a.name()), (LinkEventKind::New, 7, "ens1f0v3"));
    assert!(a.carrier() && a.link.is_up() && a.oper_state() == crate::OperState::Up);
    let b = ev.next_event_timeout(std::time::Duration::ZERO).unwrap().unwrap();
    assert_eq!((b.kind, b.index()), (LinkEventKind::Del, 7));
    assert!(!b.carrier());
    assert!(ev.next_event_timeout(std::time::Duration::ZERO).unwrap().is_none());
}

#[test]
fn op_names_read_as_a_path() {
    let (fake, mut nl) = client();
    fake.replies([link_reply(5, "vf0"), FakeReply::Errno(libc::EEXIST)]);
    let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
    let e = nl.move_to_netns("vf0", std::os::fd::AsFd::as_fd(&ns), Some("eth0")).unwrap_err();
    assert!(e.is_exists());
    let s = e.to_string();
    assert!(s.starts_with("move vf0 (ifindex 5) to netns fd "), "{s}");
    assert!(s.ends_with(" as eth0"), "{s}");
}
