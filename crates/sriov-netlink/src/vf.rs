//! SR-IOV VF settings applied through the PF: validated [`VfConfig`], pure
//! message builders, and parsing of a PF's VF list into [`VfState`].
//!
//! # What goes on the wire
//!
//! The builders reproduce iproute2 6.1 byte for byte (see
//! `tests/fixtures/README.md`): an `RTM_NEWLINK` with
//! `NLM_F_REQUEST | NLM_F_ACK`, an `ifinfomsg` with only the PF's ifindex
//! set, and one `IFLA_VFINFO_LIST { IFLA_VF_INFO { ... } }` nest whose
//! attributes come in iproute2's command-line order: MAC, VLAN, SPOOFCHK,
//! TRUST, LINK_STATE, then RATE (iproute2 always appends the rate last). An
//! 802.1Q VLAN goes out as the legacy `IFLA_VF_VLAN`, an 802.1ad one as
//! `IFLA_VF_VLAN_LIST { IFLA_VF_VLAN_INFO }`, again as iproute2 does.
//!
//! # Why there is also a one-attribute-per-message variant
//!
//! The kernel (`do_setvfinfo` in `net/core/rtnetlink.c`) applies the
//! attributes of one `IFLA_VF_INFO` in a fixed order, MAC, VLAN, VLAN_LIST,
//! TX_RATE, RATE, SPOOFCHK, LINK_STATE, RSS_QUERY_EN, TRUST, whatever
//! order they were sent in, and returns at the first failure without undoing
//! the ones before. One message is therefore not atomic and its errno does
//! not say which attribute failed. [`build_vf_messages`] gives one message
//! per attribute (in the kernel's order) so a caller can tell.

use std::fmt;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    LinkAttribute, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac, VfInfoRate,
    VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState as NlVfLinkState, VfVlan as NlVfVlan,
    VfVlanInfo, VlanProtocol,
};

use crate::client::request;
use crate::error::{Error, Result};
use crate::types::Mac;

/// Highest VLAN id a VF accepts (4095 is reserved).
pub const MAX_VLAN_ID: u16 = 4094;
/// Highest 802.1p priority.
pub const MAX_VLAN_QOS: u8 = 7;

/// The VLAN tag protocol of a VF's port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VlanProto {
    /// 802.1Q, ethertype 0x8100 (the default).
    #[default]
    Dot1Q,
    /// 802.1ad (QinQ), ethertype 0x88a8.
    Dot1Ad,
}

impl VlanProto {
    /// The ethertype.
    pub fn ethertype(self) -> u16 {
        match self {
            VlanProto::Dot1Q => 0x8100,
            VlanProto::Dot1Ad => 0x88a8,
        }
    }

    /// Maps an ethertype back, `None` for anything else.
    pub fn from_ethertype(v: u16) -> Option<VlanProto> {
        match v {
            0x8100 => Some(VlanProto::Dot1Q),
            0x88a8 => Some(VlanProto::Dot1Ad),
            _ => None,
        }
    }
}

impl fmt::Display for VlanProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VlanProto::Dot1Q => "802.1Q",
            VlanProto::Dot1Ad => "802.1ad",
        })
    }
}

/// A VF's port VLAN: id 0..=4094 (0 clears it), QoS 0..=7, protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VfVlan {
    id: u16,
    qos: u8,
    proto: VlanProto,
}

impl VfVlan {
    /// Validates and builds a VLAN setting.
    pub fn new(id: u16, qos: u8, proto: VlanProto) -> Result<Self> {
        if id > MAX_VLAN_ID {
            return Err(Error::invalid("vf vlan id", format!("{id} is not in 0..={MAX_VLAN_ID}")));
        }
        if qos > MAX_VLAN_QOS {
            return Err(Error::invalid(
                "vf vlan qos",
                format!("{qos} is not in 0..={MAX_VLAN_QOS}"),
            ));
        }
        if id == 0 && qos != 0 {
            return Err(Error::invalid(
                "vf vlan qos",
                format!("qos {qos} needs a vlan id other than 0"),
            ));
        }
        Ok(VfVlan { id, qos, proto })
    }

    /// "No VLAN": id 0, QoS 0, 802.1Q.
    pub fn none() -> Self {
        VfVlan { id: 0, qos: 0, proto: VlanProto::Dot1Q }
    }

    /// The VLAN id.
    pub fn id(&self) -> u16 {
        self.id
    }
    /// The 802.1p priority.
    pub fn qos(&self) -> u8 {
        self.qos
    }
    /// The tag protocol.
    pub fn proto(&self) -> VlanProto {
        self.proto
    }
}

/// A VF's administrative link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VfLinkState {
    /// Follow the PF's link (`IFLA_VF_LINK_STATE_AUTO`, 0).
    Auto,
    /// Always up (`IFLA_VF_LINK_STATE_ENABLE`, 1).
    Enable,
    /// Always down (`IFLA_VF_LINK_STATE_DISABLE`, 2).
    Disable,
}

impl VfLinkState {
    fn from_raw(v: u32) -> Option<Self> {
        match v {
            0 => Some(VfLinkState::Auto),
            1 => Some(VfLinkState::Enable),
            2 => Some(VfLinkState::Disable),
            _ => None,
        }
    }
}

impl fmt::Display for VfLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VfLinkState::Auto => "auto",
            VfLinkState::Enable => "enable",
            VfLinkState::Disable => "disable",
        })
    }
}

/// TX rate limits in Mbit/s; 0 means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VfRate {
    min_mbps: u32,
    max_mbps: u32,
}

impl VfRate {
    /// Validates `min <= max` unless `max` is 0 (unlimited).
    pub fn new(min_mbps: u32, max_mbps: u32) -> Result<Self> {
        if max_mbps != 0 && min_mbps > max_mbps {
            return Err(Error::invalid(
                "vf tx rate",
                format!("min_tx_rate {min_mbps} exceeds max_tx_rate {max_mbps}"),
            ));
        }
        Ok(VfRate { min_mbps, max_mbps })
    }

    /// Guaranteed minimum, Mbit/s.
    pub fn min_mbps(&self) -> u32 {
        self.min_mbps
    }
    /// Ceiling, Mbit/s (0 = unlimited).
    pub fn max_mbps(&self) -> u32 {
        self.max_mbps
    }
}

/// One VF setting, as named in errors and per-attribute messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VfAttr {
    /// `IFLA_VF_MAC`.
    Mac,
    /// `IFLA_VF_VLAN` / `IFLA_VF_VLAN_LIST`.
    Vlan,
    /// `IFLA_VF_RATE`.
    Rate,
    /// `IFLA_VF_SPOOFCHK`.
    SpoofChk,
    /// `IFLA_VF_LINK_STATE`.
    LinkState,
    /// `IFLA_VF_TRUST`.
    Trust,
}

impl VfAttr {
    /// The order in which the kernel applies the attributes of one message.
    pub const KERNEL_ORDER: [VfAttr; 6] = [
        VfAttr::Mac,
        VfAttr::Vlan,
        VfAttr::Rate,
        VfAttr::SpoofChk,
        VfAttr::LinkState,
        VfAttr::Trust,
    ];
}

impl fmt::Display for VfAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VfAttr::Mac => "mac",
            VfAttr::Vlan => "vlan",
            VfAttr::Rate => "rate",
            VfAttr::SpoofChk => "spoofchk",
            VfAttr::LinkState => "state",
            VfAttr::Trust => "trust",
        })
    }
}

/// The settings to apply to one VF. `None` leaves a setting untouched.
/// Every field holds an already validated value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VfConfig {
    /// VF index on its PF.
    pub vf: u32,
    /// Administrative MAC.
    pub mac: Option<Mac>,
    /// Port VLAN.
    pub vlan: Option<VfVlan>,
    /// Source MAC spoof checking.
    pub spoofchk: Option<bool>,
    /// Trusted mode (promiscuous, MAC changes from the VF).
    pub trust: Option<bool>,
    /// Administrative link state.
    pub link_state: Option<VfLinkState>,
    /// TX rate limits.
    pub rate: Option<VfRate>,
}

impl VfConfig {
    /// A config for VF `vf` that changes nothing yet.
    pub fn new(vf: u32) -> Self {
        VfConfig {
            vf,
            mac: None,
            vlan: None,
            spoofchk: None,
            trust: None,
            link_state: None,
            rate: None,
        }
    }

    /// Sets the MAC.
    pub fn with_mac(mut self, mac: Mac) -> Self {
        self.mac = Some(mac);
        self
    }
    /// Sets the VLAN.
    pub fn with_vlan(mut self, vlan: VfVlan) -> Self {
        self.vlan = Some(vlan);
        self
    }
    /// Sets spoof checking.
    pub fn with_spoofchk(mut self, on: bool) -> Self {
        self.spoofchk = Some(on);
        self
    }
    /// Sets trust.
    pub fn with_trust(mut self, on: bool) -> Self {
        self.trust = Some(on);
        self
    }
    /// Sets the link state.
    pub fn with_link_state(mut self, state: VfLinkState) -> Self {
        self.link_state = Some(state);
        self
    }
    /// Sets the rate limits.
    pub fn with_rate(mut self, rate: VfRate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// The attributes this config sets, in the kernel's application order.
    pub fn attrs(&self) -> Vec<VfAttr> {
        VfAttr::KERNEL_ORDER.into_iter().filter(|a| self.has(*a)).collect()
    }

    /// True when nothing would be changed.
    pub fn is_empty(&self) -> bool {
        self.attrs().is_empty()
    }

    fn has(&self, a: VfAttr) -> bool {
        match a {
            VfAttr::Mac => self.mac.is_some(),
            VfAttr::Vlan => self.vlan.is_some(),
            VfAttr::Rate => self.rate.is_some(),
            VfAttr::SpoofChk => self.spoofchk.is_some(),
            VfAttr::LinkState => self.link_state.is_some(),
            VfAttr::Trust => self.trust.is_some(),
        }
    }

    /// The same VF with only attribute `a` kept.
    pub fn only(&self, a: VfAttr) -> VfConfig {
        let mut c = VfConfig::new(self.vf);
        match a {
            VfAttr::Mac => c.mac = self.mac,
            VfAttr::Vlan => c.vlan = self.vlan,
            VfAttr::Rate => c.rate = self.rate,
            VfAttr::SpoofChk => c.spoofchk = self.spoofchk,
            VfAttr::LinkState => c.link_state = self.link_state,
            VfAttr::Trust => c.trust = self.trust,
        }
        c
    }

    /// The `IFLA_VF_INFO` entries for this config, in iproute2's order.
    fn vf_infos(&self) -> Vec<VfInfo> {
        let vf = self.vf;
        let mut out = Vec::new();
        if let Some(mac) = self.mac {
            out.push(VfInfo::Mac(VfInfoMac::new(vf, &mac.0)));
        }
        if let Some(vlan) = self.vlan {
            match vlan.proto {
                // iproute2 keeps the legacy attribute for 802.1Q so that
                // kernels without VLAN_LIST support keep working.
                VlanProto::Dot1Q => out.push(VfInfo::Vlan(VfInfoVlan::new(
                    vf,
                    u32::from(vlan.id),
                    u32::from(vlan.qos),
                ))),
                VlanProto::Dot1Ad => {
                    out.push(VfInfo::VlanList(vec![NlVfVlan::Info(VfVlanInfo::new(
                        vf,
                        u32::from(vlan.id),
                        u32::from(vlan.qos),
                        VlanProtocol::Ieee8021Ad,
                    ))]))
                }
            }
        }
        if let Some(on) = self.spoofchk {
            out.push(VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)));
        }
        if let Some(on) = self.trust {
            out.push(VfInfo::Trust(VfInfoTrust::new(vf, on)));
        }
        if let Some(state) = self.link_state {
            let s = match state {
                VfLinkState::Auto => NlVfLinkState::Auto,
                VfLinkState::Enable => NlVfLinkState::Enable,
                VfLinkState::Disable => NlVfLinkState::Disable,
            };
            out.push(VfInfo::LinkState(VfInfoLinkState::new(vf, s)));
        }
        if let Some(rate) = self.rate {
            out.push(VfInfo::Rate(VfInfoRate::new(vf, rate.min_mbps, rate.max_mbps)));
        }
        out
    }
}

fn validate(pf_index: u32, cfg: &VfConfig) -> Result<()> {
    if pf_index == 0 {
        return Err(Error::invalid("pf ifindex", "0 is not an interface"));
    }
    // The kernel rejects vf >= INT_MAX with EINVAL.
    if cfg.vf >= i32::MAX as u32 {
        return Err(Error::invalid("vf index", format!("{} is out of range", cfg.vf)));
    }
    if cfg.is_empty() {
        return Err(Error::invalid("vf config", format!("nothing to set for vf {}", cfg.vf)));
    }
    Ok(())
}

/// The `RTM_NEWLINK` route message setting `cfg` on PF `pf_index`.
pub fn build_vf_link_message(pf_index: u32, cfg: &VfConfig) -> Result<LinkMessage> {
    validate(pf_index, cfg)?;
    let mut msg = LinkMessage::default();
    msg.header.index = pf_index;
    msg.attributes.push(LinkAttribute::VfInfoList(vec![LinkVfInfo(cfg.vf_infos())]));
    Ok(msg)
}

/// The full netlink request (sequence number 0) that sets every attribute
/// of `cfg` on PF `pf_index` in one message, exactly as iproute2 sends it.
pub fn build_vf_message(
    pf_index: u32,
    cfg: &VfConfig,
) -> Result<NetlinkMessage<RouteNetlinkMessage>> {
    let msg = build_vf_link_message(pf_index, cfg)?;
    Ok(request(RouteNetlinkMessage::NewLink(msg), NLM_F_REQUEST | NLM_F_ACK))
}

/// One request per attribute of `cfg`, in the kernel's application order.
pub fn build_vf_messages(
    pf_index: u32,
    cfg: &VfConfig,
) -> Result<Vec<(VfAttr, NetlinkMessage<RouteNetlinkMessage>)>> {
    validate(pf_index, cfg)?;
    cfg.attrs().into_iter().map(|a| Ok((a, build_vf_message(pf_index, &cfg.only(a))?))).collect()
}

/// One VF as the PF reports it (what `ip -d link show <pf>` prints).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VfState {
    /// VF index.
    pub vf: u32,
    /// Administrative MAC (zero when unset).
    pub mac: Mac,
    /// Port VLAN id (0 = none).
    pub vlan: u16,
    /// Port VLAN priority.
    pub qos: u8,
    /// Port VLAN protocol; `None` if the kernel reported an unknown one.
    pub vlan_proto: Option<VlanProto>,
    /// Spoof checking; `None` when the driver does not report it.
    pub spoofchk: Option<bool>,
    /// Trust; `None` when the driver does not report it.
    pub trust: Option<bool>,
    /// Link state; `None` when absent or unknown.
    pub link_state: Option<VfLinkState>,
    /// Minimum TX rate, Mbit/s.
    pub min_tx_rate: u32,
    /// Maximum TX rate, Mbit/s (0 = unlimited).
    pub max_tx_rate: u32,
    /// RSS query; `None` when the driver does not report it.
    pub rss_query_en: Option<bool>,
}

impl VfState {
    fn empty(vf: u32) -> Self {
        VfState {
            vf,
            mac: Mac::ZERO,
            vlan: 0,
            qos: 0,
            vlan_proto: Some(VlanProto::Dot1Q),
            spoofchk: None,
            trust: None,
            link_state: None,
            min_tx_rate: 0,
            max_tx_rate: 0,
            rss_query_en: None,
        }
    }

    /// The config that puts a VF back into this state (for rollback and
    /// CNI DEL). Settings the driver does not report are left out, so a
    /// restore never asks for something the driver cannot do.
    pub fn to_config(&self) -> Result<VfConfig> {
        let proto = self.vlan_proto.unwrap_or_default();
        let vlan =
            if self.vlan == 0 { VfVlan::none() } else { VfVlan::new(self.vlan, self.qos, proto)? };
        Ok(VfConfig {
            vf: self.vf,
            mac: Some(self.mac),
            vlan: Some(vlan),
            spoofchk: self.spoofchk,
            trust: self.trust,
            link_state: self.link_state,
            rate: Some(VfRate::new(self.min_tx_rate, self.max_tx_rate)?),
        })
    }
}

// Kernel attribute numbers inside IFLA_VF_INFO (include/uapi/linux/if_link.h).
const IFLA_VF_INFO: u16 = 1;
const IFLA_VF_MAC: u16 = 1;
const IFLA_VF_VLAN: u16 = 2;
const IFLA_VF_TX_RATE: u16 = 3;
const IFLA_VF_SPOOFCHK: u16 = 4;
const IFLA_VF_LINK_STATE: u16 = 5;
const IFLA_VF_RATE: u16 = 6;
const IFLA_VF_RSS_QUERY_EN: u16 = 7;
const IFLA_VF_TRUST: u16 = 9;
const IFLA_VF_VLAN_LIST: u16 = 12;
const IFLA_VF_VLAN_INFO: u16 = 1;

/// Iterates the attributes in `buf`: `(type without flags, value)`.
pub(crate) fn nla_iter(buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8])>> + '_ {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let len = u16::from_ne_bytes([buf[off], buf[off + 1]]) as usize;
        let kind =
            u16::from_ne_bytes([buf[off + 2], buf[off + 3]]) & netlink_packet_core::NLA_TYPE_MASK;
        if len < 4 || off + len > buf.len() {
            off = buf.len();
            return Some(Err(Error::invalid(
                "netlink attribute",
                format!("length {len} at offset {off}"),
            )));
        }
        let value = &buf[off + 4..off + len];
        off += (len + 3) & !3;
        Some(Ok((kind, value)))
    })
}

fn u32_at(v: &[u8], i: usize) -> Result<u32> {
    v.get(i * 4..i * 4 + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(|| {
        Error::invalid("vf info attribute", format!("{} bytes is too short", v.len()))
    })
}

/// Tri-state settings: the kernel reports `(u32)-1` when the driver does
/// not implement the getter.
fn tri(v: u32) -> Option<bool> {
    if v == u32::MAX { None } else { Some(v != 0) }
}

/// Parses the value of an `IFLA_VFINFO_LIST` attribute (raw bytes, so the
/// "not reported" `-1` of spoofchk/trust survives; netlink-packet-route
/// folds it into `false`).
pub fn parse_vf_info_list(value: &[u8]) -> Result<Vec<VfState>> {
    let mut out = Vec::new();
    for item in nla_iter(value) {
        let (kind, info) = item?;
        if kind != IFLA_VF_INFO {
            continue;
        }
        out.push(parse_vf_info(info)?);
    }
    Ok(out)
}

fn parse_vf_info(info: &[u8]) -> Result<VfState> {
    let mut st: Option<VfState> = None;
    let mut saw_rate = false;
    let mut tx_rate = 0;
    for item in nla_iter(info) {
        let (kind, v) = item?;
        let vf = match kind {
            IFLA_VF_MAC | IFLA_VF_VLAN | IFLA_VF_TX_RATE | IFLA_VF_SPOOFCHK
            | IFLA_VF_LINK_STATE | IFLA_VF_RATE | IFLA_VF_RSS_QUERY_EN | IFLA_VF_TRUST => {
                u32_at(v, 0)?
            }
            _ => {
                if kind == IFLA_VF_VLAN_LIST {
                    for entry in nla_iter(v) {
                        let (k, e) = entry?;
                        if k == IFLA_VF_VLAN_INFO {
                            let s =
                                st.get_or_insert_with(|| VfState::empty(u32_at(e, 0).unwrap_or(0)));
                            s.vlan = u32_at(e, 1)? as u16;
                            s.qos = u32_at(e, 2)? as u8;
                            let proto = e
                                .get(12..14)
                                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                                .ok_or_else(|| Error::invalid("vf vlan info", "too short"))?;
                            s.vlan_proto = VlanProto::from_ethertype(proto);
                        }
                    }
                }
                continue;
            }
        };
        let s = st.get_or_insert_with(|| VfState::empty(vf));
        match kind {
            IFLA_VF_MAC => {
                s.mac = v
                    .get(4..10)
                    .and_then(Mac::from_slice)
                    .ok_or_else(|| Error::invalid("vf mac", "too short"))?
            }
            IFLA_VF_VLAN => {
                s.vlan = u32_at(v, 1)? as u16;
                s.qos = u32_at(v, 2)? as u8;
            }
            IFLA_VF_TX_RATE => tx_rate = u32_at(v, 1)?,
            IFLA_VF_RATE => {
                saw_rate = true;
                s.min_tx_rate = u32_at(v, 1)?;
                s.max_tx_rate = u32_at(v, 2)?;
            }
            IFLA_VF_SPOOFCHK => s.spoofchk = tri(u32_at(v, 1)?),
            IFLA_VF_LINK_STATE => s.link_state = VfLinkState::from_raw(u32_at(v, 1)?),
            IFLA_VF_RSS_QUERY_EN => s.rss_query_en = tri(u32_at(v, 1)?),
            IFLA_VF_TRUST => s.trust = tri(u32_at(v, 1)?),
            _ => {}
        }
    }
    let mut s = st.ok_or_else(|| Error::invalid("vf info", "no attribute names the vf"))?;
    if !saw_rate {
        // Only the legacy attribute: it is the maximum.
        s.max_tx_rate = tx_rate;
    }
    Ok(s)
}

/// Short name of a VF attribute, for [`crate::SentMessage::describe`].
pub(crate) fn vf_info_name(i: &VfInfo) -> &'static str {
    match i {
        VfInfo::Mac(_) => "mac",
        VfInfo::Vlan(_) | VfInfo::VlanList(_) => "vlan",
        VfInfo::Rate(_) => "rate",
        VfInfo::TxRate(_) => "tx_rate",
        VfInfo::SpoofCheck(_) => "spoofchk",
        VfInfo::LinkState(_) => "state",
        VfInfo::Trust(_) => "trust",
        _ => "other",
    }
}

/// The VF index a VF attribute carries.
pub(crate) fn vf_info_index(i: &VfInfo) -> Option<u32> {
    Some(match i {
        VfInfo::Mac(v) => v.vf_id,
        VfInfo::Vlan(v) => v.vf_id,
        VfInfo::VlanList(l) => match l.first() {
            Some(NlVfVlan::Info(v)) => v.vf_id,
            _ => return None,
        },
        VfInfo::Rate(v) => v.vf_id,
        VfInfo::TxRate(v) => v.vf_id,
        VfInfo::SpoofCheck(v) => v.vf_id,
        VfInfo::LinkState(v) => v.vf_id,
        VfInfo::Trust(v) => v.vf_id,
        _ => return None,
    })
}
