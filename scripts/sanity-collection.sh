#!/usr/bin/env bash
# ansible-test sanity on the built vpsnet.fleet collection (make sanity): build the
# tarball, install it into TMP/ansible_collections/vpsnet/fleet (the layout ansible-test
# needs; outside this git checkout, whose ls-files would hide it), add tests/sanity/
# (kept out of the tarball), and run every sanity test in ansible-test's own virtual
# environments, installed from PyPI and kept in .cache/sanity.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/vpsnet-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
collection="$work/ansible_collections/vpsnet/fleet"
bash "$top/scripts/build-collection.sh" "$work/dist"
ansible-galaxy collection install --offline --no-deps --force -p "$work" \
    "$work"/dist/vpsnet-fleet-*.tar.gz >/dev/null
if [ -d "$top/tests/sanity" ]; then
    mkdir -p "$collection/tests" && cp -r "$top/tests/sanity" "$collection/tests/"
fi
# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from
# ci-files.testing.ansible.com, which is unreachable here; its cache gets a stand-in
# (ensurepip, then pip from PyPI), under a HOME of its own that also keeps the venvs.
export HOME="$top/.cache/sanity/home"
get_pip="$HOME/.ansible/test/cache/get_pip_24_2.py"
mkdir -p "$(dirname "$get_pip")"
cat > "$get_pip" <<'PY'
"""Stand-in for ansible-test's get-pip: ensurepip, then pip install the arguments
(pip==24.2) from PyPI; get-pip's own --no-setuptools/--no-wheel are dropped."""
import runpy
import subprocess
import sys

subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True,
               stdout=subprocess.DEVNULL)
sys.argv = ["pip", "install", *[a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
PY
cd "$collection"
ansible-test sanity --python 3.11 --venv --color no "$@"
