"""The execution environment image (scripts/ee-build.sh) and `ansible-runner run` jobs
in it, judged by the artifacts they write. Used by tests/ee and tests/molecule."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Where ansible-builder's galaxy stage installs the collections.
IMAGE_COLLECTIONS = "/usr/share/ansible/collections/ansible_collections"
# The image's user (ansible-builder's default), as AWX runs it.
IMAGE_UID = 1000


def build_ee_image() -> str:
    """The image for the tree as it is (built unless its inputs' hash tag exists)."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/ee-build.sh")], cwd=REPO, capture_output=True,
        # 119 s measured for a build from nothing (2026-12-07); a failure, not a hang
        text=True, timeout=1800, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


def in_image(image: str, *cmd: str, volume: Path | None = None, network: str = "none",
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run CMD in a throw-away container of IMAGE (VOLUME at /runner); removed even on
    timeout."""
    name = f"vpsnet-ee-test-{uuid.uuid4().hex[:12]}"
    mount = ["-v", f"{volume}:/runner"] if volume else []
    try:
        return subprocess.run(
            ["docker", "run", "--rm", "--name", name, "--network", network, *mount, image, *cmd],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@dataclass(frozen=True)
class RunnerJob:
    """What `ansible-runner run` left in artifacts/<ident>/."""

    status: str
    rc: int
    events: list[dict[str, Any]]
    stdout: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


def make_private_data_dir(root: Path) -> Path:
    """An empty ansible-runner private data dir (project/, inventory/, env/) in ROOT."""
    pdd = root / "runner"
    for sub in ("project", "inventory", "env"):
        (pdd / sub).mkdir(parents=True)
    return pdd


def run_job(image: str, pdd: Path, playbook: str, ident: str, network: str = "none",
            timeout: float = 300) -> RunnerJob:
    """`ansible-runner run` of PLAYBOOK on the data dir PDD, as the image's user (as AWX
    runs it: it owns the data dir)."""
    for path in [pdd, *pdd.rglob("*")]:
        os.lchown(path, IMAGE_UID, 0)
    proc = in_image(image, "ansible-runner", "run", "/runner", "--ident", ident,
                    "-p", playbook, volume=pdd, network=network, timeout=timeout)
    artifacts = pdd / "artifacts" / ident
    assert (artifacts / "status").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")]
    return RunnerJob(
        status=(artifacts / "status").read_text(),
        rc=int((artifacts / "rc").read_text()),
        events=sorted(events, key=lambda e: e["counter"]),
        stdout=(artifacts / "stdout").read_text(),
    )
