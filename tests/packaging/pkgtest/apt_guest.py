"""The guest side of test_guest_apt.py: a snapshot of the package state after
every step on a guest (Step, Scenario, GuestRun), the restore that puts a
shared guest back, and the repository variants the scenarios serve. For
test_guest_apt.py only."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pkgtest.build import Build, repo_variant
from pkgtest.guest import KEYRING
from pkgtest.host import run
from pkgtest.kernel_debs import kernel_headers_debs, signed_deb_repo
from pkgtest.tamper import tamper_deb, tamper_packages
from vpsnet_lab.fleet import Lab
from vpsnet_lab.scrape_monitor import Scrape

SOURCES = "/etc/apt/sources.list.d/vpsnet.sources"
KERNEL_SOURCES = "/etc/apt/sources.list.d/vpsnet-lab-kernels.sources"
HIDDEN = "build.vpsnet-test-hidden"
APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Use-Pty=0"
STEP_TIMEOUT = 900

SNAPSHOT = r"""
echo @status
dpkg-query -W -f='${Package} ${Status} ${Version}\n' vpsnet-dkms vpsnet-tools 2>/dev/null
echo @dkms; dkms status vpsnet 2>/dev/null
echo @modules; for f in $(find /lib/modules -name 'vpsnet.ko*' 2>/dev/null); do
  echo "$(echo "$f" | cut -d/ -f4) $(modinfo -F version "$f")"; done
echo @src; ls -d /usr/src/vpsnet-* 2>/dev/null
echo @dkmstree; ls /var/lib/dkms/vpsnet 2>/dev/null | grep -v '^kernel-'
echo @dkmsactive; for l in /var/lib/dkms/vpsnet/kernel-*; do [ -L "$l" ] && readlink "$l"; done
echo @loaded; cat /sys/module/vpsnet/version 2>/dev/null
echo @modinfo; modinfo -F version vpsnet 2>/dev/null
echo @metrics; test -e /proc/net/vpsnet/metrics && echo present
echo @audit; dpkg --audit 2>&1
echo @candidate; apt-cache policy vpsnet-dkms 2>/dev/null | sed -n 's/^ *Candidate: //p'
echo @sources; cat /etc/apt/sources.list.d/*.sources 2>/dev/null
echo @headers; ls -d /lib/modules/*/build 2>/dev/null
echo @kernels; ls /lib/modules
echo @exporter; systemctl is-enabled vpsnet-exporter 2>/dev/null
systemctl is-active vpsnet-exporter 2>/dev/null; systemctl show -P MainPID vpsnet-exporter
"""


@dataclass
class Step:
    cmd: str
    rc: int
    output: str
    state: dict[str, list[str]]
    seconds: float

    def __getitem__(self, key: str) -> list[str]:
        return self.state.get(key, [])

    def text(self, key: str) -> str:
        return "\n".join(self[key])

    @property
    def status(self) -> dict[str, str]:
        """package -> 'install ok installed 1.0.0'"""
        return {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in self["status"]}

    @property
    def modules(self) -> dict[str, str]:
        """kernel -> version of the vpsnet.ko file installed for it"""
        return dict(ln.split() for ln in self["modules"] if len(ln.split()) == 2)

    def __str__(self) -> str:
        state = "\n".join(f"  {k}: {v}" for k, v in self.state.items())
        return f"$ {self.cmd}\nrc={self.rc} ({self.seconds:.0f}s)\n{self.output[-4000:]}\n{state}"


def parse_snapshot(out: str) -> dict[str, list[str]]:
    state: dict[str, list[str]] = {}
    key = ""
    for line in out.splitlines():
        if line.startswith("@"):
            key = line[1:].strip()
            state[key] = []
        elif key and line.strip():
            state[key].append(line.rstrip())
    return state


@dataclass
class Scenario:
    guest: str
    kernel: str
    steps: dict[str, Step] = field(default_factory=dict)
    scrapes: list[Scrape] = field(default_factory=list)  # during the upgrade
    error: str = ""

    def __getitem__(self, name: str) -> Step:
        if name not in self.steps:
            raise AssertionError(
                f"{self.guest}: step {name!r} did not run"
                + (f"; the scenario stopped: {self.error}" if self.error else "")
                + "\nsteps run: " + ", ".join(self.steps)
            )
        return self.steps[name]


class GuestRun:
    """Runs one guest's steps and records a snapshot after each."""

    def __init__(self, lab: Lab, scenario: Scenario) -> None:
        self.lab = lab
        self.sc = scenario

    def sh(self, cmd: str, timeout: float = 120) -> tuple[int, str]:
        r = self.lab.ssh(self.sc.guest, cmd, timeout=timeout)
        return r.rc, r.stdout + r.stderr

    def step(self, name: str, cmd: str) -> Step:
        t0 = time.monotonic()
        rc, out = self.sh(f"( {cmd} ) 2>&1", timeout=STEP_TIMEOUT)
        seconds = time.monotonic() - t0
        _, snap = self.sh(SNAPSHOT)
        s = Step(cmd=cmd, rc=rc, output=out, state=parse_snapshot(snap), seconds=seconds)
        self.sc.steps[name] = s
        # progress on the terminal (pytest captures stdout): DKMS under TCG is slow
        print(f"[guest-apt] {self.sc.guest}: {name} rc={rc} {seconds:.0f}s",
              file=sys.__stderr__, flush=True)
        return s


def restore_script(extra_packages: list[str], other_kernels: list[str]) -> str:
    """Put a guest back as the other test layers expect it (idempotent)."""
    pkgs = " ".join(["vpsnet-dkms", "vpsnet-tools", *extra_packages])
    rm_kernels = " ".join(shlex.quote(f"/lib/modules/{k}") for k in other_kernels)
    return f"""
systemctl disable --now vpsnet-exporter 2>/dev/null
rmmod vpsnet 2>/dev/null
K=$(uname -r)
if [ -e /lib/modules/$K/{HIDDEN} ]; then
  rm -f /lib/modules/$K/build; mv /lib/modules/$K/{HIDDEN} /lib/modules/$K/build
fi
installed=$(dpkg-query -W -f='${{Package}} ${{Status}}\\n' {pkgs} 2>/dev/null |
  awk '$4 != "not-installed" {{print $1}}')
[ -z "$installed" ] || {APT} purge $installed
rm -f {SOURCES} {KERNEL_SOURCES} {KEYRING}
rm -rf /var/lib/apt/lists/10.0.2.101_* /usr/src/vpsnet-* /var/lib/dkms/vpsnet {rm_kernels}
find /lib/modules -path '*/updates/dkms/vpsnet.ko*' -delete
apt-get clean
depmod -a
dpkg --audit
"""


def deb_package(deb: Path) -> str:
    return run(["dpkg-deb", "-f", str(deb), "Package"]).stdout.strip()


@dataclass
class Repos:
    old: Path  # VERSION only
    full: Path  # VERSION and the next version
    bad_packages: Path  # full, with a modified Packages index
    bad_deb: Path  # full, with the next version's vpsnet-dkms .deb modified
    kernels: Path  # the other kernel's headers (signed, same key)
    kernel_packages: list[str]


def make_repos(build: Build, work: Path, other_kernel: str) -> Repos:
    old = repo_variant(build, work / "old", [build.version])
    # Published after the old one, as a real release is: apt keeps the Release
    # it has when the server offers one with an older Date.
    time.sleep(1.1)
    full = repo_variant(build, work / "full", [build.version, build.version2])
    bad_packages = work / "bad-packages"
    shutil.copytree(full, bad_packages)
    tamper_packages(bad_packages)
    bad_deb = work / "bad-deb"
    shutil.copytree(full, bad_deb)
    tamper_deb(bad_deb, build.deb("vpsnet-dkms", build.version2).name)
    debs = kernel_headers_debs(other_kernel)
    kernels = signed_deb_repo(debs, work / "kernels", build.gnupghome)
    return Repos(old, full, bad_packages, bad_deb, kernels, [deb_package(d) for d in debs])
