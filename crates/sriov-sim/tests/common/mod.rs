//! Shared scaffolding of the root-only integration tests: the root check and a test-owned,
//! named network namespace removed on drop (never the root netns).
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a subset; a panic is the report

use std::path::PathBuf;
use std::process::Command;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns from the test with a notice when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            println!("skipped: needs root");
            return;
        }
    };
}

/// A named netns (`ip netns add`), deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// `<prefix><tag><pid>`.
    pub fn new(prefix: &str, tag: &str) -> Self {
        let name = format!("{prefix}{tag}{}", std::process::id());
        let out = Command::new("ip").args(["netns", "add", &name]).output().unwrap();
        assert!(out.status.success(), "ip netns add: {out:?}");
        Self(name)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }

    /// Runs `ip -n <ns> args...`; returns stdout, or Err(stderr).
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip").arg("-n").arg(&self.0).args(args).output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn must(&self, args: &[&str]) -> String {
        self.ip(args).unwrap_or_else(|e| panic!("ip -n {} {args:?}: {e}", self.0))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}
