# Tiny test library for guest test groups (tests/vm/guest/test-*.sh); source it first:
#   . "$(dirname "$0")/lib.sh"
#
#   check NAME CMD...              pass when CMD exits 0
#   check_eq NAME EXPECTED CMD...  pass when CMD's stdout equals EXPECTED
#   check_fails NAME ERE CMD...    pass when CMD exits non-zero and its output matches ERE
#   check_json NAME JQ-FILTER FILE pass when `jq -e FILTER FILE` is true
#   json_begin FILE; json_check NAME JQ-FILTER; ...; json_end
#                                  the same for many filters with one jq run (jq is slow to start)
#   wait_for SECONDS CMD...        poll CMD (every 0.2 s) until it succeeds; 1 on timeout
#   skip NAME REASON               record a skipped check
#   fatal MESSAGE                  record a failure and end the group now
#   finish                         print the summary and exit (0 = no failure)
#
# Output is TAP-like: "ok N - name" / "not ok N - name" (with the command's output indented),
# and a last line "# summary: passed=P failed=F skipped=S" that run-all.sh reads. A group that
# dies before `finish` still prints a summary, with one extra failure.
#
# Everything here runs inside the throw-away test VM: the guest's root netns is not the host's.

# shellcheck shell=bash
set -u

_T_PASS=0
_T_FAIL=0
_T_SKIP=0
_T_N=0
_T_DONE=0
_T_START=$(cut -d' ' -f1 /proc/uptime)

# Elapsed guest seconds since the group started, for log lines.
t_elapsed() { awk -v s="$_T_START" -v e="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", e - s }'; }

log() { printf '# [%ss] %s\n' "$(t_elapsed)" "$*"; }

_t_pass() {
	_T_N=$((_T_N + 1))
	_T_PASS=$((_T_PASS + 1))
	printf 'ok %d - %s\n' "$_T_N" "$1"
}

_t_fail() { # name detail
	_T_N=$((_T_N + 1))
	_T_FAIL=$((_T_FAIL + 1))
	printf 'not ok %d - %s\n' "$_T_N" "$1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/#   /'
}

check() {
	local name=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = 0 ]; then
		_t_pass "$name"
	else
		_t_fail "$name" "command: $*
exit status: $rc
${out}"
	fi
}

check_eq() {
	local name=$1 want=$2 got rc
	shift 2
	got=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = 0 ] && [ "$got" = "$want" ]; then
		_t_pass "$name"
	else
		_t_fail "$name" "command: $*
exit status: $rc
expected: $want
got:      $got"
	fi
}

check_fails() {
	local name=$1 pattern=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" != 0 ] && grep -qE -- "$pattern" <<<"$out"; then
		_t_pass "$name"
	else
		_t_fail "$name" "command: $*
exit status: $rc (expected non-zero)
expected output matching: $pattern
got: $out"
	fi
}

check_json() {
	local name=$1 filter=$2 file=$3 out
	if out=$(jq -e "$filter" "$file" 2>&1); then
		_t_pass "$name"
	else
		_t_fail "$name" "jq -e '$filter' gave: $out
document: $(head -c 3000 "$file")"
	fi
}

# Batched JSON checks: jq 1.6 needs about 1 s to start under TCG, so many checks on one
# document share one jq run. Each FILTER passes when it yields at least one value and only `true`.
#   json_begin FILE; json_check NAME FILTER; ...; json_end
json_begin() {
	_J_FILE=$1
	_J_NAMES=()
	_J_FILTERS=()
}
json_check() {
	_J_NAMES+=("$1")
	_J_FILTERS+=("$2")
}
json_end() {
	local prog="" i out idx rest
	local -A res=()
	for i in "${!_J_FILTERS[@]}"; do
		prog+="(try ([${_J_FILTERS[i]}] | if length > 0 and all(. == true) then \"$i ok\" else (\"$i got \" + tojson) end) catch (\"$i error \" + tostring)),"
	done
	out=$(jq -r "${prog%,}" "$_J_FILE" 2>&1)
	while read -r idx rest; do
		[[ $idx =~ ^[0-9]+$ ]] && res[$idx]=$rest
	done <<<"$out"
	for i in "${!_J_FILTERS[@]}"; do
		if [ "${res[$i]:-}" = ok ]; then
			_t_pass "${_J_NAMES[i]}"
		else
			_t_fail "${_J_NAMES[i]}" "jq filter: ${_J_FILTERS[i]}
result: ${res[$i]:-$out}
document: $(head -c 1500 "$_J_FILE")"
		fi
	done
}

skip() {
	_T_N=$((_T_N + 1))
	_T_SKIP=$((_T_SKIP + 1))
	printf 'ok %d - %s # SKIP %s\n' "$_T_N" "$1" "$2"
}

wait_for() {
	local secs=$1 deadline now
	shift
	deadline=$(awk -v u="$(cut -d' ' -f1 /proc/uptime)" -v s="$secs" 'BEGIN { printf "%d", (u + s) * 10 }')
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		now=$(awk -v u="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%d", u * 10 }')
		[ "$now" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

finish() {
	_T_DONE=1
	printf '# group took %s s (guest time)\n' "$(t_elapsed)"
	printf '# summary: passed=%d failed=%d skipped=%d\n' "$_T_PASS" "$_T_FAIL" "$_T_SKIP"
	[ "$_T_FAIL" = 0 ] && exit 0
	exit 1
}

fatal() {
	_t_fail "fatal: $*"
	finish
}

_t_on_exit() {
	local rc=$?
	[ "$_T_DONE" = 1 ] && return
	_t_fail "group ended before finish (exit status $rc)"
	_T_DONE=1
	printf '# summary: passed=%d failed=%d skipped=%d\n' "$_T_PASS" "$_T_FAIL" "$_T_SKIP"
	exit 1
}
trap _t_on_exit EXIT

# ---------------------------------------------------------------------------------------------
# SR-IOV helpers (sysfs, as the guest has no udev and kernel netdev names like eth0)

# Write VALUE to sysfs FILE; on failure print the kernel's error (e.g. "Numerical result out
# of range") and return non-zero.
sysfs_write() { # file value
	local err
	if err=$( { printf '%s\n' "$2" >"$1"; } 2>&1); then
		return 0
	fi
	printf '%s\n' "${err##*: }"
	return 1
}

# PCI addresses of the igb PFs, in bus order.
igb_pfs() {
	local d
	for d in /sys/bus/pci/drivers/igb/*:*; do
		[ -e "$d" ] && basename "$d"
	done | sort
}

# The netdev of a PCI device in the current netns ("" when none).
pci_netdev() {
	local d
	for d in "/sys/bus/pci/devices/$1/net"/*; do
		[ -e "$d" ] && { basename "$d"; return 0; }
	done
	return 0
}

# PCI address of VF N of a PF.
vf_pci() { basename "$(readlink "/sys/bus/pci/devices/$1/virtfn$2")"; }

# The driver bound to a PCI device ("" when none).
pci_driver() {
	local l
	l=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) || return 0
	basename "$l"
}

# "vendor:device" of a PCI device, e.g. 8086:10ca.
pci_id() {
	local v d
	v=$(cat "/sys/bus/pci/devices/$1/vendor") && d=$(cat "/sys/bus/pci/devices/$1/device") &&
		echo "${v#0x}:${d#0x}"
}

# Predicates for wait_for (re-evaluated on each poll).
pci_has_driver() { [ "$(pci_driver "$1")" = "$2" ]; }
pci_has_netdev() { [ -n "$(pci_netdev "$1")" ]; }

# IOMMU group number of a PCI device.
pci_iommu_group() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }

# Set a PF's VF count, going through 0 when both counts are non-zero (the kernel refuses a
# direct change with EBUSY).
set_numvfs() { # pf count
	local f=/sys/bus/pci/devices/$1/sriov_numvfs cur
	cur=$(cat "$f")
	[ "$cur" = "$2" ] && return 0
	if [ "$cur" != 0 ] && [ "$2" != 0 ]; then
		sysfs_write "$f" 0 || return 1
	fi
	sysfs_write "$f" "$2"
}

# Bind a PCI device to DRIVER through driver_override (empty DRIVER: back to the default).
pci_rebind() { # pci driver
	local dev=/sys/bus/pci/devices/$1
	sysfs_write "$dev/driver_override" "${2:-}" || return 1
	if [ -e "$dev/driver" ]; then
		sysfs_write "$dev/driver/unbind" "$1" || return 1
	fi
	sysfs_write /sys/bus/pci/drivers_probe "$1"
}

# Wait until a netdev has carrier (igbvf needs 2-6 s after link up under TCG).
carrier_up() { # [netns] ifname
	if [ $# = 2 ]; then
		[ "$(ip netns exec "$1" cat "/sys/class/net/$2/carrier" 2>/dev/null)" = 1 ]
	else
		[ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]
	fi
}
