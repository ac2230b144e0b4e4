"""ansible-test sanity on the built vpsnet.fleet collection, as `make sanity` runs it
(scripts/sanity-collection.sh): every sanity test passes, with only the entries of
tests/sanity/ignore-2.19.txt, each of which states its reason. About a minute on two
cores once ansible-test's venvs exist in .cache/sanity; the first run installs them
from PyPI (several minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def test_ansible_test_sanity_on_the_built_collection() -> None:
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    proc = subprocess.run(["bash", str(REPO / "scripts" / "sanity-collection.sh")], env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    findings = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.startswith(("ERROR:", "FATAL:"))]
    assert proc.returncode == 0, "\n".join(findings) or proc.stderr[-3000:]
    assert "Running sanity test \"validate-modules\"" in proc.stdout
