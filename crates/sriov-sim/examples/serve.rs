//! Serves a simulated host at a directory until it is unmounted
//! (`umount DIR`), like a `sim create` daemon would.
//!
//! Usage: `serve DIR [SPEC.yaml] [NODE_NETNS_PATH]`

use std::path::PathBuf;

use sriov_sim::{MountOptions, Sim, SimSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: serve DIR [SPEC] [NETNS]")?);
    let spec = match args.next() {
        Some(p) => SimSpec::from_file(&PathBuf::from(p))?,
        None => SimSpec::default_host(),
    };
    let mut sim = Sim::new(spec)?;
    if let Some(ns) = args.next() {
        sim = sim.with_netns(&PathBuf::from(ns))?;
    }
    eprintln!("serving {} (pid {})", dir.display(), std::process::id());
    sriov_sim::serve_foreground(sim, &dir, &MountOptions::default())?;
    Ok(())
}
