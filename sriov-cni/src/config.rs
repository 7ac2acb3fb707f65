//! The plugin's configuration keys: read raw ([`RawConf`]), validated once ([`SriovConf`]).
//!
//! The keys are those of the Go sriov-cni (`deviceID`, `vlan`, `vlanQoS`, `vlanProto`, `mac`,
//! `spoofchk`, `trust`, `link_state`, `min_tx_rate`, `max_tx_rate`, `logLevel`, `logFile`) plus
//! `pciBusID` (an alias of `deviceID`, as newer Multus versions inject it), `mtu`, `stateDir`,
//! `perPfLock` and `deviceInfoDir`. Every value is read as plain JSON and checked here, so a bad value is always a
//! code-7 error naming the key, never a generic decode error. After [`SriovConf::validate`] no
//! code looks at a string again.

use std::path::PathBuf;

use cni_spec::{CniError, LogLevel, LogSettings};
use serde::Deserialize;
use serde_json::Value;
use sriov_host::PciAddr;
use sriov_netlink::vf::{MAX_VLAN_ID, MAX_VLAN_QOS};
use sriov_netlink::{Mac, VfLinkState, VfRate, VfVlan, VlanProto};

/// Default state directory (the Go plugin's, so operators find it where they expect).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/sriov";
/// Environment variable overriding the default state directory (the `stateDir` key wins).
pub const STATE_DIR_ENV: &str = "SRIOV_CNI_STATE_DIR";
/// Smallest MTU accepted (the IPv4 minimum).
pub const MIN_MTU: u32 = 68;

/// The plugin's keys exactly as they appear in the configuration (flattened next to the spec's
/// keys by [`cni_spec::NetConf`]). Unknown keys are ignored, as the Go plugin does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RawConf {
    /// `deviceID`.
    #[serde(rename = "deviceID", default)]
    pub device_id: Option<Value>,
    /// `pciBusID`.
    #[serde(rename = "pciBusID", default)]
    pub pci_bus_id: Option<Value>,
    /// `vlan`.
    #[serde(default)]
    pub vlan: Option<Value>,
    /// `vlanQoS`.
    #[serde(rename = "vlanQoS", default)]
    pub vlan_qos: Option<Value>,
    /// `vlanProto`.
    #[serde(rename = "vlanProto", default)]
    pub vlan_proto: Option<Value>,
    /// `mac`.
    #[serde(default)]
    pub mac: Option<Value>,
    /// `spoofchk`.
    #[serde(default)]
    pub spoofchk: Option<Value>,
    /// `trust`.
    #[serde(default)]
    pub trust: Option<Value>,
    /// `link_state`.
    #[serde(default)]
    pub link_state: Option<Value>,
    /// `min_tx_rate`.
    #[serde(default)]
    pub min_tx_rate: Option<Value>,
    /// `max_tx_rate`.
    #[serde(default)]
    pub max_tx_rate: Option<Value>,
    /// `mtu`.
    #[serde(default)]
    pub mtu: Option<Value>,
    /// `logLevel`.
    #[serde(rename = "logLevel", default)]
    pub log_level: Option<Value>,
    /// `logFile`.
    #[serde(rename = "logFile", default)]
    pub log_file: Option<Value>,
    /// `stateDir`.
    #[serde(rename = "stateDir", default)]
    pub state_dir: Option<Value>,
    /// `perPfLock`.
    #[serde(rename = "perPfLock", default)]
    pub per_pf_lock: Option<Value>,
    /// `deviceInfoDir`.
    #[serde(rename = "deviceInfoDir", default)]
    pub device_info_dir: Option<Value>,
}

/// The VF settings applied through the PF; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfSettings {
    /// `vlan` / `vlanQoS` / `vlanProto`.
    pub vlan: Option<VfVlan>,
    /// The administrative MAC (the effective MAC, after precedence).
    pub mac: Option<Mac>,
    /// `spoofchk`.
    pub spoofchk: Option<bool>,
    /// `trust`.
    pub trust: Option<bool>,
    /// `link_state`.
    pub link_state: Option<VfLinkState>,
    /// `min_tx_rate` / `max_tx_rate`.
    pub rate: Option<VfRate>,
}

impl VfSettings {
    /// Whether nothing is set through the PF.
    pub fn is_empty(&self) -> bool {
        *self == VfSettings::default()
    }

    /// The configuration key a VF attribute comes from (for error messages). Both rates travel
    /// in one attribute, so a rejected rate names the keys that are set.
    pub fn key_of(&self, attr: sriov_netlink::VfAttr) -> &'static str {
        use sriov_netlink::VfAttr;
        match attr {
            VfAttr::Mac => "mac",
            VfAttr::Vlan => "vlan",
            VfAttr::Rate => match self.rate.map(|r| (r.min_mbps(), r.max_mbps())) {
                Some((min, 0)) if min > 0 => "min_tx_rate",
                Some((min, _)) if min > 0 => "min_tx_rate/max_tx_rate",
                _ => "max_tx_rate",
            },
            VfAttr::SpoofChk => "spoofchk",
            VfAttr::LinkState => "link_state",
            VfAttr::Trust => "trust",
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SriovConf {
    /// The VF (`deviceID`, else `pciBusID`, else `runtimeConfig.deviceID`).
    pub device: Option<PciAddr>,
    /// Settings applied through the PF. `mac` here is the configuration's own `mac` key; the
    /// effective MAC is resolved with [`effective_mac`].
    pub vf: VfSettings,
    /// MTU for the VF netdev (restored on `DEL`).
    pub mtu: Option<u32>,
    /// Logging.
    pub log: LogSettings,
    /// State directory, if configured.
    pub state_dir: Option<PathBuf>,
    /// Serialize operations per PF.
    pub per_pf_lock: bool,
    /// Base directory of device-information files, if configured.
    pub device_info_dir: Option<PathBuf>,
}

fn bad(key: &str, value: &Value, reason: impl std::fmt::Display) -> CniError {
    CniError::invalid_config(key, value, reason)
}

/// `Some(v)` unless absent or null.
fn present(v: &Option<Value>) -> Option<&Value> {
    v.as_ref().filter(|v| !v.is_null())
}

/// A string key; `""` counts as absent (the Go plugin's rule).
fn string<'a>(key: &str, v: &'a Option<Value>) -> Result<Option<&'a str>, CniError> {
    match present(v) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(key, other, "must be a string")),
    }
}

/// An integer key within `min..=max`.
fn integer(key: &str, v: &Option<Value>, min: i64, max: i64) -> Result<Option<i64>, CniError> {
    let Some(value) = present(v) else { return Ok(None) };
    let n = value.as_i64().filter(|n| (min..=max).contains(n));
    match n {
        Some(n) => Ok(Some(n)),
        None => Err(bad(key, value, format_args!("must be an integer in the range {min}-{max}"))),
    }
}

fn on_off(key: &str, v: &Option<Value>) -> Result<Option<bool>, CniError> {
    match string(key, v)? {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("on") => Ok(Some(true)),
        Some(s) if s.eq_ignore_ascii_case("off") => Ok(Some(false)),
        Some(_) => Err(bad(key, present(v).unwrap_or(&Value::Null), "must be \"on\" or \"off\"")),
    }
}

fn pci(key: &str, v: &Option<Value>) -> Result<Option<PciAddr>, CniError> {
    match string(key, v)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|e| bad(key, &Value::String(s.to_owned()), e)),
    }
}

fn absolute_path(key: &str, v: &Option<Value>) -> Result<Option<PathBuf>, CniError> {
    match string(key, v)? {
        None => Ok(None),
        Some(s) if s.starts_with('/') && !s.contains('\0') => Ok(Some(PathBuf::from(s))),
        Some(s) => Err(bad(key, &Value::String(s.to_owned()), "must be an absolute path")),
    }
}

/// Parses a MAC given under `key`: a unicast, non-zero address.
pub fn parse_mac(key: &str, s: &str) -> Result<Mac, CniError> {
    let value = Value::String(s.to_owned());
    let mac: Mac = s
        .parse()
        .map_err(|_| bad(key, &value, "must be a MAC address such as 02:00:5e:00:53:01"))?;
    if mac.is_zero() || mac.is_multicast() {
        return Err(bad(key, &value, "must be a unicast, non-zero MAC address"));
    }
    Ok(mac)
}

/// Converts a spec-layer MAC (results, runtimeConfig, CNI_ARGS) to the netlink one.
pub fn to_netlink_mac(m: cni_spec::Mac) -> Mac {
    Mac(m.octets())
}

/// Converts a netlink MAC to the spec-layer one (results).
pub fn to_spec_mac(m: Mac) -> cni_spec::Mac {
    cni_spec::Mac::new(m.0)
}

impl SriovConf {
    /// Validates every key. `runtime_device` is `runtimeConfig.deviceID`, used when neither
    /// `deviceID` nor `pciBusID` is set.
    pub fn validate(raw: &RawConf, runtime_device: Option<&str>) -> Result<SriovConf, CniError> {
        let device_id = pci("deviceID", &raw.device_id)?;
        let bus_id = pci("pciBusID", &raw.pci_bus_id)?;
        let device = match (device_id, bus_id) {
            (Some(a), Some(b)) if a != b => {
                return Err(CniError::invalid_config(
                    "pciBusID",
                    format_args!("\"{b}\""),
                    format_args!("differs from deviceID \"{a}\""),
                ));
            }
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        let device = match (device, runtime_device.filter(|s| !s.is_empty())) {
            (Some(d), _) => Some(d),
            (None, Some(s)) => {
                let v = Some(Value::String(s.to_owned()));
                pci("runtimeConfig.deviceID", &v)?
            }
            (None, None) => None,
        };

        let vlan_id = integer("vlan", &raw.vlan, 0, i64::from(MAX_VLAN_ID))?;
        let qos = integer("vlanQoS", &raw.vlan_qos, 0, i64::from(MAX_VLAN_QOS))?;
        let proto = match string("vlanProto", &raw.vlan_proto)? {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("802.1q") => Some(VlanProto::Dot1Q),
            Some(s) if s.eq_ignore_ascii_case("802.1ad") => Some(VlanProto::Dot1Ad),
            Some(s) => {
                return Err(bad(
                    "vlanProto",
                    &Value::String(s.to_owned()),
                    "must be \"802.1q\" or \"802.1ad\"",
                ));
            }
        };
        let vlan = match vlan_id {
            None => {
                if let Some(q) = present(&raw.vlan_qos) {
                    return Err(bad("vlanQoS", q, "requires vlan"));
                }
                if let Some(p) = present(&raw.vlan_proto) {
                    return Err(bad("vlanProto", p, "requires vlan"));
                }
                None
            }
            Some(id) => {
                // In range by the checks above.
                let id = id as u16;
                let qos = qos.unwrap_or(0) as u8;
                let proto = proto.unwrap_or_default();
                if id == 0 && qos != 0 {
                    return Err(bad(
                        "vlanQoS",
                        &Value::from(qos),
                        "a non-zero vlanQoS requires a non-zero vlan",
                    ));
                }
                if id == 0 && proto == VlanProto::Dot1Ad {
                    return Err(bad(
                        "vlanProto",
                        &Value::from("802.1ad"),
                        "802.1ad requires a non-zero vlan",
                    ));
                }
                Some(VfVlan::new(id, qos, proto).map_err(|e| bad("vlan", &Value::from(id), e))?)
            }
        };

        let mac = string("mac", &raw.mac)?.map(|s| parse_mac("mac", s)).transpose()?;
        let spoofchk = on_off("spoofchk", &raw.spoofchk)?;
        let trust = on_off("trust", &raw.trust)?;
        let link_state = match string("link_state", &raw.link_state)? {
            None => None,
            Some(s) => Some(match s.to_ascii_lowercase().as_str() {
                "auto" => VfLinkState::Auto,
                "enable" => VfLinkState::Enable,
                "disable" => VfLinkState::Disable,
                _ => {
                    return Err(bad(
                        "link_state",
                        &Value::String(s.to_owned()),
                        "must be \"auto\", \"enable\" or \"disable\"",
                    ));
                }
            }),
        };
        let max_rate = i64::from(u32::MAX);
        let min_tx = integer("min_tx_rate", &raw.min_tx_rate, 0, max_rate)?;
        let max_tx = integer("max_tx_rate", &raw.max_tx_rate, 0, max_rate)?;
        let rate = match (min_tx, max_tx) {
            (None, None) => None,
            // The Go plugin sends both in one call, an absent one as 0 (no limit).
            (min, max) => {
                let (min, max) = (min.unwrap_or(0) as u32, max.unwrap_or(0) as u32);
                Some(VfRate::new(min, max).map_err(|_| {
                    bad("min_tx_rate", &Value::from(min), format_args!("exceeds max_tx_rate {max}"))
                })?)
            }
        };
        let mtu = integer("mtu", &raw.mtu, i64::from(MIN_MTU), 65535)?.map(|m| m as u32);

        let level = match string("logLevel", &raw.log_level)? {
            None => LogLevel::default(),
            Some(s) => s.parse().map_err(|e| bad("logLevel", &Value::String(s.to_owned()), e))?,
        };
        let log = LogSettings { level, file: absolute_path("logFile", &raw.log_file)? };
        let state_dir = absolute_path("stateDir", &raw.state_dir)?;
        let device_info_dir = absolute_path("deviceInfoDir", &raw.device_info_dir)?;
        let per_pf_lock = match present(&raw.per_pf_lock) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(bad("perPfLock", other, "must be true or false")),
        };

        Ok(SriovConf {
            device,
            vf: VfSettings { vlan, mac, spoofchk, trust, link_state, rate },
            mtu,
            log,
            state_dir,
            per_pf_lock,
            device_info_dir,
        })
    }

    /// The `deviceID`, required by `ADD` and `CHECK`.
    pub fn require_device(&self) -> Result<PciAddr, CniError> {
        self.device.ok_or_else(|| {
            CniError::invalid_config(
                "deviceID",
                "null",
                "the VF's PCI address is required (Multus injects it from the device plugin's allocation)",
            )
        })
    }
}

/// Logging settings from a raw configuration, leniently (bad values fall back to the defaults;
/// validation reports them afterwards).
pub fn log_settings(raw: &RawConf) -> LogSettings {
    let level = string("logLevel", &raw.log_level)
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let file = absolute_path("logFile", &raw.log_file).ok().flatten();
    LogSettings { level, file }
}

/// The MAC to give the VF, by precedence `args.cni.mac` > `runtimeConfig.mac` > `CNI_ARGS`
/// `MAC=` > the configuration's `mac`.
pub fn effective_mac<C>(
    conf: &cni_spec::NetConf<C>,
    args: &cni_spec::CniArgs,
    own: Option<Mac>,
) -> Result<Option<Mac>, CniError> {
    let Some(requested) = conf.requested_mac(args)? else { return Ok(own) };
    let mac = to_netlink_mac(requested);
    if mac.is_zero() || mac.is_multicast() {
        return Err(CniError::invalid_config(
            "runtimeConfig.mac",
            format_args!("\"{mac}\""),
            "must be a unicast, non-zero MAC address",
        ));
    }
    Ok(Some(mac))
}

/// The state directory: `stateDir`, else `$SRIOV_CNI_STATE_DIR`, else [`DEFAULT_STATE_DIR`].
pub fn state_dir(configured: Option<&std::path::Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_owned();
    }
    match std::env::var_os(STATE_DIR_ENV) {
        Some(v) if !v.is_empty() && v.to_string_lossy().starts_with('/') => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_STATE_DIR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn raw(v: Value) -> RawConf {
        serde_json::from_value(v).unwrap()
    }

    fn ok(v: Value) -> SriovConf {
        SriovConf::validate(&raw(v), None).unwrap()
    }

    /// Validation error: (code, msg, details).
    fn err(v: Value) -> (u32, String, String) {
        let e = SriovConf::validate(&raw(v), None).unwrap_err();
        (e.code().get(), e.msg().to_owned(), e.details().to_owned())
    }

    #[test]
    fn full_go_style_config() {
        let c = ok(json!({
            "deviceID": "0000:3b:02.1", "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1AD",
            "mac": "02:00:5E:00:53:01", "spoofchk": "off", "trust": "on", "link_state": "Enable",
            "min_tx_rate": 100, "max_tx_rate": 1000, "mtu": 9000, "logLevel": "debug",
            "logFile": "/var/log/sriov.log", "stateDir": "/run/sriov", "perPfLock": true,
            "someUnknownKey": {"ignored": true}
        }));
        assert_eq!(c.device, Some("0000:3b:02.1".parse().unwrap()));
        assert_eq!(c.vf.vlan, Some(VfVlan::new(100, 3, VlanProto::Dot1Ad).unwrap()));
        assert_eq!(c.vf.mac, Some("02:00:5e:00:53:01".parse().unwrap()));
        assert_eq!((c.vf.spoofchk, c.vf.trust), (Some(false), Some(true)));
        assert_eq!(c.vf.link_state, Some(VfLinkState::Enable));
        assert_eq!(c.vf.rate, Some(VfRate::new(100, 1000).unwrap()));
        assert_eq!(c.mtu, Some(9000));
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.log.file, Some(PathBuf::from("/var/log/sriov.log")));
        assert_eq!(c.state_dir, Some(PathBuf::from("/run/sriov")));
        assert!(c.per_pf_lock);
    }

    #[test]
    fn empty_config_sets_nothing_and_empty_strings_are_absent() {
        let c = ok(
            json!({"spoofchk": "", "trust": "", "link_state": "", "mac": "", "vlanProto": null}),
        );
        assert_eq!(c.device, None);
        assert!(c.vf.is_empty());
        assert_eq!(c.mtu, None);
        assert!(!c.per_pf_lock);
        let e = c.require_device().unwrap_err();
        assert_eq!(e.code().get(), 7);
        assert!(e.details().starts_with("deviceID = "), "{}", e.details());
    }

    #[test]
    fn a_rejected_rate_names_the_keys_that_are_set() {
        let key = |v| ok(v).vf.key_of(sriov_netlink::VfAttr::Rate);
        assert_eq!(key(json!({"min_tx_rate": 10})), "min_tx_rate");
        assert_eq!(key(json!({"max_tx_rate": 10})), "max_tx_rate");
        assert_eq!(key(json!({"min_tx_rate": 0, "max_tx_rate": 10})), "max_tx_rate");
        assert_eq!(key(json!({"min_tx_rate": 5, "max_tx_rate": 10})), "min_tx_rate/max_tx_rate");
    }

    #[test]
    fn vlan_defaults_and_rate_halves() {
        let c = ok(json!({"vlan": 0}));
        assert_eq!(c.vf.vlan, Some(VfVlan::none()));
        let c = ok(json!({"max_tx_rate": 500}));
        assert_eq!(c.vf.rate, Some(VfRate::new(0, 500).unwrap()));
        let c = ok(json!({"min_tx_rate": 10}));
        assert_eq!(c.vf.rate, Some(VfRate::new(10, 0).unwrap()));
    }

    #[test]
    fn device_id_aliases() {
        let c = ok(json!({"pciBusID": "3b:02.1"}));
        assert_eq!(c.device.map(|d| d.to_string()).as_deref(), Some("0000:3b:02.1"));
        let c = ok(json!({"deviceID": "0000:3b:02.1", "pciBusID": "0000:3b:02.1"}));
        assert!(c.device.is_some());
        let c = SriovConf::validate(&raw(json!({})), Some("0000:3b:02.4")).unwrap();
        assert_eq!(c.device.map(|d| d.to_string()).as_deref(), Some("0000:3b:02.4"));
        let (code, msg, _) = err(json!({"deviceID": "0000:3b:02.1", "pciBusID": "0000:3b:02.2"}));
        assert_eq!((code, msg.as_str()), (7, "invalid network configuration: pciBusID"));
    }

    #[test]
    fn every_bad_value_is_code_7_naming_the_key_and_value() {
        let cases = [
            (json!({"deviceID": "nope"}), "deviceID", "\"nope\""),
            (json!({"deviceID": 5}), "deviceID", "5"),
            (json!({"vlan": 4095}), "vlan", "4095"),
            (json!({"vlan": -1}), "vlan", "-1"),
            (json!({"vlan": "100"}), "vlan", "\"100\""),
            (json!({"vlan": 1.5}), "vlan", "1.5"),
            (json!({"vlan": 5, "vlanQoS": 8}), "vlanQoS", "8"),
            (json!({"vlanQoS": 1}), "vlanQoS", "1"),
            (json!({"vlan": 0, "vlanQoS": 2}), "vlanQoS", "2"),
            (json!({"vlanProto": "802.1q"}), "vlanProto", "\"802.1q\""),
            (json!({"vlan": 5, "vlanProto": "qinq"}), "vlanProto", "\"qinq\""),
            (json!({"vlan": 0, "vlanProto": "802.1ad"}), "vlanProto", "\"802.1ad\""),
            (json!({"mac": "02:00:5e:00:53"}), "mac", "\"02:00:5e:00:53\""),
            (json!({"mac": "01:00:5e:00:00:01"}), "mac", "\"01:00:5e:00:00:01\""),
            (json!({"mac": "00:00:00:00:00:00"}), "mac", "\"00:00:00:00:00:00\""),
            (json!({"spoofchk": "yes"}), "spoofchk", "\"yes\""),
            (json!({"trust": true}), "trust", "true"),
            (json!({"link_state": "up"}), "link_state", "\"up\""),
            (json!({"min_tx_rate": -5}), "min_tx_rate", "-5"),
            (json!({"max_tx_rate": 5000000000u64}), "max_tx_rate", "5000000000"),
            (json!({"min_tx_rate": 200, "max_tx_rate": 100}), "min_tx_rate", "200"),
            (json!({"mtu": 67}), "mtu", "67"),
            (json!({"mtu": 70000}), "mtu", "70000"),
            (json!({"logLevel": "loud"}), "logLevel", "\"loud\""),
            (json!({"logFile": "relative.log"}), "logFile", "\"relative.log\""),
            (json!({"stateDir": "var/lib"}), "stateDir", "\"var/lib\""),
            (json!({"perPfLock": "yes"}), "perPfLock", "\"yes\""),
        ];
        for (conf, key, value) in cases {
            let (code, msg, details) = err(conf.clone());
            assert_eq!(code, 7, "{conf}");
            assert_eq!(msg, format!("invalid network configuration: {key}"), "{conf}");
            assert!(details.starts_with(&format!("{key} = {value}: ")), "{conf}: {details}");
        }
    }

    #[test]
    fn mac_precedence() {
        use cni_spec::{CniArgs, CniVersion, NetConf};
        let parse = |extra: Value| -> NetConf<RawConf> {
            let mut v = json!({"cniVersion": "1.0.0", "name": "n", "type": "sriov"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            NetConf::parse(v.to_string().as_bytes(), &CniVersion::ALL).unwrap()
        };
        let own: Mac = "02:00:00:00:00:01".parse().unwrap();
        let args = CniArgs::parse("IgnoreUnknown=1;MAC=02:00:00:00:00:02").unwrap();
        let none = CniArgs::parse("").unwrap();
        let c = parse(json!({}));
        assert_eq!(effective_mac(&c, &none, Some(own)).unwrap(), Some(own));
        assert_eq!(
            effective_mac(&c, &args, Some(own)).unwrap().unwrap().to_string(),
            "02:00:00:00:00:02"
        );
        let c = parse(json!({"runtimeConfig": {"mac": "02:00:00:00:00:03"}}));
        assert_eq!(
            effective_mac(&c, &args, Some(own)).unwrap().unwrap().to_string(),
            "02:00:00:00:00:03"
        );
        let c = parse(json!({"runtimeConfig": {"mac": "33:33:00:00:00:01"}}));
        let e = effective_mac(&c, &none, None).unwrap_err();
        assert_eq!(e.code().get(), 7);
        assert!(e.details().starts_with("runtimeConfig.mac = "), "{}", e.details());
    }

    #[test]
    fn lenient_log_settings_and_state_dir() {
        let s = log_settings(&raw(json!({"logLevel": "nonsense", "logFile": "/tmp/x.log"})));
        assert_eq!(s.level, LogLevel::Info);
        assert_eq!(s.file, Some(PathBuf::from("/tmp/x.log")));
        assert_eq!(state_dir(Some(std::path::Path::new("/x"))), PathBuf::from("/x"));
    }
}
