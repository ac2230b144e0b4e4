"""How the lab runs ansible-playbook against its guests: under Mitogen.

Under TCG every Python start on a guest costs seconds, and Ansible starts one
(plus its module_utils, compiled afresh from the AnsiballZ zip) for every task
and loop item: 13 module runs took 921 s on a busy 4-guest lab, against 56 s
(51 s of it the first connection) under Mitogen's strategy, which keeps one
interpreter per host with its imported modules (2026-12-02, TCG). The hook Mitogen uses,
third-party strategy plugins, is deprecated in ansible-core 2.19 with no
replacement planned, so the lab opts in here and ansible.cfg stays on the
default linear strategy: a fleet run uses Mitogen only when asked
(README: "Ansible under Mitogen"). Playbook semantics do not change: Mitogen's
mitogen_linear is the linear strategy with its own connection layer.
"""

from __future__ import annotations

from pathlib import Path

import ansible_mitogen

STRATEGY = "mitogen_linear"
STRATEGY_PLUGINS = Path(ansible_mitogen.__file__).resolve().parent / "plugins" / "strategy"


def mitogen_env() -> dict[str, str]:
    """The environment entries that put ansible-playbook under Mitogen."""
    return {"ANSIBLE_STRATEGY": STRATEGY, "ANSIBLE_STRATEGY_PLUGINS": str(STRATEGY_PLUGINS)}


def shell_exports() -> str:
    """`export` lines of mitogen_env(), for `eval "$(vpsnet-lab ansible-env)"`."""
    return "".join(f"export {key}={value}\n" for key, value in mitogen_env().items())
