"""vpsnet_exporter refuses, before anything changes, a host whose systemd (PID 1)
lacks CAP_SYS_PTRACE while ProtectProc= would hide /proc from the PrivateUsers=
set-up (every start would fail with 217/USER). A real ansible-playbook run in
check mode against localhost, with PID 1's /proc status replaced."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from testlib.vpsnet_facts_helpers import ansible_env

BIN = Path(sys.executable).parent
PLAY = "- hosts: localhost\n  gather_facts: true\n  roles:\n    - role: vpsnet_exporter\n"
# A docker container's PID 1 with SYS_ADMIN and NET_ADMIN added: no CAP_SYS_PTRACE (bit 19).
NO_PTRACE = "Name:\tsystemd\nCapEff:\t00000000a82435fb\n"


def test_missing_cap_sys_ptrace_fails_before_any_change(tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    status = base64.b64encode(NO_PTRACE.encode()).decode()
    fake = {"__vpsnet_exporter_pid1_status": {"content": status}}
    env = ansible_env(tmp_path)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "--check",
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(fake), str(play)],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "has no CAP_SYS_PTRACE" in out and "vpsnet_exporter_protect_proc: default" in out, out
    assert "changed=0" in out and "failed=1" in out, out
    assert "Install the vpsnet-tools package" not in out, out
