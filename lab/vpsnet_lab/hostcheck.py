"""What this machine must provide to run a parsed lab spec: kernel packages,
certificate files, free ports, memory and CPUs. Called by Lab.up before
anything starts (and by whoever else needs the check); parsing never looks."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from . import paths
from .paths import KERNEL_SERIES
from .spec import Spec, SpecError

HOST_MEMORY_RESERVE_MB = 2048


def check_host(spec: Spec) -> None:
    """Raise SpecError (naming SPEC's source) with every problem of host_problems."""
    problems = host_problems(spec)
    if problems:
        raise SpecError(spec.source, problems)


def host_problems(spec: Spec) -> list[str]:
    """What this machine lacks to run SPEC, one "field: message" line each."""
    return [*_file_problems(spec), *_port_problems(spec), *_memory_problems(spec),
            *_cpu_problems(spec)]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def host_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def _file_problems(spec: Spec) -> list[str]:
    problems: list[str] = []
    for g in spec.guests:
        if g.kernel not in KERNEL_SERIES and not paths.apt_knows(f"linux-image-{g.kernel}"):
            problems.append(f"{g.where}.kernel: apt knows no package linux-image-{g.kernel}")
        problems += [f"{g.where}.mok_certs: cannot read {c}" for c in g.mok_certs
                     if not os.access(c, os.R_OK)]
    return problems


def _port_problems(spec: Spec) -> list[str]:
    ports = {g.ssh_port: f"{g.where}.ssh_port" for g in spec.guests}
    ports.update({h: f"{g.where}.forwards[{j}].host_port"
                  for g in spec.guests for j, (_, h) in enumerate(g.forwards)})
    return [f"{where}: port {port} is already in use on 127.0.0.1"
            for port, where in sorted(ports.items()) if port_in_use(port)]


def _memory_problems(spec: Spec) -> list[str]:
    total = sum(g.memory_mb for g in spec.guests)
    avail = host_memory_mb() - HOST_MEMORY_RESERVE_MB
    if total <= avail:
        return []
    return [f"guests[*].memory_mb: the guests need {total} MiB in all but the machine has "
            f"{avail} MiB to spare (MemAvailable less {HOST_MEMORY_RESERVE_MB} MiB)"]


def _cpu_problems(spec: Spec) -> list[str]:
    cpus = os.cpu_count() or 1
    return [f"{g.where}.vcpus: {g.vcpus} vCPUs on a {cpus}-core machine"
            for g in spec.guests if g.vcpus > cpus * 4]
