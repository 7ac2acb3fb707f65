//! Executing delegated plugins (IPAM) as the spec defines it.
//!
//! The delegate is found by name in `CNI_PATH`, run with the caller's environment (only
//! `CNI_COMMAND` set to the delegated operation) and the caller's stdin configuration, and its
//! stdout read as a result or as an error, whose code and message are passed on unchanged.
//!
//! There is no timeout (the spec has none). Pipes cannot deadlock: stdin is written from its own
//! thread while stdout and stderr are drained together, so a delegate may print megabytes
//! before it reads its input.
//!
//! Spec tolerances implemented here:
//! - `DEL` does not need `CNI_NETNS`, and a delegate answering `DEL` with code 3 ("container
//!   unknown": nothing to release) counts as success.
//! - `GC` and `STATUS` exist only in 1.1.0; a delegate whose `VERSION` reply does not list the
//!   configuration's version is skipped for them (logged), instead of failing on a command it
//!   cannot know. `ADD`, `CHECK` and `DEL` are always sent, so a version mismatch surfaces
//!   as the delegate's own code-1 error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitStatus, Stdio};

use crate::env::{self, CniPath, Command};
use crate::error::{CniError, ErrorCode};
use crate::result::{CniResult, parse_result};
use crate::version::{CniVersion, VersionInfo};

/// The environment passed to a delegate (besides `CNI_COMMAND`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelegateEnv {
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`, as received.
    pub args: Option<String>,
    /// `CNI_PATH`.
    pub path: CniPath,
}

/// What a delegate printed and how it exited.
#[derive(Debug)]
pub struct ExecOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

/// Finds `plugin_type` in `CNI_PATH`.
///
/// Errors: code 4 if `CNI_PATH` is empty, code 7 if no directory holds an executable of that
/// name (the configuration names a plugin that is not installed).
pub fn find_plugin(field: &str, plugin_type: &str, path: &CniPath) -> Result<PathBuf, CniError> {
    if path.is_empty() {
        return Err(CniError::new(
            ErrorCode::INVALID_ENVIRONMENT,
            format!("required env variables [{}] missing", env::PATH),
            format!("{field} = {plugin_type:?} must be delegated, which needs {}", env::PATH),
        ));
    }
    path.find(plugin_type).ok_or_else(|| {
        CniError::invalid_config(
            field,
            format_args!("{plugin_type:?}"),
            format_args!("plugin not found in CNI_PATH={}", path.to_env_string()),
        )
    })
}

/// Runs `plugin` with `command`, `env` and `stdin`, and collects its output.
///
/// Fails (code 5) only if the process cannot be started or its pipes fail; the exit status is
/// for the caller to judge.
pub fn exec_plugin(
    plugin: &Path,
    command: Command,
    env: &DelegateEnv,
    stdin: &[u8],
) -> Result<ExecOutput, CniError> {
    let mut cmd = Process::new(plugin);
    cmd.env(env::COMMAND, command.as_str());
    set_or_remove(&mut cmd, env::CONTAINERID, env.container_id.as_deref());
    set_or_remove(
        &mut cmd,
        env::NETNS,
        env.netns.as_ref().map(|p| p.as_os_str().to_string_lossy()).as_deref(),
    );
    set_or_remove(&mut cmd, env::IFNAME, env.ifname.as_deref());
    set_or_remove(&mut cmd, env::ARGS, env.args.as_deref());
    let path = env.path.to_env_string();
    set_or_remove(&mut cmd, env::PATH, Some(path.as_str()));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());

    let what = || format!("{} {}", plugin.display(), command);
    let mut child = spawn_retrying_busy(&mut cmd)
        .map_err(|e| CniError::io(format_args!("starting {}", what()), &e))?;
    let input = child.stdin.take();
    // Write stdin from a scoped thread while wait_with_output drains stdout and stderr, so a
    // delegate that prints a lot before reading cannot block us (and we cannot block it).
    let (output, written) = std::thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<()> {
            if let Some(mut pipe) = input {
                match pipe.write_all(stdin) {
                    // The delegate may exit without reading its input; that is its business.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
            }
            Ok(())
        });
        let output = child.wait_with_output();
        let written =
            writer.join().unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")));
        (output, written)
    });
    let output =
        output.map_err(|e| CniError::io(format_args!("reading output of {}", what()), &e))?;
    if let Err(e) = written {
        tracing::debug!(plugin = %plugin.display(), error = %e, "delegate stdin not fully written");
    }
    for line in String::from_utf8_lossy(&output.stderr).lines().filter(|l| !l.is_empty()) {
        tracing::debug!(plugin = %plugin.display(), command = %command, "delegate stderr: {line}");
    }
    tracing::debug!(plugin = %plugin.display(), command = %command, status = %output.status, stdout_bytes = output.stdout.len(), "delegate finished");
    Ok(ExecOutput { status: output.status, stdout: output.stdout, stderr: output.stderr })
}

/// Spawns, retrying a few times on `ETXTBSY`: a daemonset replacing the binary in the CNI
/// directory while we exec it makes the kernel refuse with "text file busy" for a moment
/// (libcni retries the same way).
fn spawn_retrying_busy(cmd: &mut Process) -> std::io::Result<std::process::Child> {
    /// `ETXTBSY` (26 on every Linux architecture).
    const ETXTBSY: i32 = 26;
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempt < ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "delegate binary busy; retrying");
                std::thread::sleep(std::time::Duration::from_millis(200));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn set_or_remove(cmd: &mut Process, key: &str, value: Option<&str>) {
    match value {
        Some(v) if !v.is_empty() => {
            cmd.env(key, v);
        }
        _ => {
            cmd.env_remove(key);
        }
    }
}

/// A delegated plugin bound to one invocation: its name, the environment and the stdin
/// configuration to pass on, and the configuration's version.
#[derive(Debug, Clone, Copy)]
pub struct Delegate<'a> {
    /// The config field that named the delegate (`"ipam.type"`), for error details.
    pub field: &'a str,
    /// The delegate's executable name.
    pub plugin_type: &'a str,
    /// The environment to pass on.
    pub env: &'a DelegateEnv,
    /// The stdin configuration to pass on (the caller's own, unchanged).
    pub stdin: &'a [u8],
    /// The configuration's version; the delegate's result is converted to it.
    pub version: CniVersion,
}

impl Delegate<'_> {
    fn run(&self, command: Command) -> Result<ExecOutput, CniError> {
        let path = find_plugin(self.field, self.plugin_type, &self.env.path)?;
        tracing::debug!(delegate = self.plugin_type, path = %path.display(), command = %command, "executing delegate");
        let out = exec_plugin(&path, command, self.env, self.stdin)?;
        if out.status.success() { Ok(out) } else { Err(self.failure(&path, command, &out)) }
    }

    /// The delegate's own error (code, msg and details kept) or, if it printed none, code 999
    /// with its exit status and output.
    fn failure(&self, path: &Path, command: Command, out: &ExecOutput) -> CniError {
        let stdout = String::from_utf8_lossy(&out.stdout);
        match CniError::from_json(&out.stdout) {
            Ok(e) if e.details().is_empty() => {
                let details = format!(
                    "{} {} ({}) failed with {}",
                    self.plugin_type,
                    command,
                    path.display(),
                    out.status
                );
                e.with_details(details)
            }
            Ok(e) => e,
            Err(_) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                CniError::internal(
                    format!("{} {} failed", self.plugin_type, command),
                    format!(
                        "{} exited with {} without an error result; stdout: {:?}; stderr: {:?}",
                        path.display(),
                        out.status,
                        truncate(stdout.trim(), 512),
                        truncate(stderr.trim(), 512)
                    ),
                )
            }
        }
    }

    /// `ADD`: the delegate's result, converted to the configuration's version.
    pub fn add(&self) -> Result<CniResult, CniError> {
        let out = self.run(Command::Add)?;
        let what = format!("result of {} ADD", self.plugin_type);
        let parsed = parse_result(&out.stdout, self.version).map_err(|e| e.into_cni(&what))?;
        Ok(parsed.result.convert_to(self.version))
    }

    /// `DEL`, tolerant: code 3 from the delegate (nothing known about the container) is
    /// success.
    pub fn del(&self) -> Result<(), CniError> {
        match self.run(Command::Del) {
            Err(e) if e.code() == ErrorCode::UNKNOWN_CONTAINER => {
                tracing::info!(delegate = self.plugin_type, error = %e, "delegate knows nothing about the container; DEL is complete");
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// `CHECK`.
    pub fn check(&self) -> Result<(), CniError> {
        self.run(Command::Check).map(drop)
    }

    /// `GC`, skipped (Ok) if the delegate does not support the configuration's version.
    pub fn gc(&self) -> Result<(), CniError> {
        if !self.supports_own_version(Command::Gc)? {
            return Ok(());
        }
        self.run(Command::Gc).map(drop)
    }

    /// `STATUS`, skipped (Ok) if the delegate does not support the configuration's version.
    pub fn status(&self) -> Result<(), CniError> {
        if !self.supports_own_version(Command::Status)? {
            return Ok(());
        }
        self.run(Command::Status).map(drop)
    }

    /// `VERSION`: the delegate's reply.
    pub fn version_info(&self) -> Result<VersionInfo, CniError> {
        let request = serde_json::json!({ "cniVersion": self.version.as_str() }).to_string();
        let probe = Delegate { stdin: request.as_bytes(), ..*self };
        let out = probe.run(Command::Version)?;
        serde_json::from_slice(&out.stdout).map_err(|e| {
            CniError::decoding(format_args!("VERSION reply of {}", self.plugin_type), e.to_string())
        })
    }

    fn supports_own_version(&self, command: Command) -> Result<bool, CniError> {
        let info = self.version_info()?;
        let ok = info.supports(self.version);
        if !ok {
            tracing::warn!(
                delegate = self.plugin_type,
                command = %command,
                cni_version = self.version.as_str(),
                supported = ?info.supported_versions,
                "delegate does not support this configuration's version; not forwarding {command}"
            );
        }
        Ok(ok)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Fake {
            Fake { dir: tempfile::tempdir().unwrap() }
        }

        fn script(&self, name: &str, body: &str) {
            let p = self.dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        fn env(&self) -> DelegateEnv {
            DelegateEnv {
                container_id: Some("c1".into()),
                netns: None,
                ifname: Some("net1".into()),
                args: Some("IgnoreUnknown=1".into()),
                path: CniPath::from_dirs([self.dir.path().to_path_buf()]),
            }
        }
    }

    fn delegate<'a>(env: &'a DelegateEnv, stdin: &'a [u8], version: CniVersion) -> Delegate<'a> {
        Delegate { field: "ipam.type", plugin_type: "fake", env, stdin, version }
    }

    #[test]
    fn add_passes_env_and_stdin_and_converts_the_result() {
        let f = Fake::new();
        let log = f.dir.path().join("seen");
        f.script(
            "fake",
            &format!(
                "env | grep '^CNI_' | sort > {log}\ncat >> {log}\nprintf '%s' '{{\"cniVersion\":\"1.1.0\",\"ips\":[{{\"address\":\"192.0.2.7/24\"}}]}}'",
                log = log.display()
            ),
        );
        let env = f.env();
        let r = delegate(&env, b"{\"hello\":1}", CniVersion::V0_4_0).add().unwrap();
        assert_eq!(r.ips[0].address.to_string(), "192.0.2.7/24");
        let seen = std::fs::read_to_string(&log).unwrap();
        assert!(seen.contains("CNI_COMMAND=ADD\n"), "{seen}");
        assert!(seen.contains("CNI_CONTAINERID=c1\n"), "{seen}");
        assert!(seen.contains("CNI_IFNAME=net1\n"), "{seen}");
        assert!(seen.contains("CNI_ARGS=IgnoreUnknown=1\n"), "{seen}");
        assert!(!seen.contains("CNI_NETNS="), "unset netns must not be passed: {seen}");
        assert!(seen.ends_with("{\"hello\":1}"), "{seen}");
    }

    #[test]
    fn errors_are_propagated_with_code_and_msg() {
        let f = Fake::new();
        f.script("fake", r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"pool locked"}'; exit 1"#);
        let env = f.env();
        let e = delegate(&env, b"{}", CniVersion::V1_0_0).add().unwrap_err();
        assert_eq!(e.code(), ErrorCode::TRY_AGAIN_LATER);
        assert_eq!(e.msg(), "pool locked");
        assert!(e.details().contains("fake ADD"), "{}", e.details());

        f.script("fake", r#"echo '{"code":107,"msg":"m","details":"d"}'; exit 2"#);
        let e = delegate(&env, b"{}", CniVersion::V1_0_0).check().unwrap_err();
        assert_eq!((e.code().get(), e.msg(), e.details()), (107, "m", "d"));

        f.script("fake", "echo 'panic: runtime error' >&2; exit 2");
        let e = delegate(&env, b"{}", CniVersion::V1_0_0).add().unwrap_err();
        assert_eq!(e.code(), ErrorCode::INTERNAL);
        assert!(e.details().contains("panic: runtime error"), "{}", e.details());

        f.script("fake", "echo 'not json'");
        let e = delegate(&env, b"{}", CniVersion::V1_0_0).add().unwrap_err();
        assert_eq!(e.code(), ErrorCode::DECODING_FAILURE);
        assert!(e.details().starts_with("result of fake ADD"), "{}", e.details());
    }

    #[test]
    fn missing_plugin_and_missing_path() {
        let f = Fake::new();
        let env = f.env();
        let e = delegate(&env, b"{}", CniVersion::V1_0_0).add().unwrap_err();
        assert_eq!(e.code(), ErrorCode::INVALID_NETWORK_CONFIG);
        assert!(e.details().starts_with("ipam.type = \"fake\""), "{}", e.details());
        let no_path = DelegateEnv { path: CniPath::default(), ..f.env() };
        let e = delegate(&no_path, b"{}", CniVersion::V1_0_0).del().unwrap_err();
        assert_eq!(e.code(), ErrorCode::INVALID_ENVIRONMENT);
        assert!(e.msg().contains("CNI_PATH"), "{e}");
    }

    #[test]
    fn del_treats_unknown_container_as_done() {
        let f = Fake::new();
        f.script("fake", r#"echo '{"code":3,"msg":"no such container"}'; exit 1"#);
        let env = f.env();
        assert!(delegate(&env, b"{}", CniVersion::V1_0_0).del().is_ok());
        f.script("fake", r#"echo '{"code":5,"msg":"disk full"}'; exit 1"#);
        assert_eq!(delegate(&env, b"{}", CniVersion::V1_0_0).del().unwrap_err().code().get(), 5);
    }

    #[test]
    fn gc_and_status_only_reach_delegates_that_know_the_version() {
        let f = Fake::new();
        let marker = f.dir.path().join("called");
        let body = |versions: &str| {
            format!(
                "if [ \"$CNI_COMMAND\" = VERSION ]; then echo '{{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[{versions}]}}'; exit 0; fi\necho \"$CNI_COMMAND\" >> {}",
                marker.display()
            )
        };
        let env = f.env();
        f.script("fake", &body("\"0.4.0\",\"1.0.0\""));
        delegate(&env, b"{}", CniVersion::V1_1_0).gc().unwrap();
        delegate(&env, b"{}", CniVersion::V1_1_0).status().unwrap();
        assert!(!marker.exists(), "old delegate must not get GC/STATUS");
        f.script("fake", &body("\"1.0.0\",\"1.1.0\""));
        delegate(&env, b"{}", CniVersion::V1_1_0).gc().unwrap();
        delegate(&env, b"{}", CniVersion::V1_1_0).status().unwrap();
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "GC\nSTATUS\n");
    }

    #[test]
    fn large_outputs_in_both_directions_do_not_deadlock() {
        let f = Fake::new();
        // Print 4 MiB of whitespace and 1 MiB of stderr before reading 2 MiB of stdin: a
        // sequential implementation would block on a full pipe.
        f.script(
            "fake",
            "head -c 4194304 /dev/zero | tr '\\0' ' '\nhead -c 1048576 /dev/zero >&2\nwc -c > \"$(dirname \"$0\")/stdin-bytes\"\nprintf '%s' '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"198.51.100.2/24\"}]}'",
        );
        let env = f.env();
        let stdin = vec![b' '; 2 * 1024 * 1024];
        let r = delegate(&env, &stdin, CniVersion::V1_0_0).add().unwrap();
        assert_eq!(r.ips.len(), 1);
        let n = std::fs::read_to_string(f.dir.path().join("stdin-bytes")).unwrap();
        assert_eq!(n.trim(), (2 * 1024 * 1024).to_string());
    }

    #[test]
    fn a_binary_still_being_written_is_retried() {
        use std::io::Write as _;
        let f = Fake::new();
        let p = f.dir.path().join("fake");
        let mut w = std::fs::File::create(&p).unwrap();
        w.write_all(b"#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // While the file is open for writing, exec fails with ETXTBSY.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(w);
        });
        let env = f.env();
        delegate(&env, b"{}", CniVersion::V1_0_0).check().unwrap();
        closer.join().unwrap();
    }

    #[test]
    fn delegate_exiting_without_reading_stdin_is_fine() {
        let f = Fake::new();
        f.script("fake", "exit 0");
        let env = f.env();
        let stdin = vec![b'x'; 1024 * 1024];
        delegate(&env, &stdin, CniVersion::V1_0_0).check().unwrap();
    }
}
