"""Inputs counted per class by the fuzz and bad-input tests, printed per module.

A module makes one InputCounts, counts every input it generates under a class
(and, where the test knows, whether it was rejected or accepted), and binds
`report_fixture()` to a module-level name: the table is printed after the
module's last test (seen with pytest -s). tests/ is on sys.path (the root
conftest, tests/conftest.py, lives there), so any test file can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


@dataclass
class Tally:
    """One class: inputs generated, and of those how many were rejected or accepted
    (both 0 where the test does not tell)."""

    generated: int = 0
    rejected: int = 0
    accepted: int = 0


class InputCounts:
    """Generated / rejected / accepted inputs per class, for one test module."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._tallies: dict[str, Tally] = {}

    def add(self, cls: str, n: int = 1, *, rejected: bool | None = None) -> None:
        """N inputs of class CLS generated; rejected=True or False also counts them
        as rejected or accepted (None: the test does not tell)."""
        tally = self._tallies.setdefault(cls, Tally())
        tally.generated += n
        if rejected is True:
            tally.rejected += n
        elif rejected is False:
            tally.accepted += n

    def call(self, cls: str, error: type[Exception], fn: Callable[..., T],
             *args: Any) -> T | None:
        """fn(*args), counted under CLS: rejected (and None) if it raises ERROR,
        else accepted (and its result)."""
        try:
            result = fn(*args)
        except error:
            self.add(cls, rejected=True)
            return None
        self.add(cls, rejected=False)
        return result

    def __getitem__(self, cls: str) -> Tally:
        """The class's tally (all 0 for a class never counted)."""
        return self._tallies.get(cls, Tally())

    def __bool__(self) -> bool:
        return bool(self._tallies)

    def classes(self) -> list[str]:
        return sorted(self._tallies)

    def table(self) -> str:
        """The title, a row per class and a total row; the accepted column only
        where some class counted accepted inputs, '-' where a class's outcome is
        not told."""
        with_accepted = any(t.accepted for t in self._tallies.values())
        heads = ["generated", "rejected", *(["accepted"] if with_accepted else [])]
        width = max(len("class"), *map(len, self._tallies))

        def row(name: str, t: Tally) -> str:
            told = t.rejected + t.accepted > 0
            cells = [t.generated, t.rejected, *([t.accepted] if with_accepted else [])]
            shown = [str(c) if told or i == 0 else "-" for i, c in enumerate(cells)]
            return f"  {name:<{width}}" + "".join(f" {c:>9}" for c in shown)

        total = Tally(*(sum(getattr(t, f) for t in self._tallies.values())
                        for f in ("generated", "rejected", "accepted")))
        return "\n".join([
            f"\n{self.title}, per class:",
            f"  {'class':<{width}}" + "".join(f" {h:>9}" for h in heads),
            *(row(name, self._tallies[name]) for name in self.classes()),
            row("total", total),
        ])

    def report_fixture(self) -> object:
        """A module-scoped autouse fixture printing table() after the module's last
        test; bind it to a name in the test module (`_counts = COUNTS.report_fixture()`)."""

        @pytest.fixture(scope="module", autouse=True)
        def _print_input_counts() -> Iterator[None]:
            yield
            if self:
                print(self.table())

        return _print_input_counts
