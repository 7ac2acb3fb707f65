#!/usr/bin/env bash
# Build the guest of the real-kernel SR-IOV test tier: a Debian kernel (booted as a PVH
# `vmlinux`) and a small initramfs (busybox + bash + iproute2 + kmod + ethtool + pciutils + jq,
# and the CNI `static` IPAM plugin), made from Debian packages only. Also installs QEMU >= 8.1
# (bookworm-backports) when missing.
#
# Usage: tests/vm/build-guest.sh [--cache DIR] [--kernel PKG[=VERSION]] [--refresh] [--quiet]
#
# The result lives in the cache dir (default ${SRIOV_VM_CACHE:-/var/cache/sriov-suite-vm}):
#   packages.lock     exact Debian package=version used (kernel first); reused until --refresh
#   debs/             the downloaded .debs
#   kernel-<hash>/    vmlinux, vmlinuz, config, the pruned module tree
#   guest-<hash>/     vmlinux (hard link), initramfs.cpio, manifest.txt
#   current           symlink to the newest guest-<hash>; run.sh boots what it points to
# Every step is keyed on a hash of its inputs; an up-to-date cache costs a few milliseconds.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/build-guest.sh"
INIT_SRC="$HERE/initramfs/init"

# Bump when the kernel stage (vmlinux extraction, module selection) changes meaning.
KERNEL_STAGE_VERSION=1

# Userland packages; their shared-library closure is checked after assembly (see check_needed).
USERLAND_PKGS=(
	busybox-static bash iproute2 kmod ethtool pciutils pci.ids jq
	libc6 libgcc-s1 libtinfo6 libbpf1 libelf1 zlib1g libmnl0 libbsd0 libmd0 libcap2
	libxtables12 libjq1 libonig5 libpci3 libudev1 libkmod2 liblzma5 libzstd1 libssl3
	containernetworking-plugins
)

# Modules in the guest (with their dependencies and softdeps, resolved by kmod).
MODULES=(
	virtio_pci 9pnet_virtio 9p
	igb igbvf vfio-pci vfio_iommu_type1
	8021q veth bridge macvlan ipvlan dummy tun vxlan
)
# shellcheck disable=SC2206 # word splitting of the env list is intended
MODULES+=(${SRIOV_VM_EXTRA_MODULES:-})

QUIET=0
REFRESH=0
KERNEL_REQ=${SRIOV_VM_KERNEL:-}
CACHE=${SRIOV_VM_CACHE:-}

say() { [ "$QUIET" = 1 ] || printf 'build-guest: %s\n' "$*" >&2; }
die() {
	printf 'build-guest: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,15p' "$SELF" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--cache) CACHE=$2; shift 2 ;;
	--cache=*) CACHE=${1#*=}; shift ;;
	--kernel) KERNEL_REQ=$2; shift 2 ;;
	--kernel=*) KERNEL_REQ=${1#*=}; shift ;;
	--refresh) REFRESH=1; shift ;;
	--quiet | -q) QUIET=1; shift ;;
	-h | --help) usage 0 ;;
	*) printf 'build-guest: unknown argument: %s\n' "$1" >&2; usage 2 ;;
	esac
done

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# shellcheck source=common.sh
. "$HERE/common.sh"
[ -n "$CACHE" ] || CACHE=$(vm_cache_dir)
mkdir -p "$CACHE" || die "cannot create cache dir $CACHE"
CACHE=$(cd "$CACHE" && pwd)

sha() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------------------------------------
# apt helpers

APT_UPDATED=0
apt_update_once() {
	[ "$APT_UPDATED" = 1 ] && return 0
	[ "$IS_ROOT" = 1 ] || die "apt lists need an update (apt-get update), which needs root"
	say "apt-get update"
	apt-get -o DPkg::Lock::Timeout=600 -qq update >&2 || die "apt-get update failed"
	APT_UPDATED=1
}

os_codename() { (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}"); }

# qemu-system-x86_64 version as an integer major*100+minor, 0 when absent.
qemu_version() {
	local major minor
	read -r major minor < <(qemu-system-x86_64 --version 2>/dev/null |
		sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
	echo $((${major:-0} * 100 + ${minor:-0}))
}

ensure_qemu() {
	local v
	v=$(qemu_version)
	[ "$v" -ge 801 ] && return 0
	[ "$IS_ROOT" = 1 ] || die "qemu-system-x86_64 >= 8.1 is needed (found version code $v); as root, rerun this script to install it from Debian"
	local codename target=()
	codename=$(os_codename)
	if [ "$codename" = bookworm ]; then
		# bookworm has QEMU 7.2; igb SR-IOV needs 8.1+, so take QEMU from bookworm-backports.
		# Backports has priority 100 (NotAutomatic): nothing else on the machine moves to it.
		if ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
			say "enabling bookworm-backports in /etc/apt/sources.list.d/bookworm-backports.sources"
			cat >/etc/apt/sources.list.d/bookworm-backports.sources <<-'EOF'
				Types: deb
				URIs: http://deb.debian.org/debian
				Suites: bookworm-backports
				Components: main
				Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
			EOF
		fi
		target=(-t bookworm-backports)
	fi
	apt_update_once
	say "installing qemu-system-x86 ${target[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y \
		--no-install-recommends "${target[@]}" qemu-system-x86 >"$CACHE/apt-install.log" 2>&1; then
		tail -n 30 "$CACHE/apt-install.log" >&2
		die "apt-get install qemu-system-x86 failed (log: $CACHE/apt-install.log)"
	fi
	v=$(qemu_version)
	[ "$v" -ge 801 ] || die "installed QEMU is still older than 8.1 ($v)"
}

# Candidate versions of the given packages, as "pkg=version" lines (dies on a missing one).
candidates() {
	local out
	out=$(apt-cache policy "$@" 2>/dev/null | awk '
		/^[^ ].*:$/ { sub(/:$/, ""); pkg = $0 }
		/^  Candidate:/ { print pkg "=" $2 }')
	local p
	for p in "$@"; do
		if ! grep -q "^$p=" <<<"$out" || grep -q "^$p=(none)" <<<"$out"; then
			return 1
		fi
	done
	printf '%s\n' "$out"
}

# The kernel package: SRIOV_VM_KERNEL/--kernel, else what linux-image-amd64 depends on.
resolve_kernel() {
	local req=$KERNEL_REQ pkg ver
	if [ -z "$req" ]; then
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
		[ -n "$pkg" ] || return 1
		req=$pkg
	fi
	if [[ $req == *=* ]]; then
		echo "$req"
	else
		candidates "$req" || return 1
	fi
}

resolve_lock() {
	local kernel userland spec
	if ! kernel=$(resolve_kernel) || ! userland=$(candidates "${USERLAND_PKGS[@]}"); then
		apt_update_once
		kernel=$(resolve_kernel) || die "cannot resolve the kernel package (${KERNEL_REQ:-linux-image-amd64})"
		userland=$(candidates "${USERLAND_PKGS[@]}") || die "cannot resolve ${USERLAND_PKGS[*]}"
	fi
	{
		echo "# Debian packages of the SR-IOV test guest; written by build-guest.sh."
		echo "# Reused until 'build-guest.sh --refresh' (or a different --kernel/SRIOV_VM_KERNEL)."
		echo "kernel $kernel"
		while read -r spec; do echo "userland $spec"; done <<<"$userland"
	} >"$CACHE/packages.lock.tmp"
	mv "$CACHE/packages.lock.tmp" "$CACHE/packages.lock"
	say "resolved $kernel and ${#USERLAND_PKGS[@]} userland packages"
}

# Does the lock match what is asked for (same kernel request, same userland package names)?
lock_matches_request() {
	local lock=$CACHE/packages.lock
	[ -f "$lock" ] || return 1
	local names want
	names=$(awk '$1 == "userland" { split($2, a, "="); print a[1] }' "$lock" | sort)
	want=$(printf '%s\n' "${USERLAND_PKGS[@]}" | sort)
	[ "$names" = "$want" ] || return 1
	if [ -n "$KERNEL_REQ" ]; then
		local k
		k=$(awk '$1 == "kernel" { print $2 }' "$lock")
		[ "$k" = "$KERNEL_REQ" ] || [ "${k%%=*}" = "$KERNEL_REQ" ] || return 1
	fi
	return 0
}

# File name apt-get download gives a package=version (epoch colon escaped as %3a).
deb_path() {
	local pkg=${1%%=*} ver=${1#*=} arch f
	for arch in amd64 all; do
		f="$CACHE/debs/${pkg}_${ver//:/%3a}_${arch}.deb"
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

download_debs() {
	local missing=() spec
	while read -r spec; do
		deb_path "$spec" >/dev/null || missing+=("$spec")
	done < <(awk '$1 == "kernel" || $1 == "userland" { print $2 }' "$CACHE/packages.lock")
	[ ${#missing[@]} -eq 0 ] && return 0
	mkdir -p "$CACHE/debs"
	local dl
	dl=$(mktemp -d "$CACHE/debs/.dl.XXXXXX")
	# apt drops privileges to _apt for downloads; let it write here to avoid a warning.
	if [ "$IS_ROOT" = 1 ] && id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
	say "downloading ${#missing[@]} package(s): ${missing[*]}"
	if ! (cd "$dl" && apt-get -qq download "${missing[@]}" >&2); then
		if [ "$IS_ROOT" = 1 ] && [ "$APT_UPDATED" = 0 ]; then
			apt_update_once
			(cd "$dl" && apt-get -qq download "${missing[@]}" >&2) ||
				die "apt-get download failed (versions gone from the mirror? try --refresh)"
		else
			rm -rf "$dl"
			die "apt-get download failed (versions gone from the mirror? try --refresh)"
		fi
	fi
	mv "$dl"/*.deb "$CACHE/debs/"
	rm -rf "$dl"
	for spec in "${missing[@]}"; do
		deb_path "$spec" >/dev/null || die "downloaded, but no .deb found for $spec"
	done
}

# ---------------------------------------------------------------------------------------------
# staged tools: the userland packages unpacked in the work dir, run with their own loader

PKGROOT=
unpack_userland() {
	[ -n "$PKGROOT" ] && return 0
	PKGROOT=$WORK/pkgroot
	rm -rf "$PKGROOT"
	mkdir -p "$PKGROOT"
	local spec
	while read -r spec; do
		dpkg-deb -x "$(deb_path "$spec")" "$PKGROOT"
	done < <(awk '$1 == "userland" { print $2 }' "$CACHE/packages.lock")
}

staged_ldso() {
	"$PKGROOT/lib64/ld-linux-x86-64.so.2" \
		--library-path "$PKGROOT/lib/x86_64-linux-gnu:$PKGROOT/usr/lib/x86_64-linux-gnu" "$@"
}
# kmod is a multi-call binary: its applet comes from argv[0].
staged_kmod() {
	local applet=$1
	shift
	staged_ldso --argv0 "$applet" "$PKGROOT/bin/kmod" "$@"
}
staged_busybox() { "$PKGROOT/bin/busybox" "$@"; }

# ---------------------------------------------------------------------------------------------
# kernel stage: vmlinux + pruned modules

# Decompress the bzImage payload into an ELF vmlinux (what scripts/extract-vmlinux does, but
# reading the payload offset and length from the x86 boot header instead of scanning for magic).
extract_vmlinux() {
	local bz=$1 out=$2 setup_sects off len magic
	setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
	read -r off len < <(od -An -tu4 -j $((0x248)) -N8 "$bz")
	off=$(((setup_sects + 1) * 512 + off))
	dd if="$bz" of="$out.payload" bs=64K iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
	magic=$(od -An -tx1 -N6 "$out.payload" | tr -d ' \n')
	local dec
	case $magic in
	fd377a585a00*) dec="xz -dc --single-stream" ;;
	1f8b*) dec="gzip -dc" ;;
	28b52ffd*) dec="zstd -dcq" ;;
	5d0000*) dec="xz -dc --format=lzma" ;;
	425a68*) dec="bzip2 -dc" ;;
	*) die "unknown kernel payload compression (magic $magic) in $bz" ;;
	esac
	local tool=${dec%% *}
	if ! command -v "$tool" >/dev/null; then
		case $tool in
		xz) dec="staged_busybox unxz -c" ;;
		gzip) dec="staged_busybox gunzip -c" ;;
		bzip2) dec="staged_busybox bunzip2 -c" ;;
		*) die "$tool is needed to unpack the kernel (apt-get install ${tool})" ;;
		esac
	fi
	# The payload ends with the 4-byte decompressed size; decompressors may complain about it.
	$dec <"$out.payload" >"$out" 2>/dev/null || true
	local want have
	want=$(tail -c 4 "$out.payload" | od -An -tu4 | tr -d ' ')
	have=$(stat -c %s "$out")
	rm -f "$out.payload"
	[ "$(od -An -tx1 -N4 "$out" | tr -d ' \n')" = 7f454c46 ] || die "extracted vmlinux is not ELF"
	[ "$want" = "$have" ] || die "extracted vmlinux has $have bytes, header says $want"
}

build_kernel() {
	local dir=$1 deb kdir kver
	deb=$(deb_path "$(awk '$1 == "kernel" { print $2 }' "$CACHE/packages.lock")")
	say "building kernel stage from $(basename "$deb")"
	kdir=$WORK/kernel-deb
	rm -rf "$kdir" "$dir.tmp"
	mkdir -p "$kdir" "$dir.tmp"
	dpkg-deb -x "$deb" "$kdir"
	local bz
	bz=$(echo "$kdir"/boot/vmlinuz-*)
	[ -f "$bz" ] || die "no /boot/vmlinuz-* in $deb"
	kver=${bz##*/vmlinuz-}
	cp "$bz" "$dir.tmp/vmlinuz"
	cp "$kdir/boot/config-$kver" "$dir.tmp/config"
	echo "$kver" >"$dir.tmp/release"
	if grep -q '^CONFIG_PVH=y' "$dir.tmp/config"; then
		extract_vmlinux "$bz" "$dir.tmp/vmlinux"
	else
		say "kernel has no CONFIG_PVH: run.sh will boot the bzImage (slower)"
	fi
	# The .deb has no modules.dep (its postinst runs depmod); make one to resolve dependencies.
	unpack_userland
	staged_kmod depmod -b "$kdir" "$kver"
	local m list
	list=$(for m in "${MODULES[@]}"; do
		staged_kmod modprobe -d "$kdir" -S "$kver" -C /dev/null -D "$m" ||
			die "module $m not found in $kver"
	done | awk '$1 == "insmod" { print $2 }' | sort -u)
	local src rel
	while read -r src; do
		rel=${src#"$kdir"/}
		mkdir -p "$dir.tmp/modules/$(dirname "$rel")"
		cp "$src" "$dir.tmp/modules/$rel"
	done <<<"$list"
	cp "$kdir/lib/modules/$kver"/modules.{builtin,builtin.modinfo,order} "$dir.tmp/modules/lib/modules/$kver/"
	staged_kmod depmod -b "$dir.tmp/modules" "$kver"
	rm -rf "$kdir"
	touch "$dir.tmp/.ok"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	say "kernel $kver: $(wc -l <<<"$list") modules"
}

# ---------------------------------------------------------------------------------------------
# initramfs stage

# Append one newc cpio entry with no data (a directory or device node) to stdout.
cpio_node() { # name mode(octal) rdevmajor rdevminor
	local name=$1 mode=$2 maj=$3 min=$4 nlen hdr pad
	nlen=$((${#name} + 1))
	hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		0 $((8#$mode)) 0 0 1 0 0 0 0 "$maj" "$min" "$nlen" 0)
	pad=$(((4 - (110 + nlen) % 4) % 4))
	printf '%s%s\0' "$hdr" "$name"
	head -c "$pad" /dev/zero
}

# Every ELF under the rootfs must find its shared libraries in the rootfs.
check_needed() {
	local root=$1 f lib incomplete=0
	if ! command -v readelf >/dev/null; then
		say "readelf (binutils) not found: skipping the shared-library closure check"
		return 0
	fi
	while read -r f; do
		while read -r lib; do
			[ -e "$root/usr/lib/x86_64-linux-gnu/$lib" ] || [ -e "$root/usr/lib64/$lib" ] || {
				printf 'build-guest: %s needs %s, which is not in the initramfs\n' "${f#"$root"}" "$lib" >&2
				incomplete=1
			}
		done < <(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	done < <(find "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib/x86_64-linux-gnu" -type f)
	[ "$incomplete" = 0 ] || die "shared-library closure incomplete: add the package to USERLAND_PKGS"
}

build_initramfs() {
	local dir=$1 kdir=$2 root kver
	kver=$(cat "$kdir/release")
	say "building initramfs for $kver"
	unpack_userland
	root=$WORK/rootfs
	rm -rf "$root" "$dir.tmp"
	mkdir -p "$dir.tmp" "$root"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64,share/misc} \
		"$root"/{dev,proc,sys,run,tmp,root,mnt/host,mnt/out,etc}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	mkdir -p "$root/var"
	ln -s ../run "$root/var/run"
	chmod 1777 "$root/tmp"

	local p=$PKGROOT
	# Executables (merged-/usr layout: /bin and /sbin are links into /usr).
	cp -a "$p/bin/bash" "$p/bin/busybox" "$p/bin/kmod" "$root/usr/bin/"
	cp -a "$p/bin/ip" "$p/sbin/bridge" "$p/sbin/tc" "$p/sbin/devlink" "$p/sbin/ethtool" "$root/usr/sbin/"
	cp -a "$p/usr/bin/lspci" "$p/usr/bin/setpci" "$p/usr/bin/jq" "$root/usr/bin/"
	local a
	for a in modprobe insmod rmmod lsmod modinfo depmod; do ln -s ../bin/kmod "$root/usr/sbin/$a"; done
	ln -s bash "$root/usr/bin/sh"
	# Busybox for everything else; real tools above win (busybox's ip has no 'vf' support).
	for a in $(staged_busybox --list); do
		case $a in sh | ash | busybox | linuxrc | init) continue ;; esac
		[ -e "$root/usr/bin/$a" ] || [ -e "$root/usr/sbin/$a" ] || [ -L "$root/usr/sbin/$a" ] ||
			ln -s busybox "$root/usr/bin/$a"
	done
	# Libraries: everything the library packages ship, minus what a guest never needs.
	cp -a "$p"/lib/x86_64-linux-gnu/. "$p"/usr/lib/x86_64-linux-gnu/. "$root/usr/lib/x86_64-linux-gnu/"
	rm -rf "$root/usr/lib/x86_64-linux-gnu"/{gconv,engines-3,ossl-modules,tc,audit,perl*}
	cp -a "$p/lib64/ld-linux-x86-64.so.2" "$root/usr/lib64/"
	cp -a "$p/usr/share/misc/pci.ids" "$root/usr/share/misc/"
	# The reference `static` IPAM plugin (Go, needs only libc), for CNI plugins' IPAM delegation.
	mkdir -p "$root/usr/lib/cni"
	cp -a "$p/usr/lib/cni/static" "$root/usr/lib/cni/"
	cp -a "$p/etc/iproute2" "$root/etc/"
	check_needed "$root"

	# Kernel modules.
	mkdir -p "$root/usr/lib/modules"
	cp -a "$kdir/modules/lib/modules/$kver" "$root/usr/lib/modules/"

	# Minimal /etc.
	printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files\n' >"$root/etc/nsswitch.conf"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
	printf 'sriov-vm\n' >"$root/etc/hostname"
	: >"$root/etc/fstab"

	install -m 0755 "$INIT_SRC" "$root/init"

	# Manifest: what this guest is made of.
	{
		echo "kernel-release $kver"
		awk '$1 == "kernel" || $1 == "userland"' "$CACHE/packages.lock"
		echo "modules ${MODULES[*]}"
		echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	} >"$dir.tmp/manifest.txt"
	cp "$dir.tmp/manifest.txt" "$root/etc/sriov-vm-manifest"

	# Archive: device nodes first (so the kernel has /dev/console before /init runs, even when
	# this build is not root), then the tree with root ownership, uncompressed (boots faster).
	{
		cpio_node dev 040755 0 0
		cpio_node dev/console 020600 5 1
		cpio_node dev/null 020666 1 3
		printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0\0\0\0' \
			0 0 0 0 1 0 0 0 0 0 0 11 0 'TRAILER!!!'
		(cd "$root" && find . -mindepth 1 ! -path ./dev | LC_ALL=C sort |
			staged_busybox cpio -o -H newc -R 0:0 2>/dev/null)
	} >"$dir.tmp/initramfs.cpio"

	# The vmlinux (or bzImage) this initramfs belongs to, linked so a guest dir is self-contained.
	local k
	for k in vmlinux vmlinuz release; do
		[ -f "$kdir/$k" ] || continue
		ln "$kdir/$k" "$dir.tmp/$k" 2>/dev/null || cp "$kdir/$k" "$dir.tmp/$k"
	done
	touch "$dir.tmp/.ok"
	rm -rf "$dir" "$root"
	mv "$dir.tmp" "$dir"
	say "initramfs: $(du -h "$dir/initramfs.cpio" | cut -f1)"
}

# ---------------------------------------------------------------------------------------------
# hashes of each stage's inputs

kernel_key() {
	{
		echo "v$KERNEL_STAGE_VERSION"
		awk '$1 == "kernel" { print $2 }' "$CACHE/packages.lock"
		printf '%s\n' "${MODULES[@]}"
	} | sha
}
guest_key() {
	{
		echo "$1"
		awk '$1 == "userland" { print $2 }' "$CACHE/packages.lock"
		cat "$INIT_SRC" "$SELF"
	} | sha
}

up_to_date() {
	[ "$REFRESH" = 0 ] && lock_matches_request || return 1
	local kk gk
	kk=$(kernel_key)
	gk=$(guest_key "$kk")
	[ -f "$CACHE/kernel-$kk/.ok" ] && [ -f "$CACHE/guest-$gk/.ok" ] &&
		[ "$(readlink "$CACHE/current")" = "guest-$gk" ]
}

# ---------------------------------------------------------------------------------------------

ensure_qemu

if up_to_date; then
	say "guest up to date: $(readlink -f "$CACHE/current")"
	exit 0
fi

# One builder at a time; run.sh never needs this lock (it boots an immutable guest-<hash> dir).
exec 9>"$CACHE/.lock"
flock 9
if up_to_date; then
	say "guest up to date: $(readlink -f "$CACHE/current")"
	exit 0
fi

WORK=$(mktemp -d "$CACHE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ "$REFRESH" = 1 ] || ! lock_matches_request; then
	resolve_lock
fi
download_debs

KK=$(kernel_key)
GK=$(guest_key "$KK")
[ -f "$CACHE/kernel-$KK/.ok" ] || build_kernel "$CACHE/kernel-$KK"
[ -f "$CACHE/guest-$GK/.ok" ] || build_initramfs "$CACHE/guest-$GK" "$CACHE/kernel-$KK"
ln -sfn "guest-$GK" "$CACHE/current.tmp"
mv -T "$CACHE/current.tmp" "$CACHE/current"

# Keep the current guest and kernel plus the previous guest (a run may be starting from it).
prune() {
	local keep_prefix=$1 keep=$2 d
	# shellcheck disable=SC2012 # names are our own hex hashes
	for d in $(ls -1dt "$CACHE/$keep_prefix"-* 2>/dev/null | tail -n +$((keep + 1))); do
		rm -rf "$d"
	done
}
prune guest 2
find "$CACHE" -maxdepth 1 -name 'kernel-*' ! -name "kernel-$KK" -exec rm -rf {} +
# .debs no longer in the lock
for f in "$CACHE"/debs/*.deb; do
	[ -e "$f" ] || continue
	keep=0
	while read -r spec; do [ "$(deb_path "$spec")" = "$f" ] && keep=1 && break; done \
		< <(awk '$1 == "kernel" || $1 == "userland" { print $2 }' "$CACHE/packages.lock")
	[ "$keep" = 1 ] || rm -f "$f"
done
say "guest ready: $CACHE/guest-$GK"
