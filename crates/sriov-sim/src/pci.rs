//! PCI addresses (`DDDD:BB:DD.F`) and SR-IOV routing-ID arithmetic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PCI address in sysfs form, e.g. `0000:3b:00.0`.
///
/// Ordering is by (domain, bus, device, function), which is also the order in which the
/// kernel enumerates devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddr {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

/// Why a string is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pci address {input:?}: {reason}")]
pub struct PciAddrError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PciAddr {
    /// Builds an address, checking the device (< 32) and function (< 8) ranges.
    pub fn new(domain: u16, bus: u8, device: u8, function: u8) -> Option<Self> {
        (device < 32 && function < 8).then_some(Self { domain, bus, device, function })
    }

    /// The 8-bit `devfn` (device << 3 | function).
    pub fn devfn(self) -> u8 {
        (self.device << 3) | self.function
    }

    /// The 16-bit routing ID (bus << 8 | devfn) used by SR-IOV to place VFs.
    pub fn routing_id(self) -> u16 {
        (u16::from(self.bus) << 8) | u16::from(self.devfn())
    }

    /// The address with the given routing ID in `domain`.
    pub fn from_routing_id(domain: u16, rid: u16) -> Self {
        let [bus, devfn] = rid.to_be_bytes();
        Self { domain, bus, device: devfn >> 3, function: devfn & 7 }
    }

    /// Address of VF `index` of a PF at `self`, computed as the kernel's
    /// `pci_iov_virtfn_bus()`/`pci_iov_virtfn_devfn()`: routing ID = PF RID + offset +
    /// stride * index, where a devfn overflow carries into the bus number.
    /// Returns `None` when the result would leave the 16-bit routing-ID space.
    pub fn vf_addr(self, offset: u16, stride: u16, index: u16) -> Option<Self> {
        let rid =
            u32::from(self.routing_id()) + u32::from(offset) + u32::from(stride) * u32::from(index);
        u16::try_from(rid).ok().map(|rid| Self::from_routing_id(self.domain, rid))
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function)
    }
}

impl FromStr for PciAddr {
    type Err = PciAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| PciAddrError { input: s.to_owned(), reason };
        let (head, func) = s.rsplit_once('.').ok_or_else(|| err("missing '.'"))?;
        let mut parts = head.split(':');
        let (dom, bus, dev) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(b), Some(v), None) => (d, b, v),
            (Some(b), Some(v), None, None) => ("0000", b, v),
            _ => return Err(err("expected [dddd:]bb:dd.f")),
        };
        let hex = |s: &str, max_len: usize| {
            if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                Err(err("bad hex field"))
            } else {
                u16::from_str_radix(s, 16).map_err(|_| err("bad hex field"))
            }
        };
        let domain = hex(dom, 4)?;
        let bus = u8::try_from(hex(bus, 2)?).map_err(|_| err("bus out of range"))?;
        let device = u8::try_from(hex(dev, 2)?).map_err(|_| err("device out of range"))?;
        let function = u8::try_from(hex(func, 1)?).map_err(|_| err("function out of range"))?;
        Self::new(domain, bus, device, function)
            .ok_or_else(|| err("device or function out of range"))
    }
}

impl Serialize for PciAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let a: PciAddr = "0000:3b:00.1".parse().unwrap();
        assert_eq!((a.domain, a.bus, a.device, a.function), (0, 0x3b, 0, 1));
        assert_eq!(a.to_string(), "0000:3b:00.1");
        let short: PciAddr = "af:1f.7".parse().unwrap();
        assert_eq!(short.to_string(), "0000:af:1f.7");
        for bad in ["", "0000:3b:00", "0000:3b:20.0", "0000:3b:00.8", "x:3b:00.0", "0:1:2:3.0"] {
            assert!(bad.parse::<PciAddr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn vf_routing_ids_carry_into_bus() {
        // X710 port 0: offset 16, stride 1 -> VFs start at 3b:02.0.
        let pf: PciAddr = "0000:3b:00.0".parse().unwrap();
        assert_eq!(pf.vf_addr(16, 1, 0).unwrap().to_string(), "0000:3b:02.0");
        assert_eq!(pf.vf_addr(16, 1, 9).unwrap().to_string(), "0000:3b:03.1");
        // E810: offset 8, 256 VFs -> the last ones spill onto the next bus.
        let e810: PciAddr = "0000:af:00.0".parse().unwrap();
        assert_eq!(e810.vf_addr(8, 1, 247).unwrap().to_string(), "0000:af:1f.7");
        assert_eq!(e810.vf_addr(8, 1, 248).unwrap().to_string(), "0000:b0:00.0");
        assert_eq!(e810.vf_addr(8, 1, 255).unwrap().to_string(), "0000:b0:00.7");
        // QEMU igb: offset 128, stride 2.
        let igb: PciAddr = "0000:01:00.0".parse().unwrap();
        let vfs: Vec<String> =
            (0..7).map(|i| igb.vf_addr(128, 2, i).unwrap().to_string()).collect();
        assert_eq!(
            vfs,
            [
                "0000:01:10.0",
                "0000:01:10.2",
                "0000:01:10.4",
                "0000:01:10.6",
                "0000:01:11.0",
                "0000:01:11.2",
                "0000:01:11.4"
            ]
        );
        let top = PciAddr::new(0, 0xff, 31, 7).unwrap();
        assert!(top.vf_addr(1, 1, 0).is_none());
    }
}
