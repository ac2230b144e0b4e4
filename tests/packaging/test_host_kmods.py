"""Prebuilt modules on the build host: vpsnet-kmod-<kernel> for every kernel of
the matrix, each checked against its own kernel and signed with the fleet key,
as .deb and .rpm, published with the fleet certificate (real make, dpkg-deb,
rpm, sign-file, openssl)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pkgtest.build import Build, make
from pkgtest.host import PACKAGING, TOP, kernels, kmod_kernels, matrix, run
from pkgtest.package_files import extract
from pkgtest.stubs import broken_copy

pytestmark = [pytest.mark.packaging, pytest.mark.build]

ABI = [str(TOP / ".venv" / "bin" / "vpsnet-abi")]


def fleet_cert() -> Path:
    out = run([str(PACKAGING / "scripts" / "module-signing-key.sh"),
               str(TOP / ".cache" / "module-signing")]).stdout.split()
    return Path(out[1])


def other_cert(tmp: Path) -> tuple[Path, Path]:
    key, crt = tmp / "other.key", tmp / "other.crt"
    run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=not the fleet key", "-keyout", str(key), "-out", str(crt)])
    return key, crt


def check(ko: Path, kernel: str, *extra: str) -> tuple[int, dict]:
    proc = subprocess.run([*ABI, "check", str(ko), "--kernel", kernel, "--json", *extra],
                          capture_output=True, text=True, check=False)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_whole_matrix_prebuilt_in_one_build(build: Build) -> None:
    """make packages built the first version for every kernel of kernels.yml."""
    report = json.loads((build.dist / "build" / f"kmod-{build.version}" / "report.json")
                        .read_text())
    want = [r for _, r in matrix()]
    assert len(want) >= 2 and {s for s, _ in matrix()} >= {"6.1", "6.12"}
    assert sorted(k["release"] for k in report["kernels"]) == sorted(want)
    assert all(k["ok"] for k in report["kernels"]), report
    for kernel in want:
        assert build.kmod_deb(kernel).is_file(), kernel
        assert build.kmod_rpm(kernel).is_file(), kernel
    for kernel in kmod_kernels():
        assert build.kmod_deb(kernel, build.version2).is_file(), kernel


@pytest.mark.parametrize("kernel", kmod_kernels())
def test_kmod_deb_control_and_files(build: Build, kernel: str) -> None:
    deb = build.kmod_deb(kernel)
    field = {f: run(["dpkg-deb", "-f", str(deb), f]).stdout.strip()
             for f in ("Package", "Version", "Architecture", "Depends", "Provides")}
    assert field == {"Package": f"vpsnet-kmod-{kernel}", "Version": build.version,
                     "Architecture": "amd64", "Depends": f"linux-image-{kernel}",
                     "Provides": f"vpsnet-module (= {build.version})"}
    files = run(["dpkg-deb", "-c", str(deb)]).stdout
    for path in (f"./lib/modules/{kernel}/updates/vpsnet.ko",
                 f"./etc/depmod.d/vpsnet-kmod-{kernel}.conf",
                 f"./usr/share/vpsnet/kmod/{kernel}/Module.symvers"):
        assert path in files, files
    ctrl = run(["dpkg-deb", "-I", str(deb), "postinst"]).stdout
    assert f"depmod -a {kernel}" in ctrl


@pytest.mark.parametrize("kernel", kernels())
def test_kmod_module_is_fleet_signed_and_loads_only_on_its_kernel(
        build: Build, kernel: str, tmp_path: Path) -> None:
    root = extract(build.kmod_deb(kernel), tmp_path / "root")
    ko = root / "lib" / "modules" / kernel / "updates" / "vpsnet.ko"
    assert run(["modinfo", "-F", "vermagic", str(ko)]).stdout.split()[0] == kernel
    assert run(["modinfo", "-F", "version", str(ko)]).stdout.strip() == build.version

    rc, doc = check(ko, kernel, "--trusted-cert", str(fleet_cert()))
    assert rc == 0 and doc["loads"], doc
    assert doc["signature"]["trusted"] is True
    assert "vpsnet lab fleet module signing key" in doc["signature"]["signer"]
    assert doc["signature"]["hash"] == "sha256"

    _, other = other_cert(tmp_path)
    rc, doc = check(ko, kernel, "--trusted-cert", str(other))
    assert rc == 1 and not doc["loads"]
    assert doc["signature"]["trusted"] is False

    elsewhere = next(k for k in kernels() if k != kernel)
    rc, doc = check(ko, elsewhere)
    assert rc == 1
    assert any(f["check"] == "vermagic" and f["status"] == "fail" for f in doc["findings"])


def test_kmod_symvers_lets_a_host_without_headers_check(build: Build, tmp_path: Path) -> None:
    """What the package records of its kernel's exports is enough for the check
    (no build tree), and a wrong CRC in it is caught."""
    kernel = kernels()[0]
    root = extract(build.kmod_deb(kernel), tmp_path / "root")
    ko = root / "lib" / "modules" / kernel / "updates" / "vpsnet.ko"
    symvers = root / "usr" / "share" / "vpsnet" / "kmod" / kernel / "Module.symvers"
    config = Path(f"/usr/src/linux-headers-{kernel}/.config")
    no_tree = ["--kdir", str(tmp_path / "none"), "--config", str(config)]
    rc, doc = check(ko, kernel, *no_tree, "--symvers", str(symvers))
    assert rc == 0, doc
    lines = symvers.read_text().splitlines()
    exported = {line.split("\t")[1] for line in
                Path(f"/usr/src/linux-headers-{kernel}/Module.symvers").read_text().splitlines()}
    # exactly the kernel's exports the module imports (module_layout, if listed, is not one)
    assert {line.split("\t")[1] for line in lines} == set(doc["imports"]) & exported
    assert len(lines) >= 10
    bad = tmp_path / "bad.symvers"
    crc, rest = lines[0].split("\t", 1)
    bad.write_text("\n".join([f"0x{int(crc, 16) ^ 1:08x}\t{rest}", *lines[1:]]) + "\n")
    rc, doc = check(ko, kernel, *no_tree, "--symvers", str(bad))
    assert rc == 1 and any("CRC" in f["message"] for f in doc["findings"])


def test_kmod_rpm_carries_the_same_signed_module(build: Build, tmp_path: Path) -> None:
    kernel = kernels()[1]
    rpm = build.kmod_rpm(kernel)
    reqs = run(["rpm", "-qp", "--requires", str(rpm)]).stdout
    assert f"/lib/modules/{kernel}/modules.order" in reqs
    assert f"vpsnet-module = {build.version}" in run(["rpm", "-qp", "--provides", str(rpm)]).stdout
    assert f"depmod -a {kernel}" in run(["rpm", "-qp", "--scripts", str(rpm)]).stdout
    out = tmp_path / "rpm"
    out.mkdir()
    run(f"rpm2cpio '{rpm}' | cpio -idm --quiet", cwd=out)
    deb_root = extract(build.kmod_deb(kernel), tmp_path / "deb")
    rel = Path("lib") / "modules" / kernel / "updates" / "vpsnet.ko"
    assert (out / rel).read_bytes() == (deb_root / rel).read_bytes()


def test_repository_publishes_kmods_and_the_fleet_certificate(build: Build) -> None:
    index = (build.repo / "apt" / "dists" / "bookworm" / "main" / "binary-amd64" /
             "Packages").read_text()
    for kernel in kmod_kernels():
        assert f"Package: vpsnet-kmod-{kernel}\n" in index
    assert "Package: vpsnet-kmod-" not in (build.repo / "apt" / "dists" / "bookworm" / "main" /
                                           "binary-arm64" / "Packages").read_text()
    rpms = {p.name for p in (build.repo / "rpm").glob("vpsnet-kmod-*.x86_64.rpm")}
    assert build.kmod_rpm(kernels()[0]).name in rpms
    fp = [run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(c)]).stdout
          for c in (build.repo / "vpsnet-fleet.crt", fleet_cert())]
    assert fp[0] == fp[1]
    der = run(["openssl", "x509", "-inform", "DER", "-noout", "-fingerprint", "-sha256",
               "-in", str(build.repo / "vpsnet-fleet.der")]).stdout
    assert der == fp[0]


def test_a_kernel_that_does_not_build_is_named(build: Build, tmp_path: Path) -> None:
    broken = broken_copy(build.driver_src, tmp_path / "broken")
    kernel = kernels()[1]
    with pytest.raises(AssertionError) as failed:
        make("kmods", tmp_path / "dist", build.gnupghome, VERSION="9.9.9", DRIVER_SRC=str(broken),
             KERNELS=kernel)
    msg = str(failed.value)
    assert f"vpsnet 9.9.9 for kernel {kernel}: build failed" in msg
    assert "broken build" in msg
    assert not list((tmp_path / "dist").glob("vpsnet-kmod-*.deb"))


def test_a_kernel_outside_the_matrix_is_refused(build: Build, tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as failed:
        make("kmods", tmp_path / "dist", build.gnupghome, VERSION="9.9.9",
             KERNELS="5.10.0-99-cloud-amd64")
    assert "not in the kernel matrix" in str(failed.value)
    assert "5.10.0-99-cloud-amd64" in str(failed.value)


def test_signing_refuses_a_missing_deployment_key(build: Build, tmp_path: Path) -> None:
    proc = subprocess.run([str(PACKAGING / "scripts" / "module-signing-key.sh"), str(tmp_path)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "VPSNET_MODULE_SIGNING_KEY": str(tmp_path / "nope"),
                               "VPSNET_MODULE_SIGNING_CERT": str(fleet_cert())})
    assert proc.returncode == 1
    assert f"VPSNET_MODULE_SIGNING_KEY={tmp_path / 'nope'}" in proc.stderr
    assert not list(tmp_path.iterdir())
