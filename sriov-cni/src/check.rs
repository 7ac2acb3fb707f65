//! `CHECK`: the attachment is still what `ADD` made it.
//!
//! - a complete journal for this attachment holds the VF;
//! - netdev mode: the VF is in the pod under `CNI_IFNAME`, up, with the MAC and MTU of the
//!   `prevResult` interface (else of the configuration) and every `prevResult` address;
//! - the PF reports the VF settings the journal says were applied;
//! - IPAM `CHECK` passes.

use std::path::Path;

use cni_spec::CniResult;
use sriov_host::PciAddr;
use sriov_netlink::{Mac, VfState};

use crate::config::{VfSettings, to_netlink_mac};
use crate::del::read_or_quarantine;
use crate::error::Error;
use crate::journal::{IpamCall, Mode};
use crate::state::StateDir;
use crate::system::Platform;

/// Everything `CHECK` needs.
#[derive(Debug, Clone)]
pub struct CheckParams<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS`.
    pub netns: &'a Path,
    /// `deviceID`.
    pub device: PciAddr,
    /// `prevResult`.
    pub prev_result: Option<&'a CniResult>,
    /// IPAM delegation.
    pub ipam: Option<IpamCall>,
}

fn mismatch(what: impl Into<String>, expected: impl ToString, found: impl ToString) -> Error {
    Error::Mismatch { what: what.into(), expected: expected.to_string(), found: found.to_string() }
}

fn show<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
}

/// Runs `CHECK`.
pub fn check<P: Platform>(
    plat: &mut P,
    state_root: &Path,
    p: &CheckParams<'_>,
) -> Result<(), Error> {
    let vf = p.device;
    let journal = StateDir::existing(state_root)
        .map(|s| read_or_quarantine(&s, vf))
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            mismatch(
                format!("journal of VF {vf}"),
                "present",
                "absent (not attached by this plugin)",
            )
        })?;
    let h = &journal.header;
    if (h.attachment.container_id.as_str(), h.attachment.ifname.as_str())
        != (p.container_id, p.ifname)
    {
        return Err(mismatch(
            format!("holder of VF {vf}"),
            format!("{}/{}", p.container_id, p.ifname),
            format!("{}/{}", h.attachment.container_id, h.attachment.ifname),
        ));
    }
    if !journal.is_complete() {
        return Err(mismatch(format!("ADD of VF {vf}"), "complete", "interrupted"));
    }

    if h.mode == Mode::Netdev {
        let mut pod = plat.open_pod(p.netns)?;
        let link = match pod.nl.get_link(p.ifname) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => {
                return Err(mismatch(
                    format!("interface {} in {}", p.ifname, p.netns.display()),
                    "present",
                    "absent",
                ));
            }
            Err(e) => return Err(Error::kernel(format!("look up {} in the pod", p.ifname), e)),
        };
        if let Some(parent) = &link.parent_dev
            && *parent != vf.to_string()
        {
            return Err(mismatch(format!("device behind {}", p.ifname), vf, parent));
        }
        if !link.is_up() {
            return Err(mismatch(format!("state of {}", p.ifname), "up", "down"));
        }
        let sandbox = p.netns.display().to_string();
        let prev = p.prev_result;
        let iface = prev.and_then(|r| {
            r.interfaces.iter().position(|i| {
                i.name == p.ifname && i.sandbox.as_deref().is_none_or(|s| s == sandbox)
            })
        });
        let prev_iface = iface.and_then(|i| prev.map(|r| &r.interfaces[i]));
        let want_mac: Option<Mac> = match prev_iface.and_then(|i| i.mac_addr()) {
            Some(Ok(m)) => Some(to_netlink_mac(m)),
            Some(Err(_)) | None => h.applied.mac,
        };
        if let Some(want) = want_mac
            && link.mac != Some(want)
        {
            return Err(mismatch(format!("mac of {}", p.ifname), want, show(link.mac)));
        }
        if let Some(want) = prev_iface.and_then(|i| i.mtu).or(h.applied.mtu)
            && link.mtu != Some(want)
        {
            return Err(mismatch(format!("mtu of {}", p.ifname), want, show(link.mtu)));
        }
        let wanted: Vec<_> = match (prev, iface) {
            (Some(result), Some(index)) => {
                result.ips.iter().filter(|ip| ip.interface == Some(index)).collect()
            }
            _ => Vec::new(),
        };
        if !wanted.is_empty() {
            let have = pod
                .nl
                .list_addresses(Some(link.index.into()), None)
                .map_err(|e| Error::kernel(format!("list addresses of {}", p.ifname), e))?;
            for ip in wanted {
                let present = have.iter().any(|a| {
                    a.prefix.addr() == ip.address.addr()
                        && a.prefix.len() == ip.address.prefix_len()
                });
                if !present {
                    return Err(mismatch(format!("address on {}", p.ifname), ip.address, "absent"));
                }
            }
        }
    }

    let settings = h.applied.settings();
    if !settings.is_empty() {
        let pf = sriov_host::vf_lookup::first_netdev(plat.paths(), h.vf.pf_pci_address)
            .ok()
            .flatten()
            .unwrap_or_else(|| h.vf.pf_netdev.clone());
        let state = plat
            .host()
            .get_link(pf.as_str())
            .map_err(|e| Error::kernel(format!("read VF {} state from PF {pf}", h.vf.vf_index), e))?
            .vfs
            .into_iter()
            .find(|s| s.vf == h.vf.vf_index)
            .ok_or_else(|| {
                mismatch(format!("VF {} on PF {pf}", h.vf.vf_index), "listed", "absent")
            })?;
        compare_settings(&settings, &state)?;
    }

    if let Some(call) = &p.ipam {
        crate::ipam::check(call, p.container_id, p.ifname, p.netns.to_owned())?;
    }
    Ok(())
}

/// Every applied setting must show on the PF.
fn compare_settings(s: &VfSettings, st: &VfState) -> Result<(), Error> {
    if let Some(mac) = s.mac
        && mac != st.mac
    {
        return Err(mismatch("VF admin mac", mac, st.mac));
    }
    if let Some(v) = s.vlan {
        let have = (st.vlan, st.qos, st.vlan_proto.unwrap_or_default());
        if (v.id(), v.qos(), v.proto()) != have {
            return Err(mismatch(
                "VF vlan",
                format!("{} qos {} {}", v.id(), v.qos(), v.proto()),
                format!("{} qos {} {}", have.0, have.1, have.2),
            ));
        }
    }
    let onoff = |b: Option<bool>| show(b.map(|b| if b { "on" } else { "off" }));
    if s.spoofchk.is_some() && s.spoofchk != st.spoofchk {
        return Err(mismatch("VF spoofchk", onoff(s.spoofchk), onoff(st.spoofchk)));
    }
    if s.trust.is_some() && s.trust != st.trust {
        return Err(mismatch("VF trust", onoff(s.trust), onoff(st.trust)));
    }
    if s.link_state.is_some() && s.link_state != st.link_state {
        return Err(mismatch("VF link_state", show(s.link_state), show(st.link_state)));
    }
    if let Some(r) = s.rate
        && (r.min_mbps(), r.max_mbps()) != (st.min_tx_rate, st.max_tx_rate)
    {
        return Err(mismatch(
            "VF tx rate",
            format!("{}/{}", r.min_mbps(), r.max_mbps()),
            format!("{}/{}", st.min_tx_rate, st.max_tx_rate),
        ));
    }
    Ok(())
}
