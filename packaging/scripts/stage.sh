#!/bin/bash
# Stage the vpsnet source tree that both the deb and the rpm are built from:
#   <stage>/VERSION, driver-src/, tools/, packaging/ (dkms.conf, udev rule),
#   debian/ (changelog and version-bearing files generated from VERSION).
# Usage: stage.sh VERSION DRIVER_SRC TOOLS_SRC PACKAGING_DIR STAGE_DIR
set -euo pipefail

version=$1 driver_src=$2 tools_src=$3 pkgdir=$4 stage=$5

die() { echo "stage.sh: $*" >&2; exit 1; }
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([~+.][0-9A-Za-z.~+]*)?$ ]] ||
	die "VERSION '$version' is not of the form X.Y.Z"
[ -f "$driver_src/Makefile" ] || die "$driver_src/Makefile is missing (no module source to package)"
[ -f "$tools_src/pyproject.toml" ] || die "$tools_src/pyproject.toml is missing (no tools to package)"

# Copy a source directory. Inside the git tree: its tracked files plus new
# files git does not ignore (so kbuild output, generated compat headers that
# the driver ignores and editor droppings never end up in a package). Outside
# git (test stand-ins): every file except kbuild output and dotfiles.
copy_tree() {
	local src=$1 dst=$2
	mkdir -p "$dst"
	if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$src" && git ls-files -z --cached --others --exclude-standard -- . |
			while IFS= read -r -d '' f; do
				case "/$f" in */.*) continue ;; esac # dotfiles: VCS and build state
				[ -f "$f" ] && printf '%s\0' "$f"
			done |
			cpio -0 -pdm --quiet "$dst")
	else
		(cd "$src" && find . -type f ! -name '.*' \
			! -name '*.o' ! -name '*.ko' ! -name '*.mod' ! -name '*.mod.c' ! -name '*.cmd' \
			! -name 'modules.order' ! -name 'Module.symvers' ! -path '*/__pycache__/*' \
			! -path '*.egg-info/*' ! -path './build/*' -print0 |
			cpio -0 -pdm --quiet "$dst")
	fi
	[ -n "$(ls -A "$dst")" ] || die "no files to package in $src"
}

rm -rf "$stage"
mkdir -p "$stage"
printf '%s\n' "$version" >"$stage/VERSION"

copy_tree "$driver_src" "$stage/driver-src"
printf '%s\n' "$version" >"$stage/driver-src/VERSION"

copy_tree "$tools_src" "$stage/tools"
# The tools' version comes from VERSION too (and bookworm's setuptools must
# be able to build them): see pin-tools-version.py.
/usr/bin/python3 "$pkgdir/scripts/pin-tools-version.py" "$stage/tools" "$version"

mkdir -p "$stage/packaging"
sed "s/@VERSION@/$version/g" "$pkgdir/dkms.conf.in" >"$stage/packaging/dkms.conf"
cp "$pkgdir/udev/60-vpsnet.rules" "$stage/packaging/60-vpsnet.rules"
cp "$pkgdir/systemd/vpsnet-exporter.service" "$stage/packaging/vpsnet-exporter.service"
cp "$pkgdir/scripts/install-wheel.py" "$stage/packaging/install-wheel.py"
# vpsnet-dkms's kernel hooks (before DKMS's own: README "Failure modes")
sed "s/@VERSION@/$version/g" "$pkgdir/kernel-hooks/kernel-hook.in" >"$stage/packaging/kernel-hook"
cp "$pkgdir/kernel-hooks/05vpsnet-dkms" "$pkgdir/kernel-hooks/39-vpsnet-dkms.install" "$stage/packaging/"
chmod 0755 "$stage/packaging/kernel-hook" "$stage/packaging/05vpsnet-dkms" "$stage/packaging/39-vpsnet-dkms.install"
cp /usr/share/common-licenses/GPL-2 "$stage/packaging/COPYING"
cp "$pkgdir/README.md" "$stage/packaging/README.md"

# Debian packaging
cp -a "$pkgdir/debian" "$stage/debian"
rm -f "$stage/debian"/*.in
cp "$stage/packaging/dkms.conf" "$stage/debian/vpsnet-dkms.dkms"
sed "s/@VERSION@/$version/g" "$pkgdir/debian/vpsnet-dkms.postinst.in" >"$stage/debian/vpsnet-dkms.postinst"
cp "$stage/packaging/60-vpsnet.rules" "$stage/debian/vpsnet-tools.vpsnet.udev"
cp "$stage/packaging/vpsnet-exporter.service" "$stage/debian/vpsnet-tools.vpsnet-exporter.service"
date=$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")
cat >"$stage/debian/changelog" <<CHANGELOG
vpsnet ($version) bookworm; urgency=medium

  * vpsnet $version (generated from the VERSION file by packaging/).

 -- vpsnet maintainers <vpsnet@example.org>  $date
CHANGELOG

# RPM spec
sed "s/@VERSION@/$version/g" "$pkgdir/rpm/vpsnet.spec.in" >"$stage/packaging/vpsnet.spec"
sed -i "s/@CHANGELOG_DATE@/$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" '+%a %b %d %Y')/" "$stage/packaging/vpsnet.spec"
echo "staged $stage"
