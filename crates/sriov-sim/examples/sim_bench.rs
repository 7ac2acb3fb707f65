//! Prints timings of the simulated host at scale (1024 VFs): model build, static export,
//! and a read storm (readdir + read of every attribute) over the FUSE mount, with and
//! without kernel entry caching. FUSE parts need root.
//!
//! `cargo run --release -p sriov-sim --example sim_bench`

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sriov_sim::{MountOptions, NicModel, PfSpec, Sim, SimSpec};

fn spec(num_vfs: u16) -> SimSpec {
    let mut s = SimSpec::empty();
    for (i, a) in
        ["0000:17:00.0", "0000:3b:00.0", "0000:86:00.0", "0000:af:00.0"].iter().enumerate()
    {
        s = s.pf(PfSpec::new(
            NicModel::IntelE810,
            a.parse().expect("address"),
            format!("ens{i}f0"),
        )
        .numa_node((i / 2) as i32)
        .num_vfs(num_vfs));
    }
    s
}

/// Walks `dir` without following symlinks, reading every regular file.
fn storm(dir: &Path) -> (usize, usize, usize) {
    let (mut files, mut bytes, mut errors) = (0, 0, 0);
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files += 1;
                match fs::read(e.path()) {
                    Ok(b) => bytes += b.len(),
                    Err(_) => errors += 1,
                }
            }
        }
    }
    (files, bytes, errors)
}

/// CPU time (user + system) this process used so far, from /proc/self/stat.
fn cpu_time() -> Duration {
    let ticks = fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().next().unwrap_or("?").to_owned())
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn shell_storm(dir: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("find {}/sys -type f | xargs cat > /dev/null 2>&1", dir.display()))
        .status();
    if let Err(e) = status {
        eprintln!("find|xargs cat failed: {e}");
    }
    t.elapsed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut sim = Sim::new(spec(256))?;
    let nodes = sim.node_count();
    println!("model: 4 PFs x 256 VFs = 1024 VFs, {nodes} nodes, built in {}", ms(t.elapsed()));

    let tmp = tempfile::tempdir()?;
    let t = Instant::now();
    sim.export_static(&tmp.path().join("static"))?;
    println!("static export of 1024 VFs: {}", ms(t.elapsed()));
    let t = Instant::now();
    let (files, bytes, errors) = storm(&tmp.path().join("static/sys"));
    println!(
        "static read storm: {files} files, {bytes} bytes ({errors} unreadable) in {}",
        ms(t.elapsed())
    );

    if !nix::unistd::geteuid().is_root() {
        println!("FUSE figures skipped: needs root");
        return Ok(());
    }
    for (label, ttl) in [("cache 10s", Duration::from_secs(10)), ("cache off", Duration::ZERO)] {
        let sim = Sim::new(spec(256))?;
        let dir = tmp.path().join(format!("mnt-{}", ttl.as_secs()));
        let opts = MountOptions { cache_ttl: ttl, ..MountOptions::default() };
        let m = sim.mount(&dir, &opts)?;
        for round in ["cold", "warm"] {
            let (t, c) = (Instant::now(), cpu_time());
            let (files, bytes, errors) = storm(&m.sysfs_root());
            println!(
                "FUSE [{label}] readdir+read storm ({round}): {files} files, {bytes} bytes \
                 ({errors} refused by the kernel rules) in {} (process cpu {}, load {})",
                ms(t.elapsed()),
                ms(cpu_time() - c),
                load()
            );
        }
        println!("FUSE [{label}] find|xargs cat: {}", ms(shell_storm(&dir)));
        let vf = "0000:3b:01.0";
        let t = Instant::now();
        for _ in 0..10 {
            fs::write(m.sysfs_root().join("bus/pci/drivers/iavf/unbind"), vf)?;
            fs::write(m.sysfs_root().join("bus/pci/drivers/iavf/bind"), vf)?;
        }
        println!(
            "FUSE [{label}] one VF unbind+bind on the 1024-VF host: {} per pair",
            ms(t.elapsed() / 10)
        );
        let pf = m.sysfs_root().join("bus/pci/devices/0000:17:00.0/sriov_numvfs");
        let t = Instant::now();
        fs::write(&pf, "0")?;
        let t0 = t.elapsed();
        let t = Instant::now();
        fs::write(&pf, "256")?;
        println!("FUSE [{label}] sriov_numvfs 256 -> 0: {}, 0 -> 256: {}", ms(t0), ms(t.elapsed()));
        m.shutdown()?;
    }
    Ok(())
}
