# shellcheck shell=bash
# Shared by build-guest.sh, run.sh and run-all.sh (sourced, not executed).

# The guest cache dir: $SRIOV_VM_CACHE, else /var/cache/sriov-suite-vm when it is (or can be made)
# writable, else ~/.cache/sriov-suite-vm (non-root users).
vm_cache_dir() {
	if [ -n "${SRIOV_VM_CACHE:-}" ]; then
		echo "$SRIOV_VM_CACHE"
	elif { mkdir -p /var/cache/sriov-suite-vm 2>/dev/null && [ -w /var/cache/sriov-suite-vm ]; }; then
		echo /var/cache/sriov-suite-vm
	else
		echo "${XDG_CACHE_HOME:-$HOME/.cache}/sriov-suite-vm"
	fi
}
