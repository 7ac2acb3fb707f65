//! `DEL` and `GC`: replay what the journal recorded.
//!
//! `DEL` is best effort and idempotent. It succeeds with no netns, with a vanished netns, with
//! no journal and when repeated. It releases IPAM with the runtime's configuration first (the
//! address is freed even if the VF cannot be restored), then replays the undo log. An undo
//! that fails keeps the journal — shortened to what is left — and `DEL` fails with code 11, so
//! the runtime's retry finishes the job (the Go plugin deletes its cache before knowing whether
//! the reset worked, so its retry does nothing).

use std::path::Path;

use cni_spec::ValidAttachments;
use sriov_host::PciAddr;
use tracing::{debug, info, warn};

use crate::add::describe_failures;
use crate::error::Error;
use crate::failpoint;
use crate::journal::{IpamCall, Journal};
use crate::restore::{IpamPolicy, Restorer};
use crate::state::{StateDir, StateError};
use crate::system::Platform;

/// Everything `DEL` needs.
#[derive(Debug, Clone)]
pub struct DelParams<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS`, if the runtime still has it.
    pub netns: Option<&'a Path>,
    /// `deviceID`, if the configuration has it (finds the journal without a scan).
    pub device: Option<PciAddr>,
    /// Take the per-PF lock.
    pub per_pf_lock: bool,
    /// The runtime's IPAM delegation, if configured.
    pub ipam: Option<IpamCall>,
}

impl DelParams<'_> {
    fn owns(&self, j: &Journal) -> bool {
        j.header.attachment.container_id == self.container_id
            && j.header.attachment.ifname == self.ifname
    }
}

/// Reads a journal, moving an unreadable one aside (it must not block its VF forever).
pub(crate) fn read_or_quarantine(state: &StateDir, vf: PciAddr) -> Result<Option<Journal>, Error> {
    match state.read(vf) {
        Ok(j) => Ok(j),
        Err(StateError::Corrupt { path, detail }) => {
            let aside = state.quarantine(vf)?;
            warn!(journal = %path.display(), detail, moved_to = %aside.display(), "unreadable journal moved aside");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The VF whose journal belongs to this attachment: `deviceID`'s if it matches, else by scan.
fn find_vf(state: &StateDir, p: &DelParams<'_>) -> Result<Option<PciAddr>, Error> {
    if let Some(vf) = p.device
        && read_or_quarantine(state, vf)?.is_some_and(|j| p.owns(&j))
    {
        return Ok(Some(vf));
    }
    for vf in state.list()? {
        if Some(vf) != p.device && read_or_quarantine(state, vf)?.is_some_and(|j| p.owns(&j)) {
            return Ok(Some(vf));
        }
    }
    Ok(None)
}

fn ipam_release(p: &DelParams<'_>) -> Result<(), Error> {
    match &p.ipam {
        Some(call) => {
            crate::ipam::del(call, p.container_id, p.ifname, p.netns.map(Path::to_path_buf))
        }
        None => Ok(()),
    }
}

/// Runs `DEL`.
pub fn del<P: Platform>(plat: &mut P, state_root: &Path, p: &DelParams<'_>) -> Result<(), Error> {
    let Some(state) = StateDir::existing(state_root) else {
        debug!("no state directory: nothing was attached here");
        return ipam_release(p);
    };
    let Some(vf) = find_vf(&state, p)? else {
        debug!("no journal for this attachment: nothing to restore");
        return ipam_release(p);
    };
    let _vf_lock = state.lock_vf(vf)?;
    // Re-read under the lock: a concurrent DEL may have finished meanwhile.
    let journal = match read_or_quarantine(&state, vf)? {
        Some(j) if p.owns(&j) => j,
        _ => return ipam_release(p),
    };
    let _pf_lock =
        if p.per_pf_lock { Some(state.lock_pf(journal.header.vf.pf_pci_address)?) } else { None };
    failpoint::hit("del:locked")?;

    ipam_release(p)?;
    let policy = if p.ipam.is_some() { IpamPolicy::Skip } else { IpamPolicy::Run };
    let failed =
        Restorer::for_journal(plat, &journal.header, p.netns, policy).replay(&journal.undo_log());
    finish(&state, &journal, failed)?;
    info!(vf = %vf, "detached and restored");
    Ok(())
}

/// Removes the journal after a complete restore, or keeps what is left.
fn finish(
    state: &StateDir,
    journal: &Journal,
    failed: Vec<(crate::journal::Undo, Error)>,
) -> Result<(), Error> {
    let vf = journal.header.vf.pci_address;
    if failed.is_empty() {
        return Ok(state.remove(vf)?);
    }
    let remaining =
        Journal::remaining(journal.header.clone(), failed.iter().map(|(u, _)| u.clone()));
    state.rewrite(&remaining)?;
    Err(Error::RestoreIncomplete {
        vf,
        failed: describe_failures(&failed),
        journal: state.journal_path(vf),
    })
}

/// Runs `GC`: restores the VF and removes the journal of every attachment not in `valid`.
/// Continues past failures and reports them together.
pub fn gc<P: Platform>(
    plat: &mut P,
    state_root: &Path,
    valid: &ValidAttachments,
    per_pf_lock: bool,
) -> Result<usize, Error> {
    let Some(state) = StateDir::existing(state_root) else { return Ok(0) };
    let mut collected = 0;
    let mut errors = Vec::new();
    for vf in state.list()? {
        let _vf_lock = state.lock_vf(vf)?;
        let Some(journal) = read_or_quarantine(&state, vf)? else { continue };
        let att = &journal.header.attachment;
        if valid.contains(&att.container_id, &att.ifname) {
            continue;
        }
        info!(vf = %vf, container_id = att.container_id, ifname = att.ifname, "collecting a stale attachment");
        let _pf_lock =
            if per_pf_lock { Some(state.lock_pf(journal.header.vf.pf_pci_address)?) } else { None };
        let failed = Restorer::for_journal(plat, &journal.header, None, IpamPolicy::Run)
            .replay(&journal.undo_log());
        match finish(&state, &journal, failed) {
            Ok(()) => collected += 1,
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        return Ok(collected);
    }
    let failed = errors.iter().map(|e| crate::error::chain(e)).collect::<Vec<_>>().join("; ");
    Err(Error::GcIncomplete { count: errors.len(), failed })
}
