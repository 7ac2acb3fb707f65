//! The plugin keys of `veth` and `router`: read raw (as the originals accept them), validated
//! once into [`Config`]. After this module nothing looks at a string.
//!
//! Every rejection is CNI error code 7 whose message names the key (`rp_filter.value`,
//! `service_hijack_subnet[1]`, …), except an enabled `ip_conflict` probe, which is code 2
//! (a field this implementation does not support).

use std::collections::BTreeSet;
use std::path::PathBuf;

use cni_spec::{CniError, IpPrefix, LogLevel};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Which of the two plugins is running.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// `veth`: a veth pair between the pod and the node carries cluster traffic.
    Veth,
    /// `router`: policy routing sends cluster traffic over the overlay interface.
    Router,
}

impl Flavor {
    /// The plugin's executable name (also its state sub-directory and default log name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Flavor::Veth => "veth",
            Flavor::Router => "router",
        }
    }
}

/// Default directory for attachment records (tmpfs: records live exactly as long as the
/// kernel objects they describe, which do not survive a reboot either).
pub const DEFAULT_STATE_DIR: &str = "/run/cni/meta-plugins";
/// Default `host_rule_table`, as in the originals.
pub const DEFAULT_HOST_RULE_TABLE: u32 = 500;
/// Default `overlay_interface`.
pub const DEFAULT_OVERLAY_INTERFACE: &str = "eth0";

/// The plugin's keys exactly as they appeared next to the spec's keys; validated with
/// [`Config::from_keys`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RawKeys {
    /// Every key cni-spec did not consume.
    #[serde(flatten)]
    pub keys: Map<String, Value>,
}

/// `rp_filter` mode (`net.ipv4.conf.*.rp_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RpFilterMode {
    /// 0: no source validation.
    Off = 0,
    /// 1: strict (RFC 3704 strict reverse path).
    Strict = 1,
    /// 2: loose (source reachable through any interface).
    Loose = 2,
}

impl RpFilterMode {
    /// The sysctl value.
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// The kernel's effective mode on an interface is the maximum of `conf/all` and
    /// `conf/<iface>`: this is that ordering (0 < 1 < 2).
    pub fn from_value(v: u8) -> Option<RpFilterMode> {
        match v {
            0 => Some(RpFilterMode::Off),
            1 => Some(RpFilterMode::Strict),
            2 => Some(RpFilterMode::Loose),
            _ => None,
        }
    }
}

/// The `rp_filter` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpFilter {
    /// Whether the node side is touched at all.
    pub set_host: bool,
    /// The mode wanted on the interfaces the plugin's paths use (node and pod).
    pub value: RpFilterMode,
}

/// The `migrate_route` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateRoute {
    /// -1: the interface earliest in NIC order keeps the main table's default route (`veth`),
    /// or the latest (`router`); the other one's routes move to a policy table.
    Auto,
    /// 0: never move routes.
    Never,
    /// 1: always move (`veth`: the new interface's routes; `router`: the previous default
    /// interface's routes).
    Always,
}

/// `log_options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Level.
    pub level: LogLevel,
    /// File the plugin appends to.
    pub file: PathBuf,
    /// Rotate when the file reaches this many bytes (`log_max_size`, in MB).
    pub max_size_bytes: u64,
    /// Delete rotated files older than this many days (`log_max_age`; 0 keeps them).
    pub max_age_days: u64,
    /// Keep at most this many rotated files (`log_max_count`; 0 keeps all).
    pub max_count: usize,
}

impl LogOptions {
    /// The originals' defaults, except the level (`info` rather than `debug`).
    pub fn defaults(flavor: Flavor) -> LogOptions {
        LogOptions {
            level: LogLevel::Info,
            file: PathBuf::from(format!("/var/log/meta-plugins/{}.log", flavor.as_str())),
            max_size_bytes: 100 * 1024 * 1024,
            max_age_days: 5,
            max_count: 5,
        }
    }
}

/// The validated configuration of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which plugin.
    pub flavor: Flavor,
    /// `service_hijack_subnet` (host bits cleared, deduplicated).
    pub service_subnets: Vec<IpPrefix>,
    /// `overlay_hijack_subnet`.
    pub overlay_subnets: Vec<IpPrefix>,
    /// `additional_hijack_subnet`.
    pub additional_subnets: Vec<IpPrefix>,
    /// `rp_filter`.
    pub rp_filter: RpFilter,
    /// `migrate_route`.
    pub migrate_route: MigrateRoute,
    /// `skip_call`: pass `prevResult` through and do nothing.
    pub skip_call: bool,
    /// `overlay_interface` (router).
    pub overlay_interface: String,
    /// `host_rule_table` (router).
    pub host_rule_table: u32,
    /// `mac_prefix`: the two leading octets of the rewritten MAC of `CNI_IFNAME`.
    pub mac_prefix: Option<[u8; 2]>,
    /// `only_op_mac`: rewrite the MAC and stop.
    pub only_op_mac: bool,
    /// `sriov` (router): skip node-side work; VF-to-PF traffic crosses the NIC's switch.
    pub sriov: bool,
    /// `log_options`.
    pub log: LogOptions,
    /// `state_dir`: where attachment records live.
    pub state_dir: PathBuf,
}

impl Config {
    /// Every hijacked subnet (service, overlay, additional), without duplicates, in that
    /// order.
    pub fn hijack_subnets(&self) -> Vec<IpPrefix> {
        let mut seen = BTreeSet::new();
        self.service_subnets
            .iter()
            .chain(&self.overlay_subnets)
            .chain(&self.additional_subnets)
            .filter(|p| seen.insert(**p))
            .copied()
            .collect()
    }

    /// Validates the plugin keys of a configuration.
    pub fn from_keys(flavor: Flavor, keys: &Map<String, Value>) -> Result<Config, CniError> {
        let raw: Raw =
            serde_path_to_error::deserialize(Value::Object(keys.clone())).map_err(|e| {
                let path = e.path().to_string();
                let value = lookup(keys, &path).map_or_else(|| "?".to_owned(), |v| v.to_string());
                CniError::invalid_config(&path, value, e.into_inner())
            })?;
        raw.validate(flavor)
    }

    /// The `log_options` alone, for setting up logging before full validation; `None` if the
    /// key is absent or invalid (the full validation then reports it).
    pub fn log_options_of(flavor: Flavor, keys: &Map<String, Value>) -> Option<LogOptions> {
        let raw: Option<RawLogOptions> = match keys.get("log_options") {
            None | Some(Value::Null) => None,
            Some(v) => Some(RawLogOptions::deserialize(v).ok()?),
        };
        match raw {
            None => Some(LogOptions::defaults(flavor)),
            Some(r) => r.validate(flavor).ok(),
        }
    }
}

/// Finds the value a serde path (`a.b[2]`) points at, for error details.
fn lookup<'a>(keys: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let (name, idx) = split_index(first);
    let mut cur = keys.get(name)?;
    cur = index(cur, idx)?;
    for p in parts {
        let (name, idx) = split_index(p);
        cur = index(cur.get(name)?, idx)?;
    }
    Some(cur)
}

fn split_index(s: &str) -> (&str, Option<usize>) {
    match s.split_once('[') {
        Some((n, rest)) => (n, rest.trim_end_matches(']').parse().ok()),
        None => (s, None),
    }
}

fn index(v: &Value, idx: Option<usize>) -> Option<&Value> {
    match idx {
        Some(i) => v.get(i),
        None => Some(v),
    }
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(default)]
    service_hijack_subnet: Option<Vec<String>>,
    #[serde(default)]
    overlay_hijack_subnet: Option<Vec<String>>,
    #[serde(default)]
    additional_hijack_subnet: Option<Vec<String>>,
    #[serde(default)]
    rp_filter: Option<RawRpFilter>,
    #[serde(default)]
    migrate_route: Option<i64>,
    #[serde(default)]
    skip_call: Option<bool>,
    #[serde(default)]
    overlay_interface: Option<String>,
    #[serde(default)]
    host_rule_table: Option<i64>,
    #[serde(default)]
    mac_prefix: Option<String>,
    #[serde(default)]
    only_op_mac: Option<bool>,
    #[serde(default)]
    sriov: Option<bool>,
    #[serde(default)]
    ip_conflict: Option<RawIpConflict>,
    #[serde(default)]
    log_options: Option<RawLogOptions>,
    #[serde(default)]
    state_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRpFilter {
    #[serde(default)]
    set_host: Option<bool>,
    #[serde(default)]
    value: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RawIpConflict {
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RawLogOptions {
    #[serde(default)]
    log_level: Option<String>,
    #[serde(default)]
    log_file: Option<String>,
    #[serde(default)]
    log_max_size: Option<u64>,
    #[serde(default)]
    log_max_age: Option<u64>,
    #[serde(default)]
    log_max_count: Option<u64>,
}

fn bad(field: &str, value: impl std::fmt::Display, reason: impl std::fmt::Display) -> CniError {
    CniError::invalid_config(field, value, reason)
}

fn subnets(
    key: &str,
    list: Option<Vec<String>>,
    required: bool,
) -> Result<Vec<IpPrefix>, CniError> {
    let list = list.unwrap_or_default();
    if required && list.is_empty() {
        return Err(bad(key, "[]", "must list at least one CIDR"));
    }
    let mut out: Vec<IpPrefix> = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let field = format!("{key}[{i}]");
        let p: IpPrefix = s.trim().parse().map_err(|e| bad(&field, format_args!("{s:?}"), e))?;
        if p.is_default() {
            return Err(bad(&field, format_args!("{s:?}"), "a default route cannot be hijacked"));
        }
        let net = p.trunc();
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

fn absolute(field: &str, s: &str) -> Result<PathBuf, CniError> {
    let p = PathBuf::from(s);
    if !p.is_absolute() || s.contains('\0') {
        return Err(bad(field, format_args!("{s:?}"), "must be an absolute path"));
    }
    Ok(p)
}

impl RawLogOptions {
    fn validate(self, flavor: Flavor) -> Result<LogOptions, CniError> {
        let mut out = LogOptions::defaults(flavor);
        if let Some(l) = self.log_level {
            out.level =
                l.parse().map_err(|e| bad("log_options.log_level", format_args!("{l:?}"), e))?;
        }
        if let Some(f) = self.log_file.filter(|f| !f.is_empty()) {
            out.file = absolute("log_options.log_file", &f)?;
        }
        if let Some(mb) = self.log_max_size {
            if mb == 0 || mb > 1024 * 1024 {
                return Err(bad("log_options.log_max_size", mb, "must be 1..=1048576 (MB)"));
            }
            out.max_size_bytes = mb * 1024 * 1024;
        }
        if let Some(days) = self.log_max_age {
            out.max_age_days = days;
        }
        if let Some(n) = self.log_max_count {
            out.max_count =
                usize::try_from(n).map_err(|_| bad("log_options.log_max_count", n, "too large"))?;
        }
        Ok(out)
    }
}

impl Raw {
    fn validate(self, flavor: Flavor) -> Result<Config, CniError> {
        let only_op_mac = self.only_op_mac.unwrap_or(false);
        let mac_prefix = match self.mac_prefix.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(parse_mac_prefix(s)?),
        };
        if only_op_mac && mac_prefix.is_none() {
            return Err(bad("only_op_mac", true, "requires mac_prefix"));
        }
        // The originals require both lists, except when only the MAC is rewritten.
        let required = !only_op_mac;
        let service_subnets =
            subnets("service_hijack_subnet", self.service_hijack_subnet, required)?;
        let overlay_subnets =
            subnets("overlay_hijack_subnet", self.overlay_hijack_subnet, required)?;
        let additional_subnets =
            subnets("additional_hijack_subnet", self.additional_hijack_subnet, false)?;

        let rp_filter = match self.rp_filter {
            // Key absent: the originals' default (node side on, loose).
            None => RpFilter { set_host: true, value: RpFilterMode::Loose },
            Some(r) => {
                let set_host = r.set_host.unwrap_or(false);
                let value = match r.value {
                    None if set_host => RpFilterMode::Loose,
                    None => RpFilterMode::Off,
                    Some(v) => u8::try_from(v)
                        .ok()
                        .and_then(RpFilterMode::from_value)
                        .ok_or_else(|| bad("rp_filter.value", v, "must be 0, 1 or 2"))?,
                };
                RpFilter { set_host, value }
            }
        };

        let migrate_route = match self.migrate_route {
            None | Some(-1) => MigrateRoute::Auto,
            Some(0) => MigrateRoute::Never,
            Some(1) => MigrateRoute::Always,
            Some(v) => {
                return Err(bad("migrate_route", v, "must be -1 (auto), 0 (never) or 1 (always)"));
            }
        };

        let overlay_interface = match self.overlay_interface.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_OVERLAY_INTERFACE.to_owned(),
            Some(s) => {
                cni_spec::validate_ifname(s)
                    .map_err(|e| bad("overlay_interface", format_args!("{s:?}"), e.details()))?;
                s.to_owned()
            }
        };

        let host_rule_table = match self.host_rule_table {
            None => DEFAULT_HOST_RULE_TABLE,
            Some(t) => match u32::try_from(t) {
                Ok(t) if t != 0 && !(253..=255).contains(&t) => t,
                _ => {
                    return Err(bad(
                        "host_rule_table",
                        t,
                        "must be 1..=4294967295 and not 253 (default), 254 (main) or 255 (local)",
                    ));
                }
            },
        };

        if let Some(true) = self.ip_conflict.and_then(|c| c.enabled) {
            return Err(CniError::unsupported_field("ip_conflict.enabled", true)
                .with_details("ip_conflict.enabled = true: address conflict probing belongs to IPAM; this plugin does not probe"));
        }

        let log = match self.log_options {
            None => LogOptions::defaults(flavor),
            Some(l) => l.validate(flavor)?,
        };
        let state_dir = match self.state_dir.as_deref().filter(|s| !s.is_empty()) {
            None => PathBuf::from(DEFAULT_STATE_DIR),
            Some(s) => absolute("state_dir", s)?,
        };

        Ok(Config {
            flavor,
            service_subnets,
            overlay_subnets,
            additional_subnets,
            rp_filter,
            migrate_route,
            skip_call: self.skip_call.unwrap_or(false),
            overlay_interface,
            host_rule_table,
            mac_prefix,
            only_op_mac,
            sriov: self.sriov.unwrap_or(false),
            log,
            state_dir,
        })
    }
}

/// `"xx:xx"` or `"xx-xx"`; the first octet must be unicast (the original accepted multicast
/// prefixes, which make every rewritten MAC unusable).
fn parse_mac_prefix(s: &str) -> Result<[u8; 2], CniError> {
    let err = |why: &str| bad("mac_prefix", format_args!("{s:?}"), why);
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 2 || s.contains(':') && s.contains('-') {
        return Err(err("must be two hex octets such as \"0a:1b\""));
    }
    let mut out = [0u8; 2];
    for (slot, p) in out.iter_mut().zip(&parts) {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err("must be two hex octets such as \"0a:1b\""));
        }
        *slot = u8::from_str_radix(p, 16).map_err(|_| err("not hex"))?;
    }
    if out[0] & 1 == 1 {
        return Err(err("first octet has the multicast bit set"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn keys(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    fn ok(flavor: Flavor, v: Value) -> Config {
        Config::from_keys(flavor, &keys(v)).unwrap()
    }

    fn err(v: Value) -> CniError {
        Config::from_keys(Flavor::Veth, &keys(v)).unwrap_err()
    }

    fn base() -> Value {
        json!({"service_hijack_subnet": ["198.51.100.0/25"], "overlay_hijack_subnet": ["198.51.100.128/25"]})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    #[test]
    fn seed_veth_config_parses_with_defaults() {
        let c = ok(
            Flavor::Veth,
            json!({
                "service_hijack_subnet": ["172.96.0.0/18", "2001:4860:fd00::/108"],
                "overlay_hijack_subnet": ["10.240.0.0/12", "fd00:10:244::/96"],
                "additional_hijack_subnet": [],
                "rp_filter": {"set_host": true, "value": 0},
                "migrate_route": -1,
                "log_options": {"log_level": "debug", "log_file": "/var/log/meta-plugins/veth.log"}
            }),
        );
        assert_eq!(c.service_subnets.len(), 2);
        assert_eq!(c.overlay_subnets[1].to_string(), "fd00:10:244::/96");
        assert_eq!(c.rp_filter, RpFilter { set_host: true, value: RpFilterMode::Off });
        assert_eq!(c.migrate_route, MigrateRoute::Auto);
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.log.max_size_bytes, 100 * 1024 * 1024);
        assert_eq!((c.log.max_age_days, c.log.max_count), (5, 5));
        assert_eq!(c.overlay_interface, "eth0");
        assert_eq!(c.host_rule_table, 500);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert!(!c.skip_call && !c.sriov && c.mac_prefix.is_none());
        assert_eq!(c.hijack_subnets().len(), 4);
    }

    #[test]
    fn seed_router_config_parses() {
        let c = ok(
            Flavor::Router,
            json!({
                "overlay_interface": "eth0", "migrate_route": -1, "skip_call": false,
                "service_hijack_subnet": ["172.96.0.0/18"], "overlay_hijack_subnet": ["10.240.0.0/12"],
                "additional_hijack_subnet": [], "rp_filter": {"set_host": true, "value": 0},
                "log_options": {"log_level": "debug", "log_file": "/var/log/meta-plugins/router.log"},
                "host_rule_table": 600, "sriov": true
            }),
        );
        assert_eq!(c.host_rule_table, 600);
        assert!(c.sriov);
        assert_eq!(c.log.file, PathBuf::from("/var/log/meta-plugins/router.log"));
    }

    #[test]
    fn rp_filter_defaults_follow_the_originals() {
        let absent = ok(Flavor::Veth, base());
        assert_eq!(absent.rp_filter, RpFilter { set_host: true, value: RpFilterMode::Loose });
        let host_no_value = ok(Flavor::Veth, with(base(), "rp_filter", json!({"set_host": true})));
        assert_eq!(host_no_value.rp_filter.value, RpFilterMode::Loose);
        let pod_only = ok(Flavor::Veth, with(base(), "rp_filter", json!({})));
        assert_eq!(pod_only.rp_filter, RpFilter { set_host: false, value: RpFilterMode::Off });
        let strict =
            ok(Flavor::Veth, with(base(), "rp_filter", json!({"set_host": false, "value": 1})));
        assert_eq!(strict.rp_filter.value, RpFilterMode::Strict);
    }

    #[test]
    fn subnets_are_trimmed_truncated_and_deduplicated() {
        let c = ok(
            Flavor::Veth,
            json!({"service_hijack_subnet": [" 198.51.100.7/25 ", "198.51.100.0/25"],
                   "overlay_hijack_subnet": ["2001:db8:6::1/64"],
                   "additional_hijack_subnet": ["198.51.100.0/25"]}),
        );
        assert_eq!(c.service_subnets, vec!["198.51.100.0/25".parse().unwrap()]);
        assert_eq!(c.overlay_subnets[0].to_string(), "2001:db8:6::/64");
        assert_eq!(c.hijack_subnets().len(), 2, "the additional duplicate is dropped");
    }

    #[test]
    fn migrate_route_values() {
        assert_eq!(
            ok(Flavor::Veth, with(base(), "migrate_route", json!(0))).migrate_route,
            MigrateRoute::Never
        );
        assert_eq!(
            ok(Flavor::Veth, with(base(), "migrate_route", json!(1))).migrate_route,
            MigrateRoute::Always
        );
        assert_eq!(
            ok(Flavor::Veth, with(base(), "migrate_route", json!(-1))).migrate_route,
            MigrateRoute::Auto
        );
    }

    #[test]
    fn mac_prefix_and_only_op_mac() {
        let c = ok(Flavor::Veth, with(base(), "mac_prefix", json!("0a-1B")));
        assert_eq!(c.mac_prefix, Some([0x0a, 0x1b]));
        // only_op_mac waives the subnet requirement.
        let c = ok(Flavor::Router, json!({"mac_prefix": "02:00", "only_op_mac": true}));
        assert!(c.only_op_mac && c.service_subnets.is_empty());
    }

    /// Every bad value is code 7 (or 2) and the message names the key.
    #[test]
    fn bad_configs_name_the_key() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"overlay_hijack_subnet": ["198.51.100.128/25"]}), "service_hijack_subnet"),
            (with(base(), "service_hijack_subnet", json!([])), "service_hijack_subnet"),
            (
                with(base(), "overlay_hijack_subnet", json!(["198.51.100.0/25", "nope"])),
                "overlay_hijack_subnet[1]",
            ),
            (
                with(base(), "overlay_hijack_subnet", json!("198.51.100.0/25")),
                "overlay_hijack_subnet",
            ),
            (
                with(base(), "additional_hijack_subnet", json!(["192.0.2.0/33"])),
                "additional_hijack_subnet[0]",
            ),
            (
                with(base(), "additional_hijack_subnet", json!(["0.0.0.0/0"])),
                "additional_hijack_subnet[0]",
            ),
            (with(base(), "service_hijack_subnet", json!([5])), "service_hijack_subnet[0]"),
            (with(base(), "rp_filter", json!({"set_host": true, "value": 3})), "rp_filter.value"),
            (with(base(), "rp_filter", json!({"set_host": "yes"})), "rp_filter.set_host"),
            (with(base(), "migrate_route", json!(2)), "migrate_route"),
            (with(base(), "migrate_route", json!("auto")), "migrate_route"),
            (with(base(), "skip_call", json!(1)), "skip_call"),
            (with(base(), "overlay_interface", json!("a/b")), "overlay_interface"),
            (with(base(), "overlay_interface", json!("much-too-long-name0")), "overlay_interface"),
            (with(base(), "host_rule_table", json!(254)), "host_rule_table"),
            (with(base(), "host_rule_table", json!(0)), "host_rule_table"),
            (with(base(), "host_rule_table", json!(-5)), "host_rule_table"),
            (with(base(), "mac_prefix", json!("01:00")), "mac_prefix"),
            (with(base(), "mac_prefix", json!("0a:1b:2c")), "mac_prefix"),
            (with(base(), "mac_prefix", json!("zz:00")), "mac_prefix"),
            (with(base(), "only_op_mac", json!(true)), "only_op_mac"),
            (with(base(), "sriov", json!("true")), "sriov"),
            (with(base(), "log_options", json!({"log_level": "loud"})), "log_options.log_level"),
            (
                with(base(), "log_options", json!({"log_file": "relative.log"})),
                "log_options.log_file",
            ),
            (with(base(), "log_options", json!({"log_max_size": 0})), "log_options.log_max_size"),
            (with(base(), "log_options", json!({"log_max_age": -1})), "log_options.log_max_age"),
            (with(base(), "state_dir", json!("tmp/x")), "state_dir"),
        ];
        for (cfg, key) in cases {
            let e = err(cfg.clone());
            assert_eq!(e.code().get(), 7, "{cfg}: {e}");
            assert_eq!(e.msg(), format!("invalid network configuration: {key}"), "{cfg}: {e}");
            assert!(e.details().starts_with(key), "{cfg}: {}", e.details());
        }
        let e = err(with(base(), "ip_conflict", json!({"enabled": true, "interval": "1s"})));
        assert_eq!(e.code().get(), 2);
        assert!(e.details().contains("ip_conflict.enabled"), "{e}");
        // A disabled probe is accepted.
        ok(Flavor::Veth, with(base(), "ip_conflict", json!({"enabled": false})));
    }

    #[test]
    fn type_error_details_quote_the_value() {
        let e = err(with(base(), "rp_filter", json!({"value": "two"})));
        assert_eq!(e.msg(), "invalid network configuration: rp_filter.value");
        assert!(e.details().starts_with("rp_filter.value = \"two\": "), "{}", e.details());
    }

    #[test]
    fn log_options_alone() {
        let k = keys(with(
            base(),
            "log_options",
            json!({"log_file": "/tmp/x.log", "log_max_count": 2}),
        ));
        let l = Config::log_options_of(Flavor::Router, &k).unwrap();
        assert_eq!((l.file, l.max_count), (PathBuf::from("/tmp/x.log"), 2));
        assert_eq!(
            Config::log_options_of(Flavor::Router, &keys(base())).unwrap().file,
            PathBuf::from("/var/log/meta-plugins/router.log")
        );
        let bad = keys(with(base(), "log_options", json!({"log_level": 5})));
        assert!(Config::log_options_of(Flavor::Router, &bad).is_none());
    }
}
