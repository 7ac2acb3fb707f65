//! Test kit shared by the suite's tests: simulated hosts, a kubelet emulator, netns helpers and
//! binary runners. Dev-only: nothing here ships in a release image.
//!
//! The crate also builds `kubelet-emu` (`src/bin/kubelet-emu.rs`), the [`kubelet`] emulator as a
//! command for shell scripts such as the real-kernel VM tier (`tests/vm/guest/test-device-plugin.sh`):
//! `kubelet-emu --dir DIR serve` plays the kubelet, and `registrations`, `list`, `wait`,
//! `allocate`, `preferred`, `options` and `restart` drive the registered plugins, printing JSON.

pub mod kubelet;
