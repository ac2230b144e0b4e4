#!/usr/bin/python3
"""Make the staged tools/ build as version VERSION, whatever way its
pyproject.toml declares the version; and keep it buildable with Debian 12's
setuptools 66. Usage: pin-tools-version.py TOOLS_DIR VERSION

- [project] version = "..."                      -> rewritten
- dynamic version, attr = "pkg.__version__"      -> __version__ literal written
- dynamic version, file = "X"                    -> X written
- license = "SPDX" (PEP 639, setuptools >= 77)   -> license = { text = "SPDX" }
"""

import re
import sys
import tomllib
from pathlib import Path


def main() -> None:
    tools, version = Path(sys.argv[1]), sys.argv[2]
    pyproject = tools / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text())
    project = data.get("project", {})
    lines = pyproject.read_text().splitlines(keepends=True)
    section = None
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1).strip()
            continue
        if section != "project":
            continue
        if re.match(r"^version\s*=", line):
            lines[i] = f'version = "{version}"\n'
        m = re.match(r'^license\s*=\s*"([^"]*)"\s*$', line)
        if m:
            lines[i] = f'license = {{ text = "{m.group(1)}" }}\n'
    pyproject.write_text("".join(lines))

    if "version" in project.get("dynamic", []):
        dyn = data.get("tool", {}).get("setuptools", {}).get("dynamic", {}).get("version", {})
        if "attr" in dyn:
            module, _, attr = dyn["attr"].rpartition(".")
            base = tools / Path(*module.split("."))
            path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
            text = path.read_text()
            text, n = re.subn(rf"^{attr}\s*=.*$", f'{attr} = "{version}"', text, flags=re.M)
            if n != 1:
                sys.exit(f"pin-tools-version: no single '{attr} =' line in {path}")
            path.write_text(text)
        elif "file" in dyn:
            files = dyn["file"] if isinstance(dyn["file"], list) else [dyn["file"]]
            (tools / files[0]).write_text(version + "\n")
        else:
            sys.exit(f"pin-tools-version: unsupported dynamic version {dyn!r}")


if __name__ == "__main__":
    main()
