"""Bad input fails before anything changes: real ansible-playbook runs in check
mode against localhost, each failing at the validation step with a message that
names the bad value, with changed=0 in the recap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from testlib.vpsnet_facts_helpers import ansible_env

BIN = Path(sys.executable).parent

PLAY = """\
- hosts: localhost
  gather_facts: true
  vars:
    vpsnet_cloud: {{nics: []}}
  roles:
    - role: {role}
"""


@pytest.mark.parametrize(
    ("role", "extra", "needle"),
    [
        ("vpsnet_tune", "vpsnet_tune_rtt_ms=-5", "vpsnet_tune_rtt_ms=-5"),
        ("vpsnet_tune", '{"vpsnet_tune_reserved_cpus": [4096]}', "CPU(s) 4096 do not exist"),
        (
            "vpsnet_tune",
            '{"vpsnet_tune_nic_profiles": {"eth0": "turbo"}}',
            "'turbo' is not a known NIC profile",
        ),
        (
            "vpsnet_tune",
            "vpsnet_tune_hugepages_1g=100000",
            "more than vpsnet_tune_hugepages_max_percent",
        ),
        (
            "vpsnet_tune",
            "vpsnet_tune_fq_maxrate_mbit=57 vpsnet_tune_default_qdisc=fq_codel",
            "vpsnet_tune_fq_maxrate_mbit=57 needs vpsnet_tune_default_qdisc=fq",
        ),
        (
            "vpsnet_driver",
            "vpsnet_driver_version=latest",
            "vpsnet_driver_version='latest' is not a version",
        ),
        (
            "vpsnet_driver",
            "vpsnet_driver_interval_ms=5",
            "vpsnet_driver_interval_ms=5 is outside 100..60000",
        ),
    ],
)
def test_bad_input_fails_in_check_mode_without_change(
    tmp_path: Path, role: str, extra: str, needle: str
) -> None:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(role=role))
    env = ansible_env(tmp_path)
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "--check",
            "--diff",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            extra,
            str(play),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert needle in out, out
    assert "changed=0" in out and "failed=1" in out, out
