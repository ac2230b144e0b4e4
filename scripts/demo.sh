#!/usr/bin/env bash
# The main job end to end on the built-in lab: build the packages (vpsnet
# 1.0.0 and 1.1.0 among them) into a signed repository, boot the default
# fleet (2 clouds x 2 regions), provision it with 1.0.0 (facts -> repo ->
# driver -> tune -> exporter), roll 1.1.0 out with the canary deploy.yml, print
# the summary, and tear everything down (also on failure or Ctrl-C).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH="$top/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$top/.cache/collections"
spec=${VPSNET_DEMO_SPEC:-lab/specs/default.yml}
state="$top/.cache/lab-demo"
report="$top/.cache/demo-rollout-report"
lab() { vpsnet-lab --state "$state" "$@"; }
# playbooks under Mitogen: one Python per guest, not one per task (TCG)
eval "$(vpsnet-lab ansible-env)"
server=""
cleanup() {
	[ -z "$server" ] || kill "$server" 2>/dev/null || true
	lab down
}
trap cleanup EXIT
lab down
echo "== packages and the signed repository (1.0.0, 1.1.0, ...; cached by content hash)"
repo=$(python molecule/rollout/builds.py)
python -m http.server --bind 127.0.0.1 10322 -d "$repo" >/dev/null 2>&1 &
server=$!
echo "== building guest images (cached by content hash)"
lab image build --kernel all
echo "== booting the lab fleet from $spec"
start=$(date +%s)
lab up "$spec"
echo "   fleet up in $(( $(date +%s) - start ))s"
lab status
echo "== what each guest says it is (DMI + metadata service, read over SSH)"
lab identify
echo "== Ansible inventory: inventories/lab/hosts.yml (+ group_vars/all.yml)"
echo "== provision.yml: every host on vpsnet 1.0.0"
ansible-playbook -i inventories/lab/hosts.yml provision.yml -e vpsnet_version=1.0.0
echo "== deploy.yml: canary rollout of 1.1.0, region by region"
rm -rf "$report"
ansible-playbook -i inventories/lab/hosts.yml deploy.yml -e vpsnet_version=1.1.0 \
	-e vpsnet_upgrade_report_dir="$report"
echo "== rollout summary ($report/summary.json)"
python - "$report/summary.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    print(f"{r['host']:<12} {r['region']:<11} {r['outcome']:<9} {r['before']} -> {r['after']}"
          f"  ABI {r['abi_verdict']:<9} {r['health']}  {r['seconds']} s")
PY
echo "== tearing down"
