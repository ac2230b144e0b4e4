"""apt-get and apt-cache against a built repository with all of apt's state
(sources, lists, cache, dpkg status) under a private directory. For the
host-side apt repository tests."""

from __future__ import annotations

from pathlib import Path

from pkgtest.host import REPO_URL, Result, run


class Apt:
    """apt-get/apt-cache with all state under a private directory."""

    def __init__(self, repo: Path, work: Path, uri: str | None = None) -> None:
        self.work = work
        etc = work / "etc/apt"
        for d in (
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "etc/apt/apt.conf.d",
            "etc/apt/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "dl",
        ):
            (work / d).mkdir(parents=True, exist_ok=True)
        (work / "status").touch()
        (etc / "sources.list.d/vpsnet.sources").write_text(
            (build_sources := (repo / "vpsnet.sources").read_text())
            .replace(f"{REPO_URL}/apt", uri or f"file:{repo / 'apt'}")
            .replace(
                "/etc/apt/keyrings/vpsnet-archive-keyring.gpg",
                str(repo / "vpsnet-archive-keyring.gpg"),
            )
        )
        assert f"URIs: {REPO_URL}" not in (etc / "sources.list.d/vpsnet.sources").read_text(), (
            build_sources
        )
        self.opts = [
            f"-oDir={work}",
            f"-oDir::Etc={etc}",
            "-oDir::Etc::sourcelist=/dev/null",
            f"-oDir::Etc::sourceparts={etc / 'sources.list.d'}",
            f"-oDir::State={work / 'state'}",
            f"-oDir::State::status={work / 'status'}",
            f"-oDir::Cache={work / 'cache'}",
            "-oDebug::NoLocking=1",
            "-oAPT::Architecture=amd64",
            "-oAPT::Sandbox::User=root",
        ]

    def __call__(self, tool: str, *args: str) -> Result:
        proc = run([tool, *self.opts, *args], check=False, cwd=self.work / "dl")
        return Result(proc.returncode, proc.stdout, proc.stderr)
