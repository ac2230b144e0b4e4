"""A spec's kernel: a series or an exact Debian cloud kernel release (an ABI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpsnet_lab import image, paths
from vpsnet_lab.hostcheck import check_host
from vpsnet_lab.paths import LabError, release_series, resolve_kernel
from vpsnet_lab.spec import SpecError
from vpsnet_lab.specparse import parse

from .test_spec import GOOD, mutate

KNOWN = {"linux-image-6.1.0-47-cloud-amd64", "linux-image-6.12.107+deb12-cloud-amd64"}


@pytest.fixture
def fake_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "apt_knows", lambda pkg: pkg in KNOWN)
    monkeypatch.setattr(paths, "kernel_releases", lambda: {
        "6.1": "6.1.0-57-cloud-amd64", "6.12": "6.12.117+deb12-cloud-amd64"})


@pytest.mark.parametrize(("value", "series"), [
    ("6.1.0-47-cloud-amd64", "6.1"),
    ("6.12.107+deb12-cloud-amd64", "6.12"),
    ("6.1.0-47-amd64", None),  # not a cloud kernel
    ("6.1", None),  # a series, not a release
    ("5.10.0-30-cloud-amd64", None),  # a series the lab does not boot
    ("6.12.12+bpo-cloud-amd64", None),  # backports: not in the images' apt sources
])
def test_release_names(value: str, series: str | None) -> None:
    assert release_series(value) == series


@pytest.mark.usefixtures("fake_apt")
def test_resolve_series_and_exact_releases() -> None:
    assert resolve_kernel("6.1") == ("6.1", "6.1.0-57-cloud-amd64")
    assert resolve_kernel("6.1.0-47-cloud-amd64") == ("6.1", "6.1.0-47-cloud-amd64")
    assert resolve_kernel("6.12.107+deb12-cloud-amd64")[0] == "6.12"
    with pytest.raises(LabError, match=r"kernel '6\.1\.0-99-cloud-amd64': apt knows no package "
                                       r"linux-image-6\.1\.0-99-cloud-amd64"):
        resolve_kernel("6.1.0-99-cloud-amd64")
    with pytest.raises(LabError, match=r"unknown kernel 'latest': expected 6\.1, 6\.12 or an "):
        resolve_kernel("latest")


@pytest.mark.usefixtures("fake_apt")
def test_spec_takes_an_exact_release_that_apt_knows() -> None:
    spec = parse(mutate(("guests", 0, "kernel"), "6.1.0-47-cloud-amd64"), "t.yml")
    assert spec.guests[0].kernel == "6.1.0-47-cloud-amd64"


@pytest.mark.usefixtures("fake_apt")
def test_spec_refuses_a_release_apt_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    from vpsnet_lab import hostcheck
    monkeypatch.setattr(hostcheck, "port_in_use", lambda port: False)
    monkeypatch.setattr(hostcheck, "host_memory_mb", lambda: 1 << 20)
    spec = parse(mutate(("guests", 0, "kernel"), "6.1.0-99-cloud-amd64"), "t.yml")
    with pytest.raises(SpecError) as exc:
        check_host(spec)
    assert exc.value.problems == [
        "guests[0] (a1).kernel: apt knows no package linux-image-6.1.0-99-cloud-amd64"]
    check_host(parse({**GOOD, "guests": [{**GOOD["guests"][1],
                                          "kernel": "6.12.107+deb12-cloud-amd64"}]}, "t.yml"))


def test_cache_dirs_are_named_by_release() -> None:
    assert image.image_dir("6.1.0-47-cloud-amd64", Path("/i")).name.startswith(
        "6.1.0-47-cloud-amd64-")


def test_series_and_exact_release_images_keep_each_others_cache(tmp_path: Path) -> None:
    key = "0123456789abcdef"
    names = ["6.1.0-57-cloud-amd64-" + key, "6.1.0-57-cloud-amd64-" + "f" * 16,
             "6.1.0-5-cloud-amd64-" + key, "6.1.0-47-cloud-amd64-" + key,
             "6.12.117+deb12-cloud-amd64-" + key, "6.1-" + key,  # a pre-release-naming build
             "tmp-6.1.0-57-cloud-amd64-x1y2z3"]  # another build's work directory
    for n in names:
        (tmp_path / n).mkdir()
    keep = tmp_path / names[0]
    stale = image.stale_dirs(tmp_path, keep, "6.1.0-57-cloud-amd64", "6.1")
    assert [p.name for p in stale] == ["6.1-" + key, "6.1.0-57-cloud-amd64-" + "f" * 16]
    # Building the older ABI touches only its own older builds.
    older = image.stale_dirs(tmp_path, tmp_path / names[3], "6.1.0-47-cloud-amd64", "6.1")
    assert [p.name for p in older] == ["6.1-" + key]
