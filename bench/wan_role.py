"""The WAN bench's vpsnet configuration, rendered from the vpsnet_tune role itself:
its defaults and vars, the set_fact tasks of tasks/plan.yml and tasks/sysctl.yml (the
vpsnet.fleet.vpsnet_tune_plan filter) and templates/sysctl.conf.j2, with Ansible's own
templating, as the role would on a bench guest. Imported by bench/wan*.py and their unit tests.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader import AnsibleCollectionConfig

from vpsnet_lab.paths import TOP

ROLE = TOP / "roles" / "vpsnet_tune"
SET_FACT = "ansible.builtin.set_fact"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# What the role's read tasks find on a bench guest (QEMU, 1 vCPU on one NUMA node,
# 1 GiB), as their registered results; the bench loads tcp_bbr before it applies
# the vpsnet configuration, so BBR is available.
GUEST_FACTS: dict[str, Any] = {
    "ansible_facts": {"memtotal_mb": 1024, "virtualization_role": "guest",
                      "virtualization_type": "kvm"},
    "__vpsnet_tune_online": {"content": _b64("0\n")},
    "__vpsnet_tune_node_cpulists": {"results": [
        {"item": {"path": "/sys/devices/system/node/node0"}, "content": _b64("0\n")}]},
    "__vpsnet_tune_siblings": {"stdout": "cpu0/topology/thread_siblings_list:0"},
    "__vpsnet_tune_cc_available": {"content": _b64("reno cubic bbr\n")},
}


def bench_vars(rtt_ms: float, bandwidth_mbit: int) -> dict[str, Any]:
    """The role variables the bench sets (also for the role run by ansible-playbook):
    the link's figures, and no NIC changes (the bench applies the qdisc itself)."""
    return {"vpsnet_tune_rtt_ms": rtt_ms, "vpsnet_tune_bandwidth_mbit": bandwidth_mbit,
            "vpsnet_tune_irq_affinity": False, "vpsnet_tune_nic_profile": "none"}


def _trusted(value: Any) -> Any:
    """The role's own files are trusted templates, as Ansible loads them."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    return value


def _load(path: Path) -> Any:
    return _trusted(yaml.safe_load(path.read_text()))


@functools.cache
def _plugins() -> None:
    """Ansible's plugin loader, once, finding the checkout as the vpsnet.fleet
    collection (the role's filters are vpsnet.fleet.*), unless a caller (the
    tests' session) has set it up already."""
    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader([str(TOP / ".cache" / "collections")])


def role_facts(variables: dict[str, Any], role: Path = ROLE) -> dict[str, Any]:
    """The role's variables after the set_fact tasks of its plan and sysctl steps,
    in order, with VARIABLES over the defaults and the guest's GUEST_FACTS."""
    _plugins()
    facts: dict[str, Any] = {**_load(role / "defaults/main.yml"), **_load(role / "vars/main.yml"),
                             **GUEST_FACTS, **variables}
    for step in ("plan", "sysctl"):
        for task in _load(role / "tasks" / f"{step}.yml"):
            if SET_FACT not in task:
                continue
            if "when" in task:
                raise SystemExit(f"bench/wan_role.py: {role}/tasks/{step}.yml task "
                                 f"{task['name']!r} has a condition this renderer does not "
                                 "evaluate")
            templar = Templar(loader=DataLoader(), variables={**facts, **task.get("vars", {})})
            facts.update({k: templar.template(v) for k, v in task[SET_FACT].items()})
    return facts


def _plan(variables: dict[str, Any], role: Path) -> dict[str, Any]:
    facts = role_facts(variables, role)
    plan: dict[str, Any] = facts["__vpsnet_tune_plan"]
    if plan["errors"]:
        raise SystemExit("vpsnet_tune: " + "; ".join(plan["errors"]))
    return facts


def sysctl_file(rtt_ms: float, bandwidth_mbit: int, role: Path = ROLE) -> str:
    """The sysctl file the role writes on a bench guest for this link."""
    facts = _plan(bench_vars(rtt_ms, bandwidth_mbit), role)
    template = role / "templates" / "sysctl.conf.j2"
    templar = Templar(loader=DataLoader(), variables=facts)
    return str(templar.template(trust_as_template(
        f"{{{{ lookup('ansible.builtin.template', {str(template)!r}) }}}}")))


def sysctl_keys(text: str) -> dict[str, str]:
    """key -> value of a sysctl file's settings (comments and blank lines left out)."""
    pairs = (ln.partition("=") for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith(("#", ";")))
    return {k.strip(): " ".join(v.split()) for k, _, v in pairs}


def vpsnet_qdisc(fq_maxrate_mbit: int, bandwidth_mbit: int, role: Path = ROLE) -> str:
    """What the role's vpsnet-qdisc puts on every TX queue, as its plan computes it."""
    variables = {**bench_vars(1, bandwidth_mbit), "vpsnet_tune_fq_maxrate_mbit": fq_maxrate_mbit}
    return str(_plan(variables, role)["__vpsnet_tune_plan"]["qdisc"])
