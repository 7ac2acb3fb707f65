//! Helpers shared by the integration tests (each test binary uses a subset).
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

pub mod fake;
pub mod sim;
