"""Every command line's arguments under generated bad values (issue 21), here
vpsnet-status and vpsnet-abi; test_cli_arguments_roles.py has the scripts the
roles ship, test_cli_arguments_lab.py vpsnet-lab (cli_refusal.py: the shared part).

For each option and each class of bad value (control characters, a trailing
newline, nan/inf/huge/negative numbers, unknown choices, names that are not
names, path traversal, empty strings) the CLI must exit with argparse's 2 or its
own documented error status, print one error line naming the option and showing
the value (escaped), never a traceback, and change nothing: the temp directory
it was pointed at is byte-for-byte the same and no operation (tc, systemd, QMP,
image build) was attempted.
The CLIs run in-process. Counts per class are printed at the end of each module
(pytest -s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testlib.cli_refusal import (
    ANY,
    COUNTS,
    EMPTY,
    FUZZ,
    NAN_INF,
    NEGATIVE,
    TRAVERSAL,
    WORD,
    check_refused,
    control,
    error_line,
    huge,
    run_main,
    snapshot,
    trailing_newline,
)

from vpsnet_tools import abi, status

_print_counts = COUNTS.report_fixture()

# --------------------------------------------------------------------------- vpsnet-status

STATUS_CODES = {2, status.EXIT_BAD_INPUT}  # argparse's 2; 3 is its documented "bad arguments"


@pytest.fixture(scope="module")
def status_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("status")
    (root / "metrics").write_text('vpsnet_info{version="1.0.0",abi="1"} 1\n')
    return root


STATUS_NUMBERS = [("--samples", 100_001), ("--interval", 3601), ("--timeout", 86_401),
                  ("--min-devices", 100_001)]


@FUZZ
@given(st.data())
def test_status_bad_numbers(status_root: Path, data: st.DataObject) -> None:
    opt, too_big = data.draw(st.sampled_from(STATUS_NUMBERS))
    parse: type[int] | type[float] = int if opt in ("--samples", "--min-devices") else float
    cls, value = data.draw(st.sampled_from([
        ("number_nan_inf", NAN_INF), ("number_huge", huge(too_big)),
        ("number_negative", NEGATIVE), ("control_char", control())]).flatmap(
        lambda cv: cv[1].map(lambda v: (cv[0], v))))
    # short bounds for the other options: a value let through runs a quick gate
    argv = ["--file", str(status_root / "metrics"), "--samples", "1", "--timeout", "0",
            "--interval", "0.01", f"{opt}={value}"]
    before = snapshot(status_root)
    rc, err = run_main(status.main, argv)
    line = error_line(err)
    assert rc in STATUS_CODES and opt in line, err
    try:  # argparse shows the text, the range check the number it became
        number = repr(parse(value))
    except ValueError:
        number = repr(value)
    assert repr(value) in line or number in line, line
    assert snapshot(status_root) == before
    COUNTS.add(cls, rejected=True)


VERSIONS = st.sampled_from(["1.0.0", "1.1.0~rc1", "2.0.0+git3", "1.0.0-1"])


@FUZZ
@given(st.sampled_from([
    ("control_char", control()), ("trailing_newline", trailing_newline(VERSIONS)),
    ("not_a_name", st.sampled_from(["v1.0.0", "1", "1.0.0 ", " 1.0.0", "1.0.0;true", "latest",
                                    "\uff11.\uff10.\uff10", "1.0.0/../2"])),
    ("path_traversal", TRAVERSAL), ("empty", EMPTY)]).flatmap(
    lambda cv: cv[1].map(lambda v: (cv[0], v))))
def test_status_bad_expect_version(status_root: Path, case: tuple[str, str]) -> None:
    cls, value = case
    check_refused(cls, status.main, ["--file", str(status_root / "metrics"), "--samples", "1",
                                     "--timeout", "0", f"--expect-version={value}"],
                  STATUS_CODES, ("--expect-version",), value, status_root)


@FUZZ
@given(st.sampled_from(["--file", "--root"]),
       st.sampled_from([("control_char", control()),
                        ("trailing_newline", trailing_newline(WORD.map(lambda w: f"/tmp/{w}"))),
                        ("empty", EMPTY)]).flatmap(lambda cv: cv[1].map(lambda v: (cv[0], v))))
def test_status_bad_paths(status_root: Path, opt: str, case: tuple[str, str]) -> None:
    cls, value = case
    # never --next-boot: a --root let through would have this machine's /boot read
    check_refused(cls, status.main, ["--file", str(status_root / "metrics"), f"{opt}={value}"],
                  STATUS_CODES, (opt,), value, status_root)


def test_status_good_arguments_still_work(status_root: Path) -> None:
    assert status.main(["--file", str(status_root / "metrics"), "--samples", "1", "--interval",
                        "0.01", "--timeout", "0", "--expect-version", "1.0.0"]) == 0


# --------------------------------------------------------------------------- vpsnet-abi


@pytest.fixture(scope="module")
def abi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("abi")
    (root / "vpsnet.ko").write_bytes(b"not read: the arguments are refused first")
    return root


KERNELS = st.sampled_from(["6.1.0-57-cloud-amd64", "6.12.117+deb12-amd64",
                           "5.14.0-427.13.1.el9_4.x86_64"])


@FUZZ
@given(st.sampled_from([
    ("control_char", control()), ("trailing_newline", trailing_newline(KERNELS)),
    ("path_traversal", TRAVERSAL), ("empty", EMPTY),
    ("not_a_name", st.sampled_from(["-rf", "6.1 0", "6.1.0*", "x" * 65, "6.1;reboot", "~"])),
]).flatmap(
    lambda cv: cv[1].map(lambda v: (cv[0], v))))
def test_abi_bad_kernel(abi_root: Path, case: tuple[str, str]) -> None:
    cls, value = case
    check_refused(cls, abi.main, ["check", str(abi_root / "vpsnet.ko"), f"--kernel={value}"],
                  {abi.EXIT_USAGE}, ("--kernel",), value, abi_root)


ABI_PATHS = ["--kdir", "--symvers", "--config", "--modules-dir", "--trusted-cert"]


@FUZZ
@given(st.sampled_from([*ABI_PATHS, "module", "old", "new"]),
       st.sampled_from([("control_char", control()), ("empty", EMPTY),
                        ("trailing_newline", trailing_newline(WORD))]).flatmap(
           lambda cv: cv[1].map(lambda v: (cv[0], v))))
def test_abi_bad_file_arguments(abi_root: Path, opt: str, case: tuple[str, str]) -> None:
    cls, value = case
    ko = str(abi_root / "vpsnet.ko")
    argv = {"module": ["check", "--kernel", "6.1.0-57-cloud-amd64", "--", value],
            "old": ["diff", "--", value, ko], "new": ["diff", "--", ko, value]}.get(
        opt, ["check", ko, "--kernel", "6.1.0-57-cloud-amd64", f"{opt}={value}"])
    check_refused(cls, abi.main, argv, {abi.EXIT_USAGE}, (f"argument {opt}",), value, abi_root)


@FUZZ
@given(st.sampled_from([
    ("unknown_choice", WORD.filter(lambda w: w not in ("manifest", "diff", "check")),
     lambda v, ko: [v, ko], "argument cmd"),
    ("unknown_choice", ANY, lambda v, ko: ["check", ko, "--kernel", "6.1.0-1", f"--json={v}"],
     "--json"),
]).flatmap(lambda c: c[1].map(lambda v: (c[0], v, c[2], c[3]))))
def test_abi_unknown_commands_and_flag_values(abi_root: Path, case: tuple[Any, ...]) -> None:
    cls, value, argv, name = case
    check_refused(cls, abi.main, argv(value, str(abi_root / "vpsnet.ko")), {abi.EXIT_USAGE},
                  (name,), value, abi_root)
