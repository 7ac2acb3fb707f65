//! Address types shared by configs and results: [`IpPrefix`] (`192.0.2.5/24`),
//! [`RequestedIp`] (`ip[/prefix]`) and [`Mac`] (`02:00:5e:00:53:01`).
//!
//! All three parse with [`FromStr`], print with [`Display`](fmt::Display) and (de)serialize as
//! JSON strings.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an address string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrParseError {
    /// Not `address/prefix-length`.
    #[error(
        "invalid IP prefix {input:?}: expected address/length (e.g. 192.0.2.5/24 or 2001:db8::5/64)"
    )]
    Prefix {
        /// The rejected text.
        input: String,
    },
    /// The prefix length is larger than the address family allows.
    #[error("invalid IP prefix {input:?}: prefix length {len} exceeds {max}")]
    PrefixLength {
        /// The rejected text.
        input: String,
        /// The given length.
        len: u32,
        /// 32 or 128.
        max: u8,
    },
    /// Not an IP address.
    #[error("invalid IP address {input:?}")]
    Address {
        /// The rejected text.
        input: String,
    },
    /// Not six hex octets separated by `:` or `-`.
    #[error("invalid MAC address {input:?}: expected six hex octets such as 02:00:5e:00:53:01")]
    Mac {
        /// The rejected text.
        input: String,
    },
}

/// An address with its prefix length, as CNI results and configs write it: `192.0.2.5/24`.
///
/// Host bits are kept (the address is the interface's address, not the network), exactly like
/// the Go library's `types.ParseCIDR`. Use [`IpPrefix::network`] for the masked form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// Builds a prefix, checking the length against the address family.
    pub fn new(addr: IpAddr, len: u8) -> Result<IpPrefix, AddrParseError> {
        let max = max_len(addr);
        if len > max {
            return Err(AddrParseError::PrefixLength {
                input: format!("{addr}/{len}"),
                len: u32::from(len),
                max,
            });
        }
        Ok(IpPrefix { addr, len })
    }

    /// The address (host bits kept).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4_mask(self.len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & v6_mask(self.len))),
        }
    }

    /// The same prefix with host bits cleared (`192.0.2.5/24` → `192.0.2.0/24`).
    pub fn trunc(&self) -> IpPrefix {
        IpPrefix { addr: self.network(), len: self.len }
    }

    /// The netmask as an address (`/24` → `255.255.255.0`).
    pub fn netmask(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v4_mask(self.len))),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v6_mask(self.len))),
        }
    }

    /// Whether `ip` lies in this prefix's network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = v4_mask(self.len);
                u32::from(net) & m == u32::from(ip) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = v6_mask(self.len);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }

    /// Whether this is a default route destination (`0.0.0.0/0` or `::/0`).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn v4_mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
}

fn v6_mask(len: u8) -> u128 {
    if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) }
}

impl FromStr for IpPrefix {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AddrParseError::Prefix { input: s.to_owned() };
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
            return Err(bad());
        }
        let len: u32 = len.parse().map_err(|_| bad())?;
        let max = max_len(addr);
        if len > u32::from(max) {
            return Err(AddrParseError::PrefixLength { input: s.to_owned(), len, max });
        }
        // len <= 128 here.
        Ok(IpPrefix { addr, len: len as u8 })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An address a runtime or user asks for, with an optional prefix length: the `ips`
/// capability (`runtimeConfig.ips`), `args.cni.ips` and `CNI_ARGS` `IP=` use this form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestedIp {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length, if given.
    pub prefix_len: Option<u8>,
}

impl FromStr for RequestedIp {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('/') {
            let p: IpPrefix = s.parse()?;
            Ok(RequestedIp { addr: p.addr(), prefix_len: Some(p.prefix_len()) })
        } else {
            let addr = s.parse().map_err(|_| AddrParseError::Address { input: s.to_owned() })?;
            Ok(RequestedIp { addr, prefix_len: None })
        }
    }
}

impl fmt::Display for RequestedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len {
            Some(len) => write!(f, "{}/{}", self.addr, len),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl Serialize for RequestedIp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestedIp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A 48-bit Ethernet MAC address.
///
/// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (any case); prints lowercase with
/// colons, the form the kernel and the Go library use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

impl Mac {
    /// A MAC from its octets.
    pub const fn new(octets: [u8; 6]) -> Mac {
        Mac(octets)
    }

    /// The octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether the group bit is set (multicast or broadcast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// Whether this is `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// Whether the locally-administered bit is set.
    pub const fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Whether the address can be assigned to an interface: not zero, not multicast.
    pub fn is_assignable(&self) -> bool {
        !self.is_zero() && !self.is_multicast()
    }
}

impl FromStr for Mac {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AddrParseError::Mac { input: s.to_owned() };
        let sep = if s.contains(':') { ':' } else { '-' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for slot in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_round_trips_and_keeps_host_bits() {
        for s in ["192.0.2.5/24", "0.0.0.0/0", "198.51.100.7/32", "2001:db8::5/64", "::/0"] {
            let p: IpPrefix = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        let p: IpPrefix = "192.0.2.5/24".parse().unwrap();
        assert_eq!(p.addr(), "192.0.2.5".parse::<IpAddr>().unwrap());
        assert_eq!(p.network().to_string(), "192.0.2.0");
        assert_eq!(p.trunc().to_string(), "192.0.2.0/24");
        assert_eq!(p.netmask().to_string(), "255.255.255.0");
        assert!(p.contains("192.0.2.254".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let v6: IpPrefix = "2001:db8:0:1::5/64".parse().unwrap();
        assert_eq!(v6.network().to_string(), "2001:db8:0:1::");
        assert!(v6.contains("2001:db8:0:1:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db8:0:2::1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<IpPrefix>().unwrap().is_default());
    }

    #[test]
    fn prefix_rejects_bad_input() {
        for s in [
            "192.0.2.5",
            "192.0.2.5/",
            "192.0.2.5/33",
            "2001:db8::/129",
            "x/24",
            "192.0.2.5/+4",
            "192.0.2.5/2 4",
            "/24",
            "192.0.2.5/0024",
        ] {
            assert!(s.parse::<IpPrefix>().is_err(), "{s} should fail");
        }
        assert_eq!(
            "192.0.2.5/40".parse::<IpPrefix>(),
            Err(AddrParseError::PrefixLength { input: "192.0.2.5/40".into(), len: 40, max: 32 })
        );
        assert!(IpPrefix::new("192.0.2.1".parse().unwrap(), 33).is_err());
    }

    #[test]
    fn prefix_serde_is_a_string() {
        let p: IpPrefix = serde_json::from_str("\"203.0.113.9/28\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"203.0.113.9/28\"");
        let e = serde_json::from_str::<IpPrefix>("\"203.0.113.9\"").unwrap_err();
        assert!(e.to_string().contains("203.0.113.9"), "{e}");
    }

    #[test]
    fn requested_ip_with_and_without_prefix() {
        let a: RequestedIp = "192.0.2.10".parse().unwrap();
        assert_eq!(a.prefix_len, None);
        let b: RequestedIp = "2001:db8::10/64".parse().unwrap();
        assert_eq!(b.prefix_len, Some(64));
        assert_eq!(b.to_string(), "2001:db8::10/64");
        assert!("192.0.2.300".parse::<RequestedIp>().is_err());
        assert!("192.0.2.1/99".parse::<RequestedIp>().is_err());
    }

    #[test]
    fn mac_parses_both_separators_and_prints_canonically() {
        let m: Mac = "02:AA:bb:0C:dd:0e".parse().unwrap();
        assert_eq!(m.to_string(), "02:aa:bb:0c:dd:0e");
        assert_eq!("02-aa-bb-0c-dd-0e".parse::<Mac>().unwrap(), m);
        assert!(m.is_locally_administered());
        assert!(m.is_assignable());
        assert_eq!(m.octets(), [0x02, 0xaa, 0xbb, 0x0c, 0xdd, 0x0e]);
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"02:aa:bb:0c:dd:0e\"");
        assert_eq!(serde_json::from_str::<Mac>("\"02:aa:bb:0c:dd:0e\"").unwrap(), m);
    }

    #[test]
    fn mac_rejects_bad_input_and_classifies() {
        for s in [
            "",
            "02:aa:bb:0c:dd",
            "02:aa:bb:0c:dd:0e:ff",
            "02:aa:bb:0c:dd:0g",
            "2:aa:bb:0c:dd:0e",
            "02:aa-bb:0c:dd:0e",
            "02aabb0cdd0e",
            "02:aa:bb:0c:dd:0e:",
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s:?} should fail");
        }
        assert!("01:00:5e:00:00:01".parse::<Mac>().unwrap().is_multicast());
        assert!("ff:ff:ff:ff:ff:ff".parse::<Mac>().unwrap().is_broadcast());
        assert!(!"00:00:00:00:00:00".parse::<Mac>().unwrap().is_assignable());
        assert!(!"33:33:00:00:00:01".parse::<Mac>().unwrap().is_assignable());
    }
}
