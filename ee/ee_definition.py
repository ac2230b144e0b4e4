"""Read execution-environment.yml for scripts/ee-build.sh: the staged collections
(and their galaxy requirements file), the pip pins of ansible-core and
ansible-runner, the excluded Python packages.
Imported by tests/ee; run as `python ee/ee_definition.py QUESTION [FILE]`."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

DEFINITION = Path(__file__).resolve().parents[1] / "execution-environment.yml"
# A staged collection: collections/<namespace>-<name>.tar.gz (type file) or
# collections/<namespace>-<name> (type dir)
STAGED_COLLECTION = re.compile(r"^collections/([a-z0-9_]+)-([a-z0-9_]+)(\.tar\.gz)?$")


def load(path: Path = DEFINITION) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


def collections(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(type, namespace, name) of every galaxy entry, in order: each one staged."""
    found = []
    for entry in doc["dependencies"]["galaxy"]["collections"]:
        match = STAGED_COLLECTION.match(entry["name"])
        kind = "file" if match and match.group(3) else "dir"
        if match is None or entry.get("type") != kind:
            raise ValueError(
                f"galaxy entry {entry['name']!r}: expected collections/<namespace>-<name>.tar.gz "
                "of type file or collections/<namespace>-<name> of type dir"
            )
        found.append((kind, match.group(1), match.group(2)))
    return found


def pip_pins(doc: dict[str, Any]) -> list[str]:
    """The pip requirements of ansible-core and ansible-runner."""
    deps = doc["dependencies"]
    return [deps["ansible_core"]["package_pip"], deps["ansible_runner"]["package_pip"]]


def python_excludes(doc: dict[str, Any]) -> list[str]:
    excluded: list[str] = doc["dependencies"].get("exclude", {}).get("python", [])
    return excluded


def galaxy_requirements(doc: dict[str, Any]) -> str:
    """The galaxy section as a requirements.yml (paths relative to the staging dir)."""
    return yaml.safe_dump(doc["dependencies"]["galaxy"], sort_keys=False)


QUESTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "collections": lambda doc: "\n".join(" ".join(staged) for staged in collections(doc)),
    "galaxy-requirements": galaxy_requirements,
    "pip-pins": lambda doc: "\n".join(pip_pins(doc)),
    "python-excludes": lambda doc: "\n".join(python_excludes(doc)),
}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[1] not in QUESTIONS:
        print(f"usage: {argv[0]} {'|'.join(QUESTIONS)} [FILE]", file=sys.stderr)
        return 2
    doc = load(Path(argv[2]) if len(argv) == 3 else DEFINITION)
    print(QUESTIONS[argv[1]](doc).rstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
