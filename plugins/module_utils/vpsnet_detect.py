"""The detection behind the vpsnet_cloud fact: collect the host's facts once, decide
locally (vpsnet_cloud), ask metadata in that order, all within one deadline.
Imported by the vpsnet_facts module."""

from __future__ import annotations

from typing import Any

from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import Deadline
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_cloud import (
    Host,
    conclude,
    decide_locally,
    ec2_instance_type,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_dmi import read_dmi
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_identity import (
    AWS,
    MetadataResult,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_inventory import (
    Ethtool,
    read_nics,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_metadata import MetadataProbe


def collect(root: str, ethtool: Ethtool | None = None,
            deadline: Deadline | None = None) -> Host:
    """Every local fact detection looks at, read once: DMI, then the NICs."""
    return Host(read_dmi(root), read_nics(root, ethtool, deadline))


def detect(root: str = "/", probe: MetadataProbe | None = None,
           ethtool: Ethtool | None = None,
           deadline: Deadline | None = None) -> dict[str, Any]:
    """Build the vpsnet_cloud fact. `probe` None means no metadata queries.

    One deadline covers all of it, local reads included: the probe's (which
    `deadline`, when given too, must be: MetadataProbe(within=...)), else
    `deadline`, else none.
    """
    if probe is not None:
        if deadline is not None and deadline is not probe.deadline:
            raise ValueError("detect: the probe must share the detection's deadline")
        deadline = probe.deadline
    elif deadline is None:
        deadline = Deadline(None)
    host = collect(root, ethtool, deadline)
    verdict = decide_locally(host)
    evidence = list(verdict.evidence)

    meta: MetadataResult | None = None
    reachable = False
    if probe is not None:
        probe.select(root)
        meta, probe_evidence, reachable = probe.run(verdict.metadata_order())
        evidence.extend(probe_evidence)
    else:
        evidence.append("metadata: not queried (disabled)")
    provider, lines = conclude(verdict, meta)
    evidence.extend(lines)
    if deadline.seconds is not None:
        evidence.append(f"timing: detection took {deadline.elapsed():.2f} s of its "
                        f"{deadline.seconds:g} s budget")
    evidence.append(f"decision: {provider}")

    instance_type = meta.instance_type if meta else None
    source = "metadata" if instance_type else None
    if instance_type is None and provider == AWS:
        instance_type = ec2_instance_type(host.dmi)
        source = "dmi" if instance_type else None
    return {
        "provider": provider,
        "evidence": evidence,
        "region": meta.region if meta else None,
        "zone": meta.zone if meta else None,
        "instance_type": instance_type,
        "instance_type_source": source,
        "instance_id": meta.instance_id if meta else None,
        "metadata_reachable": reachable,
        "nics": host.inventory.nics,
    }
