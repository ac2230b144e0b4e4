"""Ansible's collection finder for the whole test session (a pytest plugin, named
first in tests/conftest.py): every `ansible_collections.vpsnet.fleet...` import, in a
test or in Ansible run in-process, goes through the loader Ansible itself uses, so a
plugin imported by a test and the same plugin looked up by FQCN agree."""

from __future__ import annotations

from ansible.plugins.loader import init_plugin_loader

from vpsnet_lab.paths import TOP

# before any test module imports collection code (a plain namespace import would
# hide the collection's metadata from Ansible's plugin lookups)
init_plugin_loader([str(TOP / ".cache" / "collections")])
