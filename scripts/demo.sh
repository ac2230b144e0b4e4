#!/usr/bin/env bash
# The main job end to end on the built-in lab: build the guest images, boot
# the default fleet, show its inventory and what each guest says it is, and
# tear everything down again (also on failure or Ctrl-C).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH="$top/.venv/bin:$PATH"
spec=${VPSNET_DEMO_SPEC:-lab/specs/default.yml}
state="$top/.cache/lab-demo"
lab() { vpsnet-lab --state "$state" "$@"; }

trap 'lab down' EXIT
lab down
echo "== building guest images (cached by content hash)"
lab image build --kernel all
echo "== booting the lab fleet from $spec"
start=$(date +%s)
lab up "$spec"
echo "   fleet up in $(( $(date +%s) - start ))s"
echo "== fleet"
lab status
echo "== Ansible inventory (inventories/lab/hosts.yml)"
cat inventories/lab/hosts.yml
echo "== what each guest says it is (DMI + metadata service, read over SSH)"
lab identify
echo "== what vpsnet detects (ansible-playbook deploy.yml: the vpsnet_facts role)"
ANSIBLE_COLLECTIONS_PATH="$top/.cache/collections" ansible-playbook -i inventories/lab/hosts.yml deploy.yml
echo "== tearing down"
