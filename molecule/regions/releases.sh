#!/usr/bin/env bash
# The signed file:// repository of the 12-region container rollout
# (tests/molecule/test_molecule_regions.py), printed as its path on stdout:
#   1.0.0  molecule/default's build (molecule/default/repo.sh), reused as is
#   1.1.0  the tree's sources packaged as 1.1.0 (a good release)
#   1.2.0  1.1.0 with patches/1.2.0-exporter-exits.patch: vpsnet-exporter exits
#          at start (--version still answers), so the container gate of any
#          host that ran the exporter fails and rolls it back
# Debian packages only for 1.1.0 and 1.2.0 (the containers are Debian; the dnf
# side carries 1.0.0 only). Rebuilt only when an input changes (a stamp of
# repo.sh's stamp, this script and the patch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
dist="$top/.cache/molecule-regions/dist"
base="$top/.cache/molecule/dist"
bash "$top/molecule/default/repo.sh" >&2
stamp=$( (ls "$base"/repo/.stamp-*; cat "$0" "$here"/patches/*.patch) | sha256sum | cut -c1-16)
[ -e "$dist/repo/.stamp-$stamp" ] && { echo "$dist/repo"; exit 0; }
rm -rf "$dist"
mkdir -p "$dist"
cp "$base"/*.deb "$base"/*.rpm "$dist/"
# stage.sh takes a source inside a git work tree with git ls-files: the patched
# copy of tools/ lives outside one.
tmp=$(mktemp -d /tmp/vpsnet-regions-src.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(cd "$top" && git ls-files -z --cached --others --exclude-standard -- tools) |
	(cd "$top" && xargs -0 cp --parents -t "$tmp")
patch -p1 --forward --batch -s -d "$tmp/tools" -i "$here/patches/1.2.0-exporter-exits.patch"
build() { # VERSION TOOLS_SRC
	env MAKEFLAGS= MAKELEVEL= make -s -C "$top/packaging" deb VERSION="$1" TOOLS_SRC="$2" \
		DIST="$tmp/build-$1" >&2
	cp "$tmp/build-$1"/*.deb "$dist/"
}
build 1.1.0 "$top/tools"
build 1.2.0 "$tmp/tools"
gnupghome=${VPSNET_GNUPGHOME:-$top/.cache/signing-gnupg}
bash "$top/packaging/scripts/mkrepo.sh" "$dist" "$gnupghome" file:///srv/vpsnet-repo bookworm >&2
touch "$dist/repo/.stamp-$stamp"
echo "$dist/repo"
