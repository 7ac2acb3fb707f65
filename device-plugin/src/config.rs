//! The configuration file, compatible with the Go SR-IOV network device plugin.
//!
//! The file (`/etc/pcidp/config.json` by default) holds `{"resourceList": [pool, ...]}`. It is parsed
//! once into validated types ([`Config`], [`PoolConfig`], [`Selector`]); nothing after this module
//! looks at a config string again.
//!
//! Compatibility with the Go plugin:
//! - Keys are matched as Go's `encoding/json` does: exact match first, then case-insensitively
//!   (`isRdma`, `IsRdma` and `isrdma` are the same key). Unknown keys are ignored with a warning.
//! - `selectors` is one object or a list of objects; an object's fields are ANDed, the list is ORed.
//! - `pfNames` and `rootDevices` take the `<pf>#<i>,<a>-<b>` VF-index range form.
//! - Keys for features this plugin does not implement (`ddpProfiles`, `pKeys`, `vdpaType`,
//!   `auxTypes`, `deviceType: auxNetDevice`) are an error when they select something, so a config
//!   never silently selects more than the user asked for.
//!
//! Errors name the pool, the selector (0-based, in list order), the key and the offending value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sriov_host::{PciAddr, PciId};

/// The Go plugin's default resource prefix, kept so existing NetworkAttachmentDefinitions work.
pub const DEFAULT_RESOURCE_PREFIX: &str = "intel.com";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Resource pools in file order (first match wins in this order).
    pub pools: Vec<PoolConfig>,
}

/// What kind of PCI function a pool offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// Network functions (PCI class `0x02`).
    NetDevice,
    /// Accelerators (PCI class `0x12`).
    Accelerator,
}

impl DeviceType {
    /// The PCI base class this type selects.
    pub fn pci_base_class(self) -> u8 {
        match self {
            Self::NetDevice => 0x02,
            Self::Accelerator => 0x12,
        }
    }

    /// The CDI device class (`<prefix>/<class>`) used for this type.
    pub fn cdi_class(self) -> &'static str {
        match self {
            Self::NetDevice => "net-pci",
            Self::Accelerator => "net-accel",
        }
    }
}

/// One resource pool (one kubelet extended resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Resource prefix (`intel.com`).
    pub prefix: String,
    /// Resource name (`intel_sriov_netdevice`).
    pub name: String,
    /// Device type.
    pub device_type: DeviceType,
    /// Do not report NUMA topology.
    pub exclude_topology: bool,
    /// `additionalInfo`: key `*` for every device, or a PCI address.
    pub additional_info: AdditionalInfo,
    /// Selectors, ORed in order. Never empty: a pool without `selectors` has one empty selector,
    /// which matches every function of its device type (as in the Go plugin).
    pub selectors: Vec<Selector>,
}

impl PoolConfig {
    /// `<prefix>/<name>`, the kubelet's resource name.
    pub fn resource_name(&self) -> String {
        format!("{}/{}", self.prefix, self.name)
    }
}

/// `additionalInfo`, validated: a default (`*`) map and per-PCI-address maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdditionalInfo {
    /// The `*` entry.
    pub all: Option<BTreeMap<String, String>>,
    /// Per-device entries; an entry replaces `*` for its device.
    pub per_device: BTreeMap<PciAddr, BTreeMap<String, String>>,
}

impl AdditionalInfo {
    /// The extra info for a device: its own entry, else `*`.
    pub fn for_device(&self, addr: PciAddr) -> Option<&BTreeMap<String, String>> {
        self.per_device.get(&addr).or(self.all.as_ref())
    }
}

/// One selector object: every non-empty field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Vendor IDs.
    pub vendors: Vec<PciId>,
    /// Device IDs.
    pub devices: Vec<PciId>,
    /// Bound driver names.
    pub drivers: Vec<String>,
    /// PCI addresses of the functions themselves.
    pub pci_addresses: Vec<PciAddr>,
    /// ACPI indexes.
    pub acpi_indexes: Vec<u32>,
    /// PF netdev names, optionally with VF ranges.
    pub pf_names: Vec<PfSelector<String>>,
    /// PF PCI addresses, optionally with VF ranges.
    pub root_devices: Vec<PfSelector<PciAddr>>,
    /// Link types (`ether`, `infiniband`), lower case.
    pub link_types: Vec<String>,
    /// Only functions with an RDMA device; also hands the RDMA char devices to the container.
    pub is_rdma: bool,
    /// Also hand `/dev/vhost-net` and `/dev/net/tun` to the container.
    pub need_vhost_net: bool,
}

/// A PF (by name or address) with an optional set of VF indexes (`ens1f0#0,2-7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfSelector<T> {
    /// The PF.
    pub pf: T,
    /// VF index ranges, inclusive; `None` means every VF.
    pub vfs: Option<Vec<(u32, u32)>>,
}

impl<T> PfSelector<T> {
    /// Whether the VF index is selected.
    pub fn has_vf(&self, index: u32) -> bool {
        self.vfs.as_ref().is_none_or(|r| r.iter().any(|(a, b)| (*a..=*b).contains(&index)))
    }
}

/// Where in the file a problem is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// Pool index and name (when known).
    pub pool: Option<(usize, Option<String>)>,
    /// Selector index.
    pub selector: Option<usize>,
    /// Key.
    pub key: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some((i, name)) = &self.pool {
            match name {
                Some(n) => write!(f, "pool {n:?}")?,
                None => write!(f, "resourceList[{i}]")?,
            }
            sep = " ";
        }
        if let Some(s) = self.selector {
            write!(f, "{sep}selector {s}")?;
            sep = " ";
        }
        if let Some(k) = &self.key {
            write!(f, "{sep}key {k:?}")?;
        }
        Ok(())
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("config file {path} is not valid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A value is wrong.
    #[error("config file {path}: {location}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Pool, selector and key.
        location: Location,
        /// What is wrong, quoting the value.
        problem: String,
    },
}

struct Ctx<'a> {
    path: &'a Path,
    loc: Location,
}

impl Ctx<'_> {
    fn err(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            location: self.loc.clone(),
            problem: problem.into(),
        }
    }
    fn key(&self, key: &str) -> Ctx<'_> {
        let mut loc = self.loc.clone();
        loc.key = Some(key.to_owned());
        Ctx { path: self.path, loc }
    }
}

/// Looks a key up the way Go's `encoding/json` does: exact match, else case-insensitive.
fn lookup<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn warn_unknown(obj: &Map<String, Value>, known: &[&str], ctx: &Ctx<'_>) {
    for k in obj.keys() {
        if !known.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            tracing::warn!(location = %ctx.loc, key = %k, "ignoring unknown config key");
        }
    }
}

impl Config {
    /// Reads and validates a config file. `default_prefix` applies to pools without
    /// `resourcePrefix`.
    pub fn load(path: &Path, default_prefix: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path, default_prefix)
    }

    /// Validates config text; `path` only names the file in errors.
    pub fn parse(text: &[u8], path: &Path, default_prefix: &str) -> Result<Self, ConfigError> {
        let root: Value = serde_json::from_slice(text)
            .map_err(|source| ConfigError::Json { path: path.to_owned(), source })?;
        let ctx = Ctx { path, loc: Location::default() };
        let Value::Object(root) = root else {
            return Err(ctx.err(format!(
                "top level must be an object with \"resourceList\", found {}",
                kind(&root)
            )));
        };
        warn_unknown(&root, &["resourceList"], &ctx);
        let list = match lookup(&root, "resourceList") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(other) => {
                return Err(ctx
                    .key("resourceList")
                    .err(format!("must be a list, found {}", kind(other))));
            }
        };
        if list.is_empty() {
            tracing::warn!(path = %path.display(), "config has no resource pools");
        }
        let mut pools = Vec::with_capacity(list.len());
        let mut seen = BTreeSet::new();
        for (i, v) in list.iter().enumerate() {
            let pool = parse_pool(i, v, path, default_prefix)?;
            if !seen.insert(pool.resource_name()) {
                let ctx = Ctx {
                    path,
                    loc: Location {
                        pool: Some((i, Some(pool.name.clone()))),
                        ..Default::default()
                    },
                };
                return Err(ctx.key("resourceName").err(format!(
                    "duplicate resource {:?}: resource names must be unique per prefix",
                    pool.resource_name()
                )));
            }
            pools.push(pool);
        }
        Ok(Config { pools })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

const POOL_KEYS: &[&str] = &[
    "resourceName",
    "resourcePrefix",
    "deviceType",
    "excludeTopology",
    "additionalInfo",
    "selectors",
];
const SELECTOR_KEYS: &[&str] = &[
    "vendors",
    "devices",
    "drivers",
    "pciAddresses",
    "acpiIndexes",
    "pfNames",
    "rootDevices",
    "linkTypes",
    "isRdma",
    "needVhostNet",
    "ddpProfiles",
    "pKeys",
    "vdpaType",
    "auxTypes",
];

fn parse_pool(
    i: usize,
    v: &Value,
    path: &Path,
    default_prefix: &str,
) -> Result<PoolConfig, ConfigError> {
    let mut ctx = Ctx { path, loc: Location { pool: Some((i, None)), ..Default::default() } };
    let Value::Object(obj) = v else {
        return Err(ctx.err(format!("a pool must be an object, found {}", kind(v))));
    };
    let name = match lookup(obj, "resourceName") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ctx
                .key("resourceName")
                .err(format!("must be a string, found {}", kind(other))));
        }
        None => {
            return Err(ctx.key("resourceName").err("missing: every pool needs a resourceName"));
        }
    };
    check_resource_name(&name)
        .map_err(|p| ctx.key("resourceName").err(format!("{name:?}: {p}")))?;
    ctx.loc.pool = Some((i, Some(name.clone())));
    warn_unknown(obj, POOL_KEYS, &ctx);

    let prefix = match lookup(obj, "resourcePrefix") {
        None | Some(Value::Null) => default_prefix.to_owned(),
        Some(Value::String(s)) if s.is_empty() => default_prefix.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ctx
                .key("resourcePrefix")
                .err(format!("must be a string, found {}", kind(other))));
        }
    };
    check_prefix(&prefix).map_err(|p| ctx.key("resourcePrefix").err(format!("{prefix:?}: {p}")))?;

    let device_type = match lookup(obj, "deviceType") {
        None | Some(Value::Null) => DeviceType::NetDevice,
        Some(Value::String(s)) => match s.as_str() {
            "" | "netDevice" => DeviceType::NetDevice,
            "accelerator" => DeviceType::Accelerator,
            "auxNetDevice" => {
                return Err(ctx
                    .key("deviceType")
                    .err("\"auxNetDevice\" (subfunctions) is not supported by this plugin; use netDevice or accelerator"));
            }
            other => {
                return Err(ctx
                    .key("deviceType")
                    .err(format!("{other:?}: expected \"netDevice\" or \"accelerator\"")));
            }
        },
        Some(other) => {
            return Err(ctx
                .key("deviceType")
                .err(format!("must be a string, found {}", kind(other))));
        }
    };
    let exclude_topology = get_bool(obj, "excludeTopology", &ctx)?;
    let additional_info = parse_additional_info(obj, &ctx)?;

    let selectors = match lookup(obj, "selectors") {
        None | Some(Value::Null) => vec![Selector::default()],
        Some(Value::Object(o)) => {
            ctx.loc.selector = Some(0);
            vec![parse_selector(o, device_type, &ctx)?]
        }
        Some(Value::Array(list)) if list.is_empty() => vec![Selector::default()],
        Some(Value::Array(list)) => {
            let mut out = Vec::with_capacity(list.len());
            for (s, v) in list.iter().enumerate() {
                ctx.loc.selector = Some(s);
                let Value::Object(o) = v else {
                    return Err(ctx.err(format!("a selector must be an object, found {}", kind(v))));
                };
                out.push(parse_selector(o, device_type, &ctx)?);
            }
            out
        }
        Some(other) => {
            return Err(ctx
                .key("selectors")
                .err(format!("must be an object or a list of objects, found {}", kind(other))));
        }
    };
    Ok(PoolConfig { prefix, name, device_type, exclude_topology, additional_info, selectors })
}

/// The Go plugin's rule (`^[a-zA-Z0-9_-]+$`), plus what the kubelet itself requires of the name
/// part of an extended resource (at most 63 characters, alphanumeric at both ends).
fn check_resource_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err("only letters, digits, '_' and '-' are allowed");
    }
    if name.len() > 63 {
        return Err("longer than 63 characters");
    }
    let ends = [name.as_bytes()[0], name.as_bytes()[name.len() - 1]];
    if !ends.iter().all(u8::is_ascii_alphanumeric) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// A DNS subdomain, as the kubelet requires of a resource prefix.
pub fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > 253 {
        return Err("must be a DNS subdomain of 1 to 253 characters");
    }
    for label in prefix.split('.') {
        let b = label.as_bytes();
        if b.is_empty()
            || b.len() > 63
            || !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            || b[0] == b'-'
            || b[b.len() - 1] == b'-'
        {
            return Err(
                "must be a DNS subdomain: lower-case letters, digits, '-' and '.' (e.g. intel.com)",
            );
        }
    }
    Ok(())
}

fn get_bool(obj: &Map<String, Value>, key: &str, ctx: &Ctx<'_>) -> Result<bool, ConfigError> {
    match lookup(obj, key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ctx.key(key).err(format!("must be true or false, found {other}"))),
    }
}

fn parse_additional_info(
    obj: &Map<String, Value>,
    ctx: &Ctx<'_>,
) -> Result<AdditionalInfo, ConfigError> {
    let ctx = ctx.key("additionalInfo");
    let mut out = AdditionalInfo::default();
    let entries = match lookup(obj, "additionalInfo") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(o)) => o,
        Some(other) => return Err(ctx.err(format!("must be an object, found {}", kind(other)))),
    };
    for (dev, v) in entries {
        let Value::Object(kv) = v else {
            return Err(
                ctx.err(format!("entry {dev:?} must be an object of strings, found {}", kind(v)))
            );
        };
        let mut map = BTreeMap::new();
        for (k, v) in kv {
            let Value::String(s) = v else {
                return Err(
                    ctx.err(format!("entry {dev:?} key {k:?} must be a string, found {}", kind(v)))
                );
            };
            map.insert(k.clone(), s.clone());
        }
        if dev == "*" {
            out.all = Some(map);
        } else {
            let addr: PciAddr = dev.parse().map_err(|e| {
                ctx.err(format!("entry key {dev:?} must be \"*\" or a PCI address: {e}"))
            })?;
            out.per_device.insert(addr, map);
        }
    }
    Ok(out)
}

fn strings(obj: &Map<String, Value>, key: &str, ctx: &Ctx<'_>) -> Result<Vec<String>, ConfigError> {
    match lookup(obj, key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(ctx.key(key).err(format!("values must be strings, found {other}"))),
            })
            .collect(),
        Some(other) => {
            Err(ctx.key(key).err(format!("must be a list of strings, found {}", kind(other))))
        }
    }
}

fn parse_each<T>(
    obj: &Map<String, Value>,
    key: &str,
    ctx: &Ctx<'_>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    strings(obj, key, ctx)?
        .iter()
        .map(|s| parse(s).map_err(|p| ctx.key(key).err(format!("value {s:?}: {p}"))))
        .collect()
}

fn parse_selector(
    obj: &Map<String, Value>,
    device_type: DeviceType,
    ctx: &Ctx<'_>,
) -> Result<Selector, ConfigError> {
    warn_unknown(obj, SELECTOR_KEYS, ctx);
    for unsupported in ["ddpProfiles", "pKeys", "auxTypes"] {
        if !strings(obj, unsupported, ctx)?.is_empty() {
            return Err(ctx
                .key(unsupported)
                .err("this selector is not supported by this plugin; remove it"));
        }
    }
    match lookup(obj, "vdpaType") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(v) => {
            return Err(ctx
                .key("vdpaType")
                .err(format!("{v}: vDPA devices are not supported by this plugin")));
        }
    }
    let sel = Selector {
        vendors: parse_each(obj, "vendors", ctx, |s| {
            s.parse::<PciId>().map_err(|e| e.to_string())
        })?,
        devices: parse_each(obj, "devices", ctx, |s| {
            s.parse::<PciId>().map_err(|e| e.to_string())
        })?,
        drivers: parse_each(obj, "drivers", ctx, |s| {
            let t = s.trim();
            if t.is_empty() || t.contains('/') {
                Err("a driver name must be non-empty and contain no '/'".into())
            } else {
                Ok(t.to_owned())
            }
        })?,
        pci_addresses: parse_each(obj, "pciAddresses", ctx, |s| {
            s.parse::<PciAddr>().map_err(|e| e.to_string())
        })?,
        acpi_indexes: parse_each(obj, "acpiIndexes", ctx, |s| {
            s.trim().parse::<u32>().map_err(|_| "expected a non-negative integer".to_owned())
        })?,
        pf_names: parse_each(obj, "pfNames", ctx, |s| {
            parse_pf_selector(s, |name| {
                if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                    Err("a PF name must be an interface name of 1 to 15 characters".into())
                } else {
                    Ok(name.to_owned())
                }
            })
        })?,
        root_devices: parse_each(obj, "rootDevices", ctx, |s| {
            parse_pf_selector(s, |a| a.parse::<PciAddr>().map_err(|e| e.to_string()))
        })?,
        link_types: parse_each(obj, "linkTypes", ctx, |s| {
            let t = s.trim().to_ascii_lowercase();
            if t.is_empty() { Err("a link type must not be empty".into()) } else { Ok(t) }
        })?,
        is_rdma: get_bool(obj, "isRdma", ctx)?,
        need_vhost_net: get_bool(obj, "needVhostNet", ctx)?,
    };
    if sel.link_types.len() > 1 {
        tracing::warn!(location = %ctx.loc, "more than one linkTypes value: a VF has one link type, so only one can match");
    }
    if device_type == DeviceType::Accelerator
        && (!sel.pf_names.is_empty() || !sel.link_types.is_empty())
    {
        tracing::warn!(location = %ctx.loc, "pfNames/linkTypes on an accelerator pool only match functions with a PF netdev");
    }
    Ok(sel)
}

/// Parses `<pf>` or `<pf>#<ranges>` where ranges are `N` or `A-B`, comma-separated.
fn parse_pf_selector<T>(
    s: &str,
    pf: impl Fn(&str) -> Result<T, String>,
) -> Result<PfSelector<T>, String> {
    let (head, ranges) = match s.split_once('#') {
        None => (s, None),
        Some((h, r)) => (h, Some(r)),
    };
    let pf = pf(head.trim())?;
    let Some(ranges) = ranges else { return Ok(PfSelector { pf, vfs: None }) };
    if ranges.contains('#') {
        return Err("more than one '#'".into());
    }
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("VF index {:?} is not a non-negative integer", t.trim()))
    };
    let mut vfs = Vec::new();
    for part in ranges.split(',') {
        if part.trim().is_empty() {
            return Err("empty VF range (expected e.g. ens1f0#0,2-7)".into());
        }
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if a > b {
            return Err(format!("VF range {a}-{b} ends before it starts"));
        }
        vfs.push((a, b));
    }
    Ok(PfSelector { pf, vfs: Some(vfs) })
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s.as_bytes(), Path::new("/etc/pcidp/config.json"), DEFAULT_RESOURCE_PREFIX)
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn go_readme_example_parses() {
        let c = parse(
            r#"{
            "resourceList": [
                {
                    "resourceName": "intel_sriov_netdevice",
                    "selectors": [{
                        "vendors": ["8086"],
                        "devices": ["154c", "10ed", "1889"],
                        "drivers": ["iavf", "ixgbevf"]
                    }]
                },
                {
                    "resourceName": "intel_sriov_dpdk",
                    "resourcePrefix": "example.org",
                    "excludeTopology": true,
                    "selectors": {
                        "vendors": ["8086"],
                        "devices": ["154c"],
                        "drivers": ["vfio-pci"],
                        "pfNames": ["enp0s0f0", "enp2s2f1#0,2-7"],
                        "needVhostNet": true
                    },
                    "additionalInfo": {"*": {"token": "3e49019f"}, "0000:3b:02.1": {"token": "x"}}
                },
                {
                    "resourceName": "mlnx_sriov_rdma",
                    "selectors": [{"vendors": ["15b3"], "devices": ["1018"], "drivers": ["mlx5_core"], "IsRdma": true,
                                   "linkTypes": ["Ether"], "rootDevices": ["0000:d8:00.0#1-3"]}]
                },
                {"resourceName": "qat", "deviceType": "accelerator"}
            ]
        }"#,
        )
        .unwrap();
        assert_eq!(c.pools.len(), 4);
        let p0 = &c.pools[0];
        assert_eq!(p0.resource_name(), "intel.com/intel_sriov_netdevice");
        assert_eq!(p0.selectors[0].vendors, vec![PciId(0x8086)]);
        assert_eq!(p0.selectors[0].devices, vec![PciId(0x154c), PciId(0x10ed), PciId(0x1889)]);
        let p1 = &c.pools[1];
        assert_eq!(p1.resource_name(), "example.org/intel_sriov_dpdk");
        assert!(p1.exclude_topology);
        let s = &p1.selectors[0];
        assert!(s.need_vhost_net);
        assert_eq!(s.pf_names[0], PfSelector { pf: "enp0s0f0".into(), vfs: None });
        assert_eq!(
            s.pf_names[1],
            PfSelector { pf: "enp2s2f1".into(), vfs: Some(vec![(0, 0), (2, 7)]) }
        );
        assert!(s.pf_names[1].has_vf(5) && !s.pf_names[1].has_vf(1) && !s.pf_names[1].has_vf(8));
        let addr: PciAddr = "0000:3b:02.1".parse().unwrap();
        let other: PciAddr = "0000:3b:02.2".parse().unwrap();
        assert_eq!(p1.additional_info.for_device(addr).unwrap()["token"], "x");
        assert_eq!(p1.additional_info.for_device(other).unwrap()["token"], "3e49019f");
        let r = &c.pools[2].selectors[0];
        assert!(r.is_rdma, "IsRdma matched case-insensitively, as Go does");
        assert_eq!(r.link_types, vec!["ether".to_string()]);
        assert_eq!(r.root_devices[0].vfs, Some(vec![(1, 3)]));
        assert_eq!(c.pools[3].device_type, DeviceType::Accelerator);
        assert_eq!(c.pools[3].selectors, vec![Selector::default()]);
    }

    #[test]
    fn errors_name_pool_selector_key_and_value() {
        let e = err(
            r#"{"resourceList":[{"resourceName":"a","selectors":[{},{"pfNames":["ens1f0#3-1"]}]}]}"#,
        );
        assert!(e.contains("pool \"a\" selector 1 key \"pfNames\""), "{e}");
        assert!(e.contains("\"ens1f0#3-1\"") && e.contains("3-1 ends before it starts"), "{e}");

        let e = err(r#"{"resourceList":[{"resourceName":"a","selectors":{"vendors":["80866"]}}]}"#);
        assert!(e.contains("selector 0 key \"vendors\"") && e.contains("\"80866\""), "{e}");

        let e = err(
            r#"{"resourceList":[{"resourceName":"a","selectors":[{"pciAddresses":["0000:3b:02"]}]}]}"#,
        );
        assert!(e.contains("pciAddresses") && e.contains("0000:3b:02"), "{e}");

        let e = err(r#"{"resourceList":[{"resourceName":"a.b"}]}"#);
        assert!(e.contains("resourceList[0]") && e.contains("\"a.b\""), "{e}");

        let e = err(r#"{"resourceList":[{"resourceName":"a","resourcePrefix":"Intel.com"}]}"#);
        assert!(e.contains("resourcePrefix") && e.contains("Intel.com"), "{e}");

        let e = err(r#"{"resourceList":[{"resourceName":"a"},{"resourceName":"a"}]}"#);
        assert!(e.contains("duplicate resource \"intel.com/a\""), "{e}");

        let e = err(r#"{"resourceList":[{"resourceName":"a","deviceType":"gpu"}]}"#);
        assert!(e.contains("deviceType") && e.contains("\"gpu\""), "{e}");

        let e = err(r#"{"resourceList":[{"resourceName":"a","selectors":[{"isRdma":"yes"}]}]}"#);
        assert!(e.contains("isRdma") && e.contains("\"yes\""), "{e}");

        let e =
            err(r#"{"resourceList":[{"resourceName":"a","selectors":[{"ddpProfiles":["GTP"]}]}]}"#);
        assert!(e.contains("ddpProfiles") && e.contains("not supported"), "{e}");

        let e =
            err(r#"{"resourceList":[{"resourceName":"a","additionalInfo":{"nope":{"k":"v"}}}]}"#);
        assert!(e.contains("additionalInfo") && e.contains("\"nope\""), "{e}");

        let e = err(
            r#"{"resourceList":[{"resourceName":"a","selectors":[{"rootDevices":["0000:3b:00.0#x"]}]}]}"#,
        );
        assert!(e.contains("rootDevices") && e.contains("\"x\""), "{e}");

        let e = err("{not json");
        assert!(e.contains("/etc/pcidp/config.json is not valid JSON"), "{e}");
        let e = err(r#"{"resourceList":[{"selectors":{}}]}"#);
        assert!(e.contains("resourceList[0] key \"resourceName\": missing"), "{e}");
    }

    #[test]
    fn same_name_different_prefix_is_allowed_and_same_prefix_is_not() {
        let c = parse(
            r#"{"resourceList":[{"resourceName":"a"},{"resourceName":"a","resourcePrefix":"example.org"}]}"#,
        )
        .unwrap();
        assert_eq!(c.pools[1].resource_name(), "example.org/a");
    }

    #[test]
    fn range_forms() {
        let ok = |s: &str| parse_pf_selector(s, |n| Ok::<_, String>(n.to_owned())).unwrap();
        assert_eq!(ok("ens1f0").vfs, None);
        assert_eq!(ok("ens1f0#0,2-7,9").vfs, Some(vec![(0, 0), (2, 7), (9, 9)]));
        assert_eq!(ok("ens1f0# 1 - 2").vfs, Some(vec![(1, 2)]));
        for bad in ["ens1f0#", "ens1f0#1,,2", "ens1f0#a", "ens1f0#1#2", "ens1f0#-1", "ens1f0#4-2"] {
            assert!(parse_pf_selector(bad, |n| Ok::<_, String>(n.to_owned())).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_and_missing_lists() {
        assert_eq!(parse(r#"{"resourceList": []}"#).unwrap().pools, vec![]);
        assert_eq!(parse("{}").unwrap().pools, vec![]);
        assert!(err("[]").contains("top level must be an object"));
    }
}
