#!/bin/bash
# Our `sriov-agent` binary against a real kernel's SR-IOV PF (emulated Intel 82576, igb):
# inventory discovery and `vfs set` (count changes, vfio-pci/kernel driver switches, errors).
#
# Contract under test:
#   sriov-agent inventory -o json
#     {"schemaVersion":1,"pfs":[{"pciAddress","vendorId","deviceId","driver","netdev","numaNode",
#       "totalVfs","numVfs","vfs":[{"pciAddress","vfIndex","driver","iommuGroup","vfioDevice",
#       "netdev"}]}]}   ids: lowercase hex without 0x; numaNode null for -1; netdev null when the
#       device has no netdev in the caller's netns.
#   sriov-agent vfs set <PF netdev or PCI address> <count> [--driver vfio-pci|kernel]
#     exit 0 on success; exit 1 with a one-line error on stderr naming the PF and the reason.
# vm: pfs=1 timeout=300
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

AGENT=$BIN_DIR/sriov-agent
[ -x "$AGENT" ] || fatal "sriov-agent not found at $AGENT (on the host: cargo build -p sriov-agent, or pass run-all.sh --bin-dir DIR)"
PF=$(igb_pfs | head -n 1)
[ -n "$PF" ] || fatal "no PCI device bound to igb"
DEV=/sys/bus/pci/devices/$PF
PFNET=$(pci_netdev "$PF")
INV=/tmp/inventory.json
log "PF $PF netdev $PFNET; agent $AGENT"

# Run the inventory (in netns $1 when given) into $INV; fails on a bad exit or non-JSON output.
inventory() {
	local rc
	if [ $# = 1 ]; then
		ip netns exec "$1" "$AGENT" inventory -o json >"$INV"
	else
		"$AGENT" inventory -o json >"$INV"
	fi
	rc=$?
	[ "$rc" = 0 ] || { echo "sriov-agent inventory exited $rc"; return 1; }
	# A cheap sanity check; the json_end that follows fails every check on invalid JSON.
	[ "$(head -c 1 "$INV")" = "{" ] || { echo "not a JSON object: $(head -c 2000 "$INV")"; return 1; }
}
PFJ=".pfs[] | select(.pciAddress == \"$PF\")"
vfj() { echo "$PFJ | .vfs[] | select(.vfIndex == $1)"; }

# Every VF of the inventory matches sysfs: address of virtfnN, driver, IOMMU group, netdev,
# and the /dev/vfio node when bound to vfio-pci. Adds to the current json_begin batch.
json_vfs_match_sysfs() { # count driver
	local n=$1 drv=$2 i vf grp nd want_nd want_vfio
	json_check "inventory: numVfs is $n" "$PFJ | .numVfs == $n"
	json_check "inventory: $n VFs with indexes 0..$((n - 1))" "[$PFJ | .vfs[].vfIndex] | sort == [range(0; $n)]"
	for ((i = 0; i < n; i++)); do
		vf=$(vf_pci "$PF" "$i")
		grp=$(pci_iommu_group "$vf")
		nd=$(pci_netdev "$vf")
		if [ -n "$nd" ]; then want_nd="\"$nd\""; else want_nd=null; fi
		if [ "$drv" = vfio-pci ]; then want_vfio="\"/dev/vfio/$grp\""; else want_vfio=null; fi
		json_check "inventory: VF $i = $vf, $drv, group $grp, netdev ${nd:-none}" \
			"$(vfj "$i") | .pciAddress == \"$vf\" and .driver == \"$drv\"
				and (.iommuGroup | tostring) == \"$grp\" and .vfioDevice == $want_vfio
				and .netdev == $want_nd"
	done
}
# Inventory now, then check that it matches sysfs with COUNT VFs on DRIVER.
check_inventory_matches() { # count driver
	check "inventory" inventory
	json_begin "$INV"
	json_vfs_match_sysfs "$1" "$2"
	json_end
}

# Runs `sriov-agent ARGS...` expecting exit 1 and one stderr line matching each ERE given
# after "--"; usage: expect_refusal NAME ARGS... -- ERE...
expect_refusal() {
	local name=$1 args=() rc
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	"$AGENT" "${args[@]}" >/tmp/agent.out 2>/tmp/agent.err
	rc=$?
	check_eq "$name: exit status 1" 1 echo "$rc"
	check_eq "$name: one line on stderr" 1 bash -c 'wc -l </tmp/agent.err'
	local re
	for re in "$@"; do
		check "$name: stderr matches /$re/" grep -qiE -- "$re" /tmp/agent.err
	done
	log "stderr: $(cat /tmp/agent.err)"
}

# ---------------------------------------------------------------------------------------------
log "discovery with no VFs"
check "inventory -o json" inventory
json_begin "$INV"
json_check "schemaVersion is 1" '.schemaVersion == 1'
json_check "exactly one PF (the igb; virtio devices have no SR-IOV)" '.pfs | length == 1'
json_check "PF $PF listed" "[$PFJ] | length == 1"
json_check "PF ids are lowercase hex without 0x" "$PFJ | .vendorId == \"8086\" and .deviceId == \"10c9\""
json_check "PF driver igb, netdev $PFNET" "$PFJ | .driver == \"igb\" and .netdev == \"$PFNET\""
json_check "PF numaNode null (sysfs numa_node is $(cat "$DEV/numa_node"))" "$PFJ | .numaNode == null"
json_check "PF totalVfs 7, numVfs 0, no VFs" "$PFJ | .totalVfs == 7 and .numVfs == 0 and .vfs == []"
json_end

# ---------------------------------------------------------------------------------------------
log "vfs set: 0 -> 4 -> 7 (the tool goes through 0 itself)"
check "vfs set $PFNET 4" "$AGENT" vfs set "$PFNET" 4
check_eq "sysfs sriov_numvfs is 4" 4 cat "$DEV/sriov_numvfs"
check_inventory_matches 4 igbvf
check "vfs set $PFNET 7 (4 -> 7)" "$AGENT" vfs set "$PFNET" 7
check_eq "sysfs sriov_numvfs is 7" 7 cat "$DEV/sriov_numvfs"
check_inventory_matches 7 igbvf

log "vfs set: refusals"
expect_refusal "8 VFs (above totalVfs 7)" vfs set "$PFNET" 8 -- "$PFNET|$PF" "total|maximum|exceed|at most|\b7\b"
check_eq "sysfs sriov_numvfs still 7 after the refusal" 7 cat "$DEV/sriov_numvfs"
expect_refusal "unknown PF" vfs set nosuchpf0 2 -- "nosuchpf0"
check_eq "sysfs sriov_numvfs still 7 after the unknown PF" 7 cat "$DEV/sriov_numvfs"

# ---------------------------------------------------------------------------------------------
log "driver switch: vfio-pci and back (PF named by PCI address)"
check "vfs set $PF 3 --driver vfio-pci" "$AGENT" vfs set "$PF" 3 --driver vfio-pci
check_eq "sysfs sriov_numvfs is 3" 3 cat "$DEV/sriov_numvfs"
for i in 0 1 2; do
	vf=$(vf_pci "$PF" "$i")
	check_eq "VF $i bound to vfio-pci" vfio-pci pci_driver "$vf"
	check "VF $i: /dev/vfio/$(pci_iommu_group "$vf") exists" test -c "/dev/vfio/$(pci_iommu_group "$vf")"
done
check_inventory_matches 3 vfio-pci
check "vfs set $PF 3 --driver kernel" "$AGENT" vfs set "$PF" 3 --driver kernel
for i in 0 1 2; do
	vf=$(vf_pci "$PF" "$i")
	check_eq "VF $i back on igbvf" igbvf pci_driver "$vf"
	check "VF $i has a netdev again" pci_has_netdev "$vf"
done
check_inventory_matches 3 igbvf

# ---------------------------------------------------------------------------------------------
log "netdev is per netns"
VF0=$(vf_pci "$PF" 0)
VF0NET=$(pci_netdev "$VF0")
ip netns add inv
check "move VF 0 netdev $VF0NET into netns inv" ip link set "$VF0NET" netns inv
check "inventory (root netns)" inventory
json_begin "$INV"
json_check "root netns: VF 0 netdev null once moved away" "$(vfj 0) | .netdev == null"
json_check "root netns: PF netdev still $PFNET" "$PFJ | .netdev == \"$PFNET\""
json_end
check "inventory (netns inv)" inventory inv
json_begin "$INV"
json_check "netns inv: VF 0 netdev $VF0NET" "$(vfj 0) | .netdev == \"$VF0NET\""
json_check "netns inv: PF netdev null" "$PFJ | .netdev == null"
json_end
ip -n inv link set "$VF0NET" netns 1
ip netns del inv

# ---------------------------------------------------------------------------------------------
log "vfs set to 0"
check "vfs set $PFNET 0" "$AGENT" vfs set "$PFNET" 0
check_eq "sysfs sriov_numvfs is 0" 0 cat "$DEV/sriov_numvfs"
check "inventory" inventory
check_json "no VFs left" "$PFJ | .numVfs == 0 and .vfs == []" "$INV"
finish
