//! `sriov-agent sim create|destroy|spec`: the simulated SR-IOV host as a background server.
//!
//! `create` re-executes itself with `--foreground` as a detached child, records the child's PID in
//! `<DIR>.pid` (next to the mount point: the mount hides DIR's own contents) and its log in
//! `<DIR>.log`, and returns once the tree is served. `destroy` unmounts DIR, which ends the
//! server's FUSE session, and waits for that PID to exit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sriov_sim::{MountOptions, Sim, SimSpec, UeventTarget};

use crate::cli::{SimCreateArgs, SimDestroyArgs};

fn side_file(dir: &Path, ext: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

pub fn load_spec(path: Option<&Path>) -> anyhow::Result<SimSpec> {
    match path {
        Some(p) => {
            SimSpec::from_file(p).with_context(|| format!("simulated host spec {}", p.display()))
        }
        None => Ok(SimSpec::default_host()),
    }
}

pub fn require_root(what: &str) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("{what} needs root (a FUSE mount and network namespaces): run it with sudo");
    }
    Ok(())
}

fn build(args: &SimCreateArgs) -> anyhow::Result<Sim> {
    let spec = load_spec(args.spec.as_deref())?;
    let mut sim = Sim::new(spec).context("building the simulated host")?;
    if let Some(ns) = &args.netns {
        sim = sim.with_netns(ns).with_context(|| format!("backing netdevs in {}", ns.display()))?;
        // A private netns also gets the kernel's uevents, so daemons in it (the device plugin)
        // see VFs come and go as on a real host. Never without one: udevd listens in the root.
        sim = sim
            .with_uevents(UeventTarget::Netns(ns.clone()))
            .with_context(|| format!("uevents in {}", ns.display()))?;
    }
    Ok(sim)
}

pub fn create(args: &SimCreateArgs) -> anyhow::Result<ExitCode> {
    require_root("sim create")?;
    let dir = &args.dir;
    fs::create_dir_all(dir).with_context(|| format!("creating mount point {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    if args.foreground {
        let sim = build(args)?;
        sriov_sim::serve_foreground(sim, &dir, &MountOptions::default())
            .with_context(|| format!("serving the simulated host at {}", dir.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Validate the spec here so a bad one is reported to the caller, not to a log file.
    load_spec(args.spec.as_deref())?;
    let pid_file = side_file(&dir, ".pid");
    if let Ok(pid) = fs::read_to_string(&pid_file)
        && Path::new(&format!("/proc/{}", pid.trim())).exists()
    {
        bail!("a simulated host is already served at {} (pid {})", dir.display(), pid.trim());
    }
    let log = side_file(&dir, ".log");
    let log_file = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let exe = std::env::current_exe().context("locating sriov-agent")?;
    let mut cmd = Command::new(exe);
    cmd.arg("sim").arg("create").arg(&dir).arg("--foreground");
    if let Some(s) = &args.spec {
        cmd.arg("--spec")
            .arg(s.canonicalize().with_context(|| format!("resolving {}", s.display()))?);
    }
    if let Some(n) = &args.netns {
        cmd.arg("--netns").arg(n);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file);
    // Detach from the caller's session so the server outlives this command.
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let mut child = cmd.spawn().context("starting the simulated host server")?;
    fs::write(&pid_file, format!("{}\n", child.id()))
        .with_context(|| format!("writing {}", pid_file.display()))?;
    let ready = dir.join("sys/bus/pci/devices");
    let start = Instant::now();
    while !ready.exists() {
        if let Some(status) = child.try_wait().context("watching the server")? {
            let _ = fs::remove_file(&pid_file);
            let log_text = fs::read_to_string(&log).unwrap_or_default();
            bail!("simulated host server exited ({status}): {}", log_text.trim());
        }
        if start.elapsed() > Duration::from_secs(15) {
            bail!("simulated host not ready after 15 s (see {})", log.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("simulated SR-IOV host served at {} (pid {})", dir.display(), child.id());
    println!("export SRIOV_SYSFS_ROOT={}/sys SRIOV_DEV_ROOT={}/dev", dir.display(), dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn destroy(args: &SimDestroyArgs) -> anyhow::Result<ExitCode> {
    require_root("sim destroy")?;
    let dir = &args.dir;
    let pid_file = side_file(dir, ".pid");
    let pid: Option<i32> = fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok());
    sriov_sim::unmount(dir).with_context(|| format!("unmounting {}", dir.display()))?;
    if let Some(pid) = pid {
        // Only the PID we recorded, and only while it is still our server.
        let ours = || {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a.ends_with(b"sriov-agent")))
        };
        // Alive = present and not a zombie. The cmdline is checked only once, up front: an exiting
        // process loses it before it stops running.
        let alive = || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(") ").next().and_then(|r| r.chars().next()))
                .is_some_and(|state| state != 'Z')
        };
        if ours() {
            let start = Instant::now();
            while alive() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive() && ours() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
    let _ = fs::remove_file(&pid_file);
    eprintln!("simulated host at {} destroyed", dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn print_spec() -> anyhow::Result<ExitCode> {
    let text = serde_yaml_ng::to_string(&SimSpec::default_host()).context("rendering the spec")?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
