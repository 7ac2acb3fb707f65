//! Discovery speed: `sriov-agent inventory` work (discover + JSON) on a 1024-VF host.
//!
//! The host is the simulated one (4 Intel E810 PFs × 256 VFs, kernel drivers, netdevs), exported as
//! a plain directory tree so the figure is our cost, not the FUSE server's. Prints median and p90
//! over 50 runs after 5 warm-ups. Run: `cargo bench -p sriov-host --bench discover`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use sriov_host::{DiscoverOptions, HostPaths, PciIds, discover};
use sriov_sim::{NicModel, PfSpec, Sim, SimSpec};

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

fn main() {
    let mut spec = SimSpec::empty();
    for (i, addr) in
        ["0000:17:00.0", "0000:3b:00.0", "0000:86:00.0", "0000:af:00.0"].iter().enumerate()
    {
        spec = spec.pf(PfSpec::new(
            NicModel::IntelE810,
            addr.parse().unwrap(),
            format!("ens{}f0", i + 1),
        )
        .num_vfs(256));
    }
    let mut sim = Sim::new(spec).expect("sim");
    let tmp = tempfile::tempdir().unwrap();
    // SRIOV_BENCH_TREE=DIR keeps the exported tree there (to time `sriov-agent inventory` on it).
    let dir = std::env::var_os("SRIOV_BENCH_TREE")
        .map_or_else(|| tmp.path().to_owned(), std::path::PathBuf::from);
    sim.export_static(&dir).expect("export");
    let paths = HostPaths::new(dir.join("sys"), dir.join("dev"));
    let ids = PciIds::load();

    let run = |names: bool, lean: bool| {
        let t = Instant::now();
        let opts = DiscoverOptions {
            pf: None,
            names: names.then(|| ids.clone()),
            skip_vf_netdev_details: lean,
        };
        let host = discover(&paths, &opts).unwrap();
        let json = serde_json::to_vec(&host).unwrap();
        assert_eq!(host.vfs().count(), 1024);
        std::hint::black_box(json);
        t.elapsed()
    };
    for _ in 0..5 {
        run(true, false);
    }
    let plain: Vec<Duration> = (0..50).map(|_| run(false, false)).collect();
    let named: Vec<Duration> = (0..50).map(|_| run(true, false)).collect();
    let lean: Vec<Duration> = (0..50).map(|_| run(false, true)).collect();
    let (m, p) = stats(plain);
    println!(
        "discover 4 PFs x 256 VFs (1024 VFs) + JSON:           median {m:.1} ms  p90 {p:.1} ms"
    );
    let (m, p) = stats(named);
    println!("  with vendor/device names ({}): median {m:.1} ms  p90 {p:.1} ms", ids.source());
    let (m, p) = stats(lean);
    println!(
        "  device-plugin scan (no VF netdev details):           median {m:.1} ms  p90 {p:.1} ms"
    );
    println!("threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
}
