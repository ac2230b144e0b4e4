"""dnf against a built repository's rpm side with only that repository, a
private installroot and cache, and both signature checks on. For the
host-side dnf repository tests."""

from __future__ import annotations

from pathlib import Path

from pkgtest.host import Result, run


def stop_dnf_gpg_agents(cache: Path) -> None:
    """libdnf verifies repomd.xml with a gpg home per repository inside the
    cache and leaves a gpg-agent running there: stop the ones we caused."""
    for home in cache.rglob("pubring"):
        if home.is_dir():
            run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def dnf_download(repo_url: str, work: Path, pkg: str) -> Result:
    """`dnf download PKG` into WORK/dl from the repository at REPO_URL (file://
    or http://: its rpm/ and vpsnet-archive-keyring.asc), state under WORK."""
    try:
        proc = run(
            [
                "dnf",
                "-y",
                f"--installroot={work / 'root'}",
                "--releasever=12",
                "--setopt=reposdir=/dev/null",
                f"--setopt=cachedir={work / 'cache'}",
                "--disableplugin=*",
                "--enableplugin=download",
                f"--repofrompath=vpsnet,{repo_url}/rpm",
                "--setopt=vpsnet.gpgcheck=1",
                "--setopt=vpsnet.repo_gpgcheck=1",
                f"--setopt=vpsnet.gpgkey={repo_url}/vpsnet-archive-keyring.asc",
                "download",
                f"--destdir={work / 'dl'}",
                pkg,
            ],
            check=False,
        )
    finally:
        stop_dnf_gpg_agents(work / "cache")
    return Result(proc.returncode, proc.stdout, proc.stderr)
