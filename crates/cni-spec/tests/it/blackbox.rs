//! The runner's protocol behaviour, with fake IPAM plugins (no host-local needed).

use serde_json::{Value, json};

use crate::util::{attach_env, run, script, with_prev};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir(f.state()).unwrap();
        std::fs::create_dir(f.bin()).unwrap();
        f
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn bin(&self) -> std::path::PathBuf {
        self.dir.path().join("bin")
    }

    fn bin_str(&self) -> String {
        self.bin().display().to_string()
    }

    fn conf(&self, version: &str, extra: Value) -> Value {
        let mut v = json!({"cniVersion": version, "name": "testnet", "type": "cni-example-plugin",
                           "stateDir": self.state()});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    /// A fake IPAM that logs `CNI_COMMAND` and stdin, answers VERSION with 1.1.0 support and
    /// ADD with a fixed address.
    fn fake_ipam(&self) -> std::path::PathBuf {
        let log = self.dir.path().join("ipam.log");
        script(
            &self.bin(),
            "fake-ipam",
            &format!(
                r#"if [ "$CNI_COMMAND" = VERSION ]; then echo '{{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}}'; exit 0; fi
echo "== $CNI_COMMAND cid=$CNI_CONTAINERID if=$CNI_IFNAME netns=$CNI_NETNS" >> {log}
cat >> {log}
echo >> {log}
if [ "$CNI_COMMAND" = ADD ]; then echo '{{"cniVersion":"1.1.0","ips":[{{"address":"203.0.113.10/24","gateway":"203.0.113.1"}}],"routes":[{{"dst":"0.0.0.0/0","mtu":1400}}]}}'; fi"#,
                log = log.display()
            ),
        );
        log
    }
}

#[test]
fn version_reply() {
    let r = run(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
    assert!(r.success);
    assert_eq!(
        r.json(),
        json!({"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
    let r = run(&[("CNI_COMMAND", "VERSION")], "");
    assert_eq!(r.json()["cniVersion"], "1.1.0");
}

#[test]
fn missing_variables_are_named_per_command() {
    let f = Fixture::new();
    let conf = f.conf("1.1.0", json!({})).to_string();
    let e = run(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "net1")], &conf).error();
    assert_eq!(e["code"], 4);
    assert_eq!(e["msg"], "required env variables [CNI_CONTAINERID,CNI_NETNS] missing");
    let e = run(&[("CNI_COMMAND", "GC")], &conf).error();
    assert_eq!(e["msg"], "required env variables [CNI_PATH] missing");
    let e = run(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1")], &conf).error();
    assert_eq!(e["msg"], "required env variables [CNI_IFNAME] missing");
    let e = run(&[], &conf).error();
    assert_eq!(e["code"], 4);
    // DEL needs no netns, STATUS nothing at all.
    run(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "net1")], &conf)
        .assert_silent_success();
    run(&[("CNI_COMMAND", "STATUS")], &conf).assert_silent_success();
}

#[test]
fn bad_configurations_get_precise_errors() {
    let f = Fixture::new();
    let env = attach_env("ADD", "c1", "/nonexistent");
    let e = run(&env, "{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": \"testnet\",\n  \"type\": \"x\",\n  \"stateDir\": 7\n}").error();
    assert_eq!(e["code"], 6);
    let details = e["details"].as_str().unwrap();
    assert!(details.contains("key `stateDir`") && details.contains("line 5"), "{details}");

    let e = run(&env, &f.conf("0.2.0", json!({})).to_string()).error();
    assert_eq!(e["code"], 1);
    assert_eq!(e["cniVersion"], "1.1.0");
    assert!(e["details"].as_str().unwrap().starts_with("config is \"0.2.0\""), "{e}");

    let e = run(&env, &f.conf("1.0.0", json!({"name": "bad name"})).to_string()).error();
    assert_eq!(e["code"], 7);
    assert_eq!(
        e["details"],
        "name = \"bad name\": must start with an alphanumeric character, followed by alphanumerics, '_', '.' or '-'"
    );

    let e =
        run(&env, &f.conf("1.0.0", json!({"ipam": {"type": "not-installed"}})).to_string()).error();
    assert_eq!(e["code"], 7);
    assert!(
        e["details"].as_str().unwrap().starts_with(
            "ipam.type = \"not-installed\": plugin not found in CNI_PATH=/nonexistent"
        ),
        "{e}"
    );

    let e = run(&env, &f.conf("1.0.0", json!({"runtimeConfig": {"mac": "02:00:5e"}})).to_string())
        .error();
    assert_eq!(e["code"], 6);
    assert!(e["details"].as_str().unwrap().contains("runtimeConfig.mac"), "{e}");

    let e =
        run(&env, &with_prev(&f.conf("1.0.0", json!({})), &json!({"cniVersion": "9.9.9"}))).error();
    assert_eq!(e["code"], 1);
    assert!(e["details"].as_str().unwrap().starts_with("prevResult"), "{e}");
}

#[test]
fn commands_outside_the_config_version_are_refused() {
    let f = Fixture::new();
    let e =
        run(&attach_env("CHECK", "c1", "/x"), &with_prev(&f.conf("0.3.1", json!({})), &json!({})))
            .error();
    assert_eq!((e["code"].as_u64(), e["cniVersion"].as_str()), (Some(1), Some("0.3.1")));
    let e =
        run(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")], &f.conf("1.0.0", json!({})).to_string())
            .error();
    assert_eq!(e["msg"], "config version does not allow GC");
    let e = run(&[("CNI_COMMAND", "STATUS")], &f.conf("0.4.0", json!({})).to_string()).error();
    assert_eq!(e["msg"], "config version does not allow STATUS");
}

#[test]
fn add_with_fake_ipam_in_every_version() {
    let f = Fixture::new();
    let _log = f.fake_ipam();
    let bin = f.bin_str();
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let cid = format!("ctr{i}");
        let conf = f.conf(
            version,
            json!({"ipam": {"type": "fake-ipam"}, "runtimeConfig": {"mac": "02:00:5E:00:53:0A"}}),
        );
        let r = run(&attach_env("ADD", &cid, &bin), &conf.to_string());
        assert!(r.success, "{version}: {} {}", r.stdout, r.stderr);
        let out = r.json();
        let mut expected = json!({
            "cniVersion": version,
            "interfaces": [{"name": "net1", "mac": "02:00:5e:00:53:0a", "sandbox": "/var/run/netns/cni-spec-test"}],
            "ips": [{"address": "203.0.113.10/24", "gateway": "203.0.113.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "mtu": 1400}]
        });
        if version.starts_with("0.") {
            expected["ips"][0]["version"] = json!("4");
        }
        assert_eq!(out, expected, "{version}");
    }
}

#[test]
fn chained_add_passes_prev_result_through_converted() {
    let f = Fixture::new();
    let prev = json!({"cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/cni-spec-test", "pciID": "0000:3b:02.1", "mtu": 9000}],
        "ips": [{"address": "198.51.100.4/24", "interface": 0}]});
    let r = run(&attach_env("ADD", "c1", "/x"), &with_prev(&f.conf("0.4.0", json!({})), &prev));
    assert_eq!(
        r.json(),
        json!({"cniVersion": "0.4.0",
               "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/cni-spec-test"},
                              {"name": "net1", "sandbox": "/var/run/netns/cni-spec-test"}],
               "ips": [{"version": "4", "address": "198.51.100.4/24", "interface": 0}]})
    );
}

#[test]
fn ipam_gets_every_command_with_the_same_stdin() {
    let f = Fixture::new();
    let log = f.fake_ipam();
    let bin = f.bin_str();
    let conf = f.conf("1.1.0", json!({"ipam": {"type": "fake-ipam", "pool": "blue"}}));
    let add = run(&attach_env("ADD", "c1", &bin), &conf.to_string());
    assert!(add.success, "{}", add.stderr);
    run(&attach_env("CHECK", "c1", &bin), &with_prev(&conf, &add.json())).assert_silent_success();
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "net1"}]);
    run(&[("CNI_COMMAND", "GC"), ("CNI_PATH", &bin)], &gc_conf.to_string()).assert_silent_success();
    run(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", &bin)], &conf.to_string())
        .assert_silent_success();
    let del_env: Vec<(&str, &str)> =
        attach_env("DEL", "c1", &bin).into_iter().filter(|(k, _)| *k != "CNI_NETNS").collect();
    run(&del_env, &conf.to_string()).assert_silent_success();

    let text = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = text.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        calls,
        vec![
            "== ADD cid=c1 if=net1 netns=/var/run/netns/cni-spec-test",
            "== CHECK cid=c1 if=net1 netns=/var/run/netns/cni-spec-test",
            "== GC cid= if= netns=",
            "== STATUS cid= if= netns=",
            "== DEL cid=c1 if=net1 netns=",
        ]
    );
    let stdins: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stdins[0], conf, "ADD stdin is the plugin's own stdin");
    assert_eq!(
        stdins[2]["cni.dev/valid-attachments"],
        json!([{"containerID": "c1", "ifname": "net1"}])
    );
    assert!(stdins[1]["prevResult"].is_object(), "CHECK passes prevResult on");
}

#[test]
fn ipam_errors_keep_their_code_and_msg() {
    let f = Fixture::new();
    script(
        &f.bin(),
        "busy-ipam",
        r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":11,"msg":"pool is being resized","details":"pool blue"}'; exit 1"#,
    );
    let e = run(
        &attach_env("ADD", "c1", &f.bin_str()),
        &f.conf("1.0.0", json!({"ipam": {"type": "busy-ipam"}})).to_string(),
    )
    .error();
    assert_eq!(
        e,
        json!({"cniVersion": "1.0.0", "code": 11, "msg": "pool is being resized", "details": "pool blue"})
    );
}

#[test]
fn gc_forgets_stale_attachments() {
    let f = Fixture::new();
    let log = f.fake_ipam();
    let bin = f.bin_str();
    let conf = f.conf("1.1.0", json!({"ipam": {"type": "fake-ipam"}}));
    for cid in ["keep", "stale1", "stale2"] {
        assert!(run(&attach_env("ADD", cid, &bin), &conf.to_string()).success);
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "net1"}]);
    run(&[("CNI_COMMAND", "GC"), ("CNI_PATH", &bin)], &gc.to_string()).assert_silent_success();
    let mut left: Vec<String> = std::fs::read_dir(f.state())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["testnet%keep%net1.json"]);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut dels: Vec<&str> = text.lines().filter(|l| l.starts_with("== DEL")).collect();
    dels.sort();
    assert_eq!(dels, vec!["== DEL cid=stale1 if=net1 netns=", "== DEL cid=stale2 if=net1 netns="]);
    assert_eq!(text.lines().filter(|l| l.starts_with("== GC")).count(), 1);
}

#[test]
fn status_reports_unavailable_state_dir() {
    let f = Fixture::new();
    let conf = f.conf("1.1.0", json!({"stateDir": f.dir.path().join("missing")}));
    let e = run(&[("CNI_COMMAND", "STATUS")], &conf.to_string()).error();
    assert_eq!(e["code"], 50);
    assert!(e["details"].as_str().unwrap().contains("missing"), "{e}");
}

#[test]
fn logs_never_reach_stdout() {
    let f = Fixture::new();
    let conf = f.conf("1.1.0", json!({"logLevel": "debug", "logBurst": 5}));
    let r = run(&[("CNI_COMMAND", "STATUS")], &conf.to_string());
    r.assert_silent_success();
    assert!(r.stderr.contains("burst"), "debug logs go to stderr: {}", r.stderr);
    let r = run(
        &attach_env("ADD", "c1", "/x"),
        &f.conf("1.0.0", json!({"logLevel": "debug"})).to_string(),
    );
    assert!(r.success);
    let _ = r.json(); // exactly one JSON document
    assert!(r.stderr.contains("container_id=c1"), "the span carries the identity: {}", r.stderr);
}

#[test]
fn unwritable_log_file_falls_back_to_stderr() {
    let f = Fixture::new();
    let conf =
        f.conf("1.1.0", json!({"logFile": f.dir.path().join("no/such/dir/x.log"), "logBurst": 1}));
    let r = run(&[("CNI_COMMAND", "STATUS")], &conf.to_string());
    r.assert_silent_success();
    assert!(r.stderr.contains("logging to stderr instead"), "{}", r.stderr);
    assert!(r.stderr.contains("burst"), "{}", r.stderr);
}

#[test]
fn concurrent_processes_share_a_log_file_without_torn_lines() {
    const PROCS: usize = 8;
    const LINES: u32 = 400;
    let f = Fixture::new();
    let log = f.dir.path().join("shared.log");
    let conf = f.conf("1.1.0", json!({"logFile": log, "logBurst": LINES})).to_string();
    std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..PROCS).map(|_| s.spawn(|| run(&[("CNI_COMMAND", "STATUS")], &conf))).collect();
        for h in handles {
            h.join().unwrap().assert_silent_success();
        }
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let burst: Vec<&str> = text.lines().filter(|l| l.contains(" burst ")).collect();
    assert_eq!(burst.len(), PROCS * LINES as usize);
    for l in &burst {
        assert!(l.as_bytes()[0].is_ascii_digit(), "line does not start with a timestamp: {l:?}");
        assert!(
            l.ends_with(r#"filler="status line for concurrent append tests""#),
            "torn line: {l:?}"
        );
        assert_eq!(l.matches(" burst ").count(), 1, "two events in one line: {l:?}");
    }
}
