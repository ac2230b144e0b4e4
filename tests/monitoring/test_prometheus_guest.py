"""A real Prometheus on the host scrapes vpsnet-exporter running in the lab guests.

The module is built on the host against each guest kernel's headers (the
same Debian packages; building under TCG takes minutes) and loaded in the
guest; the exporter is installed as the vpsnet_exporter role's copy mode
lays it out (the hardened unit under systemd, DynamicUser; running the role
itself costs minutes on TCG guests) and reached through the lab's forwarded
port. Prometheus
(Debian's, on loopback, temp config and storage) scrapes every second and
evaluates a copy of monitoring/prometheus/vpsnet.rules.yml whose `for:`
durations are shortened. Everything is undone in teardown.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from vpsnet_lab import prometheus, scrape_monitor
from vpsnet_lab.fleet import Lab
from vpsnet_lab.prometheus import Prometheus
from vpsnet_lab.scrape_monitor import max_gap

from .vpsnet_promql import TOP, all_exprs

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]

GUESTS = ("aws61", "gcp612")
EXPORTER_PORT = 19462
REMOTE = "/tmp/vpsnet-exporter-test"


def _say(msg: str) -> None:
    print(f"[exporter-test] {msg}", file=sys.__stderr__, flush=True)


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60, step: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except (requests.RequestException, KeyError, IndexError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def _build_module(kver: str, dest: Path) -> Path:
    """Build vpsnet.ko on the host against the guest kernel's headers (TCG is slow)."""
    src = dest / kver / "driver-src"
    shutil.copytree(TOP / "driver-src", src, ignore=shutil.ignore_patterns(
        "*.o", "*.ko", "*.mod", "*.mod.c", "*.cmd", "modules.order", "Module.symvers",
        ".*", "vpsnet_config.h"))
    shutil.copy(TOP / "VERSION", src.parent / "VERSION")
    r = subprocess.run(["make", "-C", str(src), f"KVER={kver}"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"vpsnet.ko for {kver}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return src / "vpsnet.ko"


def _load_module(lab: Lab, guest: str, ko: Path) -> None:
    lab.ssh(guest, f"rmmod vpsnet 2>/dev/null; rm -rf {REMOTE}; mkdir -p {REMOTE}")
    lab.put(guest, ko, f"{REMOTE}/vpsnet.ko")
    r = lab.ssh(guest, f"insmod {REMOTE}/vpsnet.ko")
    assert r.rc == 0, f"{guest}: insmod failed: {r.stdout}{r.stderr}"


def _install_exporter(lab: Lab, guest: str, tmp: Path) -> None:
    """What the vpsnet_exporter role does in copy mode, without Ansible's per-task cost
    (a role run takes minutes on TCG guests)."""
    tgz = tmp / "tools.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(TOP / "tools" / "vpsnet_tools", "vpsnet_tools",
                filter=lambda ti: None if "__pycache__" in ti.name else ti)
        tar.add(TOP / "packaging" / "systemd" / "vpsnet-exporter.service",
                "vpsnet-exporter.service")
    lab.put(guest, tgz, "/tmp/vpsnet-exporter-tools.tgz")
    wrapper = ("#!/usr/bin/python3\nimport sys\n"
               "sys.path.insert(0, \"/usr/local/lib/vpsnet-exporter\")\n"
               "from vpsnet_tools.exporter import main\nsys.exit(main())\n")
    dropin = ("[Service]\nExecStart=\n"
              "ExecStart=/usr/local/bin/vpsnet-exporter $VPSNET_EXPORTER_ARGS\n")
    r = lab.ssh(guest, "set -e; mkdir -p /usr/local/lib/vpsnet-exporter "
                "/etc/systemd/system/vpsnet-exporter.service.d; "
                "cd /usr/local/lib/vpsnet-exporter && tar xzf /tmp/vpsnet-exporter-tools.tgz; "
                "mv vpsnet-exporter.service /etc/systemd/system/; "
                "rm /tmp/vpsnet-exporter-tools.tgz; "
                f"printf '{wrapper}' >/usr/local/bin/vpsnet-exporter; "
                "chmod 0755 /usr/local/bin/vpsnet-exporter; "
                f"printf '{dropin}' >/etc/systemd/system/vpsnet-exporter.service.d/ansible.conf; "
                f"echo 'VPSNET_EXPORTER_ARGS=\"--listen :{EXPORTER_PORT}\"' "
                ">/etc/default/vpsnet-exporter; "
                "systemctl daemon-reload; systemctl enable --now vpsnet-exporter.service")
    assert r.rc == 0, f"{guest}: {r.stdout}{r.stderr}"
    check = (f"systemctl is-active vpsnet-exporter.service && "
             f"python3 -c 'import urllib.request as u; "
             f"u.urlopen(\"http://127.0.0.1:{EXPORTER_PORT}/metrics\", timeout=5)'")
    deadline = time.monotonic() + 60
    while lab.ssh(guest, check).rc != 0:
        if time.monotonic() > deadline:
            diag = lab.ssh(guest, "systemctl status --no-pager vpsnet-exporter; "
                           "journalctl -u vpsnet-exporter --no-pager | tail -30")
            raise AssertionError(f"{guest}: vpsnet-exporter not serving:\n{diag.stdout}")
        time.sleep(2)


def _cleanup_guest(lab: Lab, guest: str) -> None:
    lab.ssh(guest, "systemctl disable --now vpsnet-exporter.service 2>/dev/null; "
            "rm -rf /etc/systemd/system/vpsnet-exporter.service "
            "/etc/systemd/system/vpsnet-exporter.service.d /etc/default/vpsnet-exporter "
            "/usr/local/bin/vpsnet-exporter /usr/local/lib/vpsnet-exporter; "
            f"systemctl daemon-reload; rmmod vpsnet 2>/dev/null; rm -rf {REMOTE}; true")


@pytest.fixture(scope="module")
def exporter_lab(lab: Lab) -> Iterator[Lab]:
    """vpsnet.ko loaded and vpsnet-exporter.service running in both guests."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vpsnet-exp-") as tmp:
        try:
            errors: list[BaseException] = []

            def load(g: str) -> None:
                try:
                    kver = lab.ssh(g, "uname -r", check=True).stdout.strip()
                    _load_module(lab, g, _build_module(kver, Path(tmp)))
                except BaseException as e:  # reported below
                    errors.append(e)

            threads = [threading.Thread(target=load, args=(g,)) for g in GUESTS]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            _say(f"module built and loaded in {time.monotonic() - started:.0f}s")
            for g in GUESTS:
                _install_exporter(lab, g, Path(tmp))
            _say(f"exporter running in {time.monotonic() - started:.0f}s")
            yield lab
        finally:
            try:
                lab.link("aws61", "eth2", up=True)
            except Exception as e:  # keep cleaning
                _say(f"link up failed: {e}")
            for g in GUESTS:
                _cleanup_guest(lab, g)


@pytest.fixture(scope="module")
def prom(exporter_lab: Lab) -> Iterator[Prometheus]:
    spec = exporter_lab.spec
    ports = {g.name: next(h for gp, h in g.forwards if gp == EXPORTER_PORT) for g in spec.guests}
    # the project's rules with every `for:` at 2 s: alerts fire within seconds
    with prometheus.running(ports, spec.base_port + 450, label="guest") as p:
        wait_for("both exporters up with the module",
                 lambda: len(p.query('vpsnet_up{job="vpsnet"} == 1')) == 2, 60)
        yield p


def _guest_nics(lab: Lab, guest: str) -> set[str]:
    out = lab.ssh(guest, "for d in /sys/class/net/*; do [ -e $d/device/driver ] && "
                  "echo ${d##*/} $(basename $(readlink $d/device/driver)); done; true",
                  check=True).stdout
    return {n for n, drv in (line.split() for line in out.splitlines())
            if drv in ("virtio_net", "ena", "gve")}


def test_unit_runs_hardened(exporter_lab: Lab) -> None:
    for g in GUESTS:
        st = exporter_lab.ssh(g, "systemctl show -p ActiveState,User,DynamicUser "
                              "vpsnet-exporter.service", check=True).stdout
        assert "ActiveState=active" in st and "DynamicUser=yes" in st
        sec = exporter_lab.ssh(g, "systemd-analyze security vpsnet-exporter.service | tail -1",
                               check=True).stdout
        score = float(re.search(r"level for \S+: (\d+\.\d+)", sec).group(1))  # type: ignore[union-attr]
        _say(f"{g}: systemd-analyze security: {sec.strip()}")
        assert score <= 2.0
        # The exporter cannot write the module's files nor the rest of the system.
        uid = exporter_lab.ssh(g, "ps -o uid= -p $(systemctl show -p MainPID --value "
                               "vpsnet-exporter.service)", check=True).stdout.strip()
        assert 61184 <= int(uid) <= 65519, uid  # systemd's DynamicUser= range


def test_series_for_every_nic_and_queue(exporter_lab: Lab, prom: Prometheus) -> None:
    for g in GUESTS:
        want = _guest_nics(exporter_lab, g)
        got = {r["metric"]["device"] for r in prom.query(f'vpsnet_link_up{{guest="{g}"}}')}
        assert got == want, g
        for fam in ("vpsnet_health_state", "vpsnet_device_packets_total",
                    "vpsnet_link_flaps_total", "vpsnet_queue_packets_total"):
            devs = {r["metric"]["device"] for r in prom.query(f'{fam}{{guest="{g}"}}')}
            assert devs == want, (g, fam)
        assert prom.query(f'vpsnet_softnet_processed_total{{guest="{g}"}}')
        assert prom.query(f'vpsnet_info{{guest="{g}"}}')[0]["metric"]["version"]
    for fam in ("vpsnet_queue_packets_total", "vpsnet_queue_bytes_total"):
        res = prom.query(f'{fam}{{guest="aws61",device="eth1"}}')
        got_q = {(r["metric"]["direction"], r["metric"]["queue"]) for r in res}
        assert got_q == {(d, str(q)) for d in ("rx", "tx") for q in range(4)}, fam
    res = prom.query('vpsnet_txq_stopped{guest="aws61",device="eth1"}')
    txq = {r["metric"]["queue"] for r in res}
    assert txq == {"0", "1", "2", "3"}


def test_flap_visible_and_link_down_alert(exporter_lab: Lab, prom: Prometheus) -> None:
    sel = 'guest="aws61",device="eth2"'
    exporter_lab.link("aws61", "eth2", up=False)
    try:
        wait_for("link down scraped", lambda: prom.query(f"vpsnet_link_up{{{sel}}} == 0"), 30)

        def alert() -> list[dict[str, Any]]:
            return [a for a in prom.alerts() if a["labels"]["alertname"] == "VpsnetLinkDown"
                    and a["labels"].get("guest") == "aws61" and a["labels"]["device"] == "eth2"
                    and a["state"] == "firing"]

        fired = wait_for("VpsnetLinkDown firing in /api/v1/alerts", alert, 30)
        assert fired[0]["annotations"]["summary"].startswith("eth2 on 127.0.0.1:")
    finally:
        exporter_lab.link("aws61", "eth2", up=True)
    wait_for("link up again", lambda: prom.query(f"vpsnet_link_up{{{sel}}} == 1"), 30)
    inc = wait_for("flap counter increase through PromQL",
                   lambda: prom.query(f"increase(vpsnet_link_flaps_total{{{sel}}}[5m]) >= 1"), 30)
    assert float(inc[0]["value"][1]) >= 1
    wait_for("alert resolved", lambda: not [
        a for a in prom.alerts() if a["labels"]["alertname"] == "VpsnetLinkDown"
        and a["labels"].get("device") == "eth2"] or None, 30)


def test_module_unload_reload_while_scraped(exporter_lab: Lab, prom: Prometheus) -> None:
    g = "gcp612"
    exporter_lab.ssh(g, "rmmod vpsnet", check=True)
    try:
        wait_for("vpsnet_up 0 after rmmod",
                 lambda: prom.query(f'vpsnet_up{{guest="{g}"}} == 0'), 30)
        assert not prom.query(f'vpsnet_link_up{{guest="{g}"}}')  # no stale families served
        assert prom.query(f'up{{guest="{g}"}} == 1')  # the exporter keeps serving
    finally:
        exporter_lab.ssh(g, f"insmod {REMOTE}/vpsnet.ko", check=True)
    wait_for("vpsnet_up 1 after reload", lambda: prom.query(f'vpsnet_up{{guest="{g}"}} == 1'), 30)
    log = exporter_lab.ssh(g, "journalctl -u vpsnet-exporter --no-pager -o cat", check=True).stdout
    assert "vpsnet module not loaded" in log
    errs = prom.query(f'sum(vpsnet_exporter_scrape_errors_total{{guest="{g}"}})')
    assert float(errs[0]["value"][1]) == 0


def _unit(lab: Lab, guest: str) -> dict[str, str]:
    out = lab.ssh(guest, "systemctl show -p ActiveState,MainPID,NRestarts "
                  "vpsnet-exporter.service", check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_reload_hands_over_to_the_installed_code_without_a_refused_scrape(
    exporter_lab: Lab, prom: Prometheus
) -> None:
    """What the packages do on upgrade: `systemctl reload` starts the code now on
    disk (here the same tools, saying another version) as a new process that takes
    the listening socket over, under the guest's real systemd and the hardened unit."""
    g = "aws61"
    before = _unit(exporter_lab, g)
    exporter_lab.ssh(g, "echo '__version__ = \"0.0.0+reloaded\"' "
                     ">>/usr/local/lib/vpsnet-exporter/vpsnet_tools/__init__.py", check=True)
    scrape_monitor.start(exporter_lab, g, interval=0.2)
    try:
        time.sleep(2)
        reload = exporter_lab.ssh(g, "systemctl reload vpsnet-exporter.service", timeout=180)
        time.sleep(2)
    finally:
        scrapes = scrape_monitor.stop(exporter_lab, g)
    after = _unit(exporter_lab, g)
    journal = exporter_lab.ssh(g, "journalctl -u vpsnet-exporter --no-pager -o cat | tail -20",
                               check=True).stdout
    assert reload.rc == 0, (reload.stdout, reload.stderr, journal)
    assert after["ActiveState"] == "active" and after["NRestarts"] == before["NRestarts"], after
    assert after["MainPID"] not in ("0", before["MainPID"]), (before, after)
    assert f"handed over to pid {after['MainPID']}" in journal, journal
    assert [s for s in scrapes if not s.ok] == [], scrapes
    served = [s.exporter_version for s in scrapes]
    assert served[0] != "0.0.0+reloaded" and served[-1] == "0.0.0+reloaded", served
    uid = exporter_lab.ssh(g, f"ps -o uid= -p {after['MainPID']}", check=True).stdout.strip()
    assert 61184 <= int(uid) <= 65519, uid  # still the unit's DynamicUser
    # systemd supervises the new process: its death is noticed (Restart=on-failure)
    exporter_lab.ssh(g, f"kill -9 {after['MainPID']}", check=True)
    restarted = wait_for("the killed exporter restarted by systemd", lambda: (
        (u := _unit(exporter_lab, g))["ActiveState"] == "active"
        and u["MainPID"] not in ("0", after["MainPID"])
        and int(u["NRestarts"]) == int(after["NRestarts"]) + 1 and u), 90, 2)
    assert restarted["MainPID"] != after["MainPID"]
    up = prom.query(f'min_over_time(up{{guest="{g}"}}[30s])')
    _say(f"{g}: reload: {len(scrapes)} scrapes, none refused, longest gap "
         f"{max_gap(scrapes):.1f} s; Prometheus (900 ms timeout) min up over it: {up}")


def test_every_promql_expression_accepted(prom: Prometheus) -> None:
    bad = []
    for where, expr in all_exprs():
        r = requests.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        if r["status"] != "success":
            bad.append(f"{where}: {r.get('errorType')}: {r.get('error')}")
    assert not bad, "\n".join(bad)
