"""Prebuilt modules on real guests (Debian 12, 6.1 and 6.12 cloud kernels): the
vpsnet_driver role choosing prebuilt or DKMS, and vpsnet-kmod against
vpsnet-dkms on one host, with real apt, dpkg, depmod, modprobe and DKMS.

Each story runs on its own guest and records a snapshot after every step;
the tests assert on the snapshots:

  gcp612 (6.12): role `auto` on a fresh host -> prebuilt, no DKMS; role at the
        next version -> prebuilt upgraded, reload loads it
  old61 (a guest of its own on the oldest 6.1 ABI of the matrix): role `auto`
        installs that ABI's package
  aws61 (6.1, newest ABI; two DKMS builds under TCG, 5-20 min each):
        the repository has no prebuilt modules -> role `auto` falls back to
        DKMS (1.0.0 built in the guest) -> vpsnet-kmod 1.0.0 installed beside
        it (both: the prebuilt wins) -> kmod upgraded to the next version ->
        kmod removed (DKMS's module again) -> kmod back and vpsnet-dkms purged
        (the prebuilt stays) -> role `auto` (prebuilt)

gcp612 and old61 run at the same time; all three stories are `heavy` (make
test-all). In make test the same claims (a fresh prebuilt install on 6.12 and on
the oldest 6.1 ABI, signed with the fleet key and the module modprobe finds; a
prebuilt upgrade) are made by the rollout story's core,
tests/molecule/test_molecule_rollout_core.py, through provision.yml and
deploy.yml.

Every session guest is put back as it was (packages purged, sources removed,
module unloaded); old61's lab is torn down.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from pkgtest.build import Build, without_kmods
from pkgtest.guest import lab_say, playbook_env, sections
from pkgtest.host import TOP, kernels, older_abi
from pkgtest.repo_server import RepoServer

from vpsnet_lab import inventory
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE

# the whole file: see the docstring for what make test runs instead
pytestmark = [pytest.mark.lab, pytest.mark.packaging, pytest.mark.heavy]

APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0"
FLEET_SIGNER = "vpsnet lab fleet module signing key"
OLD_LAB = CACHE / "lab-test-old-abi"
OLD_BASE_PORT = 13022
_say = lab_say("old-abi lab")
PLAYBOOK = """
- name: Repository and module, as provision.yml puts them on a host
  hosts: all
  gather_facts: false
  roles:
    - role: vpsnet_repo
    - role: vpsnet_driver
  post_tasks:
    - name: Keep the method the role used, for the test
      ansible.builtin.copy:
        content: "{{ vpsnet_driver_method_used }}\\n"
        dest: /run/vpsnet-test-method
        mode: "0644"
"""

SNAPSHOT = r"""
echo @packages
dpkg-query -W -f='${Package} ${db:Status-Abbrev}${Version}\n' 'vpsnet-*' 2>/dev/null \
  | grep ' ii ' | sed 's/ ii */ /'
echo @resolves; modinfo -n vpsnet 2>/dev/null
echo @resolved_version; modinfo -F version vpsnet 2>/dev/null
echo @signer; modinfo -F signer vpsnet 2>/dev/null
echo @loaded; cat /sys/module/vpsnet/version 2>/dev/null
echo @audit; dpkg --audit 2>&1
echo @dkms; ls /var/lib/dkms/vpsnet 2>/dev/null | grep -v '^kernel-'
echo @method; cat /run/vpsnet-test-method 2>/dev/null
echo @kernel; uname -r
"""
CLEANUP = (f"modprobe -r vpsnet 2>/dev/null; {APT} purge 'vpsnet-*' >/dev/null 2>&1; "
           "rm -f /etc/apt/sources.list.d/vpsnet.sources "
           "/etc/apt/keyrings/vpsnet-archive-keyring.* "
           "/etc/modprobe.d/vpsnet.conf /etc/modules-load.d/vpsnet.conf /run/vpsnet-test-method "
           "/etc/dkms/framework.conf.d/vpsnet.conf; "
           "rm -rf /var/lib/dkms/vpsnet /usr/src/vpsnet-*; apt-get update -q >/dev/null 2>&1; true")


@dataclass
class Story:
    """One guest's steps; a failed step is kept (with its output), not raised,
    so that the other stories and the tests on earlier steps still run."""

    lab: Lab
    guest: str
    inventory: Path
    repos: dict[str, Path]
    server: RepoServer
    key: Path
    snaps: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)

    def sh(self, cmd: str, timeout: float = 900) -> str:
        r = self.lab.ssh(self.guest, cmd, timeout=timeout)
        if r.rc != 0:
            raise RuntimeError(f"{self.guest}: {cmd}: rc={r.rc}\n{r.stdout}{r.stderr}")
        return str(r.stdout)

    def serve(self, repo: str) -> None:
        self.server.routes[self.guest] = self.repos[repo]

    def role(self, version: str, method: str = "auto") -> None:
        book = self.inventory.parent / "driver.yml"
        book.write_text(PLAYBOOK)
        cmd = ["ansible-playbook", "-i", str(self.inventory), "-l", self.guest, str(book),
               "-e", yaml.safe_dump({
                   "vpsnet_repo_url": f"http://10.0.2.101/{self.guest}",
                   "vpsnet_repo_key_src": str(self.key), "vpsnet_driver_version": version,
                   "vpsnet_driver_method": method}, default_flow_style=True).strip()]
        # pipelining: ansible.cfg turns it on
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env=playbook_env(),
                              timeout=1800, cwd=TOP)
        self.logs[f"role {version} {method}"] = proc.stdout[-6000:] + proc.stderr[-2000:]
        if proc.returncode != 0:
            raise RuntimeError(f"{self.guest}: role {version} {method}: rc={proc.returncode}\n"
                               f"{proc.stdout[-4000:]}{proc.stderr[-2000:]}")

    def step(self, name: str, action: Callable[[], object]) -> None:
        if self.errors:
            return  # a story stops at its first failure
        try:
            action()
            self.snaps[name] = sections(self.sh(SNAPSHOT, timeout=120))
        except Exception as e:  # kept for the tests to report
            self.errors[name] = f"{type(e).__name__}: {e}"

    def need(self, name: str) -> dict[str, str]:
        if name not in self.snaps:
            pytest.fail(f"{self.guest}: step {name!r} did not run: {self.errors}")
        return self.snaps[name]


def reload(story: Story) -> None:
    story.sh("modprobe -r vpsnet; modprobe vpsnet")


def aws61_story(s: Story, v1: str, v2: str) -> None:
    k = kernels()[0]
    s.serve("no-kmods")
    s.step("dkms-fallback", lambda: s.role(v1))
    s.serve("full")
    s.step("both", lambda: (s.sh(f"apt-get update -q && {APT} install vpsnet-kmod-{k}={v1}"),
                            reload(s)))
    s.step("kmod-upgraded", lambda: (s.sh(f"{APT} install vpsnet-kmod-{k}={v2}"), reload(s)))
    s.step("kmod-removed", lambda: (s.sh(f"{APT} remove vpsnet-kmod-{k}"), reload(s)))
    s.step("dkms-purged", lambda: (s.sh(f"{APT} install vpsnet-kmod-{k}={v2} && "
                                        f"{APT} purge vpsnet-dkms"), reload(s)))
    s.step("role-prebuilt", lambda: s.role(v2))


def gcp612_story(s: Story, v1: str, v2: str) -> None:
    s.serve("full")
    s.step("fresh", lambda: s.role(v1))
    s.step("upgraded", lambda: (s.role(v2), reload(s)))


def old61_story(s: Story, v1: str, v2: str) -> None:
    s.serve("full")
    s.step("fresh", lambda: s.role(v1))


def old_abi_spec(release: str) -> dict[str, object]:
    return {"name": "old-abi", "base_port": OLD_BASE_PORT,
            "regions": {"us-east-1": {"rtt_ms": 180, "bandwidth_mbit": 1000}},
            "services": [{"name": "repo", "guest_port": 80, "host_port": OLD_BASE_PORT + 300}],
            "guests": [{"name": "old61", "cloud": "aws", "region": "us-east-1",
                        "zone": "us-east-1a", "instance_type": "m5.large", "kernel": release,
                        "vcpus": 1, "memory_mb": 1024}]}


@dataclass
class Setting:
    lab: Lab
    inventory: Path
    repos: dict[str, Path]
    server: RepoServer
    key: Path

    def story(self, guest: str) -> Story:
        return Story(self.lab, guest, self.inventory, self.repos, self.server, self.key)


@pytest.fixture(scope="module")
def setting(build: Build, lab: Lab, repo_host_port: int,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    work = tmp_path_factory.mktemp("kmod")
    repos = {"full": build.repo, "no-kmods": without_kmods(build, work / "no-kmods")}
    server = RepoServer(repo_host_port)
    try:
        yield Setting(lab, inventory.write(lab.spec, work / "session" / "hosts.yml"), repos,
                      server, build.repo / "vpsnet-archive-keyring.asc")
    finally:
        server.close()


@contextmanager
def on_session_guest(setting: Setting, guest: str) -> Iterator[Story]:
    """A story on a session guest, put back as the other tests expect it."""
    s = setting.story(guest)
    s.sh(CLEANUP)
    try:
        yield s
    finally:
        assert setting.lab.ssh(guest, CLEANUP, timeout=600).rc == 0


@pytest.fixture(scope="module")
def stories(setting: Setting, build: Build) -> Iterator[dict[str, Story]]:
    """gcp612's story on the session lab while old61's lab boots and runs its own."""
    old_server = RepoServer(OLD_BASE_PORT + 300)
    Lab(OLD_LAB).down(say=_say)
    old_lab: Lab | None = None
    try:
        with on_session_guest(setting, "gcp612") as gcp, ThreadPoolExecutor(1) as pool:
            run = pool.submit(gcp612_story, gcp, build.version, build.version2)
            try:
                # TCG on a loaded 2-core machine: minutes to boot
                old_lab = Lab.up(old_abi_spec(older_abi(kernels()[0])), "<old-abi>",
                                 state_dir=OLD_LAB, boot_timeout=900, say=_say)
                old = Story(old_lab, "old61",
                            inventory.write(old_lab.spec, OLD_LAB / "hosts.yml"),
                            setting.repos, old_server, setting.key)
                old61_story(old, build.version, build.version2)
            finally:
                run.result()
            yield {"gcp612": gcp, "old61": old}
    finally:
        if old_lab is not None:
            old_lab.down(say=_say)
        old_server.close()


@pytest.fixture(scope="module")
def dkms_story(setting: Setting, build: Build) -> Iterator[Story]:
    with on_session_guest(setting, "aws61") as s:
        aws61_story(s, build.version, build.version2)
        yield s


def packages(snap: dict[str, str]) -> dict[str, str]:
    return dict(line.split() for line in snap["packages"].splitlines() if line.strip())


def test_kernel_outside_the_matrix_falls_back_to_dkms(dkms_story: Story, build: Build) -> None:
    snap = dkms_story.need("dkms-fallback")
    assert snap["method"] == "dkms"
    assert packages(snap) == {"vpsnet-dkms": build.version, "vpsnet-tools": build.version}
    assert snap["resolves"] == f"/lib/modules/{snap['kernel']}/updates/dkms/vpsnet.ko"
    assert snap["loaded"] == build.version
    assert snap["dkms"] == build.version
    assert snap["audit"] == ""


def test_both_installed_the_prebuilt_module_wins(dkms_story: Story, build: Build) -> None:
    snap = dkms_story.need("both")
    k = snap["kernel"]
    assert packages(snap) == {"vpsnet-dkms": build.version, f"vpsnet-kmod-{k}": build.version,
                              "vpsnet-tools": build.version}
    assert snap["resolves"] == f"/lib/modules/{k}/updates/vpsnet.ko"
    assert snap["signer"] == FLEET_SIGNER
    assert snap["audit"] == ""


def test_prebuilt_upgraded_beside_dkms_loads_the_new_version(dkms_story: Story,
                                                             build: Build) -> None:
    snap = dkms_story.need("kmod-upgraded")
    assert packages(snap)[f"vpsnet-kmod-{snap['kernel']}"] == build.version2
    assert packages(snap)["vpsnet-dkms"] == build.version
    assert (snap["resolved_version"], snap["loaded"]) == (build.version2, build.version2)
    assert snap["audit"] == ""


def test_prebuilt_removed_hands_the_kernel_back_to_dkms(dkms_story: Story, build: Build) -> None:
    snap = dkms_story.need("kmod-removed")
    assert f"vpsnet-kmod-{snap['kernel']}" not in packages(snap)
    assert snap["resolves"] == f"/lib/modules/{snap['kernel']}/updates/dkms/vpsnet.ko"
    assert snap["loaded"] == build.version
    assert snap["audit"] == ""


def test_dkms_purged_the_prebuilt_stays(dkms_story: Story, build: Build) -> None:
    snap = dkms_story.need("dkms-purged")
    assert "vpsnet-dkms" not in packages(snap)
    assert snap["resolves"] == f"/lib/modules/{snap['kernel']}/updates/vpsnet.ko"
    assert snap["loaded"] == build.version2 and snap["dkms"] == ""
    assert snap["audit"] == ""


def test_role_auto_picks_prebuilt_where_the_repository_has_it(stories: dict[str, Story],
                                                              build: Build) -> None:
    for guest, step, version in (("gcp612", "fresh", build.version),
                                 ("old61", "fresh", build.version)):
        snap = stories[guest].need(step)
        k = snap["kernel"]
        assert snap["method"] == "prebuilt", guest
        assert packages(snap) == {f"vpsnet-kmod-{k}": version, "vpsnet-tools": version}, guest
        assert snap["resolves"] == f"/lib/modules/{k}/updates/vpsnet.ko", guest
        assert snap["signer"] == FLEET_SIGNER, guest
        assert snap["loaded"] == version, guest
        assert snap["dkms"] == "" and snap["audit"] == "", guest


def test_a_guest_on_an_older_abi_gets_that_abis_package(stories: dict[str, Story]) -> None:
    snap = stories["old61"].need("fresh")
    assert snap["kernel"] == older_abi(kernels()[0]) != kernels()[0]
    assert f"vpsnet-kmod-{snap['kernel']}" in packages(snap)


def test_prebuilt_to_prebuilt_upgrade(stories: dict[str, Story], build: Build) -> None:
    snap = stories["gcp612"].need("upgraded")
    k = snap["kernel"]
    assert packages(snap) == {f"vpsnet-kmod-{k}": build.version2, "vpsnet-tools": build.version2}
    assert (snap["resolved_version"], snap["loaded"]) == (build.version2, build.version2)
    assert snap["audit"] == ""


def test_role_auto_takes_a_dkms_host_prebuilt(dkms_story: Story, build: Build) -> None:
    snap = dkms_story.need("role-prebuilt")
    k = snap["kernel"]
    assert snap["method"] == "prebuilt"
    assert packages(snap) == {f"vpsnet-kmod-{k}": build.version2, "vpsnet-tools": build.version2}
    assert snap["resolves"] == f"/lib/modules/{k}/updates/vpsnet.ko"
    assert snap["dkms"] == "" and snap["audit"] == ""
