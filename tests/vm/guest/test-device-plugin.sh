#!/bin/bash
# Our `sriov-device-plugin` against a real kernel's SR-IOV PF (emulated Intel 82576, igb), driven
# through `kubelet-emu` (crates/testkit: the kubelet's side of the device-plugin API, v1beta1):
# registration, ListAndWatch (real VF PCI addresses, NUMA topology as sysfs says), Allocate for an
# igbvf pool and a vfio-pci pool (env, device-info file, /dev/vfio device specs), health on PF
# admin down/up, VFs created, removed and rebound at runtime (the kernel's uevents; the plugin's
# safety-net rescan is off), GetPreferredAllocation, a kubelet restart and a plugin restart.
#
# Contract under test (device-plugin/README.md):
#   pool intel.com/igb_vf    = igb VFs (8086:10ca) on igbvf under PF netdev $PFNET (pfNames)
#   pool example.com/igb_vfio = igb VFs on vfio-pci (resourcePrefix)
#   device IDs are VF PCI addresses; topology: [numa_node], none when sysfs says -1;
#   Allocate env PCIDEVICE_<PREFIX>_<NAME>=<ids>, _INFO JSON; vfio-pci: device specs
#   /dev/vfio/vfio and /dev/vfio/<group> (rw); a device-info file per allocated device;
#   PF admin down -> its VFs Unhealthy, up (carrier back) -> Healthy; a vanished VF stays
#   Unhealthy for --removal-grace, then leaves; a VF rebound to another pool's driver moves there.
# vm: pfs=1 timeout=480
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

DP=$BIN_DIR/sriov-device-plugin
EMU=$BIN_DIR/kubelet-emu
[ -x "$DP" ] || fatal "sriov-device-plugin not found at $DP (cargo build --workspace --bins)"
[ -x "$EMU" ] || fatal "kubelet-emu not found at $EMU (cargo build -p sriov-testkit)"
PF=$(igb_pfs | head -n 1)
[ -n "$PF" ] || fatal "no PCI device bound to igb"
PFNET=$(pci_netdev "$PF")
[ -n "$PFNET" ] || fatal "PF $PF has no netdev"

WORK=$(mktemp -d /tmp/dp-test.XXXXXX)
KDIR=$WORK/device-plugins
DEVINFO=$WORK/devinfo
CFG=$WORK/pcidp/config.json
NET=intel.com/igb_vf
VFIO=example.com/igb_vfio
NET_ENV=PCIDEVICE_INTEL_COM_IGB_VF
VFIO_ENV=PCIDEVICE_EXAMPLE_COM_IGB_VFIO
GRACE=15s
mkdir -p "$KDIR" "$DEVINFO" "$(dirname "$CFG")" "$ARTIFACTS"
EMU_PID=
DP_PID=
FOLLOW_PIDS=()
log "PF $PF netdev $PFNET; plugin $DP; kubelet $EMU; work dir $WORK"

cleanup() {
	local p
	for p in "${FOLLOW_PIDS[@]}" $DP_PID $EMU_PID; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	FOLLOW_PIDS=()
	DP_PID=
	EMU_PID=
	ip link set "$PFNET" up 2>/dev/null
	set_numvfs "$PF" 0 >/dev/null 2>&1
}
trap 'rc=$?; cleanup; (exit $rc); _t_on_exit' EXIT

# kubelet-emu against our kubelet directory.
emu() { "$EMU" --dir "$KDIR" "$@"; }
# Runs kubelet-emu ARGS, its JSON lines as one JSON array in FILE; stderr (the reason for a
# failure) goes to the caller, i.e. into a failed check's report.
emu_lines() { # file args...
	local f=$1 out rc
	shift
	out=$(emu "$@")
	rc=$?
	printf '[%s]\n' "$(printf '%s\n' "$out" | sed '/^$/d' | paste -sd,)" >"$f"
	cp "$f" "$ARTIFACTS/$(basename "$f")"
	[ "$rc" = 0 ] || { echo "kubelet-emu $* exited $rc; stdout: $out"; return 1; }
}
# The topology kubelet-emu should print for a device: [node], or null when sysfs says -1.
want_numa() {
	local n
	n=$(cat "/sys/bus/pci/devices/$1/numa_node")
	if [ "$n" -ge 0 ]; then echo "[$n]"; else echo null; fi
}
# Guest milliseconds, for the figures printed in the log.
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
# Milliseconds from T0 (an $EPOCHREALTIME) to the arrival of the first snapshot line in FILE that
# matches ERE (kubelet-emu stamps each snapshot with its arrival "time"); "?" when none did.
ms_to_first() { # t0 file ere
	local t
	t=$(grep -m1 -E -- "$3" "$2" | sed -n 's/.*"time":\([0-9.]*\).*/\1/p')
	[ -n "$t" ] || { echo "?"; return; }
	awk -v a="$1" -v b="$t" 'BEGIN { printf "%d", (b - a) * 1000 }'
}
# jq's array of a list of strings: jq_list a b -> ["a","b"]
jq_list() {
	local s="" x
	for x in "$@"; do s+="\"$x\","; done
	echo "[${s%,}]"
}
# Starts recording every ListAndWatch snapshot of a pool into FILE (JSON lines) in the background.
# (kubelet-emu itself runs in the background, not a subshell, so its PID is $!.)
follow() { # resource file
	"$EMU" --dir "$KDIR" --timeout 300s list -r "$1" --follow >"$2" 2>"$2.err" &
	FOLLOW_PIDS+=($!)
}
# Stops the recorders and turns their files into JSON arrays.
follow_stop() {
	local p f
	for p in "${FOLLOW_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	FOLLOW_PIDS=()
	for f in "$@"; do
		printf '[%s]\n' "$(sed '/^$/d' "$f" | paste -sd,)" >"$f.json"
		cp "$f" "$ARTIFACTS/"
	done
}
# Whether every PCI device given is bound to DRIVER.
all_on_driver() { # driver pci...
	local d=$1 v
	shift
	for v in "$@"; do pci_has_driver "$v" "$d" || return 1; done
}
# GetDevicePluginOptions of a pool says getPreferredAllocationAvailable (grep: no jq start).
options_say_preferred() {
	local out
	out=$(emu options -r "$1") || return 1
	grep -q '"getPreferredAllocationAvailable":true' <<<"$out" || { echo "$out"; return 1; }
}
start_plugin() {
	"$DP" --kubelet-dir "$KDIR" --config-file "$CFG" --devinfo-dir "$DEVINFO" \
		--cdi-dir "$WORK/cdi" --rescan-interval 0 --removal-grace "$GRACE" --log-level debug \
		>>"$ARTIFACTS/device-plugin.log" 2>&1 &
	DP_PID=$!
}

# ---------------------------------------------------------------------------------------------
log "setup: 2 VFs, VF 1 on vfio-pci, PF link up"
check "create 2 VFs" set_numvfs "$PF" 2
VF0=$(vf_pci "$PF" 0)
VF1=$(vf_pci "$PF" 1)
check "VF 0 $VF0 on igbvf" wait_for 10 pci_has_driver "$VF0" igbvf
check "VF 1 $VF1 on igbvf" wait_for 10 pci_has_driver "$VF1" igbvf
check_eq "VF ids are 8086:10ca" "8086:10ca 8086:10ca" echo "$(pci_id "$VF0") $(pci_id "$VF1")"
check "VF 1 rebound to vfio-pci" pci_rebind "$VF1" vfio-pci
GRP1=$(pci_iommu_group "$VF1")
check "/dev/vfio/$GRP1 and /dev/vfio/vfio exist" test -c "/dev/vfio/$GRP1" -a -c /dev/vfio/vfio
check "PF $PFNET admin up" ip link set "$PFNET" up
check "PF $PFNET carrier up" wait_for 30 carrier_up "$PFNET"

cat >"$CFG" <<EOF
{"resourceList": [
  {"resourceName": "igb_vf",
   "selectors": [{"vendors": ["8086"], "devices": ["10ca"], "drivers": ["igbvf"], "pfNames": ["$PFNET"]}]},
  {"resourceName": "igb_vfio", "resourcePrefix": "example.com",
   "selectors": {"vendors": ["8086"], "devices": ["10ca"], "drivers": ["vfio-pci"]}}
]}
EOF
cp "$CFG" "$ARTIFACTS/config.json"

# ---------------------------------------------------------------------------------------------
log "kubelet and plugin start; registration"
"$EMU" --dir "$KDIR" serve >"$ARTIFACTS/registrations.jsonl" 2>"$ARTIFACTS/kubelet-emu.log" &
EMU_PID=$!
check "kubelet-emu serves $KDIR/kubelet.sock" wait_for 10 test -S "$KDIR/kubelet.sock"
T0=$(now_ms)
start_plugin
check "both pools register" emu_lines "$WORK/regs.json" --wait-resources 2 registrations
log "figure: plugin start -> both pools registered: $(($(now_ms) - T0)) ms (upper bound, TCG)"
json_begin "$WORK/regs.json"
json_check "registrations: $NET and $VFIO" "[.[].resource] == [\"$VFIO\", \"$NET\"]"
json_check "registrations: endpoints <prefix>_<name>.sock" \
	"[.[].endpoint] == [\"example.com_igb_vfio.sock\", \"intel.com_igb_vf.sock\"]"
json_check "registrations: API v1beta1, preferred allocation offered, no PreStart" \
	'all(.[]; .version == "v1beta1" and .options.getPreferredAllocationAvailable == true
		and .options.preStartRequired == false)'
json_end
check "plugin sockets exist" test -S "$KDIR/intel.com_igb_vf.sock" -a -S "$KDIR/example.com_igb_vfio.sock"

# ---------------------------------------------------------------------------------------------
log "ListAndWatch: the real VFs, health and NUMA topology"
check "$NET lists $VF0 Healthy" emu_lines "$WORK/net.json" wait -r "$NET" --ids "$VF0" --healthy 1
check "$VFIO lists $VF1 Healthy" emu_lines "$WORK/vfio.json" wait -r "$VFIO" --ids "$VF1" --healthy 1
printf '{"net": %s, "vfio": %s}\n' "$(cat "$WORK/net.json")" "$(cat "$WORK/vfio.json")" >"$WORK/lw.json"
json_begin "$WORK/lw.json"
json_check "$NET: exactly [$VF0]" "[.net[0].devices[].id] == [\"$VF0\"]"
json_check "$NET: $VF0 topology $(want_numa "$VF0") (sysfs numa_node $(cat "/sys/bus/pci/devices/$VF0/numa_node"))" \
	".net[0].devices[0].numaNodes == $(want_numa "$VF0")"
json_check "$VFIO: exactly [$VF1]" "[.vfio[0].devices[].id] == [\"$VF1\"]"
json_check "$VFIO: $VF1 topology $(want_numa "$VF1")" ".vfio[0].devices[0].numaNodes == $(want_numa "$VF1")"
json_end
check "GetDevicePluginOptions: preferred allocation available" options_say_preferred "$NET"

# ---------------------------------------------------------------------------------------------
log "Allocate"
check "Allocate $NET [$VF0]" emu_lines "$WORK/alloc-net.json" allocate -r "$NET" "$VF0"
check "Allocate $VFIO [$VF1]" emu_lines "$WORK/alloc-vfio.json" allocate -r "$VFIO" "$VF1"
printf '{"net": %s, "vfio": %s}\n' "$(cat "$WORK/alloc-net.json")" "$(cat "$WORK/alloc-vfio.json")" >"$WORK/alloc.json"
json_begin "$WORK/alloc.json"
json_check "$NET: one container response" '.net[0].containerResponses | length == 1'
json_check "$NET: $NET_ENV=$VF0" ".net[0].containerResponses[0].envs.$NET_ENV == \"$VF0\""
json_check "$NET: ${NET_ENV}_INFO names $VF0 (generic deviceID)" \
	".net[0].containerResponses[0].envs.${NET_ENV}_INFO | fromjson | .[\"$VF0\"].generic.deviceID == \"$VF0\""
json_check "$NET: an igbvf netdev VF gets no device specs and no CDI devices" \
	'.net[0].containerResponses[0] | .devices == [] and .cdiDevices == []'
json_check "$VFIO: $VFIO_ENV=$VF1" ".vfio[0].containerResponses[0].envs.$VFIO_ENV == \"$VF1\""
json_check "$VFIO: device specs /dev/vfio/vfio and /dev/vfio/$GRP1, rw" \
	"[.vfio[0].containerResponses[0].devices[] | [.hostPath, .containerPath, .permissions]] | sort
		== [[\"/dev/vfio/$GRP1\", \"/dev/vfio/$GRP1\", \"rw\"], [\"/dev/vfio/vfio\", \"/dev/vfio/vfio\", \"rw\"]]"
json_check "$VFIO: ${VFIO_ENV}_INFO vfio dev-mount /dev/vfio/$GRP1, mount /dev/vfio/vfio" \
	".vfio[0].containerResponses[0].envs.${VFIO_ENV}_INFO | fromjson | .[\"$VF1\"].vfio
		| .[\"dev-mount\"] == \"/dev/vfio/$GRP1\" and .mount == \"/dev/vfio/vfio\""
json_end
INFO_NET=$DEVINFO/intel.com-igb_vf-$VF0-device.json
INFO_VFIO=$DEVINFO/example.com-igb_vfio-$VF1-device.json
check "device-info file $(basename "$INFO_NET") written" test -s "$INFO_NET"
check "device-info file $(basename "$INFO_VFIO") written" test -s "$INFO_VFIO"
printf '{"net": %s, "vfio": %s}\n' "$(cat "$INFO_NET" 2>/dev/null || echo null)" \
	"$(cat "$INFO_VFIO" 2>/dev/null || echo null)" >"$WORK/devinfo.json"
json_begin "$WORK/devinfo.json"
json_check "device-info $VF0: type pci, pci-address $VF0, pf-pci-address $PF" \
	".net | .type == \"pci\" and .pci[\"pci-address\"] == \"$VF0\" and .pci[\"pf-pci-address\"] == \"$PF\""
json_check "device-info $VF1: pci-address $VF1, pf-pci-address $PF" \
	".vfio | .pci[\"pci-address\"] == \"$VF1\" and .pci[\"pf-pci-address\"] == \"$PF\""
json_end
check_fails "Allocate of an unknown device: InvalidArgument naming it" "InvalidArgument.*0000:7f:00.7" \
	emu allocate -r "$NET" 0000:7f:00.7
check_fails "Allocate of the other pool's VF $VF1: InvalidArgument" "InvalidArgument.*$VF1" \
	emu allocate -r "$NET" "$VF1"

# ---------------------------------------------------------------------------------------------
log "health: PF admin down and up (igb has no VF link-state control; carrier cannot be cut from the guest)"
follow "$NET" "$WORK/follow-net-down"
check "follow $NET" wait_for 10 test -s "$WORK/follow-net-down"
T0=$EPOCHREALTIME
check "ip link set $PFNET down" ip link set "$PFNET" down
check "PF down: $NET $VF0 Unhealthy" emu --timeout 20s wait -r "$NET" --unhealthy-ids "$VF0" --healthy 0
check "PF down: $VFIO $VF1 Unhealthy" emu --timeout 20s wait -r "$VFIO" --unhealthy-ids "$VF1" --healthy 0
check "PF down: $NET still lists its VF (health, not removal)" emu wait -r "$NET" --ids "$VF0"
follow_stop "$WORK/follow-net-down"
log "figure: ip link set down -> ListAndWatch Unhealthy: $(ms_to_first "$T0" "$WORK/follow-net-down" '"unhealthy":[1-9]') ms (TCG)"
follow "$NET" "$WORK/follow-net-up"
check "follow $NET" wait_for 10 test -s "$WORK/follow-net-up"
T0=$EPOCHREALTIME
check "ip link set $PFNET up" ip link set "$PFNET" up
check "PF up: $NET $VF0 Healthy again" emu --timeout 40s wait -r "$NET" --healthy-ids "$VF0" --unhealthy 0
check "PF up: $VFIO $VF1 Healthy again" emu --timeout 40s wait -r "$VFIO" --healthy-ids "$VF1" --unhealthy 0
follow_stop "$WORK/follow-net-up"
log "figure: ip link set up -> ListAndWatch Healthy: $(ms_to_first "$T0" "$WORK/follow-net-up" '"unhealthy":0') ms (includes igb link autonegotiation under TCG)"

# ---------------------------------------------------------------------------------------------
log "runtime VF changes (uevents only: --rescan-interval 0): 2 -> 4 VFs"
follow "$NET" "$WORK/follow-net-add"
follow "$VFIO" "$WORK/follow-vfio-add"
check "follow both pools" wait_for 10 test -s "$WORK/follow-net-add" -a -s "$WORK/follow-vfio-add"
T0=$EPOCHREALTIME
check "sriov_numvfs 2 -> 4 (through 0)" set_numvfs "$PF" 4
VF2=$(vf_pci "$PF" 2)
VF3=$(vf_pci "$PF" 3)
NUMA3=$(want_numa "$VF3")
check "VFs 0-3 on igbvf" wait_for 20 all_on_driver igbvf "$VF0" "$VF1" "$VF2" "$VF3"
check "$NET: all 4 VFs listed Healthy" emu --timeout 60s wait -r "$NET" --ids "$VF0,$VF1,$VF2,$VF3" --healthy 4
check "$VFIO: $VF1 (now on igbvf) left the vfio pool" emu --timeout 60s wait -r "$VFIO" --count 0
follow_stop "$WORK/follow-net-add" "$WORK/follow-vfio-add"
log "figure: sriov_numvfs 2 -> 4 (starts with 2 -> 0) -> $VF3 listed: $(ms_to_first "$T0" "$WORK/follow-net-add" "$VF3") ms, all 4 Healthy: $(ms_to_first "$T0" "$WORK/follow-net-add" '"healthy":4') ms (VF re-creation takes seconds under TCG, and the PF link drops)"
printf '{"net": %s, "vfio": %s}\n' "$(cat "$WORK/follow-net-add.json")" "$(cat "$WORK/follow-vfio-add.json")" >"$WORK/add.json"
json_begin "$WORK/add.json"
json_check "ListAndWatch $NET: first [$VF0], last [$VF0..$VF3]" \
	"([.net[0].devices[].id] == [\"$VF0\"]) and ([.net[-1].devices[].id] | sort == $(jq_list "$VF0" "$VF1" "$VF2" "$VF3"))"
json_check "ListAndWatch $NET: $VF2 and $VF3 appeared only after the first snapshot" \
	"[.net[] | select(any(.devices[]; .id == \"$VF2\" or .id == \"$VF3\")) | .seq] | length > 0 and min > 0"
json_check "ListAndWatch $VFIO: from [$VF1] to []" \
	"([.vfio[0].devices[].id] == [\"$VF1\"]) and (.vfio[-1].devices == [])"
json_end

log "rebind at runtime: VF 3 to vfio-pci moves it between pools"
check "VF 3 $VF3 rebound to vfio-pci" pci_rebind "$VF3" vfio-pci
GRP3=$(pci_iommu_group "$VF3")
check "$VFIO: lists $VF3 Healthy" emu --timeout 30s wait -r "$VFIO" --ids "$VF3" --healthy 1
check "$NET: $VF3 gone at once (another pool claims it)" emu --timeout 30s wait -r "$NET" --ids "$VF0,$VF1,$VF2" --healthy 3
check "Allocate $VFIO [$VF3]" emu_lines "$WORK/alloc-vfio3.json" allocate -r "$VFIO" "$VF3"
check_json "Allocate $VFIO [$VF3]: /dev/vfio/$GRP3 device spec" \
	"[.[0].containerResponses[0].devices[].hostPath] | sort == [\"/dev/vfio/$GRP3\", \"/dev/vfio/vfio\"]" \
	"$WORK/alloc-vfio3.json"

log "GetPreferredAllocation (pack: one PF, VFs in index order; must-include first)"
check "preferred $NET size 2" emu_lines "$WORK/pref1.json" preferred -r "$NET" --size 2
check "preferred $NET size 2 must-include $VF2" emu_lines "$WORK/pref2.json" preferred -r "$NET" \
	--size 2 --must-include "$VF2" --available "$VF2,$VF1,$VF0"
printf '{"a": %s, "b": %s}\n' "$(cat "$WORK/pref1.json")" "$(cat "$WORK/pref2.json")" >"$WORK/pref.json"
json_begin "$WORK/pref.json"
json_check "preferred of all healthy, size 2: [$VF0, $VF1]" ".a[0].deviceIds == $(jq_list "$VF0" "$VF1")"
json_check "preferred must-include $VF2, size 2: [$VF2, $VF0]" ".b[0].deviceIds == $(jq_list "$VF2" "$VF0")"
json_end

# ---------------------------------------------------------------------------------------------
log "runtime VF changes: 4 -> 1 VF (removal grace $GRACE)"
follow "$NET" "$WORK/follow-net-del"
follow "$VFIO" "$WORK/follow-vfio-del"
check "follow both pools" wait_for 10 test -s "$WORK/follow-net-del" -a -s "$WORK/follow-vfio-del"
T0=$EPOCHREALTIME
check "sriov_numvfs 4 -> 1 (through 0)" set_numvfs "$PF" 1
check "$NET: $VF1 $VF2 vanished -> gone after the grace; $VF0 Healthy" \
	emu --timeout 90s wait -r "$NET" --ids "$VF0" --healthy 1
check "$VFIO: $VF3 vanished -> gone after the grace" emu --timeout 90s wait -r "$VFIO" --count 0
follow_stop "$WORK/follow-net-del" "$WORK/follow-vfio-del"
log "figure: sriov_numvfs 4 -> 1 -> $VF3 Unhealthy: $(ms_to_first "$T0" "$WORK/follow-vfio-del" '"unhealthy":1') ms, $VF1 $VF2 gone: $(ms_to_first "$T0" "$WORK/follow-net-del" '"total":1,') ms (grace $GRACE)"
printf '{"net": %s, "vfio": %s}\n' "$(cat "$WORK/follow-net-del.json")" "$(cat "$WORK/follow-vfio-del.json")" >"$WORK/del.json"
json_begin "$WORK/del.json"
json_check "ListAndWatch $NET: $VF1 and $VF2 listed Unhealthy during the grace" \
	"any(.net[]; [.devices[] | select(.id == \"$VF1\" or .id == \"$VF2\") | .health] == [\"Unhealthy\", \"Unhealthy\"])"
json_check "ListAndWatch $NET: ends with [$VF0] Healthy" \
	".net[-1].devices == [{\"id\": \"$VF0\", \"health\": \"Healthy\", \"numaNodes\": $(want_numa "$VF0")}]"
json_check "ListAndWatch $VFIO: $VF3 listed Unhealthy during the grace, then []" \
	"any(.vfio[]; .devices == [{\"id\": \"$VF3\", \"health\": \"Unhealthy\", \"numaNodes\": $NUMA3}]) and .vfio[-1].devices == []"
json_end
check_fails "Allocate of vanished $VF2: refused" "$VF2" emu allocate -r "$NET" "$VF2"

# ---------------------------------------------------------------------------------------------
log "kubelet restart: sockets removed, kubelet.sock recreated, every pool re-registers"
T0=$(now_ms)
check "kubelet restart; both pools re-register in epoch 1" \
	emu_lines "$WORK/restart.json" --timeout 30s --wait-resources 2 restart
log "figure: kubelet restart -> both re-registered: $(($(now_ms) - T0)) ms (upper bound)"
check_json "re-registrations: 2, epoch 1" \
	"length == 2 and all(.[]; .epoch == 1) and ([.[].resource] == [\"$VFIO\", \"$NET\"])" "$WORK/restart.json"
check "plugin sockets served again" test -S "$KDIR/intel.com_igb_vf.sock" -a -S "$KDIR/example.com_igb_vfio.sock"
check "after the kubelet restart: $NET lists [$VF0] Healthy" emu wait -r "$NET" --ids "$VF0" --healthy 1

# ---------------------------------------------------------------------------------------------
log "plugin restart (SIGTERM, start again)"
SEQ=$(($(emu registrations --all | wc -l) - 1))
kill -TERM "$DP_PID"
wait "$DP_PID"
check_eq "plugin exits 0 on SIGTERM" 0 echo "$?"
DP_PID=
check "plugin sockets removed on exit" test ! -e "$KDIR/intel.com_igb_vf.sock" -a ! -e "$KDIR/example.com_igb_vfio.sock"
check_eq "device-info files removed on exit" "" ls -A "$DEVINFO"
start_plugin
check "restarted plugin: both pools register again" \
	emu_lines "$WORK/reregs.json" --wait-resources 2 registrations --after "$SEQ"
check_json "new registrations after #$SEQ: both pools, epoch 1" \
	"length == 2 and all(.[]; .seq > $SEQ and .epoch == 1)" "$WORK/reregs.json"
check "restarted plugin: $NET lists [$VF0] Healthy" emu wait -r "$NET" --ids "$VF0" --healthy 1
check "restarted plugin: $VFIO lists nothing" emu wait -r "$VFIO" --count 0

# ---------------------------------------------------------------------------------------------
log "clean-up"
kill -TERM "$DP_PID"
wait "$DP_PID"
check_eq "plugin exits 0 on SIGTERM" 0 echo "$?"
DP_PID=
kill -TERM "$EMU_PID"
wait "$EMU_PID"
check_eq "kubelet-emu serve exits 0 on SIGTERM" 0 echo "$?"
EMU_PID=
check "kubelet.sock removed" test ! -e "$KDIR/kubelet.sock"
check "VFs removed" set_numvfs "$PF" 0
rm -rf "$WORK"
finish
