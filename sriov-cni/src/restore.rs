//! Replaying an undo log: the one mechanism behind `ADD` rollback, `DEL`, `GC` and the
//! clean-up of a stale attachment.
//!
//! Every [`Undo`] is idempotent and finds the VF netdev wherever it is now ([`Restorer::locate`]):
//! in the pod under `CNI_IFNAME` (or still under its host name, if a move succeeded and its
//! rename did not), back in the host (the kernel returns physical netdevs to the initial netns
//! when a pod's netns is destroyed), or gone. "Already gone" is success. An undo that fails for
//! another reason is kept, so the journal can be retried.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use sriov_host::vf_lookup::first_netdev;
use sriov_netlink::{Link, VfConfig, VfState};
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::failpoint;
use crate::journal::{Header, IpamCall, Undo, VfSnapshot};
use crate::system::{Platform, Pod, PodError};

/// Where the VF netdev is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In the pod: ifindex and name there.
    Pod(u32, String),
    /// In the host: ifindex and name.
    Host(u32, String),
    /// Nowhere this plugin can see (destroyed, or in some other netns).
    Gone,
}

/// What to do with journaled IPAM releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpamPolicy {
    /// Run them (rollback, `GC`, a stale attachment found by `ADD`).
    Run,
    /// Skip them: the caller releases IPAM with the runtime's own configuration (`DEL`).
    Skip,
}

/// Replays undo entries for one journal.
pub struct Restorer<'a, P: Platform> {
    plat: &'a mut P,
    header: &'a Header,
    pod: Option<Pod<P::T>>,
    same_boot: bool,
    ipam: IpamPolicy,
}

impl<'a, P: Platform> Restorer<'a, P> {
    /// A restorer with an already open pod netns (rollback inside `ADD`).
    pub fn with_pod(
        plat: &'a mut P,
        header: &'a Header,
        pod: Option<Pod<P::T>>,
        ipam: IpamPolicy,
    ) -> Self {
        Restorer { plat, header, pod, same_boot: true, ipam }
    }

    /// A restorer for a journal found on disk: the pod netns is opened from `netns` (the
    /// runtime's `CNI_NETNS`) or else the journal's own path, and only if it is still the same
    /// namespace (same inode) as at `ADD`; a journal from an earlier boot only releases IPAM.
    pub fn for_journal(
        plat: &'a mut P,
        header: &'a Header,
        netns: Option<&Path>,
        ipam: IpamPolicy,
    ) -> Self {
        let same_boot = match (&header.boot_id, plat.boot_id()) {
            (Some(then), Some(now)) => *then == now,
            _ => true,
        };
        // Opened in userspace mode too: whether the holder's pod lives decides if its VF may
        // be taken over.
        let pod = if same_boot { open_same_pod(plat, header, netns) } else { None };
        Restorer { plat, header, pod, same_boot, ipam }
    }

    /// Whether the pod netns is open.
    pub fn has_pod(&self) -> bool {
        self.pod.is_some()
    }

    /// Replays `undos` newest first, except that the PF-side restore runs before any undo on the
    /// VF netdev (see [`replay_order`]). Returns the entries that failed (in their original
    /// order) with their errors; empty means fully restored.
    pub fn replay(&mut self, undos: &[Undo]) -> Vec<(Undo, Error)> {
        let mut failed = Vec::new();
        for i in replay_order(undos) {
            let u = &undos[i];
            let r = failpoint::hit("del:undo").and_then(|()| self.undo(u));
            match r {
                Ok(()) => debug!(undo = u.name(), "undone"),
                Err(e) => {
                    warn!(undo = u.name(), error = %crate::error::chain(&e), "undo failed; kept for a retry");
                    failed.push((i, u.clone(), e));
                }
            }
        }
        failed.sort_by_key(|(i, _, _)| *i);
        failed.into_iter().map(|(_, u, e)| (u, e)).collect()
    }

    /// Runs one undo.
    pub fn undo(&mut self, u: &Undo) -> Result<(), Error> {
        if let Undo::IpamDel(call) = u {
            return match self.ipam {
                IpamPolicy::Run => self.ipam_del(call),
                IpamPolicy::Skip => Ok(()),
            };
        }
        if let Undo::RemoveDeviceInfo { path } = u {
            // A file, not kernel state: removed whatever the boot.
            return crate::devinfo::remove(path).map_err(|source| Error::DeviceInfo {
                op: "remove",
                path: path.clone(),
                source,
            });
        }
        if !self.same_boot {
            // The kernel state this journal describes did not survive the reboot.
            return Ok(());
        }
        match u {
            Undo::RestoreVf => self.restore_vf(),
            Undo::RestoreAltnames { names } => self.restore_altnames(names),
            Undo::MoveBack => self.move_back(),
            Undo::RestoreMac { mac } => self.restore_link(|nl, idx, l| {
                if l.mac == Some(*mac) {
                    return Ok(());
                }
                nl.set_mac(idx, *mac)
                    .map_err(|e| Error::kernel(format!("restore mac {mac} on {}", l.name), e))
                    // The PF-side restore (done first) may have put this MAC back as the
                    // administrative one, which some drivers then only apply on a VF reset.
                    .or_else(|e| crate::add::reload_admin_mac(nl, idx, *mac, &l.name, l.is_up(), e))
            }),
            Undo::RestoreMtu { mtu } => self.restore_link(|nl, idx, l| {
                if l.mtu == Some(*mtu) {
                    return Ok(());
                }
                nl.set_mtu(idx, *mtu)
                    .map_err(|e| Error::kernel(format!("restore mtu {mtu} on {}", l.name), e))
            }),
            Undo::IpamDel(_) | Undo::RemoveDeviceInfo { .. } => Ok(()),
        }
    }

    fn vf_name(&self) -> String {
        self.header.vf.pci_address.to_string()
    }

    /// Finds the VF netdev.
    pub fn locate(&mut self) -> Result<Found, Error> {
        let snapshot_name = self.header.snapshot.netdev.as_ref().map(|n| n.name.clone());
        let names: Vec<String> =
            std::iter::once(self.header.attachment.ifname.clone()).chain(snapshot_name).collect();
        let vf = self.vf_name();
        if let Some(pod) = self.pod.as_mut() {
            for name in &names {
                match pod.nl.get_link(name.as_str()) {
                    // A link that reports a parent device must report the VF's PCI address;
                    // links without one (the simulator's veths) are taken by name.
                    Ok(l) if l.parent_dev.as_deref().is_none_or(|p| p == vf) => {
                        return Ok(Found::Pod(l.index, l.name));
                    }
                    Ok(_) => continue,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(Error::kernel(format!("look up {name} in the pod"), e)),
                }
            }
        }
        // In the host, sysfs knows which netdev belongs to the VF, whatever its name.
        let addr = self.header.vf.pci_address;
        match first_netdev(self.plat.paths(), addr) {
            Ok(Some(name)) => match self.plat.host().get_link(name.as_str()) {
                Ok(l) => return Ok(Found::Host(l.index, l.name)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Error::kernel(format!("look up {name} in the host"), e)),
            },
            Ok(None) => {}
            Err(e) => warn!(vf = %addr, error = %e, "cannot read the VF's net/ directory"),
        }
        Ok(Found::Gone)
    }

    fn restore_link(
        &mut self,
        f: impl FnOnce(&mut sriov_netlink::Netlink<P::T>, u32, &Link) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let found = self.locate()?;
        let (nl, idx) = match &found {
            Found::Pod(idx, _) => match self.pod.as_mut() {
                Some(p) => (&mut p.nl, *idx),
                None => return Ok(()),
            },
            Found::Host(idx, _) => (self.plat.host(), *idx),
            Found::Gone => return Ok(()),
        };
        let link = match nl.get_link(idx) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Error::kernel(format!("look up ifindex {idx}"), e)),
        };
        link_gone_ok(f(nl, idx, &link))
    }

    fn restore_vf(&mut self) -> Result<(), Error> {
        let Some(snap) = self.header.snapshot.pf_side.clone() else { return Ok(()) };
        let vf = &self.header.vf;
        // The PF netdev may have been renamed since ADD: sysfs has its current name.
        let pf_name = first_netdev(self.plat.paths(), vf.pf_pci_address)
            .ok()
            .flatten()
            .unwrap_or_else(|| vf.pf_netdev.clone());
        let (pf_index, current) = match self.plat.host().get_link(pf_name.as_str()) {
            Ok(l) => (l.index, l.vfs.into_iter().find(|s| s.vf == vf.vf_index)),
            Err(e) if e.is_not_found() => {
                info!(pf = pf_name, "PF is gone; nothing to restore");
                return Ok(());
            }
            Err(e) => {
                return Err(Error::kernel(
                    format!("read VF {} state from PF {pf_name}", vf.vf_index),
                    e,
                ));
            }
        };
        let Some(current) = current else {
            info!(
                pf = pf_name,
                vf = vf.vf_index,
                "the PF no longer lists the VF; nothing to restore"
            );
            return Ok(());
        };
        let cfg = restore_config(&snap, &current)
            .map_err(|e| Error::kernel("build the VF restore", e))?;
        if cfg.is_empty() {
            return Ok(());
        }
        debug!(pf = pf_name, attrs = ?cfg.attrs(), "restoring VF settings");
        gone_ok(self.plat.host().set_vf(pf_index, &cfg).map_err(|e| {
            Error::kernel(format!("restore VF {} settings on PF {pf_name}", vf.vf_index), e)
        }))
    }

    fn restore_altnames(&mut self, names: &[String]) -> Result<(), Error> {
        let (idx, name) = match self.locate()? {
            Found::Host(idx, name) => (idx, name),
            Found::Gone => return Ok(()),
            Found::Pod(_, name) => {
                return Err(Error::Unavailable {
                    vf: self.header.vf.pci_address,
                    detail: format!(
                        "altnames can only be restored in the host, but {name} is still in the pod"
                    ),
                });
            }
        };
        let host = self.plat.host();
        let link = match host.get_link(idx) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Error::kernel(format!("look up {name}"), e)),
        };
        for alt in names.iter().filter(|n| !link.alt_names.contains(n) && **n != link.name) {
            match host.add_altnames(idx, &[alt.as_str()]) {
                Ok(()) => {}
                // Another device took the name meanwhile: nothing this plugin may change.
                Err(e) if e.is_exists() => {
                    warn!(altname = alt, dev = name, "altname is taken; not restored")
                }
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(Error::kernel(format!("restore altname {alt} on {name}"), e)),
            }
        }
        Ok(())
    }

    /// Renames a host link (down for the rename, then back to its previous admin state).
    fn host_rename(&mut self, idx: u32, from: &str, to: &str) -> Result<(), Error> {
        let host = self.plat.host();
        let up = match host.get_link(idx) {
            Ok(l) => l.is_up(),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Error::kernel(format!("look up {from}"), e)),
        };
        if up {
            host.set_down(idx)
                .map_err(|e| Error::kernel(format!("set {from} down to rename it"), e))?;
        }
        host.rename(idx, to).map_err(|e| Error::kernel(format!("rename {from} to {to}"), e))?;
        if up {
            host.set_up(idx).map_err(|e| Error::kernel(format!("set {to} up"), e))?;
        }
        Ok(())
    }

    fn move_back(&mut self) -> Result<(), Error> {
        let Some(nd) = self.header.snapshot.netdev.clone() else { return Ok(()) };
        match self.locate()? {
            Found::Gone => {
                info!(vf = %self.header.vf.pci_address, "VF netdev is gone; nothing to move back");
                Ok(())
            }
            Found::Pod(idx, name) => {
                let target = self.free_host_name(&nd.name)?;
                let Some(pod) = self.pod.as_mut() else { return Ok(()) };
                let host_ns = self.plat.host_netns();
                let r = pod.nl.move_to_netns(idx, host_ns.as_fd(), Some(&target));
                gone_ok(r.map_err(|e| {
                    Error::kernel(format!("move {name} back to the host as {target}"), e)
                }))?;
                self.set_host_admin_state(&target, nd.up)
            }
            Found::Host(idx, name) => {
                if name != nd.name && self.free_host_name(&nd.name)? == nd.name {
                    self.host_rename(idx, &name, &nd.name)?;
                }
                self.set_host_admin_state(&nd.name, nd.up)
            }
        }
    }

    /// `wanted` if no other host link has it, else a temporary name derived from the VF's
    /// PCI address (the original name was taken meanwhile: the VF still comes home).
    fn free_host_name(&mut self, wanted: &str) -> Result<String, Error> {
        match self.plat.host().get_link(wanted) {
            Err(e) if e.is_not_found() => Ok(wanted.to_owned()),
            Err(e) => Err(Error::kernel(format!("look up {wanted} in the host"), e)),
            Ok(_) => {
                let a = self.header.vf.pci_address;
                let tmp = format!("sriov{:02x}{:02x}{:x}", a.bus(), a.device(), a.function());
                warn!(
                    wanted,
                    temporary = tmp,
                    "host name taken by another link; using a temporary name"
                );
                Ok(tmp)
            }
        }
    }

    fn set_host_admin_state(&mut self, name: &str, up: bool) -> Result<(), Error> {
        let host = self.plat.host();
        let link = match host.get_link(name) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Error::kernel(format!("look up {name}"), e)),
        };
        if link.is_up() == up {
            return Ok(());
        }
        let r = if up { host.set_up(link.index) } else { host.set_down(link.index) };
        gone_ok(r.map_err(|e| {
            Error::kernel(format!("set {name} {}", if up { "up" } else { "down" }), e)
        }))
    }

    fn ipam_del(&mut self, call: &IpamCall) -> Result<(), Error> {
        let att = &self.header.attachment;
        let netns = self.pod.as_ref().map(|p| p.netns.path().to_path_buf());
        crate::ipam::del(call, &att.container_id, &att.ifname, netns)
    }
}

/// Opens the journal's pod netns if it still is the one `ADD` used.
fn open_same_pod<P: Platform>(
    plat: &mut P,
    header: &Header,
    netns: Option<&Path>,
) -> Option<Pod<P::T>> {
    let att = &header.attachment;
    let candidates: Vec<PathBuf> = netns
        .into_iter()
        .map(Path::to_path_buf)
        .chain(std::iter::once(att.netns.clone()))
        .collect();
    for path in candidates {
        match plat.open_pod(&path) {
            Ok(pod) => {
                let ino = pod.netns.inode().ok();
                if att.netns_ino.is_none() || ino == att.netns_ino {
                    return Some(pod);
                }
                warn!(netns = %path.display(), "netns path now names another namespace; ignoring it");
            }
            Err(PodError::Gone { .. }) => debug!(netns = %path.display(), "pod netns is gone"),
            Err(e) => {
                warn!(netns = %path.display(), error = %crate::error::chain(&e), "cannot open pod netns")
            }
        }
    }
    None
}

/// "Already gone" is success.
/// The order to undo in: newest first, but the PF-side restore ([`Undo::RestoreVf`], recorded
/// first) is moved ahead of the undos that touch the VF netdev (MTU, MAC, move back, altnames).
/// Some PF drivers refuse a VF's own MAC change while an administrative MAC is set through the PF
/// (igb: "VF attempted to override administratively set MAC address"), so the administrative MAC
/// must be cleared before the netdev MAC is restored; the Go plugin resets the VF config before
/// releasing the netdev for the same reason.
fn replay_order(undos: &[Undo]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..undos.len()).rev().collect();
    let touches_netdev = |u: &Undo| {
        matches!(
            u,
            Undo::RestoreMtu { .. }
                | Undo::RestoreMac { .. }
                | Undo::MoveBack
                | Undo::RestoreAltnames { .. }
        )
    };
    if let Some(vf_at) = order.iter().position(|&i| matches!(undos[i], Undo::RestoreVf))
        && let Some(first_netdev) = order.iter().position(|&i| touches_netdev(&undos[i]))
        && first_netdev < vf_at
    {
        let vf = order.remove(vf_at);
        order.insert(first_netdev, vf);
    }
    order
}

/// Like [`gone_ok`] for a change of a link attribute: only a missing device counts as done.
/// (`EADDRNOTAVAIL` is "already gone" for an address, but a refusal for a MAC change.)
fn link_gone_ok(r: Result<(), Error>) -> Result<(), Error> {
    match r {
        Err(Error::Kernel { source, op }) if source.is_no_device() => {
            debug!(op, "device gone");
            Ok(())
        }
        other => other,
    }
}

fn gone_ok(r: Result<(), Error>) -> Result<(), Error> {
    match r {
        Err(Error::Kernel { source, op }) if source.is_not_found() => {
            debug!(op, "already gone");
            Ok(())
        }
        other => other,
    }
}

/// The settings that put `current` back to `snap`, only those that differ.
pub fn restore_config(
    snap: &VfSnapshot,
    current: &VfState,
) -> Result<VfConfig, sriov_netlink::Error> {
    let want = snap.to_state(current.vf);
    let full = want.to_config()?;
    let mut cfg = VfConfig::new(current.vf);
    if want.mac != current.mac {
        cfg.mac = full.mac;
    }
    if (want.vlan, want.qos, want.vlan_proto.unwrap_or_default())
        != (current.vlan, current.qos, current.vlan_proto.unwrap_or_default())
    {
        cfg.vlan = full.vlan;
    }
    if want.spoofchk.is_some() && want.spoofchk != current.spoofchk {
        cfg.spoofchk = want.spoofchk;
    }
    if want.trust.is_some() && want.trust != current.trust {
        cfg.trust = want.trust;
    }
    if want.link_state.is_some() && want.link_state != current.link_state {
        cfg.link_state = want.link_state;
    }
    if (want.min_tx_rate, want.max_tx_rate) != (current.min_tx_rate, current.max_tx_rate) {
        cfg.rate = full.rate;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sriov_netlink::{VfAttr, VfLinkState, VlanProto};

    fn state() -> VfState {
        VfState {
            vf: 2,
            mac: "02:00:00:00:00:01".parse().unwrap(),
            vlan: 0,
            qos: 0,
            vlan_proto: Some(VlanProto::Dot1Q),
            spoofchk: Some(true),
            trust: Some(false),
            link_state: Some(VfLinkState::Auto),
            min_tx_rate: 0,
            max_tx_rate: 0,
            rss_query_en: None,
        }
    }

    #[test]
    fn pf_side_restore_runs_before_the_netdev_undos() {
        let mac = sriov_netlink::Mac([2, 0, 0, 0, 0, 1]);
        let ipam = || Undo::RemoveDeviceInfo { path: "/x".into() };
        // As ADD records them: VF settings, altnames, move, MAC, MTU, then IPAM-level undos.
        let undos = vec![
            Undo::RestoreVf,
            Undo::RestoreAltnames { names: vec![] },
            Undo::MoveBack,
            Undo::RestoreMac { mac },
            Undo::RestoreMtu { mtu: 1500 },
            ipam(),
        ];
        assert_eq!(replay_order(&undos), vec![5, 0, 4, 3, 2, 1]);
        // Only VF settings (userspace mode) or nothing to hoist over: plain reverse order.
        assert_eq!(replay_order(&[Undo::RestoreVf, ipam()]), vec![1, 0]);
        assert_eq!(replay_order(&[Undo::MoveBack, Undo::RestoreMac { mac }]), vec![1, 0]);
    }

    #[test]
    fn restore_config_sends_only_what_differs() {
        let before = state();
        let snap = VfSnapshot::from_state(&before);
        assert!(restore_config(&snap, &before).unwrap().is_empty());
        let mut now = before.clone();
        now.vlan = 100;
        now.qos = 3;
        now.trust = Some(true);
        now.max_tx_rate = 500;
        let cfg = restore_config(&snap, &now).unwrap();
        assert_eq!(cfg.attrs(), vec![VfAttr::Vlan, VfAttr::Rate, VfAttr::Trust]);
        assert_eq!(cfg.vlan.map(|v| (v.id(), v.qos())), Some((0, 0)));
        assert_eq!(cfg.trust, Some(false));
        // A driver that does not report spoofchk/trust/link state is never asked to set them.
        let mut blind = before.clone();
        blind.spoofchk = None;
        blind.trust = None;
        blind.link_state = None;
        let snap = VfSnapshot::from_state(&blind);
        let mut now = blind.clone();
        now.mac = "02:00:00:00:00:09".parse().unwrap();
        let cfg = restore_config(&snap, &now).unwrap();
        assert_eq!(cfg.attrs(), vec![VfAttr::Mac]);
    }
}
