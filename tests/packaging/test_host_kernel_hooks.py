"""A new kernel's hooks, for real in a private root (pkgtest/private_root.py).

Installing linux-image-K / linux-headers-K runs
`run-parts --report --exit-on-error --arg=K /etc/kernel/{postinst.d,header_postinst.d}`;
DKMS's hook there runs `dkms autoinstall --kernelver K`, which exits 11 when
vpsnet fails to build for K, and the kernel package's postinst fails with it.
vpsnet-dkms's 05vpsnet-dkms hooks run first, record the failure and make
dkms.conf leave AUTOINSTALL empty for K.
"""

from __future__ import annotations

import pytest
from pkgtest.build import Build, broken_dkms_deb
from pkgtest.host import kernels
from pkgtest.kernel_debs import kernel_headers_debs
from pkgtest.private_root import DPKG, DPKG_QUERY, PrivateRoot, Story

pytestmark = pytest.mark.packaging

OLD_KERNEL = "4.19.0-old-amd64"  # outside BUILD_EXCLUSIVE_KERNEL


def header_hooks(kernel: str, regex: str | None = None) -> str:
    only = f"--regex '{regex}' " if regex else ""
    return f"run-parts --report --exit-on-error {only}--arg={kernel} /etc/kernel/header_postinst.d"


@pytest.fixture(scope="module")
def kernel_hook_steps(build: Build) -> Story:
    """A vpsnet version that does not build, then one that does, with the
    kernel hooks run by run-parts as the kernel packages run them, and a real
    linux-headers package installed with dpkg, in a private root."""
    k61, _k612 = kernels()
    broken = f"{build.version2}.2"
    broken_deb = broken_dkms_deb(build, broken, "broken-hooks")
    headers_deb = next(
        p for p in kernel_headers_debs(k61) if p.name.startswith(f"linux-headers-{k61}_")
    )
    s = Story(PrivateRoot(build.work / "hooks-root", kernels()), DPKG_QUERY, broken)
    dpkg, hidden = DPKG, f"/lib/modules/{k61}/build"
    # K = 6.1: its headers "arrive" after vpsnet-dkms is installed.
    s.step("install-broken", f"mv {hidden} {hidden}.hidden && {dpkg} -i "
           f"{broken_deb}; mv {hidden}.hidden {hidden}")
    # Control: DKMS's own hook alone (what happened before vpsnet's hooks).
    s.step("dkms-hook-alone", header_hooks(k61, "^dkms$"))
    s.step("headers-hooks", header_hooks(k61))
    # The image's hooks: ours and DKMS's only (initramfs-tools and
    # update-grub would write the host's /boot, which is not overlaid).
    s.step("image-hooks", f"run-parts --report --exit-on-error --regex '^(05vpsnet-dkms|dkms)$' "
           f"--arg={k61} --arg=/boot/vmlinuz-{k61} /etc/kernel/postinst.d")
    # (removed again: PrivateRoot's prelude cannot rm a build directory)
    s.step("unsupported-kernel", f"mkdir -p /lib/modules/{OLD_KERNEL}/build/include && "
           f"{header_hooks(OLD_KERNEL)}; rc=$?; rm -rf /lib/modules/{OLD_KERNEL}; exit $rc")
    # A real linux-headers package (its postinst runs header_postinst.d).
    s.step("dpkg-headers",
           f"{dpkg} -i {headers_deb}; rc=$?; echo \"AUDIT[$(dpkg --audit)]\"; exit $rc")
    s.step("records", "find /var/lib/vpsnet -type f | sort; "
           f"cat /var/lib/vpsnet/dkms-failed/{broken}/{k61}")
    # A version that builds: installed with 6.1's headers hidden again, then
    # the same hooks build it for 6.1.
    s.step("install-good", f"mv {hidden} {hidden}.hidden && {dpkg} -i "
           f"{build.deb('vpsnet-dkms')}; mv {hidden}.hidden {hidden}; find /var/lib/vpsnet -type f")
    s.step("good-headers-hooks",
           f"{header_hooks(k61)}; rc=$?; find /var/lib/vpsnet -type f; exit $rc")
    s.step("purge", f"{dpkg} --purge vpsnet-dkms; ls -d /var/lib/vpsnet 2>&1")
    return s


def test_control_dkms_hook_alone_fails_the_kernel_package(kernel_hook_steps: Story) -> None:
    """What the hooks guard against, shown with DKMS's hook alone: autoinstall
    exits 11 and run-parts (so the kernel's postinst) fails."""
    s = kernel_hook_steps["dkms-hook-alone"]
    assert s.rc != 0, s.output
    assert "dkms exited with return code 11" in s.output, s.output


def test_new_kernel_headers_whose_build_fails_leave_run_parts_ok(kernel_hook_steps: Story) -> None:
    k61, _k612 = kernels()
    broken = kernel_hook_steps.broken_version
    s = kernel_hook_steps["headers-hooks"]
    assert s.rc == 0, s.output
    assert f"ERROR: vpsnet {broken} failed to build for kernel {k61}" in s.output
    assert f"/var/lib/dkms/vpsnet/{broken}/build/make.log" in s.output
    assert f"vpsnet will not load on {k61}; the next-boot gate" in s.output
    assert f"recorded in /var/lib/vpsnet/dkms-failed/{broken}/{k61}" in s.output
    # DKMS's hook ran too (after ours: run-parts order, tests/unit) and skipped
    # vpsnet instead of failing. run-parts --report names a script on the
    # stream it writes first: ours stderr, dkms's stdout.
    assert "header_postinst.d/05vpsnet-dkms:" in s.stderr, s.output
    assert f"dkms: autoinstall for kernel: {k61}." in s.stdout, s.output
    assert "One or more modules failed to install during autoinstall" not in s.output
    assert f"{k61}, x86_64: installed" not in s.dkms and "installed" not in s.dkms, s.dkms
    assert s.modules == {}, s.output


def test_new_kernel_image_whose_build_fails_leaves_run_parts_ok(kernel_hook_steps: Story) -> None:
    k61, _ = kernels()
    s = kernel_hook_steps["image-hooks"]
    assert s.rc == 0, s.output
    assert f"failed to build for kernel {k61}" in s.output
    assert "installed" not in s.dkms and s.modules == {}


def test_kernel_outside_build_exclusive_leaves_run_parts_ok(kernel_hook_steps: Story) -> None:
    """dkms 3.0.10's autoinstall counts BUILD_EXCLUSIVE (exit 77) as a failure:
    dkms.conf leaves AUTOINSTALL empty for such a kernel."""
    s = kernel_hook_steps["unsupported-kernel"]
    assert s.rc == 0, s.output
    assert f"kernel {OLD_KERNEL} is outside the kernels vpsnet" in s.output
    assert "One or more modules failed" not in s.output


def test_dpkg_kernel_headers_install_whose_build_fails_leaves_dpkg_clean(
        kernel_hook_steps: Story) -> None:
    k61, _ = kernels()
    s = kernel_hook_steps["dpkg-headers"]
    assert s.rc == 0, s.output  # dpkg -i of linux-headers-<6.1>
    assert "AUDIT[]" in s.stdout, s.output  # `dpkg --audit` empty
    assert f"failed to build for kernel {k61}" in s.output
    assert s.status.startswith("ii "), s.status
    assert "installed" not in s.dkms


def test_failed_build_is_recorded_with_its_make_log(kernel_hook_steps: Story) -> None:
    k61, _ = kernels()
    broken = kernel_hook_steps.broken_version
    s = kernel_hook_steps["records"]
    record = f"/var/lib/vpsnet/dkms-failed/{broken}/{k61}"
    assert s.stdout.splitlines()[:2] == [record, f"{record}.make.log"], s.output
    assert f"vpsnet {broken} failed to build for kernel {k61}" in s.stdout
    assert "#error vpsnet packaging test: broken build" in s.stdout


def test_version_that_builds_is_built_by_the_same_hooks(build: Build,
                                                        kernel_hook_steps: Story) -> None:
    k61, k612 = kernels()
    s = kernel_hook_steps["install-good"]
    assert s.rc == 0, s.output
    assert s.status == f"ii  {build.version}"
    assert s.modules == {k612: build.version}, s.output
    # the broken version's records went with it (postinst of another version)
    assert "/var/lib/vpsnet/" not in s.stdout, s.stdout
    s = kernel_hook_steps["good-headers-hooks"]
    assert s.rc == 0, s.output
    assert f"building vpsnet {build.version} for kernel {k61}" in s.output
    assert s.modules == {k61: build.version, k612: build.version}, s.output
    assert f"vpsnet/{build.version}, {k61}, x86_64: installed" in s.dkms
    assert "ERROR" not in s.output
    assert "/var/lib/vpsnet/" not in s.stdout, s.stdout  # nothing recorded


def test_purge_removes_the_records(kernel_hook_steps: Story) -> None:
    s = kernel_hook_steps["purge"]
    assert s.status == "" and s.modules == {}
    assert "No such file or directory" in s.output
