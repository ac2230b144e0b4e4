#!/usr/bin/env bash
# Build the vpsnet.fleet collection tarball (vpsnet-fleet-VERSION.tar.gz) into the
# directory given (make collection: dist/). VERSION is the one release number:
# galaxy.yml's version must equal it. The file list is galaxy.yml's build_ignore.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/dist}")
release=$(tr -d '[:space:]' < "$top/VERSION")
galaxy=$(sed -n 's/^version:[[:space:]]*//p' "$top/galaxy.yml" | tr -d "\"'[:space:]")
if [ "$galaxy" != "$release" ]; then
    echo "galaxy.yml version '$galaxy' differs from VERSION '$release': set galaxy.yml's version to $release" >&2
    exit 1
fi
mkdir -p "$out"
cd "$top"
ansible-galaxy collection build --force --output-path "$out" . >/dev/null
tarball="$out/vpsnet-fleet-$release.tar.gz"
echo "$tarball: $(tar -tzf "$tarball" | grep -vc '/$') files, $(du -k "$tarball" | cut -f1) KiB"
