//! PCI addresses and IDs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PCI address (domain:bus:device.function), the stable key of every PF and VF.
///
/// Parsing accepts the kernel's sysfs form `0000:3b:02.1` and the short `lspci` form `3b:02.1`
/// (domain 0); display always uses the sysfs form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddr {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

/// Why a string is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI address {input:?}: expected DDDD:BB:DD.F (e.g. 0000:3b:02.1), {reason}")]
pub struct PciAddrError {
    input: String,
    reason: &'static str,
}

impl PciAddr {
    /// Builds an address from its parts; `None` when device > 31 or function > 7.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        (device <= 31 && function <= 7 && domain <= 0xffff).then_some(Self {
            domain,
            bus,
            device,
            function,
        })
    }

    /// PCI domain (segment).
    pub fn domain(self) -> u32 {
        self.domain
    }
    /// Bus number.
    pub fn bus(self) -> u8 {
        self.bus
    }
    /// Device (slot) number, 0..=31.
    pub fn device(self) -> u8 {
        self.device
    }
    /// Function number, 0..=7.
    pub fn function(self) -> u8 {
        self.function
    }

    /// The PCI routing ID within the domain: bus << 8 | device << 3 | function.
    pub fn routing_id(self) -> u32 {
        (u32::from(self.bus) << 8) | (u32::from(self.device) << 3) | u32::from(self.function)
    }

    /// The address of VF `index` of the PF at this address, by the SR-IOV rule the kernel applies
    /// (`pci_iov_virtfn_bus`/`_devfn`): routing ID = PF's + `offset` + `stride` × index. `None`
    /// when it runs past bus 255.
    pub fn vf(self, offset: u32, stride: u32, index: u32) -> Option<Self> {
        let rid = self.routing_id().checked_add(offset)?.checked_add(stride.checked_mul(index)?)?;
        let bus = u8::try_from(rid >> 8).ok()?;
        let devfn = rid & 0xff;
        Self::new(self.domain, bus, (devfn >> 3) as u8, (devfn & 7) as u8)
    }
}

impl FromStr for PciAddr {
    type Err = PciAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| PciAddrError { input: s.to_owned(), reason };
        let hex = |part: &str, max_len: usize, what| {
            if part.is_empty()
                || part.len() > max_len
                || !part.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(err(what));
            }
            u32::from_str_radix(part, 16).map_err(|_| err(what))
        };
        let (head, function) = s.rsplit_once('.').ok_or_else(|| err("missing '.function'"))?;
        let mut parts: Vec<&str> = head.split(':').collect();
        let domain = match parts.len() {
            3 => hex(parts.remove(0), 4, "bad domain")?,
            2 => 0,
            _ => return Err(err("wrong number of ':' separators")),
        };
        let bus = hex(parts[0], 2, "bad bus")?;
        let device = hex(parts[1], 2, "bad device")?;
        if function.len() != 1 {
            return Err(err("bad function"));
        }
        let function = hex(function, 1, "bad function")?;
        if device > 31 {
            return Err(err("device above 1f"));
        }
        if function > 7 {
            return Err(err("function above 7"));
        }
        // Each value was bounded by its digit count above, so these narrowings are lossless.
        Ok(Self { domain, bus: bus as u8, device: device as u8, function: function as u8 })
    }
}

/// Lower-case hex digits of `v`, `N` of them (the value's low `4 * N` bits).
fn hex<const N: usize>(v: u32) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; N];
    for (i, c) in out.iter_mut().enumerate() {
        *c = DIGITS[((v >> (4 * (N - 1 - i))) & 0xf) as usize];
    }
    out
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written out digit by digit: addresses are formatted for every device of a scan, and
        // the general integer formatting is several times slower.
        let [d0, d1, d2, d3] = hex::<4>(self.domain);
        let [b0, b1] = hex::<2>(self.bus.into());
        let [s0, s1] = hex::<2>(self.device.into());
        let [fun] = hex::<1>(self.function.into());
        let text = [d0, d1, d2, d3, b':', b0, b1, b':', s0, s1, b'.', fun];
        // Four digits hold the domain: `new` and parsing keep it at most 0xffff.
        f.pad(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PciAddr({self})")
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

/// A 16-bit PCI vendor or device ID, displayed as 4 lowercase hex digits (`8086`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciId(pub u16);

/// Why a string is not a PCI ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI ID {0:?}: expected 1-4 hex digits with optional 0x (e.g. 8086 or 0x8086)")]
pub struct PciIdError(String);

impl FromStr for PciId {
    type Err = PciIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
        if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PciIdError(s.to_owned()));
        }
        u16::from_str_radix(t, 16).map(PciId).map_err(|_| PciIdError(s.to_owned()))
    }
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = hex::<4>(self.0.into());
        f.pad(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PciId({self})")
    }
}

impl Serialize for PciId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_and_short_forms() {
        let a: PciAddr = "0000:3b:02.1".parse().unwrap();
        assert_eq!((a.domain(), a.bus(), a.device(), a.function()), (0, 0x3b, 2, 1));
        assert_eq!(a.to_string(), "0000:3b:02.1");
        let b: PciAddr = "3B:1f.7".parse().unwrap();
        assert_eq!(b.to_string(), "0000:3b:1f.7");
        let max = PciAddr::new(0xffff, 0xff, 31, 7).unwrap();
        assert_eq!(max.to_string(), "ffff:ff:1f.7");
        assert_eq!(PciAddr::new(0x12, 0x0a, 3, 0).unwrap().to_string(), "0012:0a:03.0");
        assert_eq!(format!("[{:<14}]", max), "[ffff:ff:1f.7  ]");
        let c: PciAddr = "abcd:ff:00.0".parse().unwrap();
        assert_eq!(c.domain(), 0xabcd);
    }

    #[test]
    fn rejects_garbage_with_reason() {
        for bad in [
            "",
            "0000:3b:02",
            "0000:3b:20.0",
            "0000:3b:02.8",
            "0000:3b:02.10",
            "x:3b:02.0",
            "00000:3b:02.0",
            "0000:3b:02.",
            "0000:3g:02.0",
            "1:2:3:4.0",
            "0000:3b:+2.0",
            "3b.02.0",
        ] {
            let e = bad.parse::<PciAddr>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn orders_by_numeric_value() {
        let mut v: Vec<PciAddr> = ["0000:3b:10.0", "0000:3b:02.1", "0000:0a:00.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["0000:0a:00.0", "0000:3b:02.1", "0000:3b:10.0"]);
    }

    #[test]
    fn vf_addresses_follow_offset_and_stride() {
        let pf: PciAddr = "0000:3b:00.0".parse().unwrap();
        // X710 / E810 style: offset 16, stride 1.
        assert_eq!(pf.vf(16, 1, 0).unwrap().to_string(), "0000:3b:02.0");
        assert_eq!(pf.vf(16, 1, 9).unwrap().to_string(), "0000:3b:03.1");
        // 256 VFs spill onto the next bus, as the kernel places them.
        assert_eq!(pf.vf(16, 1, 255).unwrap().to_string(), "0000:3c:01.7");
        // igb (82576 as QEMU models it): offset 0x80, stride 2 from function 0.
        let igb: PciAddr = "0000:01:00.0".parse().unwrap();
        assert_eq!(igb.vf(0x80, 2, 3).unwrap().to_string(), "0000:01:10.6");
        let last: PciAddr = "0000:ff:00.0".parse().unwrap();
        assert_eq!(last.vf(0x100, 1, 0), None);
    }

    #[test]
    fn pci_id_forms() {
        assert_eq!("0x8086\n".parse::<PciId>().unwrap(), PciId(0x8086));
        assert_eq!("154c".parse::<PciId>().unwrap().to_string(), "154c");
        assert_eq!(PciId(0xABCD).to_string(), "abcd");
        assert_eq!(PciId(0x0a).to_string(), "000a");
        assert_eq!(format!("[{:>6}]", PciId(0x8086)), "[  8086]");
        assert_eq!("10C9".parse::<PciId>().unwrap(), PciId(0x10c9));
        assert!("0x18086".parse::<PciId>().is_err());
        assert!("".parse::<PciId>().is_err());
        assert!("zz".parse::<PciId>().is_err());
    }

    #[test]
    fn serde_round_trip() {
        let a: PciAddr = "0000:3b:02.1".parse().unwrap();
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(j, "\"0000:3b:02.1\"");
        assert_eq!(serde_json::from_str::<PciAddr>(&j).unwrap(), a);
        assert!(serde_json::from_str::<PciAddr>("\"nope\"").is_err());
    }
}
