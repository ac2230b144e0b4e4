#!/usr/bin/env bash
# Unpack the collections requirements.yml names from the PyPI 'ansible' wheel,
# since Galaxy is unreachable; each one's version must be the wheel's. Pinned to
# the release that matches ansible-core 2.19. Re-unpacks when requirements.yml
# changes. Keeps ansible_collections/vpsnet (setup.sh links the checkout there).
set -euo pipefail
venv=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$top/.cache/collections"
requirements="$top/requirements.yml"
ansible_release=12.3.0
digest=$({ echo "$ansible_release"; cat "$requirements"; } | sha256sum | cut -c1-16)
stamp="$dest/.ansible-$ansible_release-$digest"
[ -e "$stamp" ] && exit 0
# "namespace/name version" per collection, from requirements.yml's collections list
mapfile -t wanted < <("$venv/bin/python" - "$requirements" <<'EOF'
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    doc = yaml.safe_load(f)
for entry in doc["collections"]:
    namespace, name = entry["name"].split(".")
    print(f"{namespace}/{name} {entry['version']}")
EOF
)
[ ${#wanted[@]} -gt 0 ] || { echo "collections.sh: no collections in $requirements" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download -q --no-deps -d "$tmp" "ansible==$ansible_release"
(cd "$tmp" && "$venv/bin/python" -m zipfile -e ansible-*.whl x >/dev/null)
for line in "${wanted[@]}"; do
	read -r c version <<<"$line"
	manifest="$tmp/x/ansible_collections/$c/MANIFEST.json"
	[ -f "$manifest" ] || { echo "collections.sh: ${c/\//.} is not in ansible $ansible_release" >&2; exit 1; }
	have=$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$manifest")
	[ "$have" = "$version" ] || {
		echo "collections.sh: requirements.yml wants ${c/\//.} $version, ansible $ansible_release has $have" >&2; exit 1; }
done
mkdir -p "$dest/ansible_collections"
rm -f "$dest"/.ansible-*
for ns in "$dest"/ansible_collections/*; do
	[ "$(basename "$ns")" = vpsnet ] || rm -rf "$ns"
done
for line in "${wanted[@]}"; do
	read -r c _ <<<"$line"
	mkdir -p "$dest/ansible_collections/$(dirname "$c")"
	cp -a "$tmp/x/ansible_collections/$c" "$dest/ansible_collections/$c"
done
touch "$stamp"
