#!/usr/bin/env python3
"""Lab helper of the molecule/rollout scenario (called by create.yml / destroy.yml).

  rolloutlab.py up INSTANCE_CONFIG   build the signed repository with vpsnet 1.0.0,
                                     1.1.0, 2.0.0 and 1.2.0 (builds.py), serve it on
                                     127.0.0.1 (the guests' http://10.0.2.101), boot
                                     the three guests, write molecule's instance config
  rolloutlab.py down                 stop the guests and the repository server

The fleet: 2 clouds x 2 regions, small enough for `make test` (3 TCG guests on 2
cores): us-east-1 has a canary and a batch (6.1 and 6.12, joined by a link, each
the other's ping peer); asia-east1 one host on the oldest 6.1 ABI of the kernel
matrix (a host that missed kernel updates gets its own ABI's prebuilt module),
whose ping peer is the host side of its 2-queue NIC. State in .cache/lab-rollout
(VPSNET_ROLLOUT_STATE), ports from base_port 17022 (VPSNET_ROLLOUT_BASE_PORT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from builds import build_rollout_repo

from vpsnet_lab import molecule_lab
from vpsnet_lab.paths import CACHE, oldest_abi

STATE = Path(os.environ.get("VPSNET_ROLLOUT_STATE", str(CACHE / "lab-rollout")))
BASE_PORT = int(os.environ.get("VPSNET_ROLLOUT_BASE_PORT", "17022"))
EXPORTER_PORT = 19462
# Host port of guest i's exporter (a Prometheus on the host scrapes it): BASE_PORT + this + i.
EXPORTER_PORT_OFFSET = 400


def guest(index: int, name: str, cloud: str, region: str, zone: str, kernel: str,
          **extra: Any) -> dict[str, Any]:
    itype = "m5.large" if cloud == "aws" else "e2-standard-2"
    # 1 vCPU: with 2 (as those instance types have) TCG ran 8 vCPU threads on the
    # 2 host cores and everything got slower (create 72 min, a host's upgrade step
    # 916 s, against 33-59 min and 590 s with 1 vCPU)
    return {"name": name, "cloud": cloud, "region": region, "zone": zone,
            "instance_type": itype, "kernel": kernel, "vcpus": 1, "memory_mb": 1024,
            "forwards": [{"guest_port": EXPORTER_PORT,
                          "host_port": BASE_PORT + EXPORTER_PORT_OFFSET + index}], **extra}


def spec() -> dict[str, Any]:
    return molecule_lab.scenario_spec("rollout", BASE_PORT, [
        guest(0, "use1-a", "aws", "us-east-1", "us-east-1a", "6.1",
              nics=[{"link": "use1-b"}]),
        guest(1, "use1-b", "aws", "us-east-1", "us-east-1b", "6.12"),
        guest(2, "ase1-a", "gcp", "asia-east1", "asia-east1-a", oldest_abi("6.1"),
              nics=[{"queues": 2}]),
    ])


def say(msg: str) -> None:
    print(f"[rollout-lab] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(molecule_lab.main(sys.argv[1:], __doc__ or "", spec(),
                               "molecule/rollout/rolloutlab.py", STATE,
                               build_rollout_repo, say))
