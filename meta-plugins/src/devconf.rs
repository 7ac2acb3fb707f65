//! Per-interface IPv4 settings (`net/ipv4/conf/<dev>/<knob>`) over route netlink.
//!
//! A sysctl of the pod netns can only be written through `/proc/sys` by a thread inside that
//! netns; each visit costs a thread hand-off, which on a busy node means waiting for a
//! scheduler time slice (milliseconds). The kernel also accepts per-interface IPv4 knobs in
//! `RTM_SETLINK` (`IFLA_AF_SPEC` → `AF_INET` → `IFLA_INET_CONF` → `IPV4_DEVCONF_<knob>`,
//! applied one knob at a time by `inet_set_link_af`) and reports them in every `RTM_NEWLINK`,
//! so the route socket the plugin already holds in the pod does the job without a visit.
//!
//! `sriov-netlink` has no message for this; this module is the smallest local helper: pure
//! builders (checked byte for byte below) sent through `Netlink::send_request`.
//! netlink-packet-route's own `AfSpecInet::DevConfRequest` is unsuitable: it always carries
//! every knob and would overwrite them all.

use sriov_netlink::raw::core::{
    DefaultNla, NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage,
};
use sriov_netlink::raw::route::RouteNetlinkMessage;
use sriov_netlink::raw::route::link::{
    AfSpecInet, AfSpecUnspec, LinkAttribute, LinkExtentMask, LinkMessage,
};

/// `IFLA_AF_SPEC`.
const IFLA_AF_SPEC: u16 = 26;
/// `AF_INET`.
const AF_INET: u16 = 2;
/// `IFLA_INET_CONF`.
const IFLA_INET_CONF: u16 = 1;

/// An IPv4 per-interface knob this module sets over netlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Knob {
    /// `rp_filter` (`IPV4_DEVCONF_RP_FILTER` = 8).
    RpFilter,
}

impl Ipv4Knob {
    fn id(self) -> u16 {
        match self {
            Ipv4Knob::RpFilter => 8,
        }
    }

    fn from_name(name: &str) -> Option<Ipv4Knob> {
        match name {
            "rp_filter" => Some(Ipv4Knob::RpFilter),
            _ => None,
        }
    }
}

/// `net/ipv4/conf/<dev>/<knob>` for a real interface (not `all` or `default`) and a knob
/// this module handles.
pub fn netlink_knob(key: &str) -> Option<(&str, Ipv4Knob)> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("net"), Some("ipv4"), Some("conf"), Some(dev), Some(knob), None)
            if dev != "all" && dev != "default" =>
        {
            Ipv4Knob::from_name(knob).map(|k| (dev, k))
        }
        _ => None,
    }
}

fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::with_capacity((len + 3) & !3);
    // Attribute lengths here are a few bytes; they always fit a u16.
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize((len + 3) & !3, 0);
    out
}

/// The `IFLA_AF_SPEC` payload setting one knob: `AF_INET { IFLA_INET_CONF { knob: value } }`.
pub fn inet_conf_payload(knob: Ipv4Knob, value: u32) -> Vec<u8> {
    let setting = nla(knob.id(), &value.to_ne_bytes());
    let conf = nla(IFLA_INET_CONF | NLA_F_NESTED, &setting);
    nla(AF_INET | NLA_F_NESTED, &conf)
}

/// `RTM_SETLINK` for `ifindex` setting one IPv4 knob.
pub fn build_set_inet_conf(
    ifindex: u32,
    knob: Ipv4Knob,
    value: u32,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    m.attributes.push(LinkAttribute::Other(DefaultNla::new(
        IFLA_AF_SPEC | NLA_F_NESTED,
        inet_conf_payload(knob, value),
    )));
    sriov_netlink::request(RouteNetlinkMessage::SetLink(m), NLM_F_REQUEST | NLM_F_ACK)
}

/// `RTM_GETLINK` for one interface, without statistics.
pub fn build_get_link(ifindex: u32) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    sriov_netlink::request(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST)
}

/// `RTM_GETLINK` dump of every interface, without statistics (each reply carries the
/// interface's IPv4 devconf).
pub fn build_link_dump() -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    sriov_netlink::request(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST | NLM_F_DUMP)
}

/// The value of an IPv4 knob in a link message, if the interface has IPv4 enabled.
pub fn knob_value(link: &LinkMessage, knob: Ipv4Knob) -> Option<i32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|s| match s {
            AfSpecUnspec::Inet(inet) => inet.iter().find_map(|i| match (i, knob) {
                (AfSpecInet::DevConf(c), Ipv4Knob::RpFilter) => Some(c.rp_filter),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_go_over_netlink() {
        assert_eq!(
            netlink_knob("net/ipv4/conf/veth0/rp_filter"),
            Some(("veth0", Ipv4Knob::RpFilter))
        );
        assert_eq!(netlink_knob("net/ipv4/conf/all/rp_filter"), None);
        assert_eq!(netlink_knob("net/ipv4/conf/default/rp_filter"), None);
        assert_eq!(netlink_knob("net/ipv6/conf/veth0/disable_ipv6"), None);
        assert_eq!(netlink_knob("net/ipv4/conf/veth0/arp_notify"), None);
        assert_eq!(netlink_knob("net/ipv4/conf/veth0/rp_filter/x"), None);
    }

    /// The request as `inet_set_link_af` parses it: ifinfomsg for ifindex 7, then
    /// IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { RP_FILTER = 2 } } }, nests flagged.
    #[test]
    fn set_rp_filter_bytes() {
        let mut msg = build_set_inet_conf(7, Ipv4Knob::RpFilter, 2);
        msg.header.sequence_number = 1;
        let bytes = sriov_netlink::serialize(&msg);
        let mut want: Vec<u8> = Vec::new();
        let total: u32 = 16 + 16 + 20;
        want.extend_from_slice(&total.to_ne_bytes());
        want.extend_from_slice(&19u16.to_ne_bytes()); // RTM_SETLINK
        want.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes()); // seq
        want.extend_from_slice(&0u32.to_ne_bytes()); // port
        // ifinfomsg: family, pad, type, index, flags, change
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&7i32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        for (len, kind) in [(20u16, 26u16 | 0x8000), (16, 2 | 0x8000), (12, 1 | 0x8000), (8, 8)] {
            want.extend_from_slice(&len.to_ne_bytes());
            want.extend_from_slice(&kind.to_ne_bytes());
        }
        want.extend_from_slice(&2u32.to_ne_bytes());
        assert_eq!(bytes, want);
    }
}
