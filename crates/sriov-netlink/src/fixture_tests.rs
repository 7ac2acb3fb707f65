//! Byte-for-byte comparison with what iproute2 sends (tests/fixtures).

use pretty_assertions::assert_eq;

use crate::client::serialize;
use crate::link::{
    build_add_altnames, build_del_altnames, build_get_link, build_set_alias, build_set_mac,
    build_set_mtu, build_set_updown, parse_link_message,
};
use crate::types::{LinkId, Mac};
use crate::vf::{VfConfig, VfLinkState, VfRate, VfVlan, VlanProto, build_vf_message};

/// The PF's ifindex in every capture (capture.sh creates it with index 7).
const PF: u32 = 7;

fn fixture(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|h| u8::from_str_radix(h, 16).expect("hex byte in fixture"))
        .collect()
}

/// Zero the sequence number and port id, which vary per run.
fn masked(mut b: Vec<u8>) -> Vec<u8> {
    assert!(b.len() >= 16, "message shorter than a netlink header");
    b[8..16].fill(0);
    b
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! fx {
    ($name:literal) => {
        include_str!(concat!("../tests/fixtures/", $name, ".hex"))
    };
}

fn check(name: &str, text: &str, ours: Vec<u8>) {
    let want = masked(fixture(text));
    let got = masked(ours);
    assert_eq!(hex(&got), hex(&want), "fixture {name}");
}

fn mac(s: &str) -> Mac {
    s.parse().expect("mac")
}

fn vf_check(name: &str, text: &str, cfg: VfConfig) {
    let msg = build_vf_message(PF, &cfg).expect("valid config");
    check(name, text, serialize(&msg));
}

#[test]
fn vf_single_attributes_match_iproute2() {
    let c = || VfConfig::new(3);
    vf_check("vf_mac", fx!("vf_mac"), c().with_mac(mac("02:00:5e:00:53:03")));
    vf_check(
        "vf_vlan_8021q",
        fx!("vf_vlan_8021q"),
        c().with_vlan(VfVlan::new(100, 3, VlanProto::Dot1Q).unwrap()),
    );
    vf_check(
        "vf_vlan_8021ad",
        fx!("vf_vlan_8021ad"),
        c().with_vlan(VfVlan::new(100, 3, VlanProto::Dot1Ad).unwrap()),
    );
    vf_check("vf_vlan_clear", fx!("vf_vlan_clear"), c().with_vlan(VfVlan::none()));
    vf_check("vf_spoofchk_on", fx!("vf_spoofchk_on"), c().with_spoofchk(true));
    vf_check("vf_spoofchk_off", fx!("vf_spoofchk_off"), c().with_spoofchk(false));
    vf_check("vf_trust_on", fx!("vf_trust_on"), c().with_trust(true));
    vf_check("vf_trust_off", fx!("vf_trust_off"), c().with_trust(false));
    vf_check("vf_state_auto", fx!("vf_state_auto"), c().with_link_state(VfLinkState::Auto));
    vf_check("vf_state_enable", fx!("vf_state_enable"), c().with_link_state(VfLinkState::Enable));
    vf_check(
        "vf_state_disable",
        fx!("vf_state_disable"),
        c().with_link_state(VfLinkState::Disable),
    );
    vf_check("vf_rate", fx!("vf_rate"), c().with_rate(VfRate::new(100, 1000).unwrap()));
}

#[test]
fn vf_combinations_match_iproute2() {
    vf_check(
        "vf_all_8021ad",
        fx!("vf_all_8021ad"),
        VfConfig::new(3)
            .with_mac(mac("02:00:5e:00:53:03"))
            .with_vlan(VfVlan::new(100, 3, VlanProto::Dot1Ad).unwrap())
            .with_spoofchk(false)
            .with_trust(true)
            .with_link_state(VfLinkState::Enable)
            .with_rate(VfRate::new(100, 1000).unwrap()),
    );
    // Field order in the struct literal differs from the wire order on
    // purpose: the builder, not the caller, fixes the order.
    vf_check(
        "vf_all_8021q",
        fx!("vf_all_8021q"),
        VfConfig {
            rate: Some(VfRate::new(0, 0).unwrap()),
            link_state: Some(VfLinkState::Disable),
            trust: Some(false),
            spoofchk: Some(true),
            vlan: Some(VfVlan::new(4094, 7, VlanProto::Dot1Q).unwrap()),
            mac: Some(mac("02:00:5e:00:53:04")),
            vf: 7,
        },
    );
    vf_check(
        "vf_mac_vlan",
        fx!("vf_mac_vlan"),
        VfConfig::new(0)
            .with_mac(mac("02:00:5e:00:53:05"))
            .with_vlan(VfVlan::new(10, 0, VlanProto::Dot1Q).unwrap()),
    );
}

#[test]
fn a_wrong_value_does_not_match() {
    // Guard against a comparison that cannot fail.
    let msg = build_vf_message(PF, &VfConfig::new(3).with_mac(mac("02:00:5e:00:53:04"))).unwrap();
    assert_ne!(masked(serialize(&msg)), masked(fixture(fx!("vf_mac"))));
    let msg = build_vf_message(PF, &VfConfig::new(4).with_trust(true)).unwrap();
    assert_ne!(masked(serialize(&msg)), masked(fixture(fx!("vf_trust_on"))));
}

#[test]
fn link_requests_match_iproute2() {
    check("link_up", fx!("link_up"), serialize(&build_set_updown(PF, true)));
    check("link_down", fx!("link_down"), serialize(&build_set_updown(PF, false)));
    check("link_mtu", fx!("link_mtu"), serialize(&build_set_mtu(PF, 1500)));
    check(
        "link_address",
        fx!("link_address"),
        serialize(&build_set_mac(PF, mac("02:00:5e:00:53:09"))),
    );
    check("link_alias", fx!("link_alias"), serialize(&build_set_alias(PF, "pod-eth0")));
    check("altname_add", fx!("altname_add"), serialize(&build_add_altnames(PF, &["pf0-alt2"])));
    check("altname_del", fx!("altname_del"), serialize(&build_del_altnames(PF, &["pf0-alt2"])));
    check(
        "getlink_request",
        fx!("getlink_request"),
        serialize(&build_get_link(&LinkId::Name("pf0".into()))),
    );
}

#[test]
fn captured_getlink_reply_parses() {
    let raw = fixture(fx!("getlink_reply"));
    let l = parse_link_message(&raw).unwrap();
    assert_eq!(l.index, 7);
    assert_eq!(l.name, "pf0");
    assert_eq!(l.mtu, Some(1400));
    assert_eq!(l.mac, Some(mac("02:00:5e:00:53:07")));
    assert_eq!(l.alias.as_deref(), Some("sriov fixture pf"));
    assert_eq!(l.alt_names, vec!["pf0-alt".to_owned()]);
    assert_eq!(l.kind.as_deref(), Some("veth"));
    assert_eq!(l.link, Some(8), "veth peer ifindex");
    assert!(!l.is_up());
    // A veth reports no VFs even though VF info was asked for.
    assert!(l.vfs.is_empty());
    assert_eq!(l.num_vf, None);
}
