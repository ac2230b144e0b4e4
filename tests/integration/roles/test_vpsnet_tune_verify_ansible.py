"""vpsnet_tune's plan record (tasks/record.yml, after tasks/ethtool_nic.yml computed
each NIC's target) run by a real ansible-playbook against localhost, in check mode
(nothing on this machine changes), with a fake `ethtool` on PATH: the plan file the
role writes is one vpsnet-tune verify reads, with the targets the role sets; a second
undo has nothing to do. The role parses (--syntax-check) with both states. The rest
of the undo: test_vpsnet_tune_verify_absent_ansible.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testlib.vpsnet_facts_helpers import REPO, ansible_env
from testlib.vpsnet_tune_helpers import vt

BIN = Path(sys.executable).parent

FAKE_ETHTOOL = """\
#!/bin/sh
case "$1" in
  -l) printf 'Pre-set maximums:\\nCombined:\\t4\\nCurrent hardware settings:\\nCombined:\\t2\\n';;
  -g) printf 'Pre-set maximums:\\nRX:\\t\\t1024\\nTX:\\t\\t1024\\n'
      printf 'Current hardware settings:\\nRX:\\t\\t256\\nTX:\\t\\t256\\n';;
  -c) printf 'Adaptive RX: off  TX: n/a\\n';;
  *) exit 1;;
esac
"""

RECORD_PLAY = """\
- hosts: all
  gather_facts: false
  vars:
    ansible_facts: {processor_vcpus: 2}
    __vpsnet_tune_scope: host
    __vpsnet_tune_plan: {profiles: {eth1: virtio_net, ens5: ena, eth9: none},
                         qdisc: fq maxrate 57mbit}
    vpsnet_cloud: {nics: [{name: eth1}, {name: ens5}, {name: eth9}]}
    __vpsnet_tune_sysctls: {net.core.somaxconn: 4096, net.ipv4.tcp_rmem: "4096 131072 33554432",
                            vm.nr_hugepages: 64}
    vpsnet_tune_hugepages_2m: 64
  tasks:
    - name: The NIC profile tasks (they collect each NIC's target; check mode sets none)
      ansible.builtin.include_role:
        name: vpsnet_tune
        tasks_from: ethtool_nic
      loop: "{{ __vpsnet_tune_plan.profiles | dict2items
                | rejectattr('value', 'equalto', 'none') }}"
      loop_control:
        loop_var: __vpsnet_tune_nic
    - name: The record tasks
      ansible.builtin.include_role:
        name: vpsnet_tune
        tasks_from: record
"""

ABSENT_PLAY = """\
- hosts: all
  gather_facts: false
  vars:
    ansible_facts: {virtualization_role: host, virtualization_type: kvm}
    vpsnet_tune_scope: host
  tasks:
    - name: The undo tasks
      ansible.builtin.include_role:
        name: vpsnet_tune
        tasks_from: absent
"""


def play(tmp_path: Path, text: str, *extra: str, check: bool = True) -> tuple[int, str]:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "ethtool").write_text(FAKE_ETHTOOL)
    (fake / "ethtool").chmod(0o755)
    path = tmp_path / "play.yml"
    path.write_text(text)
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", *extra, str(path)]
    if check:
        argv[1:1] = ["--check", "--diff"]
    env = ansible_env(tmp_path, prepend_path=fake)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False,
                          cwd=tmp_path)
    return proc.returncode, proc.stdout + proc.stderr


def diff_of(out: str, dest: str) -> str:
    """The new content in a --diff; a template's diff names its source (NAME.j2)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("+++ after: ")
                 and line.endswith(dest)) + 2  # past the @@ line
    body = []
    for line in lines[start:]:
        if not line.startswith("+"):
            break
        body.append(line[1:])
    return "\n".join(body)


def test_the_plan_file_is_what_verify_reads(tmp_path: Path) -> None:
    rc, out = play(tmp_path, RECORD_PLAY)
    assert rc == 0, out
    plan = json.loads(diff_of(out, "/etc/vpsnet/tune-plan.json"))
    assert plan == {
        "version": 1, "scope": "host",
        "sysctls": {"net.core.somaxconn": 4096, "net.ipv4.tcp_rmem": "4096 131072 33554432"},
        "hugepages": {"nr_hugepages": 64, "nr_hugepages_1g": 0},
        "qdisc": dict.fromkeys(["eth1", "ens5", "eth9"], "fq maxrate 57mbit"),
        # the targets ethtool_nic.yml sets: virtio min(vCPUs, max), ENA max + adaptive RX
        "ethtool": {"eth1": {"channels": {"combined": 2}, "rings": {}, "adaptive_rx": None},
                    "ens5": {"channels": {"combined": 4}, "rings": {"rx": 1024, "tx": 1024},
                             "adaptive_rx": True}},
        "irq_affinity": True,
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    assert vt.planfile.load_plan(str(path)) == plan
    unit = diff_of(out, "/vpsnet-tune-verify.service.j2")
    assert "ExecStart=/usr/local/sbin/vpsnet-tune verify --textfile /var/lib/vpsnet/textfile\n" \
        in unit
    assert "SuccessExitStatus=1" in unit and "ReadWritePaths=/var/lib/vpsnet/textfile" in unit
    timer = diff_of(out, "/vpsnet-tune-verify.timer.j2")
    assert "OnUnitActiveSec=300s" in timer and "AccuracySec=30s" in timer
    assert "failed=0" in out


def test_the_role_parses(tmp_path: Path) -> None:
    text = "".join(f"- hosts: all\n  roles:\n    - role: vpsnet_tune\n"
                   f"      vpsnet_tune_state: {state}\n" for state in ("present", "absent"))
    rc, out = play(tmp_path, text, "--syntax-check", check=False)
    assert rc == 0, out
    tasks = REPO / "roles/vpsnet_tune/tasks"
    assert {"record.yml", "absent.yml", "original.yml"} <= {p.name for p in tasks.iterdir()}


def record_file(directory: Path, somaxconn: str) -> None:
    directory.mkdir(parents=True)
    (directory / "original.json").write_text(json.dumps({
        "version": 1, "pristine": True, "sysctls": {"net.core.somaxconn": somaxconn}, "nics": [],
        "irqs": [], "queues": {}, "irqbalance": {"path": None, "exists": False, "line": None},
        "grub": {"path": None, "exists": False, "content": None}}))


def test_absent_after_an_undo_has_nothing_to_do(tmp_path: Path) -> None:
    record_file(tmp_path / "record.restored", "1")
    rc, out = play(tmp_path, ABSENT_PLAY, "-e", f"__vpsnet_tune_original_dir={tmp_path}/record")
    assert rc == 0, out
    assert "changed=0" in out and "failed=0" in out, out
    assert "would restore" not in out
