#!/bin/bash
# Real-kernel SR-IOV behaviour of the emulated Intel 82576 (QEMU -device igb) with the guest's
# igb/igbvf drivers: VF lifecycle through sysfs, per-VF settings through iproute2, netns moves,
# the VLAN-enforcing data path between VFs, and vfio-pci binding. It proves the VM tier works
# and records what a real kernel does, which our sysfs fakes and unit tests must match.
# vm: pfs=1 timeout=300
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

PF=$(igb_pfs | head -n 1)
[ -n "$PF" ] || fatal "no PCI device bound to igb (lspci: $(lspci -n | tr '\n' ';'))"
DEV=/sys/bus/pci/devices/$PF
PFNET=$(pci_netdev "$PF")
log "PF $PF netdev $PFNET, kernel $(uname -r)"

check_eq "PF is an Intel 82576 (8086:10c9)" 8086:10c9 pci_id "$PF"
check "PF has a netdev" test -n "$PFNET"
check_eq "sriov_totalvfs is 7 (igb caps the 8 the device offers)" 7 cat "$DEV/sriov_totalvfs"
check_eq "no VFs at boot" 0 cat "$DEV/sriov_numvfs"
check_eq "VF device id is 10ca" 10ca cat "$DEV/sriov_vf_device"

# ---------------------------------------------------------------------------------------------
log "VF lifecycle"
check "write 0 VFs" sysfs_write "$DEV/sriov_numvfs" 0
check_eq "sriov_numvfs reads 0" 0 cat "$DEV/sriov_numvfs"
check "write 4 VFs" sysfs_write "$DEV/sriov_numvfs" 4
check_eq "sriov_numvfs reads 4" 4 cat "$DEV/sriov_numvfs"
check "virtfn0..3 exist, virtfn4 does not" \
	bash -c "for i in 0 1 2 3; do test -L $DEV/virtfn\$i || exit 1; done; ! test -e $DEV/virtfn4"

# The VF routing id is PF rid + First VF Offset + i * VF Stride (PCIe SR-IOV capability).
offset=$(cat "$DEV/sriov_offset")
stride=$(cat "$DEV/sriov_stride")
IFS=':.' read -r dom bus slot fn <<<"$PF"
pf_rid=$(((16#$bus << 8) | (16#$slot << 3) | 16#$fn))
expected_vf_bdf() {
	local rid=$((pf_rid + offset + $1 * stride))
	printf '%s:%02x:%02x.%x\n' "$dom" $((rid >> 8)) $(((rid >> 3) & 31)) $((rid & 7))
}
VFS=()
for i in 0 1 2 3; do
	VFS[i]=$(vf_pci "$PF" "$i")
	check_eq "virtfn$i is at offset+$i*stride" "$(expected_vf_bdf "$i")" echo "${VFS[i]}"
	check_eq "VF $i physfn points to the PF" "$PF" \
		bash -c "basename \$(readlink /sys/bus/pci/devices/${VFS[i]}/physfn)"
	check_eq "VF $i is 8086:10ca" 8086:10ca pci_id "${VFS[i]}"
	check "VF $i is bound to igbvf" wait_for 10 pci_has_driver "${VFS[i]}" igbvf
	check "VF $i has a netdev" wait_for 10 pci_has_netdev "${VFS[i]}"
done
groups=$(for v in "${VFS[@]}"; do pci_iommu_group "$v"; done | sort -u | wc -l)
check_eq "each VF has its own IOMMU group" 4 echo "$groups"
check_eq "VF 0 is alone in its IOMMU group" 1 \
	bash -c "ls /sys/kernel/iommu_groups/$(pci_iommu_group "${VFS[0]}")/devices | wc -l"

check_fails "8 VFs (above sriov_totalvfs) is refused with ERANGE" "Numerical result out of range" \
	sysfs_write "$DEV/sriov_numvfs" 8
check_eq "the count is still 4 after ERANGE" 4 cat "$DEV/sriov_numvfs"
check_fails "4 -> 2 without going through 0 is refused with EBUSY" "Device or resource busy" \
	sysfs_write "$DEV/sriov_numvfs" 2
check_eq "the count is still 4 after EBUSY" 4 cat "$DEV/sriov_numvfs"

# ---------------------------------------------------------------------------------------------
log "per-VF settings through the PF (ndo_set_vf_*)"
ip link set "$PFNET" up
# Enabling SR-IOV re-initialises the PF and drops its link; VF rate limits need link up.
check "PF link is up" wait_for 20 carrier_up "$PFNET"
check "vf 0 mac accepted" ip link set "$PFNET" vf 0 mac 02:00:00:00:00:10
check "vf 0 vlan 10 qos 3 accepted" ip link set "$PFNET" vf 0 vlan 10 qos 3
check "vf 0 spoofchk off accepted" ip link set "$PFNET" vf 0 spoofchk off
check "vf 0 trust on accepted" ip link set "$PFNET" vf 0 trust on
check "vf 0 max_tx_rate 100 accepted (PF link up at 1000 Mb/s)" \
	ip link set "$PFNET" vf 0 max_tx_rate 100
check_fails "vf link-state is refused (EOPNOTSUPP: igb has no ndo_set_vf_link_state)" \
	"Operation not supported" ip link set "$PFNET" vf 0 state enable
check_fails "802.1ad VLAN protocol is refused (EPROTONOSUPPORT)" "Protocol not supported" \
	ip link set "$PFNET" vf 1 vlan 10 proto 802.1ad
check_fails "min_tx_rate is refused (EINVAL: igb only accepts 0)" "Invalid argument" \
	ip link set "$PFNET" vf 1 min_tx_rate 10
check "ip -d link show prints the vf 0 line" \
	bash -c "ip -d link show $PFNET | grep -E 'vf 0 .*02:00:00:00:00:10.*vlan 10, qos 3.*spoof checking off.*trust on'"
ip -j -d link show "$PFNET" >/tmp/pf.json
vf() { echo ".[0].vfinfo_list[] | select(.vf == $1)"; }
json_begin /tmp/pf.json
json_check "vf 0 mac shown" "$(vf 0) | .address == \"02:00:00:00:00:10\""
json_check "vf 0 vlan 10 qos 3 shown" "$(vf 0) | .vlan_list == [{\"vlan\": 10, \"qos\": 3}]"
json_check "vf 0 spoofchk shown off" "$(vf 0) | .spoofchk == false"
json_check "vf 0 trust shown on" "$(vf 0) | .trust == true"
json_check "vf 0 max_tx_rate 100 shown" "$(vf 0) | .rate.max_tx == 100"
json_check "vf 0 link-state still auto after the refusal" "$(vf 0) | .link_state == \"auto\""
json_check "vf 1 has no VLAN after the refused 802.1ad" "$(vf 1) | .vlan_list == [{}]"
json_check "vf 1 rates unchanged after the refused min_tx_rate" "$(vf 1) | .rate == {\"max_tx\": 0, \"min_tx\": 0}"
json_check "vf 1 otherwise untouched" "$(vf 1) | [.address, .spoofchk, .trust] == [\"00:00:00:00:00:00\", true, false]"
json_end
check "vf 0 max_tx_rate back to 0" ip link set "$PFNET" vf 0 max_tx_rate 0

# ---------------------------------------------------------------------------------------------
log "netns: move, rename, address, traffic between two VFs on the same PF"
VA=${VFS[2]}
VB=${VFS[3]}
NA=$(pci_netdev "$VA")
NB=$(pci_netdev "$VB")
ip netns add vfa
ip netns add vfb
check "vf 2 port VLAN 20" ip link set "$PFNET" vf 2 vlan 20
check "vf 3 port VLAN 20" ip link set "$PFNET" vf 3 vlan 20
check "move VF 2 netdev $NA into netns vfa" ip link set "$NA" netns vfa
check "move VF 3 netdev $NB into netns vfb" ip link set "$NB" netns vfb
check "VF 2 netdev gone from the root netns" test -z "$(pci_netdev "$VA")"
check "rename VF 2 to net1 in vfa" ip -n vfa link set "$NA" name net1
check "rename VF 3 to net1 in vfb" ip -n vfb link set "$NB" name net1
# shellcheck disable=SC2016 # expanded by the inner shell, inside the netns
check_eq "net1 in vfa resolves to VF 2's PCI address" "$VA" \
	ip netns exec vfa bash -c 'basename $(readlink /sys/class/net/net1/device)'
check "address 192.0.2.1/24 on vfa/net1" ip -n vfa addr add 192.0.2.1/24 dev net1
check "address 192.0.2.2/24 on vfb/net1" ip -n vfb addr add 192.0.2.2/24 dev net1
ip -n vfa link set net1 up
ip -n vfb link set net1 up
# igbvf reports carrier only after its watchdog talked to the PF over the mailbox (2-6 s).
check "vfa/net1 carrier" wait_for 20 carrier_up vfa net1
check "vfb/net1 carrier" wait_for 20 carrier_up vfb net1
check "ping vfa -> vfb on VLAN 20" wait_for 20 ip netns exec vfa ping -c 1 -W 1 192.0.2.2
check "3/3 pings vfa -> vfb on VLAN 20" ip netns exec vfa ping -c 3 -W 2 192.0.2.2
check "vf 3 port VLAN 30" ip link set "$PFNET" vf 3 vlan 30
check "ping vfa -> vfb blocked across VLANs 20/30" bash -c '! ip netns exec vfa ping -c 3 -W 1 192.0.2.2'
check "vf 3 port VLAN back to 20" ip link set "$PFNET" vf 3 vlan 20
check "ping vfa -> vfb works again on VLAN 20" wait_for 20 ip netns exec vfa ping -c 1 -W 1 192.0.2.2
check "move vfa/net1 back to the root netns" ip -n vfa link set net1 netns 1
check_eq "VF 2 netdev is back in the root netns as net1" net1 pci_netdev "$VA"
ip netns del vfa
ip netns del vfb

# ---------------------------------------------------------------------------------------------
log "vfio-pci"
V=${VFS[1]}
G=$(pci_iommu_group "$V")
check "bind VF 1 to vfio-pci (driver_override + drivers_probe)" pci_rebind "$V" vfio-pci
check_eq "VF 1 driver is vfio-pci" vfio-pci pci_driver "$V"
check "/dev/vfio/$G exists" test -c "/dev/vfio/$G"
check "VF 1 has no netdev under vfio-pci" test -z "$(pci_netdev "$V")"
check "back to igbvf (clear driver_override, reprobe)" pci_rebind "$V" ""
check_eq "VF 1 driver is igbvf" igbvf pci_driver "$V"
check "VF 1 netdev is back" wait_for 10 pci_has_netdev "$V"
check "/dev/vfio/$G is gone" wait_for 10 test ! -e "/dev/vfio/$G"

# ---------------------------------------------------------------------------------------------
log "teardown and autoprobe"
check "write 0 VFs" sysfs_write "$DEV/sriov_numvfs" 0
check "VF PCI devices are gone" bash -c "! ls -d /sys/bus/pci/devices/${VFS[0]} 2>/dev/null"
check "virtfn links are gone" bash -c "! ls -d $DEV/virtfn* 2>/dev/null"
check "sriov_drivers_autoprobe 0" sysfs_write "$DEV/sriov_drivers_autoprobe" 0
check "write 1 VF" sysfs_write "$DEV/sriov_numvfs" 1
check_eq "the new VF has no driver with autoprobe off" "" pci_driver "$(vf_pci "$PF" 0)"
check "write 0 VFs again" sysfs_write "$DEV/sriov_numvfs" 0
sysfs_write "$DEV/sriov_drivers_autoprobe" 1
finish
