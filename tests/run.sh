#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine (run as root: the network, FUSE and VM tests
# need it). Installs what it needs, then runs, in order:
#   1. formatting and lints (cargo fmt --check, clippy -D warnings)
#   2. every crate's unit and integration tests (cargo nextest), including the black-box tests that
#      run the built binaries against simulated SR-IOV hosts inside private network namespaces
#   3. the CNI plugins built as deploy/Dockerfile ships them (statically linked), answering VERSION
#   4. the real-kernel tier: the same binaries (the CNI plugins: the static ones from 3) on real
#      SR-IOV VFs in a QEMU VM (emulated Intel igb)
# Environment: CARGO_TARGET_DIR (default /var/tmp/sriov-suite-target, reused between runs),
# SKIP_VM=1 to skip tier 3 (for a quick local loop).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sriov-suite-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "installing test dependencies"
need_pkgs=()
for p in containernetworking-plugins iproute2 strace kmod jq pciutils; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need_pkgs[*]} (run as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo nextest (unit, integration, black-box on simulated hosts)"
cargo nextest run --locked --workspace --profile ci

step "CNI plugins as shipped: static build, VERSION"
triple="$(uname -m)-unknown-linux-gnu"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --release --target "$triple" -p sriov-cni -p meta-plugins --bins
for bin in sriov veth router; do
  path="$CARGO_TARGET_DIR/$triple/release/$bin"
  # No program interpreter: nothing to resolve from the host it is copied onto.
  if readelf -l "$path" | grep -q 'Requesting program interpreter'; then
    echo "$path is dynamically linked" >&2
    exit 1
  fi
  out="$(echo '{"cniVersion":"1.1.0"}' | env -i CNI_COMMAND=VERSION "$path")"
  echo "$bin: $out"
  jq -e '.supportedVersions | index("1.1.0")' <<<"$out" >/dev/null
done

if [ "${SKIP_VM:-0}" = 1 ]; then
  step "real-kernel VM tier skipped (SKIP_VM=1)"
else
  step "real-kernel VM tier (QEMU igb)"
  cargo build --locked --workspace --bins
  # The debug builds, with the CNI plugins replaced by the static ones built above: the real VFs
  # see the plugin binaries exactly as they ship.
  vm_bins="$CARGO_TARGET_DIR/vm-bins"
  rm -rf "$vm_bins" && mkdir -p "$vm_bins"
  for f in "$CARGO_TARGET_DIR"/debug/*; do
    if [ -f "$f" ] && [ -x "$f" ]; then cp "$f" "$vm_bins/"; fi
  done
  cp "$CARGO_TARGET_DIR/$triple/release/"{sriov,veth,router} "$vm_bins/"
  bash tests/vm/run-all.sh --bin-dir "$vm_bins"
fi
step "all tests passed"
