#!/usr/bin/env python3
"""Lab helper of the molecule/kvm scenario (called by create.yml / destroy.yml).

  kvmlab.py up INSTANCE_CONFIG   build the signed repository (http://10.0.2.101,
                                 molecule/rollout/builds.py: packages built from
                                 this tree), serve it on 127.0.0.1, boot the two
                                 guests and write molecule's instance config
  kvmlab.py down                 stop the guests and the repository server (always safe)

State lives in .cache/lab-kvm (VPSNET_KVM_STATE), ports from base_port 19022
(VPSNET_KVM_BASE_PORT), so it never meets another lab on the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from vpsnet_lab import molecule_lab
from vpsnet_lab.paths import CACHE, TOP

STATE = Path(os.environ.get("VPSNET_KVM_STATE", str(CACHE / "lab-kvm")))
BASE_PORT = int(os.environ.get("VPSNET_KVM_BASE_PORT", "19022"))


def build_rollout_repo() -> Path:
    """The rollout scenario's repository: molecule/rollout/builds.py run as a
    program (as scripts/demo.sh does), which prints the repository's path."""
    out = subprocess.run([sys.executable, str(TOP / "molecule/rollout/builds.py")],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return Path(out.strip().splitlines()[-1])


def spec() -> dict[str, Any]:
    return molecule_lab.scenario_spec("kvm", BASE_PORT, [
        {"name": "aws61", "cloud": "aws", "region": "us-east-1", "zone": "us-east-1a",
         "instance_type": "m5.xlarge", "kernel": "6.1", "vcpus": 2, "memory_mb": 1536,
         "nics": [{"queues": 4}]},
        {"name": "gcp612", "cloud": "gcp", "region": "asia-east1", "zone": "asia-east1-b",
         "instance_type": "e2-standard-2", "kernel": "6.12", "vcpus": 1, "memory_mb": 1536},
    ])


def say(msg: str) -> None:
    print(f"[kvm-lab] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(molecule_lab.main(sys.argv[1:], __doc__ or "", spec(), "molecule/kvm/kvmlab.py", STATE,
                               build_rollout_repo, say))
