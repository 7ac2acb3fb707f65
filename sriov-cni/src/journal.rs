//! The journal: what an attachment changed and how to undo it, as data.
//!
//! A journal is a JSON-lines file. Line 1 is the [`Header`]: schema version, boot id, the
//! attachment, the VF, its mode and a [`Snapshot`] of everything `ADD` may change, written
//! atomically (temp file, fsync, rename) before the first change. Every following line is a
//! [`Record`]: an [`Undo`] appended *before* the step it undoes, then [`Record::Added`] when
//! `ADD` completes. Failure replays the undo log in reverse; `DEL` replays what is recorded.
//!
//! Every undo is idempotent and finds the device wherever it is, so replaying an undo whose
//! step never ran (the process died between the append and the step) is harmless.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sriov_host::PciAddr;
use sriov_netlink::{Mac, VfLinkState, VfRate, VfState, VfVlan, VlanProto};

use crate::config::VfSettings;

/// Version of the journal format; a newer one is refused rather than misread.
pub const SCHEMA_VERSION: u32 = 1;
/// The `kind` of every journal header.
pub const KIND: &str = "sriov-cni-journal";

/// Serde for [`Mac`] as `"aa:bb:cc:dd:ee:ff"`.
pub(crate) mod mac_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use sriov_netlink::Mac;

    pub fn serialize<S: Serializer>(m: &Mac, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Mac>`.
    pub mod opt {
        use super::*;

        pub fn serialize<S: Serializer>(m: &Option<Mac>, s: S) -> Result<S::Ok, S::Error> {
            match m {
                Some(m) => s.collect_str(m),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mac>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| s.parse().map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// How the VF is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A kernel netdev moved into the pod.
    Netdev,
    /// Bound to vfio-pci/uio (DPDK): nothing moves, only PF-side settings change.
    Userspace,
}

/// The attachment a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_NETNS` at `ADD`.
    pub netns: PathBuf,
    /// Inode of that netns at `ADD`, to tell a reused path from the same namespace.
    pub netns_ino: Option<u64>,
    /// The network name.
    pub network: String,
}

/// The VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VfRef {
    /// The VF's PCI address.
    pub pci_address: PciAddr,
    /// The PF's PCI address.
    pub pf_pci_address: PciAddr,
    /// The PF's netdev name at `ADD` (empty when `ADD` did not need the PF: no PF-side
    /// settings, no `mtu`).
    pub pf_netdev: String,
    /// The VF index on the PF.
    pub vf_index: u32,
}

/// The PF-side state of one VF (what `ip link show <pf>` lists for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VfSnapshot {
    /// Administrative MAC (zero when unset).
    #[serde(with = "mac_str")]
    pub mac: Mac,
    /// Port VLAN id (0 = none).
    pub vlan: u16,
    /// Port VLAN priority.
    pub qos: u8,
    /// `802.1Q` or `802.1ad`; `None` when the kernel reported something else.
    pub vlan_proto: Option<String>,
    /// Spoof checking; `None` when the driver does not report it.
    pub spoofchk: Option<bool>,
    /// Trust; `None` when the driver does not report it.
    pub trust: Option<bool>,
    /// `auto`, `enable` or `disable`; `None` when not reported.
    pub link_state: Option<String>,
    /// Minimum TX rate, Mbit/s.
    pub min_tx_rate: u32,
    /// Maximum TX rate, Mbit/s.
    pub max_tx_rate: u32,
}

fn proto_str(p: VlanProto) -> String {
    p.to_string()
}

fn proto_parse(s: &str) -> Option<VlanProto> {
    if s.eq_ignore_ascii_case("802.1q") {
        Some(VlanProto::Dot1Q)
    } else if s.eq_ignore_ascii_case("802.1ad") {
        Some(VlanProto::Dot1Ad)
    } else {
        None
    }
}

fn link_state_parse(s: &str) -> Option<VfLinkState> {
    match s {
        "auto" => Some(VfLinkState::Auto),
        "enable" => Some(VfLinkState::Enable),
        "disable" => Some(VfLinkState::Disable),
        _ => None,
    }
}

impl VfSnapshot {
    /// From the PF's report.
    pub fn from_state(s: &VfState) -> VfSnapshot {
        VfSnapshot {
            mac: s.mac,
            vlan: s.vlan,
            qos: s.qos,
            vlan_proto: s.vlan_proto.map(proto_str),
            spoofchk: s.spoofchk,
            trust: s.trust,
            link_state: s.link_state.map(|l| l.to_string()),
            min_tx_rate: s.min_tx_rate,
            max_tx_rate: s.max_tx_rate,
        }
    }

    /// Back to the netlink type (for diffing against a fresh read).
    pub fn to_state(&self, vf: u32) -> VfState {
        VfState {
            vf,
            mac: self.mac,
            vlan: self.vlan,
            qos: self.qos,
            vlan_proto: self.vlan_proto.as_deref().and_then(proto_parse),
            spoofchk: self.spoofchk,
            trust: self.trust,
            link_state: self.link_state.as_deref().and_then(link_state_parse),
            min_tx_rate: self.min_tx_rate,
            max_tx_rate: self.max_tx_rate,
            rss_query_en: None,
        }
    }
}

/// The VF netdev as it was in the host before `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetdevSnapshot {
    /// Its name in the host.
    pub name: String,
    /// Its ifindex in the host.
    pub ifindex: u32,
    /// Its MAC.
    #[serde(with = "mac_str::opt", default)]
    pub mac: Option<Mac>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// Its alternative names.
    #[serde(default)]
    pub altnames: Vec<String>,
    /// Whether it was administratively up.
    pub up: bool,
}

/// What `ADD` captured before changing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The VF as the PF reports it; `None` when the PF reports no VF list (then nothing is set
    /// through it).
    pub pf_side: Option<VfSnapshot>,
    /// The netdev; `None` in userspace mode.
    pub netdev: Option<NetdevSnapshot>,
}

/// The PF-side settings `ADD` applies (for `CHECK`); `None` = left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsRecord {
    /// Administrative MAC.
    #[serde(with = "mac_str::opt", default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// VLAN id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// VLAN QoS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_qos: Option<u8>,
    /// VLAN protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_proto: Option<String>,
    /// Spoof checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoofchk: Option<bool>,
    /// Trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
    /// Link state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<String>,
    /// Minimum TX rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// Maximum TX rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
    /// Netdev MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

impl SettingsRecord {
    /// Records `settings` and `mtu`.
    pub fn new(settings: &VfSettings, mtu: Option<u32>) -> SettingsRecord {
        SettingsRecord {
            mac: settings.mac,
            vlan: settings.vlan.map(|v| v.id()),
            vlan_qos: settings.vlan.map(|v| v.qos()),
            vlan_proto: settings.vlan.map(|v| proto_str(v.proto())),
            spoofchk: settings.spoofchk,
            trust: settings.trust,
            link_state: settings.link_state.map(|l| l.to_string()),
            min_tx_rate: settings.rate.map(|r| r.min_mbps()),
            max_tx_rate: settings.rate.map(|r| r.max_mbps()),
            mtu,
        }
    }

    /// The VF settings again.
    pub fn settings(&self) -> VfSettings {
        let vlan = self.vlan.and_then(|id| {
            let proto = self.vlan_proto.as_deref().and_then(proto_parse).unwrap_or_default();
            VfVlan::new(id, self.vlan_qos.unwrap_or(0), proto).ok()
        });
        let rate = match (self.min_tx_rate, self.max_tx_rate) {
            (None, None) => None,
            (a, b) => VfRate::new(a.unwrap_or(0), b.unwrap_or(0)).ok(),
        };
        VfSettings {
            vlan,
            mac: self.mac,
            spoofchk: self.spoofchk,
            trust: self.trust,
            link_state: self.link_state.as_deref().and_then(link_state_parse),
            rate,
        }
    }
}

/// Line 1 of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Always [`KIND`].
    pub kind: String,
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `/proc/sys/kernel/random/boot_id` at `ADD`: after a reboot the kernel state the journal
    /// describes is gone, and only IPAM still needs releasing.
    pub boot_id: Option<String>,
    /// The attachment.
    pub attachment: Attachment,
    /// The VF.
    pub vf: VfRef,
    /// Netdev or userspace.
    pub mode: Mode,
    /// The state before `ADD`.
    pub snapshot: Snapshot,
    /// What `ADD` applies.
    pub applied: SettingsRecord,
}

/// The environment and stdin an IPAM `DEL` needs, kept so that `GC` and a later `ADD` can
/// release an address without the runtime's original call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamCall {
    /// The IPAM plugin (`ipam.type`).
    pub plugin: String,
    /// The configuration as received by `ADD`.
    pub stdin: String,
    /// `CNI_ARGS`.
    #[serde(default)]
    pub args: Option<String>,
    /// `CNI_PATH`.
    pub cni_path: String,
    /// The configuration's `cniVersion`.
    pub cni_version: String,
}

/// The inverse of one step of `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Undo {
    /// Put the PF-side settings back to [`Snapshot::pf_side`] (only those that differ).
    RestoreVf,
    /// Re-add alternative names dropped in the host before the move.
    RestoreAltnames {
        /// The names.
        names: Vec<String>,
    },
    /// Move the netdev back from the pod into the host under its original name, and restore
    /// its administrative state.
    MoveBack,
    /// Restore the netdev MAC.
    RestoreMac {
        /// The original MAC.
        #[serde(with = "mac_str")]
        mac: Mac,
    },
    /// Restore the netdev MTU.
    RestoreMtu {
        /// The original MTU.
        mtu: u32,
    },
    /// Release the IPAM allocation.
    IpamDel(IpamCall),
    /// Remove the device-information file `ADD` wrote.
    RemoveDeviceInfo {
        /// The file.
        path: PathBuf,
    },
}

impl Undo {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Undo::RestoreVf => "restore vf settings",
            Undo::RestoreAltnames { .. } => "restore altnames",
            Undo::MoveBack => "move back to host",
            Undo::RestoreMac { .. } => "restore mac",
            Undo::RestoreMtu { .. } => "restore mtu",
            Undo::IpamDel(_) => "ipam del",
            Undo::RemoveDeviceInfo { .. } => "remove device-info file",
        }
    }
}

/// A line after the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "camelCase")]
pub enum Record {
    /// Appended before a step: how to undo it.
    Undo {
        /// The step about to run (for logs).
        step: String,
        /// Its inverse.
        undo: Undo,
    },
    /// `ADD` completed.
    Added,
}

/// A journal read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// Line 1.
    pub header: Header,
    /// Every following line that parsed.
    pub records: Vec<Record>,
}

impl Journal {
    /// A journal holding only `undos` (what is left after a partial restore), for a retry.
    pub fn remaining(header: Header, undos: impl IntoIterator<Item = Undo>) -> Journal {
        let records =
            undos.into_iter().map(|undo| Record::Undo { step: "retry".into(), undo }).collect();
        Journal { header, records }
    }

    /// The undo log, oldest first.
    pub fn undo_log(&self) -> Vec<Undo> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Undo { undo, .. } => Some(undo.clone()),
                Record::Added => None,
            })
            .collect()
    }

    /// Whether `ADD` completed.
    pub fn is_complete(&self) -> bool {
        self.records.iter().any(|r| matches!(r, Record::Added))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn snapshot_round_trips_through_json_and_netlink_state() {
        let st = VfState {
            vf: 3,
            mac: "02:00:5e:00:53:07".parse().unwrap(),
            vlan: 100,
            qos: 2,
            vlan_proto: Some(VlanProto::Dot1Ad),
            spoofchk: Some(true),
            trust: None,
            link_state: Some(VfLinkState::Disable),
            min_tx_rate: 10,
            max_tx_rate: 200,
            rss_query_en: None,
        };
        let snap = VfSnapshot::from_state(&st);
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["mac"], "02:00:5e:00:53:07");
        assert_eq!(json["vlanProto"], "802.1ad");
        assert_eq!(json["linkState"], "disable");
        let back: VfSnapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back.to_state(3), st);
    }

    #[test]
    fn settings_record_round_trips() {
        let s = VfSettings {
            vlan: Some(VfVlan::new(7, 1, VlanProto::Dot1Q).unwrap()),
            mac: Some("02:00:5e:00:53:09".parse().unwrap()),
            spoofchk: Some(false),
            trust: Some(true),
            link_state: Some(VfLinkState::Auto),
            rate: Some(VfRate::new(0, 100).unwrap()),
        };
        let r = SettingsRecord::new(&s, Some(1400));
        let back: SettingsRecord =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.settings(), s);
        assert_eq!(back.mtu, Some(1400));
        assert_eq!(serde_json::to_string(&SettingsRecord::default()).unwrap(), "{}");
    }

    #[test]
    fn undo_records_are_tagged() {
        let r = Record::Undo { step: "set mtu".into(), undo: Undo::RestoreMtu { mtu: 1500 } };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"record":"undo","step":"set mtu","undo":{"op":"restoreMtu","mtu":1500}}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
        let mac = Record::Undo {
            step: "s".into(),
            undo: Undo::RestoreMac { mac: "02:00:00:00:00:01".parse().unwrap() },
        };
        assert_eq!(
            serde_json::from_str::<Record>(&serde_json::to_string(&mac).unwrap()).unwrap(),
            mac
        );
        assert_eq!(serde_json::to_string(&Record::Added).unwrap(), r#"{"record":"added"}"#);
    }
}
