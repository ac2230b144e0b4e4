#!/usr/bin/env python3
"""Lab helper of the molecule/kvm scenario (called by create.yml / destroy.yml).

  kvmlab.py up INSTANCE_CONFIG   build the signed repository (http://10.0.2.101),
                                 serve it on 127.0.0.1, boot the two guests and
                                 write molecule's instance config
  kvmlab.py down                 stop the guests and the repository server (always safe)

State lives in .cache/lab-kvm (VPSNET_KVM_STATE), ports from base_port 19022
(VPSNET_KVM_BASE_PORT), so it never meets another lab on the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from vpsnet_lab.fleet import SSH_KEY, Lab
from vpsnet_lab.paths import CACHE, TOP

STATE = Path(os.environ.get("VPSNET_KVM_STATE", str(CACHE / "lab-kvm")))
BASE_PORT = int(os.environ.get("VPSNET_KVM_BASE_PORT", "19022"))
DIST = CACHE / "molecule-kvm" / "dist"
SERVER_PID = STATE.parent / (STATE.name + "-repo-server.pid")


def spec() -> dict[str, Any]:
    return {
        "name": "kvm",
        "base_port": BASE_PORT,
        "regions": {
            "us-east-1": {"rtt_ms": 180, "bandwidth_mbit": 1000},
            "asia-east1": {"rtt_ms": 60, "bandwidth_mbit": 2000},
        },
        "services": [{"name": "repo", "guest_port": 80, "host_port": BASE_PORT + 300}],
        "guests": [
            {"name": "aws61", "cloud": "aws", "region": "us-east-1", "zone": "us-east-1a",
             "instance_type": "m5.xlarge", "kernel": "6.1", "vcpus": 2, "memory_mb": 1536,
             "nics": [{"queues": 4}]},
            {"name": "gcp612", "cloud": "gcp", "region": "asia-east1", "zone": "asia-east1-b",
             "instance_type": "e2-standard-2", "kernel": "6.12", "vcpus": 1, "memory_mb": 1536},
        ],
    }


def say(msg: str) -> None:
    print(f"[kvm-lab] {msg}", file=sys.stderr, flush=True)


def build_repo() -> Path:
    """A private signed repository for http://10.0.2.101 from the packages in dist/."""
    version = (TOP / "VERSION").read_text().strip()
    want = [f"vpsnet-dkms_{version}_all.deb", f"vpsnet-tools_{version}_all.deb",
            f"vpsnet-dkms-{version}-1.noarch.rpm", f"vpsnet-tools-{version}-1.noarch.rpm"]
    if not all((TOP / "dist" / f).exists() for f in want):
        subprocess.run(["make", "-s", "-C", str(TOP / "packaging"), "packages"], check=True,
                       stdout=sys.stderr)
    digest = hashlib.sha256(b"".join((TOP / "dist" / f).read_bytes() for f in want)).hexdigest()
    stamp = DIST / "repo" / f".stamp-{digest[:16]}"
    if stamp.exists():
        return DIST / "repo"
    subprocess.run(["rm", "-rf", str(DIST)], check=True)
    DIST.mkdir(parents=True)
    for f in want:
        (DIST / f).write_bytes((TOP / "dist" / f).read_bytes())
    gnupghome = os.environ.get("VPSNET_GNUPGHOME", str(CACHE / "signing-gnupg"))
    subprocess.run(["bash", str(TOP / "packaging/scripts/mkrepo.sh"), str(DIST), gnupghome,
                    "http://10.0.2.101", "bookworm"], check=True, stdout=sys.stderr)
    stamp.touch()
    return DIST / "repo"


def stop_server() -> None:
    try:
        pid = int(SERVER_PID.read_text())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    SERVER_PID.unlink(missing_ok=True)


def up(instance_config: Path) -> None:
    down()
    repo = build_repo()
    STATE.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(BASE_PORT + 300),
         "-d", str(repo)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(STATE.parent / (STATE.name + "-repo-server.log")).open("w"),
        start_new_session=True)
    SERVER_PID.write_text(str(server.pid))
    started = time.monotonic()
    try:
        lab = Lab.up(spec(), "molecule/kvm/kvmlab.py", state_dir=STATE, say=say)
    except BaseException:
        stop_server()
        raise
    say(f"guests up in {time.monotonic() - started:.0f}s")
    config = [{"instance": g.name, "address": "127.0.0.1", "user": "root", "port": g.ssh_port,
               "identity_file": str(SSH_KEY)} for g in lab.spec.guests]
    instance_config.write_text(yaml.safe_dump(config, sort_keys=False))


def down() -> None:
    Lab(STATE).down(say=say)
    stop_server()


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"] and len(argv) == 2:
        up(Path(argv[1]))
    elif argv == ["down"]:
        down()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
