"""vpsnet_tune's per-NIC ethtool tasks (tasks/ethtool_nic.yml) run by a real
ansible-playbook against localhost with a fake `ethtool` on PATH: a NIC that
already matches its profile changes nothing and does not trip the read-back
check (the read-back task is skipped then);
one that differs is set, read back and checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from testlib.vpsnet_facts_helpers import REPO, ansible_env

BIN = Path(sys.executable).parent

PLAY = """\
- hosts: localhost
  gather_facts: false
  vars:
    ansible_facts: {{processor_vcpus: 2}}
    __vpsnet_tune_nic: {{key: eth1, value: virtio_net}}
  tasks:
    - name: The per-NIC ethtool tasks
      ansible.builtin.include_tasks: {tasks}
"""

FAKE_ETHTOOL = """\
#!/bin/sh
# Fake ethtool: channels kept in $STATE, rings and coalescing fixed.
state="{state}"
case "$1" in
  -l) cur=$(cat "$state")
      printf 'Channel parameters for %s:\\nPre-set maximums:\\nRX:\\t\\tn/a\\nTX:\\t\\tn/a\\n' "$2"
      printf 'Other:\\t\\tn/a\\nCombined:\\t4\\nCurrent hardware settings:\\nRX:\\t\\tn/a\\n'
      printf 'TX:\\t\\tn/a\\nOther:\\t\\tn/a\\nCombined:\\t%s\\n' "$cur" ;;
  -g) printf 'Ring parameters for %s:\\nPre-set maximums:\\nRX:\\t\\t256\\nTX:\\t\\t256\\n' "$2"
      printf 'Current hardware settings:\\nRX:\\t\\t256\\nTX:\\t\\t256\\n' ;;
  -c) printf 'Coalesce parameters for %s:\\nAdaptive RX: n/a  TX: n/a\\n' "$2" ;;
  -L) echo "$4" > "$state" ;;
  *) exit 1 ;;
esac
"""


def run_play(tmp_path: Path, combined: int, check: bool) -> tuple[str, str]:
    fake = tmp_path / "bin"
    fake.mkdir()
    state = tmp_path / "combined"
    state.write_text(f"{combined}\n")
    (fake / "ethtool").write_text(FAKE_ETHTOOL.format(state=state))
    (fake / "ethtool").chmod(0o755)
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(tasks=REPO / "roles/vpsnet_tune/tasks/ethtool_nic.yml"))
    env = ansible_env(tmp_path, prepend_path=fake)
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", str(play)]
    if check:
        argv[1:1] = ["--check", "--diff"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300,
                          check=False, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out, state.read_text().strip()


@pytest.mark.parametrize("check", [False, True])
def test_nic_already_on_its_profile_changes_nothing(tmp_path: Path, check: bool) -> None:
    out, combined = run_play(tmp_path, combined=2, check=check)
    assert "changed=0" in out and "failed=0" in out, out
    assert combined == "2"


def test_nic_off_its_profile_is_set_and_read_back(tmp_path: Path) -> None:
    out, combined = run_play(tmp_path, combined=4, check=False)
    assert combined == "2", out  # virtio_net profile: min(vCPUs, max)
    assert "changed=1" in out and "failed=0" in out, out


def test_nic_off_its_profile_in_check_mode(tmp_path: Path) -> None:
    """Check mode sets nothing (ethtool runs through ansible.builtin.command, which
    skips in check mode) and the skipped read-back does not fail the check."""
    out, combined = run_play(tmp_path, combined=4, check=True)
    assert combined == "4", out
    assert "failed=0" in out, out
