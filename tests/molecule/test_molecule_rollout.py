"""molecule/rollout: the canary rollout on a 3-guest lab fleet (2 clouds x 2
regions: a canary and a batch in us-east-1 on 6.1 and 6.12, one host in
asia-east1 on the oldest 6.1 ABI of the matrix), step by step, in this order:

1. fresh deploy of 1.0.0 (molecule prepare = provision.yml) reaches every host;
2. deploy.yml to 1.1.0 (additive: a new metric family), interrupted while the
   second host installs, then run again: regions in the declared order, no
   double work, no half-upgraded host, no ping lost through any host's NIC,
   metrics served throughout;
3. idempotence and testinfra verify;
4. 2.0.0 renames a metric family (breaking, ABI major unchanged): the canary's
   ABI diff stops it, the canary is back on 1.1.0 and healthy, no other host
   is touched;
5. 1.2.0 passes the ABI checks but is built force-unhealthy: the canary's health
   gate stops it, rolled back the same way;
6. rollback.yml -e vpsnet_version=1.0.0 -l region_asia_east1 returns that region;
7. a host that loses its link right after a NIC change (provision.yml's
   vpsnet_tune replacing a root qdisc, under vpsnet_guard) reverts it by itself;
8. 1.3.0 turns unhealthy 90 s after its reload (a slow failure): it passes the
   canary's own gate and is caught by the step's soak and its analysis in a real
   Prometheus (Debian's, on 127.0.0.1, scraping every guest's exporter), then
   rolled back; no other host changes;
9. a host lost from the controller right after its reload, in a batch of two:
   the rollout stops, its batch mate is rolled back, the lost host puts the
   previous version back by itself (vpsnet-guard) with its link still cut, and
   the summary says so;
10. the controller killed inside a host's step (during the install, at the
   reload, during the soak), then the rollout run again: the step resumes from
   the host's own record with every gate, and a failed gate on the re-run rolls
   back to the version the host came from, not the half-installed one.

The whole file is `heavy` (make test-all). Its core, steps 1, 2, 4 and 5 on a
2-guest fleet, is in make test (test_molecule_rollout_core.py, molecule/rollout-core);
the fleet, its runs and the checks both use are in rollout_story.py. On
2026-12-02 (TCG, playbooks under Mitogen) this fleet's create took 19.5 min on an
idle machine (boot 10.3, provision.yml 9.2) and 35 min under load (README.md,
"Tests"); steps 8, 9 and 10 took 5, 20 and 12 min.

Boots its own lab (.cache/lab-rollout, base port 17022); tears it down at the end,
also when a step fails. Steps 4-7 run on their own too (the fleet then starts on
1.1.0, where step 2 leaves it): `-k "test_4 or test_5 or test_6 or test_7"`, and
so do 8-10. VPSNET_ROLLOUT_REUSE=1 keeps a fleet that is up (no destroy, no
create, no teardown): for working on one step at a time."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rollout_story import (
    INSTALL_TASK,
    Fleet,
    check_breaking_abi_stopped,
    check_fresh_prebuilt,
    check_unhealthy_stopped,
    check_upgraded_without_a_break,
    fleet_up,
    halted_at_canary,
    records,
    start_monitors,
    stop_monitors,
    tail,
)

from vpsnet_lab import prometheus
from vpsnet_lab.paths import oldest_abi

HOSTS = ["use1-a", "use1-b", "ase1-a"]  # us-east-1 first, as declared
BASE_PORT = 17022  # rolloutlab.py's for this scenario
# the test's Prometheus, scraping every guest's exporter
PROMETHEUS_PORT = BASE_PORT + 480

pytestmark = [
    pytest.mark.lab,
    pytest.mark.heavy,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and QEMU (make setup)"),
]


# Steps 1-3 start from 1.0.0 and leave every host on 1.1.0, where steps 4-7 start.
STORY_START = {1, 2, 3}


def prepare_version(request: pytest.FixtureRequest) -> str:
    """1.0.0 for the whole story; 1.1.0 when none of steps 1-3 is selected
    (`-k "test_4 or test_5 or test_6 or test_7"`), so that steps 4-7 can run on
    their own."""
    selected = {int(m.group(1)) for item in request.session.items
                if item.path == request.path and (m := re.match(r"test_(\d+)_", item.name))}
    return "1.0.0" if selected & STORY_START else "1.1.0"


@pytest.fixture(scope="module")
def fleet(molecule_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Fleet]:
    with fleet_up("rollout", HOSTS, BASE_PORT, molecule_env,
                  prepare_version(request)) as f:
        yield f


# Tests run in file order and build on each other (one fleet, one story).


def test_1_fresh_deploy_reaches_every_host(fleet: Fleet) -> None:
    # the fixture's create ran prepare: provision.yml at 1.0.0 (molecule.yml)
    check_fresh_prebuilt(fleet, "1.0.0")
    # the host that missed kernel updates got its own ABI's module
    assert fleet.sh("ase1-a", "uname -r").strip() == oldest_abi("6.1")


def run_interrupted(fleet: Fleet, version: str, report: Path) -> str:
    """deploy.yml through molecule converge, killed while the second host
    (us-east-1's batch) is inside its package install."""
    cmd = fleet.molecule_cmd("converge", "-e", f"vpsnet_version={version}",
                             "-e", f"vpsnet_upgrade_report_dir={report}")
    with fleet.logged_process("molecule-converge-interrupted", cmd) as (proc, log):
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text()
            if text.count(INSTALL_TASK) >= 2:
                time.sleep(5)  # inside apt (a prebuilt install takes seconds, DKMS minutes)
                break
            time.sleep(2)
        assert proc.poll() is None, "deploy.yml ended before it could be interrupted:\n" + \
            log.read_text()[-4000:]
    return log.read_text()


def test_2_upgrade_region_by_region_survives_an_interruption(fleet: Fleet,
                                                             tmp_path: Path) -> None:
    start_monitors(fleet)
    dpkg_before = {h: len(fleet.dpkg_log(h)) for h in HOSTS}
    first = tmp_path / "run1"
    out1 = run_interrupted(fleet, "1.1.0", first)
    run1 = records(first)
    assert list(run1) == ["use1-a"], out1[-4000:]  # only the canary finished
    assert run1["use1-a"]["outcome"] == "upgraded" and run1["use1-a"]["after"] == "1.1.0"

    second = tmp_path / "run2"
    r = fleet.molecule("converge", "-e", "vpsnet_version=1.1.0",
                       "-e", f"vpsnet_upgrade_report_dir={second}")
    monitors = stop_monitors(fleet)
    assert r.returncode == 0, tail(r)
    run2 = records(second)
    # the canary is not done twice; the interrupted host is finished, then the rest in order
    assert run2["use1-a"]["outcome"] == "unchanged", run2
    assert all(run2[h]["outcome"] == "upgraded" for h in HOSTS[1:]), run2
    started = sorted(HOSTS, key=lambda h: run2[h]["started"])
    assert started == HOSTS  # region by region, in the declared order
    assert all(run2[h]["abi_verdict"] == "additive" for h in HOSTS[1:]), run2
    check_upgraded_without_a_break(fleet, "1.1.0", dpkg_before, monitors)


def test_3_idempotence_and_verify(fleet: Fleet, tmp_path: Path) -> None:
    r = fleet.molecule("idempotence", "-e", "vpsnet_version=1.1.0",
                       "-e", f"vpsnet_upgrade_report_dir={tmp_path}")
    assert r.returncode == 0, tail(r)
    r = fleet.molecule("verify", expect_env="1.1.0")
    assert r.returncode == 0, tail(r)
    assert re.search(r"\d+ passed", r.stdout + r.stderr), tail(r)


def test_4_breaking_abi_change_stops_at_the_canary(fleet: Fleet, tmp_path: Path) -> None:
    check_breaking_abi_stopped(halted_at_canary(fleet, "2.0.0", tmp_path))


def test_5_unhealthy_build_is_rolled_back(fleet: Fleet, tmp_path: Path) -> None:
    check_unhealthy_stopped(halted_at_canary(fleet, "1.2.0", tmp_path))


def test_6_rollback_returns_a_region(fleet: Fleet, tmp_path: Path) -> None:
    r = fleet.playbook("rollback.yml", "-e", "vpsnet_version=1.0.0", "-l", "region_asia_east1",
                       report=tmp_path)
    assert r.returncode == 0, tail(r)
    recs = records(tmp_path)
    assert sorted(recs) == ["ase1-a"], recs
    assert all(x["outcome"] == "pinned" and x["after"] == "1.0.0" for x in recs.values()), recs
    # the downgrade removes 1.1.0's metric family: recorded, not blocking
    assert all(x["abi_verdict"] == "breaking" for x in recs.values()), recs
    assert fleet.versions() == {"use1-a": ("1.1.0", "1.1.0"), "use1-b": ("1.1.0", "1.1.0"),
                                "ase1-a": ("1.0.0", "1.0.0")}
    assert fleet.healthy("ase1-a", "1.0.0")


def qdisc(fleet: Fleet, host: str, nic: str) -> str:
    return fleet.sh(host, f"tc qdisc show dev {nic} root").split()[1]


def test_7_a_host_that_loses_its_link_after_a_nic_change_reverts_it(fleet: Fleet,
                                                                     tmp_path: Path) -> None:
    """vpsnet_tune replaces eth1's root qdisc under vpsnet_guard; the link is cut,
    so the host cannot confirm: the play fails and the host-side timer puts the
    old qdisc back by itself. With the link up again the change goes through."""
    host, timeout = "use1-a", 120
    fleet.sh(host, "tc qdisc replace dev eth1 root pfifo_fast")  # something for tune to change
    args = ["-l", host, "-e", "vpsnet_version=1.1.0", "-e", f"vpsnet_tune_guard_timeout={timeout}",
            "-e", "vpsnet_tune_guard_confirm_timeout=20"]
    fleet.lab.link(host, "eth1", up=False)
    try:
        r = fleet.playbook("provision.yml", *args, report=tmp_path)
        assert r.returncode != 0, tail(r)
        assert "cannot reach 198.18.0.2 after the change" in " ".join(r.stdout.split()), tail(r)
        # the change was made, and the host is left to revert it
        assert qdisc(fleet, host, "eth1") == "fq"
        assert fleet.sh(host, "vpsnet-guard status vpsnet-tune").strip() == "armed"
        deadline = time.monotonic() + timeout + 30
        while time.monotonic() < deadline and \
                fleet.sh(host, "vpsnet-guard status vpsnet-tune").strip() != "reverted":
            time.sleep(3)
        assert fleet.sh(host, "vpsnet-guard status vpsnet-tune").strip() == "reverted"
        assert qdisc(fleet, host, "eth1") == "pfifo_fast"
        assert "reverting" in fleet.sh(host, "journalctl -t vpsnet-guard --no-pager")
    finally:
        fleet.lab.link(host, "eth1", up=True)
    fleet.sh(host, "ping -n -c 3 -W 2 198.18.0.2")  # reachable again through eth1
    r = fleet.playbook("provision.yml", *args, report=tmp_path)
    assert r.returncode == 0, tail(r)
    assert qdisc(fleet, host, "eth1") == "fq"
    assert fleet.sh(host, "vpsnet-guard status vpsnet-tune").strip() == "disarmed"


# The tasks a step adds after its hosts' own gates: the soak, the check again, the
# analysis, the verdict and the confirmation (vpsnet_rollout tasks/step.yml and
# vpsnet_upgrade's recheck.yml and confirm.yml).
STEP_TASKS = ("vpsnet_rollout : ", "vpsnet_upgrade : Check every device is healthy now",
              "vpsnet_upgrade : Look at the exporter and the kernel log again",
              "vpsnet_upgrade : Keep the verdict of the check",
              "vpsnet_upgrade : Disarm the host-side revert",
              "vpsnet_upgrade : Record each host the step lost")


def step_seconds(log: str) -> tuple[float, float]:
    """(soak, everything else the steps added) in seconds, from profile_tasks'
    lines: the "(h:mm:ss.ff)" after a TASK line is the previous task's duration."""
    soak = other = 0.0
    previous = current = ""
    for line in log.splitlines():
        if m := re.match(r"^TASK \[(.*)\] \*+", line):
            current = m.group(1)
        elif current and (d := re.search(r"\((\d+):(\d\d):(\d\d\.\d+)\)", line)):
            seconds = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
            if previous.startswith("vpsnet_rollout : Soak"):
                soak += seconds
            elif previous.startswith(STEP_TASKS):
                other += seconds
            previous, current = current, ""
    return soak, other


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_8_a_slow_failure_is_caught_by_the_soak_and_analysis(fleet: Fleet,
                                                              tmp_path: Path) -> None:
    soak, onset_after = 150, 90  # 1.3.0 turns tx_stalled 90 s after its reload
    before = fleet.versions()
    logs = {h: len(fleet.dpkg_log(h)) for h in HOSTS}
    with prometheus.running(fleet.exporters, PROMETHEUS_PORT, alert_for="5s",
                            scrape_interval="2s") as prom:
        deadline = time.monotonic() + 120
        while len(prom.query('vpsnet_up{job="vpsnet"} == 1')) < len(HOSTS):
            assert time.monotonic() < deadline, prom.log()[-2000:]
            time.sleep(2)
        started = time.monotonic()
        r = fleet.playbook("deploy.yml", "-e", "vpsnet_version=1.3.0",
                           "-e", f"vpsnet_rollout_prometheus_url={prom.url}",
                           "-e", f"vpsnet_rollout_soak_seconds={soak}", report=tmp_path)
        elapsed = time.monotonic() - started
    assert r.returncode != 0, tail(r)
    recs = records(tmp_path)
    assert list(recs) == ["use1-a"], tail(r)
    rec = recs["use1-a"]
    # its own gate right after the reload passed (today's gate would have kept it) ...
    assert rec["health"].startswith("healthy"), rec
    # ... the step's soak and analysis did not, and the host went back
    assert rec["outcome"] == "rolled_back" and rec["after"] == "1.1.0", rec
    assert f"failed after its {soak} s soak" in rec["failure"], rec
    analysis = rec["analysis"]
    assert analysis["verdict"] == "fail" and analysis["local_gate"] == "fail", analysis
    assert "tx_stalled" in analysis["local_gate_detail"], analysis
    reasons = " ".join(analysis["reasons"])
    assert "VpsnetTxStalled" in reasons, analysis
    assert analysis["window"] >= soak, analysis  # the window starts after the reload
    assert fleet.versions() == before
    assert fleet.healthy("use1-a", "1.1.0")
    for h in HOSTS[1:]:
        assert len(fleet.dpkg_log(h)) == logs[h], h
    # figures: when the failure began (reload + 90 s) to when the host was back
    done = epoch(rec["started"]) + float(rec["seconds"])
    onset = epoch(rec["reloaded"]) + onset_after
    fleet.figure("slow_failure_onset_to_rollback_s", round(done - onset))
    fleet.figure("slow_failure_deploy_wall_s", round(elapsed))


def wait_for_reload(fleet: Fleet, host: str, version: str, timeout: float) -> float:
    """Poll HOST until its loaded module is VERSION; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = fleet.lab.ssh(host, "cat /sys/module/vpsnet/version", timeout=30)
        if r.rc == 0 and r.stdout.strip() == version:
            return time.monotonic()
        time.sleep(1)
    raise AssertionError(f"{host} never loaded {version}")


def test_9_a_host_lost_in_its_batch_stops_the_rollout_and_reverts_itself(
        fleet: Fleet, tmp_path: Path) -> None:
    """One region of all three hosts: a canary, then one batch of the other two
    (use1-b among them); use1-b's management link is cut as soon as it runs the
    step's module."""
    timeout, lost = 300, "use1-b"
    # every host on 1.1.0 first, so that every host of the step has something to do
    r = fleet.playbook("deploy.yml", "-e", "vpsnet_version=1.1.0", report=tmp_path / "before")
    assert r.returncode == 0, tail(r)
    start = fleet.versions()
    assert start == {h: ("1.1.0", "1.1.0") for h in HOSTS}
    cut: dict[str, float] = {}

    def cut_after_reload() -> None:
        cut["at"] = wait_for_reload(fleet, lost, "1.0.0", 2400)
        fleet.lab.link(lost, "eth0", up=False)

    watcher = threading.Thread(target=cut_after_reload, daemon=True)
    watcher.start()
    try:
        r = fleet.playbook("rollback.yml", "-e", "vpsnet_version=1.0.0",
                           "-e", '{"vpsnet_rollout_regions": ["us-east-1"]}',
                           "-e", "vpsnet_region=us-east-1",
                           "-e", '{"vpsnet_rollout_batches": ["100%"]}',
                           "-e", f"vpsnet_upgrade_confirm_timeout={timeout}", report=tmp_path)
        watcher.join(timeout=60)
        assert "at" in cut, tail(r)
        assert r.returncode != 0, tail(r)
        assert "Summarise the rollout" not in r.stdout
        recs = records(tmp_path)
        assert recs[lost]["outcome"] == "unreachable", recs[lost]
        assert "back by itself at" in recs[lost]["failure"], recs[lost]
        assert json.loads((tmp_path / "summary.json").read_text())  # the summary has it too
        # the canary (the first host started) passed its step; the lost host's batch
        # mate was rolled back
        canary = min(recs, key=lambda h: recs[h]["started"])
        assert canary != lost and recs[canary]["outcome"] == "pinned", recs
        mate = next(h for h in HOSTS if h not in (canary, lost))
        assert recs[mate]["outcome"] == "rolled_back", recs[mate]
        assert "lost use1-b" in " ".join(r.stdout.split()), tail(r)
        # the lost host reverts by itself, its link still cut
        time.sleep(max(0.0, cut["at"] + timeout + 120 - time.monotonic()))
    finally:
        fleet.lab.link(lost, "eth0", up=True)
    deadline = time.monotonic() + 300
    while fleet.lab.ssh(lost, "true", timeout=30).rc != 0:
        assert time.monotonic() < deadline, "lost host unreachable after its link came back"
        time.sleep(5)
    guard = "VPSNET_GUARD_DIR=/var/lib/vpsnet/guard vpsnet-guard status upgrade"
    assert fleet.sh(lost, guard).strip() == "reverted"
    assert fleet.versions()[lost] == start[lost]
    assert fleet.healthy(lost, start[lost][1])
    assert fleet.sh(lost, "dpkg --audit") == ""
    assert "reverting" in fleet.sh(lost, "journalctl -t vpsnet-guard --no-pager")
    assert fleet.versions()[mate] == start[mate]
    # put the canary back where the story continues
    r = fleet.playbook("deploy.yml", "-e", "vpsnet_version=1.1.0", report=tmp_path / "again")
    assert r.returncode == 0, tail(r)


def kill_at(fleet: Fleet, name: str, cmd: list[str], marker: str, linger: float) -> str:
    """Run CMD and kill the whole controller (ansible-playbook and its ssh) LINGER s
    after MARKER (a "TASK [...]" line of the canary's play) appears."""
    with fleet.logged_process(name, cmd) as (proc, log):
        deadline = time.monotonic() + 2400
        while time.monotonic() < deadline and proc.poll() is None:
            if marker in log.read_text():
                time.sleep(linger)
                break
            time.sleep(1)
        assert proc.poll() is None, f"{name} ended before {marker!r}:\n" + log.read_text()[-4000:]
    return log.read_text()


def step_record(fleet: Fleet, host: str) -> dict[str, Any]:
    return dict(json.loads(fleet.sh(host, "cat /var/lib/vpsnet/rollout/step.json")))


def test_10_a_killed_controller_resumes_the_step_with_every_gate(fleet: Fleet,
                                                                  tmp_path: Path) -> None:
    canary = "use1-a"
    region = ["-l", "region_us_east_1"]

    def play(book: str, version: str, report: Path) -> list[str]:
        return fleet.playbook_cmd(book, *region, "-e", f"vpsnet_version={version}",
                                  report=report)

    # 1. killed at the canary's reload of the unhealthy 1.2.0: the host has 1.2.0
    # installed (maybe loaded); the re-run knows it came from 1.1.0 and goes back there
    kill_at(fleet, "deploy-killed-at-reload", play("deploy.yml", "1.2.0", tmp_path / "k1"),
            "TASK [vpsnet_upgrade : Reload the module in one command]", 3)
    assert step_record(fleet, canary)["phase"] == "reloading"
    assert step_record(fleet, canary)["from"] == "1.1.0"
    r = fleet.playbook("deploy.yml", *region, "-e", "vpsnet_version=1.2.0", report=tmp_path / "r1")
    assert r.returncode != 0, tail(r)
    rec = records(tmp_path / "r1")[canary]
    assert rec["resumed"] is True and rec["outcome"] == "rolled_back", rec
    assert rec["before"] == "1.1.0" and rec["after"] == "1.1.0", rec
    assert fleet.versions()[canary] == ("1.1.0", "1.1.0")
    assert fleet.healthy(canary, "1.1.0")
    assert step_record(fleet, canary)["phase"] == "rolled_back"

    # 2. killed inside the canary's install of 1.0.0 (rollback.yml), then during
    # its soak: each re-run resumes with the full gate and finishes the region
    for n, marker, linger in ((2, INSTALL_TASK, 5), (3, "TASK [vpsnet_rollout : Soak the step", 5)):
        version = "1.0.0" if n == 2 else "1.1.0"
        book = "rollback.yml" if n == 2 else "deploy.yml"
        kill_at(fleet, f"{book}-killed-{n}", play(book, version, tmp_path / f"k{n}"),
                marker, linger)
        assert step_record(fleet, canary)["phase"] in ("installing", "gated"), n
        r = fleet.playbook(book, *region, "-e", f"vpsnet_version={version}",
                           report=tmp_path / f"r{n}")
        assert r.returncode == 0, tail(r)
        soak, other = step_seconds(r.stdout)
        fleet.figure(f"steps_{n}_soak_and_added_s", [round(soak), round(other)])  # two steps
        recs = records(tmp_path / f"r{n}")
        assert recs[canary]["resumed"] is True, recs[canary]
        assert recs[canary]["health"].startswith("healthy"), recs[canary]
        assert recs[canary]["analysis"]["local_gate"] == "pass", recs[canary]
        for h in ("use1-a", "use1-b"):
            assert fleet.versions()[h] == (version, version), h
            assert fleet.sh(h, "dpkg --audit") == "", h
            assert step_record(fleet, h)["phase"] == "done", h
            guard = "VPSNET_GUARD_DIR=/var/lib/vpsnet/guard vpsnet-guard status upgrade"
            assert fleet.sh(h, guard).strip() == "disarmed", h
