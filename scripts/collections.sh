#!/usr/bin/env bash
# Unpack the collections vpsnet uses from the PyPI 'ansible' wheel, since
# Galaxy is unreachable. Pinned to the release that matches ansible-core 2.19.
set -euo pipefail
venv=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$top/.cache/collections"
ansible_release=12.3.0
wanted=(ansible/posix community/docker community/general)
stamp="$dest/.ansible-$ansible_release"
[ -e "$stamp" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download -q --no-deps -d "$tmp" "ansible==$ansible_release"
rm -rf "$dest"
mkdir -p "$dest/ansible_collections"
globs=()
for c in "${wanted[@]}"; do globs+=("ansible_collections/$c/*"); done
(cd "$tmp" && "$venv/bin/python" -m zipfile -e ansible-*.whl x >/dev/null)
for c in "${wanted[@]}"; do
	mkdir -p "$dest/ansible_collections/$(dirname "$c")"
	cp -a "$tmp/x/ansible_collections/$c" "$dest/ansible_collections/$c"
done
touch "$stamp"
