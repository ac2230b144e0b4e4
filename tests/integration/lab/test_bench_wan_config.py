"""bench/wan.py's vpsnet configuration is the vpsnet_tune role's own: the sysctl
file bench/wan_role.py renders from the role's defaults, tasks and template holds
exactly the settings the role writes when ansible-playbook runs its plan and sysctl
steps (check mode, on localhost, as on a bench guest: host scope, IPv6, BBR
loadable); a changed role default changes the bench; the qdisc is the plan's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from testlib.folder_modules import BENCH, load_from

role_render = load_from(BENCH, "wan_role")
link = load_from(BENCH, "wan_link")
TOP = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def role_written(tmp_path: Path, rtt_ms: float) -> str:
    """The sysctl file ansible-playbook renders with the role's tasks (check mode:
    nothing on this machine changes; the file goes to a temporary path)."""
    (tmp_path / "ipv6").mkdir()
    play = tmp_path / "play.yml"
    steps = [{"name": f"vpsnet_tune {step}", "ansible.builtin.include_role": {
        "name": "vpsnet_tune", "tasks_from": step, "public": True}} for step in ("plan", "sysctl")]
    show = {"name": "Show the file", "ansible.builtin.debug": {"msg": "{{ lookup("
            "'ansible.builtin.template', '" + str(TOP / "roles/vpsnet_tune/templates/"
                                                  "sysctl.conf.j2") + "') | to_json }}"}}
    play.write_text(yaml.safe_dump([{
        "name": "vpsnet_tune as the WAN bench sets it", "hosts": "localhost",
        "gather_facts": True, "gather_subset": ["!all", "!min", "hardware", "virtual"],
        "tasks": [*steps, show]}]))
    extra = {**role_render.bench_vars(rtt_ms, link.BANDWIDTH_MBIT),
             # as on a bench guest: a VM with IPv6 whose kernel has tcp_bbr
             "vpsnet_tune_scope": "host", "__vpsnet_tune_proc_ipv6": str(tmp_path / "ipv6"),
             "vpsnet_tune_congestion_fallback": "{{ vpsnet_tune_congestion_control }}",
             "__vpsnet_tune_sysctl_file": str(tmp_path / "90-vpsnet.conf")}
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(TOP / "roles"),
               ANSIBLE_COLLECTIONS_PATH=str(TOP / ".cache" / "collections"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    out = subprocess.run(
        [str(BIN / "ansible-playbook"), "--check", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(extra),
         str(play)], capture_output=True, text=True, env=env, timeout=600, check=False,
        cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout[out.stdout.index("{"):])
    task = result["plays"][0]["tasks"][-1]
    text = task["hosts"]["localhost"]["msg"]
    return str(json.loads(text) if text.startswith('"') else text)


@pytest.mark.parametrize("profile", ["transpacific"])
def test_bench_sysctls_are_what_the_role_writes(tmp_path: Path, profile: str) -> None:
    rtt = max(link.PROFILES[profile][0], 1)
    bench = role_render.sysctl_keys(role_render.sysctl_file(rtt, link.BANDWIDTH_MBIT))
    written = role_written(tmp_path, rtt)
    assert written.startswith("# Ansible managed\n")
    role = role_render.sysctl_keys(written)
    assert bench == role
    assert bench["net.ipv4.tcp_congestion_control"] == "bbr"
    assert bench["net.core.rmem_max"] == "50000000"  # 2 x BDP of 200 ms x 1000 Mbit/s


def test_a_changed_role_default_changes_the_bench(tmp_path: Path) -> None:
    role = tmp_path / "vpsnet_tune"
    shutil.copytree(TOP / "roles/vpsnet_tune", role)
    defaults = role / "defaults/main.yml"
    text = defaults.read_text()
    assert "\nvpsnet_tune_somaxconn: 4096\n" in text
    defaults.write_text(text.replace("\nvpsnet_tune_somaxconn: 4096\n",
                                     "\nvpsnet_tune_somaxconn: 8192\n"))
    changed = role_render.sysctl_keys(role_render.sysctl_file(60, 1000, role=role))
    assert changed["net.core.somaxconn"] == "8192"
    assert role_render.sysctl_keys(role_render.sysctl_file(60, 1000))["net.core.somaxconn"] \
        == "4096"


def test_qdisc_is_the_plans() -> None:
    assert role_render.vpsnet_qdisc(0, 1000) == "fq"
    assert role_render.vpsnet_qdisc(900, 1000) == "fq maxrate 900mbit"
    with pytest.raises(SystemExit, match="vpsnet_tune_fq_maxrate_mbit=-3 must be >= 0"):
        role_render.vpsnet_qdisc(-3, 1000)


def test_baseline_covers_every_key_the_role_sets() -> None:
    guests = load_from(BENCH, "wan_guests")
    keys = guests.baseline_keys()
    assert keys[:len(guests.KEYS)] == guests.KEYS
    assert set(role_render.sysctl_keys(role_render.sysctl_file(1, 1000))) <= set(keys)
