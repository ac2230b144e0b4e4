"""The arguments of the scripts the roles ship (vpsnet-qdisc, vpsnet-irq-affinity,
vpsnet-guard) under generated bad values (issue 21; the rules are in
test_cli_arguments.py's docstring). vpsnet-guard runs under sh, the others
in-process."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from testlib.cli_refusal import (
    ANY,
    COUNTS,
    EMPTY,
    FUZZ,
    NAN_INF,
    NEGATIVE,
    REPO,
    TRAVERSAL,
    WORD,
    check_refused,
    control,
    huge,
    load_script,
    run_main,
    snapshot,
    trailing_newline,
)

_print_counts = COUNTS.report_fixture()

vq = load_script("roles/vpsnet_tune/files/vpsnet-qdisc", "vpsnet_qdisc_cli")
via = load_script("roles/vpsnet_tune/files/vpsnet-irq-affinity", "vpsnet_irq_affinity_cli")
GUARD = REPO / "roles/vpsnet_guard/files/vpsnet-guard"

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
