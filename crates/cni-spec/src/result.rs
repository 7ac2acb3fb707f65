//! The success result of `ADD` and its conversions between versions.
//!
//! [`CniResult`] is the 1.1 model (a superset of every supported version). Reading
//! ([`parse_result`]) honours the result's own `cniVersion`; writing
//! ([`CniResult::to_json`]) emits the shape of the requested version. Conversions follow the Go
//! library's converters (`pkg/types/100`, `pkg/types/040`) field for field:
//!
//! | from → to | what happens |
//! |---|---|
//! | 1.x → 0.3.x/0.4.0 | `ips[].version` computed from the address ("4"/"6"); interface `mtu`, `socketPath`, `pciID` dropped; routes copied whole (the Go types share one route struct, so `mtu`/`advmss`/`priority`/`table`/`scope` survive) |
//! | 0.3.x/0.4.0 → 1.x | `ips[].version` dropped; interfaces keep `name`, `mac`, `sandbox`; routes copied |
//! | 0.3.x ↔ 0.4.0, 1.0.0 ↔ 1.1.0 | same fields, copied |
//!
//! Reading a 0.x result ignores the 1.1-only interface keys, like the Go 0.4.0 type does.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::CniError;
use crate::net::{IpPrefix, Mac};
use crate::version::CniVersion;

/// A CNI result (1.1 model). The version is chosen when it is written out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    /// Interfaces created or moved by the plugin (absent from IPAM results).
    pub interfaces: Vec<Interface>,
    /// Assigned addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

/// One interface in a result.
///
/// `mac`, `sandbox`, `socket_path` and `pci_id` stay strings: results from other plugins are
/// passed on unchanged (InfiniBand plugins report 20-byte hardware addresses, for example).
/// [`Interface::mac_addr`] parses the MAC when a plugin needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(
        default,
        deserialize_with = "non_empty_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub mac: Option<String>,
    /// MTU, if known (1.1.0).
    #[serde(default, deserialize_with = "non_zero", skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for container interfaces; `None` for host interfaces.
    #[serde(
        default,
        deserialize_with = "non_empty_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sandbox: Option<String>,
    /// Socket path for userspace interfaces such as vhost-user (1.1.0).
    #[serde(
        rename = "socketPath",
        default,
        deserialize_with = "non_empty_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    /// PCI address of the device, e.g. a VF (1.1.0).
    #[serde(
        rename = "pciID",
        default,
        deserialize_with = "non_empty_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub pci_id: Option<String>,
}

impl Interface {
    /// An interface with only a name.
    pub fn new(name: impl Into<String>) -> Interface {
        Interface { name: name.into(), ..Interface::default() }
    }

    /// Sets the MAC (canonical lowercase form).
    pub fn with_mac(mut self, mac: Mac) -> Interface {
        self.mac = Some(mac.to_string());
        self
    }

    /// Sets the sandbox (the netns path).
    pub fn with_sandbox(mut self, sandbox: impl Into<String>) -> Interface {
        self.sandbox = Some(sandbox.into());
        self
    }

    /// Sets the MTU.
    pub fn with_mtu(mut self, mtu: u32) -> Interface {
        self.mtu = Some(mtu);
        self
    }

    /// Sets the PCI address.
    pub fn with_pci_id(mut self, pci_id: impl Into<String>) -> Interface {
        self.pci_id = Some(pci_id.into());
        self
    }

    /// The MAC as an Ethernet address: `None` if absent, `Some(Err)` if it is not a 6-octet
    /// MAC.
    pub fn mac_addr(&self) -> Option<Result<Mac, crate::net::AddrParseError>> {
        self.mac.as_deref().map(str::parse)
    }
}

/// One assigned address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length (`192.0.2.5/24`).
    pub address: IpPrefix,
    /// Gateway, if any.
    #[serde(default, deserialize_with = "optional_ip", skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`] (absent in IPAM results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// An address without gateway or interface.
    pub fn new(address: IpPrefix) -> IpConfig {
        IpConfig { address, gateway: None, interface: None }
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpPrefix,
    /// Next hop; `None` means the plugin's default.
    #[serde(default, deserialize_with = "optional_ip", skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, deserialize_with = "non_zero", skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, deserialize_with = "non_zero", skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Route priority/metric (1.1.0).
    #[serde(default, deserialize_with = "non_zero", skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Route scope (1.1.0; 0 universe, 253 link, 254 host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` via the default next hop.
    pub fn new(dst: IpPrefix) -> Route {
        Route { dst, gw: None, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }

    /// Sets the next hop.
    pub fn via(mut self, gw: IpAddr) -> Route {
        self.gw = Some(gw);
        self
    }
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers in priority order.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(
        default,
        deserialize_with = "non_empty_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub domain: Option<String>,
    /// Search domains in priority order.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set (an empty `dns` is omitted from output).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// The same result as `version` can express it (drops interface `mtu`, `socketPath` and
    /// `pciID` for 0.x, like the Go down-converter).
    pub fn convert_to(&self, version: CniVersion) -> CniResult {
        let mut out = self.clone();
        if version.is_pre_1_0() {
            for i in &mut out.interfaces {
                i.mtu = None;
                i.socket_path = None;
                i.pci_id = None;
            }
        }
        out
    }

    /// The result as JSON in `version`'s shape, with `cniVersion` set.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), Value::String(version.as_str().into()));
        let converted = self.convert_to(version);
        if !converted.interfaces.is_empty() {
            let list = if version.is_pre_1_0() {
                to_value(converted.interfaces.iter().map(Interface04::from).collect::<Vec<_>>())
            } else {
                to_value(&converted.interfaces)
            };
            obj.insert("interfaces".into(), list);
        }
        if !converted.ips.is_empty() {
            let list = if version.is_pre_1_0() {
                to_value(converted.ips.iter().map(IpConfig04::from).collect::<Vec<_>>())
            } else {
                to_value(&converted.ips)
            };
            obj.insert("ips".into(), list);
        }
        if !converted.routes.is_empty() {
            obj.insert("routes".into(), to_value(&converted.routes));
        }
        if !converted.dns.is_empty() {
            obj.insert("dns".into(), to_value(&converted.dns));
        }
        Value::Object(obj)
    }

    /// The interface an address belongs to, if its index is set and valid.
    pub fn interface_of(&self, ip: &IpConfig) -> Option<&Interface> {
        ip.interface.and_then(|i| self.interfaces.get(i))
    }

    /// Appends an interface and returns its index.
    pub fn push_interface(&mut self, interface: Interface) -> usize {
        self.interfaces.push(interface);
        self.interfaces.len() - 1
    }

    /// Merges an (abbreviated) IPAM result: its addresses are attached to interface
    /// `interface`, its routes appended, and its DNS used if this result has none.
    pub fn merge_ipam(&mut self, ipam: CniResult, interface: usize) {
        self.ips.extend(ipam.ips.into_iter().map(|mut ip| {
            ip.interface = Some(interface);
            ip
        }));
        self.routes.extend(ipam.routes);
        if self.dns.is_empty() {
            self.dns = ipam.dns;
        }
    }
}

fn to_value<T: Serialize>(v: T) -> Value {
    // Our result types only hold strings, numbers and lists; serialization cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A result read from JSON, with the version it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedResult {
    /// The result's own `cniVersion` (or the assumed default).
    pub version: CniVersion,
    /// The result.
    pub result: CniResult,
}

/// Why a result could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// Not JSON.
    #[error("invalid JSON")]
    Syntax(#[source] serde_json::Error),
    /// Not a JSON object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// `cniVersion` is not supported (or not a string).
    #[error("unsupported result cniVersion {0}")]
    UnsupportedVersion(String),
    /// A field does not match the version's schema.
    #[error("key `{path}`")]
    Field {
        /// Path of the offending key (`ips[0].address`).
        path: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// `ips[i].version` disagrees with the address family.
    #[error("key `ips[{index}].version` is {version:?} but address {address} is IPv{family}")]
    IpVersionMismatch {
        /// Index in `ips`.
        index: usize,
        /// The `version` given.
        version: String,
        /// The address.
        address: IpPrefix,
        /// 4 or 6.
        family: u8,
    },
}

impl ResultError {
    /// The spec error for this failure while reading `what` (e.g. `"prevResult"`): code 1 for
    /// an unsupported version, code 6 otherwise; `details` carries the key path and cause.
    pub fn into_cni(self, what: &str) -> CniError {
        let details = match &self {
            ResultError::Syntax(e) => format!("{what}: invalid JSON: {e}"),
            ResultError::Field { path, source } => format!("{what}: key `{path}`: {source}"),
            other => format!("{what}: {other}"),
        };
        match self {
            ResultError::UnsupportedVersion(_) => CniError::new(
                crate::error::ErrorCode::INCOMPATIBLE_VERSION,
                format!("incompatible CNI version in {what}"),
                details,
            ),
            _ => CniError::decoding(what, details),
        }
    }
}

/// Reads a result from JSON bytes (`default_version` applies when it has no `cniVersion`).
pub fn parse_result(
    bytes: &[u8],
    default_version: CniVersion,
) -> Result<VersionedResult, ResultError> {
    let value: Value = serde_json::from_slice(bytes).map_err(ResultError::Syntax)?;
    result_from_value(value, default_version)
}

/// Reads a result from a JSON value (`default_version` applies when it has no `cniVersion`,
/// as for a `prevResult` written by a pre-1.0 runtime).
pub fn result_from_value(
    value: Value,
    default_version: CniVersion,
) -> Result<VersionedResult, ResultError> {
    let Value::Object(obj) = value else {
        return Err(ResultError::NotAnObject { found: json_type(&value) });
    };
    let version = match obj.get("cniVersion") {
        None | Some(Value::Null) => default_version,
        Some(Value::String(s)) if s.is_empty() => default_version,
        Some(Value::String(s)) => {
            s.parse().map_err(|_| ResultError::UnsupportedVersion(format!("{s:?}")))?
        }
        Some(other) => return Err(ResultError::UnsupportedVersion(other.to_string())),
    };
    let value = Value::Object(obj);
    let result = if version.is_pre_1_0() {
        let wire: Wire04 = decode(value)?;
        let mut ips = Vec::with_capacity(wire.ips.len());
        for (index, ip) in wire.ips.into_iter().enumerate() {
            if let Some(v) = ip.version.as_deref().filter(|v| !v.is_empty()) {
                let family = if ip.address.is_ipv4() { 4 } else { 6 };
                if v != family.to_string() {
                    return Err(ResultError::IpVersionMismatch {
                        index,
                        version: v.to_owned(),
                        address: ip.address,
                        family,
                    });
                }
            }
            ips.push(IpConfig {
                address: ip.address,
                gateway: ip.gateway,
                interface: ip.interface,
            });
        }
        CniResult {
            interfaces: wire.interfaces.into_iter().map(Interface::from).collect(),
            ips,
            routes: wire.routes,
            dns: wire.dns,
        }
    } else {
        let wire: Wire10 = decode(value)?;
        CniResult { interfaces: wire.interfaces, ips: wire.ips, routes: wire.routes, dns: wire.dns }
    };
    Ok(VersionedResult { version, result })
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ResultError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| ResultError::Field { path: e.path().to_string(), source: e.into_inner() })
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize)]
struct Wire10 {
    #[serde(default, deserialize_with = "null_as_default")]
    interfaces: Vec<Interface>,
    #[serde(default, deserialize_with = "null_as_default")]
    ips: Vec<IpConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    routes: Vec<Route>,
    #[serde(default, deserialize_with = "null_as_default")]
    dns: Dns,
}

#[derive(Deserialize)]
struct Wire04 {
    #[serde(default, deserialize_with = "null_as_default")]
    interfaces: Vec<Interface04>,
    #[serde(default, deserialize_with = "null_as_default")]
    ips: Vec<IpConfig04>,
    #[serde(default, deserialize_with = "null_as_default")]
    routes: Vec<Route>,
    #[serde(default, deserialize_with = "null_as_default")]
    dns: Dns,
}

/// The 0.3.x/0.4.0 interface: no `mtu`, `socketPath`, `pciID`.
#[derive(Serialize, Deserialize)]
struct Interface04 {
    name: String,
    #[serde(
        default,
        deserialize_with = "non_empty_string",
        skip_serializing_if = "Option::is_none"
    )]
    mac: Option<String>,
    #[serde(
        default,
        deserialize_with = "non_empty_string",
        skip_serializing_if = "Option::is_none"
    )]
    sandbox: Option<String>,
}

impl From<&Interface> for Interface04 {
    fn from(i: &Interface) -> Self {
        Interface04 { name: i.name.clone(), mac: i.mac.clone(), sandbox: i.sandbox.clone() }
    }
}

impl From<Interface04> for Interface {
    fn from(i: Interface04) -> Self {
        Interface { name: i.name, mac: i.mac, sandbox: i.sandbox, ..Interface::default() }
    }
}

/// The 0.3.x/0.4.0 address: with `version`.
#[derive(Serialize, Deserialize)]
struct IpConfig04 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: IpPrefix,
    #[serde(default, deserialize_with = "optional_ip", skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

impl From<&IpConfig> for IpConfig04 {
    fn from(ip: &IpConfig) -> Self {
        let version = if ip.address.is_ipv4() { "4" } else { "6" };
        IpConfig04 {
            version: Some(version.to_owned()),
            interface: ip.interface,
            address: ip.address,
            gateway: ip.gateway,
        }
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn non_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.filter(|v| *v != 0))
}

/// An IP address where `""` and `null` mean "none" (the Go library accepts both).
fn optional_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("invalid IP address {s:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    /// The bridge result from the spec's 1.x "ADD" example (Section 4), as 1.1.0.
    fn spec_bridge_1x(version: &str) -> Value {
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
            ],
            "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.1.0.1"]}
        })
    }

    /// The same result as 0.4.0 writes it (the spec's 0.4.0 prevResult example shape).
    fn spec_bridge_04(version: &str) -> Value {
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
            ],
            "ips": [{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.1.0.1"]}
        })
    }

    /// A 1.1.0 result using every 1.1 field, dual stack.
    fn full_11() -> Value {
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "enp59s0f0v1", "mac": "02:00:5e:00:53:01", "mtu": 9000,
                 "sandbox": "/var/run/netns/pod1", "pciID": "0000:3b:02.1"},
                {"name": "vhu1", "socketPath": "/var/run/vhost/vhu1.sock"}
            ],
            "ips": [
                {"address": "192.0.2.5/24", "gateway": "192.0.2.1", "interface": 0},
                {"address": "2001:db8::5/64", "gateway": "2001:db8::1", "interface": 0}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "192.0.2.1", "mtu": 1400, "advmss": 1360,
                 "priority": 100, "table": 100, "scope": 0},
                {"dst": "198.51.100.0/24", "scope": 253},
                {"dst": "::/0", "gw": "2001:db8::1"}
            ],
            "dns": {"nameservers": ["192.0.2.53"], "domain": "example.test",
                    "search": ["example.test"], "options": ["ndots:2"]}
        })
    }

    fn parse(v: &Value) -> VersionedResult {
        parse_result(v.to_string().as_bytes(), CniVersion::V1_1_0).unwrap()
    }

    #[test]
    fn every_version_round_trips_the_spec_example() {
        for v in ["1.0.0", "1.1.0"] {
            let input = spec_bridge_1x(v);
            let r = parse(&input);
            assert_eq!(r.version.as_str(), v);
            assert_eq!(r.result.to_json(r.version), input);
        }
        for v in ["0.3.0", "0.3.1", "0.4.0"] {
            let input = spec_bridge_04(v);
            let r = parse(&input);
            assert_eq!(r.version.as_str(), v);
            assert_eq!(r.result.to_json(r.version), input);
        }
        let full = parse(&full_11());
        assert_eq!(full.result.to_json(CniVersion::V1_1_0), full_11());
        assert_eq!(full.result.interfaces[0].mtu, Some(9000));
        assert_eq!(full.result.routes[0].table, Some(100));
        assert_eq!(full.result.routes[0].scope, Some(0));
        assert_eq!(full.result.routes[1].scope, Some(253));
    }

    #[test]
    fn downconvert_1x_to_04x_adds_version_and_drops_1_1_interface_fields() {
        let full = parse(&full_11()).result;
        for v in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
            let out = full.to_json(v);
            assert_eq!(
                out,
                json!({
                    "cniVersion": v.as_str(),
                    "interfaces": [
                        {"name": "enp59s0f0v1", "mac": "02:00:5e:00:53:01", "sandbox": "/var/run/netns/pod1"},
                        {"name": "vhu1"}
                    ],
                    "ips": [
                        {"version": "4", "address": "192.0.2.5/24", "gateway": "192.0.2.1", "interface": 0},
                        {"version": "6", "address": "2001:db8::5/64", "gateway": "2001:db8::1", "interface": 0}
                    ],
                    // Go's 0.4.0 type shares the route struct: route attributes survive.
                    "routes": [
                        {"dst": "0.0.0.0/0", "gw": "192.0.2.1", "mtu": 1400, "advmss": 1360,
                         "priority": 100, "table": 100, "scope": 0},
                        {"dst": "198.51.100.0/24", "scope": 253},
                        {"dst": "::/0", "gw": "2001:db8::1"}
                    ],
                    "dns": {"nameservers": ["192.0.2.53"], "domain": "example.test",
                            "search": ["example.test"], "options": ["ndots:2"]}
                })
            );
        }
    }

    #[test]
    fn upconvert_04x_to_1x_drops_ip_version() {
        let old = parse(&spec_bridge_04("0.4.0"));
        assert_eq!(old.result.to_json(CniVersion::V1_0_0), spec_bridge_1x("1.0.0"));
        assert_eq!(old.result.to_json(CniVersion::V1_1_0), spec_bridge_1x("1.1.0"));
        // And back down: identical to the original.
        let up = parse(&old.result.to_json(CniVersion::V1_1_0));
        assert_eq!(up.result.to_json(CniVersion::V0_4_0), spec_bridge_04("0.4.0"));
    }

    #[test]
    fn between_1_0_and_1_1_fields_are_kept_like_go() {
        // Go's 1.1.0 -> 1.0.0 converter copies the struct; nothing is dropped.
        let full = parse(&full_11()).result;
        let as10 = full.to_json(CniVersion::V1_0_0);
        assert_eq!(as10["interfaces"][0]["mtu"], 9000);
        assert_eq!(as10["interfaces"][0]["pciID"], "0000:3b:02.1");
        assert_eq!(as10["cniVersion"], "1.0.0");
    }

    #[test]
    fn reading_0x_ignores_1_1_interface_keys() {
        let v = json!({"cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "mtu": 1500, "pciID": "0000:3b:02.1", "socketPath": "/x"}]});
        let r = parse(&v).result;
        assert_eq!(r.interfaces, vec![Interface::new("eth0")]);
        assert_eq!(r.convert_to(CniVersion::V1_1_0), r);
    }

    #[test]
    fn ipam_abbreviated_results_and_missing_version() {
        // host-local style: no interfaces, no interface index.
        let bytes = br#"{"ips":[{"address":"203.0.113.2/29","gateway":"203.0.113.1"}],"dns":{}}"#;
        let r = parse_result(bytes, CniVersion::V0_4_0).unwrap();
        assert_eq!(r.version, CniVersion::V0_4_0, "default applies without cniVersion");
        assert_eq!(r.result.ips.len(), 1);
        assert_eq!(r.result.ips[0].interface, None);
        assert!(r.result.interfaces.is_empty());
        assert_eq!(
            r.result.to_json(CniVersion::V1_0_0),
            json!({"cniVersion": "1.0.0", "ips": [{"address": "203.0.113.2/29", "gateway": "203.0.113.1"}]})
        );
    }

    #[test]
    fn empty_strings_nulls_and_zeroes_are_absent() {
        let v = json!({"cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "", "sandbox": "", "mtu": 0}],
            "ips": [{"address": "192.0.2.2/24", "gateway": ""}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "", "mtu": 0, "priority": 0}],
            "dns": {"nameservers": null, "domain": ""}});
        let r = parse(&v).result;
        assert_eq!(r.interfaces[0], Interface::new("eth0"));
        assert_eq!(r.ips[0].gateway, None);
        assert_eq!(r.routes[0], Route::new("0.0.0.0/0".parse().unwrap()));
        assert!(r.dns.is_empty());
        assert_eq!(
            r.to_json(CniVersion::V1_1_0),
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}],
                   "ips": [{"address": "192.0.2.2/24"}], "routes": [{"dst": "0.0.0.0/0"}]})
        );
        let nulls = json!({"cniVersion": "1.0.0", "interfaces": null, "ips": null, "routes": null, "dns": null});
        assert_eq!(parse(&nulls).result, CniResult::default());
    }

    #[test]
    fn errors_name_the_key() {
        let bad_addr = json!({"cniVersion": "1.0.0", "ips": [{"address": "192.0.2.2"}]});
        let err = parse_result(bad_addr.to_string().as_bytes(), CniVersion::V1_0_0).unwrap_err();
        assert!(
            matches!(&err, ResultError::Field { path, .. } if path == "ips[0].address"),
            "{err:?}"
        );
        let cni = err.into_cni("prevResult");
        assert_eq!(cni.code().get(), 6);
        assert!(
            cni.details().starts_with("prevResult: key `ips[0].address`: invalid IP prefix"),
            "{}",
            cni.details()
        );

        let bad_route =
            json!({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "scope": 300}]});
        let err = parse_result(bad_route.to_string().as_bytes(), CniVersion::V1_1_0).unwrap_err();
        assert!(
            matches!(&err, ResultError::Field { path, .. } if path == "routes[0].scope"),
            "{err:?}"
        );

        let missing_name =
            json!({"cniVersion": "0.4.0", "interfaces": [{"mac": "02:00:00:00:00:01"}]});
        let err =
            parse_result(missing_name.to_string().as_bytes(), CniVersion::V1_1_0).unwrap_err();
        assert!(
            matches!(&err, ResultError::Field { path, .. } if path == "interfaces[0]"),
            "{err:?}"
        );
    }

    #[test]
    fn version_errors() {
        let err = parse_result(
            br#"{"cniVersion":"0.2.0","ip4":{"ip":"192.0.2.2/24"}}"#,
            CniVersion::V1_0_0,
        )
        .unwrap_err();
        assert!(matches!(err, ResultError::UnsupportedVersion(_)));
        assert_eq!(err.into_cni("prevResult").code().get(), 1);
        let err = parse_result(br#"{"cniVersion": 1}"#, CniVersion::V1_0_0).unwrap_err();
        assert!(matches!(err, ResultError::UnsupportedVersion(_)));
        let err = parse_result(br#"[1]"#, CniVersion::V1_0_0).unwrap_err();
        assert!(matches!(err, ResultError::NotAnObject { found: "an array" }));
        let err = parse_result(b"{", CniVersion::V1_0_0).unwrap_err();
        assert!(err.into_cni("result").details().contains("line 1"));
    }

    #[test]
    fn ip_version_must_match_the_address() {
        let v =
            json!({"cniVersion": "0.3.1", "ips": [{"version": "6", "address": "192.0.2.2/24"}]});
        let err = parse_result(v.to_string().as_bytes(), CniVersion::V0_3_1).unwrap_err();
        assert!(
            matches!(err, ResultError::IpVersionMismatch { index: 0, family: 4, .. }),
            "{err:?}"
        );
        assert!(err.into_cni("prevResult").details().contains("ips[0].version"));
        // A missing version is tolerated and recomputed on output.
        let v = json!({"cniVersion": "0.3.1", "ips": [{"address": "2001:db8::2/64"}]});
        let r = parse(&v);
        assert_eq!(r.result.to_json(r.version)["ips"][0]["version"], "6");
    }

    #[test]
    fn helpers_merge_ipam_and_find_interfaces() {
        let ipam = parse_result(
            br#"{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.9/24"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["198.51.100.53"]}}"#,
            CniVersion::V1_0_0,
        )
        .unwrap()
        .result;
        let mut r = CniResult::default();
        r.push_interface(Interface::new("host0"));
        let idx = r.push_interface(
            Interface::new("net1")
                .with_mac("02:00:00:00:00:09".parse().unwrap())
                .with_sandbox("/run/netns/p")
                .with_mtu(1500),
        );
        r.merge_ipam(ipam, idx);
        assert_eq!(r.ips[0].interface, Some(1));
        assert_eq!(r.interface_of(&r.ips[0]).map(|i| i.name.as_str()), Some("net1"));
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.dns.nameservers, vec!["198.51.100.53".to_owned()]);
        assert_eq!(r.interfaces[1].mac_addr(), Some(Ok("02:00:00:00:00:09".parse().unwrap())));
        let dangling =
            IpConfig { interface: Some(7), ..IpConfig::new("192.0.2.1/24".parse().unwrap()) };
        assert!(r.interface_of(&dangling).is_none());
    }
}
