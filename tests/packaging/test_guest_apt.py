"""Guest-side packaging tests: real apt, dpkg and DKMS inside the lab guests
(Debian 12 on the 6.1 and the 6.12 cloud kernel), installing from the signed
repository the session builds (conftest.py `build`), served from host loopback
and reached by the guests as http://10.0.2.101/ (no `trusted=yes`: deb822
source with Signed-By the exported public key, copied into the guest).

One scenario per guest runs in a module fixture, both guests in parallel (DKMS
compiles under TCG are the slow part; every build is shared by several tests);
the tests assert on the snapshots each step recorded:

  6.1 guest  (upgrade path): install 1.0.0 -> modprobe -> tampered Packages
             (update refused, 1.0.0 stays loaded) -> upgrade to 1.1.0 -> reload
             -> downgrade to 1.0.0 -> purge
  6.12 guest: install 1.0.0 -> modprobe -> tampered .deb (install refused, 1.0.0
             stays loaded) -> the 6.1 kernel's headers installed (DKMS hook builds
             for 6.1 too) -> purge (both kernels) -> headers removed -> headers of
             the running kernel hidden: install does not leave dpkg half-configured
             and says what to install -> restored

Each guest has its own view of the server (/<guest>/...), so the two scenarios
can serve different repository states at the same time. Every guest is restored
at the end (packages purged, sources/keys removed, headers back, other kernel's
headers removed, module unloaded): other test layers share the same guests.

Run with a private lab:
  VPSNET_TEST_LAB=pkg VPSNET_TEST_BASE_PORT=15022 pytest tests/packaging/test_guest_apt.py
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from pkgtest.apt_guest import (
    APT,
    HIDDEN,
    KERNEL_SOURCES,
    SOURCES,
    GuestRun,
    Repos,
    Scenario,
    Step,
    make_repos,
    restore_script,
)
from pkgtest.build import Build
from pkgtest.guest import KEYRING, kernel_sources_for, put_text, sources_for
from pkgtest.repo_server import RepoServer

from vpsnet_lab import scrape_monitor
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import kernel_releases

pytestmark = [pytest.mark.lab, pytest.mark.packaging, pytest.mark.heavy]


# ---------------------------------------------------------- scenarios ---


def prepare(g: GuestRun, build: Build, work: Path) -> None:
    lab, guest = g.lab, g.sc.guest
    rc, out = g.sh(restore_script([], []), timeout=300)  # leftovers, another layer's module
    assert rc == 0, f"{guest}: could not clean up before the tests: {out}"
    rc, out = g.sh("dpkg --audit && ! test -d /sys/module/vpsnet", timeout=60)
    assert rc == 0 and not out.strip(), f"{guest}: not clean before the tests: {out}"
    g.sh("install -d -m 0755 /etc/apt/keyrings", timeout=30)
    lab.put(guest, build.repo / "vpsnet-archive-keyring.gpg", KEYRING)
    put_text(lab, guest, sources_for(build, guest), SOURCES, work)


def install_and_load(g: GuestRun, server: RepoServer, repos: Repos) -> None:
    """The first version from the repository, and the module loaded (both paths)."""
    server.routes[g.sc.guest] = repos.old
    g.step("update", "apt-get update")
    g.step("install", f"{APT} install vpsnet-dkms")
    g.step("modprobe", "modprobe vpsnet")


def upgrade_path(g: GuestRun, server: RepoServer, repos: Repos, build: Build) -> None:
    guest, v1 = g.sc.guest, build.version
    install_and_load(g, server, repos)
    server.routes[guest] = repos.bad_packages
    g.step("update_tampered_packages", "apt-get update")
    g.step("install_after_tampered_packages", f"{APT} install vpsnet-dkms vpsnet-tools")
    # what the vpsnet_exporter role does: the upgrade must bring it back on the new version
    g.step("exporter_on", "systemctl enable --now vpsnet-exporter && sleep 3")
    server.routes[guest] = repos.full
    scrape_monitor.start(g.lab, guest)
    try:
        g.step("upgrade", f"apt-get update && {APT} install vpsnet-dkms vpsnet-tools; "
                          "rc=$?; sleep 2; exit $rc")
    finally:
        g.sc.scrapes = scrape_monitor.stop(g.lab, guest)
    g.step("reload", "modprobe -r vpsnet && modprobe vpsnet")
    g.step(
        "downgrade",
        f"{APT} install --allow-downgrades vpsnet-dkms={v1} vpsnet-tools={v1}",
    )
    g.step("purge", "systemctl disable --now vpsnet-exporter; modprobe -r vpsnet; "
                    f"{APT} purge vpsnet-dkms vpsnet-tools")


def headers_path(g: GuestRun, server: RepoServer, repos: Repos, build: Build,
                 other_kernel: str, work: Path) -> None:
    guest = g.sc.guest
    install_and_load(g, server, repos)
    # A modified .deb of the next version: the upgrade is refused.
    server.routes[guest] = repos.bad_deb
    g.step("update_tampered_deb", "apt-get update")
    g.step("install_tampered_deb", f"{APT} install vpsnet-dkms")
    # Another kernel's headers, from a second signed repository.
    server.routes[guest] = repos.full
    server.kernels = repos.kernels
    put_text(g.lab, guest, kernel_sources_for(guest), KERNEL_SOURCES, work)
    g.step(
        "other_headers",
        f"apt-get update && {APT} install linux-headers-{other_kernel}",
    )
    g.step("purge", f"modprobe -r vpsnet; {APT} purge vpsnet-dkms vpsnet-tools")
    g.step(
        "remove_other_headers",
        f"{APT} purge {' '.join(repos.kernel_packages)} && rm -f {KERNEL_SOURCES} && "
        f"rm -rf /lib/modules/{other_kernel} && apt-get update",
    )
    # Headers of the running kernel missing.
    g.step(
        "install_without_headers",
        f"mv /lib/modules/$(uname -r)/build /lib/modules/$(uname -r)/{HIDDEN} && "
        f"{APT} install vpsnet-dkms",
    )
    g.step("dpkg_status", "dpkg -s vpsnet-dkms | grep '^Status:'; dpkg --audit")


@dataclass
class Run:
    build: Build
    by_kernel: dict[str, Scenario]
    repos: Repos
    other_kernel: str

    def __getitem__(self, series: str) -> Scenario:
        return self.by_kernel[series]


@pytest.fixture(scope="module")
def guest_apt(lab: Lab, repo_host_port: int, build: Build,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    releases = kernel_releases()
    guests = {g.kernel: g.name for g in lab.spec.guests}
    assert {"6.1", "6.12"} <= set(guests), f"the session lab needs a 6.1 and a 6.12 guest: {guests}"
    work = tmp_path_factory.mktemp("guest-apt")
    # The 6.12 guest gets the 6.1 headers: they need no kernel image (6.12's
    # headers depend on the 6.12 image).
    other_kernel = releases["6.1"]
    repos = make_repos(build, work, other_kernel)
    scen = {s: Scenario(guests[s], releases[s]) for s in ("6.1", "6.12")}
    server = RepoServer(repo_host_port)
    # What the restore removes besides vpsnet: only the other kernel's headers
    # packages and modules dir that were not there before (the 6.1 guest's own
    # running kernel headers are these very packages).
    ours: dict[str, tuple[list[str], list[str]]] = {s: ([], []) for s in scen}

    def mine(g: GuestRun) -> tuple[list[str], list[str]]:
        if g.sc.kernel == other_kernel:
            return [], []
        _, out = g.sh(
            "dpkg-query -W -f='${Package} ${Status}\\n' "
            + " ".join(repos.kernel_packages) + " 2>/dev/null; "
            + f"test -e /lib/modules/{other_kernel} && echo DIR-EXISTS",
            timeout=60,
        )
        before = {ln.split()[0] for ln in out.splitlines() if ln.endswith(" installed")}
        pkgs = [p for p in repos.kernel_packages if p not in before]
        return pkgs, ([] if "DIR-EXISTS" in out else [other_kernel])

    def go(series: str, body: Callable[[GuestRun], None]) -> None:
        g = GuestRun(lab, scen[series])
        try:
            ours[series] = mine(g)
            prepare(g, build, work)
            body(g)
        except Exception as exc:  # recorded; the tests that need later steps say so
            scen[series].error = f"{type(exc).__name__}: {exc}"
        finally:
            server.routes[g.sc.guest] = None
            try:
                g.step("restored", restore_script(*ours[series]))
            except Exception as exc:
                scen[series].error += f"; restoring failed: {type(exc).__name__}: {exc}"

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [
                pool.submit(go, "6.1", lambda g: upgrade_path(g, server, repos, build)),
                pool.submit(
                    go,
                    "6.12",
                    lambda g: headers_path(g, server, repos, build, other_kernel, work),
                ),
            ]
            for job in jobs:
                job.result()
        yield Run(build, scen, repos, other_kernel)
    finally:
        server.close()
        for series, s in scen.items():  # safety net (idempotent), also after an ssh error
            try:
                lab.ssh(s.guest, restore_script(*ours[series]), timeout=300)
            except Exception as exc:
                print(f"restoring {s.guest} failed: {exc}")


# -------------------------------------------------------------- tests ---


def installed(step: Step, package: str, version: str) -> bool:
    return step.status.get(package) == f"install ok installed {version}"


def dkms_line(version: str, kernel: str) -> str:
    return f"vpsnet/{version}, {kernel}, x86_64: installed"


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_apt_install_builds_and_loads_for_running_kernel(guest_apt: Run, series: str) -> None:
    sc = guest_apt[series]
    v = guest_apt.build.version
    update = sc["update"]
    assert update.rc == 0, update
    assert not re.search(r"^(W|E|Err):", update.output, re.M), update
    # the signed source: Signed-By the copied key, never trusted=yes
    sources = update.text("sources")
    assert f"Signed-By: {KEYRING}" in sources and "trusted" not in sources.lower(), sources
    install = sc["install"]
    assert install.rc == 0, install
    assert installed(install, "vpsnet-dkms", v), install
    assert installed(install, "vpsnet-tools", v), install  # Recommends
    assert dkms_line(v, sc.kernel) in install.text("dkms"), install
    assert install.modules == {sc.kernel: v}, install
    assert install["src"] == [f"/usr/src/vpsnet-{v}"]
    modprobe = sc["modprobe"]
    assert modprobe.rc == 0, modprobe
    assert modprobe["loaded"] == [v], modprobe
    assert modprobe["modinfo"] == [v], modprobe
    assert modprobe["metrics"] == ["present"], modprobe


def test_tampered_packages_index_is_refused(guest_apt: Run) -> None:
    sc = guest_apt["6.1"]
    v = guest_apt.build.version
    up = sc["update_tampered_packages"]
    assert up.rc != 0, up
    assert re.search(r"Hash Sum mismatch|File has unexpected size", up.output), up
    # the old (verified) index is still what apt uses: nothing to upgrade to
    assert up["candidate"] == [v], up
    after = sc["install_after_tampered_packages"]
    assert installed(after, "vpsnet-dkms", v), after
    assert after["loaded"] == [v] and after.modules == {sc.kernel: v}, after
    assert dkms_line(v, sc.kernel) in after.text("dkms"), after
    # shipped disabled, and a fresh install starts nothing
    assert after["exporter"][:2] == ["disabled", "inactive"], after


def test_tampered_deb_is_refused(guest_apt: Run) -> None:
    sc = guest_apt["6.12"]
    v, v2 = guest_apt.build.version, guest_apt.build.version2
    up = sc["update_tampered_deb"]
    assert up.rc == 0, up  # the indexes are intact
    assert up["candidate"] == [v2], up
    inst = sc["install_tampered_deb"]
    assert inst.rc != 0, inst
    assert "Hash Sum mismatch" in inst.output, inst
    # the previous state: 1.0.0 still installed, built and loaded, no 1.1.0 anywhere
    assert installed(inst, "vpsnet-dkms", v), inst
    assert inst["loaded"] == [v] and inst.modules == {sc.kernel: v}, inst
    assert inst["src"] == [f"/usr/src/vpsnet-{v}"], inst
    assert inst["audit"] == [], inst


def test_upgrade_replaces_the_old_dkms_tree(guest_apt: Run) -> None:
    sc = guest_apt["6.1"]
    v, v2 = guest_apt.build.version, guest_apt.build.version2
    up = sc["upgrade"]
    assert up.rc == 0, up
    assert installed(up, "vpsnet-dkms", v2) and installed(up, "vpsnet-tools", v2), up
    assert up["src"] == [f"/usr/src/vpsnet-{v2}"], up
    assert up["dkmstree"] == [v2], up
    # DKMS's own per-kernel link names the active build
    assert up["dkmsactive"] == [f"{v2}/{sc.kernel}/x86_64"], up
    assert dkms_line(v2, sc.kernel) in up.text("dkms"), up
    assert f"vpsnet/{v}," not in up.text("dkms"), up
    assert up.modules == {sc.kernel: v2}, up
    assert up["modinfo"] == [v2], up
    reload = sc["reload"]
    assert reload.rc == 0 and reload["loaded"] == [v2], reload
    assert reload["metrics"] == ["present"], reload


def test_upgrade_reloads_a_running_exporter_without_a_refused_scrape(guest_apt: Run) -> None:
    sc = guest_apt["6.1"]
    v, v2 = guest_apt.build.version, guest_apt.build.version2
    on, up = sc["exporter_on"], sc["upgrade"]
    assert on.rc == 0 and on["exporter"][:2] == ["enabled", "active"], on
    # running again after the upgrade, as a new process (the new version's code)
    assert up["exporter"][:2] == ["enabled", "active"], up
    assert up["exporter"][2] not in ("0", on["exporter"][2]), (on["exporter"], up["exporter"])
    # the postinst reloaded it: the old process served until the new one took its port
    assert sc.scrapes and [s for s in sc.scrapes if not s.ok] == [], sc.scrapes
    served = [s.exporter_version for s in sc.scrapes]
    assert served[0] == v and served[-1] == v2, served


def test_downgrade_with_explicit_version(guest_apt: Run) -> None:
    sc = guest_apt["6.1"]
    v, v2 = guest_apt.build.version, guest_apt.build.version2
    down = sc["downgrade"]
    assert down.rc == 0, down
    assert installed(down, "vpsnet-dkms", v) and installed(down, "vpsnet-tools", v), down
    assert down["src"] == [f"/usr/src/vpsnet-{v}"] and down["dkmstree"] == [v], down
    assert down["dkmsactive"] == [f"{v}/{sc.kernel}/x86_64"], down
    assert f"vpsnet/{v2}," not in down.text("dkms"), down
    assert down.modules == {sc.kernel: v} and down["modinfo"] == [v], down


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_purge_leaves_nothing(guest_apt: Run, series: str) -> None:
    """On the 6.12 guest the module was built for two kernels when purged."""
    sc = guest_apt[series]
    purge = sc["purge"]
    assert purge.rc == 0, purge
    assert purge.status == {} or all("not-installed" in s for s in purge.status.values()), purge
    assert purge["src"] == [] and purge["dkmstree"] == [] and purge["dkms"] == [], purge
    assert purge["dkmsactive"] == [], purge
    assert purge["modules"] == [], purge
    assert purge["loaded"] == [], purge
    assert purge["audit"] == [], purge


def test_other_kernels_headers_get_the_module_built(guest_apt: Run) -> None:
    sc = guest_apt["6.12"]
    v, other = guest_apt.build.version, guest_apt.other_kernel
    step = sc["other_headers"]
    assert step.rc == 0, step
    assert f"/lib/modules/{other}/build" in step["headers"], step
    dkms = step.text("dkms")
    assert dkms_line(v, other) in dkms and dkms_line(v, sc.kernel) in dkms, step
    assert step.modules == {sc.kernel: v, other: v}, step
    removed = sc["remove_other_headers"]
    assert removed.rc == 0, removed
    assert other not in removed["kernels"], removed
    assert removed["audit"] == [], removed


def test_missing_headers_do_not_leave_dpkg_half_configured(guest_apt: Run) -> None:
    sc = guest_apt["6.12"]
    v2 = guest_apt.build.version2
    step = sc["install_without_headers"]
    assert step.rc == 0, step
    assert f"/lib/modules/{sc.kernel}/build" not in step["headers"], step
    assert installed(step, "vpsnet-dkms", v2), step
    assert step["audit"] == [], step
    assert step.modules == {}, step
    assert f"apt-get install linux-headers-{sc.kernel}" in step.output, step
    status = sc["dpkg_status"]
    assert status.output.strip() == "Status: install ok installed", status


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_guest_restored(guest_apt: Run, series: str) -> None:
    """Other layers share these guests: nothing of ours is left behind."""
    sc = guest_apt[series]
    assert not sc.error, sc.error
    r = sc["restored"]
    assert r.rc == 0 and r["audit"] == [], r
    assert r.status == {} or all("not-installed" in s for s in r.status.values()), r
    assert r["sources"] == [] and r["loaded"] == [] and r["modules"] == [], r
    assert r["headers"] == [f"/lib/modules/{sc.kernel}/build"], r
    assert r["kernels"] == [sc.kernel], r
