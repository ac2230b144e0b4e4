#!/usr/bin/python
# Copyright: vpsnet contributors
# GNU General Public License v2.0 only (see https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt)
"""Detect the cloud a host runs in and describe its NICs (the vpsnet_cloud fact).

The thin Ansible side: parameters, their checks and main(). The detection
(collect once, then ordered per-cloud checks) is in the collection's module_utils
(vpsnet_detect and the files it imports), unit-tested without Ansible.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vpsnet_facts
short_description: Detect the cloud provider and describe the NICs of a host
description:
  - Sets the C(vpsnet_cloud) fact from local evidence (DMI, PCI ids, NIC drivers) and,
    when enabled, from the instance metadata service.
  - AWS metadata is read with the IMDSv2 token flow only; IMDSv1 is never used.
  - "GCP metadata is read with C(Metadata-Flavor: Google) and answers must carry that header."
  - The whole detection (sysfs reads, C(ethtool), metadata) is bounded by O(metadata_timeout)
    in total, so the module never hangs when metadata is unreachable.
  - "A C(product_uuid) starting with C(ec2) counts for AWS only when corroborated (as cloud-init's
    ds-identify does): equal to C(product_serial), or beside another AWS clue."
  - Answers that look wrong (HTML, missing header, absurd zone or region) are ignored
    with a warning.
version_added: "1.0.0"
author: vpsnet contributors (!UNKNOWN)
options:
  root:
    description:
      - Path prefix under which C(sys/) and C(proc/) are read. Tests point it at recorded trees.
      - C(ethtool) is only run when this is C(/).
    type: path
    default: /
  metadata:
    description: Query the instance metadata service.
    type: bool
    default: true
  metadata_url:
    description:
      - Base URL of the metadata service (both clouds answer on the link-local address).
      - A literal IP address is best, since name resolution is not covered by the time budget.
    type: str
    default: http://169.254.169.254
  metadata_url_ipv6:
    description:
      - Base URL of the metadata service over IPv6 (AWS IMDS's IPv6 endpoint), used when
        O(metadata_ip_version) is C(6), or C(auto) and the host has no IPv4 route to
        169.254.169.254 but an IPv6 route to fd00:ec2::254 (read from C(proc/net/route) and
        C(proc/net/ipv6_route)).
      - Only AWS is asked over IPv6; GCP documents its metadata server on IPv4 only.
    type: str
    default: http://[fd00:ec2::254]
  metadata_ip_version:
    description:
      - Which metadata URL to use, one of C(auto), C(4) or C(6). C(auto) decides from the
        host's routes (see O(metadata_url_ipv6)).
      - Any other value fails with one line naming it.
    type: str
    default: auto
  metadata_timeout:
    description:
      - Total time budget in seconds for the whole detection, local reads and metadata
        requests together (more than 0, at most 60).
    type: float
    default: 2.0
extends_documentation_fragment:
  - vpsnet.fleet.read_only
requirements:
  - python requests (for metadata; without it metadata is skipped with a warning)
"""

EXAMPLES = r"""
- name: Detect the cloud
  vpsnet.fleet.vpsnet_facts:

- name: Detect from local evidence only
  vpsnet.fleet.vpsnet_facts:
    metadata: false
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    vpsnet_cloud:
      description: Cloud provider, how it was decided, placement and NICs.
      returned: always
      type: dict
      sample:
        provider: aws
        evidence:
          - "dmi sys_vendor='Amazon EC2' -> aws"
        region: us-east-1
        zone: us-east-1a
        instance_type: m5.large
        instance_type_source: metadata
        instance_id: i-0abc
        metadata_reachable: true
        nics:
          - name: ens5
            driver: ena
            pci_id: "1d0f:ec20"
            pci_address: "0000:00:05.0"
            numa_node: null
            queues:
              current: {rx: 2, tx: 2}
              max: {rx: null, tx: null, other: null, combined: 2}
            irqs:
              - {irq: 27, name: ens5-Tx-Rx-0, queue: 0, direction: rxtx}
"""

import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import Deadline, show
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_detect import detect
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_inventory import ethtool_runner
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_metadata import (
    HAS_REQUESTS,
    MetadataProbe,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_metadata_route import (
    AWS_IMDS_IPV6_URL,
    IP_VERSIONS,
)

MAX_TIMEOUT = 60.0  # a bigger budget would hold every play for minutes on hosts without metadata


def _url_problem(url: Any) -> str | None:
    """What makes URL unfit as a metadata base URL, or None."""
    if not isinstance(url, str) or any(not c.isprintable() or c.isspace() for c in url):
        return "control characters or spaces"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http:// or https:// URL with a host"
    if parts.username is not None or parts.query or parts.fragment:
        return "credentials, a query or a fragment"
    if port == 0:
        return "port 0"
    return None


def check_params(params: Mapping[str, Any]) -> str | None:
    """The first bad parameter as a one-line message naming it, or None."""
    timeout = params["metadata_timeout"]
    if not (isinstance(timeout, float) and math.isfinite(timeout)
            and 0 < timeout <= MAX_TIMEOUT):
        return (f"metadata_timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], "
                f"got {show(timeout)}")
    for name in ("metadata_url", "metadata_url_ipv6"):
        url = params.get(name, AWS_IMDS_IPV6_URL)
        problem = _url_problem(url)
        if problem:
            return f"{name} must be a plain http(s) URL ({problem}), got {show(url)}"
    version = params.get("metadata_ip_version", "auto")
    if version not in IP_VERSIONS:
        return f"metadata_ip_version must be one of auto, 4, 6, got {show(version)}"
    root = params["root"]
    if not os.path.isdir(root):
        return f"root must be an existing directory, got {show(root)}"
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "metadata": {"type": "bool", "default": True},
            "metadata_url": {"type": "str", "default": "http://169.254.169.254"},
            "metadata_url_ipv6": {"type": "str", "default": AWS_IMDS_IPV6_URL},
            "metadata_ip_version": {"type": "str", "default": "auto"},  # check_params: one line
            "metadata_timeout": {"type": "float", "default": 2.0},
        },
        supports_check_mode=True,
    )
    problem = check_params(module.params)
    if problem:
        module.fail_json(msg=f"vpsnet_facts: {problem}")
    root = module.params["root"]
    deadline = Deadline(module.params["metadata_timeout"])

    probe = None
    if module.params["metadata"]:
        if HAS_REQUESTS:
            probe = MetadataProbe(module.params["metadata_url"],
                                  base_url6=module.params["metadata_url_ipv6"],
                                  ip_version=module.params["metadata_ip_version"],
                                  within=deadline)
        else:
            module.warn("vpsnet_facts: python requests is missing; metadata not queried")

    ethtool = None
    ethtool_bin = module.get_bin_path("ethtool") if os.path.realpath(root) == "/" else None
    if ethtool_bin:
        ethtool = ethtool_runner(ethtool_bin, deadline)

    try:
        facts = detect(root, probe, ethtool, deadline)
    except Exception as exc:
        module.fail_json(msg=f"vpsnet_facts: detection failed ({type(exc).__name__}: "
                             f"{show(str(exc))})")
    for warning in probe.warnings if probe else []:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"vpsnet_cloud": facts})


if __name__ == "__main__":
    main()
