"""The signed dnf repository with the real dnf and only that repository
(`reposdir=/dev/null`, private installroot and cache, gpgcheck and
repo_gpgcheck on): it resolves and downloads, and refuses a tampered repomd."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pkgtest.build import Build
from pkgtest.host import REPO_URL
from pkgtest.private_dnf import dnf_download

pytestmark = pytest.mark.packaging


def test_dnf_resolves_and_downloads_with_gpg_checks(build: Build, tmp_path: Path) -> None:
    proc = dnf_download(f"file://{build.repo}", tmp_path, "vpsnet-dkms")
    assert proc.rc == 0, proc.output
    got = sorted(p.name for p in (tmp_path / "dl").glob("*.rpm"))
    # the newest version in the repository wins
    assert got == [build.rpm("vpsnet-dkms", build.version2).name]
    proc = dnf_download(f"file://{build.repo}", tmp_path / "old", f"vpsnet-dkms-{build.version}")
    assert proc.rc == 0, proc.output


def test_dnf_refuses_tampered_repomd(build: Build, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    repomd = repo / "rpm/repodata/repomd.xml"
    repomd.write_text(repomd.read_text() + "<!-- tampered -->\n")
    proc = dnf_download(f"file://{repo}", tmp_path / "w", "vpsnet-dkms")
    assert proc.rc != 0
    assert "GPG signature verification error" in proc.output


def test_dnf_repo_file(build: Build) -> None:
    text = (build.repo / "vpsnet.repo").read_text()
    assert "gpgcheck=1" in text.split() and "repo_gpgcheck=1" in text.split()
    assert f"baseurl={REPO_URL}/rpm" in text
    assert f"gpgkey={REPO_URL}/vpsnet-archive-keyring.asc" in text
