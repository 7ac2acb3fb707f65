//! `veth` ADD+DEL against Debian's Go `ptp` plugin (static IPAM) and against the kernel
//! floor, in one run:
//!
//! - **veth**: the release binary run as a runtime would (fresh process, stdin, stdout) in a
//!   "node" netns, chained after a macvlan underlay (dual stack, the tests' hijack subnets).
//! - **ptp**: `/usr/lib/cni/ptp` with static IPAM (dual stack): a veth pair, addresses on
//!   both ends, host and pod routes.
//! - **floor**: exactly the kernel objects `veth` installs (taken from its own record),
//!   applied in-process through the same netlink layer and sysctl batching, then undone
//!   like DEL does (the node end deleted, changed sysctls restored): what no implementation
//!   can avoid. Deleting a veth waits for RCU, which dominates DEL.
//! - **bare process runs**: the same binary started twice doing nothing (`VERSION`), to show
//!   how much of the gap is process creation, which any exec'd CNI plugin pays.
//!
//! Prints median and p90 of ADD, DEL and the pair. Run as root:
//! `cargo bench -p meta-plugins --bench add_del` (`BENCH_RUNS`, default 50, minimum 30;
//! `VETH_BIN=/path/to/veth` to time another build). `tests/bench-cni.sh` runs it on the static
//! build that deploy/Dockerfile ships.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use meta_plugins::kernel::Executor;
use meta_plugins::model::{Entry, Origin};
use meta_plugins::state::{AttachmentKey, Store};
use serde_json::{Value, json};

const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Runs a plugin binary with the spawning thread's netns (the caller is inside the node).
fn run(bin: &Path, command: &str, cid: &str, netns: &Path, ifname: &str, conf: &Value) {
    run_out(bin, command, cid, netns, ifname, conf);
}

fn run_out(
    bin: &Path,
    command: &str,
    cid: &str,
    netns: &Path,
    ifname: &str,
    conf: &Value,
) -> String {
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", DEBIAN_CNI)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {command}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the `veth` plugin in this process (no exec) as a runtime would call the binary.
fn run_inproc(plugin: &meta_plugins::ops::MetaPlugin, command: &str, netns: &Path, conf: &Value) {
    let env = |k: &str| -> Option<std::ffi::OsString> {
        match k {
            "CNI_COMMAND" => Some(command.into()),
            "CNI_CONTAINERID" => Some(CID.into()),
            "CNI_NETNS" => Some(netns.as_os_str().to_owned()),
            "CNI_IFNAME" => Some("eth0".into()),
            "CNI_PATH" => Some(DEBIAN_CNI.into()),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let code = cni_spec::run_with(plugin, &env, &mut conf.to_string().as_bytes(), &mut out);
    assert!(
        code == std::process::ExitCode::SUCCESS,
        "in-process {command}: {}",
        String::from_utf8_lossy(&out)
    );
}

/// (ADD, DEL) durations per run.
#[derive(Default)]
struct Samples {
    veth: Vec<(Duration, Duration)>,
    ptp: Vec<(Duration, Duration)>,
    floor: Vec<(Duration, Duration)>,
    spawn: Vec<(Duration, Duration)>,
    inproc: Vec<(Duration, Duration)>,
}

type Pair = (Duration, Duration);

impl Samples {
    fn push(&mut self, veth: Pair, ptp: Pair, floor: Pair, spawn: Pair, inproc: Pair) {
        self.inproc.push(inproc);
        self.veth.push(veth);
        self.ptp.push(ptp);
        self.floor.push(floor);
        self.spawn.push(spawn);
    }
}

struct Stats {
    median: Duration,
    p90: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats { median: at(0.5), p90: at(0.9) }
}

/// `/proc/loadavg`'s three averages (figures on a busy machine are noisy).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if !require_root() {
        return;
    }
    let runs: usize =
        std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(50).max(30);
    let warmup = 3;
    let load_before = loadavg();
    let t = Topology::build();
    let ptp_pod = Ns::new("ptp");
    ptp_pod.ip("link set lo up");
    ptp_pod.sysctl("net/ipv6/conf/default/accept_dad", "0");

    // The underlay the veth plugin is chained after, created once.
    let mv = Chain::new(
        "bench",
        "1.0.0",
        vec![macvlan(
            "uplink",
            &[("192.0.2.50/24", GW_V4), ("2001:db8:1::50/64", GW_V6)],
            &["0.0.0.0/0", "::/0"],
        )],
    );
    let prev = mv.add_ok(&t.node, CID, t.pod.path(), "eth0");
    // The production default state dir is /run, a tmpfs on systemd nodes (here /dev/shm
    // stands in); STATE_DIR_PARENT=/run measures this VM's ext4 /run instead.
    let parent = std::env::var("STATE_DIR_PARENT").unwrap_or_else(|_| "/dev/shm".into());
    let state = tempfile::tempdir_in(&parent).unwrap();
    let mut veth = hijack_keys();
    merge(
        &mut veth,
        json!({"type": "veth", "cniVersion": "1.0.0", "name": "bench", "prevResult": prev, "state_dir": state.path(),
               "log_options": {"log_level": "info", "log_file": t.log_file("veth.log")}}),
    );
    let ptp = {
        let mut p = ptp_overlay();
        merge(&mut p, json!({"cniVersion": "1.0.0", "name": "bench-ptp"}));
        p
    };
    // VETH_BIN times another build (tests/bench-cni.sh passes the static, shipped one).
    let veth_bin = std::env::var_os("VETH_BIN").map_or_else(|| our_bin("veth"), PathBuf::from);
    println!("veth binary: {}", veth_bin.display());
    let ptp_bin = our_bin("ptp");
    let pod = t.pod.path().to_path_buf();
    let ptp_path = ptp_pod.path().to_path_buf();

    let plugin = meta_plugins::ops::MetaPlugin::new(meta_plugins::config::Flavor::Veth);
    let (m, entries) = sriov_netlink::run_in_netns(t.node.netns(), || {
        // One ADD to learn exactly what veth installs (its record), then DEL.
        run(&veth_bin, "ADD", CID, &pod, "eth0", &veth);
        let key = AttachmentKey {
            plugin: meta_plugins::config::Flavor::Veth,
            network: "bench".into(),
            container_id: CID.into(),
            ifname: "eth0".into(),
        };
        let record = Store::new(state.path()).load(&key).unwrap().unwrap();
        run(&veth_bin, "DEL", CID, &pod, "eth0", &veth);
        // The same kernel work as ADD (batched like the plugin) and DEL (the same undo list).
        let created: Vec<&Entry> =
            record.entries.iter().filter(|e| e.origin == Origin::Created).collect();
        let undo = meta_plugins::ops::undo_list(&record, &[]);

        let mut m = Samples::default();
        for i in 0..runs + warmup {
            // Interleaved, so drift affects all alike.
            let t0 = Instant::now();
            run(&veth_bin, "ADD", CID, &pod, "eth0", &veth);
            let t1 = Instant::now();
            run(&veth_bin, "DEL", CID, &pod, "eth0", &veth);
            let veth_t = (t1 - t0, t1.elapsed());

            let t0 = Instant::now();
            run(&ptp_bin, "ADD", "ptp-bench", &ptp_path, "eth0", &ptp);
            let t1 = Instant::now();
            run(&ptp_bin, "DEL", "ptp-bench", &ptp_path, "eth0", &ptp);
            let ptp_t = (t1 - t0, t1.elapsed());

            // ADD: enter the pod once, apply; DEL: undo (the node end's deletion).
            let t0 = Instant::now();
            let mut exec = Executor::open(Some(&pod), &[]).unwrap();
            exec.apply_all(&created)
                .map_err(|f| format!("{}: {}", created[f.failed], f.error))
                .unwrap();
            drop(exec);
            let t1 = Instant::now();
            // A DEL is a separate call: it enters the pod only if it must, like the plugin.
            let needs_pod = undo.iter().any(|e| e.side == meta_plugins::model::Side::Pod);
            let mut exec = Executor::open(needs_pod.then_some(pod.as_path()), &[]).unwrap();
            let failures = exec.undo_all(&undo);
            assert!(failures.is_empty(), "{failures:?}");
            let floor_t = (t1 - t0, t1.elapsed());

            // Two process starts and exits of the same binary doing no work (VERSION).
            let t0 = Instant::now();
            run_out(&veth_bin, "VERSION", CID, &pod, "eth0", &json!({"cniVersion": "1.0.0"}));
            let t1 = Instant::now();
            run_out(&veth_bin, "VERSION", CID, &pod, "eth0", &json!({"cniVersion": "1.0.0"}));
            let spawn_t = (t1 - t0, t1.elapsed());

            // The plugin's own code without the process: ADD and DEL through
            // `cni_spec::run_with` in this thread (in the node, like the binary).
            let t0 = Instant::now();
            run_inproc(&plugin, "ADD", &pod, &veth);
            let t1 = Instant::now();
            run_inproc(&plugin, "DEL", &pod, &veth);
            let inproc_t = (t1 - t0, t1.elapsed());

            if i >= warmup {
                m.push(veth_t, ptp_t, floor_t, spawn_t, inproc_t);
            }
        }
        (m, created.len())
    })
    .unwrap();

    // BENCH_STRACE=<prefix>: one more ADD and DEL of veth under `strace -f -tt -T`, written to
    // <prefix>.add and <prefix>.del (where the time goes, syscall by syscall).
    if let Ok(prefix) = std::env::var("BENCH_STRACE") {
        sriov_netlink::run_in_netns(t.node.netns(), || {
            for (cmd, ext) in [("ADD", "add"), ("DEL", "del")] {
                let out = format!("{prefix}.{ext}");
                let mut child = Command::new("strace")
                    .args(["-f", "-tt", "-T", "-o", &out])
                    .arg(&veth_bin)
                    .env_clear()
                    .env("CNI_COMMAND", cmd)
                    .env("CNI_CONTAINERID", CID)
                    .env("CNI_NETNS", &pod)
                    .env("CNI_IFNAME", "eth0")
                    .env("CNI_PATH", DEBIAN_CNI)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(veth.to_string().as_bytes()).unwrap();
                let o = child.wait_with_output().unwrap();
                assert!(o.status.success(), "strace {cmd}: {}", String::from_utf8_lossy(&o.stdout));
                println!("strace of {cmd} written to {out}");
            }
        })
        .unwrap();
    }

    println!("meta-plugins add_del: {runs} runs of each, interleaved, after {warmup} warm-up runs");
    println!(
        "veth installs {entries} objects (dual stack, 4 hijack subnets, 5 node addresses); state dir on {parent}"
    );
    println!("{:<38} {:>17} {:>17} {:>17}", "median / p90 (ms)", "ADD", "DEL", "ADD+DEL");
    let row = |name: &str, x: &[(Duration, Duration)]| {
        let add = stats(x.iter().map(|p| p.0).collect());
        let del = stats(x.iter().map(|p| p.1).collect());
        let sum = stats(x.iter().map(|p| p.0 + p.1).collect());
        println!(
            "{name:<38} {:>8.2} / {:>6.2} {:>8.2} / {:>6.2} {:>8.2} / {:>6.2}",
            ms(add.median),
            ms(add.p90),
            ms(del.median),
            ms(del.p90),
            ms(sum.median),
            ms(sum.p90)
        );
        sum.median
    };
    let v = row("veth (this crate, a process per call)", &m.veth);
    let p = row("ptp (Debian Go plugin, static IPAM)", &m.ptp);
    let f = row("kernel floor (same ops, in-process)", &m.floor);
    let sp = row("bare process start+exit (VERSION)", &m.spawn);
    let ip = row("veth in-process (no exec)", &m.inproc);
    println!(
        "veth overhead above the floor (ADD+DEL medians): {:.2} ms; minus two bare process runs: {:.2} ms (target <= 2 ms)",
        ms(v.saturating_sub(f)),
        ms(v.saturating_sub(f).saturating_sub(sp))
    );
    // Per run (the four are interleaved): veth minus floor, and that minus the bare process
    // runs of the same iteration. Signed: noise can make a run's difference negative.
    let paired = |f: &dyn Fn(usize) -> f64| {
        let mut v: Vec<f64> = (0..m.veth.len()).map(f).collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.9))
    };
    let secs = |d: Duration| d.as_secs_f64() * 1e3;
    println!("veth minus floor, per run (median / p90, ms):");
    for (name, minus_spawn) in [("raw", false), ("minus the bare process runs", true)] {
        let add = paired(&|i| {
            secs(m.veth[i].0)
                - secs(m.floor[i].0)
                - if minus_spawn { secs(m.spawn[i].0) } else { 0.0 }
        });
        let del = paired(&|i| {
            secs(m.veth[i].1)
                - secs(m.floor[i].1)
                - if minus_spawn { secs(m.spawn[i].1) } else { 0.0 }
        });
        let sum = paired(&|i| {
            secs(m.veth[i].0 + m.veth[i].1)
                - secs(m.floor[i].0 + m.floor[i].1)
                - if minus_spawn { secs(m.spawn[i].0 + m.spawn[i].1) } else { 0.0 }
        });
        println!(
            "  {name:<36} ADD {:>6.2} / {:>6.2}   DEL {:>6.2} / {:>6.2}   ADD+DEL {:>6.2} / {:>6.2}",
            add.0, add.1, del.0, del.1, sum.0, sum.1
        );
    }
    let own = paired(&|i| secs(m.inproc[i].0) - secs(m.floor[i].0));
    let own_del = paired(&|i| secs(m.inproc[i].1) - secs(m.floor[i].1));
    println!(
        "  {:<36} ADD {:>6.2} / {:>6.2}   DEL {:>6.2} / {:>6.2}   ADD+DEL medians {:>6.2}",
        "in-process veth (own code, no exec)",
        own.0,
        own.1,
        own_del.0,
        own_del.1,
        ms(ip.saturating_sub(f))
    );
    println!("veth vs ptp: {:.2}x faster at the median", p.as_secs_f64() / v.as_secs_f64());
    println!("load average before: {load_before}; after: {}", loadavg());
    mv.del_ok(&t.node, CID, Some(t.pod.path()), "eth0", None);
}
