#!/usr/bin/env python3
"""Lab helper of the molecule/rollout and molecule/rollout-core scenarios (called
by molecule/rollout/create.yml / destroy.yml; the scenario is molecule's
MOLECULE_SCENARIO_NAME).

  rolloutlab.py up INSTANCE_CONFIG   build the signed repository with vpsnet 1.0.0,
                                     1.1.0, 2.0.0, 1.2.0 and 1.3.0 (builds.py), serve
                                     it on 127.0.0.1 (the guests' http://10.0.2.101),
                                     boot the scenario's guests, write molecule's
                                     instance config
  rolloutlab.py down                 stop the guests and the repository server

rollout (make test-all, the whole story): 2 clouds x 2 regions, 3 guests.
us-east-1 has a canary and a batch (6.1 and 6.12, joined by a link, each the
other's ping peer); asia-east1 one host on the oldest 6.1 ABI of the kernel
matrix (a host that missed kernel updates gets its own ABI's prebuilt module),
whose ping peer is the host side of its 2-queue NIC. State in .cache/lab-rollout,
ports from base port 17022.

rollout-core (make test, the story's core): one host per region, the least a
region-by-region rollout with an untouched rest needs: the canary use1-a on
6.12 and ase1-a on the oldest 6.1 ABI, each pinging the host side of its own
2-queue NIC. State in .cache/lab-rollout-core, ports from base port 18022.

VPSNET_ROLLOUT_STATE and VPSNET_ROLLOUT_BASE_PORT override the state directory
and the base port.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# Run as a script: its own folder is first on sys.path, so builds.py imports by name.
from builds import build_rollout_repo

from vpsnet_lab import molecule_lab
from vpsnet_lab.paths import CACHE, oldest_abi

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "rollout")
DEFAULT_BASE_PORTS = {"rollout": 17022, "rollout-core": 18022}
if SCENARIO not in DEFAULT_BASE_PORTS:
    sys.exit(f"rolloutlab.py: unknown scenario {SCENARIO!r} (MOLECULE_SCENARIO_NAME); "
             f"known: {', '.join(DEFAULT_BASE_PORTS)}")
STATE = Path(os.environ.get("VPSNET_ROLLOUT_STATE", str(CACHE / f"lab-{SCENARIO}")))
BASE_PORT = int(os.environ.get("VPSNET_ROLLOUT_BASE_PORT", str(DEFAULT_BASE_PORTS[SCENARIO])))
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
    if SCENARIO == "rollout-core":
        guests = [
            guest(0, "use1-a", "aws", "us-east-1", "us-east-1a", "6.12", nics=[{"queues": 2}]),
            guest(1, "ase1-a", "gcp", "asia-east1", "asia-east1-a", oldest_abi("6.1"),
                  nics=[{"queues": 2}]),
        ]
    else:
        guests = [
            guest(0, "use1-a", "aws", "us-east-1", "us-east-1a", "6.1",
                  nics=[{"link": "use1-b"}]),
            guest(1, "use1-b", "aws", "us-east-1", "us-east-1b", "6.12"),
            guest(2, "ase1-a", "gcp", "asia-east1", "asia-east1-a", oldest_abi("6.1"),
                  nics=[{"queues": 2}]),
        ]
    return molecule_lab.scenario_spec(SCENARIO, BASE_PORT, guests)


def say(msg: str) -> None:
    print(f"[rollout-lab] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(molecule_lab.main(sys.argv[1:], __doc__ or "", spec(),
                               "molecule/rollout/rolloutlab.py", STATE,
                               build_rollout_repo, say))
