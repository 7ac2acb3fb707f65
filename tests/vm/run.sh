#!/usr/bin/env bash
# Boot the SR-IOV test guest once and run one script in it.
#
# Usage: tests/vm/run.sh [options] <guest-script> [args...]
#   <guest-script>   a file in tests/vm/guest/ (e.g. test-igb-basics.sh), or a path to any script
#   --bin-dir DIR    host dir whose executables appear at /mnt/host/bin in the guest
#                    (default: ${CARGO_TARGET_DIR:-target}/debug of this repo)
#   --pfs N          number of igb PFs (emulated 82576, 7 VFs each), all on one QEMU-internal hub
#                    (default 1, at most 8)
#   --timeout S      hard limit for one boot of the VM in seconds; QEMU is killed after it
#                    (default 300)
#   --smp N / --mem MiB   guest CPUs and memory (default 1 / 1024)
#   --keep           keep the run dir (logs) even when the script passes
#   --quiet          do not stream the guest output (it is still printed on failure)
#
# Exit status: the guest script's own status (0 = passed), or
#   124  the VM timed out (QEMU killed)
#   125  the VM failed: QEMU error, guest did not boot, or guest died before the script ended
#   2    usage error
# A guest that has not booted within SRIOV_VM_BOOT_TIMEOUT seconds (default 120) is killed and
# booted once more: nothing of the script has run then (a rare early-boot stall under TCG).
# Environment: SRIOV_VM_CACHE (guest cache, see build-guest.sh), SRIOV_VM_ACCEL=auto|tcg|kvm,
# SRIOV_VM_APPEND (extra guest kernel arguments).
#
# Network safety: the guest has no host network at all. Each igb PF is wired to a hub inside
# QEMU (-netdev hubport) with no host backend; -nodefaults removes the default NIC.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

BIN_DIR=
PFS=1
TIMEOUT=300
SMP=1
BOOT_TIMEOUT=${SRIOV_VM_BOOT_TIMEOUT:-120}
MEM=1024
KEEP=0
QUIET=0

usage() {
	sed -n '2,26p' "$HERE/run.sh" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}
bad_usage() {
	printf 'run.sh: %s\n' "$*" >&2
	exit 2
}
need_arg() { [ $# -ge 2 ] || bad_usage "$1 needs a value"; }

while [ $# -gt 0 ]; do
	case $1 in
	--bin-dir) need_arg "$@"; BIN_DIR=$2; shift 2 ;;
	--pfs) need_arg "$@"; PFS=$2; shift 2 ;;
	--timeout) need_arg "$@"; TIMEOUT=$2; shift 2 ;;
	--smp) need_arg "$@"; SMP=$2; shift 2 ;;
	--mem) need_arg "$@"; MEM=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--quiet) QUIET=1; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	-*) bad_usage "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || bad_usage "no guest script given (see --help)"
SCRIPT=$1
shift

for n in "$PFS" "$TIMEOUT" "$SMP" "$MEM"; do
	[[ $n =~ ^[0-9]+$ ]] || bad_usage "not a number: $n"
done
if [ "$PFS" -lt 1 ] || [ "$PFS" -gt 8 ]; then bad_usage "--pfs must be 1..8"; fi

vm_error() { # rc message...
	local rc=$1
	shift
	printf 'run.sh: VM ERROR: %s\n' "$*" >&2
	exit "$rc"
}

if [ -z "$BIN_DIR" ]; then
	BIN_DIR=${CARGO_TARGET_DIR:-target}/debug
	[[ $BIN_DIR == /* ]] || BIN_DIR=$REPO/$BIN_DIR
fi

CACHE=$(vm_cache_dir)
GUEST=$(readlink -f "$CACHE/current" 2>/dev/null || true)
if [ -z "$GUEST" ] || [ ! -f "$GUEST/.ok" ]; then
	vm_error 125 "no guest in $CACHE: run tests/vm/build-guest.sh first"
fi
if [ -f "$GUEST/vmlinux" ]; then KERNEL=$GUEST/vmlinux; else KERNEL=$GUEST/vmlinuz; fi
QEMU=$(command -v qemu-system-x86_64) || vm_error 125 "qemu-system-x86_64 not found: run tests/vm/build-guest.sh (as root) to install it"

# KVM only with a real kvm_intel/kvm_amd: a /dev/kvm from another provider (e.g. kvm_pvm)
# hangs a stock Debian guest kernel.
ACCEL=${SRIOV_VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
	ACCEL=tcg
	if { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } && [ -w /dev/kvm ]; then
		ACCEL=kvm
	fi
fi
# shellcheck disable=SC2054 # commas are QEMU's option syntax
case $ACCEL in
tcg) MACHINE=(-machine q35,accel=tcg -cpu max) ;;
kvm) MACHINE=(-machine q35,accel=kvm,kernel-irqchip=split -cpu host) ;;
*) bad_usage "SRIOV_VM_ACCEL must be auto, tcg or kvm" ;;
esac

# Per-run dir: everything of this run lives here, so concurrent runs never collide.
RUN=$(mktemp -d "${TMPDIR:-/tmp}/sriov-vm.XXXXXX")
mkdir -p "$RUN/host/bin" "$RUN/host/guest" "$RUN/out"
QPID=
cleanup() {
	local rc=$?
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
		kill "$QPID" 2>/dev/null || true
	fi
	rm -rf "$RUN/host"
	if [ "$rc" = 0 ] && [ "$KEEP" = 0 ]; then
		rm -rf "$RUN"
	else
		printf 'run.sh: logs kept in %s (console.log, qemu.log, out/output.log, out/dmesg.log)\n' "$RUN" >&2
	fi
	return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The host share: a snapshot of the binaries (hard links when possible, so a cargo rebuild
# during the run does not change them) and of tests/vm/guest.
if [ -d "$BIN_DIR" ]; then
	for f in "$BIN_DIR"/*; do
		if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
		ln "$f" "$RUN/host/bin/" 2>/dev/null || cp "$f" "$RUN/host/bin/"
	done
else
	printf 'run.sh: warning: bin dir %s does not exist; /mnt/host/bin is empty\n' "$BIN_DIR" >&2
fi
cp -R "$HERE/guest/." "$RUN/host/guest/"
if [ -f "$HERE/guest/$SCRIPT" ]; then
	GUEST_PATH=guest/$SCRIPT
elif [ -f "$SCRIPT" ]; then
	mkdir -p "$RUN/host/scripts"
	cp "$SCRIPT" "$RUN/host/scripts/"
	GUEST_PATH=scripts/$(basename "$SCRIPT")
else
	bad_usage "no such guest script: $SCRIPT (looked in $HERE/guest/ and the current dir)"
fi
printf '%s\0' "$GUEST_PATH" "$@" >"$RUN/out/argv"

NET=()
for ((i = 0; i < PFS; i++)); do
	NET+=(-device "pcie-root-port,id=rp$i,chassis=$((i + 1)),slot=$((i + 1))"
		-netdev "hubport,id=igbnet$i,hubid=0"
		-device "igb,bus=rp$i,netdev=igbnet$i,mac=52:54:00:12:34:$(printf '%02x' $((0x56 + i))),romfile=")
done

# shellcheck disable=SC2054 # commas are QEMU's option syntax
CMD=("$QEMU" "${MACHINE[@]}" -smp "$SMP" -m "$MEM"
	-nodefaults -no-user-config -display none -no-reboot
	-device intel-iommu,intremap=on
	-kernel "$KERNEL" -initrd "$GUEST/initramfs.cpio"
	-append "console=ttyS0 intel_iommu=on panic=-1 quiet loglevel=4 ${SRIOV_VM_APPEND:-}"
	"${NET[@]}"
	-fsdev "local,id=fshost,path=$RUN/host,security_model=none,readonly=on"
	-device virtio-9p-pci,fsdev=fshost,mount_tag=host
	-fsdev "local,id=fsout,path=$RUN/out,security_model=none"
	-device virtio-9p-pci,fsdev=fsout,mount_tag=out
	-serial "file:$RUN/console.log" -monitor none)

QEMU_VER=$("$QEMU" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')
printf 'vm: %s | kernel %s | accel %s | %s PF(s) | qemu %s | timeout %ss\n' \
	"$GUEST_PATH" "$(cat "$GUEST/release" 2>/dev/null || echo '?')" "$ACCEL" "$PFS" "$QEMU_VER" "$TIMEOUT"

# One boot. Hard timeout: timeout(1) kills QEMU (its child, by PID) with TERM, then KILL 5 s
# later. Boot watchdog: a guest that has not booted after BOOT_TIMEOUT seconds is killed too
# (BOOT_STALLED=1), so that the caller can retry; nothing of the script has run at that point.
boot_once() {
	local tpid='' t0=$SECONDS
	rm -f "$RUN/out/booted" "$RUN/out/exit-code" "$RUN/out/output.log"
	timeout -k 5 "$TIMEOUT" "${CMD[@]}" >"$RUN/qemu.log" 2>&1 &
	QPID=$!
	# Stream the script's output while the VM runs (tail exits once QEMU has exited).
	if [ "$QUIET" = 0 ]; then
		tail -n +1 -s 0.2 -F --pid="$QPID" "$RUN/out/output.log" 2>/dev/null &
		tpid=$!
	fi
	BOOT_STALLED=0
	while [ ! -f "$RUN/out/booted" ] && kill -0 "$QPID" 2>/dev/null; do
		if [ $((SECONDS - t0)) -ge "$BOOT_TIMEOUT" ]; then
			BOOT_STALLED=1
			kill "$QPID" 2>/dev/null
			break
		fi
		sleep 0.5
	done
	QRC=0
	wait "$QPID" || QRC=$?
	QPID=
	[ -z "$tpid" ] || wait "$tpid" 2>/dev/null || true
}

START=$(date +%s.%N)
for attempt in 1 2; do
	boot_once
	if [ "$BOOT_STALLED" = 0 ] || [ "$attempt" = 2 ]; then break; fi
	# Seen under TCG on a loaded host: an early-boot RCU stall that never recovers.
	cp "$RUN/console.log" "$RUN/console.stalled-boot.log" 2>/dev/null
	printf 'run.sh: the guest did not boot within %ss; retrying once (console: %s)\n' \
		"$BOOT_TIMEOUT" "$RUN/console.stalled-boot.log" >&2
done
ELAPSED=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

show_logs() {
	if [ "$QUIET" = 1 ] && [ -f "$RUN/out/output.log" ]; then
		echo "--- guest script output ---"
		cat "$RUN/out/output.log"
	fi
	echo "--- qemu.log ---"
	cat "$RUN/qemu.log"
	echo "--- last 40 lines of console.log ---"
	tail -n 40 "$RUN/console.log" 2>/dev/null || true
} >&2

TIMED_OUT=0
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then TIMED_OUT=1; fi

if [ -f "$RUN/out/exit-code" ]; then
	RC=$(cat "$RUN/out/exit-code")
	[[ $RC =~ ^[0-9]+$ ]] || vm_error 125 "bad exit code from the guest: $RC"
	printf 'vm: %s exited %s (%s s wall, %s)\n' "$GUEST_PATH" "$RC" "$ELAPSED" \
		"$(cut -d' ' -f1 "$RUN/out/booted" 2>/dev/null)"
	[ "$RC" = 0 ] || { [ "$QUIET" = 0 ] || show_logs; }
	exit "$RC"
fi

show_logs
if [ "$BOOT_STALLED" = 1 ]; then
	vm_error 125 "the VM failed to boot twice within ${BOOT_TIMEOUT}s (QEMU killed)"
elif [ "$TIMED_OUT" = 1 ]; then
	if [ -f "$RUN/out/booted" ]; then
		vm_error 124 "timed out after ${TIMEOUT}s while running $GUEST_PATH (guest had booted); QEMU killed"
	else
		vm_error 124 "timed out after ${TIMEOUT}s before the guest booted; QEMU killed"
	fi
elif [ ! -f "$RUN/out/booted" ]; then
	vm_error 125 "the VM failed to boot (QEMU exit status $QRC after ${ELAPSED}s)"
else
	vm_error 125 "the guest stopped before $GUEST_PATH finished (kernel panic? QEMU exit status $QRC)"
fi
