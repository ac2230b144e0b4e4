"""The rollout story's fleet and checks, shared by the molecule/rollout (whole
story, make test-all) and molecule/rollout-core (its core, make test) tests.

A Fleet is one scenario's booted guests (molecule/rollout/rolloutlab.py) with the
molecule and ansible-playbook runs against them. Every run's whole output, with
ansible.posix.profile_tasks timings, is kept in .cache/molecule-<scenario>/logs:
where the time of a fleet run went is read there, not guessed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vpsnet_lab import scrape_monitor
from vpsnet_lab.ansible_env import mitogen_env
from vpsnet_lab.fleet import Lab
from vpsnet_lab.scrape_monitor import Scrape, max_gap

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
CACHE = REPO / ".cache"
REUSE = os.environ.get("VPSNET_ROLLOUT_REUSE") == "1"
# Prebuilt modules: nothing is compiled on the guests, so a host's step is minutes, not
# the 7-28 min a DKMS build took under TCG; the 3-guest fleet's create (boot +
# provision.yml) took 35 min on a loaded machine (2026-12-02).
RUN_TIMEOUT = 3600
EXPORTER_PORT_OFFSET = 400  # rolloutlab.py: guest i's exporter on base port + this + i
INSTALL_TASK = "TASK [vpsnet_driver : Install the wanted vpsnet packages, pinned (apt)]"


@dataclass
class Fleet:
    scenario: str
    hosts: list[str]  # in the order the rollout reaches them (regions as declared)
    base_port: int
    env: dict[str, str]
    lab: Lab

    @property
    def peers(self) -> dict[str, str]:
        """host -> the address it pings through its second NIC: the first of the
        ping targets the scenario's host_vars give its upgrade gate."""
        return {h: str(yaml.safe_load(
                    (REPO / "molecule" / self.scenario / "host_vars" / f"{h}.yml").read_text())
                    ["vpsnet_upgrade_ping_targets"][0])
                for h in self.hosts}

    @property
    def ephemeral(self) -> Path:
        return CACHE / f"molecule-{self.scenario}" / "ephemeral"

    @property
    def logs(self) -> Path:
        return CACHE / f"molecule-{self.scenario}" / "logs"

    @property
    def state(self) -> Path:
        return CACHE / f"lab-{self.scenario}"

    @property
    def exporters(self) -> dict[str, int]:
        """Prometheus target name (<host>:19462, as a fleet names it) -> host port."""
        return {f"{h}:19462": self.base_port + EXPORTER_PORT_OFFSET + i
                for i, h in enumerate(self.hosts)}

    def molecule_cmd(self, step: str, *ansible_args: str) -> list[str]:
        return ["molecule", step, "-s", self.scenario,
                *(["--", *ansible_args] if ansible_args else [])]

    def molecule(self, step: str, *ansible_args: str, timeout: float = RUN_TIMEOUT,
                 expect_env: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if expect_env:
            env["VPSNET_ROLLOUT_EXPECT"] = expect_env
        return self.run(f"molecule-{step}", self.molecule_cmd(step, *ansible_args), env, timeout)

    def playbook_cmd(self, book: str, *args: str, report: Path) -> list[str]:
        return ["ansible-playbook", "-i", str(self.ephemeral / "inventory"), book,
                "-e", f"vpsnet_upgrade_report_dir={report}", *args]

    def playbook(self, book: str, *args: str, report: Path,
                 timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return self.run(Path(book).stem, self.playbook_cmd(book, *args, report=report),
                        self.env, timeout)

    def run(self, name: str, cmd: list[str], env: dict[str, str],
            timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        """Run CMD in CWD with its whole output kept in logs/<start time>-<name>.log,
        also when the run is killed on TIMEOUT (TimeoutExpired is raised then)."""
        with self.logged_process(name, cmd, env, cwd) as (proc, log):
            returncode = proc.wait(timeout)
        # one stream, so that tail() shows ansible's and molecule's lines interleaved
        return subprocess.CompletedProcess(cmd, returncode, log.read_text(), "")

    @contextmanager
    def logged_process(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
                       cwd: Path = REPO) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
        """CMD started in its own process group, its whole output (stdout and stderr,
        one stream) in logs/<start time>-<name>.log. On leaving, the whole group is
        killed: molecule's ansible-playbook and ssh children too, not molecule alone."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.log"
        with log.open("w") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.Popen(cmd, cwd=cwd, env=env or self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                yield proc, log
            finally:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def sh(self, host: str, cmd: str, timeout: float = 120) -> str:
        r = self.lab.ssh(host, cmd, timeout=timeout)
        assert r.rc == 0, f"{host}: {cmd}: rc={r.rc}\n{r.stdout}{r.stderr}"
        return str(r.stdout)

    def versions(self) -> dict[str, tuple[str, str]]:
        """host -> (installed module package: the running kernel's vpsnet-kmod, else
        vpsnet-dkms; loaded module)"""
        out = {}
        for h in self.hosts:
            text = self.sh(h, "dpkg-query -W -f='${Version}' vpsnet-kmod-$(uname -r) 2>/dev/null"
                              " || dpkg-query -W -f='${Version}' vpsnet-dkms 2>/dev/null; echo; "
                              "cat /sys/module/vpsnet/version 2>/dev/null; echo")
            lines = [*text.split("\n"), "", ""][:2]
            out[h] = (lines[0].strip(), lines[1].strip())
        return out

    def dpkg_log(self, host: str) -> list[str]:
        return self.sh(host, "cat /var/log/dpkg.log").splitlines()

    def healthy(self, host: str, version: str) -> bool:
        r = self.lab.ssh(host, f"vpsnet-status --samples 2 --interval 0.5 --timeout 30 "
                               f"--expect-version {version}", timeout=60)
        return bool(r.rc == 0)

    def figure(self, name: str, value: Any) -> None:
        """Keep a measured figure (README.md, closing notes) in logs/figures.json."""
        path = self.logs / "figures.json"
        figures = json.loads(path.read_text()) if path.exists() else {}
        figures[name] = value
        path.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figure {name}: {value}", flush=True)


@contextmanager
def fleet_up(scenario: str, hosts: list[str], base_port: int,
             molecule_env: dict[str, str], prepare_version: str) -> Iterator[Fleet]:
    """SCENARIO's fleet booted and provisioned at PREPARE_VERSION (molecule create,
    which runs prepare: provision.yml), always destroyed on leaving, also when a
    test failed. VPSNET_ROLLOUT_REUSE=1 keeps a fleet that is up (no destroy, no
    create, no teardown): for working on one step at a time."""
    ephemeral = CACHE / f"molecule-{scenario}" / "ephemeral"
    env = dict(molecule_env, **mitogen_env(), MOLECULE_EPHEMERAL_DIRECTORY=str(ephemeral),
               # group_vars/all.yml reads these; molecule sets them for its own runs
               MOLECULE_PROJECT_DIRECTORY=str(REPO), MOLECULE_SCENARIO_NAME=scenario,
               VPSNET_ROLLOUT_PREPARE_VERSION=prepare_version,
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
    fleet = Fleet(scenario, hosts, base_port, env, Lab(CACHE / f"lab-{scenario}"))
    if REUSE:
        yield fleet
        return
    try:
        # a killed run leaves molecule's state at created: start clean, as `molecule test` does
        fleet.molecule("destroy", timeout=300)
        r = fleet.molecule("create", timeout=RUN_TIMEOUT)
        assert r.returncode == 0, tail(r)
        fleet.lab = Lab(fleet.state)
        yield fleet
    finally:
        fleet.molecule("destroy", timeout=300)
        subprocess.run([str(VENV_BIN / "python"), "molecule/rollout/rolloutlab.py", "down"],
                       cwd=REPO, env=env, capture_output=True, timeout=120)


def records(report: Path) -> dict[str, dict[str, Any]]:
    summary = report / "summary.json"
    return {r["host"]: r for r in json.loads(summary.read_text())} if summary.exists() else {}


def tail(proc: subprocess.CompletedProcess[str], n: int = 6000) -> str:
    return (proc.stdout + proc.stderr)[-n:]


def start_monitors(fleet: Fleet) -> None:
    """On every host: a ping through its second NIC every 0.2 s, and a scrape of
    its exporter (scrape_monitor)."""
    for h in fleet.hosts:
        fleet.sh(h, "rm -f /run/vpsnet-test-ping.log\n"
                    f"setsid nohup ping -n -i 0.2 {fleet.peers[h]} "
                    ">/run/vpsnet-test-ping.log 2>&1 &\n"
                    "echo $! >/run/vpsnet-test-ping.pid\n")
        scrape_monitor.start(fleet.lab, h)


def stop_monitors(fleet: Fleet) -> dict[str, tuple[str, list[Scrape]]]:
    """host -> (ping summary, scrapes)"""
    out = {}
    for h in fleet.hosts:
        # by pid: a pattern would also match this very shell's command line
        fleet.sh(h, "kill -INT $(cat /run/vpsnet-test-ping.pid); sleep 1")
        ping = fleet.sh(h, "cat /run/vpsnet-test-ping.log")
        out[h] = (ping, scrape_monitor.stop(fleet.lab, h))
    return out


def check_upgraded_without_a_break(fleet: Fleet, version: str, dpkg_before: dict[str, int],
                                   monitors: dict[str, tuple[str, list[Scrape]]]) -> None:
    """Every host on VERSION after one package upgrade each (dpkg's log since
    DPKG_BEFORE), dpkg clean, no ping lost through its NIC and its metrics served
    throughout (MONITORS, from start_monitors before the rollout)."""
    assert fleet.versions() == {h: (version, version) for h in fleet.hosts}
    for h in fleet.hosts:
        new = fleet.dpkg_log(h)[dpkg_before[h]:]
        installs = [ln for ln in new if re.search(
            r" (install|upgrade) (vpsnet-dkms:all|vpsnet-kmod-\S+:amd64) ", ln)]
        # one upgrade each, also for a canary or a host a killed run left behind
        assert len(installs) == 1, (h, installs)
        assert fleet.sh(h, "dpkg --audit") == ""
        ping, scrapes = monitors[h]
        m = re.search(r"(\d+) packets transmitted, (\d+) received", ping)
        assert m and int(m.group(1)) > 100 and m.group(1) == m.group(2), (h, ping[-500:])
        # metrics kept flowing: the upgrade of vpsnet-tools reloads the exporter,
        # which hands its port to the new code, so no scrape is refused (a restart
        # refused them for 9.8-15.3 s in an earlier run: Python starts slowly on
        # a loaded TCG guest) and no gap reaches a 15 s Prometheus scrape interval;
        # the module was away for at most a couple of scrapes around its reload;
        # the module's version label and the exporter's own version end on VERSION
        assert scrapes, h
        assert [s for s in scrapes if not s.ok] == [], h
        assert max_gap(scrapes) <= 10, h
        down = [s for s in scrapes if s.up == "0.0"]
        assert len(down) <= 4, (h, down)
        last = scrapes[-1]
        assert (last.module_version, last.exporter_version) == (version, version), (h, last)


Deploy = Callable[[str, Path], subprocess.CompletedProcess[str]]


def halted_at_canary(fleet: Fleet, version: str, report: Path, current: str = "1.1.0",
                     deploy: Deploy | None = None) -> dict[str, Any]:
    """deploy.yml of VERSION (run by DEPLOY(version, report), by default the
    checkout's deploy.yml) fails at the first region's canary, which is rolled
    back to CURRENT and healthy; no other host is touched. The canary's record."""
    canary = fleet.hosts[0]
    before = fleet.versions()
    logs = {h: len(fleet.dpkg_log(h)) for h in fleet.hosts}
    r = (deploy or (lambda v, rep: fleet.playbook(
        "deploy.yml", "-e", f"vpsnet_version={v}", report=rep)))(version, report)
    assert r.returncode != 0, tail(r)
    recs = records(report)
    assert list(recs) == [canary], tail(r)  # the canary of the first region, nobody else
    rec = recs[canary]
    assert rec["outcome"] == "rolled_back" and rec["before"] == current, rec
    assert rec["after"] == current and rec["target"] == version, rec
    assert f"rolled back to {current} (healthy)" in " ".join(r.stdout.split()), tail(r)
    assert fleet.versions() == before == {h: (current, current) for h in fleet.hosts}
    assert fleet.healthy(canary, current)
    for h in fleet.hosts[1:]:  # untouched: not even an install attempt in their logs
        assert len(fleet.dpkg_log(h)) == logs[h], h
    assert "Summarise the rollout" not in r.stdout
    return rec


def check_breaking_abi_stopped(rec: dict[str, Any]) -> None:
    """The canary's record of 2.0.0 (link_flaps_total renamed, ABI major unchanged)."""
    assert rec["abi_verdict"] == "breaking", rec
    assert any("vpsnet_link_flaps_total" in f for f in rec["abi_findings"]), rec
    assert "breaking interface change without an ABI major bump" in rec["failure"], rec


def check_unhealthy_stopped(rec: dict[str, Any]) -> None:
    """The canary's record of 1.2.0 (a compatible ABI, built unhealthy)."""
    assert rec["abi_verdict"] == "compatible", rec
    assert rec["health"].startswith("unhealthy"), rec
    assert "Wait until every device is healthy" in rec["failure"], rec


FLEET_SIGNER = "vpsnet lab fleet module signing key"


def check_fresh_prebuilt(fleet: Fleet, version: str) -> None:
    """Every host on VERSION from its running kernel's vpsnet-kmod package, signed
    with the fleet key, the one modprobe finds (no DKMS; the lab image carries a
    compiler for the DKMS tests, so that is not checked), healthy, dpkg clean."""
    assert fleet.versions() == {h: (version, version) for h in fleet.hosts}
    for h in fleet.hosts:
        assert fleet.healthy(h, version), h
        kernel = fleet.sh(h, "uname -r").strip()
        installed = fleet.sh(h, "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n'"
                                f" vpsnet-kmod-{kernel} vpsnet-dkms vpsnet-tools 2>/dev/null; true")
        assert sorted(ln.split()[1:] for ln in installed.splitlines() if ln.startswith("ii ")) \
            == [[f"vpsnet-kmod-{kernel}", version], ["vpsnet-tools", version]], (h, installed)
        module = fleet.sh(h, "modinfo -n vpsnet; modinfo -F signer vpsnet; dpkg --audit")
        assert module.splitlines() == [f"/lib/modules/{kernel}/updates/vpsnet.ko",
                                       FLEET_SIGNER], (h, module)
