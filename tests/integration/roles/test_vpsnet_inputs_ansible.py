"""Bad input fails before any change, on real ansible-playbook runs: every role
(but vpsnet_facts) runs against hosts whose connection refuses every operation
(fixtures/connection_plugins/vpsnet_refuse.py logs each attempt). One run per
role, one host per bad value (control characters, a trailing newline,
NaN/infinity/huge, negative, a string for a list, too long a list, a path
outside its prefix, a private key, ...): each host fails with a message naming
its variable, nothing was attempted on it (no connection, no command, no file),
and changed=0. A good host in the same run does reach the connection, so a
role that touched a host first would be caught. deploy.yml: bad rollout inputs
fail the plan before any canary."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from testlib.input_counts import InputCounts
from testlib.vpsnet_facts_helpers import REPO, ansible_env
from testlib.vpsnet_inputs_helpers import GOOD_KEY, armor, packet

BIN = Path(sys.executable).parent
FIXTURES = REPO / "tests" / "unit" / "roles" / "fixtures"
COUNTS = InputCounts("bad inputs refused before any host operation (ansible-playbook runs)")
_print_counts = COUNTS.report_fixture()

# "PRIVATE " "KEY BLOCK" in two parts: no file in git holds that armour line
SECRET_KEY = armor(packet(5, b"\x04" + bytes(40)), "PRIVATE " "KEY BLOCK")
SECRET_AS_PUBLIC = armor(packet(6, b"\x04" + bytes(8)) + packet(7, b"\x04" + bytes(20)),
                         "PUBLIC KEY BLOCK")

# role -> (vars every host gets, {host: (class, variable, bad value)}); host "good" has none.
CASES: dict[str, tuple[dict[str, Any], dict[str, tuple[str, str, Any]]]] = {
    "vpsnet_driver": ({}, {
        "version_nl": ("trailing newline", "vpsnet_driver_version", "1.0.0\n"),
        "drivers_str": ("string for a list", "vpsnet_driver_drivers", "ena,gve"),
        "drivers_17": ("too long a list", "vpsnet_driver_drivers", [f"d{i}" for i in range(17)]),
        "drivers_ctrl": ("control character", "vpsnet_driver_drivers", ["ena\nblacklist ena"]),
        "interval_huge": ("huge number", "vpsnet_driver_interval_ms", 10**30),
        "stall_neg": ("negative number", "vpsnet_driver_stall_intervals", -3),
        "key_shell": ("control character", "vpsnet_driver_dkms_signing_key", "/k\"; reboot; \""),
    }),
    "vpsnet_exporter": ({}, {
        "listen_args": ("option injection", "vpsnet_exporter_listen_address",
                        "127.0.0.1 --web.listen-address=0.0.0.0"),
        "file_unit": ("control character", "vpsnet_exporter_metrics_file",
                      "/proc/x\nExecStartPre=+/bin/sh -c id"),
        "port_inf": ("NaN/inf", "vpsnet_exporter_port", math.inf),
        "dir_dotdot": ("path with ..", "vpsnet_exporter_textfile_dir", "/var/lib/../../etc"),
        "tls_pct": ("path specifier", "vpsnet_exporter_tls_cert", "/etc/%n.crt"),
        "level_nl": ("trailing newline", "vpsnet_exporter_log_level", "info\n"),
    }),
    "vpsnet_guard": ({}, {
        "id_nl": ("trailing newline", "vpsnet_guard_id", "nic\n"),
        "nics_str": ("string for a list", "vpsnet_guard_nics", "eth0"),
        "nics_65": ("too long a list", "vpsnet_guard_nics", [f"e{i}" for i in range(65)]),
        "timeout_nan": ("NaN/inf", "vpsnet_guard_timeout", math.nan),
        "ping_opt": ("option injection", "vpsnet_guard_ping_targets", ["-f"]),
    }),
    "vpsnet_repo": ({"vpsnet_repo_key": GOOD_KEY}, {
        "suite_trusted": ("control character", "vpsnet_repo_suite", "bookworm\nTrusted: yes"),
        "key_private": ("private key", "vpsnet_repo_key", SECRET_KEY),
        "key_secret_sub": ("private key", "vpsnet_repo_key", SECRET_AS_PUBLIC),
        "key_garbage": ("garbage key", "vpsnet_repo_key", "not a key at all"),
        "url_nl": ("trailing newline", "vpsnet_repo_url", "http://10.0.2.101\n"),
        "components_str": ("string for a list", "vpsnet_repo_components", "main contrib"),
    }),
    "vpsnet_tune": ({"vpsnet_cloud": {"nics": []}}, {
        "rtt_nan": ("NaN/inf", "vpsnet_tune_rtt_ms", math.nan),
        "bw_neg": ("negative number", "vpsnet_tune_bandwidth_mbit", -1),
        "qdisc_lines": ("control character", "vpsnet_tune_default_qdisc", "fq\nkernel.panic = 1"),
        "grub_out": ("path outside prefix", "vpsnet_tune_grub_file", "/etc/default/grub"),
        "grub_dotdot": ("path outside prefix", "vpsnet_tune_grub_file",
                        "/etc/default/grub.d/../grub.cfg"),
        "huge_pct": ("out of range", "vpsnet_tune_hugepages_max_percent", 150),
        "cpus_str": ("string for a list", "vpsnet_tune_reserved_cpus", "0-3"),
        "extra_nl": ("control character", "vpsnet_tune_sysctl_extra",
                     {"net.core.somaxconn": "1\nkernel.panic = 1"}),
        "huge_pages": ("huge number", "vpsnet_tune_hugepages_2m", 1e300),
    }),
    "vpsnet_upgrade": ({"vpsnet_upgrade_version": "1.1.0",
                        "vpsnet_upgrade_report_dir": "/tmp/vpsnet-report"}, {
        "version_nl": ("trailing newline", "vpsnet_upgrade_version", "1.1.0\n"),
        "interval_inf": ("NaN/inf", "vpsnet_upgrade_health_interval", math.inf),
        "ping_opt": ("option injection", "vpsnet_upgrade_ping_targets", ["-f"]),
        "kmsg_bad": ("bad regex", "vpsnet_upgrade_kmsg_patterns", ["("]),
        "report_up": ("path with ..", "vpsnet_upgrade_report_dir", "/tmp/../etc"),
        "confirm_huge": ("huge number", "vpsnet_upgrade_confirm_timeout", 10**30),
    }),
}


Run = tuple[subprocess.CompletedProcess[str], dict[str, Any], list[str]]


def run(tmp_path: Path, play: str, inventory: dict[str, Any], *args: str,
        roles_path: str | None = None) -> Run:
    (tmp_path / "play.yml").write_text(play)
    (tmp_path / "inv.yml").write_text(yaml.safe_dump(inventory))
    log = tmp_path / "refused.log"
    env = ansible_env(tmp_path, ANSIBLE_CONNECTION_PLUGINS=str(FIXTURES / "connection_plugins"),
                      ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", VPSNET_REFUSE_LOG=str(log),
                      **({"ANSIBLE_ROLES_PATH": roles_path} if roles_path else {}))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"),
                           str(tmp_path / "play.yml"), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False,
                          cwd=tmp_path)
    start = proc.stdout.find("{")
    assert start >= 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout[start:])
    attempts = log.read_text().splitlines() if log.exists() else []
    return proc, report, attempts


def failures(report: dict[str, Any]) -> dict[str, str]:
    """host -> message of its failed task."""
    out: dict[str, str] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed") or result.get("unreachable"):
                    out.setdefault(host, str(result.get("msg", "")))
    return out


@pytest.mark.parametrize("role", sorted(CASES))
def test_bad_input_fails_before_the_host_is_touched(tmp_path: Path, role: str) -> None:
    common, bad = CASES[role]
    hosts: dict[str, Any] = {"good": {}}
    for host, (_klass, name, value) in bad.items():
        hosts[host] = {name: value}
    if role == "vpsnet_repo":  # a key file on the controller that holds a secret key
        (tmp_path / "secret.asc").write_text(SECRET_KEY)
        bad = {**bad, "key_src_private": ("private key", "vpsnet_repo_key_src", "secret.asc")}
        hosts["key_src_private"] = {"vpsnet_repo_key": "",
                                    "vpsnet_repo_key_src": str(tmp_path / "secret.asc")}
    inventory = {"all": {"hosts": hosts, "vars": {
        "ansible_connection": "vpsnet_refuse", "ansible_python_interpreter": "/usr/bin/python3",
        **common}}}
    play = f"- hosts: all\n  gather_facts: false\n  roles:\n    - role: {role}\n"
    proc, report, attempts = run(tmp_path, play, inventory, "--forks", "20")
    failed = failures(report)
    stats = report["stats"]
    for host, (klass, name, _value) in bad.items():
        assert host in failed, (host, proc.stdout[-2000:], proc.stderr[-2000:])
        assert name in failed[host], (host, failed[host])
        assert stats[host]["failures"] == 1 and stats[host]["changed"] == 0, (host, stats[host])
        assert stats[host]["unreachable"] == 0, (host, stats[host])
        assert not [a for a in attempts if a.split()[0] == host], (host, attempts)
        COUNTS.add(klass, rejected=True)
    # the good host got past the checks and was refused at its first operation
    assert stats["good"]["unreachable"] == 1, stats["good"]
    assert [a for a in attempts if a.split()[0] == "good"], attempts


ROLLOUT_INVENTORY = {"all": {"vars": {
    "ansible_connection": "vpsnet_refuse", "ansible_python_interpreter": "/usr/bin/python3",
    "vpsnet_rollout_regions": ["r1"], "vpsnet_rollout_prometheus_url": "",
    "vpsnet_rollout_soak_seconds": 0}, "hosts": {
        "a1": {"vpsnet_region": "r1"}, "a2": {"vpsnet_region": "r1"},
        "a3": {"vpsnet_region": "r1"}}}}


@pytest.mark.parametrize(("klass", "extra", "names"), [
    ("bad batch", {"vpsnet_version": "1.1.0", "vpsnet_rollout_batches": [1, "25%\n"]},
     ["vpsnet_rollout_batches[1]='25%\\n'"]),
    ("several at once", {"vpsnet_version": "1.1.0\n", "vpsnet_rollout_soak_seconds": math.nan,
                         "vpsnet_rollout_batches": "25%", "vpsnet_rollout_analysis_alerts": "x"},
     ["vpsnet_version='1.1.0\\n'", "vpsnet_rollout_soak_seconds=nan",
      "vpsnet_rollout_batches='25%'", "vpsnet_rollout_analysis_alerts='x'"]),
])
def test_bad_rollout_input_fails_the_plan_before_any_canary(tmp_path: Path, klass: str,
                                                            extra: dict[str, Any],
                                                            names: list[str]) -> None:
    """The real deploy.yml and vpsnet_rollout, the stub vpsnet_upgrade (it would
    log the canary's step): nothing is logged, no host was contacted."""
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra))
    steps = tmp_path / "steps.log"
    inventory = json.loads(json.dumps(ROLLOUT_INVENTORY))
    proc, report, attempts = run(
        tmp_path,
        (REPO / "deploy.yml").read_text().replace("playbooks/", str(REPO / "playbooks") + "/"),
        inventory, "-e", "@" + str(tmp_path / "extra.yml"), "-e", f"vpsnet_test_log={steps}",
        roles_path=f"{FIXTURES / 'stub_roles'}:{REPO / 'roles'}")
    assert proc.returncode != 0
    message = " ".join(failures(report).values())
    for name in names:
        assert name in message, (name, message)
        COUNTS.add(klass if klass != "several at once" else "rollout input", rejected=True)
    assert not steps.exists() and attempts == [], (attempts, proc.stdout[-2000:])
    assert all(s["changed"] == 0 and s["unreachable"] == 0 for s in report["stats"].values())


def test_bad_upgrade_input_of_one_host_fails_the_plan(tmp_path: Path) -> None:
    """The real roles: a host whose vpsnet_upgrade settings are bad stops the
    rollout in the plan play, before any canary (no host contacted)."""
    inventory = json.loads(json.dumps(ROLLOUT_INVENTORY))
    inventory["all"]["hosts"]["a3"]["vpsnet_upgrade_ping_targets"] = ["-f"]
    inventory["all"]["vars"]["vpsnet_upgrade_report_dir"] = str(tmp_path / "report")
    proc, report, attempts = run(
        tmp_path,
        (REPO / "deploy.yml").read_text().replace("playbooks/", str(REPO / "playbooks") + "/"),
        inventory, "-e", "vpsnet_version=1.1.0")
    assert proc.returncode != 0
    failed = failures(report)
    assert "vpsnet_upgrade_ping_targets[0]='-f'" in failed.get("a3", ""), failed
    assert attempts == [] and not (tmp_path / "report").exists(), attempts
    assert all(s["changed"] == 0 and s["unreachable"] == 0 for s in report["stats"].values())
    COUNTS.add("option injection", rejected=True)


def test_provision_checks_every_role_before_any_changes(tmp_path: Path) -> None:
    """provision.yml in check mode on localhost: a bad input of the last role
    (vpsnet_exporter) fails the play before the first role (vpsnet_facts,
    vpsnet_repo) runs."""
    env = ansible_env(tmp_path, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    (tmp_path / "extra.yml").write_text(yaml.safe_dump({
        "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "vpsnet_exporter_listen_address": "0.0.0.0\nExecStartPre=+/bin/sh",
        "vpsnet_repo_key": GOOD_KEY}))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "--check", "--diff", "-e", "@" + str(tmp_path / "extra.yml"),
                           str(REPO / "provision.yml")],
                          capture_output=True, text=True, env=env, timeout=300, check=False,
                          cwd=tmp_path)
    start = proc.stdout.find("{")
    report = json.loads(proc.stdout[start:])
    assert proc.returncode != 0
    msg = failures(report)["localhost"]
    assert "vpsnet_exporter_listen_address='0.0.0.0\\nExecStartPre=+/bin/sh'" in msg, msg
    tasks = [t["task"]["name"] for p in report["plays"] for t in p["tasks"]]
    assert not [t for t in tasks if "OS family" in t or "cloud" in t.lower()], tasks
    assert report["stats"]["localhost"]["changed"] == 0
    COUNTS.add("control character", rejected=True)


def test_zz_counts() -> None:
    """Runs last in this file (the table is printed after it, with -s)."""
    assert sum(COUNTS[klass].rejected for klass in COUNTS.classes()) >= 30
