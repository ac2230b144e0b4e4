"""The Ansible inventory of a lab: groups by cloud and by region."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .fleet import SSH_KEY
from .qemu import identity
from .spec import Spec


def group_name(prefix: str, value: str) -> str:
    """Ansible group names must be identifiers: us-east-1 -> region_us_east_1."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', value)}"


def build(spec: Spec, key_file: Path = SSH_KEY) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    clouds: dict[str, dict[str, Any]] = {}
    regions: dict[str, dict[str, Any]] = {}
    for g in spec.guests:
        ident = identity(spec, g)
        hosts[g.name] = {
            "ansible_host": "127.0.0.1",
            "ansible_port": g.ssh_port,
            "vpsnet_lab_cloud": g.cloud,
            "vpsnet_lab_zone": g.zone,
            "vpsnet_lab_instance_type": g.instance_type,
            "vpsnet_lab_instance_id": ident["instance_id"],
            "vpsnet_lab_kernel": g.kernel,
            "vpsnet_lab_nics": [
                {"name": f"eth{n.index}", "queues": n.queues, "address": n.address,
                 "peer_address": n.peer_address, "address6": n.address6,
                 "peer_address6": n.peer_address6, "kind": n.kind,
                 **({"peer": n.link} if n.link else {}),
                 **({"netns": n.netns} if n.netns else {})}
                for n in g.nics
            ],
        }
        clouds.setdefault(g.cloud, {"hosts": {}})["hosts"][g.name] = None
        region_vars = {f"vpsnet_region_{k}": v for k, v in spec.regions.get(g.region, {}).items()}
        region = regions.setdefault(group_name("region", g.region), {
            "hosts": {}, "vars": {"vpsnet_region": g.region, **region_vars}})
        region["hosts"][g.name] = None
    region_order = list(dict.fromkeys(g.region for g in spec.guests))
    return {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(key_file),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                                           "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                "ansible_python_interpreter": "/usr/bin/python3",
                # Mitogen's connection bootstrap (ansible_env.py) takes ~50 s on a
                # busy TCG guest, over Ansible's 10 s default
                "ansible_timeout": 120,
                "vpsnet_lab": spec.name,
                "vpsnet_rollout_regions": region_order,
            },
            "hosts": hosts,
            "children": {**clouds, **regions},
        }
    }


def write(spec: Spec, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by `vpsnet-lab inventory` for the running lab; do not edit.\n---\n"
    text += yaml.safe_dump(build(spec), sort_keys=False, default_flow_style=False)
    path.write_text(text)
    return path
