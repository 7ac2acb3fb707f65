//! `ADD`: snapshot, journal, then each step with its undo recorded first.
//!
//! Order (netdev mode):
//! 1. open the pod netns, take the VF lock (and the PF lock with `perPfLock`), clear a stale
//!    or repeated attachment of the same VF;
//! 2. resolve PF and VF index from sysfs, snapshot the VF's PF-side settings and its netdev;
//!    check `mtu` against the PF and that `CNI_IFNAME` is free in the pod;
//! 3. write the journal (header with the snapshot) — nothing has changed yet;
//! 4. VF settings through the PF in one message;
//! 5. drop the netdev's altnames (a stale altname equal to a name in the pod makes the move
//!    fail with `EEXIST`);
//! 6. move into the pod and rename to `CNI_IFNAME` in the same message (one netns move: the
//!    kernel renames on arrival, so no temporary netns is needed);
//! 7. MAC, MTU, `arp_notify`/`ndisc_notify`, up;
//! 8. IPAM, addresses and routes, gratuitous ARP / unsolicited NA;
//! 9. the device-information file for Multus ([`crate::devinfo`]).
//!
//! Userspace mode (vfio-pci, uio) does 1–4, IPAM (allocated, not configured) and 9.
//!
//! Steps 2–7 run on one thread inside the pod netns ([`Platform::enter_pod`]): the pod's
//! netlink client is opened there, the host's client works from any thread, and the pod's
//! sysctls are written without another netns entry. IPAM runs back on the calling thread, in
//! the runtime's netns, as the spec requires.
//!
//! Any failure, or a panic, replays the undo log in reverse and removes the journal; if the
//! rollback itself fails, the journal stays for `DEL`.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cni_spec::{CniResult, Interface};
use sriov_host::PciAddr;
use sriov_host::vf_lookup::{VfLocation, first_netdev, lookup_vf};
use sriov_netlink::{AddressOptions, IpPrefix, Mac, RouteSpec, VfAttr, VfConfig, VfState};
use tracing::{debug, info, info_span, warn};

use crate::config::{VfSettings, to_spec_mac};
use crate::del::read_or_quarantine;
use crate::error::Error;
use crate::failpoint;
use crate::journal::{
    Attachment, Header, IpamCall, Journal, KIND, Mode, NetdevSnapshot, Record, SCHEMA_VERSION,
    SettingsRecord, Snapshot, Undo, VfRef, VfSnapshot,
};
use crate::restore::{IpamPolicy, Restorer};
use crate::state::{JournalWriter, StateDir};
use crate::system::{Platform, Pod};

/// Everything `ADD` needs, validated.
#[derive(Debug, Clone)]
pub struct AddParams<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS`.
    pub netns: &'a Path,
    /// The network name.
    pub network: &'a str,
    /// The VF.
    pub device: PciAddr,
    /// PF-side settings (MAC already resolved by precedence).
    pub settings: VfSettings,
    /// Netdev MTU.
    pub mtu: Option<u32>,
    /// Take the per-PF lock.
    pub per_pf_lock: bool,
    /// The IPAM delegation, if configured.
    pub ipam: Option<IpamCall>,
    /// The result to extend (`prevResult`), already in the configuration's version.
    pub prev_result: Option<CniResult>,
    /// Where to write the device-information file (`None`: not written).
    pub device_info: Option<PathBuf>,
}

/// How often and how long to retry a netdev MAC change that the driver refuses while it is
/// still applying the administrative MAC set through the PF (i40e/iavf reset the VF
/// asynchronously; the Go plugin retries 20 × 100 ms).
const MAC_RETRIES: u32 = 20;
const MAC_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Runs `ADD`.
pub fn add<P: Platform>(
    plat: &mut P,
    state: &StateDir,
    p: &AddParams<'_>,
) -> Result<CniResult, Error> {
    let netns = plat.open_pod_netns(p.netns)?;
    debug!("pod netns open");
    let _vf_lock = state.lock_vf(p.device)?;
    clear_previous(plat, state, p)?;
    debug!("VF locked");
    let loc = lookup_vf(plat.paths(), p.device)
        .map_err(|source| Error::Lookup { vf: p.device, source })?;
    let span = info_span!("vf", pci = %p.device, pf = %loc.pf, index = loc.vf_index);
    let _entered = span.enter();
    let _pf_lock = if p.per_pf_lock { Some(state.lock_pf(loc.pf)?) } else { None };

    // One netns entry for everything up to IPAM (see the module docs).
    let (mut pod, inside) = plat.enter_pod(netns, |plat, pod| {
        let _entered = span.enter();
        debug!("inside the pod netns");
        let prep = prepare(plat, pod, &loc, p)?;
        let header = journal_header(plat, pod, &loc, &prep, p);
        let mut tx = Tx { writer: state.create(&header)?, undos: Vec::new() };
        info!(mode = ?prep.mode, journal = %tx.writer.path().display(), "snapshot journaled");
        let mut step = "journal";
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            pod_steps(plat, pod, &prep, &header, p, &mut tx, &mut step)
        }));
        Ok::<_, Error>(Inside { prep, header, tx, step, outcome })
    })?;
    let Inside { prep, header, mut tx, mut step, outcome } = inside?;
    let outcome = match outcome {
        Ok(Ok(link)) => catch_unwind(AssertUnwindSafe(|| {
            host_steps(plat, &mut pod, &prep, p, &mut tx, &mut step, link)
        })),
        Ok(Err(e)) => Ok(Err(e)),
        Err(payload) => Err(payload),
    };
    let error = match outcome {
        Ok(Ok(result)) => return Ok(result),
        Ok(Err(e)) => e,
        Err(payload) => Error::Panic { step: step.to_owned(), message: panic_message(&payload) },
    };
    warn!(step, error = %crate::error::chain(&error), "ADD failed; rolling back");
    Err(rollback(plat, state, &header, tx.undos, pod, error))
}

/// What the pod-netns thread hands back.
struct Inside {
    prep: Prepared,
    header: Header,
    tx: Tx,
    step: &'static str,
    outcome: std::thread::Result<Result<PodLink, Error>>,
}

/// The journal header: the attachment, the VF and the snapshot.
fn journal_header<P: Platform>(
    plat: &P,
    pod: &Pod<P::T>,
    loc: &VfLocation,
    prep: &Prepared,
    p: &AddParams<'_>,
) -> Header {
    Header {
        kind: KIND.to_owned(),
        schema_version: SCHEMA_VERSION,
        boot_id: plat.boot_id(),
        attachment: Attachment {
            container_id: p.container_id.to_owned(),
            ifname: p.ifname.to_owned(),
            netns: p.netns.to_owned(),
            netns_ino: pod.netns.inode().ok(),
            network: p.network.to_owned(),
        },
        vf: VfRef {
            pci_address: p.device,
            pf_pci_address: loc.pf,
            pf_netdev: prep.pf_name.clone(),
            vf_index: loc.vf_index,
        },
        mode: prep.mode,
        snapshot: prep.snapshot.clone(),
        applied: SettingsRecord::new(&p.settings, p.mtu),
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// The journal writer plus the undo entries appended so far.
struct Tx {
    writer: JournalWriter,
    undos: Vec<Undo>,
}

impl Tx {
    /// Appends `undo` before `step` runs.
    fn record(&mut self, step: &str, undo: Undo) -> Result<(), Error> {
        self.writer.append(&Record::Undo { step: step.to_owned(), undo: undo.clone() })?;
        self.undos.push(undo);
        Ok(())
    }
}

/// What [`prepare`] found.
#[derive(Debug, Clone)]
struct Prepared {
    mode: Mode,
    pf: PciAddr,
    pf_name: String,
    pf_index: u32,
    snapshot: Snapshot,
}

/// If the VF's journal exists: the same attachment again (a retried `ADD`) or a holder whose
/// pod is gone is restored first; a live holder is refused.
fn clear_previous<P: Platform>(
    plat: &mut P,
    state: &StateDir,
    p: &AddParams<'_>,
) -> Result<(), Error> {
    let Some(journal) = read_or_quarantine(state, p.device)? else { return Ok(()) };
    let att = &journal.header.attachment;
    let same = att.container_id == p.container_id && att.ifname == p.ifname;
    let mut restorer = Restorer::for_journal(plat, &journal.header, None, IpamPolicy::Run);
    if !same && restorer.has_pod() {
        return Err(Error::Busy {
            vf: p.device,
            container_id: att.container_id.clone(),
            ifname: att.ifname.clone(),
            netns: att.netns.clone(),
        });
    }
    info!(
        holder = att.container_id,
        holder_ifname = att.ifname,
        repeated = same,
        "restoring the VF from its previous attachment first"
    );
    let failed = restorer.replay(&journal.undo_log());
    if !failed.is_empty() {
        let remaining =
            Journal::remaining(journal.header.clone(), failed.iter().map(|(u, _)| u.clone()));
        state.rewrite(&remaining)?;
        return Err(Error::RestoreIncomplete {
            vf: p.device,
            failed: describe_failures(&failed),
            journal: state.journal_path(p.device),
        });
    }
    state.remove(p.device)?;
    Ok(())
}

/// `undo: error; undo: error`.
pub(crate) fn describe_failures(failed: &[(Undo, Error)]) -> String {
    failed
        .iter()
        .map(|(u, e)| format!("{}: {}", u.name(), crate::error::chain(e)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Snapshot and pre-flight checks; changes nothing.
fn prepare<P: Platform>(
    plat: &mut P,
    pod: &mut Pod<P::T>,
    loc: &VfLocation,
    p: &AddParams<'_>,
) -> Result<Prepared, Error> {
    let unavailable = |detail: String| Error::Unavailable { vf: p.device, detail };
    let mode = if loc.userspace_driver() {
        Mode::Userspace
    } else if loc.driver.is_none() {
        return Err(unavailable("no driver is bound to it".into()));
    } else {
        Mode::Netdev
    };
    // The PF is read only when something depends on it: PF-side settings (their snapshot),
    // `mtu` (its ceiling) or userspace mode (the admin MAC is the result's MAC). A plain move
    // changes nothing on the PF, so there is nothing there to restore.
    let needs_pf = !p.settings.is_empty() || p.mtu.is_some() || mode == Mode::Userspace;
    let (pf_name, pf_index, pf_mtu, pf_side) = if needs_pf {
        let pf_name = first_netdev(plat.paths(), loc.pf)
            .map_err(|e| Error::Lookup { vf: p.device, source: e.into() })?
            .ok_or_else(|| {
                unavailable(format!("its PF {} has no netdev in this network namespace", loc.pf))
            })?;
        let pf_link = plat
            .host()
            .get_link(pf_name.as_str())
            .map_err(|e| Error::kernel(format!("read PF {pf_name} and its VF list"), e))?;
        let pf_side = pf_link.vfs.iter().find(|v| v.vf == loc.vf_index).map(VfSnapshot::from_state);
        if pf_side.is_none() {
            debug!(pf = pf_name, "the PF reports no VF list");
        }
        (pf_name, pf_link.index, pf_link.mtu, pf_side)
    } else {
        (String::new(), 0, None, None)
    };
    let netdev = match mode {
        Mode::Userspace => {
            if p.mtu.is_some() {
                warn!("mtu is ignored in userspace (DPDK) mode: the VF has no netdev");
            }
            None
        }
        Mode::Netdev => {
            if let (Some(mtu), Some(pf_mtu)) = (p.mtu, pf_mtu)
                && mtu > pf_mtu
            {
                return Err(Error::MtuAbovePf { mtu, pf_mtu, pf: pf_name });
            }
            let name = loc.netdev.clone().ok_or_else(|| {
                unavailable(format!(
                    "it has no netdev in this network namespace (driver {}): is it attached elsewhere?",
                    loc.driver.as_deref().unwrap_or("none")
                ))
            })?;
            let l = plat
                .host()
                .get_link(name.as_str())
                .map_err(|e| Error::kernel(format!("read VF netdev {name}"), e))?;
            match pod.nl.get_link(p.ifname) {
                Ok(_) => {
                    return Err(Error::IfnameExists {
                        ifname: p.ifname.to_owned(),
                        netns: p.netns.to_owned(),
                    });
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Error::kernel(format!("look up {} in the pod", p.ifname), e)),
            }
            Some(NetdevSnapshot {
                name: l.name.clone(),
                ifindex: l.index,
                mac: l.mac,
                mtu: l.mtu,
                altnames: l.alt_names.clone(),
                up: l.is_up(),
            })
        }
    };
    Ok(Prepared { mode, pf: loc.pf, pf_name, pf_index, snapshot: Snapshot { pf_side, netdev } })
}

/// The netlink config for `settings` on VF `vf`.
fn vf_config(vf: u32, s: &VfSettings) -> VfConfig {
    VfConfig {
        vf,
        mac: s.mac,
        vlan: s.vlan,
        spoofchk: s.spoofchk,
        trust: s.trust,
        link_state: s.link_state,
        rate: s.rate,
    }
}

/// The requested value of `attr`, for messages.
fn value_of(s: &VfSettings, attr: VfAttr) -> String {
    match attr {
        VfAttr::Mac => s.mac.map(|m| m.to_string()),
        VfAttr::Vlan => s.vlan.map(|v| format!("{} (qos {}, {})", v.id(), v.qos(), v.proto())),
        VfAttr::Rate => s.rate.map(|r| format!("min {} / max {} Mbps", r.min_mbps(), r.max_mbps())),
        VfAttr::SpoofChk => s.spoofchk.map(|b| if b { "on" } else { "off" }.to_owned()),
        VfAttr::LinkState => s.link_state.map(|l| l.to_string()),
        VfAttr::Trust => s.trust.map(|b| if b { "on" } else { "off" }.to_owned()),
    }
    .unwrap_or_default()
}

/// Whether `state` already shows `attr` as requested.
fn attr_applied(s: &VfSettings, attr: VfAttr, state: &VfState) -> bool {
    match attr {
        VfAttr::Mac => s.mac == Some(state.mac),
        VfAttr::Vlan => s.vlan.is_some_and(|v| {
            (v.id(), v.qos(), v.proto())
                == (state.vlan, state.qos, state.vlan_proto.unwrap_or_default())
        }),
        VfAttr::Rate => s.rate.is_some_and(|r| {
            (r.min_mbps(), r.max_mbps()) == (state.min_tx_rate, state.max_tx_rate)
        }),
        VfAttr::SpoofChk => s.spoofchk.is_some() && s.spoofchk == state.spoofchk,
        VfAttr::LinkState => s.link_state.is_some() && s.link_state == state.link_state,
        VfAttr::Trust => s.trust.is_some() && s.trust == state.trust,
    }
}

/// Names the setting that failed. The kernel applies the attributes of one message in a fixed
/// order and stops at the first failure, so the first requested attribute (in that order) not
/// yet showing its value is the culprit; when the PF reports no VF list, it is the first one.
fn vf_setting_error<P: Platform>(
    plat: &mut P,
    prep: &Prepared,
    vf: PciAddr,
    vf_index: u32,
    s: &VfSettings,
    source: sriov_netlink::Error,
) -> Error {
    let cfg = vf_config(vf_index, s);
    let attrs = cfg.attrs();
    let now = plat
        .host()
        .get_link(prep.pf_index)
        .ok()
        .and_then(|l| l.vfs.into_iter().find(|v| v.vf == vf_index));
    let failed = source
        .vf_attr()
        .or_else(|| {
            now.as_ref().and_then(|st| attrs.iter().copied().find(|a| !attr_applied(s, *a, st)))
        })
        .or_else(|| attrs.first().copied())
        .unwrap_or(VfAttr::Mac);
    Error::VfSetting {
        key: s.key_of(failed),
        value: value_of(s, failed),
        pf: prep.pf_name.clone(),
        vf_index,
        vf,
        source: Box::new(source),
    }
}

/// The VF netdev in the pod after [`pod_steps`] (netdev mode).
#[derive(Debug, Clone, Copy, Default)]
struct PodLink {
    index: Option<u32>,
    mac: Option<Mac>,
    mtu: Option<u32>,
}

/// Steps 4–7, inside the pod netns; every change is preceded by its undo in the journal.
fn pod_steps<P: Platform>(
    plat: &mut P,
    pod: &mut Pod<P::T>,
    prep: &Prepared,
    header: &Header,
    p: &AddParams<'_>,
    tx: &mut Tx,
    step: &mut &'static str,
) -> Result<PodLink, Error> {
    failpoint::hit("add:journal-written")?;
    let vf_index = header.vf.vf_index;

    if !p.settings.is_empty() {
        *step = "vf settings";
        tx.record("apply VF settings through the PF", Undo::RestoreVf)?;
        failpoint::hit("add:vf-settings")?;
        let cfg = vf_config(vf_index, &p.settings);
        debug!(attrs = ?cfg.attrs(), "applying VF settings");
        if let Err(e) = plat.host().set_vf(prep.pf_index, &cfg) {
            return Err(vf_setting_error(plat, prep, p.device, vf_index, &p.settings, e));
        }
        failpoint::hit("add:vf-settings-applied")?;
    }

    let mut out = PodLink::default();
    if let Some(nd) = &prep.snapshot.netdev {
        if !nd.altnames.is_empty() {
            *step = "altnames";
            tx.record("drop altnames", Undo::RestoreAltnames { names: nd.altnames.clone() })?;
            let names: Vec<&str> = nd.altnames.iter().map(String::as_str).collect();
            match plat.host().del_altnames(nd.ifindex, &names) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => debug!("altnames already gone"),
                Err(e) => {
                    return Err(Error::kernel(
                        format!("drop altnames {} of {}", names.join(","), nd.name),
                        e,
                    ));
                }
            }
            failpoint::hit("add:altnames-dropped")?;
        }

        *step = "move";
        tx.record("move into the pod", Undo::MoveBack)?;
        plat.host().move_to_netns(nd.ifindex, pod.netns.as_fd(), Some(p.ifname)).map_err(|e| {
            Error::kernel(format!("move {} into {} as {}", nd.name, p.netns.display(), p.ifname), e)
        })?;
        failpoint::hit("add:moved")?;

        let link = pod
            .nl
            .get_link(p.ifname)
            .map_err(|e| Error::kernel(format!("look up {} in the pod", p.ifname), e))?;
        let idx = link.index;
        out.mac = link.mac;
        out.mtu = link.mtu;

        if let Some(mac) = p.settings.mac
            && link.mac != Some(mac)
        {
            *step = "mac";
            if let Some(orig) = nd.mac.or(link.mac) {
                tx.record("set the netdev MAC", Undo::RestoreMac { mac: orig })?;
            }
            set_mac_retrying(&mut pod.nl, idx, mac, p.ifname)
                // Just moved, so down.
                .or_else(|e| reload_admin_mac(&mut pod.nl, idx, mac, p.ifname, false, e))?;
            out.mac = Some(mac);
            failpoint::hit("add:mac-set")?;
        }
        if let Some(mtu) = p.mtu
            && link.mtu != Some(mtu)
        {
            *step = "mtu";
            if let Some(orig) = nd.mtu.or(link.mtu) {
                tx.record("set the netdev MTU", Undo::RestoreMtu { mtu: orig })?;
            }
            pod.nl
                .set_mtu(idx, mtu)
                .map_err(|e| Error::kernel(format!("set mtu {mtu} on {}", p.ifname), e))?;
            out.mtu = Some(mtu);
            failpoint::hit("add:mtu-set")?;
        }

        *step = "up";
        // Per-device sysctls disappear with the device when it leaves the netns: no undo.
        let key = format!("net/ipv4/conf/{}/arp_notify", p.ifname);
        plat.write_sysctl(&pod.netns, &key, "1")
            .map_err(|e| Error::kernel(format!("enable arp_notify on {}", p.ifname), e))?;
        let key = format!("net/ipv6/conf/{}/ndisc_notify", p.ifname);
        if let Err(e) = plat.write_sysctl(&pod.netns, &key, "1") {
            // No IPv6 in this kernel or netns.
            debug!(error = %e, "cannot enable ndisc_notify");
        }
        pod.nl.set_up(idx).map_err(|e| Error::kernel(format!("set {} up", p.ifname), e))?;
        failpoint::hit("add:up")?;
        out.index = Some(idx);
    }
    Ok(out)
}

/// Steps 8–9 and the result, on the calling thread (IPAM must run in the runtime's netns).
fn host_steps<P: Platform>(
    plat: &mut P,
    pod: &mut Pod<P::T>,
    prep: &Prepared,
    p: &AddParams<'_>,
    tx: &mut Tx,
    step: &mut &'static str,
    link: PodLink,
) -> Result<CniResult, Error> {
    let ipam_result = match &p.ipam {
        None => None,
        Some(call) => {
            *step = "ipam";
            tx.record("ipam add", Undo::IpamDel(call.clone()))?;
            failpoint::hit("add:ipam")?;
            match crate::ipam::add(call, p.container_id, p.ifname, p.netns.to_owned()) {
                Ok(r) => Some(r),
                Err(e) => {
                    // The delegate answered with an error: by contract it allocated nothing
                    // (the Go plugins release only after a successful IPAM ADD too). The
                    // journaled entry stays for the case this process dies mid-call.
                    tx.undos.pop();
                    return Err(e);
                }
            }
        }
    };

    if let (Some(idx), Some(ipam)) = (link.index, &ipam_result) {
        *step = "addresses";
        let ips = if ipam.ips.iter().any(|ip| !ip.address.is_ipv4()) {
            // IPv6 needs two sysctls first: one netns entry for them and the addresses.
            plat.in_pod(pod, |plat, pod| configure(plat, pod, idx, p.ifname, ipam))
                .map_err(|e| Error::kernel(format!("enter {}", p.netns.display()), e))??
        } else {
            configure(plat, pod, idx, p.ifname, ipam)?
        };
        failpoint::hit("add:addresses")?;
        if let Err(e) = plat.announce(&pod.netns, p.ifname, &ips) {
            // The kernel's arp_notify covers later changes; a lost announcement is not fatal.
            debug!(error = %crate::error::chain(&e), "announcement not sent");
        }
    }

    if let Some(path) = &p.device_info {
        *step = "device info";
        write_device_info(path, p.device, prep.pf, tx)?;
        failpoint::hit("add:device-info")?;
    }

    *step = "complete";
    failpoint::hit("add:complete")?;
    tx.writer.append(&Record::Added)?;

    let mut result = p.prev_result.clone().unwrap_or_default();
    let mut iface = Interface::new(p.ifname)
        .with_sandbox(p.netns.display().to_string())
        .with_pci_id(p.device.to_string());
    let mac = match prep.mode {
        Mode::Netdev => link.mac,
        Mode::Userspace => p
            .settings
            .mac
            .or(prep.snapshot.pf_side.as_ref().map(|s| s.mac))
            .filter(|m| !m.is_zero()),
    };
    if let Some(mac) = mac {
        iface = iface.with_mac(to_spec_mac(mac));
    }
    if let Some(mtu) = link.mtu {
        iface = iface.with_mtu(mtu);
    }
    let index = result.push_interface(iface);
    if let Some(ipam) = ipam_result {
        result.merge_ipam(ipam, index);
    }
    info!(ifname = p.ifname, "attached");
    Ok(result)
}

/// Writes the device-information file unless one is already there (Multus copied the device
/// plugin's); its removal is journaled first.
fn write_device_info(path: &Path, vf: PciAddr, pf: PciAddr, tx: &mut Tx) -> Result<(), Error> {
    if std::fs::symlink_metadata(path).is_ok() {
        debug!(path = %path.display(), "device-info file already present; left as it is");
        return Ok(());
    }
    tx.record("write the device-info file", Undo::RemoveDeviceInfo { path: path.to_owned() })?;
    crate::devinfo::save_new(path, &crate::devinfo::for_vf(vf, pf))
        .map_err(|source| Error::DeviceInfo { op: "write", path: path.to_owned(), source })?;
    debug!(path = %path.display(), "device-info file written");
    Ok(())
}

fn set_mac_retrying<T: sriov_netlink::Transport>(
    nl: &mut sriov_netlink::Netlink<T>,
    idx: u32,
    mac: Mac,
    ifname: &str,
) -> Result<(), Error> {
    let mut attempt = 1;
    loop {
        match nl.set_mac(idx, mac) {
            Ok(()) => return Ok(()),
            Err(e)
                if attempt < MAC_RETRIES
                    && matches!(e.errno(), Some(libc_errno::EBUSY | libc_errno::EAGAIN)) =>
            {
                debug!(attempt, error = %e, "netdev MAC refused while the VF resets; retrying");
                attempt += 1;
                std::thread::sleep(MAC_RETRY_DELAY);
            }
            Err(e) => return Err(Error::kernel(format!("set mac {mac} on {ifname}"), e)),
        }
    }
}

/// When the VF driver refuses a netdev MAC change because the PF has an administrative MAC set
/// (igb refuses any MAC change an untrusted VF asks for then, with EADDRNOTAVAIL, and tells the
/// VF to "reload"), and that administrative MAC is the one wanted: cycle the netdev's admin
/// state once (down/up if it is up, up/down if not), which resets the VF and makes its driver
/// load the administrative MAC from the PF. Success only if the netdev then has `mac`;
/// otherwise the original error stands. Used by `ADD` (after setting the administrative MAC)
/// and by `DEL` (after restoring it, PF side first).
pub(crate) fn reload_admin_mac<T: sriov_netlink::Transport>(
    nl: &mut sriov_netlink::Netlink<T>,
    idx: u32,
    mac: Mac,
    ifname: &str,
    was_up: bool,
    refused: Error,
) -> Result<(), Error> {
    let Error::Kernel { source, .. } = &refused else { return Err(refused) };
    if source.errno() != Some(libc_errno::EADDRNOTAVAIL) {
        return Err(refused);
    }
    debug!(ifname, %mac, "VF driver refused the MAC change; resetting the VF to load the PF's");
    let cycle = |nl: &mut sriov_netlink::Netlink<T>, up: bool| {
        let r = if up { nl.set_up(idx) } else { nl.set_down(idx) };
        let state = if up { "up" } else { "down" };
        r.map_err(|e| Error::kernel(format!("set {ifname} {state} to reset the VF"), e))
    };
    cycle(nl, !was_up)?;
    cycle(nl, was_up)?;
    match nl.get_link(idx) {
        Ok(l) if l.mac == Some(mac) => Ok(()),
        _ => Err(refused),
    }
}

/// The errno values this module reacts to (this crate has no libc dependency).
mod libc_errno {
    pub const EAGAIN: i32 = 11;
    pub const EBUSY: i32 = 16;
    pub const EADDRNOTAVAIL: i32 = 99;
}

/// Adds the IPAM addresses and routes to the pod interface; returns the addresses to announce.
fn configure<P: Platform>(
    plat: &mut P,
    pod: &mut Pod<P::T>,
    idx: u32,
    ifname: &str,
    ipam: &CniResult,
) -> Result<Vec<IpAddr>, Error> {
    let mut addrs = Vec::new();
    if ipam.ips.iter().any(|ip| !ip.address.is_ipv4()) {
        let key = format!("net/ipv6/conf/{ifname}/disable_ipv6");
        plat.write_sysctl(&pod.netns, &key, "0")
            .map_err(|e| Error::kernel(format!("enable IPv6 on {ifname}"), e))?;
        // As the Go plugin does: addresses are usable while DAD runs (ignored where unsupported).
        let key = format!("net/ipv6/conf/{ifname}/optimistic_dad");
        if let Err(e) = plat.write_sysctl(&pod.netns, &key, "1") {
            debug!(error = %e, "optimistic_dad not available");
        }
    }
    for ip in &ipam.ips {
        let prefix = IpPrefix::new(ip.address.addr(), ip.address.prefix_len())
            .map_err(|e| Error::kernel(format!("address {}", ip.address), e))?;
        match pod.nl.add_address(idx, prefix, AddressOptions::default()) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => {
                return Err(Error::kernel(format!("add address {} to {ifname}", ip.address), e));
            }
        }
        addrs.push(ip.address.addr());
    }
    for r in &ipam.routes {
        let dst = IpPrefix::new(r.dst.addr(), r.dst.prefix_len())
            .map_err(|e| Error::kernel(format!("route {}", r.dst), e))?;
        let same_family = |a: &IpAddr| a.is_ipv4() == r.dst.is_ipv4();
        let gw = r.gw.or_else(|| ipam.ips.iter().filter_map(|ip| ip.gateway).find(same_family));
        let mut spec = RouteSpec::new(dst).dev(idx);
        if let Some(gw) = gw {
            spec = spec.via(gw);
        }
        if let Some(metric) = r.priority {
            spec = spec.metric(metric);
        }
        if let Some(table) = r.table {
            spec = spec.table(table);
        }
        pod.nl.add_route(&spec).map_err(|e| {
            let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            Error::kernel(format!("add route {}{via} dev {ifname}", r.dst), e)
        })?;
    }
    Ok(addrs)
}

/// Replays the undo log; removes the journal when everything was undone, else keeps what is
/// left for `DEL`.
fn rollback<P: Platform>(
    plat: &mut P,
    state: &StateDir,
    header: &Header,
    undos: Vec<Undo>,
    pod: Pod<P::T>,
    error: Error,
) -> Error {
    let failed = Restorer::with_pod(plat, header, Some(pod), IpamPolicy::Run).replay(&undos);
    let vf = header.vf.pci_address;
    if failed.is_empty() {
        match state.remove(vf) {
            Ok(()) => info!("rolled back"),
            Err(e) => warn!(error = %e, "rolled back, but the journal could not be removed"),
        }
        return error;
    }
    let remaining = Journal::remaining(header.clone(), failed.iter().map(|(u, _)| u.clone()));
    if let Err(e) = state.rewrite(&remaining) {
        warn!(error = %e, "cannot shorten the journal; DEL will replay all of it");
    }
    Error::RollbackIncomplete {
        error: Box::new(error),
        rollback: describe_failures(&failed),
        journal: state.journal_path(vf),
    }
}
