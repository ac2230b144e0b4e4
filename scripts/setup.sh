#!/usr/bin/env bash
# Idempotent host set-up: apt packages, kernels' headers, the Python venv and
# the Ansible collections. Quiet when everything is already in place.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache"
venv="$top/.venv"
mkdir -p "$cache"
log="$cache/setup.log"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup: %s\n' "$*"; }
run() { "$@" >>"$log" 2>&1 || { say "failed: $* (see $log)"; tail -n 30 "$log" >&2; exit 1; }; }

if [ "$(id -u)" -ne 0 ]; then
	say "must run as root (apt, QEMU networking, dockerd)"; exit 1
fi

apt_packages=(
	qemu-system-x86 qemu-utils debootstrap busybox-static iproute2 iptables
	openssh-client build-essential bc kmod dkms dh-dkms debhelper sparse
	python3 python3-venv python3-dev docker.io git rsync e2fsprogs
	rpm rpmlint createrepo-c dnf reprepro gnupg lintian
	prometheus iperf3 ethtool socat linux-source-6.12 pahole
	dh-python pybuild-plugin-pyproject python3-all python3-build python3-installer
	apt-utils dnf-plugins-core python3-prometheus-client python3-pyelftools python3-yaml
	# vpsnet-lab uefi-secureboot guests: firmware, ESP tools, Authenticode check
	ovmf sbsigntool dosfstools mtools gdisk
)

apt_updated_stamp="$cache/apt-updated"
apt_update_once() {
	if [ ! -e "$apt_updated_stamp" ] || [ -n "$(find "$apt_updated_stamp" -mmin +360)" ]; then
		run apt-get update -q
		touch "$apt_updated_stamp"
	fi
}

missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in "${apt_packages[@]}"; do installed "$p" || missing+=("$p"); done

apt_update_once_done=0
if [ ${#missing[@]} -gt 0 ]; then
	say "installing apt packages: ${missing[*]}"
	apt_update_once
	run apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The kernel matrix (packaging/kernels.yml): prebuilt modules are built for
# every ABI in it, so the build host needs each one's headers. Only releases
# whose headers and signed image are both on the mirror count (kernel-matrix.py).
matrix="$cache/kernel-matrix.txt"
if [ ! -s "$matrix" ] || [ -n "$(find "$matrix" -mmin +1440)" ] || [ "$top/packaging/kernels.yml" -nt "$matrix" ]; then
	apt_update_once
	"$top/packaging/scripts/kernel-matrix.py" >"$matrix.tmp" || { say "cannot resolve the kernel matrix (packaging/kernels.yml)"; exit 1; }
	mv "$matrix.tmp" "$matrix"
fi
# The lab's kernels: the newest of each series of the matrix (Debian 12's 6.1
# cloud kernel and the newest 6.12 one).
kernels_env="$cache/kernels.env"
if [ ! -s "$kernels_env" ] || [ "$matrix" -nt "$kernels_env" ]; then
	k61=$(awk '$1 == "6.1" {r = $2} END {print r}' "$matrix")
	k612=$(awk '$1 == "6.12" {r = $2} END {print r}' "$matrix")
	[ -n "$k61" ] && [ -n "$k612" ] || { say "the kernel matrix ($matrix) has no 6.1 or no 6.12 kernel"; exit 1; }
	printf 'VPSNET_KERNEL_6_1=%s\nVPSNET_KERNEL_6_12=%s\n' "$k61" "$k612" >"$kernels_env.tmp"
	mv "$kernels_env.tmp" "$kernels_env"
fi
# shellcheck disable=SC1090
. "$kernels_env"
hdrs=()
for k in "$VPSNET_KERNEL_6_1" "$VPSNET_KERNEL_6_12" $(awk '{print $2}' "$matrix"); do
	installed "linux-headers-$k" || hdrs+=("linux-headers-$k")
done
if [ ${#hdrs[@]} -gt 0 ]; then
	say "installing kernel headers: ${hdrs[*]}"
	apt_update_once
	run apt-get install -y -q --no-install-recommends "${hdrs[@]}"
fi

# Python venv with pinned tools.
req="$top/requirements.txt"
stamp="$venv/.req-$(sha256sum "$req" "$top/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
	say "creating Python venv in $venv"
	[ -x "$venv/bin/python" ] || run /usr/bin/python3 -m venv "$venv"
	run "$venv/bin/pip" install -q --upgrade pip
	run "$venv/bin/pip" install -q -r "$req"
	run "$venv/bin/pip" install -q --no-deps -e "$top"
	[ -f "$top/tools/pyproject.toml" ] && run "$venv/bin/pip" install -q --no-deps -e "$top/tools"
	rm -f "$venv"/.req-*
	touch "$stamp"
fi

# Collections from the PyPI 'ansible' wheel (Galaxy is unreachable).
"$top/scripts/collections.sh" "$venv" >>"$log" 2>&1 || { say "collections failed (see $log)"; exit 1; }
# This checkout is the vpsnet.fleet collection (galaxy.yml): ansible.cfg's
# collections_path finds it as vpsnet.fleet, so the roles' FQCN module and
# filter names resolve from a git checkout as from an installed collection.
mkdir -p "$cache/collections/ansible_collections/vpsnet"
ln -sfn "$top" "$cache/collections/ansible_collections/vpsnet/fleet"
