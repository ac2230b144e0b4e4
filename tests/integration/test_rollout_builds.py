"""The canary-rollout package builds (molecule/rollout/builds.py), proved on the host.

build_rollout_repo() runs once per module into a temp dir with a temp signing key
(two callers at once: the flock makes one build and the other reuse it). Then,
for every version, the .deb's /usr/src/vpsnet-<v> tree is built with kbuild for
the 6.1 headers the way DKMS builds it (dkms.conf MAKE[0]: the tree's Makefile
with KVER and KDIR only), and the real `vpsnet-abi` judges the modules: 1.0.0 ->
1.1.0 additive, 1.1.0 -> 2.0.0 breaking (undeclared), 1.1.0 -> 1.2.0 compatible
with the test-only unhealthy build flag set. The apt index lists all four
versions of both packages and InRelease verifies with gpgv against the exported
key. No guests are booted.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from vpsnet_lab.paths import oldest_abi
from vpsnet_tools.manifest import read_manifest

TOP = Path(__file__).resolve().parents[2]
BUILDS = TOP / "molecule" / "rollout" / "builds.py"
SYSPATH = "/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = [pytest.mark.build, pytest.mark.packaging]


def _load(name: str, path: Path) -> ModuleType:
    """Import a helper module by path (neither lives on sys.path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


builds = _load("vpsnet_rollout_builds", BUILDS)
# Shared with the packaging tests: run() and kernels() from .cache/kernels.env.
pkg = _load("vpsnet_pkgtest_host", TOP / "tests" / "packaging" / "pkgtest" / "host.py")

VERSIONS = [r.version for r in builds.VERSIONS]


def _kver() -> str:
    try:
        k61 = pkg.kernels()[0]
    except (OSError, KeyError):
        pytest.skip("no .cache/kernels.env (run scripts/setup.sh)")
    if not Path(f"/lib/modules/{k61}/build/Makefile").exists():
        pytest.skip(f"headers for {k61} not installed")
    return str(k61)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two concurrent cold calls, then a warm one; records what each did."""
    for tool in ("dpkg-buildpackage", "rpmbuild", "apt-ftparchive", "createrepo_c", "gpgv"):
        if not shutil.which(tool, path=SYSPATH):
            pytest.skip(f"{tool} not installed (scripts/setup.sh)")
    root = tmp_path_factory.mktemp("rollout")
    dist, gnupghome = root / "dist", root / "gnupg"
    gnupghome.mkdir(mode=0o700)
    builds_started: list[str] = []
    say = builds._say

    def counting_say(msg: str) -> None:
        builds_started.append(msg)
        say(msg)

    results: list[Path] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(builds.build_rollout_repo(dist, str(gnupghome)))
        except BaseException as e:
            errors.append(e)

    builds._say = counting_say
    try:
        started = time.monotonic()
        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cold = time.monotonic() - started
        assert not errors, errors
        stamp_mtime = (dist / ".stamp").stat().st_mtime_ns
        started = time.monotonic()
        warm_repo = builds.build_rollout_repo(dist, str(gnupghome))
        warm = time.monotonic() - started
    finally:
        builds._say = say
    print(f"rollout repo: cold {cold:.1f}s (two callers), cached {warm:.3f}s", file=sys.stderr)
    return {"dist": dist, "repo": warm_repo, "results": results, "cold": cold, "warm": warm,
            "started": builds_started, "stamp_mtime": stamp_mtime}


@pytest.fixture(scope="module")
def repo(built: dict[str, object]) -> Path:
    r = built["repo"]
    assert isinstance(r, Path)
    return r


@pytest.fixture(scope="module")
def kos(built: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """version -> vpsnet.ko built from that version's packaged DKMS tree for 6.1."""
    kver = _kver()
    dist = built["dist"]
    assert isinstance(dist, Path)
    root = tmp_path_factory.mktemp("rollout-kos")
    env = {**pkg.ENV, "MAKEFLAGS": ""}
    out: dict[str, Path] = {}
    for v in VERSIONS:
        pkg.run(["dpkg-deb", "-x", str(dist / f"vpsnet-dkms_{v}_all.deb"), str(root / v)])
        tree = root / v / "usr" / "src" / f"vpsnet-{v}"
        # What dkms.conf's MAKE[0] runs: the tree's own Makefile, KVER and KDIR only.
        r = pkg.run(["make", "-C", str(tree), f"KVER={kver}", f"KDIR=/lib/modules/{kver}/build"],
                    env=env, timeout=600)
        assert not re.search(r"\b(warning|error):", r.stdout + r.stderr), r.stdout + r.stderr
        out[v] = tree / "vpsnet.ko"
    return out


def _diff(old: Path, new: Path) -> tuple[int, dict[str, object], str]:
    """`vpsnet-abi diff --json` as the upgrade role runs it; also the text form."""
    cmd = [sys.executable, "-m", "vpsnet_tools.abi", "diff"]
    j = subprocess.run([*cmd, "--json", str(old), str(new)], capture_output=True, text=True,
                       timeout=120)
    assert j.returncode in (0, 3), j.stderr
    text = subprocess.run([*cmd, str(old), str(new)], capture_output=True, text=True,
                          timeout=120)
    assert text.returncode == j.returncode
    return j.returncode, json.loads(j.stdout), text.stdout


def _findings(doc: dict[str, object]) -> list[str]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return [f"{f['severity']}: {f['message']}" for f in findings]


# --------------------------------------------------------------------------- the build


def test_one_build_for_two_callers_then_cached(built: dict[str, object]) -> None:
    started = built["started"]
    assert isinstance(started, list)
    assert [s.split(":")[0] for s in started] == VERSIONS  # one caller built, once
    dist = built["dist"]
    assert isinstance(dist, Path)
    assert built["results"] == [dist.resolve() / "repo"] * 2
    assert built["repo"] == dist.resolve() / "repo"
    warm = built["warm"]
    assert isinstance(warm, float) and warm < 5.0
    assert (dist / ".stamp").stat().st_mtime_ns == built["stamp_mtime"]


def test_digest_covers_the_patches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = builds.source_digest()
    assert builds.source_digest() == before
    patches = tmp_path / "patches"
    shutil.copytree(builds.PATCHES, patches)
    monkeypatch.setattr(builds, "PATCHES", patches)
    assert builds.source_digest() == before
    with (patches / "1.1.0-add-metric.patch").open("a") as f:
        f.write("\n")
    assert builds.source_digest() != before


def test_packages_and_rpms_for_every_version(repo: Path) -> None:
    index = (repo / "apt/dists/bookworm/main/binary-amd64/Packages").read_text()
    listed = set(re.findall(r"^Package: (\S+)\n(?:.*\n)*?Version: (\S+)$", index, re.M))
    kmods = [f"vpsnet-kmod-{k}" for k in builds.fleet_kernels()]
    # the newest kernel of each series and the oldest 6.1 ABI (rolloutlab.py's fleet)
    assert len(kmods) == 3 and f"vpsnet-kmod-{oldest_abi('6.1')}" in kmods
    assert listed == {(p, v) for p in [*builds.PACKAGES, *kmods] for v in VERSIONS}
    rpms = {p.name for p in (repo / "rpm").glob("*.rpm")}
    assert rpms == ({f"{p}-{v}-1.noarch.rpm" for p in builds.PACKAGES for v in VERSIONS}
                    | {f"{p}-{v}-1.x86_64.rpm" for p in kmods for v in VERSIONS})
    assert (repo / "vpsnet-fleet.crt").is_file() and (repo / "vpsnet-fleet.der").is_file()
    sources = (repo / "vpsnet.sources").read_text()
    assert "URIs: http://10.0.2.101/apt" in sources and "Suites: bookworm" in sources


def test_inrelease_verifies_with_the_exported_key(repo: Path, tmp_path: Path) -> None:
    key = repo / "vpsnet-archive-keyring.gpg"
    dists = repo / "apt/dists/bookworm"
    pkg.run(["gpgv", "--keyring", str(key), str(dists / "InRelease")])
    pkg.run(["gpgv", "--keyring", str(key), str(dists / "Release.gpg"), str(dists / "Release")])
    pkg.run(["gpgv", "--keyring", str(key), str(repo / "rpm/repodata/repomd.xml.asc"),
             str(repo / "rpm/repodata/repomd.xml")])
    tampered = tmp_path / "InRelease"
    tampered.write_text((dists / "InRelease").read_text().replace("Suite: bookworm",
                                                                  "Suite: trixie"))
    assert pkg.run(["gpgv", "--keyring", str(key), str(tampered)], check=False).returncode != 0


# --------------------------------------------------------------------------- the modules


def test_modinfo_version_and_vermagic(kos: dict[str, Path]) -> None:
    kver = _kver()
    for v, ko in kos.items():
        assert pkg.run(["modinfo", "-F", "version", str(ko)]).stdout.strip() == v
        assert pkg.run(["modinfo", "-F", "vermagic", str(ko)]).stdout.startswith(f"{kver} ")
        assert read_manifest(ko)["version"] == v


def test_1_1_0_adds_one_family(kos: dict[str, Path]) -> None:
    rc, doc, text = _diff(kos["1.0.0"], kos["1.1.0"])
    assert (rc, doc["verdict"]) == (0, "additive")
    assert _findings(doc) == ["additive: metric family vpsnet_device_queues added (gauge)"]
    assert text.startswith("additive: ")
    fam = next(m for m in read_manifest(kos["1.1.0"])["metrics"]
               if m["name"] == "vpsnet_device_queues")
    assert fam["type"] == "gauge"
    assert set(fam["labels"]) == {"netns", "device", "driver", "direction"}


def test_2_0_0_breaks_without_a_major_bump(kos: dict[str, Path]) -> None:
    rc, doc, text = _diff(kos["1.1.0"], kos["2.0.0"])
    assert (rc, doc["verdict"]) == (3, "breaking")
    assert _findings(doc) == ["breaking: metric family vpsnet_link_flaps_total removed",
                              "additive: metric family vpsnet_link_flaps added (counter)"]
    assert doc["undeclared_break"] is True and doc["abi_major_bumped"] is False
    assert doc["new"]["abi_major"] == 1  # type: ignore[index]
    assert "vpsnet_link_flaps_total removed" in text
    names = {m["name"] for m in read_manifest(kos["2.0.0"])["metrics"]}
    assert "vpsnet_link_flaps" in names and "vpsnet_link_flaps_total" not in names
    assert "vpsnet_device_queues" in names  # based on 1.1.0


def test_1_2_0_passes_the_abi_check_but_is_built_unhealthy(kos: dict[str, Path]) -> None:
    rc, doc, _ = _diff(kos["1.1.0"], kos["1.2.0"])
    assert (rc, doc["verdict"]) == (0, "compatible")
    assert _findings(doc) == ["note: build flag test_force_unhealthy: false -> true "
                              "(not part of the ABI)"]
    assert read_manifest(kos["1.2.0"])["build"]["test_force_unhealthy"] is True
    for v in ("1.0.0", "1.1.0", "2.0.0"):
        assert read_manifest(kos[v])["build"]["test_force_unhealthy"] is False


def test_patched_trees_build_clean_on_the_other_kernels(
        built: dict[str, object], tmp_path: Path) -> None:
    """2.0.0 carries every C change of the patches: W=1, no warnings on 6.12 too."""
    dist = built["dist"]
    assert isinstance(dist, Path)
    others = [k for k in pkg.kernels()[1:] if Path(f"/lib/modules/{k}/build/Makefile").exists()]
    if not others:
        pytest.skip("headers for a second kernel not installed")
    pkg.run(["dpkg-deb", "-x", str(dist / "vpsnet-dkms_2.0.0_all.deb"), str(tmp_path)])
    tree = tmp_path / "usr/src/vpsnet-2.0.0"
    for kver in others:
        r = pkg.run(["make", "-C", str(tree), f"KVER={kver}", "W=1"],
                    env={**pkg.ENV, "MAKEFLAGS": ""}, timeout=600)
        assert not re.search(r"\b(warning|error):", r.stdout + r.stderr), r.stdout + r.stderr
        assert pkg.run(["modinfo", "-F", "vermagic", str(tree / "vpsnet.ko")]
                       ).stdout.startswith(f"{kver} ")
