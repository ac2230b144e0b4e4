#!/usr/bin/env bash
# A private signed repository for the molecule containers (file:///srv/vpsnet-repo),
# with packages built here from the current sources, so that the containers
# always install what the tree holds (a dist/ left from an older tree would
# miss, for instance, vpsnet-exporter and its unit) and so that the shared
# dist/ and dist/repo/ are never rewritten by a test. Rebuilt only when the
# packaged sources (what packaging/scripts/stage.sh copies) change.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
version=$(cat "$top/VERSION")
dist="$top/.cache/molecule/dist"
want=("vpsnet-dkms_${version}_all.deb" "vpsnet-tools_${version}_all.deb"
	"vpsnet-dkms-${version}-1.noarch.rpm" "vpsnet-tools-${version}-1.noarch.rpm")
# The inputs: tracked and new (not ignored) files of the packaged trees.
stamp=$(cd "$top" && git ls-files -z --cached --others --exclude-standard -- \
	VERSION driver-src tools packaging |
	while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
	xargs -0 sha256sum | sha256sum | cut -c1-16)
[ -e "$dist/repo/.stamp-$stamp" ] && { echo "cached $dist/repo"; exit 0; }
rm -rf "$dist"
mkdir -p "$dist"
# Containers have no kernel of their own: no prebuilt modules (make kmods) needed.
make -s -C "$top/packaging" deb rpm DIST="$dist/build" >&2
for f in "${want[@]}"; do cp "$dist/build/$f" "$dist/"; done
rm -rf "$dist/build"
gnupghome=${VPSNET_GNUPGHOME:-$top/.cache/signing-gnupg}
bash "$top/packaging/scripts/mkrepo.sh" "$dist" "$gnupghome" file:///srv/vpsnet-repo bookworm >&2
touch "$dist/repo/.stamp-$stamp"
echo "built $dist/repo"
