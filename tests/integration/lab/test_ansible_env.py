"""The lab's Mitogen environment: ansible-playbook really runs under it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from vpsnet_lab import ansible_env

PLAY = """\
- name: Under Mitogen
  hosts: all
  gather_facts: false
  tasks:
    - name: Run a module
      ansible.builtin.command: echo vpsnet-mitogen-{{ ansible_play_batch | length }}
      register: out
      changed_when: false
    - name: Show it
      ansible.builtin.debug:
        msg: "{{ out.stdout }}"
"""


def test_exports_name_the_strategy_and_a_plugin_dir_that_has_it() -> None:
    env = dict(line.removeprefix("export ").split("=", 1)
               for line in ansible_env.shell_exports().splitlines())
    assert env == ansible_env.mitogen_env()
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()
    assert shlex.split(ansible_env.shell_exports())  # plain words, nothing to quote


def test_a_playbook_runs_under_it(tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    bindir = Path(sys.executable).parent
    env = dict(os.environ, **ansible_env.mitogen_env(), ANSIBLE_FORCE_COLOR="0",
               PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    r = subprocess.run([str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                        "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vpsnet-mitogen-1" in r.stdout
    # a strategy Ansible could not load fails the play instead
    env["ANSIBLE_STRATEGY"] = "mitogen_nonexistent"
    r = subprocess.run([str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                        str(play)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "mitogen_nonexistent" in r.stdout + r.stderr
