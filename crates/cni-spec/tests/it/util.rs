//! Running the example plugin.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The example plugin, built by `cargo test`/`cargo nextest` next to this test binary.
pub fn example_plugin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/cni-example-plugin
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join("cni-example-plugin");
    assert!(
        bin.exists(),
        "{} not built; run the tests with `cargo test -p cni-spec` or `cargo nextest run -p cni-spec`, which build examples",
        bin.display()
    );
    bin
}

/// One finished invocation.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as the single JSON document it must be.
    pub fn json(&self) -> Value {
        let mut docs = serde_json::Deserializer::from_str(&self.stdout).into_iter::<Value>();
        let first = docs
            .next()
            .unwrap_or_else(|| panic!("no JSON on stdout; stderr: {}", self.stderr))
            .unwrap();
        assert!(docs.next().is_none(), "more than one JSON document on stdout: {}", self.stdout);
        first
    }

    /// Asserts success with an empty stdout (DEL, CHECK, GC, STATUS).
    pub fn assert_silent_success(&self) {
        assert!(
            self.success,
            "expected success, got stdout {} stderr {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "stdout must be empty on success");
    }

    /// Asserts failure and returns the error JSON.
    pub fn error(&self) -> Value {
        assert!(!self.success, "expected failure, got stdout {}", self.stdout);
        let v = self.json();
        assert!(v["code"].is_u64(), "error without code: {v}");
        assert!(v["msg"].is_string(), "error without msg: {v}");
        assert!(v["cniVersion"].is_string(), "error without cniVersion: {v}");
        v
    }
}

/// Runs `exe` with exactly these variables (plus PATH for shell scripts) and `stdin`.
pub fn run_plugin(exe: &Path, env: &[(&str, &str)], stdin: &str) -> Run {
    let mut cmd = Command::new(exe);
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        success: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the example plugin.
pub fn run(env: &[(&str, &str)], stdin: &str) -> Run {
    run_plugin(&example_plugin(), env, stdin)
}

/// The variables of an attachment command.
pub fn attach_env<'a>(
    cmd: &'a str,
    container_id: &'a str,
    cni_path: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", container_id),
        ("CNI_NETNS", "/var/run/netns/cni-spec-test"),
        ("CNI_IFNAME", "net1"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"),
        ("CNI_PATH", cni_path),
    ]
}

/// Writes an executable shell script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Adds `prevResult` to a configuration.
pub fn with_prev(conf: &Value, prev: &Value) -> String {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c.to_string()
}
