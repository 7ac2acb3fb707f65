#!/usr/bin/env bash
# The CNI plugin benchmarks on the binaries as shipped: deploy/Dockerfile links them statically
# (glibc static-pie), which starts each call ~0.5 ms faster than the default dynamic `cargo build`.
# Builds that static set (once; a separate target subdirectory, so it does not disturb normal
# builds), then runs
#   - sriov-cni's add_del bench on the static `sriov`, with the dynamic build interleaved as the
#     baseline (SRIOV_BASELINE), so one run shows what static linking changes;
#   - meta-plugins' add_del bench on the static `veth`.
# Root, like the benches themselves. BENCH_RUNS is passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
triple="$(uname -m)-unknown-linux-gnu"
target="${CARGO_TARGET_DIR:-$PWD/target}"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --release --target "$triple" -p sriov-cni -p meta-plugins --bins
static="$target/$triple/release"
# `cargo bench` builds target/release/sriov (dynamic, with the bench's test-only failpoints
# feature: a dozen getenv calls per ADD) before the bench reads SRIOV_BASELINE.
SRIOV_BIN="$static/sriov" SRIOV_BASELINE="$target/release/sriov" \
  cargo bench --locked -p sriov-cni --bench add_del
VETH_BIN="$static/veth" cargo bench --locked -p meta-plugins --bench add_del
