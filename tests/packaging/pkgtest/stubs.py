"""Driver and tools sources for the package build: stand-ins for a tree where
driver-src/ or tools/ have not landed (test_real_sources_packaged fails while
they are used), and a copy of the driver that does not compile. For build.py
and the tests that build from a broken source."""

from __future__ import annotations

import shutil
from pathlib import Path

STUB_KBUILD = """obj-m := vpsnet.o
ccflags-y += -DVPSNET_VERSION=\\"$(shell cat $(src)/VERSION)\\"
"""
STUB_MAKEFILE = """KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
all: modules
compat_config.h: configure
\t./configure $(KDIR) > $@
modules: compat_config.h
\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules
clean:
\t$(MAKE) -C $(KDIR) M=$(CURDIR) clean; rm -f compat_config.h
.PHONY: all modules clean
"""
STUB_C = """#include <linux/module.h>
#include "compat_config.h"
static int __init vpsnet_init(void) { return 0; }
static void __exit vpsnet_exit(void) { }
module_init(vpsnet_init);
module_exit(vpsnet_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION(VPSNET_VERSION);
"""
STUB_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
[project]
name = "vpsnet-tools"
version = "0.0.0"
[project.scripts]
vpsnet-status = "vpsnet_tools.status:main"
"""
STUB_STATUS = """import argparse
from vpsnet_tools import __version__
def main() -> None:
    p = argparse.ArgumentParser(prog="vpsnet-status", description="stand-in")
    p.add_argument("--version", action="version", version=__version__)
    p.parse_args()
"""


def stub_driver(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "Kbuild").write_text(STUB_KBUILD)
    (dest / "Makefile").write_text(STUB_MAKEFILE)
    (dest / "configure").write_text('#!/bin/sh\necho "/* probed against $1 */"\n')
    (dest / "configure").chmod(0o755)
    (dest / "vpsnet.c").write_text(STUB_C)
    (dest / "README.md").write_text("vpsnet stand-in module for packaging tests\n")
    return dest


def stub_tools(dest: Path) -> Path:
    (dest / "vpsnet_tools").mkdir(parents=True)
    (dest / "pyproject.toml").write_text(STUB_PYPROJECT)
    (dest / "vpsnet_tools" / "__init__.py").write_text('__version__ = "0.0.0"\n')
    (dest / "vpsnet_tools" / "status.py").write_text(STUB_STATUS)
    return dest


def broken_copy(src: Path, dest: Path) -> Path:
    """The driver source with a compile error, for the failed-build test."""
    shutil.copytree(
        src, dest, ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*")
    )
    c_file = next(p for p in sorted(dest.glob("*.c")) if "MODULE_LICENSE" in p.read_text())
    c_file.write_text(c_file.read_text() + "\n#error vpsnet packaging test: broken build\n")
    return dest
