//! The spec's error result: `{"cniVersion", "code", "msg", "details"}` and its codes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::version::CniVersion;

/// A CNI error code.
///
/// Codes 0–99 are reserved by the spec ([`ErrorCode::INCOMPATIBLE_VERSION`] …); plugins use
/// 100 and above ([`ErrorCode::plugin_specific`]). Codes received from delegated plugins are
/// kept as they are ([`ErrorCode::from_raw`]), so a delegate's code reaches the runtime
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(u32);

impl ErrorCode {
    /// 1: incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: ErrorCode = ErrorCode(1);
    /// 2: unsupported field in the network configuration (the message names key and value).
    pub const UNSUPPORTED_FIELD: ErrorCode = ErrorCode(2);
    /// 3: container unknown or does not exist; the runtime need not call `DEL`.
    pub const UNKNOWN_CONTAINER: ErrorCode = ErrorCode(3);
    /// 4: invalid necessary environment variables (the message names them).
    pub const INVALID_ENVIRONMENT: ErrorCode = ErrorCode(4);
    /// 5: I/O failure, e.g. reading stdin.
    pub const IO_FAILURE: ErrorCode = ErrorCode(5);
    /// 6: failed to decode content, e.g. the configuration or a delegate's result.
    pub const DECODING_FAILURE: ErrorCode = ErrorCode(6);
    /// 7: invalid network configuration.
    pub const INVALID_NETWORK_CONFIG: ErrorCode = ErrorCode(7);
    /// 11: try again later (a transient condition).
    pub const TRY_AGAIN_LATER: ErrorCode = ErrorCode(11);
    /// 50 (`STATUS`): the plugin cannot serve `ADD` requests.
    pub const PLUGIN_NOT_AVAILABLE: ErrorCode = ErrorCode(50);
    /// 51 (`STATUS`): the plugin cannot serve `ADD` requests and existing containers may have
    /// limited connectivity.
    pub const LIMITED_CONNECTIVITY: ErrorCode = ErrorCode(51);
    /// 999: internal error (the Go library's `ErrInternal`); used for a plugin panic and for a
    /// delegate that failed without a readable error.
    pub const INTERNAL: ErrorCode = ErrorCode(999);

    /// A plugin-specific code (100 or above).
    ///
    /// Meant for constants (`const VF_BUSY: ErrorCode = ErrorCode::plugin_specific(101);`),
    /// where a code below 100 fails the build.
    pub const fn plugin_specific(code: u32) -> ErrorCode {
        assert!(code >= 100, "plugin-specific CNI error codes start at 100");
        ErrorCode(code)
    }

    /// Any code as received, e.g. from a delegated plugin's error JSON.
    pub const fn from_raw(code: u32) -> ErrorCode {
        ErrorCode(code)
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Whether the code is in the range the spec reserves (0–99).
    pub const fn is_reserved(self) -> bool {
        self.0 < 100
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A CNI error: what a plugin prints on stdout (with a non-zero exit) when an operation fails.
///
/// `msg` is short, `details` names the offending field/variable and value. Build one with the
/// constructors below; plugin error enums implement `From<TheirError> for CniError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    code: ErrorCode,
    msg: String,
    details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// The wire form of an error result.
#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    #[serde(rename = "cniVersion", default, skip_serializing_if = "Option::is_none")]
    cni_version: Option<String>,
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    details: String,
}

impl CniError {
    /// An error with any code.
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError { code, msg: msg.into(), details: details.into() }
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The short message.
    pub fn msg(&self) -> &str {
        &self.msg
    }

    /// The long message (may be empty).
    pub fn details(&self) -> &str {
        &self.details
    }

    /// Replaces the details.
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// Code 1: the configuration's version is not one the plugin supports. Same wording as
    /// the Go library (`config is "x", plugin supports [...]`).
    pub fn incompatible_version(config: &str, supported: &[CniVersion]) -> CniError {
        let list: Vec<&str> = supported.iter().map(|v| v.as_str()).collect();
        CniError::new(
            ErrorCode::INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            format!("config is {config:?}, plugin supports {list:?}"),
        )
    }

    /// Code 1: the configuration's version does not define `command` (CHECK before 0.4.0,
    /// GC/STATUS before 1.1.0).
    pub fn command_not_in_version(command: &str, version: CniVersion) -> CniError {
        CniError::new(
            ErrorCode::INCOMPATIBLE_VERSION,
            format!("config version does not allow {command}"),
            format!("cniVersion is {version:?}", version = version.as_str()),
        )
    }

    /// Code 2: the plugin does not support `field` (with the given value).
    pub fn unsupported_field(field: &str, value: impl fmt::Display) -> CniError {
        CniError::new(
            ErrorCode::UNSUPPORTED_FIELD,
            format!("unsupported field in network configuration: {field}"),
            format!("{field} = {value}"),
        )
    }

    /// Code 3: the container is unknown; the runtime need not call `DEL`.
    pub fn unknown_container(details: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::UNKNOWN_CONTAINER, "container unknown or does not exist", details)
    }

    /// Code 4: required variables are missing (names them all).
    pub fn missing_env(command: &str, names: &[&str]) -> CniError {
        CniError::new(
            ErrorCode::INVALID_ENVIRONMENT,
            format!("required env variables [{}] missing", names.join(",")),
            format!("CNI_COMMAND={command} requires {}", names.join(", ")),
        )
    }

    /// Code 4: variable `name` has an invalid value.
    pub fn invalid_env(name: &str, value: &str, reason: impl fmt::Display) -> CniError {
        CniError::new(
            ErrorCode::INVALID_ENVIRONMENT,
            format!("invalid environment variable {name}"),
            format!("{name}={value:?}: {reason}"),
        )
    }

    /// Code 5: an I/O operation failed.
    pub fn io(what: impl fmt::Display, err: &std::io::Error) -> CniError {
        CniError::new(ErrorCode::IO_FAILURE, format!("i/o failure: {what}"), err.to_string())
    }

    /// Code 6: content could not be decoded.
    pub fn decoding(what: impl fmt::Display, details: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::DECODING_FAILURE, format!("failed to decode {what}"), details)
    }

    /// Code 7: the network configuration is invalid at `field` (with the offending value).
    pub fn invalid_config(
        field: &str,
        value: impl fmt::Display,
        reason: impl fmt::Display,
    ) -> CniError {
        CniError::new(
            ErrorCode::INVALID_NETWORK_CONFIG,
            format!("invalid network configuration: {field}"),
            format!("{field} = {value}: {reason}"),
        )
    }

    /// Code 11: a transient condition; the runtime may retry.
    pub fn try_again_later(msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::TRY_AGAIN_LATER, msg, details)
    }

    /// Code 50 (`STATUS`): the plugin cannot serve `ADD` requests.
    pub fn plugin_not_available(msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::PLUGIN_NOT_AVAILABLE, msg, details)
    }

    /// Code 51 (`STATUS`): not available, and existing containers may have limited
    /// connectivity.
    pub fn limited_connectivity(msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::LIMITED_CONNECTIVITY, msg, details)
    }

    /// Code 999: an internal failure.
    pub fn internal(msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::INTERNAL, msg, details)
    }

    /// The error result as JSON, stamped with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let wire = WireError {
            cni_version: Some(cni_version.to_owned()),
            code: self.code.get(),
            msg: self.msg.clone(),
            details: self.details.clone(),
        };
        // A struct of strings and a number always serializes.
        serde_json::to_value(wire).unwrap_or(serde_json::Value::Null)
    }

    /// Reads an error result printed by another plugin (`cniVersion` optional, `code`
    /// required).
    pub fn from_json(bytes: &[u8]) -> Result<CniError, serde_json::Error> {
        let wire: WireError = serde_json::from_slice(bytes)?;
        Ok(CniError { code: ErrorCode(wire.code), msg: wire.msg, details: wire.details })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn shape(e: &CniError) -> serde_json::Value {
        e.to_json("1.1.0")
    }

    #[test]
    fn every_well_known_code_has_the_spec_number_and_shape() {
        let cases = [
            (CniError::incompatible_version("0.2.0", &CniVersion::ALL), 1),
            (CniError::unsupported_field("vlan", 5000), 2),
            (CniError::unknown_container("abc"), 3),
            (CniError::missing_env("ADD", &["CNI_NETNS"]), 4),
            (CniError::invalid_env("CNI_IFNAME", "a/b", "contains '/'"), 4),
            (CniError::io("reading stdin", &std::io::Error::other("broken pipe")), 5),
            (CniError::decoding("network configuration", "line 1"), 6),
            (CniError::invalid_config("name", "\"\"", "must not be empty"), 7),
            (CniError::try_again_later("agent busy", "retry"), 11),
            (CniError::plugin_not_available("daemon down", "socket missing"), 50),
            (CniError::limited_connectivity("uplink down", "pf ens1f0"), 51),
            (CniError::new(ErrorCode::plugin_specific(101), "vf busy", "0000:3b:02.1"), 101),
            (CniError::internal("panic", "boom"), 999),
        ];
        for (err, code) in cases {
            let v = shape(&err);
            assert_eq!(v["cniVersion"], "1.1.0");
            assert_eq!(v["code"], code, "{err}");
            assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
            assert!(v["details"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
            assert_eq!(v.as_object().map(|o| o.len()), Some(4), "{v}");
        }
    }

    #[test]
    fn details_name_the_field_and_value() {
        let e = CniError::incompatible_version("0.2.0", &[CniVersion::V0_4_0, CniVersion::V1_0_0]);
        assert_eq!(e.details(), r#"config is "0.2.0", plugin supports ["0.4.0", "1.0.0"]"#);
        let e = CniError::unsupported_field("spoofchk", "\"maybe\"");
        assert_eq!(e.details(), r#"spoofchk = "maybe""#);
        let e = CniError::missing_env("DEL", &["CNI_CONTAINERID", "CNI_IFNAME"]);
        assert_eq!(e.msg(), "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing");
        let e = CniError::invalid_env("CNI_IFNAME", "eth 0", "contains whitespace");
        assert_eq!(e.details(), r#"CNI_IFNAME="eth 0": contains whitespace"#);
        assert_eq!(
            e.to_string(),
            r#"invalid environment variable CNI_IFNAME; CNI_IFNAME="eth 0": contains whitespace"#
        );
    }

    #[test]
    fn empty_details_are_omitted() {
        let e = CniError::new(ErrorCode::TRY_AGAIN_LATER, "busy", "");
        assert_eq!(shape(&e), json!({"cniVersion": "1.1.0", "code": 11, "msg": "busy"}));
        assert_eq!(e.to_string(), "busy");
    }

    #[test]
    fn reads_a_delegates_error_with_or_without_version() {
        let e =
            CniError::from_json(br#"{"code": 999, "msg": "no IP addresses available"}"#).unwrap();
        assert_eq!(e.code(), ErrorCode::INTERNAL);
        assert_eq!(e.msg(), "no IP addresses available");
        assert_eq!(e.details(), "");
        let e = CniError::from_json(
            br#"{"cniVersion": "0.4.0", "code": 7, "msg": "bad", "details": "ranges"}"#,
        )
        .unwrap();
        assert_eq!((e.code().get(), e.details()), (7, "ranges"));
        assert!(CniError::from_json(br#"{"msg": "no code"}"#).is_err());
        assert!(CniError::from_json(b"not json").is_err());
    }

    #[test]
    fn plugin_codes_and_reserved_range() {
        assert!(!ErrorCode::plugin_specific(100).is_reserved());
        assert!(ErrorCode::INVALID_NETWORK_CONFIG.is_reserved());
        assert_eq!(ErrorCode::from_raw(8).get(), 8);
    }

    #[test]
    #[should_panic(expected = "start at 100")]
    fn plugin_codes_below_100_are_rejected() {
        let _ = ErrorCode::plugin_specific(std::hint::black_box(42));
    }
}
