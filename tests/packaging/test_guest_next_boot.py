"""The next-boot gate and a failed DKMS build on a new kernel, on a real guest
(issue 19, "Must show"): a reboot into a kernel without vpsnet is refused,
naming that kernel; a kernel install whose vpsnet build fails leaves dpkg clean.

One guest in a lab of its own (the matrix's oldest 6.1 ABI, prebuilt vpsnet),
two stories one after the other, every step recorded; the tests assert on them:

  gate: vpsnet-tools + vpsnet-kmod-<running kernel> -> the gate passes
        (control) -> linux-image-<newest 6.1 ABI> installed, which boots next
        (the lab guests have no GRUB: the newest /boot/vmlinuz-*) ->
        `vpsnet-status --next-boot` fails naming it -> vpsnet_tune, asked for
        1 GiB hugepages with reboots allowed, refuses naming it and does not
        reboot -> vpsnet-kmod-<that kernel> installed -> the gate passes
  dkms: the running kernel's headers purged (a prebuilt host needs none) ->
        vpsnet-dkms from a source that does not compile -> linux-image and
        linux-headers of the 6.12 kernel in one apt run: both configured,
        `dpkg --audit` empty, the failure recorded; the gate now refuses 6.12

The guest's QEMU runs with -no-reboot: a reboot would end it, so a guest that
still answers with the same boot id was not rebooted. The lab is torn down
at the end, also when a step fails.

Heavy: measured under TCG on a loaded 2-core machine, the gate story took
~17 min after a 3 min boot (each kernel install ~10 min, mostly mkinitramfs)
and the dkms story 21 min (two failed vpsnet builds of ~5 min: the image's and
the headers' postinst each try), plus the session's package build; 57 min in all.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pkgtest.build import Build, broken_dkms_deb
from pkgtest.guest import (
    KEYRING,
    kernel_sources_for,
    lab_say,
    playbook_env,
    put_text,
    sections,
    sources_for,
)
from pkgtest.host import TOP, Result, kernels, older_abi, run
from pkgtest.kernel_debs import (
    apt_would_install,
    kernel_headers_debs,
    kernel_image_deb,
    signed_deb_repo,
)
from pkgtest.repo_server import RepoServer

from vpsnet_lab import inventory
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE

pytestmark = [pytest.mark.lab, pytest.mark.packaging, pytest.mark.heavy]

STATE = CACHE / "lab-test-next-boot"
BASE_PORT = 14022
GUEST = "next61"
_say = lab_say("next-boot lab")
APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 --no-install-recommends"
STEP_TIMEOUT = 2400  # kernel installs: initramfs and a DKMS build under TCG
GATE = "vpsnet-status --next-boot --json"
BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
RECORDS = "/var/lib/vpsnet/dkms-failed"
TUNE_PLAY = """
- name: vpsnet_tune's reboot step (1 GiB hugepages need the kernel command line)
  hosts: all
  gather_facts: false
  roles:
    - role: vpsnet_tune
"""
# Only the hugepages/reboot part matters; the NIC parts are off to keep it short.
TUNE_VARS = {"vpsnet_tune_hugepages_1g": 1, "vpsnet_tune_reboot_ok": True,
             "vpsnet_tune_replace_root_qdisc": False, "vpsnet_tune_nic_profile": "none",
             "vpsnet_tune_irq_affinity": False, "vpsnet_tune_guard": False}
REFUSE_TASK = "TASK [vpsnet_tune : Refuse the reboot when that kernel has no loadable vpsnet]"
REBOOT_TASK = "TASK [vpsnet_tune : Reboot for the new kernel command line]"


def spec() -> dict[str, Any]:
    return {"name": "next-boot", "base_port": BASE_PORT,
            "regions": {"us-east-1": {"rtt_ms": 180, "bandwidth_mbit": 1000}},
            "services": [{"name": "repo", "guest_port": 80, "host_port": BASE_PORT + 300}],
            # 2.5 GiB: vpsnet_tune allows 1 GiB of hugepages up to 50% of RAM.
            "guests": [{"name": GUEST, "cloud": "aws", "region": "us-east-1",
                        "zone": "us-east-1a", "instance_type": "m5.large",
                        "kernel": older_abi(kernels()[0]), "vcpus": 1, "memory_mb": 2560}]}


@dataclass
class Step(Result):
    seconds: float = 0.0

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    def sections(self) -> dict[str, str]:
        return sections(self.stdout)


@dataclass
class Story:
    """Steps on the guest; a story stops at its first broken step (kept with
    its output), so that the tests on earlier steps still report."""

    lab: Lab
    work: Path
    steps: dict[str, Step] = field(default_factory=dict)
    error: str = ""

    def sh(self, name: str, cmd: str, must: bool = True, timeout: float = STEP_TIMEOUT) -> None:
        if self.error:
            return
        t0 = time.monotonic()
        try:
            r = self.lab.ssh(GUEST, cmd, timeout=timeout)
        except Exception as e:  # ssh gone (a reboot ends the guest) or timed out
            self.error = f"{name}: {type(e).__name__}: {e}"
            return
        self.record(name, Step(r.rc, r.stdout, r.stderr, time.monotonic() - t0), must)

    def record(self, name: str, step: Step, must: bool) -> None:
        self.steps[name] = step
        _say(f"step {name}: rc={step.rc} in {step.seconds:.0f}s")
        if must and step.rc != 0:
            self.error = f"{name}: rc={step.rc}\n{step.output[-4000:]}"

    def put_text(self, text: str, remote: str) -> None:
        put_text(self.lab, GUEST, text, remote, self.work)

    def tune(self, name: str, hosts: Path) -> None:
        if self.error:
            return
        book = self.work / "tune.yml"
        book.write_text(TUNE_PLAY)
        t0 = time.monotonic()
        proc = subprocess.run(["ansible-playbook", "-i", str(hosts), str(book),
                               "-e", json.dumps(TUNE_VARS)], capture_output=True, text=True,
                              check=False, env=playbook_env(), timeout=STEP_TIMEOUT,
                              cwd=TOP)
        self.record(name, Step(proc.returncode, proc.stdout, proc.stderr,
                               time.monotonic() - t0), must=False)

    def need(self, name: str) -> Step:
        if name not in self.steps:
            pytest.fail(f"step {name!r} did not run: {self.error}")
        return self.steps[name]


@dataclass
class Kernels:
    running: str  # the guest boots this one, with its prebuilt vpsnet
    next: str  # installed by the gate story: its prebuilt module comes later
    dkms: str  # installed with its headers by the dkms story
    broken: str  # vpsnet-dkms version that does not compile


@dataclass
class Guest:
    story: Story
    kernels: Kernels
    hosts: Path


def kernel_repo(build: Build, lab: Lab, k: Kernels, work: Path) -> Path:
    """The two kernels' packages and whatever else the guest lacks for them
    (resolved by apt against the guest's own dpkg status), signed like the
    vpsnet repository."""
    status = work / "guest-dpkg-status"
    status.write_text(lab.ssh(GUEST, "cat /var/lib/dpkg/status", check=True).stdout)
    cached = [kernel_image_deb(k.next), kernel_image_deb(k.dkms), *kernel_headers_debs(k.dkms)]
    have = {p.name.split("_", 1)[0] for p in cached}
    wanted = apt_would_install([f"linux-image-{k.next}", f"linux-image-{k.dkms}",
                                f"linux-headers-{k.dkms}"], status)
    extra = [f"{n}={v}" for n, v in wanted if n not in have]
    debs = work / "extra-debs"
    debs.mkdir()
    if extra:
        run(["apt-get", "download", *extra], cwd=debs)
    return signed_deb_repo([*cached, *sorted(debs.glob("*.deb"))], work / "kernels",
                           build.gnupghome)


@pytest.fixture(scope="module")
def guest(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    work = tmp_path_factory.mktemp("next-boot")
    k61, k612 = kernels()
    k = Kernels(running=older_abi(k61), next=k61, dkms=k612, broken=f"{build.version2}.9")
    server = RepoServer(BASE_PORT + 300)
    Lab(STATE).down(say=_say)  # leftovers of a killed run
    lab: Lab | None = None
    try:
        # TCG on a loaded 2-core machine: minutes to boot
        lab = Lab.up(spec(), "<next-boot>", state_dir=STATE, boot_timeout=900, say=_say)
        server.routes[GUEST] = build.repo
        server.kernels = kernel_repo(build, lab, k, work)
        s = Story(lab, work)
        s.sh("sources", f"install -d -m 0755 {Path(KEYRING).parent}")
        lab.put(GUEST, build.repo / "vpsnet-archive-keyring.gpg", KEYRING)
        s.put_text(sources_for(build, GUEST), "/etc/apt/sources.list.d/vpsnet.sources")
        s.put_text(kernel_sources_for(GUEST), "/etc/apt/sources.list.d/vpsnet-lab-kernels.sources")
        yield Guest(s, k, inventory.write(lab.spec, STATE / "hosts.yml"))
    finally:
        if lab is not None:
            lab.down(say=_say)
        server.close()


@pytest.fixture(scope="module")
def gate(guest: Guest, build: Build) -> Story:
    s, k, v = guest.story, guest.kernels, build.version
    s.sh("prebuilt", f"apt-get update -q && {APT} install vpsnet-tools={v} "
         f"vpsnet-kmod-{k.running}={v} && modprobe vpsnet")
    s.sh("gate-running", GATE, must=False)
    s.sh("new-kernel", f"{APT} install linux-image-{k.next}")
    s.sh("gate-new-kernel", GATE, must=False)
    s.sh("boot-id", BOOT_ID)
    s.tune("tune", guest.hosts)
    s.sh("after-tune", f"echo @boot_id; {BOOT_ID}; echo @cmdline; cat /proc/cmdline; "
         "echo @grub; cat /etc/default/grub.d/vpsnet.cfg 2>&1; true")
    s.sh("kmod-new-kernel", f"{APT} install vpsnet-kmod-{k.next}={v}")
    s.sh("gate-kmod", GATE, must=False)
    return s


@pytest.fixture(scope="module")
def dkms(guest: Guest, gate: Story, build: Build) -> Story:
    """After the gate story (its next kernel must stay the newest one there)."""
    s, k = guest.story, guest.kernels
    deb = broken_dkms_deb(build, k.broken, "broken-next-boot")
    s.sh("no-headers", f"{APT} purge linux-headers-{k.running} && "
         f"! test -e /lib/modules/{k.running}/build")
    if not s.error:
        s.lab.put(GUEST, deb, f"/root/{deb.name}")
    s.sh("broken-dkms", f"{APT} install /root/{deb.name}")
    s.sh("dkms-kernel", f"{APT} install linux-image-{k.dkms} linux-headers-{k.dkms}", must=False)
    s.sh("after-dkms-kernel", f"""
echo @audit; dpkg --audit 2>&1
echo @status; dpkg-query -W -f='${{Package}} ${{Status}}\\n' linux-image-{k.dkms} \
  linux-headers-{k.dkms} vpsnet-dkms
echo @records; find {RECORDS} -type f | sort
echo @record; cat {RECORDS}/{k.broken}/{k.dkms}
echo @makelog; cat {RECORDS}/{k.broken}/{k.dkms}.make.log
echo @dkms; dkms status vpsnet 2>&1
echo @modinfo; modinfo -k {k.dkms} -n vpsnet 2>&1
echo @apt; {APT} install vpsnet-tools >/dev/null 2>&1; echo "rc=$?"
""", must=False)
    s.sh("gate-dkms-kernel", GATE, must=False)
    return s


# ---------------------------------------------------------------- gate ---


def test_gate_passes_for_the_running_kernel_with_its_prebuilt_module(gate: Story,
                                                                   guest: Guest) -> None:
    """Control: one kernel, its vpsnet-kmod installed."""
    k = guest.kernels.running
    step = gate.need("gate-running")
    assert step.rc == 0, step.output
    res = step.json()
    assert res["ok"] and res["kernel"] == k == res["running"], res
    assert res["module"] == f"/lib/modules/{k}/updates/vpsnet.ko", res


def test_gate_fails_naming_a_new_kernel_without_vpsnet(gate: Story, guest: Guest) -> None:
    k = guest.kernels
    step = gate.need("gate-new-kernel")
    assert step.rc == 1, step.output
    res = step.json()
    assert (res["ok"], res["kernel"], res["running"], res["module"]) == (
        False, k.next, k.running, None), res
    assert "newest of 2 /boot/vmlinuz-*" in res["how"], res
    assert f"the next boot kernel {k.next}" in step.stderr, step.stderr
    assert f"install vpsnet-kmod-{k.next}" in step.stderr, step.stderr


def test_tune_refuses_to_reboot_into_it_naming_it(gate: Story, guest: Guest) -> None:
    k = guest.kernels
    step = gate.need("tune")
    assert step.rc != 0, step.output
    # failed at the gate, with the kernel named
    assert step.stdout.count("FAILED!") == 1, step.stdout
    assert REFUSE_TASK in step.stdout, step.stdout
    tail = step.stdout[step.stdout.index(REFUSE_TASK):]
    assert "FAILED!" in tail.split("PLAY RECAP")[0], step.stdout
    assert f"vpsnet_tune: refusing to reboot {GUEST}" in tail, tail
    assert f"the next boot kernel {k.next}" in tail, tail
    assert REBOOT_TASK not in step.stdout, step.stdout


def test_tune_did_not_reboot(gate: Story) -> None:
    before = gate.need("boot-id").stdout.strip()
    after = gate.need("after-tune").sections()
    assert after["boot_id"] == before  # same boot; with -no-reboot a reboot ends the guest
    # the role did get as far as a reboot being needed
    assert "hugepagesz=1G" in after["grub"] and "hugepagesz=1G" not in after["cmdline"], after


def test_gate_passes_once_that_kernels_prebuilt_module_is_installed(gate: Story,
                                                                    guest: Guest) -> None:
    k = guest.kernels.next
    step = gate.need("gate-kmod")
    assert step.rc == 0, step.output
    res = step.json()
    assert res["ok"] and res["kernel"] == k, res
    assert res["module"] == f"/lib/modules/{k}/updates/vpsnet.ko", res
    assert res["findings"] and all(f["status"] != "fail" for f in res["findings"]), res


# ---------------------------------------------------------------- dkms ---


def test_kernel_install_whose_vpsnet_build_fails_succeeds(dkms: Story, guest: Guest) -> None:
    k = guest.kernels
    step = dkms.need("dkms-kernel")
    assert step.rc == 0, step.output
    assert f"ERROR: vpsnet {k.broken} failed to build for kernel {k.dkms}" in step.output
    assert "One or more modules failed to install during autoinstall" not in step.output


def test_dpkg_is_clean_and_the_kernel_configured(dkms: Story, guest: Guest) -> None:
    k = guest.kernels
    snap = dkms.need("after-dkms-kernel").sections()
    assert snap["audit"] == "", snap["audit"]
    status = dict(line.split(" ", 1) for line in snap["status"].splitlines())
    assert status == {f"linux-image-{k.dkms}": "install ok installed",
                      f"linux-headers-{k.dkms}": "install ok installed",
                      "vpsnet-dkms": "install ok installed"}, snap["status"]
    assert snap["apt"] == "rc=0"  # the next apt run is not stuck on it


def test_the_failure_is_recorded_for_that_kernel(dkms: Story, guest: Guest) -> None:
    k = guest.kernels
    snap = dkms.need("after-dkms-kernel").sections()
    record = f"{RECORDS}/{k.broken}/{k.dkms}"
    assert snap["records"].splitlines() == [record, f"{record}.make.log"], snap["records"]
    assert f"vpsnet {k.broken} failed to build for kernel {k.dkms}" in snap["record"]
    assert "#error vpsnet packaging test: broken build" in snap["makelog"]
    assert f"{k.dkms}, x86_64: installed" not in snap["dkms"], snap["dkms"]
    assert "not found" in snap["modinfo"], snap["modinfo"]


def test_gate_refuses_the_kernel_vpsnet_could_not_be_built_for(dkms: Story,
                                                              guest: Guest) -> None:
    k = guest.kernels
    step = dkms.need("gate-dkms-kernel")
    assert step.rc == 1, step.output
    assert step.json()["kernel"] == k.dkms
    assert f"the next boot kernel {k.dkms}" in step.stderr, step.stderr

