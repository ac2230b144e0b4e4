"""Every command line's arguments under generated bad values (issue 21): vpsnet-status,
vpsnet-abi, vpsnet-lab, and the scripts the roles ship (vpsnet-qdisc,
vpsnet-irq-affinity, vpsnet-guard).

For each option and each class of bad value (control characters, a trailing
newline, nan/inf/huge/negative numbers, unknown choices, names that are not
names, path traversal, empty strings) the CLI must exit with argparse's 2 or its
own documented error status, print one error line naming the option and showing
the value (escaped), never a traceback, and change nothing: the temp directory
it was pointed at is byte-for-byte the same and no operation (tc, systemd, QMP,
image build) was attempted. The CLIs run in-process except vpsnet-guard (sh).
Counts per class are printed at the end of the module (pytest -s)."""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import os
import string
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from input_counts import InputCounts

from vpsnet_lab import cli as lab_cli
from vpsnet_tools import abi, status

REPO = Path(__file__).resolve().parents[2]
COUNTS = InputCounts("CLI arguments (rejected: one line naming the argument, nothing changed)")
_print_counts = COUNTS.report_fixture()
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _load(path: str, name: str) -> ModuleType:
    """A role's script as a module (they have no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader(name, str(REPO / path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


vq = _load("roles/vpsnet_tune/files/vpsnet-qdisc", "vpsnet_qdisc_cli")
via = _load("roles/vpsnet_tune/files/vpsnet-irq-affinity", "vpsnet_irq_affinity_cli")
GUARD = REPO / "roles/vpsnet_guard/files/vpsnet-guard"

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


# --------------------------------------------------------------------------- vpsnet-qdisc


class Refuse:
    """The tc/ip runner: every call is a failure of the test (nothing may run)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(argv)
        raise AssertionError(f"ran {argv} for a refused argument")


@pytest.fixture(scope="module")
def sysroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sysroot")
    for name in ("eth0", "eth1"):
        (root / "sys/class/net" / name / "queues/tx-0").mkdir(parents=True)
        (root / "sys/class/net" / name / "device").mkdir()
    (root / "etc/vpsnet").mkdir(parents=True)
    (root / "etc/vpsnet/irq-affinity.conf").write_text("eth0 0-1\n")
    (root / "proc/irq/30").mkdir(parents=True)
    (root / "proc/irq/30/smp_affinity_list").write_text("0-3\n")
    (root / "proc/interrupts").write_text("CPU0\n30: 1 PCI-MSI eth0-Tx-Rx-0\n")
    return root


def qdisc_main(sysroot: Path) -> Callable[[list[str]], int]:
    def main(argv: list[str]) -> int:
        refuse = Refuse()
        rc = int(vq.main(argv, run=refuse, root=str(sysroot)))
        assert refuse.calls == []
        return rc

    return main


IFNAME_BAD = st.sampled_from([
    ("control_char", control()), ("trailing_newline", trailing_newline(st.just("eth0"))),
    ("path_traversal", TRAVERSAL), ("empty", EMPTY),
    ("not_a_name", st.sampled_from(["-eth0", "eth0:1", "eth 0", "a" * 16, "é" * 8, "eth0\t"]))])
QDISC_SPEC_BAD = st.sampled_from([
    ("control_char", control()),
    ("trailing_newline", st.sampled_from(["fq\n", "fq maxrate 57mbit\n", "fq_codel\n"])),
    ("unknown_choice", WORD.filter(lambda w: w not in vq.KINDS)),
    ("number_nan_inf", NAN_INF.map(lambda n: f"fq maxrate {n}mbit")),
    ("number_huge", huge(34_360).map(lambda n: f"fq maxrate {n}mbit")),
    ("number_negative", NEGATIVE.map(lambda n: f"fq maxrate {n}mbit")),
    ("not_a_name", st.sampled_from(["fq maxrate \u0665\u0667mbit", "fq  maxrate 5mbit extra",
                                    "../fq", "fq_codel target 5ms", "fq maxrate 5Mbit"])),
    ("empty", EMPTY)])


@FUZZ
@given(st.data())
def test_qdisc_bad_arguments(sysroot: Path, data: st.DataObject) -> None:
    opt = data.draw(st.sampled_from(["--qdisc", "IFNAME", "--conf"]))
    cases = {"--qdisc": QDISC_SPEC_BAD, "IFNAME": IFNAME_BAD,
             "--conf": st.sampled_from([("control_char", control()), ("empty", EMPTY)])}[opt]
    cls, value = data.draw(cases.flatmap(lambda cv: cv[1].map(lambda v: (cv[0], v))))
    argv = {"--qdisc": [f"--qdisc={value}", "eth0"], "IFNAME": ["--qdisc=fq", "--", value],
            "--conf": [f"--conf={value}", "eth0"]}[opt]
    # the spec's own errors show it stripped (as a config file's line)
    shown = None if opt != "--qdisc" or not value.strip() else repr(value.strip())
    if opt == "--qdisc" and not value.strip():
        shown = "--qdisc"  # nothing to show but where it came from
    if opt == "--qdisc" and vq.CONTROL_RE.search(value):
        shown = repr(value)
    check_refused(cls, qdisc_main(sysroot), argv, {1}, (opt,), value, sysroot, shown)


def test_qdisc_kinds_are_the_roles() -> None:
    # one list in two places (the script runs on hosts without the role): no drift
    known = yaml.safe_load((REPO / "roles/vpsnet_tune/vars/main.yml").read_text())
    assert list(vq.KINDS) == known["__vpsnet_tune_known_qdiscs"]


def test_qdisc_good_arguments_still_parse(sysroot: Path) -> None:
    assert vq.parse_spec("# managed\nfq maxrate 57mbit\n") == ("fq", 57 * 125_000)
    calls: list[list[str]] = []

    def run(argv: list[str]) -> str:
        calls.append(argv)
        return '[{"kind": "fq", "root": true, "handle": "0:"}]'

    assert vq.main(["--qdisc", "fq", "--check", "eth0"], run=run, root=str(sysroot)) == 0
    assert calls == [["tc", "-j", "qdisc", "show", "dev", "eth0"]]


# --------------------------------------------------------------------------- vpsnet-irq-affinity


@FUZZ
@given(st.data())
def test_irq_affinity_bad_arguments(sysroot: Path, data: st.DataObject) -> None:
    opt = data.draw(st.sampled_from(["IFNAME", "--root", "IRQ"]))
    cases = {
        "IFNAME": IFNAME_BAD,
        "--root": st.sampled_from([("control_char", control()), ("empty", EMPTY),
                                   ("trailing_newline", st.just(f"{sysroot}\n"))]),
        "IRQ": st.sampled_from([
            ("number_nan_inf", NAN_INF.filter(lambda n: not n.startswith("-"))),
            ("number_huge", st.integers(10**10, 10**40).map(str)),
            # argparse reads "-5" as a value only when it looks like a number
            ("number_negative", st.integers(-10**20, -1).map(str)),
            ("control_char", control().filter(lambda v: not v.startswith("-"))),
            ("trailing_newline", st.just("30\n")), ("empty", EMPTY),
            ("not_a_name", st.sampled_from(["²", "0x1e", "30.0", "3 0", "\u0663\u0660"]))]),
    }[opt]
    cls, value = data.draw(cases.flatmap(lambda cv: cv[1].map(lambda v: (cv[0], v))))
    root = ["--root", str(sysroot)]
    argv = {"IFNAME": [*root, "--", value], "--root": [f"--root={value}", "eth0"],
            "IRQ": [*root, "--policy", "/devices/x", value]}[opt]
    check_refused(cls, via.main, argv, {2}, ({"IRQ": "--policy IRQ"}.get(opt, opt),), value,
                  sysroot)


def test_irq_affinity_good_arguments_still_work(sysroot: Path) -> None:
    rc, _ = run_main(via.main, ["--root", str(sysroot), "--dry-run", "eth0"])
    assert rc == 0


# --------------------------------------------------------------------------- vpsnet-guard


class GuardHost:
    """vpsnet-guard with every tool it calls faked (each call logged to calls) and its
    directories under one temp root; `t` has a record, so arm/revert could act."""

    def __init__(self, root: Path) -> None:
        self.root = root
        fakes = root / "bin"
        fakes.mkdir()
        for tool in ("tc", "ethtool", "ip", "logger", "systemctl", "systemd-run", "flock"):
            (fakes / tool).write_text('#!/bin/sh\necho "$0 $*" >>"$CALLS"\n')
            (fakes / tool).chmod(0o755)
        self.env = {"PATH": f"{fakes}:/usr/bin:/bin", "CALLS": str(root / "calls"),
                    "VPSNET_GUARD_DIR": str(root / "guard"),
                    "VPSNET_GUARD_UNIT_DIR": str(root / "units"),
                    "VPSNET_GUARD_BOOT_DIR": str(root / "boot")}
        r = self.run("record", "t", stdin="true\n")
        assert r.returncode == 0, r.stderr

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(GUARD), *args], env=self.env, capture_output=True,
                              text=True, check=False, input=stdin, timeout=30)



@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> GuardHost:
    return GuardHost(tmp_path_factory.mktemp("guard"))


def shown(value: str) -> str:
    """How vpsnet-guard shows a value: bytes other than printable ASCII as '?'."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in value.encode())


NO_NUL = control(nul=False)
GUARD_CASES: dict[str, Any] = {
    "ID": st.sampled_from([
        ("control_char", NO_NUL), ("trailing_newline", trailing_newline(WORD)),
        ("path_traversal", TRAVERSAL), ("empty", EMPTY),
        ("not_a_name", st.sampled_from(["a b", "a;reboot", "$(id)", "x" * 65, "é"]))]),
    "SECONDS": st.sampled_from([
        ("number_nan_inf", NAN_INF), ("number_huge", huge(604_801)),
        ("number_negative", NEGATIVE), ("control_char", NO_NUL),
        ("trailing_newline", st.just("60\n")), ("empty", EMPTY),
        ("not_a_name", st.sampled_from(["010", "0", " 60", "60s", "1.5", "0x3c",
                                        "\u0666\u0660"]))]),
    "NIC": st.sampled_from([
        ("control_char", NO_NUL.filter(lambda v: not v.startswith("-"))),
        ("trailing_newline", st.just("lo\n")), ("path_traversal", TRAVERSAL),
        ("empty", EMPTY),
        ("not_a_name", st.sampled_from(["lo;reboot", "-lo", "a" * 16, "lo 1", "$(id)"]))]),
    "COMMAND": st.sampled_from([("unknown_choice", WORD.filter(
        lambda w: w not in ("save", "record", "arm", "resume", "disarm", "revert", "status",
                            "boot")))]),
    "OPTION": st.sampled_from([("unknown_choice", ANY.filter(
        lambda v: v not in ("--persistent", "--if-due") and "\x00" not in v))]),
}


@settings(FUZZ, max_examples=200)
@given(st.data())
def test_guard_bad_arguments(guard: GuardHost, data: st.DataObject) -> None:
    what = data.draw(st.sampled_from(sorted(GUARD_CASES)))
    cls, value = data.draw(GUARD_CASES[what].flatmap(lambda cv: cv[1].map(lambda v: (cv[0], v))))
    argv, names = {
        "ID": (["arm", value, "60"], ("bad id",)),
        "SECONDS": (["arm", "t", value], ("bad SECONDS",)),
        "NIC": (["save", "t", value], ("NIC",)),
        "COMMAND": ([value, "t"], ("unknown command",)),
        "OPTION": (data.draw(st.sampled_from([["arm", "t", "60", value], ["revert", "t", value]])),
                   ("unknown option",)),
    }[what]
    before = snapshot(guard.root)
    r = guard.run(*argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and any(n in lines[0] for n in names), r.stderr
    assert f"'{shown(value)}'" in lines[0], lines[0]
    assert snapshot(guard.root) == before, "a refused argument changed the guard's files"
    COUNTS.add(cls, rejected=True)


def test_guard_good_arguments_still_work(guard: GuardHost) -> None:
    assert guard.run("status", "t").stdout.strip() == "saved"


# --------------------------------------------------------------------------- vpsnet-lab


class RefusingLab:
    """Stands in for Lab, image.build, inventory.write and ssh: any use fails the test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the lab was touched for a refused argument: {args}")

    @classmethod
    def up(cls, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("lab up for a refused argument")


@pytest.fixture(scope="module")
def lab_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("lab-state")
    (state / "state.json").write_text('{"spec": {}, "guests": {}}')
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab_cli, "Lab", RefusingLab)
        mp.setattr(lab_cli.image, "build", RefusingLab)
        mp.setattr(lab_cli.inventory, "write", RefusingLab)
        mp.setattr(lab_cli.os, "execvp", RefusingLab)
        yield state


GUEST_BAD = st.sampled_from([
    ("control_char", control()), ("trailing_newline", trailing_newline(st.just("aws-a"))),
    ("path_traversal", TRAVERSAL), ("empty", EMPTY),
    ("not_a_name", st.sampled_from(["Aws", "1st", "a_b", "a" * 32, "a b", "-x", "\uff41"]))])
KERNEL_BAD = st.sampled_from([
    ("control_char", control()),
    ("trailing_newline", st.sampled_from(["6.1\n", "all\n", "6.1.0-47-cloud-amd64\n"])),
    ("unknown_choice", st.sampled_from(["6.2", "7", "latest", "ALL", "6.1.0-47-amd64",
                                        "6.1.0-\u0664\u0667-cloud-amd64"])),
    ("path_traversal", TRAVERSAL), ("empty", EMPTY)])
PATH_BAD = st.sampled_from([("control_char", control()), ("empty", EMPTY),
                            ("trailing_newline", st.just("/tmp/lab.yml\n"))])
LAB_CASES: dict[str, tuple[Any, Callable[[str], list[str]], str]] = {
    "--state": (PATH_BAD, lambda v: [f"--state={v}", "status"], "argument --state"),
    "--kernel": (KERNEL_BAD, lambda v: ["image", "build", f"--kernel={v}"], "argument --kernel"),
    "--firmware": (st.sampled_from([("unknown_choice", ANY.filter(
        lambda v: v not in ("bios", "uefi-secureboot")))]),
        lambda v: ["image", "build", "--kernel=6.1", f"--firmware={v}"], "argument --firmware"),
    "--timeout": (st.sampled_from([("number_nan_inf", NAN_INF), ("number_huge", huge(86_401)),
                                   ("number_negative", NEGATIVE | st.just("0")),
                                   ("control_char", control())]),
                  lambda v: ["up", "spec.yml", f"--timeout={v}"], "argument --timeout"),
    "spec": (PATH_BAD, lambda v: ["up", "--", v], "argument spec"),
    "--inventory": (PATH_BAD, lambda v: ["up", "spec.yml", f"--inventory={v}"],
                    "argument --inventory"),
    "--output": (PATH_BAD, lambda v: ["inventory", f"--output={v}"], "argument --output"),
    "ssh NAME": (GUEST_BAD, lambda v: ["ssh", "--", v, "true"], "argument name"),
    "link NAME": (GUEST_BAD, lambda v: ["link", "--", v, "eth0", "up"], "argument name"),
    "pause NAME": (GUEST_BAD, lambda v: ["pause", "--", v], "argument name"),
    "resume NAME": (GUEST_BAD, lambda v: ["resume", "--", v], "argument name"),
    "link NIC": (st.sampled_from([
        ("control_char", control()), ("trailing_newline", st.just("eth0\n")),
        ("empty", EMPTY), ("path_traversal", TRAVERSAL),
        ("unknown_choice", st.sampled_from(["wlan0", "eth", "eth\u0663", "eth-1", "eth100"]))]),
        lambda v: ["link", "--", "aws-a", v, "up"], "argument nic"),
    "link UPDOWN": (st.sampled_from([("unknown_choice", ANY.filter(
        lambda v: v not in ("up", "down")))]),
        lambda v: ["link", "--", "aws-a", "eth0", v], "argument updown"),
    "command": (st.sampled_from([("unknown_choice", WORD.filter(lambda w: w not in (
        "image", "up", "down", "status", "ssh", "inventory", "link", "pause", "resume",
        "ansible-env", "identify")))]), lambda v: [v], "argument cmd"),
}


@settings(FUZZ, max_examples=300)
@given(st.data())
def test_lab_bad_arguments(lab_state: Path, data: st.DataObject) -> None:
    what = data.draw(st.sampled_from(sorted(LAB_CASES)))
    cases, argv, name = LAB_CASES[what]
    cls, value = data.draw(cases.flatmap(lambda cv: cv[1].map(lambda v: (cv[0], v))))
    state = [] if what == "--state" else ["--state", str(lab_state)]
    check_refused(cls, lab_cli.main, [*state, *argv(value)], {2}, (name,), value, lab_state)


def test_lab_good_arguments_still_parse() -> None:
    args = lab_cli.parser().parse_args(
        ["--state", "/tmp/s", "link", "aws-a", "eth1", "down"])
    assert (args.name, args.nic, args.updown) == ("aws-a", "eth1", "down")
    for kernel in ("all", "6.1", "6.12", "6.1.0-47-cloud-amd64", "6.12.107+deb12-cloud-amd64"):
        assert lab_cli.parser().parse_args(["image", "build", "--kernel", kernel]).kernel == kernel
    assert lab_cli.parser().parse_args(["up", "s.yml", "--timeout", "600"]).timeout == 600.0
