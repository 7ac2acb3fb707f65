//! The network configuration a plugin receives on stdin, parsed once into [`NetConf<T>`].
//!
//! A runtime executing a configuration list hands each plugin one plugin configuration with
//! `cniVersion` and `name` injected, `runtimeConfig` holding the enabled capabilities, and
//! `prevResult` for chained plugins. Keys this module does not know go to the plugin's own
//! type `T` through `#[serde(flatten)]`.
//!
//! Parsing is two-stage: serde reads a raw form, then [`NetConf::parse`] checks the version,
//! name, type and IPAM section and converts `prevResult` to the configuration's version. After
//! that, nothing re-reads strings.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::env::{CniArgs, is_spec_identifier};
use crate::error::CniError;
use crate::net::{Mac, RequestedIp};
use crate::result::{CniResult, Dns, json_type, result_from_value};
use crate::version::{CniVersion, is_version_like};

/// A plugin configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf<T> {
    /// The version in use (from `cniVersion`, or the newest supported entry of
    /// `cniVersions`).
    pub cni_version: CniVersion,
    /// Network name.
    pub name: String,
    /// Plugin type (the executable's name).
    pub plugin_type: String,
    /// `args` (free-form, with the conventional `args.cni` typed).
    pub args: Args,
    /// `runtimeConfig` (capabilities the runtime filled in).
    pub runtime_config: RuntimeConfig,
    /// `ipam`, if it names a plugin (`"ipam": {}` means no IPAM).
    pub ipam: Option<IpamConf>,
    /// `dns`.
    pub dns: Option<Dns>,
    /// `prevResult`, already converted to [`NetConf::cni_version`].
    pub prev_result: Option<CniResult>,
    /// `cni.dev/valid-attachments` (or the older `cni.dev/attachments`), present on GC.
    pub valid_attachments: Option<Vec<GcAttachment>>,
    /// The plugin's own keys.
    pub plugin: T,
}

/// A plugin type with no keys of its own (every unknown key is ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct NoPluginConfig {}

/// The `ipam` section.
#[derive(Debug, Clone, PartialEq)]
pub struct IpamConf {
    /// The IPAM plugin's executable name (`ipam.type`).
    pub plugin_type: String,
    /// The whole section, `type` included (for plugins that read IPAM keys themselves).
    pub config: Map<String, Value>,
}

/// `runtimeConfig`, with the capabilities this suite uses typed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RuntimeConfig {
    /// `mac` capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// `ips` capability (`ip[/prefix]`).
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<RequestedIp>,
    /// `deviceID` capability (a PCI address such as `0000:3b:02.1`).
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `CNIDeviceInfoFile` (Multus device-info file path).
    #[serde(rename = "CNIDeviceInfoFile", default, skip_serializing_if = "Option::is_none")]
    pub cni_device_info_file: Option<PathBuf>,
    /// Every other capability (`portMappings`, `bandwidth`, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `args`: runtime-provided extras that plugins may ignore.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Args {
    /// `args.cni` (CONVENTIONS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<ArgsCni>,
    /// Every other key.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `args.cni`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ArgsCni {
    /// Requested addresses.
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<RequestedIp>,
    /// Requested MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Every other key.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One still-valid attachment in a GC request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub struct GcAttachment {
    /// `CNI_CONTAINERID` of the attachment's ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of the attachment's ADD.
    #[serde(rename = "ifname")]
    pub ifname: String,
}

/// The set of valid attachments, for lookups during GC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidAttachments(HashSet<GcAttachment>);

impl ValidAttachments {
    /// Builds the set.
    pub fn new(list: &[GcAttachment]) -> ValidAttachments {
        ValidAttachments(list.iter().cloned().collect())
    }

    /// Whether `(container_id, ifname)` is still valid (its resources must be kept).
    pub fn contains(&self, container_id: &str, ifname: &str) -> bool {
        self.0.contains(&GcAttachment {
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
        })
    }

    /// Number of valid attachments.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no attachment is valid.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Deserialize)]
struct RawNetConf<T> {
    #[serde(rename = "cniVersion", default)]
    _cni_version: Option<IgnoredAny>,
    #[serde(rename = "cniVersions", default)]
    _cni_versions: Option<IgnoredAny>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    plugin_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    args: Args,
    #[serde(rename = "runtimeConfig", default, deserialize_with = "null_as_empty")]
    runtime_config: RuntimeConfig,
    #[serde(default)]
    ipam: Option<Map<String, Value>>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Option<Vec<GcAttachment>>,
    #[serde(rename = "cni.dev/attachments", default)]
    attachments: Option<Vec<GcAttachment>>,
    // Consumed so that they never reach the plugin's keys.
    #[serde(default)]
    _capabilities: Option<IgnoredAny>,
    #[serde(rename = "disableCheck", default)]
    _disable_check: Option<IgnoredAny>,
    #[serde(rename = "disableGC", default)]
    _disable_gc: Option<IgnoredAny>,
    #[serde(flatten)]
    plugin: T,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The version a configuration asks for: `cniVersion` if present (the runtime's choice),
/// otherwise the newest entry of `cniVersions` that `supported` contains.
///
/// A configuration with neither is a 0.1.0 configuration (the Go library's rule) and is
/// rejected with code 1, as is any version outside `supported`.
pub fn resolve_version(config: &Value, supported: &[CniVersion]) -> Result<CniVersion, CniError> {
    let field = |key: &str| config.get(key).filter(|v| !v.is_null());
    match field("cniVersion") {
        Some(Value::String(s)) if !s.is_empty() => {
            return s
                .parse::<CniVersion>()
                .ok()
                .filter(|v| supported.contains(v))
                .ok_or_else(|| CniError::incompatible_version(s, supported));
        }
        Some(Value::String(_)) | None => {}
        Some(other) => {
            return Err(CniError::invalid_config("cniVersion", other, "must be a string"));
        }
    }
    match field("cniVersions") {
        Some(Value::Array(list)) => {
            let mut named = Vec::with_capacity(list.len());
            for v in list {
                match v.as_str() {
                    Some(s) if is_version_like(s) => named.push(s),
                    _ => {
                        return Err(CniError::invalid_config(
                            "cniVersions",
                            v,
                            "entries must be version strings",
                        ));
                    }
                }
            }
            named
                .iter()
                .filter_map(|s| s.parse::<CniVersion>().ok())
                .filter(|v| supported.contains(v))
                .max()
                .ok_or_else(|| CniError::incompatible_version(&format!("{named:?}"), supported))
        }
        Some(other) => {
            Err(CniError::invalid_config("cniVersions", other, "must be an array of strings"))
        }
        None => Err(CniError::incompatible_version("0.1.0", supported).with_details(format!(
            "config has no cniVersion (implies \"0.1.0\"); plugin supports {:?}",
            supported.iter().map(|v| v.as_str()).collect::<Vec<_>>()
        ))),
    }
}

impl<T: DeserializeOwned> NetConf<T> {
    /// Parses and validates a configuration for a plugin that supports `supported`.
    ///
    /// Errors: code 6 for JSON syntax or type errors (details give the key path and line),
    /// code 1 for an unsupported version (also inside `prevResult`), code 7 for an invalid
    /// `name`, `type` or `ipam`.
    pub fn parse(bytes: &[u8], supported: &[CniVersion]) -> Result<NetConf<T>, CniError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            CniError::decoding("network configuration", format!("invalid JSON: {e}"))
        })?;
        if !value.is_object() {
            return Err(CniError::decoding(
                "network configuration",
                format!("expected a JSON object, found {}", json_type(&value)),
            ));
        }
        let cni_version = resolve_version(&value, supported)?;

        let raw: RawNetConf<T> = decode_with_path(bytes).map_err(|(path, inner)| {
            // Errors inside the flattened plugin keys lose their path (serde buffers them);
            // decoding the plugin's type alone recovers the key and the right line.
            let (path, inner) = if path == "." {
                match decode_with_path::<T>(bytes) {
                    Err((p, e)) if p != "." && !e.to_string().starts_with("unknown field") => {
                        (p, e)
                    }
                    _ => (path, inner),
                }
            } else {
                (path, inner)
            };
            let details =
                if path == "." { inner.to_string() } else { format!("key `{path}`: {inner}") };
            CniError::decoding("network configuration", details)
        })?;

        let name = raw.name.unwrap_or_default();
        if name.is_empty() {
            return Err(CniError::invalid_config("name", "\"\"", "missing network name"));
        }
        if !is_spec_identifier(&name) {
            return Err(CniError::invalid_config(
                "name",
                format_args!("{name:?}"),
                "must start with an alphanumeric character, followed by alphanumerics, '_', '.' or '-'",
            ));
        }
        let plugin_type = raw.plugin_type.unwrap_or_default();
        validate_plugin_type("type", &plugin_type)?;

        let ipam = match raw.ipam {
            None => None,
            Some(map) if map.is_empty() => None,
            Some(map) => {
                let plugin_type = match map.get("type") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => {
                        return Err(CniError::invalid_config(
                            "ipam.type",
                            other,
                            "must be a string",
                        ));
                    }
                };
                validate_plugin_type("ipam.type", &plugin_type)?;
                Some(IpamConf { plugin_type, config: map })
            }
        };

        let prev_result = raw
            .prev_result
            .filter(|v| !v.is_null())
            .map(|v| {
                result_from_value(v, cni_version)
                    .map(|r| r.result.convert_to(cni_version))
                    .map_err(|e| e.into_cni("prevResult"))
            })
            .transpose()?;

        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            args: raw.args,
            runtime_config: raw.runtime_config,
            ipam,
            dns: raw.dns,
            prev_result,
            valid_attachments: raw.valid_attachments.or(raw.attachments),
            plugin: raw.plugin,
        })
    }
}

fn decode_with_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, (String, serde_json::Error)> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| (e.path().to_string(), e.into_inner()))
}

fn validate_plugin_type(field: &str, t: &str) -> Result<(), CniError> {
    if t.is_empty() {
        return Err(CniError::invalid_config(field, "\"\"", "missing plugin type"));
    }
    if t == "." || t == ".." || t.contains(['/', '\\', '\0']) {
        return Err(CniError::invalid_config(
            field,
            format_args!("{t:?}"),
            "must be a plain executable name",
        ));
    }
    Ok(())
}

impl<T> NetConf<T> {
    /// The MAC the runtime or user asked for, by the conventional precedence
    /// `args.cni.mac` > `runtimeConfig.mac` > `CNI_ARGS` `MAC=` (the tuning plugin's order; a
    /// config-level key of the plugin itself ranks below all three).
    pub fn requested_mac(&self, cni_args: &CniArgs) -> Result<Option<Mac>, CniError> {
        if let Some(mac) = self.args.cni.as_ref().and_then(|a| a.mac) {
            return Ok(Some(mac));
        }
        if let Some(mac) = self.runtime_config.mac {
            return Ok(Some(mac));
        }
        cni_args.mac()
    }

    /// The addresses asked for, first non-empty of `args.cni.ips`, `runtimeConfig.ips`,
    /// `CNI_ARGS` `IP=`.
    pub fn requested_ips(&self, cni_args: &CniArgs) -> Result<Vec<RequestedIp>, CniError> {
        if let Some(ips) = self.args.cni.as_ref().map(|a| &a.ips).filter(|v| !v.is_empty()) {
            return Ok(ips.clone());
        }
        if !self.runtime_config.ips.is_empty() {
            return Ok(self.runtime_config.ips.clone());
        }
        cni_args.ips()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct SriovLike {
        #[serde(rename = "deviceID", default)]
        device_id: Option<String>,
        #[serde(default)]
        vlan: u16,
        #[serde(default)]
        spoofchk: Option<String>,
    }

    fn parse<T: DeserializeOwned>(v: &Value) -> Result<NetConf<T>, CniError> {
        NetConf::parse(v.to_string().as_bytes(), &CniVersion::ALL)
    }

    #[test]
    fn parses_common_and_plugin_keys() {
        let v = json!({
            "cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov",
            "deviceID": "0000:3b:02.1", "vlan": 100,
            "ipam": {"type": "host-local", "subnet": "192.0.2.0/24"},
            "dns": {"nameservers": ["192.0.2.53"]},
            "runtimeConfig": {"mac": "02:00:5e:00:53:01", "ips": ["192.0.2.9/24"],
                              "deviceID": "0000:3b:02.2", "CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/x.json",
                              "portMappings": []},
            "args": {"cni": {"ips": ["192.0.2.10"], "labels": {"a": "b"}}, "k8s": 1},
            "capabilities": {"mac": true}, "disableCheck": true
        });
        let c: NetConf<SriovLike> = parse(&v).unwrap();
        assert_eq!(c.cni_version, CniVersion::V1_0_0);
        assert_eq!(c.name, "sriov-net");
        assert_eq!(c.plugin_type, "sriov");
        assert_eq!(
            c.plugin,
            SriovLike { device_id: Some("0000:3b:02.1".into()), vlan: 100, spoofchk: None }
        );
        let ipam = c.ipam.as_ref().unwrap();
        assert_eq!(ipam.plugin_type, "host-local");
        assert_eq!(ipam.config["subnet"], "192.0.2.0/24");
        assert_eq!(c.dns.as_ref().unwrap().nameservers, vec!["192.0.2.53".to_owned()]);
        assert_eq!(c.runtime_config.mac, Some("02:00:5e:00:53:01".parse().unwrap()));
        assert_eq!(c.runtime_config.device_id.as_deref(), Some("0000:3b:02.2"));
        assert_eq!(
            c.runtime_config.cni_device_info_file,
            Some(PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo/cni/x.json"))
        );
        assert!(c.runtime_config.other.contains_key("portMappings"));
        assert_eq!(c.args.cni.as_ref().unwrap().ips[0].to_string(), "192.0.2.10");
        assert!(c.args.other.contains_key("k8s"));
        assert!(c.prev_result.is_none());
        assert!(c.valid_attachments.is_none());
    }

    #[test]
    fn plugin_type_sees_only_its_keys_and_unknown_keys_are_ignored() {
        #[derive(Debug, Deserialize)]
        struct Own {
            #[serde(default)]
            mtu: u32,
            #[serde(default)]
            name: Option<String>,
        }
        let v = json!({"cniVersion": "1.1.0", "name": "n", "type": "veth", "mtu": 1500,
            "ipam": {}, "runtimeConfig": {}, "args": {}, "prevResult": null, "capabilities": {},
            "cni.dev/valid-attachments": [], "cniVersions": ["1.1.0"], "disableGC": false,
            "somethingNew": true});
        let c: NetConf<Own> = parse(&v).unwrap();
        assert_eq!(c.plugin.mtu, 1500);
        assert_eq!(c.plugin.name, None, "spec keys are consumed before the plugin's keys");
        assert!(c.ipam.is_none(), "an empty ipam object means no IPAM");
        // serde's flatten hands the plugin type only the keys it names, so
        // `deny_unknown_fields` cannot reject unknown keys (the spec lets plugins ignore
        // them; runtimes add keys such as runtimeConfig).
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            #[serde(default)]
            mtu: u32,
        }
        let c: NetConf<Strict> = parse(&v).unwrap();
        assert_eq!(c.plugin.mtu, 1500);
    }

    #[test]
    fn no_plugin_config_ignores_everything_else() {
        let v = json!({"cniVersion": "0.4.0", "name": "n", "type": "t", "whatever": [1, 2]});
        let c: NetConf<NoPluginConfig> = parse(&v).unwrap();
        assert_eq!(c.cni_version, CniVersion::V0_4_0);
    }

    #[test]
    fn decode_errors_name_key_and_line() {
        let text = "{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": \"n\",\n  \"type\": \"t\",\n  \"runtimeConfig\": {\"mac\": \"02:00:5e:00:53\"}\n}";
        let e = NetConf::<NoPluginConfig>::parse(text.as_bytes(), &CniVersion::ALL).unwrap_err();
        assert_eq!(e.code().get(), 6);
        assert!(e.details().contains("runtimeConfig.mac"), "{}", e.details());
        assert!(e.details().contains("02:00:5e:00:53"), "{}", e.details());
        assert!(e.details().contains("line 5"), "{}", e.details());

        let text =
            "{\"cniVersion\": \"1.0.0\",\n \"name\": \"n\", \"type\": \"t\",\n \"vlan\": \"high\"}";
        let e = NetConf::<SriovLike>::parse(text.as_bytes(), &CniVersion::ALL).unwrap_err();
        assert_eq!(e.code().get(), 6);
        assert!(e.details().contains("vlan"), "{}", e.details());

        let e = NetConf::<NoPluginConfig>::parse(
            b"{\"cniVersion\": \"1.0.0\",\n \"name\": ",
            &CniVersion::ALL,
        )
        .unwrap_err();
        assert_eq!(e.code().get(), 6);
        assert!(e.details().contains("line 2"), "{}", e.details());

        let e = NetConf::<NoPluginConfig>::parse(b"[]", &CniVersion::ALL).unwrap_err();
        assert!(e.details().contains("found an array"), "{}", e.details());

        let v = json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "cni.dev/valid-attachments": [{"containerID": "a"}]});
        let e = parse::<NoPluginConfig>(&v).unwrap_err();
        assert!(e.details().contains("cni.dev/valid-attachments[0]"), "{}", e.details());
    }

    #[test]
    fn bad_configs_get_code_7_with_field_and_value() {
        let cases = [
            (json!({"cniVersion": "1.0.0", "type": "t"}), "name"),
            (json!({"cniVersion": "1.0.0", "name": "", "type": "t"}), "name"),
            (json!({"cniVersion": "1.0.0", "name": "-bad", "type": "t"}), "name"),
            (json!({"cniVersion": "1.0.0", "name": "has space", "type": "t"}), "name"),
            (json!({"cniVersion": "1.0.0", "name": "n"}), "type"),
            (json!({"cniVersion": "1.0.0", "name": "n", "type": "../bin/x"}), "type"),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": {"subnet": "192.0.2.0/24"}}),
                "ipam.type",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": {"type": "/usr/lib/cni/host-local"}}),
                "ipam.type",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": {"type": 5}}),
                "ipam.type",
            ),
            (json!({"cniVersion": 1, "name": "n", "type": "t"}), "cniVersion"),
            (json!({"cniVersions": "1.0.0", "name": "n", "type": "t"}), "cniVersions"),
        ];
        for (v, field) in cases {
            let e = parse::<NoPluginConfig>(&v).unwrap_err();
            assert_eq!(e.code().get(), 7, "{v}: {e}");
            assert!(e.details().starts_with(&format!("{field} = ")), "{v}: {}", e.details());
        }
        let e =
            parse::<NoPluginConfig>(&json!({"cniVersion": "1.0.0", "name": "-bad", "type": "t"}))
                .unwrap_err();
        assert!(e.details().contains("\"-bad\""), "{}", e.details());
    }

    #[test]
    fn version_resolution() {
        let v = |j: Value| resolve_version(&j, &CniVersion::ALL);
        assert_eq!(v(json!({"cniVersion": "0.3.1"})).unwrap(), CniVersion::V0_3_1);
        // cniVersion wins: the runtime put its choice there.
        assert_eq!(
            v(json!({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"]})).unwrap(),
            CniVersion::V1_0_0
        );
        // Only cniVersions: the newest we support.
        assert_eq!(
            v(json!({"cniVersions": ["0.4.0", "1.1.0", "2.0.0"]})).unwrap(),
            CniVersion::V1_1_0
        );
        assert_eq!(
            v(json!({"cniVersion": "", "cniVersions": ["1.0.0"]})).unwrap(),
            CniVersion::V1_0_0
        );
        let limited = [CniVersion::V0_4_0, CniVersion::V1_0_0];
        assert_eq!(
            resolve_version(&json!({"cniVersions": ["0.4.0", "1.1.0"]}), &limited).unwrap(),
            CniVersion::V0_4_0
        );
        // Errors are code 1 with Go's wording.
        let e = v(json!({"cniVersion": "0.2.0"})).unwrap_err();
        assert_eq!(e.code().get(), 1);
        assert!(
            e.details().starts_with("config is \"0.2.0\", plugin supports [\"0.3.0\""),
            "{}",
            e.details()
        );
        let e = resolve_version(&json!({"cniVersion": "1.1.0"}), &limited).unwrap_err();
        assert_eq!(e.details(), "config is \"1.1.0\", plugin supports [\"0.4.0\", \"1.0.0\"]");
        let e = v(json!({})).unwrap_err();
        assert_eq!(e.code().get(), 1);
        assert!(e.details().contains("0.1.0"), "{}", e.details());
        let e = v(json!({"cniVersions": ["0.2.0"]})).unwrap_err();
        assert_eq!(e.code().get(), 1);
        let e = v(json!({"cniVersions": ["one"]})).unwrap_err();
        assert_eq!(e.code().get(), 7);
    }

    #[test]
    fn prev_result_is_converted_to_the_config_version() {
        // The spec's 0.4.0 tuning example: prevResult without cniVersion = config version.
        let spec_04 = json!({
            "cniVersion": "0.4.0", "name": "dbnet", "type": "tuning",
            "sysctl": {"net.core.somaxconn": "500"},
            "runtimeConfig": {"mac": "00:11:22:33:44:66"},
            "prevResult": {
                "ips": [{"version": "4", "address": "10.0.0.5/32", "interface": 2}],
                "interfaces": [
                    {"name": "cni0", "mac": "00:11:22:33:44:55"},
                    {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                    {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
                ],
                "dns": {"nameservers": ["10.1.0.1"]}
            }
        });
        let c: NetConf<NoPluginConfig> = parse(&spec_04).unwrap();
        let prev = c.prev_result.unwrap();
        assert_eq!(prev.interfaces.len(), 3);
        assert_eq!(
            prev.to_json(c.cni_version)["ips"][0],
            json!({"version": "4", "address": "10.0.0.5/32", "interface": 2})
        );

        // A 1.1.0 prevResult inside a 0.4.0 config loses the 1.1 interface fields.
        let mixed = json!({"cniVersion": "0.4.0", "name": "n", "type": "t",
            "prevResult": {"cniVersion": "1.1.0",
                "interfaces": [{"name": "net1", "mtu": 9000, "pciID": "0000:3b:02.1", "sandbox": "/run/netns/p"}],
                "ips": [{"address": "2001:db8::9/64", "interface": 0}]}});
        let c: NetConf<NoPluginConfig> = parse(&mixed).unwrap();
        let prev = c.prev_result.unwrap();
        assert_eq!(prev.interfaces[0].mtu, None);
        assert_eq!(prev.interfaces[0].pci_id, None);
        assert_eq!(prev.interfaces[0].sandbox.as_deref(), Some("/run/netns/p"));

        // A 0.3.1 prevResult in a 1.1.0 config: kept, version dropped on output.
        let up = json!({"cniVersion": "1.1.0", "name": "n", "type": "t",
            "prevResult": {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "192.0.2.4/24"}]}});
        let c: NetConf<NoPluginConfig> = parse(&up).unwrap();
        assert_eq!(
            c.prev_result.unwrap().to_json(c.cni_version),
            json!({"cniVersion": "1.1.0", "ips": [{"address": "192.0.2.4/24"}]})
        );
    }

    #[test]
    fn bad_prev_results() {
        let bad_version = json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "prevResult": {"cniVersion": "0.2.0"}});
        let e = parse::<NoPluginConfig>(&bad_version).unwrap_err();
        assert_eq!(e.code().get(), 1);
        assert!(e.details().starts_with("prevResult"), "{}", e.details());
        let bad_ip = json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "prevResult": {"ips": [{"address": "nope"}]}});
        let e = parse::<NoPluginConfig>(&bad_ip).unwrap_err();
        assert_eq!(e.code().get(), 6);
        assert!(e.details().contains("prevResult: key `ips[0].address`"), "{}", e.details());
        let not_obj = json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "prevResult": "x"});
        assert_eq!(parse::<NoPluginConfig>(&not_obj).unwrap_err().code().get(), 6);
    }

    #[test]
    fn gc_attachments_in_both_spellings() {
        let v = json!({"cniVersion": "1.1.0", "name": "n", "type": "t",
            "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]});
        let c: NetConf<NoPluginConfig> = parse(&v).unwrap();
        let list = c.valid_attachments.unwrap();
        assert_eq!(list.len(), 2);
        let set = ValidAttachments::new(&list);
        assert!(set.contains("c1", "eth0"));
        assert!(set.contains("c2", "net1"));
        assert!(!set.contains("c1", "net1"));
        assert!(!set.contains("c3", "eth0"));

        let old = json!({"cniVersion": "1.1.0", "name": "n", "type": "t",
            "cni.dev/attachments": [{"containerID": "c9", "ifname": "eth0"}]});
        let c: NetConf<NoPluginConfig> = parse(&old).unwrap();
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "c9");

        let both = json!({"cniVersion": "1.1.0", "name": "n", "type": "t",
            "cni.dev/valid-attachments": [], "cni.dev/attachments": [{"containerID": "c9", "ifname": "eth0"}]});
        let c: NetConf<NoPluginConfig> = parse(&both).unwrap();
        assert_eq!(c.valid_attachments, Some(vec![]), "the spec key wins");
    }

    #[test]
    fn requested_mac_and_ips_precedence() {
        let args = CniArgs::parse("MAC=02:00:00:00:00:03;IP=192.0.2.3").unwrap();
        let base = json!({"cniVersion": "1.0.0", "name": "n", "type": "t"});
        let c: NetConf<NoPluginConfig> = parse(&base).unwrap();
        assert_eq!(c.requested_mac(&args).unwrap().unwrap().to_string(), "02:00:00:00:00:03");
        assert_eq!(c.requested_ips(&args).unwrap()[0].to_string(), "192.0.2.3");

        let rc = json!({"cniVersion": "1.0.0", "name": "n", "type": "t",
            "runtimeConfig": {"mac": "02:00:00:00:00:02", "ips": ["192.0.2.2/24"]}});
        let c: NetConf<NoPluginConfig> = parse(&rc).unwrap();
        assert_eq!(c.requested_mac(&args).unwrap().unwrap().to_string(), "02:00:00:00:00:02");
        assert_eq!(c.requested_ips(&args).unwrap()[0].to_string(), "192.0.2.2/24");

        let ac = json!({"cniVersion": "1.0.0", "name": "n", "type": "t",
            "runtimeConfig": {"mac": "02:00:00:00:00:02", "ips": ["192.0.2.2/24"]},
            "args": {"cni": {"mac": "02:00:00:00:00:01", "ips": ["192.0.2.1/24"]}}});
        let c: NetConf<NoPluginConfig> = parse(&ac).unwrap();
        assert_eq!(c.requested_mac(&args).unwrap().unwrap().to_string(), "02:00:00:00:00:01");
        assert_eq!(c.requested_ips(&args).unwrap()[0].to_string(), "192.0.2.1/24");
    }
}
