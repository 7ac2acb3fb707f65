//! The execution environment: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS`, `CNI_PATH`, read once into typed values and validated per command.
//!
//! Required variables per command (spec 1.1, Section 2):
//!
//! | command | required | optional |
//! |---|---|---|
//! | ADD, CHECK | CONTAINERID, NETNS, IFNAME | ARGS, PATH |
//! | DEL | CONTAINERID, IFNAME | NETNS, ARGS, PATH |
//! | GC | PATH | ARGS |
//! | STATUS, VERSION | — | PATH |
//!
//! An empty variable counts as unset (libcni passes `CNI_NETNS=""` on GC, for example). Errors
//! are code 4 and name the variable.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::CniError;
use crate::net::{Mac, RequestedIp};

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach a container to the network.
    Add,
    /// Detach; best effort.
    Del,
    /// Verify an attachment (0.4.0+).
    Check,
    /// Remove resources of attachments not in the valid list (1.1.0).
    Gc,
    /// Report readiness (1.1.0).
    Status,
    /// Report supported versions.
    Version,
}

impl Command {
    /// The `CNI_COMMAND` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// The variables (besides `CNI_COMMAND`) this command requires, in spec order.
    pub const fn required_vars(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &[CONTAINERID, NETNS, IFNAME],
            Command::Del => &[CONTAINERID, IFNAME],
            Command::Gc => &[PATH],
            Command::Status | Command::Version => &[],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "GC" => Ok(Command::Gc),
            "STATUS" => Ok(Command::Status),
            "VERSION" => Ok(Command::Version),
            other => Err(CniError::invalid_env(
                COMMAND,
                other,
                "unknown command; expected ADD, DEL, CHECK, GC, STATUS or VERSION",
            )),
        }
    }
}

/// `CNI_COMMAND`.
pub const COMMAND: &str = "CNI_COMMAND";
/// `CNI_CONTAINERID`.
pub const CONTAINERID: &str = "CNI_CONTAINERID";
/// `CNI_NETNS`.
pub const NETNS: &str = "CNI_NETNS";
/// `CNI_IFNAME`.
pub const IFNAME: &str = "CNI_IFNAME";
/// `CNI_ARGS`.
pub const ARGS: &str = "CNI_ARGS";
/// `CNI_PATH`.
pub const PATH: &str = "CNI_PATH";

/// Validates a container ID: an alphanumeric first character, then alphanumerics, `_`, `.`,
/// `-`.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if !is_spec_identifier(id) {
        return Err(CniError::invalid_env(
            CONTAINERID,
            id,
            "must start with an alphanumeric character, followed by alphanumerics, '_', '.' or '-'",
        ));
    }
    Ok(())
}

/// Whether `s` matches the spec's identifier rule (network names and container IDs).
pub(crate) fn is_spec_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Validates an interface name: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 15 {
        Some("must be at most 15 bytes")
    } else if name == "." || name == ".." {
        Some("must not be '.' or '..'")
    } else if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        Some("must not contain '/', ':' or whitespace")
    } else {
        None
    };
    match reason {
        Some(r) => Err(CniError::invalid_env(IFNAME, name, r)),
        None => Ok(()),
    }
}

/// `CNI_PATH`: the directories searched for delegated plugins, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniPath(Vec<PathBuf>);

impl CniPath {
    /// Splits a colon-separated list (empty entries are skipped).
    pub fn parse(s: &str) -> CniPath {
        CniPath(s.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect())
    }

    /// From explicit directories.
    pub fn from_dirs(dirs: impl IntoIterator<Item = PathBuf>) -> CniPath {
        CniPath(dirs.into_iter().collect())
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.0
    }

    /// Whether no directory is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The colon-joined form, as passed on to delegates.
    pub fn to_env_string(&self) -> String {
        self.0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
    }

    /// The first executable regular file named `name` in these directories.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        self.0.iter().map(|d| d.join(name)).find(|p| is_executable(p))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `CNI_ARGS`: `K=V` pairs separated by `;`, in order.
///
/// Parsing checks the syntax only (every non-empty segment is `KEY=VALUE` with a non-empty
/// key, and `IgnoreUnknown` is a boolean); plugins then call [`CniArgs::reject_unknown`] with
/// the keys they understand, which honours `IgnoreUnknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    raw: String,
    pairs: Vec<(String, String)>,
    ignore_unknown: bool,
}

/// The `CNI_ARGS` key that makes unknown keys acceptable.
pub const IGNORE_UNKNOWN: &str = "IgnoreUnknown";

/// Kubernetes' `CNI_ARGS` keys.
pub const K8S_KEYS: [&str; 4] =
    ["K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"];

impl CniArgs {
    /// Parses the raw variable.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        let mut ignore_unknown = false;
        for segment in raw.split(';').filter(|s| !s.is_empty()) {
            let Some((k, v)) = segment.split_once('=') else {
                return Err(CniError::invalid_env(
                    ARGS,
                    raw,
                    format_args!("invalid pair {segment:?}: expected KEY=VALUE"),
                ));
            };
            if k.is_empty() {
                return Err(CniError::invalid_env(
                    ARGS,
                    raw,
                    format_args!("invalid pair {segment:?}: empty key"),
                ));
            }
            if k == IGNORE_UNKNOWN {
                ignore_unknown = parse_bool(v).ok_or_else(|| {
                    CniError::invalid_env(
                        ARGS,
                        raw,
                        format_args!("{IGNORE_UNKNOWN}={v:?}: expected 1, 0, true or false"),
                    )
                })?;
            }
            pairs.push((k.to_owned(), v.to_owned()));
        }
        Ok(CniArgs { raw: raw.to_owned(), pairs, ignore_unknown })
    }

    /// The variable as received (passed unchanged to delegates).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether `IgnoreUnknown` is true.
    pub fn ignore_unknown(&self) -> bool {
        self.ignore_unknown
    }

    /// Fails (code 4, naming the key) if a key outside `known` (and `IgnoreUnknown`) is
    /// present, unless `IgnoreUnknown` is set.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), CniError> {
        if self.ignore_unknown {
            return Ok(());
        }
        match self.pairs.iter().find(|(k, _)| k != IGNORE_UNKNOWN && !known.contains(&k.as_str())) {
            Some((k, v)) => Err(CniError::invalid_env(
                ARGS,
                &self.raw,
                format_args!("unknown key {k:?} (value {v:?}); set {IGNORE_UNKNOWN}=1 to ignore"),
            )),
            None => Ok(()),
        }
    }

    /// `MAC=` as a MAC address.
    pub fn mac(&self) -> Result<Option<Mac>, CniError> {
        self.get("MAC")
            .map(|v| {
                v.parse()
                    .map_err(|e| CniError::invalid_env(ARGS, &self.raw, format_args!("MAC: {e}")))
            })
            .transpose()
    }

    /// `IP=` as a comma-separated list of `ip[/prefix]` (empty if absent).
    pub fn ips(&self) -> Result<Vec<RequestedIp>, CniError> {
        let Some(v) = self.get("IP") else { return Ok(Vec::new()) };
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|e| CniError::invalid_env(ARGS, &self.raw, format_args!("IP: {e}")))
            })
            .collect()
    }

    /// The Kubernetes pod identity keys (each `None` if absent).
    pub fn k8s(&self) -> K8sArgs {
        let get = |k: &str| self.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
        K8sArgs {
            pod_namespace: get("K8S_POD_NAMESPACE"),
            pod_name: get("K8S_POD_NAME"),
            pod_infra_container_id: get("K8S_POD_INFRA_CONTAINER_ID"),
            pod_uid: get("K8S_POD_UID"),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The pod identity a Kubernetes runtime passes in `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sArgs {
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub pod_name: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub pod_infra_container_id: Option<String>,
    /// `K8S_POD_UID`.
    pub pod_uid: Option<String>,
}

/// The environment of one invocation, validated for its command.
///
/// Fields that the command requires are guaranteed `Some`; the request types handed to
/// plugins ([`crate::AddRequest`] …) expose them without `Option`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`.
    pub path: CniPath,
}

impl CniEnv {
    /// Reads and validates the variables through `get` (e.g. `std::env::var_os`).
    ///
    /// Every missing required variable is listed in one error; present variables are
    /// validated even when optional.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<OsString>) -> Result<CniEnv, CniError> {
        let read = |name: &str| -> Result<Option<String>, CniError> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.into_string() {
                    Ok(s) if s.is_empty() => Ok(None),
                    Ok(s) => Ok(Some(s)),
                    Err(raw) => {
                        Err(CniError::invalid_env(name, &raw.to_string_lossy(), "not valid UTF-8"))
                    }
                },
            }
        };
        let command: Command = match read(COMMAND)? {
            Some(c) => c.parse()?,
            None => {
                return Err(CniError::new(
                    crate::error::ErrorCode::INVALID_ENVIRONMENT,
                    "required env variables [CNI_COMMAND] missing",
                    "CNI_COMMAND must be one of ADD, DEL, CHECK, GC, STATUS, VERSION",
                ));
            }
        };
        let container_id = read(CONTAINERID)?;
        let netns = read(NETNS)?;
        let ifname = read(IFNAME)?;
        let args = read(ARGS)?;
        let path = read(PATH)?;

        let present = |name: &str| match name {
            CONTAINERID => container_id.is_some(),
            NETNS => netns.is_some(),
            IFNAME => ifname.is_some(),
            PATH => path.is_some(),
            _ => true,
        };
        let missing: Vec<&str> =
            command.required_vars().iter().copied().filter(|v| !present(v)).collect();
        if !missing.is_empty() {
            return Err(CniError::missing_env(command.as_str(), &missing));
        }
        if let Some(id) = &container_id {
            validate_container_id(id)?;
        }
        if let Some(name) = &ifname {
            validate_ifname(name)?;
        }
        Ok(CniEnv {
            command,
            container_id,
            netns: netns.map(PathBuf::from),
            ifname,
            args: CniArgs::parse(args.as_deref().unwrap_or(""))?,
            path: CniPath::parse(path.as_deref().unwrap_or("")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let map: HashMap<String, OsString> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(*v))).collect();
        CniEnv::from_lookup(&|k| map.get(k).cloned())
    }

    const FULL: [(&str, &str); 6] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/blue"),
        ("CNI_IFNAME", "net1"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web-0"),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
    ];

    fn without(cmd: &str, drop: &[&str]) -> Vec<(&'static str, String)> {
        FULL.iter()
            .filter(|(k, _)| !drop.contains(k))
            .map(|(k, v)| (*k, if *k == "CNI_COMMAND" { cmd.to_owned() } else { (*v).to_owned() }))
            .collect()
    }

    fn env_owned(pairs: &[(&'static str, String)]) -> Result<CniEnv, CniError> {
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env(&borrowed)
    }

    #[test]
    fn full_env_parses() {
        let e = env(&FULL).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id.as_deref(), Some("abc123"));
        assert_eq!(e.netns.as_deref(), Some(Path::new("/var/run/netns/blue")));
        assert_eq!(e.path.dirs(), [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]);
        assert_eq!(e.path.to_env_string(), "/opt/cni/bin:/usr/lib/cni");
        assert_eq!(e.args.k8s().pod_name.as_deref(), Some("web-0"));
    }

    #[test]
    fn required_variables_per_command() {
        // (command, variable removed, must fail)
        let table = [
            ("ADD", "CNI_CONTAINERID", true),
            ("ADD", "CNI_NETNS", true),
            ("ADD", "CNI_IFNAME", true),
            ("ADD", "CNI_PATH", false),
            ("ADD", "CNI_ARGS", false),
            ("CHECK", "CNI_CONTAINERID", true),
            ("CHECK", "CNI_NETNS", true),
            ("CHECK", "CNI_IFNAME", true),
            ("CHECK", "CNI_PATH", false),
            ("DEL", "CNI_CONTAINERID", true),
            ("DEL", "CNI_IFNAME", true),
            ("DEL", "CNI_NETNS", false),
            ("DEL", "CNI_PATH", false),
            ("GC", "CNI_PATH", true),
            ("GC", "CNI_CONTAINERID", false),
            ("GC", "CNI_NETNS", false),
            ("GC", "CNI_IFNAME", false),
            ("STATUS", "CNI_PATH", false),
            ("STATUS", "CNI_CONTAINERID", false),
            ("VERSION", "CNI_PATH", false),
            ("VERSION", "CNI_IFNAME", false),
        ];
        for (cmd, var, must_fail) in table {
            let r = env_owned(&without(cmd, &[var]));
            match (must_fail, r) {
                (true, Err(e)) => {
                    assert_eq!(e.code().get(), 4);
                    assert!(e.msg().contains(var), "{cmd} without {var}: {e}");
                }
                (false, Ok(e)) => assert_eq!(e.command.as_str(), cmd),
                (true, Ok(_)) => panic!("{cmd} without {var} must fail"),
                (false, Err(e)) => panic!("{cmd} without {var} must pass: {e}"),
            }
        }
    }

    #[test]
    fn all_missing_variables_are_named_once() {
        let e = env(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(
            e.msg(),
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"
        );
        let e = env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "")]).unwrap_err();
        assert_eq!(e.msg(), "required env variables [CNI_PATH] missing");
        let e = env(&[]).unwrap_err();
        assert!(e.msg().contains("CNI_COMMAND"));
        let e = env(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert_eq!((e.code().get(), e.msg()), (4, "invalid environment variable CNI_COMMAND"));
        assert!(e.details().contains("FROB"));
    }

    #[test]
    fn values_are_validated() {
        let mut bad = without("ADD", &[]);
        bad[1].1 = "-leading-dash".into();
        let e = env_owned(&bad).unwrap_err();
        assert!(e.details().starts_with("CNI_CONTAINERID=\"-leading-dash\""), "{e}");
        for name in ["", "a/b", "a:b", "a b", ".", "..", "sixteen-chars-xx"] {
            if name.is_empty() {
                continue; // empty means unset: covered by required_variables_per_command
            }
            let mut bad = without("ADD", &[]);
            bad[3].1 = name.into();
            let e = env_owned(&bad).unwrap_err();
            assert!(e.details().starts_with(&format!("CNI_IFNAME={name:?}")), "{name}: {e}");
        }
        assert!(validate_ifname("enp59s0f0v127").is_ok());
        assert!(validate_ifname("fifteen-chars-x").is_ok());
        let mut bad = without("ADD", &[]);
        bad[4].1 = "novalue".into();
        let e = env_owned(&bad).unwrap_err();
        assert!(e.details().contains("invalid pair \"novalue\""), "{e}");
    }

    #[test]
    fn non_utf8_is_rejected_naming_the_variable() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0x2f, 0xff, 0xfe]);
        let lookup = |k: &str| match k {
            "CNI_COMMAND" => Some(OsString::from("DEL")),
            "CNI_CONTAINERID" => Some(OsString::from("c1")),
            "CNI_IFNAME" => Some(OsString::from("eth0")),
            "CNI_NETNS" => Some(bad.clone()),
            _ => None,
        };
        let e = CniEnv::from_lookup(&lookup).unwrap_err();
        assert!(e.msg().contains("CNI_NETNS"), "{e}");
    }

    #[test]
    fn cni_args_parsing_and_unknown_keys() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=u;").unwrap();
        assert!(a.ignore_unknown());
        assert_eq!(
            a.k8s(),
            K8sArgs {
                pod_namespace: Some("ns".into()),
                pod_name: Some("p".into()),
                pod_infra_container_id: Some("c".into()),
                pod_uid: Some("u".into())
            }
        );
        assert!(a.reject_unknown(&[]).is_ok(), "IgnoreUnknown=1 accepts anything");

        let strict = CniArgs::parse("MAC=02:00:5e:00:53:07;FOO=bar").unwrap();
        assert!(!strict.ignore_unknown());
        let e = strict.reject_unknown(&["MAC"]).unwrap_err();
        assert_eq!(e.code().get(), 4);
        assert!(e.details().contains("unknown key \"FOO\""), "{e}");
        assert!(strict.reject_unknown(&["MAC", "FOO"]).is_ok());
        assert_eq!(strict.mac().unwrap(), Some("02:00:5e:00:53:07".parse().unwrap()));

        let off = CniArgs::parse("IgnoreUnknown=false;X=1").unwrap();
        assert!(off.reject_unknown(&[]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=maybe").is_err());
        assert!(CniArgs::parse("=v").is_err());
        assert_eq!(CniArgs::parse("A=b=c").unwrap().get("A"), Some("b=c"));
        assert_eq!(CniArgs::parse("").unwrap().pairs(), &[]);
    }

    #[test]
    fn cni_args_ip_and_mac_helpers() {
        let a = CniArgs::parse("IP=192.0.2.7,2001:db8::7/64").unwrap();
        let ips = a.ips().unwrap();
        assert_eq!(ips.len(), 2);
        assert_eq!(ips[1].prefix_len, Some(64));
        assert_eq!(CniArgs::parse("").unwrap().ips().unwrap(), vec![]);
        let e = CniArgs::parse("IP=192.0.2.300").unwrap().ips().unwrap_err();
        assert!(e.details().contains("192.0.2.300"), "{e}");
        let e = CniArgs::parse("MAC=zz").unwrap().mac().unwrap_err();
        assert!(e.details().contains("MAC"), "{e}");
        assert_eq!(CniArgs::parse("K8S_POD_NAME=").unwrap().k8s().pod_name, None);
    }

    #[test]
    fn cni_path_finds_executables_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let write = |dir: &Path, name: &str, mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        write(a.path(), "ipam", 0o644); // not executable: skipped
        let in_b = write(b.path(), "ipam", 0o755);
        std::fs::create_dir(a.path().join("dir")).unwrap(); // a directory: skipped
        let path = CniPath::parse(&format!("{}:{}", a.path().display(), b.path().display()));
        assert_eq!(path.find("ipam"), Some(in_b));
        assert_eq!(path.find("dir"), None);
        assert_eq!(path.find("missing"), None);
        assert!(CniPath::parse("").is_empty());
    }
}
