//! CNI specification versions and the `VERSION` reply.
//!
//! Only the versions with the rich result type are supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0 and
//! 1.1.0. Older configurations (0.1.0/0.2.0, or no `cniVersion` at all, which the Go library
//! reads as 0.1.0) are answered with error code 1.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CNI specification version this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.3.0: rich result (`interfaces`, `ips[]` with `version`), configuration lists.
    V0_3_0,
    /// 0.3.1: typo fixes only.
    V0_3_1,
    /// 0.4.0: `CHECK`, `prevResult` on `DEL`.
    V0_4_0,
    /// 1.0.0: `ips[].version` removed.
    V1_0_0,
    /// 1.1.0: `GC`, `STATUS`, `cniVersions`, interface `mtu`/`socketPath`/`pciID`, route attributes.
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const ALL: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest supported version.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The version string as it appears in JSON (`"1.1.0"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether a configuration of this version may be used with `CHECK` (0.4.0 and later).
    pub fn allows_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// Whether a configuration of this version may be used with `GC` and `STATUS` (1.1.0).
    pub fn allows_gc_and_status(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// Whether results of this version carry `ips[].version` and lack the 1.x interface
    /// fields (0.3.0, 0.3.1, 0.4.0).
    pub fn is_pre_1_0(self) -> bool {
        self < CniVersion::V1_0_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `cniVersion` string that is not one of the supported versions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported CNI version {0:?}: expected one of 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0")]
pub struct UnsupportedVersion(pub String);

impl FromStr for CniVersion {
    type Err = UnsupportedVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CniVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnsupportedVersion(s.to_owned()))
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `s` looks like a spec version (`major.minor.patch`, decimal numbers).
pub(crate) fn is_version_like(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The reply to `VERSION`: `{"cniVersion": .., "supportedVersions": [..]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The protocol version of this reply: the `cniVersion` given on stdin, else the newest
    /// version the plugin supports.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Every version the plugin accepts, as strings (a delegate's reply may list versions this
    /// crate does not know, such as 0.1.0).
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// Builds the reply for a plugin supporting `supported`, answering a request whose stdin
    /// carried `requested` (the spec says the reply echoes it).
    pub fn new(requested: Option<&str>, supported: &[CniVersion]) -> Self {
        let newest = supported.iter().max().copied().unwrap_or(CniVersion::LATEST);
        let cni_version = match requested {
            Some(v) if is_version_like(v) => v.to_owned(),
            _ => newest.as_str().to_owned(),
        };
        VersionInfo {
            cni_version,
            supported_versions: supported.iter().map(|v| v.as_str().to_owned()).collect(),
        }
    }

    /// Whether the reply lists `version`.
    pub fn supports(&self, version: CniVersion) -> bool {
        self.supported_versions.iter().any(|v| v == version.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_the_supported_strings() {
        for v in CniVersion::ALL {
            assert_eq!(v.as_str().parse::<CniVersion>(), Ok(v));
        }
        for bad in ["0.2.0", "0.1.0", "1.0", "", "1.1.0 ", "v1.0.0", "2.0.0"] {
            assert_eq!(bad.parse::<CniVersion>(), Err(UnsupportedVersion(bad.to_owned())));
        }
    }

    #[test]
    fn order_and_capabilities_follow_the_spec() {
        assert!(CniVersion::V0_3_0 < CniVersion::V0_3_1);
        assert!(CniVersion::V1_0_0 < CniVersion::V1_1_0);
        assert!(!CniVersion::V0_3_1.allows_check());
        assert!(CniVersion::V0_4_0.allows_check());
        assert!(!CniVersion::V1_0_0.allows_gc_and_status());
        assert!(CniVersion::V1_1_0.allows_gc_and_status());
        assert!(CniVersion::V0_4_0.is_pre_1_0());
        assert!(!CniVersion::V1_0_0.is_pre_1_0());
    }

    #[test]
    fn version_reply_echoes_the_request_or_uses_the_newest() {
        let supported = [CniVersion::V0_4_0, CniVersion::V1_0_0];
        let echoed = VersionInfo::new(Some("0.4.0"), &supported);
        assert_eq!(
            serde_json::to_value(&echoed).unwrap(),
            serde_json::json!({"cniVersion": "0.4.0", "supportedVersions": ["0.4.0", "1.0.0"]})
        );
        assert_eq!(VersionInfo::new(None, &supported).cni_version, "1.0.0");
        assert_eq!(VersionInfo::new(Some("garbage"), &supported).cni_version, "1.0.0");
        assert!(echoed.supports(CniVersion::V1_0_0));
        assert!(!echoed.supports(CniVersion::V1_1_0));
    }

    #[test]
    fn version_like_strings() {
        assert!(is_version_like("0.2.0"));
        assert!(is_version_like("10.20.30"));
        assert!(!is_version_like("1.0"));
        assert!(!is_version_like("1.0.x"));
        assert!(!is_version_like("1..0"));
    }
}
