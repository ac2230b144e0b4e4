"""What the guest-side packaging tests share: the apt sources a guest gets for
the session's repositories, reading a step's `echo @key` output, the
environment of an ansible-playbook run, and progress lines on the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pkgtest.build import Build
from pkgtest.host import REPO_URL, TOP
from vpsnet_lab.fleet import Lab

KEYRING = "/etc/apt/keyrings/vpsnet-archive-keyring.gpg"


def sources_for(build: Build, guest: str) -> str:
    """The repository's own deb822 source, pointed at this guest's view."""
    text = (build.repo / "vpsnet.sources").read_text()
    assert f"URIs: {REPO_URL}/apt" in text and f"Signed-By: {KEYRING}" in text, text
    return text.replace(f"URIs: {REPO_URL}/apt", f"URIs: {REPO_URL}/{guest}/apt")


def kernel_sources_for(guest: str) -> str:
    """The deb822 source of the kernel packages' repository (RepoServer.kernels)."""
    return (
        f"Types: deb\nURIs: {REPO_URL}/{guest}/kernels\nSuites: bookworm\n"
        f"Components: main\nSigned-By: {KEYRING}\n"
    )


def sections(text: str) -> dict[str, str]:
    """A guest script's `echo @key`-separated output -> {key: text}."""
    out: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("@"):
            key = line[1:]
            out[key] = ""
        elif key:
            out[key] += line + "\n"
    return {k: v.strip() for k, v in out.items()}


def playbook_env() -> dict[str, str]:
    """The whole environment of an ansible-playbook run against lab guests from a
    test: this repo's venv, roles, collections and ansible.cfg, plain output."""
    return {"PATH": f"{TOP / '.venv' / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "ANSIBLE_ROLES_PATH": str(TOP / "roles"),
            "ANSIBLE_COLLECTIONS_PATH": str(TOP / ".cache" / "collections"),
            "ANSIBLE_CONFIG": str(TOP / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
            "HOME": "/root"}


def lab_say(prefix: str) -> Callable[[str], None]:
    """A `say` for Lab.up/down that prints `[PREFIX] msg` past pytest's capture."""
    def say(msg: str) -> None:
        print(f"[{prefix}] {msg}", file=sys.__stderr__, flush=True)
    return say


def put_text(lab: Lab, guest: str, text: str, remote: str, work: Path) -> None:
    """TEXT as the file REMOTE on GUEST (written locally under WORK first)."""
    local = work / f"{guest}-{Path(remote).name}"
    local.write_text(text)
    lab.put(guest, local, remote)
