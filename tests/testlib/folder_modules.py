"""Modules of bench/, a folder that is no package (its scripts run as
`python bench/NAME.py`, which puts bench/ first on sys.path), for tests. Each
module is loaded by path under its own name, its same-folder imports first, so
they resolve as they do in their folder, without a sys.path edit."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOP = Path(__file__).resolve().parents[2]
BENCH = TOP / "bench"


def load_from(folder: Path, name: str) -> ModuleType:
    """FOLDER/NAME.py as module NAME (loaded once)."""
    if name in sys.modules:
        return sys.modules[name]
    while True:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            return module
        except ModuleNotFoundError as exc:
            del sys.modules[name]
            if not exc.name or not (folder / f"{exc.name}.py").is_file():
                raise
            load_from(folder, exc.name)  # a module of the folder: it first, then this again
