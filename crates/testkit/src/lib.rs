//! Test kit shared by the suite's tests: simulated hosts, a kubelet emulator, netns helpers and
//! binary runners. Dev-only: nothing here ships in a release binary.

pub mod kubelet;
