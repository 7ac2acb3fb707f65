//! Deterministic names and MAC addresses, and the NIC order used by `migrate_route: -1`.
//!
//! Everything here is a pure function of its inputs, so a repeated `ADD`, `CHECK` and `DEL`
//! compute the same objects and the record can be verified against them.

use std::cmp::Ordering;
use std::net::IpAddr;

use cni_spec::Mac;

/// Name of the pod end of the `veth` pair (the originals' name).
pub const POD_VETH_NAME: &str = "veth0";

/// FNV-1a, 64 bit: stable across Rust releases (unlike `DefaultHasher`).
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The node end of the `veth` pair: `veth` + 11 characters.
///
/// A Kubernetes container ID (64 hex digits) gives `veth<first 11 digits>`, the name the
/// original plugin used, so operators find the same names and a record-less `DEL` of a pod
/// created by the original still finds its link. Any other ID (short, or with `.`/`-`/`_`)
/// gets 11 hex digits of its hash instead, because prefixes of such IDs collide easily.
pub fn host_veth_name(container_id: &str) -> String {
    if container_id.len() >= 11 && container_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = &container_id[..11];
        return format!("veth{}", prefix.to_ascii_lowercase());
    }
    let h = fnv1a64(&[b"host-veth-name\0", container_id.as_bytes()]);
    format!("veth{:011x}", h >> 20)
}

fn derived_mac(salt: &[u8], container_id: &str) -> Mac {
    let h = fnv1a64(&[salt, container_id.as_bytes()]).to_be_bytes();
    // Locally administered, unicast.
    Mac::new([(h[0] & 0xfc) | 0x02, h[1], h[2], h[3], h[4], h[5]])
}

/// MAC of the node end, set when the pair is created (no random MAC for udev or
/// `MACAddressPolicy=persistent` to replace later: an explicit address is `NET_ADDR_SET`).
pub fn host_veth_mac(container_id: &str) -> Mac {
    derived_mac(b"host-veth-mac\0", container_id)
}

/// MAC of the pod end.
pub fn pod_veth_mac(container_id: &str) -> Mac {
    let m = derived_mac(b"pod-veth-mac\0", container_id);
    if m == host_veth_mac(container_id) {
        // Astronomically unlikely; the two ends must still differ.
        let mut o = m.octets();
        o[5] ^= 1;
        return Mac::new(o);
    }
    m
}

/// The MAC `mac_prefix` asks for: the two prefix octets, then the IPv4 address (4 octets) or
/// the last 4 octets of the IPv6 address.
pub fn prefixed_mac(prefix: [u8; 2], ip: IpAddr) -> Mac {
    let tail: [u8; 4] = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    Mac::new([prefix[0], prefix[1], tail[0], tail[1], tail[2], tail[3]])
}

/// NIC order: `first` (the pod's default interface, `overlay_interface`) before everything,
/// then natural order (`eth0 < net1 < net2 < net10`, `ens1f0 < ens1f1`), so any interface
/// names compare sensibly without parsing `netN`.
pub fn nic_order(a: &str, b: &str, first: &str) -> Ordering {
    match (a == first, b == first) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => natural_cmp(a, b),
    }
}

/// Compares runs of digits numerically and everything else byte-wise.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) if p.is_ascii_digit() && q.is_ascii_digit() => {
                let dx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let dy = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let nx = trim_zeros(&x[..dx]);
                let ny = trim_zeros(&y[..dy]);
                let ord = nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[dx..];
                y = &y[dy..];
            }
            (Some(p), Some(q)) => {
                if p != q {
                    return p.cmp(q);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|c| **c == b'0').count();
    &d[n.min(d.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_ids_keep_the_original_name() {
        let cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(host_veth_name(cid), "veth0123456789a");
        assert_eq!(host_veth_name("ABCDEF0123456789"), "vethabcdef01234");
    }

    #[test]
    fn other_ids_are_hashed_and_do_not_collide_on_prefix() {
        let a = host_veth_name("test-container-1");
        let b = host_veth_name("test-container-2");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert_eq!(n.len(), 15, "{n}");
            assert!(n.starts_with("veth"));
            assert!(n[4..].bytes().all(|c| c.is_ascii_hexdigit()), "{n}");
        }
        assert_eq!(host_veth_name("short"), host_veth_name("short"), "deterministic");
    }

    #[test]
    fn macs_are_unicast_local_distinct_and_stable() {
        for cid in ["c1", "c2", "0123456789abcdef"] {
            let h = host_veth_mac(cid);
            let p = pod_veth_mac(cid);
            assert_ne!(h, p);
            for m in [h, p] {
                assert!(!m.is_multicast() && m.is_locally_administered(), "{m}");
            }
            assert_eq!(host_veth_mac(cid), h);
        }
        assert_ne!(host_veth_mac("c1"), host_veth_mac("c2"));
    }

    #[test]
    fn mac_prefix_layout() {
        let m = prefixed_mac([0x0a, 0x1b], "192.0.2.50".parse().unwrap());
        assert_eq!(m.to_string(), "0a:1b:c0:00:02:32");
        let m = prefixed_mac([0x02, 0x00], "2001:db8::c0a8:132".parse().unwrap());
        assert_eq!(m.to_string(), "02:00:c0:a8:01:32");
    }

    #[test]
    fn nic_order_is_natural_with_the_default_first() {
        let mut names = vec!["net10", "net2", "eth0", "net1", "ens1f1", "ens1f0", "net01"];
        names.sort_by(|a, b| nic_order(a, b, "eth0"));
        assert_eq!(names, vec!["eth0", "ens1f0", "ens1f1", "net01", "net1", "net2", "net10"]);
        assert_eq!(nic_order("eth0", "aaa", "eth0"), Ordering::Less);
        assert_eq!(nic_order("aaa", "eth0", "eth0"), Ordering::Greater);
        assert_eq!(nic_order("net1", "net1", "eth0"), Ordering::Equal);
        // A custom default interface name is still first.
        assert_eq!(nic_order("pod0", "net1", "pod0"), Ordering::Less);
    }
}
