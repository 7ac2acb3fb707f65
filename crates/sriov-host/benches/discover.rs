//! Discovery speed: `sriov-agent inventory` work (discover + JSON) on a 1024-VF host.
//!
//! The host is the simulated one (4 Intel E810 PFs × 256 VFs, kernel drivers, netdevs), exported as
//! plain files on a memory file system (`/dev/shm`, like sysfs) so the figure is our cost, not the
//! FUSE server's. Prints median and p90 wall time, and the median CPU time (all threads), over 50
//! runs after 5 warm-ups. Run: `cargo bench -p sriov-host --bench discover`.
//!
//! (Taking VF netdev facts from one rtnetlink link dump instead was measured and dropped: the dump
//! of 1029 links cost ~28 ms and is serial, so it saved CPU but lost wall time even on 2 cores.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use sriov_host::{DiscoverOptions, HostPaths, PciIds, VfDetail, discover};
use sriov_sim::{Sim, SimSpec};

/// CPU time (user + system) of the whole process, all threads.
fn cpu_time() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec().unsigned_abs(), u32::try_from(t.tv_usec()).unwrap() * 1000)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

/// One timed inventory (discovery, JSON): wall time and CPU time.
fn run(paths: &HostPaths, names: Option<&PciIds>, vf_detail: VfDetail) -> (Duration, Duration) {
    let t = Instant::now();
    let cpu = cpu_time();
    let opts = DiscoverOptions { pf: None, names: names.cloned(), vf_detail };
    let host = discover(paths, &opts).unwrap();
    let json = serde_json::to_vec(&host).unwrap();
    assert_eq!(host.vfs().count(), 1024);
    std::hint::black_box(json);
    (t.elapsed(), cpu_time().saturating_sub(cpu))
}

fn report(label: &str, runs: Vec<(Duration, Duration)>) {
    let (wall, cpu): (Vec<_>, Vec<_>) = runs.into_iter().unzip();
    let (m, p) = stats(wall);
    let (c, _) = stats(cpu);
    println!("{label:<52} median {m:5.1} ms  p90 {p:5.1} ms  (CPU {c:5.1} ms)");
}

fn measure(paths: &HostPaths, ids: &PciIds) {
    for _ in 0..5 {
        run(paths, Some(ids), VfDetail::Full);
    }
    let plain: Vec<_> = (0..50).map(|_| run(paths, None, VfDetail::Full)).collect();
    let named: Vec<_> = (0..50).map(|_| run(paths, Some(ids), VfDetail::Full)).collect();
    let summary: Vec<_> = (0..50).map(|_| run(paths, None, VfDetail::Summary)).collect();
    let lean: Vec<_> = (0..50).map(|_| run(paths, None, VfDetail::Selection)).collect();
    report("  inventory (all VF details) + JSON", plain);
    report(&format!("  ... with vendor/device names ({})", ids.source()), named);
    report("  table's facts (VfDetail::Summary) + JSON", summary);
    report("  device-plugin scan (VfDetail::Selection)", lean);
}

fn main() {
    let ids = PciIds::load();
    println!("discover 4 PFs x 256 VFs (1024 VFs)");

    let mut sim = Sim::new(SimSpec::bench_host()).expect("sim");
    let tmp = tempfile::tempdir_in(sriov_sim::memory_dir()).unwrap();
    // SRIOV_BENCH_TREE=DIR keeps the exported tree there (to time `sriov-agent inventory` on it).
    let dir = std::env::var_os("SRIOV_BENCH_TREE")
        .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
    sim.export_static(&dir).expect("export");
    let paths = HostPaths::new(dir.join("sys"), dir.join("dev"));
    measure(&paths, &ids);
    println!("threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
}
