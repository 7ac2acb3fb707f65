//! Small validated value types shared by every operation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::Error;

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const MAX_IFNAME_LEN: usize = 15;
/// Longest alternative interface name the kernel accepts (`ALTIFNAMSIZ` - 1).
pub const MAX_ALTNAME_LEN: usize = 127;
/// Longest interface alias the kernel accepts (`IFALIASZ` - 1).
pub const MAX_ALIAS_LEN: usize = 255;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The all-zero address (clears a VF's administrative MAC on most drivers).
    pub const ZERO: Mac = Mac([0; 6]);
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True when the group bit is set (multicast or broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// Reads the first six bytes of a kernel address attribute, if it has
    /// exactly six (Ethernet) or more (VF MAC fields are 32 bytes wide).
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Mac> {
        let six: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(Mac(six))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl FromStr for Mac {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators), case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::invalid("mac address", format!("{s:?} is not six hex octets"));
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for slot in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *slot = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl From<[u8; 6]> for Mac {
    fn from(v: [u8; 6]) -> Self {
        Mac(v)
    }
}

/// How an operation names a link: by ifindex or by name.
///
/// Operations whose message must carry the ifindex (rename, VF settings)
/// resolve a name with one `RTM_GETLINK` first, as iproute2 does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkId {
    /// The interface index.
    Index(u32),
    /// The interface name in the socket's netns.
    Name(String),
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkId::Index(i) => write!(f, "ifindex {i}"),
            LinkId::Name(n) => f.write_str(n),
        }
    }
}

impl From<u32> for LinkId {
    fn from(v: u32) -> Self {
        LinkId::Index(v)
    }
}
impl From<&str> for LinkId {
    fn from(v: &str) -> Self {
        LinkId::Name(v.to_owned())
    }
}
impl From<String> for LinkId {
    fn from(v: String) -> Self {
        LinkId::Name(v)
    }
}
impl From<&String> for LinkId {
    fn from(v: &String) -> Self {
        LinkId::Name(v.clone())
    }
}
impl From<&LinkId> for LinkId {
    fn from(v: &LinkId) -> Self {
        v.clone()
    }
}

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub fn validate_ifname(name: &str) -> Result<(), Error> {
    validate_name(name, MAX_IFNAME_LEN, "interface name")
}

pub(crate) fn validate_altname(name: &str) -> Result<(), Error> {
    validate_name(name, MAX_ALTNAME_LEN, "alternative interface name")
}

fn validate_name(name: &str, max: usize, what: &'static str) -> Result<(), Error> {
    if name.is_empty() || name.len() > max {
        return Err(Error::invalid(what, format!("{name:?} must be 1..={max} bytes")));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(what, format!("{name:?} is reserved")));
    }
    if name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace()) {
        return Err(Error::invalid(what, format!("{name:?} contains '/', ':', NUL or whitespace")));
    }
    Ok(())
}

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// `AF_INET`.
    V4,
    /// `AF_INET6`.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Number of bits in an address of this family.
    pub fn max_prefix_len(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }

    pub(crate) fn af(self) -> netlink_packet_route::AddressFamily {
        match self {
            IpFamily::V4 => netlink_packet_route::AddressFamily::Inet,
            IpFamily::V6 => netlink_packet_route::AddressFamily::Inet6,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        })
    }
}

/// An IP address with a prefix length (`192.0.2.1/24`, `2001:db8::/32`).
///
/// Host bits may be set: the same type serves interface addresses (where
/// they must be) and route/rule prefixes (where the kernel wants them clear;
/// see [`IpPrefix::network`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// Builds a prefix, checking the length against the family.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, Error> {
        let max = IpFamily::of(&addr).max_prefix_len();
        if len > max {
            return Err(Error::invalid("ip prefix", format!("{addr}/{len}: length exceeds {max}")));
        }
        Ok(IpPrefix { addr, len })
    }

    /// A host prefix (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        IpPrefix { addr, len: IpFamily::of(&addr).max_prefix_len() }
    }

    /// The default route prefix of a family (`0.0.0.0/0`, `::/0`).
    pub fn default_route(family: IpFamily) -> Self {
        let addr = match family {
            IpFamily::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpFamily::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        IpPrefix { addr, len: 0 }
    }

    /// The address as given.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for a `/0` prefix.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.addr)
    }

    /// The same prefix with host bits cleared.
    pub fn network(&self) -> IpPrefix {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        IpPrefix { addr, len: self.len }
    }

    /// The IPv4 directed broadcast address for prefixes shorter than /31.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) if self.len < 31 => {
                let host = if self.len == 0 { u32::MAX } else { u32::MAX >> u32::from(self.len) };
                Some(Ipv4Addr::from(u32::from(a) | host))
            }
            _ => None,
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpPrefix({self})")
    }
}

impl FromStr for IpPrefix {
    type Err = Error;

    /// Parses `addr/len`; a bare address becomes a host prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |d: &str| Error::invalid("ip prefix", format!("{s:?}: {d}"));
        match s.split_once('/') {
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad("bad address"))?;
                let len: u8 = l.parse().map_err(|_| bad("bad prefix length"))?;
                IpPrefix::new(addr, len)
            }
            None => Ok(IpPrefix::host(s.parse().map_err(|_| bad("bad address"))?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_display() {
        let m: Mac = "02:00:5E:00:53:0a".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x5e, 0, 0x53, 0x0a]);
        assert_eq!(m.to_string(), "02:00:5e:00:53:0a");
        assert_eq!("02-00-5e-00-53-0a".parse::<Mac>().unwrap(), m);
        for bad in
            ["", "02:00:5e:00:53", "02:00:5e:00:53:0a:01", "2:00:5e:00:53:0a", "zz:00:5e:00:53:0a"]
        {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert!(Mac::BROADCAST.is_multicast());
        assert!(!m.is_multicast());
        assert!(Mac::ZERO.is_zero());
    }

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("abcdefghijklmno").is_ok());
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "a:b", ".", ".."] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_math() {
        let p: IpPrefix = "192.0.2.77/24".parse().unwrap();
        assert_eq!(p.network().to_string(), "192.0.2.0/24");
        assert_eq!(p.broadcast(), Some(Ipv4Addr::new(192, 0, 2, 255)));
        assert_eq!("192.0.2.1/31".parse::<IpPrefix>().unwrap().broadcast(), None);
        let q: IpPrefix = "2001:db8::1234/64".parse().unwrap();
        assert_eq!(q.network().to_string(), "2001:db8::/64");
        assert_eq!(q.broadcast(), None);
        assert!("192.0.2.1/33".parse::<IpPrefix>().is_err());
        assert!("2001:db8::/129".parse::<IpPrefix>().is_err());
        assert_eq!("198.51.100.1".parse::<IpPrefix>().unwrap().len(), 32);
        assert_eq!(IpPrefix::default_route(IpFamily::V6).to_string(), "::/0");
        assert_eq!("0.0.0.0/0".parse::<IpPrefix>().unwrap().network().to_string(), "0.0.0.0/0");
    }
}
