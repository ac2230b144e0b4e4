"""vpsnet_tune's IPv6 sysctls (tasks/sysctl_ipv6.yml) run by a real ansible-playbook
on localhost: with /proc/sys/net/ipv6 present every key stays; with it absent
(a kernel booted with ipv6.disable=1) the net.ipv6.* keys are left out with a
note, the rest untouched, and nothing fails. Also the role's defaults and
input check for vpsnet_tune_icmpv6_ratelimit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from testlib.vpsnet_facts_helpers import REPO, ansible_env

BIN = Path(sys.executable).parent

PLAY = """\
- hosts: localhost
  gather_facts: false
  vars:
    __vpsnet_tune_proc_ipv6: {proc}
    __vpsnet_tune_sysctls_all:
      net.core.somaxconn: 4096
      net.ipv4.icmp_ratelimit: 1000
      net.ipv6.icmp.ratelimit: 250
      net.ipv6.conf.all.forwarding: 0
  tasks:
    - name: The IPv6 sysctl tasks
      ansible.builtin.include_tasks: {tasks}
    - name: Show the result
      ansible.builtin.debug:
        msg: "RESULT {{{{ __vpsnet_tune_sysctls_all | to_json }}}}"
"""


def run(tmp_path: Path, proc: Path, check: bool) -> tuple[str, dict[str, int]]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(proc=proc, tasks=REPO / "roles/vpsnet_tune/tasks/sysctl_ipv6.yml"))
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", str(play)]
    if check:
        argv[1:1] = ["--check", "--diff"]
    out = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(tmp_path),
                         timeout=300, check=False, cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    line = next(ln for ln in text.splitlines() if "RESULT {" in ln)
    result = json.loads(line[line.index("RESULT ") + 7:].rstrip('"').replace('\\"', '"'))
    return text, result


@pytest.mark.parametrize("check", [False, True])
def test_kernel_with_ipv6_keeps_the_ipv6_keys(tmp_path: Path, check: bool) -> None:
    proc = tmp_path / "ipv6"
    proc.mkdir()
    out, result = run(tmp_path, proc, check)
    assert result["net.ipv6.icmp.ratelimit"] == 250
    assert "net.ipv6.conf.all.forwarding" in result
    assert "is absent" not in out
    assert "changed=0" in out and "failed=0" in out


@pytest.mark.parametrize("check", [False, True])
def test_kernel_without_ipv6_leaves_them_out_with_a_note(tmp_path: Path, check: bool) -> None:
    out, result = run(tmp_path, tmp_path / "no-such-ipv6", check)
    assert result == {"net.core.somaxconn": 4096, "net.ipv4.icmp_ratelimit": 1000}
    assert ("is absent (IPv6 disabled on the kernel command line): not written: "
            "net.ipv6.conf.all.forwarding, net.ipv6.icmp.ratelimit") in " ".join(out.split())
    assert "failed=0" in out


def test_defaults_specs_and_checks_agree() -> None:
    role = REPO / "roles/vpsnet_tune"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert defaults["vpsnet_tune_icmpv6_ratelimit"] == 1000
    assert options["vpsnet_tune_icmpv6_ratelimit"]["default"] == 1000
    assert "name: vpsnet_tune_icmpv6_ratelimit" in (role / "tasks/validate.yml").read_text()
    role_vars = yaml.safe_load((role / "vars/main.yml").read_text())
    netns = role_vars["__vpsnet_tune_netns_keys"]
    assert "net.ipv6.icmp.ratelimit" in netns  # per network namespace: written in containers
    # the map sysctl.yml writes (and original.yml records the keys of)
    base = role_vars["__vpsnet_tune_sysctls_base"]
    assert base["net.ipv6.icmp.ratelimit"] == "{{ vpsnet_tune_icmpv6_ratelimit }}"
