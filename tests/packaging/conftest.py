"""Fixtures of the packaging tests: the packages and signed repository, built
once per session by pkgtest.build (host and guest tests share them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pkgtest.build import Build, build_packages, stop_gpg_agent


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    b = build_packages(tmp_path_factory.mktemp("pkg"))
    try:
        yield b
    finally:
        stop_gpg_agent(b.gnupghome)
