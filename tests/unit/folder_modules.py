"""bench/ modules for their unit tests. bench/ is no package: its scripts run as
`python bench/NAME.py`, which puts bench/ first on sys.path, and import their
siblings by name; here each module is loaded by path under its own name, its
bench/ siblings first, so those imports find them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[3] / "bench"


def load_bench(name: str) -> ModuleType:
    """bench/NAME.py as module NAME (loaded once)."""
    if name in sys.modules:
        return sys.modules[name]
    while True:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            return module
        except ModuleNotFoundError as exc:
            del sys.modules[name]
            if not exc.name or not (BENCH / f"{exc.name}.py").is_file():
                raise
            load_bench(exc.name)  # a sibling: load it, then this module again
