#!/usr/bin/env bash
# Build the execution environment image vpsnet-ee:<hash> from
# execution-environment.yml with ansible-builder and docker, offline: the base
# is scripts/molecule-image.sh's Debian 12 image, the collections are staged
# tarballs, every Python package comes from a wheelhouse made here on the host.
# The tag is a hash of the inputs (definition, ee/ files, this script, the base
# image, each collection's MANIFEST.json); skipped when that image exists.
# Prints the image reference on stdout; quiet when cached.
# Usage: scripts/ee-build.sh [VPSNET_FLEET_TARBALL]   (default: build one)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
self="$top/scripts/ee-build.sh"
fleet_tarball=${1:+$(realpath "$1")}
cd "$top"
export PATH="$top/.venv/bin:$PATH"
python="$top/.venv/bin/python"
definition=execution-environment.yml
installed_collections="$top/.cache/collections/ansible_collections"
stage="$top/.cache/ee"

base=$(bash scripts/molecule-image.sh | tail -n 1)
mkdir -p "$stage"
# One build at a time: the staging area and the build context are shared.
exec 9>"$stage/lock"
flock 9

# 1. The collections, as the files execution-environment.yml names.
rm -rf "$stage/collections" "$stage/dist"
mkdir -p "$stage/collections"
if [ -z "$fleet_tarball" ]; then
	bash scripts/build-collection.sh "$stage/dist" >/dev/null
	fleet_tarball=$(ls "$stage"/dist/vpsnet-fleet-*.tar.gz)
fi
while read -r kind namespace name; do
	out="$stage/collections/$namespace-$name"
	if [ "$namespace.$name" = vpsnet.fleet ]; then
		cp "$fleet_tarball" "$out.tar.gz"
		continue
	fi
	src="$installed_collections/$namespace/$name"
	[ "$kind" = dir ] && [ -f "$src/MANIFEST.json" ] || {
		echo "ee-build.sh: $namespace.$name: no unpacked collection at $src (scripts/collections.sh unpacks requirements.yml)" >&2
		exit 1
	}
	cp -a "$src" "$out"
	find "$out" -name __pycache__ -prune -exec rm -rf {} +
done < <("$python" ee/ee_definition.py collections)

# Every file that goes into the image, by content: the tarball by its
# MANIFEST.json (it holds FILES.json's checksum), the unpacked ones file by file.
key=$({
	echo "$base"
	cat "$definition" ee/*.txt ee/*.py "$self"
	cd "$stage/collections"
	tar -xzOf vpsnet-fleet.tar.gz MANIFEST.json
	find . -mindepth 2 -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16)
image="vpsnet-ee:$key"
if docker image inspect "$image" >/dev/null 2>&1; then
	echo "$image"
	exit 0
fi

# 2. The wheelhouse: the Python requirements the image's build will compute
# (ansible-builder's own introspection over the same collections), plus
# ansible-core, ansible-runner and what the build stages install.
echo "ee-build.sh: wheelhouse for $image" >&2
rm -rf "$stage/installed" "$stage/wheelhouse"
# (installed here as the image's galaxy stage will, with nothing else in sight)
"$python" ee/ee_definition.py galaxy-requirements >"$stage/galaxy-requirements.yml"
(cd "$stage" && ANSIBLE_COLLECTIONS_PATH="$stage/installed" ansible-galaxy collection install \
	--offline -p "$stage/installed" -r galaxy-requirements.yml) >"$stage/installed.log" 2>&1 \
	|| { tail -n 20 "$stage/installed.log" >&2; exit 1; }
"$python" ee/ee_definition.py python-excludes >"$stage/exclude-requirements.txt"
ansible-builder introspect --user-pip ee/requirements.txt \
	--exclude-pip-reqs "$stage/exclude-requirements.txt" \
	--write-pip "$stage/requirements.txt" "$stage/installed" >/dev/null
mapfile -t pins < <("$python" ee/ee_definition.py pip-pins)
pip wheel -w "$stage/wheelhouse" -r "$stage/requirements.txt" \
	-r ee/build-requirements.txt "${pins[@]}" >"$stage/wheelhouse.log" 2>&1 \
	|| { tail -n 20 "$stage/wheelhouse.log" >&2; exit 1; }

# 3. The image.
docker tag "$base" vpsnet-ee-base:bookworm
rm -rf "$stage/context"
log="$stage/build-$key.log"
echo "ee-build.sh: ansible-builder build $image (log: $log)" >&2
start=$(date +%s)
ansible-builder build -f "$definition" -c "$stage/context" --container-runtime docker \
	-t "$image" -t vpsnet-ee:latest -v 3 >"$log" 2>&1 \
	|| { tail -n 40 "$log" >&2; exit 1; }
seconds=$(($(date +%s) - start))
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "built $image in $seconds s, $((size / 1000000)) MB" | tee -a "$log" >&2
echo "$image"
