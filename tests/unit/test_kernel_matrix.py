"""packaging/kernels.yml and its resolution against the mirror's headers."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "scripts" / "kernel-matrix.py"
AVAILABLE = [
    "6.1.0-9-cloud-amd64", "6.1.0-47-cloud-amd64", "6.1.0-57-cloud-amd64", "6.1.0-57-amd64",
    "6.1.0-57-common", "6.12.107+deb12-cloud-amd64", "6.12.117+deb12-cloud-amd64",
    "6.12.99+deb12-cloud-amd64", "6.12.117+deb12-amd64", "cloud-amd64",
]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kernel_matrix", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["kernel_matrix"] = mod
    spec.loader.exec_module(mod)
    return mod


km = _load()


def write(tmp: Path, text: str) -> Path:
    p = tmp / "kernels.yml"
    p.write_text(text)
    return p


def test_the_shipped_matrix_resolves() -> None:
    got = km.resolve(km.load(km.DEFAULT_MATRIX), AVAILABLE)
    assert got == [("6.1", "6.1.0-9-cloud-amd64"), ("6.1", "6.1.0-47-cloud-amd64"),
                   ("6.1", "6.1.0-57-cloud-amd64"), ("6.12", "6.12.99+deb12-cloud-amd64"),
                   ("6.12", "6.12.107+deb12-cloud-amd64"), ("6.12", "6.12.117+deb12-cloud-amd64")]


def test_newest_n_orders_by_version_not_text(tmp_path: Path) -> None:
    m = km.load(write(tmp_path, "series:\n  - {name: '6.12', newest: 2,\n"
                                "     releases: '6\\.12\\.[0-9]+\\+deb12-cloud-amd64'}\n"))
    assert km.resolve(m, AVAILABLE) == [("6.12", "6.12.107+deb12-cloud-amd64"),
                                        ("6.12", "6.12.117+deb12-cloud-amd64")]


def test_a_series_apt_does_not_know_is_an_error(tmp_path: Path) -> None:
    m = km.load(write(tmp_path, "series:\n  - {name: '6.6', releases: '6\\.6\\..*'}\n"))
    with pytest.raises(km.MatrixError, match=r"series 6\.6"):
        km.resolve(m, AVAILABLE)


@pytest.mark.parametrize(("text", "message"), [
    ("[]\n", "non-empty list 'series'"),
    ("series: []\n", "non-empty list 'series'"),
    ("series:\n  - {name: 6.1, releases: x}\n", "name 6.1 is not"),
    ("series:\n  - {name: '6.1', releases: '('}\n", "releases '('"),
    ("series:\n  - {name: '6.1', releases: x, newest: 0}\n", "newest 0"),
    ("series:\n  - {name: '6.1', releases: x, newest: true}\n", "newest True"),
    ("series:\n  - {name: '6.1', releases: x, kernel: y}\n", "want keys"),
    ("series:\n  - {name: '6.1', releases: x}\n  - {name: '6.1', releases: y}\n", "twice"),
    ("series: [\n", "kernels.yml"),
])
def test_bad_matrix_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(km.MatrixError, match=re.escape(message)):
        km.load(write(tmp_path, text))


def test_a_release_counts_only_with_its_headers_and_its_signed_image() -> None:
    # the mirror on 2026-12-02: 6.12.118's signed image not there yet, only -unsigned
    packages = [
        "linux-headers-6.12.117+deb12-cloud-amd64", "linux-image-6.12.117+deb12-cloud-amd64",
        "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
        "linux-headers-6.12.118+deb12-cloud-amd64",
        "linux-image-6.12.118+deb12-cloud-amd64-unsigned",
        "linux-image-6.12.118+deb12-cloud-amd64-dbg",
        "linux-image-6.1.0-57-cloud-amd64",  # headers missing
        "linux-headers-6.1.0-47-cloud-amd64", "linux-image-6.1.0-47-cloud-amd64",
    ]
    assert km.usable_releases(packages) == ["6.1.0-47-cloud-amd64",
                                            "6.12.117+deb12-cloud-amd64"]
