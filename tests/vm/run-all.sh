#!/usr/bin/env bash
# The whole real-kernel SR-IOV VM tier in one command: build the guest if needed, then boot
# one VM per test group (every tests/vm/guest/test-*.sh) and report.
#
# Usage: tests/vm/run-all.sh [--bin-dir DIR] [--jobs N] [GROUP...]
#   GROUP      run only these groups (e.g. igb-basics for guest/test-igb-basics.sh)
#   --bin-dir  passed to run.sh (default: ${CARGO_TARGET_DIR:-target}/debug)
#   --jobs N   boot up to N VMs at once, 1 vCPU each (default: the number of host CPUs); with
#              N > 1 a group's output is printed when it ends, with 1 it is streamed
#
# A group's VM settings come from a header line in its script:   # vm: pfs=2 timeout=300
# The last line is "N passed, N failed, N skipped", counting the checks of every group; a group
# whose VM failed, timed out or ended without its summary counts as one more failure.
# Exit status: 0 when nothing failed, 1 otherwise.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_ARGS=()
JOBS=$(nproc 2>/dev/null || echo 1)
FILTER=()

while [ $# -gt 0 ]; do
	case $1 in
	--bin-dir) BIN_ARGS=(--bin-dir "$2"); shift 2 ;;
	--jobs | -j) JOBS=$2; shift 2 ;;
	-h | --help) sed -n '2,15p' "$HERE/run-all.sh" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run-all.sh: unknown option $1" >&2; exit 2 ;;
	*) FILTER+=("$1"); shift ;;
	esac
done
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "run-all.sh: --jobs needs a positive number" >&2; exit 2; }

T0=$(date +%s)
if ! "$HERE/build-guest.sh"; then
	echo "run-all.sh: building the guest failed"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
T_BUILD=$(($(date +%s) - T0))

GROUPS_TO_RUN=()
for f in "$HERE"/guest/test-*.sh; do
	[ -e "$f" ] || continue
	g=$(basename "$f" .sh)
	g=${g#test-}
	if [ ${#FILTER[@]} -gt 0 ]; then
		want=0
		for x in "${FILTER[@]}"; do [ "$x" = "$g" ] || [ "$x" = "test-$g" ] || [ "$x" = "test-$g.sh" ] && want=1; done
		[ "$want" = 1 ] || continue
	fi
	GROUPS_TO_RUN+=("$g")
done
if [ ${#GROUPS_TO_RUN[@]} -eq 0 ]; then
	echo "run-all.sh: no test group matched ${FILTER[*]:-(none in $HERE/guest)}"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

LOGS=$(mktemp -d "${TMPDIR:-/tmp}/sriov-vm-all.XXXXXX")
trap 'rm -rf "$LOGS"' EXIT

# "# vm: pfs=2 timeout=300" -> run.sh options
group_opts() {
	local line kv opts=()
	line=$(grep -m1 -E '^# vm:' "$HERE/guest/test-$1.sh" | sed 's/^# vm://')
	for kv in $line; do
		case $kv in
		pfs=*) opts+=(--pfs "${kv#pfs=}") ;;
		timeout=*) opts+=(--timeout "${kv#timeout=}") ;;
		esac
	done
	echo "${opts[@]}"
}

run_group() { # group -> $LOGS/<group>.log and .rc
	local g=$1 start rc
	start=$(date +%s)
	# shellcheck disable=SC2046 # group_opts yields separate words on purpose
	"$HERE/run.sh" "${BIN_ARGS[@]}" $(group_opts "$g") "test-$g.sh" >"$LOGS/$g.log" 2>&1
	rc=$?
	echo "$rc $(($(date +%s) - start))" >"$LOGS/$g.rc"
}

# Run: sequentially streaming the output, or N at a time printing each log when its group ends.
if [ "$JOBS" = 1 ]; then
	for g in "${GROUPS_TO_RUN[@]}"; do
		echo "=== group $g"
		run_group "$g" &
		tail -n +1 -s 0.2 -F --pid=$! "$LOGS/$g.log" 2>/dev/null
		wait
	done
else
	running=0
	for g in "${GROUPS_TO_RUN[@]}"; do
		run_group "$g" &
		running=$((running + 1))
		if [ "$running" -ge "$JOBS" ]; then
			wait -n
			running=$((running - 1))
		fi
	done
	wait
	for g in "${GROUPS_TO_RUN[@]}"; do
		echo "=== group $g"
		cat "$LOGS/$g.log"
	done
fi

P=0
F=0
S=0
echo
echo "=== VM tier summary (guest build ${T_BUILD}s, total $(($(date +%s) - T0))s)"
for g in "${GROUPS_TO_RUN[@]}"; do
	read -r rc secs <"$LOGS/$g.rc"
	summary=$(grep -E '^# summary: passed=[0-9]+ failed=[0-9]+ skipped=[0-9]+$' "$LOGS/$g.log" | tail -n 1)
	if [ -n "$summary" ]; then
		read -r gp gf gs < <(sed -E 's/.*passed=([0-9]+) failed=([0-9]+) skipped=([0-9]+)/\1 \2 \3/' <<<"$summary")
	else
		gp=0 gf=0 gs=0
	fi
	note=
	if [ "$rc" != 0 ] && [ "$gf" = 0 ]; then
		# The VM failed or timed out, or the script failed outside any check.
		gf=1
		case $rc in
		124) note=" (VM TIMED OUT)" ;;
		125) note=" (VM FAILED)" ;;
		*) note=" (exit status $rc, no failed check)" ;;
		esac
	fi
	if [ "$gf" = 0 ]; then status=PASS; else status=FAIL; fi
	printf '%-4s %-24s %3d passed, %d failed, %d skipped  %ss%s\n' "$status" "$g" "$gp" "$gf" "$gs" "$secs" "$note"
	P=$((P + gp))
	F=$((F + gf))
	S=$((S + gs))
done
echo "$P passed, $F failed, $S skipped"
[ "$F" = 0 ]
