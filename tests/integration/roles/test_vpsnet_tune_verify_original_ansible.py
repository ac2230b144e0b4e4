"""vpsnet_tune's record of the host's own values (tasks/original.yml) run by a real
ansible-playbook against localhost in container scope (only sysctls: nothing of this
machine's NICs is touched, and /proc/sys is only read), into a temporary directory, with
vpsnet-tune installed into another: the request reaches vpsnet-tune intact, and a second
run records nothing."""

from __future__ import annotations

import json
from pathlib import Path

from .test_vpsnet_tune_verify_ansible import play

ORIGINAL_PLAY = """\
- hosts: all
  gather_facts: false
  vars:
    __vpsnet_tune_scope: container
    vpsnet_cloud: {nics: []}
    vpsnet_tune_sysctl_extra: {net.ipv4.tcp_fin_timeout: 30, kernel.pid_max: 65536}
  tasks:
    - name: The record tasks
      ansible.builtin.include_role:
        name: vpsnet_tune
        tasks_from: original
"""


def test_first_run_records_the_namespace_sysctls_then_never_again(tmp_path: Path) -> None:
    record, lib = tmp_path / "record", tmp_path / "lib"
    argv = ("-e", f"__vpsnet_tune_original_dir={record}", "-e", f"__vpsnet_tune_lib_dir={lib}")
    rc, out = play(tmp_path, ORIGINAL_PLAY, *argv, check=False)
    # three changes: the tools' directory, the tools in it (run from there), the record
    assert rc == 0 and "changed=3" in out, out
    assert (lib / "vpsnet-tune").exists() and (lib / "vpsnet_nic.py").exists()
    saved = json.loads((record / "original.json").read_text())
    live = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    # container scope: the namespace's own keys only (the extra ones are host-wide)
    assert saved["sysctls"]["net.core.somaxconn"] == live
    assert "net.core.rmem_max" not in saved["sysctls"] and "kernel.pid_max" not in saved["sysctls"]
    assert saved["nics"] == [] and saved["irqbalance"]["path"] is None
    rc, out = play(tmp_path, ORIGINAL_PLAY, *argv, check=False)
    assert rc == 0 and "changed=0" in out, out
