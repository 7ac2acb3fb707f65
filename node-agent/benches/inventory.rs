//! `sriov-agent inventory` end to end on a 1024-VF host: the command a user runs, timed from
//! spawn to exit (process start, discovery, names, formatting, writing the output).
//!
//! The host is the simulated one (4 Intel E810 PFs × 256 VFs, kernel drivers, netdevs), exported
//! as plain files on a memory file system (`/dev/shm`, like sysfs). Each output format is run 40
//! times after 3 warm-ups, interleaved so that a slow spell of the machine hits them alike; the
//! same loop times `/bin/true` as the cost of starting any process here. Prints median, mean and
//! p90. Run: `cargo bench -p sriov-agent --bench inventory` (`SRIOV_BENCH_TREE=DIR` keeps the tree;
//! `SRIOV_AGENT_BASELINE=BIN` times another build of `sriov-agent` in the same loop, e.g. the
//! previous commit's, to compare them on equal terms).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sriov_sim::{Sim, SimSpec};

const RUNS: usize = 40;

/// One run of `program args`, output discarded: wall time from spawn to exit.
fn time(program: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("spawn");
    let elapsed = t.elapsed();
    assert!(status.success(), "{} {args:?}: {status}", program.display());
    elapsed
}

fn report(label: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    println!(
        "{label:<44} median {:5.1} ms  mean {mean:5.1} ms  p90 {:5.1} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10])
    );
}

fn main() {
    let agent = Path::new(env!("CARGO_BIN_EXE_sriov-agent"));
    let mut sim = Sim::new(SimSpec::bench_host()).expect("sim");
    let tmp = tempfile::tempdir_in(sriov_sim::memory_dir()).unwrap();
    let dir = std::env::var_os("SRIOV_BENCH_TREE")
        .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
    sim.export_static(&dir).expect("export");
    let sysfs = dir.join("sys");
    let sysfs = sysfs.to_str().expect("UTF-8 path");

    let baseline = std::env::var_os("SRIOV_AGENT_BASELINE").map(std::path::PathBuf::from);
    let mut cases: Vec<(&str, &Path, Vec<&str>)> = vec![
        ("sriov-agent inventory (table)", agent, vec!["inventory", "--sysfs-root", sysfs]),
        (
            "sriov-agent inventory -o json (with names)",
            agent,
            vec!["inventory", "--sysfs-root", sysfs, "-o", "json"],
        ),
        (
            "sriov-agent inventory -o json --no-names",
            agent,
            vec!["inventory", "--sysfs-root", sysfs, "-o", "json", "--no-names"],
        ),
        ("/bin/true (starting a process)", Path::new("/bin/true"), vec![]),
    ];
    if let Some(base) = &baseline {
        cases.push(("baseline: inventory (table)", base, vec!["inventory", "--sysfs-root", sysfs]));
        cases.push((
            "baseline: inventory -o json (with names)",
            base,
            vec!["inventory", "--sysfs-root", sysfs, "-o", "json"],
        ));
    }
    for (_, program, args) in &cases {
        for _ in 0..3 {
            time(program, args);
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(RUNS); cases.len()];
    for _ in 0..RUNS {
        for ((_, program, args), s) in cases.iter().zip(&mut samples) {
            s.push(time(program, args));
        }
    }
    println!("sriov-agent inventory, 4 PFs x 256 VFs (1024 VFs), {RUNS} runs each, spawn to exit");
    if let Some(base) = &baseline {
        println!("baseline: {}", base.display());
    }
    for ((label, _, _), s) in cases.iter().zip(samples) {
        report(label, s);
    }
}
