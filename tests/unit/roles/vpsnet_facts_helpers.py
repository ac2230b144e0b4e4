"""Paths and helpers shared by the vpsnet_facts unit tests (imported by conftest and tests)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FACTS_LIBRARY = REPO / "roles" / "vpsnet_facts" / "library"


def load_role_file(relpath: str, name: str) -> ModuleType:
    """A role's module or plugin (roles/<relpath>), imported as a plain module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "roles" / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_facts_module() -> ModuleType:
    """The role's library/vpsnet_facts.py, imported as a plain module."""
    return load_role_file("vpsnet_facts/library/vpsnet_facts.py", "vpsnet_facts")


def recorded_ethtool(root: Path) -> Callable[[str], str | None]:
    """An `ethtool -l NAME` stand-in that reads recorded output under <root>/ethtool-l/."""

    def run(name: str) -> str | None:
        path = root / "ethtool-l" / name
        return path.read_text() if path.exists() else None

    return run
