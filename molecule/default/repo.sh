#!/usr/bin/env bash
# A private copy of the signed repository for the molecule containers
# (file:///srv/vpsnet-repo), from the packages in dist/ (built if missing),
# so that the shared dist/repo/ is never rewritten by a test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
version=$(cat "$top/VERSION")
dist="$top/.cache/molecule/dist"
want=("vpsnet-dkms_${version}_all.deb" "vpsnet-tools_${version}_all.deb"
	"vpsnet-dkms-${version}-1.noarch.rpm" "vpsnet-tools-${version}-1.noarch.rpm")
for f in "${want[@]}"; do
	[ -e "$top/dist/$f" ] || { make -s -C "$top/packaging" packages >&2; break; }
done
stamp=$(cd "$top/dist" && sha256sum "${want[@]}" | sha256sum | cut -c1-16)
[ -e "$dist/repo/.stamp-$stamp" ] && { echo "cached $dist/repo"; exit 0; }
rm -rf "$dist"
mkdir -p "$dist"
for f in "${want[@]}"; do cp "$top/dist/$f" "$dist/"; done
gnupghome=${VPSNET_GNUPGHOME:-$top/.cache/signing-gnupg}
bash "$top/packaging/scripts/mkrepo.sh" "$dist" "$gnupghome" file:///srv/vpsnet-repo bookworm >&2
touch "$dist/repo/.stamp-$stamp"
echo "built $dist/repo"
