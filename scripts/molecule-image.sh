#!/usr/bin/env bash
# Build (once) the base image for the molecule docker scenarios: Debian
# bookworm minbase from debootstrap plus what the roles need, `docker import`ed
# and tagged by a hash of this script (its package list and files are the
# only inputs). Prints the image reference on stdout; quiet when cached.
# Usage: scripts/molecule-image.sh [--print-tag]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
suite=bookworm
mirror=http://deb.debian.org/debian
packages=(
	python3 python3-apt python3-requests systemd systemd-sysv udev dbus iproute2 kmod
	procps ethtool irqbalance dkms make gcc libc6-dev
	python3-prometheus-client python3-pyelftools gpgv
	# the execution environment built on this image reaches hosts over ssh
	openssh-client
)
repo_name=vpsnet-molecule
tag=$(sha256sum "$0" | cut -c1-16)
image="$repo_name:$tag"
[ "${1:-}" = --print-tag ] && { echo "$image"; exit 0; }

bash "$top/scripts/dockerd.sh" >&2
if docker image inspect "$image" >/dev/null 2>&1; then
	echo "$image"; exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "molecule-image.sh: must run as root (debootstrap)" >&2; exit 1; }
cache="$top/.cache/molecule"
mkdir -p "$cache"
log="$cache/image-$tag.log"
# One builder at a time (parallel pytest sessions, two scenarios).
exec 9>"$cache/image.lock"
flock 9
if docker image inspect "$image" >/dev/null 2>&1; then
	echo "$image"; exit 0
fi
tmp=$(mktemp -d "$cache/rootfs-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
echo "molecule-image.sh: debootstrap $suite for $image (log: $log)" >&2
include=$(IFS=,; echo "${packages[*]}")
debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" >"$log" 2>&1 \
	|| { tail -n 30 "$log" >&2; exit 1; }
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
# No network in the containers: nothing should try to reach a mirror.
: >"$root/etc/apt/sources.list"
printf 'container=docker\n' >"$root/etc/vpsnet-molecule"
# Units that cannot work without a kernel of their own or a network.
for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	getty@tty1.service systemd-networkd.service systemd-resolved.service \
	systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done
# Init wrapper: make this container's own network namespace sysctls
# (/proc/sys/net) writable, and nothing else (vm.*, kernel.* and /proc/irq
# stay read-only: they are the host's), then hand over to systemd.
cat >"$root/usr/local/sbin/vpsnet-container-init" <<'INIT'
#!/bin/sh
mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net \
	|| echo "vpsnet-container-init: /proc/sys/net stays read-only" >&2
exec /lib/systemd/systemd "$@"
INIT
chmod 0755 "$root/usr/local/sbin/vpsnet-container-init"
tar -C "$root" --numeric-owner -c . | docker import \
	--change 'CMD ["/usr/local/sbin/vpsnet-container-init"]' \
	--change 'ENV container=docker' - "$image" >/dev/null
echo "$image"
