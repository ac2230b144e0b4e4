"""Shared by the test_cli_arguments*.py files: generated bad values by class,
an in-process runner, and check_refused (one error line naming the argument,
nothing changed). Only those test files import it."""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import os
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from testlib.input_counts import InputCounts

REPO = Path(__file__).resolve().parents[2]
COUNTS = InputCounts("CLI arguments (rejected: one line naming the argument, nothing changed)")
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def load_script(path: str, name: str) -> ModuleType:
    """A role's script as a module (they have no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader(name, str(REPO / path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module



# --------------------------------------------------------------------------- bad values

WORD = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=6)
ANY = st.text(max_size=6)


def control(nul: bool = True) -> st.SearchStrategy[str]:
    """A string holding a control character (C0/C1, DEL, NEL, U+2028/9) somewhere;
    no NUL where the value goes through execve."""
    chars = st.characters(codec="utf-8", categories=["Cc"],
                          exclude_characters="" if nul else "\x00")
    return st.builds(lambda a, c, b: a + c + b, ANY.filter(lambda s: "\x00" not in s or nul),
                     chars | st.sampled_from(["\n", "\r", "\x85", "\u2028", "\u2029"]),
                     ANY.filter(lambda s: "\x00" not in s or nul))


def trailing_newline(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return valid.map(lambda v: v + "\n")


NAN_INF = st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999"])


def huge(low: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=low, max_value=10**40).map(str) | \
        st.floats(min_value=float(low), max_value=1e300).map(repr)


NEGATIVE = st.integers(max_value=-1, min_value=-10**20).map(str) | \
    st.floats(max_value=-1e-9, min_value=-1e300).map(repr)
TRAVERSAL = st.sampled_from(["..", ".", "../x", "../../etc/passwd", "a/../../b", "/etc/shadow",
                             "a/b", "./a"]) | WORD.map(lambda w: f"../{w}")
EMPTY = st.just("")


@contextlib.contextmanager
def captured() -> Iterator[io.StringIO]:
    """stderr (and stdout, which must stay quiet too) of an in-process run."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        yield err


def run_main(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of main(argv); argparse's refusals exit through SystemExit."""
    with captured() as err:
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return rc, err.getvalue()


def error_line(stderr: str) -> str:
    """The one error line: argparse's usage block (first line "usage:", then
    indented lines) may come before it, nothing else."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    rest = [ln for ln in lines if not ln.startswith(("usage:", " "))]
    assert len(rest) == 1, stderr
    return rest[0]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None: a directory)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def check_refused(cls: str, main: Callable[[list[str]], int], argv: list[str], codes: set[int],
                  names: tuple[str, ...], value: str, root: Path,
                  shown: str | None = None) -> None:
    """main(argv) refuses VALUE of option NAMES (any of them in the line): status in
    CODES, one line naming the option and the value (SHOWN: how the line shows it,
    repr by default), ROOT unchanged. Counted under CLS."""
    before = snapshot(root)
    rc, err = run_main(main, argv)
    line = error_line(err)
    assert rc in codes, (rc, err)
    assert any(n in line for n in names), line
    assert (repr(value) if shown is None else shown) in line, line
    assert snapshot(root) == before, "a refused argument changed the directory"
    COUNTS.add(cls, rejected=True)
