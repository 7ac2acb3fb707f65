//! IPAM delegation to the real `host-local` plugin (Debian package
//! `containernetworking-plugins`, binaries in /usr/lib/cni), on TEST-NET ranges with a
//! private data directory. Skipped with a message when host-local is not installed.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::{attach_env, run, run_plugin, with_prev};

const CNI_DIR: &str = "/usr/lib/cni";

fn host_local() -> Option<PathBuf> {
    let p = Path::new(CNI_DIR).join("host-local");
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipped: {} not found (apt-get install -y containernetworking-plugins)",
            p.display()
        );
        None
    }
}

/// The versions this host-local accepts.
fn host_local_versions(exe: &Path) -> Vec<String> {
    let r = run_plugin(exe, &[("CNI_COMMAND", "VERSION")], "");
    assert!(r.success, "host-local VERSION failed: {}", r.stderr);
    serde_json::from_value(r.json()["supportedVersions"].clone()).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir(f.state()).unwrap();
        f
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// host-local keeps one file per allocated address under `<dataDir>/<network>/`.
    fn allocations(&self) -> Vec<(String, String)> {
        let dir = self.dir.path().join("ipam").join("hlnet");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        let mut out: Vec<(String, String)> = entries
            .map(|e| e.unwrap())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.parse::<std::net::IpAddr>().is_ok()
            })
            .map(|e| {
                let owner = std::fs::read_to_string(e.path()).unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    owner.lines().next().unwrap_or("").to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn conf(&self, version: &str, subnet: &str, extra: Value) -> Value {
        let mut v = json!({
            "cniVersion": version, "name": "hlnet", "type": "cni-example-plugin",
            "stateDir": self.state(),
            "ipam": {"type": "host-local", "dataDir": self.dir.path().join("ipam"),
                     "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }
}

#[test]
fn add_check_del_cycle_in_every_version_host_local_supports() {
    let Some(hl) = host_local() else { return };
    let supported = host_local_versions(&hl);
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        if !supported.iter().any(|v| v == version) {
            eprintln!(
                "host-local does not support {version}; covered by version_mismatch_is_reported"
            );
            continue;
        }
        let f = Fixture::new();
        let conf = f.conf(version, "192.0.2.0/29", json!({}));
        let cid = "ctr-a1";

        let add = run(&attach_env("ADD", cid, CNI_DIR), &conf.to_string());
        assert!(add.success, "{version} ADD: {} {}", add.stdout, add.stderr);
        let result = add.json();
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["interfaces"][0]["name"], "net1");
        assert_eq!(result["interfaces"][0]["sandbox"], "/var/run/netns/cni-spec-test");
        let ip = &result["ips"][0];
        assert_eq!(ip["interface"], 0);
        assert_eq!(ip["gateway"], "192.0.2.1");
        if version.starts_with("0.") {
            assert_eq!(ip["version"], "4");
        } else {
            assert!(ip.get("version").is_none());
        }
        let addr = ip["address"].as_str().unwrap().to_owned();
        let (host, len) = addr.split_once('/').unwrap();
        assert_eq!(len, "29");
        assert_eq!(result["routes"], json!([{"dst": "0.0.0.0/0"}]));
        assert_eq!(
            f.allocations(),
            vec![(host.to_owned(), cid.to_owned())],
            "host-local recorded the owner"
        );

        let check = run(&attach_env("CHECK", cid, CNI_DIR), &with_prev(&conf, &result));
        if version.starts_with("0.3") {
            assert_eq!(check.error()["code"], 1, "{version}: CHECK needs 0.4.0");
        } else {
            check.assert_silent_success();
        }

        // DEL without netns: best effort, releases the address.
        let del_env: Vec<_> = attach_env("DEL", cid, CNI_DIR)
            .into_iter()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        run(&del_env, &with_prev(&conf, &result)).assert_silent_success();
        assert_eq!(f.allocations(), vec![], "{version}: DEL released the address");
        // Repeated DEL succeeds.
        run(&del_env, &conf.to_string()).assert_silent_success();

        if !version.starts_with("0.3") {
            let e = run(&attach_env("CHECK", cid, CNI_DIR), &with_prev(&conf, &result)).error();
            assert_eq!(e["code"], 100, "CHECK after DEL: attachment not recorded");
        }
    }
}

#[test]
fn exhausted_range_error_is_propagated_unchanged() {
    let Some(hl) = host_local() else { return };
    let f = Fixture::new();
    // A /30 with the gateway on .1 leaves exactly one address (.2).
    let conf = f.conf("1.0.0", "192.0.2.0/30", json!({})).to_string();
    assert!(run(&attach_env("ADD", "first", CNI_DIR), &conf).success);

    let ours = run(&attach_env("ADD", "second", CNI_DIR), &conf).error();
    // What host-local itself says for the same request.
    let direct = run_plugin(&hl, &attach_env("ADD", "second", CNI_DIR), &conf);
    assert!(!direct.success);
    let direct = direct.json(); // Go plugins omit cniVersion in errors
    assert_eq!(ours["code"], direct["code"]);
    assert_eq!(ours["msg"], direct["msg"]);
    assert!(ours["msg"].as_str().unwrap().contains("no IP addresses available"), "{ours}");
    assert_eq!(ours["cniVersion"], "1.0.0");
    assert!(ours["details"].as_str().unwrap().contains("host-local ADD"), "{ours}");
    assert_eq!(f.allocations(), vec![("192.0.2.2".to_owned(), "first".to_owned())]);
    assert!(
        !f.state().join("hlnet%second%net1.json").exists(),
        "nothing recorded for the failed ADD"
    );
}

#[test]
fn failed_add_releases_the_address() {
    let Some(_) = host_local() else { return };
    let f = Fixture::new();
    let conf = f.conf("1.0.0", "198.51.100.0/29", json!({"failAfterIpam": true})).to_string();
    let e = run(&attach_env("ADD", "c1", CNI_DIR), &conf).error();
    assert_eq!(e["code"], 101);
    assert_eq!(f.allocations(), vec![], "the address allocated before the failure was released");
}

#[test]
fn host_local_check_failure_is_propagated() {
    let Some(_) = host_local() else { return };
    let f = Fixture::new();
    let conf = f.conf("1.0.0", "203.0.113.0/29", json!({}));
    let add = run(&attach_env("ADD", "c1", CNI_DIR), &conf.to_string());
    let result = add.json();
    // Lose the reservation behind the plugin's back.
    let (ip, _) = f.allocations().remove(0);
    std::fs::remove_file(f.dir.path().join("ipam/hlnet").join(ip)).unwrap();
    let e = run(&attach_env("CHECK", "c1", CNI_DIR), &with_prev(&conf, &result)).error();
    assert!(e["msg"].as_str().unwrap().contains("Failed to find address"), "{e}");
}

#[test]
fn gc_releases_stale_attachments_through_host_local() {
    let Some(hl) = host_local() else { return };
    let f = Fixture::new();
    let log = f.dir.path().join("plugin.log");
    let add_conf = f.conf("1.0.0", "192.0.2.0/29", json!({})).to_string();
    for cid in ["live", "gone1", "gone2"] {
        assert!(run(&attach_env("ADD", cid, CNI_DIR), &add_conf).success);
    }
    assert_eq!(f.allocations().len(), 3);

    // The runtime moved the list to 1.1.0 to use GC.
    let mut gc = f.conf("1.1.0", "192.0.2.0/29", json!({"logFile": log, "logLevel": "debug"}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "live", "ifname": "net1"}]);
    run(&[("CNI_COMMAND", "GC"), ("CNI_PATH", CNI_DIR)], &gc.to_string()).assert_silent_success();

    let owners: Vec<String> = f.allocations().into_iter().map(|(_, owner)| owner).collect();
    assert_eq!(owners, vec!["live"], "stale addresses released, the valid one kept");
    assert!(f.state().join("hlnet%live%net1.json").exists());
    assert!(!f.state().join("hlnet%gone1%net1.json").exists());
    let text = std::fs::read_to_string(&log).unwrap();
    if host_local_versions(&hl).iter().any(|v| v == "1.1.0") {
        assert!(!text.contains("not forwarding GC"), "{text}");
    } else {
        assert!(
            text.contains("not forwarding GC"),
            "GC is not sent to a pre-1.1 host-local: {text}"
        );
    }
    // Again: nothing left to do.
    run(&[("CNI_COMMAND", "GC"), ("CNI_PATH", CNI_DIR)], &gc.to_string()).assert_silent_success();
    assert_eq!(f.allocations().len(), 1);
}

#[test]
fn version_mismatch_with_host_local_is_reported() {
    let Some(hl) = host_local() else { return };
    if host_local_versions(&hl).iter().any(|v| v == "1.1.0") {
        eprintln!("skipped: this host-local supports 1.1.0");
        return;
    }
    let f = Fixture::new();
    let e = run(
        &attach_env("ADD", "c1", CNI_DIR),
        &f.conf("1.1.0", "192.0.2.0/29", json!({})).to_string(),
    )
    .error();
    assert_eq!(e["code"], 1, "host-local's own incompatible-version error: {e}");
    assert_eq!(e["msg"], "incompatible CNI versions");
    assert!(e["details"].as_str().unwrap().contains("1.1.0"), "{e}");
    assert_eq!(f.allocations(), vec![]);
}
