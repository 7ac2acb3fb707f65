//! Netdev facts from one rtnetlink link dump instead of per-attribute sysfs reads.
//!
//! Reading a VF netdev's `address`, `mtu`, `operstate`, `carrier`, `type` and `ifindex` from sysfs
//! costs an open, a read and a close each: about two dozen syscalls per VF, more than half of a
//! full discovery. One `RTM_GETLINK` dump of the reader's network namespace returns the same facts
//! for every link at once. The dump describes *this* netns; a sysfs tree describes the netns it was
//! mounted from. So the table is only taken when the sysfs root is a live sysfs mount
//! ([`HostPaths::is_live_sysfs`]), and discovery still checks, per PF, that the PF's `ifindex` in
//! sysfs agrees with the table before trusting it for that PF's VFs. A netdev the table does not
//! know (created after the dump) is read from sysfs as before.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::LinkType;
use crate::paths::HostPaths;

/// What discovery reports about one netdev, as rtnetlink gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetdevFacts {
    /// `ifindex`.
    pub ifindex: u32,
    /// `address`, formatted as sysfs formats it (lowercase hex, `:`-separated).
    pub mac: Option<String>,
    /// `mtu`.
    pub mtu: Option<u32>,
    /// `operstate`, with the names sysfs uses.
    pub oper_state: Option<String>,
    /// `carrier`: `None` while the link is administratively down (sysfs answers EINVAL then).
    pub carrier: Option<bool>,
    /// `type` (ARPHRD).
    pub link_type: LinkType,
}

/// Netdev facts of one network namespace, by interface name.
#[derive(Debug, Clone, Default)]
pub struct NetdevTable {
    links: HashMap<String, NetdevFacts>,
}

impl NetdevTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a netdev.
    pub fn insert(&mut self, name: impl Into<String>, facts: NetdevFacts) {
        self.links.insert(name.into(), facts);
    }

    /// The facts for `name`.
    pub fn get(&self, name: &str) -> Option<&NetdevFacts> {
        self.links.get(name)
    }

    /// Number of netdevs.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Whether `name` with `ifindex` (read from sysfs) is the same netdev in this table: the check
    /// that the table and the sysfs tree describe the same network namespace.
    pub fn agrees(&self, name: &str, ifindex: u32) -> bool {
        self.get(name).is_some_and(|f| f.ifindex == ifindex)
    }

    /// Dumps the links of the calling thread's network namespace.
    pub fn from_current_netns() -> Result<Self, sriov_netlink::Error> {
        let mut nl = sriov_netlink::Netlink::open()?;
        let mut table = Self::new();
        for link in nl.list_links()? {
            if let Some(facts) = facts_of(&link) {
                table.insert(link.name.clone(), facts);
            }
        }
        Ok(table)
    }

    /// The table to discover with on `paths`: a dump of this netns when `paths` is a live sysfs,
    /// otherwise (a simulated or copied tree, or a failed dump) `None`, and discovery reads every
    /// netdev attribute from the tree.
    pub fn for_paths(paths: &HostPaths) -> Option<Self> {
        if !paths.is_live_sysfs() {
            return None;
        }
        match Self::from_current_netns() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::debug!(error = %e, "link dump failed; netdev details come from sysfs");
                None
            }
        }
    }
}

/// Converts a dumped link; `None` when it lacks something sysfs would show (then sysfs is read).
fn facts_of(link: &sriov_netlink::Link) -> Option<NetdevFacts> {
    let link_type = LinkType::from_arphrd(u32::from(link.link_type));
    // Only 6-byte (Ethernet) addresses are carried by `Link`; others (InfiniBand's 20 bytes) are
    // left to sysfs rather than reported as missing.
    let mac = match (link.mac, link_type) {
        (Some(m), _) => Some(format_mac(&m.0)),
        (None, LinkType::Ether) => None,
        (None, _) => return None,
    };
    Some(NetdevFacts {
        ifindex: link.index,
        mac,
        mtu: link.mtu,
        oper_state: oper_state_name(link.oper_state).map(str::to_owned),
        carrier: if link.is_up() { link.carrier } else { None },
        link_type,
    })
}

/// The kernel's `operstate` names (net/core/net-sysfs.c `operstates[]`).
fn oper_state_name(s: sriov_netlink::OperState) -> Option<&'static str> {
    use sriov_netlink::OperState as O;
    Some(match s {
        O::Unknown => "unknown",
        O::NotPresent => "notpresent",
        O::Down => "down",
        O::LowerLayerDown => "lowerlayerdown",
        O::Testing => "testing",
        O::Dormant => "dormant",
        O::Up => "up",
        O::Other(_) => return None,
    })
}

/// `aa:bb:...`, as sysfs prints a hardware address.
fn format_mac(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_formatted_as_sysfs_does() {
        assert_eq!(format_mac(&[0x02, 0x5e, 0, 0xab, 0x0c, 0xff]), "02:5e:00:ab:0c:ff");
    }

    #[test]
    fn admin_down_link_has_unknown_carrier_like_sysfs() {
        let mut l = sriov_netlink::Link {
            index: 7,
            name: "ens1f0v0".into(),
            link_type: 1,
            carrier: Some(false),
            oper_state: sriov_netlink::OperState::Down,
            mtu: Some(1500),
            ..Default::default()
        };
        let f = facts_of(&l).unwrap();
        assert_eq!(f.carrier, None);
        assert_eq!(f.oper_state.as_deref(), Some("down"));
        assert_eq!(f.mac, None);
        l.flags = sriov_netlink::link::iff::UP;
        assert_eq!(facts_of(&l).unwrap().carrier, Some(false));
    }

    #[test]
    fn non_ethernet_link_without_a_mac_is_left_to_sysfs() {
        let l = sriov_netlink::Link { link_type: 32, ..Default::default() };
        assert!(facts_of(&l).is_none());
    }

    #[test]
    fn agreement_needs_name_and_ifindex() {
        let mut t = NetdevTable::new();
        let facts = NetdevFacts {
            ifindex: 4,
            mac: None,
            mtu: None,
            oper_state: None,
            carrier: None,
            link_type: LinkType::Ether,
        };
        t.insert("ens1f0", facts);
        assert!(t.agrees("ens1f0", 4));
        assert!(!t.agrees("ens1f0", 5));
        assert!(!t.agrees("ens2f0", 4));
    }
}
