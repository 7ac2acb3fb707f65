//! `sriov-agent install-cni`: copy the CNI plugins into the host's CNI bin directory.
//!
//! Each binary is written to a temporary file in the destination directory, fsynced, made
//! executable and renamed over the old one: a container runtime running the plugin at that moment
//! executes either the old or the new binary, never a partial one (the Go installers' `cp -f`
//! can hand it a truncated file).

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::InstallCniArgs;

/// Installs one file atomically as `dst_dir/name` (0755, durable including the rename).
pub fn install_atomic(src: &Path, dst_dir: &Path, name: &str) -> io::Result<()> {
    let mut from = File::open(src)?;
    cni_spec::write_atomic(&dst_dir.join(name), 0o755, cni_spec::Durability::FileAndDir, |to| {
        io::copy(&mut from, to).map(drop)
    })
    .map_err(|e| io::Error::new(e.source.kind(), e))
}

pub fn run(args: &InstallCniArgs) -> anyhow::Result<ExitCode> {
    let from = match &args.from {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("locating sriov-agent")?
            .parent()
            .context("sriov-agent has no parent directory")?
            .to_owned(),
    };
    fs::create_dir_all(&args.to).with_context(|| format!("creating {}", args.to.display()))?;
    for name in &args.plugins {
        let src = from.join(name);
        install_atomic(&src, &args.to, name)
            .with_context(|| format!("installing {} into {}", src.display(), args.to.display()))?;
        eprintln!("installed {}", args.to.join(name).display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_atomically_and_leaves_no_temp_files() {
        let src_dir = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let src = src_dir.path().join("sriov");
        fs::write(&src, b"new binary").unwrap();
        fs::write(dst.path().join("sriov"), b"old").unwrap();
        install_atomic(&src, dst.path(), "sriov").unwrap();
        assert_eq!(fs::read(dst.path().join("sriov")).unwrap(), b"new binary");
        let mode = fs::metadata(dst.path().join("sriov")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let names: Vec<_> =
            fs::read_dir(dst.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sriov")]);
    }

    #[test]
    fn missing_source_fails_and_keeps_the_old_binary() {
        let dst = tempfile::tempdir().unwrap();
        fs::write(dst.path().join("veth"), b"old").unwrap();
        let err = install_atomic(Path::new("/nonexistent/veth"), dst.path(), "veth").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(fs::read(dst.path().join("veth")).unwrap(), b"old");
        assert_eq!(fs::read_dir(dst.path()).unwrap().count(), 1);
    }
}
