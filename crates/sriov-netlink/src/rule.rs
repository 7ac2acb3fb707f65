//! Policy routing rules (`ip rule add/del/show`).

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::rule::{RuleAction as NlRuleAction, RuleAttribute, RuleMessage};
use tracing::debug;

use crate::client::Netlink;
use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::types::{IpFamily, IpPrefix, validate_ifname};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Look the packet up in this table.
    Table(u32),
    /// Drop silently.
    Blackhole,
    /// Drop with ICMP unreachable.
    Unreachable,
    /// Drop with ICMP prohibited.
    Prohibit,
}

/// A rule to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Family.
    pub family: IpFamily,
    /// Priority (lower first); `None` lets the kernel choose on add and
    /// matches any on delete.
    pub priority: Option<u32>,
    /// Action.
    pub action: RuleAction,
    /// Source prefix (`from`).
    pub from: Option<IpPrefix>,
    /// Destination prefix (`to`).
    pub to: Option<IpPrefix>,
    /// Input interface name (`iif`).
    pub iif: Option<String>,
    /// Output interface name (`oif`).
    pub oif: Option<String>,
}

impl RuleSpec {
    /// `lookup <table>` for a family, no selectors.
    pub fn lookup(family: IpFamily, table: u32) -> Self {
        RuleSpec {
            family,
            priority: None,
            action: RuleAction::Table(table),
            from: None,
            to: None,
            iif: None,
            oif: None,
        }
    }

    fn validate(&self) -> Result<()> {
        for (what, p) in [("from", self.from), ("to", self.to)] {
            if let Some(p) = p.filter(|p| p.family() != self.family) {
                return Err(Error::invalid("rule", format!("{what} {p} is not {}", self.family)));
            }
        }
        for n in [&self.iif, &self.oif].into_iter().flatten() {
            validate_ifname(n)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut s = format!("{} rule", self.family);
        if let Some(p) = self.priority {
            s.push_str(&format!(" pref {p}"));
        }
        if let Some(f) = self.from {
            s.push_str(&format!(" from {f}"));
        }
        if let Some(t) = self.to {
            s.push_str(&format!(" to {t}"));
        }
        if let RuleAction::Table(t) = self.action {
            s.push_str(&format!(" lookup {t}"));
        }
        s
    }
}

/// A rule as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Family.
    pub family: IpFamily,
    /// Priority.
    pub priority: u32,
    /// Action; `None` for kinds this crate does not model (goto, nop).
    pub action: Option<RuleAction>,
    /// Source prefix.
    pub from: Option<IpPrefix>,
    /// Destination prefix.
    pub to: Option<IpPrefix>,
    /// Input interface.
    pub iif: Option<String>,
    /// Output interface.
    pub oif: Option<String>,
}

pub(crate) fn rule_message(spec: &RuleSpec) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = spec.family.af();
    let (action, table) = match spec.action {
        RuleAction::Table(t) => (NlRuleAction::ToTable, Some(t)),
        RuleAction::Blackhole => (NlRuleAction::Blackhole, None),
        RuleAction::Unreachable => (NlRuleAction::Unreachable, None),
        RuleAction::Prohibit => (NlRuleAction::Prohibit, None),
    };
    m.header.action = action;
    if let Some(t) = table {
        m.header.table = if t < 256 { t as u8 } else { 0 };
        m.attributes.push(RuleAttribute::Table(t));
    }
    if let Some(p) = spec.priority {
        m.attributes.push(RuleAttribute::Priority(p));
    }
    if let Some(f) = spec.from {
        m.header.src_len = f.len();
        m.attributes.push(RuleAttribute::Source(f.network().addr()));
    }
    if let Some(t) = spec.to {
        m.header.dst_len = t.len();
        m.attributes.push(RuleAttribute::Destination(t.network().addr()));
    }
    if let Some(i) = &spec.iif {
        m.attributes.push(RuleAttribute::Iifname(i.clone()));
    }
    if let Some(o) = &spec.oif {
        m.attributes.push(RuleAttribute::Oifname(o.clone()));
    }
    m
}

fn to_info(m: &RuleMessage) -> Option<RuleInfo> {
    let family = match u8::from(m.header.family) as i32 {
        libc::AF_INET => IpFamily::V4,
        libc::AF_INET6 => IpFamily::V6,
        _ => return None,
    };
    let mut table = u32::from(m.header.table);
    let mut r =
        RuleInfo { family, priority: 0, action: None, from: None, to: None, iif: None, oif: None };
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => r.priority = *p,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Source(ip) => r.from = IpPrefix::new(*ip, m.header.src_len).ok(),
            RuleAttribute::Destination(ip) => r.to = IpPrefix::new(*ip, m.header.dst_len).ok(),
            RuleAttribute::Iifname(n) => r.iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => r.oif = Some(n.clone()),
            _ => {}
        }
    }
    r.action = match m.header.action {
        NlRuleAction::ToTable => Some(RuleAction::Table(table)),
        NlRuleAction::Blackhole => Some(RuleAction::Blackhole),
        NlRuleAction::Unreachable => Some(RuleAction::Unreachable),
        NlRuleAction::Prohibit => Some(RuleAction::Prohibit),
        _ => None,
    };
    Some(r)
}

impl<T: Transport> Netlink<T> {
    /// Adds a rule; an identical one gives `EEXIST`.
    pub fn add_rule(&mut self, spec: &RuleSpec) -> Result<()> {
        spec.validate()?;
        let op = format!("add {}", spec.describe());
        debug!(op, "netlink");
        self.ack(&op, RouteNetlinkMessage::NewRule(rule_message(spec)), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Deletes the first rule matching `spec`; none gives `ENOENT`
    /// ([`Error::is_not_found`]).
    pub fn del_rule(&mut self, spec: &RuleSpec) -> Result<()> {
        spec.validate()?;
        let op = format!("delete {}", spec.describe());
        debug!(op, "netlink");
        self.ack(&op, RouteNetlinkMessage::DelRule(rule_message(spec)), 0)
    }

    /// Lists the rules of a family.
    pub fn list_rules(&mut self, family: IpFamily) -> Result<Vec<RuleInfo>> {
        let mut m = RuleMessage::default();
        m.header.family = family.af();
        let replies =
            self.dump(&format!("dump {family} rules"), RouteNetlinkMessage::GetRule(m))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRule(r) => to_info(r),
                _ => None,
            })
            .filter(|r| r.family == family)
            .collect())
    }
}
